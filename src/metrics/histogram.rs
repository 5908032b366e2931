//! Histogram: cumulative `le` buckets, `_sum` and `_count`, buffered per thread.
//!
//! Buckets are stored non-cumulative, with the `+Inf` bucket last; the
//! renderer accumulates them, so `_count` equals the `+Inf` bucket by
//! construction.

use std::marker::PhantomData;
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
        check_observation(v)?;
        let bucket = bucket_of(self.bounds(), v);
        if self.series.eager {
            self.add_in_area([(bucket, 1)], v);
        } else {
            buffer::add_f64_and_count(&*self.series, bucket_cell(bucket), v);
        }
        Ok(bucket)
    }

    /// Add `n` observations to bucket `i` for each `(i, n)` of `counts`,
    /// then `sum` to the sum, straight to the area under one write
    /// announcement (a removed series takes nothing): the eager observe and
    /// a local histogram's flush.
    #[inline(always)]
    fn add_in_area(&self, counts: impl IntoIterator<Item = (usize, u64)>, sum: f64) {
        let _w = self.series.writing();
        let Some(sum_cell) = self.series.cell(SUM_CELL) else {
            return;
        };
        for (i, n) in counts {
            if let Some(b) = self.series.cell(bucket_cell(i)) {
                b.fetch_add(n, Ordering::Relaxed);
            }
        }
        atomic_add_f64(sum_cell, sum);
    }

    /// The bucket bounds, ascending, without the `+Inf` bucket that follows
    /// them (an observation above the last bound counts there).
    ///
    /// ```
    /// use promshm::{Area, AreaOptions, Opts};
    ///
    /// let area = Area::anonymous(&AreaOptions::default())?;
    /// let h = area
    ///     .registry()
    ///     .histogram(Opts::new("size", "Sizes."), &[1.0, 10.0, f64::INFINITY])?
    ///     .get()?;
    /// assert_eq!(h.bounds(), [1.0, 10.0]);
    /// # Ok::<(), promshm::Error>(())
    /// ```
    #[inline]
    pub fn bounds(&self) -> &[f64] {
        &self.series.family.shape.params
    }

    /// Time `f` and observe its duration in seconds.
    pub fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        super::timed(f, |secs| {
            let _ = self.observe(secs);
        })
    }

    /// `(count, sum)` in the area (flushed, all processes).
    pub fn get(&self) -> (u64, f64) {
        let n = self.bounds().len() + 1;
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

/// An observation must not be NaN.
#[inline]
fn check_observation(v: f64) -> Result<()> {
    if v.is_nan() {
        return Err(Error::InvalidValue {
            what: "histogram observation",
            value: v,
        });
    }
    Ok(())
}

impl Histogram {
    /// A [`LocalHistogram`] on this series: caller-owned pending bucket
    /// counts and sum that [`LocalHistogram::observe`] changes with plain
    /// adds, and that [`LocalHistogram::flush`] (or dropping it) hands to
    /// this histogram. It copies the bounds, padded with `+Inf` to a
    /// multiple of 4 so that the search counts them in whole vectors (one
    /// allocation for them and one for the counts, here and not in
    /// `observe`).
    pub fn local(&self) -> LocalHistogram {
        // Padded with +Inf (below no value) to whole vectors of 4, which
        // `bucket_of` counts with no scalar tail.
        let mut bounds = self.bounds().to_vec();
        bounds.resize(bounds.len().next_multiple_of(4), f64::INFINITY);
        LocalHistogram {
            bounds: bounds.into_boxed_slice(),
            counts: vec![0; self.bounds().len() + 1].into_boxed_slice(),
            sum: 0.0,
            histogram: self.clone(),
            generation: crate::process::fork_generation(),
            _single_thread: PhantomData,
        }
    }

    /// C API support (`promshm_local_histogram`): the fork generation local
    /// counts are counted in, for [`Histogram::__flush_local`]. Do not use.
    #[doc(hidden)]
    pub fn __local_generation() -> u32 {
        crate::process::fork_generation()
    }

    /// C API support: add the pending `counts` (one per bucket, `+Inf`
    /// last; any beyond the buckets are ignored) and `sum`, counted in fork
    /// generation `generation`, straight to the area with one write
    /// announcement, unless that generation is another process's (then
    /// they are dropped, the parent's to flush); zero them, and
    /// `generation` becomes this process's. What [`LocalHistogram::flush`]
    /// does. Do not use.
    #[doc(hidden)]
    pub fn __flush_local(&self, counts: &mut [u64], sum: &mut f64, generation: &mut u32) {
        let pending_sum = std::mem::take(sum);
        let buckets = self.bounds().len() + 1;
        let ours = crate::process::claim_generation(generation);
        if ours && counts.iter().take(buckets).any(|&n| n != 0) {
            let pending = counts.iter().take(buckets).copied().enumerate();
            self.add_in_area(pending.filter(|&(_, n)| n != 0), pending_sum);
        }
        counts.fill(0);
    }
}

/// A histogram's local handle, like the `prometheus` crate's
/// `LocalHistogram`: pending bucket counts and sum owned by the caller
/// (neither `Send` nor `Sync`), so an observation is a search of the bounds
/// (a copy the handle holds) and two plain adds, with no atomic and no
/// buffer lookup.
///
/// Nothing reaches the series until [`flush`](LocalHistogram::flush), which
/// adds the pending counts and sum straight to the area, as an eager
/// observe would (one write announcement a flush, an atomic add a bucket
/// observed since the last flush and one for the sum; a removed series
/// takes nothing), and zeroes them; dropping the value flushes too. The
/// sum is added once a flush, so it is the pending observations' sum
/// rounded once more than one `observe` each would round it. A local
/// histogram belongs to the process that made it: in a child after `fork`,
/// its first flush drops what is pending (what the parent held is the
/// parent's to flush), so make local histograms after the fork.
///
/// ```
/// use promshm::{Area, AreaOptions, Opts};
///
/// let area = Area::anonymous(&AreaOptions::default())?;
/// let latency = area
///     .registry()
///     .histogram(Opts::new("latency", "Latency.").unit("seconds"), &[0.1, 1.0])?
///     .get()?;
/// let mut local = latency.local();
/// local.observe(0.25)?;
/// local.observe(0.5)?;
/// assert!(local.observe(f64::NAN).is_err());
/// assert_eq!(local.pending(), (2, 0.75)); // (count, sum)
/// assert_eq!(latency.get(), (0, 0.0)); // not flushed yet: still local
/// local.flush(); // straight to the area
/// assert_eq!(local.pending(), (0, 0.0));
/// assert_eq!(latency.get(), (2, 0.75));
/// local.observe(2.0)?;
/// drop(local); // dropping flushes too
/// assert_eq!(latency.get(), (3, 2.75));
/// # Ok::<(), promshm::Error>(())
/// ```
pub struct LocalHistogram {
    /// The histogram's bounds (a copy: no pointer chase in `observe`),
    /// then `+Inf` up to a multiple of 4.
    bounds: Box<[f64]>,
    /// Pending observations a bucket, `+Inf` last.
    counts: Box<[u64]>,
    /// Sum of the pending observations.
    sum: f64,
    histogram: Histogram,
    generation: u32,
    /// Neither `Send` nor `Sync`: one thread's value.
    _single_thread: PhantomData<*const ()>,
}

impl LocalHistogram {
    /// Record one observation in the pending counts. NaN is rejected.
    #[inline]
    pub fn observe(&mut self, v: f64) -> Result<()> {
        check_observation(v)?;
        let bucket = bucket_of(&self.bounds, v);
        if let Some(n) = self.counts.get_mut(bucket) {
            *n += 1;
        }
        self.sum += v;
        Ok(())
    }

    /// Time `f` and observe its duration in seconds.
    pub fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        super::timed(f, |secs| {
            let _ = self.observe(secs);
        })
    }

    /// `(count, sum)` of the observations since the last flush.
    pub fn pending(&self) -> (u64, f64) {
        (self.counts.iter().sum(), self.sum)
    }

    /// The histogram this local handle flushes to.
    pub fn histogram(&self) -> &Histogram {
        &self.histogram
    }

    /// Add the pending counts and sum to the histogram and zero them (see
    /// the type's docs for a fork).
    pub fn flush(&mut self) {
        self.histogram
            .__flush_local(&mut self.counts, &mut self.sum, &mut self.generation);
    }
}

impl Drop for LocalHistogram {
    fn drop(&mut self) {
        self.flush();
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

    /// A new area and a histogram series of `opts` with bounds 1, 2, 3 in it.
    fn area_and_histogram(opts: Opts) -> (Area, super::Histogram) {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let fam = area.registry().histogram(opts, &[1.0, 2.0, 3.0]).unwrap();
        let h = fam.get().unwrap();
        (area, h)
    }

    /// The rendered `_bucket` (cumulative), `_count` and `_sum` lines of
    /// histogram `name` with bounds 1, 2, 3 must be `want` exactly.
    fn assert_rendered(area: &Area, name: &str, cumulative: [u64; 4], sum: f64) {
        let text = area.render_to_string(Format::Prometheus).unwrap();
        for (le, n) in ["1.0", "2.0", "3.0", "+Inf"].iter().zip(cumulative) {
            let want = format!("{name}_bucket{{le=\"{le}\"}} {n}\n");
            assert!(text.contains(&want), "no {want:?} in\n{text}");
        }
        let count = format!("{name}_count {}\n", cumulative[3]);
        assert!(text.contains(&count), "no {count:?} in\n{text}");
        let prefix = format!("{name}_sum ");
        let rendered = text.lines().find_map(|l| l.strip_prefix(&prefix));
        let rendered = rendered.and_then(|v| v.replace("Inf", "inf").parse::<f64>().ok());
        assert_eq!(rendered, Some(sum), "{name}_sum in\n{text}");
    }

    /// A local histogram adds nothing until flushed; a flush adds the
    /// pending counts, in the buckets `observe` would use, and the sum once
    /// (buffered or eager family), and a drop flushes the rest.
    #[test]
    fn local_histogram_flushes_its_pending_counts_once() {
        for eager in [false, true] {
            let name = if eager { "eager" } else { "buffered" };
            let (area, h) = area_and_histogram(Opts::new(name, "h").eager(eager));
            assert_eq!(h.bounds(), [1.0, 2.0, 3.0]);
            let mut local = h.local();
            for v in [f64::NEG_INFINITY, -1.0, 1.0, 1.5, 2.0, 3.0, 3.5] {
                local.observe(v).unwrap();
            }
            assert!(local.observe(f64::NAN).is_err());
            assert_eq!(local.pending(), (7, f64::NEG_INFINITY));
            crate::flush();
            assert_eq!(h.get(), (0, 0.0), "{name}: nothing before the flush");
            drop(local);
            let mut local = h.local();
            assert_eq!(h.get().0, 7, "{name}: the drop flushed");
            for v in [0.5, 1.0, 2.5, 4.0, 100.0] {
                local.observe(v).unwrap();
            }
            local.flush();
            local.flush();
            assert_eq!(local.pending(), (0, 0.0));
            assert_rendered(&area, name, [5, 7, 9, 12], f64::NEG_INFINITY);
        }
    }

    /// A local histogram counts in the buckets `observe` uses, on and
    /// between the bounds, whatever their number (0, padded to 4, searched
    /// past 32).
    #[test]
    fn local_histogram_buckets_are_observes() {
        let area = Area::anonymous(&AreaOptions::with_pages(256)).unwrap();
        for n in [0usize, 1, 2, 3, 4, 5, 11, 32, 33, 40] {
            let bounds: Vec<f64> = (1..=n).map(|b| b as f64).collect();
            let opts = Opts::new(format!("b{n}"), "h").labels(&["via"]).eager(true);
            let fam = area.registry().histogram(opts, &bounds).unwrap();
            let (direct, local) = (
                fam.labels(&["direct"]).unwrap(),
                fam.labels(&["local"]).unwrap(),
            );
            let mut l = local.local();
            let mut v = -0.5;
            while v <= n as f64 + 1.0 {
                direct.observe(v).unwrap();
                l.observe(v).unwrap();
                v += 0.25;
            }
            drop(l);
            let cells = |h: &super::Histogram| -> Vec<u64> {
                (0..=n)
                    .map(|i| {
                        h.series
                            .cell(super::bucket_cell(i))
                            .unwrap()
                            .load(std::sync::atomic::Ordering::Relaxed)
                    })
                    .collect()
            };
            assert_eq!(cells(&local), cells(&direct), "{n} bounds");
            assert_eq!(local.get(), direct.get(), "{n} bounds");
        }
    }

    /// The sum of a flush is the pending observations' sum.
    #[test]
    fn local_histogram_adds_its_sum() {
        let (_area, h) = area_and_histogram(Opts::new("s", "h"));
        h.observe(0.25).unwrap();
        let mut local = h.local();
        for v in [0.5, 1.0, 2.5, 4.0] {
            local.observe(v).unwrap();
        }
        local.time(|| ());
        local.flush();
        crate::flush();
        let (count, sum) = h.get();
        assert_eq!(count, 6);
        assert!((8.25..8.25 + 1.0).contains(&sum), "{sum}");
    }

    /// A local histogram on a removed series adds nothing to the record,
    /// which may be another series' by then, and its counts are dropped.
    #[test]
    fn local_histogram_of_a_removed_series_adds_nothing() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let fam = area
            .registry()
            .histogram(Opts::new("gone", "h").labels(&["k"]), &[1.0])
            .unwrap();
        let old = fam.labels(&["a"]).unwrap();
        let mut local = old.local();
        local.observe(0.5).unwrap();
        assert!(fam.remove(&["a"]).unwrap());
        let new = fam.labels(&["b"]).unwrap();
        local.flush();
        assert_eq!(local.pending(), (0, 0.0));
        assert_eq!(new.get(), (0, 0.0));
        assert_eq!(old.get(), (0, 0.0));
    }

    /// The C API's flush ignores counts beyond the buckets (the cells after
    /// them are the exemplar link's).
    #[test]
    fn flush_local_ignores_counts_beyond_the_buckets() {
        let (area, h) = area_and_histogram(Opts::new("extra", "h"));
        let mut counts = [1, 0, 0, 2, 9, 9, 9];
        let (mut sum, mut generation) = (10.0, crate::process::fork_generation());
        h.__flush_local(&mut counts, &mut sum, &mut generation);
        assert_eq!((counts, sum), ([0; 7], 0.0));
        assert_rendered(&area, "extra", [1, 1, 1, 3], 10.0);
    }

    /// Forked workers each observe through their own local histogram,
    /// flushing now and then: the rendered buckets, count and sum are
    /// exact. What the parent had pending at the fork is not counted again
    /// by the children.
    #[test]
    fn local_histograms_of_forked_workers_add_up_exactly() {
        const WORKERS: u64 = 4;
        const PER_WORKER: u64 = 20_000;
        // Exact in binary: every partial sum is a multiple of 0.25 below 2^50.
        const VALUES: [f64; 4] = [0.25, 1.5, 2.75, 8.0];
        let (area, h) = area_and_histogram(Opts::new("forked", "h"));
        let mut inherited = h.local();
        inherited.observe(0.5).unwrap();
        let pids: Vec<_> = (0..WORKERS)
            .map(|w| {
                crate::area::fork::tests::fork_child(|| {
                    inherited.flush(); // the parent's 0.5: dropped here
                    let mut local = h.local();
                    for i in 0..PER_WORKER {
                        local.observe(VALUES[(i % 4) as usize]).unwrap();
                        if i % 1000 == w {
                            local.flush();
                        }
                    }
                })
            })
            .collect();
        for pid in pids {
            let status = crate::area::fork::tests::wait_for_child(pid, "a worker hung");
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        }
        let each = WORKERS * PER_WORKER / 4;
        let sum = each as f64 * VALUES.iter().sum::<f64>();
        assert_rendered(&area, "forked", [each, 2 * each, 3 * each, 4 * each], sum);
        drop(inherited);
        assert_rendered(
            &area,
            "forked",
            [each + 1, 2 * each + 1, 3 * each + 1, 4 * each + 1],
            sum + 0.5,
        );
    }
}
