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
use promshm::{Area, AreaOptions, Family, Opts, Summary, SummaryOpts};

/// Bound on any one child's run.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on one step of a child.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn child_entry() {
    child_main(|role| match role {
        "rotator" => rotator_child(),
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
