//! `promshm inspect`: what is in an area, read-only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use promshm::encoding::{Encoder, FamilyDesc, Labels, MetricType, Point};
use promshm::{AreaStats, RenderStats, WorkerInfo};

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
    let report = Report::gather(&a.area, files)?;
    if a.json {
        println!("{:#}", report.json());
    } else {
        print!("{}", report.text());
    }
    report.check_damage()
}

/// Everything `inspect` prints, read once from the area.
struct Report<'a> {
    path: &'a Path,
    stats: AreaStats,
    workers: Vec<WorkerInfo>,
    census: Census,
    walked: RenderStats,
    file_bytes: u64,
    now_ms: u64,
}

impl<'a> Report<'a> {
    /// Open the area read-only, read its statistics and worker table, and
    /// walk it once (without the self-metrics) to count what is readable.
    fn gather(path: &'a Path, files: &FileArgs) -> CliResult<Report<'a>> {
        let area = open_area(path, files)?;
        let stats = area.stats();
        let workers = area.workers();
        let mut census = Census::default();
        let walked = area
            .registry()
            .without_self_metrics()
            .render_with(&mut census)
            .map_err(|e| area_error(path, e))?;
        Ok(Report {
            path,
            stats,
            workers,
            census,
            walked,
            file_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            now_ms: now_ms(),
        })
    }

    fn pages_free(&self) -> u32 {
        self.stats.pages_total.saturating_sub(self.stats.pages_used)
    }

    fn workers_alive(&self) -> usize {
        self.workers.iter().filter(|w| w.alive).count()
    }

    /// Damaged records make the command fail (after printing the report).
    fn check_damage(&self) -> CliResult {
        if self.walked.bad_records == 0 {
            return Ok(());
        }
        Err(CliError::new(
            exit::AREA_INCOMPATIBLE,
            format!(
                "{}: {} damaged records were skipped (the rest is readable)",
                self.path.display(),
                self.walked.bad_records
            ),
        ))
    }

    // ---- --json ----------------------------------------------------------------

    fn json(&self) -> serde_json::Value {
        let s = &self.stats;
        serde_json::json!({
            "path": self.path.display().to_string(),
            "format_version": s.format_version,
            "file_bytes": self.file_bytes,
            "created_ms": s.created_ms,
            "pages": {
                "total": s.pages_total,
                "used": s.pages_used,
                "free": self.pages_free(),
                "bytes_free": s.bytes_free,
            },
            "families": s.families,
            "series": s.series,
            "walked": {
                "families": self.walked.families,
                "series": self.walked.series,
                "bad_records": self.walked.bad_records,
                "families_by_type": json_by_type(&self.census.families),
                "series_by_type": json_by_type(&self.census.series),
            },
            "workers": {
                "slots": s.max_workers,
                "in_use": self.workers.len(),
                "alive": self.workers_alive(),
                "table": self.workers.iter().map(json_worker).collect::<Vec<_>>(),
            },
            "counters": {
                "registrations_refused": s.refused,
                "workers_reaped": s.reaped_workers,
                "flushes": s.flushes,
                "lock_recoveries": s.locks_recovered,
                "updates_dropped": s.dropped_updates,
                "bad_records_last_render": s.bad_records,
                "last_render_ns": s.render_ns,
            },
        })
    }

    // ---- text ------------------------------------------------------------------

    fn text(&self) -> String {
        let mut s = String::new();
        self.text_summary(&mut s);
        self.text_workers(&mut s);
        self.text_counters(&mut s);
        s
    }

    /// The area, its pages, families, series and damaged records.
    fn text_summary(&self, s: &mut String) {
        let st = &self.stats;
        let pct = |n: u32| {
            if st.pages_total == 0 {
                0.0
            } else {
                100.0 * f64::from(n) / f64::from(st.pages_total)
            }
        };
        let _ = writeln!(s, "area            {}", self.path.display());
        let _ = writeln!(s, "format version  {}", st.format_version);
        let _ = writeln!(s, "created         {}", rfc3339_ms(st.created_ms));
        let _ = writeln!(
            s,
            "pages           {} total ({} bytes), {} used ({:.1} %), {} free ({} bytes unallocated)",
            st.pages_total,
            self.file_bytes,
            st.pages_used,
            pct(st.pages_used),
            self.pages_free(),
            st.bytes_free
        );
        let _ = writeln!(
            s,
            "families        {} (read now: {}{})",
            st.families,
            self.walked.families,
            text_by_type(&self.census.families)
        );
        let _ = writeln!(
            s,
            "series          {} (read now: {}{})",
            st.series,
            self.walked.series,
            text_by_type(&self.census.series)
        );
        let _ = writeln!(s, "damaged records {}", self.walked.bad_records);
    }

    /// The worker slots, and a table of the workers in them.
    fn text_workers(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "worker slots    {} in use of {}, {} alive",
            self.workers.len(),
            self.stats.max_workers,
            self.workers_alive()
        );
        if self.workers.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "  {:>5} {:>8} {:<6} {:<24} {:<24} {:>9}",
            "slot", "pid", "state", "started", "last flush", "flushes"
        );
        for w in &self.workers {
            let started = start_ticks_to_ms(w.start_time)
                .map(rfc3339_ms)
                .unwrap_or_else(|| format!("tick {}", w.start_time));
            let last = if w.last_flush_ms == 0 {
                "never".to_owned()
            } else {
                format!(
                    "{} ({}s ago)",
                    rfc3339_ms(w.last_flush_ms),
                    self.now_ms.saturating_sub(w.last_flush_ms) / 1000
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

    /// The area's event counters.
    fn text_counters(&self, s: &mut String) {
        let st = &self.stats;
        let _ = writeln!(s, "counters");
        let _ = writeln!(s, "  registrations refused (area full)  {}", st.refused);
        let _ = writeln!(
            s,
            "  dead workers reaped                {}",
            st.reaped_workers
        );
        let _ = writeln!(s, "  flushes                            {}", st.flushes);
        let _ = writeln!(
            s,
            "  locks recovered from dead holders  {}",
            st.locks_recovered
        );
        let _ = writeln!(
            s,
            "  gauge updates dropped (no slot)    {}",
            st.dropped_updates
        );
        let _ = writeln!(s, "  damaged records, last render       {}", st.bad_records);
        let _ = writeln!(
            s,
            "  last render duration               {:.3} ms",
            st.render_ns as f64 / 1e6
        );
    }
}

/// Counts of every type (0 for a type not seen), by the type's name.
fn json_by_type(m: &BTreeMap<&'static str, u64>) -> serde_json::Value {
    serde_json::Value::Object(
        MetricType::ALL
            .iter()
            .map(|t| {
                (
                    t.as_str().to_owned(),
                    m.get(t.as_str()).copied().unwrap_or(0).into(),
                )
            })
            .collect(),
    )
}

fn json_worker(w: &WorkerInfo) -> serde_json::Value {
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
}

/// `": counter 2, gauge 1"` for the types seen, `""` if none.
fn text_by_type(m: &BTreeMap<&'static str, u64>) -> String {
    if m.is_empty() {
        return String::new();
    }
    let list: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!(": {}", list.join(", "))
}
