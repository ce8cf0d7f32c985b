//! Process names from sysinfo, where the OS door reads no `/proc`.

use std::collections::HashMap;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// Names of the given processes, reading only those PIDs. A process that
/// exited since the scan simply has no name.
pub fn names(pids: &[u32]) -> HashMap<u32, String> {
    let Ok(mut system) = System::new() else {
        return HashMap::new();
    };
    let pids: Vec<Pid> = pids.iter().map(|&p| Pid::from_u32(p)).collect();
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&pids),
        false,
        ProcessRefreshKind::nothing(),
    );
    pids.iter()
        .filter_map(|pid| {
            let process = system.process(*pid)?;
            Some((pid.as_u32(), process.name().to_string_lossy().into_owned()))
        })
        .collect()
}
