//! Process names and user names for the PIDs and UIDs in a socket table.

use std::collections::HashMap;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// Names of the given processes, reading only those PIDs. A process that
/// exited since the scan simply has no name.
pub fn names(pids: &[u32]) -> HashMap<u32, String> {
    if pids.is_empty() {
        return HashMap::new();
    }
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

/// Caches UID → user name lookups for one run.
#[derive(Debug, Default)]
pub struct Users {
    cache: HashMap<u32, Option<String>>,
}

impl Users {
    pub fn name(&mut self, uid: u32) -> Option<&str> {
        self.cache
            .entry(uid)
            .or_insert_with(|| crate::platform::user_name(uid))
            .as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_this_process() {
        let me = std::process::id();
        let names = names(&[me]);
        assert!(names.get(&me).is_some_and(|n| !n.is_empty()), "{names:?}");
    }

    #[test]
    fn a_vanished_pid_has_no_name() {
        assert!(names(&[u32::MAX - 1]).is_empty());
    }

    #[cfg(unix)] // user names come from NSS on Unix only
    #[test]
    fn root_is_uid_0() {
        assert_eq!(Users::default().name(0), Some("root"));
        assert_eq!(Users::default().name(u32::MAX - 7), None);
    }
}
