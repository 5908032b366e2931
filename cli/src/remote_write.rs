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
//! A native histogram series is sent as one remote-write 1.0 histogram
//! sample (`TimeSeries.histograms`, integer counts: schema, zero bucket,
//! spans and deltas exactly as the protobuf exposition writes them), named
//! by the family's base name, not as its classic `_count`/`_sum`/`+Inf`
//! view; the receiver must accept native histograms (Prometheus:
//! `--enable-feature=native-histograms`), or `--native-histograms-as-classic`
//! sends that classic view instead.
//!
//! Exemplars (`TimeSeries.exemplars`: labels, value, timestamp in ms) go
//! with the series they belong to: a counter's with its `_total` series, a
//! classic histogram's with its bucket's `_bucket{le}` series, a native
//! histogram's with its histogram sample (the receiver must keep them:
//! Prometheus `--enable-feature=exemplar-storage`).
//!
//! Requests go through a bounded queue to one sender thread, which retries
//! network errors, 429 and 5xx with exponential backoff and gives up at once
//! on any other 4xx. When the queue is full the oldest request is dropped
//! (and counted), so memory stays bounded during a long outage.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use promshm::encoding::protobuf::spans_and_deltas;
use promshm::encoding::{
    Encoder, Exemplar, FamilyDesc, Labels, MetricType, Point, Sample, SampleEncoder,
};

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
    /// Send native histograms as their classic view (`_count`, `_sum`, one
    /// `+Inf` bucket) instead of histogram samples, for a receiver that
    /// drops histogram samples (e.g. VictoriaMetrics before native support).
    #[arg(long)]
    pub native_histograms_as_classic: bool,
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

/// Field `field` of wire type 0 (varint).
fn put_varint_field(buf: &mut Vec<u8>, field: u32, v: u64) {
    put_varint(buf, u64::from(field << 3));
    put_varint(buf, v);
}

/// Field `field` of wire type 1 (64-bit), a double.
fn put_double_field(buf: &mut Vec<u8>, field: u32, v: f64) {
    put_varint(buf, u64::from(field << 3 | 1));
    buf.extend_from_slice(&v.to_le_bytes());
}

/// The zigzag encoding of `sint32`/`sint64`.
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
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
#[cfg(test)]
fn put_series(out: &mut Vec<u8>, ts: &mut Vec<u8>, labels: &[(&str, &str)], value: f64, t_ms: i64) {
    put_series_with(out, ts, labels, value, t_ms, &[]);
}

/// [`put_series`] with `repeated Exemplar exemplars = 3`.
fn put_series_with(
    out: &mut Vec<u8>,
    ts: &mut Vec<u8>,
    labels: &[(&str, &str)],
    value: f64,
    t_ms: i64,
    exemplars: &[&Exemplar],
) {
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
    put_exemplars(ts, exemplars);
    put_bytes(out, 1, ts);
}

/// `prometheus.Exemplar { repeated Label labels = 1; double value = 2;
/// int64 timestamp = 3; }` (ms), each as field 3 of a `TimeSeries`.
fn put_exemplars(ts: &mut Vec<u8>, exemplars: &[&Exemplar]) {
    let mut m = Vec::with_capacity(64);
    let mut scratch = Vec::with_capacity(64);
    for e in exemplars {
        m.clear();
        for (k, v) in &e.labels {
            put_label(&mut m, &mut scratch, k, v);
        }
        put_double_field(&mut m, 2, e.value);
        put_varint_field(&mut m, 3, (e.timestamp * 1000.0).round() as i64 as u64);
        put_bytes(ts, 3, &m);
    }
}

/// What a remote-write histogram sample carries of a native histogram point.
struct NativeSample<'a> {
    schema: i32,
    zero_threshold: f64,
    zero_count: u64,
    count: u64,
    sum: f64,
    positive: &'a [(i32, u64)],
    negative: &'a [(i32, u64)],
    exemplars: &'a [&'a Exemplar],
}

/// `BucketSpan { sint32 offset = 1; uint32 length = 2; }` fields `spans`,
/// then the packed `sint64` deltas as field `deltas`, of the buckets `b`.
fn put_buckets(h: &mut Vec<u8>, spans: u32, deltas: u32, b: &[(i32, u64)]) {
    let (sp, de) = spans_and_deltas(b);
    let mut m = Vec::with_capacity(8);
    for s in &sp {
        m.clear();
        put_varint_field(&mut m, 1, zigzag(i64::from(s.offset())));
        put_varint_field(&mut m, 2, u64::from(s.length()));
        put_bytes(h, spans, &m);
    }
    if !de.is_empty() {
        m.clear();
        for d in de {
            put_varint(&mut m, zigzag(d));
        }
        put_bytes(h, deltas, &m);
    }
}

/// `prometheus.Histogram { uint64 count_int = 1; double sum = 3; sint32
/// schema = 4; double zero_threshold = 5; uint64 zero_count_int = 6;
/// repeated BucketSpan negative_spans = 8; repeated sint64 negative_deltas
/// = 9; repeated BucketSpan positive_spans = 11; repeated sint64
/// positive_deltas = 12; int64 timestamp = 15; }` (prompb/types.proto; the
/// float variants and the reset hint are left unset), as field 4 of a
/// `TimeSeries` with `labels`, as field 1 of `WriteRequest`.
fn put_histogram_series(
    out: &mut Vec<u8>,
    ts: &mut Vec<u8>,
    labels: &[(&str, &str)],
    n: &NativeSample<'_>,
    t_ms: i64,
) {
    ts.clear();
    let mut scratch = Vec::with_capacity(64);
    for (k, v) in labels {
        put_label(ts, &mut scratch, k, v);
    }
    let mut h = Vec::with_capacity(64 + 4 * (n.positive.len() + n.negative.len()));
    // proto3 always writes the member of a oneof that is set, even 0.
    put_varint_field(&mut h, 1, n.count);
    put_double_field(&mut h, 3, n.sum);
    put_varint_field(&mut h, 4, zigzag(i64::from(n.schema)));
    put_double_field(&mut h, 5, n.zero_threshold);
    put_varint_field(&mut h, 6, n.zero_count);
    put_buckets(&mut h, 8, 9, n.negative);
    put_buckets(&mut h, 11, 12, n.positive);
    put_varint_field(&mut h, 15, t_ms as u64);
    put_bytes(ts, 4, &h);
    put_exemplars(ts, n.exemplars);
    put_bytes(out, 1, ts);
}

/// `prometheus.MetricMetadata { MetricType type = 1; string metric_family_name = 2;
/// string help = 4; string unit = 5; }` as field 3 of `WriteRequest`.
fn put_metadata(out: &mut Vec<u8>, kind: MetricType, family: &str, help: &str, unit: &str) {
    let t = match kind {
        MetricType::Counter => 1,
        MetricType::Gauge => 2,
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

/// `__name__`, the series' labels and the `external` ones it does not
/// have, sorted by name; labels with empty values are dropped (as a scrape
/// and the spec do).
fn series_labels<'l>(
    external: &'l [(String, String)],
    name: &'l str,
    labels: Labels<'l>,
) -> Vec<(&'l str, &'l str)> {
    let mut all: Vec<(&str, &str)> = Vec::with_capacity(labels.len() + 1 + external.len());
    all.push(("__name__", name));
    all.extend(labels.iter().copied().filter(|(_, v)| !v.is_empty()));
    for (k, v) in external {
        if !v.is_empty() && !all.iter().any(|(n, _)| n == k) {
            all.push((k, v));
        }
    }
    all.sort_unstable_by(|a, b| a.0.cmp(b.0));
    all
}

/// Cuts the samples of one snapshot into requests.
struct Batcher<'a> {
    external: &'a [(String, String)],
    metadata: bool,
    native_as_classic: bool,
    max_series: usize,
    t_ms: i64,
    req: Vec<u8>,
    n: usize,
    ts: Vec<u8>,
    last_family: String,
    emit: &'a mut dyn FnMut(Batch),
    total: usize,
    /// The exemplars of the point being written, and how many `_bucket`
    /// samples of it were written so far (the index of the next bucket).
    exemplars: Vec<Exemplar>,
    bucket: usize,
    /// Whether the point being written is a native histogram with classic
    /// buckets too (its exemplar slots are those buckets).
    classic_slots: bool,
}

impl Batcher<'_> {
    /// The exemplars that go with sample `s` of the current point.
    fn exemplars_of(&mut self, s: &Sample<'_>) -> Vec<&Exemplar> {
        if self.exemplars.is_empty() {
            return Vec::new();
        }
        let slot = match s.family.kind {
            MetricType::Counter if s.name.ends_with("_total") => Some(0),
            MetricType::Histogram | MetricType::NativeHistogram
                if s.name.len() == s.family.name.len() + "_bucket".len()
                    && s.name.ends_with("_bucket") =>
            {
                self.bucket += 1;
                Some(self.bucket - 1)
            }
            _ => None,
        };
        // A native-only histogram's slots are not buckets: its one `+Inf`
        // bucket sample carries them all.
        let native = s.family.kind == MetricType::NativeHistogram && !self.classic_slots;
        self.exemplars
            .iter()
            .filter(|e| native || Some(e.bucket) == slot)
            .filter(|_| slot.is_some())
            .collect()
    }

    /// The family's metadata, once, before its first series.
    fn metadata(&mut self, family: &FamilyDesc<'_>) {
        if !self.metadata || self.last_family == family.name {
            return;
        }
        self.last_family.clear();
        self.last_family.push_str(family.name);
        // The family name a 0.0.4 scrape reports in its TYPE line.
        let name = match family.kind {
            MetricType::Counter => format!("{}_total", family.name),
            MetricType::Info => format!("{}_info", family.name),
            _ => family.name.to_owned(),
        };
        put_metadata(&mut self.req, family.kind, &name, family.help, family.unit);
    }

    fn sample(&mut self, s: &Sample<'_>) {
        self.metadata(s.family);
        let labels = series_labels(self.external, s.name, s.labels);
        let mine: Vec<Exemplar> = self.exemplars_of(s).into_iter().cloned().collect();
        let refs: Vec<&Exemplar> = mine.iter().collect();
        put_series_with(
            &mut self.req,
            &mut self.ts,
            &labels,
            s.value,
            self.t_ms,
            &refs,
        );
        self.counted();
    }

    /// A native histogram series: one histogram sample named by the family.
    fn native(&mut self, family: &FamilyDesc<'_>, labels: Labels<'_>, p: &Point<'_>) {
        let Point::NativeHistogram {
            schema,
            zero_threshold,
            zero_count,
            count,
            sum,
            positive,
            negative,
            ..
        } = *p
        else {
            return;
        };
        self.metadata(family);
        let labels = series_labels(self.external, family.name, labels);
        let exemplars = std::mem::take(&mut self.exemplars);
        let refs: Vec<&Exemplar> = exemplars.iter().collect();
        let n = NativeSample {
            schema,
            zero_threshold,
            zero_count,
            count,
            sum,
            positive,
            negative,
            exemplars: &refs,
        };
        put_histogram_series(&mut self.req, &mut self.ts, &labels, &n, self.t_ms);
        self.counted();
    }

    fn counted(&mut self) {
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

/// Native histogram points become histogram samples (unless sent as
/// classic); every other point goes through a [`SampleEncoder`] into flat samples.
impl Encoder for Batcher<'_> {
    fn family(&mut self, _family: &FamilyDesc<'_>) -> std::io::Result<()> {
        Ok(())
    }

    fn point(
        &mut self,
        family: &FamilyDesc<'_>,
        labels: Labels<'_>,
        point: &Point<'_>,
    ) -> std::io::Result<()> {
        if matches!(point, Point::NativeHistogram { .. }) && !self.native_as_classic {
            self.native(family, labels, point);
            return Ok(());
        }
        SampleEncoder::new(|s: &Sample<'_>| {
            self.sample(s);
            Ok(())
        })
        .point(family, labels, point)
    }

    fn point_with_exemplars(
        &mut self,
        family: &FamilyDesc<'_>,
        labels: Labels<'_>,
        point: &Point<'_>,
        exemplars: &[Exemplar],
    ) -> std::io::Result<()> {
        self.exemplars.clear();
        self.exemplars.extend_from_slice(exemplars);
        self.bucket = 0;
        self.classic_slots =
            matches!(point, Point::NativeHistogram { classic, .. } if !classic.is_empty());
        let r = self.point(family, labels, point);
        self.exemplars.clear();
        r
    }

    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Walk the area once and hand out its requests; returns the number of series.
pub fn snapshot(
    area: &promshm::Area,
    render: &RenderOpts,
    external: &[(String, String)],
    metadata: bool,
    native_as_classic: bool,
    max_series: usize,
    emit: &mut dyn FnMut(Batch),
) -> CliResult<usize> {
    let registry = render.registry(area)?;
    let mut b = Batcher {
        external,
        metadata,
        native_as_classic,
        max_series,
        t_ms: now_ms() as i64,
        req: Vec::with_capacity(64 * 1024),
        n: 0,
        ts: Vec::with_capacity(256),
        last_family: String::new(),
        emit,
        total: 0,
        exemplars: Vec::new(),
        bucket: 0,
        classic_slots: false,
    };
    registry
        .render_with(&mut b)
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
            a.native_histograms_as_classic,
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
    fn native_histogram_bytes() {
        let n = NativeSample {
            schema: 3,
            zero_threshold: 0.5,
            zero_count: 1,
            count: 7,
            sum: 2.5,
            positive: &[(0, 2), (1, 1), (5, 3)],
            negative: &[(-1, 1)],
            exemplars: &[],
        };
        let mut out = Vec::new();
        let mut ts = Vec::new();
        put_histogram_series(&mut out, &mut ts, &[("__name__", "h")], &n, 1000);
        let label = [&[0x0a, 8][..], b"__name__", &[0x12, 1], b"h"].concat();
        let h = [
            &[0x08, 7, 0x19][..],
            &2.5f64.to_le_bytes(),
            &[0x20, 6, 0x29], // schema 3, zigzag
            &0.5f64.to_le_bytes(),
            &[0x30, 1],
            // negative: one span at offset -1 (zigzag 1), delta +1 (zigzag 2)
            &[0x42, 4, 0x08, 1, 0x10, 1, 0x4a, 1, 2],
            // positive: spans {0, 2} and, after a gap of 3, {3, 1}; deltas 2, -1, 2
            &[0x5a, 4, 0x08, 0, 0x10, 2, 0x5a, 4, 0x08, 6, 0x10, 1],
            &[0x62, 3, 4, 1, 4],
            &[0x78, 0xe8, 0x07],
        ]
        .concat();
        let series = [
            &[0x0a, label.len() as u8][..],
            &label,
            &[0x22, h.len() as u8],
            &h,
        ]
        .concat();
        let want = [&[0x0a, series.len() as u8][..], &series].concat();
        assert_eq!(out, want);
    }

    /// A counter's exemplar goes with its `_total` series, a histogram's
    /// with its bucket's series: `Exemplar { labels, value, timestamp ms }`
    /// as field 3 of that `TimeSeries`, and nowhere else.
    #[test]
    fn exemplars_go_with_their_series() {
        let area = promshm::Area::anonymous(&promshm::AreaOptions::with_pages(64)).unwrap();
        let reg = area.registry();
        let c = reg
            .counter(promshm::Opts::new("reqs", "R."))
            .unwrap()
            .get()
            .unwrap();
        c.add_with_exemplar(2.0, &[("trace_id", "abc")]).unwrap();
        let h = reg
            .histogram(promshm::Opts::new("lat", "L.").eager(true), &[1.0])
            .unwrap()
            .get()
            .unwrap();
        h.observe_with_exemplar(3.0, &[("trace_id", "def")])
            .unwrap();
        promshm::flush();
        let opts = RenderOpts {
            namespace: None,
            no_self_metrics: true,
        };
        let mut batches = Vec::new();
        snapshot(&area, &opts, &[], false, false, 1000, &mut |b| {
            batches.push(b)
        })
        .unwrap();
        let body = snap::raw::Decoder::new()
            .decompress_vec(&batches[0].body)
            .unwrap();
        // The encoding of each expected series with its exemplar: find the
        // exemplar's bytes right after the series' sample.
        let ex = |trace: &str, v: f64| {
            let mut m = Vec::new();
            let mut scratch = Vec::new();
            put_label(&mut m, &mut scratch, "trace_id", trace);
            put_double_field(&mut m, 2, v);
            m
        };
        let find = |needle: &[u8]| body.windows(needle.len()).position(|w| w == needle);
        let (abc, def) = (ex("abc", 2.0), ex("def", 3.0));
        let at_abc = find(&abc).expect("the counter's exemplar");
        let at_def = find(&def).expect("the histogram's exemplar");
        let total = find(b"reqs_total").unwrap();
        let inf = find(b"+Inf").unwrap();
        let created = find(b"reqs_created");
        assert!(total < at_abc && created.is_none_or(|c| at_abc < c));
        assert!(inf < at_def && find(b"lat_count").unwrap() > at_def);
        assert_eq!(
            body.windows(abc.len()).filter(|w| *w == &abc[..]).count(),
            1
        );
    }

    /// A native histogram with classic buckets too, sent as classic: its
    /// exemplar goes with its own classic bucket's series, once.
    #[test]
    fn classic_view_exemplars_go_with_their_bucket() {
        let area = promshm::Area::anonymous(&promshm::AreaOptions::with_pages(64)).unwrap();
        let h = area
            .registry()
            .native_histogram_with_buckets(
                promshm::Opts::new("dual", "D."),
                promshm::NativeOpts::new(),
                &[1.0, 2.0],
            )
            .unwrap()
            .get()
            .unwrap();
        h.observe_with_exemplar(1.5, &[("trace_id", "mid")])
            .unwrap();
        let opts = RenderOpts {
            namespace: None,
            no_self_metrics: true,
        };
        let mut batches = Vec::new();
        snapshot(&area, &opts, &[], false, true, 1000, &mut |b| {
            batches.push(b)
        })
        .unwrap();
        let body = snap::raw::Decoder::new()
            .decompress_vec(&batches[0].body)
            .unwrap();
        let mut ex = Vec::new();
        let mut scratch = Vec::new();
        put_label(&mut ex, &mut scratch, "trace_id", "mid");
        put_double_field(&mut ex, 2, 1.5);
        let find = |needle: &[u8]| body.windows(needle.len()).position(|w| w == needle);
        let at = find(&ex).expect("the exemplar");
        assert_eq!(body.windows(ex.len()).filter(|w| *w == &ex[..]).count(), 1);
        // le="2.0" is the series written after le="1.0" and before +Inf.
        assert!(find(b"2.0").unwrap() < at && at < find(b"+Inf").unwrap());
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
        let n = snapshot(&area, &opts, &external, true, false, 1, &mut |b| {
            batches.push(b)
        })
        .unwrap();
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
