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
use crate::encoding::{
    self, Encoder, Exemplar, FamilyDesc, Format, KeptFamily, Labels, MetricType, Point, SeriesText,
    SeriesTextCache,
};
use crate::error::Result;
use crate::metrics::gauge::GaugeMode;
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
    /// The family record's offset.
    off: usize,
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

/// [`render`] appending to `out`: the text formats write into `out`
/// itself, no copy of the text from an encoder's buffer into it.
pub(crate) fn render_to_vec(
    area: &AreaInner,
    prefix: Option<&str>,
    self_metrics: bool,
    out: &mut Vec<u8>,
    format: Format,
) -> Result<RenderStats> {
    encoding::with_vec_encoder(format, out, |enc| {
        render_into(area, prefix, self_metrics, enc)
    })
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
    // The text kept of each series from one render to the next, for the
    // encoders that use it; a render that finds it taken by another thread
    // of this process reads every series' labels instead.
    let mut kept = if enc.keeps_series_text() {
        area.series_text.try_lock().ok()
    } else {
        None
    };
    let families = collect_families(area, prefix, kept.as_deref(), &mut stats.bad_records);
    let selfs = if self_metrics && prefix.is_none() {
        self_metric_values(area)
    } else {
        Vec::new()
    };
    if let Some(k) = kept.as_deref_mut() {
        k.begin();
    }
    let written = write_items(
        area,
        &families,
        &selfs,
        enc,
        kept.as_deref_mut(),
        &mut stats,
    );
    if let Some(k) = kept.as_deref_mut() {
        k.end(prefix.is_none());
    }
    drop(kept);
    written?;
    enc.finish()?;
    area.set_stat(hdr::STAT_BAD_RECORDS, stats.bad_records);
    area.set_stat(hdr::STAT_RENDER_NS, started.elapsed().as_nanos() as u64);
    Ok(stats)
}

/// Walk the area once: the families to render (those under `prefix`), each
/// with its live series in area order. Damaged records are added to `bad`.
/// `kept` (the text kept by earlier renders) tells how many series a family
/// had, room made for them at once.
fn collect_families(
    area: &AreaInner,
    prefix: Option<&str>,
    kept: Option<&SeriesTextCache>,
    bad: &mut u64,
) -> Vec<FamilyEntry> {
    let mut c = Collect {
        area,
        prefix,
        kept,
        families: Vec::new(),
        by_offset: HashMap::new(),
        names: HashMap::new(),
        valid_families: HashSet::new(),
        removed_families: HashSet::new(),
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
    /// The text earlier renders kept: the number of series of a family.
    kept: Option<&'a SeriesTextCache>,
    /// The families kept (those under `prefix`), in area order.
    families: Vec<FamilyEntry>,
    /// Family record offset -> its index in `families`.
    by_offset: HashMap<usize, usize>,
    /// Every name the valid families so far render.
    names: HashMap<String, ()>,
    /// Offsets of the valid families (kept or not).
    valid_families: HashSet<usize>,
    /// Offsets of the families being unregistered (REMOVED).
    removed_families: HashSet<usize>,
    /// Series seen before their family: (family offset, record).
    later: Vec<(usize, Record)>,
    /// The last family a series was found in, (offset, index): the series of
    /// a family mostly follow each other, and this spares a hash lookup each.
    last_family: Option<(usize, usize)>,
    /// Damaged records.
    bad: u64,
}

impl Collect<'_> {
    /// One record of the walk: a live series here, where the walk calls
    /// it (most records are), the rest out of line.
    #[inline(always)]
    fn record(&mut self, rec: Record) {
        if rec.kind == KIND_SERIES && rec.state == STATE_LIVE {
            self.series(rec);
        } else {
            self.other(rec);
        }
    }

    /// A record of the walk other than a live series.
    #[inline(never)]
    fn other(&mut self, rec: Record) {
        if rec.state != STATE_LIVE {
            // Removed and free records are not read (their bytes are being
            // recycled; the walk checked their header and size class). A
            // REMOVED family is being unregistered: its series still live
            // are freed after it, and are not bad meanwhile.
            // A freed family is a hole of another kind: a FREE family
            // record is damaged.
            match (rec.kind, rec.state) {
                (KIND_FAMILY, STATE_REMOVED) => _ = self.removed_families.insert(rec.off),
                (KIND_FAMILY, STATE_FREE) => self.bad += 1,
                _ => {}
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
            off: rec.off,
            shape,
            series: Vec::with_capacity(self.kept.map_or(0, |k| k.series_of(rec.off))),
        });
    }

    /// A live series record: added to its family, or kept for later.
    #[inline(always)]
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
            } else if !self.valid_families.contains(&fam)
                && !self.removed_families.contains(&fam)
                && self.prefix.is_none()
            {
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
    mut kept: Option<&mut SeriesTextCache>,
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
                let (n, bad) = write_family(area, f, enc, &mut scratch, kept.as_deref_mut())?;
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
    kept: Option<&mut SeriesTextCache>,
) -> Result<(usize, u64)> {
    let shape = &f.shape;
    let desc = FamilyDesc {
        name: &shape.name,
        help: &shape.help,
        unit: &shape.unit,
        kind: shape.kind,
    };
    enc.family(&desc)?;
    // The kept text is for the points the text encoders write from it:
    // counters and gauges (but not a gauge's points per worker), whose
    // readers hand the series' labels to the encoder untouched.
    let keeps = matches!(shape.kind, MetricType::Counter)
        || (shape.kind == MetricType::Gauge && shape.gauge_mode != GaugeMode::All);
    let mut kept = kept.filter(|_| keeps).map(|k| k.family(f.off));
    let (mut written, mut bad) = (0, 0);
    for &rec in &f.series {
        // The series as the walk saw it: a record freed since (and perhaps
        // reused, a grace period later) is skipped, checked again before
        // each value is written.
        let view = SeriesCells::new(area, rec);
        if !view.same() {
            continue;
        }
        // A counter or gauge whose text is kept, with nothing but its one
        // point to write: that point from the kept text, at once.
        let mut taken = false;
        if let Some(k) = kept.as_mut() {
            if let Some(entry) = k.take_entry(rec.off, view.generation()) {
                taken = true;
                if write_plain(&view, shape, &desc, entry.text(), enc)? {
                    written += 1;
                    continue;
                }
            }
        }
        let s = Series {
            area,
            rec,
            desc: &desc,
            shape,
            view: &view,
        };
        let emitted = match kept.as_mut() {
            Some(k) => s.write_kept(taken, enc, sc, k)?,
            None => s.write_read(enc, sc)?,
        };
        match emitted {
            Some(Emitted::Written) => written += 1,
            Some(Emitted::Skipped) => {}
            // Labels that do not read are bad if the series is still the one
            // the walk saw.
            None if !view.same() => {}
            Some(Emitted::Bad) | None => bad += 1,
        }
    }
    if let Some(k) = kept {
        k.finish();
    }
    Ok((written, bad))
}

/// Write a counter or gauge series that has nothing but its one point to
/// write from its kept `text`; whether it was (`false`: the caller writes
/// it through the type's reader).
#[inline(always)]
fn write_plain(
    view: &SeriesCells<'_>,
    shape: &Shape,
    desc: &FamilyDesc<'_>,
    text: SeriesText<'_>,
    enc: &mut dyn Encoder,
) -> Result<bool> {
    match view::plain_point(view, shape) {
        Some(point) => Ok(enc.point_text(desc, text, &point)?),
        None => Ok(false),
    }
}

/// One series being written.
struct Series<'a> {
    area: &'a AreaInner,
    rec: Record,
    desc: &'a FamilyDesc<'a>,
    shape: &'a Shape,
    /// Its cells, of the generation the render saw.
    view: &'a SeriesCells<'a>,
}

impl Series<'_> {
    /// Read its labels from the area and write it (`None`: the labels do
    /// not read).
    fn write_read(&self, enc: &mut dyn Encoder, sc: &mut Scratch) -> Result<Option<Emitted>> {
        let Some(values) = read_series_labels(self.area, self.rec, self.shape, &mut sc.labels)
        else {
            return Ok(None);
        };
        with_pairs(self.shape, values.iter(), |labels| {
            self.emit(labels, enc, &mut sc.cells).map(Some)
        })
    }

    /// Write it with the text kept for it (`kept`; `taken`: its entry was
    /// taken already, by [`write_family`]'s look), reading and keeping its
    /// labels first if none is kept for its generation.
    fn write_kept(
        &self,
        taken: bool,
        enc: &mut dyn Encoder,
        sc: &mut Scratch,
        kept: &mut KeptFamily<'_>,
    ) -> Result<Option<Emitted>> {
        let off = self.rec.off;
        let gen = self.view.generation();
        // A series' labels are written once, before it is committed, and
        // never change while it lives (its generation with it): the text kept
        // for this generation is the text of these labels.
        if !taken && !kept.take(off, gen) {
            let Some(values) = read_series_labels(self.area, self.rec, self.shape, &mut sc.labels)
            else {
                return Ok(None);
            };
            with_pairs(self.shape, values.iter(), |labels| {
                kept.insert(off, gen, labels)
            });
        }
        let Some(entry) = kept.last() else {
            return Ok(None);
        };
        // A counter or gauge with nothing but its one point to write (its
        // entry just made): that point from the kept text, at once.
        if !taken && write_plain(self.view, self.shape, self.desc, entry.text(), enc)? {
            return Ok(Some(Emitted::Written));
        }
        let mut enc = WithText {
            enc,
            text: entry.text(),
            series: self,
            labels: &mut sc.labels,
        };
        self.emit(KEPT_LABELS, &mut enc, &mut sc.cells).map(Some)
    }

    /// Its type's reader writes its point(s).
    fn emit(
        &self,
        labels: Labels<'_>,
        enc: &mut dyn Encoder,
        cells: &mut view::Scratch,
    ) -> Result<Emitted> {
        let cx = Ctx {
            shape: self.shape,
            desc: self.desc,
            labels,
            enc,
            sc: cells,
        };
        view::emit(self.view, cx)
    }
}

/// Call `f` with the label pairs of a series (the family's names with
/// `values`): on the stack (a family has rarely more than a few labels), in
/// a vector past that.
fn with_pairs<'v, R>(
    shape: &Shape,
    values: impl Iterator<Item = &'v str>,
    f: impl FnOnce(Labels<'_>) -> R,
) -> R {
    let pairs = shape.label_names.iter().map(String::as_str).zip(values);
    let n = shape.label_names.len();
    if n <= 2 {
        let mut inline = [("", ""); 2];
        let n = inline.iter_mut().zip(pairs).map(|(s, p)| *s = p).count();
        f(&inline[..n])
    } else if n <= INLINE_LABELS {
        let mut inline = [("", ""); INLINE_LABELS];
        let n = inline.iter_mut().zip(pairs).map(|(s, p)| *s = p).count();
        f(&inline[..n])
    } else {
        let many: Vec<(&str, &str)> = pairs.collect();
        f(&many)
    }
}

/// What a series' reader is given as its labels when its text is kept:
/// the reader hands them to the encoder untouched, and [`WithText`] knows
/// them by their address (of this static, which no other slice has).
static KEPT: [(&str, &str); 1] = [("", "")];
const KEPT_LABELS: Labels<'static> = KEPT.split_at(0).0;

/// The encoder a series is written through with its kept text: a point of
/// [`KEPT_LABELS`] is written from the text (`point_text`) or, if the
/// encoder does not write that point from it, with the series' labels read
/// from the area; any other point as it comes.
struct WithText<'a, 's> {
    enc: &'a mut dyn Encoder,
    text: SeriesText<'a>,
    series: &'a Series<'s>,
    labels: &'a mut LabelScratch,
}

impl Encoder for WithText<'_, '_> {
    fn family(&mut self, family: &FamilyDesc<'_>) -> std::io::Result<()> {
        self.enc.family(family)
    }

    fn point(
        &mut self,
        family: &FamilyDesc<'_>,
        labels: Labels<'_>,
        point: &Point<'_>,
    ) -> std::io::Result<()> {
        if !std::ptr::eq(labels, KEPT_LABELS) {
            return self.enc.point(family, labels, point);
        }
        let text = SeriesText {
            labels: self.text.labels,
            value: &mut *self.text.value,
            created: &mut *self.text.created,
        };
        if self.enc.point_text(family, text, point)? {
            return Ok(());
        }
        self.with_area_labels(family, point, &[])
    }

    /// A point with exemplars is never written from the kept text (which
    /// has no room for them): its labels are read from the area.
    fn point_with_exemplars(
        &mut self,
        family: &FamilyDesc<'_>,
        labels: Labels<'_>,
        point: &Point<'_>,
        exemplars: &[Exemplar],
    ) -> std::io::Result<()> {
        if exemplars.is_empty() {
            return self.point(family, labels, point);
        }
        if !std::ptr::eq(labels, KEPT_LABELS) {
            return self
                .enc
                .point_with_exemplars(family, labels, point, exemplars);
        }
        self.with_area_labels(family, point, exemplars)
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.enc.finish()
    }
}

impl WithText<'_, '_> {
    /// Write a kept-text series' point with its labels read from the area.
    fn with_area_labels(
        &mut self,
        family: &FamilyDesc<'_>,
        point: &Point<'_>,
        exemplars: &[Exemplar],
    ) -> std::io::Result<()> {
        let s = self.series;
        match read_series_labels(s.area, s.rec, s.shape, self.labels) {
            Some(values) => with_pairs(s.shape, values.iter(), |labels| {
                self.enc
                    .point_with_exemplars(family, labels, point, exemplars)
            }),
            // They read when the text was kept, for this generation; the
            // record is damaged since: the point is left out.
            None => Ok(()),
        }
    }
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

#[cfg(test)]
mod tests {
    use crate::metrics::GaugeMode;
    use crate::{Area, AreaOptions, Format, Opts};

    /// Renders of `area` in both text formats: one that reads every label
    /// (the kept text is held by the test, as by another render thread),
    /// then two that keep and use the kept text; all three the same bytes.
    fn kept_equals_read(area: &Area) -> (String, String) {
        // Without the self-metrics (the render's duration changes).
        let reg = area.registry().without_self_metrics();
        let mut outs = Vec::new();
        for format in [Format::Prometheus, Format::OpenMetrics] {
            let read = {
                let _held = area.inner.series_text.lock().unwrap();
                reg.render_to_string(format).unwrap()
            };
            let first = reg.render_to_string(format).unwrap();
            let second = reg.render_to_string(format).unwrap();
            assert_eq!(first, read, "{format:?}: first render with kept text");
            assert_eq!(second, read, "{format:?}: second render with kept text");
            outs.push(read);
        }
        let om = outs.pop().unwrap();
        (outs.pop().unwrap(), om)
    }

    /// A family caught between the two steps of an unregister (its record
    /// REMOVED, its series still live: the window of every unregister, and
    /// what a holder killed in it leaves) is gone from the render and is
    /// not a damaged record, nor are its series.
    #[test]
    fn a_family_being_unregistered_is_not_bad() {
        let area = Area::anonymous(&AreaOptions::with_pages(256)).unwrap();
        let reg = area.registry().without_self_metrics();
        let gone = reg
            .counter(Opts::new("gone", "G.").labels(&["k"]).eager(true))
            .unwrap();
        for k in ["a", "b", "c"] {
            gone.labels(&[k]).unwrap().inc();
        }
        // A family registered after it: its series follow the removed ones.
        let kept = reg.counter(Opts::new("kept", "K.").eager(true)).unwrap();
        kept.get().unwrap().inc();
        assert!(area
            .inner
            .mark_family_removed(gone.inner.off, gone.inner.gen));
        let mut out = Vec::new();
        let stats = reg.render(&mut out, Format::Prometheus).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(stats.bad_records, 0, "{text}");
        assert!(!text.contains("gone"), "{text}");
        assert!(text.contains("kept_total 1\n"), "{text}");
    }

    /// A counter's exemplar shows in every OpenMetrics render, the ones that
    /// write its series from the kept text included, beside a series
    /// without one.
    #[test]
    fn kept_text_keeps_exemplars() {
        let area = Area::anonymous(&AreaOptions::with_pages(256)).unwrap();
        let reg = area.registry().without_self_metrics();
        let c = reg
            .counter(Opts::new("c", "C.").labels(&["path"]).eager(true))
            .unwrap();
        c.labels(&["/plain"]).unwrap().inc();
        c.labels(&["/ex"])
            .unwrap()
            .add_with_exemplar(2.0, &[("trace_id", "abc")])
            .unwrap();
        for round in 0..3 {
            let text = reg.render_to_string(Format::OpenMetrics).unwrap();
            let line = text
                .lines()
                .find(|l| l.starts_with("c_total{path=\"/ex\"}"))
                .unwrap();
            assert!(
                line.contains(" # {trace_id=\"abc\"} 2"),
                "render {round}: {line}"
            );
            assert!(text.contains("c_total{path=\"/plain\"} 1\n"), "{text}");
        }
    }

    /// Every type, escaping, no labels, `_created`, gauges per worker: the
    /// text kept from one render to the next gives the bytes the labels
    /// read from the area give.
    #[test]
    fn kept_text_renders_the_same_bytes() {
        let area = Area::anonymous(&AreaOptions::with_pages(256)).unwrap();
        let reg = area.registry().without_self_metrics();
        let c = reg
            .counter(Opts::new("c", "C.").labels(&["path", "code"]).eager(true))
            .unwrap();
        for (p, code) in [
            ("/a", "200"),
            ("q\"uo\\te\nnl", "500"),
            ("größe ✓", ""),
            ("", "x"),
        ] {
            c.labels(&[p, code]).unwrap().add(1.5).unwrap();
        }
        c.labels(&["/big", "200"])
            .unwrap()
            .add(123_456_789.0)
            .unwrap();
        reg.counter(Opts::new("bare", "No labels.").eager(true))
            .unwrap()
            .get()
            .unwrap()
            .inc();
        let g = reg
            .gauge(Opts::new("g", "G.").labels(&["k"]), GaugeMode::Sum)
            .unwrap();
        g.labels(&["v"]).unwrap().set(-2.25);
        g.labels(&["w"]).unwrap().set(7.0);
        let ga = reg
            .gauge(
                Opts::new("ga", "Per worker.").labels(&["k"]),
                GaugeMode::All,
            )
            .unwrap();
        ga.labels(&["v"]).unwrap().set(3.0);
        let h = reg
            .histogram(Opts::new("h", "H.").labels(&["k"]), &[0.5, 1.0])
            .unwrap();
        h.labels(&["v"]).unwrap().observe(0.7).unwrap();
        reg.info(Opts::new("build", "Build.").labels(&["version"]))
            .unwrap()
            .labels(&["1.2.3"])
            .unwrap();
        reg.state_set(Opts::new("st", "S.").labels(&["k"]), &["on", "off"])
            .unwrap()
            .labels(&["v"])
            .unwrap()
            .set("on")
            .unwrap();
        crate::buffer::flush();
        let (text, om) = kept_equals_read(&area);
        assert!(
            text.contains("c_total{path=\"q\\\"uo\\\\te\\nnl\",code=\"500\"} 1.5\n"),
            "{text}"
        );
        assert!(
            text.contains("c_total{path=\"/big\",code=\"200\"} 1.23456789e+08\n"),
            "{text}"
        );
        assert!(text.contains("bare_total 1\n"), "{text}");
        assert!(text.contains("g{k=\"v\"} -2.25\n"), "{text}");
        assert!(om.contains("bare_created "), "{om}");
        assert!(om.contains("c_created{path=\"/a\",code=\"200\"} "), "{om}");
        assert!(text.contains("ga{k=\"v\",worker=\""), "{text}");
    }

    /// Values that change between renders (whole numbers, fractions,
    /// large, negative gauges, NaN) are written anew, not from the text
    /// kept for the previous value; a render into a writer and one into a
    /// string (the encoder's buffer is the string's) give the same bytes.
    #[test]
    fn kept_value_text_follows_the_value() {
        let area = Area::anonymous(&AreaOptions::with_pages(256)).unwrap();
        let reg = area.registry().without_self_metrics();
        let c = reg
            .counter(Opts::new("c", "C.").labels(&["k"]).eager(true))
            .unwrap();
        let g = reg
            .gauge(Opts::new("g", "G.").labels(&["k"]), GaugeMode::LiveSum)
            .unwrap();
        let steps = [1.0, 0.5, 999_998.5, 1e9, 0.0];
        let gauges = [3.0, -2.5, f64::NAN, 1e-7, 3.0];
        for (round, (&add, &set)) in steps.iter().zip(&gauges).enumerate() {
            c.labels(&["a"]).unwrap().add(add).unwrap();
            c.labels(&["b"]).unwrap().add(add * 2.0).unwrap();
            g.labels(&["a"]).unwrap().set(set);
            crate::buffer::flush();
            let (text, om) = kept_equals_read(&area);
            let total: f64 = steps[..=round].iter().sum();
            let mut want = Vec::new();
            crate::encoding::write_f64(&mut want, total);
            let want = format!("c_total{{k=\"a\"}} {}\n", String::from_utf8(want).unwrap());
            assert!(text.contains(&want), "round {round}: {want} not in {text}");
            for format in [Format::Prometheus, Format::OpenMetrics] {
                let mut out = Vec::new();
                reg.render(&mut out, format).unwrap();
                let string = reg.render_to_string(format).unwrap();
                assert_eq!(String::from_utf8(out).unwrap(), string, "{format:?}");
            }
            assert!(om.ends_with("# EOF\n"), "{om}");
        }
    }

    /// A series removed and its record reused by another (a new
    /// generation) renders with its own labels, not the kept ones; the text
    /// kept of series gone is dropped by the next render.
    #[test]
    fn kept_text_follows_generations_and_removals() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let reg = area.registry().without_self_metrics();
        let c = reg
            .counter(Opts::new("c", "C.").labels(&["k"]).eager(true))
            .unwrap();
        for i in 0..20 {
            c.labels(&[&format!("old{i}")]).unwrap().inc();
        }
        let text = area.render_to_string(Format::Prometheus).unwrap();
        assert!(text.contains("c_total{k=\"old7\"} 1\n"), "{text}");
        assert_eq!(area.inner.series_text.lock().unwrap().len(), 20);
        for i in 0..20 {
            assert!(c.remove(&[&format!("old{i}")]).unwrap());
        }
        // Past the grace period, new series may take the removed records.
        std::thread::sleep(std::time::Duration::from_millis(
            crate::area::format::FREE_GRACE_MS + 50,
        ));
        for i in 0..20 {
            c.labels(&[&format!("new{i}")]).unwrap().add(2.0).unwrap();
        }
        let (text, _) = kept_equals_read(&area);
        assert!(!text.contains("old"), "{text}");
        for i in 0..20 {
            assert!(
                text.contains(&format!("c_total{{k=\"new{i}\"}} 2\n")),
                "{text}"
            );
        }
        assert_eq!(area.inner.series_text.lock().unwrap().len(), 20);
        assert!(area.stats().records_reused > 0, "no record was reused");
    }

    /// A render with a prefix keeps the text of the other families' series.
    #[test]
    fn prefix_render_keeps_other_families() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let reg = area.registry().without_self_metrics();
        let a = reg
            .counter(Opts::new("a_x", "A.").labels(&["k"]).eager(true))
            .unwrap();
        let b = reg
            .counter(Opts::new("b_x", "B.").labels(&["k"]).eager(true))
            .unwrap();
        a.labels(&["1"]).unwrap().inc();
        b.labels(&["2"]).unwrap().inc();
        area.render_to_string(Format::Prometheus).unwrap();
        assert_eq!(area.inner.series_text.lock().unwrap().len(), 2);
        let only_a = area.registry().with_prefix("a").unwrap();
        let text = only_a.render_to_string(Format::Prometheus).unwrap();
        assert!(
            text.contains("a_x_total{k=\"1\"} 1\n") && !text.contains("b_x"),
            "{text}"
        );
        assert_eq!(area.inner.series_text.lock().unwrap().len(), 2);
    }
}
