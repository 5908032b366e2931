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
//! window) followed by `SKETCH_BUCKETS` counts. With a window each count
//! cell is tagged with the epoch it counts for, so that a rotation never
//! erases what another process counted in the new period (see
//! `docs/FORMAT.md` §8.7).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::sketch::{sketch_index, sketch_quantiles, SKETCH_BUCKETS};
use super::{atomic_add_f64, metric_handle, SeriesInner};
use crate::area::AreaInner;
use crate::encoding::MetricType;
use crate::error::{Error, Result};
use crate::process;

/// Quantiles and window of a summary.
///
/// ```
/// use std::time::Duration;
///
/// use promshm::SummaryOpts;
///
/// let all_time = SummaryOpts::quantiles(&[0.5, 0.99]);
/// assert_eq!(all_time.max_age, None);
/// // The quantiles of the last 10 minutes, in 5 rotating steps of 2 minutes.
/// let recent = SummaryOpts::quantiles(&[0.5, 0.99]).window(Duration::from_secs(600), 5);
/// assert_eq!((recent.max_age, recent.age_buckets), (Some(Duration::from_secs(600)), 5));
/// ```
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
///
/// ```
/// use promshm::{Area, AreaOptions, Opts, SummaryOpts};
///
/// let area = Area::anonymous(&AreaOptions::default())?;
/// let sizes = area
///     .registry()
///     .summary(Opts::new("size", "Sizes.").unit("bytes"), &SummaryOpts::quantiles(&[0.5, 0.9]))?
///     .get()?;
/// for v in 1..=100 {
///     sizes.observe(f64::from(v))?;
/// }
/// assert_eq!(sizes.get(), (100, 5050.0)); // (count, sum)
/// let median = sizes.quantiles(&[0.5])[0];
/// assert!((median - 50.0).abs() <= 50.0 * 0.01, "{median}"); // within 1 %
/// # Ok::<(), promshm::Error>(())
/// ```
#[derive(Clone)]
pub struct Summary {
    pub(crate) series: Arc<SeriesInner>,
}

metric_handle!(Summary, MetricType::Summary);

impl Summary {
    /// Record one observation. NaN is rejected.
    pub fn observe(&self, v: f64) -> Result<()> {
        self.observe_at(v, process::now_ms())
    }

    /// [`observe`](Self::observe) as if the clock read `now_ms` (Unix ms):
    /// for tests that drive a window's rotation deterministically.
    #[doc(hidden)]
    pub fn observe_at(&self, v: f64, now_ms: u64) -> Result<()> {
        if v.is_nan() {
            return Err(Error::InvalidValue {
                what: "summary observation",
                value: v,
            });
        }
        let s = &self.series;
        let shape = &s.family.shape;
        let idx = sketch_index(v);
        let _w = s.writing();
        if shape.age_buckets == 0 {
            if let Some(c) = s.cell(2 + idx) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            let epoch = window_epoch(now_ms, shape.age_buckets, shape.max_age_ms);
            let base = bucket_base(epoch, shape.age_buckets);
            if let (Some(ep), Some(cell)) = (s.cell(base), s.cell(base + 1 + idx)) {
                if start_bucket(ep, epoch) {
                    // This process moved the bucket to `epoch`: retag its stale cells.
                    clear_bucket(ep, epoch, |i| s.cell(base + 1 + i));
                }
                count_in_bucket(ep, cell, epoch);
            }
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
        let mut out = vec![f64::NAN; quantiles.len()];
        sketch_quantiles(
            &self.window_counts_at(process::now_ms()),
            quantiles,
            &mut out,
        );
        out
    }

    /// The merged sketch counts of the window as a reader at `now_ms` (Unix
    /// ms) sees them, [`SKETCH_BUCKETS`] of them: for tests that check that
    /// no observation is lost across rotations.
    #[doc(hidden)]
    pub fn window_counts_at(&self, now_ms: u64) -> Vec<u64> {
        let s = &self.series;
        let shape = &s.family.shape;
        let mut counts = vec![0u64; SKETCH_BUCKETS];
        merge_sketches_at(
            s.area(),
            s.cells,
            shape.age_buckets,
            shape.max_age_ms,
            now_ms,
            &mut counts,
        );
        counts
    }
}

/// Add up the sketches of the series whose cells start at `cells` into
/// `counts` (only the age buckets inside the window, as of now).
pub(crate) fn merge_sketches(
    area: &AreaInner,
    cells: usize,
    age_buckets: u32,
    max_age_ms: u64,
    counts: &mut [u64],
) {
    merge_sketches_at(
        area,
        cells,
        age_buckets,
        max_age_ms,
        process::now_ms(),
        counts,
    )
}

/// [`merge_sketches`] as of `now_ms`. A windowed bucket counts when its
/// epoch word is inside the window, and then only its cells tagged with that
/// epoch: cells a rotation has not retagged yet (or that a killed clearer
/// left) still hold the counts of an older period and are skipped.
fn merge_sketches_at(
    area: &AreaInner,
    cells: usize,
    age_buckets: u32,
    max_age_ms: u64,
    now_ms: u64,
    counts: &mut [u64],
) {
    let read = |i: usize| {
        area.u64_at(cells + 8 * i)
            .map(|c| c.load(Ordering::Relaxed))
    };
    if age_buckets == 0 {
        for (i, c) in counts.iter_mut().enumerate() {
            *c = c.wrapping_add(read(2 + i).unwrap_or(0));
        }
        return;
    }
    let k = u64::from(age_buckets);
    let now = window_epoch(now_ms, age_buckets, max_age_ms);
    for b in 0..age_buckets as usize {
        let base = 2 + b * (1 + SKETCH_BUCKETS);
        let epoch = read(base).unwrap_or(0);
        if epoch == 0 || epoch > now || now - epoch >= k {
            continue;
        }
        let tag = epoch_tag(epoch);
        for (i, c) in counts.iter_mut().enumerate() {
            let v = read(base + 1 + i).unwrap_or(0);
            if v >> COUNT_BITS == tag {
                *c = c.wrapping_add(v & COUNT_MASK);
            }
        }
    }
}

// ---- the rotating window ----------------------------------------------------------
//
// A windowed summary has `k = age_buckets` sketches; period `p` (ms since the
// Unix epoch divided by `max(max_age_ms / k, 1)`) is epoch `p + 1` and uses
// sketch `epoch % k`. Each sketch's first cell (the epoch word) holds the
// epoch it was last started for; each count cell holds `tag << 40 | count`,
// the tag being the low 24 bits of the epoch the count belongs to.
//
// Rotation never erases anything another process wrote for the new epoch:
// the first writer of a new epoch moves the epoch word forward with a
// compare-exchange and then retags the sketch's stale cells to `tag | 0`,
// each with a compare-exchange that only replaces a cell still holding an
// older tag. A writer that meanwhile counts into a stale cell retags it
// itself (`tag | 1`), so whichever comes first, both the clearer's reset and
// the increment survive. Readers count only cells tagged with the bucket's
// epoch, so a bucket that is still being cleared (or whose clearer was
// killed) shows exactly the counts made in its epoch.

/// Bits of a windowed count cell holding the count.
const COUNT_BITS: u32 = 40;
/// Mask of the count in a windowed count cell.
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// The window epoch of `now_ms`: `floor(now_ms / max(max_age_ms / k, 1)) + 1`.
fn window_epoch(now_ms: u64, age_buckets: u32, max_age_ms: u64) -> u64 {
    now_ms / (max_age_ms / u64::from(age_buckets.max(1))).max(1) + 1
}

/// Cell index of the epoch word of the sketch that `epoch` uses.
fn bucket_base(epoch: u64, age_buckets: u32) -> usize {
    2 + (epoch % u64::from(age_buckets.max(1))) as usize * (1 + SKETCH_BUCKETS)
}

/// The tag of `epoch` in a count cell (its low 24 bits).
fn epoch_tag(epoch: u64) -> u64 {
    epoch & ((1 << (64 - COUNT_BITS)) - 1)
}

/// Move the bucket whose epoch word is `ep` forward to `epoch` if it holds
/// an older one; true if this call did it (and must clear the bucket).
fn start_bucket(ep: &AtomicU64, epoch: u64) -> bool {
    let mut cur = ep.load(Ordering::Acquire);
    while cur < epoch {
        match ep.compare_exchange_weak(cur, epoch, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(now) => cur = now,
        }
    }
    false
}

/// Retag every count cell (`cell(i)` for `i < SKETCH_BUCKETS`) that holds
/// an older tag than `epoch`'s to `tag | 0`. Stops when the bucket moves on
/// to a later epoch (this clearer was stopped for a whole window).
fn clear_bucket<'a>(ep: &AtomicU64, epoch: u64, cell: impl Fn(usize) -> Option<&'a AtomicU64>) {
    let fresh = epoch_tag(epoch) << COUNT_BITS;
    for i in 0..SKETCH_BUCKETS {
        let Some(c) = cell(i) else { return };
        let mut v = c.load(Ordering::Relaxed);
        while v >> COUNT_BITS != epoch_tag(epoch) {
            if ep.load(Ordering::Acquire) != epoch {
                return;
            }
            match c.compare_exchange_weak(v, fresh, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
    }
}

/// Count one observation of `epoch` in `cell` of the bucket whose epoch
/// word is `ep`. The increment lands only in a cell tagged with `epoch`
/// (retagging a stale cell to `tag | 1`); if the bucket has moved on to a
/// later epoch, the observation is older than the window and is not
/// counted in the sketch (it still counts in `_count` and `_sum`). A count
/// at its 40-bit maximum stays there.
fn count_in_bucket(ep: &AtomicU64, cell: &AtomicU64, epoch: u64) {
    let tag = epoch_tag(epoch);
    let mut v = cell.load(Ordering::Relaxed);
    loop {
        let new = if v >> COUNT_BITS == tag {
            if v & COUNT_MASK == COUNT_MASK {
                return;
            }
            v + 1
        } else {
            if ep.load(Ordering::Acquire) != epoch {
                return;
            }
            (tag << COUNT_BITS) | 1
        };
        match cell.compare_exchange_weak(v, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(now) => v = now,
        }
    }
}

/// Render one summary series: cell 0 is the count, cell 1 the sum, and the
/// sketches after them give the quantiles.
pub(crate) fn emit(
    view: &super::view::SeriesCells<'_>,
    cx: super::view::Ctx<'_, '_>,
) -> crate::error::Result<super::view::Emitted> {
    use super::sketch::{sketch_quantiles, SKETCH_BUCKETS};
    use super::view::Emitted;
    let (shape, sc) = (cx.shape, cx.sc);
    sc.quantiles.clear();
    if !shape.params.is_empty() {
        sc.counts.clear();
        sc.counts.resize(SKETCH_BUCKETS, 0);
        merge_sketches(
            view.area(),
            view.cells_off(),
            shape.age_buckets,
            shape.max_age_ms,
            &mut sc.counts,
        );
        sc.qout.clear();
        sc.qout.resize(shape.params.len(), f64::NAN);
        sketch_quantiles(&sc.counts, &shape.params, &mut sc.qout);
        sc.quantiles
            .extend(shape.params.iter().copied().zip(sc.qout.iter().copied()));
    }
    if !view.same() {
        return Ok(Emitted::Skipped);
    }
    cx.enc.point(
        cx.desc,
        cx.labels,
        &crate::encoding::Point::Summary {
            quantiles: &sc.quantiles,
            count: view.cell(0),
            sum: view.cell_f64(1),
            created: view.created(),
        },
    )?;
    Ok(Emitted::Written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Area, AreaOptions, Opts};

    const MAX_AGE_MS: u64 = 500;
    const K: u32 = 5;
    const PERIOD: u64 = MAX_AGE_MS / K as u64;
    /// A period start far from 0 (virtual clock).
    const T0: u64 = 7_000 * PERIOD;

    fn windowed(area: &Area) -> Summary {
        area.registry()
            .summary(
                Opts::new("w", "Windowed."),
                &SummaryOpts::quantiles(&[0.5]).window(Duration::from_millis(MAX_AGE_MS), K),
            )
            .unwrap()
            .get()
            .unwrap()
    }

    fn total(s: &Summary, now_ms: u64) -> u64 {
        s.window_counts_at(now_ms).iter().sum()
    }

    #[test]
    fn window_slides_by_whole_periods() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let s = windowed(&area);
        for p in 0..12u64 {
            for _ in 0..=p {
                s.observe_at(1.5, T0 + p * PERIOD + 3).unwrap();
            }
            // Periods p-4 ..= p are in the window: (p+1) + p + ... observations.
            let want: u64 = (p.saturating_sub(4)..=p).map(|q| q + 1).sum();
            assert_eq!(total(&s, T0 + p * PERIOD + PERIOD - 1), want, "period {p}");
        }
        assert_eq!(s.get().0, (1..=12).sum::<u64>());
        // Long after: nothing left in the window, nothing wrapped around.
        assert_eq!(total(&s, T0 + 40 * PERIOD), 0);
    }

    #[test]
    fn a_writer_stopped_for_a_window_counts_nothing_old_into_the_new_period() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let s = windowed(&area);
        s.observe_at(2.0, T0).unwrap();
        // The bucket of period 0 is reused by period K.
        let later = T0 + u64::from(K) * PERIOD;
        s.observe_at(3.0, later).unwrap();
        // A writer that read the clock in period 0 and writes only now.
        s.observe_at(2.0, T0).unwrap();
        let counts = s.window_counts_at(later);
        assert_eq!(counts.iter().sum::<u64>(), 1);
        assert_eq!(counts[sketch_index(3.0)], 1);
        // It still counts in `_count` and `_sum`.
        assert_eq!(s.get(), (3, 7.0));
    }

    #[test]
    fn a_clearer_killed_after_starting_a_bucket_leaves_no_stale_counts() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let s = windowed(&area);
        for _ in 0..10 {
            s.observe_at(2.0, T0).unwrap();
        }
        let later = T0 + u64::from(K) * PERIOD;
        let epoch = window_epoch(later, K, MAX_AGE_MS);
        let base = bucket_base(epoch, K);
        // What a clearer killed right after its compare-exchange leaves: the
        // epoch word moved on, every count cell still tagged with period 0.
        assert!(start_bucket(s.series.cell(base).unwrap(), epoch));
        assert_eq!(total(&s, later), 0, "stale cells are not counted");
        // Writers of the new period retag the stale cells they use themselves.
        s.observe_at(2.0, later).unwrap();
        s.observe_at(2.0, later).unwrap();
        assert_eq!(total(&s, later), 2);
        // A later clearer (here: this one, resumed) leaves their counts alone.
        clear_bucket(s.series.cell(base).unwrap(), epoch, |i| {
            s.series.cell(base + 1 + i)
        });
        assert_eq!(total(&s, later), 2);
        let cell = s.series.cell(base + 1 + sketch_index(2.0)).unwrap();
        assert_eq!(cell.load(Ordering::Relaxed) & COUNT_MASK, 2);
    }

    #[test]
    fn a_full_count_saturates_instead_of_changing_its_tag() {
        let ep = AtomicU64::new(9);
        let cell = AtomicU64::new((epoch_tag(9) << COUNT_BITS) | (COUNT_MASK - 1));
        count_in_bucket(&ep, &cell, 9);
        count_in_bucket(&ep, &cell, 9);
        assert_eq!(
            cell.load(Ordering::Relaxed),
            (epoch_tag(9) << COUNT_BITS) | COUNT_MASK
        );
    }
}
