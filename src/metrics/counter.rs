//! Counter: a monotonic total (`_total`), buffered per thread by default.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{atomic_add_f64, metric_handle, SeriesInner};
use crate::area::format::ser;
use crate::buffer;
use crate::encoding::MetricType;
use crate::error::{Error, Result};

/// The counter's cell layout: one cell, the total (`f64` bits), which is
/// the buffer's f64 cell (a flush adds it as an `f64`).
const TOTAL_CELL: usize = buffer::F64_CELL;

/// A counter series handle. Cheap to clone; updates never block.
///
/// ```
/// use promshm::{Area, AreaOptions, Opts};
///
/// let area = Area::anonymous(&AreaOptions::default())?;
/// let jobs = area.registry().counter(Opts::new("jobs", "Jobs run."))?.get()?;
/// jobs.inc();
/// jobs.add(2.5)?;
/// assert!(jobs.add(-1.0).is_err()); // a counter only goes up
/// promshm::flush(); // buffered per thread until a flush (or a render)
/// assert_eq!(jobs.get(), 3.5);
/// # Ok::<(), promshm::Error>(())
/// ```
#[derive(Clone)]
pub struct Counter {
    pub(crate) series: Arc<SeriesInner>,
}

metric_handle!(Counter, MetricType::Counter);

impl Counter {
    /// Add 1.
    #[inline]
    pub fn inc(&self) {
        self.add_unchecked(1.0);
    }

    /// Add `v`, which must be `>= 0` and not NaN.
    #[inline]
    pub fn add(&self, v: f64) -> Result<()> {
        if v.is_nan() || v < 0.0 {
            return Err(Error::InvalidValue {
                what: "counter increment",
                value: v,
            });
        }
        self.add_unchecked(v);
        Ok(())
    }

    #[inline]
    fn add_unchecked(&self, v: f64) {
        if self.series.eager {
            if let Some(c) = self.series.cell(TOTAL_CELL) {
                atomic_add_f64(c, v);
            }
        } else {
            buffer::add_f64(&*self.series, v);
        }
    }

    /// Reset the total to 0 for every process, with `_created` now: the one
    /// cell every process adds to is swapped to 0, so every handle (in any
    /// process) keeps counting from there; increments still in another
    /// thread's or process's buffer land after the reset. Flush first to
    /// count this thread's earlier increments before it. A handle whose
    /// series was removed changes nothing (its record may be another's now).
    pub fn reset(&self) {
        let Some(c) = self.series.cell(TOTAL_CELL) else {
            return;
        };
        c.swap(0f64.to_bits(), Ordering::AcqRel);
        if let Some(t) = self.series.area().u64_at(self.series.off + ser::CREATED) {
            t.store(crate::process::now_secs().to_bits(), Ordering::Relaxed);
        }
    }

    /// Benchmark support: the eager update as it was before generations
    /// (no check that the series is still the handle's). Do not use.
    #[doc(hidden)]
    #[inline]
    pub fn __eager_add_without_generation_check(&self, v: f64) {
        if let Some(c) = self.series.area().u64_at(self.series.cells) {
            atomic_add_f64(c, v);
        }
    }

    /// The total in the area (what has been flushed, by every process).
    pub fn get(&self) -> f64 {
        self.series
            .cell(TOTAL_CELL)
            .map(|c| f64::from_bits(c.load(Ordering::Relaxed)))
            .unwrap_or(0.0)
    }
}

/// Render one counter series: cell [`TOTAL_CELL`] is the total.
pub(crate) fn emit(
    view: &super::view::SeriesCells<'_>,
    cx: super::view::Ctx<'_, '_>,
) -> Result<super::view::Emitted> {
    use super::view::Emitted;
    let value = view.cell_f64(TOTAL_CELL);
    if value.is_nan() || value < 0.0 {
        return Ok(Emitted::Bad);
    }
    if !view.same() {
        return Ok(Emitted::Skipped);
    }
    let created = view.created();
    cx.enc.point(
        cx.desc,
        cx.labels,
        &crate::encoding::Point::Counter { value, created },
    )?;
    Ok(Emitted::Written)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use crate::area::format::ser;
    use crate::{Area, AreaOptions, Opts};

    /// A reset zeroes the one total every handle adds to (a handle resolved
    /// before the reset keeps counting from 0) and moves `_created` on.
    #[test]
    fn reset_zeroes_the_total_for_every_handle_and_renews_created() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let fam = area
            .registry()
            .counter(Opts::new("c", "A counter.").eager(true))
            .unwrap();
        let (a, b) = (fam.get().unwrap(), fam.get().unwrap());
        let created = |c: &super::Counter| {
            let t = area.inner.u64_at(c.series.off + ser::CREATED).unwrap();
            f64::from_bits(t.load(Ordering::Relaxed))
        };
        a.add(4.0).unwrap();
        b.add(6.0).unwrap();
        let before = created(&a);
        std::thread::sleep(std::time::Duration::from_millis(2));
        b.reset();
        assert_eq!(a.get(), 0.0);
        assert!(created(&a) > before, "_created is the reset time");
        a.inc();
        b.add(2.0).unwrap();
        assert_eq!(a.get(), 3.0);
    }
}
