//! Native histograms: Prometheus' sparse exponential-bucket histograms,
//! kept in the shared area so that every process adds into the same cells.
//!
//! **Buckets.** At schema `s` the base is `2^(2^-s)` and bucket `i` counts
//! the values `v` with `base^(i-1) < |v| <= base^i` (positive and negative
//! values apart), exactly as the Prometheus spec and client_golang compute
//! it: `v = frac * 2^exp` (`frexp`), then a search of `frac` in
//! client_golang's own table of bounds for `s > 0` (see `native_bounds.rs`),
//! or the exponent shifted right by `-s` for `s <= 0`. The zero bucket counts
//! `|v| <= zero_threshold`.
//!
//! **A fixed window.** A series record in the area has fixed cells, so a
//! family covers the bucket indices `lo ..= hi` only: `lo` is the index of
//! the family's `min_value`, `hi` the index of its `max_value` (defaults
//! `2^-32` and `2^32`: 512 buckets a sign at schema 3, 8 KiB a series). A
//! value with `zero_threshold < |v|` below the window counts in bucket `lo`,
//! one above it (`±Inf` included) in bucket `hi`: its count and sum stay
//! exact, its bucket is the window's edge, and the area's
//! `promshm_native_observations_clamped` self-metric counts it, so that a
//! window too narrow for the data shows. NaN is refused (`observe` returns
//! an error, nothing is counted), as for classic histograms.
//!
//! **Cells** (`2 + 2 * W` with `W = hi - lo + 1`): cell 0 is the sum (`f64`
//! bits), cell 1 the zero bucket's count, cells `2 .. 2 + W` the positive
//! buckets `lo ..= hi`, cells `2 + W .. 2 + 2W` the negative ones. Every
//! observation is one atomic add into its bucket cell and a compare-exchange
//! add into the sum, straight into the area (eager), unless the family was
//! registered [`buffered`](NativeOpts::buffered): then each thread adds into
//! its own copy of the cells and a flush pushes the differences, as for a
//! buffered classic histogram. The count is not a cell: a render derives it
//! from the buckets, so it always equals their sum (which Prometheus
//! checks).
//!
//! **Schema reduction.** A render reads the populated buckets; while there
//! are more than the family's `max_buckets` (0 = no limit), it merges them
//! pairwise (schema `s - 1`: bucket `i` goes to `(i + 1) >> 1`), down to
//! schema -4, as client_golang's `NativeHistogramMaxBucketNumber` does. The
//! cells keep the family's schema: the reduction is per render.
//!
//! **Classic buckets too.** A family registered with classic bucket bounds
//! (client_golang's `Buckets` beside `NativeHistogramBucketFactor`) keeps,
//! after the native cells, one count per classic bound (not cumulative; the
//! `+Inf` bucket is the native count). One observation adds into its native
//! bucket, then into its classic bucket (the latter with `Release`; a render
//! reads the classic cells first, with `Acquire`, so a classic count never
//! runs ahead of the native count; a flush of buffered observations gives no
//! such order, so a render also caps each classic count at the count). Protobuf carries both views in one
//! `Histogram` message; the text formats show the classic buckets. Its
//! exemplar slots are the classic buckets' (one per bucket, `+Inf` last).
//!
//! **Parameters** are stored in the family record as `f64` params:
//! `[schema, zero_threshold, lo, hi, max_buckets]`, then the classic bounds
//! (none for a native-only family).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::native_bounds::BOUNDS;
use super::view::{Ctx, Emitted, SeriesCells};
use super::{atomic_add_f64, SeriesInner};
use crate::area::format::hdr;
use crate::encoding::{MetricType, Point};
use crate::error::{Error, Result};

/// The finest schema (256 buckets per power of two).
pub const MAX_SCHEMA: i32 = 8;
/// The coarsest schema (a bucket spans a factor of `2^16`).
pub const MIN_SCHEMA: i32 = -4;
/// Default schema: 3, a bucket factor of about 1.09 (client_golang's
/// `NativeHistogramBucketFactor: 1.1`).
pub const DEFAULT_SCHEMA: i32 = 3;
/// Default zero threshold, `2^-128` (client_golang's and the spec's).
pub const DEFAULT_ZERO_THRESHOLD: f64 = 2.938_735_877_055_719e-39;
/// Default smallest value with its own bucket, `2^-32` (about 2.3e-10).
pub const DEFAULT_MIN_VALUE: f64 = 2.328_306_436_538_696_3e-10;
/// Default largest value with its own bucket, `2^32` (about 4.3e9).
pub const DEFAULT_MAX_VALUE: f64 = 4_294_967_296.0;
/// Default maximum number of populated buckets a render shows (client_golang
/// suggests 160).
pub const DEFAULT_MAX_BUCKETS: u32 = 160;
/// Most buckets a window may have, per sign.
pub const MAX_WINDOW: usize = 8192;

/// The cell of the sum.
const SUM_CELL: usize = 0;
/// The cell of the zero bucket's count.
const ZERO_CELL: usize = 1;
/// The first bucket cell (bucket `lo`, positive).
const FIRST_BUCKET_CELL: usize = 2;
/// Number of native params a family stores (its classic bounds follow).
const N_PARAMS: usize = 5;
/// Bound on any bucket index stored in a family (the largest possible is
/// about `1075 * 256`).
const MAX_INDEX: f64 = (1 << 20) as f64;

/// The options of a native histogram family (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NativeOpts {
    /// Resolution, `-4 ..= 8`: `2^schema` buckets per power of two.
    pub schema: i32,
    /// Values with `|v| <= zero_threshold` count in the zero bucket (`>= 0`).
    pub zero_threshold: f64,
    /// The smallest `|v|` with its own bucket (the window's low end).
    pub min_value: f64,
    /// The largest `|v|` with its own bucket (the window's high end).
    pub max_value: f64,
    /// Most populated buckets a render shows before it reduces the schema
    /// (0 = no limit).
    pub max_buckets: u32,
    /// Buffer observations per thread (flushed as other buffered types'
    /// updates) instead of adding them straight into the area. Not part of
    /// the family's shape: processes may differ.
    pub buffered: bool,
}

impl Default for NativeOpts {
    fn default() -> Self {
        NativeOpts {
            schema: DEFAULT_SCHEMA,
            zero_threshold: DEFAULT_ZERO_THRESHOLD,
            min_value: DEFAULT_MIN_VALUE,
            max_value: DEFAULT_MAX_VALUE,
            max_buckets: DEFAULT_MAX_BUCKETS,
            buffered: false,
        }
    }
}

impl NativeOpts {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pick the schema from a bucket factor as client_golang's
    /// `NativeHistogramBucketFactor` does: the largest schema whose factor
    /// `2^(2^-schema)` is at most `factor` (schema 8 below its factor, -4 at
    /// the most). `factor` must be > 1.
    pub fn bucket_factor(mut self, factor: f64) -> Result<Self> {
        if factor.is_nan() || factor <= 1.0 {
            return Err(Error::InvalidBuckets(format!(
                "native histogram bucket factor {factor} must be > 1"
            )));
        }
        let floor = factor.log2().log2().floor();
        self.schema = if floor <= -8.0 {
            MAX_SCHEMA
        } else if floor >= 4.0 {
            MIN_SCHEMA
        } else {
            -(floor as i32)
        };
        Ok(self)
    }

    /// Set the schema.
    pub fn schema(mut self, schema: i32) -> Self {
        self.schema = schema;
        self
    }

    /// Set the zero threshold.
    pub fn zero_threshold(mut self, t: f64) -> Self {
        self.zero_threshold = t;
        self
    }

    /// Set the window: the smallest and largest `|v|` with their own buckets.
    pub fn range(mut self, min_value: f64, max_value: f64) -> Self {
        self.min_value = min_value;
        self.max_value = max_value;
        self
    }

    /// Set the maximum number of populated buckets a render shows.
    pub fn max_buckets(mut self, n: u32) -> Self {
        self.max_buckets = n;
        self
    }

    /// Buffer observations in a per-thread copy of the series' cells,
    /// flushed like a buffered classic histogram's (`promshm::flush`, the
    /// flusher), instead of the default eager adds into the area. Each
    /// thread that observes a series keeps two copies of its cells
    /// (`16 * n_cells` bytes: about 16 KiB with the default window) and a
    /// flush compares every cell.
    pub fn buffered(mut self, buffered: bool) -> Self {
        self.buffered = buffered;
        self
    }

    /// The family params (checked): `[schema, zero_threshold, lo, hi,
    /// max_buckets]`, then the classic bucket bounds `classic` (normalised:
    /// a trailing `+Inf` dropped; none for a native-only family).
    pub(crate) fn params_with_buckets(&self, classic: &[f64]) -> Result<Vec<f64>> {
        let mut p = self.params()?;
        p.extend(super::histogram::normalize_buckets(classic)?);
        check_params(&p)?;
        Ok(p)
    }

    /// The native params (checked): `[schema, zero_threshold, lo, hi, max_buckets]`.
    pub(crate) fn params(&self) -> Result<Vec<f64>> {
        let bad = |why: String| Err(Error::InvalidBuckets(why));
        if !(MIN_SCHEMA..=MAX_SCHEMA).contains(&self.schema) {
            return bad(format!(
                "native histogram schema {} is not in {MIN_SCHEMA}..={MAX_SCHEMA}",
                self.schema
            ));
        }
        let finite_pos = |v: f64| v.is_finite() && v > 0.0;
        let ok = self.zero_threshold.is_finite()
            && self.zero_threshold >= 0.0
            && finite_pos(self.min_value)
            && finite_pos(self.max_value)
            && self.min_value <= self.max_value;
        if !ok {
            return bad(format!(
                "native histogram needs a zero threshold >= 0 and 0 < min_value <= max_value \
                 (zero threshold {}, range {}..{})",
                self.zero_threshold, self.min_value, self.max_value
            ));
        }
        let lo = bucket_index(self.min_value, self.schema);
        let hi = bucket_index(self.max_value, self.schema);
        let p = vec![
            f64::from(self.schema),
            self.zero_threshold,
            f64::from(lo),
            f64::from(hi),
            f64::from(self.max_buckets),
        ];
        check_params(&p)?;
        Ok(p)
    }
}

/// A native family's layout, decoded from its params.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Layout {
    pub(crate) schema: i32,
    pub(crate) zero_threshold: f64,
    /// First and last bucket index of the window.
    pub(crate) lo: i32,
    pub(crate) hi: i32,
    pub(crate) max_buckets: u32,
    /// Number of classic bucket bounds (0: native only); the bounds are
    /// the family's params after the first [`N_PARAMS`].
    pub(crate) n_classic: usize,
}

impl Layout {
    /// Decode params; `None` unless [`check_params`] accepts them.
    pub(crate) fn from_params(p: &[f64]) -> Option<Layout> {
        let int = |v: f64, lo: f64, hi: f64| (v.fract() == 0.0 && lo <= v && v <= hi).then_some(v);
        let [schema, zt, lo, hi, max] = *p.get(..N_PARAMS)? else {
            return None;
        };
        let classic = &p[N_PARAMS..];
        if super::histogram::check_buckets(classic).is_err() {
            return None;
        }
        let schema = int(schema, f64::from(MIN_SCHEMA), f64::from(MAX_SCHEMA))? as i32;
        let lo = int(lo, -MAX_INDEX, MAX_INDEX)? as i32;
        let hi = int(hi, -MAX_INDEX, MAX_INDEX)? as i32;
        let max_buckets = int(max, 0.0, f64::from(u32::MAX))? as u32;
        let width_ok = lo <= hi && ((hi - lo) as usize) < MAX_WINDOW;
        (zt.is_finite() && zt >= 0.0 && width_ok).then_some(Layout {
            schema,
            zero_threshold: zt,
            lo,
            hi,
            max_buckets,
            n_classic: classic.len(),
        })
    }

    /// Buckets per sign.
    pub(crate) fn width(&self) -> usize {
        if self.hi < self.lo {
            return 0;
        }
        (self.hi - self.lo) as usize + 1
    }

    /// Native cells of a series (the sum, the zero bucket, the buckets).
    fn native_cells(&self) -> usize {
        FIRST_BUCKET_CELL + 2 * self.width()
    }

    /// Cells of a series: the native ones, then the classic buckets'.
    pub(crate) fn n_cells(&self) -> usize {
        self.native_cells() + self.n_classic
    }

    /// The cell of classic bucket `k` (`k < n_classic`; bucket `n_classic`,
    /// `+Inf`, has none: its cumulative count is the native count).
    #[inline]
    fn classic_cell(&self, k: usize) -> usize {
        self.native_cells() + k
    }

    /// The exemplar slot of an observation `v` that counted in classic
    /// bucket `classic`: that bucket in a family with classic buckets, else
    /// one of `ex::NATIVE_SLOTS` chosen by its native cell.
    pub(crate) fn exemplar_slot(&self, v: f64, classic: usize) -> usize {
        if self.n_classic > 0 {
            classic
        } else {
            self.cell_of(v).0 % crate::area::format::ex::NATIVE_SLOTS
        }
    }

    /// The cell `v` (not NaN) counts in, and whether it was clamped to the
    /// window's edge.
    #[inline]
    pub(crate) fn cell_of(&self, v: f64) -> (usize, bool) {
        let a = v.abs();
        if a <= self.zero_threshold {
            return (ZERO_CELL, false);
        }
        let i = if a.is_finite() {
            bucket_index(a, self.schema)
        } else {
            i32::MAX
        };
        let at = i.clamp(self.lo, self.hi);
        let side = if v > 0.0 { 0 } else { self.width() };
        let cell = FIRST_BUCKET_CELL + side + (at - self.lo) as usize;
        (cell, at != i)
    }
}

/// Check a native family's params (registration and decode).
pub(crate) fn check_params(p: &[f64]) -> Result<()> {
    let fits = p.len() <= crate::area::format::MAX_PARAMS;
    if !fits || Layout::from_params(p).is_none() {
        return Err(Error::InvalidBuckets(format!(
            "native histogram parameters {p:?} are out of range (window at most {MAX_WINDOW} buckets, \
             classic bounds finite and increasing, at most {} params)",
            crate::area::format::MAX_PARAMS
        )));
    }
    Ok(())
}

/// `frexp`: `v = frac * 2^exp` with `0.5 <= frac < 1`, for a finite `v > 0`
/// (0 gives 0.5, -1022: never asked, zero is in the zero bucket).
#[inline]
fn frexp(v: f64) -> (f64, i32) {
    const EXP_MASK: u64 = 0x7ff << 52;
    let bits = v.to_bits();
    let e = ((bits & EXP_MASK) >> 52) as i32;
    if e == 0 && v != 0.0 {
        // Subnormal: scale into the normal range first (2^64 is exact).
        let (f, x) = frexp(v * 18_446_744_073_709_551_616.0);
        return (f, x - 64);
    }
    (f64::from_bits((bits & !EXP_MASK) | (1022 << 52)), e - 1022)
}

/// The index of the bucket of `v` (finite, > 0) at `schema`, exactly as
/// client_golang computes it.
#[inline]
pub(crate) fn bucket_index(v: f64, schema: i32) -> i32 {
    let (frac, exp) = frexp(v);
    if schema > 0 {
        let bounds = BOUNDS[schema as usize];
        let n = bounds.len() as i32;
        bounds.partition_point(|&b| b < frac) as i32 + (exp - 1) * n
    } else {
        let key = if frac == 0.5 { exp - 1 } else { exp };
        let offset = (1 << -schema) - 1;
        (key + offset) >> -schema
    }
}

/// Merge the sorted populated buckets `b` pairwise: schema `s` to `s - 1`.
fn halve(b: &mut Vec<(i32, u64)>) {
    let mut w = 0;
    for r in 0..b.len() {
        let (i, n) = b[r];
        let j = (i + 1) >> 1;
        if w > 0 && b[w - 1].0 == j {
            b[w - 1].1 = b[w - 1].1.wrapping_add(n);
        } else {
            b[w] = (j, n);
            w += 1;
        }
    }
    b.truncate(w);
}

/// Reduce the schema until at most `max_buckets` buckets (both signs) are
/// populated (0 = no limit) or the schema is -4; returns the new schema.
pub(crate) fn reduce(
    mut schema: i32,
    pos: &mut Vec<(i32, u64)>,
    neg: &mut Vec<(i32, u64)>,
    max_buckets: u32,
) -> i32 {
    while max_buckets > 0 && pos.len() + neg.len() > max_buckets as usize && schema > MIN_SCHEMA {
        halve(pos);
        halve(neg);
        schema -= 1;
    }
    schema
}

/// A native histogram series handle.
#[derive(Clone)]
pub struct NativeHistogram {
    pub(crate) series: Arc<SeriesInner>,
    layout: Layout,
}

impl super::sealed::Sealed for NativeHistogram {}

impl super::Metric for NativeHistogram {
    const TYPE: MetricType = MetricType::NativeHistogram;
    fn from_series(series: Arc<SeriesInner>) -> Self {
        // The family's params were checked when it was registered or
        // decoded; a default layout (no bucket cell) would update nothing.
        let layout = Layout::from_params(&series.family.shape.params).unwrap_or_default();
        NativeHistogram { series, layout }
    }
}

impl std::fmt::Debug for NativeHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeHistogram")
            .field("family", &self.series.family.shape.name)
            .field("labels", &self.series.values)
            .finish()
    }
}

impl NativeHistogram {
    /// Record one observation: one atomic add into its bucket and one into
    /// the sum, straight into the area. NaN is refused; values outside the
    /// window count in its edge bucket (see the module docs).
    #[inline]
    pub fn observe(&self, v: f64) -> Result<()> {
        self.observe_in_slot(v).map(|_| ())
    }

    /// [`observe`](Self::observe), giving the classic bucket
    /// it counted in (`n_classic` for `+Inf`; 0 for a native-only family).
    #[inline]
    fn observe_in_slot(&self, v: f64) -> Result<usize> {
        if v.is_nan() {
            return Err(Error::InvalidValue {
                what: "native histogram observation",
                value: v,
            });
        }
        let l = &self.layout;
        let (cell, clamped) = l.cell_of(v);
        // A native-only family (the common case) reads no classic bound.
        let classic = if l.n_classic > 0 {
            super::histogram::bucket_of(self.classic_bounds(), v)
        } else {
            0
        };
        if clamped {
            self.series
                .area()
                .hdr(hdr::STAT_NATIVE_CLAMPED)
                .fetch_add(1, Ordering::Relaxed);
        }
        if !self.series.eager {
            crate::buffer::add_f64_and_count(&*self.series, cell, v);
            if classic < l.n_classic {
                // The classic count, with nothing (0.0) added to the sum.
                crate::buffer::add_f64_and_count(&*self.series, l.classic_cell(classic), 0.0);
            }
            return Ok(classic);
        }
        let _w = self.series.writing();
        if let (Some(b), Some(sum)) = (self.series.cell(cell), self.series.cell(SUM_CELL)) {
            b.fetch_add(1, Ordering::Relaxed);
            atomic_add_f64(sum, v);
            if classic < l.n_classic {
                // After the native add (see the module docs).
                if let Some(c) = self.series.cell(l.classic_cell(classic)) {
                    c.fetch_add(1, Ordering::Release);
                }
            }
        }
        Ok(classic)
    }

    /// The family's classic bucket bounds (empty for a native-only family).
    fn classic_bounds(&self) -> &[f64] {
        classic_bounds(&self.series.family.shape.params)
    }

    /// Record one observation (as [`observe`](Self::observe)) and store the
    /// exemplar `labels` with it, for every process, in one of the series'
    /// `ex::NATIVE_SLOTS` exemplar slots (chosen by the observation's
    /// bucket, so that exemplars of different sizes are kept side by side),
    /// or, in a family with classic buckets, as the newest exemplar of its
    /// classic bucket.
    pub fn observe_with_exemplar(&self, v: f64, labels: &[(&str, &str)]) -> Result<()> {
        let ex = super::exemplar::encode(labels)?;
        let classic = self.observe_in_slot(v)?;
        super::exemplar::store(&self.series, self.layout.exemplar_slot(v, classic), v, ex)
    }

    /// Store an exemplar of `value` (an observation counted already)
    /// without observing it (see [`observe_with_exemplar`](Self::observe_with_exemplar);
    /// `timestamp`: Unix seconds, `None`: now).
    pub fn set_exemplar(
        &self,
        value: f64,
        timestamp: Option<f64>,
        labels: &[(&str, &str)],
    ) -> Result<()> {
        super::exemplar::set(&self.series, value, timestamp, labels)
    }

    /// Time `f` and observe its duration in seconds.
    pub fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        super::timed(f, |secs| {
            let _ = self.observe(secs);
        })
    }

    /// `(count, sum)` in the area (all processes).
    pub fn get(&self) -> (u64, f64) {
        let count = (ZERO_CELL..self.layout.native_cells())
            .filter_map(|i| self.series.cell(i))
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

/// The classic bucket bounds in a native family's params (after the native
/// ones; none for a native-only family).
pub(crate) fn classic_bounds(params: &[f64]) -> &[f64] {
    params.get(N_PARAMS..).unwrap_or(&[])
}

/// The populated buckets of one sign, from `first` (the cell of bucket `lo`).
fn read_side(view: &SeriesCells<'_>, l: &Layout, first: usize, out: &mut Vec<(i32, u64)>) {
    out.clear();
    for k in 0..l.width() {
        let n = view.cell(first + k);
        if n != 0 {
            out.push((l.lo + k as i32, n));
        }
    }
}

/// Render one native histogram series: its populated buckets, reduced to
/// the family's maximum, the zero bucket, the count and the sum.
pub(crate) fn emit(view: &SeriesCells<'_>, cx: Ctx<'_, '_>) -> Result<Emitted> {
    let Some(l) = Layout::from_params(&cx.shape.params) else {
        return Ok(Emitted::Bad);
    };
    let sc = cx.sc;
    // The classic cells first: each observation was added to them after its
    // native bucket, so none is counted here and missing there.
    sc.buckets.clear();
    let mut acc = 0u64;
    for (k, &bound) in classic_bounds(&cx.shape.params).iter().enumerate() {
        acc = acc.wrapping_add(view.cell(l.classic_cell(k)));
        sc.buckets.push((bound, acc));
    }
    let zero_count = view.cell(ZERO_CELL);
    read_side(view, &l, FIRST_BUCKET_CELL, &mut sc.native_pos);
    read_side(view, &l, FIRST_BUCKET_CELL + l.width(), &mut sc.native_neg);
    let sum = view.cell_f64(SUM_CELL);
    super::exemplar::read(view, cx.shape, &mut sc.exemplars);
    if !view.same() {
        return Ok(Emitted::Skipped);
    }
    let schema = reduce(
        l.schema,
        &mut sc.native_pos,
        &mut sc.native_neg,
        l.max_buckets,
    );
    let count = sc
        .native_pos
        .iter()
        .chain(&sc.native_neg)
        .fold(zero_count, |acc, b| acc.wrapping_add(b.1));
    if l.n_classic > 0 {
        // A flush of buffered observations may have pushed a classic count
        // before its native one: never more than `count` (see the module docs).
        for b in sc.buckets.iter_mut() {
            b.1 = b.1.min(count);
        }
        sc.buckets.push((f64::INFINITY, count));
    }
    cx.enc.point_with_exemplars(
        cx.desc,
        cx.labels,
        &Point::NativeHistogram {
            schema,
            zero_threshold: l.zero_threshold,
            zero_count,
            count,
            sum,
            positive: &sc.native_pos,
            negative: &sc.native_neg,
            classic: &sc.buckets,
            created: view.created(),
        },
        &sc.exemplars,
    )?;
    Ok(Emitted::Written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `2^k` exactly, subnormals included.
    fn pow2(k: i32) -> f64 {
        if k >= -1022 {
            f64::from_bits(((k + 1023) as u64) << 52)
        } else {
            f64::from_bits(1 << (k + 1074))
        }
    }

    /// The upper bound of bucket `i` at `schema`, computed independently.
    fn upper(i: i32, schema: i32) -> f64 {
        (f64::from(i) * (-f64::from(schema)).exp2()).exp2()
    }

    #[test]
    fn frexp_matches_the_definition() {
        for v in [1.0, 0.5, 0.75, 3.0, 1e300, 5e-324, 1e-310, f64::MAX] {
            let (f, e) = frexp(v);
            assert!((0.5..1.0).contains(&f), "{v}: {f}");
            // Two steps: 2^e alone may not be representable.
            assert_eq!(f * pow2(e / 2) * pow2(e - e / 2), v, "{v}");
        }
        assert_eq!(frexp(1.0), (0.5, 1));
        assert_eq!(frexp(5e-324), (0.5, -1073));
    }

    /// Exact powers of two are the upper bounds of their buckets, at every
    /// schema: 2^k is in bucket k * 2^s (s >= 0) and the next float above
    /// it one bucket up.
    #[test]
    fn powers_of_two_are_upper_bounds() {
        for schema in MIN_SCHEMA..=MAX_SCHEMA {
            for k in [-1074, -1022, -130, -3, -1, 0, 1, 2, 7, 100, 1023] {
                let v = pow2(k);
                let up = f64::from_bits(v.to_bits() + 1);
                let want = if schema >= 0 {
                    k << schema
                } else {
                    // ceil(k / 2^-s)
                    -((-k) >> -schema)
                };
                assert_eq!(bucket_index(v, schema), want, "2^{k} at schema {schema}");
                // (Above 2^-1074 is 2^-1073, another power of two.)
                if schema >= 0 && k > -1074 {
                    assert_eq!(bucket_index(up, schema), want + 1, "above 2^{k}, {schema}");
                }
            }
        }
    }

    #[test]
    fn indices_of_chosen_values() {
        // Schema 3: base 2^(1/8) = 1.0905...
        assert_eq!(bucket_index(1.0, 3), 0);
        assert_eq!(bucket_index(1.05, 3), 1);
        assert_eq!(bucket_index(1.1, 3), 2);
        assert_eq!(bucket_index(0.9, 3), -1);
        assert_eq!(bucket_index(1.5, 3), 5);
        assert_eq!(bucket_index(100.0, 3), 54);
        assert_eq!(bucket_index(0.001, 3), -79);
        // Schema 0: (2^(i-1), 2^i].
        assert_eq!(bucket_index(3.0, 0), 2);
        assert_eq!(bucket_index(4.0, 0), 2);
        assert_eq!(bucket_index(4.5, 0), 3);
        // Schema -2: a bucket spans a factor of 16.
        assert_eq!(bucket_index(16.0, -2), 1);
        assert_eq!(bucket_index(17.0, -2), 2);
        assert_eq!(bucket_index(1.0, -2), 0);
        assert_eq!(bucket_index(0.5, -2), 0);
        assert_eq!(bucket_index(0.0625, -2), -1);
        // Every value lies in its bucket, at every schema.
        for schema in MIN_SCHEMA..=MAX_SCHEMA {
            for v in [1e-9, 0.003, 0.3, 1.7, 42.0, 1234.5, 9.9e8] {
                let i = bucket_index(v, schema);
                let rel = 1e-12;
                assert!(v <= upper(i, schema) * (1.0 + rel), "{v} {schema} {i}");
                assert!(v > upper(i - 1, schema) * (1.0 - rel), "{v} {schema} {i}");
            }
        }
    }

    #[test]
    fn bounds_table_is_the_spec_within_a_few_ulps() {
        for (s, b) in BOUNDS.iter().enumerate() {
            assert_eq!(b.len(), 1 << s);
            for (j, &x) in b.iter().enumerate() {
                let want = (j as f64 / b.len() as f64 - 1.0).exp2();
                assert!((x - want).abs() <= 4.0 * f64::EPSILON * want, "{s} {j}");
            }
        }
    }

    #[test]
    fn bucket_factor_picks_client_golangs_schema() {
        let s = |f: f64| NativeOpts::new().bucket_factor(f).unwrap().schema;
        assert_eq!(s(1.1), 3);
        assert_eq!(s(2.0), 0);
        assert_eq!(s(1.5), 1);
        assert_eq!(s(1.0001), 8);
        assert_eq!(s(1e9), -4);
        assert_eq!(s(4.0), -1);
        assert!(NativeOpts::new().bucket_factor(1.0).is_err());
        assert!(NativeOpts::new().bucket_factor(f64::NAN).is_err());
    }

    #[test]
    fn default_window_and_cells() {
        let p = NativeOpts::new().params().unwrap();
        let l = Layout::from_params(&p).unwrap();
        assert_eq!((l.schema, l.lo, l.hi, l.max_buckets), (3, -256, 256, 160));
        assert_eq!(l.width(), 513);
        assert_eq!(l.n_cells(), 1028);
        assert_eq!(l.zero_threshold, 2f64.powi(-128));
        assert_eq!(DEFAULT_MIN_VALUE, 2f64.powi(-32));
        assert_eq!(DEFAULT_MAX_VALUE, 2f64.powi(32));
    }

    #[test]
    fn cells_zero_clamps_and_signs() {
        let l = Layout::from_params(
            &NativeOpts::new()
                .schema(0)
                .zero_threshold(0.01)
                .range(0.25, 8.0)
                .params()
                .unwrap(),
        )
        .unwrap();
        // Window: buckets -2 (0.125, 0.25] ..= 3 (4, 8].
        assert_eq!((l.lo, l.hi, l.width()), (-2, 3, 6));
        let cell = |v| l.cell_of(v);
        assert_eq!(cell(0.0), (ZERO_CELL, false));
        assert_eq!(cell(-0.01), (ZERO_CELL, false));
        assert_eq!(cell(0.2), (2, false));
        assert_eq!(cell(0.02), (2, true));
        assert_eq!(cell(1.0), (4, false));
        assert_eq!(cell(8.0), (7, false));
        assert_eq!(cell(8.5), (7, true));
        assert_eq!(cell(f64::INFINITY), (7, true));
        assert_eq!(cell(-1.0), (8 + 2, false));
        assert_eq!(cell(f64::NEG_INFINITY), (13, true));
    }

    #[test]
    fn params_are_checked() {
        assert!(NativeOpts::new().schema(9).params().is_err());
        assert!(NativeOpts::new().schema(-5).params().is_err());
        assert!(NativeOpts::new().zero_threshold(-1.0).params().is_err());
        assert!(NativeOpts::new().range(2.0, 1.0).params().is_err());
        assert!(NativeOpts::new().range(0.0, 1.0).params().is_err());
        assert!(NativeOpts::new().range(1e-300, 1e300).params().is_err());
        assert!(check_params(&[3.0, 0.0, 1.5, 2.0, 0.0]).is_err());
        assert!(check_params(&[3.0, 0.0, 1.0, 2.0]).is_err());
        assert!(check_params(&[3.0, f64::NAN, 1.0, 2.0, 0.0]).is_err());
        assert!(check_params(&[3.0, 0.0, 1.0, 2.0, 0.0]).is_ok());
        // Classic bounds after the five: finite, strictly increasing.
        assert!(check_params(&[3.0, 0.0, 1.0, 2.0, 0.0, 0.5, 1.0]).is_ok());
        assert!(check_params(&[3.0, 0.0, 1.0, 2.0, 0.0, 1.0, 1.0]).is_err());
        assert!(check_params(&[3.0, 0.0, 1.0, 2.0, 0.0, f64::INFINITY]).is_err());
        let l = Layout::from_params(&[3.0, 0.0, 1.0, 2.0, 0.0, 0.5, 1.0]).unwrap();
        assert_eq!((l.n_classic, l.n_cells(), l.classic_cell(1)), (2, 8, 7));
    }

    fn pb(area: &crate::Area) -> Vec<crate::encoding::protobuf::proto::MetricFamily> {
        let mut out = Vec::new();
        area.registry()
            .render(&mut out, crate::Format::Protobuf)
            .unwrap();
        crate::encoding::protobuf::decode_families(&out).unwrap()
    }

    /// One series through the area: exact buckets in protobuf (zero bucket,
    /// both signs, a clamped value), the classic view in text.
    #[test]
    fn renders_through_the_area() {
        use crate::encoding::protobuf::proto::BucketSpan;
        let area = crate::Area::anonymous(&crate::AreaOptions::with_pages(64)).unwrap();
        let opts = NativeOpts::new()
            .schema(0)
            .zero_threshold(0.5)
            .range(0.75, 1024.0);
        let f = area
            .registry()
            .native_histogram(crate::Opts::new("lat", "Latency.").labels(&["m"]), opts)
            .unwrap();
        let h = f.labels(&["a"]).unwrap();
        for v in [0.0, 0.25, -0.5, 1.0, 1.5, 2.0, 3.0, 5000.0, -3.0] {
            h.observe(v).unwrap();
        }
        assert!(h.observe(f64::NAN).is_err());
        assert_eq!(h.get(), (9, 5004.25));
        let fams = pb(&area);
        let fam = fams.iter().find(|f| f.name() == "lat").unwrap();
        let m = &fam.metric[0].histogram.as_ref().unwrap();
        assert_eq!(
            (m.schema(), m.zero_threshold(), m.zero_count()),
            (0, 0.5, 3)
        );
        assert_eq!((m.sample_count(), m.sample_sum()), (9, 5004.25));
        assert!(m.bucket.is_empty());
        let span = |o, l| BucketSpan {
            offset: Some(o),
            length: Some(l),
        };
        // 1 -> 0; 1.5, 2 -> 1; 3 -> 2; 5000 clamped to 10 (1024).
        assert_eq!(m.positive_span, [span(0, 3), span(7, 1)]);
        assert_eq!(m.positive_delta, [1, 1, -1, 0]);
        assert_eq!(m.negative_span, [span(2, 1)]);
        assert_eq!(m.negative_delta, [1]);
        let text = area.render_to_string(crate::Format::Prometheus).unwrap();
        for want in [
            "# TYPE lat histogram\n",
            "lat_bucket{m=\"a\",le=\"+Inf\"} 9\n",
            "lat_sum{m=\"a\"} 5004.25\n",
            "lat_count{m=\"a\"} 9\n",
            "promshm_native_observations_clamped_total 1\n",
        ] {
            assert!(text.contains(want), "no {want:?} in\n{text}");
        }
        assert_eq!(text.matches("lat_bucket").count(), 1);
        let om = area.render_to_string(crate::Format::OpenMetrics).unwrap();
        assert!(om.contains("lat_bucket{m=\"a\",le=\"+Inf\"} 9\n"), "{om}");
    }

    /// A family with classic buckets too: one observation counts in both
    /// views; protobuf has both in one message, text the classic buckets;
    /// exemplars go on their classic buckets and into `exemplars`.
    #[test]
    fn classic_buckets_beside_native_ones() {
        use crate::encoding::protobuf::proto::BucketSpan;
        let area = crate::Area::anonymous(&crate::AreaOptions::with_pages(64)).unwrap();
        let opts = NativeOpts::new()
            .schema(0)
            .zero_threshold(0.0)
            .range(0.75, 1024.0);
        let reg = area.registry();
        let f = reg
            .native_histogram_with_buckets(
                crate::Opts::new("d", "Dual."),
                opts,
                &[1.0, 2.5, f64::INFINITY],
            )
            .unwrap();
        let h = f.get().unwrap();
        for v in [-1.0, 0.5, 1.0, 2.0, 3.0, 4.0, 4.0] {
            h.observe(v).unwrap();
        }
        h.observe_with_exemplar(2.0, &[("trace_id", "b")]).unwrap();
        h.observe_with_exemplar(9.0, &[("trace_id", "inf")])
            .unwrap();
        assert!(h.observe(f64::NAN).is_err());
        assert_eq!(h.get(), (9, 24.5));
        // The same bounds again find it; other bounds (or none) are another family.
        assert!(reg
            .native_histogram_with_buckets(crate::Opts::new("d", "Dual."), opts, &[1.0, 2.5])
            .is_ok());
        assert!(reg
            .native_histogram(crate::Opts::new("d", "Dual."), opts)
            .is_err());
        assert!(reg
            .native_histogram_with_buckets(crate::Opts::new("d", "Dual."), opts, &[1.0])
            .is_err());
        assert!(reg
            .native_histogram_with_buckets(crate::Opts::new("e", "h"), opts, &[2.0, 1.0])
            .is_err());
        let fams = pb(&area);
        let m = fams.iter().find(|f| f.name() == "d").unwrap().metric[0]
            .histogram
            .clone()
            .unwrap();
        assert_eq!((m.sample_count(), m.sample_sum()), (9, 24.5));
        assert_eq!((m.schema(), m.zero_count()), (0, 0));
        // 0.5 clamped to 0 (0.75 is in bucket 0); 1 -> 0; 2, 2 -> 1; 3, 4, 4 -> 2; 9 -> 4.
        let span = |o, l| BucketSpan {
            offset: Some(o),
            length: Some(l),
        };
        assert_eq!(m.positive_span, [span(0, 5)]);
        assert_eq!(m.positive_delta, [2, 0, 1, -3, 1]);
        assert_eq!(m.negative_span, [span(0, 1)]);
        assert_eq!(m.negative_delta, [1]);
        let classic: Vec<(f64, u64)> = m
            .bucket
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect();
        // -1, 0.5, 1 <= 1; 2, 2 <= 2.5; the +Inf bucket added for its exemplar.
        assert_eq!(classic, [(1.0, 3), (2.5, 5), (f64::INFINITY, 9)]);
        let ex = |b: &crate::encoding::protobuf::proto::Bucket| {
            b.exemplar
                .as_ref()
                .map(|e| (e.value(), e.label[0].value().to_owned()))
        };
        assert_eq!(ex(&m.bucket[0]), None);
        assert_eq!(ex(&m.bucket[1]), Some((2.0, "b".to_owned())));
        assert_eq!(ex(&m.bucket[2]), Some((9.0, "inf".to_owned())));
        let mut native: Vec<f64> = m.exemplars.iter().map(|e| e.value()).collect();
        native.sort_by(f64::total_cmp);
        assert_eq!(native, [2.0, 9.0]);
        let text = area.render_to_string(crate::Format::Prometheus).unwrap();
        for want in [
            "d_bucket{le=\"1.0\"} 3\n",
            "d_bucket{le=\"2.5\"} 5\n",
            "d_bucket{le=\"+Inf\"} 9\n",
            "d_sum 24.5\n",
            "d_count 9\n",
        ] {
            assert!(text.contains(want), "no {want:?} in\n{text}");
        }
        assert_eq!(text.matches("d_bucket").count(), 3);
        let om = area.render_to_string(crate::Format::OpenMetrics).unwrap();
        assert!(om.contains("d_bucket{le=\"1.0\"} 3\n"), "{om}");
        assert!(
            om.contains("d_bucket{le=\"2.5\"} 5 # {trace_id=\"b\"} 2 "),
            "{om}"
        );
        assert!(
            om.contains("d_bucket{le=\"+Inf\"} 9 # {trace_id=\"inf\"} 9 "),
            "{om}"
        );
        // A set exemplar goes to its classic bucket's slot.
        h.set_exemplar(0.9, Some(1.5e9), &[("trace_id", "s")])
            .unwrap();
        let om = area.render_to_string(crate::Format::OpenMetrics).unwrap();
        assert!(
            om.contains("d_bucket{le=\"1.0\"} 3 # {trace_id=\"s\"} 0.9 1500000000.000\n"),
            "{om}"
        );
    }

    /// Buffered: nothing in the area until a flush (or the thread's end),
    /// then exact, both views; 4 threads, exact totals.
    #[test]
    fn buffered_observations_flush_exactly() {
        let area = crate::Area::anonymous(&crate::AreaOptions::with_pages(64)).unwrap();
        let opts = NativeOpts::new().schema(0).buffered(true);
        let f = area
            .registry()
            .native_histogram_with_buckets(crate::Opts::new("b", "B."), opts, &[1.0, 2.0])
            .unwrap();
        let h = f.get().unwrap();
        assert!(!h.series.eager);
        for v in [0.5, 1.5, 3.0] {
            h.observe(v).unwrap();
        }
        assert_eq!(h.get(), (0, 0.0));
        crate::flush();
        assert_eq!(h.get(), (3, 5.0));
        std::thread::scope(|s| {
            for _ in 0..4 {
                let h = h.clone();
                s.spawn(move || {
                    for k in 0..1000 {
                        h.observe([0.5, 1.5, 3.0, -1.0][k % 4]).unwrap();
                    }
                });
            }
        });
        crate::flush();
        assert_eq!(h.get(), (4003, 5.0 + 4.0 * 250.0 * 4.0));
        let m = pb(&area)
            .into_iter()
            .find(|f| f.name() == "b")
            .unwrap()
            .metric[0]
            .histogram
            .clone()
            .unwrap();
        let classic: Vec<(f64, u64)> = m
            .bucket
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect();
        // <= 1: 0.5 and -1 (1 + 2000); <= 2: and 1.5 (+ 1001).
        assert_eq!(classic, [(1.0, 2001), (2.0, 3002)]);
        // Schema 0: 0.5 -> -1, 1.5 -> 1, 3 -> 2; -1 -> negative 0.
        assert_eq!(m.positive_delta, [1001, -1001, 1001, 0]);
        assert_eq!(m.negative_delta, [1000]);
    }

    /// A render reduces the schema of a series with more populated buckets
    /// than the family's maximum; the cells keep theirs.
    #[test]
    fn render_reduces_to_max_buckets() {
        let area = crate::Area::anonymous(&crate::AreaOptions::with_pages(64)).unwrap();
        let opts = NativeOpts::new().schema(0).max_buckets(2);
        let h = area
            .registry()
            .native_histogram(crate::Opts::new("r", "h"), opts)
            .unwrap()
            .get()
            .unwrap();
        for v in [1.0, 2.0, 4.0] {
            h.observe(v).unwrap();
        }
        let fams = pb(&area);
        let m = fams.iter().find(|f| f.name() == "r").unwrap().metric[0]
            .histogram
            .as_ref()
            .unwrap();
        // Buckets 0, 1, 2 at schema 0 are 0 and 1 at schema -1.
        assert_eq!(m.schema(), -1);
        assert_eq!(m.positive_delta, [1, 1]);
        assert_eq!(m.positive_span[0].offset(), 0);
        h.observe(0.3).unwrap();
        let fams = pb(&area);
        let m = fams.iter().find(|f| f.name() == "r").unwrap().metric[0]
            .histogram
            .clone()
            .unwrap();
        // Buckets -1, 0, 1, 2 at schema 0 are 0 (2) and 1 (2) at schema -1.
        assert_eq!((m.schema(), m.positive_delta.as_slice()), (-1, &[2, 0][..]));
        assert_eq!(m.sample_count(), 4);
    }

    /// The same name with other native parameters is another family.
    #[test]
    fn other_parameters_are_a_shape_mismatch() {
        let area = crate::Area::anonymous(&crate::AreaOptions::with_pages(64)).unwrap();
        let reg = area.registry();
        reg.native_histogram(crate::Opts::new("m", "h"), NativeOpts::new())
            .unwrap();
        reg.native_histogram(crate::Opts::new("m", "h"), NativeOpts::new())
            .unwrap();
        let err = reg
            .native_histogram(crate::Opts::new("m", "h"), NativeOpts::new().schema(2))
            .unwrap_err();
        assert!(
            err.to_string().contains("native histogram [schema"),
            "{err}"
        );
        assert!(reg.histogram(crate::Opts::new("m", "h"), &[1.0]).is_err());
    }

    #[test]
    fn reduction_merges_pairs_until_it_fits() {
        // Schema 2 buckets -3..=4 on the positive side, 1 and 2 negative.
        let mut pos: Vec<(i32, u64)> = (-3..=4).map(|i| (i, (i + 10) as u64)).collect();
        let mut neg = vec![(1, 5), (2, 6)];
        assert_eq!(reduce(2, &mut pos.clone(), &mut neg.clone(), 0), 2);
        assert_eq!(reduce(2, &mut pos.clone(), &mut neg.clone(), 10), 2);
        let total: u64 = pos.iter().chain(&neg).map(|b| b.1).sum();
        // 10 buckets > 6: schema 1 gives pos -1,0,1,2 (4) and neg 1 (1) = 5.
        assert_eq!(reduce(2, &mut pos, &mut neg, 6), 1);
        // Bucket j at schema 1 merges 2j-1 and 2j at schema 2.
        assert_eq!(pos, [(-1, 15), (0, 19), (1, 23), (2, 27)]);
        assert_eq!(neg, [(1, 11)]);
        assert_eq!(pos.iter().chain(&neg).map(|b| b.1).sum::<u64>(), total);
        // Never below -4.
        let mut wide: Vec<(i32, u64)> = (0..100).map(|i| (i * 1000, 1)).collect();
        assert_eq!(reduce(3, &mut wide, &mut Vec::new(), 1), MIN_SCHEMA);
        assert_eq!(wide.iter().map(|b| b.1).sum::<u64>(), 100);
    }
}
