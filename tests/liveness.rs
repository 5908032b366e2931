//! Liveness and the hot path, with real processes:
//! - a worker that cannot read `/proc` (no file descriptor left) is never
//!   judged dead while it lives: its `sum` gauge keeps exactly its value;
//! - with a SIGSTOPped lock holder, gauge writes, flushes and attaches of
//!   another process return at once (a brief wait, then a backoff; the
//!   dropped gauge updates are counted, the counters stay buffered and exact);
//! - a process that found no free worker slot does not take the area lock
//!   on every gauge update;
//! - a child of `fork` does not keep its dead parent looking alive;
//! - a host that closes every descriptor it does not know (uWSGI at a
//!   reload) neither breaks the lock nor gets its own descriptors closed.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use promshm::{Area, AreaOptions, GaugeMode, Opts};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn child_entry() {
    child_main(|role| match role {
        "fd_starved" => fd_starved(),
        "holder" => holder(),
        "hot_path" => hot_path(),
        "slot_taker" => slot_taker(),
        "forking_parent" => forking_parent(),
        "fd_closer" => fd_closer(),
        other => panic!("unknown role {other:?}"),
    });
}

fn options(max_workers: u32) -> AreaOptions {
    AreaOptions {
        pages: 256,
        max_workers,
        eager: false,
    }
}

fn wait_for_file(path: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !Path::new(path).exists() {
        assert!(Instant::now() < deadline, "no {path} within 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---- identity fallback -----------------------------------------------------------

/// Open every descriptor this process may still open (after lowering the
/// limit so that this is quick); returns them.
fn exhaust_fds() -> Vec<i32> {
    // SAFETY: an all-zero rlimit is a valid out-parameter.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers; lowering the soft limit is always allowed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max.min(128);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    let mut fds = Vec::new();
    loop {
        // SAFETY: a valid NUL-terminated path.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            break;
        }
        fds.push(fd);
    }
    fds
}

/// Opens the area, then forks: the child (whose cached identity the fork
/// hook cleared) uses up its descriptors and writes a `sum` gauge; later it
/// gets descriptors back and writes again. The parent only waits.
fn fd_starved() {
    let area = Area::create(env_area(), &options(8)).unwrap();
    let gauge = area
        .registry()
        .gauge(Opts::new("starved", "Sum gauge."), GaugeMode::Sum)
        .unwrap()
        .get()
        .unwrap();
    let dir = env_str("LIVE_DIR");
    // SAFETY: the child runs only this function's code and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid > 0 {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        return;
    }
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let fds = exhaust_fds();
        gauge.set(7.0);
        let attach = area.attach();
        send(&format!(
            "starved {}",
            match &attach {
                Ok(s) => format!("attached {s}"),
                Err(e) => format!("error {e}"),
            }
        ));
        wait_for_file(&format!("{dir}/go1"));
        for fd in fds {
            // SAFETY: our own descriptors.
            unsafe { libc::close(fd) };
        }
        // Attaching backs off after a failure: retry until it works.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            gauge.set(7.0);
            if area.attach().is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "never attached again");
            std::thread::sleep(Duration::from_millis(20));
        }
        send("attached");
        wait_for_file(&format!("{dir}/go2"));
        gauge.set(5.0);
        send("set 5");
        wait_for_file(&format!("{dir}/go3"));
    }))
    .is_ok();
    let _ = std::io::Write::flush(&mut std::io::stdout());
    // SAFETY: leave the forked child without running the harness's exit path.
    unsafe { libc::_exit(if ok { 0 } else { 1 }) };
}

#[test]
fn a_worker_that_cannot_read_proc_is_never_reaped_while_alive() {
    let dir = TempDir::new("starved");
    let path = dir.join("area.promshm");
    let area = Area::create(&path, &options(8)).unwrap();
    let mut c = ChildProc::spawn(
        "fd_starved",
        "starved",
        &[
            (AREA_ENV, path.to_str().unwrap().into()),
            ("LIVE_DIR", dir.path().to_str().unwrap().into()),
        ],
    );
    let msg = c.recv(READY_TIMEOUT);
    eprintln!("starved worker: {msg}");
    // Whatever it could do without descriptors, it is alive: never reaped.
    assert_eq!(area.reap_dead_workers().unwrap(), 0, "{msg}");
    let (s, _) = scrape(&area);
    assert_eq!(area.stats().reaped_workers, 0, "a live worker was reaped");
    if msg.starts_with("starved error") {
        // It could not attach, said so clearly, and its update is counted.
        assert!(area.stats().dropped_updates >= 1);
        assert_eq!(s.get("starved", &[]).unwrap_or(0.0), 0.0);
    } else {
        assert_eq!(s.value("starved", &[]), 7.0);
    }

    std::fs::write(dir.join("go1"), b"").unwrap();
    c.expect("attached", READY_TIMEOUT);
    assert_eq!(area.reap_dead_workers().unwrap(), 0);
    let (s, _) = scrape(&area);
    assert_eq!(s.value("starved", &[]), 7.0, "the only worker holds 7");

    std::fs::write(dir.join("go2"), b"").unwrap();
    c.expect("set 5", READY_TIMEOUT);
    assert_eq!(area.reap_dead_workers().unwrap(), 0);
    let (s, _) = scrape(&area);
    assert_eq!(s.value("starved", &[]), 5.0, "the only worker holds 5");
    assert_eq!(area.stats().reaped_workers, 0);

    std::fs::write(dir.join("go3"), b"").unwrap();
    c.expect_success(Duration::from_secs(20));
    // Now it is gone: reaped once, its last value kept (sum).
    assert_eq!(area.reap_dead_workers().unwrap(), 1);
    let (s, _) = scrape(&area);
    assert_eq!(s.value("starved", &[]), 5.0);
}

// ---- hot path with a stopped holder ------------------------------------------------

/// Take the area lock, say so, and hold it until released.
fn holder() {
    let area = Area::create(env_area(), &options(8)).unwrap();
    let _held = area.__hold_lock_for_tests().unwrap();
    send("locked");
    wait_for_parent();
}

const HOT_OPS: u64 = 3000;

/// Register first; when told, write a gauge, count, flush and attach in a
/// loop while another process holds the lock; report how long it took.
fn hot_path() {
    let area = Area::create(env_area(), &options(8)).unwrap();
    let reg = area.registry();
    let gauge = reg
        .gauge(Opts::new("hot_gauge", "Gauge."), GaugeMode::Sum)
        .unwrap()
        .get()
        .unwrap();
    let ops = reg
        .counter(Opts::new("hot_ops", "Ops."))
        .unwrap()
        .get()
        .unwrap();
    send("registered");
    wait_for_file(&env_str("HOT_GO"));
    let t = Instant::now();
    let mut attach_errors = 0;
    let mut slowest = Duration::ZERO;
    for i in 0..HOT_OPS {
        let c = Instant::now();
        gauge.set(i as f64);
        ops.inc();
        if i % 10 == 0 {
            promshm::flush();
            if area.attach().is_err() {
                attach_errors += 1;
            }
        }
        slowest = slowest.max(c.elapsed());
    }
    promshm::flush();
    send(&format!(
        "done {} {} {attach_errors}",
        t.elapsed().as_millis(),
        slowest.as_millis()
    ));
}

#[test]
fn a_stopped_lock_holder_costs_the_hot_path_no_lock_timeout_per_call() {
    let dir = TempDir::new("hot");
    let path = dir.join("area.promshm");
    let go = dir.join("go");
    let area = Area::create(&path, &options(8)).unwrap();
    let envs = [
        (AREA_ENV, path.to_str().unwrap().to_string()),
        ("HOT_GO", go.to_str().unwrap().to_string()),
    ];
    let mut worker = ChildProc::spawn("hot_path", "hot", &envs);
    worker.expect("registered", READY_TIMEOUT);
    let mut holder = ChildProc::spawn("holder", "holder", &envs);
    holder.expect("locked", READY_TIMEOUT);
    holder.stop();
    let before = area.stats();
    std::fs::write(&go, b"").unwrap();
    // Bounded: a lock timeout (10 s) per call would take hours.
    let msg = worker.recv(Duration::from_secs(60));
    eprintln!("hot path: {msg}");
    let f: Vec<u64> = msg
        .strip_prefix("done ")
        .unwrap()
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect();
    let (total_ms, slowest_ms, attach_errors) = (f[0], f[1], f[2]);
    worker.expect_success(Duration::from_secs(20));
    let after = area.stats();
    let timeouts = after.lock_timeouts - before.lock_timeouts;
    // A brief wait, then a doubling backoff: a handful of timeouts, not one per call.
    assert!(
        (1..=20).contains(&timeouts),
        "{timeouts} lock timeouts for {HOT_OPS} updates"
    );
    assert!(slowest_ms < 2_000, "one call took {slowest_ms} ms");
    assert!(total_ms < 20_000, "{HOT_OPS} updates took {total_ms} ms");
    assert_eq!(
        attach_errors,
        HOT_OPS / 10,
        "no attach while the lock is held"
    );
    assert_eq!(
        after.dropped_updates - before.dropped_updates,
        HOT_OPS,
        "every gauge update made without a slot is counted"
    );
    assert_eq!(
        after.locks_recovered, 0,
        "nobody took over the stopped holder's lock"
    );

    // The holder goes on and exits; counters flushed without the lock are exact.
    // SAFETY: continuing our own stopped child.
    unsafe { libc::kill(holder.pid() as libc::pid_t, libc::SIGCONT) };
    holder.release();
    holder.expect_success(Duration::from_secs(20));
    let (s, _) = scrape(&area);
    assert_eq!(s.value("hot_ops_total", &[]), HOT_OPS as f64);
}

// ---- a process without a worker slot --------------------------------------------

/// Attach (a gauge write) and stay until released.
fn slot_taker() {
    let area = Area::create(env_area(), &options(2)).unwrap();
    area.registry()
        .gauge(Opts::new("slots", "Gauge."), GaugeMode::Sum)
        .unwrap()
        .get()
        .unwrap()
        .set(1.0);
    area.attach().unwrap();
    send("attached");
    wait_for_parent();
}

#[test]
fn a_process_without_a_worker_slot_does_not_take_the_lock_per_update() {
    const SETS: u64 = 20_000;
    let dir = TempDir::new("slotless");
    let path = dir.join("area.promshm");
    let area = Area::create(&path, &options(2)).unwrap();
    let gauge = area
        .registry()
        .gauge(Opts::new("slots", "Gauge."), GaugeMode::Sum)
        .unwrap()
        .get()
        .unwrap();
    let envs = [(AREA_ENV, path.to_str().unwrap().to_string())];
    let mut takers: Vec<ChildProc> = (0..2)
        .map(|i| ChildProc::spawn("slot_taker", &format!("taker{i}"), &envs))
        .collect();
    for t in takers.iter_mut() {
        t.expect("attached", READY_TIMEOUT);
    }
    let before = area.stats();
    let t = Instant::now();
    for i in 0..SETS {
        gauge.set(i as f64);
    }
    let took = t.elapsed();
    let after = area.stats();
    let locks = after.locks_taken - before.locks_taken;
    eprintln!("slot-less: {SETS} sets in {took:?}, {locks} lock acquisitions");
    assert!(
        locks <= 5,
        "{locks} lock acquisitions for {SETS} gauge sets"
    );
    assert_eq!(after.dropped_updates - before.dropped_updates, SETS);
    assert!(matches!(area.attach(), Err(promshm::Error::WorkersFull(2))));
    for t in takers.iter_mut() {
        t.release();
        t.expect_success(Duration::from_secs(20));
    }
    // Once the slots are free again (their holders exited), attaching
    // succeeds after the backoff: gauge updates land again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while area.attach().is_err() {
        assert!(
            Instant::now() < deadline,
            "never attached after slots freed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    gauge.set(3.0);
    let (s, _) = scrape(&area);
    // The two exited takers' 1 each, kept by `sum`, plus ours.
    assert_eq!(s.value("slots", &[]), 5.0);
}

// ---- fork: the child never keeps its parent's locks alive ---------------------------

/// Attach (a gauge write), fork a child that only sleeps, and wait to be killed.
fn forking_parent() {
    let area = Area::create(env_area(), &options(8)).unwrap();
    area.registry()
        .gauge(Opts::new("parent_gauge", "Gauge."), GaugeMode::Sum)
        .unwrap()
        .get()
        .unwrap()
        .set(4.0);
    area.attach().unwrap();
    // SAFETY: the child only sleeps and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // Let go of the pipes to the test, so that it sees the parent's end.
        // SAFETY: plain descriptor calls on our own descriptors.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
        }
        for _ in 0..3000 {
            std::thread::sleep(Duration::from_millis(10));
        }
        // SAFETY: leave the child without running exit handlers.
        unsafe { libc::_exit(0) };
    }
    send(&format!("forked {pid}"));
    wait_for_parent();
}

#[test]
fn a_dead_parent_is_reaped_while_its_forked_child_lives() {
    let dir = TempDir::new("forkparent");
    let path = dir.join("area.promshm");
    let area = Area::create(&path, &options(8)).unwrap();
    let mut parent = ChildProc::spawn(
        "forking_parent",
        "parent",
        &[(AREA_ENV, path.to_str().unwrap().into())],
    );
    let msg = parent.recv(READY_TIMEOUT);
    let child: libc::pid_t = msg.strip_prefix("forked ").unwrap().parse().unwrap();
    struct KillOnDrop(libc::pid_t);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            // SAFETY: the orphaned grandchild of this test.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
    let _child = KillOnDrop(child);
    assert_eq!(area.reap_dead_workers().unwrap(), 0, "the parent lives");
    parent.kill();
    // SAFETY: signal 0 only checks that the child still exists.
    assert_eq!(unsafe { libc::kill(child, 0) }, 0, "the child lives on");
    assert_eq!(
        area.reap_dead_workers().unwrap(),
        1,
        "the dead parent is reaped although its child (which inherited its descriptors) lives"
    );
    let (s, _) = scrape(&area);
    assert_eq!(s.value("parent_gauge", &[]), 4.0);
}

// ---- descriptors closed behind the library's back -----------------------------------

/// Attach, then close every descriptor but 0-2 (as some servers do) and open
/// others in their place; then go on using the area.
fn fd_closer() {
    let area = Area::create(env_area(), &options(8)).unwrap();
    let reg = area.registry();
    let g = reg
        .gauge(Opts::new("closer_gauge", "Gauge."), GaugeMode::Sum)
        .unwrap()
        .get()
        .unwrap();
    g.set(2.0);
    promshm::flush();
    for fd in 3..1024 {
        // SAFETY: closing descriptors, as the host program would.
        unsafe { libc::close(fd) };
    }
    let mine: Vec<i32> = (0..8)
        // SAFETY: a valid NUL-terminated path.
        .map(|_| unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) })
        .collect();
    assert!(mine.iter().all(|&fd| fd >= 3));
    promshm::flush();
    g.set(2.0);
    reg.counter(Opts::new("closer_after", "Registered after the close."))
        .unwrap();
    // SAFETY: F_GETFD only reads the descriptor flags.
    let open = mine
        .iter()
        .all(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0);
    assert!(open, "the library closed a descriptor that is not its own");
    send("relocked");
    wait_for_parent();
}

#[test]
fn a_host_closing_the_librarys_descriptors_breaks_nothing() {
    let dir = TempDir::new("fdcloser");
    let path = dir.join("area.promshm");
    let area = Area::create(&path, &options(8)).unwrap();
    let mut c = ChildProc::spawn(
        "fd_closer",
        "closer",
        &[(AREA_ENV, path.to_str().unwrap().into())],
    );
    c.expect("relocked", READY_TIMEOUT);
    assert_eq!(
        area.reap_dead_workers().unwrap(),
        0,
        "the live worker keeps its slot"
    );
    let (s, _) = scrape(&area);
    assert_eq!(s.value("closer_gauge", &[]), 2.0);
    assert_eq!(s.value("closer_after_total", &[]), 0.0);
    c.release();
    c.expect_success(Duration::from_secs(20));
    assert_eq!(area.reap_dead_workers().unwrap(), 1);
    let (s, _) = scrape(&area);
    assert_eq!(s.value("closer_gauge", &[]), 2.0);
}

// ---- a lock held for a moment ------------------------------------------------------

/// A registration in another process may hold the area lock for a while
/// (a slow machine, Valgrind): the first gauge write of a process then
/// waits for its attach instead of being dropped.
#[test]
fn a_lock_held_for_a_moment_delays_the_first_gauge_write_but_never_drops_it() {
    let dir = TempDir::new("moment");
    let path = dir.join("area.promshm");
    let area = Area::create(&path, &options(8)).unwrap();
    let gauge = area
        .registry()
        .gauge(Opts::new("moment_gauge", "Gauge."), GaugeMode::Sum)
        .unwrap()
        .get()
        .unwrap();
    let envs = [(AREA_ENV, path.to_str().unwrap().to_string())];
    let mut holder = ChildProc::spawn("holder", "holder", &envs);
    holder.expect("locked", READY_TIMEOUT);
    let before = area.stats();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        holder.release();
        holder.expect_success(Duration::from_secs(20));
    });
    gauge.set(5.0);
    releaser.join().unwrap();
    let after = area.stats();
    assert_eq!(
        after.dropped_updates - before.dropped_updates,
        0,
        "a gauge write dropped behind a lock held for 300 ms"
    );
    let (s, _) = scrape(&area);
    assert_eq!(s.value("moment_gauge", &[]), 5.0);
}
