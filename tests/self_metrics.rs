//! promshm's own counters reach the page as `promshm_*` self-metrics with
//! exact values: area lock acquisitions and timeouts, and gauge updates
//! dropped while attaching backs off (docs/FORMAT.md §5).
//!
//! Another process (a re-execution of this test binary, see `common`) holds
//! the area lock the way docs/FORMAT.md §4 defines it: an OFD write lock on
//! byte 2^40 of the area file.

mod common;

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;
use promshm::{Area, AreaOptions, GaugeMode, Opts};

/// Byte of the area file whose OFD write lock is the area lock (FORMAT.md §4).
const LOCK_BYTE: i64 = 1 << 40;
const TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn child_entry() {
    child_main(|role| match role {
        "area_lock_holder" => area_lock_holder(),
        other => panic!("unknown role {other:?}"),
    });
}

/// Hold the area lock of the area until the parent closes our stdin.
fn area_lock_holder() {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(env_area())
        .expect("open the area file");
    // SAFETY: an all-zero `flock` is a valid value; its fields are set below.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = LOCK_BYTE as libc::off_t;
    lock.l_len = 1;
    // SAFETY: a valid descriptor and a valid `flock` for F_OFD_SETLK.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lock) };
    assert_eq!(r, 0, "F_OFD_SETLK: {}", std::io::Error::last_os_error());
    send("locked");
    wait_for_parent();
}

/// The HELP text of `name` on the page.
fn help_of<'a>(page: &'a str, name: &str) -> &'a str {
    let prefix = format!("# HELP {name} ");
    page.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no HELP for {name} in:\n{page}"))
}

fn page_of(area: &Area) -> (String, Scrape) {
    let mut out = Vec::new();
    area.render(&mut out, promshm::Format::Prometheus)
        .expect("render");
    let text = String::from_utf8(out).expect("utf-8");
    let scrape = Scrape::parse(&text);
    (text, scrape)
}

#[test]
fn lock_statistics_and_dropped_updates_are_exact_self_metrics() {
    let dir = TempDir::new("self-metrics");
    let path = dir.join("a.promshm");
    let area = Area::create(&path, &AreaOptions::with_pages(64)).unwrap();
    let gauge = area
        .registry()
        .gauge(Opts::new("queue_depth", "Jobs waiting."), GaugeMode::Sum)
        .unwrap()
        .get()
        .unwrap();
    assert!(
        area.workers().is_empty(),
        "no slot before the first gauge update"
    );
    let before = area.stats();
    assert!(before.locks_taken >= 1, "the registration took the lock");
    assert_eq!(before.lock_timeouts, 0);
    assert_eq!(before.dropped_updates, 0);

    let mut holder = ChildProc::spawn(
        "area_lock_holder",
        "area lock holder",
        &[(AREA_ENV, path.display().to_string())],
    );
    holder.expect("locked", TIMEOUT);

    // The first update tries to attach, waits briefly for the lock, gives up
    // and drops the update; the second one finds attaching backing off.
    let start = Instant::now();
    gauge.set(1.0);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "a lazy attach waits briefly"
    );
    gauge.set(2.0);
    let held = area.stats();
    assert_eq!(held.lock_timeouts, 1, "{held:?}");
    assert_eq!(held.dropped_updates, 2, "{held:?}");
    assert_eq!(held.locks_taken, before.locks_taken, "{held:?}");

    let (text, page) = page_of(&area);
    let after_render = area.stats();
    assert_eq!(page.value("promshm_area_lock_timeouts_total", &[]), 1.0);
    assert_eq!(page.value("promshm_updates_dropped_total", &[]), 2.0);
    assert_eq!(
        page.value("promshm_area_lock_acquisitions_total", &[]),
        after_render.locks_taken as f64
    );
    assert_eq!(
        page.value("queue_depth", &[]),
        0.0,
        "both updates were dropped"
    );
    assert!(
        help_of(&text, "promshm_updates_dropped_total").contains("attaching was backing off"),
        "{text}"
    );
    assert!(help_of(&text, "promshm_area_lock_timeouts_total").contains("area lock"));
    assert!(help_of(&text, "promshm_area_lock_acquisitions_total").contains("area lock"));

    holder.release();
    holder.expect_success(TIMEOUT);
    // Past the attach backoff, the next update attaches: one more lock.
    let deadline = Instant::now() + TIMEOUT;
    let taken = area.stats().locks_taken;
    loop {
        gauge.set(3.0);
        if !area.workers().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never attached: {:?}",
            area.stats()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let attached = area.stats();
    assert_eq!(attached.locks_taken, taken + 1, "{attached:?}");
    assert_eq!(attached.lock_timeouts, 1, "{attached:?}");
    let (_, page) = page_of(&area);
    assert_eq!(page.value("queue_depth", &[]), 3.0);
    assert_eq!(
        page.value("promshm_area_lock_acquisitions_total", &[]),
        area.stats().locks_taken as f64
    );
    assert_eq!(page.value("promshm_area_lock_timeouts_total", &[]), 1.0);
    assert_eq!(
        page.value("promshm_updates_dropped_total", &[]),
        attached.dropped_updates as f64
    );
}
