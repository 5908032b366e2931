//! Folding a dead worker's gauge entries (`docs/FORMAT.md` §6.6): when a
//! worker slot is reaped (`workers`), each gauge series' entry of that slot
//! is folded into the series' retained pair as the family's [`GaugeMode`]
//! says, and released for another slot. This is a duty of the area, not of
//! a metric handle: the slot is freed for the next process whether or not
//! the reaping process has ever used a gauge, so it lives here, next to the
//! entries' chain (`gauge_ext`). What it knows of the gauge record is the
//! format's: the family record's type and mode bytes, the series' retained
//! pair and entries. Readers agree with a fold through the fold sequence in
//! the header (`metrics::gauge::combine`).

use std::sync::atomic::{fence, AtomicU64, Ordering};

use super::format::{fam, gx, hdr, ser, KIND_FAMILY, KIND_SERIES, STATE_LIVE};
use super::records::Record;
use super::AreaInner;
use crate::encoding::MetricType;

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

/// Whether `mode` keeps dead workers' values (in the retained pair).
pub(crate) fn keeps_dead(mode: GaugeMode) -> bool {
    matches!(
        mode,
        GaugeMode::Sum | GaugeMode::Max | GaugeMode::Min | GaugeMode::MostRecent
    )
}

/// `(value, stamp)` of `acc` combined with one worker's, as `mode` says.
pub(crate) fn merge(mode: GaugeMode, (a, s): (f64, u64), (v, stamp): (f64, u64)) -> (f64, u64) {
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
            if let Some(mode) = gauge_family_mode(area, rec) {
                modes.push((rec.off, mode));
            }
            return;
        }
        if rec.kind != KIND_SERIES || rec.len < ser::CELLS + 8 * gx::CELLS {
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
pub(crate) fn release_entry(area: &AreaInner, e: usize) {
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

/// The mode of the LIVE family record `rec` if it is a gauge's: its type
/// byte is the gauge's, its mode byte a mode, and its cell count the gauge
/// series'. (The fold reads no more of a family: names and help are the
/// metrics layer's to check, and a family they reject is rendered by no one.)
fn gauge_family_mode(area: &AreaInner, rec: Record) -> Option<GaugeMode> {
    let mut fixed = [0u8; fam::PARAMS - fam::TYPE];
    if !area.read_bytes(rec.off + fam::TYPE, &mut fixed) {
        return None;
    }
    let at = |o: usize| o - fam::TYPE;
    if MetricType::from_u8(fixed[at(fam::TYPE)])? != MetricType::Gauge {
        return None;
    }
    let n_cells = u32::from_le_bytes(
        fixed[at(fam::N_CELLS)..at(fam::N_CELLS) + 4]
            .try_into()
            .ok()?,
    );
    (n_cells as usize == gx::CELLS).then_some(())?;
    GaugeMode::from_u8(fixed[at(fam::GAUGE_MODE)])
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
}
