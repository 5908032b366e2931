//! Fork while a timer flusher runs and other threads update (issue 9, item 3).
//!
//! A pre-fork master with a running [`Flusher`] and busy threads forks 2,000
//! children one after another. Each even child forgets the inherited flusher
//! (drops it: a no-op), starts its own 1 ms flusher, updates, lets its
//! flusher run, stops it, flushes and leaves with `_exit`. Each odd child
//! keeps the inherited handle: its first update starts its own flusher
//! lazily (issue 18), which must run and must not keep `_exit` waiting. Nothing in a child
//! may touch a lock, condvar or wait queue that a parent thread held when
//! `fork` ran (parking_lot's process-wide parking table included): a child
//! that hangs is killed after a timeout and fails the test. At the end every
//! count is exact.
//!
//! The forking parent is a re-executed copy of this binary (see `common`),
//! never the libtest harness itself.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use promshm::{Area, AreaOptions, Flusher, Opts, SummaryOpts};

/// Children forked one after another.
const CHILDREN: u64 = 2_000;
/// Bound on one child's run (it normally takes a few milliseconds).
const CHILD_TIMEOUT: Duration = Duration::from_secs(10);
/// Increments each child makes.
const CHILD_INCS: u64 = 3;
/// Parent threads that update while the children are forked.
const UPDATERS: usize = 2;

#[test]
fn child_entry() {
    child_main(|role| match role {
        "fork_parent" => fork_parent(),
        "fork_during_table_build" => fork_during_table_build(),
        "fork_during_first_use" => fork_during_first_use(),
        "fork_during_labelled_first_touch" => fork_during_labelled_first_touch(),
        other => panic!("unknown role {other:?}"),
    });
}

#[test]
fn forking_under_a_running_flusher_never_hangs_a_child_and_totals_are_exact() {
    let msgs = run_child("fork_parent", "fork-parent", &[], Duration::from_secs(600));
    assert_eq!(msgs, ["done"]);
}

/// A thread builds the summary sketch's lookup tables (the first
/// observation of the process) when another thread forks: the child must
/// not wait for the parent thread's build, which never finishes there.
#[test]
fn a_child_forked_while_the_sketch_tables_are_built_observes() {
    let msgs = run_child(
        "fork_during_table_build",
        "table-build",
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(msgs, ["done"]);
}

/// Fresh processes (re-executed copies of this binary) in which
/// [`fork_during_first_use`] runs.
const FIRST_USE_ROUNDS: usize = 60;
/// Threads that make their process's first use of promshm meanwhile.
const FIRST_USERS: usize = 3;
/// Children forked back to back while they do.
const FIRST_USE_FORKS: usize = 8;
/// Bound on one such child's run (it normally takes a millisecond).
const FIRST_USE_CHILD_TIMEOUT: Duration = Duration::from_secs(5);

/// Other threads make the process's first use of the library (an area, a
/// buffered update, a flusher: each installs a fork handler or the exit
/// flush once) while the main thread forks: a child must never wait for an
/// installation a parent thread had under way at the fork, which never
/// finishes in the child.
#[test]
fn a_child_forked_while_other_threads_first_use_the_library_never_hangs() {
    for round in 0..FIRST_USE_ROUNDS {
        let msgs = run_child(
            "fork_during_first_use",
            &format!("first-use-{round}"),
            &[],
            Duration::from_secs(60),
        );
        assert_eq!(msgs, ["done"], "round {round}");
    }
}

/// Rounds of [`fork_during_labelled_first_touch`] in one process.
const LABELLED_ROUNDS: u64 = 150;
/// Fresh threads of a round, each making its first labelled updates.
const LABELLED_THREADS: u64 = 3;
/// Series each fresh thread updates (new to the thread, some new to the process).
const LABELLED_SERIES: u64 = 6;
/// Children forked in a round while the fresh threads update.
const LABELLED_FORKS: usize = 4;

/// Fresh threads make their first labelled updates (a series' first
/// resolution in the process, a thread's first touch of a series: the
/// series cache, the buffer id pool, the thread's buffer entries and the
/// list of buffers) through `inc_labels` and `labels(..).inc()` while another thread forks
/// children that make a labelled update and `_exit`: no child may wait for
/// a lock a parent thread held at the fork. Each child is bounded (killed
/// and failed past the bound); every count is exact at the end.
#[test]
fn a_child_forked_while_fresh_threads_first_touch_labelled_series_never_hangs() {
    let msgs = run_child(
        "fork_during_labelled_first_touch",
        "labelled-first-touch",
        &[],
        Duration::from_secs(50),
    );
    assert_eq!(msgs, ["done"]);
}

/// Two labelled updates of `fam`'s series `(a, b)`: the handle-less
/// `inc_labels` (first, so that it makes the thread's first touch) and
/// `labels(..).inc()`.
fn labelled_inc(fam: &promshm::Family<promshm::Counter>, a: &str, b: &str) {
    fam.inc_labels(&[a, b]).unwrap();
    fam.labels(&[a, b]).unwrap().inc();
}

fn fork_during_labelled_first_touch() {
    let area = Area::anonymous(&AreaOptions::with_pages(256)).unwrap();
    let fam = area
        .registry()
        .counter(
            Opts::new("touch", "Touch.")
                .labels(&["who", "n"])
                .eager(false),
        )
        .unwrap();
    for round in 0..LABELLED_ROUNDS {
        let go = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for t in 0..LABELLED_THREADS {
                let (go, fam) = (&go, &fam);
                scope.spawn(move || {
                    while !go.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                    for n in 0..LABELLED_SERIES {
                        // `t{t}`: a series every round shares (known to
                        // the process, new to this fresh thread); `r{round}`:
                        // one new to the process.
                        labelled_inc(fam, &format!("t{t}"), &n.to_string());
                        labelled_inc(fam, &format!("r{round}"), &n.to_string());
                    }
                });
            }
            let forker = scope.spawn(|| {
                go.store(true, Ordering::Release);
                fork_children(LABELLED_FORKS, &format!("a child of round {round}"), || {
                    labelled_inc(&fam, "child", "0");
                    promshm::flush();
                });
            });
            forker.join().unwrap();
        });
    }
    promshm::flush();
    for t in 0..LABELLED_THREADS {
        for n in 0..LABELLED_SERIES {
            let got = fam
                .labels(&[&format!("t{t}"), &n.to_string()])
                .unwrap()
                .get();
            assert_eq!(got, (2 * LABELLED_ROUNDS) as f64, "series t{t} {n}");
        }
    }
    // The anonymous mapping is shared with the children: their flushes land here.
    let children = fam.labels(&["child", "0"]).unwrap().get();
    assert_eq!(
        children,
        (2 * LABELLED_ROUNDS * LABELLED_FORKS as u64) as f64
    );
    send("done");
}

/// Fork `n` children back to back, each running `child` and leaving with
/// `_exit` (status 1 if it panicked), then wait for each at most
/// `FIRST_USE_CHILD_TIMEOUT` (a hung one is killed): every child is waited
/// for before any failure is reported.
fn fork_children(n: usize, what: &str, child: impl Fn() + std::panic::RefUnwindSafe) {
    let mut pids = Vec::new();
    for _ in 0..n {
        // SAFETY: the child runs `child` (promshm calls) and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let ok = std::panic::catch_unwind(&child).is_ok();
            // SAFETY: leave without running the harness's exit path.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        pids.push(pid);
    }
    let failures = pids
        .into_iter()
        .filter(|&pid| {
            std::panic::catch_unwind(|| wait_forked(pid, what, FIRST_USE_CHILD_TIMEOUT)).is_err()
        })
        .count();
    assert_eq!(failures, 0, "{failures} of {n} children failed: {what}");
}

/// One thread's first use of promshm: kind 0 an area and a buffered
/// update, 1 a flusher, 2 an area dropped at once.
fn first_use(kind: usize) {
    match kind {
        0 => {
            let area = Area::anonymous(&AreaOptions::with_pages(16)).unwrap();
            let c = area
                .registry()
                .counter(Opts::new("first", "First.").eager(false))
                .unwrap()
                .get()
                .unwrap();
            c.inc();
            promshm::flush();
            assert_eq!(c.get(), 1.0);
        }
        1 => Flusher::start(Duration::from_millis(1)).unwrap().stop(),
        _ => drop(Area::anonymous(&AreaOptions::with_pages(16)).unwrap()),
    }
}

fn fork_during_first_use() {
    let go = AtomicBool::new(false);
    let ready = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for kind in 0..FIRST_USERS {
            let (go, ready) = (&go, &ready);
            scope.spawn(move || {
                ready.fetch_add(1, Ordering::AcqRel);
                while !go.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
                first_use(kind);
            });
        }
        while ready.load(Ordering::Acquire) < FIRST_USERS {
            std::hint::spin_loop();
        }
        go.store(true, Ordering::Release);
        fork_children(
            FIRST_USE_FORKS,
            "a child forked during the first use",
            || first_use(0),
        );
    });
    send("done");
}

fn fork_during_table_build() {
    let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
    let summary = area
        .registry()
        .summary(
            Opts::new("latency", "Latency."),
            &SummaryOpts::quantiles(&[0.5]),
        )
        .unwrap()
        .get()
        .unwrap();
    promshm::metrics::sketch::slow_table_build_for_tests(1_000);
    std::thread::scope(|scope| {
        let first = scope.spawn(|| summary.observe(1.0).unwrap());
        // The thread is now inside the build (it sleeps first).
        std::thread::sleep(Duration::from_millis(200));
        // SAFETY: the child only observes and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            promshm::metrics::sketch::slow_table_build_for_tests(0);
            let ok = summary.observe(2.0).is_ok();
            // SAFETY: leave without running the harness's exit path.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        wait_forked(
            pid,
            "the child forked during the table build",
            CHILD_TIMEOUT,
        );
        first.join().unwrap();
    });
    assert_eq!(summary.get(), (2, 3.0));
    assert_eq!(summary.quantiles(&[0.0, 1.0]).len(), 2);
    send("done");
}

fn fork_parent() {
    let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
    let fam = area
        .registry()
        .counter(Opts::new("events", "Events.").labels(&["by"]).eager(false))
        .unwrap();
    let by_thread = fam.labels(&["thread"]).unwrap();
    let by_child = fam.labels(&["child"]).unwrap();
    let mut flusher = Some(Flusher::start(Duration::from_millis(1)).unwrap());
    let stop = AtomicBool::new(false);
    let counted = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..UPDATERS {
            // Small stacks: a thread the child starts (its flusher) then
            // reuses the parent flusher's cached stack (glibc picks an exact
            // size), so its thread-local data sits where the parked parent
            // flusher's did, the layout in which the hang was seen.
            let updater = std::thread::Builder::new().stack_size(256 * 1024);
            updater
                .spawn_scoped(scope, || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        by_thread.inc();
                        n += 1;
                        if n % 1024 == 0 {
                            std::thread::yield_now();
                        }
                    }
                    counted.fetch_add(n, Ordering::Relaxed);
                })
                .unwrap();
        }
        // Stop the updaters however this ends (a failed child panics).
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = Stop(&stop);
        for n in 0..CHILDREN {
            // SAFETY: the child only runs promshm calls (the point of the
            // test) and leaves with `_exit`, never returning into the harness.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
            if pid == 0 {
                let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    if n % 2 == 1 {
                        // Odd children keep the inherited handle: their
                        // first buffered update starts their own flusher
                        // (inherited, 1 ms), which `_exit` ends.
                        std::mem::forget(flusher.take());
                        for _ in 0..CHILD_INCS {
                            by_child.inc();
                        }
                        let threads = std::fs::read_dir("/proc/self/task").unwrap().count();
                        assert_eq!(threads, 2, "the child started its flusher");
                        std::thread::sleep(Duration::from_millis(2));
                        promshm::flush();
                        return;
                    }
                    // The inherited flusher's thread does not exist here:
                    // dropping it must neither signal nor join anything.
                    drop(flusher.take());
                    // Vary the heap layout from child to child (as real
                    // workers' differ): the objects the child's flusher
                    // allocates then land at other addresses in each child.
                    let layout: Vec<Box<[u64; 4]>> =
                        (0..n % 97).map(|i| Box::new([i; 4])).collect();
                    // Start our own flusher and stop it at once (what an
                    // after-fork handler that restarts flushers does), then
                    // once more after it has slept and flushed.
                    Flusher::start(Duration::from_millis(1)).unwrap().stop();
                    let own = Flusher::start(Duration::from_millis(1)).unwrap();
                    for _ in 0..CHILD_INCS {
                        by_child.inc();
                    }
                    std::thread::sleep(Duration::from_millis(2));
                    own.stop();
                    promshm::flush();
                    drop(layout);
                }))
                .is_ok();
                // SAFETY: leave without running the harness's exit path.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            wait_forked(pid, &format!("child {n}"), CHILD_TIMEOUT);
        }
    });
    flusher.take().unwrap().stop();
    promshm::flush();
    assert_eq!(by_child.get(), (CHILDREN * CHILD_INCS) as f64);
    assert_eq!(by_thread.get(), counted.load(Ordering::Relaxed) as f64);
    send("done");
}
