//! Against the real servers from Debian's `prometheus` and
//! `prometheus-pushgateway` packages, on loopback, each started here with a
//! temp data dir and always stopped:
//! - a Prometheus scraping `promshm serve` while 4 worker processes update
//!   the area: the exact final counters and histogram buckets;
//! - a Prometheus (with `--enable-feature=native-histograms`, which makes
//!   2.x prefer the protobuf format; 3.x says `scrape_protocols:
//!   [PrometheusProto]`) scraping `promshm serve` over protobuf while 4
//!   worker processes update the area: every type, exact values;
//! - a Prometheus receiving `promshm remote-write`: exact values;
//! - a Prometheus with native histograms receiving `promshm remote-write`
//!   of a native histogram as a histogram sample: exact count, sum and
//!   zero bucket, the sample stored as a native histogram;
//! - a Prometheus with native histograms scraping `promshm serve` (over
//!   protobuf) while 4 worker processes observe into a native histogram:
//!   exact `histogram_count`/`histogram_sum`, `histogram_quantile(0.5)`
//!   within the schema's relative error;
//! - a Pushgateway receiving `promshm push`: the series with job and
//!   grouping labels.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn worker_entry() {
    worker_body();
}

#[test]
fn native_worker_entry() {
    native_worker_body();
}

/// Dyadic observations of the native workers (the sum is exact in any
/// order); sorted, the median (5th of 9) is 1.
const NATIVE_WORKER_VALUES: [f64; 9] = [0.0, 0.25, 0.5, 1.0, 1.0, 1.0, 2.0, 4.0, 1024.0];

fn native_family(area: &promshm::Area) -> promshm::Family<promshm::NativeHistogram> {
    area.registry()
        .native_histogram(
            promshm::Opts::new("app_native_seconds", "Native.").labels(&["path"]),
            promshm::NativeOpts::new().bucket_factor(1.1).unwrap(),
        )
        .unwrap()
}

/// Body of a native worker process (spawned by [`spawn_workers`] on
/// `native_worker_entry`): registers the native family itself and observes
/// [`NATIVE_WORKER_VALUES`] `per_worker` times over, pausing every round
/// so that scrapes see it move.
fn native_worker_body() {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return;
    };
    let mut parts = spec.split('|');
    let path = std::path::PathBuf::from(parts.next().unwrap());
    let idx: usize = parts.next().unwrap().parse().unwrap();
    let n: u64 = parts.next().unwrap().parse().unwrap();
    let area = promshm::Area::open(&path, promshm::OpenMode::ReadWrite).unwrap();
    let h = native_family(&area).labels(&["/"]).unwrap();
    for round in 0..n {
        for k in 0..NATIVE_WORKER_VALUES.len() {
            h.observe(NATIVE_WORKER_VALUES[(k + idx) % NATIVE_WORKER_VALUES.len()])
                .unwrap();
        }
        if round % 50 == 49 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    std::process::exit(0);
}

#[test]
fn prometheus_scrapes_native_histogram_from_serve() {
    if !have("prometheus") {
        return;
    }
    let dir = TempDir::new("scrape-native");
    let area = dir.path("a.promshm");
    let keep = promshm::Area::create(&area, &promshm::AreaOptions::with_pages(256)).unwrap();
    native_family(&keep);
    let (_serve, addr) = start_serve(&area, &["--no-self-metrics"]);
    // 2.x with native histograms asks for protobuf first (3.x would say
    // `scrape_protocols: [PrometheusProto]`); serve answers it.
    let r = http_get(addr, "/metrics", &[("Accept", PROMETHEUS_PROTOBUF_ACCEPT)]).unwrap();
    assert_eq!(
        r.header("content-type"),
        Some(promshm::Format::Protobuf.content_type())
    );
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: promshm\n    static_configs:\n      - targets: ['{addr}']\n"
    );
    let (_prom, port) = start_prometheus(&dir, &config, &["--enable-feature=native-histograms"]);
    const ROUNDS: u64 = 300;
    let mut workers = spawn_workers("native_worker_entry", &area, 4, ROUNDS);
    join_workers(&mut workers);

    let n = 4 * ROUNDS * NATIVE_WORKER_VALUES.len() as u64;
    let sum = NATIVE_WORKER_VALUES.iter().sum::<f64>() * (4 * ROUNDS) as f64;
    let one = |query: &str| -> Option<f64> {
        let r = prom_query(port, query)?;
        (r.len() == 1).then(|| r[0].1.parse().ok())?
    };
    let sel = "app_native_seconds{job=\"promshm\",path=\"/\"}";
    wait_for(
        Duration::from_secs(30),
        "the exact final count and sum",
        || {
            let count = one(&format!("histogram_count({sel})"));
            let got = one(&format!("histogram_sum({sel})"));
            if count != Some(n as f64) || got != Some(sum) {
                eprintln!("not yet: count {count:?} sum {got:?}");
                return None;
            }
            Some(())
        },
    );
    // Schema 3 (factor 1.1): a bucket spans a factor 2^(1/8), so any point
    // inside the median's bucket (0.917.., 1] is within that of the median.
    let q = one(&format!("histogram_quantile(0.5, {sel})")).unwrap();
    let rel = 2f64.powf(1.0 / 8.0) - 1.0;
    assert!(
        (q - 1.0).abs() / 1.0 <= rel,
        "median {q}, relative error > {rel}"
    );
    eprintln!("Prometheus: count {n}, sum {sum}, median {q}");
    // Only the native series: a protobuf scrape of it stores no classic ones.
    assert!(prom_query(port, "app_native_seconds_count")
        .unwrap()
        .is_empty());
}

/// `name{...}` series of a query, keyed by the value of `label`.
fn by_label(port: u16, query: &str, label: &str) -> Option<BTreeMap<String, String>> {
    Some(
        prom_query(port, query)?
            .into_iter()
            .map(|(l, v)| (l.get(label).cloned().unwrap_or_default(), v))
            .collect(),
    )
}

/// Histogram buckets of a query as (upper bound, count), sorted.
fn buckets(port: u16, query: &str) -> Option<Vec<(f64, String)>> {
    let mut b: Vec<(f64, String)> = prom_query(port, query)?
        .into_iter()
        .map(|(l, v)| (l["le"].parse::<f64>().unwrap(), v))
        .collect();
    b.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(b)
}

fn expect_buckets(counts: [u64; 4]) -> Vec<(f64, String)> {
    [0.1, 0.5, 1.0, f64::INFINITY]
        .into_iter()
        .zip(counts.map(|c| c.to_string()))
        .collect()
}

#[test]
fn prometheus_scrapes_serve_while_workers_update() {
    if !have("prometheus") {
        return;
    }
    let dir = TempDir::new("scrape");
    let area_path = dir.path("a.promshm");
    let _area = promshm::Area::create(&area_path, &promshm::AreaOptions::with_pages(256)).unwrap();
    let (_serve, addr) = start_serve(&area_path, &[]);
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: promshm\n    static_configs:\n      - targets: ['{addr}']\n"
    );
    let (_prom, port) = start_prometheus(&dir, &config, &[]);
    wait_for(Duration::from_secs(30), "the first scrape", || {
        by_label(port, "up{job=\"promshm\"}", "job")
            .filter(|m| m.get("promshm").is_some_and(|v| v == "1"))
    });

    const PER_WORKER: u64 = 2000;
    let started = Instant::now();
    let mut workers = spawn_workers("worker_entry", &area_path, 4, PER_WORKER);
    // Scrapes happen while the workers run.
    let seen_partial = wait_for(
        Duration::from_secs(30),
        "a scrape of a partial total",
        || {
            let m = by_label(port, "app_jobs_total", "kind")?;
            let a: u64 = m.get("a")?.parse().ok()?;
            Some(a)
        },
    );
    join_workers(&mut workers);
    eprintln!(
        "workers ran {:?}; a scrape saw {seen_partial} before they finished",
        started.elapsed()
    );

    let total = 4 * PER_WORKER;
    let expected_jobs: BTreeMap<String, String> = [
        ("a".to_string(), total.to_string()),
        ("b".to_string(), (total / 4).to_string()),
    ]
    .into();
    wait_for(Duration::from_secs(30), "the exact final values", || {
        let jobs = by_label(port, "app_jobs_total", "kind")?;
        let b = buckets(port, "app_latency_seconds_bucket")?;
        let count = prom_query(port, "app_latency_seconds_count")?;
        let ok = jobs == expected_jobs
            && b == expect_buckets([total / 4, total / 2, 3 * total / 4, total])
            && count.len() == 1
            && count[0].1 == total.to_string();
        if !ok {
            eprintln!("not yet: {jobs:?} {b:?} {count:?}");
        }
        ok.then_some(())
    });
    // promshm's own metrics came along.
    let families = prom_query(port, "promshm_families").unwrap();
    assert_eq!(families[0].1, "2");
}

/// The `Accept` header of Prometheus 2.x with `--enable-feature=native-histograms`.
const PROMETHEUS_PROTOBUF_ACCEPT: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// The type Prometheus recorded for a metric name (`/api/v1/metadata`).
fn metadata_type(port: u16, metric: &str) -> Option<String> {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let r = http_get(addr, &format!("/api/v1/metadata?metric={metric}"), &[]).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    Some(v["data"][metric][0]["type"].as_str()?.to_owned())
}

#[test]
fn prometheus_scrapes_serve_over_protobuf() {
    if !have("prometheus") {
        return;
    }
    let dir = TempDir::new("scrape-pb");
    let area = dir.path("a.promshm");
    let _keep = populate(&area);
    let (_serve, addr) = start_serve(&area, &[]);
    // What serve answers to the header this Prometheus sends.
    let r = http_get(addr, "/metrics", &[("Accept", PROMETHEUS_PROTOBUF_ACCEPT)]).unwrap();
    assert_eq!(
        r.header("content-type"),
        Some(promshm::Format::Protobuf.content_type())
    );
    let fams = promshm::encoding::protobuf::decode_families(&r.body).unwrap();
    let median = fams
        .iter()
        .find(|f| f.name() == "app_size_bytes")
        .and_then(|f| f.metric[0].summary.as_ref())
        .map(|s| s.quantile[0].value())
        .unwrap();

    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: promshm\n    static_configs:\n      - targets: ['{addr}']\n"
    );
    let (_prom, port) = start_prometheus(&dir, &config, &["--enable-feature=native-histograms"]);
    wait_for(Duration::from_secs(30), "the first scrape", || {
        by_label(port, "up{job=\"promshm\"}", "job")
            .filter(|m| m.get("promshm").is_some_and(|v| v == "1"))
    });
    // 4 worker processes add to the counter and the histogram meanwhile.
    const PER_WORKER: u64 = 1000;
    let mut workers = spawn_workers("worker_entry", &area, 4, PER_WORKER);
    join_workers(&mut workers);
    let total = 4 * PER_WORKER;
    // The sum as the page has it (the observations are not exact binary fractions).
    let r = http_get(addr, "/metrics", &[("Accept", PROMETHEUS_PROTOBUF_ACCEPT)]).unwrap();
    let fams = promshm::encoding::protobuf::decode_families(&r.body).unwrap();
    let sum = fams
        .iter()
        .find(|f| f.name() == "app_latency_seconds")
        .and_then(|f| f.metric[0].histogram.as_ref())
        .map(|h| h.sample_sum())
        .unwrap();

    let one = |query: &str| -> Option<String> {
        let r = prom_query(port, query)?;
        (r.len() == 1).then(|| r[0].1.clone())
    };
    wait_for(Duration::from_secs(30), "every type, exactly", || {
        let jobs = by_label(port, "app_jobs_total", "kind")?;
        let want: BTreeMap<String, String> = [
            ("a".to_string(), (4000 + total).to_string()),
            ("b".to_string(), (1000 + total / 4).to_string()),
        ]
        .into();
        let q = total / 4;
        let ok = jobs == want
            && buckets(port, "app_latency_seconds_bucket")?
                == expect_buckets([10 + q, 20 + 2 * q, 30 + 3 * q, 40 + total])
            && one("app_latency_seconds_count")? == (40 + total).to_string()
            && one("app_latency_seconds_sum")?.parse::<f64>().ok()? == sum
            && one("app_size_bytes_count")? == "100"
            && one("app_size_bytes_sum")? == "5050"
            && one("app_size_bytes{quantile=\"0.5\"}")?
                .parse::<f64>()
                .ok()?
                == median
            && one("app_temperature")? == "21.5"
            && one("app_build_info{version=\"1.2.3\"}")? == "1"
            && one("app_mode{app_mode=\"off\"}")? == "1"
            && one("app_mode{app_mode=\"on\"}")? == "0";
        if !ok {
            eprintln!("not yet: {jobs:?}");
        }
        ok.then_some(())
    });
    // Protobuf has no info or state-set type: gauges, where an OpenMetrics
    // scrape records `info` and `stateset`.
    assert_eq!(
        metadata_type(port, "app_build_info").as_deref(),
        Some("gauge")
    );
    assert_eq!(metadata_type(port, "app_mode").as_deref(), Some("gauge"));
    assert_eq!(
        metadata_type(port, "app_jobs_total").as_deref(),
        Some("counter")
    );
    assert_eq!(one("up{job=\"promshm\"}").as_deref(), Some("1"));
}

#[test]
fn remote_write_into_prometheus() {
    if !have("prometheus") {
        return;
    }
    let dir = TempDir::new("rw");
    let area = dir.path("a.promshm");
    let _keep = populate(&area);
    let a = area.to_str().unwrap();
    let (_prom, port) = start_prometheus(
        &dir,
        "global:\n  scrape_interval: 1m\n",
        &["--web.enable-remote-write-receiver"],
    );
    let url = format!("http://127.0.0.1:{port}/api/v1/write");

    let o = run(&[
        "remote-write",
        a,
        "--url",
        &url,
        "--namespace",
        "app",
        "--external-label",
        "source=rw",
        "--max-series-per-request",
        "5",
    ]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("sent 15 series in 3 requests"),
        "{o:?}"
    );

    let q = |query: &str| prom_query(port, query).unwrap();
    let jobs = by_label(port, "app_jobs_total{source=\"rw\"}", "kind").unwrap();
    assert_eq!(
        jobs,
        [
            ("a".to_string(), "4000".to_string()),
            ("b".to_string(), "1000".to_string())
        ]
        .into()
    );
    assert_eq!(
        buckets(port, "app_latency_seconds_bucket{source=\"rw\"}").unwrap(),
        expect_buckets([10, 20, 30, 40])
    );
    // The same `le` spelling a scrape of the OpenMetrics output stores.
    let les: Vec<String> = q("app_latency_seconds_bucket")
        .into_iter()
        .map(|(l, _)| l["le"].clone())
        .collect();
    assert!(les.contains(&"1.0".to_string()), "{les:?}");
    assert_eq!(q("app_latency_seconds_count")[0].1, "40");
    let sum: f64 = q("app_latency_seconds_sum")[0].1.parse().unwrap();
    assert!((sum - 30.5).abs() < 1e-9, "{sum}");
    assert_eq!(q("app_size_bytes_count")[0].1, "100");
    assert_eq!(q("app_size_bytes_sum")[0].1, "5050");
    let median: f64 = q("app_size_bytes{quantile=\"0.5\"}")[0].1.parse().unwrap();
    assert!((median - 50.0).abs() <= 1.0, "{median}");
    assert_eq!(q("app_temperature")[0].1, "21.5");
    assert_eq!(q("app_build_info{version=\"1.2.3\"}")[0].1, "1");
    assert_eq!(q("app_mode{app_mode=\"off\"}")[0].1, "1");
    assert_eq!(q("app_mode{app_mode=\"on\"}")[0].1, "0");
    assert!(
        q("promshm_families").is_empty(),
        "--namespace leaves them out"
    );
    let (labels, _) = &q("app_jobs_total{kind=\"a\"}")[0];
    assert_eq!(labels.get("source").map(String::as_str), Some("rw"));

    // Periodic: several snapshots, then a clean stop on SIGTERM.
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["remote-write", a, "--url", &url, "--interval", "300ms"])
        .args(["--external-label", "source=periodic"]);
    let mut g = ChildGuard::spawn("remote-write --interval", &mut cmd);
    wait_for(Duration::from_secs(20), "several snapshots", || {
        let r = prom_query(
            port,
            "count_over_time(app_jobs_total{kind=\"a\",source=\"periodic\"}[5m])",
        )?;
        (r.first()?.1.parse::<u32>().ok()? >= 3).then_some(())
    });
    let st = g
        .terminate(Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert!(st.success(), "{st}");

    // A 4xx is an error at once, not retried.
    let t = Instant::now();
    let o = run(&[
        "remote-write",
        a,
        "--url",
        &format!("http://127.0.0.1:{port}/api/v1/nope"),
        "--min-backoff",
        "1s",
    ]);
    assert_eq!(o.status.code(), Some(5), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("rejected (not retried)") && err.contains("HTTP 404"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(5));

    // An unreachable endpoint: retried with backoff, then a clear error.
    let o = run(&[
        "remote-write",
        a,
        "--url",
        &format!("http://127.0.0.1:{}/api/v1/write", free_port()),
        "--max-retries",
        "2",
        "--min-backoff",
        "50ms",
    ]);
    assert_eq!(o.status.code(), Some(5), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("retry 2/2") && err.contains("gave up after 2 retries"),
        "{err}"
    );
}

#[test]
fn remote_write_native_histogram_into_prometheus() {
    if !have("prometheus") {
        return;
    }
    let dir = TempDir::new("rw-native");
    let area = dir.path("a.promshm");
    const ROUNDS: u32 = 25;
    let _keep = populate_native(&area, ROUNDS);
    let (_prom, port) = start_prometheus(
        &dir,
        "global:\n  scrape_interval: 1m\n",
        &[
            "--web.enable-remote-write-receiver",
            "--enable-feature=native-histograms",
        ],
    );
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    let o = run(&[
        "remote-write",
        area.to_str().unwrap(),
        "--url",
        &url,
        "--no-self-metrics",
        "--external-label",
        "source=rw",
    ]);
    assert!(o.status.success(), "{o:?}");
    // One series: the histogram sample, not `_count`/`_sum`/`_bucket`.
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("sent 1 series in 1 requests"),
        "{o:?}"
    );
    let one = |query: &str| -> String {
        let r = prom_query(port, query).unwrap();
        assert_eq!(r.len(), 1, "{query}: {r:?}");
        r[0].1.clone()
    };
    let sel = "rw_native_seconds{path=\"/a\",source=\"rw\"}";
    let n = NATIVE_VALUES.len() as u32 * ROUNDS;
    let sum: f64 = NATIVE_VALUES.iter().sum::<f64>() * f64::from(ROUNDS);
    assert_eq!(one(&format!("histogram_count({sel})")), n.to_string());
    assert_eq!(
        one(&format!("histogram_sum({sel})"))
            .parse::<f64>()
            .unwrap(),
        sum
    );
    // 0 and 1e-300 are in the zero bucket [-1e-9, 1e-9]: 2 of 8; -3 is the
    // only negative value: the fraction at or below 0 is 3 of 8.
    assert_eq!(
        one(&format!("histogram_fraction(-1e-9, 1e-9, {sel})")),
        (2.0 / 8.0).to_string()
    );
    assert_eq!(
        one(&format!("histogram_fraction(-1e10, 1e-9, {sel})")),
        (3.0 / 8.0).to_string()
    );
    // Stored as a native histogram: no classic series came with it.
    assert!(prom_query(port, "rw_native_seconds_count")
        .unwrap()
        .is_empty());
    assert!(prom_query(port, "rw_native_seconds_bucket")
        .unwrap()
        .is_empty());
}

#[test]
fn push_to_pushgateway() {
    if !have("prometheus-pushgateway") {
        return;
    }
    let dir = TempDir::new("push");
    let area = dir.path("a.promshm");
    let _keep = populate(&area);
    let a = area.to_str().unwrap();
    let port = free_port();
    let mut cmd = std::process::Command::new("prometheus-pushgateway");
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        // Debian's default persists to /var/lib/prometheus: keep this one in memory.
        .arg("--persistence.file=")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _gw = ChildGuard::spawn("pushgateway", &mut cmd);
    wait_until_ready(port, "pushgateway");
    let gateway = format!("http://127.0.0.1:{port}");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();

    let o = run(&[
        "push",
        a,
        "--gateway",
        &gateway,
        "--job",
        "batch",
        "--grouping",
        "instance=web-1",
        "--grouping",
        "path=/var/x y",
        "--namespace",
        "app",
    ]);
    assert!(o.status.success(), "{o:?}");
    // Everything (self-metrics, info, state set, summary) under another job, by POST.
    let o = run(&[
        "push",
        a,
        "--gateway",
        &gateway,
        "--job",
        "all/of it",
        "--method",
        "post",
    ]);
    assert!(o.status.success(), "{o:?}");

    let text = http_get(addr, "/metrics", &[]).unwrap().text();
    let has = |name: &str, labels: &[&str], value: &str| {
        text.lines().any(|l| {
            l.starts_with(&format!("{name}{{"))
                && labels.iter().all(|x| l.contains(x))
                && (value.is_empty() || l.ends_with(&format!(" {value}")))
        })
    };
    let grouping = ["job=\"batch\"", "instance=\"web-1\"", "path=\"/var/x y\""];
    let with = |extra: &'static str| {
        let mut v = grouping.to_vec();
        v.push(extra);
        v
    };
    assert!(has("app_jobs_total", &with("kind=\"a\""), "4000"), "{text}");
    assert!(has("app_jobs_total", &with("kind=\"b\""), "1000"), "{text}");
    assert!(
        has("app_latency_seconds_bucket", &with("le=\"0.5\""), "20"),
        "{text}"
    );
    assert!(has("app_latency_seconds_count", &grouping, "40"), "{text}");
    assert!(
        has("app_build_info", &with("version=\"1.2.3\""), "1"),
        "{text}"
    );
    assert!(has("push_time_seconds", &grouping, ""), "{text}");
    assert!(
        has(
            "app_jobs_total",
            &["job=\"all/of it\"", "kind=\"a\""],
            "4000"
        ),
        "{text}"
    );
    assert!(
        has("promshm_families", &["job=\"all/of it\""], "6"),
        "{text}"
    );

    // Periodic push stops cleanly on SIGTERM.
    let mut cmd = std::process::Command::new(bin());
    cmd.args([
        "push",
        a,
        "--gateway",
        &gateway,
        "--job",
        "periodic",
        "--interval",
        "200ms",
    ]);
    let mut g = ChildGuard::spawn("push --interval", &mut cmd);
    wait_for(Duration::from_secs(20), "a periodic push", || {
        let t = http_get(addr, "/metrics", &[]).ok()?.text();
        t.contains("job=\"periodic\"").then_some(())
    });
    let st = g
        .terminate(Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert!(st.success(), "{st}");

    // The gateway rejects a push whose series contradict the grouping: exit 5, not retried.
    let o = run(&[
        "push",
        a,
        "--gateway",
        &gateway,
        "--job",
        "bad",
        "--grouping",
        "kind=zzz",
        "--namespace",
        "app",
    ]);
    assert_eq!(o.status.code(), Some(5), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("push rejected") && err.contains("HTTP 400"),
        "{err}"
    );

    // Unreachable gateway.
    let o = run(&[
        "push",
        a,
        "--gateway",
        &format!("http://127.0.0.1:{}", free_port()),
        "--job",
        "x",
        "--max-retries",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(5), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("push failed"),
        "{o:?}"
    );
}

/// `promshm remote-write` sends exemplars with their series: into a real
/// Prometheus (remote-write receiver, `exemplar-storage`, native
/// histograms), `/api/v1/query_exemplars` returns the counter's, each
/// classic bucket's and the native histogram's, with their labels and values.
#[test]
fn remote_write_exemplars_into_prometheus() {
    if !have("prometheus") {
        return;
    }
    let dir = TempDir::new("rw-exemplars");
    let path = dir.path("a.promshm");
    let area = promshm::Area::create(&path, &promshm::AreaOptions::with_pages(256)).unwrap();
    let reg = area.registry();
    let c = reg
        .counter(promshm::Opts::new("rw_ex_jobs", "Jobs."))
        .unwrap()
        .get()
        .unwrap();
    c.add_with_exemplar(3.0, &[("trace_id", "c1")]).unwrap();
    let h = reg
        .histogram(
            promshm::Opts::new("rw_ex_latency", "Latency.").eager(true),
            &[1.0],
        )
        .unwrap()
        .get()
        .unwrap();
    h.observe_with_exemplar(0.5, &[("trace_id", "h1")]).unwrap();
    h.observe_with_exemplar(7.0, &[("trace_id", "h2")]).unwrap();
    let n = reg
        .native_histogram(
            promshm::Opts::new("rw_ex_native", "Native."),
            promshm::NativeOpts::new(),
        )
        .unwrap()
        .get()
        .unwrap();
    n.observe_with_exemplar(1.5, &[("trace_id", "n1")]).unwrap();
    promshm::flush();
    let (_prom, port) = start_prometheus(
        &dir,
        "global:\n  scrape_interval: 1m\n",
        &[
            "--web.enable-remote-write-receiver",
            "--enable-feature=native-histograms,exemplar-storage",
        ],
    );
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    let o = run(&[
        "remote-write",
        path.to_str().unwrap(),
        "--url",
        &url,
        "--no-self-metrics",
    ]);
    assert!(o.status.success(), "{o:?}");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // (series name, trace_id, value) of every exemplar Prometheus holds for `q`.
    let exemplars = |q: &str| -> Vec<(String, String, f64)> {
        let path = format!(
            "/api/v1/query_exemplars?query={q}&start={}&end={}",
            now - 600,
            now + 600
        );
        let resp = http_get(addr, &path, &[]).unwrap();
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
        let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        let mut out = Vec::new();
        for s in v["data"].as_array().unwrap() {
            let name = s["seriesLabels"]["__name__"].as_str().unwrap().to_owned();
            for e in s["exemplars"].as_array().unwrap() {
                out.push((
                    name.clone(),
                    e["labels"]["trace_id"].as_str().unwrap().to_owned(),
                    e["value"].as_str().unwrap().parse().unwrap(),
                ));
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1));
        out
    };
    // Prometheus 2.42 stores a native histogram's exemplar only for a series
    // it has already (its receiver appends a request's exemplars before its
    // histogram samples): a second snapshot brings it; the others' second
    // copies are duplicates, which Prometheus keeps once.
    let o = run(&[
        "remote-write",
        path.to_str().unwrap(),
        "--url",
        &url,
        "--no-self-metrics",
    ]);
    assert!(o.status.success(), "{o:?}");
    let got = wait_for(Duration::from_secs(30), "exemplars", || {
        let mut all = exemplars("rw_ex_jobs_total");
        all.extend(exemplars("rw_ex_latency_bucket"));
        all.extend(exemplars("rw_ex_native"));
        (all.len() >= 4).then_some(all)
    });
    let want = [
        ("rw_ex_jobs_total", "c1", 3.0),
        ("rw_ex_latency_bucket", "h1", 0.5),
        ("rw_ex_latency_bucket", "h2", 7.0),
        ("rw_ex_native", "n1", 1.5),
    ];
    let got: Vec<(&str, &str, f64)> = got
        .iter()
        .map(|(a, b, v)| (a.as_str(), b.as_str(), *v))
        .collect();
    assert_eq!(got, want);
}
