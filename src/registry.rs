//! Registries: views on an area with an optional prefix (namespace) and
//! constant labels, where families are registered and series resolved.
//!
//! Each process keeps a `LocalIndex` of the records it has seen, caught up
//! incrementally by walking the records added since (records are only ever
//! appended). Lookups never take the area lock; creating a family or series
//! does, after a last catch-up, so two processes never create the same one.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::area::format::*;
use crate::area::records::{hash_strings, Alloc, RecordReader, RecordWriter};
use crate::area::{Area, AreaInner};
use crate::encoding::{Encoder, Format, MetricType};
use crate::error::{Error, Result};
use crate::metrics::shape::Shape;
use crate::metrics::view::read_series_values;
use crate::metrics::{
    Counter, Family, FamilyInner, Gauge, GaugeMode, Histogram, Info, StateSet, Summary, SummaryOpts,
};
use crate::metrics::{NativeHistogram, NativeOpts};
use crate::render::{self, RenderStats};

pub use crate::render::SELF_METRICS_PREFIX;

/// Hashes record offsets (never chosen by a caller) for the index's
/// offset-keyed maps: one multiply instead of SipHash's rounds.
#[derive(Default, Clone, Copy)]
pub(crate) struct OffsetHasher(u64);

impl std::hash::Hasher for OffsetHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        // murmur3's finaliser: every input bit reaches the low bits (the
        // bucket) and the top ones (hashbrown's tag); offsets are multiples of 8.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// A map keyed by record offsets.
type OffsetMap<V> = HashMap<usize, V, std::hash::BuildHasherDefault<OffsetHasher>>;

/// Hashes `(family offset, label hash)` keys from a per-map random seed:
/// the label hash is FNV of caller-given values, so the buckets must not
/// be predictable from them.
#[derive(Clone)]
pub(crate) struct SeededState(u64);

impl Default for SeededState {
    fn default() -> Self {
        use std::hash::BuildHasher;
        SeededState(std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64))
    }
}

impl std::hash::BuildHasher for SeededState {
    type Hasher = OffsetHasher;
    fn build_hasher(&self) -> OffsetHasher {
        OffsetHasher(self.0)
    }
}

/// The series records under one `(family, label hash)` key: almost always
/// one (no allocation), more only for label hashes that collide.
#[derive(Debug, Clone)]
pub(crate) enum Offsets {
    /// One record.
    One(usize),
    /// Colliding records.
    Many(Vec<usize>),
}

impl Offsets {
    fn as_slice(&self) -> &[usize] {
        match self {
            Offsets::One(o) => std::slice::from_ref(o),
            Offsets::Many(v) => v,
        }
    }

    fn push(&mut self, off: usize) {
        match self {
            Offsets::One(o) => *self = Offsets::Many(vec![*o, off]),
            Offsets::Many(v) => v.push(off),
        }
    }

    /// Drop `off`; whether none is left.
    fn remove(&mut self, off: usize) -> bool {
        match self {
            Offsets::One(o) => *o == off,
            Offsets::Many(v) => {
                v.retain(|&o| o != off);
                v.is_empty()
            }
        }
    }
}

/// What this process knows of the area's records.
#[derive(Default)]
pub(crate) struct LocalIndex {
    /// Records before this offset have been indexed.
    scanned: usize,
    /// Family name -> (record offset, generation, shape). A family may be
    /// unregistered by any process: checked (`family_live`) at lookup.
    families: HashMap<String, (usize, u64, Arc<Shape>)>,
    /// Family record offset -> shape.
    by_offset: OffsetMap<Arc<Shape>>,
    /// Every name a family of the area renders (its name plus each of its
    /// type's [`rendered_suffixes`](MetricType::rendered_suffixes)) -> that
    /// family's name; the first family in record order keeps a name.
    rendered: HashMap<String, String>,
    /// Family objects handed out, so that registering again (e.g. once per
    /// request from a dynamic language) reuses one object and its series cache.
    handed_out: HashMap<(usize, bool, Vec<String>), std::sync::Weak<FamilyInner>>,
    /// (family offset, label hash) -> series record offsets.
    series: HashMap<(usize, u64), Offsets, SeededState>,
    /// Series record offset -> its key in `series` (records are reused:
    /// a reused one leaves its old key).
    keys: OffsetMap<(usize, u64)>,
    /// Reuse log entries consumed (see `AreaInner::reuse_log_since`).
    reuse_seq: u64,
    /// Reused records that were still being written at the last catch-up.
    pending: Vec<usize>,
    /// Series seen before their family (a series may reuse space before
    /// its family's record): indexed once the family is.
    orphans: Vec<usize>,
    /// Free list rebuilds seen (`STAT_FREE_REBUILDS`): a rebuild merges
    /// holes, so `scanned` may no longer be a record boundary.
    rebuilds: u64,
}

impl LocalIndex {
    /// The first name a family `name` of type `kind` would render that a
    /// family of another name already renders: `(rendered name, owner)`.
    fn clash(&self, name: &str, kind: MetricType) -> Option<(String, String)> {
        kind.rendered_suffixes().find_map(|sfx| {
            let rendered = format!("{name}{sfx}");
            match self.rendered.get(&rendered) {
                Some(owner) if owner != name => Some((rendered, owner.clone())),
                _ => None,
            }
        })
    }

    /// Whether a family `name` of type `kind` would render a name some
    /// family of the area renders (that family itself included).
    fn taken(&self, name: &str, kind: MetricType) -> bool {
        kind.rendered_suffixes()
            .any(|sfx| self.rendered.contains_key(&format!("{name}{sfx}")))
    }

    /// The family objects of this index that are still alive.
    pub(crate) fn families_handed_out(&self) -> Vec<Arc<FamilyInner>> {
        self.handed_out
            .values()
            .filter_map(std::sync::Weak::upgrade)
            .collect()
    }

    /// Index the records appended since the last call, and those the reuse
    /// log names (reallocated in place). Without the area lock, stop at a
    /// record still being written; under it, skip such records (their
    /// writer died). A log that wrapped since the last call means a re-walk
    /// of every series. `false` if there was nothing new to look at.
    fn catch_up(&mut self, area: &AreaInner, locked: bool) -> bool {
        let (logged, seq) = area.reuse_log_since(self.reuse_seq);
        let rebuilds = area.hdr(hdr::STAT_FREE_REBUILDS).load(Ordering::Acquire);
        if seq == self.reuse_seq
            && rebuilds == self.rebuilds
            && self.pending.is_empty()
            && self.orphans.is_empty()
            && area.cursor() <= self.scanned
        {
            return false;
        }
        let mut redo = std::mem::take(&mut self.pending);
        match logged {
            Some(offs) if rebuilds == self.rebuilds => redo.extend(offs),
            _ => {
                self.rebuilds = rebuilds;
                self.series.clear();
                self.keys.clear();
                redo.clear();
                self.scanned = 0;
            }
        }
        self.reuse_seq = seq;
        let mut values = Vec::new();
        for off in redo {
            self.forget(off);
            let Some(len) = area
                .u32_at(off + 4)
                .map(|l| l.load(Ordering::Relaxed) as usize)
            else {
                continue;
            };
            // A reused record is a series, or a family (`alloc_family`).
            let kind = match area.record_state(off, KIND_FAMILY) {
                Some(_) => KIND_FAMILY,
                None => KIND_SERIES,
            };
            match area.record_state(off, kind) {
                Some(STATE_LIVE) => self.index(
                    area,
                    crate::area::records::Record {
                        off,
                        kind,
                        state: STATE_LIVE,
                        len,
                    },
                    &mut values,
                ),
                Some(STATE_WRITING) if !locked => self.pending.push(off),
                _ => {}
            }
        }
        let end = area.walk(self.scanned, !locked, |rec| {
            if rec.state != STATE_LIVE {
                return;
            }
            self.index(area, rec, &mut values);
        });
        self.scanned = end.end;
        for off in std::mem::take(&mut self.orphans) {
            if let Some(rec) = area.live_record(off, KIND_SERIES) {
                self.index(area, rec, &mut values);
            }
        }
        true
    }

    /// The family `name` of the index if it is still registered in the area
    /// (its record LIVE, of the generation indexed).
    fn live_family(&self, area: &AreaInner, name: &str) -> Option<(usize, u64, Arc<Shape>)> {
        let (off, gen, shape) = self.families.get(name)?;
        area.family_live(*off, *gen)
            .then(|| (*off, *gen, shape.clone()))
    }

    /// Forget the families that a family `name` of type `kind` would meet
    /// (its own name, and the owners of the names it would render) if
    /// they were unregistered (by any process), so their names are free.
    fn prune_dead(&mut self, area: &AreaInner, name: &str, kind: MetricType) {
        let mut owners: Vec<String> = kind
            .rendered_suffixes()
            .filter_map(|sfx| self.rendered.get(&format!("{name}{sfx}")).cloned())
            .collect();
        owners.push(name.to_owned());
        for owner in owners {
            if self.families.contains_key(&owner) && self.live_family(area, &owner).is_none() {
                self.drop_family(&owner);
            }
        }
    }

    /// Forget the family `name` (unregistered): its names, its offset's
    /// shape (unless a newer family holds the offset), its series.
    fn drop_family(&mut self, name: &str) {
        self.rendered.retain(|_, owner| owner != name);
        let Some((off, _, _)) = self.families.remove(name) else {
            return;
        };
        if self.by_offset.get(&off).is_some_and(|s| s.name == name) {
            self.by_offset.remove(&off);
            let offs: Vec<usize> = self
                .series
                .iter()
                .filter(|((fam, _), _)| *fam == off)
                .flat_map(|(_, o)| o.as_slice().to_vec())
                .collect();
            for o in offs {
                self.forget(o);
            }
        }
        self.handed_out.retain(|k, _| k.0 != off);
    }

    /// Index the series record at `off` that this process just created
    /// under the lock, with `(seq, cursor)` the reuse sequence and
    /// allocation cursor before its allocation: if the index was caught up
    /// then, the allocation (a reuse logged or the cursor moved, by this
    /// process alone) needs no second look at the next catch-up.
    fn add_own_series(
        &mut self,
        area: &AreaInner,
        (fam, hash, off): (usize, u64, usize),
        (seq, cursor): (u64, usize),
    ) {
        self.add_series(fam, hash, off);
        let rebuilds = area.hdr(hdr::STAT_FREE_REBUILDS).load(Ordering::Acquire);
        if self.reuse_seq != seq || self.scanned != cursor || self.rebuilds != rebuilds {
            return;
        }
        let now_seq = area.hdr(hdr::REUSE_SEQ).load(Ordering::Acquire);
        let now_cursor = area.cursor();
        if now_seq == seq + 1 || (now_seq == seq && off + 8 <= now_cursor && off >= cursor) {
            self.reuse_seq = now_seq;
            self.scanned = now_cursor;
        }
    }

    /// Drop the series record at `off` from the index.
    fn forget(&mut self, off: usize) {
        if let Some(key) = self.keys.remove(&off) {
            if self.series.get_mut(&key).is_some_and(|o| o.remove(off)) {
                self.series.remove(&key);
            }
        }
    }

    /// Index one LIVE record.
    fn index(
        &mut self,
        area: &AreaInner,
        rec: crate::area::records::Record,
        values: &mut Vec<String>,
    ) {
        {
            match rec.kind {
                KIND_FAMILY => {
                    if let Some(shape) = Shape::decode(area, rec) {
                        let gen = area.generation(rec.off);
                        let shape = Arc::new(shape);
                        // Names of unregistered families are free again.
                        self.prune_dead(area, &shape.name, shape.kind);
                        for sfx in shape.kind.rendered_suffixes() {
                            self.rendered
                                .entry(format!("{}{sfx}", shape.name))
                                .or_insert_with(|| shape.name.clone());
                        }
                        self.by_offset.insert(rec.off, shape.clone());
                        self.families
                            .entry(shape.name.clone())
                            .or_insert((rec.off, gen, shape));
                    }
                }
                KIND_SERIES => {
                    let Some(fam) = area.u32_at(rec.off + ser::FAMILY) else {
                        return;
                    };
                    let fam = fam.load(Ordering::Relaxed) as usize;
                    let Some(shape) = self.by_offset.get(&fam) else {
                        if !self.orphans.contains(&rec.off) {
                            self.orphans.push(rec.off);
                        }
                        return;
                    };
                    if read_series_values(area, rec, shape, values).is_some() {
                        let h = hash_strings(values.iter().map(String::as_str));
                        self.add_series(fam, h, rec.off);
                    }
                }
                _ => {}
            }
        }
    }

    /// Index the series record at `off` under `(fam, hash)`.
    fn add_series(&mut self, fam: usize, hash: u64, off: usize) {
        self.forget(off);
        self.series
            .entry((fam, hash))
            .and_modify(|o| o.push(off))
            .or_insert(Offsets::One(off));
        self.keys.insert(off, (fam, hash));
    }

    /// A live series of `fam` with exactly these values: its offset and
    /// generation (read before the checks and unchanged after them).
    fn find_series(
        &self,
        area: &AreaInner,
        fam: usize,
        values: &[&str],
        hash: u64,
    ) -> Option<(usize, u64)> {
        let shape = self.by_offset.get(&fam)?;
        let n_cells = shape.n_cells(area.max_workers());
        let mut gen = 0;
        let off = self
            .series
            .get(&(fam, hash))?
            .as_slice()
            .iter()
            .copied()
            .find(|&off| {
                gen = area.generation(off);
                if area.record_state(off, KIND_SERIES) != Some(STATE_LIVE)
                    || area
                        .u32_at(off + ser::FAMILY)
                        .map(|f| f.load(Ordering::Relaxed) as usize)
                        != Some(fam)
                {
                    return false;
                }
                let Some(len) = area
                    .u32_at(off + 4)
                    .map(|l| l.load(Ordering::Relaxed) as usize)
                else {
                    return false;
                };
                let rec = crate::area::records::Record {
                    off,
                    kind: KIND_SERIES,
                    state: STATE_LIVE,
                    len,
                };
                let mut r = RecordReader::new(area, rec, ser::CELLS + 8 * n_cells);
                values.iter().all(|v| r.string_eq(v) == Some(true))
                    && area.record_state(off, KIND_SERIES) == Some(STATE_LIVE)
                    && area.generation(off) == gen
            })?;
        Some((off, gen))
    }
}

/// Options common to every metric type.
///
/// ```
/// use promshm::{Area, AreaOptions, Opts, DEFAULT_BUCKETS};
///
/// let area = Area::anonymous(&AreaOptions::default())?;
/// let opts = Opts::new("latency", "Request latency.")
///     .unit("seconds")
///     .labels(&["method"])
///     .eager(true);
/// let latency = area.registry().histogram(opts, &DEFAULT_BUCKETS)?;
/// assert_eq!(latency.name(), "latency_seconds"); // the unit is part of the name
/// assert_eq!(latency.label_names(), ["method"]);
/// # Ok::<(), promshm::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Opts {
    /// Metric name (the registry prefix and the unit are added to it).
    pub name: String,
    /// Help text.
    pub help: String,
    /// Unit, e.g. `seconds` (appended to the name unless already there).
    pub unit: String,
    /// Label names.
    pub labels: Vec<String>,
    /// Write-through instead of thread-local buffering (default: the area's setting).
    pub eager: Option<bool>,
}

impl Opts {
    /// Name and help.
    pub fn new(name: impl Into<String>, help: impl Into<String>) -> Self {
        Opts {
            name: name.into(),
            help: help.into(),
            ..Default::default()
        }
    }

    /// Set the label names.
    pub fn labels(mut self, labels: &[&str]) -> Self {
        self.labels = labels.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Set the unit.
    pub fn unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = unit.into();
        self
    }

    /// Choose eager (write-through) or buffered updates for this family.
    pub fn eager(mut self, eager: bool) -> Self {
        self.eager = Some(eager);
        self
    }
}

/// A view on an area with a prefix and constant labels. Cheap to clone.
///
/// ```
/// use promshm::{Area, AreaOptions, Format, Opts};
///
/// let area = Area::anonymous(&AreaOptions::default())?;
/// let app = area
///     .registry()
///     .with_prefix("app")?
///     .with_const_labels(&[("zone", "eu")])?;
/// app.counter(Opts::new("jobs", "Jobs run."))?.get()?.inc();
/// let text = app.render_to_string(Format::Prometheus)?;
/// assert!(text.contains("app_jobs_total{zone=\"eu\"} 1\n"));
/// # Ok::<(), promshm::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Registry {
    area: Area,
    prefix: String,
    const_labels: Vec<(String, String)>,
    self_metrics: bool,
}

impl Registry {
    /// A registry on `area` with no prefix, no constant labels, and self-metrics on.
    pub fn new(area: &Area) -> Registry {
        Registry {
            area: area.clone(),
            prefix: String::new(),
            const_labels: Vec::new(),
            self_metrics: true,
        }
    }

    /// Prefix every family name with `prefix_` (a namespace). Rendering this
    /// registry shows only its namespace.
    ///
    /// ```
    /// use promshm::{Area, AreaOptions, Format, Opts};
    ///
    /// let area = Area::anonymous(&AreaOptions::default())?;
    /// area.registry().counter(Opts::new("other", "Not in app."))?;
    /// let app = area.registry().with_prefix("app")?;
    /// app.counter(Opts::new("jobs", "Jobs run."))?;
    /// let text = app.render_to_string(Format::Prometheus)?;
    /// assert!(text.contains("app_jobs_total 0\n"));
    /// assert!(!text.contains("other"));
    /// # Ok::<(), promshm::Error>(())
    /// ```
    pub fn with_prefix(mut self, prefix: &str) -> Result<Registry> {
        if !prefix.is_empty() {
            crate::validate::metric_name(prefix)?;
        }
        self.prefix = prefix.to_owned();
        Ok(self)
    }

    /// Add constant labels to every family registered through this registry.
    ///
    /// ```
    /// use promshm::{Area, AreaOptions, Format, Opts};
    ///
    /// let area = Area::anonymous(&AreaOptions::default())?;
    /// let reg = area.registry().with_const_labels(&[("zone", "eu")])?;
    /// let hits = reg.counter(Opts::new("hits", "Hits.").labels(&["path"]))?;
    /// hits.labels(&["/"])?.inc(); // the constant labels come first, set already
    /// let text = reg.render_to_string(Format::Prometheus)?;
    /// assert!(text.contains("hits_total{zone=\"eu\",path=\"/\"} 1\n"));
    /// # Ok::<(), promshm::Error>(())
    /// ```
    pub fn with_const_labels(mut self, labels: &[(&str, &str)]) -> Result<Registry> {
        for (k, v) in labels {
            crate::validate::label_name(k)?;
            crate::validate::label_values(1, &[v])?;
            if self.const_labels.iter().any(|(n, _)| n == k) {
                return Err(Error::DuplicateLabelName(k.to_string()));
            }
            self.const_labels.push((k.to_string(), v.to_string()));
        }
        Ok(self)
    }

    /// Leave promshm's own `promshm_*` metrics out of this registry's renders.
    pub fn without_self_metrics(mut self) -> Registry {
        self.self_metrics = false;
        self
    }

    /// The area this registry views.
    pub fn area(&self) -> &Area {
        &self.area
    }

    /// The prefix (empty if none).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Register (or find) a counter family.
    ///
    /// ```
    /// use promshm::{Area, AreaOptions, Format, Opts};
    ///
    /// let area = Area::anonymous(&AreaOptions::default())?;
    /// let reg = area.registry();
    /// let requests = reg.counter(Opts::new("requests", "Requests served.").labels(&["code"]))?;
    /// requests.labels(&["200"])?.inc();
    /// requests.labels(&["200"])?.add(2.0)?; // the same series
    /// // Registering the same name and shape again finds the family.
    /// reg.counter(Opts::new("requests", "Requests served.").labels(&["code"]))?;
    /// let text = reg.render_to_string(Format::Prometheus)?;
    /// assert!(text.contains("requests_total{code=\"200\"} 3\n"));
    /// # Ok::<(), promshm::Error>(())
    /// ```
    pub fn counter(&self, opts: Opts) -> Result<Family<Counter>> {
        self.register(opts, MetricType::Counter, |_| Ok(()))
    }

    /// Register (or find) a gauge family with its multi-process mode.
    ///
    /// ```
    /// use promshm::{Area, AreaOptions, Format, GaugeMode, Opts};
    ///
    /// let area = Area::anonymous(&AreaOptions::default())?;
    /// let reg = area.registry();
    /// // `Sum`: the family's value is the sum of every process's own value.
    /// let in_flight = reg.gauge(Opts::new("in_flight", "Requests in flight."), GaugeMode::Sum)?.get()?;
    /// in_flight.inc();
    /// in_flight.inc();
    /// in_flight.dec();
    /// assert_eq!(in_flight.get(), 1.0);
    /// assert!(reg.render_to_string(Format::Prometheus)?.contains("in_flight 1\n"));
    /// # Ok::<(), promshm::Error>(())
    /// ```
    pub fn gauge(&self, opts: Opts, mode: GaugeMode) -> Result<Family<Gauge>> {
        self.register(opts, MetricType::Gauge, |s| {
            s.gauge_mode = mode;
            Ok(())
        })
    }

    /// Register (or find) a histogram family with these upper bounds
    /// (`+Inf` is implied; see [`DEFAULT_BUCKETS`](crate::DEFAULT_BUCKETS)).
    ///
    /// ```
    /// use promshm::{Area, AreaOptions, Format, Opts};
    ///
    /// let area = Area::anonymous(&AreaOptions::default())?;
    /// let reg = area.registry();
    /// let latency = reg
    ///     .histogram(Opts::new("latency", "Latency.").unit("seconds"), &[0.1, 1.0])?
    ///     .get()?;
    /// latency.observe(0.05)?;
    /// latency.observe(0.5)?;
    /// let text = reg.render_to_string(Format::Prometheus)?;
    /// assert!(text.contains("latency_seconds_bucket{le=\"0.1\"} 1\n"));
    /// assert!(text.contains("latency_seconds_bucket{le=\"+Inf\"} 2\n"));
    /// assert!(text.contains("latency_seconds_count 2\n"));
    /// # Ok::<(), promshm::Error>(())
    /// ```
    pub fn histogram(&self, opts: Opts, buckets: &[f64]) -> Result<Family<Histogram>> {
        let bounds = crate::metrics::histogram::normalize_buckets(buckets)?;
        self.register(opts, MetricType::Histogram, |s| {
            s.params = bounds;
            Ok(())
        })
    }

    /// Register (or find) a native (exponential-bucket) histogram family
    /// with its schema, zero threshold, bucket window and bucket limit (see
    /// [`NativeOpts`] and `metrics::native`). Native
    /// histograms are always eager (`opts.eager` is ignored): every
    /// observation adds straight into the shared cells.
    pub fn native_histogram(
        &self,
        opts: Opts,
        native: NativeOpts,
    ) -> Result<Family<NativeHistogram>> {
        let params = native.params()?;
        self.register(opts.eager(true), MetricType::NativeHistogram, |s| {
            s.params = params;
            Ok(())
        })
    }

    /// Register (or find) a summary family.
    ///
    /// ```
    /// use promshm::{Area, AreaOptions, Format, Opts, SummaryOpts};
    ///
    /// let area = Area::anonymous(&AreaOptions::default())?;
    /// let reg = area.registry();
    /// let sizes = reg
    ///     .summary(Opts::new("size", "Sizes.").unit("bytes"), &SummaryOpts::quantiles(&[0.5]))?
    ///     .get()?;
    /// sizes.observe(100.0)?;
    /// let text = reg.render_to_string(Format::Prometheus)?;
    /// assert!(text.contains("size_bytes_count 1\n"));
    /// assert!(text.contains("size_bytes_sum 100\n"));
    /// # Ok::<(), promshm::Error>(())
    /// ```
    pub fn summary(&self, opts: Opts, summary: &SummaryOpts) -> Result<Family<Summary>> {
        self.register(opts, MetricType::Summary, |s| {
            s.params = summary.quantiles.clone();
            if let Some(age) = summary.max_age {
                s.age_buckets = summary.age_buckets;
                s.max_age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
            }
            Ok(())
        })
    }

    /// Register (or find) an info family.
    ///
    /// ```
    /// use promshm::{Area, AreaOptions, Format, Opts};
    ///
    /// let area = Area::anonymous(&AreaOptions::default())?;
    /// let reg = area.registry();
    /// reg.info(Opts::new("build", "Build information."))?
    ///     .get()?
    ///     .set(&[("version", "1.2.3")])?;
    /// let text = reg.render_to_string(Format::Prometheus)?;
    /// assert!(text.contains("build_info{version=\"1.2.3\"} 1\n"));
    /// # Ok::<(), promshm::Error>(())
    /// ```
    pub fn info(&self, opts: Opts) -> Result<Family<Info>> {
        self.register(opts, MetricType::Info, |_| Ok(()))
    }

    /// Register (or find) a state set (enum) family.
    ///
    /// ```
    /// use promshm::{Area, AreaOptions, Format, Opts};
    ///
    /// let area = Area::anonymous(&AreaOptions::default())?;
    /// let reg = area.registry();
    /// let mode = reg
    ///     .state_set(Opts::new("mode", "Serving mode."), &["normal", "degraded"])?
    ///     .get()?;
    /// mode.set("degraded")?;
    /// let text = reg.render_to_string(Format::Prometheus)?;
    /// assert!(text.contains("mode{mode=\"degraded\"} 1\n"));
    /// assert!(text.contains("mode{mode=\"normal\"} 0\n"));
    /// # Ok::<(), promshm::Error>(())
    /// ```
    pub fn state_set(&self, opts: Opts, states: &[&str]) -> Result<Family<StateSet>> {
        self.register(opts, MetricType::StateSet, |s| {
            s.states = states.iter().map(|s| s.to_string()).collect();
            Ok(())
        })
    }

    /// Unregister a family from the area, in every process: its series
    /// and its record are freed (their space is reused by later
    /// registrations, like a removed series'), and its name is free for a
    /// new registration, of any type and labels. Handles to the family and
    /// to its series, in any process, keep working but update nothing and
    /// read zero, like a removed series' handles; `labels(..)` on such a
    /// family never creates a series. Renders no longer show it once this
    /// returns. Returns whether it was registered (`false` if some process
    /// unregistered it already). A family of another area is refused
    /// ([`Error::InvalidArgument`]).
    ///
    /// ```
    /// use promshm::{Area, AreaOptions, Format, GaugeMode, Opts};
    ///
    /// let area = Area::anonymous(&AreaOptions::default())?;
    /// let reg = area.registry();
    /// let jobs = reg.counter(Opts::new("job_42", "Per-job counter.").labels(&["step"]))?;
    /// let step = jobs.labels(&["load"])?;
    /// step.inc();
    /// assert!(reg.unregister(&jobs)?);
    /// step.inc(); // updates nothing
    /// assert!(!reg.render_to_string(Format::Prometheus)?.contains("job_42"));
    /// // The name is free again, for another type.
    /// reg.gauge(Opts::new("job_42", "Now a gauge."), GaugeMode::Sum)?.get()?.set(3.0);
    /// assert!(reg.render_to_string(Format::Prometheus)?.contains("\njob_42 3\n"));
    /// # Ok::<(), promshm::Error>(())
    /// ```
    pub fn unregister<M: crate::metrics::Metric>(&self, family: &Family<M>) -> Result<bool> {
        if !Arc::ptr_eq(&self.area.inner, &family.inner.area) {
            return Err(Error::InvalidArgument(format!(
                "family {} belongs to another area than this registry's",
                family.name()
            )));
        }
        unregister(&family.inner)
    }

    fn full_name(&self, opts: &Opts, kind: MetricType) -> Result<String> {
        crate::validate::metric_name(&opts.name)?;
        // Before the unit becomes part of the name: a bad unit is InvalidUnit.
        crate::validate::unit(&opts.unit, kind)?;
        let mut name = if self.prefix.is_empty() {
            opts.name.clone()
        } else {
            format!("{}_{}", self.prefix, opts.name)
        };
        let strip = match kind {
            MetricType::Counter => "_total",
            MetricType::Info => "_info",
            _ => "",
        };
        if !strip.is_empty() && name.len() > strip.len() && name.ends_with(strip) {
            name.truncate(name.len() - strip.len());
        }
        if !opts.unit.is_empty() && !name.ends_with(&format!("_{}", opts.unit)) {
            name = format!("{name}_{}", opts.unit);
        }
        if name.starts_with(SELF_METRICS_PREFIX) {
            return Err(Error::InvalidMetricName(format!(
                "{name} (names starting with {SELF_METRICS_PREFIX} are reserved for self-metrics)"
            )));
        }
        crate::validate::metric_name(&name)?;
        crate::validate::family_name_suffix(&name, kind)?;
        Ok(name)
    }

    fn register<M: crate::metrics::Metric>(
        &self,
        opts: Opts,
        kind: MetricType,
        fill: impl FnOnce(&mut Shape) -> Result<()>,
    ) -> Result<Family<M>> {
        let name = self.full_name(&opts, kind)?;
        let mut shape = Shape::new(kind, name, opts.help.clone(), opts.unit.clone());
        shape.label_names = self.const_labels.iter().map(|(k, _)| k.clone()).collect();
        shape.label_names.extend(opts.labels.iter().cloned());
        fill(&mut shape)?;
        shape.check()?;
        let area = &self.area.inner;
        area.check_writable()?;
        let eager = opts.eager.unwrap_or_else(|| area.eager_default());
        let (off, gen) = register_family(area, &shape, eager)?;
        let const_values: Vec<String> = self.const_labels.iter().map(|(_, v)| v.clone()).collect();
        let key = (off, eager, const_values.clone());
        let mut idx = crate::area::fork::lock(&area.index);
        if let Some(existing) = idx.handed_out.get(&key).and_then(std::sync::Weak::upgrade) {
            // The same family, not an unregistered one whose record it reuses.
            if existing.gen == gen {
                return Ok(Family::new(existing));
            }
        }
        let family = Arc::new(FamilyInner::new(
            area.clone(),
            (off, gen),
            shape,
            eager,
            const_values,
        ));
        idx.handed_out.retain(|_, w| w.strong_count() > 0);
        idx.handed_out.insert(key, Arc::downgrade(&family));
        drop(idx);
        let family = Family::new(family);
        if opts.labels.is_empty() {
            // Metrics without labels are exposed from the start (value 0).
            family.inner.resolve(&[])?;
        }
        Ok(family)
    }

    /// Render this registry's families (its prefix only, if it has one) into `out`.
    /// Flushes this process's buffers and reaps dead workers first.
    ///
    /// ```
    /// use promshm::{Area, AreaOptions, Format, Opts};
    ///
    /// let area = Area::anonymous(&AreaOptions::default())?;
    /// let app = area.registry().with_prefix("app")?;
    /// app.counter(Opts::new("jobs", "Jobs run."))?.get()?.inc();
    /// let mut out = Vec::new();
    /// let stats = app.render(&mut out, Format::OpenMetrics)?;
    /// assert_eq!((stats.families, stats.series), (1, 1));
    /// let text = String::from_utf8(out).unwrap();
    /// assert!(text.contains("app_jobs_total 1\n"));
    /// assert!(text.ends_with("# EOF\n"));
    /// # Ok::<(), promshm::Error>(())
    /// ```
    pub fn render(&self, out: impl Write, format: Format) -> Result<RenderStats> {
        let prefix = (!self.prefix.is_empty()).then(|| format!("{}_", self.prefix));
        render::render(
            &self.area.inner,
            prefix.as_deref(),
            self.self_metrics,
            out,
            format,
        )
    }

    /// Render this registry's families into any [`Encoder`]: the same walk,
    /// filter and order as [`render`](Registry::render), for consumers that
    /// want structured values instead of text, e.g.
    /// [`SampleEncoder`](crate::encoding::SampleEncoder) (remote-write,
    /// inspection). `enc.finish()` is called at the end.
    ///
    /// ```
    /// use promshm::encoding::{Sample, SampleEncoder};
    /// use promshm::{Area, AreaOptions, Opts};
    ///
    /// let area = Area::anonymous(&AreaOptions::default())?;
    /// let app = area.registry().with_prefix("app")?;
    /// app.counter(Opts::new("jobs", "Jobs run."))?.get()?.inc();
    /// let mut samples = Vec::new();
    /// let mut enc = SampleEncoder::new(|s: &Sample<'_>| {
    ///     samples.push((s.name.to_string(), s.value));
    ///     Ok(())
    /// });
    /// app.render_with(&mut enc)?;
    /// drop(enc);
    /// assert_eq!(samples, [("app_jobs_total".to_string(), 1.0)]);
    /// # Ok::<(), promshm::Error>(())
    /// ```
    pub fn render_with(&self, enc: &mut dyn Encoder) -> Result<RenderStats> {
        let prefix = (!self.prefix.is_empty()).then(|| format!("{}_", self.prefix));
        render::render_into(&self.area.inner, prefix.as_deref(), self.self_metrics, enc)
    }

    /// Render into a `String` (a text format; the binary
    /// [`Format::Protobuf`] is refused with [`Error::InvalidArgument`]: use
    /// [`Registry::render`] into bytes for it).
    ///
    /// ```
    /// use promshm::{Area, AreaOptions, Format, Opts};
    ///
    /// let area = Area::anonymous(&AreaOptions::default())?;
    /// let app = area.registry().with_prefix("app")?;
    /// app.counter(Opts::new("jobs", "Jobs run."))?;
    /// let text = app.render_to_string(Format::Prometheus)?;
    /// assert_eq!(text, "# HELP app_jobs_total Jobs run.\n# TYPE app_jobs_total counter\napp_jobs_total 0\n");
    /// assert!(app.render_to_string(Format::Protobuf).is_err());
    /// # Ok::<(), promshm::Error>(())
    /// ```
    pub fn render_to_string(&self, format: Format) -> Result<String> {
        if format == Format::Protobuf {
            return Err(Error::InvalidArgument(
                "render_to_string needs a text format; render the protobuf format into bytes with render()".into(),
            ));
        }
        let mut out = Vec::new();
        self.render_to_vec(&mut out, format)?;
        String::from_utf8(out).map_err(|e| Error::CorruptArea(e.to_string()))
    }

    /// [`render`](Registry::render) appending to `out`, the text formats
    /// written into it directly.
    pub(crate) fn render_to_vec(&self, out: &mut Vec<u8>, format: Format) -> Result<RenderStats> {
        let prefix = (!self.prefix.is_empty()).then(|| format!("{}_", self.prefix));
        render::render_to_vec(
            &self.area.inner,
            prefix.as_deref(),
            self.self_metrics,
            out,
            format,
        )
    }
}

/// Find or create the family record for `shape`; its offset. A refusal
/// because of a name clash is counted in `stat_name_clashes`.
fn register_family(area: &Arc<AreaInner>, shape: &Shape, eager: bool) -> Result<(usize, u64)> {
    let found = find_or_create_family(area, shape, eager);
    if let Err(Error::NameTaken { .. }) = found {
        area.bump(hdr::STAT_NAME_CLASHES, 1);
    }
    found
}

fn find_or_create_family(
    area: &Arc<AreaInner>,
    shape: &Shape,
    eager: bool,
) -> Result<(usize, u64)> {
    let mut idx = crate::area::fork::lock(&area.index);
    idx.catch_up(area, false);
    if let Some(found) = existing_family(&mut idx, area, shape)? {
        return Ok(found);
    }
    let guard = area.lock()?;
    idx.catch_up(area, true);
    if let Some(found) = existing_family(&mut idx, area, shape)? {
        return Ok(found);
    }
    let w = shape.encode(eager, area.max_workers());
    // From a hole (an unregistered family's, a removed series') or the
    // cursor; its generation (record offset 8) is the record's, not written.
    let off = area.alloc_family(&guard, w.len())?;
    area.write_bytes(off + fam::TYPE, &w.buf[fam::TYPE..]);
    let gen = area.generation(off);
    area.commit(off, KIND_FAMILY);
    area.bump(hdr::STAT_FAMILIES, 1);
    drop(guard);
    idx.catch_up(area, false);
    Ok((off, gen))
}

/// The family of this name if it exists with this shape; `ShapeMismatch` if
/// with another; `NameTaken` if none exists but one of the names it would
/// render is another family's; `None` if it is free to create.
fn existing_family(
    idx: &mut LocalIndex,
    area: &AreaInner,
    shape: &Shape,
) -> Result<Option<(usize, u64)>> {
    if let Some((off, gen, existing)) = idx.families.get(&shape.name) {
        if area.family_live(*off, *gen) {
            return match existing.difference(shape) {
                None => Ok(Some((*off, *gen))),
                Some(detail) => Err(Error::ShapeMismatch {
                    name: shape.name.clone(),
                    detail,
                }),
            };
        }
        // Unregistered (by any process): the name is free.
        idx.drop_family(&shape.name);
    }
    // Each round forgets one unregistered owner of a clashing name.
    for _ in 0..=shape.kind.rendered_suffixes_c().len() {
        let Some((taken, owner)) = idx.clash(&shape.name, shape.kind) else {
            return Ok(None);
        };
        if idx.live_family(area, &owner).is_some() {
            return Err(Error::NameTaken {
                name: shape.name.clone(),
                taken,
                owner,
            });
        }
        idx.drop_family(&owner);
    }
    Ok(None)
}

/// The longest a registration waits for holes to leave their grace period
/// (as long as a wait for the area lock) before it is refused.
const GRACE_WAIT_BOUND: std::time::Duration = std::time::Duration::from_secs(10);

/// Find or create the series of `family` with label values `values`
/// (constant labels included); the offset and generation of its record.
/// When only holes still in their grace period would hold it, wait for
/// them without the area lock (other processes and threads go on), and
/// try again, for at most [`GRACE_WAIT_BOUND`].
pub(crate) fn resolve_series(
    family: &Arc<FamilyInner>,
    values: &[&str],
    hash: u64,
) -> Result<(usize, u64)> {
    let started = std::time::Instant::now();
    loop {
        match try_resolve_series(family, values, hash)? {
            Ok(found) => return Ok(found),
            Err(_) if started.elapsed() >= GRACE_WAIT_BOUND => {
                let size = ser::CELLS + family.shape.n_cells(family.area.max_workers()) * 8;
                return Err(family.area.refuse(size));
            }
            Err(ready) => crate::area::records::sleep_until_ms(ready),
        }
    }
}

// What a family that was unregistered resolves every series to:
// `DEAD_GEN`, a generation no record ever has, so that its handles update
// nothing and read zero, like a removed series' (`SeriesInner::cell`), and
// the dead family's own offset (in the mapping; never read through).
use crate::metrics::DEAD_GEN;

/// One attempt of [`resolve_series`]: the series' offset and generation
/// (the one its lookup checked, or read under the lock that created it),
/// or the `monotonic_ms` at which to try again.
fn try_resolve_series(
    family: &Arc<FamilyInner>,
    values: &[&str],
    hash: u64,
) -> Result<std::result::Result<(usize, u64), u64>> {
    let area = &family.area;
    let dead = (family.off, DEAD_GEN);
    let mut idx = crate::area::fork::lock(&area.index);
    // A series found is the family's if the family is still registered
    // after the lookup (its record cannot have been reused meanwhile: a
    // hole waits out its grace period).
    let found = |idx: &LocalIndex| {
        idx.find_series(area, family.off, values, hash).map(|s| {
            if family.is_registered() {
                s
            } else {
                dead
            }
        })
    };
    if !family.is_registered() {
        return Ok(Ok(dead));
    }
    if let Some(found) = found(&idx) {
        return Ok(Ok(found));
    }
    if idx.catch_up(area, false) {
        if let Some(found) = found(&idx) {
            return Ok(Ok(found));
        }
    }
    let guard = area.lock()?;
    if idx.catch_up(area, true) {
        if let Some(found) = found(&idx) {
            return Ok(Ok(found));
        }
    }
    if !family.is_registered() {
        // Unregistered (by any process): no series is ever created in it.
        return Ok(Ok(dead));
    }
    let before = (
        area.hdr(hdr::REUSE_SEQ).load(Ordering::Acquire),
        area.cursor(),
    );
    match create_series(area, &guard, family, values, hash)? {
        Alloc::At(off) => {
            idx.add_own_series(area, (family.off, hash, off), before);
            // Under the lock: nobody has removed it yet.
            Ok(Ok((off, area.generation(off))))
        }
        Alloc::ReadyAt(ready) => Ok(Err(ready)),
    }
}

fn create_series(
    area: &AreaInner,
    guard: &crate::area::AreaLockGuard<'_>,
    family: &FamilyInner,
    values: &[&str],
    hash: u64,
) -> Result<Alloc> {
    let n_cells = family.shape.n_cells(area.max_workers());
    let cells = ser::CELLS + 8 * n_cells;
    let mut w = RecordWriter::with_fixed(ser::CELLS);
    w.put_u64(ser::HASH, hash);
    // The generation stays what the record had (`alloc` keeps it).
    w.put_u32(ser::FAMILY, family.off as u32);
    w.put_u32(ser::N_CELLS, n_cells as u32);
    w.put_u64(ser::CREATED, crate::process::now_secs().to_bits());
    for v in values {
        w.push_str(v);
    }
    let len = cells + (w.buf.len() - ser::CELLS);
    let made = area.try_alloc(guard, KIND_SERIES, align8(len))?;
    if let Alloc::At(off) = made {
        // The record comes zeroed: the cells are not written again.
        area.write_bytes(off + ser::FAMILY, &w.buf[ser::FAMILY..ser::CELLS]);
        area.write_bytes(off + cells, &w.buf[ser::CELLS..]);
        area.commit(off, KIND_SERIES);
        area.bump(hdr::STAT_SERIES, 1);
    }
    Ok(made)
}

/// Remove the live series with these values and free its record (and an
/// info series' blob); its offset and generation if it was live.
pub(crate) fn remove_series(
    family: &Arc<FamilyInner>,
    values: &[&str],
    hash: u64,
) -> Result<Option<(usize, u64)>> {
    let area = &family.area;
    area.check_writable()?;
    let mut idx = crate::area::fork::lock(&area.index);
    // Under the lock the index is complete (an unlocked catch-up stops at
    // a record another process is writing).
    let guard = area.lock()?;
    idx.catch_up(area, true);
    let Some((off, gen)) = idx.find_series(area, family.off, values, hash) else {
        return Ok(None);
    };
    // A removed series is never found again: forget it (lookups stay as
    // fast as the live series, however often labels are removed and re-added).
    idx.forget(off);
    if !free_series(area, &guard, family, off) {
        return Ok(None);
    }
    Ok(Some((off, gen)))
}

/// Free the LIVE series record at `off` of `family` (under the lock):
/// the record, then its info blob, gauge extensions or exemplar record. `false` if it was not live.
fn free_series(
    area: &AreaInner,
    guard: &crate::area::AreaLockGuard<'_>,
    family: &FamilyInner,
    off: usize,
) -> bool {
    if area.record_state(off, KIND_SERIES) != Some(STATE_LIVE) {
        return false;
    }
    let blob = (family.shape.kind == MetricType::Info)
        .then(|| {
            area.u64_at(off + ser::CELLS)
                .map(|c| c.load(Ordering::Acquire))
        })
        .flatten();
    let mut exts = if family.shape.kind == MetricType::Gauge {
        area.gauge_extensions(off)
    } else {
        Vec::new()
    };
    exts.extend(crate::metrics::exemplar::record_of_series(
        area,
        off,
        &family.shape,
    ));
    if !area.free_record(guard, off) {
        return false;
    }
    if let Some(b) = blob {
        crate::metrics::info::free_blob(area, guard, b);
    }
    for e in exts {
        area.free_record(guard, e);
    }
    area.hdr(hdr::STAT_SERIES).fetch_sub(1, Ordering::Relaxed);
    true
}

/// Remove every live series of the family and free their records; how many.
pub(crate) fn clear_family(family: &Arc<FamilyInner>) -> Result<usize> {
    let area = &family.area;
    let mut idx = crate::area::fork::lock(&area.index);
    // Under the lock no process can add a series while we clear.
    let guard = area.lock()?;
    idx.catch_up(area, true);
    let offs: Vec<usize> = idx
        .series
        .iter()
        .filter(|((fam, _), _)| *fam == family.off)
        .flat_map(|(_, offs)| offs.as_slice().iter().copied())
        .collect();
    let mut n = 0;
    for off in offs {
        idx.forget(off);
        if free_series(area, &guard, family, off) {
            n += 1;
        }
    }
    Ok(n)
}

/// Unregister `family` in the area (`docs/FORMAT.md` §7, "Unregistering"):
/// under the lock, its record LIVE -> REMOVED (from then on it is gone
/// for every reader and writer), then every series of it freed (with
/// their blobs and gauge extensions), then the record itself becomes a
/// hole. A holder killed between leaves a REMOVED family whose leftover
/// series the next rebuild of the free lists frees before the family
/// record (`reclaim_unregistered_families`). `false` if it was not
/// registered any more (unregistered before, by any process).
pub(crate) fn unregister(family: &Arc<FamilyInner>) -> Result<bool> {
    let done = unregister_family(family)?;
    family.forget_resolved();
    Ok(done)
}

fn unregister_family(family: &Arc<FamilyInner>) -> Result<bool> {
    let area = &family.area;
    area.check_writable()?;
    let mut idx = crate::area::fork::lock(&area.index);
    let guard = area.lock()?;
    // Under the lock the index is complete: every series of the family.
    idx.catch_up(area, true);
    if !area.mark_family_removed(family.off, family.gen) {
        return Ok(false);
    }
    let offs: Vec<usize> = idx
        .series
        .iter()
        .filter(|((fam, _), _)| *fam == family.off)
        .flat_map(|(_, offs)| offs.as_slice().iter().copied())
        .collect();
    for off in offs {
        idx.forget(off);
        let of_family = area
            .u32_at(off + ser::FAMILY)
            .is_some_and(|f| f.load(Ordering::Relaxed) as usize == family.off);
        if of_family {
            free_series(area, &guard, family, off);
        }
    }
    if area.free_family_record(&guard, family.off) {
        let n = area.hdr(hdr::STAT_FAMILIES);
        let _ = n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
    }
    drop(guard);
    idx.drop_family(&family.shape.name);
    Ok(true)
}

impl Area {
    /// A registry on this area with no prefix.
    pub fn registry(&self) -> Registry {
        Registry::new(self)
    }

    /// Whether a family named `name` (its full name, as exposed without
    /// the suffixes) of type `kind` would render a name that a family of the
    /// area, registered by any process, already renders, or a name of
    /// promshm's own `promshm_*` metrics. For code that renders families
    /// of its own next to the area's (e.g. custom collectors), to skip one
    /// that would appear twice. Takes no lock.
    pub fn name_taken(&self, name: &str, kind: MetricType) -> bool {
        if name.starts_with(SELF_METRICS_PREFIX) {
            return true;
        }
        let area = &self.inner;
        let mut idx = crate::area::fork::lock(&area.index);
        idx.catch_up(area, false);
        idx.taken(name, kind)
    }

    /// Render every family of the area.
    ///
    /// ```
    /// use promshm::{Area, AreaOptions, Format};
    ///
    /// let area = Area::anonymous(&AreaOptions::default())?;
    /// let mut out = Vec::new();
    /// let stats = area.render(&mut out, Format::Prometheus)?;
    /// // promshm's own metrics are there even in an empty area.
    /// assert!(stats.families > 0);
    /// assert!(String::from_utf8(out).unwrap().contains("\npromshm_series 0\n"));
    /// # Ok::<(), promshm::Error>(())
    /// ```
    pub fn render(&self, out: impl Write, format: Format) -> Result<RenderStats> {
        render::render(&self.inner, None, true, out, format)
    }

    /// [`render`](Area::render) appending to `out`, the text formats
    /// written into it directly.
    pub(crate) fn render_to_vec(&self, out: &mut Vec<u8>, format: Format) -> Result<RenderStats> {
        render::render_to_vec(&self.inner, None, true, out, format)
    }

    /// Render every family of the area into a `String`.
    ///
    /// ```
    /// use promshm::{Area, AreaOptions, Format, Opts};
    ///
    /// let area = Area::anonymous(&AreaOptions::default())?;
    /// area.registry().with_prefix("app")?.counter(Opts::new("jobs", "Jobs run."))?;
    /// let text = area.render_to_string(Format::OpenMetrics)?;
    /// assert!(text.contains("app_jobs_total 0\n"));
    /// assert!(text.contains("promshm_area_pages 4096\n"));
    /// # Ok::<(), promshm::Error>(())
    /// ```
    pub fn render_to_string(&self, format: Format) -> Result<String> {
        self.registry().render_to_string(format)
    }
}

#[cfg(test)]
mod tests {
    use crate::area::format::{KIND_FAMILY, RECORD_HEADER};
    use crate::encoding::{Format, MetricType};
    use crate::metrics::shape::Shape;
    use crate::{Area, AreaOptions, GaugeMode, Opts, SummaryOpts};

    #[test]
    fn protobuf_into_a_string_is_refused_as_an_argument_error() {
        let area = Area::anonymous(&AreaOptions::with_pages(16)).unwrap();
        area.registry()
            .counter(Opts::new("c", "h"))
            .unwrap()
            .get()
            .unwrap()
            .inc();
        let err = area.render_to_string(Format::Protobuf).unwrap_err();
        assert!(matches!(err, crate::Error::InvalidArgument(_)), "{err}");
        let mut bytes = Vec::new();
        area.registry()
            .render(&mut bytes, Format::Protobuf)
            .unwrap();
        assert!(!bytes.is_empty());
    }

    /// An area whose records hold a family rendering a name an earlier one
    /// renders (written by a build without the check, or damaged): the
    /// render keeps the first, skips the later one and counts it as bad.
    #[test]
    fn a_family_rendering_an_earlier_ones_name_is_skipped_and_counted() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let s = area
            .registry()
            .summary(Opts::new("s", "h"), &SummaryOpts::quantiles(&[]))
            .unwrap();
        s.get().unwrap().observe(1.0).unwrap();
        let inner = &area.inner;
        let shape = Shape::new(
            MetricType::Gauge,
            "s_count".into(),
            "g".into(),
            String::new(),
        );
        let w = shape.encode(false, inner.max_workers());
        let guard = inner.lock().unwrap();
        let off = inner.alloc(&guard, KIND_FAMILY, w.len()).unwrap();
        inner.write_bytes(off + RECORD_HEADER, &w.buf[RECORD_HEADER..]);
        inner.commit(off, KIND_FAMILY);
        drop(guard);
        let mut out = Vec::new();
        let stats = area.render(&mut out, Format::Prometheus).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("# TYPE s_count"), "{text}");
        assert!(text.contains("\ns_count 1\n"), "{text}");
        assert_eq!(stats.bad_records, 1, "{text}");
        // And the index agrees: the name stays the summary's.
        assert!(area.name_taken("s_count", MetricType::Gauge));
    }

    /// A holder killed in the middle of an unregister (after the family's
    /// record became REMOVED, before its series were freed) leaves the
    /// family gone for readers and writers; the next rebuild of the free
    /// lists frees its series, then its record, and the name is free again.
    #[test]
    fn a_rebuild_reclaims_what_a_killed_unregister_left() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let reg = area.registry();
        let c = reg.counter(Opts::new("job", "h").labels(&["k"])).unwrap();
        let s = c.labels(&["a"]).unwrap();
        s.inc();
        c.labels(&["b"]).unwrap().inc();
        crate::flush();
        let inner = &area.inner;
        let (off, gen) = (c.inner.off, c.inner.gen);
        let before = area.stats();
        {
            let _guard = inner.lock().unwrap();
            assert!(inner.mark_family_removed(off, gen));
        }
        // Gone, for writers and readers, before anything is freed.
        assert!(!c.is_registered());
        assert_eq!(c.labels(&["c"]).unwrap().get(), 0.0);
        let text = area.render_to_string(Format::Prometheus).unwrap();
        assert!(!text.contains("\njob_total"), "{text}");
        {
            let guard = inner.lock().unwrap();
            inner.rebuild_free_lists(&guard);
        }
        let after = area.stats();
        assert_eq!(after.series, before.series - 2, "{after:?}");
        assert_eq!(after.families, before.families - 1, "{after:?}");
        assert_eq!(after.records_freed, before.records_freed + 3, "{after:?}");
        assert_eq!(
            inner.record_state(off, KIND_FAMILY),
            None,
            "the family record is a hole (of kind BLOB)"
        );
        s.inc();
        assert_eq!(s.get(), 0.0);
        let stats = area.render(std::io::sink(), Format::Prometheus).unwrap();
        assert_eq!(stats.bad_records, 0);
        // The name is free again, for another type.
        let g = reg
            .gauge(Opts::new("job", "g"), crate::GaugeMode::Sum)
            .unwrap();
        g.get().unwrap().set(2.0);
        crate::flush();
        let text = area.render_to_string(Format::Prometheus).unwrap();
        assert!(text.contains("\njob 2\n"), "{text}");
    }

    /// Thread buffers are indexed by a series' id: a series resolved again
    /// after its handles were dropped (e.g. `labels(..)` per request on a
    /// gauge or an eager family) must keep its id, or every new id grows
    /// every thread's index and the u32 ids eventually collide.
    #[test]
    fn resolving_a_series_again_keeps_its_buffer_id() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let g = area
            .registry()
            .gauge(Opts::new("g", "h").labels(&["a"]), GaugeMode::Sum)
            .unwrap();
        let first = g.labels(&["x"]).unwrap().series.buffer;
        for _ in 0..100 {
            g.labels(&["x"]).unwrap().set(1.0);
        }
        assert_eq!(g.labels(&["x"]).unwrap().series.buffer, first);
        let other = g.labels(&["y"]).unwrap().series.buffer.id;
        assert_ne!(other, first.id);
    }
}
