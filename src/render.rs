//! Rendering: walk the area once, group series by family, sort families by
//! name, and stream every family through an encoder. Memory is one small
//! entry per live series; bytes are checked as they are read, and a damaged
//! record is skipped and counted, never fatal.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::area::format::*;
use crate::area::records::Record;
use crate::area::AreaInner;
use crate::encoding::{self, Encoder, FamilyDesc, Format, MetricType, Point};
use crate::error::Result;
use crate::metrics::shape::Shape;
use crate::metrics::view::{self, Ctx, Emitted, SeriesCells};
use crate::registry::{read_series_values, SELF_METRICS_PREFIX};

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
    let mut enc = encoding::encoder(format, std::io::BufWriter::with_capacity(64 * 1024, out));
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
    let mut families: Vec<FamilyEntry> = Vec::new();
    let mut by_offset: HashMap<usize, usize> = HashMap::new();
    // Every name the families kept so far render.
    let mut names: HashMap<String, ()> = HashMap::new();
    // Offsets of the valid families (kept or not), and the series seen
    // before their family.
    let mut valid_families = std::collections::HashSet::new();
    let mut later = Vec::new();
    // The series of a family mostly follow each other: the last family found
    // spares a hash lookup per series.
    let mut last_family: Option<(usize, usize)> = None;
    let end = area.walk(0, false, |rec| {
        if rec.state != STATE_LIVE {
            // Removed and free series and blobs are not read (their bytes
            // are being recycled; the walk checked their header and size
            // class). Only series and blobs are ever freed.
            if rec.kind == KIND_FAMILY && rec.state != STATE_WRITING {
                *bad += 1;
            }
            return;
        }
        match rec.kind {
            KIND_FAMILY => match Shape::decode(area, rec) {
                Some(shape) => {
                    // Every name a family renders is its own: a family that
                    // would render one an earlier family renders (the same
                    // name, or e.g. `s_count` next to a summary `s`) is bad,
                    // as registration refuses it (`Error::NameTaken`).
                    let rendered = || {
                        let name = &shape.name;
                        shape
                            .kind
                            .rendered_suffixes()
                            .map(move |sfx| format!("{name}{sfx}"))
                    };
                    if rendered().any(|n| names.contains_key(&n)) {
                        *bad += 1;
                        return;
                    }
                    names.extend(rendered().map(|n| (n, ())));
                    valid_families.insert(rec.off);
                    if prefix.is_some_and(|p| !shape.name.starts_with(p)) {
                        return;
                    }
                    by_offset.insert(rec.off, families.len());
                    families.push(FamilyEntry {
                        shape,
                        series: Vec::new(),
                    });
                }
                None => *bad += 1,
            },
            KIND_SERIES => {
                let fam = area
                    .u32_at(rec.off + ser::FAMILY)
                    .map(|f| f.load(Ordering::Relaxed) as usize)
                    .unwrap_or(0);
                let found = match last_family {
                    Some((off, i)) if off == fam => Some(i),
                    _ => by_offset.get(&fam).copied(),
                };
                if let Some(i) = found {
                    last_family = Some((fam, i));
                    families[i].series.push(rec);
                } else {
                    // Its family may follow it (a series can reuse the
                    // space of a record before its family's).
                    later.push((fam, rec));
                }
            }
            // An info blob is read through its series, but a damaged length
            // here would silently swallow the records after it: count it.
            KIND_BLOB if prefix.is_none() => {
                let gen = area.generation(rec.off);
                if crate::metrics::info::read_blob_pairs(area, rec.off).is_none()
                    && area.record_state(rec.off, KIND_BLOB) == Some(STATE_LIVE)
                    && area.generation(rec.off) == gen
                {
                    *bad += 1;
                }
            }
            _ => {}
        }
    });
    *bad += end.bad;
    let placed_later = !later.is_empty();
    for (fam, rec) in later {
        if let Some(&i) = by_offset.get(&fam) {
            families[i].series.push(rec);
        } else if !valid_families.contains(&fam) && prefix.is_none() {
            // A series whose family is unknown (or damaged).
            *bad += 1;
        }
    }
    if placed_later {
        for f in &mut families {
            f.series.sort_by_key(|r| r.off);
        }
    }

    families
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
    values: Vec<String>,
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
    let mut values = std::mem::take(&mut sc.values);
    // One allocation for the label pairs of every series (moved into each
    // series' borrow of `values` and back, see the end of the loop body).
    let mut spare_labels: Vec<(&'static str, &'static str)> = Vec::new();
    for &rec in &f.series {
        // The series as the walk saw it: a record freed since (and perhaps
        // reused, a grace period later) is skipped, checked again before
        // each value is written.
        let gen = area.generation(rec.off);
        let same = || {
            area.record_state(rec.off, KIND_SERIES) == Some(STATE_LIVE)
                && area.generation(rec.off) == gen
        };
        if !same() {
            continue;
        }
        if read_series_values(area, rec, shape, &mut values).is_none() {
            if same() {
                bad += 1;
            }
            continue;
        }
        let mut labels = reuse(std::mem::take(&mut spare_labels));
        labels.extend(
            shape
                .label_names
                .iter()
                .map(String::as_str)
                .zip(values.iter().map(String::as_str)),
        );
        let view = SeriesCells::new(area, rec.off, &same);
        let cx = Ctx {
            shape,
            desc: &desc,
            labels: &labels,
            enc: &mut *enc,
            sc: &mut sc.cells,
        };
        match view::emit(&view, cx)? {
            Emitted::Written => written += 1,
            Emitted::Skipped => {}
            Emitted::Bad => bad += 1,
        }
        spare_labels = reuse(labels);
    }
    sc.values = values;
    Ok((written, bad))
}

/// An empty vector with the allocation of `v`, for items of another lifetime
/// (the standard library collects in place when the layouts match).
fn reuse<'b>(mut v: Vec<(&str, &str)>) -> Vec<(&'b str, &'b str)> {
    v.clear();
    v.into_iter().map(|_| ("", "")).collect()
}

fn self_metric_values(area: &AreaInner) -> Vec<SelfMetric> {
    let h = |f: usize| area.hdr(f).load(Ordering::Relaxed) as f64;
    let used = area.cursor().div_ceil(PAGE_SIZE) as f64;
    let live_workers = area.worker_infos().iter().filter(|w| w.alive).count() as f64;
    let own = |name, help, kind, value| SelfMetric {
        name,
        help,
        kind,
        value,
    };
    debug_assert!(SELF_METRICS_PREFIX == "promshm_");
    vec![
        own(
            "promshm_area_pages",
            "Pages in the shared area.",
            MetricType::Gauge,
            (area.len() / PAGE_SIZE) as f64,
        ),
        own(
            "promshm_area_pages_used",
            "Pages of the shared area in use.",
            MetricType::Gauge,
            used,
        ),
        own(
            "promshm_families",
            "Metric families registered in the area.",
            MetricType::Gauge,
            h(hdr::STAT_FAMILIES),
        ),
        own(
            "promshm_series",
            "Live series in the area.",
            MetricType::Gauge,
            h(hdr::STAT_SERIES),
        ),
        own(
            "promshm_registrations_refused",
            "Registrations refused because the area was full.",
            MetricType::Counter,
            h(hdr::STAT_REFUSED),
        ),
        own(
            "promshm_registrations_name_taken",
            "Registrations refused because a name the family would render \
             (with its suffixes) is another family's.",
            MetricType::Counter,
            h(hdr::STAT_NAME_CLASHES),
        ),
        own(
            "promshm_workers",
            "Live worker processes attached to the area.",
            MetricType::Gauge,
            live_workers,
        ),
        own(
            "promshm_workers_reaped",
            "Dead worker processes whose slots were reclaimed.",
            MetricType::Counter,
            h(hdr::STAT_REAPED),
        ),
        own(
            "promshm_flushes",
            "Flushes of thread-local buffers into the area.",
            MetricType::Counter,
            h(hdr::STAT_FLUSHES),
        ),
        own(
            "promshm_render_duration_seconds",
            "Duration of the previous render.",
            MetricType::Gauge,
            h(hdr::STAT_RENDER_NS) / 1e9,
        ),
        own(
            "promshm_bad_records",
            "Damaged records skipped by the previous render.",
            MetricType::Gauge,
            h(hdr::STAT_BAD_RECORDS),
        ),
        own(
            "promshm_lock_recoveries",
            "Area locks left by dead holders and recovered.",
            MetricType::Counter,
            h(hdr::STAT_LOCK_RECOVERED),
        ),
        own(
            "promshm_native_observations_clamped",
            "Native histogram observations outside their family's bucket window, \
             counted in the window's edge bucket.",
            MetricType::Counter,
            h(hdr::STAT_NATIVE_CLAMPED),
        ),
        own(
            "promshm_updates_dropped",
            "Gauge updates dropped because the writing process had no worker slot \
             (none was free, or attaching was backing off after a failure).",
            MetricType::Counter,
            h(hdr::STAT_DROPPED),
        ),
        own(
            "promshm_area_lock_acquisitions",
            "Times the area lock was taken, by every process of the area.",
            MetricType::Counter,
            h(hdr::STAT_LOCKS_TAKEN),
        ),
        own(
            "promshm_area_lock_timeouts",
            "Waits for the area lock that gave up because another process held it \
             too long (the call failed or backed off).",
            MetricType::Counter,
            h(hdr::STAT_LOCK_TIMEOUTS),
        ),
    ]
}
