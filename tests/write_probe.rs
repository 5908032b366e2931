//! Instruction-count probe of the writes guarded by the in-flight lanes
//! (docs/FORMAT.md §6.5, docs/PERFORMANCE.md). Built without the test-only
//! hooks (unlike tests/stale_writes.rs), so it measures the shipped code.

use promshm::{Area, AreaOptions, Opts};

const PAGES: u32 = 256;

/// `PROBE_N` (updates, default 1,000,000) and `PROBE_MODE` (default `default_mode`).
fn probe_args(default_mode: &str) -> (u64, String) {
    let n = std::env::var("PROBE_N").ok().and_then(|s| s.parse().ok());
    let mode = std::env::var("PROBE_MODE").unwrap_or_else(|_| default_mode.into());
    (n.unwrap_or(1_000_000), mode)
}

/// `op(i)` for `i` in `0..n`. Each mode's closure makes its own copy of this
/// loop, with no dispatch inside it, so a mode's count does not move when
/// modes are added (a `match` in the loop did: ±10 instructions a call).
#[inline(never)]
fn repeat(n: u64, mut op: impl FnMut(u64)) {
    for i in 0..n {
        op(i);
    }
}

/// Instruction-count probe of the guarded writes (run by hand under
/// callgrind, docs/PERFORMANCE.md): `PROBE_MODE` = `counter` (eager
/// `inc`), `gauge` (`set`), `histogram` (eager `observe`), `flush` (a
/// buffered `inc` and a flush of its one series), `labels` (a buffered
/// counter's `labels(2 values).inc()` among 20 series), `inc_labels` (its
/// `inc_labels(2 values)`, the same series), `prometheus_labels`
/// (the `prometheus` crate's `with_label_values(2 values).inc()`, the same
/// series) or `none`; `PROBE_N` updates.
#[test]
#[ignore]
fn write_probe() {
    let (n, mode) = probe_args("counter");
    let area = Area::anonymous(&AreaOptions::with_pages(PAGES)).unwrap();
    let reg = area.registry();
    let c = reg
        .counter(Opts::new("pc", "c").eager(true))
        .unwrap()
        .get()
        .unwrap();
    let b = reg.counter(Opts::new("pb", "b")).unwrap().get().unwrap();
    let g = reg
        .gauge(Opts::new("pg", "g"), promshm::GaugeMode::Sum)
        .unwrap()
        .get()
        .unwrap();
    let h = reg
        .histogram(Opts::new("ph", "h").eager(true), &[0.5, 1.0, 2.0])
        .unwrap()
        .get()
        .unwrap();
    let fam = reg
        .counter(Opts::new("pl", "l").labels(&["method", "code"]))
        .unwrap();
    let p_vec =
        prometheus::IntCounterVec::new(prometheus::Opts::new("pl", "l"), &["method", "code"])
            .unwrap();
    // The 20 labelled series only where they are measured (a flush walks
    // every buffered series of the thread).
    if mode.ends_with("labels") {
        for m in ["GET", "POST", "PUT", "DELETE"] {
            for code in ["200", "201", "404", "500", "503"] {
                fam.labels(&[m, code]).unwrap().inc();
                p_vec.with_label_values(&[m, code]).inc();
            }
        }
    }
    // First writes outside the loop (claims, attach).
    c.inc();
    g.set(1.0);
    h.observe(1.0).unwrap();
    b.inc();
    promshm::flush();
    use std::hint::black_box;
    match mode.as_str() {
        "counter" => repeat(n, |_| black_box(&c).inc()),
        "gauge" => repeat(n, |i| black_box(&g).set(i as f64)),
        "histogram" => repeat(n, |_| black_box(&h).observe(0.7).unwrap()),
        "labels" => repeat(n, |_| {
            if let Ok(c) = black_box(&fam).labels(black_box(&["GET", "200"])) {
                c.inc();
            }
        }),
        "inc_labels" => repeat(n, |_| {
            let _ = black_box(&fam).inc_labels(black_box(&["GET", "200"]));
        }),
        "prometheus_labels" => repeat(n, |_| {
            black_box(&p_vec)
                .with_label_values(black_box(&["GET", "200"]))
                .inc()
        }),
        "flush" => repeat(n, |_| {
            black_box(&b).inc();
            black_box(promshm::flush());
        }),
        _ => repeat(n, |i| {
            black_box(i);
        }),
    }
    std::hint::black_box((c.get(), g.get(), h.get(), b.get()));
}

/// Instruction-count probe of histogram observes, 11 buckets (the
/// Prometheus defaults), the values cycling through 16 spread over them
/// (run by hand under callgrind, docs/PERFORMANCE.md): `PROBE_MODE` =
/// `local_histogram` (`Histogram::local()`'s `observe`), `histogram_eager`,
/// `histogram_buffered`, `prometheus_local_histogram` (the `prometheus`
/// crate's `LocalHistogram::observe`), `prometheus_histogram`,
/// `prometheus_client_histogram` (prometheus-client's `Histogram::observe`)
/// or `none`; `PROBE_N` observations. A local histogram is flushed once at
/// the end (outside the loop, as a request's end would).
#[test]
#[ignore]
fn histogram_probe() {
    let (n, mode) = probe_args("local_histogram");
    let values: [f64; 16] = std::array::from_fn(|i| 0.003 * 1.6f64.powi(i as i32));
    let area = Area::anonymous(&AreaOptions::with_pages(PAGES)).unwrap();
    let hist = |name: &str, eager: bool| {
        let opts = Opts::new(name, "h").eager(eager);
        let fam = area.registry().histogram(opts, &promshm::DEFAULT_BUCKETS);
        fam.unwrap().get().unwrap()
    };
    let (eager, buffered) = (hist("he", true), hist("hb", false));
    let mut local = buffered.local();
    let p_hist =
        prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("h", "h")).unwrap();
    let p_local = p_hist.local();
    let pc_hist = prometheus_client::metrics::histogram::Histogram::new(promshm::DEFAULT_BUCKETS);
    // First writes outside the loop (claims, attach).
    eager.observe(1.0).unwrap();
    buffered.observe(1.0).unwrap();
    promshm::flush();
    use std::hint::black_box;
    let v = |i: u64| values[(i & 15) as usize];
    match mode.as_str() {
        "local_histogram" => repeat(n, |i| black_box(&mut local).observe(v(i)).unwrap()),
        "histogram_eager" => repeat(n, |i| black_box(&eager).observe(v(i)).unwrap()),
        "histogram_buffered" => repeat(n, |i| black_box(&buffered).observe(v(i)).unwrap()),
        "prometheus_local_histogram" => repeat(n, |i| black_box(&p_local).observe(v(i))),
        "prometheus_histogram" => repeat(n, |i| black_box(&p_hist).observe(v(i))),
        "prometheus_client_histogram" => repeat(n, |i| black_box(&pc_hist).observe(v(i))),
        _ => repeat(n, |i| {
            black_box(v(i));
        }),
    }
    local.flush();
    p_local.flush();
    promshm::flush();
    let total = eager.get().0 + buffered.get().0 + p_hist.get_sample_count();
    std::hint::black_box(total);
}
