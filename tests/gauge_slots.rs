//! Gauge series cost the worker slots that wrote them (issue 16 item 3,
//! format 4): a series holds two inline entries and links extension
//! records for more writers; a reaped worker's entry is folded and given
//! to the next slot that writes.
//!
//! Processes: the test binary re-executed with a role (see `common`), which
//! forks its workers (the pre-fork server set-up) with `libc::fork`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use promshm::{Area, AreaOptions, Gauge, GaugeMode, OpenMode, Opts};

const TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn child_entry() {
    child_main(|role| match role {
        "bytes" => bytes_child(),
        "modes" => modes_child(),
        "reader" => reader_child(),
        other => panic!("unknown role {other:?}"),
    });
}

/// fork(), run `worker` in the child and exit with its status; wait for it.
fn fork_worker(worker: impl FnOnce()) {
    // SAFETY: the role runs no thread of its own; libtest's main thread
    // only waits. The child runs promshm calls and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(worker)).is_ok();
        std::process::exit(if ok { 0 } else { 101 });
    }
    wait_forked(pid, "worker", TIMEOUT);
}

fn area_64() -> Area {
    Area::anonymous(&AreaOptions {
        pages: 256,
        max_workers: 64,
        ..Default::default()
    })
    .unwrap()
}

/// `WRITERS` forked workers each set one `sum` gauge series
/// (worker `i` to `i + 1`); reports the bytes the series took (its record
/// and its extensions), before and after a reap and a second round.
fn bytes_child() {
    let writers = env_u64("WRITERS");
    let area = area_64();
    let family = area
        .registry()
        .gauge(
            Opts::new("bytes_probe", "A gauge.").labels(&["k"]),
            GaugeMode::Sum,
        )
        .unwrap();
    let before = area.stats().bytes_free;
    let g = family.labels(&["w"]).unwrap();
    for i in 0..writers {
        fork_worker(|| g.set((i + 1) as f64));
    }
    let used = before - area.stats().bytes_free;
    let total = (writers * (writers + 1) / 2) as f64;
    assert_eq!(g.get(), total, "every worker's value once");
    assert_eq!(area.reap_dead_workers().unwrap() as u64, writers);
    assert_eq!(g.get(), total, "sum keeps the dead workers' values");
    // A second round of as many workers takes the released entries.
    for i in 0..writers {
        fork_worker(|| g.set((i + 1) as f64));
    }
    assert_eq!(g.get(), 2.0 * total);
    assert_eq!(before - area.stats().bytes_free, used, "nothing grew");
    send(&format!("bytes {used}"));
}

fn bytes_for(writers: u64) -> usize {
    let msgs = run_child(
        "bytes",
        &format!("bytes-{writers}"),
        &[("WRITERS", writers.to_string())],
        TIMEOUT,
    );
    msgs.iter()
        .find_map(|m| m.strip_prefix("bytes "))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("child sent {msgs:?}"))
}

/// Bytes per gauge series with 1, 8 and 64 writing worker processes (in an
/// area of 64 slots): 112 (the series record: 40 bytes of header and
/// fields, 56 of cells — retained pair, link, two inline entries — and 5
/// of label value, in the 112-byte size class), + 192 (an extension of 9
/// entries), + 448 (25) + 512 (29 entries: the slots left). Format 3 took
/// 1,280 bytes for each (1,085 in the 1,280 class), whatever the number of
/// writers.
#[test]
fn a_gauge_series_costs_the_slots_that_wrote_it() {
    let figures: Vec<(u64, usize)> = [1, 8, 64].iter().map(|&w| (w, bytes_for(w))).collect();
    for (w, bytes) in &figures {
        eprintln!("bytes per gauge series, {w} writing workers: {bytes}");
    }
    assert_eq!(
        figures,
        [(1, 112), (8, 112 + 192), (64, 112 + 192 + 448 + 512)]
    );
}

/// Every mode, 12 forked workers (more than the inline entries) and this
/// process: exact values before and after the dead workers are reaped, and
/// again after 12 more workers took the released entries.
fn modes_child() {
    let area = area_64();
    let reg = area.registry();
    let modes = [
        GaugeMode::Sum,
        GaugeMode::LiveSum,
        GaugeMode::Max,
        GaugeMode::Min,
        GaugeMode::MostRecent,
        GaugeMode::All,
        GaugeMode::LiveMax,
        GaugeMode::LiveMin,
        GaugeMode::LiveMostRecent,
    ];
    let gauges: Vec<(GaugeMode, Gauge)> = modes
        .iter()
        .map(|&m| {
            let name = format!("mode_{}_g", m.as_str());
            let g = reg.gauge(Opts::new(name, "A gauge."), m).unwrap();
            (m, g.get().unwrap())
        })
        .collect();
    for (_, g) in &gauges {
        g.set(6.5);
    }
    let round = |base: f64| {
        for i in 0..12 {
            // Distinct stamps for mostrecent: the last worker writes last.
            std::thread::sleep(Duration::from_millis(3));
            fork_worker(|| {
                for (_, g) in &gauges {
                    g.set(base + (i + 1) as f64);
                }
            });
        }
    };
    round(0.0);
    let check = |when: &str, expected: &dyn Fn(GaugeMode) -> f64| {
        for (m, g) in &gauges {
            assert_eq!(g.get(), expected(*m), "{} {when}", m.as_str());
        }
    };
    // Workers 1..=12 (sum 78) and this process (6.5).
    let before = |m: GaugeMode| match m {
        GaugeMode::Sum | GaugeMode::LiveSum | GaugeMode::All => 84.5,
        GaugeMode::Max | GaugeMode::LiveMax => 12.0,
        GaugeMode::Min | GaugeMode::LiveMin => 1.0,
        GaugeMode::MostRecent | GaugeMode::LiveMostRecent => 12.0,
    };
    check("before the reap", &before);
    let used = area.stats().bytes_free;
    assert_eq!(area.reap_dead_workers().unwrap(), 12);
    let after = |m: GaugeMode| match m {
        GaugeMode::Sum => 84.5,
        GaugeMode::Max => 12.0,
        GaugeMode::Min => 1.0,
        GaugeMode::MostRecent => 12.0,
        _ => 6.5,
    };
    check("after the reap", &after);
    // 12 more workers (values 101..=112) take the released entries.
    round(100.0);
    let again = |m: GaugeMode| match m {
        GaugeMode::Sum => 84.5 + 1278.0,
        GaugeMode::LiveSum | GaugeMode::All => 6.5 + 1278.0,
        GaugeMode::Max | GaugeMode::LiveMax | GaugeMode::MostRecent => 112.0,
        GaugeMode::LiveMostRecent => 112.0,
        GaugeMode::Min => 1.0,
        GaugeMode::LiveMin => 6.5,
    };
    check("after a second round", &again);
    assert_eq!(area.stats().bytes_free, used, "released entries reused");
    assert_eq!(area.reap_dead_workers().unwrap(), 12);
    check("after the second reap", &|m| match m {
        GaugeMode::Sum => 84.5 + 1278.0,
        GaugeMode::Max | GaugeMode::MostRecent => 112.0,
        GaugeMode::Min => 1.0,
        _ => 6.5,
    });
    send("ok");
}

#[test]
fn every_mode_is_exact_across_processes_before_and_after_reaping() {
    let msgs = run_child("modes", "modes", &[], TIMEOUT);
    assert_eq!(msgs, ["ok"]);
}

/// In the file area: 12 forked workers set series `a`, `b` and `c` of a
/// `sum` gauge (worker `i` to `i + 1`: each has two extensions), then `b`
/// is removed.
fn reader_child() {
    let area = Area::create(env_area(), &AreaOptions::with_pages(64)).unwrap();
    let f = area
        .registry()
        .gauge(
            Opts::new("read_g", "A gauge.").labels(&["k"]),
            GaugeMode::Sum,
        )
        .unwrap();
    let series: Vec<Gauge> = ["a", "b", "c"]
        .iter()
        .map(|k| f.labels(&[k]).unwrap())
        .collect();
    for i in 0..12 {
        fork_worker(|| {
            for g in &series {
                g.set((i + 1) as f64);
            }
        });
    }
    let freed = area.stats().records_freed;
    assert!(f.remove(&["b"]).unwrap());
    assert_eq!(
        area.stats().records_freed,
        freed + 3,
        "b and its 2 extensions"
    );
    send("ok");
}

/// Run `tools/promshm_read.py` on `area` with `args`, then the Python
/// expression `expr` on its JSON output `d` (none with `--check-free`).
fn reader(area: &Path, args: &[&str], expr: &str) -> String {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/promshm_read.py");
    let script = format!(
        "import json, subprocess, sys\n\
         p = subprocess.run([sys.executable, {tool:?}, {area:?}] + {args:?}, capture_output=True, text=True)\n\
         assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)\n\
         d = p.stdout if {check} else json.loads(p.stdout)\n\
         print({expr})",
        check = if args.is_empty() { "False" } else { "True" },
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "reader: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The independent reader follows the extensions (the values of series
/// written by 12 workers), and after a series with extensions was removed
/// finds no record both free and live and no orphan extension.
#[test]
fn the_independent_reader_follows_the_chain() {
    let dir = TempDir::new("gauge-reader");
    let path = dir.join("area.promshm");
    let msgs = run_child(
        "reader",
        "reader",
        &[(AREA_ENV, path.display().to_string())],
        TIMEOUT,
    );
    assert_eq!(msgs, ["ok"]);
    let values = reader(
        &path,
        &[],
        "sorted((s['labels']['k'], s['value']) for f in d['families'] for s in f['series'])",
    );
    assert_eq!(values, "[('a', 78.0), ('c', 78.0)]");
    let check = reader(&path, &["--check-free"], "d");
    assert!(check.contains(" bad_records=0 "), "{check}");
    assert!(check.contains("orphan_gauge_extensions=0"), "{check}");
    assert!(!check.contains("problem"), "{check}");
    let area = Area::open(&path, OpenMode::ReadOnly).unwrap();
    assert_eq!(area.stats().records_freed, 3);
}

/// Hot-path probe for callgrind (see docs/PERFORMANCE.md): `PROBE_N` gauge
/// `set`s (`PROBE_MODE=set`) or `inc`s (`inc`) of one `sum` gauge series.
#[test]
#[ignore]
fn gauge_hot_path_probe() {
    let n = std::env::var("PROBE_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000u64);
    let mode = std::env::var("PROBE_MODE").unwrap_or_else(|_| "set".into());
    let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
    let g = area
        .registry()
        .gauge(Opts::new("probe", "p"), GaugeMode::Sum)
        .unwrap()
        .get()
        .unwrap();
    g.set(0.0);
    for i in 0..n {
        match mode.as_str() {
            "set" => std::hint::black_box(&g).set(i as f64),
            "inc" => std::hint::black_box(&g).inc(),
            _ => {}
        }
    }
    std::hint::black_box(g.get());
}
