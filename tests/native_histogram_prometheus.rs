//! End to end: the real Prometheus on this machine (Debian's
//! `/usr/bin/prometheus`, started here on 127.0.0.1 with
//! `--enable-feature=native-histograms` and its own temporary directory)
//! scrapes a small HTTP server of this test that serves the protobuf render
//! of an area into which 4 worker processes observed; `histogram_count()`
//! and `histogram_sum()` of the native histogram come back exact, and
//! `histogram_quantile(0.5, ...)` lands in the median's bucket.
//!
//! Exemplars too: Prometheus runs with `exemplar-storage` as well, the
//! workers also increment a counter and observe the native histogram with
//! exemplars naming the worker and the round, and `/api/v1/query_exemplars`
//! returns exemplars of both series, each one a worker wrote whole (its
//! value is what that round gave).
//!
//! Both views of one family: a native histogram with classic buckets too
//! (`native_histogram_with_buckets`), 4 workers observing, scraped by a
//! second Prometheus twice: in protobuf (job `native`: Prometheus stores the
//! native histogram; `histogram_count()`/`histogram_sum()` exact) and in
//! text 0.0.4 from the same area (job `classic`: the real classic buckets;
//! every `_bucket`, `sum(..._bucket)`, `_count` and `_sum` exact). Debian's
//! Prometheus (2.42) has no `scrape_classic_histograms` (2.45+), which would
//! store the classic `_bucket` series of the protobuf scrape too; the
//! protobuf message's classic buckets are checked by the independent
//! decoder of bindings/python/tests/test_native_histogram.py instead.
//!
//! Without a `prometheus` binary the test is skipped, unless
//! `PROMSHM_REQUIRE_PROMETHEUS=1` (scripts/test.sh sets it), which makes a
//! missing binary a failure. Every wait is bounded.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use promshm::{Area, AreaOptions, Format, NativeOpts, Opts};

const WORKERS: usize = 4;
const ROUNDS: u64 = 500;
/// Dyadic values, so that the sum is exact in any order; sorted, the
/// median (6th of 11) is 1.
const VALUES: [f64; 11] = [
    -3.0, -0.5, 0.0, 0.125, 0.25, 1.0, 1.0625, 1.5, 2.0, 100.0, 4096.0,
];
/// Bound on Prometheus getting ready and on the values showing up.
const WAIT: Duration = Duration::from_secs(60);
const PROMETHEUS: &str = "/usr/bin/prometheus";

#[test]
fn child_entry() {
    child_main(|role| match role {
        "worker" => {
            let area = Area::create(env_area(), &AreaOptions::default()).unwrap();
            let h = family(&area).labels(&["GET"]).unwrap();
            let c = jobs(&area);
            let w = env_u64("PROMSHM_WORKER") as usize;
            for r in 0..ROUNDS as usize {
                let trace = format!("w{w}-r{r}");
                for k in 0..VALUES.len() {
                    let v = VALUES[(k + r + w) % VALUES.len()];
                    if k == 0 {
                        h.observe_with_exemplar(v, &[("trace_id", &trace)]).unwrap();
                    } else {
                        h.observe(v).unwrap();
                    }
                }
                c.add_with_exemplar((w + 1) as f64, &[("trace_id", &trace)])
                    .unwrap();
            }
            promshm::flush();
        }
        "dual_worker" => {
            let area = Area::create(env_area(), &AreaOptions::default()).unwrap();
            let h = dual_family(&area).labels(&["GET"]).unwrap();
            let w = env_u64("PROMSHM_WORKER") as usize;
            for r in 0..ROUNDS as usize {
                for k in 0..VALUES.len() {
                    h.observe(VALUES[(k + r + w) % VALUES.len()]).unwrap();
                }
            }
        }
        other => panic!("unknown role {other:?}"),
    });
}

fn family(area: &Area) -> promshm::Family<promshm::NativeHistogram> {
    area.registry()
        .native_histogram(
            Opts::new("e2e_latency_seconds", "Latency.").labels(&["method"]),
            NativeOpts::new(),
        )
        .unwrap()
}

/// Classic bounds of the family with both views, and how many of `VALUES`
/// each cumulative bucket holds (`+Inf` last).
const DUAL_BOUNDS: [f64; 4] = [0.0, 1.0, 2.0, 100.0];
const DUAL_CUMULATIVE: [u64; 5] = [3, 6, 9, 10, 11];

/// A native histogram with classic buckets too.
fn dual_family(area: &Area) -> promshm::Family<promshm::NativeHistogram> {
    area.registry()
        .native_histogram_with_buckets(
            Opts::new("e2e_dual_seconds", "Latency, both views.").labels(&["method"]),
            NativeOpts::new(),
            &DUAL_BOUNDS,
        )
        .unwrap()
}

/// The counter the workers increment with exemplars (worker `w` adds `w + 1`).
fn jobs(area: &Area) -> promshm::Counter {
    area.registry()
        .counter(Opts::new("e2e_jobs", "Jobs."))
        .unwrap()
        .get()
        .unwrap()
}

/// A server answering every request with the area's protobuf render
/// (`GET /text`: its text 0.0.4 render).
struct MetricsServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetricsServer {
    fn start(area: Area) -> MetricsServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(s) = conn {
                    let _ = serve_one(s, &area);
                }
            }
        });
        MetricsServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Read one request head, answer with the protobuf render.
fn serve_one(mut s: TcpStream, area: &Area) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let format = if head.starts_with(b"GET /text ") {
        Format::Prometheus
    } else {
        Format::Protobuf
    };
    let mut body = Vec::new();
    area.registry()
        .render(&mut body, format)
        .map_err(std::io::Error::other)?;
    write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        format.content_type(),
        body.len()
    )?;
    s.write_all(&body)
}

/// Prometheus, SIGKILLed and reaped on drop.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Prometheus scraping job `native` (protobuf) of 127.0.0.1:`target_port`,
/// and with `classic_job` also job `classic` (`/text`: text 0.0.4).
fn start_prometheus(dir: &Path, target_port: u16, classic_job: bool) -> (Prometheus, u16) {
    let cfg = dir.join("prometheus.yml");
    let mut jobs = format!(
        "  - job_name: native\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
    );
    if classic_job {
        jobs.push_str(&format!(
            "  - job_name: classic\n    metrics_path: /text\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
        ));
    }
    std::fs::write(
        &cfg,
        format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{jobs}"),
    )
    .unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--enable-feature=native-histograms,exemplar-storage")
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start prometheus");
    let prom = Prometheus(child);
    poll("prometheus ready", || {
        get(port, "/-/ready")
            .filter(|(st, _)| *st == 200)
            .map(|_| ())
    });
    (prom, port)
}

/// One GET to 127.0.0.1:`port`: status and body.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// The value of an instant query with exactly one result series.
fn query(port: u16, q: &str) -> Option<f64> {
    let enc: String = q
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let (status, body) = get(port, &format!("/api/v1/query?query={enc}"))?;
    // Chunked or not, the JSON is in the body; one series: one "value".
    if status != 200 || body.matches("\"value\":[").count() != 1 {
        return None;
    }
    let after = body.split("\"value\":[").nth(1)?;
    let v = after.split('"').nth(1)?;
    v.parse().ok()
}

/// `(trace_id, value)` of every exemplar `/api/v1/query_exemplars` returns
/// for `q` over the last hour.
fn exemplars(port: u16, q: &str) -> Option<Vec<(String, f64)>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let path = format!(
        "/api/v1/query_exemplars?query={q}&start={}&end={}",
        now - 3600,
        now + 60
    );
    let (status, body) = get(port, &path)?;
    if status != 200 {
        return None;
    }
    // `"labels":{"trace_id":"w1-r2"},"value":"3","timestamp":...` per exemplar.
    let mut out = Vec::new();
    for part in body.split("\"trace_id\":\"").skip(1) {
        let trace = part.split('"').next()?.to_owned();
        let value = part.split("\"value\":\"").nth(1)?.split('"').next()?;
        out.push((trace, value.parse().ok()?));
    }
    (!out.is_empty()).then_some(out)
}

/// Poll `f` every 200 ms until it gives a value, at most `WAIT`.
fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "no {what} within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether the test can run: `false` (skip) without a `prometheus` binary,
/// a failure then if `PROMSHM_REQUIRE_PROMETHEUS=1`.
fn have_prometheus() -> bool {
    if !Path::new(PROMETHEUS).exists() {
        assert!(
            std::env::var("PROMSHM_REQUIRE_PROMETHEUS").as_deref() != Ok("1"),
            "{PROMETHEUS} is missing and PROMSHM_REQUIRE_PROMETHEUS=1"
        );
        eprintln!("skipped: no {PROMETHEUS}");
        return false;
    }
    true
}

/// Run `WORKERS` children of `role` on the area at `path`.
fn run_workers(role: &str, path: &Path) {
    let mut workers: Vec<ChildProc> = (0..WORKERS)
        .map(|w| {
            ChildProc::spawn(
                role,
                &format!("{role} {w}"),
                &[
                    (AREA_ENV, path.to_str().unwrap().to_string()),
                    ("PROMSHM_WORKER", w.to_string()),
                ],
            )
        })
        .collect();
    run_children(&mut workers, WAIT);
}

/// One family with native and classic buckets: the native histogram of a
/// protobuf scrape and the classic buckets of a text scrape, all exact.
#[test]
fn prometheus_scrapes_native_and_classic_buckets_of_one_family() {
    if !have_prometheus() {
        return;
    }
    let dir = TempDir::new("dual-prom");
    let path = dir.join("area");
    let area = Area::create(&path, &AreaOptions::default()).unwrap();
    let _family = dual_family(&area);
    run_workers("dual_worker", &path);

    let server = MetricsServer::start(area.clone());
    let (_prom, port) = start_prometheus(dir.path(), server.port, true);
    let n = ROUNDS * WORKERS as u64;
    let count = (n * VALUES.len() as u64) as f64;
    let sum = n as f64 * VALUES.iter().sum::<f64>();
    let native = "e2e_dual_seconds{job=\"native\",method=\"GET\"}";
    let got_count = poll("histogram_count", || {
        query(port, &format!("histogram_count({native})")).filter(|&c| c == count)
    });
    let got_sum = poll("histogram_sum", || {
        query(port, &format!("histogram_sum({native})"))
    });
    assert_eq!((got_count, got_sum), (count, sum));
    // The classic view, from the text scrape of the same family.
    let classic = |what: &str| format!("e2e_dual_seconds_{what}{{job=\"classic\",method=\"GET\"}}");
    let total: u64 = DUAL_CUMULATIVE.iter().map(|c| c * n).sum();
    let got_total = poll("sum of the classic buckets", || {
        query(port, &format!("sum({})", classic("bucket"))).filter(|&t| t == total as f64)
    });
    for (i, want) in DUAL_CUMULATIVE.iter().enumerate() {
        let le = DUAL_BOUNDS
            .get(i)
            .map_or("+Inf".to_owned(), |b| format!("{b:?}"));
        let sel = format!("e2e_dual_seconds_bucket{{job=\"classic\",method=\"GET\",le=\"{le}\"}}");
        assert_eq!(query(port, &sel), Some((want * n) as f64), "{sel}");
    }
    assert_eq!(query(port, &classic("count")), Some(count));
    assert_eq!(query(port, &classic("sum")), Some(sum));
    // The median, 1, is the top of the classic bucket (0, 1]: Prometheus
    // interpolates inside it (rank 5.5 of 11: 0 + (5.5 - 3) / 3).
    let median = query(
        port,
        &format!("histogram_quantile(0.5, {})", classic("bucket")),
    )
    .unwrap();
    assert!((median - 2.5 / 3.0).abs() < 1e-9, "median {median}");
    eprintln!(
        "prometheus: native count {got_count}, sum {got_sum}; classic buckets sum {got_total}, median {median}"
    );
}

#[test]
fn prometheus_scrapes_exact_native_histograms() {
    if !have_prometheus() {
        return;
    }
    let dir = TempDir::new("native-prom");
    let path = dir.join("area");
    let area = Area::create(&path, &AreaOptions::default()).unwrap();
    let _family = family(&area);
    let jobs_counter = jobs(&area);
    run_workers("worker", &path);

    let server = MetricsServer::start(area.clone());
    let (_prom, port) = start_prometheus(dir.path(), server.port, false);
    let n = ROUNDS * WORKERS as u64;
    let count = (n * VALUES.len() as u64) as f64;
    let sum = n as f64 * VALUES.iter().sum::<f64>();
    let sel = "e2e_latency_seconds{job=\"native\",method=\"GET\"}";
    let got_count = poll("histogram_count", || {
        query(port, &format!("histogram_count({sel})")).filter(|&c| c == count)
    });
    let got_sum = poll("histogram_sum", || {
        query(port, &format!("histogram_sum({sel})"))
    });
    let median = poll("histogram_quantile", || {
        query(port, &format!("histogram_quantile(0.5, {sel})"))
    });
    eprintln!("prometheus: count {got_count}, sum {got_sum}, median {median}");
    assert_eq!(got_count, count);
    assert_eq!(got_sum, sum);
    // The median, 1, is the top of bucket 0 at schema 3 ((2^-1/8, 1]);
    // Prometheus interpolates inside the bucket it picks: within one
    // bucket factor (2^(1/8)) of it.
    let base = 2f64.powf(0.125);
    assert!(
        median > 1.0 / base / base && median <= base * base,
        "median {median}"
    );

    // Exemplars: the counter's and the native histogram's, each whole.
    let total: f64 = (0..WORKERS).map(|w| ((w + 1) as u64 * ROUNDS) as f64).sum();
    assert_eq!(jobs_counter.get(), total);
    let parse = |trace: &str| -> (usize, usize) {
        let (w, r) = trace.split_once('-').expect("w-r");
        (w[1..].parse().unwrap(), r[1..].parse().unwrap())
    };
    let counter_ex = poll("counter exemplars", || exemplars(port, "e2e_jobs_total"));
    for (trace, value) in &counter_ex {
        let (w, r) = parse(trace);
        assert!(w < WORKERS && (r as u64) < ROUNDS, "{trace}");
        assert_eq!(*value, (w + 1) as f64, "{trace}: a mixed exemplar");
    }
    let native_ex = poll("native histogram exemplars", || {
        exemplars(port, "e2e_latency_seconds")
    });
    for (trace, value) in &native_ex {
        let (w, r) = parse(trace);
        assert!(w < WORKERS && (r as u64) < ROUNDS, "{trace}");
        assert_eq!(
            *value,
            VALUES[(r + w) % VALUES.len()],
            "{trace}: a mixed exemplar"
        );
    }
    eprintln!(
        "prometheus: {} counter exemplars, {} native histogram exemplars",
        counter_ex.len(),
        native_ex.len()
    );
}
