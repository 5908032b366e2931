//! Core benchmarks of promshm, with the `prometheus` and `prometheus-client`
//! crates measured side by side in the same run.
//!
//! ```sh
//! cargo bench --bench core            # measure (release); prints a summary table at the end
//!                                      # (PROMSHM_BENCH_OUT=FILE also writes `id median best` lines)
//! cargo bench --bench core -- hot/    # only some benchmarks (criterion filter)
//! cargo test --benches                # smoke test: every benchmark once, small data sets
//! ```
//!
//! Every benchmark goes through [`Group::custom`], which hands criterion the
//! measured time and also keeps each sample, so that the summary at the end
//! (median and best ns per iteration of criterion's measured samples, with
//! the targets of `DESIGN.md` and the ratio to the reference) comes from the
//! same run. `docs/PERFORMANCE.md` holds the figures and what they mean.
//! Without `--bench` (that is, under `cargo test`) or in a debug build the
//! data sets are small so that the smoke test stays quick; the numbers of
//! such a run mean nothing.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::Write;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode};
use promshm::{
    Area, AreaOptions, Counter, Family, Format, GaugeMode, Histogram, NativeOpts, Opts,
    SummaryOpts, DEFAULT_BUCKETS,
};

// ---- sizes ------------------------------------------------------------------------------

/// Data-set sizes: full in a release `cargo bench`, small in a smoke run.
struct Sizes {
    full: bool,
    render_small: usize,
    render_large: usize,
    flush: usize,
    footprint: usize,
}

impl Sizes {
    fn pick() -> Sizes {
        let full = std::env::args().any(|a| a == "--bench") && !cfg!(debug_assertions);
        if full {
            Sizes {
                full,
                render_small: 10_000,
                render_large: 100_000,
                flush: 1_000,
                footprint: 10_000,
            }
        } else {
            Sizes {
                full,
                render_small: 500,
                render_large: 2_000,
                flush: 1_000,
                footprint: 1_000,
            }
        }
    }
}

/// A short name for a size: `10k`, `100k`, `500`.
fn short(n: usize) -> String {
    if n >= 1000 && n % 1000 == 0 {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

// ---- samples kept for the summary ---------------------------------------------------------

/// Every call of a benchmark routine: `(iterations, time)`. The last `keep`
/// calls are criterion's measured samples (the ones before are its warm-up).
struct Samples {
    keep: usize,
    runs: Vec<(u64, Duration)>,
}

static RESULTS: Mutex<BTreeMap<String, Samples>> = Mutex::new(BTreeMap::new());

fn record(id: &str, keep: usize, iters: u64, d: Duration) {
    let mut r = RESULTS.lock().unwrap();
    let s = r.entry(id.to_owned()).or_insert_with(|| Samples {
        keep,
        runs: Vec::new(),
    });
    s.runs.push((iters, d));
}

/// Nanoseconds per iteration over the measured samples of a benchmark.
#[derive(Debug, Clone, Copy)]
struct Stat {
    median: f64,
    best: f64,
}

impl Stat {
    /// Per item, for `n` items per iteration.
    fn per(self, n: f64) -> Stat {
        Stat {
            median: self.median / n,
            best: self.best / n,
        }
    }
}

/// Median and best (smallest) ns per iteration of the measured samples of `id`.
fn stat(id: &str) -> Option<Stat> {
    let r = RESULTS.lock().unwrap();
    let s = r.get(id)?;
    let tail = &s.runs[s.runs.len().saturating_sub(s.keep)..];
    let mut v: Vec<f64> = tail
        .iter()
        .map(|(i, d)| d.as_nanos() as f64 / (*i).max(1) as f64)
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    let median = if v.len() % 2 == 0 {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    };
    Some(Stat { median, best: v[0] })
}

/// A criterion group whose samples are also kept for the summary.
struct Group<'a> {
    g: BenchmarkGroup<'a, WallTime>,
    name: &'static str,
    keep: usize,
}

impl<'a> Group<'a> {
    fn new(c: &'a mut Criterion, name: &'static str, samples: usize, flat: bool) -> Self {
        let mut g = c.benchmark_group(name);
        g.sample_size(samples);
        if flat {
            g.sampling_mode(SamplingMode::Flat);
        }
        Group {
            g,
            name,
            keep: samples,
        }
    }

    /// One iteration is one call of `f`.
    fn op<O>(&mut self, id: &str, mut f: impl FnMut() -> O) {
        self.custom(id, move |iters| {
            let t = Instant::now();
            for _ in 0..iters {
                black_box(f());
            }
            t.elapsed()
        });
    }

    /// `f(iters)` runs `iters` iterations and returns the time it measured.
    fn custom(&mut self, id: &str, mut f: impl FnMut(u64) -> Duration) {
        let full = format!("{}/{}", self.name, id);
        let keep = self.keep;
        self.g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let d = f(iters);
                record(&full, keep, iters, d);
                d
            })
        });
    }

    fn finish(self) {
        self.g.finish();
    }
}

// ---- data -------------------------------------------------------------------------------

const CODES: [&str; 5] = ["200", "201", "304", "404", "500"];

/// 1024 observations spread log-uniformly over 1 ms .. 20 s (every bucket
/// of the default layout gets some), from a fixed LCG.
fn observations() -> Vec<f64> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..1024)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            10f64.powf(-3.0 + u * 4.3)
        })
        .collect()
}

fn path(i: usize) -> String {
    format!("/api/item/{i}")
}

/// An area holding `n` counter series with 2 labels (eager, so that the
/// values land in the area without filling this thread's buffer).
fn counter_area(n: usize) -> Area {
    let pages = (n / 40 + 256) as u32;
    let area = Area::anonymous(&AreaOptions::with_pages(pages)).expect("area");
    let fam = area
        .registry()
        .counter(
            Opts::new("http_requests", "Requests served.")
                .labels(&["path", "code"])
                .eager(true),
        )
        .expect("family");
    for i in 0..n {
        let c = fam.labels(&[&path(i), CODES[i % 5]]).expect("series");
        c.add(((i * 37) % 100_000) as f64).expect("add");
    }
    area
}

/// A writer that only counts bytes.
#[derive(Default)]
struct CountingSink(usize);

impl Write for CountingSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Run `body(iters)` on two threads at once; the longer of the two times.
fn two_threads(iters: u64, body: impl Fn(u64) + Sync) -> Duration {
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let t = Instant::now();
                    body(iters);
                    t.elapsed()
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("bench thread"))
            .max()
            .unwrap_or_default()
    })
}

// ---- benchmarks ---------------------------------------------------------------------------

/// The local histogram's observe (`Histogram::local()`, 11 buckets, the
/// same observations as the other histogram cases; flushed when the closure
/// is dropped), beside the references' in the same group.
fn local_histogram_ops(g: &mut Group<'_>, h: &Histogram, obs: &[f64]) {
    g.op("promshm/local_histogram_observe", {
        let mut i = 0usize;
        let mut l = h.local();
        move || {
            i = i.wrapping_add(1);
            black_box(&mut l).observe(obs[i & 1023])
        }
    });
}

/// The summary's lines of [`local_histogram_ops`].
fn local_histogram_lines() -> Vec<Line> {
    let ours = || stat("hot/promshm/local_histogram_observe");
    vec![
        Line::new(
            "local histogram observe, 11 buckets (`Histogram::local()`)",
            ours(),
        )
        .reference(
            "prometheus `LocalHistogram::observe`",
            stat("hot/prometheus/local_histogram_observe"),
        ),
        Line::new(
            "local histogram observe, 11 buckets (`Histogram::local()`)",
            ours(),
        )
        .reference(
            "prometheus-client `Histogram::observe`",
            stat("hot/prometheus_client/histogram_observe"),
        ),
    ]
}

/// Updates on a resolved handle, and the references' equivalents.
fn hot(c: &mut Criterion) {
    let area = Area::anonymous(&AreaOptions::default()).expect("area");
    let reg = area.registry();
    let ctr = |name: &str, eager: bool| {
        reg.counter(
            Opts::new(name, "Requests.")
                .labels(&["method", "code"])
                .eager(eager),
        )
        .expect("counter family")
        .labels(&["GET", "200"])
        .expect("counter")
    };
    let c_buf = ctr("hot_requests", false);
    let c_eager = ctr("hot_requests_eager", true);
    let hist = |name: &str, eager: bool| {
        reg.histogram(
            Opts::new(name, "Latency.").unit("seconds").eager(eager),
            &DEFAULT_BUCKETS,
        )
        .expect("histogram family")
        .get()
        .expect("histogram")
    };
    let h_buf = hist("hot_latency", false);
    let h_eager = hist("hot_latency_eager", true);
    let gauge = reg
        .gauge(Opts::new("hot_inflight", "In flight."), GaugeMode::Sum)
        .expect("gauge family")
        .get()
        .expect("gauge");
    let q = [0.5, 0.9, 0.99];
    let summary = reg
        .summary(
            Opts::new("hot_size_bytes", "Sizes."),
            &SummaryOpts::quantiles(&q),
        )
        .expect("summary family")
        .get()
        .expect("summary");
    let summary_w = reg
        .summary(
            Opts::new("hot_size_window_bytes", "Sizes, 10 min window."),
            &SummaryOpts::quantiles(&q).window(Duration::from_secs(600), 5),
        )
        .expect("summary family")
        .get()
        .expect("summary");
    let obs = observations();

    // References.
    let p_int = prometheus::IntCounter::new("int_total", "h").expect("prometheus");
    let p_f64 = prometheus::Counter::new("f64_total", "h").expect("prometheus");
    let p_gauge = prometheus::Gauge::new("g", "h").expect("prometheus");
    let p_hist = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("h", "h"))
        .expect("prometheus");
    let p_local = p_int.local();
    let p_local_flush = p_int.local();
    let p_local_hist = p_hist.local();
    let pc_int: prometheus_client::metrics::counter::Counter<u64> = Default::default();
    let pc_f64: prometheus_client::metrics::counter::Counter<f64> = Default::default();
    let pc_hist = prometheus_client::metrics::histogram::Histogram::new(DEFAULT_BUCKETS);

    let mut g = Group::new(c, "hot", 20, false);
    g.op("floor/plain_add", {
        let mut x = 0u64;
        move || *black_box(&mut x) += 1
    });
    g.op("promshm/counter_inc_buffered", || black_box(&c_buf).inc());
    // The caller-owned local counter (flushed when the closure is dropped).
    g.op("promshm/local_counter_inc", {
        let mut l = c_buf.local();
        move || black_box(&mut l).inc()
    });
    // The same, spread over 4 series: no chain of dependent adds on one cell.
    let c4: Vec<Counter> = ["200", "201", "304", "404"]
        .iter()
        .map(|code| {
            reg.counter(Opts::new("hot_requests", "Requests.").labels(&["method", "code"]))
                .expect("counter family")
                .labels(&["GET", code])
                .expect("counter")
        })
        .collect();
    g.op("promshm/counter_inc_buffered_4_series", {
        let mut i = 0usize;
        let c4 = &c4;
        move || {
            i = i.wrapping_add(1);
            black_box(&c4[i & 3]).inc()
        }
    });
    g.op("promshm/counter_inc_eager", || black_box(&c_eager).inc());
    local_histogram_ops(&mut g, &h_buf, &obs);
    g.op("promshm/histogram_observe_buffered", {
        let mut i = 0usize;
        let obs = &obs;
        move || {
            i = i.wrapping_add(1);
            black_box(&h_buf).observe(obs[i & 1023])
        }
    });
    g.op("promshm/histogram_observe_eager", {
        let mut i = 0usize;
        let obs = &obs;
        move || {
            i = i.wrapping_add(1);
            black_box(&h_eager).observe(obs[i & 1023])
        }
    });
    g.op("promshm/gauge_set", || {
        black_box(&gauge).set(black_box(42.5))
    });
    g.op("promshm/gauge_inc", || black_box(&gauge).inc());
    g.op("promshm/summary_observe", {
        let mut i = 0usize;
        let obs = &obs;
        move || {
            i = i.wrapping_add(1);
            black_box(&summary).observe(obs[i & 1023])
        }
    });
    g.op("promshm/summary_observe_window", {
        let mut i = 0usize;
        let obs = &obs;
        move || {
            i = i.wrapping_add(1);
            black_box(&summary_w).observe(obs[i & 1023])
        }
    });

    g.op("prometheus/int_counter_inc", || black_box(&p_int).inc());
    g.op("prometheus/counter_inc", || black_box(&p_f64).inc());
    g.op("prometheus/local_int_counter_inc", || {
        black_box(&p_local).inc()
    });
    g.op("prometheus/local_int_counter_inc_flush", || {
        let l = black_box(&p_local_flush);
        l.inc();
        l.flush();
    });
    g.op("prometheus/gauge_set", || {
        black_box(&p_gauge).set(black_box(42.5))
    });
    g.op("prometheus/gauge_inc", || black_box(&p_gauge).inc());
    g.op("prometheus/histogram_observe", {
        let mut i = 0usize;
        let obs = &obs;
        move || {
            i = i.wrapping_add(1);
            black_box(&p_hist).observe(obs[i & 1023])
        }
    });
    g.op("prometheus/local_histogram_observe", {
        let mut i = 0usize;
        let obs = &obs;
        move || {
            i = i.wrapping_add(1);
            black_box(&p_local_hist).observe(obs[i & 1023])
        }
    });
    g.op("prometheus_client/counter_u64_inc", || {
        black_box(&pc_int).inc()
    });
    g.op("prometheus_client/counter_f64_inc", || {
        black_box(&pc_f64).inc()
    });
    g.op("prometheus_client/histogram_observe", {
        let mut i = 0usize;
        let obs = &obs;
        move || {
            i = i.wrapping_add(1);
            black_box(&pc_hist).observe(obs[i & 1023])
        }
    });
    g.finish();
    promshm::flush();
}

/// `family.labels(values)` on an existing series.
fn resolve(c: &mut Criterion) {
    let area = Area::anonymous(&AreaOptions::default()).expect("area");
    let fam: Family<Counter> = area
        .registry()
        .counter(Opts::new("res_requests", "Requests.").labels(&["method", "code"]))
        .expect("family");
    // Some neighbours, so the lookup is not in an empty table.
    for m in ["GET", "POST", "PUT", "DELETE"] {
        for code in CODES {
            fam.labels(&[m, code]).expect("series").inc();
        }
    }
    let p_vec = prometheus::IntCounterVec::new(
        prometheus::Opts::new("res_total", "h"),
        &["method", "code"],
    )
    .expect("prometheus");
    type PcFamily = prometheus_client::metrics::family::Family<
        [(&'static str, &'static str); 2],
        prometheus_client::metrics::counter::Counter,
    >;
    let pc_fam = PcFamily::default();
    for m in ["GET", "POST", "PUT", "DELETE"] {
        for code in CODES {
            p_vec.with_label_values(&[m, code]).inc();
            pc_fam.get_or_create(&[("method", m), ("code", code)]).inc();
        }
    }

    let mut g = Group::new(c, "resolve", 20, false);
    g.op("promshm/labels_2", || {
        black_box(&fam).labels(black_box(&["GET", "200"]))
    });
    g.op("promshm/labels_2_inc", || {
        if let Ok(c) = black_box(&fam).labels(black_box(&["GET", "200"])) {
            c.inc();
        }
    });
    g.op("promshm/inc_labels_2", || {
        let _ = black_box(&fam).inc_labels(black_box(&["GET", "200"]));
    });
    g.op("prometheus/with_label_values_2_inc", || {
        black_box(&p_vec)
            .with_label_values(black_box(&["GET", "200"]))
            .inc()
    });
    g.op("prometheus_client/get_or_create_2_inc", || {
        black_box(&pc_fam)
            .get_or_create(black_box(&[("method", "GET"), ("code", "200")]))
            .inc();
    });
    g.finish();
    promshm::flush();
}

/// Space reuse (issue 16): the eager hot path with and without the
/// generation check, in the same run, and create+remove cycles in a 1 MiB
/// area (steady state: every record comes from a hole, and the grace
/// period bounds the rate, see docs/PERFORMANCE.md) and in a 64 MiB one
/// (`cycle_64mib/`: the grace period out of the way, the cost of the code).
fn reuse(c: &mut Criterion) {
    let area = Area::anonymous(&AreaOptions::with_pages(256)).expect("area");
    let reg = area.registry();
    let e = reg
        .counter(
            Opts::new("reuse_eager", "Eager.")
                .labels(&["k"])
                .eager(true),
        )
        .expect("family")
        .labels(&["x"])
        .expect("series");
    let buffered = reg
        .counter(Opts::new("reuse_buffered", "Buffered.").labels(&["k"]))
        .expect("family")
        .labels(&["x"])
        .expect("series");
    let g = reg
        .gauge(
            Opts::new("reuse_gauge", "Gauges.").labels(&["k"]),
            GaugeMode::LiveSum,
        )
        .expect("family")
        .labels(&["x"])
        .expect("series");
    let mut grp = Group::new(c, "reuse", 20, false);
    grp.op("eager_inc/generation_checked", || black_box(&e).inc());
    grp.op("eager_inc/unchecked_before", || {
        black_box(&e).__eager_add_without_generation_check(1.0)
    });
    grp.op("buffered_inc", || black_box(&buffered).inc());
    grp.op("gauge_set/generation_checked", || black_box(&g).set(1.0));
    reuse_cycles(&mut grp, "cycle", &reg);
    let big = Area::anonymous(&AreaOptions::with_pages(16384)).expect("area");
    reuse_cycles(&mut grp, "cycle_64mib", &big.registry());
    grp.finish();
}

/// The create+remove cycle of each type, and an info replacement, in `reg`.
fn reuse_cycles(grp: &mut Group<'_>, prefix: &str, reg: &promshm::Registry) {
    let labels = |name: &str| Opts::new(name, "Cycles.").labels(&["k"]);
    let eager = reg
        .counter(labels("cyc_eager").eager(true))
        .expect("family");
    let gauges = reg
        .gauge(labels("cyc_gauge"), GaugeMode::LiveSum)
        .expect("family");
    let hists = reg
        .histogram(labels("cyc_hist"), &[1.0, 2.0])
        .expect("family");
    let info = reg
        .info(Opts::new("cyc_info", "Info."))
        .expect("family")
        .get()
        .expect("series");
    let mut n = 0u64;
    let mut key = move || {
        n += 1;
        n.to_string()
    };
    grp.op(&format!("{prefix}/counter_create_inc_remove"), || {
        let k = key();
        if let Ok(s) = eager.labels(&[&k]) {
            s.inc();
        }
        let _ = eager.remove(&[&k]);
    });
    grp.op(&format!("{prefix}/gauge_create_set_remove"), || {
        let k = key();
        if let Ok(s) = gauges.labels(&[&k]) {
            s.set(1.0);
        }
        let _ = gauges.remove(&[&k]);
    });
    grp.op(&format!("{prefix}/histogram_create_observe_remove"), || {
        let k = key();
        if let Ok(s) = hists.labels(&[&k]) {
            let _ = s.observe(1.5);
        }
        let _ = hists.remove(&[&k]);
    });
    grp.op(&format!("{prefix}/info_replace"), || {
        let _ = info.set(&[("version", &key())]);
    });
}

/// `promshm::flush()` with `n` buffered series of this thread, dirty or clean.
fn flush(c: &mut Criterion, n: usize) {
    let area = Area::anonymous(&AreaOptions::default()).expect("area");
    let fam = area
        .registry()
        .counter(Opts::new("flush_requests", "Requests.").labels(&["i"]))
        .expect("family");
    let handles: Vec<Counter> = (0..n)
        .map(|i| fam.labels(&[&i.to_string()]).expect("series"))
        .collect();
    for h in &handles {
        h.inc();
    }
    promshm::flush();
    // Check once that the benchmark measures what it says.
    for h in &handles {
        h.inc();
    }
    let st = promshm::flush();
    assert!(st.dirty_series >= n, "flush saw {st:?}");
    assert_eq!(promshm::flush().dirty_series, 0);

    let mut g = Group::new(c, "flush", 20, false);
    g.custom(&format!("promshm/dirty_{}", short(n)), |iters| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            for h in &handles {
                h.inc();
            }
            let t = Instant::now();
            black_box(promshm::flush());
            total += t.elapsed();
        }
        total
    });
    g.op(&format!("promshm/clean_{}", short(n)), promshm::flush);
    g.finish();
    let v = handles[0].get();
    assert!(v >= 2.0 && v == v.floor(), "{v}");
}

/// Render `n` counter series with 2 labels, and the references' encoders.
fn render(c: &mut Criterion, s: &Sizes) {
    let small = counter_area(s.render_small);
    let large = counter_area(s.render_large);
    for (a, n) in [(&small, s.render_small), (&large, s.render_large)] {
        let mut out = CountingSink::default();
        let st = a.render(&mut out, Format::Prometheus).expect("render");
        assert!(st.series > n, "rendered {st:?}");
        println!(
            "render: {} series -> {} bytes ({:.1} bytes/series), {} families",
            n,
            out.0,
            out.0 as f64 / n as f64,
            st.families
        );
    }

    // prometheus: an IntCounterVec with the same series.
    let p_reg = prometheus::Registry::new();
    let p_vec = prometheus::IntCounterVec::new(
        prometheus::Opts::new("http_requests_total", "Requests served."),
        &["path", "code"],
    )
    .expect("prometheus");
    p_reg
        .register(Box::new(p_vec.clone()))
        .expect("prometheus register");
    // prometheus-client: a Family with the same series.
    let mut pc_reg = prometheus_client::registry::Registry::default();
    type PcFamily = prometheus_client::metrics::family::Family<
        [(&'static str, String); 2],
        prometheus_client::metrics::counter::Counter,
    >;
    let pc_fam = PcFamily::default();
    pc_reg.register("http_requests", "Requests served.", pc_fam.clone());
    for i in 0..s.render_small {
        let v = ((i * 37) % 100_000) as u64;
        p_vec.with_label_values(&[&path(i), CODES[i % 5]]).inc_by(v);
        pc_fam
            .get_or_create(&[("path", path(i)), ("code", CODES[i % 5].to_owned())])
            .inc_by(v);
    }

    let small_id = short(s.render_small);
    let large_id = short(s.render_large);
    let mut g = Group::new(c, "render", 10, true);
    g.op(&format!("promshm/prometheus_{small_id}"), || {
        small.render(std::io::sink(), Format::Prometheus)
    });
    g.op(&format!("promshm/openmetrics_{small_id}"), || {
        small.render(std::io::sink(), Format::OpenMetrics)
    });
    g.op(&format!("promshm/prometheus_{large_id}"), || {
        large.render(std::io::sink(), Format::Prometheus)
    });
    let p_enc = prometheus::TextEncoder::new();
    g.op(&format!("prometheus/gather_text_{small_id}"), || {
        use prometheus::Encoder as _;
        let mfs = p_reg.gather();
        p_enc.encode(&mfs, &mut std::io::sink())
    });
    let mut text = String::new();
    g.op(&format!("prometheus_client/openmetrics_{small_id}"), || {
        text.clear();
        prometheus_client::encoding::text::encode(&mut text, &pc_reg)
    });
    g.finish();
}

/// Native histograms beside classic ones in the same run: observe (a
/// native observation, eager by default: one atomic add into its bucket
/// cell and one compare-exchange into the sum; buffered: into the thread's
/// copy) and the protobuf and text renders of `n` native series, each with
/// the 1024 observations (about 100 populated buckets at schema 3), and of
/// `n` classic ones with the same observations.
fn native(c: &mut Criterion, n: usize) {
    let pages = (n * 3 + 512) as u32;
    let area = Area::anonymous(&AreaOptions::with_pages(pages)).expect("area");
    let reg = area.registry();
    let classic = |name: &str, eager: bool| {
        reg.histogram(Opts::new(name, "h").eager(eager), &DEFAULT_BUCKETS)
            .expect("histogram family")
            .get()
            .expect("histogram")
    };
    let (c_buf, c_eager) = (
        classic("nat_classic", false),
        classic("nat_classic_eager", true),
    );
    let nat = |name: &str, opts: NativeOpts| {
        reg.native_histogram(Opts::new(name, "h"), opts)
            .expect("native family")
            .get()
            .expect("native histogram")
    };
    let n3 = nat("nat_schema3", NativeOpts::new());
    let n3_buffered = nat("nat_schema3_buffered", NativeOpts::new().buffered(true));
    let n0 = nat("nat_schema0", NativeOpts::new().schema(0));
    let n8 = nat(
        "nat_schema8",
        NativeOpts::new().schema(8).range(1e-3, 100.0),
    );
    let obs = observations();
    let mut g = Group::new(c, "native", 20, false);
    for (id, h) in [
        ("classic_observe_buffered", &c_buf),
        ("classic_observe_eager", &c_eager),
    ] {
        g.op(id, {
            let mut i = 0usize;
            let obs = &obs;
            move || {
                i = i.wrapping_add(1);
                black_box(h).observe(obs[i & 1023])
            }
        });
    }
    for (id, h) in [
        ("observe_schema3", &n3),
        ("observe_schema3_buffered", &n3_buffered),
        ("observe_schema0", &n0),
        ("observe_schema8", &n8),
    ] {
        g.op(id, {
            let mut i = 0usize;
            let obs = &obs;
            move || {
                i = i.wrapping_add(1);
                black_box(h).observe(obs[i & 1023])
            }
        });
    }
    g.finish();
    promshm::flush();

    let fam = area
        .registry()
        .with_prefix("many")
        .expect("prefix")
        .native_histogram(Opts::new("lat", "h").labels(&["path"]), NativeOpts::new())
        .expect("native family");
    for i in 0..n {
        let h = fam.labels(&[&path(i)]).expect("series");
        for &v in &obs {
            h.observe(v).expect("observe");
        }
    }
    // The same observations into as many classic histograms (11 buckets),
    // rendered beside the native ones.
    let classic_fam = area
        .registry()
        .with_prefix("classic")
        .expect("prefix")
        .histogram(Opts::new("lat", "h").labels(&["path"]), &DEFAULT_BUCKETS)
        .expect("classic family");
    for i in 0..n {
        let h = classic_fam.labels(&[&path(i)]).expect("series");
        for &v in &obs {
            h.observe(v).expect("observe");
        }
    }
    promshm::flush();
    let classic = area.registry().with_prefix("classic").expect("prefix");
    let many = area.registry().with_prefix("many").expect("prefix");
    let mut out = CountingSink::default();
    many.render(&mut out, Format::Protobuf).expect("render");
    println!(
        "native render: {n} series -> {} protobuf bytes ({:.0} bytes/series); {} bytes of cells a series",
        out.0,
        out.0 as f64 / n as f64,
        8 * 1028
    );
    let id = short(n);
    let mut g = Group::new(c, "native", 10, true);
    g.op(&format!("render_protobuf_{id}"), || {
        many.render(std::io::sink(), Format::Protobuf)
    });
    g.op(&format!("render_prometheus_{id}"), || {
        many.render(std::io::sink(), Format::Prometheus)
    });
    g.op(&format!("render_classic_protobuf_{id}"), || {
        classic.render(std::io::sink(), Format::Protobuf)
    });
    g.op(&format!("render_classic_prometheus_{id}"), || {
        classic.render(std::io::sink(), Format::Prometheus)
    });
    g.finish();
}

/// Two threads updating one series.
fn contended(c: &mut Criterion) {
    let area = Area::anonymous(&AreaOptions::default()).expect("area");
    let reg = area.registry();
    let ctr = |name: &str, eager: bool| {
        reg.counter(Opts::new(name, "Requests.").eager(eager))
            .expect("family")
            .get()
            .expect("counter")
    };
    let c_buf = ctr("cont_requests", false);
    let c_eager = ctr("cont_requests_eager", true);
    let p_int = prometheus::IntCounter::new("cont_total", "h").expect("prometheus");

    let mut g = Group::new(c, "contended_2_threads", 10, false);
    g.custom("promshm/counter_inc_buffered", |iters| {
        two_threads(iters, |n| {
            for _ in 0..n {
                black_box(&c_buf).inc();
            }
        })
    });
    g.custom("promshm/counter_inc_eager", |iters| {
        two_threads(iters, |n| {
            for _ in 0..n {
                black_box(&c_eager).inc();
            }
        })
    });
    g.custom("prometheus/int_counter_inc", |iters| {
        two_threads(iters, |n| {
            for _ in 0..n {
                black_box(&p_int).inc();
            }
        })
    });
    g.custom("prometheus/local_int_counter_inc_flush_1024", |iters| {
        two_threads(iters, |n| {
            let l = p_int.local();
            for k in 0..n {
                black_box(&l).inc();
                if k & 1023 == 1023 {
                    l.flush();
                }
            }
            l.flush();
        })
    });
    g.finish();
    // Every buffered increment arrived: the threads flushed at exit.
    promshm::flush();
    let ran = |id: &str| stat(&format!("contended_2_threads/promshm/{id}")).is_some();
    let (b, e) = (c_buf.get(), c_eager.get());
    assert!(
        !ran("counter_inc_buffered") || (b > 0.0 && b == b.floor()),
        "{b}"
    );
    assert!(!ran("counter_inc_eager") || e > 0.0, "{e}");
}

/// Area bytes per counter series with short label values.
struct Footprint {
    series: usize,
    bytes_per_series: f64,
    label_text_per_series: f64,
}

fn footprint(n: usize) -> Footprint {
    let area = Area::anonymous(&AreaOptions::with_pages((n / 40 + 64) as u32)).expect("area");
    let fam = area
        .registry()
        .counter(Opts::new("fp_requests", "Requests.").labels(&["method", "path"]))
        .expect("family");
    // Measured after the family record, so that only series are counted.
    let before = area.stats().bytes_free;
    let mut text = 0usize;
    for i in 0..n {
        let m = ["GET", "POST", "PUT", "DELETE"][i % 4];
        let p = format!("/{i}");
        text += m.len() + p.len();
        fam.labels(&[m, &p]).expect("series");
    }
    let used = before - area.stats().bytes_free;
    let f = Footprint {
        series: n,
        bytes_per_series: used as f64 / n as f64,
        label_text_per_series: text as f64 / n as f64,
    };
    println!(
        "footprint: {} counter series with 2 short labels: {:.1} bytes/series in the area \
         ({:.1} bytes of label text, {:.1} bytes of record, page padding included); \
         target <= 128 + label text",
        f.series,
        f.bytes_per_series,
        f.label_text_per_series,
        f.bytes_per_series - f.label_text_per_series
    );
    f
}

// ---- summary ------------------------------------------------------------------------------

fn fmt_ns(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.2} µs", v / 1e3)
    } else if v >= 10.0 {
        format!("{v:.1} ns")
    } else {
        format!("{v:.2} ns")
    }
}

/// `median (best)`.
fn fmt_stat(s: Option<Stat>) -> String {
    s.map(|s| format!("{} ({})", fmt_ns(s.median), fmt_ns(s.best)))
        .unwrap_or_else(|| "—".into())
}

/// `median (best)` as series per second, for `n` series per iteration.
fn fmt_rate(s: Option<Stat>, n: usize) -> String {
    let r = |v: f64| format!("{:.2}", n as f64 / v * 1e3);
    s.map(|s| format!("{} ({}) M series/s", r(s.median), r(s.best)))
        .unwrap_or_else(|| "—".into())
}

/// The 1-minute load average, to judge how quiet the machine was.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// One line of the summary: our figure, the target, a reference figure
/// from the same run; the ratio is reference / promshm on the medians
/// (> 1: promshm is faster).
struct Line {
    what: String,
    ours: Option<Stat>,
    shown: String,
    target: &'static str,
    met: String,
    reference: &'static str,
    theirs: Option<Stat>,
}

impl Line {
    fn new(what: impl Into<String>, ours: Option<Stat>) -> Line {
        Line {
            what: what.into(),
            ours,
            shown: fmt_stat(ours),
            target: "",
            met: String::new(),
            reference: "",
            theirs: None,
        }
    }

    /// A target on the time per iteration: judged on the median, with the
    /// best sample shown when only it meets the target.
    fn target(mut self, text: &'static str, ok: fn(f64) -> bool) -> Line {
        self.target = text;
        self.met = match self.ours {
            Some(s) if ok(s.median) => "yes".into(),
            Some(s) if ok(s.best) => "**no** (best: yes)".into(),
            Some(_) => "**no**".into(),
            None => String::new(),
        };
        self
    }

    fn reference(mut self, name: &'static str, theirs: Option<Stat>) -> Line {
        self.reference = name;
        self.theirs = theirs;
        self
    }

    fn shown(mut self, text: String) -> Line {
        self.shown = text;
        self
    }
}

fn summary(s: &Sizes, fp: &Footprint, load_before: &str) {
    let per = |id: &str, n: usize| stat(id).map(|st| st.per(n as f64));
    let nf = short(s.flush);
    let (rs, rl) = (short(s.render_small), short(s.render_large));
    let render_small = |what: &str| stat(&format!("render/{what}_{rs}"));
    let mut lines = vec![
        Line::new(
            "plain add, `*black_box(&mut x) += 1` (floor)",
            stat("hot/floor/plain_add"),
        ),
        Line::new(
            "counter inc, buffered",
            stat("hot/promshm/counter_inc_buffered"),
        )
        .target("≤ 3 ns", |v| v <= 3.0)
        .reference(
            "prometheus `IntCounter::inc`",
            stat("hot/prometheus/int_counter_inc"),
        ),
        Line::new(
            "counter inc, buffered",
            stat("hot/promshm/counter_inc_buffered"),
        )
        .target("≤ 3 ns", |v| v <= 3.0)
        .reference(
            "prometheus `LocalIntCounter::inc`",
            stat("hot/prometheus/local_int_counter_inc"),
        ),
        Line::new(
            "local counter inc (`Counter::local()`)",
            stat("hot/promshm/local_counter_inc"),
        )
        .reference(
            "prometheus `LocalIntCounter::inc`",
            stat("hot/prometheus/local_int_counter_inc"),
        ),
        Line::new(
            "counter inc, buffered, 4 series in turn",
            stat("hot/promshm/counter_inc_buffered_4_series"),
        )
        .target("≤ 3 ns", |v| v <= 3.0),
        Line::new("counter inc, eager", stat("hot/promshm/counter_inc_eager"))
            .target("≤ 15 ns", |v| v <= 15.0)
            .reference(
                "prometheus `IntCounter::inc`",
                stat("hot/prometheus/int_counter_inc"),
            ),
        Line::new("counter inc, eager", stat("hot/promshm/counter_inc_eager"))
            .target("≤ 15 ns", |v| v <= 15.0)
            .reference(
                "prometheus `Counter::inc` (f64)",
                stat("hot/prometheus/counter_inc"),
            ),
        Line::new("counter inc, eager", stat("hot/promshm/counter_inc_eager"))
            .target("≤ 15 ns", |v| v <= 15.0)
            .reference(
                "prometheus-client `Counter<f64>::inc`",
                stat("hot/prometheus_client/counter_f64_inc"),
            ),
        Line::new(
            "histogram observe, 11 buckets, buffered",
            stat("hot/promshm/histogram_observe_buffered"),
        )
        .target("≤ 10 ns", |v| v <= 10.0)
        .reference(
            "prometheus `Histogram::observe`",
            stat("hot/prometheus/histogram_observe"),
        ),
        Line::new(
            "histogram observe, 11 buckets, buffered",
            stat("hot/promshm/histogram_observe_buffered"),
        )
        .target("≤ 10 ns", |v| v <= 10.0)
        .reference(
            "prometheus `LocalHistogram::observe`",
            stat("hot/prometheus/local_histogram_observe"),
        ),
        Line::new(
            "histogram observe, 11 buckets, eager",
            stat("hot/promshm/histogram_observe_eager"),
        )
        .reference(
            "prometheus-client `Histogram::observe`",
            stat("hot/prometheus_client/histogram_observe"),
        ),
        Line::new("gauge set", stat("hot/promshm/gauge_set"))
            .reference("prometheus `Gauge::set`", stat("hot/prometheus/gauge_set")),
        Line::new("gauge inc", stat("hot/promshm/gauge_inc"))
            .reference("prometheus `Gauge::inc`", stat("hot/prometheus/gauge_inc")),
        Line::new(
            "summary observe (3 quantiles, no window)",
            stat("hot/promshm/summary_observe"),
        ),
        Line::new(
            "summary observe, 10 min window",
            stat("hot/promshm/summary_observe_window"),
        ),
        Line::new(
            "`labels(&[\"GET\",\"200\"])`, existing series",
            stat("resolve/promshm/labels_2"),
        )
        .target("≤ 60 ns", |v| v <= 60.0),
        Line::new("`labels(..)` + inc", stat("resolve/promshm/labels_2_inc")).reference(
            "prometheus `with_label_values(..).inc()`",
            stat("resolve/prometheus/with_label_values_2_inc"),
        ),
        Line::new("`labels(..)` + inc", stat("resolve/promshm/labels_2_inc")).reference(
            "prometheus-client `get_or_create(..).inc()`",
            stat("resolve/prometheus_client/get_or_create_2_inc"),
        ),
        Line::new(
            format!("flush, per dirty series ({nf} dirty)"),
            per(&format!("flush/promshm/dirty_{nf}"), s.flush),
        )
        .target("≤ 20 ns", |v| v <= 20.0)
        .reference(
            "prometheus `LocalIntCounter` inc + flush",
            stat("hot/prometheus/local_int_counter_inc_flush"),
        ),
        Line::new(
            format!("flush, per clean series ({nf} clean)"),
            per(&format!("flush/promshm/clean_{nf}"), s.flush),
        )
        .target("0", |v| v == 0.0),
        Line::new(
            format!("render {rs} series, text 0.0.4, per series"),
            per(&format!("render/promshm/prometheus_{rs}"), s.render_small),
        )
        .target("≤ 500 ns (≥ 2 M series/s)", |v| v <= 500.0)
        .reference(
            "prometheus `gather` + `TextEncoder`",
            per(
                &format!("render/prometheus/gather_text_{rs}"),
                s.render_small,
            ),
        ),
        Line::new(
            format!("render {rl} series, text 0.0.4, per series"),
            per(&format!("render/promshm/prometheus_{rl}"), s.render_large),
        )
        .target("≤ 500 ns (≥ 2 M series/s)", |v| v <= 500.0),
        Line::new(
            format!("render {rl} series, text 0.0.4, whole render"),
            stat(&format!("render/promshm/prometheus_{rl}")),
        )
        .target("≤ 50 ms for 100k", |v| v <= 50e6),
        Line::new(
            format!("render {rs} series, OpenMetrics, per series"),
            per(&format!("render/promshm/openmetrics_{rs}"), s.render_small),
        )
        .target("≤ 500 ns (≥ 2 M series/s)", |v| v <= 500.0)
        .reference(
            "prometheus-client `text::encode` (OpenMetrics)",
            per(
                &format!("render/prometheus_client/openmetrics_{rs}"),
                s.render_small,
            ),
        ),
        Line::new(
            format!("render throughput, text 0.0.4, {rs}"),
            render_small("promshm/prometheus"),
        )
        .shown(fmt_rate(render_small("promshm/prometheus"), s.render_small)),
        Line::new(
            format!("render throughput, text 0.0.4, {rl}"),
            stat(&format!("render/promshm/prometheus_{rl}")),
        )
        .shown(fmt_rate(
            stat(&format!("render/promshm/prometheus_{rl}")),
            s.render_large,
        )),
        Line::new(
            format!("render throughput, OpenMetrics, {rs}"),
            render_small("promshm/openmetrics"),
        )
        .shown(fmt_rate(
            render_small("promshm/openmetrics"),
            s.render_small,
        )),
        Line::new(
            "2 threads, one series, buffered inc (wall per op per thread)",
            stat("contended_2_threads/promshm/counter_inc_buffered"),
        )
        .reference(
            "prometheus `IntCounter::inc`, 2 threads",
            stat("contended_2_threads/prometheus/int_counter_inc"),
        ),
        Line::new(
            "2 threads, one series, eager inc",
            stat("contended_2_threads/promshm/counter_inc_eager"),
        )
        .reference(
            "prometheus `IntCounter::inc`, 2 threads",
            stat("contended_2_threads/prometheus/int_counter_inc"),
        ),
        Line::new(
            "2 threads, one series, buffered inc",
            stat("contended_2_threads/promshm/counter_inc_buffered"),
        )
        .reference(
            "prometheus `LocalIntCounter`, flush every 1024, 2 threads",
            stat("contended_2_threads/prometheus/local_int_counter_inc_flush_1024"),
        ),
    ];
    lines.extend(local_histogram_lines());

    println!();
    if !s.full {
        println!("(smoke run: small data sets, one iteration each; these numbers mean nothing)");
    }
    println!(
        "Times are `median (best)` of the measured samples; load average {load_before} \
         before, {} after.",
        loadavg()
    );
    println!();
    println!(
        "| operation | promshm | target | met | reference (same run) | reference | ref / promshm |"
    );
    println!("| --- | ---: | --- | --- | --- | ---: | ---: |");
    for l in &lines {
        // The throughput rows have no per-op reference; keep their target check only.
        let ratio = match (l.ours, l.theirs) {
            (Some(o), Some(r)) if o.median > 0.0 => format!("{:.2}×", r.median / o.median),
            _ => String::new(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            l.what,
            l.shown,
            l.target,
            l.met,
            l.reference,
            if l.theirs.is_some() {
                fmt_stat(l.theirs)
            } else {
                String::new()
            },
            ratio
        );
    }
    let fixed = fp.bytes_per_series - fp.label_text_per_series;
    println!(
        "| footprint, counter series, 2 short labels ({}) | {:.1} B ({:.1} B + {:.1} B label text) \
         | ≤ 128 B + label text | {} | | | |",
        short(fp.series),
        fp.bytes_per_series,
        fixed,
        fp.label_text_per_series,
        if fixed <= 128.0 { "yes" } else { "**no**" }
    );
}

fn main() {
    let load_before = loadavg();
    let sizes = Sizes::pick();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    hot(&mut c);
    resolve(&mut c);
    reuse(&mut c);
    flush(&mut c, sizes.flush);
    render(&mut c, &sizes);
    contended(&mut c);
    native(&mut c, if sizes.full { 10_000 } else { 100 });
    let fp = footprint(sizes.footprint);
    c.final_summary();
    summary(&sizes, &fp, &load_before);
    if let Some(path) = std::env::var_os("PROMSHM_BENCH_OUT") {
        write_stats(std::path::Path::new(&path));
    }
}

/// Write `id median best` (ns per iteration) for every benchmark, one a
/// line, for scripts/bench.sh's table.
fn write_stats(path: &std::path::Path) {
    let ids: Vec<String> = RESULTS.lock().unwrap().keys().cloned().collect();
    let mut out = String::new();
    for id in ids {
        if let Some(s) = stat(&id) {
            out.push_str(&format!("{id} {:.4} {:.4}\n", s.median, s.best));
        }
    }
    if let Err(e) = std::fs::write(path, out) {
        eprintln!("core bench: cannot write {}: {e}", path.display());
    }
}
