//! Unregistering families (issue 16, "families nobody renders any more"):
//! `Registry::unregister` frees a family's series and its record, in every
//! process, so that a service registering per-tenant or per-job families
//! and dropping them runs indefinitely in a fixed area; the name is free
//! for a new registration of another type; handles to the family and its
//! series, in any process, update nothing; and processes SIGKILLed in the
//! middle of the churn leave no record both free and live (checked with
//! the independent reader, `tools/promshm_read.py --check-free`).
//!
//! Processes are re-executions of this test binary (see `common`).
//! `PROMSHM_UNREG_CYCLES` sets the total cycles of the churn test (default
//! 100,000, over 4 processes).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use promshm::{Area, AreaOptions, Error, Format, GaugeMode, OpenMode, Opts};

/// 256 pages: the 1 MiB area of the issue.
const PAGES: u32 = 256;
const DEFAULT_TOTAL_CYCLES: u64 = 100_000;
/// A stale handle's increment: large enough to be recognised anywhere.
const STALE: f64 = 1_000_000.0;

#[test]
fn child_entry() {
    child_main(|role| match role {
        "churn" => churn(),
        "holder" => holder(),
        other => panic!("unknown role {other:?}"),
    });
}

fn total_cycles() -> u64 {
    std::env::var("PROMSHM_UNREG_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_TOTAL_CYCLES)
}

/// One churn worker: `CHURN_CYCLES` cycles of: register family `u<w>` (a
/// counter, a gauge or a histogram in turn, labelled), two series updated
/// and checked exactly, unregister it; the previous cycle's handles (to a
/// family of the same name, now unregistered) write `STALE` through; a
/// counter that stays counts the cycles.
fn churn() {
    let area = Area::create(env_area(), &AreaOptions::with_pages(PAGES)).unwrap();
    let wid = env_str("CHURN_WID");
    let cycles = env_u64("CHURN_CYCLES");
    let reg = area.registry();
    let total = reg
        .counter(Opts::new("unreg_cycles", "Cycles done.").labels(&["w"]))
        .unwrap()
        .labels(&[&wid])
        .unwrap();
    let name = format!("u{wid}");
    let mut stale: Option<Box<dyn Fn()>> = None;
    for k in 0..cycles {
        let labels = ["a", "b"];
        let next: Box<dyn Fn()> = match k % 3 {
            0 => {
                let f = reg
                    .counter(Opts::new(&*name, "c").labels(&["k"]))
                    .unwrap_or_else(|e| panic!("cycle {k}: {e}"));
                let s: Vec<_> = labels.iter().map(|l| f.labels(&[l]).unwrap()).collect();
                s[0].inc();
                s[1].add(2.0).unwrap();
                promshm::flush();
                assert_eq!((s[0].get(), s[1].get()), (1.0, 2.0), "cycle {k}");
                assert!(reg.unregister(&f).unwrap(), "cycle {k}");
                assert!(!reg.unregister(&f).unwrap(), "cycle {k}: twice");
                Box::new(move || {
                    s[0].add(STALE).unwrap();
                    f.labels(&["a"]).unwrap().add(STALE).unwrap();
                    f.labels(&["c"]).unwrap().add(STALE).unwrap();
                })
            }
            1 => {
                let f = reg
                    .gauge(Opts::new(&*name, "g").labels(&["k"]), GaugeMode::Sum)
                    .unwrap_or_else(|e| panic!("cycle {k}: {e}"));
                let s: Vec<_> = labels.iter().map(|l| f.labels(&[l]).unwrap()).collect();
                s[0].set(1.0);
                s[1].set(2.0);
                promshm::flush();
                assert_eq!((s[0].get(), s[1].get()), (1.0, 2.0), "cycle {k}");
                assert!(reg.unregister(&f).unwrap(), "cycle {k}");
                Box::new(move || {
                    s[0].add(STALE);
                    f.labels(&["a"]).unwrap().set(STALE);
                })
            }
            _ => {
                let f = reg
                    .histogram(Opts::new(&*name, "h").labels(&["k"]), &[1.0, 2.0])
                    .unwrap_or_else(|e| panic!("cycle {k}: {e}"));
                let s: Vec<_> = labels.iter().map(|l| f.labels(&[l]).unwrap()).collect();
                s[0].observe(0.5).unwrap();
                s[1].observe(1.5).unwrap();
                promshm::flush();
                assert_eq!((s[0].get().0, s[1].get().0), (1, 1), "cycle {k}");
                assert!(reg.unregister(&f).unwrap(), "cycle {k}");
                Box::new(move || {
                    s[0].observe(STALE).unwrap();
                    f.labels(&["b"]).unwrap().observe(STALE).unwrap();
                })
            }
        };
        // Writes through the handles of the previous cycle's family (of
        // another type, same name), after this cycle's family took its name.
        if let Some(old) = stale.replace(next) {
            old();
        }
        total.inc();
    }
    promshm::flush();
    send(&format!("done {cycles}"));
}

/// The independent reader's check of the free lists (`--check-free`): no
/// record both in a free list and live, no damaged list, no bad record.
fn assert_free_lists_sane(area: &Path) -> String {
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/promshm_read.py"))
        .arg(area)
        .arg("--check-free")
        .output()
        .expect("run python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "promshm_read.py --check-free: {}\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(" bad_records=0"), "{text}");
    eprintln!("reader: {}", text.trim());
    text
}

/// 4 processes × a quarter of `total_cycles()` register + update +
/// unregister cycles in a 1 MiB area, each re-registering the same name
/// with another type: never AREA_FULL (every registration unwraps),
/// exact values in every cycle's series, stale writes never visible,
/// exact totals in the family that stays, nothing left of the churned ones.
#[test]
fn four_processes_unregister_and_reregister_in_a_one_mib_area() {
    let dir = TempDir::new("unreg-churn");
    let path = dir.join("area");
    let cycles = total_cycles() / 4;
    let started = Instant::now();
    let mut children: Vec<ChildProc> = (0..4)
        .map(|w| {
            ChildProc::spawn(
                "churn",
                &format!("churn{w}"),
                &[
                    (AREA_ENV, path.display().to_string()),
                    ("CHURN_WID", w.to_string()),
                    ("CHURN_CYCLES", cycles.to_string()),
                ],
            )
        })
        .collect();
    for c in &mut children {
        c.expect(&format!("done {cycles}"), Duration::from_secs(600));
        c.expect_success(Duration::from_secs(30));
    }
    let took = started.elapsed();
    eprintln!(
        "4 x {cycles} register+unregister cycles in {took:?}: {:.1} us per cycle",
        took.as_secs_f64() * 1e6 / (4 * cycles) as f64
    );
    let area = Area::open(&path, OpenMode::ReadWrite).unwrap();
    let stats = area.stats();
    eprintln!("{stats:?}");
    assert_eq!(stats.refused, 0, "{stats:?}");
    assert_eq!(stats.series, 4, "only the cycle counters stay: {stats:?}");
    assert_eq!(stats.families, 1, "{stats:?}");
    let text = assert_free_lists_sane(&path);
    assert!(text.contains(" series=4"), "{text}");
    let (scrape, render) = scrape(&area);
    assert_eq!(render.bad_records, 0);
    for w in 0..4u64 {
        let w = w.to_string();
        assert_eq!(
            scrape.value("unreg_cycles_total", &[("w", &w)]),
            cycles as f64
        );
    }
    let page = area.render_to_string(Format::Prometheus).unwrap();
    // (promshm's own metrics and the cycle totals reach a million themselves.)
    let churn_lines = |l: &&str| {
        !l.starts_with('#') && !l.starts_with("promshm_") && !l.starts_with("unreg_cycles")
    };
    for line in page.lines().filter(churn_lines) {
        let churned = line.starts_with('u') && line[1..].starts_with(|c: char| c.is_ascii_digit());
        assert!(!churned, "an unregistered family shows: {line}");
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(v < STALE, "a stale write shows: {line}");
    }
}

/// A process holding handles to a family that another process unregisters:
/// its updates through the family and its series are no-ops, never visible
/// in the new family of the same name (another type); its index notices,
/// so registering the name again there finds the new family; and after a
/// second unregister, a registration with other labels works there too.
#[test]
fn stale_handles_in_another_process_update_nothing() {
    let dir = TempDir::new("unreg-stale");
    let path = dir.join("area");
    let area = Area::create(&path, &AreaOptions::with_pages(PAGES)).unwrap();
    let reg = area.registry();
    let fam = reg
        .counter(Opts::new("shared", "c").labels(&["k"]))
        .unwrap();
    fam.labels(&["a"]).unwrap().inc();
    promshm::flush();
    let mut child = ChildProc::spawn(
        "holder",
        "holder",
        &[(AREA_ENV, path.display().to_string())],
    );
    child.expect("holding", Duration::from_secs(60));
    let (scrape1, _) = scrape(&area);
    assert_eq!(scrape1.value("shared_total", &[("k", "a")]), 2.0);

    assert!(reg.unregister(&fam).unwrap());
    let page = area.render_to_string(Format::Prometheus).unwrap();
    assert!(!page.contains("\nshared"), "{page}");
    let g = reg
        .gauge(
            Opts::new("shared", "now a gauge").labels(&["k"]),
            GaugeMode::Sum,
        )
        .unwrap();
    g.labels(&["a"]).unwrap().set(5.0);
    promshm::flush();
    child.send_line("unregistered");
    child.expect("wrote", Duration::from_secs(60));

    let (s, stats) = scrape(&area);
    assert_eq!(stats.bad_records, 0);
    // The child's gauge handle (found through its index) added 1.
    assert_eq!(s.value("shared", &[("k", "a")]), 6.0);
    assert_eq!(s.series("shared").len(), 1, "no series of the stale family");
    assert_eq!(s.get("shared_total", &[("k", "a")]), None);
    assert_eq!(s.get("shared", &[("k", "b")]), None);

    assert!(reg.unregister(&g).unwrap());
    child.send_line("again");
    child.expect("registered", Duration::from_secs(60));
    let (s, _) = scrape(&area);
    assert_eq!(s.value("shared_total", &[("j", "x")]), 1.0);
    assert_eq!(s.series("shared").len(), 0);
    child.release();
    child.expect_success(Duration::from_secs(30));
}

fn holder() {
    let area = Area::open(env_area(), OpenMode::ReadWrite).unwrap();
    let reg = area.registry();
    let fam = reg
        .counter(Opts::new("shared", "c").labels(&["k"]))
        .unwrap();
    let a = fam.labels(&["a"]).unwrap();
    let eager = reg
        .counter(Opts::new("shared", "c").labels(&["k"]).eager(true))
        .unwrap()
        .labels(&["a"])
        .unwrap();
    a.inc();
    promshm::flush();
    assert!(fam.is_registered());
    send("holding");
    assert_eq!(read_parent_line().as_deref(), Some("unregistered"));
    assert!(!fam.is_registered());
    // Every write through the stale handles is a no-op.
    a.add(STALE).unwrap();
    eager.add(STALE).unwrap();
    fam.labels(&["a"]).unwrap().add(STALE).unwrap();
    fam.labels(&["b"]).unwrap().add(STALE).unwrap();
    promshm::flush();
    assert_eq!(a.get(), 0.0);
    assert_eq!(eager.get(), 0.0);
    assert_eq!(fam.labels(&["b"]).unwrap().get(), 0.0);
    // The name is the gauge's now, in this process too.
    match reg.counter(Opts::new("shared", "c").labels(&["k"])) {
        Err(Error::ShapeMismatch { .. }) => {}
        other => panic!("registering the stale counter again: {other:?}"),
    }
    let g = reg
        .gauge(Opts::new("shared", "g").labels(&["k"]), GaugeMode::Sum)
        .unwrap();
    g.labels(&["a"]).unwrap().inc();
    promshm::flush();
    send("wrote");
    assert_eq!(read_parent_line().as_deref(), Some("again"));
    assert!(!g.is_registered());
    g.labels(&["a"]).unwrap().add(STALE);
    let c = reg
        .counter(Opts::new("shared", "c").labels(&["j"]))
        .unwrap();
    c.labels(&["x"]).unwrap().inc();
    promshm::flush();
    send("registered");
    wait_for_parent();
}

/// The churn with SIGKILL of random workers every few milliseconds, some
/// of them in the middle of an unregister or a registration: the area
/// stays readable, no record is both free and live (independent reader),
/// and afterwards the space is still reused: a full churn run succeeds.
#[test]
fn unregister_churn_with_random_kills_leaves_no_record_both_free_and_live() {
    let dir = TempDir::new("unreg-kill");
    let path = dir.join("area");
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut rng, seed) = Rng::from_time();
    eprintln!("kill schedule seed {seed}");
    let mut rand = move || rng.next_u64();
    let spawn = |w: u64| {
        ChildProc::spawn(
            "churn",
            &format!("killed{w}"),
            &[
                (AREA_ENV, path.display().to_string()),
                ("CHURN_WID", (w % 4).to_string()),
                ("CHURN_CYCLES", 1_000_000.to_string()),
            ],
        )
    };
    let mut workers: Vec<ChildProc> = (0..4).map(spawn).collect();
    let mut n = 4;
    let mut kills = 0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(2_000 + rand() % 8_000));
        let i = (rand() % workers.len() as u64) as usize;
        workers[i].kill();
        kills += 1;
        workers[i] = spawn(n);
        n += 1;
        if kills % 50 == 0 {
            // Readable at any moment (the reader takes no lock).
            let a = Area::open(&path, OpenMode::ReadOnly).unwrap();
            a.render(std::io::sink(), Format::Prometheus).unwrap();
        }
    }
    for w in &mut workers {
        w.kill();
    }
    eprintln!("{kills} workers killed");
    assert_free_lists_sane(&path);
    // What the killed workers left is reclaimed: a full churn run fits,
    // and the families they left registered can be unregistered.
    let mut c = ChildProc::spawn(
        "churn",
        "after",
        &[
            (AREA_ENV, path.display().to_string()),
            ("CHURN_WID", "9".into()),
            ("CHURN_CYCLES", 3_000.to_string()),
        ],
    );
    c.expect("done 3000", Duration::from_secs(300));
    c.expect_success(Duration::from_secs(30));
    let text = assert_free_lists_sane(&path);
    let area = Area::open(&path, OpenMode::ReadWrite).unwrap();
    assert_eq!(area.stats().refused, 0, "{text}");
}

/// The names an unregistered family rendered are free in every index: a
/// second mapping of the area (its own index, as another process has)
/// that saw the summary `s` refuses a gauge `s_created` while `s` is
/// registered, and registers it once `s` was unregistered through the
/// first mapping.
#[test]
fn the_names_an_unregistered_family_rendered_are_free_in_other_indexes() {
    let dir = TempDir::new("unreg-names");
    let path = dir.join("area");
    let a = Area::create(&path, &AreaOptions::with_pages(64)).unwrap();
    let b = Area::open(&path, OpenMode::ReadWrite).unwrap();
    let s = a
        .registry()
        .summary(Opts::new("s", "h"), &promshm::SummaryOpts::quantiles(&[]))
        .unwrap();
    s.get().unwrap().observe(1.0).unwrap();
    let gauge = || {
        b.registry()
            .gauge(Opts::new("s_created", "g"), GaugeMode::Sum)
    };
    assert!(matches!(gauge(), Err(Error::NameTaken { .. })));
    assert!(a.registry().unregister(&s).unwrap());
    gauge().unwrap().get().unwrap().set(4.0);
    promshm::flush();
    let (scrape, stats) = scrape(&a);
    assert_eq!(stats.bad_records, 0);
    assert_eq!(scrape.value("s_created", &[]), 4.0);
    assert_eq!(scrape.get("s_sum", &[]), None);
    // And the other way round: the summary's name is taken by the gauge's.
    let again = a
        .registry()
        .summary(Opts::new("s", "h"), &promshm::SummaryOpts::quantiles(&[]));
    assert!(matches!(again, Err(Error::NameTaken { .. })), "{again:?}");
}
