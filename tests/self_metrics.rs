//! promshm's own counters reach the page as `promshm_*` self-metrics with
//! exact values: area lock acquisitions and timeouts, gauge updates dropped
//! while attaching backs off (docs/FORMAT.md §5), and registrations refused
//! because of a name clash (FORMAT.md §7, "Names").
//!
//! Another process (a re-execution of this test binary, see `common`) holds
//! the area lock the way docs/FORMAT.md §4 defines it: an OFD write lock on
//! byte 2^40 of the area file.

mod common;

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;
use promshm::{Area, AreaOptions, Error, GaugeMode, OpenMode, Opts, SummaryOpts};

/// Byte of the area file whose OFD write lock is the area lock (FORMAT.md §4).
const LOCK_BYTE: i64 = 1 << 40;
const TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn child_entry() {
    child_main(|role| match role {
        "area_lock_holder" => area_lock_holder(),
        "clashing_registrar" => clashing_registrar(),
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

/// Register families whose rendered names clash with the summary `s` the
/// parent registered: each is refused with `NameTaken`.
fn clashing_registrar() {
    let area = Area::open(env_area(), OpenMode::ReadWrite).expect("open the area");
    let reg = area.registry();
    match reg.counter(Opts::new("s_count", "Clashes with s_count.")) {
        Err(Error::NameTaken { .. }) => {}
        other => panic!("counter s_count: {:?}", other.map(|_| ())),
    }
    match reg.info(Opts::new("s_sum", "Clashes with s_sum.")) {
        Err(Error::NameTaken { .. }) => {}
        other => panic!("info s_sum: {:?}", other.map(|_| ())),
    }
    send("refused 2");
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

#[test]
fn registrations_refused_for_a_name_clash_are_counted_across_processes() {
    let dir = TempDir::new("self-metrics-clash");
    let path = dir.join("a.promshm");
    let area = Area::create(&path, &AreaOptions::with_pages(64)).unwrap();
    let reg = area.registry();
    let summary = || {
        reg.summary(
            Opts::new("s", "A summary."),
            &SummaryOpts::quantiles(&[0.5]),
        )
    };
    summary().unwrap();
    assert_eq!(area.stats().name_clashes, 0);

    // Another process: two refusals.
    let mut child = ChildProc::spawn(
        "clashing_registrar",
        "clashing registrar",
        &[(AREA_ENV, path.display().to_string())],
    );
    child.expect("refused 2", TIMEOUT);
    child.release();
    child.expect_success(TIMEOUT);
    assert_eq!(area.stats().name_clashes, 2);

    // This process: one more refusal. Other refusals are not clashes: a
    // reserved suffix (an invalid name), another shape under the same name;
    // and finding the existing family again is no refusal.
    assert!(matches!(
        reg.histogram(Opts::new("s_created", "Clashes with s_created."), &[1.0]),
        Err(Error::NameTaken { .. })
    ));
    assert!(reg
        .gauge(Opts::new("depth_count", "Reserved suffix."), GaugeMode::Sum)
        .is_err());
    assert!(matches!(
        reg.counter(Opts::new("s", "Same name, another type.")),
        Err(Error::ShapeMismatch { .. })
    ));
    summary().unwrap();
    assert_eq!(area.stats().name_clashes, 3, "{:?}", area.stats());

    let (text, page) = page_of(&area);
    assert_eq!(
        page.value("promshm_registrations_name_taken_total", &[]),
        3.0
    );
    assert!(help_of(&text, "promshm_registrations_name_taken_total").contains("another family"));
    // The clashing names never reached the page.
    assert!(page.get("s_count_total", &[]).is_none(), "{text}");
    assert!(!text.contains("s_sum_info"), "{text}");
}
