//! Area files of another user, or writable by others: every subcommand
//! refuses them with one line naming the file, the reason and the option
//! that allows it (exit 6), and reads them when allowed (`--allow-owner`
//! by uid or name, `--allow-group-write`, `--allow-other-write`, or their
//! environment variables). A file lock held too long: exit 3, in bounded
//! time. Two real uids: this test runs as root (as CI does) and creates
//! areas as uid 65534 (`nobody`) in a child run through `setpriv`.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The other user: `nobody` on Debian and most distributions.
const OTHER_UID: u32 = 65534;

/// Environment variable that turns the test binary into an area creator.
const CREATOR_ENV: &str = "PROMSHM_CLI_TEST_CREATOR";

/// The exit code for a refused file (README, `--help`).
const REFUSED: i32 = 6;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Exited by itself with `code`, one line on stderr containing every needle.
fn assert_failed(o: &Output, code: i32, needles: &[&str]) {
    assert_eq!(o.status.signal(), None, "killed by a signal: {o:?}");
    assert_eq!(o.status.code(), Some(code), "{o:?}");
    let err = stderr(o);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with("promshm: "), "{err:?}");
    for n in needles {
        assert!(err.contains(n), "{err:?} lacks {n:?}");
    }
}

/// Whether this test can switch users (root, with setpriv); on CI it must.
fn can_switch_users() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "two-user tests run as root on CI"
        );
        eprintln!("SKIPPED: not root");
        return false;
    }
    have("setpriv")
}

/// Run `promshm ARGS` with extra environment variables, bounded.
fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promshm");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("promshm {args:?} did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// The creator process's body, if this process is one.
#[test]
fn creator_entry() {
    if let Ok(path) = std::env::var(CREATOR_ENV) {
        let _area = populate(Path::new(&path));
        std::process::exit(0);
    }
}

/// A directory that uid 65534 may write, with an area it created in it.
fn area_of_other_user(tag: &str) -> (TempDir, std::path::PathBuf) {
    let dir = TempDir::new(tag);
    std::os::unix::fs::chown(&dir.0, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
    let area = dir.path("other.promshm");
    // A copy of this test binary that the other user can run wherever the
    // build directory is (a checkout under /root is not theirs to enter).
    let exe = dir.path("creator");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    chmod(&exe, 0o755);
    let o = Command::new("setpriv")
        .arg(format!("--reuid={OTHER_UID}"))
        .arg(format!("--regid={OTHER_UID}"))
        .arg("--clear-groups")
        .arg(&exe)
        .args([
            "--exact",
            "creator_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CREATOR_ENV, &area)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "creator as uid {OTHER_UID}: {o:?}");
    let meta = std::fs::metadata(&area).unwrap();
    assert_eq!(meta.uid(), OTHER_UID);
    assert_eq!(meta.mode() & 0o077, 0, "created {:o}", meta.mode());
    (dir, area)
}

#[test]
fn another_users_area_is_refused_unless_its_owner_is_allowed() {
    if !can_switch_users() {
        return;
    }
    let (_dir, area) = area_of_other_user("owner");
    let a = area.to_str().unwrap();
    let needles = [
        a,
        "owned by uid 65534, not by you (uid 0)",
        "pass --allow-owner 65534 to read it",
    ];

    // Refused by every kind of subcommand, serve included, before any work.
    for args in [
        vec!["inspect", a],
        vec!["dump", a],
        vec!["serve", a, "--listen", "127.0.0.1:0"],
        vec!["textfile", a, "/nonexistent/x.prom"],
    ] {
        let o = run(&args);
        assert_failed(&o, REFUSED, &needles);
    }
    // Another owner allowed is not this one.
    assert_failed(
        &run(&["inspect", a, "--allow-owner", "1"]),
        REFUSED,
        &needles,
    );

    // Allowed by uid, by name, before or after the subcommand, or by the
    // environment (a comma-separated list).
    let expect_jobs = "app_jobs_total{kind=\"a\"} 4000\n";
    for o in [
        run(&["dump", a, "--allow-owner", "65534"]),
        run(&["dump", a, "--allow-owner", "nobody"]),
        run(&["--allow-owner", "nobody", "dump", a]),
        run(&["dump", a, "--allow-owner", "1", "--allow-owner", "65534"]),
        run_env(&["dump", a], &[("PROMSHM_ALLOW_OWNER", "1,nobody")]),
    ] {
        assert!(o.status.success(), "{o:?}");
        assert!(stdout(&o).contains(expect_jobs), "{}", stdout(&o));
    }
    let o = run(&["inspect", a, "--allow-owner", "nobody", "--json"]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.is_object(), "{v}");

    // A user that does not exist is a usage error.
    let o = run(&["inspect", a, "--allow-owner", "no-such-user-promshm"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("no user named"), "{o:?}");

    // serve, allowed: /metrics has the other user's series.
    let (_serve, addr) = start_serve(&area, &["--allow-owner", "nobody"]);
    let r = http_get(addr, "/metrics", &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(expect_jobs), "{}", r.text());
}

/// Set `path`'s mode.
fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn writable_by_others_is_refused_unless_allowed() {
    let dir = TempDir::new("modes");
    let area = dir.path("a.promshm");
    let _keep = populate(&area);
    let a = area.to_str().unwrap();

    chmod(&area, 0o660);
    let group = ["its group may write it (mode 0660)", "--allow-group-write"];
    assert_failed(&run(&["inspect", a]), REFUSED, &group);
    assert_failed(&run(&["dump", a]), REFUSED, &group);
    assert_failed(
        &run(&["serve", a, "--listen", "127.0.0.1:0"]),
        REFUSED,
        &group,
    );
    // The other option does not allow it.
    assert_failed(
        &run(&["inspect", a, "--allow-other-write"]),
        REFUSED,
        &group,
    );
    assert!(run(&["inspect", a, "--allow-group-write"]).status.success());
    let o = run_env(&["dump", a], &[("PROMSHM_ALLOW_GROUP_WRITE", "true")]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("app_jobs_total"), "{o:?}");

    chmod(&area, 0o606);
    let other = ["every user may write it (mode 0606)", "--allow-other-write"];
    assert_failed(&run(&["dump", a]), REFUSED, &other);
    assert_failed(&run(&["dump", a, "--allow-group-write"]), REFUSED, &other);
    let o = run(&["dump", a, "--allow-other-write"]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("app_jobs_total"), "{o:?}");

    // Both bits: both options are needed, each named in turn.
    chmod(&area, 0o666);
    assert_failed(
        &run(&["inspect", a, "--allow-other-write"]),
        REFUSED,
        &["its group may write it (mode 0666)", "--allow-group-write"],
    );
    let o = run(&["inspect", a, "--allow-other-write", "--allow-group-write"]);
    assert!(o.status.success(), "{o:?}");

    // serve, allowed.
    chmod(&area, 0o660);
    let (_serve, addr) = start_serve(&area, &["--allow-group-write"]);
    let r = http_get(addr, "/metrics", &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn another_users_group_writable_area_needs_both_options() {
    if !can_switch_users() {
        return;
    }
    let (_dir, area) = area_of_other_user("owner-group");
    chmod(&area, 0o620);
    let a = area.to_str().unwrap();
    assert_failed(
        &run(&["inspect", a, "--allow-group-write"]),
        REFUSED,
        &["owned by uid 65534", "--allow-owner 65534"],
    );
    assert_failed(
        &run(&["inspect", a, "--allow-owner", "nobody"]),
        REFUSED,
        &["its group may write it (mode 0620)", "--allow-group-write"],
    );
    let o = run(&[
        "inspect",
        a,
        "--allow-owner",
        "nobody",
        "--allow-group-write",
    ]);
    assert!(o.status.success(), "{o:?}");
}

#[test]
fn a_file_lock_held_too_long_exits_3_in_bounded_time() {
    let dir = TempDir::new("flock");
    let area = dir.path("a.promshm");
    let _keep = populate(&area);
    let a = area.to_str().unwrap();
    // Another process initialising the file holds its exclusive flock (a
    // descriptor of our own is another open file description: it conflicts).
    let holder = std::fs::File::open(&area).unwrap();
    // SAFETY: a valid descriptor owned by `holder`.
    assert_eq!(
        unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    for args in [vec!["inspect", a], vec!["dump", a]] {
        let t = Instant::now();
        let o = run(&args);
        let took = t.elapsed();
        assert_failed(&o, 3, &[a, "timed out after", "file lock"]);
        assert!(took < Duration::from_secs(6), "took {took:?}");
    }
    drop(holder);
    assert!(run(&["inspect", a]).status.success());
}

/// One GET, or None if it does not answer within `timeout`.
fn get_within(addr: std::net::SocketAddr, path: &str, timeout: Duration) -> Option<Resp> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = path.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(http_get(addr, &path, &[]));
    });
    rx.recv_timeout(timeout).ok().and_then(|r| r.ok())
}

/// `serve` reopens a replaced file with the same checks: another user's
/// area put in its place is never served (503 naming the reason, at once,
/// /healthz still answers); the application's own area back is served again.
#[test]
fn serve_never_switches_to_another_users_file() {
    if !can_switch_users() {
        return;
    }
    let (_other_dir, forged) = area_of_other_user("forged");
    let dir = TempDir::new("replaced");
    let built = dir.path("built.promshm");
    drop(populate(&built));
    let path = dir.path("a.promshm");
    std::fs::copy(&built, &path).unwrap();
    let (_serve, addr) = start_serve(&path, &[]);
    let ok = get_within(addr, "/metrics", Duration::from_secs(10)).unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text());

    // Another user's file takes the path (same file system: a rename).
    std::fs::rename(&forged, &path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().uid(), OTHER_UID);
    for _ in 0..3 {
        let t = Instant::now();
        let r = get_within(addr, "/metrics", Duration::from_secs(5))
            .expect("an answer while another user's file is there");
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(
            r.text().contains("owned by uid 65534") && r.text().contains("--allow-owner 65534"),
            "{}",
            r.text()
        );
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let h = get_within(addr, "/healthz", Duration::from_secs(2)).expect("/healthz");
        assert_eq!(h.status, 200);
    }

    // The application's own area again.
    let fresh = dir.path("fresh.promshm");
    std::fs::copy(&built, &fresh).unwrap();
    std::fs::rename(&fresh, &path).unwrap();
    let r = wait_for(Duration::from_secs(10), "a page after the swap", || {
        get_within(addr, "/metrics", Duration::from_secs(5)).filter(|r| r.status == 200)
    });
    assert!(
        r.text().contains("app_jobs_total{kind=\"a\"} 4000\n"),
        "{}",
        r.text()
    );
}

/// A symbolic link at the path (to a sound area of our own) is refused at
/// once by every subcommand, saying so (it used to be "Too many levels of
/// symbolic links", exit 3).
#[test]
fn a_symbolic_link_is_refused_saying_so() {
    let dir = TempDir::new("symlink");
    let area = dir.path("a.promshm");
    let _keep = populate(&area);
    let link = dir.path("link.promshm");
    std::os::unix::fs::symlink(&area, &link).unwrap();
    let l = link.to_str().unwrap();
    for args in [
        vec!["inspect", l],
        vec!["dump", l],
        vec!["serve", l, "--listen", "127.0.0.1:0"],
    ] {
        assert_failed(
            &run(&args),
            4,
            &[l, "is a symbolic link, not a regular file"],
        );
    }
}
