//! A small render loop for instruction counts (`valgrind --tool=callgrind`):
//! `render_loop [prometheus|openmetrics|gauge-livesum|gauge-all] [series] [renders] [max_workers] [vec|string]`.
//! `vec` (the default) renders into a fresh `Vec` through `Area::render`
//! (any writer: the encoder's buffer is copied into it), `string` with
//! `Area::render_to_string` (the text written into its vector directly, as
//! the C API's buffer renders do).
//! The gauge kinds render (text 0.0.4) a gauge family of that mode, set by
//! this one process, in an area of `max_workers` worker slots (default 8).

use promshm::{Area, AreaOptions, Format, GaugeMode, Opts};

const CODES: [&str; 5] = ["200", "201", "304", "404", "500"];

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_default();
    let (format, gauge) = match kind.as_str() {
        "openmetrics" => (Format::OpenMetrics, None),
        "gauge-livesum" => (Format::Prometheus, Some(GaugeMode::LiveSum)),
        "gauge-all" => (Format::Prometheus, Some(GaugeMode::All)),
        _ => (Format::Prometheus, None),
    };
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let renders: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let workers: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(8);
    let to_string = args.next().as_deref() == Some("string");
    let pages = (n / 40 + 256) as u32;
    let mut opts = AreaOptions::with_pages(pages);
    opts.max_workers = workers;
    let area = Area::anonymous(&opts).expect("area");
    let labels = |i: usize| [format!("/api/item/{i}"), CODES[i % 5].to_owned()];
    let names = Opts::new("http_requests", "Requests served.").labels(&["path", "code"]);
    if let Some(mode) = gauge {
        let fam = area.registry().gauge(names, mode).expect("family");
        for i in 0..n {
            let l = labels(i);
            let g = fam.labels(&[&l[0], &l[1]]).expect("series");
            g.set(((i * 37) % 100_000) as f64);
        }
    } else {
        let fam = area.registry().counter(names.eager(true)).expect("family");
        for i in 0..n {
            let l = labels(i);
            let c = fam.labels(&[&l[0], &l[1]]).expect("series");
            c.add(((i * 37) % 100_000) as f64).expect("add");
        }
    }
    let mut bytes = 0;
    for _ in 0..renders {
        if to_string {
            bytes += area.render_to_string(format).expect("render").len();
            continue;
        }
        let mut out = Vec::new();
        area.render(&mut out, format).expect("render");
        bytes += out.len();
    }
    println!("{bytes} bytes");
}
