//! Make an area file with N series for `cli/bench/serve.sh`: 80 % labelled
//! counters, 10 % histograms (default buckets), 10 % `livesum` gauges.
//!
//! `cargo run --release -p promshm-cli --example bench_area -- PATH N`

use promshm::{Area, AreaOptions, GaugeMode, Opts, DEFAULT_BUCKETS};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(n)) = (args.next(), args.next()) else {
        return Err("usage: bench_area PATH N".into());
    };
    let n: usize = n.parse()?;
    let _ = std::fs::remove_file(&path);
    // Generous: about 1 KiB per series, at least 16 MiB.
    let pages = (n / 4).max(4096) as u32;
    let area = Area::create(&path, &AreaOptions::with_pages(pages))?;
    let reg = area.registry().with_prefix("bench")?;
    let requests = reg.counter(
        Opts::new("http_requests", "Requests by path and status.")
            .labels(&["path", "code"])
            .eager(true),
    )?;
    let latency = reg.histogram(
        Opts::new("http_request_duration", "Latency by path.")
            .unit("seconds")
            .labels(&["path"])
            .eager(true),
        &DEFAULT_BUCKETS,
    )?;
    let inflight = reg.gauge(
        Opts::new("inflight", "In flight by path.")
            .labels(&["path"])
            .eager(true),
        GaugeMode::LiveSum,
    )?;
    let (n_hist, n_gauge) = (n / 10, n / 10);
    let n_counter = n - n_hist - n_gauge;
    for i in 0..n_counter {
        let path = format!("/api/v1/resource/{}", i / 4);
        let code = ["200", "404", "500", "301"][i % 4];
        requests
            .labels(&[&path, code])?
            .add((i * 7 % 1000) as f64)?;
    }
    for i in 0..n_hist {
        let h = latency.labels(&[&format!("/api/v1/resource/{i}")])?;
        h.observe((i % 100) as f64 / 100.0)?;
    }
    for i in 0..n_gauge {
        inflight
            .labels(&[&format!("/api/v1/resource/{i}")])?
            .set((i % 10) as f64);
    }
    promshm::flush();
    let s = area.stats();
    eprintln!(
        "{path}: {} series in {} families, {} of {} pages used",
        s.series, s.families, s.pages_used, s.pages_total
    );
    Ok(())
}
