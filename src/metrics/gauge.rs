//! Gauge: one value per worker, combined at render time by the family's
//! [`GaugeMode`]. Gauge updates write through to this process's cell in the
//! area (a set cannot be buffered per thread without losing its order).
//!
//! Series cells: `[retained value, retained stamp]` then, per worker slot,
//! `[value, stamp]`. A stamp is the Unix time in ms of the last write (0 =
//! never written). When a dead worker is reaped its value is folded into the
//! retained pair as the mode says, and its cells are zeroed for the next
//! process that takes the slot; readers and the fold agree through a
//! sequence counter in the header (see `combine` and `fold_dead_slots`).

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Arc;

use super::{atomic_add_f64, metric_handle, SeriesInner};
use crate::area::format::{hdr, ser, KIND_FAMILY, KIND_SERIES, STATE_LIVE};
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

/// Cells per gauge series.
pub(crate) fn cells(max_workers: u32) -> usize {
    2 + 2 * max_workers as usize
}

/// A gauge series handle.
#[derive(Clone)]
pub struct Gauge {
    pub(crate) series: Arc<SeriesInner>,
}

metric_handle!(Gauge, MetricType::Gauge);

impl Gauge {
    #[inline]
    fn my_cells(&self) -> Option<(&AtomicU64, &AtomicU64)> {
        let area = self.series.area();
        match area.worker_slot() {
            Ok(slot) => {
                let base = 2 + 2 * slot as usize;
                Some((self.series.cell(base)?, self.series.cell(base + 1)?))
            }
            Err(_) => {
                area.bump(crate::area::format::hdr::STAT_DROPPED, 1);
                None
            }
        }
    }

    /// The stamp to write: the time for `mostrecent`, else just "written".
    #[inline]
    fn stamp(&self) -> u64 {
        if matches!(
            self.series.family.shape.gauge_mode,
            GaugeMode::MostRecent | GaugeMode::LiveMostRecent
        ) {
            process::now_ms().max(1)
        } else {
            1
        }
    }

    /// Set this worker's value.
    #[inline]
    pub fn set(&self, v: f64) {
        if let Some((val, stamp)) = self.my_cells() {
            val.store(v.to_bits(), Ordering::Relaxed);
            stamp.store(self.stamp(), Ordering::Release);
        }
    }

    /// Add `v` (may be negative) to this worker's value.
    #[inline]
    pub fn add(&self, v: f64) {
        if let Some((val, stamp)) = self.my_cells() {
            atomic_add_f64(val, v);
            stamp.store(self.stamp(), Ordering::Release);
        }
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

    /// This worker's own value.
    pub fn get_local(&self) -> f64 {
        self.my_cells()
            .map(|(v, _)| f64::from_bits(v.load(Ordering::Relaxed)))
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

/// Reads of one series that may retry while a reaper folds gauges.
const COMBINE_TRIES: u32 = 10_000;

/// Combine a gauge series' cells at `cells` by `mode`. For `All`, calls
/// `per_worker(slot, value)` for each live worker that wrote, and returns their sum.
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
        workers.clear();
        value = combine_once(area, cells, mode, folding, |slot, v| {
            workers.push((slot, v))
        });
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
    for (slot, v) in workers {
        per_worker(slot, v);
    }
    value
}

/// One read of the cells. `folding`: the retained pair to use instead of
/// cells 0/1 when this series is being folded (its reaped slots are skipped).
fn combine_once(
    area: &AreaInner,
    cells: usize,
    mode: GaugeMode,
    folding: Option<(u64, u64)>,
    mut per_worker: impl FnMut(u32, f64),
) -> f64 {
    let read = |i: usize| {
        area.u64_at(cells + 8 * i)
            .map(|c| c.load(Ordering::Acquire))
            .unwrap_or(0)
    };
    let (retained, retained_stamp) = match folding {
        Some((v, s)) => (f64::from_bits(v), s),
        None => (f64::from_bits(read(0)), read(1)),
    };
    let mut acc: Option<(f64, u64)> = None;
    if keeps_dead(mode) && retained_stamp != 0 {
        acc = Some((retained, retained_stamp));
    }
    for slot in 0..area.max_workers() {
        let stamp = read(3 + 2 * slot as usize);
        if stamp == 0 || (folding.is_some() && area.slot_reaping(slot)) {
            continue;
        }
        let v = f64::from_bits(read(2 + 2 * slot as usize));
        if mode == GaugeMode::All {
            per_worker(slot, v);
        }
        acc = Some(match acc {
            None => (v, stamp),
            Some(a) => merge(mode, a, (v, stamp)),
        });
    }
    acc.map(|(v, _)| v).unwrap_or(0.0)
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
/// stored, before its reaped slots are zeroed); 0 turns it off.
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
/// so only theirs are zeroed. Run it under the area lock before any other
/// slot turns REAPING: while the sequence is odd, readers of the step's
/// series skip every REAPING slot.
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

/// Fold the gauge cells of the worker slots `reaped` (all in state
/// `SLOT_REAPING`) into each gauge series' retained value, as its mode
/// says, and zero them. Runs under the area lock, after
/// [`finish_open_fold`].
///
/// Each series is one step, bracketed by the fold sequence: the step's
/// result (the series and its new retained pair) is written to the header
/// first, then the sequence turns odd, then the series' cells change, then
/// the sequence turns even. Readers use the header's result while it is
/// odd. A finished step leaves the reaped slots' cells zero, so folding a
/// series again for the same slots does nothing.
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
        if rec.kind != KIND_SERIES || rec.len < ser::CELLS + 8 * cells(area.max_workers()) {
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

/// Fold the `reaped` slots of the series at `cells` (one step, see
/// [`fold_dead_slots`]).
fn fold_series(area: &AreaInner, cells: usize, mode: GaugeMode, reaped: &[u32]) {
    let cell = |i: usize| area.u64_at(cells + 8 * i);
    let (Some(rv), Some(rs)) = (cell(0), cell(1)) else {
        return;
    };
    let mut retained = (rv.load(Ordering::Relaxed), rs.load(Ordering::Relaxed));
    let mut written = false;
    for &slot in reaped {
        let (Some(v), Some(s)) = (cell(2 + 2 * slot as usize), cell(3 + 2 * slot as usize)) else {
            continue;
        };
        let stamp = s.load(Ordering::Acquire);
        if stamp == 0 {
            // Never written (or already folded): nothing a reader counts.
            v.store(0, Ordering::Relaxed);
            continue;
        }
        written = true;
        if keeps_dead(mode) {
            let val = f64::from_bits(v.load(Ordering::Relaxed));
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

/// Store a fold's result: the retained pair, and zero the reaped slots.
fn store_fold(area: &AreaInner, cells: usize, (value, stamp): (u64, u64), reaped: &[u32]) {
    let cell = |i: usize| area.u64_at(cells + 8 * i);
    if let (Some(rv), Some(rs)) = (cell(0), cell(1)) {
        rv.store(value, Ordering::Relaxed);
        rs.store(stamp, Ordering::Release);
    }
    maybe_die_in_fold();
    for &slot in reaped {
        if let (Some(v), Some(s)) = (cell(2 + 2 * slot as usize), cell(3 + 2 * slot as usize)) {
            v.store(0, Ordering::Relaxed);
            s.store(0, Ordering::Release);
        }
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
        let value = combine(area, cells, cx.shape.gauge_mode, |_, _| {});
        if !view.same() {
            return Ok(Emitted::Skipped);
        }
        cx.enc.point(cx.desc, cx.labels, &Point::Gauge { value })?;
    }
    Ok(Emitted::Written)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::GaugeMode;
    use crate::area::format::{hdr, slot, PAGE_SIZE, SLOT_LIVE, SLOT_REAPING};
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
        for (s, v) in [(1usize, 5.0f64), (2, 7.0)] {
            cell(2 + 2 * s).store(v.to_bits(), Ordering::Relaxed);
            cell(3 + 2 * s).store(1_000, Ordering::Relaxed);
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
                // Slot 1's worker (dead: it holds no slot lock) wrote later.
                let cell = |i: usize| a.u64_at(g.series.cells + 8 * i).unwrap();
                cell(4).store(dead.to_bits(), Ordering::Relaxed);
                cell(5).store(u64::MAX / 2, Ordering::Relaxed);
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
}
