//! Every name a family renders is reserved in the area when it registers
//! (docs/FORMAT.md, "Names"): a family whose names would collide with
//! another family's — registered by this process or any other — is refused
//! with `Error::NameTaken`, and a family name that ends in a suffix the text
//! format reserves for another type is `Error::ReservedSuffix`. So every
//! page passes `promtool check metrics` and the OpenMetrics parser of
//! prometheus_client; a property test checks that over random sequences of
//! registrations across every type and suffix.
//!
//! The oracles are the ones of tests/exposition_oracles.rs: promtool (exit 0:
//! parses and is lint-clean) and client_python; a missing tool is a SKIP
//! unless `CI` is set.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use promshm::encoding::MetricType;
use promshm::{Area, AreaOptions, Error, Format, GaugeMode, Opts, Registry, SummaryOpts};

#[test]
fn child_entry() {
    child_main(|role| match role {
        "register_summary" => {
            let area = Area::open(env_area(), promshm::OpenMode::ReadWrite).unwrap();
            register(&area.registry(), MetricType::Summary, "s", "", false).unwrap();
            send("registered");
        }
        other => panic!("unknown role {other:?}"),
    });
}

/// Register a family of `kind` named `name` (with `unit`, and a label `l`
/// if `labelled`), and give it one series with a value; what registering said.
fn register(
    reg: &Registry,
    kind: MetricType,
    name: &str,
    unit: &str,
    labelled: bool,
) -> Result<(), Error> {
    let mut opts = Opts::new(name, format!("Help of {name}.")).unit(unit);
    let values: &[&str] = if labelled { &["v"] } else { &[] };
    if labelled {
        opts = opts.labels(&["l"]);
    }
    match kind {
        MetricType::Counter => reg.counter(opts)?.labels(values)?.add(2.0)?,
        MetricType::Gauge => reg.gauge(opts, GaugeMode::Sum)?.labels(values)?.set(3.5),
        MetricType::Histogram => reg
            .histogram(opts, &[0.5, 1.0])?
            .labels(values)?
            .observe(0.7)?,
        MetricType::Summary => reg
            .summary(opts, &SummaryOpts::quantiles(&[0.5, 0.9]))?
            .labels(values)?
            .observe(0.7)?,
        MetricType::Info => reg.info(opts)?.labels(values)?.set(&[("version", "1.2")])?,
        MetricType::StateSet => reg
            .state_set(opts, &["up", "down"])?
            .labels(values)?
            .set("down")?,
        MetricType::NativeHistogram => reg
            .native_histogram(opts, promshm::NativeOpts::new())?
            .labels(values)?
            .observe(0.7)?,
    }
    Ok(())
}

fn area() -> Area {
    Area::anonymous(&AreaOptions::with_pages(256)).unwrap()
}

/// Pairs of families that would render a name twice, each refused in either
/// order with `NameTaken` (the second one), whatever the first's process.
const CLASHES: &[(MetricType, &str, MetricType, &str)] = &[
    (MetricType::Summary, "s", MetricType::Histogram, "s_count"),
    (MetricType::Summary, "s", MetricType::Counter, "s_count"),
    (MetricType::Summary, "s", MetricType::Counter, "s_sum"),
    (MetricType::Histogram, "h", MetricType::Counter, "h_bucket"),
    (MetricType::Histogram, "h", MetricType::Summary, "h_sum"),
    (MetricType::Histogram, "h", MetricType::Info, "h_created"),
    (MetricType::Counter, "x", MetricType::Info, "x_total"),
    (MetricType::Counter, "x", MetricType::Gauge, "x_created"),
    (MetricType::Info, "i", MetricType::Gauge, "i_info"),
    (MetricType::Info, "i", MetricType::StateSet, "i_info"),
    (MetricType::Counter, "c", MetricType::Counter, "c_created"),
    (MetricType::Histogram, "h", MetricType::Histogram, "h_count"),
];

#[test]
fn clashing_names_are_refused_in_either_order() {
    for &(ka, a, kb, b) in CLASHES {
        for (first, second) in [((ka, a), (kb, b)), ((kb, b), (ka, a))] {
            let area = area();
            let reg = area.registry();
            register(&reg, first.0, first.1, "", false)
                .unwrap_or_else(|e| panic!("{:?} {}: {e}", first.0, first.1));
            let err = register(&reg, second.0, second.1, "", false).expect_err(&format!(
                "{:?} {} after {:?} {} must be refused",
                second.0, second.1, first.0, first.1
            ));
            assert!(
                matches!(err, Error::NameTaken { .. }),
                "{:?} {} after {:?} {}: {err:?}",
                second.0,
                second.1,
                first.0,
                first.1
            );
            let msg = err.to_string();
            assert!(msg.contains(second.1) && msg.contains(first.1), "{msg}");
            assert!(area.name_taken(second.1, second.0));
            // The first family is still there, exactly once.
            check_page(&area.render_to_string(Format::Prometheus).unwrap(), "pair");
        }
    }
}

#[test]
fn a_reserved_suffix_of_another_type_is_an_invalid_name() {
    // The text format reserves `_total` for counters, `_bucket` for
    // histograms, `_count` and `_sum` for histograms and summaries.
    let refused: &[(MetricType, &str)] = &[
        (MetricType::Gauge, "g_total"),
        (MetricType::Gauge, "g_count"),
        (MetricType::Gauge, "g_sum"),
        (MetricType::Gauge, "g_bucket"),
        (MetricType::StateSet, "st_count"),
        (MetricType::Summary, "s_total"),
        (MetricType::Summary, "s_bucket"),
        (MetricType::Histogram, "h_total"),
    ];
    for &(kind, name) in refused {
        let area = area();
        let err = register(&area.registry(), kind, name, "", false).unwrap_err();
        assert!(
            matches!(err, Error::ReservedSuffix { .. }),
            "{kind:?} {name}: {err:?}"
        );
    }
    // Their own suffixes are fine: they end up in the family's names.
    let accepted: &[(MetricType, &str)] = &[
        (MetricType::Counter, "requests_total"), // the `_total` is the counter's own
        (MetricType::Counter, "c_count"),
        (MetricType::Histogram, "h_count"),
        (MetricType::Summary, "s_sum"),
        (MetricType::Info, "i_total"),
        (MetricType::Gauge, "g_created"),
        (MetricType::Gauge, "g_info"),
    ];
    let area = area();
    for &(kind, name) in accepted {
        register(&area.registry(), kind, name, "", false)
            .unwrap_or_else(|e| panic!("{kind:?} {name}: {e}"));
    }
    check_page(
        &area.render_to_string(Format::Prometheus).unwrap(),
        "accepted",
    );
    check_om(
        &area.render_to_string(Format::OpenMetrics).unwrap(),
        "accepted",
    );
}

/// The reservation is in the area: a family registered by another process
/// (whose index this process never saw) makes a clashing one fail here.
#[test]
fn names_registered_by_another_process_are_taken() {
    let dir = TempDir::new("names");
    let path = dir.join("area");
    drop(Area::create(&path, &AreaOptions::with_pages(128)).unwrap());
    run_child(
        "register_summary",
        "summary",
        &[(AREA_ENV, path.to_str().unwrap().to_string())],
        Duration::from_secs(30),
    );
    let area = Area::open(&path, promshm::OpenMode::ReadWrite).unwrap();
    assert!(area.name_taken("s_count", MetricType::Gauge));
    assert!(area.name_taken("s", MetricType::Summary));
    assert!(!area.name_taken("s_other", MetricType::Gauge));
    let err = register(&area.registry(), MetricType::Counter, "s_count", "", false).unwrap_err();
    assert!(matches!(err, Error::NameTaken { .. }), "{err:?}");
    let err = register(&area.registry(), MetricType::Info, "s_sum", "", false).unwrap_err();
    assert!(matches!(err, Error::NameTaken { .. }), "{err:?}");
    // The same family again is found, not refused.
    register(&area.registry(), MetricType::Summary, "s", "", false).unwrap();
    check_page(
        &area.render_to_string(Format::Prometheus).unwrap(),
        "two processes",
    );
}

/// Random sequences of registrations, of every type, with names made of a
/// few bases and every suffix (and units), through two mappings of one file
/// (two indexes, as two processes have): whatever is accepted renders pages
/// that promtool and the OpenMetrics parser accept.
#[test]
fn random_registrations_always_render_valid_pages() {
    if !have_promtool() || !have_python_client() {
        return;
    }
    const BASES: &[&str] = &["a", "z", "a_z"];
    const SUFFIXES: &[&str] = &[
        "", "_total", "_created", "_count", "_sum", "_bucket", "_info", "_gsum", "_gcount",
    ];
    const UNITS: &[&str] = &["", "", "", "seconds", "bytes"];
    let dir = TempDir::new("names-prop");
    let seeds: u64 = std::env::var("PROMSHM_NAME_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    let mut refused = 0;
    let mut accepted = 0;
    for seed in 1..=seeds {
        let mut rng = Rng::new(seed);
        let path = dir.join(&format!("area-{seed}"));
        let one = Area::create(&path, &AreaOptions::with_pages(256)).unwrap();
        let two = Area::open(&path, promshm::OpenMode::ReadWrite).unwrap();
        let mut log = String::new();
        for _ in 0..12 {
            let kind = MetricType::ALL[rng.below(MetricType::ALL.len() as u64) as usize];
            let mut name = BASES[rng.below(BASES.len() as u64) as usize].to_string();
            for _ in 0..1 + rng.below(2) {
                name.push_str(SUFFIXES[rng.below(SUFFIXES.len() as u64) as usize]);
            }
            let unit = UNITS[rng.below(UNITS.len() as u64) as usize];
            let labelled = rng.below(2) == 0;
            let area = if rng.below(2) == 0 { &one } else { &two };
            let r = register(&area.registry(), kind, &name, unit, labelled);
            log.push_str(&format!(
                "{kind:?} {name} unit={unit:?} labelled={labelled}: {r:?}\n"
            ));
            match r {
                Ok(()) => accepted += 1,
                Err(Error::NameTaken { .. } | Error::ReservedSuffix { .. }) => refused += 1,
                // Same name, other type or labels; a unit on info/state sets.
                Err(Error::ShapeMismatch { .. } | Error::InvalidUnit(_)) => {}
                Err(e) => panic!("seed {seed}: unexpected error {e:?}\n{log}"),
            }
        }
        // Both mappings render the same records; one is enough.
        let what = format!("seed {seed}:\n{log}");
        check_page(&two.render_to_string(Format::Prometheus).unwrap(), &what);
        check_om(&one.render_to_string(Format::OpenMetrics).unwrap(), &what);
    }
    // The sequences exercise both paths (300 registrations at 25 seeds).
    assert!(
        accepted > seeds * 3 && refused > seeds,
        "accepted {accepted}, refused {refused}"
    );
}

// ---------------------------------------------------------------- oracles

fn missing(tool: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{tool} not found and CI is set (scripts/setup.sh installs it)");
    }
    println!("SKIP: {tool} not found");
}

fn tool_runs(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn have_promtool() -> bool {
    static HAVE: OnceLock<bool> = OnceLock::new();
    *HAVE.get_or_init(|| {
        let ok = tool_runs(Command::new("promtool").arg("--version"));
        if !ok {
            missing("promtool");
        }
        ok
    })
}

fn have_python_client() -> bool {
    static HAVE: OnceLock<bool> = OnceLock::new();
    *HAVE.get_or_init(|| {
        let ok = tool_runs(
            Command::new("python3").args(["-c", "import prometheus_client.openmetrics.parser"]),
        );
        if !ok {
            missing("python3 with prometheus_client");
        }
        ok
    })
}

/// Run `cmd` with `text` on stdin, bounded in time; (exit code, stderr+stdout).
fn run_on(cmd: &mut Command, text: &str, dir: &Path) -> (i32, String) {
    let input = dir.join("page");
    std::fs::write(&input, text).unwrap();
    let out = cmd
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .expect("spawn oracle");
    let mut msg = String::from_utf8_lossy(&out.stderr).into_owned();
    msg.push_str(&String::from_utf8_lossy(&out.stdout));
    (out.status.code().unwrap_or(-1), msg)
}

/// promtool check metrics: parses and is lint-clean (exit 0).
fn check_page(text: &str, what: &str) {
    if !have_promtool() {
        return;
    }
    let dir = TempDir::new("names-page");
    let (code, msg) = run_on(
        Command::new("timeout").args(["30", "promtool", "check", "metrics"]),
        text,
        dir.path(),
    );
    assert_eq!(
        code, 0,
        "promtool rejected the page ({what}):\n{msg}\npage:\n{text}"
    );
}

/// prometheus_client's OpenMetrics parser reads the page, and every family
/// name appears once.
fn check_om(text: &str, what: &str) {
    if !have_python_client() {
        return;
    }
    const PY: &str = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as p
names = [m.name for m in p(sys.stdin.read())]
assert len(names) == len(set(names)), names
"#;
    let dir = TempDir::new("names-om");
    let (code, msg) = run_on(
        Command::new("timeout").args(["30", "python3", "-c", PY]),
        text,
        dir.path(),
    );
    assert_eq!(
        code, 0,
        "the OpenMetrics parser rejected the page ({what}):\n{msg}\npage:\n{text}"
    );
}
