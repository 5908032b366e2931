//! The area lock: serializes allocation, registration, slot changes and
//! reaping across processes. Never taken on the update path.
//!
//! One u64 word in the header holds the owner's identity (`pid | start
//! time << 32`). A waiter that finds the owner dead (SIGKILL, OOM) takes the
//! lock over with a compare-exchange, so a dying holder never blocks others.
//! Every critical section leaves the area consistent at each step (records
//! are committed last), so a takeover needs no repair.
//! Threads of one process queue on a process-local mutex first.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::format::hdr;
use super::AreaInner;
use crate::error::{Error, Result};
use crate::process;

/// How long a waiter waits for a live holder before giving up.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Holds the area lock until dropped.
pub(crate) struct AreaLockGuard<'a> {
    area: &'a AreaInner,
    me: u64,
    _local: std::sync::MutexGuard<'a, ()>,
}

impl AreaInner {
    /// Take the area lock, taking it over from a dead holder if needed.
    pub(crate) fn lock(&self) -> Result<AreaLockGuard<'_>> {
        self.check_writable()?;
        let local = super::fork::lock(&self.local_lock);
        let me = process::identity();
        let word = self.hdr(hdr::LOCK);
        let start = Instant::now();
        let mut spins = 0u32;
        let mut next_check = Duration::from_millis(2);
        loop {
            match word.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => {
                    return Ok(AreaLockGuard {
                        area: self,
                        me,
                        _local: local,
                    })
                }
                Err(owner) => {
                    let waited = start.elapsed();
                    // `owner == me` is never a leftover to take over: guards
                    // release on unwind, and another mapping of the same area in
                    // this process (its own local mutex, the same identity) may
                    // hold it right now. We are alive, so we wait like anyone.
                    if waited >= next_check {
                        next_check = waited + Duration::from_millis(2);
                        if self.same_pid_ns
                            && !process::is_alive(owner)
                            && word
                                .compare_exchange(owner, me, Ordering::Acquire, Ordering::Relaxed)
                                .is_ok()
                        {
                            self.bump(hdr::STAT_LOCK_RECOVERED, 1);
                            return Ok(AreaLockGuard {
                                area: self,
                                me,
                                _local: local,
                            });
                        }
                    }
                    if waited > LOCK_TIMEOUT {
                        return Err(Error::LockTimeout(process::identity_pid(owner)));
                    }
                    spins += 1;
                    if spins < 64 {
                        std::hint::spin_loop();
                    } else if spins < 128 {
                        std::thread::yield_now();
                    } else {
                        std::thread::sleep(Duration::from_micros(50));
                    }
                }
            }
        }
    }
}

impl Drop for AreaLockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.area.hdr(hdr::LOCK).compare_exchange(
            self.me,
            0,
            Ordering::Release,
            Ordering::Relaxed,
        );
    }
}
