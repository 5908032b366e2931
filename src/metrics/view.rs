//! What a type's reader sees of one series while rendering: its label
//! values ([`read_series_values`], also what the registry's index reads), its
//! cells, its created timestamp, and the recheck that the series is still
//! the one the walk saw. Each type module reads its own cells through this view
//! (`counter::emit`, `gauge::emit`, ...) and hands points to the encoder;
//! [`emit`] dispatches by kind, the one place that does.

use std::sync::atomic::Ordering;

use super::shape::Shape;
use crate::area::format::{ser, MAX_VALUE_LEN};
use crate::area::records::{Record, RecordReader};
use crate::area::AreaInner;
use crate::encoding::{Encoder, FamilyDesc, MetricType};
use crate::error::Result;

/// One series' cells as a reader sees them.
pub(crate) struct SeriesCells<'a> {
    area: &'a AreaInner,
    /// The offset of cell 0.
    cells: usize,
    created: Option<f64>,
    same: &'a dyn Fn() -> bool,
}

impl<'a> SeriesCells<'a> {
    /// The view of the series record at `rec_off`; `same` tells whether it is
    /// still the series the walk saw.
    pub(crate) fn new(area: &'a AreaInner, rec_off: usize, same: &'a dyn Fn() -> bool) -> Self {
        let created = area
            .u64_at(rec_off + ser::CREATED)
            .map(|c| f64::from_bits(c.load(Ordering::Relaxed)))
            .filter(|t| t.is_finite() && *t > 0.0);
        SeriesCells {
            area,
            cells: rec_off + ser::CELLS,
            created,
            same,
        }
    }

    /// Cell `i` (0 if out of the area).
    pub(crate) fn cell(&self, i: usize) -> u64 {
        self.area
            .u64_at(self.cells + 8 * i)
            .map(|c| c.load(Ordering::Acquire))
            .unwrap_or(0)
    }

    /// Cell `i` as an `f64`.
    pub(crate) fn cell_f64(&self, i: usize) -> f64 {
        f64::from_bits(self.cell(i))
    }

    /// The series' created timestamp, if set and sane.
    pub(crate) fn created(&self) -> Option<f64> {
        self.created
    }

    /// Whether the series is still the one the walk saw (check it after
    /// reading the cells, before writing the point).
    pub(crate) fn same(&self) -> bool {
        (self.same)()
    }

    /// The area, for readers that read more than plain cells (the gauge's
    /// per-worker slots, the summary's sketches, info blobs).
    pub(crate) fn area(&self) -> &'a AreaInner {
        self.area
    }

    /// The offset of cell 0 in the area.
    pub(crate) fn cells_off(&self) -> usize {
        self.cells
    }
}

/// Read a series' label values (after checking its cell count against the shape).
pub(crate) fn read_series_values(
    area: &AreaInner,
    rec: Record,
    shape: &Shape,
    out: &mut Vec<String>,
) -> Option<()> {
    let n_cells = shape.n_cells(area.max_workers());
    let stored = area.u32_at(rec.off + ser::N_CELLS)?.load(Ordering::Relaxed) as usize;
    if stored != n_cells || rec.len < ser::CELLS + 8 * n_cells {
        return None;
    }
    let mut r = RecordReader::new(area, rec, ser::CELLS + 8 * n_cells);
    // The strings of `out` are reused: no allocation once they are long enough.
    let n = shape.label_names.len();
    out.truncate(n);
    out.resize_with(n, String::new);
    for value in out.iter_mut() {
        value.clear();
        r.string_into(MAX_VALUE_LEN, value)?;
    }
    r.at_end().then_some(())
}

/// What a reader did with one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Emitted {
    /// Its point(s) were written.
    Written,
    /// Skipped: the series changed under the read.
    Skipped,
    /// Skipped: its cells are damaged (counted as a bad record).
    Bad,
}

/// Buffers the readers reuse from series to series.
#[derive(Default)]
pub(crate) struct Scratch {
    pub(crate) buckets: Vec<(f64, u64)>,
    pub(crate) quantiles: Vec<(f64, f64)>,
    pub(crate) counts: Vec<u64>,
    pub(crate) qout: Vec<f64>,
    /// A native histogram's populated positive and negative buckets.
    pub(crate) native_pos: Vec<(i32, u64)>,
    pub(crate) native_neg: Vec<(i32, u64)>,
}

/// Everything a reader needs besides the cells.
pub(crate) struct Ctx<'e, 'l> {
    pub(crate) shape: &'e Shape,
    pub(crate) desc: &'e FamilyDesc<'e>,
    pub(crate) labels: &'e [(&'l str, &'l str)],
    pub(crate) enc: &'e mut dyn Encoder,
    pub(crate) sc: &'e mut Scratch,
}

/// Read one series with its type's reader and write its point(s).
pub(crate) fn emit(view: &SeriesCells<'_>, cx: Ctx<'_, '_>) -> Result<Emitted> {
    match cx.shape.kind {
        MetricType::Counter => super::counter::emit(view, cx),
        MetricType::Gauge => super::gauge::emit(view, cx),
        MetricType::Histogram => super::histogram::emit(view, cx),
        MetricType::Summary => super::summary::emit(view, cx),
        MetricType::Info => super::info::emit(view, cx),
        MetricType::StateSet => super::stateset::emit(view, cx),
        MetricType::NativeHistogram => super::native::emit(view, cx),
    }
}
