//! Process names and user names for the PIDs and UIDs in a socket table,
//! and the longer story of one process: command line, start, parents.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::SystemTime;
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

/// Caches user name lookups for one run: by UID where the socket table
/// has one, else by owning process (Windows).
#[derive(Debug, Default)]
pub struct Users {
    cache: HashMap<u32, String>,
    by_pid: HashMap<u32, Option<String>>,
}

impl Users {
    /// The user's name, or the uid itself where no name is known (no
    /// `/etc/passwd` in a bare container, an unknown uid).
    pub fn name(&mut self, uid: u32) -> &str {
        self.cache
            .entry(uid)
            .or_insert_with(|| crate::platform::user_name(uid).unwrap_or_else(|| uid.to_string()))
    }

    /// The user a process runs as, where the OS says.
    pub fn of_process(&mut self, pid: u32) -> Option<&str> {
        self.by_pid
            .entry(pid)
            .or_insert_with(|| crate::platform::process_user(pid))
            .as_deref()
    }
}

/// What the OS says about one process.
#[derive(Debug, Clone, Default)]
pub struct ProcFacts {
    pub ppid: Option<u32>,
    pub cmdline: Vec<String>,
    pub started: Option<SystemTime>,
    /// The text of its cgroup file (empty where there is none).
    pub cgroup: String,
}

/// A parent in a process's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parent {
    pub pid: u32,
    pub process: Option<String>,
}

/// The chain of parents of `pid`, nearest first, up to PID 1; a parent
/// that vanished ends the chain quietly. Bounded, in case of a loop.
pub fn parents(facts: &ProcFacts) -> Vec<Parent> {
    let mut chain = Vec::new();
    let mut next = facts.ppid;
    while let Some(pid) = next.filter(|_| chain.len() < 64) {
        let up = crate::platform::process_facts(pid);
        chain.push(pid);
        next = up
            .and_then(|f| f.ppid)
            .filter(|&p| p != pid && !chain.contains(&p));
    }
    let names = names(&chain);
    chain
        .into_iter()
        .map(|pid| Parent {
            pid,
            process: names.get(&pid).cloned(),
        })
        .collect()
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

    #[cfg(target_os = "linux")] // process facts are read from /proc
    #[test]
    fn this_process_has_parents_up_to_pid_1() {
        let facts = crate::platform::process_facts(std::process::id()).unwrap();
        let chain = parents(&facts);
        assert!(!chain.is_empty());
        assert_eq!(chain.first().map(|p| p.pid), facts.ppid);
    }

    #[cfg(unix)] // user names come from NSS on Unix only
    #[test]
    fn root_is_uid_0() {
        assert_eq!(Users::default().name(0), "root");
        assert_eq!(Users::default().name(u32::MAX - 7), "4294967288");
    }
}
