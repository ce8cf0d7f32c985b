//! Windows' rules that need no Windows to state: what PIDs 0 and 4 are,
//! how `netstat -ano` names states
//! and what `kill`'s steps are called there. Compiled on every OS for its
//! tests, so the rules are checked where Wine cannot show them (under
//! Wine every socket's owner is PID 0).

use crate::model::{Signal, TcpState};

/// The System Idle Process: the PID Windows gives sockets that have no
/// owner (TIME_WAIT; every socket under Wine). The table reader drops it.
pub const NO_PROCESS: u32 = 0;
/// The System process: the kernel, and the HTTP server inside it
/// (http.sys) that serves IIS, WinRM and any program using HTTP.SYS.
pub const SYSTEM: u32 = 4;

/// Processes Windows cannot run without, which listen on ports of their
/// own (RPC on 135, the 49664-49669 range): ending one forces a reboot or
/// a bug check. svchost.exe hosts services, which are stopped as such.
const CRITICAL: [&str; 8] = [
    "smss.exe",
    "csrss.exe",
    "wininit.exe",
    "winlogon.exe",
    "services.exe",
    "lsass.exe",
    "lsaiso.exe",
    "svchost.exe",
];

/// The processes `kill` never stops: PID 0 stands for sockets without a
/// process, PID 4 is the kernel, and the critical ones by name.
pub fn is_system_process(pid: u32, name: Option<&str>) -> bool {
    pid == NO_PROCESS
        || pid == SYSTEM
        || name.is_some_and(|n| CRITICAL.iter().any(|c| c.eq_ignore_ascii_case(n)))
}

/// How `kill`'s refusal names them.
pub fn system_processes() -> &'static str {
    "PID 0, PID 4, the processes Windows cannot run without (lsass.exe, services.exe, svchost.exe and the like: stop a service with `net stop NAME` instead)"
}

/// What a port held by `pid` needs said beyond the holder's name.
pub fn holder_note(pid: u32) -> Option<&'static str> {
    (pid == SYSTEM).then_some(
        "PID 4 (System) holds it for http.sys, the kernel's HTTP server, on behalf of a program or service: `netsh http show servicestate` names it, `netsh http show urlacl` lists the URL reservations",
    )
}

/// `kill`'s two steps, as Windows names them.
pub fn signal_name(signal: Signal) -> &'static str {
    match signal {
        Signal::Term => "WM_CLOSE",
        Signal::Kill => "TerminateProcess",
    }
}

/// State names as `netstat -ano` prints them.
pub fn state_name(state: TcpState) -> &'static str {
    match state {
        TcpState::Listen => "LISTENING",
        TcpState::SynRecv => "SYN_RECEIVED",
        TcpState::FinWait1 => "FIN_WAIT_1",
        TcpState::FinWait2 => "FIN_WAIT_2",
        TcpState::Close => "CLOSED",
        other => other.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_4_is_the_kernels_http_server() {
        assert!(holder_note(4)
            .unwrap()
            .contains("netsh http show servicestate"));
        assert!(holder_note(4).unwrap().contains("netsh http show urlacl"));
        assert_eq!(holder_note(1234), None);
    }

    #[test]
    fn system_processes_are_never_stopped() {
        assert!(is_system_process(0, None));
        assert!(is_system_process(4, Some("System")));
        assert!(is_system_process(712, Some("lsass.exe")));
        assert!(is_system_process(1044, Some("SVCHOST.EXE")));
        assert!(!is_system_process(1, None));
        assert!(!is_system_process(8200, Some("node.exe")));
        assert!(!is_system_process(8200, Some("lsass.exe.evil")));
        assert!(system_processes().contains("PID 4"));
        assert!(system_processes().contains("net stop"));
    }

    #[test]
    fn names_as_windows_users_know_them() {
        assert_eq!(state_name(TcpState::Listen), "LISTENING");
        assert_eq!(state_name(TcpState::TimeWait), "TIME_WAIT");
        assert_eq!(state_name(TcpState::FinWait2), "FIN_WAIT_2");
        assert_eq!(signal_name(Signal::Term), "WM_CLOSE");
        assert_eq!(signal_name(Signal::Kill), "TerminateProcess");
    }
}
