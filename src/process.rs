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
            .or_insert_with(|| lookup_user(uid))
            .as_deref()
    }
}

/// `getpwuid_r`, which asks NSS (files, LDAP, systemd-userdb) like `ls -l`
/// does, rather than parsing /etc/passwd.
#[cfg(unix)]
fn lookup_user(uid: u32) -> Option<String> {
    let mut buffer = vec![0u8; 1024];
    loop {
        // SAFETY: zeroed `passwd` is a valid out-parameter; the buffer
        // outlives the call and its length is passed with it.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut pwd,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buffer.len() < 1 << 20 {
            buffer.resize(buffer.len() * 4, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points to a NUL-terminated string in
        // `buffer`, which is still alive.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

#[cfg(not(unix))]
fn lookup_user(_uid: u32) -> Option<String> {
    None
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

    #[cfg(unix)]
    #[test]
    fn root_is_uid_0() {
        assert_eq!(Users::default().name(0), Some("root"));
        assert_eq!(Users::default().name(u32::MAX - 7), None);
    }
}
