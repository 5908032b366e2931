//! Native histograms across real processes: a pre-fork master forks 4
//! workers that observe through the handle they inherited, and 4 separately
//! started processes register the family themselves and observe; the
//! scrape (protobuf, decoded with prost) has the exact count of every
//! bucket, the exact sum, and, for a family with a bucket limit, the
//! reduced schema with the counts an independent computation gives.
//!
//! Processes are re-executed copies of this binary (see `common`); the
//! forking master is one of them, never the libtest harness.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use promshm::encoding::protobuf::{decode_families, proto};
use promshm::{Area, AreaOptions, Format, NativeOpts, Opts, Registry};

/// Workers per test.
const WORKERS: usize = 4;
/// Rounds per worker: each value is observed once a round.
const ROUNDS: u64 = 1000;
/// Bound on any child.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

/// The observed values: dyadic, so the sum is exact in any order. `2^33`
/// is above the default window (`2^32`) and lands, clamped, in its top
/// bucket.
const VALUES: [f64; 11] = [
    0.0,
    1.0,
    1.0625,
    2.0,
    1.5,
    100.0,
    0.25,
    0.125,
    -0.5,
    -3.0,
    8_589_934_592.0,
];
/// The top of the default window, where `2^33` is counted.
const WINDOW_TOP: f64 = 4_294_967_296.0;
/// Bucket limit of the second family (forces a schema reduction).
const SMALL_MAX: u32 = 4;

#[test]
fn child_entry() {
    child_main(|role| match role {
        "prefork_master" => prefork_master(),
        "worker" => {
            let area = Area::create(env_area(), &AreaOptions::default()).unwrap();
            let buffered = std::env::var("PROMSHM_BUFFERED").is_ok_and(|v| v == "1");
            observe_all(&area.registry(), env_u64("PROMSHM_WORKER"), buffered);
            promshm::flush();
        }
        other => panic!("unknown role {other:?}"),
    });
}

/// Register the two families (the same in every process), eager or
/// buffered (this process's choice: not part of the family).
fn families(
    reg: &Registry,
    buffered: bool,
) -> (
    promshm::Family<promshm::NativeHistogram>,
    promshm::Family<promshm::NativeHistogram>,
) {
    let wide = reg
        .native_histogram(
            Opts::new("latency_seconds", "Latency.").labels(&["route"]),
            NativeOpts::new().buffered(buffered),
        )
        .unwrap();
    let small = reg
        .native_histogram(
            Opts::new("small", "Few buckets."),
            NativeOpts::new().max_buckets(SMALL_MAX).buffered(buffered),
        )
        .unwrap();
    (wide, small)
}

/// One worker's observations: every value `ROUNDS` times, in an order that
/// depends on the worker, into both families.
fn observe_all(reg: &Registry, worker: u64, buffered: bool) {
    let (wide, small) = families(reg, buffered);
    let (wide, small) = (wide.labels(&["/a"]).unwrap(), small.get().unwrap());
    for r in 0..ROUNDS {
        for k in 0..VALUES.len() {
            let v = VALUES[(k + (r + worker) as usize) % VALUES.len()];
            wide.observe(v).unwrap();
            small.observe(v).unwrap();
        }
    }
}

/// Create the area, register, fork the workers (which use the inherited
/// handles and leave with `_exit`), wait for them.
fn prefork_master() {
    let area = Area::create(env_area(), &AreaOptions::default()).unwrap();
    let (wide, small) = families(&area.registry(), false);
    let (wide, small) = (wide.labels(&["/a"]).unwrap(), small.get().unwrap());
    let mut pids = Vec::new();
    for w in 0..WORKERS as u64 {
        // SAFETY: the child only observes into inherited handles (atomic
        // adds into the mapping) and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                for r in 0..ROUNDS {
                    for k in 0..VALUES.len() {
                        let v = VALUES[(k + (r + w) as usize) % VALUES.len()];
                        wide.observe(v).unwrap();
                        small.observe(v).unwrap();
                    }
                }
            }))
            .is_ok();
            // SAFETY: leaving the forked child without running the harness.
            unsafe { libc::_exit(if ok { 0 } else { 101 }) };
        }
        pids.push(pid);
    }
    for (w, pid) in pids.into_iter().enumerate() {
        wait_forked(pid, &format!("worker {w}"), CHILD_TIMEOUT);
    }
}

/// The bucket of `v` (> 0) at `schema` by the spec's definition, computed
/// independently of the library: the smallest `i` with `v <= 2^(i * 2^-s)`.
fn spec_index(v: f64, schema: i32) -> i32 {
    (v.log2() * 2f64.powi(schema)).ceil() as i32
}

/// Expected `(zero, positive, negative)` buckets at `schema` of all workers'
/// observations, clamped values at the window's top.
fn expected(schema: i32) -> (u64, BTreeMap<i32, u64>, BTreeMap<i32, u64>) {
    let n = ROUNDS * WORKERS as u64;
    let (mut zero, mut pos, mut neg) = (0, BTreeMap::new(), BTreeMap::new());
    for v in VALUES {
        if v == 0.0 {
            zero += n;
            continue;
        }
        let side = if v > 0.0 { &mut pos } else { &mut neg };
        *side
            .entry(spec_index(v.abs().min(WINDOW_TOP), schema))
            .or_insert(0) += n;
    }
    (zero, pos, neg)
}

/// The buckets of a decoded native histogram, from its spans and deltas.
fn buckets(spans: &[proto::BucketSpan], deltas: &[i64]) -> BTreeMap<i32, u64> {
    let mut out = BTreeMap::new();
    let (mut idx, mut count, mut d) = (0i32, 0i64, deltas.iter());
    for s in spans {
        idx += s.offset();
        for _ in 0..s.length() {
            count += d.next().expect("a delta per bucket");
            if count != 0 {
                out.insert(idx, count as u64);
            }
            idx += 1;
        }
    }
    assert!(d.next().is_none(), "more deltas than span buckets");
    out
}

fn histogram<'a>(fams: &'a [proto::MetricFamily], name: &str) -> &'a proto::Histogram {
    let f = fams
        .iter()
        .find(|f| f.name() == name)
        .unwrap_or_else(|| panic!("no family {name}"));
    assert_eq!(f.r#type(), proto::MetricType::Histogram);
    assert_eq!(f.metric.len(), 1);
    f.metric[0].histogram.as_ref().expect("a histogram")
}

/// Scrape `path` and check both families against the exact data.
fn check_scrape(path: &std::path::Path) {
    let area = Area::create(path, &AreaOptions::default()).unwrap();
    let mut out = Vec::new();
    area.registry().render(&mut out, Format::Protobuf).unwrap();
    let fams = decode_families(&out).unwrap();
    let n = ROUNDS * WORKERS as u64;
    let count = n * VALUES.len() as u64;
    let sum = n as f64 * VALUES.iter().sum::<f64>();

    let h = histogram(&fams, "latency_seconds");
    assert_eq!((h.schema(), h.zero_threshold()), (3, 2f64.powi(-128)));
    assert_eq!((h.sample_count(), h.sample_sum()), (count, sum));
    let (zero, pos, neg) = expected(3);
    assert_eq!(h.zero_count(), zero);
    assert_eq!(buckets(&h.positive_span, &h.positive_delta), pos);
    assert_eq!(buckets(&h.negative_span, &h.negative_delta), neg);
    // The literal buckets, for the reader: schema 3 is 8 buckets an octave.
    let want: BTreeMap<i32, u64> = [-24, -16, 0, 1, 5, 8, 54, 256]
        .into_iter()
        .map(|i| (i, n))
        .collect();
    assert_eq!(pos, want);
    assert_eq!(neg, [(-8, n), (13, n)].into_iter().collect());

    // 10 populated buckets > 4: reduced to the largest schema where the
    // same observations fill at most 4 buckets.
    let s = histogram(&fams, "small");
    let schema = (-4..=3)
        .rev()
        .find(|&sc| {
            let (_, p, q) = expected(sc);
            p.len() + q.len() <= SMALL_MAX as usize
        })
        .unwrap_or(-4);
    assert_eq!(s.schema(), schema);
    let (zero, pos, neg) = expected(schema);
    assert_eq!(
        (s.sample_count(), s.sample_sum(), s.zero_count()),
        (count, sum, zero)
    );
    assert_eq!(buckets(&s.positive_span, &s.positive_delta), pos);
    assert_eq!(buckets(&s.negative_span, &s.negative_delta), neg);

    // Text: what the format can carry, and the clamped values counted.
    let text = area.render_to_string(Format::Prometheus).unwrap();
    for want in [
        format!("latency_seconds_bucket{{route=\"/a\",le=\"+Inf\"}} {count}\n"),
        format!("latency_seconds_count{{route=\"/a\"}} {count}\n"),
        format!("small_count {count}\n"),
        format!("promshm_native_observations_clamped_total {}\n", 2 * n),
    ] {
        assert!(text.contains(&want), "no {want:?} in\n{text}");
    }
    let page = Scrape::parse(&text);
    assert_eq!(page.value("latency_seconds_sum", &[("route", "/a")]), sum);
}

#[test]
fn forked_workers_share_exact_buckets() {
    let dir = TempDir::new("native-fork");
    let path = dir.join("area");
    run_child(
        "prefork_master",
        "master",
        &[(AREA_ENV, path.to_str().unwrap().to_string())],
        CHILD_TIMEOUT,
    );
    check_scrape(&path);
}

/// Start `WORKERS` workers observing into the area at `path` (buffered:
/// through thread buffers, flushed before they exit), wait for them.
fn run_workers(path: &std::path::Path, buffered: bool) {
    let mut children: Vec<ChildProc> = (0..WORKERS)
        .map(|w| {
            ChildProc::spawn(
                "worker",
                &format!("worker {w}"),
                &[
                    (AREA_ENV, path.to_str().unwrap().to_string()),
                    ("PROMSHM_WORKER", w.to_string()),
                    ("PROMSHM_BUFFERED", u8::from(buffered).to_string()),
                ],
            )
        })
        .collect();
    run_children(&mut children, CHILD_TIMEOUT);
}

#[test]
fn separately_started_workers_register_and_share_exact_buckets() {
    let dir = TempDir::new("native-spawn");
    let path = dir.join("area");
    run_workers(&path, false);
    check_scrape(&path);
}

/// The same with buffered observations ([`NativeOpts::buffered`]): each
/// worker's thread buffer, flushed, adds up to the same exact buckets.
#[test]
fn buffered_workers_share_exact_buckets() {
    let dir = TempDir::new("native-buffered");
    let path = dir.join("area");
    run_workers(&path, true);
    check_scrape(&path);
}

/// Not a check: the probe behind the instruction counts of
/// docs/PERFORMANCE.md (run under `valgrind --tool=callgrind`, once with
/// `PROBE_N=0` to subtract the setup). `PROBE_MODE` is `native3`,
/// `native0`, `native3_buffered`, `dual3` (schema 3 and the 11 default
/// classic buckets), `classic_eager` or `classic_buffered`; `PROBE_N` observations
/// of 1024 values spread log-uniformly over 1 ms .. 20 s.
#[test]
#[ignore]
fn observe_probe() {
    let n: usize = std::env::var("PROBE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mode = std::env::var("PROBE_MODE").unwrap_or_default();
    let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
    let reg = area.registry();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let obs: Vec<f64> = (0..1024)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            10f64.powf(-3.0 + (x >> 11) as f64 / (1u64 << 53) as f64 * 4.3)
        })
        .collect();
    let observe: Box<dyn Fn(f64)> = match mode.as_str() {
        "native3" | "native0" | "native3_buffered" | "dual3" => {
            let schema = if mode == "native0" { 0 } else { 3 };
            let native = NativeOpts::new()
                .schema(schema)
                .buffered(mode == "native3_buffered");
            // `dual3`: classic buckets too (the 11 default ones).
            let classic: &[f64] = if mode == "dual3" {
                &promshm::DEFAULT_BUCKETS
            } else {
                &[]
            };
            let h = reg
                .native_histogram_with_buckets(Opts::new("p", "h"), native, classic)
                .unwrap()
                .get()
                .unwrap();
            Box::new(move |v| h.observe(v).unwrap())
        }
        "classic_eager" | "classic_buffered" => {
            let eager = mode == "classic_eager";
            let h = reg
                .histogram(Opts::new("p", "h").eager(eager), &promshm::DEFAULT_BUCKETS)
                .unwrap()
                .get()
                .unwrap();
            Box::new(move |v| h.observe(v).unwrap())
        }
        other => panic!("PROBE_MODE {other:?}"),
    };
    for i in 0..n {
        observe(std::hint::black_box(obs[i & 1023]));
    }
    promshm::flush();
}
