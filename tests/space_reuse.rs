//! Space reuse (issue 16): a fixed area runs indefinitely under churn
//! within its capacity of live series. Removed series, cleared families
//! and replaced info blobs give their records back; later registrations of
//! the same size class reuse them, in every process; a handle to a removed
//! series updates nothing, also once its record belongs to another series;
//! and processes SIGKILLed in the middle of churn leave no record both free
//! and live (checked with the independent reader, `tools/promshm_read.py`).
//!
//! Processes are re-executions of this test binary (see `common`).
//! `PROMSHM_CHURN_CYCLES` sets the cycles per process of the churn test
//! (default `DEFAULT_CYCLES`, sized for about a minute in a debug build on
//! a loaded 2-core machine; a release run of 1,000,000 is reported in
//! docs/PERFORMANCE.md).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use promshm::{Area, AreaOptions, Format, GaugeMode, OpenMode, Opts};

/// 256 pages: the 1 MiB area of the issue.
const PAGES: u32 = 256;
const DEFAULT_CYCLES: u64 = 20_000;
/// Series a worker keeps (every `cycles / KEPT` cycles it keeps the series
/// it created instead of removing them: they are made of reused records,
/// so stale writes into them would show).
const KEPT: u64 = 40;
/// A stale handle's increment: large enough to be recognised anywhere.
const STALE: f64 = 1_000_000.0;

#[test]
fn child_entry() {
    child_main(|role| match role {
        "churn" => churn(),
        other => panic!("unknown role {other:?}"),
    });
}

fn options() -> AreaOptions {
    AreaOptions::with_pages(PAGES)
}

fn keep_every(cycles: u64) -> u64 {
    (cycles / KEPT).max(2)
}

fn cycles() -> u64 {
    std::env::var("PROMSHM_CHURN_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_CYCLES)
}

/// Whether the churn creates and removes a gauge series per cycle
/// (`PROMSHM_CHURN_GAUGES=0` leaves them out: their 1,280-byte records and
/// the grace period bound the churn rate, see docs/PERFORMANCE.md).
fn with_gauges() -> bool {
    std::env::var("PROMSHM_CHURN_GAUGES").map_or(true, |v| v != "0")
}

/// How long the churn test waits for its workers: 5 minutes (a debug
/// build of the default run on a loaded machine), plus 1 ms per cycle
/// (4 times a release build's time with 1,280-byte gauges).
fn churn_bound(cycles: u64) -> Duration {
    Duration::from_secs(300) + Duration::from_millis(cycles)
}

/// The failing test of the issue: on version 2, `AreaFullError` after 762
/// create+remove cycles of a labelled livesum gauge in 256 pages.
#[test]
fn gauge_create_remove_cycles_never_fill_a_small_area() {
    let area = Area::anonymous(&options()).unwrap();
    let g = area
        .registry()
        .gauge(
            Opts::new("conn", "Per connection.").labels(&["id"]),
            GaugeMode::LiveSum,
        )
        .unwrap();
    for i in 0..20_000u64 {
        let id = i.to_string();
        g.labels(&[&id]).unwrap().set(i as f64);
        assert!(g.remove(&[&id]).unwrap(), "cycle {i}");
    }
    let stats = area.stats();
    assert_eq!(stats.series, 0);
    // Every cycle allocates one 112-byte series record (format 4; 1,280
    // bytes in format 3): at most 36 a page, 254 data pages, come from the
    // cursor (while freed ones wait out their grace period); the others are
    // reused.
    assert!(stats.records_reused >= 20_000 - 36 * 254, "{stats:?}");
    // Then a counter's create+remove loop works too (on version 2 it was
    // refused at the first new series).
    let c = area
        .registry()
        .counter(Opts::new("jobs", "Per job.").labels(&["id"]))
        .unwrap();
    for i in 0..5_000u64 {
        let id = i.to_string();
        c.labels(&[&id]).unwrap().inc();
        assert!(c.remove(&[&id]).unwrap());
    }
}

/// On version 2, `AreaFullError` after 10,668 replacements in 256 pages.
#[test]
fn info_replacements_reuse_the_replaced_blobs() {
    let area = Area::anonymous(&options()).unwrap();
    let info = area
        .registry()
        .info(Opts::new("build", "Build."))
        .unwrap()
        .get()
        .unwrap();
    let n = 40_000u64;
    for i in 0..n {
        info.set(&[("version", &format!("1.{i}")), ("commit", "abcdef")])
            .unwrap();
    }
    assert_eq!(
        info.get().unwrap(),
        vec![
            ("version".to_string(), format!("1.{}", n - 1)),
            ("commit".to_string(), "abcdef".to_string())
        ]
    );
    let text = area.render_to_string(Format::Prometheus).unwrap();
    assert!(
        text.contains(&format!(
            "build_info{{version=\"1.{}\",commit=\"abcdef\"}} 1",
            n - 1
        )),
        "{text}"
    );
    assert_eq!(area.stats().bad_records, 0);
}

/// Cleared families and removed histograms, summaries and state sets give
/// their space back too.
#[test]
fn cleared_families_and_every_type_are_reused() {
    let area = Area::anonymous(&options()).unwrap();
    let reg = area.registry();
    let h = reg
        .histogram(Opts::new("lat", "h").labels(&["id"]), &[0.1, 1.0, 10.0])
        .unwrap();
    let s = reg
        .state_set(Opts::new("st", "s").labels(&["id"]), &["a", "b"])
        .unwrap();
    let c = reg
        .counter(Opts::new("req", "c").labels(&["id"]).eager(true))
        .unwrap();
    for round in 0..400u64 {
        for i in 0..50u64 {
            let id = format!("{round}-{i}");
            h.labels(&[&id]).unwrap().observe(0.5).unwrap();
            s.labels(&[&id]).unwrap().set("b").unwrap();
            c.labels(&[&id]).unwrap().inc();
        }
        assert_eq!(h.clear().unwrap(), 50);
        assert_eq!(s.clear().unwrap(), 50);
        assert_eq!(c.clear().unwrap(), 50);
    }
    assert_eq!(area.stats().series, 0);
}

/// A handle to a removed series updates nothing visible, also once its
/// record was reused for another series (of the same family, or another).
#[test]
fn stale_handles_never_write_into_the_series_that_reuses_their_record() {
    let area = Area::anonymous(&options()).unwrap();
    let reg = area.registry();
    let eager = reg
        .counter(Opts::new("e", "e").labels(&["id"]).eager(true))
        .unwrap();
    let buffered = reg
        .counter(Opts::new("b", "b").labels(&["id"]).eager(false))
        .unwrap();
    let gauge = reg
        .gauge(Opts::new("g", "g").labels(&["id"]), GaugeMode::Sum)
        .unwrap();
    let hist = reg
        .histogram(Opts::new("h", "h").labels(&["id"]), &[1.0])
        .unwrap();
    let info = reg.info(Opts::new("i", "i").labels(&["id"])).unwrap();
    let states = reg
        .state_set(Opts::new("s", "s").labels(&["id"]), &["x", "y"])
        .unwrap();

    let old_e = eager.labels(&["old"]).unwrap();
    let old_b = buffered.labels(&["old"]).unwrap();
    let old_g = gauge.labels(&["old"]).unwrap();
    let old_h = hist.labels(&["old"]).unwrap();
    let old_i = info.labels(&["old"]).unwrap();
    let old_s = states.labels(&["old"]).unwrap();
    old_b.inc(); // buffered, not yet flushed: the flush must drop it
    old_i.set(&[("k", "old")]).unwrap();
    let reused_before = area.stats().records_reused;
    for f in [
        eager.remove(&["old"]),
        buffered.remove(&["old"]),
        gauge.remove(&["old"]),
        hist.remove(&["old"]),
        info.remove(&["old"]),
        states.remove(&["old"]),
    ] {
        assert!(f.unwrap());
    }
    // Past the grace period, new series of the same sizes take the records.
    std::thread::sleep(Duration::from_millis(250));
    let new_e = eager.labels(&["new"]).unwrap();
    let new_b = buffered.labels(&["new"]).unwrap();
    let new_g = gauge.labels(&["new"]).unwrap();
    let new_h = hist.labels(&["new"]).unwrap();
    let new_i = info.labels(&["new"]).unwrap();
    let new_s = states.labels(&["new"]).unwrap();
    new_i.set(&[("k", "new")]).unwrap();
    assert!(
        area.stats().records_reused >= reused_before + 6,
        "the new series reuse the old records: {:?}",
        area.stats()
    );
    new_e.inc();
    new_b.inc();
    new_g.set(2.0);
    new_h.observe(0.5).unwrap();
    new_s.set("x").unwrap();
    // Every kind of write through the stale handles.
    old_e.add(STALE).unwrap();
    old_b.add(STALE).unwrap();
    old_g.set(STALE);
    old_g.add(STALE);
    old_h.observe(STALE).unwrap();
    old_i.set(&[("k", "stale")]).unwrap();
    old_s.set("y").unwrap();
    promshm::flush();
    assert_eq!(new_e.get(), 1.0);
    assert_eq!(new_b.get(), 1.0);
    assert_eq!(new_g.get(), 2.0);
    assert_eq!(new_h.get().0, 1);
    assert_eq!(new_s.get(), "x");
    assert_eq!(
        new_i.get().unwrap(),
        vec![("k".to_string(), "new".to_string())]
    );
    // Reads through the stale handles see nothing.
    assert_eq!(old_e.get(), 0.0);
    assert_eq!(old_g.get(), 0.0);
    assert_eq!(old_h.get().0, 0);
    assert!(old_i.get().is_none());
    let text = area.render_to_string(Format::Prometheus).unwrap();
    assert!(!text.contains("id=\"old\""), "{text}");
    assert!(!text.contains("stale"), "{text}");
    assert!(
        !text.contains("1e+06") && !text.contains("1000000"),
        "{text}"
    );
}

/// A worker's churn loop (role "churn"): per cycle, create a labelled
/// counter (eager and buffered), gauge and histogram series, write them,
/// check that they hold exactly what this cycle wrote, remove them, then
/// write through the handles of the previous cycle's removed series (stale
/// handles, counted as no-ops); replace this worker's info; every
/// `keep_every` cycles keep the series instead (their records are reused
/// ones). Prints `done <cycles> <kept>`.
fn churn() {
    let wid = env_str("CHURN_WID");
    let cycles = env_u64("CHURN_CYCLES");
    let keep_every = keep_every(cycles);
    let area = Area::create(env_area(), &options()).unwrap();
    let reg = area.registry();
    let ce = reg
        .counter(
            Opts::new("churn_eager", "e")
                .labels(&["w", "k"])
                .eager(true),
        )
        .unwrap();
    let cb = reg
        .counter(
            Opts::new("churn_buffered", "b")
                .labels(&["w", "k"])
                .eager(false),
        )
        .unwrap();
    let gauges = env_str("CHURN_GAUGES") == "1";
    let g = reg
        .gauge(
            Opts::new("churn_gauge", "g").labels(&["w", "k"]),
            GaugeMode::Sum,
        )
        .unwrap();
    let h = reg
        .histogram(
            Opts::new("churn_hist", "h").labels(&["w", "k"]),
            &[1.0, 2.0],
        )
        .unwrap();
    let info = reg
        .info(Opts::new("churn_info", "i").labels(&["w"]))
        .unwrap()
        .labels(&[&wid])
        .unwrap();
    let total = reg
        .counter(Opts::new("churn_cycles", "c").labels(&["w"]))
        .unwrap()
        .labels(&[&wid])
        .unwrap();
    let mut stale = None;
    let mut kept = 0u64;
    for k in 0..cycles {
        let key = k.to_string();
        let labels = [wid.as_str(), key.as_str()];
        let (e, b, gg, hh) = (
            ce.labels(&labels).unwrap(),
            cb.labels(&labels).unwrap(),
            gauges.then(|| g.labels(&labels).unwrap()),
            h.labels(&labels).unwrap(),
        );
        e.inc();
        b.inc();
        if let Some(gg) = &gg {
            gg.set(1.0);
        }
        hh.observe(1.5).unwrap();
        promshm::flush();
        assert_eq!(
            e.get(),
            1.0,
            "cycle {k}: another handle wrote into this series"
        );
        assert_eq!(b.get(), 1.0, "cycle {k}");
        if let Some(gg) = &gg {
            assert_eq!(gg.get(), 1.0, "cycle {k}");
        }
        assert_eq!(hh.get().0, 1, "cycle {k}");
        info.set(&[("cycle", &key)]).unwrap();
        total.inc();
        if k % keep_every == keep_every - 1 {
            kept += 1;
            continue;
        }
        assert!(ce.remove(&labels).unwrap());
        assert!(cb.remove(&labels).unwrap());
        assert_eq!(g.remove(&labels).unwrap(), gauges);
        assert!(h.remove(&labels).unwrap());
        if let Some((e, b, gg, hh)) = stale.replace((e, b, gg, hh)) {
            let (e, b, gg, hh): (
                promshm::Counter,
                promshm::Counter,
                Option<promshm::Gauge>,
                promshm::Histogram,
            ) = (e, b, gg, hh);
            e.add(STALE).unwrap();
            b.add(STALE).unwrap();
            if let Some(gg) = gg {
                gg.add(STALE);
            }
            hh.observe(0.5).unwrap();
        }
    }
    promshm::flush();
    send(&format!("done {cycles} {kept}"));
}

/// The churn worker's `done` line, waiting until `deadline`; past it, fail
/// with the cycles each worker had done (from the area's `churn_cycles`).
fn recv_or_report_progress(
    c: &mut ChildProc,
    deadline: Instant,
    area: &Path,
    cycles: u64,
) -> String {
    let left = deadline.saturating_duration_since(Instant::now());
    let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.recv(left)));
    got.unwrap_or_else(|_| {
        let done: Vec<String> = Area::open(area, OpenMode::ReadOnly)
            .and_then(|a| a.render_to_string(Format::Prometheus))
            .map(|text| {
                let scrape = Scrape::parse(&text);
                (0..4)
                    .map(|w| {
                        let w = w.to_string();
                        let n = scrape.get("churn_cycles_total", &[("w", &w)]);
                        n.map_or("?".into(), |n| format!("{n}"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        panic!(
            "churn too slow: the 4 workers had done [{}] of {cycles} cycles each within the \
             bound of {:?} (PROMSHM_CHURN_CYCLES={cycles}; see docs/PERFORMANCE.md)",
            done.join(", "),
            churn_bound(cycles)
        )
    })
}

/// The independent reader's check of the free lists (`--check-free`): no
/// record both in a free list and live, no damaged list, no bad record.
/// Returns its summary: `(free records, listed, series)`.
fn assert_free_lists_sane(area: &Path) -> (u64, u64, u64) {
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/promshm_read.py"))
        .arg(area)
        .arg("--check-free")
        .output()
        .expect("run python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "promshm_read.py --check-free: {}\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| -> u64 {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text:?}"))
    };
    assert_eq!(field("bad_records"), 0, "{text}");
    eprintln!("reader: {}", text.trim());
    (field("free_records"), field("listed"), field("series"))
}

/// 4 processes × `cycles()` create+remove cycles of labelled counters,
/// gauges and histograms plus info replacements in a 1 MiB area: never
/// AREA_FULL (every registration unwraps), exact values in every series
/// created from a reused record, stale writes never visible, exact totals.
#[test]
fn four_processes_churn_in_a_one_mib_area() {
    let dir = TempDir::new("churn");
    let path = dir.join("area");
    let (cycles, gauges) = (cycles(), with_gauges());
    let started = Instant::now();
    let mut children: Vec<ChildProc> = (0..4)
        .map(|w| {
            ChildProc::spawn(
                "churn",
                &format!("churn{w}"),
                &[
                    (AREA_ENV, path.display().to_string()),
                    ("CHURN_WID", w.to_string()),
                    ("CHURN_CYCLES", cycles.to_string()),
                    ("CHURN_GAUGES", u8::from(gauges).to_string()),
                ],
            )
        })
        .collect();
    let deadline = started + churn_bound(cycles);
    let mut kept_total = 0;
    for c in &mut children {
        let line = recv_or_report_progress(c, deadline, &path, cycles);
        let mut it = line.split_whitespace();
        assert_eq!(it.next(), Some("done"), "{line}");
        assert_eq!(it.next().unwrap().parse::<u64>().unwrap(), cycles);
        kept_total += it.next().unwrap().parse::<u64>().unwrap();
        c.expect_success(Duration::from_secs(30));
    }
    let took = started.elapsed();
    eprintln!(
        "4 x {cycles} churn cycles (gauges: {gauges}) in {took:?}: {:.1} us per cycle",
        took.as_secs_f64() * 1e6 / (4 * cycles) as f64
    );
    let area = Area::open(&path, OpenMode::ReadWrite).unwrap();
    let stats = area.stats();
    eprintln!("{stats:?}");
    assert_eq!(stats.refused, 0, "{stats:?}");
    // Kept: 3 or 4 series per kept cycle; plus per worker an info and a total.
    let per_kept = 3 + u64::from(gauges);
    assert_eq!(stats.series, per_kept * kept_total + 8, "{stats:?}");
    let (_, _, reader_series) = assert_free_lists_sane(&path);
    assert_eq!(
        reader_series, stats.series,
        "the reader sees the live series"
    );
    let text = area.render_to_string(Format::Prometheus).unwrap();
    let scrape = Scrape::parse(&text);
    let mut kept = 0;
    for w in 0..4u64 {
        let w = w.to_string();
        assert_eq!(
            scrape.value("churn_cycles_total", &[("w", &w)]),
            cycles as f64
        );
        let last = (cycles - 1).to_string();
        assert_eq!(
            scrape.value("churn_info", &[("w", &w), ("cycle", &last)]),
            1.0
        );
        let every = keep_every(cycles);
        for k in (every - 1..cycles).step_by(every as usize) {
            let k = k.to_string();
            let l = [("w", w.as_str()), ("k", k.as_str())];
            assert_eq!(scrape.value("churn_eager_total", &l), 1.0, "{l:?}");
            assert_eq!(scrape.value("churn_buffered_total", &l), 1.0, "{l:?}");
            if gauges {
                assert_eq!(scrape.value("churn_gauge", &l), 1.0, "{l:?}");
            }
            assert_eq!(scrape.value("churn_hist_count", &l), 1.0, "{l:?}");
            assert_eq!(scrape.value("churn_hist_sum", &l), 1.5, "{l:?}");
            kept += 1;
        }
    }
    assert_eq!(kept, kept_total);
    for f in [
        "churn_eager_total",
        "churn_buffered_total",
        "churn_gauge",
        "churn_hist_count",
    ] {
        let want = if f == "churn_gauge" && !gauges {
            0
        } else {
            kept_total
        };
        assert_eq!(scrape.series(f).len() as u64, want, "{f}");
    }
    // No sample holds a stale write (the cycle totals reach a million
    // themselves at 1,000,000 cycles).
    let text = area.render_to_string(Format::Prometheus).unwrap();
    for line in text.lines() {
        if !line.starts_with("churn_") || line.starts_with("churn_cycles_total") {
            continue;
        }
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(v < STALE, "a stale write is visible: {line}");
    }
}

/// The churn with SIGKILL of random workers every few milliseconds, some
/// of them in the middle of freeing or reusing a record: the area stays
/// readable, no record is both free and live (independent reader), and
/// afterwards the space is still reused: a full churn run succeeds.
#[test]
fn churn_with_random_kills_leaves_no_record_both_free_and_live() {
    let dir = TempDir::new("churn-kill");
    let path = dir.join("area");
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut rng, seed) = Rng::from_time();
    eprintln!("kill schedule seed {seed}");
    let mut rand = move || rng.next_u64();
    let spawn = |w: u64| {
        ChildProc::spawn(
            "churn",
            &format!("killed{w}"),
            &[
                (AREA_ENV, path.display().to_string()),
                ("CHURN_WID", (w % 4).to_string()),
                ("CHURN_CYCLES", 1_000_000.to_string()),
                ("CHURN_GAUGES", "1".into()),
            ],
        )
    };
    let mut workers: Vec<ChildProc> = (0..4).map(spawn).collect();
    let mut n = 4;
    let mut kills = 0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(2_000 + rand() % 8_000));
        let i = (rand() % workers.len() as u64) as usize;
        workers[i].kill();
        kills += 1;
        workers[i] = spawn(n);
        n += 1;
        if kills % 50 == 0 {
            // Readable at any moment (the reader takes no lock).
            let a = Area::open(&path, OpenMode::ReadOnly).unwrap();
            a.render(std::io::sink(), Format::Prometheus).unwrap();
        }
    }
    for w in &mut workers {
        w.kill();
    }
    eprintln!("{kills} workers killed");
    assert_free_lists_sane(&path);
    // The space of what the killed workers left is reclaimed: with the kept
    // series of the dead workers removed, a full churn run fits.
    let area = Area::open(&path, OpenMode::ReadWrite).unwrap();
    let reg = area.registry();
    for f in ["churn_eager", "churn_buffered", "churn_hist"] {
        let fam = reg.counter(Opts::new(f, "x").labels(&["w", "k"]));
        if let Ok(fam) = fam {
            fam.clear().unwrap();
        }
    }
    if let Ok(h) = reg.histogram(
        Opts::new("churn_hist", "h").labels(&["w", "k"]),
        &[1.0, 2.0],
    ) {
        h.clear().unwrap();
    }
    reg.gauge(
        Opts::new("churn_gauge", "g").labels(&["w", "k"]),
        GaugeMode::Sum,
    )
    .unwrap()
    .clear()
    .unwrap();
    let mut c = ChildProc::spawn(
        "churn",
        "after",
        &[
            (AREA_ENV, path.display().to_string()),
            ("CHURN_WID", "9".into()),
            ("CHURN_CYCLES", 1_000.to_string()),
            ("CHURN_GAUGES", "1".into()),
        ],
    );
    let line = c.recv(Duration::from_secs(300));
    assert!(line.starts_with("done 1000"), "{line}");
    c.expect_success(Duration::from_secs(30));
    assert_free_lists_sane(&path);
}

/// Instruction-count probe for the hot path (run by hand under callgrind,
/// see docs/PERFORMANCE.md): `PROBE_MODE` = `checked` (the eager counter's
/// `inc`, generation checked), `unchecked` (the same update without the
/// check, as before format 3), `buffered` (the thread-buffered `inc`) or
/// `none`; `PROBE_N` updates.
#[test]
#[ignore]
fn hot_path_probe() {
    let n = std::env::var("PROBE_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000u64);
    let mode = std::env::var("PROBE_MODE").unwrap_or_else(|_| "checked".into());
    let area = Area::anonymous(&options()).unwrap();
    let reg = area.registry();
    let e = reg
        .counter(Opts::new("probe", "p").eager(true))
        .unwrap()
        .get()
        .unwrap();
    let b = reg
        .counter(Opts::new("probe_b", "p"))
        .unwrap()
        .get()
        .unwrap();
    for _ in 0..n {
        match mode.as_str() {
            "checked" => std::hint::black_box(&e).inc(),
            "unchecked" => std::hint::black_box(&e).__eager_add_without_generation_check(1.0),
            "buffered" => std::hint::black_box(&b).inc(),
            _ => {}
        }
    }
    promshm::flush();
    std::hint::black_box((e.get(), b.get()));
}

/// Instruction-count probe for the create+remove cycle of one type (run by
/// hand under callgrind, see docs/PERFORMANCE.md): `PROBE_TYPE` = `counter`,
/// `gauge`, `histogram` or `info` (a replacement), or several of them
/// separated by commas (one phase after the other); `PROBE_N` cycles in an
/// area of `PROBE_PAGES` pages (default 256; a large area keeps the grace
/// period out of the measure).
#[test]
#[ignore]
fn cycle_probe() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let (n, pages) = (env("PROBE_N", 100_000), env("PROBE_PAGES", 256u64));
    let kind = std::env::var("PROBE_TYPE").unwrap_or_else(|_| "counter".into());
    let area = Area::anonymous(&AreaOptions::with_pages(pages as u32)).unwrap();
    let reg = area.registry();
    let c = reg
        .counter(Opts::new("pc", "c").labels(&["w", "k"]).eager(true))
        .unwrap();
    let g = reg
        .gauge(Opts::new("pg", "g").labels(&["w", "k"]), GaugeMode::Sum)
        .unwrap();
    let h = reg
        .histogram(Opts::new("ph", "h").labels(&["w", "k"]), &[1.0, 2.0])
        .unwrap();
    let info = reg.info(Opts::new("pi", "i")).unwrap().get().unwrap();
    for kind in kind.split(',') {
        cycle_probe_phase(kind, n, pages, (&c, &g, &h, &info));
        eprintln!("{:?}", area.stats());
    }
}

/// One phase of `cycle_probe`: `n` cycles of `kind`.
fn cycle_probe_phase(
    kind: &str,
    n: u64,
    pages: u64,
    (c, g, h, info): (
        &promshm::Family<promshm::Counter>,
        &promshm::Family<promshm::Gauge>,
        &promshm::Family<promshm::Histogram>,
        &promshm::Info,
    ),
) {
    let started = Instant::now();
    for i in 0..n {
        let k = format!("{kind}{i}");
        let l = ["0", k.as_str()];
        match kind {
            "counter" => {
                c.labels(&l).unwrap().inc();
                assert!(c.remove(&l).unwrap());
            }
            "gauge" => {
                g.labels(&l).unwrap().set(1.0);
                assert!(g.remove(&l).unwrap());
            }
            "histogram" => {
                h.labels(&l).unwrap().observe(1.5).unwrap();
                assert!(h.remove(&l).unwrap());
            }
            _ => info.set(&[("cycle", &k)]).unwrap(),
        }
    }
    let per = started.elapsed() / n as u32;
    eprintln!("{kind}: {n} cycles in {pages} pages, {per:?} per cycle");
}

/// The independent reader notices a free list that links a live record
/// (the check the churn tests rely on is not vacuous).
#[test]
fn the_reader_reports_a_live_record_in_a_free_list() {
    let dir = TempDir::new("reader-free");
    let path = dir.join("area");
    {
        let area = Area::create(&path, &options()).unwrap();
        let c = area
            .registry()
            .counter(Opts::new("c", "c").labels(&["k"]))
            .unwrap();
        c.labels(&["live"]).unwrap().inc();
        c.labels(&["gone"]).unwrap().inc();
        assert!(c.remove(&["gone"]).unwrap());
        promshm::flush();
    }
    let (free, listed, series) = assert_free_lists_sane(&path);
    assert_eq!((free, listed, series), (1, 1, 1));
    // Point the head of the hole's list at the live series record.
    let mut bytes = std::fs::read(&path).unwrap();
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let mut off = u32_at(&bytes, 44) as usize;
    let cursor = u64::from_le_bytes(bytes[48..56].try_into().unwrap()) as usize;
    let (mut live, mut hole) = (0, 0);
    while off + 8 <= cursor {
        let (tag, len) = (u32_at(&bytes, off), u32_at(&bytes, off + 4) as usize);
        match tag {
            0x0102 => live = off,
            0x0302 => hole = off,
            _ => {}
        }
        off += len;
    }
    assert!(live != 0 && hole != 0);
    let list = (0..42)
        .map(|c| 512 + 8 * c)
        .find(|&at| u32_at(&bytes, at) as usize == hole)
        .expect("the hole's list");
    bytes[list..list + 4].copy_from_slice(&(live as u32).to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/promshm_read.py"))
        .arg(&path)
        .arg("--check-free")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(
        text.contains(&format!("record {live} is in a free list and live")),
        "{text}"
    );
    // And a writer never takes it: the damaged list is rebuilt, the live
    // series keeps its value, a new series gets the hole.
    let area = Area::open(&path, OpenMode::ReadWrite).unwrap();
    let c = area
        .registry()
        .counter(Opts::new("c", "c").labels(&["k"]).eager(true))
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    c.labels(&["new"]).unwrap().add(5.0).unwrap();
    assert_eq!(c.labels(&["live"]).unwrap().get(), 1.0);
    assert_eq!(c.labels(&["new"]).unwrap().get(), 5.0);
    assert!(area.stats().free_list_rebuilds >= 1);
    drop((c, area));
    assert_free_lists_sane(&path);
}
