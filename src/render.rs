//! Rendering: walk the area once, group series by family, sort families by
//! name, and stream every family through an encoder. Memory is one small
//! entry per live series; bytes are checked as they are read, and a damaged
//! record is skipped and counted, never fatal.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::area::format::*;
use crate::area::records::Record;
use crate::area::AreaInner;
use crate::encoding::{self, Encoder, FamilyDesc, Format, MetricType, Point};
use crate::error::Result;
use crate::metrics::shape::Shape;
use crate::metrics::view::{self, read_series_labels, Ctx, Emitted, LabelScratch, SeriesCells};

/// Prefix reserved for promshm's own metrics.
pub const SELF_METRICS_PREFIX: &str = "promshm_";

/// What a render did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenderStats {
    /// Families written.
    pub families: usize,
    /// Series written (an `all`-mode gauge counts once).
    pub series: usize,
    /// Damaged records skipped.
    pub bad_records: u64,
}

struct FamilyEntry {
    shape: Shape,
    series: Vec<Record>,
}

/// A family of promshm's own metrics, rendered among the others by name.
struct SelfMetric {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    value: f64,
}

pub(crate) fn render(
    area: &AreaInner,
    prefix: Option<&str>,
    self_metrics: bool,
    out: impl Write,
    format: Format,
) -> Result<RenderStats> {
    // Every encoder buffers its output and writes it in chunks of 32 KiB or
    // more (`LineBuf`): no `BufWriter` in front of `out`, which would copy
    // every byte once more.
    let mut enc = encoding::encoder(format, out);
    render_into(area, prefix, self_metrics, &mut *enc)
}

/// Render into any [`Encoder`] (the exposition encoders, or a
/// [`SampleEncoder`](crate::encoding::SampleEncoder) that hands out samples):
/// the same walk, families in the same order. Calls `enc.finish()` at the end.
pub(crate) fn render_into(
    area: &AreaInner,
    prefix: Option<&str>,
    self_metrics: bool,
    enc: &mut dyn Encoder,
) -> Result<RenderStats> {
    let started = Instant::now();
    if !area.read_only {
        crate::buffer::flush();
        let _ = area.reap_dead_workers();
    }
    let mut stats = RenderStats::default();
    let families = collect_families(area, prefix, &mut stats.bad_records);
    let selfs = if self_metrics && prefix.is_none() {
        self_metric_values(area)
    } else {
        Vec::new()
    };
    write_items(area, &families, &selfs, enc, &mut stats)?;
    enc.finish()?;
    area.set_stat(hdr::STAT_BAD_RECORDS, stats.bad_records);
    area.set_stat(hdr::STAT_RENDER_NS, started.elapsed().as_nanos() as u64);
    Ok(stats)
}

/// Walk the area once: the families to render (those under `prefix`), each
/// with its live series in area order. Damaged records are added to `bad`.
fn collect_families(area: &AreaInner, prefix: Option<&str>, bad: &mut u64) -> Vec<FamilyEntry> {
    let mut c = Collect {
        area,
        prefix,
        families: Vec::new(),
        by_offset: HashMap::new(),
        names: HashMap::new(),
        valid_families: HashSet::new(),
        later: Vec::new(),
        last_family: None,
        bad: 0,
    };
    let end = area.walk(0, false, |rec| c.record(rec));
    c.bad += end.bad;
    c.place_later();
    *bad += c.bad;
    c.families
}

/// What the walk of [`collect_families`] has found so far.
struct Collect<'a> {
    area: &'a AreaInner,
    prefix: Option<&'a str>,
    /// The families kept (those under `prefix`), in area order.
    families: Vec<FamilyEntry>,
    /// Family record offset -> its index in `families`.
    by_offset: HashMap<usize, usize>,
    /// Every name the valid families so far render.
    names: HashMap<String, ()>,
    /// Offsets of the valid families (kept or not).
    valid_families: HashSet<usize>,
    /// Series seen before their family: (family offset, record).
    later: Vec<(usize, Record)>,
    /// The last family a series was found in, (offset, index): the series of
    /// a family mostly follow each other, and this spares a hash lookup each.
    last_family: Option<(usize, usize)>,
    /// Damaged records.
    bad: u64,
}

impl Collect<'_> {
    /// One record of the walk.
    fn record(&mut self, rec: Record) {
        if rec.state != STATE_LIVE {
            // Removed and free series and blobs are not read (their bytes
            // are being recycled; the walk checked their header and size
            // class). Only series and blobs are ever freed.
            if rec.kind == KIND_FAMILY && rec.state != STATE_WRITING {
                self.bad += 1;
            }
            return;
        }
        match rec.kind {
            KIND_FAMILY => self.family(rec),
            KIND_SERIES => self.series(rec),
            // An info blob is read through its series, but a damaged length
            // here would silently swallow the records after it: count it.
            KIND_BLOB if self.prefix.is_none() => self.blob(rec),
            _ => {}
        }
    }

    /// A live family record: kept if valid, its names free and under the prefix.
    fn family(&mut self, rec: Record) {
        let Some(shape) = Shape::decode(self.area, rec) else {
            self.bad += 1;
            return;
        };
        // Every name a family renders is its own: a family that would render
        // one an earlier family renders (the same name, or e.g. `s_count`
        // next to a summary `s`) is bad, as registration refuses it
        // (`Error::NameTaken`).
        let rendered = || {
            let name = &shape.name;
            shape
                .kind
                .rendered_suffixes()
                .map(move |sfx| format!("{name}{sfx}"))
        };
        if rendered().any(|n| self.names.contains_key(&n)) {
            self.bad += 1;
            return;
        }
        self.names.extend(rendered().map(|n| (n, ())));
        self.valid_families.insert(rec.off);
        if self.prefix.is_some_and(|p| !shape.name.starts_with(p)) {
            return;
        }
        self.by_offset.insert(rec.off, self.families.len());
        self.families.push(FamilyEntry {
            shape,
            series: Vec::new(),
        });
    }

    /// A live series record: added to its family, or kept for later.
    fn series(&mut self, rec: Record) {
        let fam = self
            .area
            .u32_at(rec.off + ser::FAMILY)
            .map(|f| f.load(Ordering::Relaxed) as usize)
            .unwrap_or(0);
        let found = match self.last_family {
            Some((off, i)) if off == fam => Some(i),
            _ => self.by_offset.get(&fam).copied(),
        };
        if let Some(i) = found {
            self.last_family = Some((fam, i));
            self.families[i].series.push(rec);
        } else {
            // Its family may follow it (a series can reuse the space of a
            // record before its family's).
            self.later.push((fam, rec));
        }
    }

    /// A live blob record: bad if its pairs do not read (and it is still the
    /// blob the walk saw).
    fn blob(&mut self, rec: Record) {
        let area = self.area;
        let gen = area.generation(rec.off);
        if crate::metrics::info::read_blob_pairs(area, rec.off).is_none()
            && area.record_state(rec.off, KIND_BLOB) == Some(STATE_LIVE)
            && area.generation(rec.off) == gen
        {
            self.bad += 1;
        }
    }

    /// After the walk: the series seen before their family join it (each
    /// family's series back in area order); those of no valid family are bad.
    fn place_later(&mut self) {
        if self.later.is_empty() {
            return;
        }
        for (fam, rec) in std::mem::take(&mut self.later) {
            if let Some(&i) = self.by_offset.get(&fam) {
                self.families[i].series.push(rec);
            } else if !self.valid_families.contains(&fam) && self.prefix.is_none() {
                // A series whose family is unknown (or damaged).
                self.bad += 1;
            }
        }
        for f in &mut self.families {
            f.series.sort_by_key(|r| r.off);
        }
    }
}

/// Write the families and promshm's own metrics, sorted by name.
fn write_items(
    area: &AreaInner,
    families: &[FamilyEntry],
    selfs: &[SelfMetric],
    enc: &mut dyn Encoder,
    stats: &mut RenderStats,
) -> Result<()> {
    enum Item<'a> {
        Area(&'a FamilyEntry),
        Own(&'a SelfMetric),
    }
    let mut items: Vec<(&str, Item<'_>)> = families
        .iter()
        .map(|f| (f.shape.name.as_str(), Item::Area(f)))
        .chain(selfs.iter().map(|s| (s.name, Item::Own(s))))
        .collect();
    items.sort_by(|a, b| a.0.cmp(b.0));

    let mut scratch = Scratch::default();
    for (_, item) in &items {
        match item {
            Item::Area(f) => {
                let (n, bad) = write_family(area, f, enc, &mut scratch)?;
                stats.series += n;
                stats.bad_records += bad;
            }
            Item::Own(s) => {
                let desc = FamilyDesc {
                    name: s.name,
                    help: s.help,
                    unit: "",
                    kind: s.kind,
                };
                enc.family(&desc)?;
                let point = match s.kind {
                    MetricType::Counter => Point::Counter {
                        value: s.value,
                        created: None,
                    },
                    _ => Point::Gauge { value: s.value },
                };
                enc.point(&desc, &[], &point)?;
                stats.series += 1;
            }
        }
        stats.families += 1;
    }
    Ok(())
}

#[derive(Default)]
struct Scratch {
    labels: LabelScratch,
    cells: view::Scratch,
}

/// Write one family; returns (series written, bad series).
fn write_family(
    area: &AreaInner,
    f: &FamilyEntry,
    enc: &mut dyn Encoder,
    sc: &mut Scratch,
) -> Result<(usize, u64)> {
    let shape = &f.shape;
    let desc = FamilyDesc {
        name: &shape.name,
        help: &shape.help,
        unit: &shape.unit,
        kind: shape.kind,
    };
    enc.family(&desc)?;
    let (mut written, mut bad) = (0, 0);
    for &rec in &f.series {
        // The series as the walk saw it: a record freed since (and perhaps
        // reused, a grace period later) is skipped, checked again before
        // each value is written.
        let gen = area.generation(rec.off);
        let same = || area.series_live(rec.off, gen);
        if !same() {
            continue;
        }
        let Some(values) = read_series_labels(area, rec, shape, &mut sc.labels) else {
            if same() {
                bad += 1;
            }
            continue;
        };
        // The label pairs on the stack (a family has rarely more than a few
        // labels), in a vector past that.
        let pairs = shape
            .label_names
            .iter()
            .map(String::as_str)
            .zip(values.iter());
        let mut inline = [("", ""); INLINE_LABELS];
        let many: Vec<(&str, &str)>;
        let labels = if shape.label_names.len() <= INLINE_LABELS {
            let n = inline.iter_mut().zip(pairs).map(|(s, p)| *s = p).count();
            &inline[..n]
        } else {
            many = pairs.collect();
            &many[..]
        };
        let view = SeriesCells::new(area, rec.off, &same);
        let cx = Ctx {
            shape,
            desc: &desc,
            labels,
            enc: &mut *enc,
            sc: &mut sc.cells,
        };
        match view::emit(&view, cx)? {
            Emitted::Written => written += 1,
            Emitted::Skipped => {}
            Emitted::Bad => bad += 1,
        }
    }
    Ok((written, bad))
}

/// Label pairs of a series held on the stack while it is written.
const INLINE_LABELS: usize = 8;

/// Where the value of one of promshm's own metrics comes from.
#[derive(Clone, Copy)]
enum Source {
    /// A statistic of the header (`hdr::STAT_*`).
    Stat(usize),
    /// The area's size in pages.
    Pages,
    /// Pages in use (below the allocation cursor).
    PagesUsed,
    /// Live worker processes attached.
    LiveWorkers,
    /// The previous render's duration (`STAT_RENDER_NS`), in seconds.
    RenderSeconds,
}

/// One of promshm's own metrics.
struct SelfMetricDef {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    source: Source,
}

/// promshm's own metrics, every name under [`SELF_METRICS_PREFIX`].
const SELF_METRICS: [SelfMetricDef; 16] = [
    SelfMetricDef {
        name: "promshm_area_pages",
        help: "Pages in the shared area.",
        kind: MetricType::Gauge,
        source: Source::Pages,
    },
    SelfMetricDef {
        name: "promshm_area_pages_used",
        help: "Pages of the shared area in use.",
        kind: MetricType::Gauge,
        source: Source::PagesUsed,
    },
    SelfMetricDef {
        name: "promshm_families",
        help: "Metric families registered in the area.",
        kind: MetricType::Gauge,
        source: Source::Stat(hdr::STAT_FAMILIES),
    },
    SelfMetricDef {
        name: "promshm_series",
        help: "Live series in the area.",
        kind: MetricType::Gauge,
        source: Source::Stat(hdr::STAT_SERIES),
    },
    SelfMetricDef {
        name: "promshm_registrations_refused",
        help: "Registrations refused because the area was full.",
        kind: MetricType::Counter,
        source: Source::Stat(hdr::STAT_REFUSED),
    },
    SelfMetricDef {
        name: "promshm_registrations_name_taken",
        help: "Registrations refused because a name the family would render \
             (with its suffixes) is another family's.",
        kind: MetricType::Counter,
        source: Source::Stat(hdr::STAT_NAME_CLASHES),
    },
    SelfMetricDef {
        name: "promshm_workers",
        help: "Live worker processes attached to the area.",
        kind: MetricType::Gauge,
        source: Source::LiveWorkers,
    },
    SelfMetricDef {
        name: "promshm_workers_reaped",
        help: "Dead worker processes whose slots were reclaimed.",
        kind: MetricType::Counter,
        source: Source::Stat(hdr::STAT_REAPED),
    },
    SelfMetricDef {
        name: "promshm_flushes",
        help: "Flushes of thread-local buffers into the area.",
        kind: MetricType::Counter,
        source: Source::Stat(hdr::STAT_FLUSHES),
    },
    SelfMetricDef {
        name: "promshm_render_duration_seconds",
        help: "Duration of the previous render.",
        kind: MetricType::Gauge,
        source: Source::RenderSeconds,
    },
    SelfMetricDef {
        name: "promshm_bad_records",
        help: "Damaged records skipped by the previous render.",
        kind: MetricType::Gauge,
        source: Source::Stat(hdr::STAT_BAD_RECORDS),
    },
    SelfMetricDef {
        name: "promshm_lock_recoveries",
        help: "Area locks left by dead holders and recovered.",
        kind: MetricType::Counter,
        source: Source::Stat(hdr::STAT_LOCK_RECOVERED),
    },
    SelfMetricDef {
        name: "promshm_native_observations_clamped",
        help: "Native histogram observations outside their family's bucket window, \
             counted in the window's edge bucket.",
        kind: MetricType::Counter,
        source: Source::Stat(hdr::STAT_NATIVE_CLAMPED),
    },
    SelfMetricDef {
        name: "promshm_updates_dropped",
        help: "Gauge updates dropped because the writing process had no worker slot \
             (none was free, or attaching was backing off after a failure).",
        kind: MetricType::Counter,
        source: Source::Stat(hdr::STAT_DROPPED),
    },
    SelfMetricDef {
        name: "promshm_area_lock_acquisitions",
        help: "Times the area lock was taken, by every process of the area.",
        kind: MetricType::Counter,
        source: Source::Stat(hdr::STAT_LOCKS_TAKEN),
    },
    SelfMetricDef {
        name: "promshm_area_lock_timeouts",
        help: "Waits for the area lock that gave up because another process held it \
             too long (the call failed or backed off).",
        kind: MetricType::Counter,
        source: Source::Stat(hdr::STAT_LOCK_TIMEOUTS),
    },
];

/// promshm's own metrics with their values now.
fn self_metric_values(area: &AreaInner) -> Vec<SelfMetric> {
    SELF_METRICS
        .iter()
        .map(|d| {
            debug_assert!(d.name.starts_with(SELF_METRICS_PREFIX));
            SelfMetric {
                name: d.name,
                help: d.help,
                kind: d.kind,
                value: source_value(area, d.source),
            }
        })
        .collect()
}

/// The value of a self-metric's source.
fn source_value(area: &AreaInner, source: Source) -> f64 {
    let stat = |f: usize| area.hdr(f).load(Ordering::Relaxed) as f64;
    match source {
        Source::Stat(f) => stat(f),
        Source::Pages => (area.len() / PAGE_SIZE) as f64,
        Source::PagesUsed => area.cursor().div_ceil(PAGE_SIZE) as f64,
        Source::LiveWorkers => area.worker_infos().iter().filter(|w| w.alive).count() as f64,
        Source::RenderSeconds => stat(hdr::STAT_RENDER_NS) / 1e9,
    }
}
