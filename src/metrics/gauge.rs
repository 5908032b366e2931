//! Gauge: one value per worker, combined at render time by the family's
//! [`GaugeMode`]. Gauge updates write through to this process's cell in the
//! area (a set cannot be buffered per thread without losing its order).
//!
//! Series cells: `[retained value, retained stamp, link]` then
//! `gx::INLINE_ENTRIES` entries `[slot tag | stamp, value]`; more entries
//! live in extension records linked from the series (`area::gauge_ext`).
//! A worker slot claims an entry on its first write to the series (a
//! compare-exchange of a free entry's tag; the area lock only to link an
//! extension when none is free) and keeps it; a handle caches it, so a write is a check
//! of the generation and of the entry's tag, and two stores. A stamp is the
//! Unix time in ms of the last write (or 1; 0 = not written). When a dead
//! worker is reaped its value is folded into the retained pair as the mode
//! says, and its entry is released for another slot; readers and the fold
//! agree through a sequence counter in the header (see `combine` and
//! `fold_dead_slots`). A series costs 16 bytes per slot that wrote it.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use super::{atomic_add_f64, SeriesInner};
use crate::area::format::{gx, hdr, rec, ser, KIND_FAMILY, KIND_SERIES, STATE_LIVE};
use crate::area::gauge_ext::ChainEnd;
use crate::area::AreaInner;
use crate::encoding::MetricType;
use crate::process;

/// The label that `all`-mode gauges add: the worker slot index.
pub const WORKER_LABEL: &str = "worker";

/// How the values of several worker processes combine into one gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum GaugeMode {
    /// Sum over all workers, dead ones included (their last value is kept).
    #[default]
    Sum = 0,
    /// Sum over live workers only: a dead worker's value disappears.
    LiveSum = 1,
    /// Largest value of any worker, dead ones included.
    Max = 2,
    /// Smallest value of any worker, dead ones included.
    Min = 3,
    /// The value written last, by whichever worker.
    MostRecent = 4,
    /// One series per live worker, labelled `worker="<slot>"`.
    All = 5,
    /// Largest value of the live workers: a dead worker's value disappears.
    LiveMax = 6,
    /// Smallest value of the live workers: a dead worker's value disappears.
    LiveMin = 7,
    /// The value written last by a live worker: a dead worker's disappears.
    LiveMostRecent = 8,
}

impl GaugeMode {
    /// Decode the byte stored in a family record.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => GaugeMode::Sum,
            1 => GaugeMode::LiveSum,
            2 => GaugeMode::Max,
            3 => GaugeMode::Min,
            4 => GaugeMode::MostRecent,
            5 => GaugeMode::All,
            6 => GaugeMode::LiveMax,
            7 => GaugeMode::LiveMin,
            8 => GaugeMode::LiveMostRecent,
            _ => return None,
        })
    }

    /// Parse `sum`, `livesum`, `max`, `min`, `mostrecent`, `all`, `livemax`,
    /// `livemin`, `livemostrecent`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "sum" => GaugeMode::Sum,
            "livesum" => GaugeMode::LiveSum,
            "max" => GaugeMode::Max,
            "min" => GaugeMode::Min,
            "mostrecent" => GaugeMode::MostRecent,
            "all" => GaugeMode::All,
            "livemax" => GaugeMode::LiveMax,
            "livemin" => GaugeMode::LiveMin,
            "livemostrecent" => GaugeMode::LiveMostRecent,
            _ => return None,
        })
    }

    /// The mode's name.
    pub fn as_str(self) -> &'static str {
        match self {
            GaugeMode::Sum => "sum",
            GaugeMode::LiveSum => "livesum",
            GaugeMode::Max => "max",
            GaugeMode::Min => "min",
            GaugeMode::MostRecent => "mostrecent",
            GaugeMode::All => "all",
            GaugeMode::LiveMax => "livemax",
            GaugeMode::LiveMin => "livemin",
            GaugeMode::LiveMostRecent => "livemostrecent",
        }
    }
}

/// Cells per gauge series: the retained pair, the link to the first
/// extension, and `gx::INLINE_ENTRIES` entries (whatever the number of slots).
pub(crate) fn cells() -> usize {
    gx::CELLS
}

/// A gauge series handle.
pub struct Gauge {
    pub(crate) series: Arc<SeriesInner>,
    /// This handle's entry in the series for this process's slot:
    /// `(slot + 1) << gx::TAG_SHIFT | offset of the entry` (0 = none yet).
    /// Only offsets whose two words were checked to be in the mapping are
    /// stored; a hit is still checked against the entry's tag.
    entry: AtomicU64,
}

impl Clone for Gauge {
    fn clone(&self) -> Self {
        Gauge {
            series: self.series.clone(),
            entry: AtomicU64::new(self.entry.load(Ordering::Relaxed)),
        }
    }
}

impl super::sealed::Sealed for Gauge {}
impl super::Metric for Gauge {
    const TYPE: MetricType = MetricType::Gauge;
    fn from_series(series: Arc<SeriesInner>) -> Self {
        Gauge {
            series,
            entry: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for Gauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gauge")
            .field("family", &self.series.family.shape.name)
            .field("labels", &self.series.values)
            .finish()
    }
}

/// The tag bits of an entry word for `slot`.
#[inline]
fn slot_tag(slot: u32) -> u64 {
    u64::from(slot + 1) << gx::TAG_SHIFT
}

/// Monotonic ms before which no entry is claimed (after the area lock
/// could not be had: updates of unclaimed series are dropped meanwhile).
static CLAIM_BACKOFF_UNTIL: AtomicU64 = AtomicU64::new(0);
/// How long claims back off after a lock timeout.
const CLAIM_BACKOFF_MS: u64 = 1_000;

impl Gauge {
    /// The cached entry, if it still is this process's slot's entry of the
    /// series (and the series was not removed): `(tagstamp word, value
    /// word, tag)`. The hot path: a few loads and compares, inlined into
    /// each update.
    #[inline(always)]
    fn cached_entry(&self, slot: u32) -> Option<(&AtomicU64, &AtomicU64, u64)> {
        let s = &*self.series;
        // SAFETY: `gen_ptr` is an 8-aligned word of the mapping (checked
        // when the series was resolved), which lives as long as `s.family.area`.
        let gen = unsafe { &*s.gen_ptr };
        // The generation check: a removed series' entries are not ours.
        if gen.load(Ordering::Acquire) != s.gen {
            return None;
        }
        let tag = slot_tag(slot);
        let c = self.entry.load(Ordering::Relaxed);
        if c & !gx::STAMP_MASK != tag {
            return None;
        }
        let (ts, v) = self.words(c & gx::STAMP_MASK);
        (ts.load(Ordering::Relaxed) & !gx::STAMP_MASK == tag).then_some((ts, v, tag))
    }

    /// Update this process's value with `f(value word)`, then its stamp.
    #[inline(always)]
    fn update(&self, f: impl FnOnce(&AtomicU64)) {
        // Without a slot the update is dropped: nothing to announce (a
        // slotless write would hold the area lock, `area::epoch`).
        let Ok(slot) = self.series.area().worker_slot() else {
            self.series.area().bump(hdr::STAT_DROPPED, 1);
            return;
        };
        let _w = self.series.writing();
        match self.cached_entry(slot) {
            Some((ts, v, tag)) => {
                f(v);
                ts.store(tag | self.stamp(), Ordering::Release);
            }
            None => self.update_slow(slot, f),
        }
    }

    /// `update` without a cached entry: find or claim the entry
    /// (`my_entry_slow`); nothing if the series was removed; dropped and
    /// counted if there is no entry.
    #[cold]
    #[inline(never)]
    fn update_slow(&self, slot: u32, f: impl FnOnce(&AtomicU64)) {
        let s = &*self.series;
        if s.cell(gx::RETAINED_VALUE).is_none() {
            return;
        }
        if let Some((ts, v, tag)) = self.my_entry_slow(slot, slot_tag(slot), true) {
            f(v);
            ts.store(tag | self.stamp(), Ordering::Release);
        }
    }

    /// The two words of the entry at area offset `off`, one that
    /// `my_entry_slow` checked and cached.
    #[inline(always)]
    fn words(&self, off: u64) -> (&AtomicU64, &AtomicU64) {
        let s = &*self.series;
        // The mapping's first byte: `gen_ptr` is its word at `off + GEN`.
        let base = s.gen_ptr.cast::<u8>().wrapping_sub(s.off + rec::GEN);
        let at = base.wrapping_add(off as usize);
        // SAFETY: `off` was stored in `entry` only after `u64_at(off)` and
        // `u64_at(off + 8)` returned words of this area's mapping (aligned,
        // in bounds), and the mapping lives as long as `s.family.area`.
        unsafe {
            (
                &*at.cast::<AtomicU64>(),
                &*at.wrapping_add(8).cast::<AtomicU64>(),
            )
        }
    }

    /// Find this slot's entry in the series (or, with `claim`, claim one,
    /// under the area lock) and cache it.
    fn my_entry_slow(
        &self,
        slot: u32,
        tag: u64,
        claim: bool,
    ) -> Option<(&AtomicU64, &AtomicU64, u64)> {
        let s = &*self.series;
        let area = s.area();
        let found = find_entry(area, s.off, s.gen, tag);
        let off = match found {
            Some(off) => off,
            None if claim => claim_entry(area, s.off, s.gen, slot)?,
            None => return None,
        };
        area.u64_at(off)?;
        area.u64_at(off + 8)?;
        self.entry.store(tag | off as u64, Ordering::Relaxed);
        let (ts, v) = self.words(off as u64);
        Some((ts, v, tag))
    }

    /// The stamp to write: the time for `mostrecent`, else just "written".
    #[inline]
    fn stamp(&self) -> u64 {
        if matches!(
            self.series.family.shape.gauge_mode,
            GaugeMode::MostRecent | GaugeMode::LiveMostRecent
        ) {
            process::now_ms().clamp(1, gx::STAMP_MASK)
        } else {
            1
        }
    }

    /// Set this worker's value.
    #[inline]
    pub fn set(&self, v: f64) {
        self.update(|val| val.store(v.to_bits(), Ordering::Relaxed));
    }

    /// Add `v` (may be negative) to this worker's value.
    #[inline]
    pub fn add(&self, v: f64) {
        self.update(|val| atomic_add_f64(val, v));
    }

    /// Add 1.
    #[inline]
    pub fn inc(&self) {
        self.add(1.0);
    }

    /// Subtract 1.
    #[inline]
    pub fn dec(&self) {
        self.add(-1.0);
    }

    /// Subtract `v`.
    #[inline]
    pub fn sub(&self, v: f64) {
        self.add(-v);
    }

    /// Set to the current Unix time in seconds.
    pub fn set_to_current_time(&self) {
        self.set(process::now_secs());
    }

    /// This worker's own value (0 if it never wrote the series).
    pub fn get_local(&self) -> f64 {
        let s = &*self.series;
        let Ok(slot) = s.area().worker_slot() else {
            return 0.0;
        };
        if s.cell(gx::RETAINED_VALUE).is_none() {
            return 0.0;
        }
        self.my_entry_slow(slot, slot_tag(slot), false)
            .map(|(_, v, _)| f64::from_bits(v.load(Ordering::Relaxed)))
            .unwrap_or(0.0)
    }

    /// The value as rendered (the family's mode applied over all workers).
    /// For `all` mode: the sum over live workers.
    pub fn get(&self) -> f64 {
        let s = &self.series;
        if !s.is_live() {
            return 0.0;
        }
        combine(s.area(), s.cells, s.family.shape.gauge_mode, |_, _| {})
    }
}

/// The entry of the series at `series` (generation `gen`) tagged `tag`.
fn find_entry(area: &AreaInner, series: usize, gen: u64, tag: u64) -> Option<usize> {
    area.visit_gauge_entries(series, gen, |e| {
        area.u64_at(e)
            .is_some_and(|w| w.load(Ordering::Acquire) & !gx::STAMP_MASK == tag)
    })
    .hit
}

/// Serializes the claims of this process's threads (they share one slot,
/// which must get at most one entry per series): a spin lock holding the
/// holder's fork generation + 1. A value of another generation was left by
/// a thread of the parent process, which does not exist in this child: it
/// is taken over. Held only around a walk of one chain and a
/// compare-exchange, never while waiting for anything else.
static CLAIMING: AtomicU32 = AtomicU32::new(0);
/// Attempts to take `CLAIMING` before the update is dropped.
const CLAIM_SPINS: u32 = 100_000;

/// `CLAIMING`, held until dropped.
struct ClaimGuard;

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        CLAIMING.store(0, Ordering::Release);
    }
}

fn claim_guard() -> Option<ClaimGuard> {
    let me = process::fork_generation().wrapping_add(1).max(1);
    for attempt in 0..CLAIM_SPINS {
        let cur = CLAIMING.load(Ordering::Relaxed);
        if cur != me
            && CLAIMING
                .compare_exchange(cur, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return Some(ClaimGuard);
        }
        if attempt < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    None
}

/// Under `CLAIMING`: this slot's entry (`tag`) in the series, or else the
/// first free one, claimed by compare-exchange of its tag word 0 →
/// `tag` (a writer of another slot may win it: then the next). `Err` with
/// where the chain ended when it has no free entry.
fn claim_free(
    area: &AreaInner,
    series: usize,
    gen: u64,
    tag: u64,
    _claiming: &ClaimGuard,
) -> Result<usize, ChainEnd> {
    let mut end;
    let mut tries = 0;
    loop {
        let mut free = None;
        end = area.visit_gauge_entries(series, gen, |e| {
            let w = area
                .u64_at(e)
                .map_or(u64::MAX, |w| w.load(Ordering::Acquire));
            if free.is_none() && w == 0 && area.u64_at(e + 8).is_some() {
                free = Some(e);
            }
            w & !gx::STAMP_MASK == tag
        });
        if let Some(e) = end.hit {
            return Ok(e);
        }
        let (Some(e), Some(ts)) = (free, free.and_then(|e| area.u64_at(e))) else {
            return Err(end);
        };
        if ts
            .compare_exchange(0, tag, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            // Ours (stamp 0: readers skip it). A free entry's value is 0
            // already (released entries are zeroed); make sure of it.
            if let Some(v) = area.u64_at(e + 8) {
                v.store(0, Ordering::Relaxed);
            }
            return Ok(e);
        }
        // Another slot took it: look again (each loss is another slot's
        // entry, so this ends; bounded anyway).
        tries += 1;
        if tries > 2 * area.max_workers() + 2 {
            return Err(end);
        }
    }
}

/// Claim an entry of the series for `slot` (see `claim_free`); if the
/// chain has none free, under the area lock (bounded wait) link a new
/// extension and claim there. On a lock timeout (then claims back off for
/// `CLAIM_BACKOFF_MS`), a full area or a damaged chain the update is
/// dropped and counted.
fn claim_entry(area: &AreaInner, series: usize, gen: u64, slot: u32) -> Option<usize> {
    let drop_update = || {
        area.bump(hdr::STAT_DROPPED, 1);
        None
    };
    let tag = slot_tag(slot);
    match claim_guard().map(|c| claim_free(area, series, gen, tag, &c)) {
        Some(Ok(e)) => return Some(e),
        Some(Err(_)) => {}
        None => return drop_update(),
    }
    if process::monotonic_ms() < CLAIM_BACKOFF_UNTIL.load(Ordering::Relaxed) {
        return drop_update();
    }
    let guard = match area.lock_within(crate::area::ATTACH_WAIT) {
        Ok(g) => g,
        Err(_) => {
            CLAIM_BACKOFF_UNTIL.store(
                process::monotonic_ms() + CLAIM_BACKOFF_MS,
                Ordering::Relaxed,
            );
            return drop_update();
        }
    };
    if !area.series_live(series, gen) {
        return None;
    }
    let Some(claiming) = claim_guard() else {
        return drop_update();
    };
    // Only this process extends (the area lock is ours); writers of other
    // slots may claim the new entries as soon as they are linked.
    for _ in 0..2 {
        match claim_free(area, series, gen, tag, &claiming) {
            Ok(e) => return Some(e),
            Err(end) => {
                if area.extend_gauge_chain(&guard, series, gen, &end).is_err() {
                    return drop_update();
                }
            }
        }
    }
    drop_update()
}

/// Reads of one series that may retry while a reaper folds gauges.
const COMBINE_TRIES: u32 = 10_000;

/// Combine a gauge series' cells at `cells` by `mode`. For `All`, calls
/// `per_worker(slot, value)` for each live worker that wrote (in slot
/// order), and returns their sum.
///
/// The read is consistent with the reaper's folds (`fold_dead_slots`): it
/// retries while the area's fold sequence changes under it, and while one
/// fold is in progress (the sequence is odd, also when its reaper died in
/// the middle) it reads the series being folded as it will be once the fold
/// is done: the retained pair from the header, without the reaped slots. So
/// a reaped worker's value is never seen twice or not at all. After
/// `COMBINE_TRIES` torn reads in a row (a reaper folding without pause
/// all the time) the last read is returned.
pub(crate) fn combine(
    area: &AreaInner,
    cells: usize,
    mode: GaugeMode,
    mut per_worker: impl FnMut(u32, f64),
) -> f64 {
    let seq = area.hdr(hdr::FOLD_SEQ);
    let mut workers = Vec::new();
    let mut value = 0.0;
    for attempt in 0..COMBINE_TRIES {
        let before = seq.load(Ordering::Acquire);
        let folding = (before & 1 == 1
            && area.hdr(hdr::FOLD_CELLS).load(Ordering::Relaxed) == cells as u64)
            .then(|| {
                (
                    area.hdr(hdr::FOLD_VALUE).load(Ordering::Relaxed),
                    area.hdr(hdr::FOLD_STAMP).load(Ordering::Relaxed),
                )
            });
        value = combine_once(area, cells, mode, folding, &mut workers);
        fence(Ordering::Acquire);
        if seq.load(Ordering::Relaxed) == before {
            break;
        }
        if attempt < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    if mode == GaugeMode::All {
        for &(slot, v, _) in &workers {
            per_worker(slot, v);
        }
    }
    value
}

/// One read of the series. `folding`: the retained pair to use instead of
/// the series' own when it is being folded (its reaped slots are skipped).
/// `workers` gets `(slot, value, stamp)` of every written entry, in slot
/// order, which is also the order they combine in (ties of `mostrecent`
/// go to the higher slot, whatever entry a slot holds).
fn combine_once(
    area: &AreaInner,
    cells: usize,
    mode: GaugeMode,
    folding: Option<(u64, u64)>,
    workers: &mut Vec<(u32, f64, u64)>,
) -> f64 {
    let read = |i: usize| {
        area.u64_at(cells + 8 * i)
            .map(|c| c.load(Ordering::Acquire))
            .unwrap_or(0)
    };
    let (retained, retained_stamp) = match folding {
        Some((v, s)) => (f64::from_bits(v), s),
        None => (
            f64::from_bits(read(gx::RETAINED_VALUE)),
            read(gx::RETAINED_STAMP),
        ),
    };
    workers.clear();
    let series = cells.wrapping_sub(ser::CELLS);
    area.visit_gauge_entries(series, area.generation(series), |e| {
        if let Some((slot, v, stamp)) = read_entry(area, e) {
            if folding.is_none() || !area.slot_reaping(slot) {
                workers.push((slot, v, stamp));
            }
        }
        false
    });
    workers.sort_unstable_by_key(|w| w.0);
    let mut acc: Option<(f64, u64)> = None;
    if keeps_dead(mode) && retained_stamp != 0 {
        acc = Some((retained, retained_stamp));
    }
    for &(_, v, stamp) in workers.iter() {
        acc = Some(match acc {
            None => (v, stamp),
            Some(a) => merge(mode, a, (v, stamp)),
        });
    }
    acc.map(|(v, _)| v).unwrap_or(0.0)
}

/// A written entry at `e`: `(slot, value, stamp)`; `None` if it is free,
/// claimed but not written yet, or tagged with no slot of the area.
fn read_entry(area: &AreaInner, e: usize) -> Option<(u32, f64, u64)> {
    let ts = area.u64_at(e)?.load(Ordering::Acquire);
    let (tag, stamp) = ((ts >> gx::TAG_SHIFT) as u32, ts & gx::STAMP_MASK);
    if stamp == 0 || tag == 0 || tag > area.max_workers() {
        return None;
    }
    let v = f64::from_bits(area.u64_at(e + 8)?.load(Ordering::Relaxed));
    Some((tag - 1, v, stamp))
}

/// Whether `mode` keeps dead workers' values (in the retained pair).
fn keeps_dead(mode: GaugeMode) -> bool {
    matches!(
        mode,
        GaugeMode::Sum | GaugeMode::Max | GaugeMode::Min | GaugeMode::MostRecent
    )
}

/// `(value, stamp)` of `acc` combined with one worker's, as `mode` says.
fn merge(mode: GaugeMode, (a, s): (f64, u64), (v, stamp): (f64, u64)) -> (f64, u64) {
    match mode {
        GaugeMode::Max | GaugeMode::LiveMax => (a.max(v), s.max(stamp)),
        GaugeMode::Min | GaugeMode::LiveMin => (a.min(v), s.max(stamp)),
        GaugeMode::MostRecent | GaugeMode::LiveMostRecent => {
            if stamp >= s {
                (v, stamp)
            } else {
                (a, s)
            }
        }
        GaugeMode::Sum | GaugeMode::LiveSum | GaugeMode::All => (a + v, s.max(stamp)),
    }
}

/// Test hook: the process kills itself (SIGKILL) in the middle of its
/// `n`-th gauge fold step from now (after the series' retained value is
/// stored, before its reaped slots' entries are released); 0 turns it off.
#[doc(hidden)]
pub fn die_in_fold_step(n: u64) {
    DIE_IN_FOLD_STEP.store(n, Ordering::Relaxed);
}

static DIE_IN_FOLD_STEP: AtomicU64 = AtomicU64::new(0);

fn maybe_die_in_fold() {
    let n = DIE_IN_FOLD_STEP.load(Ordering::Relaxed);
    if n == 0 {
        return;
    }
    DIE_IN_FOLD_STEP.store(n - 1, Ordering::Relaxed);
    if n == 1 {
        // SAFETY: raise() has no memory-safety preconditions; SIGKILL ends
        // the process here, as a kill from outside would.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}

/// Finish the fold step a killed reaper left open (the fold sequence is
/// still odd), if any, by storing its result from the header again: a step
/// is never applied twice. `unfinished` are the slots that reaper was
/// reaping (those REAPING now): the step's result holds their values only,
/// so only their entries are released. Run it under the area lock before
/// any other slot turns REAPING: while the sequence is odd, readers of the
/// step's series skip every REAPING slot.
pub(crate) fn finish_open_fold(area: &AreaInner, unfinished: &[u32]) {
    let seq = area.hdr(hdr::FOLD_SEQ);
    if seq.load(Ordering::Acquire) & 1 == 0 {
        return;
    }
    let target = area.hdr(hdr::FOLD_CELLS).load(Ordering::Relaxed);
    let result = (
        area.hdr(hdr::FOLD_VALUE).load(Ordering::Relaxed),
        area.hdr(hdr::FOLD_STAMP).load(Ordering::Relaxed),
    );
    for_each_gauge_series(area, |cells, _| {
        if cells as u64 == target {
            store_fold(area, cells, result, unfinished);
        }
    });
    seq.fetch_add(1, Ordering::Release);
}

/// Fold the entries of the worker slots `reaped` (all in state
/// `SLOT_REAPING`) into each gauge series' retained value, as its mode
/// says, and release them (tag 0) for other slots. Runs under the area
/// lock, after [`finish_open_fold`].
///
/// Each series is one step, bracketed by the fold sequence: the step's
/// result (the series and its new retained pair) is written to the header
/// first, then the sequence turns odd, then the series' entries change,
/// then the sequence turns even. Readers use the header's result while it
/// is odd. A finished step leaves the reaped slots without entries, so
/// folding a series again for the same slots does nothing.
pub(crate) fn fold_dead_slots(area: &AreaInner, reaped: &[u32]) {
    for_each_gauge_series(area, |cells, mode| fold_series(area, cells, mode, reaped));
}

/// Call `f(cells, mode)` for every live gauge series of a valid family
/// (a series may precede its family in the walk).
fn for_each_gauge_series(area: &AreaInner, mut f: impl FnMut(usize, GaugeMode)) {
    let mut modes: Vec<(usize, GaugeMode)> = Vec::new();
    let mut series: Vec<(usize, usize)> = Vec::new();
    area.walk(0, false, |rec| {
        if rec.state != STATE_LIVE {
            return;
        }
        if rec.kind == KIND_FAMILY {
            if let Some(shape) = super::shape::Shape::decode(area, rec) {
                if shape.kind == MetricType::Gauge {
                    modes.push((rec.off, shape.gauge_mode));
                }
            }
            return;
        }
        if rec.kind != KIND_SERIES || rec.len < ser::CELLS + 8 * cells() {
            return;
        }
        if let Some(fam) = area.u32_at(rec.off + ser::FAMILY) {
            series.push((rec.off, fam.load(Ordering::Relaxed) as usize));
        }
    });
    for (off, fam) in series {
        if let Some(&(_, mode)) = modes.iter().find(|(o, _)| *o == fam) {
            f(off + ser::CELLS, mode);
        }
    }
}

/// The entries of the series at `cells` tagged with a slot of `slots`.
fn entries_of(area: &AreaInner, cells: usize, slots: &[u32]) -> Vec<(usize, u64)> {
    let series = cells - ser::CELLS;
    let mut out = Vec::new();
    area.visit_gauge_entries(series, area.generation(series), |e| {
        if let Some(ts) = area.u64_at(e).map(|w| w.load(Ordering::Acquire)) {
            let tag = (ts >> gx::TAG_SHIFT) as u32;
            if tag != 0 && slots.contains(&(tag - 1)) {
                out.push((e, ts));
            }
        }
        false
    });
    out
}

/// Release the entry at `e` (zero value, then tag and stamp).
fn release_entry(area: &AreaInner, e: usize) {
    if let (Some(ts), Some(v)) = (area.u64_at(e), area.u64_at(e + 8)) {
        v.store(0, Ordering::Relaxed);
        ts.store(0, Ordering::Release);
    }
}

/// Fold the `reaped` slots of the series at `cells` (one step, see
/// [`fold_dead_slots`]).
fn fold_series(area: &AreaInner, cells: usize, mode: GaugeMode, reaped: &[u32]) {
    let cell = |i: usize| area.u64_at(cells + 8 * i);
    let (Some(rv), Some(rs)) = (cell(gx::RETAINED_VALUE), cell(gx::RETAINED_STAMP)) else {
        return;
    };
    let mut retained = (rv.load(Ordering::Relaxed), rs.load(Ordering::Relaxed));
    let mut written = false;
    for (e, ts) in entries_of(area, cells, reaped) {
        let stamp = ts & gx::STAMP_MASK;
        if stamp == 0 {
            // Claimed, never written: nothing a reader counts.
            release_entry(area, e);
            continue;
        }
        written = true;
        if keeps_dead(mode) {
            let val = area
                .u64_at(e + 8)
                .map_or(0.0, |v| f64::from_bits(v.load(Ordering::Relaxed)));
            let (old, old_stamp) = (f64::from_bits(retained.0), retained.1);
            let (new, new_stamp) = if old_stamp == 0 {
                (val, stamp)
            } else {
                merge(mode, (old, old_stamp), (val, stamp))
            };
            retained = (new.to_bits(), new_stamp.max(old_stamp));
        }
    }
    if !written {
        return;
    }
    let seq = area.hdr(hdr::FOLD_SEQ);
    let s = seq.load(Ordering::Relaxed);
    area.hdr(hdr::FOLD_CELLS)
        .store(cells as u64, Ordering::Relaxed);
    area.hdr(hdr::FOLD_VALUE)
        .store(retained.0, Ordering::Relaxed);
    area.hdr(hdr::FOLD_STAMP)
        .store(retained.1, Ordering::Relaxed);
    // Odd: the result above is what readers use for this series from now on.
    seq.store(s | 1, Ordering::Release);
    fence(Ordering::Release);
    store_fold(area, cells, retained, reaped);
    seq.store((s | 1) + 1, Ordering::Release);
}

/// Store a fold's result: the retained pair, and release the reaped
/// slots' entries.
fn store_fold(area: &AreaInner, cells: usize, (value, stamp): (u64, u64), reaped: &[u32]) {
    let cell = |i: usize| area.u64_at(cells + 8 * i);
    if let (Some(rv), Some(rs)) = (cell(gx::RETAINED_VALUE), cell(gx::RETAINED_STAMP)) {
        rv.store(value, Ordering::Relaxed);
        rs.store(stamp, Ordering::Release);
    }
    maybe_die_in_fold();
    for (e, _) in entries_of(area, cells, reaped) {
        release_entry(area, e);
    }
}

/// Render one gauge series: its per-worker slots combined by the family's
/// mode, or (mode `all`) one point per worker with a `worker` label.
pub(crate) fn emit(
    view: &super::view::SeriesCells<'_>,
    cx: super::view::Ctx<'_, '_>,
) -> crate::error::Result<super::view::Emitted> {
    use super::view::Emitted;
    use crate::encoding::Point;
    let (area, cells) = (view.area(), view.cells_off());
    if cx.shape.gauge_mode == GaugeMode::All {
        let mut per_worker = Vec::new();
        combine(area, cells, GaugeMode::All, |slot, v| {
            per_worker.push((slot.to_string(), v))
        });
        if !view.same() {
            return Ok(Emitted::Skipped);
        }
        for (slot, value) in &per_worker {
            let mut with_worker = cx.labels.to_vec();
            with_worker.push((WORKER_LABEL, slot));
            cx.enc
                .point(cx.desc, &with_worker, &Point::Gauge { value: *value })?;
        }
    } else {
        let Some(point) = plain_point(view, cx.shape) else {
            return Ok(Emitted::Skipped);
        };
        cx.enc.point(cx.desc, cx.labels, &point)?;
    }
    Ok(Emitted::Written)
}

/// The one point [`emit`] writes for a gauge not of mode `all`, if the
/// series is still the one the walk saw after its cells are read (for the
/// render's kept-text path too); `None` for mode `all`.
#[inline]
pub(crate) fn plain_point(
    view: &super::view::SeriesCells<'_>,
    shape: &super::shape::Shape,
) -> Option<crate::encoding::Point<'static>> {
    if shape.gauge_mode == GaugeMode::All {
        return None;
    }
    let value = combine(view.area(), view.cells_off(), shape.gauge_mode, |_, _| {});
    view.same()
        .then_some(crate::encoding::Point::Gauge { value })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::GaugeMode;
    use crate::area::format::{gx, hdr, slot, PAGE_SIZE, SLOT_LIVE, SLOT_REAPING};
    use crate::{Area, AreaOptions, Opts};

    /// A reaper killed in the middle of a fold step leaves slot 1 REAPING
    /// and its step's result in the header; before the next reap, the
    /// worker of slot 2 dies too. The next reaper finishes the old step and
    /// folds slot 2: both dead workers' values are kept, each once.
    #[test]
    fn finishing_a_killed_reapers_step_keeps_a_worker_that_died_since() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let g = area
            .registry()
            .gauge(Opts::new("summed", "Sum gauge."), GaugeMode::Sum)
            .unwrap()
            .get()
            .unwrap();
        let a = &area.inner;
        let cells = g.series.cells;
        let cell = |i: usize| a.u64_at(cells + 8 * i).unwrap();
        let slot_state = |s: u32| {
            a.u32_at(PAGE_SIZE + s as usize * slot::SIZE + slot::STATE)
                .unwrap()
        };
        // Slot 1's worker wrote 5, slot 2's worker 7 (neither holds its
        // slot lock: both are dead).
        // Their entries are the two inline ones.
        for (i, (s, v)) in [(1u64, 5.0f64), (2, 7.0)].into_iter().enumerate() {
            let e = gx::ENTRIES + 2 * i;
            cell(e).store(((s + 1) << gx::TAG_SHIFT) | 1_000, Ordering::Relaxed);
            cell(e + 1).store(v.to_bits(), Ordering::Relaxed);
        }
        // The killed reaper: slot 1 REAPING, its step for this series
        // announced (sequence odd, result 5 in the header), nothing stored.
        slot_state(1).store(SLOT_REAPING, Ordering::Relaxed);
        slot_state(2).store(SLOT_LIVE, Ordering::Relaxed);
        a.hdr(hdr::FOLD_CELLS)
            .store(cells as u64, Ordering::Relaxed);
        a.hdr(hdr::FOLD_VALUE)
            .store(5.0f64.to_bits(), Ordering::Relaxed);
        a.hdr(hdr::FOLD_STAMP).store(1_000, Ordering::Relaxed);
        a.hdr(hdr::FOLD_SEQ).store(1, Ordering::Relaxed);
        assert_eq!(g.get(), 12.0, "a reader sees both values before the reap");
        assert_eq!(area.reap_dead_workers().unwrap(), 2);
        assert_eq!(g.get(), 12.0, "both dead workers' values are kept once");
        assert_eq!(a.hdr(hdr::FOLD_SEQ).load(Ordering::Relaxed) & 1, 0);
    }

    /// `livemax`/`livemin`/`livemostrecent` combine like `max`/`min`/
    /// `mostrecent` while a worker lives, and drop its value once it is
    /// reaped; the non-live modes keep it.
    #[test]
    fn live_modes_drop_a_reaped_workers_value_and_the_others_keep_it() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let reg = area.registry();
        let a = &area.inner;
        // (mode, this process's value, the dead worker's value, before, after the reap)
        let cases = [
            (GaugeMode::Max, 1.0, 9.0f64, 9.0, 9.0),
            (GaugeMode::LiveMax, 1.0, 9.0, 9.0, 1.0),
            (GaugeMode::Min, 5.0, -3.0, -3.0, -3.0),
            (GaugeMode::LiveMin, 5.0, -3.0, -3.0, 5.0),
            (GaugeMode::MostRecent, 2.0, 7.0, 7.0, 7.0),
            (GaugeMode::LiveMostRecent, 2.0, 7.0, 7.0, 2.0),
        ];
        let gauges: Vec<_> = cases
            .iter()
            .map(|&(mode, mine, dead, ..)| {
                let name = format!("g_{}", mode.as_str());
                let g = reg
                    .gauge(Opts::new(&name, "A gauge."), mode)
                    .unwrap()
                    .get()
                    .unwrap();
                g.set(mine);
                // Slot 1's worker (dead: it holds no slot lock) wrote later,
                // into the second inline entry (this process has the first).
                let cell = |i: usize| a.u64_at(g.series.cells + 8 * i).unwrap();
                let e = gx::ENTRIES + 2;
                cell(e).store(
                    (2 << gx::TAG_SHIFT) | (gx::STAMP_MASK / 2),
                    Ordering::Relaxed,
                );
                cell(e + 1).store(dead.to_bits(), Ordering::Relaxed);
                g
            })
            .collect();
        a.u32_at(PAGE_SIZE + slot::SIZE + slot::STATE)
            .unwrap()
            .store(SLOT_LIVE, Ordering::Relaxed);
        for (g, &(mode, _, _, before, _)) in gauges.iter().zip(&cases) {
            assert_eq!(g.get(), before, "{} before the reap", mode.as_str());
        }
        assert_eq!(area.reap_dead_workers().unwrap(), 1);
        for (g, &(mode, _, _, _, after)) in gauges.iter().zip(&cases) {
            assert_eq!(g.get(), after, "{} after the reap", mode.as_str());
            assert_eq!(GaugeMode::parse(mode.as_str()), Some(mode));
            assert_eq!(GaugeMode::from_u8(mode as u8), Some(mode));
        }
    }

    /// Fake writers: slots from `first_slot` on take the free entries of
    /// `g`'s chain (value 1 each, written); how many.
    fn fill_free_entries(g: &super::Gauge, first_slot: u64) -> u64 {
        let a = g.series.area();
        let mut slot = first_slot;
        a.visit_gauge_entries(g.series.off, g.series.gen, |e| {
            let ts = a.u64_at(e).unwrap();
            if ts.load(Ordering::Relaxed) == 0 {
                ts.store(((slot + 1) << gx::TAG_SHIFT) | 1, Ordering::Relaxed);
                a.u64_at(e + 8)
                    .unwrap()
                    .store(1.0f64.to_bits(), Ordering::Relaxed);
                slot += 1;
            }
            false
        });
        slot - first_slot
    }

    /// Damaged links — to another series' record, to another series'
    /// extension, back to their own extension, outside the area — end the
    /// chain: a writer that needs a new entry links a fresh extension in
    /// their place, and never writes a byte of another series.
    #[test]
    fn a_damaged_chain_never_leads_a_writer_into_another_series() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let a = &area.inner;
        let f = area
            .registry()
            .gauge(
                Opts::new("chained", "A gauge.").labels(&["k"]),
                GaugeMode::Sum,
            )
            .unwrap();
        // Series `b`: two fake writers inline, this process in an extension.
        let b = f.labels(&["b"]).unwrap();
        assert_eq!(fill_free_entries(&b, 1), 2);
        b.set(10.0);
        let b_exts = a.gauge_extensions(b.series.off);
        assert_eq!(b_exts.len(), 1);
        let snapshot = || {
            // The series record (96 bytes) and its extension (192).
            let mut bytes = vec![0u8; 96 + 192];
            assert!(a.read_bytes(b.series.off, &mut bytes[..96]));
            assert!(a.read_bytes(b_exts[0], &mut bytes[96..]));
            bytes
        };
        let b_bytes = snapshot();
        let targets = [b.series.off, b_exts[0], 0, 1 << 40];
        for (i, &target) in targets.iter().enumerate() {
            let g = f.labels(&[&format!("a{i}")]).unwrap();
            let filled = fill_free_entries(&g, 1);
            g.set(5.0);
            let ext = a.gauge_extensions(g.series.off);
            assert_eq!((filled, ext.len()), (2, 1));
            // Every entry of the extension taken but this process's, which
            // is given back: the next write must claim a new entry.
            assert_eq!(fill_free_entries(&g, 10), 8);
            let own = super::find_entry(a, g.series.off, g.series.gen, 1 << gx::TAG_SHIFT);
            super::release_entry(a, own.unwrap());
            assert_eq!(fill_free_entries(&g, 20), 1);
            let n = 9;
            let bad = if target == 0 { ext[0] } else { target };
            a.u64_at(ext[0] + gx::EXT_LINK)
                .unwrap()
                .store(bad as u64, Ordering::Relaxed);
            assert_eq!(
                g.get(),
                2.0 + n as f64,
                "damaged link {bad}: the chain ends"
            );
            // A fresh handle (no cached entry) writes: a new extension.
            let fresh = f.labels(&[&format!("a{i}")]).unwrap();
            fresh.set(100.0);
            assert_eq!(g.get(), 2.0 + n as f64 + 100.0, "damaged link {bad}");
            let now = a.gauge_extensions(g.series.off);
            assert_eq!(now.len(), 2, "damaged link {bad}: replaced");
            assert_eq!(now[0], ext[0]);
            assert_ne!(now[1], bad);
            assert_eq!(snapshot(), b_bytes, "damaged link {bad}: b untouched");
            assert_eq!(b.get(), 12.0);
        }
    }

    /// Removing a gauge series frees its extension with it; a rebuild frees
    /// an extension whose owner is gone (its freer died between the two)
    /// and keeps the extensions of live series.
    #[test]
    fn extensions_are_freed_with_their_series() {
        use crate::area::format::{KIND_GAUGE_EXT, KIND_SERIES, STATE_FREE, STATE_LIVE};
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let a = &area.inner;
        let f = area
            .registry()
            .gauge(
                Opts::new("extended", "A gauge.").labels(&["k"]),
                GaugeMode::Sum,
            )
            .unwrap();
        let series: Vec<_> = ["x", "y", "z"]
            .iter()
            .map(|k| {
                let g = f.labels(&[k]).unwrap();
                assert_eq!(fill_free_entries(&g, 1), 2);
                g.set(4.0);
                let ext = a.gauge_extensions(g.series.off);
                assert_eq!(ext.len(), 1);
                (g, ext[0])
            })
            .collect();
        let ext_state = |e: usize| a.record_state(e, KIND_GAUGE_EXT);
        let freed = area.stats().records_freed;
        assert!(f.remove(&["x"]).unwrap());
        assert_eq!(ext_state(series[0].1), Some(STATE_FREE));
        assert_eq!(area.stats().records_freed, freed + 2);
        // y's freer "dies" after freeing the series record.
        {
            let guard = a.lock().unwrap();
            assert!(a.free_record(&guard, series[1].0.series.off));
            assert_eq!(ext_state(series[1].1), Some(STATE_LIVE));
            a.rebuild_free_lists(&guard);
        }
        assert_eq!(ext_state(series[1].1), Some(STATE_FREE), "orphan freed");
        let (z, z_ext) = &series[2];
        assert_eq!(ext_state(*z_ext), Some(STATE_LIVE), "a live series' kept");
        assert_eq!(a.record_state(z.series.off, KIND_SERIES), Some(STATE_LIVE));
        assert_eq!(z.get(), 6.0);
        assert_eq!(series[0].0.get(), 0.0);
        assert_eq!(area.stats().records_freed, freed + 4);
    }

    /// Threads of one process (one slot) writing fresh series at once get
    /// one entry per series between them, also when the inline entries are
    /// taken and they must extend the chain.
    #[test]
    fn threads_of_one_slot_claim_one_entry_per_series() {
        let area = Area::anonymous(&AreaOptions::with_pages(256)).unwrap();
        let a = &area.inner;
        let f = area
            .registry()
            .gauge(
                Opts::new("raced", "A gauge.").labels(&["k"]),
                GaugeMode::Sum,
            )
            .unwrap();
        let keys: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let handles: Vec<super::Gauge> = keys.iter().map(|k| f.labels(&[k]).unwrap()).collect();
        for g in handles.iter().step_by(2) {
            assert_eq!(fill_free_entries(g, 1), 2, "even series must extend");
        }
        let barrier = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    // Handles of their own: no shared cache.
                    let mine: Vec<super::Gauge> =
                        keys.iter().map(|k| f.labels(&[k]).unwrap()).collect();
                    barrier.wait();
                    for g in &mine {
                        g.add(1.0);
                    }
                });
            }
        });
        let slot = area.attach().unwrap();
        for (i, g) in handles.iter().enumerate() {
            let mut ours = 0;
            a.visit_gauge_entries(g.series.off, g.series.gen, |e| {
                let w = a.u64_at(e).unwrap().load(Ordering::Relaxed);
                ours += usize::from(w >> gx::TAG_SHIFT == u64::from(slot) + 1);
                false
            });
            assert_eq!(ours, 1, "series {i}");
            assert_eq!(g.get_local(), 8.0, "series {i}");
            let fake = if i % 2 == 0 { 2.0 } else { 0.0 };
            assert_eq!(g.get(), 8.0 + fake, "series {i}");
        }
    }
}
