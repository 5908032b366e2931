//! `promshm remote-write`: Prometheus remote-write 1.0.
//!
//! Each snapshot walks the area once through the library's
//! [`SampleEncoder`], which names every sample exactly as a scrape would
//! (`_total`, `_bucket{le}`, `_sum`, `_count`, `{quantile}`, `_info`, one
//! sample per state of a state set; `le`/`quantile` in the canonical form
//! Prometheus stores). Samples become `TimeSeries` of a protobuf
//! `WriteRequest` (encoded by hand: the few messages involved are tiny),
//! cut into requests of at most `--max-series-per-request` series, each
//! snappy-compressed (block format). All samples of a snapshot carry the same
//! timestamp, taken when the walk starts.
//!
//! Requests go through a bounded queue to one sender thread, which retries
//! network errors, 429 and 5xx with exponential backoff and gives up at once
//! on any other 4xx. When the queue is full the oldest request is dropped
//! (and counted), so memory stays bounded during a long outage.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use promshm::encoding::{MetricType, Sample, SampleEncoder};

use crate::client::{check_url, Client, ClientOpts, SendError};
use crate::common::{
    area_error, every, exit, install_signal_handlers, log, now_ms, parse_duration,
    parse_label_pair, AreaSource, CliError, CliResult, RenderOpts,
};
use crate::files::FileArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The area file.
    pub area: PathBuf,
    /// Remote-write endpoint, e.g. http://127.0.0.1:9090/api/v1/write.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// Send a snapshot every DURATION until SIGTERM/SIGINT (default: once).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// Label added to every series that does not have it (repeatable), e.g. --external-label cluster=eu1.
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_label_pair)]
    pub external_label: Vec<(String, String)>,
    /// Most series (one sample each) per request.
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_series_per_request: u32,
    /// Most requests waiting to be sent; beyond it the oldest is dropped.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub queue_capacity: u32,
    /// Do not send metric metadata (type, help, unit) with the samples.
    #[arg(long)]
    pub no_metadata: bool,
    #[command(flatten)]
    pub render: RenderOpts,
    #[command(flatten)]
    pub client: ClientOpts,
}

// ---- protobuf ---------------------------------------------------------------------

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Field `field` of wire type 2 (length-delimited).
fn put_bytes(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
    put_varint(buf, u64::from(field << 3 | 2));
    put_varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

/// `prometheus.Label { string name = 1; string value = 2; }`
fn put_label(buf: &mut Vec<u8>, scratch: &mut Vec<u8>, name: &str, value: &str) {
    scratch.clear();
    put_bytes(scratch, 1, name.as_bytes());
    put_bytes(scratch, 2, value.as_bytes());
    put_bytes(buf, 1, scratch);
}

/// `prometheus.TimeSeries { repeated Label labels = 1; repeated Sample samples = 2; }`
/// with one `Sample { double value = 1; int64 timestamp = 2; }`, as field 1 of
/// `WriteRequest`. `labels` must be sorted by name.
fn put_series(out: &mut Vec<u8>, ts: &mut Vec<u8>, labels: &[(&str, &str)], value: f64, t_ms: i64) {
    ts.clear();
    let mut scratch = Vec::with_capacity(64);
    for (k, v) in labels {
        put_label(ts, &mut scratch, k, v);
    }
    scratch.clear();
    scratch.push(1 << 3 | 1); // field 1, 64-bit
    scratch.extend_from_slice(&value.to_le_bytes());
    scratch.push(2 << 3); // field 2, varint
    put_varint(&mut scratch, t_ms as u64);
    put_bytes(ts, 2, &scratch);
    put_bytes(out, 1, ts);
}

/// `prometheus.MetricMetadata { MetricType type = 1; string metric_family_name = 2;
/// string help = 4; string unit = 5; }` as field 3 of `WriteRequest`.
fn put_metadata(out: &mut Vec<u8>, kind: MetricType, family: &str, help: &str, unit: &str) {
    let t = match kind {
        MetricType::Counter => 1,
        MetricType::Gauge => 2,
        // Native histograms are sent as their classic view (count, sum, +Inf).
        MetricType::Histogram | MetricType::NativeHistogram => 3,
        MetricType::Summary => 5,
        MetricType::Info => 6,
        MetricType::StateSet => 7,
    };
    let mut m = Vec::with_capacity(family.len() + help.len() + unit.len() + 8);
    m.push(1 << 3);
    put_varint(&mut m, t);
    put_bytes(&mut m, 2, family.as_bytes());
    if !help.is_empty() {
        put_bytes(&mut m, 4, help.as_bytes());
    }
    if !unit.is_empty() {
        put_bytes(&mut m, 5, unit.as_bytes());
    }
    put_bytes(out, 3, &m);
}

// ---- snapshot -> requests ---------------------------------------------------------

/// One snappy-compressed `WriteRequest`.
pub struct Batch {
    pub body: Vec<u8>,
    pub series: usize,
}

/// Cuts the samples of one snapshot into requests.
struct Batcher<'a> {
    external: &'a [(String, String)],
    metadata: bool,
    max_series: usize,
    t_ms: i64,
    req: Vec<u8>,
    n: usize,
    ts: Vec<u8>,
    last_family: String,
    emit: &'a mut dyn FnMut(Batch),
    total: usize,
}

impl Batcher<'_> {
    fn sample(&mut self, s: &Sample<'_>) {
        if self.metadata && self.last_family != s.family.name {
            self.last_family.clear();
            self.last_family.push_str(s.family.name);
            // The family name a 0.0.4 scrape reports in its TYPE line.
            let family = match s.family.kind {
                MetricType::Counter => format!("{}_total", s.family.name),
                MetricType::Info => format!("{}_info", s.family.name),
                _ => s.family.name.to_owned(),
            };
            put_metadata(
                &mut self.req,
                s.family.kind,
                &family,
                s.family.help,
                s.family.unit,
            );
        }
        let mut labels: Vec<(&str, &str)> =
            Vec::with_capacity(s.labels.len() + 1 + self.external.len());
        labels.push(("__name__", s.name));
        // A scrape drops labels with empty values; so does the spec.
        labels.extend(s.labels.iter().copied().filter(|(_, v)| !v.is_empty()));
        for (k, v) in self.external {
            if !v.is_empty() && !labels.iter().any(|(n, _)| n == k) {
                labels.push((k, v));
            }
        }
        labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
        put_series(&mut self.req, &mut self.ts, &labels, s.value, self.t_ms);
        self.n += 1;
        self.total += 1;
        if self.n >= self.max_series {
            self.cut();
        }
    }

    fn cut(&mut self) {
        if self.n == 0 && self.req.is_empty() {
            return;
        }
        let body = snap::raw::Encoder::new()
            .compress_vec(&self.req)
            .expect("snappy compression of an in-memory buffer");
        (self.emit)(Batch {
            body,
            series: self.n,
        });
        self.req.clear();
        self.n = 0;
    }
}

/// Walk the area once and hand out its requests; returns the number of series.
pub fn snapshot(
    area: &promshm::Area,
    render: &RenderOpts,
    external: &[(String, String)],
    metadata: bool,
    max_series: usize,
    emit: &mut dyn FnMut(Batch),
) -> CliResult<usize> {
    let registry = render.registry(area)?;
    let mut b = Batcher {
        external,
        metadata,
        max_series,
        t_ms: now_ms() as i64,
        req: Vec::with_capacity(64 * 1024),
        n: 0,
        ts: Vec::with_capacity(256),
        last_family: String::new(),
        emit,
        total: 0,
    };
    let mut enc = SampleEncoder::new(|s: &Sample<'_>| {
        b.sample(s);
        Ok(())
    });
    registry
        .render_with(&mut enc)
        .map_err(|e| area_error(area.path().unwrap_or(std::path::Path::new("(area)")), e))?;
    b.cut();
    Ok(b.total)
}

// ---- queue and sender -------------------------------------------------------------

struct QueueState {
    batches: VecDeque<Batch>,
    closed: bool,
    dropped: u64,
    in_flight: bool,
}

/// A bounded queue of requests; the producer never blocks (it drops the oldest).
struct Queue {
    state: Mutex<QueueState>,
    cv: Condvar,
    capacity: usize,
}

impl Queue {
    fn new(capacity: usize) -> Queue {
        Queue {
            state: Mutex::new(QueueState {
                batches: VecDeque::new(),
                closed: false,
                dropped: 0,
                in_flight: false,
            }),
            cv: Condvar::new(),
            capacity,
        }
    }

    fn push(&self, b: Batch) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.batches.len() >= self.capacity {
            if let Some(old) = s.batches.pop_front() {
                s.dropped += 1;
                if s.dropped == 1 || s.dropped.is_power_of_two() {
                    log(&format!(
                        "remote-write queue full ({} requests): dropped the oldest ({} series); {} dropped so far",
                        self.capacity, old.series, s.dropped
                    ));
                }
            }
        }
        s.batches.push_back(b);
        self.cv.notify_all();
    }

    fn pop(&self) -> Option<Batch> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(b) = s.batches.pop_front() {
                s.in_flight = true;
                return Some(b);
            }
            if s.closed {
                return None;
            }
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn done(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.in_flight = false;
        self.cv.notify_all();
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.cv.notify_all();
    }

    /// Wait until everything queued was sent (or `deadline` passes).
    fn drain(&self, deadline: Instant) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while !s.batches.is_empty() || s.in_flight {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            s = self
                .cv
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

const HEADERS: [(&str, &str); 3] = [
    ("Content-Encoding", "snappy"),
    ("Content-Type", "application/x-protobuf"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

pub fn run(a: Args, files: &FileArgs) -> CliResult {
    check_url("--url", &a.url)?;
    a.render.check()?;
    let client = Client::new(&a.client)?;
    let area = AreaSource::open(&a.area, files)?;
    match a.interval {
        None => send_once(&a, &client, &area),
        Some(interval) => send_every(interval, &a, client, &area),
    }
}

/// One snapshot of the area, as the requests that carry it, and the number
/// of series in them; nothing if the area could not be read soundly.
fn take_snapshot(a: &Args, area: &AreaSource) -> CliResult<(Vec<Batch>, usize)> {
    let mut batches = Vec::new();
    let n = area.with(|area| {
        snapshot(
            area,
            &a.render,
            &a.external_label,
            !a.no_metadata,
            a.max_series_per_request as usize,
            &mut |b| batches.push(b),
        )
    })?;
    Ok((batches, n))
}

/// Produce every request, then send them in order; stop at the first failure.
fn send_once(a: &Args, client: &Client, area: &AreaSource) -> CliResult {
    let (batches, n) = take_snapshot(a, area)?;
    for b in &batches {
        client
            .send_with_retries("POST", &a.url, &HEADERS, &b.body)
            .map_err(|e| send_error(&e))?;
    }
    log(&format!(
        "remote-write: sent {n} series in {} requests to {}",
        batches.len(),
        a.url
    ));
    Ok(())
}

/// A snapshot every `interval` into the queue, until SIGTERM/SIGINT; then
/// what is queued gets a bounded time to go out.
fn send_every(interval: Duration, a: &Args, client: Client, area: &AreaSource) -> CliResult {
    install_signal_handlers()?;
    let queue = Arc::new(Queue::new(a.queue_capacity as usize));
    let sender = start_sender(queue.clone(), client, a.url.clone())?;
    let result = every(interval, || {
        // Queued only once the whole snapshot is known to be sound.
        for b in take_snapshot(a, area)?.0 {
            queue.push(b);
        }
        Ok(())
    });
    let drained = queue.drain(Instant::now() + a.client.timeout.max(Duration::from_secs(5)));
    queue.close();
    if drained {
        let _ = sender.join();
    } else {
        log("remote-write: shutting down with requests still queued");
    }
    result
}

/// The thread that sends what is queued, in order, until the queue is closed;
/// a request that fails for good is logged and dropped.
fn start_sender(
    queue: Arc<Queue>,
    client: Client,
    url: String,
) -> CliResult<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("remote-write".into())
        .spawn(move || {
            while let Some(b) = queue.pop() {
                if let Err(e) = client.send_with_retries("POST", &url, &HEADERS, &b.body) {
                    log(&format!(
                        "remote-write: {} series not sent: {}",
                        b.series,
                        send_error(&e).msg
                    ));
                }
                queue.done();
            }
        })
        .map_err(|e| CliError::failure(format!("cannot start the sender thread: {e}")))
}

fn send_error(e: &SendError) -> CliError {
    match e {
        SendError::Rejected(m) => CliError::new(
            exit::ENDPOINT,
            format!("remote-write rejected (not retried): {m}"),
        ),
        SendError::Transient(m) => {
            CliError::new(exit::ENDPOINT, format!("remote-write failed: {m}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_queue_drops_the_oldest() {
        let q = Queue {
            state: Mutex::new(QueueState {
                batches: VecDeque::new(),
                closed: false,
                dropped: 0,
                in_flight: false,
            }),
            cv: Condvar::new(),
            capacity: 2,
        };
        for series in 1..=3 {
            q.push(Batch {
                body: Vec::new(),
                series,
            });
        }
        assert_eq!(q.state.lock().unwrap().dropped, 1);
        q.close();
        assert_eq!(q.pop().unwrap().series, 2);
        q.done();
        assert_eq!(q.pop().unwrap().series, 3);
        q.done();
        assert!(q.pop().is_none());
        assert!(q.drain(Instant::now()));
    }

    #[test]
    fn varints() {
        let mut b = Vec::new();
        put_varint(&mut b, 0);
        put_varint(&mut b, 1);
        put_varint(&mut b, 300);
        put_varint(&mut b, u64::MAX);
        assert_eq!(
            b,
            [0, 1, 0xac, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }

    #[test]
    fn one_series_bytes() {
        let mut out = Vec::new();
        let mut ts = Vec::new();
        put_series(&mut out, &mut ts, &[("__name__", "up")], 1.0, 1000);
        let label = [&[0x0a, 8][..], b"__name__", &[0x12, 2], b"up"].concat();
        let sample = [&[0x09][..], &1.0f64.to_le_bytes(), &[0x10, 0xe8, 0x07]].concat();
        let series = [
            &[0x0a, label.len() as u8][..],
            &label,
            &[0x12, sample.len() as u8],
            &sample,
        ]
        .concat();
        let want = [&[0x0a, series.len() as u8][..], &series].concat();
        assert_eq!(out, want);
    }

    #[test]
    fn metadata_bytes() {
        let mut out = Vec::new();
        put_metadata(&mut out, MetricType::Counter, "a_total", "", "");
        assert_eq!(
            out,
            [&[0x1a, 11, 0x08, 1, 0x12, 7][..], b"a_total"].concat()
        );
    }

    #[test]
    fn snapshot_names_and_labels() {
        let area = promshm::Area::anonymous(&promshm::AreaOptions::with_pages(64)).unwrap();
        let reg = area.registry();
        let c = reg
            .counter(promshm::Opts::new("reqs", "Requests.").labels(&["Path", "empty"]))
            .unwrap();
        c.labels(&["/", ""]).unwrap().add(3.0).unwrap();
        promshm::flush();
        let opts = RenderOpts {
            namespace: None,
            no_self_metrics: true,
        };
        let mut batches = Vec::new();
        let external = vec![
            ("cluster".to_string(), "eu".to_string()),
            ("Path".to_string(), "x".to_string()),
        ];
        let n = snapshot(&area, &opts, &external, true, 1, &mut |b| batches.push(b)).unwrap();
        assert_eq!(n, 1);
        assert_eq!(batches.len(), 1);
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&batches[0].body)
            .unwrap();
        // Labels sorted by name; the empty label dropped; the series' own Path kept.
        let text = String::from_utf8_lossy(&raw);
        let p = text.find("Path").unwrap();
        let n_ = text.find("__name__").unwrap();
        let c_ = text.find("cluster").unwrap();
        assert!(p < n_ && n_ < c_, "{text:?}");
        assert!(text.contains("reqs_total"));
        assert!(!text.contains("empty"));
        assert!(!text.contains("\u{1}x"));
    }
}
