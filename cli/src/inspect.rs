//! `promshm inspect`: what is in an area, read-only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

use promshm::encoding::{Encoder, FamilyDesc, Labels, MetricType, Point};

use crate::common::{
    area_error, exit, now_ms, open_area, rfc3339_ms, start_ticks_to_ms, CliError, CliResult,
};
use crate::files::FileArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The area file.
    pub area: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Counts families and series by type while the library walks the area.
#[derive(Default)]
struct Census {
    families: BTreeMap<&'static str, u64>,
    series: BTreeMap<&'static str, u64>,
}

impl Encoder for Census {
    fn family(&mut self, f: &FamilyDesc<'_>) -> io::Result<()> {
        *self.families.entry(f.kind.as_str()).or_default() += 1;
        Ok(())
    }
    fn point(&mut self, f: &FamilyDesc<'_>, _: Labels<'_>, _: &Point<'_>) -> io::Result<()> {
        *self.series.entry(f.kind.as_str()).or_default() += 1;
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub fn run(a: Args, files: &FileArgs) -> CliResult {
    let area = open_area(&a.area, files)?;
    let stats = area.stats();
    let workers = area.workers();
    let mut census = Census::default();
    let walked = area
        .registry()
        .without_self_metrics()
        .render_with(&mut census)
        .map_err(|e| area_error(&a.area, e))?;
    let file_bytes = std::fs::metadata(&a.area).map(|m| m.len()).unwrap_or(0);
    let pages_free = stats.pages_total.saturating_sub(stats.pages_used);
    let now = now_ms();

    if a.json {
        let types = |m: &BTreeMap<&'static str, u64>| {
            let all = [
                MetricType::Counter,
                MetricType::Gauge,
                MetricType::Histogram,
                MetricType::Summary,
                MetricType::Info,
                MetricType::StateSet,
            ];
            serde_json::Value::Object(
                all.iter()
                    .map(|t| {
                        (
                            t.as_str().to_owned(),
                            m.get(t.as_str()).copied().unwrap_or(0).into(),
                        )
                    })
                    .collect(),
            )
        };
        let workers_json: Vec<_> = workers
            .iter()
            .map(|w| {
                serde_json::json!({
                    "slot": w.slot,
                    "pid": w.pid,
                    "start_time_ticks": w.start_time,
                    "started_ms": start_ticks_to_ms(w.start_time),
                    "alive": w.alive,
                    "generation": w.generation,
                    "attached_ms": w.attached_ms,
                    "last_flush_ms": w.last_flush_ms,
                    "heartbeat_ms": w.heartbeat_ms,
                    "flushes": w.flushes,
                })
            })
            .collect();
        let v = serde_json::json!({
            "path": a.area.display().to_string(),
            "format_version": stats.format_version,
            "file_bytes": file_bytes,
            "created_ms": stats.created_ms,
            "pages": {
                "total": stats.pages_total,
                "used": stats.pages_used,
                "free": pages_free,
                "bytes_free": stats.bytes_free,
            },
            "families": stats.families,
            "series": stats.series,
            "walked": {
                "families": walked.families,
                "series": walked.series,
                "bad_records": walked.bad_records,
                "families_by_type": types(&census.families),
                "series_by_type": types(&census.series),
            },
            "workers": {
                "slots": stats.max_workers,
                "in_use": workers.len(),
                "alive": workers.iter().filter(|w| w.alive).count(),
                "table": workers_json,
            },
            "counters": {
                "registrations_refused": stats.refused,
                "workers_reaped": stats.reaped_workers,
                "flushes": stats.flushes,
                "lock_recoveries": stats.locks_recovered,
                "updates_dropped": stats.dropped_updates,
                "bad_records_last_render": stats.bad_records,
                "last_render_ns": stats.render_ns,
            },
        });
        println!("{v:#}");
    } else {
        let mut s = String::new();
        let pct = |n: u32| {
            if stats.pages_total == 0 {
                0.0
            } else {
                100.0 * f64::from(n) / f64::from(stats.pages_total)
            }
        };
        let by_type = |m: &BTreeMap<&'static str, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(s, "area            {}", a.area.display());
        let _ = writeln!(s, "format version  {}", stats.format_version);
        let _ = writeln!(s, "created         {}", rfc3339_ms(stats.created_ms));
        let _ = writeln!(
            s,
            "pages           {} total ({} bytes), {} used ({:.1} %), {} free ({} bytes unallocated)",
            stats.pages_total,
            file_bytes,
            stats.pages_used,
            pct(stats.pages_used),
            pages_free,
            stats.bytes_free
        );
        let _ = writeln!(
            s,
            "families        {} (read now: {}{}{})",
            stats.families,
            walked.families,
            if census.families.is_empty() { "" } else { ": " },
            by_type(&census.families)
        );
        let _ = writeln!(
            s,
            "series          {} (read now: {}{}{})",
            stats.series,
            walked.series,
            if census.series.is_empty() { "" } else { ": " },
            by_type(&census.series)
        );
        let _ = writeln!(s, "damaged records {}", walked.bad_records);
        let _ = writeln!(
            s,
            "worker slots    {} in use of {}, {} alive",
            workers.len(),
            stats.max_workers,
            workers.iter().filter(|w| w.alive).count()
        );
        if !workers.is_empty() {
            let _ = writeln!(
                s,
                "  {:>5} {:>8} {:<6} {:<24} {:<24} {:>9}",
                "slot", "pid", "state", "started", "last flush", "flushes"
            );
            for w in &workers {
                let started = start_ticks_to_ms(w.start_time)
                    .map(rfc3339_ms)
                    .unwrap_or_else(|| format!("tick {}", w.start_time));
                let last = if w.last_flush_ms == 0 {
                    "never".to_owned()
                } else {
                    format!(
                        "{} ({}s ago)",
                        rfc3339_ms(w.last_flush_ms),
                        now.saturating_sub(w.last_flush_ms) / 1000
                    )
                };
                let _ = writeln!(
                    s,
                    "  {:>5} {:>8} {:<6} {:<24} {:<24} {:>9}",
                    w.slot,
                    w.pid,
                    if w.alive { "alive" } else { "dead" },
                    started,
                    last,
                    w.flushes
                );
            }
        }
        let _ = writeln!(s, "counters");
        let _ = writeln!(s, "  registrations refused (area full)  {}", stats.refused);
        let _ = writeln!(
            s,
            "  dead workers reaped                {}",
            stats.reaped_workers
        );
        let _ = writeln!(s, "  flushes                            {}", stats.flushes);
        let _ = writeln!(
            s,
            "  locks recovered from dead holders  {}",
            stats.locks_recovered
        );
        let _ = writeln!(
            s,
            "  gauge updates dropped (no slot)    {}",
            stats.dropped_updates
        );
        let _ = writeln!(
            s,
            "  damaged records, last render       {}",
            stats.bad_records
        );
        let _ = writeln!(
            s,
            "  last render duration               {:.3} ms",
            stats.render_ns as f64 / 1e6
        );
        print!("{s}");
    }
    if walked.bad_records > 0 {
        return Err(CliError::new(
            exit::AREA_INCOMPATIBLE,
            format!(
                "{}: {} damaged records were skipped (the rest is readable)",
                a.area.display(),
                walked.bad_records
            ),
        ));
    }
    Ok(())
}
