//! Metric types. A [`Family`] is a registered metric with its label names;
//! `family.labels(values)` resolves (once, validating) a series handle —
//! [`Counter`], [`Gauge`], [`Histogram`], [`Summary`], [`Info`] or
//! [`StateSet`] — whose updates are the fast path.

pub mod counter;
pub mod gauge;
pub mod histogram;
pub mod info;
pub(crate) mod shape;
pub mod sketch;
pub mod stateset;
pub mod summary;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use counter::Counter;
pub use gauge::{Gauge, GaugeMode};
pub use histogram::{exponential_buckets, linear_buckets, Histogram, DEFAULT_BUCKETS};
pub use info::Info;
pub use stateset::StateSet;
pub use summary::{Summary, SummaryOpts};

use crate::area::format::{KIND_SERIES, STATE_LIVE};
use crate::area::AreaInner;
use crate::encoding::MetricType;
use crate::error::{Error, Result};
use shape::Shape;

/// A family registered in an area, shared by every clone and every
/// `register` call for the same name in this process.
pub(crate) struct FamilyInner {
    pub area: Arc<AreaInner>,
    /// Offset of the family record.
    pub off: usize,
    pub shape: Shape,
    /// Updates go straight to the area instead of the thread-local buffer.
    pub eager: bool,
    /// Constant labels of the registry that registered it (values, in order).
    pub const_values: Vec<String>,
    /// Process-local cache: label-values hash -> series.
    cache: parking_lot::RwLock<HashMap<u64, Vec<Arc<SeriesInner>>, BuildHasherDefault<IdHasher>>>,
}

/// A resolved series: where its cells are, and how to find its buffer.
/// Internal; public only because handles are built from it.
#[doc(hidden)]
pub struct SeriesInner {
    pub(crate) family: Arc<FamilyInner>,
    /// Offset of the series record.
    pub(crate) off: usize,
    /// Offset of its first value cell.
    pub(crate) cells: usize,
    /// Process-wide id used to index thread-local buffers.
    pub(crate) local_id: u32,
    /// Copy of `family.eager`, one load closer to the hot path.
    pub(crate) eager: bool,
    /// Number of value cells.
    pub(crate) n_cells: usize,
    /// Label values (constant labels included).
    pub(crate) values: Box<[Box<str>]>,
}

impl SeriesInner {
    /// Cell `i` of the series (bounds were checked when it was resolved).
    #[inline]
    pub(crate) fn cell(&self, i: usize) -> Option<&AtomicU64> {
        self.family.area.u64_at(self.cells + i * 8)
    }

    /// Whether the series is still live (not removed or cleared).
    pub(crate) fn is_live(&self) -> bool {
        self.family.area.record_state(self.off, KIND_SERIES) == Some(STATE_LIVE)
    }

    pub(crate) fn area(&self) -> &AreaInner {
        &self.family.area
    }
}

/// Hasher for keys that are already hashes.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Add `v` to the f64 stored in `cell` (compare-exchange loop).
#[inline]
pub(crate) fn atomic_add_f64(cell: &AtomicU64, v: f64) {
    let mut cur = cell.load(Ordering::Relaxed);
    loop {
        let new = (f64::from_bits(cur) + v).to_bits();
        match cell.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(x) => cur = x,
        }
    }
}

/// A metric type's series handle. Sealed: implemented by the handles of this crate.
pub trait Metric: sealed::Sealed + Clone + Sized {
    /// The type this handle belongs to.
    const TYPE: MetricType;
    #[doc(hidden)]
    fn from_series(series: Arc<SeriesInner>) -> Self;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! metric_handle {
    ($t:ident, $kind:expr) => {
        impl crate::metrics::sealed::Sealed for $t {}
        impl crate::metrics::Metric for $t {
            const TYPE: crate::encoding::MetricType = $kind;
            fn from_series(series: std::sync::Arc<crate::metrics::SeriesInner>) -> Self {
                $t { series }
            }
        }
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("family", &self.series.family.shape.name)
                    .field("labels", &self.series.values)
                    .finish()
            }
        }
    };
}
pub(crate) use metric_handle;

/// A registered metric family of type `M`. Cheap to clone.
pub struct Family<M: Metric> {
    pub(crate) inner: Arc<FamilyInner>,
    _m: PhantomData<fn() -> M>,
}

impl<M: Metric> Clone for Family<M> {
    fn clone(&self) -> Self {
        Family {
            inner: self.inner.clone(),
            _m: PhantomData,
        }
    }
}

impl<M: Metric> std::fmt::Debug for Family<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family")
            .field("name", &self.inner.shape.name)
            .field("type", &self.inner.shape.kind)
            .field("labels", &self.inner.shape.label_names)
            .finish()
    }
}

impl<M: Metric> Family<M> {
    pub(crate) fn new(inner: Arc<FamilyInner>) -> Self {
        Family {
            inner,
            _m: PhantomData,
        }
    }

    /// Full name (prefix and unit included, no `_total`/`_info` suffix).
    pub fn name(&self) -> &str {
        &self.inner.shape.name
    }

    /// The label names the caller supplies (constant labels excluded).
    pub fn label_names(&self) -> &[String] {
        &self.inner.shape.label_names[self.inner.const_values.len()..]
    }

    /// Resolve the series for `values` (in label-name order), creating it in
    /// the area if no process has. Validating and comparatively slow: keep the handle.
    pub fn labels(&self, values: &[&str]) -> Result<M> {
        self.inner.resolve(values).map(M::from_series)
    }

    /// Resolve the series by `(name, value)` pairs, in any order.
    pub fn labels_by_name(&self, pairs: &[(&str, &str)]) -> Result<M> {
        let values = self.inner.order_pairs(pairs)?;
        self.labels(&values)
    }

    /// The series of a family without labels.
    pub fn get(&self) -> Result<M> {
        self.labels(&[])
    }

    /// Remove the series with these label values, in every process.
    /// Handles to it keep working but are no longer rendered; resolving the
    /// same values again creates a fresh series. Returns whether it existed.
    pub fn remove(&self, values: &[&str]) -> Result<bool> {
        self.inner.remove(values)
    }

    /// Remove every series of the family (in every process).
    pub fn clear(&self) -> Result<usize> {
        self.inner.clear()
    }
}

impl FamilyInner {
    pub(crate) fn new(
        area: Arc<AreaInner>,
        off: usize,
        shape: Shape,
        eager: bool,
        const_values: Vec<String>,
    ) -> Self {
        FamilyInner {
            area,
            off,
            shape,
            eager,
            const_values,
            cache: Default::default(),
        }
    }

    fn full_values<'v>(&'v self, values: &[&'v str]) -> Result<Vec<&'v str>> {
        let user = self.shape.label_names.len() - self.const_values.len();
        if values.len() != user {
            return Err(Error::LabelCount {
                expected: user,
                got: values.len(),
            });
        }
        let mut all: Vec<&str> = self.const_values.iter().map(String::as_str).collect();
        all.extend_from_slice(values);
        crate::validate::label_values(self.shape.label_names.len(), &all)?;
        Ok(all)
    }

    fn order_pairs<'p>(&self, pairs: &[(&str, &'p str)]) -> Result<Vec<&'p str>> {
        let names = &self.shape.label_names[self.const_values.len()..];
        if pairs.len() != names.len() {
            return Err(Error::LabelCount {
                expected: names.len(),
                got: pairs.len(),
            });
        }
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            let mut found = pairs.iter().filter(|(k, _)| k == n);
            match (found.next(), found.next()) {
                (Some((_, v)), None) => out.push(*v),
                (Some(_), Some(_)) => return Err(Error::DuplicateLabelName(n.clone())),
                (None, _) => {
                    let unknown = pairs
                        .iter()
                        .find(|(k, _)| !names.iter().any(|n| n == k))
                        .map(|(k, _)| k.to_string())
                        .unwrap_or_else(|| n.clone());
                    return Err(Error::UnknownLabel(unknown));
                }
            }
        }
        Ok(out)
    }

    /// Label values -> series, through the process-local cache first.
    pub(crate) fn resolve(self: &Arc<Self>, values: &[&str]) -> Result<Arc<SeriesInner>> {
        let all = self.full_values(values)?;
        let hash = crate::area::records::hash_strings(all.iter().copied());
        {
            let cache = self.cache.read();
            if let Some(list) = cache.get(&hash) {
                for s in list {
                    if s.values.len() == all.len()
                        && s.values.iter().zip(&all).all(|(a, b)| &**a == *b)
                        && s.is_live()
                    {
                        return Ok(s.clone());
                    }
                }
            }
        }
        let series = crate::registry::resolve_series(self, &all, hash)?;
        let mut cache = self.cache.write();
        let list = cache.entry(hash).or_default();
        list.retain(|s| s.is_live());
        if !list.iter().any(|s| Arc::ptr_eq(s, &series)) {
            list.push(series.clone());
        }
        Ok(series)
    }

    fn remove(self: &Arc<Self>, values: &[&str]) -> Result<bool> {
        let all = self.full_values(values)?;
        let hash = crate::area::records::hash_strings(all.iter().copied());
        let removed = crate::registry::remove_series(self, &all, hash)?;
        self.cache.write().remove(&hash);
        Ok(removed)
    }

    fn clear(self: &Arc<Self>) -> Result<usize> {
        let n = crate::registry::clear_family(self)?;
        self.cache.write().clear();
        Ok(n)
    }
}
