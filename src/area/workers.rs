//! The worker table: one slot per attached process.
//!
//! Liveness (with `FLAG_OFD_LOCKS`): every holder of slot `s` keeps a read
//! lock on byte `SLOT_LOCK_BASE + s` of the area file through its lock
//! descriptor; a slot whose byte nobody locks belongs to a dead process
//! (the kernel dropped its lock). That is a kernel fact, the same from every
//! pid namespace, and needs no `/proc`. Without OFD locks a slot is judged
//! by `(pid, start time)` from `/proc`, and only in the slot's own pid
//! namespace. Slots of dead processes are reused after their gauge values
//! are folded as each gauge's mode says.
//!
//! Attaching happens lazily on the hot path (a gauge write, a flush): it
//! waits for the area lock at most `ATTACH_WAIT` (1 s, once), and after a failure (lock
//! busy, table full, no descriptor left) it is not tried again before a
//! backoff has passed; gauge updates made meanwhile are dropped and counted.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::format::*;
use super::lock::{ATTACH_WAIT, BRIEF_WAIT, LOCK_TIMEOUT};
use super::{ofd, AreaInner};
use crate::error::{Error, Result};
use crate::process;

/// One row of the worker table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Slot index (the `worker` label of `all`-mode gauges).
    pub slot: u32,
    /// Process id (in the worker's own pid namespace).
    pub pid: u32,
    /// Process start time, clock ticks since boot (0 = unknown).
    pub start_time: u64,
    /// Times this slot was taken.
    pub generation: u32,
    /// Whether the process is still running (as far as this process can tell).
    pub alive: bool,
    /// Attach time, Unix ms.
    pub attached_ms: u64,
    /// Last flush, Unix ms (0 = never).
    pub last_flush_ms: u64,
    /// Last sign of life, Unix ms.
    pub heartbeat_ms: u64,
    /// Flushes made by this worker.
    pub flushes: u64,
}

/// First wait after a failed attempt; doubles on each failure.
const FIRST_BACKOFF_MS: u64 = 100;
/// Longest wait between attempts.
const MAX_BACKOFF_MS: u64 = 5_000;

/// When this process may try a failed operation again, and what failed.
/// Kept per process: a child of `fork` starts afresh (fork generation).
#[derive(Default)]
pub(crate) struct Backoff {
    gen: AtomicU32,
    /// Monotonic ms before which no new attempt is made (0 = none).
    until_ms: AtomicU64,
    /// Length of the last wait.
    step_ms: AtomicU64,
    /// What failed: `BACKOFF_*`.
    kind: AtomicU32,
    /// Holder pid, slot count or errno.
    detail: AtomicU32,
}

const BACKOFF_LOCK: u32 = 1;
const BACKOFF_FULL: u32 = 2;
const BACKOFF_IO: u32 = 3;

impl Backoff {
    /// The error to return at once while backing off, else `None` (try now).
    fn pending(&self, area: &AreaInner) -> Option<Error> {
        if self.gen.load(Ordering::Relaxed) != process::fork_generation() {
            return None;
        }
        let until = self.until_ms.load(Ordering::Relaxed);
        if until == 0 || process::monotonic_ms() >= until {
            return None;
        }
        let detail = self.detail.load(Ordering::Relaxed);
        Some(match self.kind.load(Ordering::Relaxed) {
            BACKOFF_LOCK => Error::LockTimeout(detail),
            BACKOFF_FULL => Error::WorkersFull(detail),
            _ => Error::io(
                "retry later (backing off after a failure) to attach to",
                area.display_path(),
                std::io::Error::from_raw_os_error(detail as i32),
            ),
        })
    }

    /// Note a failure: no new attempt before the (doubled) backoff.
    fn failed(&self, e: &Error) {
        let gen = process::fork_generation();
        let step = if self.gen.swap(gen, Ordering::Relaxed) == gen {
            (self.step_ms.load(Ordering::Relaxed) * 2).clamp(FIRST_BACKOFF_MS, MAX_BACKOFF_MS)
        } else {
            FIRST_BACKOFF_MS
        };
        let (kind, detail) = match e {
            Error::LockTimeout(pid) => (BACKOFF_LOCK, *pid),
            Error::WorkersFull(n) => (BACKOFF_FULL, *n),
            Error::Io { source, .. } => (
                BACKOFF_IO,
                source.raw_os_error().unwrap_or(libc::EAGAIN) as u32,
            ),
            _ => (BACKOFF_IO, libc::EAGAIN as u32),
        };
        self.kind.store(kind, Ordering::Relaxed);
        self.detail.store(detail, Ordering::Relaxed);
        self.step_ms.store(step, Ordering::Relaxed);
        self.until_ms
            .store(process::monotonic_ms() + step, Ordering::Relaxed);
    }

    /// Note a success: the next failure starts a fresh backoff.
    fn succeeded(&self) {
        if self.until_ms.load(Ordering::Relaxed) != 0 {
            self.until_ms.store(0, Ordering::Relaxed);
            self.step_ms.store(0, Ordering::Relaxed);
        }
    }

    /// Run `f` unless backing off; remember how it went.
    fn attempt<T>(&self, area: &AreaInner, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if let Some(e) = self.pending(area) {
            return Err(e);
        }
        let r = f();
        match &r {
            Ok(_) => self.succeeded(),
            Err(e) => self.failed(e),
        }
        r
    }
}

impl AreaInner {
    fn slot_u64(&self, slot: u32, field: usize) -> Option<&AtomicU64> {
        self.u64_at(self.slot_offset(slot)? + field)
    }

    fn slot_u32(&self, slot: u32, field: usize) -> Option<&AtomicU32> {
        self.u32_at(self.slot_offset(slot)? + field)
    }

    /// The in-flight overflow count of `slot` (`slot::OVERFLOW`).
    pub(super) fn slot_overflow(&self, slot: u32) -> Option<&AtomicU32> {
        self.slot_u32(slot, slot::OVERFLOW)
    }

    fn slot_offset(&self, slot: u32) -> Option<usize> {
        (slot < self.max_workers()).then(|| self.workers_offset + slot as usize * slot::SIZE)
    }

    /// Whether `slot` is in the table and live.
    pub(super) fn slot_is_live(&self, slot: u32) -> bool {
        self.slot_state(slot) == Some(SLOT_LIVE)
    }

    /// The generation of `slot` (times it was taken).
    pub(super) fn slot_generation(&self, slot: u32) -> Option<u32> {
        self.slot_u32(slot, slot::GENERATION)
            .map(|a| a.load(Ordering::Acquire))
    }

    fn slot_state(&self, slot: u32) -> Option<u32> {
        self.slot_u32(slot, slot::STATE)
            .map(|a| a.load(Ordering::Acquire))
    }

    /// This process's slot, attaching on first use and again after `fork`.
    #[inline]
    pub(crate) fn worker_slot(&self) -> Result<u32> {
        let w = self.worker.load(Ordering::Relaxed);
        let gen = process::fork_generation();
        if w != 0 && (w >> 32) as u32 == gen {
            return Ok((w as u32) - 1);
        }
        self.attach_slow(gen)
    }

    #[cold]
    fn attach_slow(&self, gen: u32) -> Result<u32> {
        self.check_writable()?;
        self.attach_backoff
            .attempt(self, || self.attach_locked(gen))
    }

    fn attach_locked(&self, gen: u32) -> Result<u32> {
        let me = process::identity();
        let my_ns = process::pid_namespace();
        let guard = self.lock_within(ATTACH_WAIT)?;
        // Another thread of this process may have attached meanwhile.
        let w = self.worker.load(Ordering::Relaxed);
        if w != 0 && (w >> 32) as u32 == gen {
            return Ok((w as u32) - 1);
        }
        let take = |s: u32| -> Result<u32> {
            if let Some(fd) = guard.lock_fd() {
                // Our sign of life, which the kernel drops when we die.
                let locked = ofd::try_lock(fd, libc::F_RDLCK, SLOT_LOCK_BASE + i64::from(s))
                    .map_err(|e| Error::io("lock a worker slot of", self.display_path(), e))?;
                if !locked {
                    // Slot bytes only ever carry read locks: damaged state.
                    return Err(Error::CorruptArea(format!(
                        "worker slot {s} is write-locked by another process"
                    )));
                }
            }
            Ok(s)
        };
        let mine = |s: u32| {
            self.set_worker((u64::from(gen) << 32) | u64::from(s + 1));
            s
        };
        // A slot already ours (the area mapped twice in this process)? Only
        // with a known identity and namespace: never mistake another
        // process (of another namespace, say) for us.
        if let Some(me) = me.filter(|_| my_ns != 0) {
            for s in 0..self.max_workers() {
                let (id, ns) = self.slot_owner(s);
                if self.slot_state(s) == Some(SLOT_LIVE) && id == Some(me) && ns == Some(my_ns) {
                    return take(s).map(mine);
                }
            }
        }
        // A free slot whose byte nobody locks (a lock there would be a
        // stray: never share a slot with it).
        let free_slot = || {
            (0..self.max_workers()).find(|&s| {
                self.slot_state(s) == Some(SLOT_FREE)
                    && (!self.ofd || self.slot_locked(s) == Some(false))
            })
        };
        let slot = match free_slot() {
            Some(s) => s,
            None => {
                self.reap_locked(&guard);
                free_slot().ok_or(Error::WorkersFull(self.max_workers()))?
            }
        };
        // Without OFD locks `lock_within` only succeeds with a known identity.
        let identity = me.unwrap_or(u64::from(process::pid()));
        let now = process::now_ms();
        let set = |f: usize, v: u64| {
            if let Some(a) = self.slot_u64(slot, f) {
                a.store(v, Ordering::Relaxed)
            }
        };
        take(slot)?;
        set(slot::IDENTITY, identity);
        set(slot::PID_NS, my_ns);
        set(slot::START_TIME, process::start_time().unwrap_or(0));
        set(slot::HEARTBEAT_MS, now);
        set(slot::LAST_FLUSH_MS, 0);
        set(slot::ATTACHED_MS, now);
        // `FLUSHES` and `OVERFLOW` (two u32 words).
        set(slot::FLUSHES, 0);
        if let Some(g) = self.slot_u32(slot, slot::GENERATION) {
            g.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(s) = self.slot_u32(slot, slot::STATE) {
            s.store(SLOT_LIVE, Ordering::Release);
        }
        Ok(mine(slot))
    }

    /// The identity word and pid namespace recorded in `slot` (`None` for a
    /// slot outside the table).
    fn slot_owner(&self, slot: u32) -> (Option<u64>, Option<u64>) {
        let read = |f| self.slot_u64(slot, f).map(|a| a.load(Ordering::Relaxed));
        (read(slot::IDENTITY), read(slot::PID_NS))
    }

    /// Whether some process holds the liveness lock of `slot` (OFD mode).
    /// `None` when the kernel cannot tell.
    fn slot_locked(&self, slot: u32) -> Option<bool> {
        // The kept file never holds locks, so every holder shows, this
        // process's own lock descriptors included.
        let fd = self.file.get(self.path.as_deref())?;
        ofd::is_locked(fd, SLOT_LOCK_BASE + i64::from(slot)).ok()
    }

    /// Whether the holder of a live slot is alive, as far as we can tell:
    /// `false` only when that is certain.
    pub(super) fn slot_holder_alive(&self, s: u32) -> bool {
        if self.ofd {
            return self.slot_locked(s) != Some(false);
        }
        let (id, ns) = self.slot_owner(s);
        let id = id.unwrap_or(0);
        let my_ns = process::pid_namespace();
        // A pid means nothing outside its namespace: never judged dead there.
        my_ns == 0 || ns != Some(my_ns) || process::is_alive(id)
    }

    /// After this process's lock descriptor was closed by someone else (its
    /// locks went with it): under the area lock, lock our slot again on the
    /// new descriptor if it is still ours, else forget it (the next gauge
    /// write attaches afresh).
    pub(crate) fn relock_own_slot(&self, fd: std::os::fd::RawFd) {
        let w = self.worker.load(Ordering::Relaxed);
        if w == 0 || (w >> 32) as u32 != process::fork_generation() {
            return;
        }
        let s = (w as u32) - 1;
        let (id, ns) = self.slot_owner(s);
        let ours = self.slot_state(s) == Some(SLOT_LIVE)
            && id.map(process::identity_pid) == Some(process::pid())
            && ns == Some(process::pid_namespace());
        if !(ours
            && matches!(
                ofd::try_lock(fd, libc::F_RDLCK, SLOT_LOCK_BASE + i64::from(s)),
                Ok(true)
            ))
        {
            self.set_worker(0);
        }
    }

    /// Change this process's worker word, and with it the key under which
    /// threads cache their lanes (a lane belongs to the slot it was claimed
    /// for): first the word, then the key, so that a thread that reads the
    /// new key sees the new word.
    fn set_worker(&self, word: u64) {
        self.worker.store(word, Ordering::Relaxed);
        self.lane_key
            .store(super::epoch::new_area_id(), Ordering::Release);
    }

    /// Note a flush by this process in its slot (if attached).
    pub(crate) fn note_flush(&self) {
        if self.read_only {
            return;
        }
        self.bump(hdr::STAT_FLUSHES, 1);
        if self.ofd && self.lock_fd.is_lost() {
            // Our slot's lock went with the descriptor: restore it now.
            let _ = self.lock_within(BRIEF_WAIT);
        }
        if let Ok(s) = self.worker_slot() {
            let now = process::now_ms();
            if let Some(a) = self.slot_u64(s, slot::LAST_FLUSH_MS) {
                a.store(now, Ordering::Relaxed);
            }
            if let Some(a) = self.slot_u64(s, slot::HEARTBEAT_MS) {
                a.store(now, Ordering::Relaxed);
            }
            if let Some(a) = self.slot_u32(s, slot::FLUSHES) {
                a.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn worker_infos(&self) -> Vec<WorkerInfo> {
        let mut out = Vec::new();
        for s in 0..self.max_workers() {
            if self.slot_state(s) != Some(SLOT_LIVE) {
                continue;
            }
            let get = |f| {
                self.slot_u64(s, f)
                    .map(|a| a.load(Ordering::Relaxed))
                    .unwrap_or(0)
            };
            let id = get(slot::IDENTITY);
            out.push(WorkerInfo {
                slot: s,
                pid: process::identity_pid(id),
                start_time: get(slot::START_TIME),
                generation: self
                    .slot_u32(s, slot::GENERATION)
                    .map(|a| a.load(Ordering::Relaxed))
                    .unwrap_or(0),
                alive: self.slot_holder_alive(s),
                attached_ms: get(slot::ATTACHED_MS),
                last_flush_ms: get(slot::LAST_FLUSH_MS),
                heartbeat_ms: get(slot::HEARTBEAT_MS),
                flushes: self
                    .slot_u32(s, slot::FLUSHES)
                    .map(|a| u64::from(a.load(Ordering::Relaxed)))
                    .unwrap_or(0),
            });
        }
        out
    }

    /// Whether this process may judge and reap slots at all.
    fn can_reap(&self) -> bool {
        !self.read_only && (self.ofd || self.same_pid_ns)
    }

    /// Reap in passing (renders): wait for the lock at most `BRIEF_WAIT`,
    /// and after a failure not again before a backoff has passed.
    pub(crate) fn reap_dead_workers(&self) -> Result<u32> {
        if !self.can_reap() || !self.reap_needed() {
            return Ok(0);
        }
        self.reap_backoff.attempt(self, || {
            let guard = self.lock_within(BRIEF_WAIT)?;
            Ok(self.reap_locked(&guard))
        })
    }

    /// Reap on request: wait for the lock as long as any registration.
    pub(crate) fn reap_dead_workers_now(&self) -> Result<u32> {
        if !self.can_reap() || !self.reap_needed() {
            return Ok(0);
        }
        let guard = self.lock_within(LOCK_TIMEOUT)?;
        Ok(self.reap_locked(&guard))
    }

    /// Whether a reap has anything to do: a dead slot, or a fold a killed
    /// reaper left unfinished.
    fn reap_needed(&self) -> bool {
        !self.dead_slots().is_empty() || self.fold_unfinished()
    }

    /// Live slots whose process is certainly gone.
    fn dead_slots(&self) -> Vec<u32> {
        (0..self.max_workers())
            .filter(|&s| self.slot_state(s) == Some(SLOT_LIVE) && !self.slot_holder_alive(s))
            .collect()
    }

    /// Whether a reaper died before finishing: a gauge fold step is still
    /// open (odd fold sequence) or a slot is still being reaped.
    fn fold_unfinished(&self) -> bool {
        self.hdr(hdr::FOLD_SEQ).load(Ordering::Acquire) & 1 == 1
            || (0..self.max_workers()).any(|s| self.slot_reaping(s))
    }

    /// Whether slot `s` is being reaped (its gauge values are being folded).
    pub(crate) fn slot_reaping(&self, s: u32) -> bool {
        self.slot_u32(s, slot::STATE)
            .map(|a| a.load(Ordering::Acquire))
            == Some(SLOT_REAPING)
    }

    fn reap_locked(&self, _guard: &super::AreaLockGuard<'_>) -> u32 {
        if !self.can_reap() {
            return 0;
        }
        let dead = self.dead_slots();
        if dead.is_empty() && !self.fold_unfinished() {
            return 0;
        }
        // A killed reaper's open fold step covers the slots it left
        // REAPING, and only those: finish it before any other slot turns
        // REAPING (readers of its series skip every REAPING slot).
        let unfinished: Vec<u32> = (0..self.max_workers())
            .filter(|&s| self.slot_reaping(s))
            .collect();
        super::gauge_fold::finish_open_fold(self, &unfinished);
        // Mark the slots first: a reaper killed from here on leaves them
        // REAPING (never taken, never judged again), and the next reaper
        // finishes their fold (folding a slot twice adds nothing: a folded
        // slot's cells are zero).
        for &s in &dead {
            if let Some(a) = self.slot_u32(s, slot::STATE) {
                a.store(SLOT_REAPING, Ordering::Release);
            }
        }
        let reaped: Vec<u32> = (0..self.max_workers())
            .filter(|&s| self.slot_reaping(s))
            .collect();
        super::gauge_fold::fold_dead_slots(self, &reaped);
        for &s in &reaped {
            if let Some(a) = self.slot_u32(s, slot::STATE) {
                a.store(SLOT_FREE, Ordering::Release);
            }
            self.clear_lanes_of_slot(s);
            // A dead writer's in-flight overflow count goes with its slot.
            if let Some(a) = self.slot_overflow(s) {
                a.store(0, Ordering::Release);
            }
        }
        self.bump(hdr::STAT_REAPED, reaped.len() as u64);
        reaped.len() as u32
    }
}
