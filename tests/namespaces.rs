//! Pid namespaces (containers sharing `/dev/shm`): writers in two pid
//! namespaces made with `unshare --pid --fork --mount-proc` share one area
//! with this process (the creator, in the host namespace). One of them is
//! SIGSTOPped while it holds the area lock: nobody takes the lock over from
//! that live holder (registrations wait and time out with a clear error,
//! and succeed after SIGCONT). The other is SIGKILLed mid-updates: it is
//! reaped like any dead process (docs/FORMAT.md, liveness), its `sum` gauge
//! value is kept, and every total is exact.
//!
//! Needs root (CI runs as root) and `unshare`; skipped with a message otherwise.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use promshm::{Area, AreaOptions, Error, GaugeMode, Opts};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Ops of the killed writer, all flushed before it says so.
const KILLED_OPS: u64 = 1000;

#[test]
fn child_entry() {
    child_main(|role| match role {
        "in_new_pid_ns" => in_new_pid_ns(),
        "ns_holder" => ns_holder(),
        "ns_writer" => ns_writer(),
        other => panic!("unknown role {other:?}"),
    });
}

fn options() -> AreaOptions {
    AreaOptions {
        pages: 1024,
        max_workers: 8,
        eager: false,
    }
}

/// Run the role `NS_ROLE` as pid 1 of a new pid namespace (with its own
/// `/proc`, as in a container). `exec` keeps our pid and pipes, so the
/// parent's `ChildProc` talks to the role; `--kill-child` takes the role
/// down with us.
fn in_new_pid_ns() {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().unwrap();
    let err = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child", "--"])
        .arg(exe)
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, env_str("NS_ROLE"))
        .exec();
    panic!("exec unshare: {err}");
}

fn pid_ns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").unwrap().ino()
}

fn wait_for_file(path: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::path::Path::new(path).exists() {
        assert!(Instant::now() < deadline, "no {path} within 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Count, flush, take the area lock and hold it until the parent says go;
/// then register and count more.
fn ns_holder() {
    let area = Area::create(env_area(), &options()).unwrap();
    let fam = area
        .registry()
        .counter(Opts::new("ns_holder_ops", "Holder ops.").labels(&["n"]))
        .unwrap();
    fam.labels(&["before"]).unwrap().add(5.0).unwrap();
    promshm::flush();
    send(&format!("ready {} {}", std::process::id(), pid_ns()));
    {
        let _held = area.__hold_lock_for_tests().unwrap();
        send("locked");
        wait_for_file(&env_str("NS_GO"));
    }
    fam.labels(&["after"]).unwrap().add(11.0).unwrap();
    promshm::flush();
    send("done");
}

/// Set gauges, count and flush exactly, then keep counting until killed.
fn ns_writer() {
    let area = Area::create(env_area(), &options()).unwrap();
    let reg = area.registry();
    let sum = reg
        .gauge(Opts::new("ns_writer_summed", "Sum gauge."), GaugeMode::Sum)
        .unwrap()
        .get()
        .unwrap();
    let live = reg
        .gauge(
            Opts::new("ns_writer_live", "Livesum gauge."),
            GaugeMode::LiveSum,
        )
        .unwrap()
        .get()
        .unwrap();
    let ops = reg
        .counter(Opts::new("ns_writer_ops", "Writer ops."))
        .unwrap()
        .get()
        .unwrap();
    let spin = reg
        .counter(Opts::new("ns_writer_spin", "Ops after ready."))
        .unwrap()
        .get()
        .unwrap();
    sum.set(7.0);
    live.set(3.0);
    for _ in 0..KILLED_OPS {
        ops.inc();
    }
    promshm::flush();
    send(&format!("ready {} {}", std::process::id(), pid_ns()));
    loop {
        for _ in 0..100 {
            spin.inc();
        }
        promshm::flush();
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Why this test cannot run here, if it cannot.
fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    match std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status()
    {
        Ok(s) if s.success() => None,
        Ok(s) => Some(format!(
            "`unshare --pid --fork --mount-proc true` failed: {s}"
        )),
        Err(e) => Some(format!("no unshare: {e}")),
    }
}

/// The process whose parent is `ppid` (the role under `unshare --fork`), as
/// a pid of our namespace.
fn child_of(ppid: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let Some(rest) = stat.rsplit(") ").next() else {
                continue;
            };
            if rest.split(' ').nth(1) == Some(&ppid.to_string()) {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "no child of {ppid}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal_and_wait(pid: u32, sig: libc::c_int, state: Option<char>) {
    // SAFETY: signalling a process of this test (pid found just above).
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0);
    let Some(state) = state else { return };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.rsplit(") ").next().and_then(|r| r.chars().next()) == Some(state) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} never reached state {state}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn spawn_in_ns(role: &str, area: &std::path::Path, extra: &[(&str, String)]) -> ChildProc {
    let mut envs = vec![
        ("NS_ROLE", role.to_string()),
        (AREA_ENV, area.to_str().unwrap().to_string()),
    ];
    envs.extend(extra.iter().cloned());
    ChildProc::spawn("in_new_pid_ns", role, &envs)
}

/// `ready <pid> <pid ns>`: the role is pid 1 of a namespace other than ours.
fn expect_ready_in_other_ns(c: &mut ChildProc) {
    let msg = c.recv(READY_TIMEOUT);
    let f: Vec<&str> = msg.split(' ').collect();
    assert_eq!(f[0], "ready", "{msg}");
    assert_eq!(f[1], "1", "the role is pid 1 of its namespace: {msg}");
    assert_ne!(
        f[2].parse::<u64>().unwrap(),
        pid_ns(),
        "another pid namespace"
    );
}

#[test]
fn writers_in_other_pid_namespaces_stay_exact_with_a_stopped_holder_and_a_killed_writer() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED writers_in_other_pid_namespaces...: {why}");
        return;
    }
    let dir = TempDir::new("pidns");
    let path = dir.join("area.promshm");
    let go: PathBuf = dir.join("go");
    let area = Area::create(&path, &options()).unwrap();
    let reg = area.registry();
    reg.counter(Opts::new("ns_host_before", "Host family before."))
        .unwrap();

    // The writer (namespace 2) and the holder (namespace 1).
    let mut writer = spawn_in_ns("ns_writer", &path, &[]);
    expect_ready_in_other_ns(&mut writer);
    let mut holder = spawn_in_ns(
        "ns_holder",
        &path,
        &[("NS_GO", go.to_str().unwrap().into())],
    );
    expect_ready_in_other_ns(&mut holder);
    holder.expect("locked", READY_TIMEOUT);
    let holder_pid = child_of(holder.pid());
    signal_and_wait(holder_pid, libc::SIGSTOP, Some('T'));

    // A live holder (stopped, pid 1 of another namespace) is never taken
    // over: a registration waits and fails with a clear error.
    let t = Instant::now();
    let r = reg.counter(Opts::new(
        "ns_host_during",
        "Host family while the lock is held.",
    ));
    let waited = t.elapsed();
    match &r {
        Err(Error::LockTimeout(pid)) => {
            assert_eq!(*pid, 1, "the holder is pid 1 of its namespace");
            let msg = r.as_ref().err().unwrap().to_string();
            assert!(msg.contains("area lock"), "{msg}");
        }
        other => panic!(
            "registration while a live process holds the lock: {:?} after {waited:?}",
            other.as_ref().map(|_| "succeeded")
        ),
    }
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(30),
        "waited {waited:?}"
    );
    assert_eq!(area.stats().locks_recovered, 0, "nothing taken over");

    // The writer dies mid-updates (SIGKILL from here, its parent namespace).
    let writer_pid = child_of(writer.pid());
    signal_and_wait(writer_pid, libc::SIGKILL, None);
    let st = writer.wait(Duration::from_secs(20));
    assert!(!st.success(), "the writer was killed: {st}");

    // SIGCONT: the holder goes on, releases, registers and counts.
    signal_and_wait(holder_pid, libc::SIGCONT, None);
    std::fs::write(&go, b"go").unwrap();
    holder.expect("done", READY_TIMEOUT);
    holder.expect_success(Duration::from_secs(20));

    // Now registration works, and the dead writer (and the holder, which
    // exited) are reaped by the kernel-lock rule, from this namespace.
    reg.counter(Opts::new("ns_host_after", "Host family after."))
        .unwrap();
    let reaped = area.reap_dead_workers().unwrap();
    assert_eq!(
        reaped, 2,
        "the killed writer and the exited holder are reaped"
    );
    assert!(area.workers().iter().all(|w| w.pid == std::process::id()));

    let (s, stats) = scrape(&area);
    assert_eq!(stats.bad_records, 0);
    assert_eq!(s.value("ns_holder_ops_total", &[("n", "before")]), 5.0);
    assert_eq!(s.value("ns_holder_ops_total", &[("n", "after")]), 11.0);
    assert_eq!(s.value("ns_writer_ops_total", &[]), KILLED_OPS as f64);
    assert_eq!(
        s.value("ns_writer_summed", &[]),
        7.0,
        "sum keeps a dead worker's value"
    );
    assert_eq!(
        s.get("ns_writer_live", &[]).unwrap_or(0.0),
        0.0,
        "livesum drops it"
    );
    assert!(s.get("ns_writer_spin_total", &[]).unwrap_or(0.0) >= 0.0);
    for fam in ["ns_host_before_total", "ns_host_after_total"] {
        assert_eq!(s.value(fam, &[]), 0.0, "{fam} registered");
    }
    assert!(s.get("ns_host_during_total", &[]).is_none());
    let st = area.stats();
    assert_eq!(st.locks_recovered, 0);
    assert!(st.lock_timeouts >= 1);
}
