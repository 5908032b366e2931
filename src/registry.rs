//! Registries: views on an area with an optional prefix (namespace) and
//! constant labels, where families are registered (through the area's
//! series index, `area::index`, which also resolves their series).

use std::any::Any;
use std::io::Write;
use std::sync::Arc;

use crate::area::format::*;
use crate::area::index::{HandedOut, LocalIndex};
use crate::area::{Area, AreaInner};
use crate::encoding::{Encoder, Format, MetricType};
use crate::error::{Error, Result};
use crate::metrics::shape::{decode_family, Shape};
use crate::metrics::{
    Counter, Family, FamilyInner, Gauge, GaugeMode, Histogram, Info, StateSet, Summary, SummaryOpts,
};
use crate::metrics::{NativeHistogram, NativeOpts};
use crate::render::{self, RenderStats};

pub use crate::render::SELF_METRICS_PREFIX;

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
    /// histograms are eager (`opts.eager` is ignored): every observation
    /// adds straight into the shared cells, unless
    /// [`NativeOpts::buffered`] asks for per-thread buffers.
    pub fn native_histogram(
        &self,
        opts: Opts,
        native: NativeOpts,
    ) -> Result<Family<NativeHistogram>> {
        self.native_histogram_with_buckets(opts, native, &[])
    }

    /// Register (or find) a native histogram family that has classic
    /// buckets too (client_golang's `Buckets` beside
    /// `NativeHistogramBucketFactor`): every observation counts in its
    /// native bucket and in its classic bucket (`buckets`, upper bounds as
    /// for [`histogram`](Self::histogram); empty: native only). Protobuf
    /// carries both views in one message, the text formats the classic one.
    ///
    /// ```
    /// use promshm::{Area, AreaOptions, Format, NativeOpts, Opts};
    ///
    /// let area = Area::anonymous(&AreaOptions::default())?;
    /// let h = area
    ///     .registry()
    ///     .native_histogram_with_buckets(Opts::new("lat", "Latency."), NativeOpts::new(), &[0.1, 1.0])?
    ///     .get()?;
    /// h.observe(0.05)?;
    /// h.observe(0.5)?;
    /// h.observe(5.0)?;
    /// let text = area.render_to_string(Format::Prometheus)?;
    /// assert!(text.contains("lat_bucket{le=\"1.0\"} 2\n"));
    /// assert!(text.contains("lat_count 3\n"));
    /// # Ok::<(), promshm::Error>(())
    /// ```
    pub fn native_histogram_with_buckets(
        &self,
        opts: Opts,
        native: NativeOpts,
        buckets: &[f64],
    ) -> Result<Family<NativeHistogram>> {
        let params = native.params_with_buckets(buckets)?;
        let eager = !native.buffered;
        self.register(opts.eager(eager), MetricType::NativeHistogram, |s| {
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
        let existing = idx
            .handed_out(&key)
            .map(|f| f as Arc<dyn Any + Send + Sync>);
        if let Some(existing) = existing.and_then(|f| f.downcast::<FamilyInner>().ok()) {
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
        let handed: Arc<dyn HandedOut> = family.clone();
        idx.hand_out(key, Arc::downgrade(&handed));
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
    idx.catch_up(area, false, decode_family);
    if let Some(found) = existing_family(&mut idx, area, shape)? {
        return Ok(found);
    }
    let guard = area.lock()?;
    idx.catch_up(area, true, decode_family);
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
    idx.catch_up(area, false, decode_family);
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
    if let Some((off, gen, existing)) = idx.family(&shape.name) {
        if area.family_live(*off, *gen) {
            // The index holds the shapes `decode_family` made.
            let existing: &dyn Any = &**existing;
            let difference = existing.downcast_ref::<Shape>().map_or_else(
                || Some("not a family shape".into()),
                |e| e.difference(shape),
            );
            return match difference {
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

/// Unregister `family` in the area (`docs/FORMAT.md` §7, "Unregistering"):
/// under the lock, its record LIVE -> REMOVED (from then on it is gone
/// for every reader and writer), then every series of it freed (with
/// their blobs and gauge extensions), then the record itself becomes a
/// hole. A holder killed between leaves a REMOVED family whose leftover
/// series the next rebuild of the free lists frees before the family
/// record (`reclaim_unregistered_families`). `false` if it was not
/// registered any more (unregistered before, by any process).
pub(crate) fn unregister(family: &Arc<FamilyInner>) -> Result<bool> {
    let done = crate::area::index::unregister_family(&family.index_view())?;
    family.forget_resolved();
    Ok(done)
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
        idx.catch_up(area, false, decode_family);
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
    /// written into it directly (for the C API's buffer renders).
    #[cfg(feature = "capi")]
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
