//! Thread-local buffers and flush.
//!
//! Each thread that updates a buffered series gets, on first touch, a small
//! array of cells for it. The owning thread only ever *stores* into its cells
//! (load, add, store: no atomic read-modify-write, no lock, no syscall); the
//! cells hold running totals. A flusher — any thread — reads each cell, adds
//! the difference from what it flushed last time to the shared record with
//! one atomic add, and remembers the new total. Nothing is lost between the
//! hot path and the flush, and flushers never block the owner.
//!
//! Flush runs on [`flush`], before a render in this process, when a thread
//! exits, at process exit (`atexit`), when the last handle of a family is
//! dropped (for that family's series), and from an optional [`Flusher`]
//! thread. After `fork` the child starts with empty buffers: what the parent
//! had not flushed is the parent's to flush, never the child's. A child of a
//! process that ran a [`Flusher`] (inherited by children, the default)
//! starts its own, with the same interval, when it first buffers an update.
//!
//! Buffers hold only what is in use: the entry of a series goes when the
//! series is removed (by any process; seen by the next flush) or when its
//! family object is dropped, and with it the buffer's hold on the area, so
//! an area whose handles are all dropped is unmapped.

use std::cell::{Cell, UnsafeCell};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, TryLockError};
use std::time::Duration;

use crate::area::cells::atomic_add_f64;
use crate::area::fork::{hold, lock};
use crate::area::AreaInner;
use crate::process;

/// Of a buffered series' cells, the one that holds `f64` bits; the others
/// hold `u64` counts. The flush adds deltas by this rule, so a buffered
/// type's layout (in its module under `metrics/`) puts its one `f64` here: a
/// counter's fractional part, a histogram's sum.
pub(crate) const F64_CELL: usize = 0;

/// A series as the buffers see it: its buffer id and its cells in the area,
/// nothing of its type. `metrics::SeriesInner` implements it, so that the
/// buffer imports nothing of the layer above (`metrics/` uses `buffer`).
pub(crate) trait BufferedSeries {
    /// Where its cells sit in the thread buffers.
    fn buffer_id(&self) -> BufferId;
    /// Cell `i` in the area, `None` once the series was removed.
    fn cell(&self, i: usize) -> Option<&AtomicU64>;
    /// Announce a write-through to its cells (held around `cell` and the store).
    fn writing(&self) -> crate::area::WriteGuard<'_>;
    /// Whether the series is still live (not removed or cleared).
    fn is_live(&self) -> bool;
    /// Where a thread's buffer entry for it pushes its deltas. Called on a
    /// thread's first touch, which also tells the family that one of its
    /// series is buffered (dropping the family releases its entries).
    fn place(&self) -> SeriesPlace;
}

/// Where a buffered series lives in its area, for a thread's buffer entry.
pub(crate) struct SeriesPlace {
    /// The area (the entry keeps it mapped).
    pub(crate) area: Arc<AreaInner>,
    /// Address of the family object the series was resolved through (see
    /// [`release_family`]).
    pub(crate) family: usize,
    /// Offset of the series record.
    pub(crate) off: usize,
    /// The record's generation when the series was resolved.
    pub(crate) gen: u64,
    /// Offset of its first value cell.
    pub(crate) cells_off: usize,
    /// Number of value cells.
    pub(crate) n_cells: usize,
}

/// Every thread buffer of this process (and, until the first use after a
/// `fork`, those inherited from the parent).
static BUFFERS: Mutex<Vec<Arc<ThreadShared>>> = Mutex::new(Vec::new());
/// Buffer ids not in use, and the next never used one.
static IDS: Mutex<IdPool> = Mutex::new(IdPool {
    free: Vec::new(),
    next: 0,
});
/// Source of [`BufferId::serial`]: never repeats in a process.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);
static AT_EXIT: Once = Once::new();

struct IdPool {
    free: Vec<u32>,
    next: u32,
}

/// Where a series' cells sit in every thread's buffer index: `id` indexes
/// the per-thread table (ids are reused once given back, so the tables stay
/// as small as the number of series in use), `serial` tells apart the series
/// that have held one id (it is never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BufferId {
    pub(crate) id: u32,
    pub(crate) serial: u64,
}

/// A buffer id for a newly resolved series; give it back with [`give_back_ids`].
pub(crate) fn take_id() -> BufferId {
    install_fork_hooks();
    let mut ids = lock(&IDS);
    let id = match ids.free.pop() {
        Some(id) => id,
        None => {
            let id = ids.next;
            ids.next = ids.next.saturating_add(1);
            id
        }
    };
    BufferId {
        id,
        serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
    }
}

/// Give back ids whose series is removed or whose family object is gone.
/// Handles still holding one never reach another series' cells: the serial
/// differs.
pub(crate) fn give_back_ids(ids: impl IntoIterator<Item = BufferId>) {
    let mut pool = lock(&IDS);
    for b in ids {
        pool.free.push(b.id);
    }
}

/// Buffer ids in use in this process (taken and not given back).
#[doc(hidden)]
pub fn buffer_ids_in_use() -> usize {
    let pool = lock(&IDS);
    pool.next as usize - pool.free.len()
}

/// The part of a thread's buffer that flushers see.
struct ThreadShared {
    /// Fork generation the buffer belongs to.
    gen: u32,
    entries: Mutex<Vec<Entry>>,
}

/// One series as buffered by one thread.
struct Entry {
    /// Keeps the mapping while the entry lives; entries go with their
    /// family object (see [`release_family`]), so they never pin an area.
    area: Arc<AreaInner>,
    /// Address of the `FamilyInner` the series was resolved through.
    family: usize,
    /// Offset of the series record (its state tells whether it was removed).
    off: usize,
    /// The record's generation when the series was resolved (it changes
    /// when the record is freed: nothing is flushed into it after that).
    gen: u64,
    /// Offset of its first value cell.
    cells_off: usize,
    /// Running totals written by the owner. Cell [`F64_CELL`] holds f64
    /// bits, the others u64.
    cells: Arc<[AtomicU64]>,
    /// What the last flush saw, in the same encoding.
    flushed: Box<[u64]>,
}

impl Entry {
    /// Push the deltas into the area. Returns whether anything was dirty.
    fn flush(&mut self) -> bool {
        // A clean entry (every cell what the last flush saw: most entries
        // of most flushes) has nothing to announce, check or add: one load
        // and compare a cell. A store the owner makes after this look is
        // the next flush's, as after the loop below.
        let clean = (self.cells.iter().zip(self.flushed.iter()))
            .all(|(cell, last)| cell.load(Ordering::Acquire) == *last);
        if clean {
            return false;
        }
        let mut dirty = false;
        // One announcement for the series' cells (`area::epoch`), before
        // the generation check.
        let _w = self.area.begin_write();
        let live = self.area.generation(self.off) == self.gen;
        for (i, (cell, last)) in self.cells.iter().zip(self.flushed.iter_mut()).enumerate() {
            let cur = cell.load(Ordering::Acquire);
            if cur == *last {
                continue;
            }
            dirty = true;
            if let Some(target) = self.area.u64_at(self.cells_off + i * 8).filter(|_| live) {
                if i == F64_CELL {
                    atomic_add_f64(target, f64::from_bits(cur) - f64::from_bits(*last));
                } else {
                    target.fetch_add(cur.wrapping_sub(*last), Ordering::Relaxed);
                }
            }
            *last = cur;
        }
        dirty
    }

    /// Whether its series is still live (not removed or cleared by any process).
    fn is_live(&self) -> bool {
        self.area.series_live(self.off, self.gen)
    }
}

/// What a pass over buffers collected: areas to note a flush in, entries to
/// drop. Both are handled after every buffer lock is released (dropping an
/// entry may unmap its area).
#[derive(Default)]
struct Sweep {
    stats: FlushStats,
    touched: Vec<Arc<AreaInner>>,
    gone: Vec<Entry>,
}

impl Sweep {
    /// Flush `e` and count it.
    fn flush(&mut self, e: &mut Entry) {
        self.stats.entries += 1;
        if e.flush() {
            self.stats.dirty_series += 1;
            if !self.touched.iter().any(|a| Arc::ptr_eq(a, &e.area)) {
                self.touched.push(e.area.clone());
            }
        }
    }

    /// Flush every entry of `entries`, moving out those `drop_if` selects.
    fn pass(&mut self, entries: &mut Vec<Entry>, drop_if: impl Fn(&Entry) -> bool) {
        let mut i = 0;
        while i < entries.len() {
            self.flush(&mut entries[i]);
            if drop_if(&entries[i]) {
                self.gone.push(entries.swap_remove(i));
            } else {
                i += 1;
            }
        }
    }

    fn finish(self) -> FlushStats {
        for a in &self.touched {
            a.note_flush();
        }
        drop(self.gone);
        self.stats
    }
}

/// The owner's slot for one buffer id.
struct Slot {
    serial: u64,
    /// The cells of `keep`, one indirection less on the hot path.
    cells: NonNull<[AtomicU64]>,
    /// Owns the cells (shared with the thread's `Entry` while it lives).
    keep: Arc<[AtomicU64]>,
}

/// The owner's side: cells by buffer id.
struct Local {
    shared: UnsafeCell<Arc<ThreadShared>>,
    index: UnsafeCell<Vec<Option<Slot>>>,
    /// Entry count at which the owner drops its removed series' entries.
    prune_at: Cell<usize>,
}

/// Smallest `Local::prune_at`.
const PRUNE_MIN: usize = 64;

impl Local {
    fn new() -> Local {
        install_exit_flush();
        install_fork_hooks();
        Local {
            shared: UnsafeCell::new(register_shared()),
            index: UnsafeCell::new(Vec::new()),
            prune_at: Cell::new(PRUNE_MIN),
        }
    }

    /// The cells of `series` if this thread already has them and did not
    /// fork since: the hot path's checks only, with no call, so that the hot
    /// functions need no stack frame (everything else is in `cells`).
    #[inline(always)]
    fn known_cells(&self, buffer: BufferId) -> Option<&[AtomicU64]> {
        // SAFETY: as in `cells`.
        unsafe {
            if (&*self.shared.get()).gen != process::fork_generation() {
                return None;
            }
            match (&*self.index.get()).get(buffer.id as usize) {
                Some(Some(slot)) if slot.serial == buffer.serial => Some(slot.cells.as_ref()),
                _ => None,
            }
        }
    }

    /// The cells of `series` for this thread, created on first touch; `None`
    /// for a removed series (write it through).
    #[inline]
    fn cells(&self, series: &impl BufferedSeries) -> Option<&[AtomicU64]> {
        let buffer = series.buffer_id();
        // SAFETY: `Local` lives in a thread_local and is only reached from its
        // own thread; no reference into `shared`/`index` outlives this call
        // except the returned cells, which the caller uses before it calls
        // in here again, and which the slot's `keep` keeps allocated (the
        // slot's `cells` points into it).
        unsafe {
            let shared = &*self.shared.get();
            if shared.gen != process::fork_generation() {
                self.reset_after_fork();
            }
            let index = &*self.index.get();
            if let Some(Some(slot)) = index.get(buffer.id as usize) {
                if slot.serial == buffer.serial {
                    return Some(slot.cells.as_ref());
                }
            }
            self.first_touch(series)
        }
    }

    #[cold]
    fn reset_after_fork(&self) {
        // SAFETY: only this thread touches `shared` and `index` (see `cells`).
        let old = unsafe {
            *self.index.get() = Vec::new();
            std::mem::replace(&mut *self.shared.get(), register_shared())
        };
        discard_inherited(old);
    }

    #[cold]
    fn first_touch(&self, series: &impl BufferedSeries) -> Option<&[AtomicU64]> {
        if !series.is_live() {
            return None;
        }
        let place = series.place();
        let n = place.n_cells;
        let cells: Arc<[AtomicU64]> = (0..n).map(|_| AtomicU64::new(0)).collect();
        let buffer = series.buffer_id();
        let entry = Entry {
            area: place.area,
            family: place.family,
            off: place.off,
            gen: place.gen,
            cells_off: place.cells_off,
            cells: cells.clone(),
            flushed: vec![0u64; n].into_boxed_slice(),
        };
        // SAFETY: single-threaded access as in `cells`.
        let shared = unsafe { &*self.shared.get() };
        let mut sweep = Sweep::default();
        {
            let mut entries = lock(&shared.entries);
            entries.push(entry);
            if entries.len() >= self.prune_at.get() {
                // No flusher may run: keep the buffer as small as the live series.
                sweep.pass(&mut entries, |e| !e.is_live());
                self.prune_at.set((entries.len() * 2).max(PRUNE_MIN));
            }
        }
        sweep.finish();
        // SAFETY: as in `cells`; nothing borrows `index` now.
        unsafe {
            let index = &mut *self.index.get();
            let id = buffer.id as usize;
            if index.len() <= id {
                index.resize_with(id + 1, || None);
            }
            index[id] = Some(Slot {
                serial: buffer.serial,
                cells: NonNull::from(&*cells),
                keep: cells,
            });
        }
        // A new entry (the first in a forked child): the cold place to give
        // the child the flusher its parent ran. Nothing is locked here.
        start_inherited_flusher();
        // SAFETY: as in `cells`; the flusher started above only locks the
        // entry lists, never the owner's `index`.
        unsafe {
            let index = &*self.index.get();
            index[buffer.id as usize].as_ref().map(|s| &*s.keep)
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let shared = self.shared.get_mut().clone();
        if shared.gen != process::fork_generation() {
            discard_inherited(shared);
            return;
        }
        // Flushed under the lock while still listed: a concurrent flush (say
        // the main thread's before exit) either waits for this one or finds
        // nothing left to push, never a delta in flight.
        let mut sweep = Sweep::default();
        sweep.pass(&mut lock(&shared.entries), |_| true);
        lock(&BUFFERS).retain(|b| !Arc::ptr_eq(b, &shared));
        sweep.finish();
    }
}

fn register_shared() -> Arc<ThreadShared> {
    let shared = Arc::new(ThreadShared {
        gen: process::fork_generation(),
        entries: Mutex::new(Vec::new()),
    });
    let inherited = {
        let mut all = lock(&BUFFERS);
        all.push(shared.clone());
        take_inherited(&mut all)
    };
    inherited.into_iter().for_each(discard_inherited);
    shared
}

/// Move the buffers of another fork generation out of `all`.
fn take_inherited(all: &mut Vec<Arc<ThreadShared>>) -> Vec<Arc<ThreadShared>> {
    let gen = process::fork_generation();
    if all.iter().all(|b| b.gen == gen) {
        return Vec::new();
    }
    let (mine, inherited) = std::mem::take(all).into_iter().partition(|b| b.gen == gen);
    *all = mine;
    inherited
}

/// Drop what a buffer inherited through `fork` holds, unflushed: its updates
/// are the parent's to flush. Its lock was taken by the fork handler and
/// released in this process, so the entries are whole; if it is locked
/// anyway, nothing of it is touched (it is leaked).
fn discard_inherited(b: Arc<ThreadShared>) {
    let entries = match b.entries.try_lock() {
        Ok(mut e) => Some(std::mem::take(&mut *e)),
        Err(TryLockError::Poisoned(p)) => Some(std::mem::take(&mut *p.into_inner())),
        Err(TryLockError::WouldBlock) => None,
    };
    match entries {
        Some(entries) => drop(entries),
        None => std::mem::forget(b),
    }
}

/// This process's thread buffers (dropping those inherited from a parent).
fn buffers() -> Vec<Arc<ThreadShared>> {
    let (list, inherited) = {
        let mut all = lock(&BUFFERS);
        let inherited = take_inherited(&mut all);
        (all.clone(), inherited)
    };
    inherited.into_iter().for_each(discard_inherited);
    list
}

thread_local! {
    static LOCAL: Local = Local::new();
}

/// Add `v` to a cell of this thread's own buffer (only this thread writes
/// it; the release store publishes it to a flush on another thread).
#[inline(always)]
fn add_local_f64(c: &AtomicU64, v: f64) {
    c.store(
        (f64::from_bits(c.load(Ordering::Relaxed)) + v).to_bits(),
        Ordering::Release,
    );
}

/// Add `n` to a u64 cell of this thread's own buffer (as [`add_local_f64`]).
#[inline(always)]
fn add_local_u64(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Release);
}

/// Add `v` to the f64 cell ([`F64_CELL`]) of this thread's buffer for `series`.
#[inline]
pub(crate) fn add_f64(series: &impl BufferedSeries, v: f64) {
    if !try_add_f64(series.buffer_id(), v) {
        add_slow(
            series,
            F64_CELL,
            |c| add_local_f64(c, v),
            |c| atomic_add_f64(c, v),
        );
    }
}

/// Add `n` to u64 cell `i` (not [`F64_CELL`]) of this thread's buffer for
/// `series` (a counter's whole increments: the flush adds them with one
/// `fetch_add`).
#[inline]
pub(crate) fn add_u64(series: &impl BufferedSeries, i: usize, n: u64) {
    if !try_add_u64(series.buffer_id(), i, n) {
        add_slow(
            series,
            i,
            |c| add_local_u64(c, n),
            |c| {
                c.fetch_add(n, Ordering::Relaxed);
            },
        );
    }
}

/// [`add_f64`] of the series with buffer id `buffer` if this thread has
/// its cells already (and did not fork since): `false`, adding nothing,
/// otherwise (make the update with the series itself then). No call into
/// the series; no lock and no allocation once the thread has its buffer
/// (made at the thread's first use here, which takes the list of buffers:
/// so never call this under a lock that the fork handlers take after it).
#[inline]
pub(crate) fn try_add_f64(buffer: BufferId, v: f64) -> bool {
    try_local(buffer, F64_CELL, |c| add_local_f64(c, v))
}

/// [`add_u64`] as [`try_add_f64`] is [`add_f64`].
#[inline]
pub(crate) fn try_add_u64(buffer: BufferId, i: usize, n: u64) -> bool {
    try_local(buffer, i, |c| add_local_u64(c, n))
}

/// `local` on cell `i` of this thread's known buffer for `buffer`, if it
/// has one: whether it did.
#[inline(always)]
fn try_local(buffer: BufferId, i: usize, local: impl FnOnce(&AtomicU64)) -> bool {
    LOCAL.try_with(|l| match l.known_cells(buffer).and_then(|c| c.get(i)) {
        Some(c) => {
            local(c);
            true
        }
        None => false,
    }) == Ok(true)
}

/// An update of cell `i` on the first touch, after a fork, for a removed
/// series or during thread exit: `local` on this thread's buffer cell, or
/// `shared` on the area's.
#[cold]
#[inline(never)]
fn add_slow(
    series: &impl BufferedSeries,
    i: usize,
    local: impl FnOnce(&AtomicU64),
    shared: impl FnOnce(&AtomicU64),
) {
    let done = LOCAL.try_with(|l| match l.cells(series) {
        Some(cells) => {
            if let Some(c) = cells.get(i) {
                local(c);
            }
            true
        }
        None => false,
    });
    if done != Ok(true) {
        // The thread is exiting and its buffer is gone, or the series was
        // removed: write through.
        let _w = series.writing();
        if let Some(c) = series.cell(i) {
            shared(c);
        }
    }
}

/// Add `v` to the f64 cell ([`F64_CELL`]) and 1 to u64 cell `count` of this
/// thread's buffer for `series` (a histogram's observation: the sum and a
/// bucket's count).
#[inline]
pub(crate) fn add_f64_and_count(series: &impl BufferedSeries, count: usize, v: f64) {
    let fast = LOCAL.try_with(|l| {
        match l
            .known_cells(series.buffer_id())
            .and_then(|c| Some((c.get(F64_CELL)?, c.get(count)?)))
        {
            Some((sum, b)) => {
                b.store(b.load(Ordering::Relaxed) + 1, Ordering::Release);
                add_local_f64(sum, v);
                true
            }
            None => false,
        }
    });
    if fast != Ok(true) {
        add_f64_and_count_slow(series, count, v);
    }
}

/// `add_f64_and_count` on the first touch, after a fork, for a removed series or
/// during thread exit.
#[cold]
#[inline(never)]
fn add_f64_and_count_slow(series: &impl BufferedSeries, count: usize, v: f64) {
    let done = LOCAL.try_with(|l| match l.cells(series) {
        Some(cells) => {
            if let (Some(sum), Some(b)) = (cells.get(F64_CELL), cells.get(count)) {
                b.store(b.load(Ordering::Relaxed) + 1, Ordering::Release);
                add_local_f64(sum, v);
            }
            true
        }
        None => false,
    });
    if done != Ok(true) {
        let _w = series.writing();
        if let (Some(sum), Some(b)) = (series.cell(F64_CELL), series.cell(count)) {
            b.fetch_add(1, Ordering::Relaxed);
            atomic_add_f64(sum, v);
        }
    }
}

/// Series buffered by the calling thread (one entry per series it updated
/// that is neither removed nor dropped with its family).
#[doc(hidden)]
pub fn buffered_series_in_this_thread() -> usize {
    LOCAL
        .try_with(|l| {
            // SAFETY: this thread's own `Local` (see `Local::cells`).
            let shared = unsafe { &*l.shared.get() };
            lock(&shared.entries).len()
        })
        .unwrap_or(0)
}

/// What a flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlushStats {
    /// Thread buffers visited.
    pub buffers: usize,
    /// Series whose deltas were pushed into an area.
    pub dirty_series: usize,
    /// Buffered series visited (one per series and thread that updated it):
    /// the flush's cost. Series removed by any process and families dropped
    /// in this one leave the buffers, so this follows the live series.
    pub entries: usize,
}

/// Flush every thread's buffer of this process into the areas.
///
/// Safe to call from any thread at any time; concurrent flushes serialize
/// per thread buffer. Cost: one read per buffered cell, one atomic add per
/// changed cell. Entries of series that were removed (by any process) are
/// dropped from the buffers on the way.
///
/// ```
/// use promshm::{Area, AreaOptions, Opts};
///
/// let area = Area::anonymous(&AreaOptions::default())?;
/// let jobs = area.registry().counter(Opts::new("jobs", "Jobs run."))?.get()?;
/// jobs.inc(); // in this thread's buffer
/// let stats = promshm::flush();
/// assert_eq!(stats.dirty_series, 1);
/// assert_eq!(jobs.get(), 1.0); // in the area, for every process
/// # Ok::<(), promshm::Error>(())
/// ```
pub fn flush() -> FlushStats {
    let list = buffers();
    let mut sweep = Sweep::default();
    for b in &list {
        sweep.pass(&mut lock(&b.entries), |e| !e.is_live());
    }
    sweep.stats.buffers = list.len();
    sweep.finish()
}

/// Flush and drop every buffer entry of the family object at `family` (its
/// last handle is being dropped: no thread can update its series any more).
/// Called by `FamilyInner`'s `Drop`, so that buffers never keep an area mapped.
pub(crate) fn release_family(family: usize) {
    let mut sweep = Sweep::default();
    for b in &buffers() {
        sweep.pass(&mut lock(&b.entries), |e| e.family == family);
    }
    sweep.finish();
}

/// Register this module's fork hooks with `area::fork` and install its
/// handlers (at load, and lazily for a static link that leaves the load-time
/// entry out): the buffer list and entries are taken before the areas' locks,
/// the id pool after them. Lock-free and idempotent.
fn install_fork_hooks() {
    crate::area::fork::register_fork_hooks(hold_for_fork, hold_ids_for_fork);
    crate::area::fork::install_hooks();
}

/// Hold the buffer list and every buffer's entries across `fork` so a child
/// never inherits them locked or half-updated (run by `area::fork`'s
/// handler, which releases them after the fork).
fn hold_for_fork() {
    let all = lock(&BUFFERS);
    let list = all.clone();
    // SAFETY: BUFFERS is a static; each entries guard is held together with
    // an Arc of the buffer it borrows from (dropped after it: tuple order).
    unsafe {
        hold(all);
        for b in &list {
            hold((lock(&b.entries), b.clone()));
        }
    }
}

/// Hold the buffer id pool across `fork` (taken last: it is taken under a
/// family's series cache lock).
fn hold_ids_for_fork() {
    // SAFETY: IDS is a static.
    unsafe { hold(lock(&IDS)) };
}

/// Registers the exit flush and the fork hooks when the library is loaded, for the reason
/// `area::fork` installs its handlers then: an installing `Once` that a
/// `fork` interrupts would stay "running" in the child.
#[used]
#[link_section = ".init_array"]
static INSTALL_EXIT_FLUSH_AT_LOAD: extern "C" fn() = install_exit_flush_at_load;

extern "C" fn install_exit_flush_at_load() {
    let _ = std::panic::catch_unwind(install_exit_flush);
    let _ = std::panic::catch_unwind(install_fork_hooks);
}

/// Flush at process exit (`atexit`), registered once (at load, else at a
/// thread's first buffered update).
fn install_exit_flush() {
    AT_EXIT.call_once(|| {
        // SAFETY: registers a plain extern "C" function with no arguments.
        unsafe {
            libc::atexit(flush_at_exit);
        }
    });
}

extern "C" fn flush_at_exit() {
    let _ = std::panic::catch_unwind(flush);
}

/// A background thread that flushes every `interval`; stops (after a last
/// flush) when dropped or [`stop`](Flusher::stop)ped. Opt-in: promshm starts
/// no thread unless a `Flusher` was started in this process or, inherited,
/// in an ancestor (below).
///
/// Inherited by children (on by default; off with
/// [`FlusherBuilder::inherit`]): a child of `fork` whose parent had such a
/// flusher running starts its own, with the same interval, when it first
/// buffers an update (a thread's first update of a series, never on the
/// per-update path; in normal code, never in the `fork` handler). So a
/// child that never ends a request (a background worker, a loop) still
/// publishes within the interval. The child's flusher is inherited by its
/// own children the same way, and a child that has not started its own yet
/// passes the pending one on. A child that starts a `Flusher` itself before
/// its first buffered update gets no second one; stopping or dropping an
/// inherited (inheriting) `Flusher` in a child stops the one that child
/// started for it, or cancels it if not started yet.
///
/// Fork-safe: the thread sleeps in `ppoll` on an `eventfd` (no user-space
/// lock, condvar or wait queue that a child could inherit mid-update), and
/// starting one returns only once the thread runs (a wait of about 0.1 ms,
/// at most 1 s), so a `fork` right after it never catches the thread in the
/// C runtime's start-up, inside the allocator. A
/// child of `fork` does not inherit the thread: there an inherited `Flusher`
/// is forgotten — stopping or dropping it neither signals, joins nor closes
/// anything it inherited — and the child may start its own.
///
/// Host code that closes descriptors it does not know (and maybe reuses the
/// number) is survived: the eventfd is checked (`fstat`) before each wait
/// and at stop; once lost, the thread sleeps in slices of at most 50 ms
/// and watches a stop flag instead, and the number is never written to or
/// closed (it is someone else's now).
///
/// ```
/// use std::time::{Duration, Instant};
///
/// use promshm::{Area, AreaOptions, Flusher, Opts};
///
/// let area = Area::anonymous(&AreaOptions::default())?;
/// let jobs = area.registry().counter(Opts::new("jobs", "Jobs run."))?.get()?;
/// let flusher = Flusher::start(Duration::from_millis(10))?;
/// jobs.inc(); // buffered in this thread; the flusher publishes it
/// let deadline = Instant::now() + Duration::from_secs(10);
/// while jobs.get() < 1.0 {
///     assert!(Instant::now() < deadline, "never flushed");
///     std::thread::sleep(Duration::from_millis(1));
/// }
/// flusher.stop(); // or drop it
/// // Not inherited by children of fork():
/// let quiet = Flusher::builder().interval(Duration::from_secs(5)).inherit(false).start()?;
/// drop(quiet);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Flusher {
    /// Written once to stop the thread (an eventfd).
    wake: Option<OwnedFd>,
    /// Device and inode of the eventfd.
    wake_id: Option<(u64, u64)>,
    /// Set to stop the thread (seen even when the eventfd was lost).
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Fork generation of the process that started the thread.
    gen: u32,
    /// Children of this process start their own flusher (see [`INHERIT`]).
    inherit: bool,
}

/// How to start a [`Flusher`]: `Flusher::builder().interval(d).inherit(false).start()`.
#[derive(Debug, Clone, Copy)]
pub struct FlusherBuilder {
    interval: Duration,
    inherit: bool,
}

impl FlusherBuilder {
    /// Flush every `interval` (at least 1 ms; default 1 s).
    pub fn interval(mut self, interval: Duration) -> FlusherBuilder {
        self.interval = interval;
        self
    }

    /// Whether forked children start their own flusher with the same
    /// interval when they first buffer an update (default true).
    pub fn inherit(mut self, inherit: bool) -> FlusherBuilder {
        self.inherit = inherit;
        self
    }

    /// Start the thread.
    pub fn start(self) -> std::io::Result<Flusher> {
        Flusher::spawn(self.interval, self.inherit)
    }
}

/// Longest sleep of a flusher whose eventfd was lost between looks at its stop flag.
const LOST_WAKE_SLICE: Duration = Duration::from_millis(50);

/// The inheriting flushers of this process, as children of a `fork` find
/// them: the fork generation they were counted in (high 32 bits) and how
/// many run (low 32 bits). A child sees its parent's generation there, with
/// a count above 0 if the parent had one running at fork time (or was
/// itself a child with one pending). Atomics only: a child never waits.
static INHERIT: AtomicU64 = AtomicU64::new(0);
/// The interval, in nanoseconds, children start theirs with (the shortest
/// of the inheriting flushers running).
static INHERIT_INTERVAL_NS: AtomicU64 = AtomicU64::new(0);
/// The flusher this process started for its parent's (a leaked `Box`), or null.
static STAND_IN: AtomicPtr<Flusher> = AtomicPtr::new(std::ptr::null_mut());

fn inherit_word(gen: u32, running: u32) -> u64 {
    (u64::from(gen) << 32) | u64::from(running)
}

fn inherit_parts(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

/// Update [`INHERIT`] for this process: a count left by another fork
/// generation (a pending inherited flusher) becomes 0 first, then `change`
/// maps the count.
fn update_inherit(change: impl Fn(u32) -> u32) {
    let gen = process::fork_generation();
    let mut word = INHERIT.load(Ordering::Acquire);
    loop {
        let (g, n) = inherit_parts(word);
        let n = if g == gen { n } else { 0 };
        let new = inherit_word(gen, change(n));
        match INHERIT.compare_exchange_weak(word, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(seen) => word = seen,
        }
    }
}

/// In a child whose parent had an inheriting flusher running: start this
/// process's own, once. Called where a thread buffer gets a new entry.
#[cold]
#[inline(never)]
fn start_inherited_flusher() {
    let word = INHERIT.load(Ordering::Acquire);
    let (g, n) = inherit_parts(word);
    let gen = process::fork_generation();
    if g == gen || n == 0 {
        return;
    }
    let interval = Duration::from_nanos(INHERIT_INTERVAL_NS.load(Ordering::Acquire));
    // Claim it: one thread of the child starts it, and only once.
    let claimed = inherit_word(gen, 0);
    if INHERIT
        .compare_exchange(word, claimed, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    if let Ok(flusher) = Flusher::spawn(interval, true) {
        let old = STAND_IN.swap(Box::into_raw(Box::new(flusher)), Ordering::AcqRel);
        // `old` is an ancestor's stand-in (this process claims once): its
        // thread is not here and dropping it would cancel ours. Leaked.
        let _ = old;
    }
}

impl Flusher {
    /// Start flushing every `interval` (at least 1 ms), inherited by
    /// children (see the type's doc); [`Flusher::builder`] for options.
    pub fn start(interval: Duration) -> std::io::Result<Flusher> {
        Flusher::spawn(interval, true)
    }

    /// Options: interval 1 s, inherited by children.
    pub fn builder() -> FlusherBuilder {
        FlusherBuilder {
            interval: Duration::from_secs(1),
            inherit: true,
        }
    }

    fn spawn(interval: Duration, inherit: bool) -> std::io::Result<Flusher> {
        let interval = interval.max(Duration::from_millis(1));
        // The fork generation must change in children even if no area exists yet.
        process::init();
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        let wake = unsafe { OwnedFd::from_raw_fd(fd) };
        let raw = wake.as_raw_fd();
        let wake_id = file_id(raw);
        let stop = Arc::new(AtomicBool::new(false));
        let stop_seen = stop.clone();
        let running = Arc::new(AtomicBool::new(false));
        let now_running = running.clone();
        let thread = std::thread::Builder::new()
            .name("promshm-flush".into())
            .spawn(move || {
                // Past the C runtime's thread start-up (see `wait_running`).
                now_running.store(true, Ordering::Release);
                // The fd stays open until this thread is joined (unless host
                // code closes it: then `wait` stops using it).
                loop {
                    wait(raw, wake_id, interval, &stop_seen);
                    if stop_seen.load(Ordering::Acquire) {
                        break;
                    }
                    let _ = std::panic::catch_unwind(flush);
                }
                let _ = std::panic::catch_unwind(flush);
            })?;
        wait_running(&running);
        // This process runs a flusher of its own now: a pending inherited
        // one is not started (or, if inheriting, this is it).
        let nanos = interval.as_nanos().min(u128::from(u64::MAX)) as u64;
        update_inherit(|n| {
            if !inherit {
                return n;
            }
            if n == 0 {
                INHERIT_INTERVAL_NS.store(nanos, Ordering::Release);
            } else {
                INHERIT_INTERVAL_NS.fetch_min(nanos, Ordering::AcqRel);
            }
            n.saturating_add(1)
        });
        Ok(Flusher {
            wake: Some(wake),
            wake_id,
            stop,
            thread: Some(thread),
            gen: process::fork_generation(),
            inherit,
        })
    }

    /// Stop the thread and wait for its last flush.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.gen != process::fork_generation() {
            // Inherited through fork: the thread does not exist in this
            // process. Nothing is signalled, joined or closed (the child may
            // have closed and reused the descriptor number; the eventfd is
            // close-on-exec).
            std::mem::forget(self.thread.take());
            std::mem::forget(self.wake.take());
            if self.inherit {
                // Its stand-in in this process goes with it (or is never
                // started): a pending one is cancelled, a running one stopped
                // (its shutdown takes it off the count).
                let word = INHERIT.load(Ordering::Acquire);
                if inherit_parts(word).0 != process::fork_generation() {
                    let cancelled = inherit_word(process::fork_generation(), 0);
                    let _ = INHERIT.compare_exchange(
                        word,
                        cancelled,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                }
                let stand_in = STAND_IN.swap(std::ptr::null_mut(), Ordering::AcqRel);
                if !stand_in.is_null() {
                    // SAFETY: STAND_IN only ever holds a `Box::into_raw`, and
                    // the swap gave this thread sole ownership of it.
                    let stand_in = unsafe { Box::from_raw(stand_in) };
                    if stand_in.gen == process::fork_generation() {
                        drop(stand_in); // this process's own thread: stopped and joined
                    } else {
                        std::mem::forget(stand_in); // an ancestor's: not ours to drop
                    }
                }
            }
            return;
        }
        if self.inherit {
            update_inherit(|n| n.saturating_sub(1));
        }
        self.stop.store(true, Ordering::Release);
        let wake = self.wake.take();
        let still_ours = wake
            .as_ref()
            .is_some_and(|w| self.wake_id.is_some() && file_id(w.as_raw_fd()) == self.wake_id);
        if let Some(wake) = &wake {
            if still_ours {
                let one: u64 = 1;
                // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
                unsafe { libc::write(wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if !still_ours {
            // Closed by someone else: the number is not ours to close.
            std::mem::forget(wake);
        }
    }
}

/// Longest wait in [`Flusher::spawn`] for the new thread to run.
const START_WAIT: Duration = Duration::from_secs(1);

/// Wait (bounded by [`START_WAIT`], sleeping, no lock) until a new flusher
/// thread sets `running`, its first step. So `start` returns with the
/// thread past the C runtime's thread start-up, which allocates: a `fork`
/// right after `start` then never catches it inside an allocator. glibc's
/// malloc is fork-safe anyway, but allocators without fork handlers are
/// not (GCC 12's AddressSanitizer: a child inherits the lock such a thread
/// held and its first allocation of that size blocks forever).
fn wait_running(running: &AtomicBool) {
    let deadline = std::time::Instant::now() + START_WAIT;
    while !running.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// Device and inode of an open descriptor (`fstat`).
fn file_id(fd: RawFd) -> Option<(u64, u64)> {
    crate::area::ofd::file_id(fd)
}

/// Sleep up to `interval`, or until `stop` is set and signalled on eventfd
/// `fd` (the file `id`). If `fd` is no longer that file, sleep in slices of
/// [`LOST_WAKE_SLICE`] watching `stop`.
fn wait(fd: RawFd, id: Option<(u64, u64)>, interval: Duration, stop: &AtomicBool) {
    if id.is_some() && file_id(fd) == id {
        let ts = libc::timespec {
            tv_sec: interval.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: interval.subsec_nanos() as libc::c_long,
        };
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, a valid timespec, no signal mask change.
        let r = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        // Timed out, stopped, or interrupted (EINTR: flush early). Anything
        // else (the descriptor replaced meanwhile) sleeps below rather than spin.
        let stopped = r > 0 && pfd.revents & libc::POLLIN != 0 && stop.load(Ordering::Acquire);
        if r == 0
            || stopped
            || (r < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted)
        {
            return;
        }
    }
    let deadline = std::time::Instant::now() + interval;
    while !stop.load(Ordering::Acquire) {
        let now = std::time::Instant::now();
        if now >= deadline {
            return;
        }
        std::thread::sleep((deadline - now).min(LOST_WAKE_SLICE));
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::{Area, AreaOptions, Opts};

    fn counter() -> (Area, crate::Counter) {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let c = area
            .registry()
            .counter(Opts::new("buffered", "b").eager(false))
            .unwrap()
            .get()
            .unwrap();
        (area, c)
    }

    #[test]
    fn updates_stay_local_until_flushed_and_flush_is_idempotent() {
        let (_area, c) = counter();
        c.inc();
        c.add(2.5).unwrap();
        // (Not asserted: other tests in this process may flush at any time.)
        super::flush();
        assert_eq!(c.get(), 3.5);
        super::flush();
        super::flush();
        assert_eq!(c.get(), 3.5, "a flush pushes deltas, never totals twice");
        c.inc();
        super::flush();
        assert_eq!(c.get(), 4.5);
    }

    #[test]
    fn a_thread_flushes_its_buffer_when_it_exits() {
        let (_area, c) = counter();
        let c2 = c.clone();
        std::thread::spawn(move || {
            for _ in 0..1000 {
                c2.inc();
            }
        })
        .join()
        .unwrap();
        assert_eq!(c.get(), 1000.0);
    }

    #[test]
    fn the_timer_flusher_pushes_updates_and_stops() {
        let (_area, c) = counter();
        let flusher = super::Flusher::start(Duration::from_millis(5)).unwrap();
        for _ in 0..10 {
            c.inc();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.get() < 10.0 {
            assert!(Instant::now() < deadline, "the flusher never flushed");
            std::thread::sleep(Duration::from_millis(2));
        }
        flusher.stop();
        assert_eq!(c.get(), 10.0);
    }

    /// Host code may close the flusher's eventfd and reuse the number for a
    /// file of its own: the flusher keeps flushing, stops within a bound,
    /// and never writes to or closes that number.
    #[test]
    fn a_flusher_whose_eventfd_was_replaced_keeps_flushing_and_stops_without_touching_it() {
        use std::os::fd::AsRawFd;
        let (_area, c) = counter();
        let flusher = super::Flusher::start(Duration::from_millis(5)).unwrap();
        let fd = flusher.wake.as_ref().unwrap().as_raw_fd();
        let mut pipe = [0; 2];
        // SAFETY: valid array for pipe(2); dup2 replaces `fd` with the
        // pipe's write end, as host code reusing the number would.
        unsafe {
            assert_eq!(libc::pipe2(pipe.as_mut_ptr(), libc::O_NONBLOCK), 0);
            assert_eq!(libc::dup2(pipe[1], fd), fd);
        }
        for _ in 0..10 {
            c.inc();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.get() < 10.0 {
            assert!(Instant::now() < deadline, "the flusher stopped flushing");
            std::thread::sleep(Duration::from_millis(2));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            flusher.stop();
            let _ = tx.send(());
        });
        let stopped = rx.recv_timeout(Duration::from_secs(5)).is_ok();
        let mut buf = [0u8; 8];
        // SAFETY: plain calls on our own descriptors.
        let (open, read) = unsafe {
            (
                libc::fcntl(fd, libc::F_GETFD) != -1,
                libc::read(pipe[0], buf.as_mut_ptr().cast(), 8),
            )
        };
        assert!(stopped, "stop() did not return within 5 s");
        assert!(
            open,
            "the flusher closed descriptor {fd}, which is the host's now"
        );
        assert_eq!(read, -1, "the flusher wrote into the host's file");
        // SAFETY: our pipe's descriptors (`fd` is a copy of its write end).
        unsafe {
            libc::close(fd);
            libc::close(pipe[0]);
            libc::close(pipe[1]);
        }
    }

    #[test]
    fn a_flush_from_another_thread_sees_this_threads_updates() {
        let (_area, c) = counter();
        for _ in 0..100 {
            c.inc();
        }
        std::thread::spawn(super::flush).join().unwrap();
        assert_eq!(c.get(), 100.0);
    }
}
