//! Process names and user names for the PIDs and UIDs in a socket table,
//! and the longer story of one process: command line, start, parents.

use crate::platform::ProcFacts;
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

    /// Forgets the users of processes `keep` says no.
    pub fn keep_only(&mut self, keep: impl Fn(u32) -> bool) {
        self.by_pid.retain(|&pid, _| keep(pid));
    }

    /// The user a process runs as, where the OS says.
    pub fn of_process(&mut self, pid: u32) -> Option<&str> {
        self.by_pid
            .entry(pid)
            .or_insert_with(|| crate::platform::process_user(pid))
            .as_deref()
    }
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
    let mut child_started = facts.started;
    while let Some(pid) = next.filter(|_| chain.len() < 64) {
        let up = crate::platform::process_facts(pid);
        // A parent younger than its child is another process given the PID
        // after the parent exited (Windows keeps a dead parent's PID, and
        // reuses PIDs): naming it would be wrong, so the chain ends.
        if up
            .as_ref()
            .is_some_and(|f| started_after(f.started, child_started))
        {
            break;
        }
        chain.push(pid);
        child_started = up.as_ref().and_then(|f| f.started);
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

/// Whether a would-be parent started after its child; unknown starts
/// give it the benefit of the doubt.
fn started_after(parent: Option<SystemTime>, child: Option<SystemTime>) -> bool {
    matches!((parent, child), (Some(p), Some(c)) if p > c)
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

    #[cfg(target_os = "linux")] // process facts are read from /proc
    #[test]
    fn a_parent_younger_than_its_child_is_a_reused_pid() {
        // A child said to have started in 1970, whose parent is PID 1:
        // PID 1 started later, so it cannot be that parent.
        let orphan = ProcFacts {
            ppid: Some(1),
            started: Some(std::time::UNIX_EPOCH),
            ..ProcFacts::default()
        };
        assert!(parents(&orphan).is_empty());
        let now = ProcFacts {
            started: Some(SystemTime::now()),
            ..orphan
        };
        assert_eq!(parents(&now).first().map(|p| p.pid), Some(1));
    }

    #[test]
    fn unknown_starts_keep_the_parent() {
        let (early, late) = (Some(std::time::UNIX_EPOCH), Some(SystemTime::now()));
        assert!(started_after(late, early));
        assert!(!started_after(early, late));
        assert!(!started_after(early, early));
        assert!(!started_after(None, early) && !started_after(late, None));
    }

    #[cfg(unix)] // user names come from NSS on Unix only
    #[test]
    fn root_is_uid_0() {
        assert_eq!(Users::default().name(0), "root");
        assert_eq!(Users::default().name(u32::MAX - 7), "4294967288");
    }
}
