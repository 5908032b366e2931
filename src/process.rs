//! Facts about the current process: pid, start time, pid namespace, and a
//! fork generation that changes in every child so that buffers and worker
//! slots inherited from a parent are never used twice.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

static FORK_GEN: AtomicU32 = AtomicU32::new(1);
static IDENTITY: AtomicU64 = AtomicU64::new(0);
static START_TIME: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

extern "C" fn in_child_after_fork() {
    // Only async-signal-safe work here: two atomic stores.
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
    IDENTITY.store(0, Ordering::Relaxed);
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

/// This process's identity: `pid | (start_time as u32) << 32`.
pub(crate) fn identity() -> u64 {
    init();
    let id = IDENTITY.load(Ordering::Relaxed);
    if id != 0 {
        return id;
    }
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    match start_time_of(pid) {
        Some(start) => {
            START_TIME.store(start, Ordering::Relaxed);
            let id = make_identity(pid, start);
            IDENTITY.store(id, Ordering::Relaxed);
            id
        }
        // /proc unreadable right now (e.g. out of file descriptors): use the
        // pid alone this time and try again next time. Areas prime the
        // identity when they are mapped, so this is rare.
        None => make_identity(pid, 0),
    }
}

/// Full start time of this process in clock ticks since boot.
pub(crate) fn start_time() -> u64 {
    identity();
    START_TIME.load(Ordering::Relaxed)
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
    std::fs::metadata("/proc/self/ns/pid")
        .map(|m| m.ino())
        .unwrap_or(0)
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
