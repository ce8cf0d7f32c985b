//! The kernel's own record of TCP state changes: the tracepoint
//! `sock:inet_sock_set_state` (Linux 4.16+), read with `perf_event_open`
//! into one mmap ring per CPU. No compiler, no BPF verifier, and nothing
//! stays enabled once the descriptors close (however portctl ends).
//!
//! The tracepoint's field offsets come from its `format` file, never from
//! constants; the records are parsed from their bytes. With each change
//! the rings also carry the kernel's COMM and EXIT records, so a name can
//! be kept as the kernel knew it at the moment, and LOST records, counted.

use crate::model::TcpState;
use crate::platform::{KernelRecord, TcpChange, TraceError};
use perf_event_open_sys::bindings as perf;
use rustix::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Where tracefs may be mounted.
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
const EVENT: &str = "events/sock/inet_sock_set_state";

/// Data pages per CPU ring at most (plus one for its header): 2 MiB with
/// 4 KiB pages, some 20,000 records, read every 100 ms or when an eighth
/// fills. Fewer on a machine with many CPUs (`ring_pages`).
const RING_PAGES: usize = 512;
/// The fewest data pages per ring.
const RING_PAGES_MIN: usize = 16;
/// All rings together stay within this many pages (64 MiB with 4 KiB
/// pages): memory the kernel pins for as long as the trace runs.
const RINGS_TOTAL_PAGES: usize = 16 * 1024;

/// Data pages per ring for `cpus` CPUs: a power of two (as perf wants),
/// all rings within `RINGS_TOTAL_PAGES`.
fn ring_pages(cpus: usize) -> usize {
    let share = RINGS_TOTAL_PAGES / cpus.max(1);
    let power = if share == 0 { 1 } else { 1 << share.ilog2() };
    power.clamp(RING_PAGES_MIN, RING_PAGES)
}

/// perf's PERF_FORMAT_LOST (Linux 6.0): a read of the event also says how
/// many of its records were lost.
const PERF_FORMAT_LOST: u64 = 16;

/// AF_INET, AF_INET6, IPPROTO_TCP as the tracepoint writes them.
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u16 = 6;

/// Where the fields the changes need sit in a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    skaddr: Field,
    oldstate: Field,
    newstate: Field,
    sport: Field,
    dport: Field,
    family: Field,
    protocol: Field,
    saddr: Field,
    daddr: Field,
    saddr_v6: Field,
    daddr_v6: Field,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    offset: usize,
    size: usize,
}

/// Reads a tracepoint's `format` file: each `field:TYPE NAME;
/// offset:N; size:N; ...` line. A field missing or of an unexpected size
/// is an error: this kernel writes another record than portctl reads.
pub fn parse_format(text: &str) -> Result<Layout, String> {
    let mut fields: HashMap<String, Field> = HashMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("field:") else {
            continue;
        };
        let mut parts = rest.split(';').map(str::trim);
        let declaration = parts.next().unwrap_or_default();
        let name = declaration
            .rsplit(|c: char| c.is_whitespace() || c == '*')
            .next()
            .unwrap_or_default();
        let name = name.split('[').next().unwrap_or_default();
        let number = |key: &str| -> Option<usize> {
            parts
                .clone()
                .find_map(|p| p.strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
        };
        if let (Some(offset), Some(size)) = (number("offset:"), number("size:")) {
            fields.insert(name.to_string(), Field { offset, size });
        }
    }
    let field = |name: &str, sizes: &[usize]| -> Result<Field, String> {
        let f = *fields.get(name).ok_or_else(|| format!("no field {name}"))?;
        if sizes.contains(&f.size) {
            Ok(f)
        } else {
            Err(format!("{name} is {} bytes", f.size))
        }
    };
    Ok(Layout {
        skaddr: field("skaddr", &[4, 8])?,
        oldstate: field("oldstate", &[4])?,
        newstate: field("newstate", &[4])?,
        sport: field("sport", &[2])?,
        dport: field("dport", &[2])?,
        family: field("family", &[2])?,
        protocol: field("protocol", &[2])?,
        saddr: field("saddr", &[4])?,
        daddr: field("daddr", &[4])?,
        saddr_v6: field("saddr_v6", &[16])?,
        daddr_v6: field("daddr_v6", &[16])?,
    })
}

impl Layout {
    fn bytes<'a>(&self, raw: &'a [u8], f: Field) -> Option<&'a [u8]> {
        raw.get(f.offset..f.offset.checked_add(f.size)?)
    }

    fn number(&self, raw: &[u8], f: Field) -> Option<u64> {
        let b = self.bytes(raw, f)?;
        Some(match b.len() {
            2 => u64::from(u16::from_ne_bytes(b.try_into().ok()?)),
            4 => u64::from(u32::from_ne_bytes(b.try_into().ok()?)),
            8 => u64::from_ne_bytes(b.try_into().ok()?),
            _ => return None,
        })
    }

    /// One TCP change from the tracepoint's raw bytes; `None` for another
    /// protocol, an unknown family or state, or a record cut short.
    pub fn change(&self, raw: &[u8]) -> Option<RawChange> {
        if self.number(raw, self.protocol)? != u64::from(IPPROTO_TCP) {
            return None;
        }
        let state = |f| -> Option<Option<TcpState>> {
            let code = u8::try_from(self.number(raw, f)?).ok()?;
            Some(kernel_state(code))
        };
        let (old, new) = (state(self.oldstate)?, state(self.newstate)?);
        let (local, remote) = match u16::try_from(self.number(raw, self.family)?).ok()? {
            AF_INET => {
                let v4 = |f| -> Option<IpAddr> {
                    let b: [u8; 4] = self.bytes(raw, f)?.try_into().ok()?;
                    Some(IpAddr::V4(Ipv4Addr::from(b)))
                };
                (v4(self.saddr)?, v4(self.daddr)?)
            }
            AF_INET6 => {
                let v6 = |f| -> Option<IpAddr> {
                    let b: [u8; 16] = self.bytes(raw, f)?.try_into().ok()?;
                    Some(IpAddr::V6(Ipv6Addr::from(b)))
                };
                (v6(self.saddr_v6)?, v6(self.daddr_v6)?)
            }
            _ => return None,
        };
        // The ports are in host order here (the tracepoint converts them).
        let sport = u16::try_from(self.number(raw, self.sport)?).ok()?;
        let dport = u16::try_from(self.number(raw, self.dport)?).ok()?;
        Some(RawChange {
            socket: self.number(raw, self.skaddr)?,
            old,
            new,
            local: SocketAddr::new(local, sport),
            remote: SocketAddr::new(remote, dport),
        })
    }
}

/// What the tracepoint's own bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawChange {
    socket: u64,
    old: Option<TcpState>,
    new: Option<TcpState>,
    local: SocketAddr,
    remote: SocketAddr,
}

/// The kernel's TCP state numbers (include/net/tcp_states.h); `None` for
/// `TCP_CLOSE`'s neighbours portctl has no name for (NEW_SYN_RECV is a
/// request, reported as SYN_RECV; BOUND_INACTIVE as CLOSE).
fn kernel_state(code: u8) -> Option<TcpState> {
    Some(match code {
        1 => TcpState::Established,
        2 => TcpState::SynSent,
        3 | 12 => TcpState::SynRecv,
        4 => TcpState::FinWait1,
        5 => TcpState::FinWait2,
        6 => TcpState::TimeWait,
        7 | 13 => TcpState::Close,
        8 => TcpState::CloseWait,
        9 => TcpState::LastAck,
        10 => TcpState::Listen,
        11 => TcpState::Closing,
        _ => return None,
    })
}

/// The kernel's record of TCP state changes, one ring per CPU.
pub struct TcpChanges {
    rings: Vec<Ring>,
    layout: Layout,
    /// Wall-clock nanoseconds minus CLOCK_MONOTONIC nanoseconds: the
    /// records carry the latter.
    wall_offset: i128,
    /// A record that wraps the ring's end is copied here whole.
    scratch: Vec<u8>,
    /// The processes running when the record began, handed out first.
    running: Vec<KernelRecord>,
    /// Records too new to hand out yet (`HOLD_NS`).
    held: Vec<Parsed>,
    /// Every record stamped up to here (CLOCK_MONOTONIC) was handed out.
    handed_out_to: u64,
}

/// How long a record is held back before it is handed out: longer than
/// the kernel takes between stamping a record and publishing it.
const HOLD_NS: u64 = 5_000_000;
/// The most records held back at once.
const HELD_MAX: usize = 1 << 16;

/// CLOCK_MONOTONIC in nanoseconds, the records' clock.
fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0))
}

/// One CPU's event and its mapped ring.
struct Ring {
    fd: OwnedFd,
    /// Whether a read of `fd` says how many records were lost.
    counts_lost: bool,
    base: *mut u8,
    mapped: usize,
    /// The data area: after the header page, a power of two long.
    data_offset: usize,
    data_size: usize,
}

// SAFETY: the mapping belongs to the ring alone; only `&mut TcpChanges`
// reads it, so moving it to another thread moves the only user.
unsafe impl Send for Ring {}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `base` and `mapped` are the mapping made in `open_ring`,
        // unmapped once, here.
        let _ = unsafe { rustix::mm::munmap(self.base.cast(), self.mapped) };
    }
}

/// The tracepoint's id and format, from tracefs. tracefs is root's
/// alone on most systems: a user who may not read it may not trace.
fn tracepoint() -> Result<(u64, Layout), TraceError> {
    let (mut denied, mut mounted) = (false, false);
    for root in TRACEFS {
        let dir = Path::new(root).join(EVENT);
        match std::fs::read_to_string(dir.join("format")) {
            Ok(format) => {
                let id = std::fs::read_to_string(dir.join("id"))
                    .map_err(TraceError::Io)?
                    .trim()
                    .parse()
                    .map_err(|_| TraceError::Format("its id is not a number".into()))?;
                let layout = parse_format(&format).map_err(TraceError::Format)?;
                return Ok((id, layout));
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => denied = true,
            Err(_) => {
                let events = std::fs::metadata(Path::new(root).join("events"));
                denied |= events
                    .as_ref()
                    .is_err_and(|e| e.kind() == io::ErrorKind::PermissionDenied);
                mounted |= events.is_ok();
            }
        }
    }
    Err(if denied {
        TraceError::NotPermitted
    } else if mounted {
        TraceError::NoTracepoint
    } else {
        TraceError::NoTracefs
    })
}

/// The CPUs online now (`/sys/devices/system/cpu/online`: `0-3,6`).
fn online_cpus() -> Vec<i32> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (low, high) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(low), Ok(high)) = (low.parse::<i32>(), high.parse::<i32>()) {
            cpus.extend(low..=high.min(low.saturating_add(4096)));
        }
    }
    if cpus.is_empty() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        cpus.extend(0..i32::try_from(n).unwrap_or(1));
    }
    cpus
}

/// Opens the tracepoint on every CPU, in TCP only.
pub fn tcp_changes() -> Result<TcpChanges, TraceError> {
    let (id, layout) = tracepoint()?;
    let cpus = online_cpus();
    let pages = ring_pages(cpus.len());
    let rings = cpus
        .into_iter()
        .map(|cpu| open_ring(id, cpu, pages))
        .collect::<Result<Vec<_>, _>>()?;
    let now = |clock| {
        let t = rustix::time::clock_gettime(clock);
        i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
    };
    let wall_offset = now(rustix::time::ClockId::Realtime) - now(rustix::time::ClockId::Monotonic);
    Ok(TcpChanges {
        rings,
        layout,
        wall_offset,
        scratch: Vec::new(),
        // Read once the rings run: every later change is in them.
        running: running_processes(),
        held: Vec::new(),
        handed_out_to: 0,
    })
}

/// Every process running now, with its name and user: the record tells
/// only of processes that fork, exec or rename from here on.
fn running_processes() -> Vec<KernelRecord> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let name = super::proc::process_names(&[pid]).remove(&pid)?;
        Some(KernelRecord::Running {
            pid,
            name,
            uid: super::proc::process_uid(pid),
        })
    })
    .collect()
}

fn open_ring(id: u64, cpu: i32, data_pages: usize) -> Result<Ring, TraceError> {
    // Kernels before 6.0 refuse PERF_FORMAT_LOST: then only the LOST
    // records say what was dropped.
    match open_event(id, cpu, data_pages, PERF_FORMAT_LOST) {
        Err(TraceError::Io(e)) if e.raw_os_error() == Some(libc::EINVAL) => {
            open_event(id, cpu, data_pages, 0)
        }
        opened => opened,
    }
}

fn open_event(id: u64, cpu: i32, data_pages: usize, read_format: u64) -> Result<Ring, TraceError> {
    let mut attr = perf::perf_event_attr {
        type_: perf::PERF_TYPE_TRACEPOINT,
        size: u32::try_from(std::mem::size_of::<perf::perf_event_attr>()).unwrap_or(u32::MAX),
        config: id,
        sample_type: u64::from(
            perf::PERF_SAMPLE_TID | perf::PERF_SAMPLE_TIME | perf::PERF_SAMPLE_RAW,
        ),
        clockid: libc_clock_monotonic(),
        read_format,
        ..Default::default()
    };
    attr.sample_period = 1;
    // Wake the reader when an eighth of the ring is full; it also reads
    // at every poll timeout.
    attr.wakeup_watermark = u32::try_from(data_pages * page_size() / 8).unwrap_or(u32::MAX);
    attr.set_watermark(1);
    attr.set_disabled(1);
    attr.set_comm(1);
    attr.set_task(1);
    attr.set_sample_id_all(1);
    attr.set_use_clockid(1);
    // SAFETY: `attr` is a fully initialised perf_event_attr (zeroed, then
    // set field by field) and outlives the call; pid -1 and a CPU ask for
    // every process on that CPU; no group.
    let fd = unsafe {
        perf_event_open_sys::perf_event_open(
            &mut attr,
            -1,
            cpu,
            -1,
            libc::c_ulong::from(perf::PERF_FLAG_FD_CLOEXEC),
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EACCES | libc::EPERM) => TraceError::NotPermitted,
            Some(libc::ENOENT | libc::ENODEV | libc::EOPNOTSUPP) => TraceError::NoTracepoint,
            _ => TraceError::Io(e),
        });
    }
    // SAFETY: a descriptor perf_event_open just returned, owned from here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // Only TCP: SCTP and MPTCP changes never leave the kernel.
    let mut filter = *b"protocol == 6\0";
    // SAFETY: a NUL-terminated filter that outlives the call, on our event.
    unsafe { perf_event_open_sys::ioctls::SET_FILTER(fd.as_raw_fd(), filter.as_mut_ptr().cast()) };
    let pages = data_pages + 1;
    let mapped = pages * page_size();
    // SAFETY: a shared, readable and writable mapping of the event's ring,
    // as perf_event_open(2) describes; unmapped in Ring's Drop.
    let base = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            mapped,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            &fd,
            0,
        )
    }
    .map_err(|e| TraceError::Io(e.into()))?
    .cast::<u8>();
    let header = base.cast::<perf::perf_event_mmap_page>();
    // SAFETY: the first page of the mapping is the kernel's header.
    let (data_offset, data_size) = unsafe {
        let offset = usize::try_from((*header).data_offset).unwrap_or(0);
        let size = usize::try_from((*header).data_size).unwrap_or(0);
        // Kernels before 4.1 leave these 0: the data follows the header page.
        if size == 0 {
            (page_size(), data_pages * page_size())
        } else {
            (offset, size)
        }
    };
    let ring = Ring {
        fd,
        counts_lost: read_format & PERF_FORMAT_LOST != 0,
        base,
        mapped,
        data_offset,
        data_size,
    };
    // SAFETY: ENABLE on our own perf event.
    if unsafe { perf_event_open_sys::ioctls::ENABLE(ring.fd.as_raw_fd(), 0) } != 0 {
        return Err(TraceError::Io(io::Error::last_os_error()));
    }
    Ok(ring)
}

fn page_size() -> usize {
    rustix::param::page_size()
}

fn libc_clock_monotonic() -> i32 {
    libc::CLOCK_MONOTONIC
}

/// What one ring's records say, before they are put in time order.
struct Parsed {
    time: u64,
    record: KernelRecord,
}

impl TcpChanges {
    /// Waits up to `wait` for records, then reads every ring: the changes,
    /// names and exits in time order, and how many records the kernel
    /// dropped (a ring full).
    pub fn next_batch(&mut self, wait: Duration) -> io::Result<Vec<KernelRecord>> {
        if !self.running.is_empty() {
            return Ok(std::mem::take(&mut self.running));
        }
        let mut fds: Vec<rustix::event::PollFd> = self
            .rings
            .iter()
            .map(|r| rustix::event::PollFd::new(&r.fd, rustix::event::PollFlags::IN))
            .collect();
        let timeout = rustix::time::Timespec {
            tv_sec: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(wait.subsec_nanos()),
        };
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        drop(fds);
        // A record stamped before this instant may still be on its way
        // into its ring; the newest ones wait for the next read, so that
        // no record of one CPU comes after a later one of another (a
        // socket's close before the next socket at its address opens).
        let cutoff = monotonic_ns().saturating_sub(HOLD_NS);
        let mut parsed = std::mem::take(&mut self.held);
        for i in 0..self.rings.len() {
            self.drain(i, &mut parsed);
        }
        parsed.sort_by_key(|p| p.time);
        let newer = parsed.partition_point(|p| p.time <= cutoff);
        self.held = parsed.split_off(newer);
        self.handed_out_to = self.handed_out_to.max(cutoff);
        if self.held.len() > HELD_MAX {
            // Never more than this waits: the oldest go now.
            let excess = self.held.len() - HELD_MAX;
            parsed.extend(self.held.drain(..excess));
        }
        Ok(parsed.into_iter().map(|p| p.record).collect())
    }

    /// The time, as the records tell it, up to which every record has
    /// been handed out: what waits for later records waits on this clock,
    /// not the wall clock, which may be stepped meanwhile.
    pub fn caught_up(&self) -> SystemTime {
        wall_time(self.handed_out_to, self.wall_offset)
    }

    /// Everything left: the records held back and what the rings hold
    /// now, in time order. For the end of a trace.
    pub fn rest(&mut self) -> Vec<KernelRecord> {
        let mut parsed = std::mem::take(&mut self.held);
        for i in 0..self.rings.len() {
            self.drain(i, &mut parsed);
        }
        parsed.sort_by_key(|p| p.time);
        parsed.into_iter().map(|p| p.record).collect()
    }

    /// How many records the kernel could not write, summed over the
    /// rings, where it counts them (Linux 6.0+): unlike LOST records,
    /// which the kernel writes only once there is room again, this
    /// includes drops that are still pending.
    pub fn lost(&self) -> Option<u64> {
        let mut total = 0u64;
        for ring in &self.rings {
            if !ring.counts_lost {
                return None;
            }
            // read_format LOST alone: the event's value, then its lost.
            let mut buf = [0u8; 16];
            let n = rustix::io::read(&ring.fd, &mut buf).ok()?;
            let lost = buf.get(8..16).filter(|_| n >= 16)?;
            total = total.saturating_add(u64::from_ne_bytes(lost.try_into().ok()?));
        }
        Some(total)
    }

    /// Every record in ring `i`, consumed.
    fn drain(&mut self, i: usize, out: &mut Vec<Parsed>) {
        let ring = &self.rings[i];
        let header = ring.base.cast::<perf::perf_event_mmap_page>();
        // SAFETY: data_head and data_tail are naturally aligned u64s of the
        // mapped header page; the kernel writes head, the reader tail, and
        // perf_event_open(2) orders them with acquire and release.
        let (head_at, tail_at) = unsafe {
            (
                &*std::ptr::addr_of!((*header).data_head).cast::<AtomicU64>(),
                &*std::ptr::addr_of!((*header).data_tail).cast::<AtomicU64>(),
            )
        };
        let head = head_at.load(Ordering::Acquire);
        let mut tail = tail_at.load(Ordering::Relaxed);
        let size = ring.data_size as u64;
        while tail < head {
            let at = |n: u64| (n % size) as usize;
            let mut header_bytes = [0u8; 8];
            self.copy(i, at(tail), &mut header_bytes);
            let kind = u32::from_ne_bytes([
                header_bytes[0],
                header_bytes[1],
                header_bytes[2],
                header_bytes[3],
            ]);
            let misc = u16::from_ne_bytes([header_bytes[4], header_bytes[5]]);
            let len = u64::from(u16::from_ne_bytes([header_bytes[6], header_bytes[7]]));
            if len < 8 || tail + len > head {
                break; // a torn or impossible record: stop at it
            }
            let mut record = std::mem::take(&mut self.scratch);
            record.resize(len as usize, 0);
            self.copy(i, at(tail), &mut record);
            if let Some(p) = self.parse(kind, misc, &record) {
                out.push(p);
            }
            self.scratch = record;
            tail += len;
        }
        tail_at.store(tail, Ordering::Release);
    }

    /// Copies `out.len()` bytes of ring `i`'s data from `at`, across the
    /// end of the ring.
    fn copy(&self, i: usize, at: usize, out: &mut [u8]) {
        let ring = &self.rings[i];
        let first = out.len().min(ring.data_size - at);
        // SAFETY: `at` is within the data area and `first` bytes from it
        // stay within it; the rest wrap to its start, and `out` is shorter
        // than the ring (a record's length is at most 64 KiB, checked
        // against the head). The kernel does not write between tail and
        // head.
        unsafe {
            let data = ring.base.add(ring.data_offset);
            std::ptr::copy_nonoverlapping(data.add(at), out.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(data, out.as_mut_ptr().add(first), out.len() - first);
        }
    }

    fn parse(&self, kind: u32, misc: u16, record: &[u8]) -> Option<Parsed> {
        parse_record(&self.layout, self.wall_offset, kind, misc, record)
    }
}

/// One perf record (header included) as what it says: a sample of the
/// tracepoint, a name (COMM), an exit, or records lost. The layouts are
/// those `sample_type` TID | TIME | RAW and `sample_id_all` give.
/// A CLOCK_MONOTONIC time as wall-clock time, by the offset taken when
/// the record began.
fn wall_time(ns: u64, wall_offset: i128) -> SystemTime {
    let wall = i128::from(ns) + wall_offset;
    u64::try_from(wall)
        .ok()
        .map_or(SystemTime::UNIX_EPOCH, |ns| {
            SystemTime::UNIX_EPOCH + Duration::from_nanos(ns)
        })
}

fn parse_record(
    layout: &Layout,
    wall_offset: i128,
    kind: u32,
    misc: u16,
    r: &[u8],
) -> Option<Parsed> {
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(r.get(at..at + 4)?.try_into().ok()?))
    };
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_ne_bytes(r.get(at..at + 8)?.try_into().ok()?))
    };
    // sample_id_all's trailer: pid, tid, time.
    let trailer_time = || u64_at(r.len().checked_sub(8)?);
    let wall = |ns: u64| wall_time(ns, wall_offset);
    match kind {
        perf::PERF_RECORD_SAMPLE => {
            let (pid, tid, time) = (u32_at(8)?, u32_at(12)?, u64_at(16)?);
            let raw_len = u32_at(24)? as usize;
            let raw = r.get(28..28usize.checked_add(raw_len)?)?;
            let c = layout.change(raw)?;
            Some(Parsed {
                time,
                record: KernelRecord::Change(TcpChange {
                    time: wall(time),
                    pid,
                    tid,
                    socket: c.socket,
                    old: c.old,
                    new: c.new,
                    local: c.local,
                    remote: c.remote,
                }),
            })
        }
        perf::PERF_RECORD_COMM => {
            let (pid, tid) = (u32_at(8)?, u32_at(12)?);
            // The process's own name changes with its main thread's; a
            // thread naming itself ("Socket Thread") is not the process.
            if pid != tid {
                return None;
            }
            let name = r.get(16..r.len().checked_sub(16)?)?;
            let name = name.split(|&b| b == 0).next().unwrap_or_default();
            let _exec = u32::from(misc) & perf::PERF_RECORD_MISC_COMM_EXEC != 0;
            Some(Parsed {
                time: trailer_time()?,
                record: KernelRecord::Named {
                    pid,
                    name: String::from_utf8_lossy(name).into_owned(),
                },
            })
        }
        perf::PERF_RECORD_EXIT => {
            let (pid, tid, time) = (u32_at(8)?, u32_at(16)?, u64_at(24)?);
            (pid == tid).then_some(Parsed {
                time,
                record: KernelRecord::Exited { pid },
            })
        }
        // A new process (not a thread): it starts with its parent's name.
        perf::PERF_RECORD_FORK => {
            let (pid, parent, tid, time) = (u32_at(8)?, u32_at(12)?, u32_at(16)?, u64_at(24)?);
            (pid == tid && pid != parent).then_some(Parsed {
                time,
                record: KernelRecord::Forked { pid, parent },
            })
        }
        perf::PERF_RECORD_LOST => Some(Parsed {
            time: trailer_time().unwrap_or(0),
            record: KernelRecord::Lost(u64_at(16)?),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's format file, as Linux 6.x writes it.
    const FORMAT: &str = "name: inet_sock_set_state
ID: 2287
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;
\tfield:int newstate;\toffset:20;\tsize:4;\tsigned:1;
\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;
\tfield:__u16 dport;\toffset:26;\tsize:2;\tsigned:0;
\tfield:__u16 family;\toffset:28;\tsize:2;\tsigned:0;
\tfield:__u16 protocol;\toffset:30;\tsize:2;\tsigned:0;
\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;
\tfield:__u8 daddr[4];\toffset:36;\tsize:4;\tsigned:0;
\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;
\tfield:__u8 daddr_v6[16];\toffset:56;\tsize:16;\tsigned:0;

print fmt: \"family=%s ...\"
";

    fn raw(layout: &Layout, family: u16, old: u32, new: u32) -> Vec<u8> {
        let mut raw = vec![0u8; 72];
        let put = |raw: &mut Vec<u8>, f: Field, bytes: &[u8]| {
            raw[f.offset..f.offset + bytes.len()].copy_from_slice(bytes)
        };
        put(
            &mut raw,
            layout.skaddr,
            &0xffff_8880_1234_5678u64.to_ne_bytes(),
        );
        put(&mut raw, layout.oldstate, &old.to_ne_bytes());
        put(&mut raw, layout.newstate, &new.to_ne_bytes());
        put(&mut raw, layout.sport, &51234u16.to_ne_bytes());
        put(&mut raw, layout.dport, &8080u16.to_ne_bytes());
        put(&mut raw, layout.family, &family.to_ne_bytes());
        put(&mut raw, layout.protocol, &IPPROTO_TCP.to_ne_bytes());
        put(&mut raw, layout.saddr, &[127, 0, 0, 1]);
        put(&mut raw, layout.daddr, &[127, 0, 0, 2]);
        put(&mut raw, layout.saddr_v6, &Ipv6Addr::LOCALHOST.octets());
        put(
            &mut raw,
            layout.daddr_v6,
            &"fd00::2".parse::<Ipv6Addr>().unwrap().octets(),
        );
        raw
    }

    #[test]
    fn the_format_file_says_where_each_field_is() {
        let layout = parse_format(FORMAT).unwrap();
        assert_eq!(layout.skaddr, Field { offset: 8, size: 8 });
        assert_eq!(
            layout.daddr_v6,
            Field {
                offset: 56,
                size: 16
            }
        );
        // Moved fields are read where the file says.
        let moved = FORMAT.replace("offset:24;\tsize:2", "offset:100;\tsize:2");
        assert_eq!(parse_format(&moved).unwrap().sport.offset, 100);
        assert!(parse_format(&FORMAT.replace("saddr_v6", "other")).is_err());
        assert!(parse_format(&FORMAT.replace("offset:16;\tsize:4", "offset:16;\tsize:8")).is_err());
        assert!(parse_format("").is_err());
    }

    #[test]
    fn changes_are_read_from_their_bytes() {
        let layout = parse_format(FORMAT).unwrap();
        let c = layout.change(&raw(&layout, AF_INET, 7, 2)).unwrap();
        assert_eq!(c.socket, 0xffff_8880_1234_5678);
        assert_eq!(
            (c.old, c.new),
            (Some(TcpState::Close), Some(TcpState::SynSent))
        );
        assert_eq!(c.local, "127.0.0.1:51234".parse().unwrap());
        assert_eq!(c.remote, "127.0.0.2:8080".parse().unwrap());
        let c = layout.change(&raw(&layout, AF_INET6, 3, 1)).unwrap();
        assert_eq!(c.local, "[::1]:51234".parse().unwrap());
        assert_eq!(c.remote, "[fd00::2]:8080".parse().unwrap());
        // Another protocol, family, or a record cut short: nothing.
        let mut sctp = raw(&layout, AF_INET, 7, 2);
        sctp[30..32].copy_from_slice(&132u16.to_ne_bytes());
        assert!(layout.change(&sctp).is_none());
        assert!(layout.change(&raw(&layout, 1, 7, 2)).is_none());
        assert!(layout.change(&raw(&layout, AF_INET, 7, 2)[..38]).is_none());
        assert!(layout.change(&raw(&layout, AF_INET6, 7, 2)[..60]).is_none());
    }

    #[test]
    fn perf_records_are_read_from_their_bytes() {
        let layout = parse_format(FORMAT).unwrap();
        let change = raw(&layout, AF_INET, 7, 2);
        let mut sample = Vec::new();
        sample.extend(perf::PERF_RECORD_SAMPLE.to_ne_bytes());
        sample.extend(0u16.to_ne_bytes());
        sample.extend(0u16.to_ne_bytes()); // length: not read here
        sample.extend(4242u32.to_ne_bytes()); // pid
        sample.extend(4243u32.to_ne_bytes()); // tid
        sample.extend(1_000_000_000u64.to_ne_bytes()); // time
        sample.extend((change.len() as u32).to_ne_bytes());
        sample.extend(&change);
        let parsed = parse_record(&layout, 0, perf::PERF_RECORD_SAMPLE, 0, &sample).unwrap();
        match parsed.record {
            KernelRecord::Change(c) => {
                assert_eq!((c.pid, c.tid), (4242, 4243));
                assert_eq!(c.time, SystemTime::UNIX_EPOCH + Duration::from_secs(1));
            }
            other => panic!("{other:?}"),
        }
        // A length past the record is no sample.
        let mut cut = sample.clone();
        cut.truncate(40);
        assert!(parse_record(&layout, 0, perf::PERF_RECORD_SAMPLE, 0, &cut).is_none());
        // COMM: the main thread's name, then the trailer (pid, tid, time).
        let mut comm = vec![0u8; 8];
        comm.extend(7u32.to_ne_bytes());
        comm.extend(7u32.to_ne_bytes());
        comm.extend(b"client\0\0");
        comm.extend(7u32.to_ne_bytes());
        comm.extend(7u32.to_ne_bytes());
        comm.extend(5u64.to_ne_bytes());
        let named = parse_record(&layout, 0, perf::PERF_RECORD_COMM, 0, &comm).unwrap();
        assert!(
            matches!(named.record, KernelRecord::Named { pid: 7, ref name } if name == "client")
        );
        comm[12..16].copy_from_slice(&8u32.to_ne_bytes());
        assert!(
            parse_record(&layout, 0, perf::PERF_RECORD_COMM, 0, &comm).is_none(),
            "a thread's name"
        );
        // LOST: id, count.
        let mut lost = vec![0u8; 8];
        lost.extend(1u64.to_ne_bytes());
        lost.extend(17u64.to_ne_bytes());
        lost.extend([0u8; 16]);
        let lost = parse_record(&layout, 0, perf::PERF_RECORD_LOST, 0, &lost).unwrap();
        assert!(matches!(lost.record, KernelRecord::Lost(17)));
    }
}
