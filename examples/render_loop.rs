//! A small render loop for instruction counts (`valgrind --tool=callgrind`):
//! `render_loop [prometheus|openmetrics] [series] [renders]`.

use promshm::{Area, AreaOptions, Format, Opts};

const CODES: [&str; 5] = ["200", "201", "304", "404", "500"];

fn main() {
    let mut args = std::env::args().skip(1);
    let format = match args.next().as_deref() {
        Some("openmetrics") => Format::OpenMetrics,
        _ => Format::Prometheus,
    };
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let renders: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
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
        let c = fam
            .labels(&[&format!("/api/item/{i}"), CODES[i % 5]])
            .expect("series");
        c.add(((i * 37) % 100_000) as f64).expect("add");
    }
    let mut bytes = 0;
    for _ in 0..renders {
        let mut out = Vec::new();
        area.render(&mut out, format).expect("render");
        bytes += out.len();
    }
    println!("{bytes} bytes");
}
