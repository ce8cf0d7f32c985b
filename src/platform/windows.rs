//! Windows: the table from netstat2 (GetExtendedTcpTable and friends),
//! process stories from sysinfo, and Windows' own rules for binding and
//! stopping processes:
//!
//! - servers and the bind probe use SO_EXCLUSIVEADDRUSE, never
//!   SO_REUSEADDR, which on Windows lets a bind land on top of another
//!   socket of the same user and would call a held port free;
//! - WSAEACCES from a bind means an exclusive holder or an excluded port
//!   range (Hyper-V, WSL, Docker), never a missing privilege;
//! - there is no SIGTERM: the polite step closes the process's windows
//!   (WM_CLOSE, as `taskkill` without `/F` does), the forced one is
//!   TerminateProcess.

pub use super::absent::{
    cgroup_owned_by_root, current_uid, exec_with_sockets, executable, listeners_elsewhere,
    local_stream, path_owner, port_settings, process_cgroup, process_uid, raise_fd_limit,
    read_own_file, tcp_changes, user_name, LocalStream, TcpChanges, HANDS_OVER_SOCKETS,
};
pub use super::ctrl_c::{stdout_width, stop_self, JobSignals, Shutdown};
pub use super::netstat2::{find_owners, read_table, read_table_with_owners};
pub use super::windows_rules::{
    holder_note, is_system_process, signal_name, state_name, system_processes,
};

use crate::model::{Proto, Signal};
use crate::platform::{Delivery, ProcFacts, ServerBind, Unseen};
use std::collections::HashMap;
use std::io;
use std::os::windows::io::AsRawSocket;
use std::time::{Duration, UNIX_EPOCH};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};
use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_INVALID_PARAMETER, FILETIME, HWND, LPARAM,
};
use windows_sys::Win32::Networking::WinSock::{
    setsockopt, SOCKET, SOL_SOCKET, SO_EXCLUSIVEADDRUSE,
};
use windows_sys::Win32::Security::{
    GetLengthSid, GetTokenInformation, LookupAccountSidW, TokenUser, PSID, SID_NAME_USE,
    TOKEN_QUERY, TOKEN_USER,
};
use windows_sys::Win32::System::Threading::{
    GetProcessTimes, OpenProcess, OpenProcessToken, TerminateProcess,
    PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_TERMINATE,
};
use windows_sys::Win32::UI::WindowsAndMessaging::{
    EnumWindows, GetWindowThreadProcessId, IsWindowVisible, PostMessageW, WM_CLOSE,
};

/// WSAEAFNOSUPPORT.
pub fn family_unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(10047)
}

/// Windows sockets take IPv6 only unless told otherwise.
pub fn ipv6_only_by_default() -> bool {
    true
}

/// SO_EXCLUSIVEADDRUSE, as Microsoft asks servers to bind: no other
/// socket may share the port, and the bind fails if one already does.
pub fn prepare_server(socket: &socket2::Socket, _proto: Proto) -> io::Result<()> {
    let on: i32 = 1;
    // SAFETY: a valid socket handle, and an option value that lives for
    // the call with its length passed with it.
    let rc = unsafe {
        setsockopt(
            socket.as_raw_socket() as SOCKET,
            SOL_SOCKET,
            SO_EXCLUSIVEADDRUSE,
            (&on as *const i32).cast(),
            std::mem::size_of::<i32>() as i32,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Servers bind exclusively here: see `prepare_server`.
pub fn server_bind() -> ServerBind {
    ServerBind::Exclusive
}

/// Windows has no privileged ports: any user may bind 80.
pub fn privileged_ports() -> bool {
    false
}

/// The polite step closes the process's top-level windows; a process
/// without any (most servers) cannot be asked, and says so. The forced
/// step is TerminateProcess. Only the process that started at `start` is
/// reached: an open handle keeps Windows from giving its PID to another
/// process, so the check and the step name the same one. A process gone,
/// or a PID now another's, is `Gone`.
pub fn send_signal(pid: u32, start: Option<u64>, signal: Signal) -> io::Result<Delivery> {
    let access = match signal {
        Signal::Term => PROCESS_QUERY_LIMITED_INFORMATION,
        Signal::Kill => PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_TERMINATE,
    };
    // SAFETY: OpenProcess with a plain PID; the handle is closed below.
    let handle = unsafe { OpenProcess(access, 0, pid) };
    if handle.is_null() {
        let e = io::Error::last_os_error();
        // No such process any more.
        return if e.raw_os_error() == Some(ERROR_INVALID_PARAMETER as i32) {
            Ok(Delivery::Gone)
        } else {
            Err(e)
        };
    }
    let result = if start.is_some() && creation_time(handle) != start {
        Ok(Delivery::Gone)
    } else {
        match signal {
            Signal::Term => close_windows(pid).map(|()| Delivery::Sent),
            Signal::Kill => terminate(handle).map(|()| Delivery::Sent),
        }
    };
    // SAFETY: the handle is ours and closed once.
    unsafe { CloseHandle(handle) };
    result
}

/// When a process started, as Windows keeps it (100 ns since 1601):
/// with the PID, it names one process.
pub fn process_start(pid: u32) -> Option<u64> {
    // SAFETY: OpenProcess with a plain PID; the handle is closed below.
    let handle = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if handle.is_null() {
        return None;
    }
    let start = creation_time(handle);
    // SAFETY: the handle is ours and closed once.
    unsafe { CloseHandle(handle) };
    start
}

fn creation_time(handle: windows_sys::Win32::Foundation::HANDLE) -> Option<u64> {
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
    // SAFETY: a process handle opened with query rights, and four valid
    // out pointers.
    let ok = unsafe { GetProcessTimes(handle, &mut created, &mut exited, &mut kernel, &mut user) };
    (ok != 0).then(|| u64::from(created.dwHighDateTime) << 32 | u64::from(created.dwLowDateTime))
}

/// The names of `pids`, from sysinfo.
pub fn process_names(pids: &[u32]) -> HashMap<u32, String> {
    super::sysinfo_names::names(pids)
}

fn close_windows(pid: u32) -> io::Result<()> {
    struct Search {
        pid: u32,
        closed: usize,
        /// The last refusal (UIPI: an elevated process).
        refused: Option<io::Error>,
    }
    unsafe extern "system" fn each(window: HWND, state: LPARAM) -> i32 {
        // SAFETY: `state` is the `Search` passed to EnumWindows below,
        // alive and exclusively ours for the whole enumeration.
        let search = unsafe { &mut *(state as *mut Search) };
        let mut owner = 0u32;
        // SAFETY: a window handle from EnumWindows and a valid out pointer.
        unsafe { GetWindowThreadProcessId(window, &mut owner) };
        // Hidden windows (IME, message-only helpers) are not what a user
        // closes; closing them asks nothing of the process.
        // SAFETY: querying a window handle from EnumWindows.
        if owner != search.pid || unsafe { IsWindowVisible(window) } == 0 {
            return 1;
        }
        // SAFETY: posting to a window handle; one that vanished makes the
        // call fail harmlessly.
        if unsafe { PostMessageW(window, WM_CLOSE, 0, 0) } != 0 {
            search.closed += 1;
        } else {
            search.refused = Some(io::Error::last_os_error());
        }
        1
    }
    let mut search = Search {
        pid,
        closed: 0,
        refused: None,
    };
    // SAFETY: the callback only touches `search`, which outlives the call.
    unsafe { EnumWindows(Some(each), &mut search as *mut Search as LPARAM) };
    match (search.closed, search.refused) {
        (0, Some(refused)) => Err(refused),
        (0, None) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "it has no window to close, and Windows has no SIGTERM: --force ends it with TerminateProcess",
        )),
        _ => Ok(()),
    }
}

fn terminate(handle: windows_sys::Win32::Foundation::HANDLE) -> io::Result<()> {
    // SAFETY: a handle opened with PROCESS_TERMINATE.
    if unsafe { TerminateProcess(handle, 1) } != 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Windows reports every socket's PID, whoever runs portctl: a socket
/// without one belongs to no process, and elevation would not change it.
pub fn unseen_owner() -> Unseen {
    Unseen::NoProcess
}

/// One process's command line, start and parent, from sysinfo.
pub fn process_facts(pid: u32) -> Option<ProcFacts> {
    let mut system = System::new().ok()?;
    let id = Pid::from_u32(pid);
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[id]),
        false,
        ProcessRefreshKind::nothing().with_cmd(UpdateKind::Always),
    );
    let process = system.process(id)?;
    Some(ProcFacts {
        ppid: process.parent().map(Pid::as_u32),
        cmdline: process
            .cmd()
            .iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect(),
        // 0 when Windows would not open the process (another user's
        // service, a protected process): unknown, not 1970.
        started: (process.start_time() != 0)
            .then(|| UNIX_EPOCH + Duration::from_secs(process.start_time())),
        start: process_start(pid),
    })
}

pub fn process_cmdline(pid: u32) -> Option<Vec<String>> {
    process_facts(pid).map(|f| f.cmdline)
}

/// The account a process runs as, `DOMAIN\user` as Task Manager shows
/// it (`NT AUTHORITY\SYSTEM` for services). The socket table has no
/// user; None where Windows will not open the process (another user's,
/// without elevation) or it has gone.
pub fn process_user(pid: u32) -> Option<String> {
    // SAFETY: OpenProcess with a plain PID; the handle is closed below.
    let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if process.is_null() {
        return None;
    }
    let mut token = std::ptr::null_mut();
    // SAFETY: a process handle opened above and a valid out pointer.
    let opened = unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut token) } != 0;
    // SAFETY: the handle is ours and closed once.
    unsafe { CloseHandle(process) };
    if !opened {
        return None;
    }
    let name = token_user(token);
    // SAFETY: the token handle is ours and closed once.
    unsafe { CloseHandle(token) };
    name
}

/// The user of an open token, looked up by its SID.
fn token_user(token: windows_sys::Win32::Foundation::HANDLE) -> Option<String> {
    // TOKEN_USER is a pointer and the SID it points to, in one buffer;
    // u64s keep the buffer aligned for the pointer.
    let mut buffer = [0u64; 64];
    let mut needed = 0u32;
    // SAFETY: the buffer outlives the call and its length in bytes is
    // passed with it; Windows writes at most that much.
    let ok = unsafe {
        GetTokenInformation(
            token,
            TokenUser,
            buffer.as_mut_ptr().cast(),
            std::mem::size_of_val(&buffer) as u32,
            &mut needed,
        )
    };
    if ok == 0 {
        return None;
    }
    // SAFETY: on success the buffer starts with a TOKEN_USER whose SID
    // points into the same buffer, which is still alive.
    let sid = unsafe { (*buffer.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    // The SID's bytes name the account: the key to names already found.
    // Windows puts the SID inside the buffer; one that is not is looked up
    // without the cache.
    let start = (sid as usize).wrapping_sub(buffer.as_ptr() as usize);
    let Some(room) = std::mem::size_of_val(&buffer).checked_sub(start) else {
        return account_name(sid);
    };
    // SAFETY: a valid SID from the token, read within the buffer holding it.
    let key = unsafe {
        let len = (GetLengthSid(sid) as usize).min(room);
        std::slice::from_raw_parts(sid.cast::<u8>(), len).to_vec()
    };
    // A lookup may ask a domain controller: once per account per thread;
    // a failed one is asked again next time.
    thread_local! {
        static NAMES: std::cell::RefCell<HashMap<Vec<u8>, String>> =
            std::cell::RefCell::new(HashMap::new());
    }
    if let Some(known) = NAMES.with(|names| names.borrow().get(&key).cloned()) {
        return Some(known);
    }
    let name = account_name(sid)?;
    NAMES.with(|names| names.borrow_mut().insert(key, name.clone()));
    Some(name)
}

/// `DOMAIN\user` for a SID, as LookupAccountSidW names it.
fn account_name(sid: PSID) -> Option<String> {
    // Account and domain names are at most 256 and 255 characters.
    let mut name = [0u16; 260];
    let mut domain = [0u16; 260];
    let (mut name_len, mut domain_len) = (name.len() as u32, domain.len() as u32);
    let mut kind: SID_NAME_USE = 0;
    // SAFETY: a SID from the token, and buffers whose lengths in UTF-16
    // units are passed with them; Windows writes within them.
    let ok = unsafe {
        LookupAccountSidW(
            std::ptr::null(),
            sid,
            name.as_mut_ptr(),
            &mut name_len,
            domain.as_mut_ptr(),
            &mut domain_len,
            &mut kind,
        )
    };
    if ok == 0 {
        return None;
    }
    // On success the lengths exclude the terminating NUL; clamped anyway.
    let part = |units: &[u16], len: u32| {
        String::from_utf16_lossy(&units[..(len as usize).min(units.len())])
    };
    let (name, domain) = (part(&name, name_len), part(&domain, domain_len));
    Some(if domain.is_empty() {
        name
    } else {
        format!("{domain}\\{name}")
    })
}

/// portctl's parent, which it never stops.
pub fn parent_pid() -> Option<u32> {
    process_facts(std::process::id())?.ppid
}

#[cfg(test)]
mod tests {
    use super::process_user;

    #[test]
    fn its_own_user_is_named() {
        let user = process_user(std::process::id()).expect("the user of this process");
        assert!(!user.is_empty() && !user.ends_with('\\'), "{user:?}");
    }

    #[test]
    fn a_process_that_is_gone_has_no_user() {
        // PIDs are multiples of 4 on Windows: this one never exists.
        assert_eq!(process_user(u32::MAX - 2), None);
    }
}
