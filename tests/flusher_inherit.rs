//! A forked child that never flushes publishes within its parent's flusher
//! interval (issue 18, item 1: the library's own Rust/C path).
//!
//! A pre-fork master (a re-executed copy of this binary, never the libtest
//! harness) starts a 20 ms [`Flusher`], then forks a child that increments a
//! buffered counter 5,000 times and loops forever without flushing. The
//! master reads the shared area and must see the exact total within 2 s
//! (the time from the child's last update to visibility is printed), then
//! kills the child. The same for a
//! grandchild; with inheritance off the child publishes nothing until it
//! exits (then everything, through the exit flush).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use promshm::{Area, AreaOptions, Counter, Flusher, Opts};

/// Increments each forked process makes.
const INCS: u64 = 5_000;
/// The parent's flusher interval.
const INTERVAL: Duration = Duration::from_millis(20);
/// Bound on the time from the last increment to visibility.
const VISIBLE_WITHIN: Duration = Duration::from_secs(2);

#[test]
fn child_entry() {
    child_main(|role| match role {
        "child" => child_publishes(),
        "grandchild" => grandchild_publishes(),
        "pending_grandchild" => pending_flusher_is_passed_on(),
        "no_inherit" => no_inherit_child_publishes_only_at_exit(),
        "started" => start_returns_with_the_thread_running(),
        other => panic!("unknown role {other:?}"),
    });
}

#[test]
fn a_forked_child_that_never_flushes_publishes_within_2_s() {
    run_and_report("child", "child", &[], Duration::from_secs(30));
}

#[test]
fn a_grandchild_inherits_the_childs_flusher() {
    run_and_report("grandchild", "grandchild", &[], Duration::from_secs(30));
}

#[test]
fn a_child_that_never_buffered_passes_the_pending_flusher_on() {
    run_and_report(
        "pending_grandchild",
        "pending-grandchild",
        &[],
        Duration::from_secs(30),
    );
}

#[test]
fn with_inherit_off_a_child_publishes_only_at_exit() {
    run_and_report("no_inherit", "no-inherit", &[], Duration::from_secs(30));
}

/// `Flusher::start` returns once its thread runs, so a `fork` right after
/// it never catches the thread in its start-up (which allocates: under an
/// allocator without fork handlers, GCC 12's AddressSanitizer, the child
/// inherited a lock of it held and its own flusher hung). Seen here as the
/// thread's name, which it sets before it runs its loop: without the wait,
/// most starts return before the thread has it.
#[test]
fn flusher_start_returns_with_its_thread_running() {
    run_and_report("started", "started", &[], Duration::from_secs(30));
}

/// Run `role` in a master process; print its measured times; it must end with "done".
fn run_and_report(role: &str, name: &str, envs: &[(&str, String)], timeout: Duration) {
    let msgs = run_child(role, name, envs, timeout);
    for m in &msgs {
        eprintln!("{role}: {m}");
    }
    assert_eq!(msgs.last().map(String::as_str), Some("done"), "{msgs:?}");
}

/// An area and two buffered series, by "child" and by "grandchild"; the
/// shared words mapped.
fn setup() -> (Area, Counter, Counter) {
    shared_words(); // mapped before any fork
    let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
    let fam = area
        .registry()
        .counter(Opts::new("jobs", "Jobs.").labels(&["by"]).eager(false))
        .unwrap();
    let child = fam.labels(&["child"]).unwrap();
    let grandchild = fam.labels(&["grandchild"]).unwrap();
    (area, child, grandchild)
}

/// Fork; the child runs `body`, which never returns. With `new_group` it
/// gets its own process group (so the master can kill it with its
/// descendants).
fn fork_into(new_group: bool, body: impl FnOnce()) -> libc::pid_t {
    // SAFETY: the child runs promshm calls and loops or leaves with `_exit`,
    // never returning into the harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        if new_group {
            // SAFETY: plain syscall on this process.
            unsafe { libc::setpgid(0, 0) };
        }
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
        // SAFETY: leave without running the harness's exit path.
        unsafe { libc::_exit(1) };
    }
    pid
}

/// Slots of [`shared_words`]: the time of the last update of the child and
/// of the grandchild, and the no-inherit child's leave flag.
const CHILD: usize = 0;
const GRANDCHILD: usize = 1;
const LEAVE: usize = 2;

/// Words shared with every process forked afterwards (an anonymous shared
/// page, mapped once per master process).
fn shared_words() -> &'static [AtomicU64; 3] {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let addr = *PAGE.get_or_init(|| {
        // SAFETY: a fresh anonymous shared mapping of one page, checked below.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(page, libc::MAP_FAILED);
        page as usize
    });
    // SAFETY: the page is mapped, aligned, zeroed and never unmapped.
    unsafe { &*(addr as *const [AtomicU64; 3]) }
}

/// CLOCK_MONOTONIC in nanoseconds (the same clock in every process).
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec out-parameter.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Increment `c` `INCS` times, note the time in shared slot `slot`, then
/// loop forever without flushing.
fn work_then_loop(c: &Counter, slot: usize) -> ! {
    for _ in 0..INCS {
        c.inc();
    }
    shared_words()[slot].store(mono_ns(), Ordering::Release);
    loop {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait until `c` reads `want` (failing [`VISIBLE_WITHIN`] after the call)
/// and the worker noted its last update in shared slot `slot`; the time
/// from that update to visibility.
fn visible_within(c: &Counter, want: u64, slot: usize, what: &str) -> Duration {
    let t0 = Instant::now();
    loop {
        let v = c.get();
        let last = shared_words()[slot].load(Ordering::Acquire);
        if v == want as f64 && last != 0 {
            let took = Duration::from_nanos(mono_ns().saturating_sub(last));
            send(&format!(
                "{what}: exact total {want} visible {took:?} after its last update"
            ));
            return took;
        }
        assert!(v <= want as f64, "{what}: {v} > {want}");
        assert!(
            t0.elapsed() < VISIBLE_WITHIN,
            "{what}: still {v} of {want} after {VISIBLE_WITHIN:?} (never published)"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A forked process group: `processes` processes led by `pgid`. Dropping
/// it (also when an assertion fails) kills them all and reaps them (this
/// process is their subreaper), bounded.
struct Group {
    pgid: libc::pid_t,
    processes: usize,
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: signalling and reaping our own descendants.
        unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut reaped = 0;
        while reaped < self.processes && Instant::now() < deadline {
            let mut status = 0;
            // SAFETY: as above.
            let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if r > 0 {
                reaped += 1;
            } else if r < 0 {
                break; // no child left
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if reaped < self.processes && !std::thread::panicking() {
            panic!("group {} not reaped within 10 s", self.pgid);
        }
    }
}

/// Orphaned grandchildren are reparented to this process, so it can reap them.
fn become_subreaper() {
    // SAFETY: plain prctl on this process.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(r, 0, "prctl: {}", std::io::Error::last_os_error());
}

fn child_publishes() {
    let (_area, child, _) = setup();
    let _flusher = Flusher::start(INTERVAL).unwrap();
    let _group = Group {
        pgid: fork_into(true, || work_then_loop(&child, CHILD)),
        processes: 1,
    };
    visible_within(&child, INCS, CHILD, "child");
    send("done");
}

fn grandchild_publishes() {
    become_subreaper();
    let (_area, child, grandchild) = setup();
    let _flusher = Flusher::start(INTERVAL).unwrap();
    let _group = Group {
        processes: 2,
        pgid: fork_into(true, || {
            // The child buffers first (starting its own flusher), then forks.
            child.inc();
            let _ = fork_into(false, || work_then_loop(&grandchild, GRANDCHILD));
            work_then_loop(&child, CHILD)
        }),
    };
    // The child's extra increment: INCS + 1.
    visible_within(&child, INCS + 1, CHILD, "child");
    visible_within(&grandchild, INCS, GRANDCHILD, "grandchild");
    send("done");
}

fn pending_flusher_is_passed_on() {
    become_subreaper();
    let (_area, _, grandchild) = setup();
    let _flusher = Flusher::start(INTERVAL).unwrap();
    let _group = Group {
        processes: 2,
        pgid: fork_into(true, || {
            // The child never buffers: its grandchild still gets a flusher.
            let _ = fork_into(false, || work_then_loop(&grandchild, GRANDCHILD));
            loop {
                std::thread::sleep(Duration::from_millis(10));
            }
        }),
    };
    visible_within(
        &grandchild,
        INCS,
        GRANDCHILD,
        "grandchild of a child that never buffered",
    );
    send("done");
}

fn no_inherit_child_publishes_only_at_exit() {
    let (_area, child, _) = setup();
    // A shared word the master sets to let the child leave.
    let leave = &shared_words()[LEAVE];
    let _flusher = Flusher::builder()
        .interval(INTERVAL)
        .inherit(false)
        .start()
        .unwrap();
    let pid = fork_into(true, || {
        for _ in 0..INCS {
            child.inc();
        }
        while leave.load(Ordering::Acquire) == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        // `exit` runs promshm's exit flush (`_exit` would not).
        // SAFETY: ends this forked process.
        unsafe { libc::exit(0) };
    });
    let mut group = Group {
        pgid: pid,
        processes: 1,
    };
    // 50 intervals: an inherited flusher would have published long ago.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(child.get(), 0.0, "a child with inherit off published");
    leave.store(1, Ordering::Release);
    wait_forked(pid, "the no-inherit child", Duration::from_secs(10));
    group.processes = 0;
    assert_eq!(child.get(), INCS as f64, "the exit flush published it all");
    send("done");
}

/// Threads of this process named `promshm-flush`.
fn flusher_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "promshm-flush")
        .count()
}

fn start_returns_with_the_thread_running() {
    for round in 0..50 {
        let flusher = Flusher::start(Duration::from_secs(1)).unwrap();
        let running = flusher_threads();
        flusher.stop();
        assert_eq!(
            running, 1,
            "round {round}: start returned before its thread ran"
        );
    }
    send("50 starts, each returned with its thread running");
    send("done");
}
