//! In-flight write announcements ("lanes", `docs/FORMAT.md` §6.5): no
//! stale handle ever stores into a record's new owner.
//!
//! A handle checks its record's generation before it writes a cell; the
//! record may be freed (and, after its grace period, reused) between that
//! check and the store. So every writer first announces its write in a
//! *lane* of the header page: `lane = epoch + 1`, where `epoch` is the
//! latest generation the area published (`hdr::LANE_EPOCH`, stored after
//! the record's new generation under the lock), then checks the
//! generation, stores, and clears the lane (`0`, release). A reclaimer
//! about to reuse a hole of generation `g` defers it while any live lane
//! shows a write that began before `g` was published (`lane - 1 < g`):
//! such a writer may have read the old generation. A writer whose lane
//! shows `epoch >= g` read the published word after the hole's generation
//! was stored, so its check fails.
//!
//! The writer's lane store is a plain store followed by its generation
//! load: the StoreLoad order is enforced on the reclaimer's side by
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, issued at most once for
//! every hole published before it (`barrier_gen`), before it reads the lanes.
//! Where membarrier is unavailable, the area's creator sets
//! `LANE_SEQCST` in the epoch word and every writer then stores its lane
//! with `SeqCst` (a full fence); a process that cannot issue the barrier on
//! an area without that bit does not reuse holes at all (fresh space only).
//!
//! A thread claims a lane once (compare-exchange of its owner word to its
//! process's slot and slot generation) and caches it in a thread-local
//! under the area's lane key, a process-unique number that changes
//! whenever the process's worker word does (the fast path compares that one
//! word); the child of a `fork` forgets the forking thread's cache and
//! claims its own. A thread gives its lanes back at thread exit. A lane whose owner slot is not
//! live with that generation is dead: it never defers a hole and may be
//! claimed again. Threads without a lane (every lane taken, or the thread
//! is exiting) count themselves in their process's worker slot
//! (`slot::OVERFLOW`, atomic add, a full fence) around their write; while a
//! live slot with a live holder has a count that is not 0 no hole is
//! reused, and a reap clears a dead process's count with its slot. A
//! process without a slot (the table is full) holds the area lock instead
//! (a dead holder's lock goes with it).

use std::cell::{Cell, RefCell};
use std::sync::atomic::{compiler_fence, fence, AtomicU32, AtomicU64, Ordering};

use super::format::*;
use super::AreaInner;
use crate::process;

/// The thread's cached lane: which area (its process-unique id), which fork
/// generation, and the lane's epoch word.
#[derive(Clone, Copy)]
struct LaneCache {
    /// The area's `lane_key` when the lane was cached, or 0 (never a key)
    /// where the fast path must not take it (`seqcst`). The fast path
    /// compares only this: the key changes with the worker word, and the
    /// forking thread's cache is forgotten in the child (`forget_in_child`).
    key: u64,
    area: u64,
    fork: u32,
    /// The area's `worker` word (slot and fork generation) at the claim: a
    /// slot lost and taken again means another lane.
    worker: u64,
    /// Store the lane with `SeqCst` (this process could not register for
    /// the expedited barrier).
    seqcst: bool,
    lane: *const AtomicU64,
}

const NO_LANE: LaneCache = LaneCache {
    key: 0,
    area: 0,
    fork: u32::MAX,
    worker: u64::MAX,
    seqcst: false,
    lane: std::ptr::null(),
};

thread_local! {
    /// The last area this thread wrote to, and its lane there.
    static LANE: Cell<LaneCache> = const { Cell::new(NO_LANE) };
    /// Every lane this thread claimed, given back at thread exit.
    static CLAIMED: RefCell<Claimed> = const {
        RefCell::new(Claimed { lanes: Vec::new(), prune_at: PRUNE_MIN })
    };
}

/// One lane claimed by this thread.
struct ClaimedLane {
    /// The `AreaInner`'s address and id (an address may be reused).
    addr: usize,
    area: u64,
    fork: u32,
    worker: u64,
    index: usize,
    owner: u64,
    seqcst: bool,
}

struct Claimed {
    lanes: Vec<ClaimedLane>,
    /// Length at which `push` next forgets the claims of areas gone.
    prune_at: usize,
}

/// `Claimed::prune_at` after a prune that left nothing (and at first).
const PRUNE_MIN: usize = 16;

impl Claimed {
    /// Add a claim. First, once the list has doubled since the last time,
    /// forget the claims of areas gone and of an earlier fork generation
    /// (nobody gives those back): a thread that writes to many short-lived
    /// areas (a private area per `registry=None` metric) keeps a short list.
    fn push(&mut self, claim: ClaimedLane) {
        if self.lanes.len() >= self.prune_at {
            let fork = process::fork_generation();
            self.lanes.retain(|l| l.fork == fork);
            super::fork::retain_live_areas(&mut self.lanes, |l| (l.addr, l.area));
            self.prune_at = (self.lanes.len() * 2).max(PRUNE_MIN);
        }
        self.lanes.push(claim);
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        let fork = process::fork_generation();
        let claims = std::mem::take(&mut self.lanes);
        for c in claims.iter().filter(|c| c.fork == fork) {
            super::fork::with_live_area(c.addr, c.area, |area| {
                area.give_back_lane(c.index, c.owner)
            });
        }
    }
}

/// Make the child of a `fork` forget the forking thread's cached lane (the
/// parent's; the child claims its own). Registered once, before any lane
/// is cached; the handler only writes a `Copy` thread-local without
/// destructor (no allocation, no lock).
fn forget_in_child() {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    extern "C" fn forget() {
        let _ = LANE.try_with(|l| l.set(NO_LANE));
    }
    REGISTER.call_once(|| {
        // SAFETY: registers a child handler that only stores a thread-local
        // `Cell` of plain data; no prepare or parent handler.
        unsafe {
            libc::pthread_atfork(None, None, Some(forget));
        }
    });
}

/// Ids of `AreaInner`s: never 0, never reused in a process.
static NEXT_AREA_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh area id.
pub(crate) fn new_area_id() -> u64 {
    NEXT_AREA_ID.fetch_add(1, Ordering::Relaxed)
}

/// A write in flight: the lane (or the overflow count, or the area lock)
/// is cleared when it is dropped. Hold it from before the generation check
/// until after the last store.
pub(crate) struct WriteGuard<'a> {
    word: Option<&'a AtomicU64>,
    /// Only without `word`; dropped by hand in `drop`, so that the fast
    /// path has no drop glue to call (an `Option<SlowGuard>` field cost
    /// a call of it on every write, 10 instructions).
    slow: std::mem::ManuallyDrop<Option<Box<SlowGuard<'a>>>>,
}

/// A write in flight without a lane of its own.
enum SlowGuard<'a> {
    /// Counted in this process's worker slot (`slot::OVERFLOW`).
    Overflow(&'a AtomicU32),
    /// No worker slot: the write holds the area lock, under which every
    /// reuse check runs (a dead holder's lock goes with it).
    Locked(#[allow(dead_code)] super::AreaLockGuard<'a>),
    /// Neither could be had (see `overflow_write`).
    Unannounced,
}

impl Drop for SlowGuard<'_> {
    fn drop(&mut self) {
        if let SlowGuard::Overflow(w) = self {
            w.fetch_sub(1, Ordering::Release);
        }
    }
}

impl Drop for WriteGuard<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(w) = self.word {
            w.store(0, Ordering::Release);
        } else {
            end_slow_write(self.slow.take());
        }
    }
}

/// The end of a write without a lane (its guard dropped).
#[cold]
#[inline(never)]
fn end_slow_write(slow: Option<Box<SlowGuard<'_>>>) {
    drop(slow);
}

/// `membarrier(2)` commands.
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

/// Fork generation + 1 for which this process registered for the expedited
/// barrier (0 = not yet); `REGISTERED_OK` says whether it worked.
static REGISTERED_GEN: AtomicU32 = AtomicU32::new(0);
static REGISTERED_OK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Tests force "membarrier unavailable" with this (never set otherwise).
static NO_MEMBARRIER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Test support: behave as if `membarrier(2)` were refused (seccomp,
/// `nohz_full`) in this process from now on.
#[cfg(feature = "test-hooks")]
pub fn test_disable_membarrier() {
    NO_MEMBARRIER.store(true, Ordering::Relaxed);
}

fn membarrier(cmd: libc::c_int) -> bool {
    if NO_MEMBARRIER.load(Ordering::Relaxed) {
        return false;
    }
    // SAFETY: membarrier takes two integers (and a cpu id, unused here) and
    // touches no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_uint,
            0 as libc::c_int,
        ) == 0
    }
}

/// Register this process (once per fork generation) for the expedited
/// barrier; whether it is registered.
fn registered() -> bool {
    let gen = process::fork_generation().wrapping_add(1);
    if REGISTERED_GEN.load(Ordering::Acquire) != gen {
        let ok = membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED);
        REGISTERED_OK.store(ok, Ordering::Relaxed);
        REGISTERED_GEN.store(gen, Ordering::Release);
    }
    REGISTERED_OK.load(Ordering::Relaxed)
}

/// Whether this process can issue the barrier (probed by an area's creator).
pub(crate) fn barrier_available() -> bool {
    registered() && membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)
}

/// Test support: a hook between a handle's generation check and its store.
#[cfg(feature = "test-hooks")]
pub mod hook {
    use std::sync::atomic::{AtomicBool, Ordering};

    static STOP_AFTER_CHECK: AtomicBool = AtomicBool::new(false);

    /// The next write that passed its generation check stops this process
    /// (`SIGSTOP`) before its store.
    pub fn stop_after_next_check() {
        STOP_AFTER_CHECK.store(true, Ordering::SeqCst);
    }

    #[inline]
    pub(crate) fn after_check() {
        if STOP_AFTER_CHECK.swap(false, Ordering::SeqCst) {
            // SAFETY: raise has no memory preconditions.
            unsafe { libc::raise(libc::SIGSTOP) };
        }
    }
}

/// What the lanes say about reusing a hole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reuse {
    /// No write that began before the hole was freed is in flight.
    Safe,
    /// One may be: try again later.
    Defer,
    /// This process cannot tell (no barrier on an area without
    /// `LANE_SEQCST`): never reuse holes.
    Never,
}

impl AreaInner {
    #[inline(always)]
    fn lane_word(&self, index: usize, field: usize) -> &AtomicU64 {
        self.hdr(LANES + index * LANE_SIZE + field)
    }

    /// Announce a write (see the module). Cheap: a thread-local read, the
    /// key and epoch loads, one plain store (and a compiler fence).
    #[inline(always)]
    pub(crate) fn begin_write(&self) -> WriteGuard<'_> {
        let (key, lane) = LANE.with(|l| {
            let c = l.get();
            (c.key, c.lane)
        });
        let epoch = self.hdr(hdr::LANE_EPOCH).load(Ordering::Acquire);
        if key == self.lane_key.load(Ordering::Acquire) && epoch & LANE_SEQCST == 0 {
            // SAFETY: `lane` is a word of this area's header page (the key
            // is this area's, unique in the process), which lives as long
            // as self.
            let lane = unsafe { &*lane };
            lane.store(epoch + 1, Ordering::Relaxed);
            // The StoreLoad order with the generation load that follows is
            // the reclaimer's barrier's business; the compiler must keep it.
            compiler_fence(Ordering::SeqCst);
            return WriteGuard {
                word: Some(lane),
                slow: std::mem::ManuallyDrop::new(None),
            };
        }
        self.begin_write_slow(epoch)
    }

    #[cold]
    #[inline(never)]
    fn begin_write_slow(&self, epoch: u64) -> WriteGuard<'_> {
        if self.read_only {
            // Nothing is written through a read-only mapping.
            return WriteGuard {
                word: None,
                slow: std::mem::ManuallyDrop::new(None),
            };
        }
        let fork = process::fork_generation();
        // The key before the worker word, as in `lane_for_thread`.
        let key = self.lane_key.load(Ordering::Acquire);
        let mut c = LANE.with(Cell::get);
        if c.area == self.id && c.fork == fork && c.worker == self.worker.load(Ordering::Relaxed) {
            if !c.seqcst && c.key != key {
                // The word was stored again with the same value: same lane.
                c.key = key;
                LANE.with(|l| l.set(c));
            }
        } else {
            match self.lane_for_thread(fork) {
                Some(found) => {
                    c = found;
                    LANE.with(|l| l.set(c));
                }
                None => {
                    return WriteGuard {
                        word: None,
                        slow: std::mem::ManuallyDrop::new(Some(Box::new(self.overflow_write()))),
                    };
                }
            }
        }
        // SAFETY: as in `begin_write`.
        let lane = unsafe { &*c.lane };
        let value = (epoch & !LANE_SEQCST) + 1;
        if epoch & LANE_SEQCST != 0 || c.seqcst {
            lane.store(value, Ordering::SeqCst);
            fence(Ordering::SeqCst);
        } else {
            lane.store(value, Ordering::Relaxed);
            compiler_fence(Ordering::SeqCst);
        }
        WriteGuard {
            word: Some(lane),
            slow: std::mem::ManuallyDrop::new(None),
        }
    }

    /// A write without a lane (every lane taken, or no worker slot): count
    /// it in this process's slot, or else hold the area lock.
    fn overflow_write(&self) -> SlowGuard<'_> {
        let slot = match self.worker_slot() {
            Ok(slot) => Some(slot),
            Err(crate::error::Error::WorkersFull(_)) => None,
            // The attach timed out on the area lock just now, or backs off
            // after it did: waiting for that lock again on every write would
            // stall each one behind a slow holder. Unannounced (counted in
            // `stat_lock_timeouts` by the attach).
            Err(_) => return SlowGuard::Unannounced,
        };
        if let Some((slot, count)) = slot.and_then(|s| Some((s, self.slot_overflow(s)?))) {
            let high = self.hdr(hdr::OVERFLOW_HIGH);
            if high.load(Ordering::Acquire) <= u64::from(slot) {
                // Before the count is raised: the reuse check reads the
                // counts of the slots below it.
                high.fetch_max(u64::from(slot) + 1, Ordering::SeqCst);
            }
            count.fetch_add(1, Ordering::SeqCst);
            // Ordered before the generation load (as with `LANE_SEQCST`).
            fence(Ordering::SeqCst);
            return SlowGuard::Overflow(count);
        }
        // No slot (the worker table is full): the area lock, under which
        // every reuse check runs. If it cannot be had briefly (another
        // process holds it that long, or this thread does — then no reuse
        // check runs meanwhile either), the write goes on unannounced; the
        // wait is counted in `stat_lock_timeouts`.
        match self.lock_within(super::lock::BRIEF_WAIT) {
            Ok(g) => SlowGuard::Locked(g),
            Err(_) => SlowGuard::Unannounced,
        }
    }

    /// This thread's lane in this area: one it claimed before, or a new one.
    fn lane_for_thread(&self, fork: u32) -> Option<LaneCache> {
        if self.read_only {
            return None;
        }
        forget_in_child();
        let me = self as *const AreaInner as usize;
        // The key before the worker word (`set_worker` stores them the
        // other way round): a key read here is never newer than the word.
        let key = self.lane_key.load(Ordering::Acquire);
        let worker = self.worker.load(Ordering::Relaxed);
        let known = CLAIMED
            .try_with(|cl| {
                cl.borrow().lanes.iter().find_map(|l| {
                    (l.addr == me && l.area == self.id && l.fork == fork && l.worker == worker)
                        .then(|| LaneCache {
                            key: if l.seqcst { 0 } else { key },
                            area: self.id,
                            fork,
                            worker,
                            seqcst: l.seqcst,
                            lane: self.lane_word(l.index, lane::EPOCH),
                        })
                })
            })
            .ok()?;
        if known.is_some() {
            return known;
        }
        let slot = self.worker_slot().ok()?;
        let key = self.lane_key.load(Ordering::Acquire);
        let worker = self.worker.load(Ordering::Relaxed);
        let sgen = self.slot_generation(slot)?;
        let owner = u64::from(slot + 1) | u64::from(sgen) << 32;
        // Registered for the barrier, or else this thread's stores are SeqCst.
        let seqcst = !registered();
        for i in 0..LANE_COUNT {
            let o = self.lane_word(i, lane::OWNER);
            let cur = o.load(Ordering::Acquire);
            if (cur == 0 || !self.lane_owner_live(cur))
                && o.compare_exchange(cur, owner, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                // Before any announcement in it (the reuse check reads
                // lanes below `LANE_HIGH` only).
                self.hdr(hdr::LANE_HIGH)
                    .fetch_max(i as u64 + 1, Ordering::SeqCst);
                self.lane_word(i, lane::EPOCH).store(0, Ordering::Release);
                let claimed = CLAIMED.try_with(|cl| {
                    cl.borrow_mut().push(ClaimedLane {
                        addr: me,
                        area: self.id,
                        fork,
                        worker,
                        index: i,
                        owner,
                        seqcst,
                    })
                });
                if claimed.is_err() {
                    // The thread is exiting: nobody would give it back.
                    self.give_back_lane(i, owner);
                    return None;
                }
                return Some(LaneCache {
                    key: if seqcst { 0 } else { key },
                    area: self.id,
                    fork,
                    worker,
                    seqcst,
                    lane: self.lane_word(i, lane::EPOCH),
                });
            }
        }
        None
    }

    /// Give back lane `index` if `owner` still holds it (thread exit).
    pub(crate) fn give_back_lane(&self, index: usize, owner: u64) {
        if index < LANE_COUNT && !self.read_only {
            let o = self.lane_word(index, lane::OWNER);
            if o.load(Ordering::Acquire) == owner {
                self.lane_word(index, lane::EPOCH)
                    .store(0, Ordering::Release);
                let _ = o.compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
    }

    /// Whether a lane owner word names a live slot of that generation.
    fn lane_owner_live(&self, owner: u64) -> bool {
        let slot = (owner as u32).wrapping_sub(1);
        self.slot_is_live(slot) && self.slot_generation(slot) == Some((owner >> 32) as u32)
    }

    /// Whether holes of generation `gen` may be reused now (under the lock):
    /// the barrier (once for every hole published before it), then the lanes.
    pub(crate) fn reuse_check(&self, gen: u64) -> Reuse {
        let epoch_word = self.hdr(hdr::LANE_EPOCH);
        let seqcst = epoch_word.load(Ordering::Acquire) & LANE_SEQCST != 0;
        if seqcst {
            // Writers' lane stores are SeqCst: a SeqCst fence here orders
            // our lane loads after them (or them after our hole's generation).
            fence(Ordering::SeqCst);
        } else if self.barrier_gen.load(Ordering::Relaxed) < gen {
            let published = epoch_word.load(Ordering::Acquire) & !LANE_SEQCST;
            if !(registered() && membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)) {
                return Reuse::Never;
            }
            self.barrier_gen.store(published, Ordering::Relaxed);
        }
        // Writes without a lane, counted in their process's slot: only a
        // live slot with a live holder defers (a dead writer's count is
        // cleared with its slot when it is reaped).
        let high = self
            .hdr(hdr::OVERFLOW_HIGH)
            .load(Ordering::Acquire)
            .min(u64::from(MAX_WORKERS)) as u32;
        for s in 0..high {
            if self
                .slot_overflow(s)
                .is_some_and(|c| c.load(Ordering::Acquire) != 0)
                && self.slot_is_live(s)
                && self.slot_holder_alive(s)
            {
                return Reuse::Defer;
            }
        }
        // This thread's own lane: it is here, in the allocator, not between
        // a check and a store of a record that may be this one.
        let c = LANE.try_with(Cell::get).unwrap_or(NO_LANE);
        let own = (c.area == self.id && c.fork == process::fork_generation()).then_some(c.lane);
        let high = (self.hdr(hdr::LANE_HIGH).load(Ordering::Acquire) as usize).min(LANE_COUNT);
        for i in 0..high {
            let e = self.lane_word(i, lane::EPOCH);
            let v = e.load(Ordering::Acquire);
            if v == 0 || v > gen || own == Some(e as *const AtomicU64) {
                continue;
            }
            let owner = self.lane_word(i, lane::OWNER).load(Ordering::Acquire);
            // (`v - 1` is the epoch the writer read: at least `gen`, it sees
            // the new generation.) A live slot whose holder is dead (not reaped yet) never
            // writes again: only a live holder defers.
            if owner != 0
                && self.lane_owner_live(owner)
                && self.slot_holder_alive((owner as u32).wrapping_sub(1))
            {
                return Reuse::Defer;
            }
        }
        Reuse::Safe
    }

    /// Publish generation `gen` (just stored into a record, under the lock)
    /// in the epoch word that writers announce.
    pub(crate) fn publish_generation(&self, gen: u64) {
        let w = self.hdr(hdr::LANE_EPOCH);
        let cur = w.load(Ordering::Relaxed);
        if gen > cur & !LANE_SEQCST {
            w.store(gen | (cur & LANE_SEQCST), Ordering::Release);
        }
    }

    /// Free the lanes of a slot being freed (the reaper): they never defer
    /// anything once the slot is not live; this only makes them free. The
    /// epoch word is left alone: a thread that claims the lane clears it.
    pub(crate) fn clear_lanes_of_slot(&self, slot: u32) {
        for i in 0..LANE_COUNT {
            let o = self.lane_word(i, lane::OWNER);
            let cur = o.load(Ordering::Acquire);
            if cur != 0 && (cur as u32).wrapping_sub(1) == slot {
                let _ = o.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
    }
}

/// Lanes in the header page: owner word (`slot + 1 | slot_generation << 32`,
/// 0 = free) and epoch word (0 = idle, else the announced epoch + 1).
pub(crate) mod lane {
    pub(crate) const OWNER: usize = 0;
    pub(crate) const EPOCH: usize = 8;
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::atomic::Ordering;

    use super::{lane, CLAIMED, LANE, LANE_COUNT};
    use crate::{Area, AreaOptions, Opts};

    /// The thread that forks keeps its cached lane in the child's memory,
    /// under the same area key: the child must claim a lane of its own (a
    /// write announced in the parent's lane would neither defer a reuse for
    /// the child, once the parent clears it, nor be the child's to clear).
    #[test]
    fn a_forked_child_claims_its_own_lane() {
        let area = Area::anonymous(&AreaOptions::with_pages(16)).unwrap();
        let counter = area
            .registry()
            .counter(Opts::new("c", "C.").eager(true))
            .unwrap()
            .get()
            .unwrap();
        counter.inc();
        let parent_lane = LANE.with(Cell::get).lane as usize;
        assert_ne!(parent_lane, 0, "the parent's write cached a lane");
        // SAFETY: the child only writes, checks and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = std::panic::catch_unwind(|| {
                counter.inc();
                let c = LANE.with(Cell::get);
                let inner = &area.inner;
                let owners: Vec<u64> = (0..LANE_COUNT)
                    .map(|i| inner.lane_word(i, lane::OWNER).load(Ordering::Acquire))
                    .filter(|&o| o != 0)
                    .collect();
                c.lane as usize != parent_lane
                    && owners.len() == 2
                    && owners[0] as u32 != owners[1] as u32
            });
            // SAFETY: leave the child without running the harness's exit path.
            unsafe { libc::_exit(if matches!(ok, Ok(true)) { 0 } else { 1 }) };
        }
        let status = crate::area::fork::tests::wait_for_child(pid, "the child hung");
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child wrote through the parent's lane (status {status:#x})"
        );
        counter.inc();
        assert_eq!(counter.get(), 3.0);
        assert_eq!(LANE.with(Cell::get).lane as usize, parent_lane);
    }

    /// A thread that writes to many areas one after the other (a private
    /// area for each `registry=None` metric of a collector, on every scrape)
    /// keeps only the claims of the areas still alive: its list of claimed
    /// lanes grew by one entry per area for ever (4.9 MB over 100,000
    /// scrapes in the Python collector test).
    #[test]
    fn claims_of_dropped_areas_are_forgotten() {
        let claims = || CLAIMED.with(|c| c.borrow().lanes.len());
        let kept = Area::anonymous(&AreaOptions::with_pages(16)).unwrap();
        let kept_counter = kept
            .registry()
            .counter(Opts::new("kept", "K.").eager(true))
            .unwrap()
            .get()
            .unwrap();
        kept_counter.inc();
        let base = claims();
        for _ in 0..1_000 {
            let area = Area::anonymous(&AreaOptions::with_pages(16)).unwrap();
            let c = area.registry().counter(Opts::new("c", "C.").eager(true));
            c.unwrap().get().unwrap().inc();
            assert!(claims() > base, "the write claimed a lane in the area");
        }
        assert!(claims() <= base + super::PRUNE_MIN, "{} claims", claims());
        // The live area's lane is still this thread's and still counts.
        kept_counter.inc();
        assert_eq!(kept_counter.get(), 2.0);
    }
}
