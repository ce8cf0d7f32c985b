//! Processes as portctl names them: a PID, its name and when it started
//! (`Proc`), the user names of a table's owners, and the chain of parents
//! of one process.

use crate::platform::{self, ProcFacts};
use serde::Serialize;
use std::collections::HashMap;
use std::time::SystemTime;

/// One process: its PID, its name where known, and when it started. The
/// start (the OS's exact token: clock ticks since boot on Linux) tells
/// the process apart from a later one given the same PID, so every step
/// that signals compares it (`platform::send_signal`). A parent in a
/// chain, a listener to stop and a signal's target are all a `Proc`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Proc {
    pub pid: u32,
    pub process: Option<String>,
    #[serde(skip)]
    pub start: Option<u64>,
}

impl Proc {
    /// `pid` as it is now: its name and start read at once.
    pub fn now(pid: u32, process: Option<String>) -> Proc {
        Proc {
            pid,
            process,
            start: platform::process_start(pid),
        }
    }

    /// Whether `other` is this very process: the same PID and the same
    /// start. Where the OS gives no starts the PID is all there is; a
    /// start known for one and not the other is not a match.
    pub fn same(&self, other: &Proc) -> bool {
        self.pid == other.pid
            && match (self.start, other.start) {
                (Some(a), Some(b)) => a == b,
                (None, None) => true,
                _ => false,
            }
    }
}

/// Names of the given processes, reading only those PIDs. A process that
/// exited since the scan simply has no name.
pub fn names(pids: &[u32]) -> HashMap<u32, String> {
    if pids.is_empty() {
        return HashMap::new();
    }
    platform::process_names(pids)
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
            .or_insert_with(|| platform::user_name(uid).unwrap_or_else(|| uid.to_string()))
    }

    /// Forgets the users of processes `keep` says no.
    pub fn keep_only(&mut self, keep: impl Fn(u32) -> bool) {
        self.by_pid.retain(|&pid, _| keep(pid));
    }

    /// The user a process runs as, where the OS says.
    pub fn of_process(&mut self, pid: u32) -> Option<&str> {
        self.by_pid
            .entry(pid)
            .or_insert_with(|| platform::process_user(pid))
            .as_deref()
    }
}

/// The chain of parents of `pid`, nearest first, up to PID 1; a parent
/// that vanished ends the chain quietly. Bounded, in case of a loop.
pub fn parents(facts: &ProcFacts) -> Vec<Proc> {
    let mut chain: Vec<(u32, Option<u64>)> = Vec::new();
    let mut next = facts.ppid;
    let mut child_started = facts.started;
    while let Some(pid) = next.filter(|_| chain.len() < 64) {
        let up = platform::process_facts(pid);
        // A parent younger than its child is another process given the PID
        // after the parent exited (Windows keeps a dead parent's PID, and
        // reuses PIDs): naming it would be wrong, so the chain ends.
        if up
            .as_ref()
            .is_some_and(|f| started_after(f.started, child_started))
        {
            break;
        }
        chain.push((pid, up.as_ref().and_then(|f| f.start)));
        child_started = up.as_ref().and_then(|f| f.started);
        next = up
            .and_then(|f| f.ppid)
            .filter(|&p| p != pid && !chain.iter().any(|&(c, _)| c == p));
    }
    let pids: Vec<u32> = chain.iter().map(|&(pid, _)| pid).collect();
    let names = names(&pids);
    chain
        .into_iter()
        .map(|(pid, start)| Proc {
            pid,
            process: names.get(&pid).cloned(),
            start,
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

    #[test]
    fn this_process_has_its_parent_first() {
        let Some(facts) = platform::process_facts(std::process::id()) else {
            return; // no process facts on this OS (see platform::absent)
        };
        let chain = parents(&facts);
        // The parent comes first where the OS shows it (Wine runs a test
        // under a Unix process it does not show as a Windows one).
        match facts.ppid.and_then(platform::process_facts) {
            Some(_) => assert_eq!(chain.first().map(|p| p.pid), facts.ppid),
            None => assert!(chain.is_empty(), "{chain:?}"),
        }
    }

    #[test]
    fn a_parent_younger_than_its_child_is_a_reused_pid() {
        if platform::process_facts(1).is_none() {
            return; // no process facts on this OS (see platform::absent)
        }
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

    #[test]
    fn a_process_is_its_pid_and_its_start() {
        let me = Proc::now(std::process::id(), None);
        assert!(me.same(&Proc::now(std::process::id(), Some("x".into()))));
        let reused = Proc {
            start: me.start.map(|s| s + 1),
            ..me.clone()
        };
        if me.start.is_some() {
            assert!(!me.same(&reused), "a later start is another process");
            let unknown = Proc {
                start: None,
                ..me.clone()
            };
            assert!(
                !me.same(&unknown) && !unknown.same(&me),
                "a start known on one side only is no match"
            );
        }
        assert!(!me.same(&Proc {
            pid: me.pid + 1,
            ..me.clone()
        }));
    }

    #[test]
    fn users_are_named_or_numbered() {
        let mut users = Users::default();
        assert_eq!(users.name(u32::MAX - 7), "4294967288");
    }
}
