//! The area lock: serializes allocation, registration, slot changes and
//! reaping across processes. Never taken on the update path.
//!
//! With open-file-description locks (`FLAG_OFD_LOCKS`, the normal case) the
//! lock is a kernel write lock on `LOCK_BYTE` of the area file, taken on
//! this process's own open file description of the file (its *lock
//! descriptor*). The kernel releases it when its holder dies (SIGKILL, OOM),
//! keeps it while the holder is stopped, and it works across pid
//! namespaces: nothing here judges whether a process is alive, so a live
//! holder is never taken over. The header's `lock` word only names the
//! holder (for error messages and `inspect`); a waiter that gets the lock
//! and finds the word still set knows its holder died holding it, and
//! counts a recovery.
//!
//! Without OFD locks (old kernels, some file systems) the `lock` word is
//! the lock, taken over from a holder that `/proc` shows dead; only
//! processes of the creator's pid namespace, whose identity is known, may
//! take it (elsewhere liveness cannot be verified).
//!
//! Every critical section leaves the area consistent at each step (records
//! are committed last), so a dead holder's lock needs no repair.
//! Threads of one process queue on a process-local mutex first.

use std::fs::File;
use std::os::fd::{IntoRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::format::{hdr, LOCK_BYTE};
use super::{ofd, AreaInner};
use crate::error::{Error, Result};
use crate::process;

/// How long a waiter waits for a live holder before giving up.
pub(crate) const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a render waits for the lock to reap in passing before it
/// backs off (reaping can wait for the next render).
pub(crate) const BRIEF_WAIT: Duration = Duration::from_millis(100);
/// The longest a process's first gauge write or flush waits to attach
/// before it backs off: once per process (and per backoff period), long
/// enough for any live holder's critical section on a loaded machine, so
/// that contention alone never drops an update.
pub(crate) const ATTACH_WAIT: Duration = Duration::from_secs(1);

/// This process's own open file description of the area file, on which it
/// takes its locks: `fork_gen << 32 | (fd + 1)`, 0 until first needed.
///
/// A child of `fork` inherits the parent's descriptor, which shares the
/// parent's locks: the fork hook closes it in the child (so a dead parent
/// never looks alive through a living child), and the generation in the
/// word makes the child open its own.
pub(crate) struct LockFd {
    word: AtomicU64,
    /// Device and inode of the area file.
    id: (u64, u64),
}

impl LockFd {
    /// No descriptor yet, for the area file `id` (device, inode).
    pub(crate) fn new(id: (u64, u64)) -> LockFd {
        LockFd {
            word: AtomicU64::new(0),
            id,
        }
    }

    /// The descriptor, opened on first use in this process, and whether a
    /// previous one was lost (closed by someone else: its locks are gone).
    /// Call it with the area's local lock held: the fork handlers take that
    /// lock, so no fork can come between the open and its registration
    /// with the fork hook.
    fn get(&self, area: &AreaInner) -> Result<(RawFd, bool)> {
        let mut lost = false;
        if let Some(fd) = self.current() {
            if ofd::file_id(fd) == Some(self.id) {
                return Ok((fd, false));
            }
            // Closed behind our back (and maybe reused): never touch it again.
            process::keep_in_children(fd);
            self.word.store(0, Ordering::Relaxed);
            lost = true;
        }
        let path = area.path.as_deref();
        let fd = ofd::reopen(area.file.get(path), self.id, path, true)
            .map_err(|e| Error::io("open a lock descriptor for", area.display_path(), e))?
            .into_raw_fd();
        if !process::close_in_children(fd, self.id) {
            // SAFETY: `fd` is ours and nobody else knows it.
            drop(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) });
            return Err(Error::io(
                "open a lock descriptor for",
                area.display_path(),
                std::io::Error::from_raw_os_error(libc::EMFILE),
            ));
        }
        let gen = process::fork_generation();
        self.word
            .store((u64::from(gen) << 32) | (fd as u64 + 1), Ordering::Relaxed);
        Ok((fd, lost))
    }

    /// This process's descriptor if it is open (never one inherited from a parent).
    pub(crate) fn current(&self) -> Option<RawFd> {
        let w = self.word.load(Ordering::Relaxed);
        (w != 0 && (w >> 32) as u32 == process::fork_generation()).then(|| (w as u32 - 1) as RawFd)
    }

    /// Whether this process's descriptor was closed by someone else.
    pub(crate) fn is_lost(&self) -> bool {
        self.current()
            .is_some_and(|fd| ofd::file_id(fd) != Some(self.id))
    }
}

impl Drop for LockFd {
    fn drop(&mut self) {
        // A descriptor inherited from a parent was closed by the fork hook
        // (its number may be reused by now): never touch it.
        let Some(fd) = self.current() else { return };
        if ofd::file_id(fd) == Some(self.id) {
            // Drop every lock first: a child forked from here on inherits
            // a descriptor without locks (and closes it, or not: harmless).
            ofd::unlock(fd, 0, 0);
            process::keep_in_children(fd);
            // SAFETY: `fd` is this process's own lock descriptor, closed once.
            drop(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) });
        } else {
            // Closed by someone else: the number is not ours to close.
            process::keep_in_children(fd);
        }
    }
}

/// How the lock is held.
enum Held {
    /// Kernel write lock on this descriptor.
    Ofd(RawFd),
    /// The lock word holds this identity.
    Word(u64),
}

/// Holds the area lock until dropped.
pub(crate) struct AreaLockGuard<'a> {
    area: &'a AreaInner,
    held: Held,
    _local: std::sync::MutexGuard<'a, ()>,
}

/// The area lock, held for a test until dropped (see `Area::__hold_lock_for_tests`).
#[doc(hidden)]
pub struct HeldAreaLock<'a>(#[allow(dead_code)] AreaLockGuard<'a>);

impl<'a> HeldAreaLock<'a> {
    pub(crate) fn new(guard: AreaLockGuard<'a>) -> Self {
        HeldAreaLock(guard)
    }
}

/// Wait a little longer between attempts the longer we have waited.
fn pause(attempt: u32) {
    if attempt < 64 {
        std::thread::yield_now();
    } else {
        let us = (50u64 << ((attempt - 64) / 32).min(4)).min(1000);
        std::thread::sleep(Duration::from_micros(us));
    }
}

impl AreaInner {
    /// Take the area lock, waiting at most [`LOCK_TIMEOUT`].
    pub(crate) fn lock(&self) -> Result<AreaLockGuard<'_>> {
        self.lock_within(LOCK_TIMEOUT)
    }

    /// Take the area lock, waiting at most `bound`; `LockTimeout` (counted
    /// in `stat_lock_timeouts`) after that.
    pub(crate) fn lock_within(&self, bound: Duration) -> Result<AreaLockGuard<'_>> {
        self.check_writable()?;
        let start = Instant::now();
        let local = self.lock_local(start, bound)?;
        let held = if self.ofd {
            self.acquire_ofd(start, bound)?
        } else {
            self.acquire_word(start, bound)?
        };
        self.bump(hdr::STAT_LOCKS_TAKEN, 1);
        Ok(AreaLockGuard {
            area: self,
            held,
            _local: local,
        })
    }

    /// The process-local mutex, within the same bound: a thread must not
    /// wait longer behind another thread of its process than for the area
    /// lock itself (that thread may be waiting for a stopped holder).
    fn lock_local(&self, start: Instant, bound: Duration) -> Result<std::sync::MutexGuard<'_, ()>> {
        let mut attempt = 0u32;
        loop {
            match self.local_lock.try_lock() {
                Ok(g) => return Ok(g),
                // Every critical section leaves the area consistent.
                Err(std::sync::TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
            if start.elapsed() >= bound {
                return Err(self.timed_out());
            }
            pause(attempt);
            attempt = attempt.saturating_add(1);
        }
    }

    fn timed_out(&self) -> Error {
        self.bump(hdr::STAT_LOCK_TIMEOUTS, 1);
        let owner = self.hdr(hdr::LOCK).load(Ordering::Relaxed);
        Error::LockTimeout(process::identity_pid(owner))
    }

    fn acquire_ofd(&self, start: Instant, bound: Duration) -> Result<Held> {
        let (fd, lost) = self.lock_fd.get(self)?;
        let mut attempt = 0u32;
        loop {
            match ofd::try_lock(fd, libc::F_WRLCK, LOCK_BYTE) {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => return Err(Error::io("lock", self.display_path(), e)),
            }
            if start.elapsed() >= bound {
                return Err(self.timed_out());
            }
            pause(attempt);
            attempt = attempt.saturating_add(1);
        }
        // Diagnostic only: who holds the lock. A word still set was left by
        // a holder that died holding the lock (live holders clear it first).
        let me = process::identity().unwrap_or(u64::from(process::pid()));
        if self.hdr(hdr::LOCK).swap(me, Ordering::AcqRel) != 0 {
            self.bump(hdr::STAT_LOCK_RECOVERED, 1);
        }
        self.hdr(hdr::LOCK_PID_NS)
            .store(process::pid_namespace(), Ordering::Relaxed);
        if lost {
            self.relock_own_slot(fd);
        }
        Ok(Held::Ofd(fd))
    }

    fn acquire_word(&self, start: Instant, bound: Duration) -> Result<Held> {
        // Liveness by pid and start time can only be verified in the
        // creator's namespace, and only with a known start time.
        if !self.same_pid_ns {
            return Err(Error::io(
                "lock",
                self.display_path(),
                std::io::Error::other(
                    "this kernel or file system has no open-file-description locks, \
                     and without them only processes of the creator's pid namespace may write",
                ),
            ));
        }
        let me = process::identity().ok_or_else(|| {
            Error::io(
                "read this process's start time (needed to take the area lock) from",
                "/proc/self/stat",
                std::io::Error::other("unreadable; retry later"),
            )
        })?;
        let word = self.hdr(hdr::LOCK);
        let mut attempt = 0u32;
        let mut next_check = Duration::from_millis(2);
        loop {
            let owner = match word.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(Held::Word(me)),
                Err(owner) => owner,
            };
            let waited = start.elapsed();
            // `owner == me` is never a leftover to take over: guards release
            // on unwind, and another mapping of the same area in this
            // process may hold it right now. We are alive, so we wait.
            if waited >= next_check {
                next_check = waited + Duration::from_millis(2);
                if owner != me
                    && !process::is_alive(owner)
                    && word
                        .compare_exchange(owner, me, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    self.bump(hdr::STAT_LOCK_RECOVERED, 1);
                    return Ok(Held::Word(me));
                }
            }
            if waited >= bound {
                return Err(self.timed_out());
            }
            pause(attempt);
            attempt = attempt.saturating_add(1);
        }
    }
}

impl AreaLockGuard<'_> {
    /// The lock descriptor the lock is held on (OFD mode).
    pub(crate) fn lock_fd(&self) -> Option<RawFd> {
        match self.held {
            Held::Ofd(fd) => Some(fd),
            Held::Word(_) => None,
        }
    }
}

impl Drop for AreaLockGuard<'_> {
    fn drop(&mut self) {
        let word = self.area.hdr(hdr::LOCK);
        match self.held {
            Held::Ofd(fd) => {
                self.area.hdr(hdr::LOCK_PID_NS).store(0, Ordering::Relaxed);
                word.store(0, Ordering::Release);
                ofd::unlock(fd, LOCK_BYTE, 1);
            }
            Held::Word(me) => {
                let _ = word.compare_exchange(me, 0, Ordering::Release, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use crate::area::format::{hdr, FLAG_OFD_LOCKS};
    use crate::{Area, AreaOptions, Error, OpenMode};

    /// Fork a child that takes the area lock, reports on a pipe, and then
    /// either stays (stopped by `pause`) or SIGKILLs itself holding it.
    fn child_holding_lock(area: &Area, die: bool) -> libc::pid_t {
        let mut fds = [0; 2];
        // SAFETY: valid array for pipe(2).
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child only takes the lock and leaves by a signal or _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let ok = area.inner.lock().map(std::mem::forget).is_ok();
            // SAFETY: plain calls on our own descriptors and process.
            unsafe {
                libc::write(fds[1], [u8::from(ok)].as_ptr().cast(), 1);
                if die {
                    libc::kill(libc::getpid(), libc::SIGKILL);
                }
                libc::pause();
                libc::_exit(0);
            }
        }
        let mut b = [0u8; 1];
        // SAFETY: reading one byte into a local buffer; closing our copies.
        unsafe {
            libc::close(fds[1]);
            assert_eq!(libc::read(fds[0], b.as_mut_ptr().cast(), 1), 1);
            libc::close(fds[0]);
        }
        assert_eq!(b[0], 1, "the child could not take the lock");
        pid
    }

    /// Host code may close the lock descriptor behind our back and reuse its
    /// number for a file of its own (uWSGI does at a reload). The fork hook
    /// must then leave that number open in the child: it is the host's now.
    #[test]
    fn the_fork_hook_never_closes_a_reused_lock_descriptor_number() {
        let area = Area::anonymous(&AreaOptions::with_pages(16)).unwrap();
        drop(area.inner.lock().unwrap());
        let fd = area.inner.lock_fd.current().expect("a lock descriptor");
        let mut pipe = [0; 2];
        // SAFETY: valid array for pipe(2); dup2 replaces `fd` (ours, as the
        // host would) with the pipe's read end.
        unsafe {
            assert_eq!(libc::pipe(pipe.as_mut_ptr()), 0);
            assert_eq!(libc::dup2(pipe[0], fd), fd);
        }
        // SAFETY: the child only checks a descriptor and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: fcntl on a number; _exit leaves at once.
            unsafe {
                let open = libc::fcntl(fd, libc::F_GETFD) != -1;
                libc::_exit(if open { 0 } else { 1 });
            }
        }
        let mut status = 0;
        // SAFETY: our own child, which exits at once.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        // The lock descriptor is lost: the next lock opens a new one.
        drop(area.inner.lock().unwrap());
        assert_ne!(area.inner.lock_fd.current(), Some(fd));
        // SAFETY: closing our pipe (both ends and the copy at `fd`).
        unsafe {
            libc::close(fd);
            libc::close(pipe[0]);
            libc::close(pipe[1]);
        }
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child closed the host's descriptor {fd}"
        );
    }

    /// SIGKILL the live lock holder `live` and take the lock; then let another
    /// child die holding it and take the lock again: two holders that died
    /// holding the lock.
    fn kill_holder_then_lose_another(area: &Area, live: libc::pid_t) {
        // SAFETY: our own child.
        unsafe {
            libc::kill(live, libc::SIGKILL);
            libc::waitpid(live, std::ptr::null_mut(), 0);
        }
        drop(area.inner.lock().unwrap());
        let dead = child_holding_lock(area, true);
        // SAFETY: our own child.
        unsafe { libc::waitpid(dead, std::ptr::null_mut(), 0) };
        drop(area.inner.lock().unwrap());
    }

    /// The rule without OFD locks (`flags` bit 1 clear): the lock word is
    /// taken over from a holder that died holding it, never from a live one.
    #[test]
    fn without_ofd_locks_the_word_lock_is_taken_over_from_dead_holders_only() {
        let dir = std::env::temp_dir().join(format!("promshm-wordlock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.promshm");
        let created = Area::create(&path, &AreaOptions::with_pages(16)).unwrap();
        assert!(created.inner.ofd, "this kernel has OFD locks");
        created
            .inner
            .hdr32(hdr::FLAGS)
            .fetch_and(!FLAG_OFD_LOCKS, Ordering::Relaxed);
        let area = Area::open(&path, OpenMode::ReadWrite).unwrap();
        assert!(!area.inner.ofd, "openers follow the creator's choice");

        let live = child_holding_lock(&area, false);
        match area.inner.lock_within(Duration::from_millis(300)) {
            Err(Error::LockTimeout(pid)) => assert_eq!(pid as libc::pid_t, live),
            other => panic!("took a live holder's lock: {:?}", other.map(|_| ())),
        }
        // Dead now: taken over once; then once more from one that dies.
        kill_holder_then_lose_another(&area, live);
        assert_eq!(area.stats().locks_recovered, 2);
        assert_eq!(area.inner.hdr(hdr::LOCK).load(Ordering::Relaxed), 0);
        drop((area, created));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// With OFD locks a holder that dies holding the lock is released by
    /// the kernel and counted once; a live (stopped) one times out waiters.
    #[test]
    fn with_ofd_locks_a_dead_holder_is_released_by_the_kernel_and_counted() {
        let area = Area::anonymous(&AreaOptions::with_pages(16)).unwrap();
        assert!(area.inner.ofd);
        let live = child_holding_lock(&area, false);
        assert!(matches!(
            area.inner.lock_within(Duration::from_millis(300)),
            Err(Error::LockTimeout(_))
        ));
        assert_eq!(area.stats().lock_timeouts, 1);
        kill_holder_then_lose_another(&area, live);
        assert_eq!(
            area.stats().locks_recovered,
            2,
            "one per holder that died holding it"
        );
    }
}
