//! Multi-process integration tests of the shared-area core: exact totals,
//! quantiles across processes, dead workers, a full area, fork safety, a
//! concurrent create race and cross-process registry semantics; plus two
//! robustness cases: two mappings of one area in one process, and fork()
//! while another thread registers (ignored: a known bug, see its doc).
//!
//! Every process is a real process started by re-executing this test binary
//! (see `common`); `child_entry` below dispatches the roles. The death and
//! lock-recovery test lives in `multiprocess_death.rs`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use promshm::{
    Area, AreaOptions, Counter, Error, Family, Format, GaugeMode, Histogram, OpenMode, Opts,
    Summary, SummaryOpts,
};

/// Bound on any one child's run.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on a child getting ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn child_entry() {
    child_main(|role| match role {
        "exact" => exact_child(),
        "quantiles" => quantiles_child(),
        "gauge_worker" => gauge_worker_child(),
        "short_lived" => short_lived_child(),
        "full_second" => full_second_child(),
        "forker" => forker_child(),
        "fork_threaded" => fork_threaded_child(),
        "racer" => racer_child(),
        "xreg" => xreg_child(),
        "mixed" => mixed_child(),
        other => panic!("unknown role {other:?}"),
    });
}

fn area_env(path: &std::path::Path) -> (&'static str, String) {
    (AREA_ENV, path.to_str().expect("utf-8 path").to_string())
}

// ---- 1. exact totals ---------------------------------------------------------------

const EX_PROCS: u64 = 4;
const EX_THREADS: u64 = 2;
const EX_N: u64 = 100_000;
const EX_PATHS: [&str; 4] = ["/", "/api/v1/items", "/with space", "q\"uote\\back\nline"];
const EX_CODES: [&str; 2] = ["200", "503"];
const EX_SHARDS: [&str; 2] = ["a", "b"];
const EX_BUCKETS: [f64; 7] = [1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0];

struct ExFamilies {
    requests: Family<Counter>,
    eager: Family<Counter>,
    latency: Family<Histogram>,
    sizes: Family<Summary>,
}

fn ex_families(area: &Area) -> ExFamilies {
    let reg = area.registry().with_prefix("ex").unwrap();
    ExFamilies {
        requests: reg
            .counter(Opts::new("requests", "Requests.").labels(&["path", "code"]))
            .unwrap(),
        eager: reg
            .counter(Opts::new("eager_events", "Write-through events.").eager(true))
            .unwrap(),
        latency: reg
            .histogram(
                Opts::new("latency", "Latency.").labels(&["shard"]),
                &EX_BUCKETS,
            )
            .unwrap(),
        sizes: reg
            .summary(
                Opts::new("sizes", "Sizes.").labels(&["shard"]),
                &SummaryOpts::quantiles(&[0.5, 0.9]),
            )
            .unwrap(),
    }
}

/// What update `i` of thread `t` of process `p` does:
/// (counter series 0..8, counter increment, shard, histogram value, summary value).
/// All values are integers, so every sum is exact in f64.
fn ex_step(p: u64, t: u64, i: u64) -> (usize, u64, usize, u64, u64) {
    // splitmix64 of the coordinates.
    let mut x = (p << 40 | t << 32 | i).wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (
        (x % 8) as usize,
        1 + (x >> 8) % 3,
        ((x >> 16) % 2) as usize,
        (x >> 20) % 130,
        (x >> 32) % 5000,
    )
}

fn exact_child() {
    let p = env_u64("PROMSHM_PROC");
    let area = Area::create(env_area(), &AreaOptions::default()).unwrap();
    let fams = ex_families(&area);
    let done = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for t in 0..EX_THREADS {
            let fams = &fams;
            let done = &done;
            scope.spawn(move || {
                let mut counters = Vec::new();
                for path in EX_PATHS {
                    for code in EX_CODES {
                        counters.push(fams.requests.labels(&[path, code]).unwrap());
                    }
                }
                let eager = fams.eager.get().unwrap();
                let hists: Vec<_> = EX_SHARDS
                    .iter()
                    .map(|s| fams.latency.labels(&[s]).unwrap())
                    .collect();
                let sizes: Vec<_> = EX_SHARDS
                    .iter()
                    .map(|s| fams.sizes.labels(&[s]).unwrap())
                    .collect();
                let mut rng = Rng::new(p * 100 + t + 1);
                for i in 0..EX_N {
                    let (c, inc, shard, h, sz) = ex_step(p, t, i);
                    counters[c].add(inc as f64).unwrap();
                    eager.inc();
                    hists[shard].observe(h as f64).unwrap();
                    sizes[shard].observe(sz as f64).unwrap();
                    // Flush mid-way at random points, from the updating thread.
                    if rng.below(4096) == 0 {
                        promshm::flush();
                    }
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // Thread exit flushes this thread's buffer too.
            });
        }
        // Meanwhile, flush every thread's buffer from another thread.
        while done.load(std::sync::atomic::Ordering::SeqCst) < EX_THREADS {
            promshm::flush();
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    promshm::flush();
}

#[test]
fn exact_totals_across_processes() {
    let dir = TempDir::new("exact");
    let path = dir.join("area.promshm");
    let area = Area::create(&path, &AreaOptions::default()).unwrap();
    let t0 = Instant::now();
    let mut kids: Vec<ChildProc> = (0..EX_PROCS)
        .map(|p| {
            ChildProc::spawn(
                "exact",
                &format!("exact-{p}"),
                &[area_env(&path), ("PROMSHM_PROC", p.to_string())],
            )
        })
        .collect();
    run_children(&mut kids, CHILD_TIMEOUT);
    eprintln!("exact: children done in {:?}", t0.elapsed());

    // What every update did, replayed.
    let mut counters = [0u64; 8];
    let mut buckets = [[0u64; EX_BUCKETS.len() + 1]; 2];
    let mut hist_sum = [0u64; 2];
    let mut size_count = [0u64; 2];
    let mut size_sum = [0u64; 2];
    for p in 0..EX_PROCS {
        for t in 0..EX_THREADS {
            for i in 0..EX_N {
                let (c, inc, shard, h, sz) = ex_step(p, t, i);
                counters[c] += inc;
                let b = EX_BUCKETS
                    .iter()
                    .position(|&b| h as f64 <= b)
                    .unwrap_or(EX_BUCKETS.len());
                buckets[shard][b] += 1;
                hist_sum[shard] += h;
                size_count[shard] += 1;
                size_sum[shard] += sz;
            }
        }
    }
    let total = EX_PROCS * EX_THREADS * EX_N;
    assert!(counters.iter().sum::<u64>() > total);

    // 1. The rendered text.
    let (s, stats) = scrape(&area);
    assert_eq!(stats.bad_records, 0);
    for (pi, path) in EX_PATHS.iter().enumerate() {
        for (ci, code) in EX_CODES.iter().enumerate() {
            assert_eq!(
                s.value("ex_requests_total", &[("path", path), ("code", code)]),
                counters[pi * 2 + ci] as f64,
                "ex_requests_total{{path={path:?},code={code}}}"
            );
        }
    }
    assert_eq!(s.value("ex_eager_events_total", &[]), total as f64);
    for (si, shard) in EX_SHARDS.iter().enumerate() {
        let mut cumulative = 0;
        for (bi, &le) in EX_BUCKETS.iter().chain(&[f64::INFINITY]).enumerate() {
            cumulative += buckets[si][bi];
            assert_eq!(
                s.value_at("ex_latency_bucket", &[("shard", shard)], ("le", le)),
                cumulative as f64,
                "bucket le={le} of shard {shard}"
            );
        }
        let count: u64 = buckets[si].iter().sum();
        assert_eq!(
            s.value("ex_latency_count", &[("shard", shard)]),
            count as f64
        );
        assert_eq!(
            s.value("ex_latency_sum", &[("shard", shard)]),
            hist_sum[si] as f64
        );
        assert_eq!(
            s.value("ex_sizes_count", &[("shard", shard)]),
            size_count[si] as f64
        );
        assert_eq!(
            s.value("ex_sizes_sum", &[("shard", shard)]),
            size_sum[si] as f64
        );
    }
    assert_eq!(
        buckets.iter().flatten().sum::<u64>(),
        total,
        "every observation is in one bucket"
    );

    // 2. The same through handles of this process (which updated nothing).
    let fams = ex_families(&area);
    for (pi, path) in EX_PATHS.iter().enumerate() {
        for (ci, code) in EX_CODES.iter().enumerate() {
            assert_eq!(
                fams.requests.labels(&[path, code]).unwrap().get(),
                counters[pi * 2 + ci] as f64
            );
        }
    }
    assert_eq!(fams.eager.get().unwrap().get(), total as f64);
    for (si, shard) in EX_SHARDS.iter().enumerate() {
        let count: u64 = buckets[si].iter().sum();
        assert_eq!(
            fams.latency.labels(&[shard]).unwrap().get(),
            (count, hist_sum[si] as f64)
        );
        assert_eq!(
            fams.sizes.labels(&[shard]).unwrap().get(),
            (size_count[si], size_sum[si] as f64)
        );
    }
    // Flushes are counted in the area (each child flushed many times).
    assert!(area.stats().flushes >= EX_PROCS);
}

// ---- 1b. whole and fractional increments on one counter (format 6) ---------------

const MX_PROCS: u64 = 4;
const MX_N: u64 = 60_001;

/// An eager and a buffered counter (docs/FORMAT.md §8.2: whole increments in
/// the integer cell, the others in the f64 cell).
fn mx_counters(area: &Area) -> [Counter; 2] {
    let reg = area.registry();
    [true, false].map(|eager| {
        let name = if eager { "mx_eager" } else { "mx_buffered" };
        reg.counter(Opts::new(name, "Mixed increments.").eager(eager))
            .unwrap()
            .get()
            .unwrap()
    })
}

/// What update `i` adds to each counter: `inc()` (1), `add(0.5)` or `add(3.0)`.
fn mx_step(i: u64) -> f64 {
    match i % 5 {
        0 | 2 => 0.5,
        4 => 3.0,
        _ => 1.0,
    }
}

fn mixed_child() {
    let area = Area::create(env_area(), &AreaOptions::default()).unwrap();
    let counters = mx_counters(&area);
    std::thread::scope(|scope| {
        for t in 0..2u64 {
            let counters = &counters;
            scope.spawn(move || {
                for i in 0..MX_N {
                    let v = mx_step(i);
                    for c in counters {
                        if v == 1.0 {
                            c.inc();
                        } else {
                            c.add(v).unwrap();
                        }
                    }
                    if i % 4099 == t {
                        promshm::flush();
                    }
                }
            });
        }
    });
    promshm::flush();
}

/// Several processes (two threads each) mixing `inc()`, `add(0.5)` and
/// `add(3.0)` on one eager and one buffered counter: both totals are exact,
/// in the render and through `get`.
#[test]
fn whole_and_fractional_increments_add_up_exactly_across_processes() {
    let dir = TempDir::new("mixed");
    let path = dir.join("area.promshm");
    let area = Area::create(&path, &AreaOptions::default()).unwrap();
    let mut kids: Vec<ChildProc> = (0..MX_PROCS)
        .map(|p| ChildProc::spawn("mixed", &format!("mixed-{p}"), &[area_env(&path)]))
        .collect();
    run_children(&mut kids, CHILD_TIMEOUT);
    let per_thread: f64 = (0..MX_N).map(mx_step).sum();
    let want = per_thread * (2 * MX_PROCS) as f64;
    assert_ne!(
        per_thread.fract(),
        0.0,
        "fractional increments in the f64 cell"
    );
    let (s, stats) = scrape(&area);
    assert_eq!(stats.bad_records, 0);
    for (name, c) in ["mx_eager", "mx_buffered"].iter().zip(mx_counters(&area)) {
        assert_eq!(s.value(&format!("{name}_total"), &[]), want, "{name}");
        assert_eq!(c.get(), want, "{name}");
    }
}

/// A total past `2^53` in the integer cell renders as the nearest `f64`, and
/// a fractional increment on top adds to it as an `f64`.
#[test]
fn integer_cell_past_2_pow_53_renders_as_f64() {
    let area = Area::anonymous(&AreaOptions::default()).unwrap();
    let [eager, buffered] = mx_counters(&area);
    let big = (1u64 << 52) as f64;
    for c in [&eager, &buffered] {
        for _ in 0..3 {
            c.add(big).unwrap();
        }
        c.inc();
        c.inc();
        c.add(u64::MAX as f64).unwrap(); // not below 2^53: the f64 cell
    }
    promshm::flush();
    let int = 3 * (1u64 << 52) + 2;
    let want = int as f64 + u64::MAX as f64;
    let (s, stats) = scrape(&area);
    assert_eq!(stats.bad_records, 0);
    for (name, c) in [("mx_eager", &eager), ("mx_buffered", &buffered)] {
        assert_eq!(s.value(&format!("{name}_total"), &[]), want, "{name}");
        assert_eq!(c.get(), want, "{name}");
        c.reset();
        c.add(big).unwrap();
        c.add(big).unwrap();
        c.inc();
        promshm::flush();
        let want = ((2u64 << 52) + 1) as f64;
        assert_eq!(want, 9_007_199_254_740_992.0, "2^53 + 1 rounds to 2^53");
        assert_eq!(c.get(), want, "{name}");
        let (s, _) = scrape(&area);
        assert_eq!(s.value(&format!("{name}_total"), &[]), want, "{name}");
    }
}

// ---- 2. summary quantiles across processes ------------------------------------------

const Q_PROCS: u64 = 4;
const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];

/// The observations of process `p`: log-normal, a different location, spread
/// and size for each process, from a seeded generator.
fn quant_data(p: u64) -> Vec<f64> {
    let mu = [0.0, 1.2, 2.5, -0.8][p as usize];
    let sigma = 0.3 + 0.25 * p as f64;
    let n = 30_000 + 10_000 * p as usize;
    let mut rng = Rng::new(0xC0FF_EE00 + p);
    (0..n).map(|_| (mu + sigma * rng.normal()).exp()).collect()
}

fn quant_family(area: &Area) -> Family<Summary> {
    area.registry()
        .summary(
            Opts::new("q_latency", "Latency across processes.").unit("seconds"),
            &SummaryOpts::quantiles(&QUANTILES),
        )
        .unwrap()
}

fn quantiles_child() {
    let p = env_u64("PROMSHM_PROC");
    let area = Area::create(env_area(), &AreaOptions::default()).unwrap();
    let s = quant_family(&area).get().unwrap();
    for v in quant_data(p) {
        s.observe(v).unwrap();
    }
    promshm::flush();
}

/// Exact quantile of sorted data, with the rank rule of `src/metrics/sketch.rs`.
fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let rank = ((q * n as f64).ceil() as usize).max(1) - 1;
    sorted[rank.min(n - 1)]
}

#[test]
fn summary_quantiles_across_processes() {
    let dir = TempDir::new("quant");
    let path = dir.join("area.promshm");
    let area = Area::create(&path, &AreaOptions::default()).unwrap();
    let mut kids: Vec<ChildProc> = (0..Q_PROCS)
        .map(|p| {
            ChildProc::spawn(
                "quantiles",
                &format!("quantiles-{p}"),
                &[area_env(&path), ("PROMSHM_PROC", p.to_string())],
            )
        })
        .collect();
    run_children(&mut kids, CHILD_TIMEOUT);

    let per_process: Vec<Vec<f64>> = (0..Q_PROCS).map(quant_data).collect();
    let mut all: Vec<f64> = per_process.iter().flatten().copied().collect();
    all.sort_by(f64::total_cmp);
    let (s, stats) = scrape(&area);
    assert_eq!(stats.bad_records, 0);
    let name = "q_latency_seconds";
    assert_eq!(s.value(&format!("{name}_count"), &[]), all.len() as f64);
    let sum: f64 = all.iter().sum();
    let got_sum = s.value(&format!("{name}_sum"), &[]);
    assert!(
        ((got_sum - sum) / sum).abs() < 1e-9,
        "sum {got_sum} vs {sum}"
    );
    let handle = quant_family(&area).get().unwrap();
    let from_handle = handle.quantiles(&QUANTILES);
    for (i, &q) in QUANTILES.iter().enumerate() {
        let exact = exact_quantile(&all, q);
        let got = s.value_at(name, &[], ("quantile", q));
        let err = ((got - exact) / exact).abs();
        assert!(
            err <= 0.01,
            "quantile {q}: rendered {got}, exact {exact} (relative error {err})"
        );
        assert_eq!(from_handle[i], got, "handle and render agree on q={q}");
        // The test has teeth: no single process's data gives the union's answer.
        for (p, data) in per_process.iter().enumerate() {
            let mut d = data.clone();
            d.sort_by(f64::total_cmp);
            let own = exact_quantile(&d, q);
            assert!(
                ((own - exact) / exact).abs() > 0.03,
                "process {p} alone has q{q} = {own}, too close to the union's {exact}"
            );
        }
        eprintln!("quantile {q}: exact {exact}, rendered {got}, error {err:.5}");
    }
}

// ---- 4. dead workers --------------------------------------------------------------------

struct GwFamilies {
    sum: Family<promshm::Gauge>,
    livesum: Family<promshm::Gauge>,
    max: Family<promshm::Gauge>,
    min: Family<promshm::Gauge>,
    recent: Family<promshm::Gauge>,
    all: Family<promshm::Gauge>,
    counter: Family<Counter>,
}

fn gw_families(area: &Area) -> GwFamilies {
    let reg = area.registry();
    let g = |name: &str, mode| reg.gauge(Opts::new(name, "A gauge."), mode).unwrap();
    GwFamilies {
        sum: g("gw_summed", GaugeMode::Sum),
        livesum: g("gw_livesum", GaugeMode::LiveSum),
        max: g("gw_max", GaugeMode::Max),
        min: g("gw_min", GaugeMode::Min),
        recent: g("gw_recent", GaugeMode::MostRecent),
        all: g("gw_all", GaugeMode::All),
        counter: reg.counter(Opts::new("gw_events", "Events.")).unwrap(),
    }
}

fn env_f64(name: &str) -> f64 {
    env_str(name).parse().unwrap()
}

fn gauge_worker_child() {
    let area = Area::create(
        env_area(),
        &AreaOptions {
            max_workers: 8,
            ..Default::default()
        },
    )
    .unwrap();
    let f = gw_families(&area);
    let v = env_f64("GW_VALUE");
    f.sum.get().unwrap().set(v);
    f.livesum.get().unwrap().set(v);
    f.all.get().unwrap().set(v);
    f.max.get().unwrap().set(env_f64("GW_MAX"));
    f.min.get().unwrap().set(env_f64("GW_MIN"));
    f.recent.get().unwrap().set(env_f64("GW_RECENT"));
    let c = f.counter.get().unwrap();
    c.add(env_f64("GW_FLUSHED")).unwrap();
    promshm::flush();
    // Buffered and never flushed if we are killed.
    c.add(env_f64("GW_UNFLUSHED")).unwrap();
    let slot = area.attach().unwrap();
    send(&format!("ready {slot}"));
    wait_for_parent();
}

fn gw_check(area: &Area, what: &str, expect: &[(&str, f64)], all: &[(u32, f64)], events: f64) {
    let (s, stats) = scrape(area);
    assert_eq!(stats.bad_records, 0, "{what}");
    for (name, v) in expect {
        assert_eq!(s.value(name, &[]), *v, "{what}: {name}");
    }
    let mut got: Vec<(u32, f64)> = s
        .series("gw_all")
        .into_iter()
        .map(|(l, v)| (l["worker"].parse().unwrap(), v))
        .collect();
    got.sort_by_key(|a| a.0);
    let mut all = all.to_vec();
    all.sort_by_key(|a| a.0);
    assert_eq!(got, all, "{what}: gw_all series by worker slot");
    assert_eq!(s.value("gw_events_total", &[]), events, "{what}: counter");
}

fn spawn_gauge_worker(
    path: &std::path::Path,
    name: &str,
    vals: [(&'static str, f64); 6],
) -> (ChildProc, u32) {
    let mut envs = vec![area_env(path)];
    envs.extend(vals.iter().map(|(k, v)| (*k, v.to_string())));
    let mut c = ChildProc::spawn("gauge_worker", name, &envs);
    let msg = c.recv(READY_TIMEOUT);
    let slot = msg
        .strip_prefix("ready ")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| c.fail(&format!("bad ready message {msg:?}")));
    (c, slot)
}

#[test]
fn dead_workers_are_reaped_and_gauges_follow_their_mode() {
    let dir = TempDir::new("dead");
    let path = dir.join("area.promshm");
    let area = Area::create(
        &path,
        &AreaOptions {
            pages: 64,
            max_workers: 8,
            ..Default::default()
        },
    )
    .unwrap();
    let f = gw_families(&area);
    let (sum, livesum, max, min, recent, all) = (
        f.sum.get().unwrap(),
        f.livesum.get().unwrap(),
        f.max.get().unwrap(),
        f.min.get().unwrap(),
        f.recent.get().unwrap(),
        f.all.get().unwrap(),
    );
    sum.set(1.0);
    livesum.set(1.0);
    all.set(1.0);
    max.set(5.0);
    min.set(5.0);
    recent.set(3.0);
    let me = area.attach().unwrap();
    // MostRecent compares millisecond stamps: make the child's write later.
    std::thread::sleep(Duration::from_millis(5));

    let (mut a, a_slot) = spawn_gauge_worker(
        &path,
        "worker-a",
        [
            ("GW_VALUE", 10.0),
            ("GW_MAX", 100.0),
            ("GW_MIN", -100.0),
            ("GW_RECENT", 7.0),
            ("GW_FLUSHED", 42.0),
            ("GW_UNFLUSHED", 1000.0),
        ],
    );
    assert_ne!(a_slot, me);
    let wa = area
        .workers()
        .into_iter()
        .find(|w| w.pid == a.pid())
        .expect("worker A listed");
    assert_eq!(wa.slot, a_slot);
    assert!(wa.alive);
    let gen_a = wa.generation;
    gw_check(
        &area,
        "A alive",
        &[
            ("gw_summed", 11.0),
            ("gw_livesum", 11.0),
            ("gw_max", 100.0),
            ("gw_min", -100.0),
            ("gw_recent", 7.0),
        ],
        &[(me, 1.0), (a_slot, 10.0)],
        42.0,
    );

    a.kill();
    assert_eq!(area.reap_dead_workers().unwrap(), 1, "A is reaped");
    assert_eq!(area.reap_dead_workers().unwrap(), 0, "only once");
    let workers = area.workers();
    assert!(
        workers.iter().all(|w| w.pid != a.pid() && w.slot != a_slot),
        "A no longer listed: {workers:?}"
    );
    assert_eq!(area.stats().reaped_workers, 1);
    // Sum keeps the dead worker's value, LiveSum drops it, Max/Min include
    // it, MostRecent keeps the last write (A's), All drops A's series; the
    // counter keeps what A flushed and loses only its unflushed 1000.
    gw_check(
        &area,
        "A reaped",
        &[
            ("gw_summed", 11.0),
            ("gw_livesum", 1.0),
            ("gw_max", 100.0),
            ("gw_min", -100.0),
            ("gw_recent", 7.0),
        ],
        &[(me, 1.0)],
        42.0,
    );
    assert_eq!(sum.get(), 11.0);
    assert_eq!(livesum.get(), 1.0);
    assert_eq!(f.counter.get().unwrap().get(), 42.0);
    recent.set(9.0);
    assert_eq!(recent.get(), 9.0);
    std::thread::sleep(Duration::from_millis(5));

    // A new worker takes A's slot (the lowest free one), one generation later,
    // starting from clean cells.
    let (mut b, b_slot) = spawn_gauge_worker(
        &path,
        "worker-b",
        [
            ("GW_VALUE", 20.0),
            ("GW_MAX", 50.0),
            ("GW_MIN", 0.0),
            ("GW_RECENT", 20.0),
            ("GW_FLUSHED", 8.0),
            ("GW_UNFLUSHED", 0.0),
        ],
    );
    assert_eq!(b_slot, a_slot, "slot reused");
    let wb = area
        .workers()
        .into_iter()
        .find(|w| w.pid == b.pid())
        .expect("worker B listed");
    assert_eq!(wb.generation, gen_a + 1, "generation bumped");
    gw_check(
        &area,
        "B alive",
        &[
            ("gw_summed", 31.0),
            ("gw_livesum", 21.0),
            ("gw_max", 100.0),
            ("gw_min", -100.0),
            ("gw_recent", 20.0),
        ],
        &[(me, 1.0), (b_slot, 20.0)],
        50.0,
    );

    // B exits normally: it never detaches, and is found dead all the same.
    b.release();
    b.expect_success(CHILD_TIMEOUT);
    assert_eq!(area.reap_dead_workers().unwrap(), 1, "B is reaped");
    gw_check(
        &area,
        "B reaped",
        &[
            ("gw_summed", 31.0),
            ("gw_livesum", 1.0),
            ("gw_max", 100.0),
            ("gw_min", -100.0),
            ("gw_recent", 20.0),
        ],
        &[(me, 1.0)],
        50.0,
    );
    assert_eq!(area.stats().reaped_workers, 2);
    let workers = area.workers();
    assert_eq!(workers.len(), 1, "only this process: {workers:?}");
    assert_eq!(workers[0].pid, std::process::id());
}

fn short_lived_child() {
    let area = Area::create(
        env_area(),
        &AreaOptions {
            pages: 64,
            max_workers: 8,
            ..Default::default()
        },
    )
    .unwrap();
    let reg = area.registry();
    let slot = area.attach().expect("a worker slot");
    reg.gauge(Opts::new("sl_live", "Live workers."), GaugeMode::LiveSum)
        .unwrap()
        .get()
        .unwrap()
        .set(1.0);
    reg.counter(Opts::new("sl_starts", "Worker starts."))
        .unwrap()
        .get()
        .unwrap()
        .inc();
    promshm::flush();
    send(&format!("slot {slot}"));
}

#[test]
fn many_short_lived_workers_never_exhaust_the_slots() {
    const CHILDREN: usize = 200;
    let dir = TempDir::new("short");
    let path = dir.join("area.promshm");
    let area = Area::create(
        &path,
        &AreaOptions {
            pages: 64,
            max_workers: 8,
            ..Default::default()
        },
    )
    .unwrap();
    let t0 = Instant::now();
    let mut after_first = None;
    for i in 0..CHILDREN {
        let msgs = run_child(
            "short_lived",
            &format!("short-{i}"),
            &[area_env(&path)],
            CHILD_TIMEOUT,
        );
        let slot: u32 = msgs
            .iter()
            .find_map(|m| m.strip_prefix("slot "))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("child {i} sent {msgs:?}"));
        assert!(slot < 8);
        let st = area.stats();
        let used = (st.bytes_free, st.pages_used, st.families, st.series);
        // A gauge series grows with the slots that wrote it (format 4), so
        // up to the table's 8; from then on nothing grows.
        match after_first {
            None if i + 1 >= 8 => after_first = Some(used),
            None => {}
            Some(first) => assert_eq!(used, first, "nothing grows with workers started"),
        }
        assert!(area.workers().len() <= 8);
    }
    eprintln!("{CHILDREN} short-lived children in {:?}", t0.elapsed());
    let left = area.reap_dead_workers().unwrap();
    assert!(left <= 8);
    assert_eq!(area.stats().reaped_workers, CHILDREN as u64);
    assert!(area.workers().is_empty(), "{:?}", area.workers());
    let (s, stats) = scrape(&area);
    assert_eq!(stats.bad_records, 0);
    assert_eq!(s.value("sl_starts_total", &[]), CHILDREN as f64);
    assert_eq!(s.value("sl_live", &[]), 0.0, "no worker is alive");
}

// ---- 5. full area ------------------------------------------------------------------------

fn full_family(area: &Area) -> Family<Counter> {
    area.registry()
        .counter(Opts::new("full_series", "Series until full.").labels(&["id"]))
        .unwrap()
}

fn is_area_full<T: std::fmt::Debug>(r: promshm::Result<T>) -> bool {
    match r {
        Err(Error::AreaFull { .. }) => true,
        other => panic!("expected AreaFull, got {other:?}"),
    }
}

fn full_second_child() {
    let area = Area::open(env_area(), OpenMode::ReadWrite).unwrap();
    let fam = full_family(&area);
    let c = fam.labels(&["0"]).expect("an existing series resolves");
    assert!(is_area_full(fam.labels(&["new in child"])));
    assert!(is_area_full(
        area.registry()
            .counter(Opts::new("full_other_child", "Another family."))
    ));
    for _ in 0..1000 {
        c.inc();
    }
    promshm::flush();
    send("refused 2");
}

#[test]
fn full_area_refuses_registration_and_keeps_counting() {
    let dir = TempDir::new("full");
    let path = dir.join("area.promshm");
    let area = Area::create(&path, &AreaOptions::with_pages(8)).unwrap();
    let fam = full_family(&area);
    let mut series = Vec::new();
    loop {
        match fam.labels(&[&series.len().to_string()]) {
            Ok(c) => series.push(c),
            Err(Error::AreaFull { needed, free }) => {
                assert!(
                    needed > free,
                    "AreaFull {{ needed: {needed}, free: {free} }}"
                );
                break;
            }
            Err(e) => panic!("expected AreaFull, got {e}"),
        }
        assert!(series.len() < 10_000, "an 8-page area never fills");
    }
    let n = series.len();
    eprintln!("an 8-page area holds {n} counter series");
    assert!(n > 50);
    assert_eq!(area.stats().refused, 1);
    for i in 0..4 {
        assert!(is_area_full(fam.labels(&[&format!("more {i}")])));
    }
    assert!(is_area_full(
        area.registry()
            .counter(Opts::new("full_other", "Another family."))
    ));
    assert!(is_area_full(area.registry().gauge(
        Opts::new("full_gauge", "Another family."),
        GaugeMode::Sum
    )));
    assert_eq!(area.stats().refused, 7);

    // Existing series keep counting, from handles and from fresh resolutions.
    for (i, c) in series.iter().enumerate() {
        c.add(i as f64).unwrap();
        fam.labels(&[&i.to_string()]).unwrap().inc();
    }
    promshm::flush();
    // A second process is refused too, and counts into an existing series.
    let msgs = run_child(
        "full_second",
        "full-second",
        &[area_env(&path)],
        CHILD_TIMEOUT,
    );
    assert_eq!(msgs, ["refused 2"]);
    let refused = 9.0;
    assert_eq!(area.stats().refused, refused as u64);
    let (s, stats) = scrape(&area);
    assert_eq!(stats.bad_records, 0);
    assert_eq!(s.value("promshm_registrations_refused_total", &[]), refused);
    for (i, c) in series.iter().enumerate() {
        let expect = i as f64 + 1.0 + if i == 0 { 1000.0 } else { 0.0 };
        assert_eq!(
            s.value("full_series_total", &[("id", &i.to_string())]),
            expect
        );
        assert_eq!(c.get(), expect);
    }
    assert_eq!(s.series("full_series_total").len(), n);
    assert!(s.get("full_other_total", &[]).is_none());
}

// ---- 6. fork safety ------------------------------------------------------------------------

fn fork_families(area: &Area) -> (Family<Counter>, Family<Histogram>) {
    let reg = area.registry();
    (
        reg.counter(Opts::new("fork_events", "Events.").labels(&["by"]))
            .unwrap(),
        reg.histogram(Opts::new("fork_sizes", "Sizes."), &[1.0, 10.0, 100.0])
            .unwrap(),
    )
}

/// fork(), run `grandchild` in the child and exit with its status; wait for
/// it in the parent (bounded) and assert it succeeded.
fn fork_and_wait(grandchild: impl FnOnce()) {
    fork_and_wait_for(Duration::from_secs(20), grandchild)
}

fn fork_and_wait_for(timeout: Duration, grandchild: impl FnOnce()) {
    // SAFETY: the roles that fork run no thread of their own besides
    // fork_threaded's (whose hazard is the point of that test); libtest's main
    // thread only waits on a channel. The child runs promshm calls and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(grandchild)).is_ok();
        // exit() runs the atexit flush: it must flush only the grandchild's own updates.
        std::process::exit(if ok { 0 } else { 101 });
    }
    wait_forked(pid, "grandchild", timeout);
}

fn forker_child() {
    // A file area checked by the test's process, or an anonymous one made
    // before fork() (the pre-fork server set-up) checked here.
    let anonymous = std::env::var_os(AREA_ENV).is_none();
    let area = if anonymous {
        Area::anonymous(&AreaOptions::with_pages(256)).unwrap()
    } else {
        Area::create(env_area(), &AreaOptions::default()).unwrap()
    };
    let (events, sizes) = fork_families(&area);
    let parent = events.labels(&["parent"]).unwrap();
    let shared = events.labels(&["shared"]).unwrap();
    let hist = sizes.get().unwrap();
    // Buffered before the fork, not flushed.
    parent.add(1000.0).unwrap();
    shared.add(100.0).unwrap();
    for _ in 0..10 {
        hist.observe(5.0).unwrap();
    }
    assert_eq!(parent.get(), 0.0);

    // Grandchild 1: flushes at once (must push nothing of ours), then adds
    // its own through the inherited handles and a new one, flushes, and
    // leaves 5 more for the atexit flush.
    fork_and_wait(|| {
        assert_eq!(promshm::flush().dirty_series, 0, "nothing of the parent's");
        shared.add(7.0).unwrap();
        events.labels(&["grandchild"]).unwrap().add(3.0).unwrap();
        for _ in 0..3 {
            hist.observe(50.0).unwrap();
        }
        promshm::flush();
        shared.add(5.0).unwrap();
    });
    assert_eq!(parent.get(), 0.0, "our buffer was not flushed by the child");
    assert_eq!(shared.get(), 12.0, "only the grandchild's 7 + 5");
    assert_eq!(hist.get(), (3, 150.0));

    // Grandchild 2 does nothing; its exit flush must push nothing either.
    fork_and_wait(|| {});
    assert_eq!(shared.get(), 12.0);
    assert_eq!(parent.get(), 0.0);

    // Grandchild 3 flushes after we flushed and buffered more, then forks a
    // great-grandchild that updates and flushes.
    promshm::flush();
    assert_eq!(parent.get(), 1000.0);
    assert_eq!(shared.get(), 112.0);
    parent.add(1.0).unwrap();
    fork_and_wait(|| {
        promshm::flush();
        fork_and_wait(|| {
            shared.inc();
            promshm::flush();
        });
        shared.inc();
    });
    assert_eq!(parent.get(), 1000.0);
    assert_eq!(shared.get(), 114.0);
    promshm::flush();
    assert_eq!(parent.get(), 1001.0);
    assert_eq!(hist.get(), (13, 200.0));
    if anonymous {
        check_fork_totals(&area);
    }
    send("done");
}

fn check_fork_totals(area: &Area) {
    let (s, stats) = scrape(area);
    assert_eq!(stats.bad_records, 0);
    assert_eq!(s.value("fork_events_total", &[("by", "parent")]), 1001.0);
    assert_eq!(s.value("fork_events_total", &[("by", "shared")]), 114.0);
    assert_eq!(s.value("fork_events_total", &[("by", "grandchild")]), 3.0);
    assert_eq!(s.value("fork_sizes_count", &[]), 13.0);
    assert_eq!(s.value("fork_sizes_sum", &[]), 200.0);
    assert_eq!(s.value_at("fork_sizes_bucket", &[], ("le", 10.0)), 10.0);
    assert_eq!(s.value_at("fork_sizes_bucket", &[], ("le", 100.0)), 13.0);
}

#[test]
fn fork_never_reflushes_the_parents_buffer() {
    let dir = TempDir::new("fork");
    let path = dir.join("area.promshm");
    let area = Area::create(&path, &AreaOptions::default()).unwrap();
    let msgs = run_child("forker", "forker", &[area_env(&path)], CHILD_TIMEOUT);
    assert_eq!(msgs, ["done"]);
    check_fork_totals(&area);
    // The same with an anonymous area inherited across fork(), checked in the child.
    let msgs = run_child("forker", "forker-anonymous", &[], CHILD_TIMEOUT);
    assert_eq!(msgs, ["done"]);
}

const FORK_THREADED_FORKS: u64 = 20;

/// Fork while another thread of the process registers series, flushes and
/// renders (taking every lock promshm has): each child must still be able to
/// register, update and flush, and nothing is counted twice.
fn fork_threaded_child() {
    let area = Area::create(env_area(), &AreaOptions::default()).unwrap();
    let reg = area.registry();
    let fam = reg
        .counter(Opts::new("ft_events", "Events.").labels(&["who"]))
        .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                fam.labels(&[&format!("busy{i}")]).unwrap().inc();
                if i % 8 == 0 {
                    promshm::flush();
                }
                if i % 64 == 0 {
                    area.render(std::io::sink(), Format::Prometheus).unwrap();
                }
                i += 1;
            }
        });
        // Stop the busy thread however this ends (a failed fork panics).
        struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let _stop = Stop(&stop);
        let forked = fam.labels(&["forked"]).unwrap();
        for f in 0..FORK_THREADED_FORKS {
            std::thread::sleep(Duration::from_micros(200 + 300 * (f % 7)));
            fork_and_wait_for(Duration::from_secs(5), || {
                fam.labels(&[&format!("child{f}")]).unwrap().inc();
                forked.inc();
                promshm::flush();
                area.render(std::io::sink(), Format::Prometheus).unwrap();
            });
        }
    });
    promshm::flush();
    send("done");
}

/// A child forked while another thread holds an area's process-local mutex
/// (`AreaInner::index`, the local lock in front of the area lock) or a
/// family's series cache must not inherit it locked: `area::fork` takes them
/// all before `fork` and releases them in parent and child.
#[test]
fn fork_while_another_thread_registers() {
    let dir = TempDir::new("forkthr");
    let path = dir.join("area.promshm");
    let area = Area::create(&path, &AreaOptions::default()).unwrap();
    let msgs = run_child(
        "fork_threaded",
        "fork-threaded",
        &[area_env(&path)],
        CHILD_TIMEOUT,
    );
    assert_eq!(msgs, ["done"]);
    let (s, stats) = scrape(&area);
    assert_eq!(stats.bad_records, 0);
    assert_eq!(
        s.value("ft_events_total", &[("who", "forked")]),
        FORK_THREADED_FORKS as f64
    );
    for f in 0..FORK_THREADED_FORKS {
        assert_eq!(
            s.value("ft_events_total", &[("who", &format!("child{f}"))]),
            1.0
        );
    }
    // Every busy series was incremented once, by the parent only.
    let busy: Vec<_> = s
        .series("ft_events_total")
        .into_iter()
        .filter(|(l, _)| l["who"].starts_with("busy"))
        .collect();
    assert!(!busy.is_empty());
    assert!(
        busy.iter().all(|(_, v)| *v == 1.0),
        "a busy series counted twice"
    );
}

// ---- 7. concurrent create race ---------------------------------------------------------------

const RACERS: usize = 8;
const RACE_N: u64 = 5_000;

fn racer_child() {
    let idx = env_str("PROMSHM_PROC");
    send("ready");
    wait_for_parent();
    let area = Area::create(env_area(), &AreaOptions::with_pages(256)).expect("create");
    let reg = area.registry();
    let hits = reg
        .counter(Opts::new("race_hits", "Hits by process.").labels(&["proc"]))
        .unwrap();
    let all = reg
        .counter(Opts::new("race_all", "All hits."))
        .unwrap()
        .get()
        .unwrap();
    let mine = hits.labels(&[&idx]).unwrap();
    for _ in 0..RACE_N {
        mine.inc();
        all.inc();
    }
    promshm::flush();
}

#[test]
fn concurrent_create_gives_one_valid_area() {
    let dir = TempDir::new("race");
    for round in 0..3 {
        let path = dir.join(&format!("area-{round}.promshm"));
        let mut kids: Vec<ChildProc> = (0..RACERS)
            .map(|i| {
                ChildProc::spawn(
                    "racer",
                    &format!("racer-{round}-{i}"),
                    &[area_env(&path), ("PROMSHM_PROC", i.to_string())],
                )
            })
            .collect();
        for k in kids.iter_mut() {
            k.expect("ready", READY_TIMEOUT);
        }
        assert!(!path.exists());
        // Release them all at once: closing the stdins is the barrier.
        run_children(&mut kids, CHILD_TIMEOUT);
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, 256 * 4096);
        let area = Area::open(&path, OpenMode::ReadOnly).unwrap();
        assert_eq!(area.pages(), 256);
        let st = area.stats();
        assert_eq!(st.families, 2, "each family registered once");
        assert_eq!(st.series, RACERS as u64 + 1);
        let (s, stats) = scrape(&area);
        assert_eq!(stats.bad_records, 0);
        assert_eq!(
            s.value("race_all_total", &[]),
            (RACERS as u64 * RACE_N) as f64
        );
        for i in 0..RACERS {
            assert_eq!(
                s.value("race_hits_total", &[("proc", &i.to_string())]),
                RACE_N as f64
            );
        }
        assert_eq!(s.series("race_hits_total").len(), RACERS);
    }
}

// ---- 8. cross-process registry semantics ------------------------------------------------------

fn xreg_family(area: &Area) -> promshm::Result<Family<Counter>> {
    area.registry()
        .counter(Opts::new("xr_requests", "Requests by path.").labels(&["path"]))
}

fn is_shape_mismatch<T: std::fmt::Debug>(r: promshm::Result<T>) -> bool {
    match r {
        Err(Error::ShapeMismatch { .. }) => true,
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
}

fn xreg_child() {
    let area = Area::open(env_area(), OpenMode::ReadWrite).unwrap();
    let text = area.render_to_string(Format::Prometheus).unwrap();
    let s = Scrape::parse(&text);
    match env_str("XREG_STEP").as_str() {
        "see" => {
            // Rendered here although this process never registered it.
            assert_eq!(s.value("xr_requests_total", &[("path", "/a")]), 5.0);
            let reg = area.registry();
            assert!(is_shape_mismatch(reg.gauge(
                Opts::new("xr_requests", "Requests by path.").labels(&["path"]),
                GaugeMode::Sum
            )));
            assert!(is_shape_mismatch(reg.counter(
                Opts::new("xr_requests", "Requests by path.").labels(&["path", "code"])
            )));
            assert!(is_shape_mismatch(
                reg.counter(Opts::new("xr_requests", "No labels."))
            ));
            assert!(is_shape_mismatch(reg.histogram(
                Opts::new("xr_requests", "Requests by path.").labels(&["path"]),
                &[1.0]
            )));
            // The same shape (another help text, the `_total` spelling) is the same family.
            let fam = reg
                .counter(Opts::new("xr_requests_total", "Other help.").labels(&["path"]))
                .unwrap();
            assert_eq!(fam.labels(&["/a"]).unwrap().get(), 5.0);
            fam.labels(&["/b"]).unwrap().add(3.0).unwrap();
            promshm::flush();
        }
        "after_remove" => {
            assert!(s.get("xr_requests_total", &[("path", "/a")]).is_none());
            assert_eq!(s.value("xr_requests_total", &[("path", "/b")]), 3.0);
            // Resolving removed values creates a fresh series.
            let fresh = xreg_family(&area).unwrap().labels(&["/a"]).unwrap();
            assert_eq!(fresh.get(), 0.0);
            fresh.inc();
            promshm::flush();
        }
        "clear" => {
            assert_eq!(s.value("xr_requests_total", &[("path", "/a")]), 1.0);
            let n = xreg_family(&area).unwrap().clear().unwrap();
            send(&format!("cleared {n}"));
        }
        "prefix" => {
            let reg = area.registry().with_prefix("apptwo").unwrap();
            reg.gauge(Opts::new("hits", "Hits.").labels(&["x"]), GaugeMode::Sum)
                .unwrap()
                .labels(&["1"])
                .unwrap()
                .set(2.5);
            reg.counter(Opts::new("events", "Events."))
                .unwrap()
                .get()
                .unwrap()
                .add(4.0)
                .unwrap();
            promshm::flush();
            let own = Scrape::parse(&reg.render_to_string(Format::Prometheus).unwrap());
            assert_eq!(own.value("apptwo_hits", &[("x", "1")]), 2.5);
            assert_eq!(own.value("apptwo_events_total", &[]), 4.0);
            assert_eq!(own.len(), 2, "only apptwo_* in apptwo's registry");
            assert_eq!(s.value("appone_hits_total", &[]), 7.0);
        }
        other => panic!("unknown step {other}"),
    }
}

fn xreg_step(path: &std::path::Path, step: &str) -> Vec<String> {
    run_child(
        "xreg",
        &format!("xreg-{step}"),
        &[area_env(path), ("XREG_STEP", step.to_string())],
        CHILD_TIMEOUT,
    )
}

#[test]
fn registry_semantics_across_processes() {
    let dir = TempDir::new("xreg");
    let path = dir.join("area.promshm");
    let area = Area::create(&path, &AreaOptions::with_pages(256)).unwrap();
    let fam = xreg_family(&area).unwrap();
    let a = fam.labels(&["/a"]).unwrap();
    a.add(5.0).unwrap();
    promshm::flush();

    xreg_step(&path, "see");
    let (s, _) = scrape(&area);
    assert_eq!(s.value("xr_requests_total", &[("path", "/a")]), 5.0);
    assert_eq!(s.value("xr_requests_total", &[("path", "/b")]), 3.0);
    assert_eq!(area.stats().families, 1, "one family for both processes");

    // remove() here hides the series from the other process's render.
    assert!(fam.remove(&["/a"]).unwrap());
    assert!(!fam.remove(&["/a"]).unwrap());
    let (s, _) = scrape(&area);
    assert!(s.get("xr_requests_total", &[("path", "/a")]).is_none());
    xreg_step(&path, "after_remove");
    assert_eq!(
        a.get(),
        0.0,
        "a removed series' handle reads nothing (its record may be reused)"
    );
    assert_eq!(
        fam.labels(&["/a"]).unwrap().get(),
        1.0,
        "the other process's fresh series"
    );
    let (s, _) = scrape(&area);
    assert_eq!(s.value("xr_requests_total", &[("path", "/a")]), 1.0);
    assert_eq!(s.value("xr_requests_total", &[("path", "/b")]), 3.0);

    // clear() in the other process empties the family here.
    let msgs = xreg_step(&path, "clear");
    assert_eq!(msgs, ["cleared 2"]);
    let (s, _) = scrape(&area);
    assert!(s.series("xr_requests_total").is_empty(), "cleared");
    assert_eq!(
        s.types.get("xr_requests_total").map(String::as_str),
        Some("counter")
    );
    let b = fam.labels(&["/b"]).unwrap();
    assert_eq!(b.get(), 0.0, "a fresh series after clear");
    b.inc();
    promshm::flush();
    let (s, _) = scrape(&area);
    assert_eq!(s.value("xr_requests_total", &[("path", "/b")]), 1.0);
    assert_eq!(s.series("xr_requests_total").len(), 1);

    // Two registries with different prefixes in different processes.
    let one = area.registry().with_prefix("appone").unwrap();
    one.counter(Opts::new("hits", "Hits."))
        .unwrap()
        .get()
        .unwrap()
        .add(7.0)
        .unwrap();
    promshm::flush();
    xreg_step(&path, "prefix");
    let own = Scrape::parse(&one.render_to_string(Format::Prometheus).unwrap());
    assert_eq!(own.value("appone_hits_total", &[]), 7.0);
    assert_eq!(own.len(), 1, "only appone_* in appone's registry");
    let (s, stats) = scrape(&area);
    assert_eq!(stats.bad_records, 0);
    assert_eq!(s.value("appone_hits_total", &[]), 7.0);
    assert_eq!(s.value("apptwo_hits", &[("x", "1")]), 2.5);
    assert_eq!(s.value("apptwo_events_total", &[]), 4.0);
    // Each name keeps the shape its first registrant gave it, whoever asks.
    let two = area.registry().with_prefix("apptwo").unwrap();
    assert!(is_shape_mismatch(two.counter(Opts::new("hits", "Hits."))));
    assert!(is_shape_mismatch(
        one.gauge(Opts::new("hits", "Hits."), GaugeMode::Sum)
    ));
}

// ---- two mappings of one area in one process -----------------------------------------

/// A process that maps the same area twice (say a library and the app each
/// call `Area::create`) must still serialize its threads on the area lock:
/// both mappings carry the same owner identity in the lock word.
#[test]
fn two_mappings_in_one_process_share_the_area_lock() {
    const PER_THREAD: usize = 3_000;
    let dir = TempDir::new("twomaps");
    let path = dir.join("area.promshm");
    let first = Area::create(&path, &AreaOptions::with_pages(1024)).unwrap();
    let second = Area::create(&path, &AreaOptions::with_pages(1024)).unwrap();
    std::thread::scope(|scope| {
        for (t, area) in [&first, &second].into_iter().enumerate() {
            scope.spawn(move || {
                let fam = area
                    .registry()
                    .counter(Opts::new("twomaps", "Series.").labels(&["t", "i"]))
                    .unwrap();
                for i in 0..PER_THREAD {
                    fam.labels(&[&t.to_string(), &i.to_string()])
                        .unwrap()
                        .add((i + 1) as f64)
                        .unwrap();
                }
                promshm::flush();
            });
        }
    });
    for area in [&first, &second] {
        let (s, stats) = scrape(area);
        assert_eq!(stats.bad_records, 0);
        assert_eq!(s.series("twomaps_total").len(), 2 * PER_THREAD);
        for t in 0..2 {
            for i in 0..PER_THREAD {
                assert_eq!(
                    s.value(
                        "twomaps_total",
                        &[("t", &t.to_string()), ("i", &i.to_string())]
                    ),
                    (i + 1) as f64
                );
            }
        }
        assert_eq!(area.stats().series, 2 * PER_THREAD as u64);
    }
}
