//! Open-file-description record locks (`F_OFD_SETLK` / `F_OFD_GETLK`,
//! Linux ≥ 3.15): the kernel facts that liveness rests on.
//!
//! Such a lock belongs to one open file description (one `open()`), not to
//! a process or a pid: it is released by the kernel when the last
//! descriptor of that description is closed — at the latest when its
//! process dies, SIGKILL and OOM included — it stays held while the process
//! is stopped, it conflicts with locks of every other description (in this
//! process or any other, whatever its pid namespace), and asking about it
//! needs no `/proc`.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

fn flock(kind: libc::c_int, start: i64, len: i64) -> libc::flock {
    // SAFETY: `flock` is a plain C struct; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start as libc::off_t;
    fl.l_len = len as libc::off_t;
    // l_pid must be 0 for OFD locks.
    fl
}

fn fcntl_lock(fd: RawFd, cmd: libc::c_int, fl: &mut libc::flock) -> io::Result<()> {
    loop {
        // SAFETY: `fl` is a valid, exclusive `flock` for the duration of the call.
        if unsafe { libc::fcntl(fd, cmd, fl as *mut libc::flock) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Try to take a lock (`F_RDLCK` or `F_WRLCK`) on one byte without
/// waiting. `Ok(false)` when another description holds a conflicting lock.
pub(crate) fn try_lock(fd: RawFd, kind: libc::c_int, byte: i64) -> io::Result<bool> {
    let mut fl = flock(kind, byte, 1);
    match fcntl_lock(fd, libc::F_OFD_SETLK, &mut fl) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Release this description's lock on `len` bytes from `byte` (0 = to the end).
pub(crate) fn unlock(fd: RawFd, byte: i64, len: i64) {
    let mut fl = flock(libc::F_UNLCK, byte, len);
    let _ = fcntl_lock(fd, libc::F_OFD_SETLK, &mut fl);
}

/// Whether a description other than `fd`'s holds any lock on `byte`.
pub(crate) fn is_locked(fd: RawFd, byte: i64) -> io::Result<bool> {
    let mut fl = flock(libc::F_WRLCK, byte, 1);
    fcntl_lock(fd, libc::F_OFD_GETLK, &mut fl)?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Whether OFD locks work on this file (kernel and file system): take and
/// drop a read lock on a probe byte. `EINVAL`, `ENOSYS`, `ENOLCK` and
/// `EOPNOTSUPP` mean no.
pub(crate) fn supported(file: &File) -> bool {
    let probe = super::format::LOCK_BYTE - 1;
    match try_lock(file.as_raw_fd(), libc::F_RDLCK, probe) {
        Ok(_) => {
            unlock(file.as_raw_fd(), probe, 1);
            true
        }
        Err(_) => false,
    }
}

/// The device and inode of an open descriptor.
pub(crate) fn file_id(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: an all-zero stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer; fstat on any number is harmless.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    Some((st.st_dev as u64, st.st_ino as u64))
}

/// A new open file description of the file `id` (device, inode),
/// read-write if `write` (else read-only), close-on-exec: through
/// `/proc/self/fd/<src>` (works for memfds and unlinked files), else by
/// `path` (without following a symlink and without blocking on a FIFO put
/// there). Checked to be that file either way.
pub(crate) fn reopen(
    src: Option<RawFd>,
    id: (u64, u64),
    path: Option<&Path>,
    write: bool,
) -> io::Result<File> {
    let access = if write { libc::O_RDWR } else { libc::O_RDONLY };
    let same = |f: &File| file_id(f.as_raw_fd()) == Some(id);
    let open = |p: &Path, flags: libc::c_int| -> io::Result<File> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: a valid NUL-terminated path and flags.
        let fd = unsafe { libc::open(c.as_ptr(), flags | access | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that we own.
        Ok(unsafe { File::from_raw_fd(fd) })
    };
    let mut first = io::Error::from_raw_os_error(libc::EBADF);
    if let Some(src) = src {
        let proc_path = format!("/proc/self/fd/{src}");
        match open(Path::new(&proc_path), libc::O_NONBLOCK) {
            Ok(f) if same(&f) => return Ok(f),
            Ok(_) => first = io::Error::other("/proc/self/fd names another file"),
            Err(e) => first = e,
        }
    }
    if let Some(p) = path {
        match open(p, libc::O_NOFOLLOW | libc::O_NONBLOCK) {
            Ok(f) if same(&f) => return Ok(f),
            Ok(_) => return Err(io::Error::other("the path now names another file")),
            Err(e) => return Err(e),
        }
    }
    Err(first)
}

/// A new open file description of the same file as `file`.
pub(crate) fn reopen_file(file: &File, path: Option<&Path>, write: bool) -> io::Result<File> {
    let id = file_id(file.as_raw_fd()).ok_or_else(io::Error::last_os_error)?;
    reopen(Some(file.as_raw_fd()), id, path, write)
}

/// A descriptor of the area file kept by this process, which host code may
/// close behind our back (some servers close every descriptor they do not
/// know, uWSGI at a reload for one): checked to be the same file before
/// each use, reopened by path when lost, closed on drop only if still ours.
/// It never holds a lock, so probes through it see every lock holder.
pub(crate) struct KeptFd {
    fd: AtomicI32,
    id: (u64, u64),
}

impl KeptFd {
    /// Keep `file`.
    pub(crate) fn new(file: File) -> KeptFd {
        // (0, 0) if fstat fails: never matches, so never used or closed.
        let id = file_id(file.as_raw_fd()).unwrap_or((0, 0));
        KeptFd {
            fd: AtomicI32::new(file.into_raw_fd()),
            id,
        }
    }

    /// The descriptor, if it still is the area file (or could be reopened by `path`).
    pub(crate) fn get(&self, path: Option<&Path>) -> Option<RawFd> {
        let fd = self.fd.load(Ordering::Acquire);
        if fd >= 0 && file_id(fd) == Some(self.id) {
            return Some(fd);
        }
        // Lost: never close that number (it is someone else's now).
        let f = reopen(None, self.id, path, false).ok()?;
        let new = f.into_raw_fd();
        match self
            .fd
            .compare_exchange(fd, new, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Some(new),
            Err(other) => {
                // SAFETY: `new` is ours and unknown to anyone else.
                drop(unsafe { File::from_raw_fd(new) });
                Some(other)
            }
        }
    }
}

impl Drop for KeptFd {
    fn drop(&mut self) {
        let fd = *self.fd.get_mut();
        if fd >= 0 && file_id(fd) == Some(self.id) {
            // SAFETY: still our descriptor of the area file, closed once.
            drop(unsafe { File::from_raw_fd(fd) });
        }
    }
}
