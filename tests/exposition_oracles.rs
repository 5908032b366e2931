//! Independent conformance oracles for the exposition encoders.
//!
//! Builds expositions of every metric type with nasty label values, help
//! texts and numbers through the public API, writes them to files and runs:
//!
//! * `promtool check metrics` (Go expfmt parser + lints) on Prometheus text
//!   0.0.4 — must exit 0, i.e. parse and be lint-clean;
//! * `prometheus_client.openmetrics.parser` (Python) on OpenMetrics 1.0;
//! * `prometheus_client.parser` (Python) on 0.0.4, as a second opinion;
//!
//! and checks that what the Python parsers read back (family names, types,
//! help, unit, sample names, labels and values) is exactly what went in.
//! The golden files in `tests/golden/` go through the same oracles, and
//! canonical numbers are compared with client_python's `floatToGoString`.
//!
//! A missing tool makes a test print `SKIP: ...` and pass, unless the
//! environment variable `CI` is set, in which case it fails.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use promshm::encoding::{encoder, FamilyDesc, Format, MetricType, Point};

// ---------------------------------------------------------------- tools

/// Report a missing tool: fail under CI, otherwise print SKIP.
fn missing(tool: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{tool} not found and CI is set: install it (see the oracle table in formats.md)");
    }
    println!("SKIP: {tool} not found");
}

fn have_promtool() -> bool {
    let ok = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        missing("promtool");
    }
    ok
}

fn have_python_client() -> bool {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import prometheus_client.openmetrics.parser, prometheus_client.parser",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        missing("python3 with prometheus_client");
    }
    ok
}

/// Run `cmd` with `input` on stdin; return (exit code, stdout, stderr).
fn run_with_stdin(cmd: &mut Command, input: &Path) -> (i32, String, String) {
    let out = cmd
        .stdin(Stdio::from(File::open(input).expect("open input")))
        .output()
        .expect("spawn oracle");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn promtool_check(path: &Path) {
    let (code, out, err) =
        run_with_stdin(Command::new("promtool").args(["check", "metrics"]), path);
    assert_eq!(
        code,
        0,
        "promtool check metrics {} exited {code} (1 = parse error, 3 = lint findings)\nstdout:\n{out}\nstderr:\n{err}\ninput:\n{}",
        path.display(),
        fs::read_to_string(path).unwrap_or_default()
    );
}

/// Parses stdin with client_python and prints one line per family (`F`) and
/// sample (`S`); strings are hex-encoded UTF-8 prefixed with `x`, values are
/// `str(int)` or `repr(float)`.
const PY_DUMP: &str = r#"
import sys
mode = sys.argv[1]
if mode == 'om':
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as p
else:
    from prometheus_client.parser import text_string_to_metric_families as p
def h(s):
    return 'x' + s.encode('utf-8').hex()
def v(x):
    return str(x) if isinstance(x, int) else repr(float(x))
out = []
for m in p(sys.stdin.read()):
    out.append(' '.join(['F', h(m.name), m.type, h(m.documentation or ''), h(m.unit or '')]))
    for s in m.samples:
        parts = ['S', h(s.name), str(len(s.labels))]
        for k, val in s.labels.items():
            parts.append(h(k) + '=' + h(val))
        parts.append(v(s.value))
        parts.append('-' if s.timestamp is None else repr(s.timestamp))
        out.append(' '.join(parts))
sys.stdout.write(''.join(l + '\n' for l in out))
"#;

fn python_parse(path: &Path, format: Format) -> Vec<Family> {
    let mode = match format {
        Format::Prometheus => "prom",
        Format::OpenMetrics => "om",
        Format::Protobuf => panic!("client_python parses the text formats only"),
    };
    let (code, out, err) =
        run_with_stdin(Command::new("python3").args(["-c", PY_DUMP, mode]), path);
    assert_eq!(
        code,
        0,
        "client_python {mode} parser rejected {}:\n{err}\ninput:\n{}",
        path.display(),
        fs::read_to_string(path).unwrap_or_default()
    );
    parse_dump(&out)
}

// ---------------------------------------------------------------- parsed form

#[derive(Debug, Clone, PartialEq)]
struct Family {
    name: String,
    typ: String,
    help: String,
    unit: String,
    samples: Vec<Sample>,
}

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    /// `str(int)` or `repr(float)` as printed by Python.
    value: String,
}

fn unhex(s: &str) -> String {
    let s = s.strip_prefix('x').expect("hex token starts with x");
    let bytes: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect();
    String::from_utf8(bytes).expect("utf-8")
}

fn parse_dump(out: &str) -> Vec<Family> {
    let mut fams: Vec<Family> = Vec::new();
    for line in out.lines() {
        let t: Vec<&str> = line.split(' ').collect();
        match t[0] {
            "F" => fams.push(Family {
                name: unhex(t[1]),
                typ: t[2].to_string(),
                help: unhex(t[3]),
                unit: unhex(t[4]),
                samples: Vec::new(),
            }),
            "S" => {
                let n: usize = t[2].parse().unwrap();
                let labels = t[3..3 + n]
                    .iter()
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap();
                        (unhex(k), unhex(v))
                    })
                    .collect();
                assert_eq!(t[4 + n], "-", "unexpected timestamp in {line}");
                fams.last_mut()
                    .expect("sample before family")
                    .samples
                    .push(Sample {
                        name: unhex(t[1]),
                        labels,
                        value: t[3 + n].to_string(),
                    });
            }
            _ => panic!("bad dump line {line}"),
        }
    }
    fams
}

// ---------------------------------------------------------------- the model

type Labels = Vec<(&'static str, &'static str)>;

struct Fam {
    desc: FamilyDesc<'static>,
    series: Vec<(Labels, Point<'static>)>,
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Label values that need escaping or are otherwise unusual.
const NASTY: &[&str] = &[
    "plain",
    "",
    "back\\slash",
    "\\",
    "\\\\",
    "trailing\\",
    "quote\"inside",
    "\"",
    "\"\"",
    "new\nline",
    "\n",
    "\\n literal backslash-n",
    "\\\"\n mixed",
    "größe ✓ 日本語 🦀",
    "tab\there",
    "{braces},=# and spaces ",
    "  leading spaces",
    "carriage\rreturn",
];

const HELP_NASTY: &str = "Help with back\\slash, \"quotes\", a\nnewline, \\n and UTF-8: größe 🦀.";

/// Numbers for gauges: every special case we know.
const GAUGE_VALUES: &[f64] = &[
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.1,
    1.0 / 3.0,
    -2.0 / 3.0,
    1e-5,
    -1e-5,
    1e-4,
    1e-10,
    123456.0,
    1234567.0,
    1e6,
    1e21,
    1e22,
    1e23,
    5e-324,
    -5e-324,
    f64::MIN_POSITIVE,
    f64::MAX,
    f64::MIN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
    9007199254740993.0,
    0.30000000000000004,
    882_886_105_001.0 + 0.156_25, // exact tie: Go rounds the 16th digit to even
];

/// Counter values: non-negative, never NaN (the core guarantees it).
const COUNTER_VALUES: &[f64] = &[
    0.0,
    1.0,
    0.5,
    1e-10,
    1e21,
    5e-324,
    f64::MAX,
    f64::INFINITY,
    4503599627370497.0,
];

fn model() -> Vec<Fam> {
    let mut fams = Vec::new();

    // Sorted by name, as the registry hands them out.
    fams.push(Fam {
        desc: FamilyDesc {
            name: "oracle_build",
            help: HELP_NASTY,
            unit: "",
            kind: MetricType::Info,
        },
        series: NASTY
            .iter()
            .map(|&v| (vec![("version", v), ("branch", "main")], Point::Info))
            .collect(),
    });

    // A large gauge family: more than the 32 KiB line buffer.
    fams.push(Fam {
        desc: FamilyDesc {
            name: "oracle_bulk_ratio",
            help: "Many series.",
            unit: "ratio",
            kind: MetricType::Gauge,
        },
        series: (0..3000)
            .map(|i| {
                let labels = vec![
                    ("shard", leak(format!("{}", i % 7))),
                    ("id", leak(format!("series-{i}-{}", NASTY[i % NASTY.len()]))),
                ];
                (
                    labels,
                    Point::Gauge {
                        value: i as f64 / 1000.0,
                    },
                )
            })
            .collect(),
    });

    // A family with no series at all.
    fams.push(Fam {
        desc: FamilyDesc {
            name: "oracle_idle_seconds",
            help: "No series yet.",
            unit: "seconds",
            kind: MetricType::Gauge,
        },
        series: vec![],
    });

    fams.push(Fam {
        desc: FamilyDesc {
            name: "oracle_mode",
            help: "Current mode, \"quoted\".",
            unit: "",
            kind: MetricType::StateSet,
        },
        series: vec![
            (
                vec![],
                Point::StateSet {
                    states: &[("idle", false), ("running", true), ("stopped", false)],
                },
            ),
            (
                vec![("worker", "w\"1\\\n")],
                Point::StateSet {
                    states: &[
                        ("a\\b", true),
                        ("c\"d", false),
                        ("e\nf", false),
                        ("größe", false),
                        ("", false),
                    ],
                },
            ),
        ],
    });

    // Histogram with a negative bound: OpenMetrics drops _sum and _count.
    fams.push(Fam {
        desc: FamilyDesc {
            name: "oracle_offset_seconds",
            help: "Clock offset.",
            unit: "seconds",
            kind: MetricType::Histogram,
        },
        series: vec![(
            vec![("peer", "a\\b")],
            Point::Histogram {
                buckets: &[
                    (-1.0, 1),
                    (-0.001, 2),
                    (0.0, 5),
                    (0.5, 7),
                    (f64::INFINITY, 9),
                ],
                sum: -0.75,
                created: Some(1_700_000_000.5),
            },
        )],
    });

    fams.push(Fam {
        desc: FamilyDesc {
            name: "oracle_request_duration_seconds",
            help: HELP_NASTY,
            unit: "seconds",
            kind: MetricType::Histogram,
        },
        series: NASTY
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let p = match i % 4 {
                    0 => Point::Histogram {
                        buckets: &[
                            (1e-5, 0),
                            (1e-4, 1),
                            (0.001, 1),
                            (0.1, 3),
                            (1.0, 3),
                            (10.0, 10),
                            (100000.0, 11),
                            (1e6, 11),
                            (f64::INFINITY, 12),
                        ],
                        sum: 123.456,
                        created: Some(1_700_000_000.123),
                    },
                    1 => Point::Histogram {
                        buckets: &[(f64::INFINITY, 0)],
                        sum: 0.0,
                        created: None,
                    },
                    2 => Point::Histogram {
                        buckets: &[
                            (0.25, 1 << 53),
                            (1.0 / 3.0, (1 << 53) + 1),
                            (f64::INFINITY, u64::MAX),
                        ],
                        sum: 1e21,
                        created: Some(0.0),
                    },
                    _ => Point::Histogram {
                        buckets: &[(5e-324, 0), (1e-300, 0), (f64::MAX, 2), (f64::INFINITY, 2)],
                        sum: f64::INFINITY,
                        created: Some(5e-324),
                    },
                };
                (vec![("path", v), ("method", "get")], p)
            })
            .collect(),
    });

    fams.push(Fam {
        desc: FamilyDesc {
            name: "oracle_requests",
            help: HELP_NASTY,
            unit: "",
            kind: MetricType::Counter,
        },
        series: NASTY
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let created = match i % 3 {
                    0 => Some(1_700_000_000.123),
                    1 => None,
                    _ => Some(0.0),
                };
                (
                    vec![("zone", "eu\"1"), ("path", v)],
                    Point::Counter {
                        value: COUNTER_VALUES[i % COUNTER_VALUES.len()],
                        created,
                    },
                )
            })
            .collect(),
    });

    fams.push(Fam {
        desc: FamilyDesc {
            name: "oracle_response_size_bytes",
            help: "Response sizes.",
            unit: "bytes",
            kind: MetricType::Summary,
        },
        series: vec![
            (
                vec![("path", "\\\"\n")],
                Point::Summary {
                    quantiles: &[
                        (0.0, 0.0),
                        (0.5, 1e-5),
                        (0.9, 1e6),
                        (0.99, 1e21),
                        (0.999, f64::MAX),
                        (1.0, f64::INFINITY),
                    ],
                    count: 12,
                    sum: 1e22,
                    created: Some(1_700_000_000.0),
                },
            ),
            (
                vec![("path", "")],
                Point::Summary {
                    quantiles: &[],
                    count: 0,
                    sum: 0.0,
                    created: None,
                },
            ),
            (
                vec![("path", "empty")],
                Point::Summary {
                    quantiles: &[(0.5, f64::NAN), (0.99, f64::NAN)],
                    count: 0,
                    sum: 0.0,
                    created: Some(5e-324),
                },
            ),
            (
                vec![("path", "big")],
                Point::Summary {
                    quantiles: &[(1e-5, 1.0 / 3.0), (0.25, 0.1)],
                    count: u64::MAX,
                    sum: 123456789.125,
                    created: None,
                },
            ),
        ],
    });

    fams.push(Fam {
        desc: FamilyDesc {
            name: "oracle_temperature_celsius",
            help: HELP_NASTY,
            unit: "celsius",
            kind: MetricType::Gauge,
        },
        series: GAUGE_VALUES
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                (
                    vec![
                        ("case", leak(format!("c{i}"))),
                        ("text", NASTY[i % NASTY.len()]),
                    ],
                    Point::Gauge { value: v },
                )
            })
            .collect(),
    });

    fams
}

fn render(format: Format, fams: &[Fam]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = encoder(format, &mut out);
        for f in fams {
            enc.family(&f.desc).unwrap();
            for (labels, p) in &f.series {
                enc.point(&f.desc, labels, p).unwrap();
            }
        }
        enc.finish().unwrap();
    }
    out
}

// ---------------------------------------------------------------- expectations

/// An expected value: a float, or an exact integer.
#[derive(Debug, Clone, Copy)]
enum Val {
    F(f64),
    U(u64),
}

/// An expected label value: a string, or a number (`le`, `quantile`) compared
/// numerically after parsing.
#[derive(Debug, Clone)]
enum Lv {
    S(String),
    N(f64),
}

#[derive(Debug)]
struct ExpSample {
    name: String,
    labels: Vec<(String, Lv)>,
    value: Val,
}

#[derive(Debug)]
struct ExpFamily {
    name: String,
    typ: &'static str,
    help: String,
    unit: String,
    samples: Vec<ExpSample>,
}

fn sample(
    name: &str,
    suffix: &str,
    labels: &Labels,
    extra: Option<(&str, Lv)>,
    value: Val,
) -> ExpSample {
    let mut l: Vec<(String, Lv)> = labels
        .iter()
        .map(|&(k, v)| (k.to_string(), Lv::S(v.to_string())))
        .collect();
    if let Some((k, v)) = extra {
        l.push((k.to_string(), v));
    }
    ExpSample {
        name: format!("{name}{suffix}"),
        labels: l,
        value,
    }
}

/// What client_python should read back from our output in `format`.
fn expected(format: Format, fams: &[Fam]) -> Vec<ExpFamily> {
    let om = format == Format::OpenMetrics;
    let mut out = Vec::new();
    for f in fams {
        let d = &f.desc;
        let n = d.name;
        let (fam_name, typ) = match (d.kind, om) {
            (MetricType::Info, false) => (format!("{n}_info"), "gauge"),
            (MetricType::StateSet, false) => (n.to_string(), "gauge"),
            (k, _) => (n.to_string(), k.as_str()),
        };
        let unit = if om && !matches!(d.kind, MetricType::Info | MetricType::StateSet) {
            d.unit
        } else {
            ""
        };
        let mut samples = Vec::new();
        for (labels, p) in &f.series {
            match *p {
                Point::Counter { value, created } => {
                    samples.push(sample(n, "_total", labels, None, Val::F(value)));
                    if let (true, Some(c)) = (om, created) {
                        samples.push(sample(n, "_created", labels, None, Val::F(c)));
                    }
                }
                Point::Gauge { value } => samples.push(sample(n, "", labels, None, Val::F(value))),
                Point::Histogram {
                    buckets,
                    sum,
                    created,
                } => {
                    for &(le, c) in buckets {
                        samples.push(sample(
                            n,
                            "_bucket",
                            labels,
                            Some(("le", Lv::N(le))),
                            Val::U(c),
                        ));
                    }
                    let count = Val::U(buckets.last().unwrap().1);
                    if !om {
                        samples.push(sample(n, "_sum", labels, None, Val::F(sum)));
                        samples.push(sample(n, "_count", labels, None, count));
                    } else {
                        if buckets[0].0 >= 0.0 {
                            samples.push(sample(n, "_count", labels, None, count));
                            samples.push(sample(n, "_sum", labels, None, Val::F(sum)));
                        }
                        if let Some(c) = created {
                            samples.push(sample(n, "_created", labels, None, Val::F(c)));
                        }
                    }
                }
                Point::NativeHistogram { .. } => unreachable!("no fixture has a native histogram"),
                Point::Summary {
                    quantiles,
                    count,
                    sum,
                    created,
                } => {
                    for &(q, v) in quantiles {
                        samples.push(sample(
                            n,
                            "",
                            labels,
                            Some(("quantile", Lv::N(q))),
                            Val::F(v),
                        ));
                    }
                    if !om {
                        samples.push(sample(n, "_sum", labels, None, Val::F(sum)));
                        samples.push(sample(n, "_count", labels, None, Val::U(count)));
                    } else {
                        samples.push(sample(n, "_count", labels, None, Val::U(count)));
                        samples.push(sample(n, "_sum", labels, None, Val::F(sum)));
                        if let Some(c) = created {
                            samples.push(sample(n, "_created", labels, None, Val::F(c)));
                        }
                    }
                }
                Point::Info => samples.push(sample(n, "_info", labels, None, Val::U(1))),
                Point::StateSet { states } => {
                    for &(s, set) in states {
                        samples.push(sample(
                            n,
                            "",
                            labels,
                            Some((n, Lv::S(s.to_string()))),
                            Val::U(u64::from(set)),
                        ));
                    }
                }
            }
        }
        out.push(ExpFamily {
            name: fam_name,
            typ,
            help: d.help.to_string(),
            unit: unit.to_string(),
            samples,
        });
    }
    out
}

fn same_f64(a: f64, b: f64) -> bool {
    // -0 and 0 compare equal: Python reads "-0" as the int 0.
    (a.is_nan() && b.is_nan()) || a == b
}

fn check_value(got: &str, want: Val) -> Result<(), String> {
    match want {
        Val::U(u) => match got.parse::<u64>() {
            Ok(g) if g == u => Ok(()),
            // The 0.0.4 parser may read integers as floats.
            _ => match got.parse::<f64>() {
                Ok(g) if g == u as f64 => Ok(()),
                _ => Err(format!("value {got} != {u}")),
            },
        },
        Val::F(f) => match got.parse::<f64>() {
            Ok(g) if same_f64(g, f) && (g.to_bits() == f.to_bits() || g == 0.0 || g.is_nan()) => {
                Ok(())
            }
            _ => Err(format!("value {got} != {f:?}")),
        },
    }
}

fn compare(format: Format, got: &[Family], want: &[ExpFamily]) {
    let mut errs = String::new();
    let names_got: Vec<&str> = got.iter().map(|f| f.name.as_str()).collect();
    let names_want: Vec<&str> = want.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names_got, names_want, "{format:?}: family list differs");
    for (g, w) in got.iter().zip(want) {
        if g.typ != w.typ || g.help != w.help || g.unit != w.unit {
            let _ = writeln!(
                errs,
                "{}: metadata ({}, {:?}, {:?}) != ({}, {:?}, {:?})",
                w.name, g.typ, g.help, g.unit, w.typ, w.help, w.unit
            );
        }
        if g.samples.len() != w.samples.len() {
            let _ = writeln!(
                errs,
                "{}: {} samples, expected {}",
                w.name,
                g.samples.len(),
                w.samples.len()
            );
            continue;
        }
        for (gs, ws) in g.samples.iter().zip(&w.samples) {
            let ctx = format!("{} {:?}", ws.name, ws.labels);
            if gs.name != ws.name {
                let _ = writeln!(errs, "{ctx}: sample name {}", gs.name);
            }
            if gs.labels.len() != ws.labels.len() {
                let _ = writeln!(errs, "{ctx}: labels {:?}", gs.labels);
                continue;
            }
            for ((gk, gv), (wk, wv)) in gs.labels.iter().zip(&ws.labels) {
                let ok = gk == wk
                    && match wv {
                        Lv::S(s) => gv == s,
                        Lv::N(x) => gv.parse::<f64>().is_ok_and(|p| p.to_bits() == x.to_bits()),
                    };
                if !ok {
                    let _ = writeln!(errs, "{ctx}: label {gk}={gv:?}, expected {wk}={wv:?}");
                }
            }
            if let Err(e) = check_value(&gs.value, ws.value) {
                let _ = writeln!(errs, "{ctx}: {e}");
            }
        }
    }
    assert!(
        errs.is_empty(),
        "{format:?}: parsed output differs from the model:\n{errs}"
    );
}

// ---------------------------------------------------------------- files

fn out_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("exposition_oracles");
    fs::create_dir_all(&d).unwrap();
    d
}

fn write_model(format: Format) -> (PathBuf, Vec<Fam>) {
    let fams = model();
    let ext = match format {
        Format::Prometheus => "prom",
        Format::OpenMetrics => "om",
        Format::Protobuf => "pb",
    };
    let path = out_dir().join(format!("model.{ext}"));
    fs::write(&path, render(format, &fams)).unwrap();
    (path, fams)
}

fn golden_files(ext: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut v: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no *.{ext} in {}", dir.display());
    v
}

// ---------------------------------------------------------------- tests

#[test]
fn model_output_shape() {
    // Independent of any tool: the basic framing rules.
    let prom = String::from_utf8(render(Format::Prometheus, &model())).unwrap();
    let om = String::from_utf8(render(Format::OpenMetrics, &model())).unwrap();
    assert!(
        prom.len() > 64 * 1024,
        "the model should exceed the 32 KiB buffer"
    );
    assert!(prom.ends_with('\n') && !prom.contains("# EOF") && !prom.contains("_created"));
    assert!(om.ends_with("\n# EOF\n") && om.matches("# EOF").count() == 1);
    assert!(!om.contains("\n\n") && !prom.contains("\n\n"));
    assert!(!prom.contains("# UNIT"));
}

#[test]
fn promtool_accepts_prometheus_text() {
    if !have_promtool() {
        return;
    }
    let (path, _) = write_model(Format::Prometheus);
    promtool_check(&path);
}

#[test]
fn promtool_rejects_openmetrics_as_expected() {
    // Sanity check that the oracle really parses: OM `info` is not 0.0.4.
    if !have_promtool() {
        return;
    }
    let (path, _) = write_model(Format::OpenMetrics);
    let (code, _, _) = run_with_stdin(Command::new("promtool").args(["check", "metrics"]), &path);
    assert_ne!(
        code, 0,
        "promtool should not accept OpenMetrics info/stateset types"
    );
}

#[test]
fn python_openmetrics_parser_round_trip() {
    if !have_python_client() {
        return;
    }
    let (path, fams) = write_model(Format::OpenMetrics);
    let got = python_parse(&path, Format::OpenMetrics);
    compare(
        Format::OpenMetrics,
        &got,
        &expected(Format::OpenMetrics, &fams),
    );
}

#[test]
fn python_text_parser_round_trip() {
    if !have_python_client() {
        return;
    }
    let (path, fams) = write_model(Format::Prometheus);
    let got = python_parse(&path, Format::Prometheus);
    compare(
        Format::Prometheus,
        &got,
        &expected(Format::Prometheus, &fams),
    );
}

#[test]
fn golden_files_pass_the_oracles() {
    if have_promtool() {
        for p in golden_files("prom") {
            promtool_check(&p);
        }
    }
    if have_python_client() {
        for p in golden_files("prom") {
            python_parse(&p, Format::Prometheus);
        }
        for p in golden_files("om") {
            python_parse(&p, Format::OpenMetrics);
        }
    }
}

#[test]
fn empty_exposition_passes() {
    let dir = out_dir();
    let om = dir.join("empty.om");
    let prom = dir.join("empty.prom");
    fs::write(&om, render(Format::OpenMetrics, &[])).unwrap();
    fs::write(&prom, render(Format::Prometheus, &[])).unwrap();
    if have_promtool() {
        promtool_check(&prom);
    }
    if have_python_client() {
        assert!(python_parse(&om, Format::OpenMetrics).is_empty());
        assert!(python_parse(&prom, Format::Prometheus).is_empty());
    }
}

/// Check `write_canonical_f64` against client_python's `floatToGoString`
/// (its OpenMetrics `le`/`quantile` formatter) for positive values, where
/// that function implements Go's rule, and check exact round trip.
#[test]
fn canonical_numbers_match_client_python() {
    if !have_python_client() {
        return;
    }
    const PY: &str = r#"
import sys, struct
from prometheus_client.utils import floatToGoString
bad = []
n = 0
for line in sys.stdin:
    bits, s = line.split()
    d = struct.unpack('>d', bytes.fromhex(bits))[0]
    n += 1
    if floatToGoString(d) != s or float(s) != d:
        bad.append((bits, s, floatToGoString(d)))
for b in bad[:20]:
    print(*b)
print('checked', n, 'mismatches', len(bad))
sys.exit(1 if bad else 0)
"#;
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut values: Vec<f64> = vec![
        1e-5,
        1e-4,
        0.001,
        0.1,
        0.5,
        1.0,
        2.5,
        10.0,
        100000.0,
        999999.0,
        1e6,
        1234567.0,
        1e10,
        1e15,
        1e16,
        1e21,
        1e22,
        5e-324,
        f64::MIN_POSITIVE,
        f64::MAX,
        1.0 / 3.0,
        f64::INFINITY,
    ];
    for _ in 0..20_000 {
        // Random positive bit patterns (finite).
        let v = f64::from_bits(next() >> 1);
        if v.is_finite() {
            values.push(v);
        }
        // Everyday magnitudes 1e-7 .. 1e12 and short decimals / integers.
        let m = (next() >> 11) as f64 / (1u64 << 53) as f64;
        values.push(m * 10f64.powi((next() % 20) as i32 - 7));
        values.push((next() % 100_000_000) as f64 / 1000.0);
        values.push((next() % 100_000_000) as f64);
        // Integers near 1e14..1e16 plus a binary fraction: exact ties between
        // two shortest candidates, which Go breaks to even.
        let frac = [0.5, 0.25, 0.75, 0.125, 0.375, 0.625, 0.875][(next() % 7) as usize];
        values.push(((next() % 9_900_000_000_000_000) + 100_000_000_000_000) as f64 + frac);
    }
    values.retain(|v| *v > 0.0);
    let mut input = String::new();
    let mut buf = Vec::new();
    for v in &values {
        buf.clear();
        promshm::encoding::write_canonical_f64(&mut buf, *v);
        let _ = writeln!(
            input,
            "{:016x} {}",
            v.to_bits(),
            std::str::from_utf8(&buf).unwrap()
        );
    }
    let path = out_dir().join("canonical_numbers.txt");
    fs::write(&path, input).unwrap();
    let (code, out, err) = run_with_stdin(Command::new("python3").args(["-c", PY]), &path);
    assert_eq!(
        code, 0,
        "canonical numbers differ from floatToGoString:\n{out}\n{err}"
    );
}
