//! How sockets are shown in a table, shared by `list` and `top`: the
//! columns and how each gives way, and a record as a row of cells.

use crate::facts::socket_record::SocketRecord;
use crate::model::{Family, TcpState};
use crate::output::{endpoint, words, Cell, Column, Fit, Style};

/// Which columns a table of sockets has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shape {
    /// `list -w`: the unit and the container.
    pub wide: bool,
    /// `list -i`: each connection's bytes and round trip.
    pub info: bool,
    /// `top`: each connection's rates, between two readings.
    pub rates: bool,
}

/// The columns of `shape`, in order. What may go on a narrow terminal
/// goes lowest `Drop` first: the service, the user, the unit, then the
/// counters; an address, a state or a PID never.
pub fn columns(shape: Shape) -> Vec<Column> {
    let mut columns = vec![
        Column::new("PROTO", 5),
        Column::new("LOCAL", 21),
        Column::new("REMOTE", 21),
        Column::new("STATE", 11),
    ];
    if shape.rates {
        columns.push(Column::new("RX/s", 10).fit(Fit::Drop(5)));
        columns.push(Column::new("TX/s", 10).fit(Fit::Drop(6)));
    }
    if shape.info {
        columns.push(Column::new("SENT", 10).fit(Fit::Drop(6)));
        columns.push(Column::new("RECV", 10).fit(Fit::Drop(5)));
        columns.push(Column::new("RTT", 9).fit(Fit::Drop(4)));
    }
    columns.extend([
        Column::new("SERVICE", 10).fit(Fit::Drop(1)),
        Column::new("USER", 8).fit(Fit::Drop(2)),
        Column::new("PID", 7),
    ]);
    if shape.wide {
        columns.extend([
            Column::new("PROCESS", 15).fit(Fit::Truncate),
            Column::new("UNIT", 20).fit(Fit::Drop(3)),
            Column::new("CONTAINER", 0).fit(Fit::Truncate),
        ]);
    } else {
        columns.push(Column::new("PROCESS", 0).fit(Fit::Truncate));
    }
    columns
}

/// A socket as a row of `shape`'s columns; `rates` are its (received,
/// sent) bytes per second, where known.
pub fn row(record: &SocketRecord, shape: Shape, rates: Option<(f64, f64)>) -> Vec<Cell> {
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
    ];
    if shape.rates {
        let rate = |r: Option<f64>| Cell::new(r.map(words::rate).unwrap_or_default());
        cells.push(rate(rates.map(|r| r.0)));
        cells.push(rate(rates.map(|r| r.1)));
    }
    if shape.info {
        let t = record.traffic;
        cells.push(Cell::new(
            t.map(|t| words::bytes(t.bytes_sent)).unwrap_or_default(),
        ));
        cells.push(Cell::new(
            t.map(|t| words::bytes(t.bytes_received))
                .unwrap_or_default(),
        ));
        cells.push(Cell::new(t.map(|t| words::rtt(t.rtt)).unwrap_or_default()));
    }
    cells.extend([
        Cell::new(record.service.clone().unwrap_or_default()),
        Cell::new(record.user.clone().unwrap_or_default()),
        Cell::new(pid),
        Cell::styled(record.process.clone().unwrap_or_default(), Style::Bold),
    ]);
    if shape.wide {
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
