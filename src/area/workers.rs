//! The worker table: one slot per attached process, identified by
//! `(pid, process start time)`. Dead processes are found by asking the
//! kernel (no hook needed: SIGKILL and OOM run none) and their slots are
//! reused after their gauge values are folded as each gauge's mode says.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::format::*;
use super::AreaInner;
use crate::error::{Error, Result};
use crate::process;

/// One row of the worker table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Slot index (the `worker` label of `all`-mode gauges).
    pub slot: u32,
    /// Process id.
    pub pid: u32,
    /// Process start time, clock ticks since boot.
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

impl AreaInner {
    fn slot_u64(&self, slot: u32, field: usize) -> Option<&AtomicU64> {
        self.u64_at(self.slot_offset(slot)? + field)
    }

    fn slot_u32(&self, slot: u32, field: usize) -> Option<&AtomicU32> {
        self.u32_at(self.slot_offset(slot)? + field)
    }

    fn slot_offset(&self, slot: u32) -> Option<usize> {
        (slot < self.max_workers()).then(|| self.workers_offset + slot as usize * slot::SIZE)
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
        let me = process::identity();
        let guard = self.lock()?;
        // Another thread of this process may have attached meanwhile.
        let w = self.worker.load(Ordering::Relaxed);
        if w != 0 && (w >> 32) as u32 == gen {
            return Ok((w as u32) - 1);
        }
        // A slot already ours (re-opened area in the same process)?
        let mut free = None;
        for s in 0..self.max_workers() {
            let state = self
                .slot_u32(s, slot::STATE)
                .map(|a| a.load(Ordering::Acquire));
            let id = self
                .slot_u64(s, slot::IDENTITY)
                .map(|a| a.load(Ordering::Relaxed));
            if state == Some(SLOT_LIVE) && id == Some(me) {
                self.worker
                    .store((u64::from(gen) << 32) | u64::from(s + 1), Ordering::Relaxed);
                return Ok(s);
            }
            if state == Some(SLOT_FREE) && free.is_none() {
                free = Some(s);
            }
        }
        let slot = match free {
            Some(s) => s,
            None => {
                self.reap_locked(&guard);
                (0..self.max_workers())
                    .find(|&s| {
                        self.slot_u32(s, slot::STATE)
                            .map(|a| a.load(Ordering::Acquire))
                            == Some(SLOT_FREE)
                    })
                    .ok_or(Error::WorkersFull(self.max_workers()))?
            }
        };
        let now = process::now_ms();
        let set = |f: usize, v: u64| {
            if let Some(a) = self.slot_u64(slot, f) {
                a.store(v, Ordering::Relaxed)
            }
        };
        set(slot::IDENTITY, me);
        set(slot::PID_NS, process::pid_namespace());
        set(slot::START_TIME, process::start_time());
        set(slot::HEARTBEAT_MS, now);
        set(slot::LAST_FLUSH_MS, 0);
        set(slot::ATTACHED_MS, now);
        set(slot::FLUSHES, 0);
        if let Some(g) = self.slot_u32(slot, slot::GENERATION) {
            g.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(s) = self.slot_u32(slot, slot::STATE) {
            s.store(SLOT_LIVE, Ordering::Release);
        }
        self.worker.store(
            (u64::from(gen) << 32) | u64::from(slot + 1),
            Ordering::Relaxed,
        );
        Ok(slot)
    }

    /// Note a flush by this process in its slot (if attached).
    pub(crate) fn note_flush(&self) {
        if self.read_only {
            return;
        }
        self.bump(hdr::STAT_FLUSHES, 1);
        if let Ok(s) = self.worker_slot() {
            let now = process::now_ms();
            if let Some(a) = self.slot_u64(s, slot::LAST_FLUSH_MS) {
                a.store(now, Ordering::Relaxed);
            }
            if let Some(a) = self.slot_u64(s, slot::HEARTBEAT_MS) {
                a.store(now, Ordering::Relaxed);
            }
            if let Some(a) = self.slot_u64(s, slot::FLUSHES) {
                a.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn worker_infos(&self) -> Vec<WorkerInfo> {
        let mut out = Vec::new();
        for s in 0..self.max_workers() {
            let state = self
                .slot_u32(s, slot::STATE)
                .map(|a| a.load(Ordering::Acquire));
            if state != Some(SLOT_LIVE) {
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
                alive: process::is_alive(id),
                attached_ms: get(slot::ATTACHED_MS),
                last_flush_ms: get(slot::LAST_FLUSH_MS),
                heartbeat_ms: get(slot::HEARTBEAT_MS),
                flushes: get(slot::FLUSHES),
            });
        }
        out
    }

    pub(crate) fn reap_dead_workers(&self) -> Result<u32> {
        if self.read_only || !self.same_pid_ns {
            return Ok(0);
        }
        if self.dead_slots().is_empty() && !self.fold_unfinished() {
            return Ok(0);
        }
        let guard = self.lock()?;
        Ok(self.reap_locked(&guard))
    }

    /// Live slots whose process is gone.
    fn dead_slots(&self) -> Vec<u32> {
        let my_ns = process::pid_namespace();
        (0..self.max_workers())
            .filter(|&s| {
                let live = self
                    .slot_u32(s, slot::STATE)
                    .map(|a| a.load(Ordering::Acquire))
                    == Some(SLOT_LIVE);
                if !live {
                    return false;
                }
                let ns = self
                    .slot_u64(s, slot::PID_NS)
                    .map(|a| a.load(Ordering::Relaxed));
                let id = self
                    .slot_u64(s, slot::IDENTITY)
                    .map(|a| a.load(Ordering::Relaxed))
                    .unwrap_or(0);
                ns == Some(my_ns) && !process::is_alive(id)
            })
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
        if !self.same_pid_ns {
            return 0;
        }
        let dead = self.dead_slots();
        if dead.is_empty() && !self.fold_unfinished() {
            return 0;
        }
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
        crate::metrics::gauge::fold_dead_slots(self, &reaped);
        for &s in &reaped {
            if let Some(a) = self.slot_u32(s, slot::STATE) {
                a.store(SLOT_FREE, Ordering::Release);
            }
        }
        self.bump(hdr::STAT_REAPED, reaped.len() as u64);
        reaped.len() as u32
    }
}
