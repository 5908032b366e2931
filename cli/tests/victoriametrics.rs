//! A second remote-write engine: `promshm remote-write` into a real
//! VictoriaMetrics (Debian's `victoria-metrics`), started here on loopback
//! with a temp storage dir and always stopped; every type's samples are
//! read back exactly through `/api/v1/export`.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Start VictoriaMetrics on 127.0.0.1 with its storage in `dir`; waits until it answers.
fn start_victoria_metrics(dir: &TempDir) -> (ChildGuard, SocketAddr) {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut cmd = Command::new("victoria-metrics");
    cmd.arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!("-storageDataPath={}", dir.path("vm").display()))
        .arg("-retentionPeriod=1")
        .arg("-loggerLevel=ERROR")
        // Queries see the newest samples at once (default: 30 s behind).
        .arg("-search.latencyOffset=0s")
        .arg("-search.disableCache")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let guard = ChildGuard::spawn("victoria-metrics", &mut cmd);
    wait_for(Duration::from_secs(30), "victoria-metrics", || {
        http_get(addr, "/health", &[])
            .ok()
            .filter(|r| r.status == 200)
    });
    (guard, addr)
}

/// Every series VictoriaMetrics holds for `source`, as the canonical
/// `name{label="value",...}` (labels sorted, `source` left out) and its
/// latest value.
fn export(addr: SocketAddr, source: &str) -> Option<BTreeMap<String, f64>> {
    // Make what was just written searchable.
    http_get(addr, "/internal/force_flush", &[]).ok()?;
    let path = format!("/api/v1/export?match%5B%5D=%7Bsource%3D%22{source}%22%7D");
    let r = http_get(addr, &path, &[]).ok()?;
    if r.status != 200 {
        return None;
    }
    let mut out = BTreeMap::new();
    for line in r.text().lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let metric = v["metric"].as_object()?;
        let name = metric.get("__name__")?.as_str()?;
        let labels: BTreeMap<&str, &str> = metric
            .iter()
            .filter(|(k, _)| *k != "__name__" && *k != "source")
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
            .collect();
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let value = v["values"].as_array()?.last()?.as_f64()?;
        out.insert(format!("{name}{{{}}}", labels.join(",")), value);
    }
    Some(out)
}

#[test]
fn remote_write_into_victoria_metrics() {
    if !have("victoria-metrics") {
        return;
    }
    let dir = TempDir::new("vm");
    let area = dir.path("a.promshm");
    let keep = populate(&area);
    let a = area.to_str().unwrap();
    let (_vm, addr) = start_victoria_metrics(&dir);
    let url = format!("http://{addr}/api/v1/write");
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
        "4",
    ]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("sent 15 series in 4 requests"),
        "{o:?}"
    );

    // The median the area renders (the summary's quantile is a sketch's).
    let text = keep
        .registry()
        .render_to_string(promshm::Format::Prometheus)
        .unwrap();
    let median: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("app_size_bytes{quantile=\"0.5\"} "))
        .unwrap()
        .parse()
        .unwrap();
    let want: BTreeMap<String, f64> = [
        ("app_jobs_total{kind=\"a\"}", 4000.0),
        ("app_jobs_total{kind=\"b\"}", 1000.0),
        ("app_latency_seconds_bucket{le=\"0.1\"}", 10.0),
        ("app_latency_seconds_bucket{le=\"0.5\"}", 20.0),
        ("app_latency_seconds_bucket{le=\"1.0\"}", 30.0),
        ("app_latency_seconds_bucket{le=\"+Inf\"}", 40.0),
        ("app_latency_seconds_count{}", 40.0),
        ("app_latency_seconds_sum{}", 30.5),
        ("app_size_bytes{quantile=\"0.5\"}", median),
        ("app_size_bytes_count{}", 100.0),
        ("app_size_bytes_sum{}", 5050.0),
        ("app_temperature{}", 21.5),
        ("app_build_info{version=\"1.2.3\"}", 1.0),
        ("app_mode{app_mode=\"off\"}", 1.0),
        ("app_mode{app_mode=\"on\"}", 0.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut got = wait_for(Duration::from_secs(30), "the 15 series", || {
        export(addr, "rw").filter(|m| m.len() >= want.len())
    });
    // VictoriaMetrics keeps 12 significant decimal digits of a value (its
    // storage converts floats to decimal): 50.33378980338567 comes back
    // as 50.3337898034. Every other value here is exact in 12 digits.
    let q = "app_size_bytes{quantile=\"0.5\"}";
    let stored = got[q];
    assert!(
        ((stored - median) / median).abs() < 1e-11,
        "{stored} vs {median}"
    );
    got.insert(q.to_string(), median);
    assert_eq!(got, want);

    // A second snapshot after more work: the newest values.
    let jobs = keep
        .registry()
        .with_prefix("app")
        .unwrap()
        .counter(
            promshm::Opts::new("jobs", "Jobs done.")
                .labels(&["kind"])
                .eager(true),
        )
        .unwrap();
    jobs.labels(&["a"]).unwrap().add(5.0).unwrap();
    promshm::flush();
    let o = run(&[
        "remote-write",
        a,
        "--url",
        &url,
        "--external-label",
        "source=rw2",
    ]);
    assert!(o.status.success(), "{o:?}");
    let got = wait_for(Duration::from_secs(30), "the second snapshot", || {
        export(addr, "rw2").filter(|m| m.contains_key("app_jobs_total{kind=\"a\"}"))
    });
    assert_eq!(got["app_jobs_total{kind=\"a\"}"], 4005.0);
    assert!(
        got.keys().any(|k| k.starts_with("promshm_")),
        "without --namespace the self-metrics come along: {got:?}"
    );
}

/// A native histogram into a receiver without native histograms: the
/// histogram samples are dropped (VictoriaMetrics stores nothing of them),
/// and `--native-histograms-as-classic` sends the classic view instead,
/// stored exactly.
#[test]
fn native_histogram_into_victoria_metrics() {
    if !have("victoria-metrics") {
        return;
    }
    let dir = TempDir::new("vm-native");
    let area = dir.path("a.promshm");
    const ROUNDS: u32 = 5;
    let _keep = populate_native(&area, ROUNDS);
    let a = area.to_str().unwrap();
    let (_vm, addr) = start_victoria_metrics(&dir);
    let url = format!("http://{addr}/api/v1/write");
    let send = |source: &str, extra: &[&str]| {
        let label = format!("source={source}");
        let mut args = vec!["remote-write", a, "--url", &url, "--no-self-metrics"];
        args.extend_from_slice(&["--external-label", &label]);
        args.extend_from_slice(extra);
        let o = run(&args);
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    assert!(send("classic", &["--native-histograms-as-classic"]).contains("sent 3 series"));
    let n = (NATIVE_VALUES.len() as u32 * ROUNDS) as f64;
    let sum = NATIVE_VALUES.iter().sum::<f64>() * f64::from(ROUNDS);
    let want: BTreeMap<String, f64> = [
        ("rw_native_seconds_bucket{le=\"+Inf\",path=\"/a\"}", n),
        ("rw_native_seconds_count{path=\"/a\"}", n),
        ("rw_native_seconds_sum{path=\"/a\"}", sum),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let got = wait_for(Duration::from_secs(30), "the classic view", || {
        export(addr, "classic").filter(|m| m.len() >= want.len())
    });
    assert_eq!(got, want);

    // As a histogram sample (the default): Debian's VictoriaMetrics accepts
    // the request and stores nothing of it (a newer one may convert it).
    assert!(send("native", &[]).contains("sent 1 series"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(export(addr, "native"), Some(BTreeMap::new()));
}
