//! Area files that cannot be trusted (issue 9, items 8, 10, 11 and 14):
//! files planted by another local user (a real second uid: a child that
//! drops root with setuid), files that are not regular (FIFO, socket,
//! device, directory, symbolic link), a file lock held by another process,
//! and openers racing the creator of a file.
//!
//! Every call that could block runs in a thread with a bound, so a
//! regression fails the test instead of hanging it.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use promshm::{Area, AreaOptions, OpenMode, Opts};

/// The second local user: `nobody`.
const OTHER_UID: u32 = 65534;
/// Bound on one call that must not block.
const PROMPT: Duration = Duration::from_secs(3);

#[test]
fn child_entry() {
    child_main(|role| match role {
        "planter" => planter_child(),
        "flock_holder" => flock_holder_child(),
        other => panic!("unknown role {other:?}"),
    });
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Run `f` in a thread; its result, or a failure if it takes longer than `bound`.
fn within<T: Send + 'static>(
    what: &str,
    bound: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(bound)
        .unwrap_or_else(|_| panic!("{what} did not return within {bound:?} (it blocks)"))
}

/// Every way of getting at `path` (create, open read-write, open read-only)
/// must be refused promptly with an error that names the file and contains
/// `why`.
fn assert_refused(path: &Path, why: &str) {
    for how in ["create", "open rw", "open ro"] {
        let p = path.to_path_buf();
        let r = within(&format!("{how} {}", path.display()), PROMPT, move || {
            match how {
                "create" => Area::create(&p, &AreaOptions::with_pages(8)),
                "open rw" => Area::open(&p, OpenMode::ReadWrite),
                _ => Area::open(&p, OpenMode::ReadOnly),
            }
            .map(|a| a.pages())
        });
        match r {
            Ok(pages) => panic!(
                "{how} {} was accepted ({pages} pages); expected a refusal ({why})",
                path.display()
            ),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("refusing") && msg.contains(&*path.to_string_lossy()),
                    "{how}: not a refusal naming the file: {msg}"
                );
                assert!(msg.contains(why), "{how}: reason {why:?} missing: {msg}");
            }
        }
    }
}

fn mkfifo(path: &Path, mode: u32) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), mode) }, 0, "mkfifo");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

// ---- another local user ------------------------------------------------------------

/// The attacker: drops to `OTHER_UID`, then plants in `PROMSHM_DIR` (a
/// sticky, world-writable directory like /dev/shm) a valid area readable
/// and writable by everyone, a junk file, a FIFO and a symbolic link.
fn planter_child() {
    let dir = PathBuf::from(env_str("PROMSHM_DIR"));
    // SAFETY: plain syscalls in a single-threaded child role.
    unsafe {
        assert_eq!(libc::setgid(OTHER_UID), 0, "setgid");
        assert_eq!(libc::setuid(OTHER_UID), 0, "setuid");
    }
    let valid = dir.join("valid.area");
    let area = Area::create(&valid, &AreaOptions::with_pages(8)).expect("attacker's area");
    area.registry()
        .counter(Opts::new("planted", "Planted by another user.").eager(true))
        .unwrap()
        .get()
        .unwrap()
        .inc();
    drop(area);
    std::fs::set_permissions(&valid, std::fs::Permissions::from_mode(0o666)).unwrap();
    let junk = dir.join("junk.area");
    std::fs::write(&junk, vec![0x5a; 3 * 4096]).unwrap();
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o666)).unwrap();
    mkfifo(&dir.join("fifo.area"), 0o666);
    std::os::unix::fs::symlink(dir.join("victim-target.area"), dir.join("link.area")).unwrap();
    send("planted");
}

/// A directory removed (with its contents) when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn files_planted_by_another_user_are_refused() {
    if !is_root() {
        eprintln!("skipped: needs root to act as a second user");
        return;
    }
    // In /tmp itself: $TMPDIR may be private to root, and the other user
    // must reach the shared directory.
    let tmp = RemoveOnDrop(PathBuf::from(format!(
        "/tmp/promshm-planted-{}",
        std::process::id()
    )));
    let _ = std::fs::remove_dir_all(&tmp.0);
    std::fs::create_dir(&tmp.0).unwrap();
    std::fs::set_permissions(&tmp.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let shared = tmp.0.join("shm");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = run_child(
        "planter",
        "planter",
        &[("PROMSHM_DIR", shared.to_str().unwrap().to_string())],
        Duration::from_secs(30),
    );
    assert_eq!(out, ["planted"]);
    let valid = shared.join("valid.area");
    assert_eq!(std::fs::metadata(&valid).unwrap().uid(), OTHER_UID);
    let before = std::fs::read(&valid).unwrap();
    let junk_before = std::fs::read(shared.join("junk.area")).unwrap();

    assert_refused(&valid, &format!("owned by uid {OTHER_UID}"));
    assert_refused(
        &shared.join("junk.area"),
        &format!("owned by uid {OTHER_UID}"),
    );
    assert_refused(&shared.join("fifo.area"), "FIFO");
    assert_refused(&shared.join("link.area"), "symbolic link");
    // Nothing was written into the planted files, nothing created through the link.
    assert_eq!(std::fs::read(&valid).unwrap(), before);
    assert_eq!(
        std::fs::read(shared.join("junk.area")).unwrap(),
        junk_before
    );
    assert!(!shared.join("victim-target.area").exists());

    // The victim's own file, but writable by others: refused too.
    let own = shared.join("own.area");
    drop(Area::create(&own, &AreaOptions::with_pages(8)).unwrap());
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_refused(&own, "every user may write it");
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o620)).unwrap();
    assert_refused(&own, "its group may write it");
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o600)).unwrap();
    let area = Area::open(&own, OpenMode::ReadWrite).unwrap();
    area.registry()
        .counter(Opts::new("own", "Own."))
        .unwrap()
        .get()
        .unwrap()
        .inc();
}

// ---- files that are not regular -------------------------------------------------------

#[test]
fn files_that_are_not_regular_are_refused_without_blocking() {
    let tmp = TempDir::new("notregular");
    let fifo = tmp.join("fifo.area");
    mkfifo(&fifo, 0o600);
    assert_refused(&fifo, "FIFO");
    let dir = tmp.join("dir.area");
    std::fs::create_dir(&dir).unwrap();
    assert_refused(&dir, "directory");
    let sock = tmp.join("sock.area");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    assert_refused(&sock, "socket");
    if is_root() {
        // A device owned by us (root): not a regular file.
        assert_refused(Path::new("/dev/null"), "character device");
    }
    let link = tmp.join("link.area");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    assert_refused(&link, "symbolic link");
}

// ---- a file lock held by another process ----------------------------------------------

/// Holds an `flock` (`PROMSHM_FLOCK` = `ex` or `sh`) on the area until released.
fn flock_holder_child() {
    let f = std::fs::File::open(env_area()).unwrap();
    let op = match env_str("PROMSHM_FLOCK").as_str() {
        "ex" => libc::LOCK_EX,
        _ => libc::LOCK_SH,
    };
    // SAFETY: a valid fd.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), op) },
        0
    );
    send("locked");
    wait_for_parent();
}

fn hold_flock(path: &Path, op: &str) -> ChildProc {
    let mut c = ChildProc::spawn(
        "flock_holder",
        &format!("flock-{op}"),
        &[
            (AREA_ENV, path.to_str().unwrap().to_string()),
            ("PROMSHM_FLOCK", op.to_string()),
        ],
    );
    c.expect("locked", Duration::from_secs(20));
    c
}

#[test]
fn a_held_file_lock_gives_a_timeout_error() {
    let tmp = TempDir::new("flock");
    let path = tmp.join("held.area");
    drop(Area::create(&path, &AreaOptions::with_pages(8)).unwrap());
    // Any process that can read the file can hold a shared flock: creating
    // (which takes it exclusively) must give up within the bound (10 s).
    let mut reader = hold_flock(&path, "sh");
    let p = path.clone();
    let r = within(
        "create under a held flock",
        Duration::from_secs(15),
        move || Area::create(&p, &AreaOptions::with_pages(8)).map(|a| a.pages()),
    );
    let msg = r
        .expect_err("create succeeded under a held flock")
        .to_string();
    assert!(
        msg.contains("timed out") && msg.contains(&*path.to_string_lossy()),
        "{msg}"
    );
    reader.release();
    reader.expect_success(Duration::from_secs(10));
    // An exclusive holder (a creator that stopped while initialising) bounds an open.
    let mut writer = hold_flock(&path, "ex");
    let p = path.clone();
    let r = within(
        "open under a held flock",
        Duration::from_secs(15),
        move || Area::open(&p, OpenMode::ReadOnly).map(|a| a.pages()),
    );
    let msg = r
        .expect_err("open succeeded under a held flock")
        .to_string();
    assert!(msg.contains("timed out"), "{msg}");
    writer.release();
    writer.expect_success(Duration::from_secs(10));
    // Released: both work again.
    assert_eq!(Area::open(&path, OpenMode::ReadOnly).unwrap().pages(), 8);
    assert_eq!(
        Area::create(&path, &AreaOptions::with_pages(8))
            .unwrap()
            .pages(),
        8
    );
}

// ---- open during create ---------------------------------------------------------------

#[test]
fn open_racing_create_waits_for_the_creator() {
    let tmp = TempDir::new("openrace");
    let trials = std::env::var("PROMSHM_OPEN_RACE_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000u32);
    let mut failures = Vec::new();
    for i in 0..trials {
        let path = tmp.join(&format!("race-{i}.area"));
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let (p, b) = (path.clone(), barrier.clone());
        let opener = std::thread::spawn(move || {
            b.wait();
            // Separate open()s: spin until the file appears, then open it once.
            let t = std::time::Instant::now();
            loop {
                match Area::open(&p, OpenMode::ReadOnly) {
                    Err(promshm::Error::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound
                            && t.elapsed() < Duration::from_secs(10) =>
                    {
                        std::hint::spin_loop()
                    }
                    r => return r.map(|a| a.pages()),
                }
            }
        });
        barrier.wait();
        let created = Area::create(&path, &AreaOptions::with_pages(4)).map(|a| a.pages());
        let opened = opener.join().unwrap();
        assert_eq!(created.unwrap(), 4);
        match opened {
            Ok(4) => {}
            other => failures.push(format!("trial {i}: {other:?}")),
        }
        let _ = std::fs::remove_file(&path);
    }
    assert!(
        failures.is_empty(),
        "{} of {trials} openers failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

// ---- the options that widen the checks -----------------------------------------------

#[test]
fn file_options_allow_owners_group_write_and_bound_the_wait() {
    use promshm::{Error, FileOptions};
    let tmp = TempDir::new("fileopts");
    let path = tmp.join("opts.area");
    drop(Area::create(&path, &AreaOptions::with_pages(8)).unwrap());

    // Group write: refused by default, accepted when asked.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).unwrap();
    assert!(matches!(
        Area::open(&path, OpenMode::ReadWrite),
        Err(Error::UnsafeFile { .. })
    ));
    let group = FileOptions::new().allow_group_write(true);
    assert_eq!(
        Area::open_with(&path, OpenMode::ReadWrite, &group)
            .unwrap()
            .pages(),
        8
    );
    assert!(matches!(
        Area::create_with(&path, &AreaOptions::with_pages(8), &FileOptions::new()),
        Err(Error::UnsafeFile { .. })
    ));
    assert_eq!(
        Area::create_with(&path, &AreaOptions::with_pages(8), &group)
            .unwrap()
            .pages(),
        8
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(Area::open_with(&path, OpenMode::ReadOnly, &group).is_err());
    let anyone = group.clone().allow_other_write(true);
    assert!(Area::open_with(&path, OpenMode::ReadOnly, &anyone).is_ok());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Another owner: refused unless allowed by uid.
    if is_root() {
        std::os::unix::fs::chown(&path, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
        match Area::open(&path, OpenMode::ReadOnly) {
            Err(Error::UnsafeFile { path: p, reason }) => {
                assert_eq!(p, path);
                assert!(reason.contains("owned by uid 65534"), "{reason}");
            }
            other => panic!("another owner: {other:?}"),
        }
        let other = FileOptions::new().allow_owner(OTHER_UID);
        assert_eq!(
            Area::open_with(&path, OpenMode::ReadOnly, &other)
                .unwrap()
                .pages(),
            8
        );
        std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
    }

    // A short bound on a held flock.
    let mut holder = hold_flock(&path, "ex");
    let short = FileOptions::new().timeout(Duration::from_millis(300));
    let t = std::time::Instant::now();
    let p = path.clone();
    let r = within("open_with a short timeout", PROMPT, move || {
        Area::open_with(&p, OpenMode::ReadWrite, &short).map(|a| a.pages())
    });
    let waited = t.elapsed();
    match r {
        Err(Error::FileLockTimeout { path: p, waited_ms }) => {
            assert_eq!(p, path);
            assert!(waited_ms >= 300, "{waited_ms}");
        }
        other => panic!("expected FileLockTimeout, got {other:?}"),
    }
    assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(2));
    holder.release();
    holder.expect_success(Duration::from_secs(10));
}
