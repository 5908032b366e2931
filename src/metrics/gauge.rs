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
//! `area::gauge_fold`). A series costs 16 bytes per slot that wrote it.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use super::{atomic_add_f64, SeriesInner};
use crate::area::format::{gx, hdr, rec, ser};
use crate::area::gauge_ext::ChainEnd;
use crate::area::gauge_fold::{keeps_dead, merge};
use crate::area::AreaInner;
use crate::encoding::MetricType;
use crate::process;

/// Test hook of the fold (`area::gauge_fold`).
#[doc(hidden)]
pub use crate::area::gauge_fold::die_in_fold_step;
pub use crate::area::gauge_fold::GaugeMode;

/// The label that `all`-mode gauges add: the worker slot index.
pub const WORKER_LABEL: &str = "worker";

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
/// The read is consistent with the reaper's folds (`area::gauge_fold`): it
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
    use crate::area::format::gx;
    use crate::{Area, AreaOptions, Opts};

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
            crate::area::gauge_fold::release_entry(a, own.unwrap());
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
