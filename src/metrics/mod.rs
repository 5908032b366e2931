//! Metric types. A [`Family`] is a registered metric with its label names;
//! `family.labels(values)` resolves (once, validating) a series handle —
//! [`Counter`], [`Gauge`], [`Histogram`], [`Summary`], [`Info`] or
//! [`StateSet`] — whose updates are the fast path.

pub mod counter;
pub mod exemplar;
pub mod gauge;
pub mod histogram;
pub mod info;
pub mod native;
mod native_bounds;
pub(crate) mod shape;
pub mod sketch;
pub mod stateset;
pub mod summary;
pub(crate) mod view;

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

pub use counter::{Counter, LocalCounter};
pub use gauge::{Gauge, GaugeMode};
pub use histogram::{exponential_buckets, linear_buckets, Histogram, DEFAULT_BUCKETS};
pub use info::Info;
pub use native::{NativeHistogram, NativeOpts};
pub use stateset::StateSet;
pub use summary::{Summary, SummaryOpts};

pub(crate) use crate::area::cells::atomic_add_f64;
use crate::area::AreaInner;
use crate::buffer::BufferId;
use crate::encoding::MetricType;
use crate::error::{Error, Result};
use shape::Shape;

use crate::area::index::{FamilyView, HandedOut, DEAD_GEN};

/// A family registered in an area, shared by every clone and every
/// `register` call for the same name in this process.
pub(crate) struct FamilyInner {
    pub area: Arc<AreaInner>,
    /// Offset of the family record.
    pub off: usize,
    /// Generation of the family record when it was registered: once the
    /// family is unregistered (by any process) the record is no longer LIVE
    /// of this generation (`is_registered`).
    pub gen: u64,
    pub shape: Shape,
    /// Updates go straight to the area instead of the thread-local buffer.
    pub eager: bool,
    /// Constant labels of the registry that registered it (values, in order).
    pub const_values: Vec<String>,
    /// Process-local cache of series and their buffer ids.
    cache: std::sync::RwLock<SeriesCache>,
    /// Some thread buffered an update of one of its series (so dropping the
    /// family must release buffer entries).
    buffered: AtomicBool,
    /// `Family` handles alive: while there is one, the cache keeps a handle
    /// of every series it resolved (see `Cached::kept`).
    users: AtomicUsize,
}

/// The series a family object has resolved in this process.
#[derive(Default)]
struct SeriesCache {
    /// Label-values hash -> the series resolved with them.
    by_key: HashMap<u64, Vec<Cached>, BuildHasherDefault<IdHasher>>,
    /// (Series record offset, generation) -> its thread-buffer id, so that
    /// resolving a series again (its handles were dropped) does not take a
    /// new id. Ids are given back when the series is removed or the family
    /// dropped.
    ids: HashMap<(usize, u64), BufferId>,
    /// Size of `ids` at which the ids of series removed by other processes
    /// are given back.
    sweep_at: usize,
}

/// A series a family resolved in this process: what a handle to it is made
/// of, so that resolving it again after its handles were dropped (the
/// `labels(..).inc()` pattern) needs no lookup in the area's index.
struct Cached {
    /// A handle the cache keeps while a `Family` handle is alive, so that
    /// `labels(..)` hands it out again without allocating. Dropped with the
    /// last `Family` handle: the series' handles keep their family alive,
    /// so a kept handle with no `Family` handle left would be a cycle.
    kept: Option<Arc<SeriesInner>>,
    /// A handle still alive, if any (when none is kept). Weak, so that
    /// series and family do not keep each other alive.
    handle: Weak<SeriesInner>,
    /// Offset and generation of the series record.
    off: usize,
    gen: u64,
    /// Its thread-buffer id.
    buffer: BufferId,
    /// Its label values (constant labels included), shared with its handles.
    values: Arc<[Box<str>]>,
}

impl Cached {
    /// Whether it is the series of `values` and still live in the area.
    #[inline]
    fn is(&self, area: &AreaInner, values: &[&str]) -> bool {
        self.values.len() == values.len()
            && self.values.iter().zip(values).all(|(a, b)| same_text(a, b))
            && area.series_live(self.off, self.gen)
    }
}

impl SeriesCache {
    /// The buffer id of the series at `off`, taken on first use; gives back
    /// (amortized) the ids of series that are no longer live.
    fn id_for(&mut self, area: &AreaInner, off: usize, gen: u64) -> BufferId {
        if let Some(&b) = self.ids.get(&(off, gen)) {
            return b;
        }
        if self.ids.len() >= self.sweep_at {
            self.give_back(|o, g| !area.series_live(o, g));
            self.sweep_at = (self.ids.len() * 2).max(64);
        }
        let b = crate::buffer::take_id();
        self.ids.insert((off, gen), b);
        b
    }

    /// Give back the ids of the series `gone` selects.
    fn give_back(&mut self, gone: impl Fn(usize, u64) -> bool) {
        let mut back = Vec::new();
        self.ids.retain(|&(off, gen), b| {
            let keep = !gone(off, gen);
            if !keep {
                back.push(*b);
            }
            keep
        });
        crate::buffer::give_back_ids(back);
    }
}

/// A resolved series: where its cells are, and how to find its buffer.
/// Internal; public only because handles are built from it.
#[doc(hidden)]
pub struct SeriesInner {
    pub(crate) family: Arc<FamilyInner>,
    /// Offset of the series record.
    pub(crate) off: usize,
    /// The record's generation when the series was resolved: once the
    /// record is freed (the series removed) it differs, and every write
    /// through this handle does nothing.
    pub(crate) gen: u64,
    /// Offset of its first value cell.
    pub(crate) cells: usize,
    /// The record's generation word (record offset 8) in the mapping, from
    /// which its cells follow (at +32 bytes): checked to be inside the
    /// mapping, with all `n_cells` cells, when the series was resolved.
    gen_ptr: *const AtomicU64,
    /// Where its cells sit in the thread-local buffers.
    pub(crate) buffer: BufferId,
    /// Copy of `family.eager`, one load closer to the hot path.
    pub(crate) eager: bool,
    /// Number of value cells.
    pub(crate) n_cells: usize,
    /// Label values (constant labels included).
    pub(crate) values: Arc<[Box<str>]>,
}

impl SeriesInner {
    /// Cell `i` of the series, `None` once the series was removed (its
    /// record's generation moved on: the record may belong to another
    /// series now). One load of the generation, next to the cells.
    #[inline]
    pub(crate) fn cell(&self, i: usize) -> Option<&AtomicU64> {
        // SAFETY: `gen_ptr` is an 8-aligned word of the mapping (checked
        // when resolved), which lives as long as `self.family.area`.
        let gen = unsafe { &*self.gen_ptr };
        if gen.load(Ordering::Acquire) != self.gen || i >= self.n_cells {
            return None;
        }
        #[cfg(feature = "test-hooks")]
        crate::area::__write_hook::after_check();
        // SAFETY: cells `0..n_cells` follow the generation word at +32
        // bytes and were checked to be inside the mapping when resolved.
        Some(unsafe { &*self.gen_ptr.add(CELLS_AFTER_GEN + i) })
    }

    /// Announce a write to the series' cells (`area::epoch`): hold the guard
    /// from before the first `cell` until after the last store.
    #[inline(always)]
    pub(crate) fn writing(&self) -> crate::area::WriteGuard<'_> {
        self.family.area.begin_write()
    }

    /// Whether the series is still live (not removed or cleared).
    pub(crate) fn is_live(&self) -> bool {
        self.family.area.series_live(self.off, self.gen)
    }

    pub(crate) fn area(&self) -> &AreaInner {
        &self.family.area
    }
}

impl crate::buffer::BufferedSeries for SeriesInner {
    #[inline(always)]
    fn buffer_id(&self) -> BufferId {
        self.buffer
    }

    #[inline(always)]
    fn cell(&self, i: usize) -> Option<&AtomicU64> {
        SeriesInner::cell(self, i)
    }

    fn is_live(&self) -> bool {
        SeriesInner::is_live(self)
    }

    #[inline(always)]
    fn writing(&self) -> crate::area::WriteGuard<'_> {
        SeriesInner::writing(self)
    }

    fn place(&self) -> crate::buffer::SeriesPlace {
        self.family.note_buffered();
        crate::buffer::SeriesPlace {
            area: self.family.area.clone(),
            family: Arc::as_ptr(&self.family) as usize,
            off: self.off,
            gen: self.gen,
            cells_off: self.cells,
            n_cells: self.n_cells,
        }
    }
}

// SAFETY: `gen_ptr` points into the shared mapping, which is only accessed
// through atomics and is kept alive by `family.area`; nothing is tied to the
// thread that resolved the series.
unsafe impl Send for SeriesInner {}
// SAFETY: as for `Send`.
unsafe impl Sync for SeriesInner {}

/// Cells start this many u64 words after a series' generation word.
const CELLS_AFTER_GEN: usize =
    (crate::area::format::ser::CELLS - crate::area::format::rec::GEN) / 8;

/// `a == b`, short label values compared inline (most are a few bytes: a
/// `memcmp` call costs more than the compare).
#[inline]
fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len()
        && if a.len() <= 16 {
            a.iter().zip(b).all(|(x, y)| x == y)
        } else {
            a == b
        }
}

/// Key of the process-local series cache: a fast word-at-a-time hash of the
/// label values (lengths included), not the FNV hash stored in the area,
/// which a hit does not need. Collisions only cost a compare.
#[inline]
fn cache_key(values: &[&str]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = values.len() as u64;
    let mut eat = |w: u64| h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    for v in values {
        let b = v.as_bytes();
        eat(b.len() as u64);
        let mut words = b.chunks_exact(8);
        for w in &mut words {
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            eat(u64::from_le_bytes(a));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            // The little-endian word of the zero-padded tail, byte by byte
            // (a copy of a variable length is a `memcpy` call).
            eat(rest.iter().rev().fold(0, |w, &b| w << 8 | u64::from(b)));
        }
    }
    // Fold the high bits down: the map indexes buckets by the low bits.
    let m = u128::from(h).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (m as u64) ^ ((m >> 64) as u64)
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

/// Run `f` and hand its duration in seconds to `observe`.
pub(crate) fn timed<T>(f: impl FnOnce() -> T, observe: impl FnOnce(f64)) -> T {
    let start = std::time::Instant::now();
    let out = f();
    observe(start.elapsed().as_secs_f64());
    out
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
///
/// ```
/// use promshm::{Area, AreaOptions, Opts};
///
/// let area = Area::anonymous(&AreaOptions::default())?;
/// let requests = area
///     .registry()
///     .counter(Opts::new("requests", "Requests.").labels(&["method", "code"]))?;
/// let ok = requests.labels(&["GET", "200"])?; // resolve once, keep the handle
/// ok.inc();
/// let same = requests.labels_by_name(&[("code", "200"), ("method", "GET")])?;
/// promshm::flush();
/// assert_eq!(same.get(), 1.0);
/// assert!(requests.labels(&["GET"]).is_err()); // one value per label name
/// assert!(requests.remove(&["GET", "200"])?);
/// # Ok::<(), promshm::Error>(())
/// ```
pub struct Family<M: Metric> {
    pub(crate) inner: Arc<FamilyInner>,
    _m: PhantomData<fn() -> M>,
}

impl<M: Metric> Clone for Family<M> {
    fn clone(&self) -> Self {
        Family::new(self.inner.clone())
    }
}

impl<M: Metric> Drop for Family<M> {
    fn drop(&mut self) {
        self.inner.family_handle_dropped();
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
        inner.users.fetch_add(1, Ordering::Relaxed);
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
    /// Handles to it keep working but update nothing and read zero (its
    /// record is freed and may be reused by another series, which they
    /// never touch); resolving the same values again creates a fresh
    /// series. Returns whether it existed.
    pub fn remove(&self, values: &[&str]) -> Result<bool> {
        self.inner.remove(values)
    }

    /// Remove every series of the family (in every process).
    pub fn clear(&self) -> Result<usize> {
        self.inner.clear()
    }

    /// Whether the family is still registered in the area: `false` once
    /// any process unregistered it ([`Registry::unregister`](crate::Registry::unregister)).
    pub fn is_registered(&self) -> bool {
        self.inner.is_registered()
    }
}

impl FamilyInner {
    pub(crate) fn new(
        area: Arc<AreaInner>,
        (off, gen): (usize, u64),
        shape: Shape,
        eager: bool,
        const_values: Vec<String>,
    ) -> Self {
        FamilyInner {
            area,
            off,
            gen,
            shape,
            eager,
            const_values,
            cache: Default::default(),
            buffered: AtomicBool::new(false),
            users: AtomicUsize::new(0),
        }
    }

    /// Whether the family is still registered in the area (no process
    /// unregistered it).
    #[inline]
    pub(crate) fn is_registered(&self) -> bool {
        self.area.family_live(self.off, self.gen)
    }

    /// The family was unregistered (see `Registry::unregister`): forget
    /// the series this process resolved, give back their buffer ids.
    pub(crate) fn forget_resolved(&self) {
        let mut cache = self
            .cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.by_key.clear();
        let area = &self.area;
        cache.give_back(|o, g| !area.series_live(o, g));
    }

    /// A thread is about to buffer an update of one of its series.
    pub(crate) fn note_buffered(&self) {
        if !self.buffered.load(Ordering::Relaxed) {
            self.buffered.store(true, Ordering::Relaxed);
        }
    }

    /// Constant label values followed by `values`, checked. Borrows
    /// `values` when there are no constant labels (no allocation).
    fn full_values<'a, 'v: 'a>(&'v self, values: &'a [&'v str]) -> Result<Cow<'a, [&'v str]>> {
        let user = self.shape.label_names.len() - self.const_values.len();
        if values.len() != user {
            return Err(Error::LabelCount {
                expected: user,
                got: values.len(),
            });
        }
        let all = if self.const_values.is_empty() {
            Cow::Borrowed(values)
        } else {
            let mut all: Vec<&str> = self.const_values.iter().map(String::as_str).collect();
            all.extend_from_slice(values);
            Cow::Owned(all)
        };
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

    /// The family as the area's series index sees it.
    pub(crate) fn index_view(&self) -> FamilyView<'_> {
        FamilyView {
            area: &self.area,
            off: self.off,
            gen: self.gen,
            shape: &self.shape,
            decode: shape::decode_family,
        }
    }

    /// A `Family` handle is gone; with the last one the cache lets go of
    /// the handles it kept. Only the last drop takes the cache lock, and it
    /// checks again under it (where `resolve` decides whether to keep one)
    /// that no handle was made meanwhile.
    fn family_handle_dropped(&self) {
        if self.users.fetch_sub(1, Ordering::Relaxed) != 1 {
            return;
        }
        let mut cache = self
            .cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.users.load(Ordering::Relaxed) != 0 {
            return;
        }
        let kept: Vec<Arc<SeriesInner>> = cache
            .by_key
            .values_mut()
            .flat_map(|list| list.iter_mut().filter_map(|c| c.kept.take()))
            .collect();
        drop(cache);
        drop(kept);
    }

    /// Label values -> series, through the process-local cache first.
    pub(crate) fn resolve(self: &Arc<Self>, values: &[&str]) -> Result<Arc<SeriesInner>> {
        if let Some(s) = self.kept(values) {
            return Ok(s);
        }
        let all = self.full_values(values)?;
        let key = cache_key(&all);
        {
            let cache = self
                .cache
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(c) = cache
                .by_key
                .get(&key)
                .and_then(|list| list.iter().find(|c| c.is(&self.area, &all)))
            {
                if let Some(s) = &c.kept {
                    return Ok(s.clone());
                }
                return match c.handle.upgrade() {
                    Some(s) => Ok(s),
                    None => self.handle(c.off, c.gen, c.buffer, c.values.clone()),
                };
            }
        }
        // Miss: the area's own (FNV) hash, computed only here.
        let hash = crate::area::records::hash_strings(all.iter().copied());
        let (off, gen) = crate::area::index::resolve_series(&self.index_view(), &all, hash)?;
        let mut cache = self
            .cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let buffer = cache.id_for(&self.area, off, gen);
        let values: Arc<[Box<str>]> = all.iter().map(|v| Box::<str>::from(*v)).collect();
        let series = self.handle(off, gen, buffer, values.clone())?;
        let kept = (self.users.load(Ordering::Relaxed) > 0).then(|| series.clone());
        let list = cache.by_key.entry(key).or_default();
        list.retain(|c| self.area.series_live(c.off, c.gen));
        match list.iter_mut().find(|c| c.off == off && c.gen == gen) {
            Some(c) => {
                c.handle = Arc::downgrade(&series);
                c.kept = kept;
            }
            None => list.push(Cached {
                kept,
                handle: Arc::downgrade(&series),
                off,
                gen,
                buffer,
                values,
            }),
        }
        Ok(series)
    }

    /// The hit of `resolve` for a family without constant labels, as a
    /// handle the cache keeps: no `Result` or `Cow` to build, and values of
    /// any length can only match values the slow path accepted.
    #[inline]
    fn kept(&self, values: &[&str]) -> Option<Arc<SeriesInner>> {
        if !self.const_values.is_empty() {
            return None;
        }
        let cache = self
            .cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = cache.by_key.get(&cache_key(values))?;
        let c = list.iter().find(|c| c.is(&self.area, values))?;
        c.kept.clone()
    }

    /// A handle to the series record at `off` (generation `gen`), checked
    /// to fit the area with all its cells.
    fn handle(
        self: &Arc<Self>,
        off: usize,
        gen: u64,
        buffer: BufferId,
        values: Arc<[Box<str>]>,
    ) -> Result<Arc<SeriesInner>> {
        let n_cells = self.shape.n_cells(self.area.max_workers());
        let cells = off + crate::area::format::ser::CELLS;
        // A series of an unregistered family: its generation word (the
        // family record's) never holds `DEAD_GEN`, so no cell is ever used.
        let dead = gen == DEAD_GEN;
        let gen_ptr = match (
            self.area.u64_at(off + crate::area::format::rec::GEN),
            dead.then_some(()).map_or_else(
                || {
                    self.area
                        .u64_at(cells + 8 * n_cells.saturating_sub(1))
                        .map(|_| ())
                },
                Some,
            ),
        ) {
            (Some(g), Some(_)) => g as *const AtomicU64,
            _ => {
                return Err(Error::CorruptArea(format!(
                    "series record at {off} does not fit the area"
                )))
            }
        };
        Ok(Arc::new(SeriesInner {
            family: self.clone(),
            off,
            gen,
            cells,
            gen_ptr,
            buffer,
            eager: self.eager,
            n_cells,
            values,
        }))
    }

    fn remove(self: &Arc<Self>, values: &[&str]) -> Result<bool> {
        let all = self.full_values(values)?;
        let hash = crate::area::records::hash_strings(all.iter().copied());
        let removed = crate::area::index::remove_series(&self.index_view(), &all, hash)?;
        let mut cache = self
            .cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.by_key.remove(&cache_key(&all));
        if let Some((off, gen)) = removed {
            cache.give_back(|o, g| o == off && g == gen);
        }
        Ok(removed.is_some())
    }

    fn clear(self: &Arc<Self>) -> Result<usize> {
        let n = crate::area::index::clear_family(&self.index_view())?;
        let mut cache = self
            .cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.by_key.clear();
        let area = &self.area;
        cache.give_back(|o, g| !area.series_live(o, g));
        Ok(n)
    }
}

impl HandedOut for FamilyInner {
    /// Write-lock the series cache for `fork` (see `area::fork`).
    unsafe fn hold_for_fork(&self) {
        let cache = self
            .cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // SAFETY: per this function's contract, `self` outlives the guard's
        // stay in the fork handlers' list.
        unsafe { crate::area::fork::hold(cache) };
    }
}

impl Drop for FamilyInner {
    fn drop(&mut self) {
        // No handle of its series is left: nothing can update them. Flush
        // and drop their buffer entries (which hold the area), and give
        // back their buffer ids.
        if *self.buffered.get_mut() {
            crate::buffer::release_family(self as *const FamilyInner as usize);
        }
        let cache = self
            .cache
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        crate::buffer::give_back_ids(cache.ids.drain().map(|(_, b)| b));
    }
}

#[cfg(test)]
mod tests {
    use super::cache_key;
    use crate::{Area, AreaOptions, Error, Opts};

    /// While a `Family` handle lives, `labels(..)` hands out the same kept
    /// series handle again after the caller dropped its own (no lookup in
    /// the area's index, no allocation); with the last `Family` handle the
    /// cache lets go of it, so nothing keeps the family and area alive.
    #[test]
    fn the_cache_keeps_handles_only_while_a_family_handle_lives() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let f = area
            .registry()
            .counter(Opts::new("kept", "h").labels(&["a", "b"]))
            .unwrap();
        let first = f.labels(&["x", "y"]).unwrap();
        let ptr = std::sync::Arc::as_ptr(&first.series);
        first.inc();
        drop(first);
        let again = f.labels(&["x", "y"]).unwrap();
        assert_eq!(
            std::sync::Arc::as_ptr(&again.series),
            ptr,
            "the kept handle"
        );
        again.inc();
        crate::flush();
        assert_eq!(again.get(), 2.0);
        let weak = std::sync::Arc::downgrade(&again.series);
        let clone = f.clone();
        drop(f);
        assert!(weak.upgrade().is_some(), "a Family clone still lives");
        drop(again);
        drop(clone);
        assert!(weak.upgrade().is_none(), "no cycle keeps the series alive");
        // A family registered again starts keeping handles again.
        let f = area
            .registry()
            .counter(Opts::new("kept", "h").labels(&["a", "b"]))
            .unwrap();
        let s = f.labels(&["x", "y"]).unwrap();
        assert_eq!(s.get(), 2.0);
        let ptr = std::sync::Arc::as_ptr(&s.series);
        drop(s);
        assert_eq!(
            std::sync::Arc::as_ptr(&f.labels(&["x", "y"]).unwrap().series),
            ptr
        );
    }

    #[test]
    fn resolve_through_the_cache() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let reg = area.registry().with_const_labels(&[("env", "p")]).unwrap();
        for (reg, eager) in [(area.registry(), true), (reg, false)] {
            let f = reg
                .counter(
                    Opts::new(format!("c{eager}"), "h")
                        .labels(&["a", "b"])
                        .eager(eager),
                )
                .unwrap();
            let x = f.labels(&["ab", "c"]).unwrap();
            let y = f.labels(&["a", "bc"]).unwrap();
            assert!(!std::sync::Arc::ptr_eq(&x.series, &y.series));
            let x2 = f.labels(&["ab", "c"]).unwrap();
            assert!(std::sync::Arc::ptr_eq(&x.series, &x2.series));
            assert!(matches!(
                f.labels(&["ab"]),
                Err(Error::LabelCount {
                    expected: 2,
                    got: 1
                })
            ));
            x.inc();
            crate::flush();
            assert_eq!(x2.get(), 1.0);
            assert!(f.remove(&["ab", "c"]).unwrap());
            let x3 = f.labels(&["ab", "c"]).unwrap();
            assert!(!std::sync::Arc::ptr_eq(&x.series, &x3.series));
            assert_eq!(x3.get(), 0.0);
            assert_eq!(y.get(), 0.0);
        }
    }

    #[test]
    fn same_text_is_string_equality() {
        let long = "/api/item/12345678/detail";
        for (a, b) in [
            ("", ""),
            ("GET", "GET"),
            ("GET", "GEt"),
            ("GET", "GETS"),
            ("0123456789abcdef", "0123456789abcdeg"),
            (long, long),
            (long, "/api/item/12345678/detaim"),
        ] {
            assert_eq!(super::same_text(a, b), a == b, "{a:?} {b:?}");
        }
    }

    #[test]
    fn cache_key_separates_values() {
        assert_ne!(cache_key(&["ab", "c"]), cache_key(&["a", "bc"]));
        assert_ne!(cache_key(&["", "a"]), cache_key(&["a", ""]));
        assert_ne!(cache_key(&["a"]), cache_key(&["a", ""]));
        assert_ne!(
            cache_key(&["/api/item/12345678"]),
            cache_key(&["/api/item/12345679"])
        );
        assert_eq!(cache_key(&["GET", "200"]), cache_key(&["GET", "200"]));
    }
}
