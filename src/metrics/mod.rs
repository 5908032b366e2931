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
use crate::area::{AreaInner, SeriesLiveness};
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
    /// Its liveness check (`off` and `gen`), the record's words checked once.
    live: SeriesLiveness,
    /// Its thread-buffer id.
    buffer: BufferId,
    /// Its label values (constant labels included), shared with its handles.
    values: Arc<[Box<str>]>,
    /// Its key: the caller's values (constant labels excluded) as words.
    words: ValueWords,
}

impl Cached {
    /// Whether it is the series of the caller's `values` (key `key`; the
    /// family has `n_const` constant labels) and still live in the area.
    #[inline(always)]
    fn is(&self, key: &ValueWords, values: &[&str], n_const: usize) -> bool {
        self.words.same_words(key)
            && (key.whole() || self.same_values(values, n_const))
            // SAFETY: the family that holds this cache holds its area.
            && unsafe { self.live.is_live() }
    }

    /// Whether its values past the `n_const` constant ones are `values`
    /// (for keys too long to be kept whole).
    #[cold]
    fn same_values(&self, values: &[&str], n_const: usize) -> bool {
        let own = &self.values[n_const.min(self.values.len())..];
        own.len() == values.len() && own.iter().zip(values).all(|(a, b)| a[..] == b[..])
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
    /// Its liveness check (`off` and `gen`), the record's words checked once.
    live: SeriesLiveness,
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
    #[inline]
    pub(crate) fn is_live(&self) -> bool {
        // SAFETY: `self.family` holds the area the check was made in.
        unsafe { self.live.is_live() }
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

/// Key words kept whole in a [`ValueWords`].
const KEY_WORDS: usize = 4;

/// The key of the process-local series cache: the caller's label values
/// (constant labels, the same for every series of a family, left out)
/// encoded as machine words, one-to-one (equal words, equal values): a
/// value of fewer than 8 bytes is one word (its length in the low byte, its
/// bytes above), a longer one a word `8 | len << 8` and its bytes, 8 a word,
/// the last zero-padded. A hit compares words, never text, when they fit in
/// `KEY_WORDS`; the hash of all of them indexes the map (not the FNV hash
/// stored in the area, which a hit does not need).
#[derive(Clone, Copy, Debug)]
struct ValueWords {
    /// The first `KEY_WORDS` words, 0 past `n`.
    w: [u64; KEY_WORDS],
    /// How many words the encoding has (more than `KEY_WORDS`: only the
    /// first are kept, and a hit compares the values' text too).
    n: usize,
    /// Hash of every word.
    hash: u64,
}

impl ValueWords {
    /// The key of `values`. A short value (the common case) is one word
    /// kept in registers; a longer one goes through [`long_value`](Self::long_value).
    #[inline(always)]
    fn of(values: &[&str]) -> ValueWords {
        let mut k = ValueWords::EMPTY;
        k.fill(values);
        k
    }

    /// Make this empty key (all zero) the key of `values`: in place, so
    /// that a caller's key is never copied.
    #[inline(always)]
    fn fill(&mut self, values: &[&str]) {
        let k = self;
        let (mut n, mut hash) = (0, 0);
        for v in values {
            let b = v.as_bytes();
            match k.w.get_mut(n) {
                Some(slot) if b.len() < 8 => {
                    let w = b.len() as u64 | short_word(b) << 8;
                    *slot = w;
                    n += 1;
                    hash = mix(hash, w);
                }
                _ => (n, hash) = k.long_value(n, hash, b),
            }
        }
        // Fold the high bits down: the map indexes buckets by the low bits.
        let m = u128::from(hash).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        k.n = n;
        k.hash = (m as u64) ^ ((m >> 64) as u64);
    }

    /// The key of no values, to [`fill`](Self::fill).
    const EMPTY: ValueWords = ValueWords {
        w: [0; KEY_WORDS],
        n: 0,
        hash: 0,
    };

    /// Add the words of value `b` to the key's `n` words of hash `hash`
    /// (any length; past `KEY_WORDS` words only counted and hashed).
    /// Returns the new count and hash.
    #[inline(never)]
    fn long_value(&mut self, mut n: usize, mut hash: u64, b: &[u8]) -> (usize, u64) {
        let mut push = |w: u64| {
            if let Some(slot) = self.w.get_mut(n) {
                *slot = w;
            }
            n += 1;
            hash = mix(hash, w);
        };
        let len = b.len();
        if len < 8 {
            push(len as u64 | short_word(b) << 8);
        } else {
            push(8 | (len as u64) << 8);
            let mut words = b.chunks_exact(8);
            for w in &mut words {
                push(word_at(w));
            }
            let rest = words.remainder().len();
            if rest > 0 {
                // The last 8 bytes (overlapping the last whole word), shifted
                // down to the `rest` bytes past it.
                push(word_at(&b[len - 8..]) >> (8 * (8 - rest)));
            }
        }
        (n, hash)
    }

    /// Whether every word is kept (then equal words mean equal values).
    #[inline(always)]
    fn whole(&self) -> bool {
        self.n <= KEY_WORDS
    }

    /// Whether the kept words (and the count) are the same.
    #[inline(always)]
    fn same_words(&self, other: &ValueWords) -> bool {
        self.n == other.n && self.w == other.w
    }
}

/// One step of the key's hash.
#[inline(always)]
fn mix(hash: u64, w: u64) -> u64 {
    (hash.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95)
}

/// The little-endian word of the 8 bytes `b`.
#[inline(always)]
fn word_at(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// The little-endian word of the bytes `b` (fewer than 8), zero-padded,
/// from two loads that may overlap (no byte loop, no `memcpy` call).
#[inline(always)]
fn short_word(b: &[u8]) -> u64 {
    let n = b.len();
    let quad = |at: usize| {
        let mut a = [0u8; 4];
        a.copy_from_slice(&b[at..at + 4]);
        u64::from(u32::from_le_bytes(a))
    };
    if n >= 4 {
        quad(0) | quad(n - 4) << (8 * (n - 4))
    } else if n >= 2 {
        let pair = |at: usize| u64::from(u16::from_le_bytes([b[at], b[at + 1]]));
        pair(0) | pair(n - 2) << (8 * (n - 2))
    } else if n == 1 {
        u64::from(b[0])
    } else {
        0
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
    #[inline(always)]
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

    /// Label values -> series, through the process-local cache first: a
    /// hit (a handle the cache keeps) needs no validation, since the values
    /// of a cached series were validated when it was resolved.
    #[inline(always)]
    pub(crate) fn resolve(self: &Arc<Self>, values: &[&str]) -> Result<Arc<SeriesInner>> {
        let mut key = ValueWords::EMPTY;
        key.fill(values);
        if let Some(Some(s)) = self.find(&key, values, |c| c.kept.clone()) {
            return Ok(s);
        }
        self.resolve_slow(&key, values)
    }

    /// `f` of the live cached series of the caller's `values` (key `key`),
    /// run under the cache's read lock. `f` must not lock or allocate: a
    /// thread buffer's lock (taken on a thread's first touch of a series)
    /// comes before the cache locks in the fork handlers' order, so it is
    /// never taken under one.
    #[inline(always)]
    fn find<R>(
        &self,
        key: &ValueWords,
        values: &[&str],
        f: impl FnOnce(&Cached) -> R,
    ) -> Option<R> {
        let cache = self
            .cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = cache.by_key.get(&key.hash)?;
        let n_const = self.const_values.len();
        list.iter().find(|c| c.is(key, values, n_const)).map(f)
    }

    /// `add` (a `buffer::try_add_*`) on the buffer id of the series of
    /// `values` if the cache has the series: what it returns, `false`
    /// otherwise, adding nothing (update through a handle then). The buffer
    /// id is found under the cache's read lock and the add made after it is
    /// released; no handle, no reference count.
    #[inline]
    pub(crate) fn try_buffered(&self, values: &[&str], add: impl FnOnce(BufferId) -> bool) -> bool {
        let mut key = ValueWords::EMPTY;
        key.fill(values);
        match self.find(&key, values, |c| c.buffer) {
            Some(buffer) => add(buffer),
            None => false,
        }
    }

    /// `resolve` past a hit on a kept handle: validate, then a cached
    /// series without a kept handle, or the area's index.
    #[inline(never)]
    fn resolve_slow(
        self: &Arc<Self>,
        key: &ValueWords,
        values: &[&str],
    ) -> Result<Arc<SeriesInner>> {
        let all = self.full_values(values)?;
        let cached = self.find(key, values, |c| {
            (c.handle.upgrade(), c.off, c.gen, c.buffer, c.values.clone())
        });
        if let Some((handle, off, gen, buffer, values)) = cached {
            return match handle {
                Some(s) => Ok(s),
                None => self.handle(off, gen, buffer, values),
            };
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
        let live = series.live;
        let kept = (self.users.load(Ordering::Relaxed) > 0).then(|| series.clone());
        let list = cache.by_key.entry(key.hash).or_default();
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
                live,
                buffer,
                values,
                words: *key,
            }),
        }
        Ok(series)
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
        let (gen_ptr, live) = match (
            self.area.u64_at(off + crate::area::format::rec::GEN),
            self.area.series_liveness(off, gen),
            dead.then_some(()).map_or_else(
                || {
                    self.area
                        .u64_at(cells + 8 * n_cells.saturating_sub(1))
                        .map(|_| ())
                },
                Some,
            ),
        ) {
            (Some(g), Some(live), Some(_)) => (g as *const AtomicU64, live),
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
            live,
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
        cache.by_key.remove(&ValueWords::of(values).hash);
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
    use super::ValueWords;
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

    /// Equal words only for equal values: lengths and boundaries are part
    /// of the encoding, and values too long to keep whole keep their hash
    /// apart (a hit on them compares the text too).
    #[test]
    fn value_words_are_one_to_one() {
        let long = "/api/item/12345678/detail";
        let sets: &[&[&str]] = &[
            &[],
            &[""],
            &["", ""],
            &["a"],
            &["a", ""],
            &["", "a"],
            &["ab", "c"],
            &["a", "bc"],
            &["GET", "200"],
            &["GET", "201"],
            &["1234567"],
            &["12345678"],
            &["1234567\0"],
            &["12345678", ""],
            &["/api/item/12345678"],
            &["/api/item/12345679"],
            &[long],
            &[long, "x"],
        ];
        for (i, a) in sets.iter().enumerate() {
            for (j, b) in sets.iter().enumerate() {
                let (ka, kb) = (ValueWords::of(a), ValueWords::of(b));
                let same = ka.same_words(&kb) && (ka.whole() || ka.hash == kb.hash);
                assert_eq!(same, i == j, "{a:?} {b:?}");
            }
        }
        // The words are the zero-padded little-endian bytes.
        let fold = |b: &[u8]| b.iter().rev().fold(0u64, |w, &x| w << 8 | u64::from(x));
        let text = b"0123456789abcdefghij";
        for n in 0..8 {
            assert_eq!(super::short_word(&text[..n]), fold(&text[..n]), "{n}");
        }
        for n in 8..text.len() {
            let k = ValueWords::of(&[std::str::from_utf8(&text[..n]).unwrap()]);
            let mut want = vec![8 | (n as u64) << 8];
            want.extend(text[..n].chunks(8).map(fold));
            assert_eq!(k.n, want.len(), "{n}");
            assert_eq!(
                &k.w[..k.n.min(super::KEY_WORDS)],
                &want[..k.n.min(super::KEY_WORDS)]
            );
        }
        assert!(ValueWords::of(&["GET", "200"]).whole());
        assert!(!ValueWords::of(&[long]).whole());
    }
}
