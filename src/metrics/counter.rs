//! Counter: a monotonic total (`_total`), buffered per thread by default.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{atomic_add_f64, metric_handle, SeriesInner};
use crate::buffer;
use crate::encoding::MetricType;
use crate::error::{Error, Result};

/// A counter series handle. Cheap to clone; updates never block.
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
            if let Some(c) = self.series.cell(0) {
                atomic_add_f64(c, v);
            }
        } else {
            buffer::add_f64(&self.series, 0, v);
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
            .cell(0)
            .map(|c| f64::from_bits(c.load(Ordering::Relaxed)))
            .unwrap_or(0.0)
    }
}
