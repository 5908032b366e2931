//! Summary: `_count`, `_sum` and quantiles that are correct across
//! processes, from a fixed-size mergeable log-bucket sketch (see
//! [`sketch`](super::sketch)) with an optional sliding window.
//!
//! Observations write through to the area (three atomic operations): a
//! per-thread copy of a 32 KiB sketch would cost more than it saves.
//! `_count` and `_sum` are cumulative; quantiles cover the window when one
//! is set (`max_age` split into `age_buckets` rotating sketches).
//!
//! Series cells: `[count, sum]`, then per age bucket `[epoch]` (only with a
//! window) followed by `SKETCH_BUCKETS` counts.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::sketch::{sketch_index, sketch_quantiles, SKETCH_BUCKETS};
use super::{atomic_add_f64, metric_handle, SeriesInner};
use crate::area::AreaInner;
use crate::encoding::MetricType;
use crate::error::{Error, Result};
use crate::process;

/// Quantiles and window of a summary.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryOpts {
    /// Quantiles to report, each in `[0, 1]`, increasing. Empty: only `_count` and `_sum`.
    pub quantiles: Vec<f64>,
    /// Window of the quantiles; `None` for all observations ever.
    pub max_age: Option<Duration>,
    /// Number of rotating sketches the window is split into (default 5).
    pub age_buckets: u32,
}

impl Default for SummaryOpts {
    fn default() -> Self {
        SummaryOpts {
            quantiles: Vec::new(),
            max_age: None,
            age_buckets: 5,
        }
    }
}

impl SummaryOpts {
    /// Report these quantiles over all observations.
    pub fn quantiles(q: &[f64]) -> Self {
        SummaryOpts {
            quantiles: q.to_vec(),
            ..Default::default()
        }
    }

    /// Restrict quantiles to the last `max_age`, in `age_buckets` steps.
    pub fn window(mut self, max_age: Duration, age_buckets: u32) -> Self {
        self.max_age = Some(max_age);
        self.age_buckets = age_buckets;
        self
    }
}

/// Quantiles in [0, 1] and increasing; a window of 1..=64 buckets of >= 1 ms each.
pub(crate) fn check_quantiles(q: &[f64], age_buckets: u32, max_age_ms: u64) -> Result<()> {
    if q.len() > crate::area::format::MAX_PARAMS {
        return Err(Error::InvalidSummary(format!(
            "{} quantiles is too many",
            q.len()
        )));
    }
    for (i, &x) in q.iter().enumerate() {
        if !(0.0..=1.0).contains(&x) {
            return Err(Error::InvalidSummary(format!(
                "quantile {x} is not in [0, 1]"
            )));
        }
        if i > 0 && q[i - 1] >= x {
            return Err(Error::InvalidSummary(format!(
                "quantiles must increase: {} then {x}",
                q[i - 1]
            )));
        }
    }
    if age_buckets > 0 && (age_buckets > 64 || max_age_ms < u64::from(age_buckets)) {
        return Err(Error::InvalidSummary(format!(
            "window of {max_age_ms} ms in {age_buckets} buckets: need 1..=64 buckets of at least 1 ms"
        )));
    }
    if age_buckets == 0 && max_age_ms != 0 {
        return Err(Error::InvalidSummary(
            "a window needs at least one age bucket".into(),
        ));
    }
    Ok(())
}

/// A summary series handle.
#[derive(Clone)]
pub struct Summary {
    pub(crate) series: Arc<SeriesInner>,
}

metric_handle!(Summary, MetricType::Summary);

impl Summary {
    /// Record one observation. NaN is rejected.
    pub fn observe(&self, v: f64) -> Result<()> {
        if v.is_nan() {
            return Err(Error::InvalidValue {
                what: "summary observation",
                value: v,
            });
        }
        let s = &self.series;
        let shape = &s.family.shape;
        let idx = sketch_index(v);
        let sketch = if shape.age_buckets == 0 {
            2
        } else {
            let k = shape.age_buckets as u64;
            let epoch = process::now_ms() / (shape.max_age_ms / k).max(1) + 1;
            let base = 2 + (epoch % k) as usize * (1 + SKETCH_BUCKETS);
            if let Some(ep) = s.cell(base) {
                let cur = ep.load(Ordering::Acquire);
                if cur < epoch
                    && ep
                        .compare_exchange(cur, epoch, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    // This bucket held an older window: start it afresh.
                    for i in 0..SKETCH_BUCKETS {
                        if let Some(c) = s.cell(base + 1 + i) {
                            c.store(0, Ordering::Relaxed);
                        }
                    }
                }
            }
            base + 1
        };
        if let Some(c) = s.cell(sketch + idx) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(c) = s.cell(1) {
            atomic_add_f64(c, v);
        }
        if let Some(c) = s.cell(0) {
            c.fetch_add(1, Ordering::Release);
        }
        Ok(())
    }

    /// Time `f` and observe its duration in seconds.
    pub fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        super::timed(f, |secs| {
            let _ = self.observe(secs);
        })
    }

    /// `(count, sum)` from the area.
    pub fn get(&self) -> (u64, f64) {
        let s = &self.series;
        let count = s.cell(0).map(|c| c.load(Ordering::Acquire)).unwrap_or(0);
        let sum = s
            .cell(1)
            .map(|c| f64::from_bits(c.load(Ordering::Relaxed)))
            .unwrap_or(0.0);
        (count, sum)
    }

    /// The current estimate of each of `quantiles` (NaN when there is no data).
    pub fn quantiles(&self, quantiles: &[f64]) -> Vec<f64> {
        let s = &self.series;
        let shape = &s.family.shape;
        let mut counts = vec![0u64; SKETCH_BUCKETS];
        merge_sketches(
            s.area(),
            s.cells,
            shape.age_buckets,
            shape.max_age_ms,
            &mut counts,
        );
        let mut out = vec![f64::NAN; quantiles.len()];
        sketch_quantiles(&counts, quantiles, &mut out);
        out
    }
}

/// Add up the sketches of the series whose cells start at `cells` into
/// `counts` (only the age buckets inside the window).
pub(crate) fn merge_sketches(
    area: &AreaInner,
    cells: usize,
    age_buckets: u32,
    max_age_ms: u64,
    counts: &mut [u64],
) {
    let read = |i: usize| {
        area.u64_at(cells + 8 * i)
            .map(|c| c.load(Ordering::Relaxed))
    };
    let mut add = |base: usize| {
        for (i, c) in counts.iter_mut().enumerate() {
            *c = c.wrapping_add(read(base + i).unwrap_or(0));
        }
    };
    if age_buckets == 0 {
        add(2);
        return;
    }
    let k = u64::from(age_buckets);
    let now = process::now_ms() / (max_age_ms / k).max(1) + 1;
    for b in 0..age_buckets as usize {
        let base = 2 + b * (1 + SKETCH_BUCKETS);
        let epoch = read(base).unwrap_or(0);
        if epoch != 0 && epoch <= now && now - epoch < k {
            add(base + 1);
        }
    }
}
