//! Exemplars across real processes: a pre-fork master forks 4 workers that
//! increment a counter and observe into a classic and a native histogram,
//! each with an exemplar naming the worker and the round, while this
//! process renders OpenMetrics and protobuf over and over. Every exemplar
//! any render shows is one that some worker wrote whole (its labels and
//! its value belong together, on the bucket its value falls in), the values
//! stay exact, and once the workers are done each slot holds an exemplar
//! of one of them. Some rounds use long non-ASCII labels, which move a
//! series to a record of large slots while the other workers write.
//!
//! Processes are re-executed copies of this binary (see `common`); the
//! forking master is one of them, never the libtest harness.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use promshm::encoding::protobuf::{decode_families, proto};
use promshm::{Area, AreaOptions, Format, NativeOpts, Opts, Registry};

const WORKERS: u64 = 4;
const ROUNDS: u64 = 20_000;
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);
/// Classic buckets; observations of bucket `k` are `BASE[k] + w / 32`.
const BOUNDS: [f64; 3] = [1.0, 2.0, 4.0];
const BASE: [f64; 4] = [0.5, 1.5, 3.0, 8.0];
/// Every this many rounds the exemplar's labels are long and not ASCII.
const LONG_EVERY: u64 = 97;

#[test]
fn child_entry() {
    child_main(|role| match role {
        "prefork_master" => prefork_master(),
        other => panic!("unknown role {other:?}"),
    });
}

type Families = (
    promshm::Counter,
    promshm::Histogram,
    promshm::NativeHistogram,
);

fn families(reg: &Registry) -> Families {
    let c = reg
        .counter(Opts::new("jobs", "Jobs."))
        .unwrap()
        .get()
        .unwrap();
    let h = reg
        .histogram(Opts::new("latency", "Latency."), &BOUNDS)
        .unwrap()
        .get()
        .unwrap();
    let n = reg
        .native_histogram(Opts::new("native", "Native."), NativeOpts::new())
        .unwrap()
        .get()
        .unwrap();
    (c, h, n)
}

/// The counter increment of worker `w` in round `i` (dyadic: exact sums).
fn amount(w: u64, i: u64) -> f64 {
    (w + 1) as f64 + (i % 4) as f64 * 0.25
}

/// The observation of worker `w` in round `i`, and its classic bucket.
fn observation(w: u64, i: u64) -> (f64, usize) {
    let k = ((i + w) % 4) as usize;
    (BASE[k] + w as f64 / 32.0, k)
}

/// The exemplar labels of worker `w`, round `i`: `trace_id` names them
/// (and the bucket); long rounds add a long non-ASCII `span`.
fn labels(w: u64, i: u64, k: usize) -> Vec<(String, String)> {
    let mut l = vec![("trace_id".to_owned(), format!("w{w}-i{i}-b{k}"))];
    if i % LONG_EVERY == 0 {
        l.push(("span".to_owned(), "日本".repeat(40)));
    }
    l
}

fn work(f: &Families, w: u64) {
    let (c, h, n) = f;
    for i in 0..ROUNDS {
        let (v, k) = observation(w, i);
        let l = labels(w, i, k);
        let l: Vec<(&str, &str)> = l.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let cl = labels(w, i, 0);
        let cl: Vec<(&str, &str)> = cl.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        c.add_with_exemplar(amount(w, i), &cl).unwrap();
        h.observe_with_exemplar(v, &l).unwrap();
        n.observe_with_exemplar(v, &l).unwrap();
    }
    promshm::flush();
}

fn prefork_master() {
    let area = Area::create(env_area(), &AreaOptions::default()).unwrap();
    let f = families(&area.registry());
    let mut pids = Vec::new();
    for w in 0..WORKERS {
        // SAFETY: the child only updates inherited handles and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&f, w))).is_ok();
            // SAFETY: leaving the forked child without running the harness.
            unsafe { libc::_exit(if ok { 0 } else { 101 }) };
        }
        pids.push(pid);
    }
    for (w, pid) in pids.into_iter().enumerate() {
        wait_forked(pid, &format!("worker {w}"), CHILD_TIMEOUT);
    }
}

/// Check one exemplar: `trace_id` is `w{w}-i{i}-b{k}` of a real round, the
/// value is that round's, `k` is `bucket` (if given), the `span` label is
/// there exactly on long rounds. `counter`: the value is the increment.
fn check_exemplar(labels: &[(String, String)], value: f64, bucket: Option<usize>, counter: bool) {
    let trace = labels
        .iter()
        .find(|(k, _)| k == "trace_id")
        .unwrap_or_else(|| panic!("no trace_id in {labels:?}"))
        .1
        .clone();
    let parts: Vec<u64> = trace
        .split('-')
        .map(|p| {
            p[1..]
                .parse()
                .unwrap_or_else(|_| panic!("bad trace_id {trace}"))
        })
        .collect();
    let [w, i, k] = parts[..] else {
        panic!("bad trace_id {trace}")
    };
    assert!(w < WORKERS && i < ROUNDS, "{trace}");
    let long = labels
        .iter()
        .any(|(k, v)| k == "span" && *v == "日本".repeat(40));
    assert_eq!(long, i % LONG_EVERY == 0, "{labels:?}");
    assert_eq!(labels.len(), 1 + usize::from(long), "{labels:?}");
    if counter {
        assert_eq!((k, value), (0, amount(w, i)), "{trace}: mixed exemplar");
    } else {
        let (v, kk) = observation(w, i);
        assert_eq!((k as usize, value), (kk, v), "{trace}: mixed exemplar");
        if let Some(b) = bucket {
            assert_eq!(b, kk, "{trace} on bucket {b}");
        }
    }
}

/// Parse the OpenMetrics exemplar of a line: `(labels, value)`.
fn om_exemplar(line: &str) -> Option<(Vec<(String, String)>, f64)> {
    let (_, ex) = line.split_once(" # {")?;
    let (labels, rest) = ex.split_once("} ")?;
    let mut out = Vec::new();
    for pair in labels.split("\",") {
        let (k, v) = pair.split_once("=\"").expect("a label");
        out.push((k.to_owned(), v.trim_end_matches('"').to_owned()));
    }
    let mut nums = rest.split(' ');
    let value: f64 = nums.next()?.parse().expect("a value");
    let ts: f64 = nums.next()?.parse().expect("a timestamp");
    assert!(ts > 1.6e9, "{line}");
    Some((out, value))
}

/// Check every exemplar of one render of each format; how many were seen.
fn check_render(area: &Area) -> usize {
    let mut seen = 0;
    let om = area.render_to_string(Format::OpenMetrics).unwrap();
    for line in om.lines() {
        let Some((labels, value)) = om_exemplar(line) else {
            continue;
        };
        seen += 1;
        if line.starts_with("jobs_total") {
            check_exemplar(&labels, value, None, true);
        } else if let Some(rest) = line.strip_prefix("latency_bucket{le=\"") {
            let le = rest.split('"').next().unwrap();
            let b = ["1.0", "2.0", "4.0", "+Inf"]
                .iter()
                .position(|x| *x == le)
                .unwrap();
            check_exemplar(&labels, value, Some(b), false);
        } else if line.starts_with("native_bucket") {
            check_exemplar(&labels, value, None, false);
        } else {
            panic!("an exemplar on {line}");
        }
    }
    let mut pb = Vec::new();
    area.registry().render(&mut pb, Format::Protobuf).unwrap();
    let fams = decode_families(&pb).unwrap();
    let pairs = |e: &proto::Exemplar| -> Vec<(String, String)> {
        e.label
            .iter()
            .map(|l| (l.name().to_owned(), l.value().to_owned()))
            .collect()
    };
    for f in &fams {
        for m in &f.metric {
            if let Some(e) = m.counter.as_ref().and_then(|c| c.exemplar.as_ref()) {
                check_exemplar(&pairs(e), e.value(), None, true);
                seen += 1;
            }
            if let Some(h) = &m.histogram {
                // A native histogram's newest exemplar is on its one +Inf bucket.
                let native = h.schema.is_some();
                for (b, bucket) in h.bucket.iter().enumerate() {
                    if let Some(e) = &bucket.exemplar {
                        check_exemplar(&pairs(e), e.value(), (!native).then_some(b), false);
                        seen += 1;
                    }
                }
                for e in &h.exemplars {
                    check_exemplar(&pairs(e), e.value(), None, false);
                    seen += 1;
                }
            }
        }
    }
    seen
}

#[test]
fn four_workers_exemplars_are_never_torn_and_values_stay_exact() {
    let dir = TempDir::new("exemplars");
    let path = dir.join("area");
    let area = Area::create(&path, &AreaOptions::default()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (renders, seen) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let reader = {
        let (stop, renders, seen) = (stop.clone(), renders.clone(), seen.clone());
        let path = path.clone();
        std::thread::spawn(move || {
            let area = Area::create(&path, &AreaOptions::default()).unwrap();
            while !stop.load(Ordering::Relaxed) {
                let n = check_render(&area);
                renders.fetch_add(1, Ordering::Relaxed);
                seen.fetch_add(n as u64, Ordering::Relaxed);
            }
        })
    };
    run_child(
        "prefork_master",
        "master",
        &[(AREA_ENV, path.to_str().unwrap().to_string())],
        CHILD_TIMEOUT,
    );
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("the concurrent renders checked out");
    eprintln!(
        "{} concurrent renders, {} exemplars checked",
        renders.load(Ordering::Relaxed),
        seen.load(Ordering::Relaxed)
    );
    assert!(renders.load(Ordering::Relaxed) > 0);

    // Exact values, and every slot holds an exemplar of some worker.
    let (c, h, n) = families(&area.registry());
    let total: f64 = (0..WORKERS)
        .flat_map(|w| (0..ROUNDS).map(move |i| amount(w, i)))
        .sum();
    assert_eq!(c.get(), total);
    let hsum: f64 = (0..WORKERS)
        .flat_map(|w| (0..ROUNDS).map(move |i| observation(w, i).0))
        .sum();
    assert_eq!(h.get(), (WORKERS * ROUNDS, hsum));
    assert_eq!(n.get(), (WORKERS * ROUNDS, hsum));
    let om = area.render_to_string(Format::OpenMetrics).unwrap();
    let with = |prefix: &str| {
        om.lines()
            .filter(|l| l.starts_with(prefix) && l.contains(" # {"))
            .count()
    };
    assert_eq!(with("jobs_total"), 1, "{om}");
    assert_eq!(with("latency_bucket"), 4, "{om}");
    assert_eq!(with("native_bucket"), 1, "{om}");
    // OpenMetrics 6 (one a line), protobuf at least 7 (native: 1 to 4
    // slots, and its newest on its +Inf bucket).
    assert!(check_render(&area) >= 13);
    // The text format shows none.
    let text = area.render_to_string(Format::Prometheus).unwrap();
    assert!(!text.contains("trace_id"), "{text}");
}

/// OpenMetrics' limit: 128 characters of names and values; a 129th is
/// refused with a clear error, and the increment is not counted.
#[test]
fn exemplar_labels_over_128_characters_are_refused() {
    let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
    let (c, h, n) = families(&area.registry());
    let ok = "x".repeat(128 - "trace_id".len());
    let over = "x".repeat(129 - "trace_id".len());
    c.add_with_exemplar(1.0, &[("trace_id", &ok)]).unwrap();
    for r in [
        c.add_with_exemplar(1.0, &[("trace_id", &over)]),
        h.observe_with_exemplar(1.0, &[("trace_id", &over)]),
        n.observe_with_exemplar(1.0, &[("trace_id", &over)]),
    ] {
        let e = r.unwrap_err();
        assert!(
            e.to_string().contains("129 characters") && e.to_string().contains("at most 128"),
            "{e}"
        );
    }
    assert!(c.inc_with_exemplar(&[("bad-name", "x")]).is_err());
    assert!(c
        .inc_with_exemplar(&[("trace_id", "a"), ("trace_id", "b")])
        .is_err());
    promshm::flush();
    assert_eq!(c.get(), 1.0);
    assert_eq!(h.get().0, 0);
    assert_eq!(n.get().0, 0);
    let om = area.render_to_string(Format::OpenMetrics).unwrap();
    assert!(
        om.contains(&format!("jobs_total 1 # {{trace_id=\"{ok}\"}} 1 ")),
        "{om}"
    );
}
