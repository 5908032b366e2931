//! Facts about the current process: pid, start time, pid namespace, and a
//! fork generation that changes in every child so that buffers and worker
//! slots inherited from a parent are never used twice; and the descriptors
//! that a child must close at once after `fork` (see [`close_in_children`]).

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

static FORK_GEN: AtomicU32 = AtomicU32::new(1);
static IDENTITY: AtomicU64 = AtomicU64::new(0);
static START_TIME: AtomicU64 = AtomicU64::new(0);
/// Cached pid namespace inode (0 = not known yet). A child may be in
/// another namespace than its parent (`unshare(CLONE_NEWPID)`): cleared on fork.
static PID_NS: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

/// Most descriptors [`close_in_children`] can track at once.
const MAX_CHILD_CLOSE: usize = 1024;
/// Descriptors to close in a child after `fork` (-1 = empty entry).
static CHILD_CLOSE: [AtomicI32; MAX_CHILD_CLOSE] = [const { AtomicI32::new(-1) }; MAX_CHILD_CLOSE];
/// Device and inode of the file each `CHILD_CLOSE` entry names: the child
/// closes a descriptor only while it still is that file (host code may have
/// closed ours and reused the number for one of its own).
static CHILD_CLOSE_ID: [[AtomicU64; 2]; MAX_CHILD_CLOSE] =
    [const { [AtomicU64::new(0), AtomicU64::new(0)] }; MAX_CHILD_CLOSE];

extern "C" fn in_child_after_fork() {
    // Only async-signal-safe work here: atomics and close(2).
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
    IDENTITY.store(0, Ordering::Relaxed);
    PID_NS.store(0, Ordering::Relaxed);
    for (entry, id) in CHILD_CLOSE.iter().zip(&CHILD_CLOSE_ID) {
        let fd = entry.swap(-1, Ordering::Relaxed);
        if fd < 0 {
            continue;
        }
        // SAFETY: an all-zero stat is a valid out-parameter (on the stack:
        // no allocation); fstat(2) is async-signal-safe and harmless on any number.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer to `st`.
        let same = unsafe { libc::fstat(fd, &mut st) } == 0
            && st.st_dev as u64 == id[0].load(Ordering::Relaxed)
            && st.st_ino as u64 == id[1].load(Ordering::Relaxed);
        if same {
            // SAFETY: `fd` still is the registered file (checked just now),
            // so it is the owner's descriptor inherited from the parent (the
            // owner unregisters before it closes); the child must not share
            // the parent's open file description. Any other file at that
            // number is someone else's and stays open.
            unsafe { libc::close(fd) };
        }
    }
}

/// Have every future child of `fork` close `fd`, a descriptor of the file
/// `id` (device, inode), right after the fork, in the fork hook (before any
/// other code of the child runs) — as long as that number still names that
/// file then. Call it while no fork can happen between the `open` of `fd`
/// and this call (under a lock the fork handlers take). `false` when the
/// table is full.
pub(crate) fn close_in_children(fd: i32, id: (u64, u64)) -> bool {
    init();
    CHILD_CLOSE.iter().zip(&CHILD_CLOSE_ID).any(|(e, slot)| {
        let claimed = e
            .compare_exchange(-1, -2, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if claimed {
            slot[0].store(id.0, Ordering::Relaxed);
            slot[1].store(id.1, Ordering::Relaxed);
            e.store(fd, Ordering::Relaxed);
        }
        claimed
    })
}

/// Undo [`close_in_children`]; call it before closing `fd`.
pub(crate) fn keep_in_children(fd: i32) {
    for e in &CHILD_CLOSE {
        if e.compare_exchange(fd, -1, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

/// Register the fork hook once. Called before anything caches per-process state.
pub(crate) fn init() {
    ATFORK.call_once(|| {
        // SAFETY: registering a handler that only touches atomics; no prepare/parent handlers.
        unsafe {
            libc::pthread_atfork(None, None, Some(in_child_after_fork));
        }
    });
}

/// Changes in every child after `fork`.
#[inline]
pub(crate) fn fork_generation() -> u32 {
    FORK_GEN.load(Ordering::Relaxed)
}

/// Whether `generation` (kept by a caller-owned local handle) is this
/// process's; it becomes this process's either way. A local handle's
/// pending counts from another generation are its parent's to flush.
#[inline]
pub(crate) fn claim_generation(generation: &mut u32) -> bool {
    let now = fork_generation();
    std::mem::replace(generation, now) == now
}

/// This process's pid (in its own pid namespace).
pub(crate) fn pid() -> u32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() as u32 }
}

/// This process's identity: `pid | (start_time as u32) << 32`, or `None`
/// while its start time cannot be read (`/proc` missing, or no file
/// descriptor left). Never made up: a wrong start time would make this
/// live process look dead to others. Cached once known.
pub(crate) fn identity() -> Option<u64> {
    init();
    let id = IDENTITY.load(Ordering::Relaxed);
    if id != 0 {
        return Some(id);
    }
    let pid = pid();
    let start = start_time_of(pid)?;
    START_TIME.store(start, Ordering::Relaxed);
    let id = make_identity(pid, start);
    IDENTITY.store(id, Ordering::Relaxed);
    Some(id)
}

/// Full start time of this process in clock ticks since boot, if known.
pub(crate) fn start_time() -> Option<u64> {
    identity()?;
    Some(START_TIME.load(Ordering::Relaxed))
}

/// Pack a pid and its start time into one word.
pub(crate) fn make_identity(pid: u32, start_time: u64) -> u64 {
    u64::from(pid) | ((start_time & 0xffff_ffff) << 32)
}

/// The pid half of an identity word.
pub(crate) fn identity_pid(id: u64) -> u32 {
    id as u32
}

/// Start time (field 22 of `/proc/PID/stat`) of a process, if it exists.
pub(crate) fn start_time_of(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|s| s.start_time)
}

/// The fields of `/proc/PID/stat` that liveness needs.
struct ProcStat {
    state: u8,
    threads: u64,
    start_time: u64,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    Some(ProcStat {
        state: *fields.first()?.as_bytes().first()?,
        threads: fields.get(17)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Whether the process named by an identity word is still running.
/// A pid that exists but started at another time has been reused: dead.
pub(crate) fn is_alive(id: u64) -> bool {
    let pid = identity_pid(id);
    // 0 and pids that are negative as a pid_t are never processes: kill()
    // would read them as "my process group" / "every process" / a group, and
    // a garbage word (e.g. 0xffffffff, kill(-1, 0)) would look alive forever.
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    if r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return false;
    }
    match proc_stat(pid) {
        // A zombie (dead, not yet waited for by its parent) holds nothing; a
        // process whose main thread exited while others run shows `Z` too,
        // but with more than one thread.
        Some(st) if st.state == b'Z' && st.threads <= 1 => false,
        Some(st) => make_identity(pid, st.start_time) == id,
        // No /proc (or hidden): trust kill().
        None => true,
    }
}

/// Inode of this process's pid namespace (0 when unknown).
pub(crate) fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    init();
    let known = PID_NS.load(Ordering::Relaxed);
    if known != 0 {
        return known;
    }
    let ns = std::fs::metadata("/proc/self/ns/pid")
        .map(|m| m.ino())
        .unwrap_or(0);
    PID_NS.store(ns, Ordering::Relaxed);
    ns
}

/// Milliseconds on the monotonic clock (for backoffs; never 0).
pub(crate) fn monotonic_ms() -> u64 {
    // SAFETY: a zeroed timespec is a valid out-parameter.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000).max(1)
}

/// Unix time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Unix time in seconds, as a float.
pub(crate) fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
