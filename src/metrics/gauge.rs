//! Gauge: one value per worker, combined at render time by the family's
//! [`GaugeMode`]. Gauge updates write through to this process's cell in the
//! area (a set cannot be buffered per thread without losing its order).
//!
//! Series cells: `[retained value, retained stamp]` then, per worker slot,
//! `[value, stamp]`. A stamp is the Unix time in ms of the last write (0 =
//! never written). When a dead worker is reaped its value is folded into the
//! retained pair as the mode says, and its cells are zeroed for the next
//! process that takes the slot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{atomic_add_f64, metric_handle, SeriesInner};
use crate::area::format::{KIND_FAMILY, KIND_SERIES, STATE_LIVE};
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
            _ => return None,
        })
    }

    /// Parse `sum`, `livesum`, `max`, `min`, `mostrecent`, `all`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "sum" => GaugeMode::Sum,
            "livesum" => GaugeMode::LiveSum,
            "max" => GaugeMode::Max,
            "min" => GaugeMode::Min,
            "mostrecent" => GaugeMode::MostRecent,
            "all" => GaugeMode::All,
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
        if self.series.family.shape.gauge_mode == GaugeMode::MostRecent {
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
        combine(s.area(), s.cells, s.family.shape.gauge_mode, |_, _| {})
    }
}

/// Combine a gauge series' cells at `cells` by `mode`. For `All`, calls
/// `per_worker(slot, value)` for each live worker that wrote, and returns their sum.
pub(crate) fn combine(
    area: &AreaInner,
    cells: usize,
    mode: GaugeMode,
    mut per_worker: impl FnMut(u32, f64),
) -> f64 {
    let read = |i: usize| {
        area.u64_at(cells + 8 * i)
            .map(|c| c.load(Ordering::Acquire))
            .unwrap_or(0)
    };
    let retained_stamp = read(1);
    let retained = f64::from_bits(read(0));
    let mut acc: Option<(f64, u64)> = None;
    let keep_dead = matches!(
        mode,
        GaugeMode::Sum | GaugeMode::Max | GaugeMode::Min | GaugeMode::MostRecent
    );
    if keep_dead && retained_stamp != 0 {
        acc = Some((retained, retained_stamp));
    }
    for slot in 0..area.max_workers() {
        let stamp = read(3 + 2 * slot as usize);
        if stamp == 0 {
            continue;
        }
        let v = f64::from_bits(read(2 + 2 * slot as usize));
        if mode == GaugeMode::All {
            per_worker(slot, v);
        }
        acc = Some(match (acc, mode) {
            (None, _) => (v, stamp),
            (Some((a, s)), GaugeMode::Max) => (a.max(v), s.max(stamp)),
            (Some((a, s)), GaugeMode::Min) => (a.min(v), s.max(stamp)),
            (Some((a, s)), GaugeMode::MostRecent) => {
                if stamp >= s {
                    (v, stamp)
                } else {
                    (a, s)
                }
            }
            (Some((a, s)), _) => (a + v, s.max(stamp)),
        });
    }
    acc.map(|(v, _)| v).unwrap_or(0.0)
}

/// Fold the cells of dead worker slots into each gauge series' retained
/// value, as its mode says, and zero them. Runs under the area lock.
pub(crate) fn fold_dead_slots(area: &AreaInner, dead: &[u32]) {
    let mut modes: Vec<(usize, GaugeMode)> = Vec::new();
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
        if rec.kind != KIND_SERIES {
            return;
        }
        let Some(fam) = area.u32_at(rec.off + crate::area::format::ser::FAMILY) else {
            return;
        };
        let fam = fam.load(Ordering::Relaxed) as usize;
        let Some(&(_, mode)) = modes.iter().find(|(o, _)| *o == fam) else {
            return;
        };
        let cells = rec.off + crate::area::format::ser::CELLS;
        if rec.len < crate::area::format::ser::CELLS + 8 * cells_len(area) {
            return;
        }
        for &slot in dead {
            fold_one(area, cells, mode, slot);
        }
    });
}

fn cells_len(area: &AreaInner) -> usize {
    cells(area.max_workers())
}

fn fold_one(area: &AreaInner, cells: usize, mode: GaugeMode, slot: u32) {
    let cell = |i: usize| area.u64_at(cells + 8 * i);
    let (Some(rv), Some(rs), Some(v), Some(s)) = (
        cell(0),
        cell(1),
        cell(2 + 2 * slot as usize),
        cell(3 + 2 * slot as usize),
    ) else {
        return;
    };
    let stamp = s.load(Ordering::Acquire);
    if stamp != 0 {
        let val = f64::from_bits(v.load(Ordering::Relaxed));
        let had = rs.load(Ordering::Relaxed) != 0;
        let old = f64::from_bits(rv.load(Ordering::Relaxed));
        let new = match mode {
            GaugeMode::Sum => Some(if had { old + val } else { val }),
            GaugeMode::Max => Some(if had { old.max(val) } else { val }),
            GaugeMode::Min => Some(if had { old.min(val) } else { val }),
            GaugeMode::MostRecent => (!had || stamp >= rs.load(Ordering::Relaxed)).then_some(val),
            GaugeMode::LiveSum | GaugeMode::All => None,
        };
        if let Some(n) = new {
            rv.store(n.to_bits(), Ordering::Relaxed);
            rs.store(stamp.max(rs.load(Ordering::Relaxed)), Ordering::Release);
        }
    }
    v.store(0, Ordering::Relaxed);
    s.store(0, Ordering::Release);
}
