//! Death: writer processes SIGKILLed at random moments, some of them while
//! holding the area lock, while a surviving writer and this process keep
//! rendering and registering. Nothing but a killed writer's unflushed batch
//! is lost, nobody blocks, the area stays readable, and every lock left by a
//! dead holder is taken over exactly once (`promshm_lock_recoveries`).
//! Each writer also observes into a native histogram (eager): a killed
//! writer's count and sum are what it logged, plus at most its one
//! observation in flight.
//!
//! Processes are re-executions of this test binary (see `common`).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use promshm::{
    Area, AreaOptions, Counter, Family, Format, NativeHistogram, NativeOpts, OpenMode, Opts,
};

/// Most time any one registration, flush or render may take.
const OP_BOUND: Duration = Duration::from_secs(2);
/// Rounds of killed writers (bounded by `ROUNDS_TIME` too).
const ROUNDS: usize = 30;
const ROUNDS_TIME: Duration = Duration::from_secs(40);
/// Kills happen after a random sleep in `0..KILL_WINDOW_US`.
const KILL_WINDOW_US: u64 = 20_000;
const READY_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn child_entry() {
    child_main(|role| match role {
        "death_writer" => death_writer(),
        "lock_hog" => lock_hog(),
        other => panic!("unknown role {other:?}"),
    });
}

fn death_options() -> AreaOptions {
    AreaOptions::with_pages(16 * 1024)
}

/// Writers' counters: one series per batch (`series="<k>"`) and a running total (`series="all"`).
fn writer_family(area: &Area) -> Family<Counter> {
    area.registry()
        .counter(Opts::new("death_ops", "Writer updates.").labels(&["writer", "series"]))
        .unwrap()
}

/// Writers' native histogram (eager, the default schema): one series a writer.
fn native_family(area: &Area) -> Family<NativeHistogram> {
    area.registry()
        .native_histogram(
            Opts::new("death_native", "Writer observations.").labels(&["writer"]),
            NativeOpts::new(),
        )
        .unwrap()
}

/// The value batch `k` observes into the native histogram: negative, zero
/// and positive in turn, multiples of 0.75 (their sums are exact).
fn native_value(k: u64) -> f64 {
    (k % 7) as f64 * 0.75 - 2.25
}

/// Count and sum of the native observations of batches `0..batches`.
fn native_totals(batches: u64) -> (f64, f64) {
    (batches as f64, (0..batches).map(native_value).sum())
}

fn hog_family(area: &Area) -> Family<Counter> {
    area.registry()
        .counter(Opts::new("death_hog", "Lock hog series.").labels(&["hog", "n"]))
        .unwrap()
}

fn parent_family(area: &Area) -> Family<Counter> {
    area.registry()
        .counter(Opts::new("death_parent", "Parent series.").labels(&["n"]))
        .unwrap()
}

fn check_bound(what: &str, d: Duration) {
    assert!(d <= OP_BOUND, "{what} took {d:?} (bound {OP_BOUND:?})");
}

/// Loop: register a new series, add `n` to it and to the running total,
/// observe `native_value(k)` (eager), log `P k n cum` (the batch about to
/// be flushed), flush, log `F k`.
/// A log line is one `write(2)`: SIGKILL cannot undo it, so the log tells
/// exactly what was confirmed flushed and which batch was in flight.
fn death_writer() {
    let wid = env_str("DEATH_WID");
    let stop = PathBuf::from(env_str("DEATH_STOP"));
    let pause = Duration::from_micros(env_u64("DEATH_PAUSE_US"));
    let render_every = env_u64("DEATH_RENDER_EVERY");
    // Wait for the parent's go after the first batch (the killed writers).
    let hold = env_u64("DEATH_HOLD") == 1;
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(env_str("DEATH_LOG"))
        .unwrap();
    let area = Area::create(env_area(), &death_options()).unwrap();
    let fam = writer_family(&area);
    let all = fam.labels(&[&wid, "all"]).unwrap();
    let native = native_family(&area).labels(&[&wid]).unwrap();
    let mut cum = 0u64;
    let timed = |what: &str, f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        check_bound(what, t.elapsed());
    };
    for k in 0u64.. {
        let mut s = None;
        timed("registration", &mut || {
            s = Some(fam.labels(&[&wid, &k.to_string()]).unwrap())
        });
        let n = 1 + k % 5;
        s.unwrap().add(n as f64).unwrap();
        all.add(n as f64).unwrap();
        native.observe(native_value(k)).unwrap();
        cum += n;
        log.write_all(format!("P {k} {n} {cum}\n").as_bytes())
            .unwrap();
        timed("flush", &mut || {
            promshm::flush();
        });
        log.write_all(format!("F {k}\n").as_bytes()).unwrap();
        if k == 0 {
            send("ready");
            if hold {
                wait_for_parent();
            }
        }
        if render_every > 0 && k % render_every == 0 {
            timed("render", &mut || {
                area.render(std::io::sink(), Format::Prometheus).unwrap();
            });
        }
        if stop.exists() {
            send(&format!("done {k} {cum}"));
            return;
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
}

/// Register new series in a tight loop, clearing the family now and then
/// (so renders stay cheap): much of its time is spent holding the area lock.
fn lock_hog() {
    let wid = env_str("DEATH_WID");
    let area = Area::create(env_area(), &death_options()).unwrap();
    let fam = hog_family(&area);
    for k in 0u64.. {
        fam.labels(&[&wid, &k.to_string()]).unwrap();
        if k % 32 == 31 {
            fam.clear().unwrap();
        }
        if k == 0 {
            send("ready");
            wait_for_parent();
        }
    }
}

/// What a writer's log says.
#[derive(Debug, Default)]
struct WriterLog {
    /// Batches confirmed flushed: k -> n.
    flushed: BTreeMap<u64, u64>,
    /// Running total at the last confirmed flush.
    confirmed: u64,
    /// The batch logged but not confirmed: (k, n).
    in_flight: Option<(u64, u64)>,
    /// Last k logged.
    last_k: Option<u64>,
}

fn parse_log(path: &Path) -> WriterLog {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut log = WriterLog::default();
    let mut pending: Option<(u64, u64, u64)> = None;
    // A line cut short by the kill has no newline: it never happened.
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    for line in complete.lines() {
        let f: Vec<u64> = line[2..].split(' ').map(|x| x.parse().unwrap()).collect();
        match &line[..1] {
            "P" => {
                assert!(pending.is_none(), "P after P in {}", path.display());
                pending = Some((f[0], f[1], f[2]));
                log.last_k = Some(f[0]);
            }
            "F" => {
                let (k, n, cum) = pending.take().expect("F without P");
                assert_eq!(k, f[0]);
                log.flushed.insert(k, n);
                log.confirmed = cum;
            }
            _ => panic!("bad log line {line:?}"),
        }
    }
    log.in_flight = pending.map(|(k, n, _)| (k, n));
    log
}

/// The values of `death_ops_total` of one writer: series label -> value.
fn writer_values(s: &Scrape, wid: &str) -> BTreeMap<String, f64> {
    s.series("death_ops_total")
        .into_iter()
        .filter(|(l, _)| l["writer"] == wid)
        .map(|(l, v)| (l["series"].clone(), v))
        .collect()
}

/// A killed writer's totals lie between what it confirmed flushed and that
/// plus its one in-flight batch. Precisely: each cell gets a batch in one
/// atomic add, so the running total is `confirmed` or `confirmed + n`
/// (`n` the in-flight batch, 0 if none), the in-flight series is 0 or `n`,
/// every confirmed series holds exactly its batch, and a series registered
/// after the last log line holds 0.
fn check_killed_writer(s: &Scrape, wid: &str, log: &WriterLog) {
    let values = writer_values(s, wid);
    let all = values.get("all").copied().unwrap_or_else(|| {
        panic!("{wid}: no running total; log {log:?}");
    });
    let in_flight = log.in_flight.map(|(_, n)| n).unwrap_or(0);
    let confirmed = log.confirmed as f64;
    assert!(
        all == confirmed || all == confirmed + in_flight as f64,
        "{wid}: total {all}, confirmed {confirmed}, in flight {in_flight}"
    );
    let mut per_series = 0.0;
    for (series, &v) in &values {
        if series == "all" {
            continue;
        }
        per_series += v;
        let k: u64 = series.parse().unwrap();
        if let Some(&n) = log.flushed.get(&k) {
            assert_eq!(v, n as f64, "{wid}: confirmed batch {k}");
        } else if log.in_flight.map(|(ik, _)| ik) == Some(k) {
            assert!(
                v == 0.0 || v == in_flight as f64,
                "{wid}: in-flight batch {k} = {v}"
            );
        } else {
            let next = log.last_k.map_or(0, |l| l + 1);
            assert_eq!(k, next, "{wid}: series {k} was never logged");
            assert_eq!(v, 0.0, "{wid}: unlogged series {k}");
        }
    }
    for k in log.flushed.keys() {
        assert!(
            values.contains_key(&k.to_string()),
            "{wid}: batch {k} missing"
        );
    }
    assert!(
        per_series >= confirmed && per_series <= confirmed + in_flight as f64,
        "{wid}: series sum {per_series}, confirmed {confirmed}, in flight {in_flight}"
    );
    // The native histogram: every logged batch observed once (its
    // observation precedes its `P` line); the next batch's observation may
    // have landed whole, or only its bucket (killed before the sum's add).
    let logged = log.last_k.map_or(0, |k| k + 1);
    let (count, sum) = native_of(s, wid);
    let (c0, s0) = native_totals(logged);
    let next = native_value(logged);
    assert!(
        (count, sum) == (c0, s0) || (count == c0 + 1.0 && (sum == s0 || sum == s0 + next)),
        "{wid}: native count {count} sum {sum}, logged {logged} batches (count {c0}, sum {s0}, next {next})"
    );
}

/// A writer's native histogram count and sum, as the text format shows them.
fn native_of(s: &Scrape, wid: &str) -> (f64, f64) {
    (
        s.value("death_native_count", &[("writer", wid)]),
        s.value("death_native_sum", &[("writer", wid)]),
    )
}

struct Killed {
    wid: String,
    log: Option<PathBuf>,
    held_lock: bool,
}

/// SIGKILL `c` where it stands, and tell whether it died holding the area
/// lock. It is stopped first (SIGSTOP: a stopped process runs no further
/// instruction and still counts as alive, so nobody takes its lock over),
/// the lock word is read, then it is killed and reaped.
fn kill_and_check_lock(c: &mut ChildProc, area_path: &Path) -> bool {
    c.stop();
    let word = lock_word(area_path);
    c.kill();
    word != 0 && word as u32 == c.pid()
}

struct Spawner<'a> {
    dir: &'a TempDir,
    area: &'a Path,
    stop: &'a Path,
}

impl Spawner<'_> {
    fn writer(
        &self,
        wid: &str,
        hold: bool,
        pause_us: u64,
        render_every: u64,
    ) -> (ChildProc, PathBuf) {
        let log = self.dir.join(&format!("{wid}.log"));
        let c = ChildProc::spawn(
            "death_writer",
            wid,
            &[
                (AREA_ENV, self.area.to_str().unwrap().to_string()),
                ("DEATH_WID", wid.to_string()),
                ("DEATH_LOG", log.to_str().unwrap().to_string()),
                ("DEATH_STOP", self.stop.to_str().unwrap().to_string()),
                ("DEATH_PAUSE_US", pause_us.to_string()),
                ("DEATH_RENDER_EVERY", render_every.to_string()),
                ("DEATH_HOLD", u64::from(hold).to_string()),
            ],
        );
        (c, log)
    }

    fn hog(&self, wid: &str) -> ChildProc {
        ChildProc::spawn(
            "lock_hog",
            wid,
            &[
                (AREA_ENV, self.area.to_str().unwrap().to_string()),
                ("DEATH_WID", wid.to_string()),
            ],
        )
    }
}

/// What this process's own renders and registrations saw while children died.
struct Pounder {
    series: u64,
    renders: u64,
    max_render: Duration,
    max_register: Duration,
}

fn pound(area: Area, stop: Arc<AtomicBool>) -> Result<Pounder, String> {
    let fam = parent_family(&area);
    let mut p = Pounder {
        series: 0,
        renders: 0,
        max_render: Duration::ZERO,
        max_register: Duration::ZERO,
    };
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let stats = area
            .render(std::io::sink(), Format::Prometheus)
            .map_err(|e| format!("render: {e}"))?;
        let d = t.elapsed();
        p.max_render = p.max_render.max(d);
        p.renders += 1;
        if d > OP_BOUND {
            return Err(format!("render took {d:?}"));
        }
        if stats.bad_records != 0 {
            return Err(format!("render saw {} bad records", stats.bad_records));
        }
        let t = Instant::now();
        let c = fam
            .labels(&[&p.series.to_string()])
            .map_err(|e| format!("registration: {e}"))?;
        let d = t.elapsed();
        p.max_register = p.max_register.max(d);
        if d > OP_BOUND {
            return Err(format!("registration took {d:?}"));
        }
        c.inc();
        p.series += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    promshm::flush();
    Ok(p)
}

#[test]
fn sigkilled_writers_lose_at_most_their_unflushed_batch() {
    let dir = TempDir::new("death");
    let area_path = dir.join("area.promshm");
    let stop_path = dir.join("stop");
    let area = Area::create(&area_path, &death_options()).unwrap();
    let (mut rng, seed) = Rng::from_time();
    eprintln!("death: seed {seed}");
    let spawner = Spawner {
        dir: &dir,
        area: &area_path,
        stop: &stop_path,
    };
    let t0 = Instant::now();

    // A writer that survives every round, rendering now and then.
    let (mut survivor, survivor_log) = spawner.writer("survivor", false, 500, 25);
    survivor.expect("ready", READY_TIMEOUT);
    let stop = Arc::new(AtomicBool::new(false));
    let pounder = {
        let (area, stop) = (area.clone(), stop.clone());
        std::thread::spawn(move || pound(area, stop))
    };

    let mut killed: Vec<Killed> = Vec::new();
    let mut rounds = 0;
    let mut max_ready = Duration::ZERO;
    while rounds < ROUNDS && t0.elapsed() < ROUNDS_TIME {
        let mut kids: Vec<(ChildProc, String, Option<PathBuf>)> = Vec::new();
        for w in ["a", "b"] {
            let wid = format!("r{rounds}{w}");
            let (c, log) = spawner.writer(&wid, true, 0, 0);
            kids.push((c, wid, Some(log)));
        }
        let wid = format!("r{rounds}hog");
        kids.push((spawner.hog(&wid), wid, None));
        let t = Instant::now();
        for (c, _, _) in kids.iter_mut() {
            c.expect("ready", READY_TIMEOUT);
        }
        max_ready = max_ready.max(t.elapsed());
        for (c, _, _) in kids.iter_mut() {
            c.release();
        }
        // Kill them one by one at random moments, in random order.
        while !kids.is_empty() {
            let i = rng.below(kids.len() as u64) as usize;
            let (mut c, wid, log) = kids.swap_remove(i);
            std::thread::sleep(Duration::from_micros(rng.below(KILL_WINDOW_US)));
            let held_lock = kill_and_check_lock(&mut c, &area_path);
            killed.push(Killed {
                wid,
                log,
                held_lock,
            });
        }
        rounds += 1;
    }
    // Make sure at least one process died holding the lock.
    let mut extra = 0;
    while !killed.iter().any(|k| k.held_lock)
        && extra < 300
        && t0.elapsed() < Duration::from_secs(55)
    {
        let wid = format!("extra{extra}hog");
        let mut c = spawner.hog(&wid);
        c.expect("ready", READY_TIMEOUT);
        c.release();
        std::thread::sleep(Duration::from_micros(rng.below(KILL_WINDOW_US)));
        let held_lock = kill_and_check_lock(&mut c, &area_path);
        killed.push(Killed {
            wid,
            log: None,
            held_lock,
        });
        extra += 1;
    }
    let held = killed.iter().filter(|k| k.held_lock).count() as u64;
    eprintln!(
        "death: {rounds} rounds, {} killed ({held} holding the lock, {extra} extra hogs), \
         slowest start {max_ready:?}, in {:?}",
        killed.len(),
        t0.elapsed()
    );
    assert!(held > 0, "no child was ever killed holding the lock");

    std::fs::write(&stop_path, b"stop").unwrap();
    let done = survivor.recv(Duration::from_secs(20));
    survivor.expect_success(Duration::from_secs(20));
    stop.store(true, Ordering::Relaxed);
    let p = pounder
        .join()
        .expect("pounder thread")
        .unwrap_or_else(|e| panic!("this process blocked or failed: {e}"));
    eprintln!(
        "death: survivor {done}; parent made {} renders (max {:?}) and {} registrations (max {:?})",
        p.renders, p.max_render, p.series, p.max_register
    );

    // A last registration takes over a lock a dead holder may still hold.
    let (_, d) = bounded("final registration", OP_BOUND, || {
        area.registry()
            .counter(Opts::new("death_final", "After the rounds."))
            .unwrap()
    });
    eprintln!("death: final registration took {d:?}");
    let (s, stats) = scrape(&area);
    assert_eq!(stats.bad_records, 0, "no bad records");
    let st = area.stats();
    eprintln!("death: area stats {st:?}");
    assert_eq!(st.locks_recovered, held, "one takeover per dead holder");
    assert_eq!(s.value("promshm_lock_recoveries_total", &[]), held as f64);
    assert_eq!(s.value("promshm_bad_records", &[]), 0.0);
    let writers_killed = killed.iter().filter(|k| k.log.is_some()).count() as u64;
    assert_eq!(
        st.reaped_workers,
        writers_killed + 1,
        "every writer (killed or not) attached once and was reaped once"
    );
    let workers = area.workers();
    assert!(
        workers.iter().all(|w| w.pid == std::process::id()),
        "only this process is left: {workers:?}"
    );

    // Killed writers: between confirmed and confirmed + in flight.
    let mut in_flight_landed = 0;
    let mut in_flight_lost = 0;
    for k in &killed {
        if let Some(log_path) = &k.log {
            let log = parse_log(log_path);
            check_killed_writer(&s, &k.wid, &log);
            if let Some((_, n)) = log.in_flight {
                let all = writer_values(&s, &k.wid)["all"];
                if all == (log.confirmed + n) as f64 {
                    in_flight_landed += 1;
                } else {
                    in_flight_lost += 1;
                }
            }
        }
    }
    eprintln!("death: in-flight batches landed {in_flight_landed}, lost {in_flight_lost}");
    // The survivor: exact.
    let log = parse_log(&survivor_log);
    assert!(log.in_flight.is_none());
    let fields: Vec<u64> = done
        .strip_prefix("done ")
        .unwrap()
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(fields[1], log.confirmed);
    let values = writer_values(&s, "survivor");
    assert_eq!(values["all"], log.confirmed as f64, "survivor total");
    assert_eq!(values.len(), log.flushed.len() + 1);
    for (k, n) in &log.flushed {
        assert_eq!(values[&k.to_string()], *n as f64, "survivor batch {k}");
    }
    assert_eq!(
        native_of(&s, "survivor"),
        native_totals(fields[0] + 1),
        "survivor native histogram"
    );
    // This process's own series: one each.
    let mine = s.series("death_parent_total");
    assert_eq!(mine.len() as u64, p.series);
    assert!(mine.iter().all(|(_, v)| *v == 1.0));

    // The area opens afresh, read-only and read-write, and renders the same.
    for mode in [OpenMode::ReadOnly, OpenMode::ReadWrite] {
        let again = Area::open(&area_path, mode).unwrap();
        let (s2, stats2) = scrape(&again);
        assert_eq!(stats2.bad_records, 0);
        assert_eq!(
            writer_values(&s2, "survivor"),
            values,
            "{mode:?} open renders the same"
        );
        assert_eq!(
            s2.series("death_ops_total").len(),
            s.series("death_ops_total").len()
        );
    }
}
