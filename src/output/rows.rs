//! How sockets are shown in a table, shared by `list` and `top`: the
//! columns and how each gives way, and a record as a row of cells.

use crate::facts::socket_record::SocketRecord;
use crate::model::{Family, TcpState};
use crate::output::{endpoint, words, Cell, Column, Fit, Style};

pub const COLUMNS: [Column; 8] = [
    Column::new("PROTO", 5),
    Column::new("LOCAL", 21),
    Column::new("REMOTE", 21),
    Column::new("STATE", 11),
    Column::new("SERVICE", 10).fit(Fit::Drop(1)),
    Column::new("USER", 8).fit(Fit::Drop(2)),
    Column::new("PID", 7),
    Column::new("PROCESS", 0).fit(Fit::Truncate),
];

/// `list -w`: the unit and container too.
pub const WIDE_COLUMNS: [Column; 10] = [
    COLUMNS[0],
    COLUMNS[1],
    COLUMNS[2],
    COLUMNS[3],
    COLUMNS[4],
    COLUMNS[5],
    COLUMNS[6],
    Column::new("PROCESS", 15).fit(Fit::Truncate),
    Column::new("UNIT", 20).fit(Fit::Drop(3)),
    Column::new("CONTAINER", 0).fit(Fit::Truncate),
];

pub fn columns(wide: bool) -> &'static [Column] {
    if wide {
        &WIDE_COLUMNS
    } else {
        &COLUMNS
    }
}

/// A socket as a row of `list`'s columns.
pub fn row(record: &SocketRecord, wide: bool) -> Vec<Cell> {
    let proto = match record.family {
        Family::Ipv4 => record.proto.as_str().to_string(),
        Family::Ipv6 => format!("{}6", record.proto),
    };
    let state_style = match record.state {
        Some(TcpState::Listen) => Style::Good,
        Some(TcpState::Established) => Style::Normal,
        Some(_) => Style::Dim,
        None => Style::Normal,
    };
    let pid = match (&record.pid, record.pids.len()) {
        (Some(pid), n) if n > 1 => format!("{pid}+{}", n - 1),
        (Some(pid), _) => pid.to_string(),
        (None, _) => String::new(),
    };
    let mut cells = vec![
        Cell::new(proto),
        Cell::new(endpoint(record.local(), false)),
        Cell::new(endpoint(record.remote(), true)),
        Cell::styled(record.state.map_or("", words::state), state_style),
        Cell::new(record.service.clone().unwrap_or_default()),
        Cell::new(record.user.clone().unwrap_or_default()),
        Cell::new(pid),
        Cell::styled(record.process.clone().unwrap_or_default(), Style::Bold),
    ];
    if wide {
        cells.push(Cell::new(record.unit.clone().unwrap_or_default()));
        cells.push(Cell::new(
            record
                .container
                .as_ref()
                .map_or_else(String::new, |c| c.label()),
        ));
    }
    cells
}
