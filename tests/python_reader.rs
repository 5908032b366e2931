//! `docs/FORMAT.md` is enough to read an area: `tools/promshm_read.py`, a
//! pure-Python reader written from that document alone, must report exactly
//! what the Rust API reports for an area holding every metric type, written
//! by three processes (this one and two children that exit), before and
//! after the dead children are reaped.
//!
//! A second test does the same for native histograms (type 7): the
//! reader's zero bucket, buckets (after the render's schema reduction),
//! count and sum against the library's protobuf render.
//!
//! Without `python3` the test prints SKIP and passes, unless `CI` is set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use promshm::{
    Area, AreaOptions, Counter, Family, Gauge, GaugeMode, Histogram, Info, OpenMode, Opts,
    Registry, StateSet, Summary, SummaryOpts,
};

// ---- a minimal JSON parser (no crates) -------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    /// The number's text, parsed on use (as u64 or f64, exactly).
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\n' | b'\r' | b'\t') {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) {
        self.ws();
        assert_eq!(
            self.s.get(self.i),
            Some(&c),
            "JSON: expected {:?} at {}",
            c as char,
            self.i
        );
        self.i += 1;
    }
    fn value(&mut self) -> Json {
        self.ws();
        match self.s[self.i] {
            b'{' => {
                self.i += 1;
                let mut out = Vec::new();
                self.ws();
                if self.s[self.i] == b'}' {
                    self.i += 1;
                    return Json::Obj(out);
                }
                loop {
                    self.ws();
                    let Json::Str(k) = self.value() else {
                        panic!("JSON: object key at {}", self.i)
                    };
                    self.eat(b':');
                    let v = self.value();
                    out.push((k, v));
                    self.ws();
                    match self.s[self.i] {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Json::Obj(out);
                        }
                        c => panic!("JSON: unexpected {:?} at {}", c as char, self.i),
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut out = Vec::new();
                self.ws();
                if self.s[self.i] == b']' {
                    self.i += 1;
                    return Json::Arr(out);
                }
                loop {
                    out.push(self.value());
                    self.ws();
                    match self.s[self.i] {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Json::Arr(out);
                        }
                        c => panic!("JSON: unexpected {:?} at {}", c as char, self.i),
                    }
                }
            }
            b'"' => {
                self.i += 1;
                let mut units: Vec<u16> = Vec::new();
                let mut out = String::new();
                loop {
                    let c = self.s[self.i];
                    if (c != b'\\' || self.s[self.i + 1] != b'u') && !units.is_empty() {
                        out.push_str(&String::from_utf16(&units).expect("JSON: bad \\u"));
                        units.clear();
                    }
                    match c {
                        b'"' => {
                            self.i += 1;
                            return Json::Str(out);
                        }
                        b'\\' => {
                            let e = self.s[self.i + 1];
                            self.i += 2;
                            match e {
                                b'"' => out.push('"'),
                                b'\\' => out.push('\\'),
                                b'/' => out.push('/'),
                                b'b' => out.push('\u{8}'),
                                b'f' => out.push('\u{c}'),
                                b'n' => out.push('\n'),
                                b'r' => out.push('\r'),
                                b't' => out.push('\t'),
                                b'u' => {
                                    let hex =
                                        std::str::from_utf8(&self.s[self.i..self.i + 4]).unwrap();
                                    units.push(u16::from_str_radix(hex, 16).unwrap());
                                    self.i += 4;
                                }
                                _ => panic!("JSON: bad escape at {}", self.i),
                            }
                        }
                        _ => {
                            // Copy one UTF-8 character.
                            let len = match c {
                                0x00..=0x7f => 1,
                                0xc0..=0xdf => 2,
                                0xe0..=0xef => 3,
                                _ => 4,
                            };
                            out.push_str(
                                std::str::from_utf8(&self.s[self.i..self.i + len]).unwrap(),
                            );
                            self.i += len;
                        }
                    }
                }
            }
            b't' => {
                self.i += 4;
                Json::Bool(true)
            }
            b'f' => {
                self.i += 5;
                Json::Bool(false)
            }
            b'n' => {
                self.i += 4;
                Json::Null
            }
            _ => {
                let start = self.i;
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.i += 1;
                }
                assert!(self.i > start, "JSON: unexpected byte at {start}");
                Json::Num(
                    std::str::from_utf8(&self.s[start..self.i])
                        .unwrap()
                        .to_string(),
                )
            }
        }
    }
}

fn parse_json(text: &str) -> Json {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value();
    p.ws();
    assert_eq!(p.i, text.len(), "JSON: trailing bytes");
    v
}

impl Json {
    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(kv) => kv
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("no key {key:?} in {self:?}")),
            _ => panic!("not an object: {self:?}"),
        }
    }
    fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            _ => panic!("not an array: {self:?}"),
        }
    }
    fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            _ => panic!("not a string: {self:?}"),
        }
    }
    fn u64(&self) -> u64 {
        match self {
            Json::Num(n) => n.parse().unwrap_or_else(|_| panic!("not a u64: {n}")),
            _ => panic!("not a number: {self:?}"),
        }
    }
    fn i64(&self) -> i64 {
        match self {
            Json::Num(n) => n.parse().unwrap_or_else(|_| panic!("not an i64: {n}")),
            _ => panic!("not a number: {self:?}"),
        }
    }
    /// A float, with the reader's spelling of the non-finite ones.
    fn f64(&self) -> f64 {
        match self {
            Json::Num(n) => n.parse().unwrap(),
            Json::Str(s) if s == "NaN" => f64::NAN,
            Json::Str(s) if s == "+Inf" => f64::INFINITY,
            Json::Str(s) if s == "-Inf" => f64::NEG_INFINITY,
            _ => panic!("not a float: {self:?}"),
        }
    }
    fn obj(&self) -> &[(String, Json)] {
        match self {
            Json::Obj(kv) => kv,
            _ => panic!("not an object: {self:?}"),
        }
    }
}

/// Exact float equality, NaN equal to NaN.
fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

// ---- the area ----------------------------------------------------------------------

const MODES: [GaugeMode; 6] = [
    GaugeMode::Sum,
    GaugeMode::LiveSum,
    GaugeMode::Max,
    GaugeMode::Min,
    GaugeMode::MostRecent,
    GaugeMode::All,
];
const BUCKETS: [f64; 4] = [0.1, 0.5, 1.0, 5.0];
const QUANTILES: [f64; 5] = [0.0, 0.5, 0.9, 0.99, 1.0];
const WINDOW: Duration = Duration::from_secs(24 * 3600);
const CHILD_ENV: &str = "PROMSHM_PY_READER_CHILD";

/// Every family of the test, registered the same way by every process.
struct Families {
    requests: Family<Counter>,
    plain: Family<Counter>,
    gauges: Vec<(GaugeMode, Family<Gauge>)>,
    latency: Family<Histogram>,
    sizes: Family<Summary>,
    windowed: Family<Summary>,
    build: Family<Info>,
    states: Family<StateSet>,
    app_hits: Family<Counter>,
}

fn families(area: &Area) -> Families {
    let reg = area.registry();
    let app: Registry = area
        .registry()
        .with_prefix("app")
        .unwrap()
        .with_const_labels(&[("env", "prod")])
        .unwrap();
    Families {
        requests: reg
            .counter(
                Opts::new(
                    "http_requests",
                    "Requests \"served\" \\ total.\nSecond line.",
                )
                .labels(&["path", "code"]),
            )
            .unwrap(),
        plain: reg.counter(Opts::new("jobs", "Jobs.").eager(true)).unwrap(),
        gauges: MODES
            .iter()
            .map(|&m| {
                let f = reg
                    .gauge(
                        Opts::new(format!("temperature_{}", m.as_str()), "A gauge.")
                            .unit("celsius")
                            .labels(&["room"]),
                        m,
                    )
                    .unwrap();
                (m, f)
            })
            .collect(),
        latency: reg
            .histogram(
                Opts::new("latency", "Latency.")
                    .unit("seconds")
                    .labels(&["method"]),
                &BUCKETS,
            )
            .unwrap(),
        sizes: reg
            .summary(
                Opts::new("payload", "Payload sizes.").unit("bytes"),
                &SummaryOpts::quantiles(&QUANTILES),
            )
            .unwrap(),
        windowed: reg
            .summary(
                Opts::new("rpc", "RPC latency.").labels(&["op"]),
                &SummaryOpts::quantiles(&[0.5, 0.99]).window(WINDOW, 4),
            )
            .unwrap(),
        build: reg.info(Opts::new("build", "Build information.")).unwrap(),
        states: reg
            .state_set(
                Opts::new("unit_state", "Unit state.").labels(&["unit"]),
                &["starting", "running", "stopped"],
            )
            .unwrap(),
        app_hits: app
            .counter(Opts::new("hits", "Hits.").labels(&["route"]))
            .unwrap(),
    }
}

/// What process `n` (0 = the test itself, 1 and 2 = children) writes.
fn write_as(area: &Area, n: u32) {
    let f = families(area);
    let k = f64::from(n);
    for (path, code) in [("/", "200"), ("/api/ü", "500"), ("/q\"\\\n", "404")] {
        let c = f.requests.labels(&[path, code]).unwrap();
        for _ in 0..=n {
            c.inc();
        }
        c.add(0.25 * (k + 1.0)).unwrap();
    }
    let plain = f.plain.get().unwrap();
    plain.add(1.5 + k).unwrap();
    // The integer cell past 2^53 by the end (docs/FORMAT.md §8.2): a total
    // of f64(int) + frac, as the render computes it.
    plain.add((1u64 << 52) as f64).unwrap();
    plain.inc();
    for (i, (mode, g)) in f.gauges.iter().enumerate() {
        let v = 10.0 * k - 3.5 + i as f64;
        g.labels(&["kitchen"]).unwrap().set(v);
        if *mode != GaugeMode::All {
            g.labels(&["hall"]).unwrap().set(-v / 3.0);
        }
    }
    for (m, obs) in [
        ("get", &[0.05, 0.1, 0.3, 0.7, 3.0, 9.0][..]),
        ("post", &[0.5, 5.0, 1e9][..]),
    ] {
        let h = f.latency.labels(&[m]).unwrap();
        for &v in obs {
            h.observe(v * (k + 1.0)).unwrap();
        }
    }
    let s = f.sizes.get().unwrap();
    for i in 0..50 {
        s.observe(f64::from(i) * 3.7 + k * 100.0).unwrap();
    }
    s.observe(0.0).unwrap();
    s.observe(-2.5).unwrap();
    let w = f.windowed.labels(&["read"]).unwrap();
    for v in [0.001, 0.02, 0.3 + k] {
        w.observe(v).unwrap();
    }
    let _ = f.windowed.labels(&["write"]).unwrap();
    f.app_hits.labels(&["/a"]).unwrap().inc();
    if n == 0 {
        f.build
            .get()
            .unwrap()
            .set(&[("version", "1.2.3"), ("commit", "abc\"def")])
            .unwrap();
        f.states.labels(&["web"]).unwrap().set("running").unwrap();
        f.states.labels(&["db"]).unwrap().set("stopped").unwrap();
        let _ = f.states.labels(&["cache"]).unwrap();
        f.requests.labels(&["/gone", "410"]).unwrap().inc();
        promshm::flush();
        assert!(f.requests.remove(&["/gone", "410"]).unwrap());
    }
    promshm::flush();
}

/// Run as a child process by `python_reader_agrees_with_rust`: write, flush, exit.
#[test]
fn python_reader_child_worker() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (n, path) = spec.split_once(':').unwrap();
    let area = Area::open(path, OpenMode::ReadWrite).unwrap();
    write_as(&area, n.parse().unwrap());
}

fn have_python() -> bool {
    matches!(Command::new("python3").arg("--version").output(), Ok(o) if o.status.success())
}

fn run_reader(area: &Path, now_ms: u64) -> Json {
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/promshm_read.py"))
        .arg(area)
        .arg("--now-ms")
        .arg(now_ms.to_string())
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "promshm_read.py failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_json(std::str::from_utf8(&out.stdout).unwrap())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn family<'j>(doc: &'j Json, name: &str) -> &'j Json {
    doc.get("families")
        .arr()
        .iter()
        .find(|f| f.get("name").str() == name)
        .unwrap_or_else(|| panic!("the reader did not report family {name}"))
}

fn series<'j>(fam: &'j Json, labels: &[(&str, &str)]) -> &'j Json {
    fam.get("series")
        .arr()
        .iter()
        .find(|s| {
            let l = s.get("labels").obj();
            l.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv.str() == *v))
        })
        .unwrap_or_else(|| panic!("no series {labels:?} in {fam:?}"))
}

/// Compare everything the reader printed with the Rust API.
fn compare(area: &Area, doc: &Json, now: u64, reaped: bool) {
    let f = families(area);
    assert_eq!(
        doc.get("format_version").u64(),
        u64::from(area.stats().format_version)
    );
    assert_eq!(doc.get("pages").u64(), u64::from(area.pages()));
    assert_eq!(doc.get("bad_records").u64(), 0, "{doc:?}");

    // Workers.
    let mut rust_workers: Vec<(u64, u64)> = area
        .workers()
        .iter()
        .map(|w| (u64::from(w.slot), u64::from(w.pid)))
        .collect();
    rust_workers.sort();
    let py_workers: Vec<(u64, u64)> = doc
        .get("workers")
        .arr()
        .iter()
        .map(|w| (w.get("slot").u64(), w.get("pid").u64()))
        .collect();
    assert_eq!(py_workers, rust_workers);
    assert_eq!(py_workers.len(), if reaped { 1 } else { 3 });

    // Counters: exact.
    let req = family(doc, "http_requests");
    assert_eq!(req.get("type").str(), "counter");
    assert_eq!(
        req.get("help").str(),
        "Requests \"served\" \\ total.\nSecond line."
    );
    assert_eq!(
        req.get("series").arr().len(),
        3,
        "the removed series is not reported"
    );
    for (path, code) in [("/", "200"), ("/api/ü", "500"), ("/q\"\\\n", "404")] {
        let want = f.requests.labels(&[path, code]).unwrap().get();
        let got = series(req, &[("path", path), ("code", code)])
            .get("value")
            .f64();
        assert!(same(want, got), "{path}: rust {want}, python {got}");
    }
    let jobs = series(family(doc, "jobs"), &[]).get("value").f64();
    assert!(same(jobs, f.plain.get().unwrap().get()));
    // Processes 0, 1, 2: an integer cell of 3 * 2^52 + 3 (past 2^53), an
    // f64 cell of 1.5 + 2.5 + 3.5.
    assert_eq!(jobs, (3 * (1u64 << 52) + 3) as f64 + 7.5);
    let hits = series(family(doc, "app_hits"), &[("env", "prod"), ("route", "/a")]);
    assert!(same(
        hits.get("value").f64(),
        f.app_hits.labels(&["/a"]).unwrap().get()
    ));
    assert!(same(hits.get("value").f64(), 3.0));

    // Gauges: every mode, exact.
    for (mode, g) in &f.gauges {
        let fam = family(doc, &format!("temperature_{}_celsius", mode.as_str()));
        assert_eq!(fam.get("gauge_mode").str(), mode.as_str());
        assert_eq!(fam.get("unit").str(), "celsius");
        for room in ["kitchen", "hall"] {
            if *mode == GaugeMode::All && room == "hall" {
                continue;
            }
            let want = g.labels(&[room]).unwrap().get();
            let s = series(fam, &[("room", room)]);
            let got = s.get("value").f64();
            assert!(
                same(want, got),
                "{mode:?} {room}: rust {want}, python {got}"
            );
            if *mode == GaugeMode::All {
                let workers = s.get("workers").obj();
                assert_eq!(workers.len(), if reaped { 1 } else { 3 }, "{workers:?}");
                let sum: f64 = workers.iter().map(|(_, v)| v.f64()).sum();
                assert!(same(sum, want));
            }
        }
    }

    // Histograms: buckets from the observations, count and sum from the API.
    let lat = family(doc, "latency_seconds");
    assert_eq!(
        lat.get("buckets")
            .arr()
            .iter()
            .map(Json::f64)
            .collect::<Vec<_>>(),
        BUCKETS
    );
    for (m, obs) in [
        ("get", &[0.05, 0.1, 0.3, 0.7, 3.0, 9.0][..]),
        ("post", &[0.5, 5.0, 1e9][..]),
    ] {
        let s = series(lat, &[("method", m)]);
        let mut want = [0u64; 5];
        for n in 0..3 {
            for &v in obs {
                let v = v * (f64::from(n) + 1.0);
                let i = BUCKETS.iter().position(|&b| v <= b).unwrap_or(4);
                for c in &mut want[i..] {
                    *c += 1;
                }
            }
        }
        let got: Vec<(f64, u64)> = s
            .get("buckets")
            .arr()
            .iter()
            .map(|b| (b.arr()[0].f64(), b.arr()[1].u64()))
            .collect();
        let bounds: Vec<f64> = BUCKETS.iter().copied().chain([f64::INFINITY]).collect();
        assert_eq!(got, bounds.into_iter().zip(want).collect::<Vec<_>>(), "{m}");
        let (count, sum) = f.latency.labels(&[m]).unwrap().get();
        assert_eq!(s.get("count").u64(), count);
        assert_eq!(count, want[4]);
        assert!(same(s.get("sum").f64(), sum), "{m}: sum");
    }

    // Summaries: count and sum exact, quantiles exactly what the Rust sketch gives.
    let sizes = f.sizes.get().unwrap();
    let s = series(family(doc, "payload_bytes"), &[]);
    let (count, sum) = sizes.get();
    assert_eq!(s.get("count").u64(), count);
    assert_eq!(count, 3 * 52);
    assert!(same(s.get("sum").f64(), sum));
    let want = sizes.quantiles(&QUANTILES);
    let got: Vec<(f64, f64)> = s
        .get("quantiles")
        .arr()
        .iter()
        .map(|p| (p.arr()[0].f64(), p.arr()[1].f64()))
        .collect();
    assert_eq!(got.len(), QUANTILES.len());
    for ((q, v), (wq, wv)) in got.iter().zip(QUANTILES.iter().zip(&want)) {
        assert!(
            same(*q, *wq) && same(*v, *wv),
            "q {q}: rust {wv}, python {v}"
        );
    }
    let rpc = family(doc, "rpc");
    assert_eq!(rpc.get("age_buckets").u64(), 4);
    assert_eq!(rpc.get("max_age_ms").u64(), WINDOW.as_millis() as u64);
    for op in ["read", "write"] {
        let h = f.windowed.labels(&[op]).unwrap();
        let s = series(rpc, &[("op", op)]);
        let (count, sum) = h.get();
        assert_eq!(s.get("count").u64(), count);
        assert!(same(s.get("sum").f64(), sum));
        let want = h.quantiles(&[0.5, 0.99]);
        let got: Vec<f64> = s
            .get("quantiles")
            .arr()
            .iter()
            .map(|p| p.arr()[1].f64())
            .collect();
        assert!(
            got.iter().zip(&want).all(|(a, b)| same(*a, *b)),
            "{op} at {now}: rust {want:?}, python {got:?}"
        );
    }

    // Info and state set.
    let build = series(family(doc, "build"), &[]);
    let pairs: Vec<(String, String)> = build
        .get("info")
        .arr()
        .iter()
        .map(|p| (p.arr()[0].str().to_string(), p.arr()[1].str().to_string()))
        .collect();
    assert_eq!(Some(pairs), f.build.get().unwrap().get());
    let states = family(doc, "unit_state");
    for unit in ["web", "db", "cache"] {
        let want = f.states.labels(&[unit]).unwrap().get().to_string();
        let s = series(states, &[("unit", unit)]);
        let set: Vec<&str> = s
            .get("states")
            .obj()
            .iter()
            .filter(|(_, v)| *v == Json::Bool(true))
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(set, [want.as_str()], "{unit}");
    }

    // Nothing the reader reported is unknown to the renderer, and vice versa
    // (rendered read-only: a read-write render would reap the dead children).
    let ro = Area::open(area.path().unwrap(), OpenMode::ReadOnly).unwrap();
    let text = ro
        .registry()
        .without_self_metrics()
        .render_to_string(promshm::Format::OpenMetrics)
        .unwrap();
    let rendered: BTreeMap<&str, ()> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| (l.split(' ').next().unwrap(), ()))
        .collect();
    let reported: BTreeMap<&str, ()> = doc
        .get("families")
        .arr()
        .iter()
        .map(|f| (f.get("name").str(), ()))
        .collect();
    assert_eq!(rendered, reported);
}

#[test]
fn python_reader_agrees_with_rust() {
    if !have_python() {
        if std::env::var_os("CI").is_some() {
            panic!("python3 is required in CI for the FORMAT.md reader test");
        }
        println!("SKIP python_reader_agrees_with_rust: python3 not found");
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("python-reader-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("area.promshm");
    let area = Area::create(
        &path,
        &AreaOptions {
            pages: 160,
            max_workers: 8,
            eager: false,
        },
    )
    .unwrap();
    families(&area);

    // Two children write and exit (their slots stay until reaped), then this process.
    for n in 1..=2 {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "python_reader_child_worker",
                "--exact",
                "--test-threads=1",
                "-q",
            ])
            .env(CHILD_ENV, format!("{n}:{}", path.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "child {n}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::thread::sleep(Duration::from_millis(5));
    write_as(&area, 0);

    for reaped in [false, true] {
        if reaped {
            assert_eq!(area.reap_dead_workers().unwrap(), 2);
        }
        // The windowed quantiles depend on the time: retry across an epoch change.
        let epoch = |t: u64| t / (WINDOW.as_millis() as u64 / 4);
        loop {
            let now = now_ms();
            let doc = run_reader(&path, now);
            if epoch(now) != epoch(now_ms()) {
                continue;
            }
            compare(&area, &doc, now, reaped);
            break;
        }
    }

    // The reader refuses what the Rust library refuses, with distinct statuses.
    let bytes = std::fs::read(&path).unwrap();
    let mut bad_magic = bytes.clone();
    bad_magic[0] = b'X';
    let mut truncated = bytes.clone();
    truncated.truncate(bytes.len() - 4096);
    for (name, data, status) in [
        ("magic", bad_magic, 2),
        ("truncated", truncated, 3),
        ("short", bytes[..8192].to_vec(), 2),
    ] {
        let p = dir.join(format!("{name}.promshm"));
        std::fs::write(&p, &data).unwrap();
        let out = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/promshm_read.py"))
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(status), "{name}: {out:?}");
        assert!(Area::open(&p, OpenMode::ReadOnly).is_err());
    }
    if let Some(keep) = std::env::var_os("PROMSHM_KEEP_AREA") {
        std::fs::copy(&path, keep).unwrap();
    }
    drop(area);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- native histograms (type 7) ---------------------------------------------------

/// `(index, count)` of the populated buckets that protobuf spans and deltas encode.
fn pb_buckets(
    spans: &[promshm::encoding::protobuf::proto::BucketSpan],
    deltas: &[i64],
) -> Vec<(i64, u64)> {
    let (mut out, mut idx, mut count, mut d) = (Vec::new(), 0i64, 0i64, deltas.iter());
    for s in spans {
        idx += i64::from(s.offset());
        for _ in 0..s.length() {
            count += d.next().unwrap();
            if count != 0 {
                out.push((idx, count as u64));
            }
            idx += 1;
        }
    }
    out
}

fn json_buckets(j: &Json) -> Vec<(i64, u64)> {
    j.arr()
        .iter()
        .map(|b| (b.arr()[0].i64(), b.arr()[1].u64()))
        .collect()
}

#[test]
fn python_reader_reads_native_histograms() {
    if !have_python() {
        if std::env::var_os("CI").is_some() {
            panic!("python3 is required in CI for the FORMAT.md reader test");
        }
        println!("SKIP python_reader_reads_native_histograms: python3 not found");
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("python-reader-native-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("area.promshm");
    let area = Area::create(&path, &AreaOptions::with_pages(160)).unwrap();
    let reg = area.registry();
    let wide = reg
        .native_histogram(
            Opts::new("nh_wide", "Default options.").labels(&["kind"]),
            promshm::NativeOpts::new(),
        )
        .unwrap();
    // Factor 2 (schema 0), at most 2 buckets shown: the render reduces.
    let narrow = reg
        .native_histogram(
            Opts::new("nh_narrow", "Reduced.").unit("seconds"),
            promshm::NativeOpts::new()
                .bucket_factor(2.0)
                .unwrap()
                .zero_threshold(0.5)
                .max_buckets(2),
        )
        .unwrap();
    let mixed = wide.labels(&["mixed"]).unwrap();
    for (v, times) in [
        (0.0, 3),
        (1e-300, 1),
        (-0.75, 2),
        (1.0, 5),
        (1.09, 1),
        (3.0, 4),
        (-1e20, 1),
        (1e20, 2),
        (f64::INFINITY, 1),
    ] {
        for _ in 0..times {
            mixed.observe(v).unwrap();
        }
    }
    let _empty = wide.labels(&["empty"]).unwrap();
    let n = narrow.get().unwrap();
    for v in [0.25, 1.0, 4.0, 4.0, 100.0, -8.0] {
        n.observe(v).unwrap();
    }

    let doc = run_reader(&path, now_ms());
    assert_eq!(doc.get("bad_records").u64(), 0);
    let ro = Area::open(&path, OpenMode::ReadOnly).unwrap();
    let mut page = Vec::new();
    ro.registry()
        .without_self_metrics()
        .render(&mut page, promshm::Format::Protobuf)
        .unwrap();
    let fams = promshm::encoding::protobuf::decode_families(&page).unwrap();
    let mut series_seen = 0;
    for mf in &fams {
        let fam = family(&doc, mf.name());
        assert_eq!(fam.get("type").str(), "native_histogram");
        for m in &mf.metric {
            let labels: Vec<(&str, &str)> = m.label.iter().map(|l| (l.name(), l.value())).collect();
            let s = series(fam, &labels);
            let h = m.histogram.as_ref().unwrap();
            let what = format!("{} {labels:?}", mf.name());
            assert_eq!(s.get("schema").i64(), i64::from(h.schema()), "{what}");
            assert!(
                same(s.get("zero_threshold").f64(), h.zero_threshold()),
                "{what}"
            );
            assert_eq!(s.get("zero_count").u64(), h.zero_count(), "{what}");
            assert_eq!(s.get("count").u64(), h.sample_count(), "{what}");
            assert!(same(s.get("sum").f64(), h.sample_sum()), "{what}");
            assert_eq!(
                json_buckets(s.get("positive")),
                pb_buckets(&h.positive_span, &h.positive_delta),
                "{what}"
            );
            assert_eq!(
                json_buckets(s.get("negative")),
                pb_buckets(&h.negative_span, &h.negative_delta),
                "{what}"
            );
            series_seen += 1;
        }
    }
    assert_eq!(series_seen, 3);
    // The values themselves, independently of the render.
    let s = series(family(&doc, "nh_narrow_seconds"), &[]);
    // Schema 0 buckets {0: 1, 2: 2, 7: 1} and negative {3: 1}: 4 > 2, so
    // halved (i -> (i+1)>>1): -1: {0, 1, 4} {2}; -2: {0, 1, 2} {1};
    // -3: {0: 1, 1: 3} {1}, still 3 > 2; -4 is the lowest schema.
    assert_eq!(s.get("schema").i64(), -4);
    assert_eq!(json_buckets(s.get("positive")), [(0, 1), (1, 3)]);
    assert_eq!(json_buckets(s.get("negative")), [(1, 1)]);
    assert_eq!((s.get("zero_count").u64(), s.get("count").u64()), (1, 6));
    let m = series(family(&doc, "nh_wide"), &[("kind", "mixed")]);
    assert_eq!((m.get("zero_count").u64(), m.get("count").u64()), (4, 20));
    assert_eq!(m.get("sum").f64(), f64::INFINITY);
    drop(area);
    let _ = std::fs::remove_dir_all(&dir);
}
