//! The demo: a parent creates an anonymous shared area, forks 4 workers that
//! each serve fake "requests" (labelled counters, a latency histogram, a
//! summary and a per-worker gauge), then renders what all of them wrote.
//!
//! Run: `cargo run --release --example demo [-- --openmetrics]`

use promshm::{Area, AreaOptions, Format, GaugeMode, Opts, SummaryOpts, DEFAULT_BUCKETS};

const WORKERS: u64 = 4;
const REQUESTS_PER_WORKER: u64 = 25_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let format = if std::env::args().any(|a| a == "--openmetrics") {
        Format::OpenMetrics
    } else {
        Format::Prometheus
    };
    // Made before fork(): every child inherits the same shared mapping.
    let area = Area::anonymous(&AreaOptions::default())?;
    let registry = area.registry().with_prefix("demo")?;
    let requests = registry.counter(
        Opts::new("http_requests", "HTTP requests served, by path and status.")
            .labels(&["path", "status"]),
    )?;
    let latency = registry.histogram(
        Opts::new("http_request_duration", "Request latency.").unit("seconds"),
        &DEFAULT_BUCKETS,
    )?;
    let sizes = registry.summary(
        Opts::new("http_response_size", "Response sizes.").unit("bytes"),
        &SummaryOpts::quantiles(&[0.5, 0.9, 0.99]),
    )?;
    let busy = registry.gauge(
        Opts::new("worker_busy", "Requests in progress, per worker."),
        GaugeMode::All,
    )?;
    let served = registry.gauge(
        Opts::new("worker_requests_served", "Requests served by live workers."),
        GaugeMode::LiveSum,
    )?;

    // Workers report "done" on one pipe and wait on another until the parent
    // has rendered, so the per-worker gauges are shown while they are alive.
    let (done_rx, done_tx) = pipe()?;
    let (quit_rx, quit_tx) = pipe()?;
    let mut children = Vec::new();
    for worker in 0..WORKERS {
        // SAFETY: the demo is single-threaded here, so the child may run Rust code.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        if pid == 0 {
            // Worker: resolve handles once, then update them on the hot path.
            let ok = requests.labels(&["/", "200"])?;
            let missing = requests.labels(&["/missing", "404"])?;
            let latency = latency.get()?;
            let sizes = sizes.get()?;
            let busy = busy.get()?;
            let served = served.get()?;
            for i in 0..REQUESTS_PER_WORKER {
                busy.inc();
                if i % 10 == 0 {
                    missing.inc()
                } else {
                    ok.inc()
                }
                latency.observe(0.001 * ((i % 700) as f64 + worker as f64))?;
                sizes.observe((512 + (i * 37) % 4096) as f64)?;
                busy.dec();
                if i % 1000 == 999 {
                    served.set((i + 1) as f64);
                    promshm::flush(); // as a server would at request end
                }
            }
            busy.set(worker as f64); // something to tell the workers apart
            promshm::flush();
            // SAFETY: plain fd I/O on pipes this process owns.
            unsafe {
                libc::write(done_tx, [1u8].as_ptr().cast(), 1);
                libc::close(quit_tx);
                let mut b = [0u8; 1];
                libc::read(quit_rx, b.as_mut_ptr().cast(), 1); // returns at EOF
            }
            std::process::exit(0);
        }
        children.push(pid);
    }
    // SAFETY: plain fd I/O on pipes this process owns.
    unsafe {
        libc::close(done_tx);
        for _ in 0..WORKERS {
            let mut b = [0u8; 1];
            libc::read(done_rx, b.as_mut_ptr().cast(), 1);
        }
    }
    let text = area.render_to_string(format)?;
    print!("{text}");
    // SAFETY: closing our write end releases the workers.
    unsafe { libc::close(quit_tx) };
    for pid in children {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
    let total =
        requests.labels(&["/", "200"])?.get() + requests.labels(&["/missing", "404"])?.get();
    eprintln!(
        "\n{WORKERS} workers x {REQUESTS_PER_WORKER} requests: demo_http_requests_total sums to {total} (expected {})",
        WORKERS * REQUESTS_PER_WORKER
    );
    Ok(())
}

fn pipe() -> std::io::Result<(libc::c_int, libc::c_int)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((fds[0], fds[1]))
}
