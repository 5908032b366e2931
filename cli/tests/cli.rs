//! `promshm inspect`, `dump` and `textfile`, help and exit codes, and
//! damaged files: a clear one-line message, the documented exit code, never
//! a crash.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::process::ExitStatusExt;

use common::*;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Exited by itself (no signal) with `code`, and said one line on stderr.
fn assert_failed(o: &std::process::Output, code: i32, needle: &str) {
    assert_eq!(o.status.signal(), None, "killed by a signal: {o:?}");
    assert_eq!(o.status.code(), Some(code), "{o:?}");
    let err = stderr(o);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with("promshm: "), "{err:?}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
}

#[test]
fn help_everywhere() {
    for sub in [
        "inspect",
        "dump",
        "serve",
        "textfile",
        "push",
        "remote-write",
    ] {
        let o = run(&[sub, "--help"]);
        assert!(o.status.success(), "{sub} --help: {o:?}");
        let out = stdout(&o);
        assert!(out.contains("Usage: promshm"), "{out}");
        assert!(out.contains("Exit codes"), "{out}");
    }
    let o = run(&["--version"]);
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("promshm "));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&[]).status.code(), Some(2));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(run(&["dump"]).status.code(), Some(2));
    assert_eq!(
        run(&["dump", "x", "--format", "json"]).status.code(),
        Some(2)
    );
    let dir = TempDir::new("usage");
    let area = dir.path("a.promshm");
    populate(&area);
    let a = area.to_str().unwrap();
    let o = run(&["dump", a, "--namespace", "bad-ns"]);
    assert_failed(&o, 2, "--namespace");
    let o = run(&["push", a, "--gateway", "ftp://x", "--job", "j"]);
    assert_failed(&o, 2, "--gateway");
    let o = run(&[
        "push",
        a,
        "--gateway",
        "http://127.0.0.1:1",
        "--job",
        "j",
        "--grouping",
        "job=x",
    ]);
    assert_failed(&o, 2, "given twice");
    let o = run(&["remote-write", a, "--url", "http://x", "--interval", "0"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let o = run(&["serve", a, "--tls-cert", "/nonexistent"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}

#[test]
fn inspect_reports_everything() {
    let dir = TempDir::new("inspect");
    let area = dir.path("a.promshm");
    let keep = populate(&area);
    let version = keep.stats().format_version;
    let a = area.to_str().unwrap();

    let o = run(&["inspect", a]);
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    assert!(
        out.contains(&format!("format version  {version}\n")),
        "{out}"
    );
    for needle in [
        "pages           256 total",
        "families        6 (read now: 6: counter 1, gauge 1, histogram 1, info 1, stateset 1, summary 1)",
        "series          7",
        "damaged records 0",
        "worker slots    1 in use of 64, 1 alive",
        "registrations refused (area full)  0",
    ] {
        assert!(out.contains(needle), "{needle:?} not in:\n{out}");
    }
    assert!(out.contains(&format!(" {} ", std::process::id())), "{out}");

    let o = run(&["inspect", a, "--json"]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format_version"], version);
    assert_eq!(v["pages"]["total"], 256);
    assert_eq!(v["families"], 6);
    assert_eq!(v["series"], 7);
    assert_eq!(v["walked"]["series"], 7);
    assert_eq!(v["walked"]["bad_records"], 0);
    assert_eq!(v["walked"]["families_by_type"]["histogram"], 1);
    assert_eq!(v["workers"]["in_use"], 1);
    assert_eq!(v["workers"]["table"][0]["pid"], std::process::id());
    assert_eq!(v["workers"]["table"][0]["alive"], true);
    assert_eq!(v["counters"]["registrations_refused"], 0);
    assert!(v["created_ms"].as_u64().unwrap() > 1_600_000_000_000);
}

#[test]
fn inspect_shows_refused_registrations_and_dead_workers() {
    let dir = TempDir::new("full");
    let area_path = dir.path("a.promshm");
    let area = promshm::Area::create(&area_path, &promshm::AreaOptions::with_pages(3)).unwrap();
    let reg = area.registry();
    let mut refused = 0;
    for i in 0..200 {
        if reg
            .counter(promshm::Opts::new(format!("c{i}"), "x".repeat(100)))
            .is_err()
        {
            refused += 1;
        }
    }
    assert!(refused > 0);
    let o = run(&["inspect", area_path.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["counters"]["registrations_refused"].as_u64().unwrap() >= 1,
        "{v}"
    );
    assert_eq!(v["pages"]["free"], 0);

    // A worker that attached and exited without detaching shows as dead.
    let other = dir.path("b.promshm");
    // (This process keeps its handle: a process that drops its last handle
    // to an area gives up its slot.)
    let _keep = populate(&other);
    let mut workers = spawn_workers("worker_entry", &other, 1, 4);
    join_workers(&mut workers);
    let o = run(&["inspect", other.to_str().unwrap()]);
    let out = stdout(&o);
    assert!(out.contains("2 in use of 64, 1 alive"), "{out}");
    assert!(out.contains(" dead "), "{out}");
}

#[test]
fn worker_entry() {
    worker_body();
}

#[test]
fn dump_formats_and_namespace() {
    let dir = TempDir::new("dump");
    let area = dir.path("a.promshm");
    let _keep = populate(&area);
    let a = area.to_str().unwrap();

    let o = run(&["dump", a]);
    assert!(o.status.success(), "{o:?}");
    let text = stdout(&o);
    assert!(text.contains("app_jobs_total{kind=\"a\"} 4000\n"), "{text}");
    assert!(
        text.contains("app_latency_seconds_bucket{le=\"0.5\"} 20\n"),
        "{text}"
    );
    assert!(
        text.contains("app_build_info{version=\"1.2.3\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE promshm_series gauge"), "{text}");
    assert!(!text.contains("# EOF"));

    let o = run(&["dump", a, "--format", "openmetrics"]);
    let om = stdout(&o);
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        om.contains("app_latency_seconds_bucket{le=\"1.0\"} 30\n"),
        "{om}"
    );
    assert!(om.contains("# UNIT app_latency_seconds seconds"), "{om}");

    let o = run(&["dump", a, "--namespace", "app"]);
    assert!(!stdout(&o).contains("promshm_"), "{}", stdout(&o));
    let o = run(&["dump", a, "--namespace", "other"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "");
    let o = run(&["dump", a, "--no-self-metrics"]);
    assert!(!stdout(&o).contains("promshm_"));
    assert!(stdout(&o).contains("app_jobs_total"));

    // promtool agrees that the output is valid, when it is installed.
    if have("promtool") {
        let mut child = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        // Lint warnings (e.g. about units) exit 3; syntax errors exit 1.
        assert_ne!(out.status.code(), Some(1), "{out:?}");
    }
}

#[test]
fn textfile_once_and_periodic() {
    let dir = TempDir::new("textfile");
    let area = dir.path("a.promshm");
    let _keep = populate(&area);
    let out = dir.path("app.prom");
    let o = run(&[
        "textfile",
        area.to_str().unwrap(),
        out.to_str().unwrap(),
        "--namespace",
        "app",
    ]);
    assert!(o.status.success(), "{o:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("app_jobs_total{kind=\"b\"} 1000\n"), "{text}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&out).unwrap().permissions());
    assert_eq!(mode & 0o777 & !0o022, 0o644 & !0o022, "{mode:o}");

    // Periodic: rewritten while it runs, stops cleanly on SIGTERM, no temp files left.
    std::fs::remove_file(&out).unwrap();
    let mut cmd = std::process::Command::new(bin());
    cmd.args([
        "textfile",
        area.to_str().unwrap(),
        out.to_str().unwrap(),
        "--interval",
        "100ms",
    ]);
    let mut g = ChildGuard::spawn("textfile", &mut cmd);
    wait_for(std::time::Duration::from_secs(10), "textfile", || {
        out.exists().then_some(())
    });
    let first = std::fs::metadata(&out).unwrap().modified().unwrap();
    wait_for(std::time::Duration::from_secs(10), "a rewrite", || {
        (std::fs::metadata(&out).unwrap().modified().unwrap() != first).then_some(())
    });
    let st = g
        .terminate(std::time::Duration::from_secs(5))
        .expect("exits on SIGTERM");
    assert!(st.success(), "{st}");
    let names: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");

    // A directory that does not exist: a clear error.
    let o = run(&[
        "textfile",
        area.to_str().unwrap(),
        dir.path("nope/app.prom").to_str().unwrap(),
    ]);
    assert_failed(&o, 1, "nope/app.prom");
}

#[test]
fn damaged_files_get_clear_errors() {
    let dir = TempDir::new("damaged");

    let missing = dir.path("missing.promshm");
    let o = run(&["inspect", missing.to_str().unwrap()]);
    assert_failed(&o, 3, "No such file");

    let tiny = dir.path("tiny.promshm");
    std::fs::write(&tiny, b"hello").unwrap();
    let o = run(&["inspect", tiny.to_str().unwrap()]);
    assert_failed(&o, 4, "too small");

    // Garbage of a plausible size (a simple deterministic generator).
    let garbage = dir.path("garbage.promshm");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&garbage, &bytes).unwrap();
    let o = run(&["inspect", garbage.to_str().unwrap()]);
    assert_failed(&o, 4, "not a promshm area");

    // A real area cut in half.
    let truncated = dir.path("truncated.promshm");
    drop(populate(&truncated));
    let len = std::fs::metadata(&truncated).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let o = run(&["inspect", truncated.to_str().unwrap()]);
    assert_failed(&o, 4, "pages");
    let o = run(&["dump", truncated.to_str().unwrap()]);
    assert_failed(&o, 4, "pages");

    // Another format version (u32 at offset 8).
    let version = dir.path("version.promshm");
    drop(populate(&version));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&version)
        .unwrap();
    f.seek(SeekFrom::Start(8)).unwrap();
    f.write_all(&99u32.to_ne_bytes()).unwrap();
    drop(f);
    let o = run(&["inspect", version.to_str().unwrap()]);
    assert_failed(&o, 4, "format version 99");
    let o = run(&["inspect", version.to_str().unwrap(), "--json"]);
    assert_failed(&o, 4, "format version 99");

    // A valid header over damaged records: what is readable is shown, the
    // damage is counted and named, and the exit code says so.
    let records = dir.path("records.promshm");
    let version = populate(&records).stats().format_version;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&records)
        .unwrap();
    // Data starts after the header page and the worker table (64 slots).
    let data = 4096 + (64 * 64usize).div_ceil(4096) as u64 * 4096;
    f.seek(SeekFrom::Start(data + 300)).unwrap();
    f.write_all(&[0xA5; 700]).unwrap();
    drop(f);
    let o = run(&["inspect", records.to_str().unwrap()]);
    assert_failed(&o, 4, "damaged records were skipped");
    let shown = format!("format version  {version}\n");
    assert!(stdout(&o).contains(&shown), "{o:?}");
    // dump keeps working on what is readable.
    let o = run(&["dump", records.to_str().unwrap()]);
    assert_eq!(o.status.signal(), None, "{o:?}");
}

#[test]
fn inspect_and_dump_a_live_area_under_load() {
    let dir = TempDir::new("live");
    let area = dir.path("a.promshm");
    drop(promshm::Area::create(&area, &promshm::AreaOptions::with_pages(256)).unwrap());
    let a = area.to_str().unwrap();
    let mut workers = spawn_workers("worker_entry", &area, 4, 2000);
    let mut rounds = 0;
    let mut last_a = 0u64;
    while workers
        .iter_mut()
        .any(|w| w.child.try_wait().unwrap().is_none())
    {
        let o = run(&["inspect", a, "--json"]);
        assert!(o.status.success(), "{o:?}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["walked"]["bad_records"], 0, "{v}");
        assert!(v["workers"]["in_use"].as_u64().unwrap() <= 4, "{v}");
        let o = run(&["dump", a, "--namespace", "app"]);
        assert!(o.status.success(), "{o:?}");
        // Counters never go backwards between two reads.
        let text = stdout(&o);
        if let Some(line) = text
            .lines()
            .find(|l| l.starts_with("app_jobs_total{kind=\"a\"}"))
        {
            let now: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            assert!(now >= last_a, "{now} < {last_a}");
            last_a = now;
        }
        rounds += 1;
    }
    join_workers(&mut workers);
    assert!(rounds > 0);
    let o = run(&["dump", a, "--namespace", "app"]);
    assert!(
        stdout(&o).contains("app_jobs_total{kind=\"a\"} 8000\n"),
        "{}",
        stdout(&o)
    );
    let o = run(&["inspect", a]);
    assert!(
        stdout(&o).contains("4 in use of 64, 0 alive"),
        "{}",
        stdout(&o)
    );
}
