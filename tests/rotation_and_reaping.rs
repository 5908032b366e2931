//! Multi-process tests of two moments when one process rewrites cells that
//! others use at the same time:
//!
//! - the rotation of a windowed summary's age buckets, with several
//!   processes observing into the new bucket while it is being cleared
//!   (no observation may be lost from the quantiles);
//! - the reaping of dead workers while other processes render their gauges
//!   (a `sum` gauge never shows a reaped value twice or not at all), also
//!   when the reaper itself is killed in the middle of a fold.
//!
//! Every process is a real process started by re-executing this test binary
//! (see `common`); `child_entry` below dispatches the roles.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use promshm::metrics::sketch::{
    sketch_index, sketch_quantiles, SKETCH_BUCKETS, SKETCH_RELATIVE_ERROR,
};
use promshm::{
    Area, AreaOptions, Family, Format, Gauge, GaugeMode, OpenMode, Opts, Summary, SummaryOpts,
};

/// Bound on any one child's run.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on one step of a child.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn child_entry() {
    child_main(|role| match role {
        "rotator" => rotator_child(),
        "gauge_holder" => gauge_holder_child(),
        "gauge_renderer" => gauge_renderer_child(),
        "dying_reaper" => dying_reaper_child(),
        other => panic!("unknown role {other:?}"),
    });
}

fn area_env(path: &std::path::Path) -> (&'static str, String) {
    (AREA_ENV, path.to_str().expect("utf-8 path").to_string())
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

// ---- 1. window rotation ----------------------------------------------------------------

/// Window of the summary and its age buckets: a 40 ms period.
const ROT_MAX_AGE_MS: u64 = 200;
const ROT_BUCKETS: u32 = 5;
const ROT_PERIOD_MS: u64 = ROT_MAX_AGE_MS / ROT_BUCKETS as u64;
/// Processes observing at once.
const ROT_PROCS: u64 = 2;
/// Periods (rotations) the test goes through.
const ROT_ROUNDS: u64 = 30;
/// Observations per process per period.
const ROT_PER_ROUND: u64 = 20_000;
/// The virtual clock of round `r` is `ROT_T0 + r * period` (a period start).
const ROT_T0: u64 = 1_000_000 * ROT_PERIOD_MS;
const ROT_QUANTILES: [f64; 5] = [0.01, 0.25, 0.5, 0.9, 0.99];

fn rot_family(area: &Area) -> Family<Summary> {
    area.registry()
        .summary(
            Opts::new("rot_latency", "Latency in a short window."),
            &SummaryOpts::quantiles(&ROT_QUANTILES)
                .window(Duration::from_millis(ROT_MAX_AGE_MS), ROT_BUCKETS),
        )
        .unwrap()
}

/// Observation `j` of process `p` in round `r`: spread over nine decades so
/// that the counts land in many sketch cells (deterministic, splitmix64).
fn rot_value(p: u64, r: u64, j: u64) -> f64 {
    let mut x = (p << 48 | r << 32 | j).wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
    10f64.powf(unit * 9.0 - 4.0)
}

/// Observes `ROT_PER_ROUND` values at the virtual time of each round the
/// parent starts (`go <round> <start wall ns>`), all processes starting
/// together at the given instant so that they meet the new bucket at once.
fn rotator_child() {
    let p = env_u64("PROMSHM_PROC");
    let area = Area::create(env_area(), &AreaOptions::default()).unwrap();
    let s = rot_family(&area).get().unwrap();
    send("ready");
    while let Some(line) = read_parent_line() {
        let mut words = line.split(' ');
        assert_eq!(words.next(), Some("go"), "bad line {line:?}");
        let r: u64 = words.next().unwrap().parse().unwrap();
        let start: u64 = words.next().unwrap().parse().unwrap();
        while wall_ns() < start {
            std::hint::spin_loop();
        }
        let now = ROT_T0 + r * ROT_PERIOD_MS;
        for j in 0..ROT_PER_ROUND {
            s.observe_at(rot_value(p, r, j), now + j % ROT_PERIOD_MS)
                .unwrap();
        }
        send(&format!("done {r}"));
    }
}

/// Exact quantile of sorted data, with the rank rule of `src/metrics/sketch.rs`.
fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let rank = ((q * n as f64).ceil() as usize).max(1) - 1;
    sorted[rank.min(n - 1)]
}

/// Several processes observe into a 200 ms / 5-bucket window, meeting every
/// new bucket at the same instant, for 30 rotations. After each period the
/// window's merged sketch must be exactly the sketch of the observations
/// made in the window's periods (not one count lost or left over), and its
/// quantiles within the sketch's relative error of the exact ones.
#[test]
fn summary_rotation_loses_no_observation_of_other_processes() {
    let dir = TempDir::new("rotation");
    let path = dir.join("area.promshm");
    let area = Area::create(&path, &AreaOptions::default()).unwrap();
    let s = rot_family(&area).get().unwrap();
    let mut kids: Vec<ChildProc> = (0..ROT_PROCS)
        .map(|p| {
            ChildProc::spawn(
                "rotator",
                &format!("rotator-{p}"),
                &[area_env(&path), ("PROMSHM_PROC", p.to_string())],
            )
        })
        .collect();
    for k in &mut kids {
        k.expect("ready", STEP_TIMEOUT);
    }
    let mut lost_total = 0i64;
    let mut failures = Vec::new();
    for r in 0..ROT_ROUNDS {
        let start = wall_ns() + 3_000_000;
        for k in &mut kids {
            k.send_line(&format!("go {r} {start}"));
        }
        for k in &mut kids {
            k.expect(&format!("done {r}"), STEP_TIMEOUT);
        }
        // The window at the last millisecond of period r: periods r-4 ..= r.
        let now = ROT_T0 + r * ROT_PERIOD_MS + ROT_PERIOD_MS - 1;
        let got = s.window_counts_at(now);
        let first = r.saturating_sub(u64::from(ROT_BUCKETS) - 1);
        let mut want = vec![0u64; SKETCH_BUCKETS];
        let mut values = Vec::new();
        for round in first..=r {
            for p in 0..ROT_PROCS {
                for j in 0..ROT_PER_ROUND {
                    let v = rot_value(p, round, j);
                    want[sketch_index(v)] += 1;
                    values.push(v);
                }
            }
        }
        let (got_n, want_n) = (got.iter().sum::<u64>(), want.iter().sum::<u64>());
        lost_total += want_n as i64 - got_n as i64;
        if got != want {
            let cells = got.iter().zip(&want).filter(|(g, w)| g != w).count();
            failures.push(format!(
                "round {r}: window holds {got_n} observations, {want_n} were made \
                 ({cells} sketch cells differ)"
            ));
            continue;
        }
        values.sort_by(f64::total_cmp);
        let mut est = [0.0; ROT_QUANTILES.len()];
        sketch_quantiles(&got, &ROT_QUANTILES, &mut est);
        for (&q, &e) in ROT_QUANTILES.iter().zip(&est) {
            let exact = exact_quantile(&values, q);
            assert!(
                ((e - exact) / exact).abs() <= SKETCH_RELATIVE_ERROR,
                "round {r}, q={q}: estimate {e} vs exact {exact}"
            );
        }
    }
    for k in &mut kids {
        k.release();
    }
    run_children(&mut kids, CHILD_TIMEOUT);
    let (count, _) = s.get();
    assert_eq!(count, ROT_PROCS * ROT_ROUNDS * ROT_PER_ROUND);
    assert!(
        failures.is_empty(),
        "{} of {ROT_ROUNDS} rotations lost observations (net {lost_total}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---- 2. gauges while dead workers are reaped ------------------------------------------

/// Worker slots of the reaping areas.
const RP_MAX_WORKERS: u32 = 64;
/// Series per gauge family.
const RP_SERIES: usize = 100;

fn rp_options() -> AreaOptions {
    AreaOptions {
        max_workers: RP_MAX_WORKERS,
        ..Default::default()
    }
}

/// The `sum` and `livesum` gauge families, one series per label value `k`.
fn rp_families(area: &Area) -> (Family<Gauge>, Family<Gauge>) {
    let reg = area.registry();
    let g = |name: &str, mode| {
        reg.gauge(Opts::new(name, "Held by workers.").labels(&["k"]), mode)
            .unwrap()
    };
    (
        g("rp_summed", GaugeMode::Sum),
        g("rp_live", GaugeMode::LiveSum),
    )
}

/// Value held by worker `i`: distinct integers, so that one value counted
/// twice or missing never gives another consistent total.
fn rp_value(i: u64) -> f64 {
    (1000 + 37 * i) as f64
}

/// Sets every series of both families to its value, says `ready <slot>`
/// and waits (to be killed).
fn gauge_holder_child() {
    let area = Area::create(env_area(), &rp_options()).unwrap();
    let v = rp_value(env_u64("RP_WORKER"));
    let (sum, live) = rp_families(&area);
    for k in 0..RP_SERIES {
        let k = k.to_string();
        sum.labels(&[&k]).unwrap().set(v);
        live.labels(&[&k]).unwrap().set(v);
    }
    send(&format!("ready {}", area.attach().unwrap()));
    wait_for_parent();
}

/// The `rp_sum` and `rp_live` values of one render, per series `k`.
fn rp_render(area: &Area) -> (Vec<f64>, Vec<f64>) {
    let text = area
        .registry()
        .render_to_string(Format::Prometheus)
        .unwrap();
    let scrape = Scrape::parse(&text);
    let get = |name: &str| -> Vec<f64> {
        (0..RP_SERIES)
            .map(|k| scrape.value(name, &[("k", &k.to_string())]))
            .collect()
    };
    (get("rp_summed"), get("rp_live"))
}

/// Renders the read-only area in a loop until the parent closes stdin.
/// Every `rp_sum` series must be `RP_TOTAL` (all workers' values, dead ones
/// retained), every `rp_live` series a total of the workers not reaped yet:
/// `RP_TOTAL` minus the values of a prefix of the kill order (`RP_KILLED`,
/// comma-separated worker indices), never growing again.
fn gauge_renderer_child() {
    let area = Area::open(env_area(), OpenMode::ReadOnly).unwrap();
    let total = env_u64("RP_TOTAL") as f64;
    let order: Vec<u64> = env_str("RP_KILLED")
        .split(',')
        .map(|w| w.parse().unwrap())
        .collect();
    let mut live_allowed = vec![total];
    for &w in &order {
        live_allowed.push(live_allowed.last().unwrap() - rp_value(w));
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        wait_for_parent();
        stop2.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    send("rendering");
    let mut renders = 0u64;
    let mut bad = Vec::new();
    let mut last_live = vec![0usize; RP_SERIES];
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let (sum, live) = rp_render(&area);
        renders += 1;
        for k in 0..RP_SERIES {
            if sum[k] != total {
                bad.push(format!(
                    "render {renders}: rp_summed{{k={k}}} = {} (want {total})",
                    sum[k]
                ));
            }
            match live_allowed.iter().position(|&a| a == live[k]) {
                Some(i) if i >= last_live[k] => last_live[k] = i,
                _ => bad.push(format!(
                    "render {renders}: rp_live{{k={k}}} = {} (allowed from {:?})",
                    live[k],
                    &live_allowed[last_live[k]..]
                )),
            }
        }
    }
    for b in bad.iter().take(20) {
        eprintln!("{b}");
    }
    send(&format!("renders {renders} bad {}", bad.len()));
}

/// A renderer renders a read-only view in a loop while 48 workers holding
/// `sum` and `livesum` gauge values are SIGKILLed one by one and reaped:
/// every rendered `sum` is the total of all values (a reaped value is never
/// counted twice or dropped), every `livesum` a total of the workers not
/// reaped yet.
#[test]
fn gauge_renders_stay_consistent_while_dead_workers_are_reaped() {
    const WORKERS: u64 = 48;
    let dir = TempDir::new("reaping");
    let path = dir.join("area.promshm");
    let area = Area::create(&path, &rp_options()).unwrap();
    let _ = rp_families(&area);
    let mut workers: Vec<(ChildProc, u32)> = Vec::new();
    for i in 0..WORKERS {
        let mut w = ChildProc::spawn(
            "gauge_holder",
            &format!("holder-{i}"),
            &[area_env(&path), ("RP_WORKER", i.to_string())],
        );
        let line = w.recv(STEP_TIMEOUT);
        let slot = line
            .strip_prefix("ready ")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| w.fail(&format!("unexpected {line:?}")));
        workers.push((w, slot));
    }
    // Kill the highest slots first: the renderer reads a slot's cells last.
    let mut order: Vec<u64> = (0..WORKERS).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(workers[i as usize].1));
    let total: f64 = (0..WORKERS).map(rp_value).sum();
    let killed = order
        .iter()
        .map(|w| w.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut renderer = ChildProc::spawn(
        "gauge_renderer",
        "renderer",
        &[
            area_env(&path),
            ("RP_TOTAL", (total as u64).to_string()),
            ("RP_KILLED", killed),
        ],
    );
    renderer.expect("rendering", STEP_TIMEOUT);
    for &i in &order {
        workers[i as usize].0.kill();
        std::thread::sleep(Duration::from_millis(3));
        assert_eq!(area.reap_dead_workers().unwrap(), 1, "worker {i} reaped");
        std::thread::sleep(Duration::from_millis(3));
    }
    renderer.release();
    let report = renderer.recv(STEP_TIMEOUT);
    renderer.expect_success(CHILD_TIMEOUT);
    let mut words = report.split(' ');
    let renders: u64 = words.nth(1).unwrap().parse().unwrap();
    let bad: u64 = words.nth(1).unwrap().parse().unwrap();
    assert!(
        renders >= 10,
        "only {renders} renders overlapped the reaping"
    );
    assert_eq!(
        bad,
        0,
        "{bad} inconsistent gauge values in {renders} renders:\n{}",
        renderer.stderr()
    );
    let (sum, live) = rp_render(&area);
    assert!(sum.iter().all(|&v| v == total), "{sum:?}");
    assert!(live.iter().all(|&v| v == 0.0), "{live:?}");
    assert_eq!(area.stats().reaped_workers, WORKERS);
}

/// Reaps the dead workers of the area and is killed (SIGKILL, by itself)
/// in the middle of its `RP_DIE_AT`-th fold step, holding the area lock.
fn dying_reaper_child() {
    let area = Area::create(env_area(), &rp_options()).unwrap();
    promshm::metrics::gauge::die_in_fold_step(env_u64("RP_DIE_AT"));
    let _ = area.reap_dead_workers();
    panic!("the reaper survived its fold");
}

/// A reaper killed in the middle of folding a dead worker's gauges: renders
/// before and after the next reaper finishes the job count the dead
/// worker's value exactly once, and the slot is freed once. The holders
/// create the series `rp_sum{k=0}`, `rp_live{k=0}`, `rp_sum{k=1}`, ... in
/// this order, so fold step `2k + 1` is `rp_sum{k}` and `2k + 2` is
/// `rp_live{k}`: the reaper dies in the first, a middle and the last `sum`
/// step, and in a `livesum` step.
#[test]
fn a_reaper_killed_mid_fold_never_folds_twice() {
    for die_at in [1, 51, 52, 2 * RP_SERIES as u64 - 1] {
        reaper_killed_at(die_at);
    }
}

fn reaper_killed_at(die_at: u64) {
    let dir = TempDir::new("dying-reaper");
    let path = dir.join("area.promshm");
    let area = Area::create(&path, &rp_options()).unwrap();
    let _ = rp_families(&area);
    let mut holders: Vec<ChildProc> = (0..2u64)
        .map(|i| {
            let mut w = ChildProc::spawn(
                "gauge_holder",
                &format!("holder-{i}"),
                &[area_env(&path), ("RP_WORKER", i.to_string())],
            );
            let line = w.recv(STEP_TIMEOUT);
            assert!(line.starts_with("ready "), "{line:?}");
            w
        })
        .collect();
    let total = rp_value(0) + rp_value(1);
    holders[0].kill();
    let mut reaper = ChildProc::spawn(
        "dying_reaper",
        "dying-reaper",
        &[area_env(&path), ("RP_DIE_AT", die_at.to_string())],
    );
    let status = reaper.wait(CHILD_TIMEOUT);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "the reaper died by SIGKILL: {status:?}"
    );

    let check = |what: &str, view: &Area, live_reaped: Option<bool>| {
        let (sum, live) = rp_render(view);
        for k in 0..RP_SERIES {
            assert_eq!(
                sum[k], total,
                "died at step {die_at}, {what}: rp_summed{{k={k}}}"
            );
            let ok = match live_reaped {
                Some(true) => live[k] == rp_value(1),
                Some(false) => live[k] == total,
                None => live[k] == rp_value(1) || live[k] == total,
            };
            assert!(
                ok,
                "died at step {die_at}, {what}: rp_live{{k={k}}} = {}",
                live[k]
            );
        }
    };
    let reader = Area::open(&path, OpenMode::ReadOnly).unwrap();
    check("read-only render after the reaper died", &reader, None);
    assert_eq!(
        area.reap_dead_workers().unwrap(),
        1,
        "the next reaper finishes"
    );
    check("after the next reap", &area, Some(true));
    check("read-only render after the next reap", &reader, Some(true));
    assert_eq!(area.reap_dead_workers().unwrap(), 0);
    check("after another reap", &area, Some(true));
    assert_eq!(area.stats().reaped_workers, 1);
    assert_eq!(area.workers().len(), 1, "only the live holder has a slot");
    holders[1].release();
    holders[1].expect_success(CHILD_TIMEOUT);
}
