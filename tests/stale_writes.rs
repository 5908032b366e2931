//! No stale writes, ever (issue 16 item 2, docs/FORMAT.md §6.5): a handle
//! to a removed series never stores into the cells of the series that
//! reuses its record, even when its writer stops for as long as it likes
//! between its generation check and its store (a debugger, SIGSTOP at that
//! instruction). Writers announce their writes in lanes of the area; a hole
//! is not reused while a write that began before it was freed is in flight.
//!
//! Real processes (re-executions of this binary, see `common`). The child
//! writer stops itself with the test-only hook between the check and the
//! store (`--features test-hooks`; this file is built only with it).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use promshm::{Area, AreaOptions, Format, OpenMode, Opts};

/// The 1 MiB area of the issue.
const PAGES: u32 = 256;
/// The stale handle's increment: recognisable anywhere.
const STALE: f64 = 1_000_000.0;
/// New series registered while the stale writer is stopped (enough to take
/// every hole of their class, the stale one included, without the lanes).
const NEW_SERIES: usize = 64;

#[test]
fn child_entry() {
    child_main(|role| match role {
        "stopper" => stopper(),
        "holder" => holder(),
        "forker" => forker(),
        "overflower" => overflower(),
        "slotless" => slotless(),
        other => panic!("unknown role {other:?}"),
    });
}

fn family(area: &Area) -> promshm::Family<promshm::Counter> {
    area.registry()
        .counter(Opts::new("c", "c").labels(&["id"]).eager(true))
        .unwrap()
}

/// Child: resolve series "s", write once, then on the parent's word write
/// `STALE` stopping itself (SIGSTOP) after the generation check passed and
/// before the store. Once continued: the store, "done".
fn stopper() {
    if std::env::var("NO_MEMBARRIER").is_ok() {
        promshm::area::__test_disable_membarrier();
    }
    let area = Area::open(env_area(), OpenMode::ReadWrite).unwrap();
    let fam = family(&area);
    let s = fam.labels(&["s"]).unwrap();
    s.inc();
    send("ready");
    assert_eq!(read_parent_line().as_deref(), Some("go"));
    promshm::area::__write_hook::stop_after_next_check();
    s.add(STALE).unwrap();
    send("done");
    wait_for_parent();
}

/// Wait until our child stopped itself at the hook.
fn wait_stopped(child: &mut ChildProc) {
    child.wait_stopped(Duration::from_secs(20), "did not stop itself at the hook");
}

fn cont(child: &ChildProc) {
    // SAFETY: signalling our own child, not yet reaped.
    unsafe { libc::kill(child.pid() as libc::pid_t, libc::SIGCONT) };
}

/// The parent side of the stopped-writer test, on an area at `path`.
fn stopped_writer_never_writes_into_new_owners(path: &Path, child_env: &[(&str, String)]) {
    let area = Area::open(path, OpenMode::ReadWrite).unwrap();
    let fam = family(&area);
    let mut envs = vec![(AREA_ENV, path.display().to_string())];
    envs.extend(child_env.iter().cloned());
    let mut child = ChildProc::spawn("stopper", "stopper", &envs);
    child.expect("ready", Duration::from_secs(30));
    child.send_line("go");
    wait_stopped(&mut child);
    // The child checked "s"'s generation and stopped before its store.
    assert!(fam.remove(&["s"]).unwrap());
    std::thread::sleep(Duration::from_millis(250)); // past the grace period
    let reused_before = area.stats().records_reused;
    let fresh: Vec<_> = (0..NEW_SERIES)
        .map(|i| {
            let h = fam.labels(&[&format!("n{i}")]).unwrap();
            h.inc();
            h
        })
        .collect();
    let reused_while_stopped = area.stats().records_reused - reused_before;
    cont(&child);
    child.expect("done", Duration::from_secs(30));
    child.release();
    child.expect_success(Duration::from_secs(30));
    for (i, h) in fresh.iter().enumerate() {
        assert_eq!(h.get(), 1.0, "series n{i} (a stale store landed in it)");
    }
    // And the render agrees: every `c_total` sample of the new series is 1.
    let text = area
        .registry()
        .render_to_string(Format::Prometheus)
        .unwrap();
    for line in text.lines().filter(|l| l.starts_with("c_total{id=\"n")) {
        assert!(
            line.ends_with(" 1"),
            "a stale store shows in the render: {line}"
        );
    }
    println!("reused while the stale writer was stopped: {reused_while_stopped} records");
    // The deferred hole is not lost: once the writer is done it is reused.
    let reused_after = area.stats().records_reused;
    std::thread::sleep(Duration::from_millis(150));
    // Label values as long as "s"'s: records of its size class.
    for v in ["w", "x", "y", "z"] {
        fam.labels(&[v]).unwrap().inc();
    }
    assert!(
        area.stats().records_reused > reused_after || area.stats().bytes_in_free_records == 0,
        "a hole that was only deferred must be reused later"
    );
}

#[test]
fn a_writer_stopped_between_check_and_store_never_writes_into_the_new_owner() {
    let dir = TempDir::new("stale-stop");
    let path = dir.join("area");
    drop(Area::create(&path, &AreaOptions::with_pages(PAGES)).unwrap());
    stopped_writer_never_writes_into_new_owners(&path, &[]);
}

/// Without membarrier in the area's creator (seccomp, nohz_full): writers
/// store their lanes SeqCst, and holes are still reused safely.
#[test]
fn without_membarrier_writers_order_their_own_lanes() {
    let dir = TempDir::new("stale-nomb");
    let path = dir.join("area");
    let mut creator = ChildProc::spawn(
        "holder",
        "creator",
        &[
            (AREA_ENV, path.display().to_string()),
            ("CREATE", "1".into()),
            ("NO_MEMBARRIER", "1".into()),
        ],
    );
    creator.expect("created", Duration::from_secs(30));
    creator.release();
    creator.expect_success(Duration::from_secs(30));
    stopped_writer_never_writes_into_new_owners(&path, &[("NO_MEMBARRIER", "1".into())]);
}

/// A process that cannot issue the barrier, on an area whose writers do not
/// order their lanes: it never reuses a hole (fresh space only), so a
/// stopped stale writer cannot reach a new owner through it either.
#[test]
fn a_process_without_membarrier_on_a_plain_area_does_not_reuse_holes() {
    let dir = TempDir::new("stale-nomb2");
    let path = dir.join("area");
    drop(Area::create(&path, &AreaOptions::with_pages(PAGES)).unwrap());
    let mut reuser = ChildProc::spawn(
        "holder",
        "reuser",
        &[
            (AREA_ENV, path.display().to_string()),
            ("NO_MEMBARRIER", "1".into()),
            ("CHURN", "200".into()),
        ],
    );
    let got = reuser.recv(Duration::from_secs(60));
    reuser.release();
    reuser.expect_success(Duration::from_secs(30));
    assert_eq!(got, "reused 0", "it reused holes without a barrier");
    // A process with the barrier reuses them.
    let area = Area::open(&path, OpenMode::ReadWrite).unwrap();
    let fam = family(&area);
    std::thread::sleep(Duration::from_millis(150));
    let before = area.stats().records_reused;
    // Label values as long as the churned ones: records of their size class.
    for i in 0..10 {
        fam.labels(&[&format!("churn{}", 100 + i)]).unwrap().inc();
    }
    assert!(area.stats().records_reused > before);
}

/// Child: create the area (`CREATE`), or churn `CHURN` create+remove
/// cycles and report how many records it reused; or hold series "s" with a
/// write in flight forever (`INFLIGHT`: stopped at the hook by the parent's
/// SIGKILL).
fn holder() {
    if std::env::var("NO_MEMBARRIER").is_ok() {
        promshm::area::__test_disable_membarrier();
    }
    let path = env_area();
    if std::env::var("CREATE").is_ok() {
        drop(Area::create(&path, &AreaOptions::with_pages(PAGES)).unwrap());
        send("created");
        wait_for_parent();
        return;
    }
    let area = Area::open(&path, OpenMode::ReadWrite).unwrap();
    let fam = family(&area);
    if let Ok(n) = std::env::var("CHURN") {
        let n: usize = n.parse().unwrap();
        let before = area.stats().records_reused;
        for i in 0..n {
            let id = format!("churn{i}");
            fam.labels(&[&id]).unwrap().inc();
            assert!(fam.remove(&[&id]).unwrap());
            if i % 50 == 49 {
                std::thread::sleep(Duration::from_millis(120));
            }
        }
        send(&format!("reused {}", area.stats().records_reused - before));
        wait_for_parent();
        return;
    }
    let s = fam.labels(&["s"]).unwrap();
    s.inc();
    send("ready");
    assert_eq!(read_parent_line().as_deref(), Some("go"));
    promshm::area::__write_hook::stop_after_next_check();
    s.add(STALE).unwrap();
    unreachable!("killed while stopped");
}

/// A writer SIGKILLed with its write in flight (its lane shows it) blocks
/// reuse only until its slot is reaped, never for ever.
#[test]
fn a_writer_killed_in_flight_never_blocks_reuse_once_reaped() {
    let dir = TempDir::new("stale-kill");
    let path = dir.join("area");
    let area = Area::create(&path, &AreaOptions::with_pages(PAGES)).unwrap();
    let fam = family(&area);
    let mut child = ChildProc::spawn(
        "holder",
        "holder",
        &[(AREA_ENV, path.display().to_string())],
    );
    child.expect("ready", Duration::from_secs(30));
    child.send_line("go");
    wait_stopped(&mut child);
    assert!(fam.remove(&["s"]).unwrap());
    child.kill();
    // Dead (its slot's liveness lock is gone), not reaped yet: its lane
    // does not defer the hole (the reap would free the lane).
    std::thread::sleep(Duration::from_millis(150));
    let before = area.stats().records_reused;
    let t = Instant::now();
    let h = fam.labels(&["new"]).unwrap();
    h.inc();
    assert!(
        area.stats().records_reused > before,
        "the dead writer's hole was not reused"
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "reuse waited {:?}",
        t.elapsed()
    );
    assert_eq!(h.get(), 1.0);
}

/// Child: 128 threads take every lane (each writes "x" once, then waits),
/// then the main thread, without a lane, writes `STALE` into "s" and stops
/// itself (the hook) after the check: its write is in flight in its slot's
/// overflow count. The parent SIGKILLs it there.
fn overflower() {
    let area = Area::open(env_area(), OpenMode::ReadWrite).unwrap();
    let fam = family(&area);
    let s = fam.labels(&["s"]).unwrap();
    let x = fam.labels(&["x"]).unwrap();
    const LANE_THREADS: usize = 128; // every lane (the parent holds some)
    let ready = std::sync::Arc::new(std::sync::Barrier::new(LANE_THREADS + 1));
    let (_keep, park) = std::sync::mpsc::channel::<()>();
    let park = std::sync::Arc::new(std::sync::Mutex::new(park));
    let _threads: Vec<_> = (0..LANE_THREADS)
        .map(|_| {
            let (x, ready, park) = (x.clone(), ready.clone(), park.clone());
            std::thread::spawn(move || {
                x.inc();
                ready.wait();
                // Keep the lane: alive until the process dies.
                let _ = park.lock().unwrap().recv();
            })
        })
        .collect();
    ready.wait();
    send("ready");
    assert_eq!(read_parent_line().as_deref(), Some("go"));
    promshm::area::__write_hook::stop_after_next_check();
    s.add(STALE).unwrap();
    unreachable!("killed while stopped");
}

/// A writer without a lane (more threads than lanes) SIGKILLed with its
/// write in flight: while it is stopped the hole waits; once it is dead and
/// its slot reaped, holes are reused again (its count went with its slot;
/// an area-wide count would stay raised for ever).
#[test]
fn an_overflow_writer_killed_in_flight_never_blocks_reuse_once_reaped() {
    let dir = TempDir::new("stale-overflow-kill");
    let path = dir.join("area");
    let area = Area::create(&path, &AreaOptions::with_pages(PAGES)).unwrap();
    let fam = family(&area);
    let mut child = ChildProc::spawn(
        "overflower",
        "overflower",
        &[(AREA_ENV, path.display().to_string())],
    );
    child.expect("ready", Duration::from_secs(60));
    assert_eq!(lane_owners(&path).len(), 128, "every lane is taken");
    child.send_line("go");
    wait_stopped(&mut child);
    // The child checked "s"'s generation (through its slot's overflow
    // count) and stopped before its store.
    assert!(fam.remove(&["s"]).unwrap());
    std::thread::sleep(Duration::from_millis(250)); // past the grace period
    let before = area.stats().records_reused;
    let n0 = fam.labels(&["n0"]).unwrap();
    n0.inc();
    assert_eq!(
        area.stats().records_reused,
        before,
        "the hole of a write in flight (overflow) was reused"
    );
    child.kill();
    assert!(
        area.reap_dead_workers().unwrap() >= 1,
        "the writer's slot was reaped"
    );
    std::thread::sleep(Duration::from_millis(150));
    let t = Instant::now();
    let h = fam.labels(&["new"]).unwrap();
    h.inc();
    assert!(
        area.stats().records_reused > before,
        "the dead overflow writer's hole was not reused"
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "reuse waited {:?}",
        t.elapsed()
    );
    assert_eq!(h.get(), 1.0);
    assert_eq!(n0.get(), 1.0);
}

/// Child: 1,000 eager increments of "z" in an area whose only worker slot
/// the parent holds (each write holds the area lock instead of a lane).
fn slotless() {
    let area = Area::open(env_area(), OpenMode::ReadWrite).unwrap();
    let z = family(&area).labels(&["z"]).unwrap();
    for _ in 0..1000 {
        z.inc();
    }
    send("done");
    wait_for_parent();
}

/// A process without a worker slot (the table is full) still writes, every
/// write under the area lock: exact, and never stuck.
#[test]
fn a_process_without_a_worker_slot_writes_under_the_lock() {
    let dir = TempDir::new("stale-slotless");
    let path = dir.join("area");
    let opts = AreaOptions {
        max_workers: 1,
        ..AreaOptions::with_pages(PAGES)
    };
    let area = Area::create(&path, &opts).unwrap();
    let z = family(&area).labels(&["z"]).unwrap();
    z.inc(); // the parent takes the only slot
    let before = area.stats().lock_timeouts;
    let locks = area.stats().locks_taken;
    let t = Instant::now();
    let mut child = ChildProc::spawn(
        "slotless",
        "slotless",
        &[(AREA_ENV, path.display().to_string())],
    );
    child.expect("done", Duration::from_secs(60));
    child.release();
    child.expect_success(Duration::from_secs(30));
    assert_eq!(z.get(), 1001.0);
    assert!(
        area.stats().locks_taken - locks >= 1000,
        "the slotless writes did not take the lock"
    );
    assert_eq!(
        area.stats().lock_timeouts,
        before,
        "a write waited for the lock"
    );
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
    // Reuse goes on afterwards.
    let fam = family(&area);
    fam.labels(&["gone"]).unwrap().inc();
    assert!(fam.remove(&["gone"]).unwrap());
    std::thread::sleep(Duration::from_millis(150));
    let reused = area.stats().records_reused;
    fam.labels(&["back"]).unwrap().inc();
    assert!(area.stats().records_reused > reused);
}

/// More writing threads than lanes: the threads without one count their
/// writes in their process's slot (`slot::OVERFLOW`); totals stay exact, and lanes given back at
/// thread exit are claimed again (reuse goes on afterwards).
#[test]
fn more_threads_than_lanes_stay_exact_and_give_their_lanes_back() {
    let area = Area::anonymous(&AreaOptions::with_pages(PAGES)).unwrap();
    let fam = family(&area);
    let c = fam.labels(&["t"]).unwrap();
    const THREADS: usize = 160; // more than the 128 lanes
    const EACH: u64 = 500;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let c = c.clone();
            let b = barrier.clone();
            std::thread::spawn(move || {
                c.inc(); // claim a lane (or not) while all are alive
                b.wait();
                for _ in 1..EACH {
                    c.inc();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(c.get(), (THREADS as u64 * EACH) as f64);
    // Every thread gave its lane back: reuse is not blocked, and new
    // threads get lanes again.
    for round in 0..3 {
        let id = format!("r{round}");
        std::thread::spawn({
            let fam = fam.clone();
            move || {
                fam.labels(&[&id]).unwrap().inc();
                assert!(fam.remove(&[&id]).unwrap());
            }
        })
        .join()
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(150));
    let before = area.stats().records_reused;
    fam.labels(&["r9"]).unwrap().inc(); // the size class of "r0".."r2"
    assert!(area.stats().records_reused > before);
}

/// A child of `fork` never uses a lane of its parent's threads: it claims
/// its own (its slot is its own). The parent's lane is held by the parent
/// (stopped in flight); the child's writes and the parent's reuse are
/// independent, and the child's totals are exact.
fn forker() {
    let area = Area::open(env_area(), OpenMode::ReadWrite).unwrap();
    let fam = family(&area);
    let s = fam.labels(&["f"]).unwrap();
    s.inc(); // this thread's lane in the parent
             // SAFETY: fork in a single-threaded role process (the harness' threads
             // idle); the child only writes and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        for _ in 0..1000 {
            s.inc();
        }
        let ok = fam.labels(&["child"]).map(|h| h.inc()).is_ok();
        // SAFETY: _exit in the forked child.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    send(&format!("total {}", s.get()));
    // The parent's lane and the child's: two lanes, of two slots.
    let slots: std::collections::BTreeSet<u64> = lane_owners(&env_area())
        .iter()
        .map(|o| o & 0xffff_ffff)
        .collect();
    send(&format!("lane slots {}", slots.len()));
}

/// The claimed lanes' owner words (header offset 2048, 128 lanes of 16
/// bytes: owner, epoch; `LANES` in `src/area/format.rs`), read through the file.
fn lane_owners(area_path: &Path) -> Vec<u64> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(area_path).expect("open area file");
    let mut b = vec![0u8; 2048];
    f.read_exact_at(&mut b, 2048).expect("read lanes");
    b.chunks_exact(16)
        .map(|l| u64::from_le_bytes(l[..8].try_into().unwrap()))
        .filter(|&o| o != 0)
        .collect()
}

#[test]
fn a_forked_child_claims_its_own_lane() {
    let dir = TempDir::new("stale-fork");
    let path = dir.join("area");
    drop(Area::create(&path, &AreaOptions::with_pages(PAGES)).unwrap());
    let msgs = run_child(
        "forker",
        "forker",
        &[(AREA_ENV, path.display().to_string())],
        Duration::from_secs(60),
    );
    assert_eq!(msgs[0], "total 1001");
    assert_eq!(
        msgs[1], "lane slots 2",
        "the child wrote through its parent's lane"
    );
    // The forker's lane and slot are still its own; the child's slot and
    // lane died with it (and never block reuse).
    let area = Area::open(&path, OpenMode::ReadWrite).unwrap();
    area.reap_dead_workers().unwrap();
    let lanes = lane_owners(&path);
    assert!(
        lanes.is_empty(),
        "lanes still claimed after every writer exited: {lanes:?}"
    );
}
