//! Histogram: cumulative `le` buckets, `_sum` and `_count`, buffered per thread.
//!
//! Buckets are stored non-cumulative, with the `+Inf` bucket last; the
//! renderer accumulates them, so `_count` equals the `+Inf` bucket by
//! construction.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{atomic_add_f64, metric_handle, SeriesInner};
use crate::buffer;
use crate::encoding::MetricType;
use crate::error::{Error, Result};

/// The Prometheus default buckets.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `count` buckets `start, start + width, ...`.
///
/// ```
/// assert_eq!(promshm::linear_buckets(0.5, 0.5, 3)?, [0.5, 1.0, 1.5]);
/// assert!(promshm::linear_buckets(1.0, 0.0, 3).is_err());
/// # Ok::<(), promshm::Error>(())
/// ```
pub fn linear_buckets(start: f64, width: f64, count: usize) -> Result<Vec<f64>> {
    if count == 0 || width.is_nan() || width <= 0.0 || !start.is_finite() {
        return Err(Error::InvalidBuckets(format!(
            "linear buckets need count > 0 and width > 0 (start {start}, width {width}, count {count})"
        )));
    }
    let v: Vec<f64> = (0..count).map(|i| start + width * i as f64).collect();
    check_buckets(&v)?;
    Ok(v)
}

/// `count` buckets `start, start * factor, ...`.
///
/// ```
/// assert_eq!(promshm::exponential_buckets(0.01, 10.0, 3)?, [0.01, 0.1, 1.0]);
/// assert!(promshm::exponential_buckets(1.0, 1.0, 3).is_err());
/// # Ok::<(), promshm::Error>(())
/// ```
pub fn exponential_buckets(start: f64, factor: f64, count: usize) -> Result<Vec<f64>> {
    if count == 0 || start.is_nan() || start <= 0.0 || factor.is_nan() || factor <= 1.0 {
        return Err(Error::InvalidBuckets(format!(
            "exponential buckets need count > 0, start > 0 and factor > 1 (start {start}, factor {factor}, count {count})"
        )));
    }
    let v: Vec<f64> = (0..count).map(|i| start * factor.powi(i as i32)).collect();
    check_buckets(&v)?;
    Ok(v)
}

/// Bounds must be finite (a trailing `+Inf` is dropped before this), strictly increasing.
pub(crate) fn check_buckets(bounds: &[f64]) -> Result<()> {
    if bounds.len() > crate::area::format::MAX_PARAMS {
        return Err(Error::InvalidBuckets(format!(
            "{} buckets, at most {}",
            bounds.len(),
            crate::area::format::MAX_PARAMS
        )));
    }
    for (i, b) in bounds.iter().enumerate() {
        if !b.is_finite() {
            return Err(Error::InvalidBuckets(format!(
                "bucket {b} is not a finite number"
            )));
        }
        if i > 0 && bounds[i - 1] >= *b {
            return Err(Error::InvalidBuckets(format!(
                "buckets must increase strictly: {} then {}",
                bounds[i - 1],
                b
            )));
        }
    }
    Ok(())
}

/// Normalise user buckets: drop a trailing `+Inf`, then check.
pub(crate) fn normalize_buckets(buckets: &[f64]) -> Result<Vec<f64>> {
    let mut v = buckets.to_vec();
    if v.last() == Some(&f64::INFINITY) {
        v.pop();
    }
    check_buckets(&v)?;
    Ok(v)
}

/// The histogram's cell layout, the one place it is spelled out: cell
/// [`SUM_CELL`] holds the sum (`f64` bits; the buffer's f64 cell, so that a
/// flush adds it as an `f64`), then one count per bucket, not cumulative, at
/// [`bucket_cell`]`(i)` for bucket `i` (the last is `+Inf`).
pub(crate) const SUM_CELL: usize = buffer::F64_CELL;

/// The cell of bucket `i`'s count (see [`SUM_CELL`]).
pub(crate) const fn bucket_cell(i: usize) -> usize {
    1 + i
}

/// The bucket of `v` among the ascending `bounds`: the index of the first
/// bound `>= v` (`bounds.len()` for `+Inf`).
#[inline]
pub(crate) fn bucket_of(bounds: &[f64], v: f64) -> usize {
    // Buckets are few: counting the bounds below `v` (branch-free, so
    // observations spread over the buckets cost no mispredicted branch,
    // and the compiler vectorises it) beats a search up to ~30.
    if bounds.len() <= 32 {
        bounds.iter().map(|&b| usize::from(b < v)).sum()
    } else {
        bounds.partition_point(|&b| b < v)
    }
}

/// A histogram series handle.
///
/// ```
/// use promshm::{Area, AreaOptions, Opts};
///
/// let area = Area::anonymous(&AreaOptions::default())?;
/// let latency = area
///     .registry()
///     .histogram(Opts::new("latency", "Latency.").unit("seconds"), &[0.1, 1.0])?
///     .get()?;
/// latency.observe(0.25)?;
/// latency.observe(0.5)?;
/// assert!(latency.observe(f64::NAN).is_err());
/// promshm::flush();
/// assert_eq!(latency.get(), (2, 0.75)); // (count, sum)
/// # Ok::<(), promshm::Error>(())
/// ```
#[derive(Clone)]
pub struct Histogram {
    pub(crate) series: Arc<SeriesInner>,
}

metric_handle!(Histogram, MetricType::Histogram);

impl Histogram {
    /// Record one observation. NaN is rejected.
    #[inline]
    pub fn observe(&self, v: f64) -> Result<()> {
        self.observe_in_bucket(v).map(|_| ())
    }

    /// Record one observation (as [`observe`](Self::observe)) and store the
    /// exemplar `labels` with it as its bucket's newest exemplar, for every
    /// process (written through; see [`Counter::add_with_exemplar`](super::Counter::add_with_exemplar)).
    pub fn observe_with_exemplar(&self, v: f64, labels: &[(&str, &str)]) -> Result<()> {
        let ex = super::exemplar::encode(labels)?;
        let bucket = self.observe_in_bucket(v)?;
        super::exemplar::store(&self.series, bucket, v, ex)
    }

    /// Store an exemplar of `value` (an observation counted already) as the
    /// newest of the bucket `value` falls in, without observing it
    /// (`timestamp`: Unix seconds; `None`: now).
    pub fn set_exemplar(
        &self,
        value: f64,
        timestamp: Option<f64>,
        labels: &[(&str, &str)],
    ) -> Result<()> {
        super::exemplar::set(&self.series, value, timestamp, labels)
    }

    /// [`observe`](Self::observe), giving the bucket it counted in.
    #[inline]
    fn observe_in_bucket(&self, v: f64) -> Result<usize> {
        if v.is_nan() {
            return Err(Error::InvalidValue {
                what: "histogram observation",
                value: v,
            });
        }
        let bucket = bucket_of(&self.series.family.shape.params, v);
        if self.series.eager {
            let _w = self.series.writing();
            if let (Some(sum), Some(b)) = (
                self.series.cell(SUM_CELL),
                self.series.cell(bucket_cell(bucket)),
            ) {
                b.fetch_add(1, Ordering::Relaxed);
                atomic_add_f64(sum, v);
            }
        } else {
            buffer::add_f64_and_count(&*self.series, bucket_cell(bucket), v);
        }
        Ok(bucket)
    }

    /// Time `f` and observe its duration in seconds.
    pub fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        super::timed(f, |secs| {
            let _ = self.observe(secs);
        })
    }

    /// `(count, sum)` in the area (flushed, all processes).
    pub fn get(&self) -> (u64, f64) {
        let n = self.series.family.shape.params.len() + 1;
        let count = (0..n)
            .filter_map(|i| self.series.cell(bucket_cell(i)))
            .map(|c| c.load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add);
        let sum = self
            .series
            .cell(SUM_CELL)
            .map(|c| f64::from_bits(c.load(Ordering::Relaxed)))
            .unwrap_or(0.0);
        (count, sum)
    }
}

/// Render one histogram series: the buckets made cumulative, the sum, the
/// created timestamp.
pub(crate) fn emit(
    view: &super::view::SeriesCells<'_>,
    cx: super::view::Ctx<'_, '_>,
) -> Result<super::view::Emitted> {
    let sc = cx.sc;
    sc.buckets.clear();
    let mut acc = 0u64;
    for (i, &bound) in cx.shape.params.iter().chain(&[f64::INFINITY]).enumerate() {
        acc = acc.wrapping_add(view.cell(bucket_cell(i)));
        sc.buckets.push((bound, acc));
    }
    let sum = view.cell_f64(SUM_CELL);
    super::exemplar::read(view, cx.shape, &mut sc.exemplars);
    if !view.same() {
        return Ok(super::view::Emitted::Skipped);
    }
    cx.enc.point_with_exemplars(
        cx.desc,
        cx.labels,
        &crate::encoding::Point::Histogram {
            buckets: &sc.buckets,
            sum,
            created: view.created(),
        },
        &sc.exemplars,
    )?;
    Ok(super::view::Emitted::Written)
}

#[cfg(test)]
mod tests {
    use crate::{Area, AreaOptions, Format, Opts};

    /// A value equal to a bound counts in that bound's bucket (`le` is `<=`),
    /// in both the buffered and the eager path.
    #[test]
    fn bucket_edges() {
        for eager in [false, true] {
            let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
            let h = area
                .registry()
                .histogram(Opts::new("edges", "h").eager(eager), &[1.0, 2.0, 3.0])
                .unwrap()
                .get()
                .unwrap();
            for v in [
                f64::NEG_INFINITY,
                -1.0,
                -0.0,
                1.0,
                1.5,
                2.0,
                2.000_000_1,
                3.0,
                3.5,
                f64::INFINITY,
            ] {
                h.observe(v).unwrap();
            }
            assert!(h.observe(f64::NAN).is_err());
            let text = area.render_to_string(Format::Prometheus).unwrap();
            for want in [
                "edges_bucket{le=\"1.0\"} 4\n",
                "edges_bucket{le=\"2.0\"} 6\n",
                "edges_bucket{le=\"3.0\"} 8\n",
                "edges_bucket{le=\"+Inf\"} 10\n",
                "edges_count 10\n",
            ] {
                assert!(text.contains(want), "eager={eager}: no {want:?} in\n{text}");
            }
        }
    }
}
