//! `promshm serve`: an HTTP(S) exporter for an area, opened read-only.
//!
//! The HTTP/1.1 protocol is hyper's (on tokio); what is ours is a table of
//! connections that bounds what clients can take, whatever they do:
//! - at most `--max-connections` connections; when all are taken, one is
//!   closed to make room, in the order of `pick_victim`: long idle or
//!   slow-loris ones first, then stalled response writers, ..., then the
//!   requests being answered, and last the connections that have just
//!   arrived or whose request waits unread; a request being rendered is
//!   never closed, and if only those are open the newcomer gets a 503;
//! - a request head (and a TLS handshake) must arrive within
//!   `--header-timeout` of its first byte, within `--max-request-bytes` and
//!   `--max-headers`; an idle keep-alive connection is closed after
//!   `--idle-timeout`; a whole response must be written within
//!   `--write-timeout`;
//! - renders run in a pool of `--max-renders` threads at a lower CPU
//!   priority, so that `/healthz` and the network side never wait for one;
//!   scrapes of the same kind of page that arrive during a render share the
//!   next one (its chunks too), so a crowd costs two renders, not one each;
//! - bodies are streamed in 64 KiB chunks counted against
//!   `--max-body-memory` (all connections together) until written: when it
//!   is spent, the writer stalled longest (no progress for 1 s) is dropped,
//!   and if none is, the scrape gets a 503; each connection's kernel send
//!   buffer is fixed at 256 KiB (doubled by the kernel).
//!
//! The area file is checked before each render (replaced, truncated, not a
//! regular file) and reopened outside any lock; a file truncated during a
//! render is caught by the SIGBUS handler of `crate::sigbus` and that page
//! is discarded. Both answer 503 until a sound area is back.
//!
//! SIGTERM/SIGINT stop accepting, close idle connections, let responses in
//! flight finish (up to 10 s) and exit 0.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONNECTION, CONTENT_LENGTH};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use promshm::encoding::negotiate;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::auth::BasicAuth;
use crate::body::{Budget, ChunkBody, ChunkWriter, Progress};
use crate::common::{
    exit, install_signal_handlers, log, parse_duration, shutting_down, AreaSource, CliError,
    CliResult, RenderOpts,
};
use crate::files::FileArgs;
use crate::http::{accepts_gzip, keep_alive};

/// The bound on body memory, stated in `--help` and the README.
const MEMORY_HELP: &str =
    "Most bytes of response bodies held in memory at once, all connections together \
(renders in progress included); suffixes KiB, MiB, GiB. Must exceed the largest page. \
serve's memory (VmRSS, VmHWM) stays below the area's size (its mapping) + this + 24 MiB \
+ 16 MiB per render slot + 128 KiB per connection.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The area file.
    pub area: PathBuf,
    /// Address to listen on (port 0 picks a free port; the address is printed on stderr).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9464")]
    pub listen: String,
    /// Path of the metrics endpoint.
    #[arg(long, value_name = "PATH", default_value = "/metrics")]
    pub metrics_path: String,
    #[command(flatten)]
    pub render: RenderOpts,
    /// Require HTTP basic auth on every path but /healthz. FILE has `user:password`
    /// or `user:sha256:HEX` lines (HEX = sha256 of the password).
    #[arg(long, value_name = "FILE")]
    pub basic_auth_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Most open connections (each holds two file descriptors).
    #[arg(long, value_name = "N", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub max_connections: u32,
    /// Most renders at once, each in a thread of its own (default: the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_renders: Option<u32>,
    /// Time for a request head to arrive once started (and for a TLS handshake).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// Time a keep-alive connection may stay idle between requests.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Time to write one whole response.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub write_timeout: Duration,
    /// Largest request head (request line and headers), in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 8192, value_parser = clap::value_parser!(u32).range(256..=1_048_576))]
    pub max_request_bytes: u32,
    /// Most header fields in a request.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(4..=1024))]
    pub max_headers: u32,
    #[arg(long, value_name = "BYTES", default_value = "64MiB", value_parser = parse_bytes, help = MEMORY_HELP)]
    pub max_body_memory: usize,
}

/// Parse `65536`, `64KiB`, `64MiB`, `1GiB` (also `K`, `M`, `G`, `KB` ...: powers of 1024), at least 1 MiB.
fn parse_bytes(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (examples: 64MiB, 1GiB, 1048576)"))?;
    let mul: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        u => return Err(format!("{s:?}: unknown unit {u:?} (use KiB, MiB or GiB)")),
    };
    let bytes = n
        .checked_mul(mul)
        .filter(|b| *b <= usize::MAX as u64 / 2)
        .ok_or_else(|| format!("{s:?}: too large"))?;
    if bytes < 1 << 20 {
        return Err(format!("{s:?}: must be at least 1MiB"));
    }
    Ok(bytes as usize)
}

/// Lock, ignoring poisoning: a panic in one task must not take the others
/// down (the data behind these locks stays consistent).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Milliseconds since the server started (monotonic).
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// How long a response writer must have made no progress before it may be
/// dropped to free body memory.
const STALLED: Duration = Duration::from_secs(1);

/// A connection waiting for a request this long may be closed to admit
/// another before anything else is ...
const WAITING_GRACE: Duration = Duration::from_millis(500);
/// ... and so may one whose request head has been arriving for this long.
const TRICKLE_GRACE: Duration = Duration::from_millis(100);
/// A connection this young is taken to have its request on the way.
const ARRIVAL_GRACE: Duration = Duration::from_millis(50);

/// What a connection is doing.
mod phase {
    /// TLS handshake (bounded by the head timeout).
    pub const HANDSHAKE: u8 = 0;
    /// Waiting for a request (bounded by the idle timeout).
    pub const IDLE: u8 = 1;
    /// A request head has started to arrive (bounded by the head timeout).
    pub const HEAD: u8 = 2;
    /// A request is being answered (the write timeout).
    pub const BUSY: u8 = 3;
    /// Waiting for a render slot (the write timeout; may be closed to admit
    /// a connection when nothing else can be).
    pub const QUEUED: u8 = 5;
    /// Its body is being written (the write timeout).
    pub const STREAMING: u8 = 4;
}

/// One connection's state, updated without locks by its I/O and its body.
struct ConnState {
    phase: AtomicU8,
    /// When the phase began (ms).
    since: AtomicU64,
    /// When the body last handed out data or bytes went to the socket (ms).
    progress: AtomicU64,
    /// Bytes arrived while a request was being answered (a pipelined head).
    read_while_busy: AtomicBool,
    /// The body is over but hyper may still hold its end: the response is
    /// written at the next flush of the socket.
    body_done: AtomicBool,
}

impl ConnState {
    fn new(phase: u8) -> Arc<ConnState> {
        let now = now_ms();
        Arc::new(ConnState {
            phase: AtomicU8::new(phase),
            since: AtomicU64::new(now),
            progress: AtomicU64::new(now),
            read_while_busy: AtomicBool::new(false),
            body_done: AtomicBool::new(false),
        })
    }

    fn set(&self, phase: u8) {
        self.since.store(now_ms(), Ordering::Relaxed);
        self.phase.store(phase, Ordering::Release);
    }

    /// Change the phase, keeping its deadline's start.
    fn mark(&self, phase: u8) {
        self.phase.store(phase, Ordering::Release);
    }

    fn phase(&self) -> u8 {
        self.phase.load(Ordering::Acquire)
    }

    fn begin_request(&self) {
        self.read_while_busy.store(false, Ordering::Relaxed);
        self.body_done.store(false, Ordering::Relaxed);
        self.progress.store(now_ms(), Ordering::Relaxed);
        self.set(phase::BUSY);
    }

    fn received(&self) {
        match self.phase() {
            phase::IDLE => self.set(phase::HEAD),
            phase::BUSY | phase::QUEUED | phase::STREAMING => {
                self.read_while_busy.store(true, Ordering::Relaxed)
            }
            _ => {}
        }
    }

    /// Bytes went to the socket: a response being written makes progress.
    fn wrote(&self) {
        self.progress.store(now_ms(), Ordering::Relaxed);
    }

    /// The socket was flushed: hyper holds nothing more. The response whose
    /// body is over is written now; the connection waits for the next
    /// request (already arriving if bytes came meanwhile).
    fn flushed(&self) {
        if self.body_done.swap(false, Ordering::Relaxed) {
            let next = if self.read_while_busy.load(Ordering::Relaxed) {
                phase::HEAD
            } else {
                phase::IDLE
            };
            self.set(next);
        }
    }
}

impl Progress for ConnState {
    fn progressed(&self) {
        self.progress.store(now_ms(), Ordering::Relaxed);
        if self.phase() == phase::BUSY {
            self.mark(phase::STREAMING);
        }
    }

    /// hyper drops the body when it has taken its last chunk, before that
    /// chunk (and the end of the response) is written: the connection stays
    /// a response writer until the socket is flushed (see [`Self::flushed`]),
    /// so that it is not closed as idle with the page's end unsent.
    fn finished(&self) {
        self.body_done.store(true, Ordering::Relaxed);
    }
}

/// A connection's I/O, telling its state when bytes arrive.
struct Watched<T> {
    io: T,
    state: Arc<ConnState>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.received();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.note_written(&r);
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        if matches!(r, Poll::Ready(Ok(()))) {
            self.state.flushed();
        }
        r
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.note_written(&r);
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl<T> Watched<T> {
    fn note_written(&self, r: &Poll<std::io::Result<usize>>) {
        if matches!(r, Poll::Ready(Ok(n)) if *n > 0) {
            self.state.wrote();
        }
    }
}

struct Entry {
    state: Arc<ConnState>,
    /// A second descriptor of a plain-HTTP socket, to see whether a whole
    /// request waits in it that the connection's task has not read yet
    /// (the task has not run since the accept: a loaded machine).
    peer: Option<std::net::TcpStream>,
    /// Set right after the task is spawned.
    abort: Option<AbortHandle>,
}

/// Open connections.
#[derive(Default)]
struct Table {
    next_id: u64,
    conns: HashMap<u64, Entry>,
}

/// Removes a connection from the table when its task ends (or is aborted).
struct ConnGuard {
    server: Arc<Server>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        lock(&self.server.table).conns.remove(&self.id);
    }
}

/// Timeouts and sizes of the HTTP side.
struct Limits {
    head_timeout: Duration,
    idle_timeout: Duration,
    write_timeout: Duration,
}

/// Why a scrape got no page.
#[derive(Clone)]
enum ScrapeError {
    /// No memory for its body.
    Busy,
    /// The area cannot be read now.
    Area(CliError),
}

/// What a render produced, shared by every scrape that waited for it.
type Outcome = Result<Arc<Vec<bytes::Bytes>>, ScrapeError>;

/// One render that scrapes wait for.
struct Flight {
    done: tokio::sync::watch::Sender<Option<Outcome>>,
}

impl Flight {
    fn new() -> Arc<Flight> {
        Arc::new(Flight {
            done: tokio::sync::watch::channel(None).0,
        })
    }
}

/// The lane group of a format (see `Server::lanes`).
fn format_index(format: promshm::Format) -> usize {
    match format {
        promshm::Format::Prometheus => 0,
        promshm::Format::OpenMetrics => 1,
        promshm::Format::Protobuf => 2,
    }
}

/// Renders of one kind of page (format, gzip): the one running and the one
/// that starts when it ends. A scrape never gets a page whose render began
/// before the scrape arrived: it joins the next render, which is shared by
/// every scrape that arrives meanwhile, so N scrapes at once cost at most
/// two renders and one page's memory each, not N.
#[derive(Default)]
struct Lane {
    running: Option<Arc<Flight>>,
    next: Option<Arc<Flight>>,
}

/// The connection to close to admit another, if any may be: by rank,
/// 0. waiting long for a request: idle or handshaking for 0.5 s, or a head
///    trickling in for 0.1 s (oldest first);
/// 1. a response writer stalled for 1 s (least recent progress first);
/// 2. any head still arriving (legitimate heads come in one packet);
/// 3. a connection that arrived 50 ms ago or more and has sent nothing
///    (oldest first): a flood of them makes room among themselves;
/// 4. any response writer (least recent progress first);
/// 5. a scrape waiting for a render (the last to queue first);
/// 6. a connection that has just arrived: its request is on the way
///    (oldest first);
/// 7. a connection whose whole request waits unread in its socket (oldest
///    first).
///
/// What waits unread in a plain-HTTP socket counts as sent: the task of a
/// connection may not have run since the accept on a loaded machine. So a
/// connection silent for 50 ms never outlasts one that has sent a whole
/// request (unless that one stalls), and only more than `--max-connections`
/// connections arriving within 50 ms close a response writer. A request
/// being rendered is never closed, nor a connection whose task is not
/// registered yet.
fn pick_victim(conns: &HashMap<u64, Entry>, now: u64) -> Option<u64> {
    use std::cmp::Reverse;
    // Ranked without looking into sockets first, each idle socket at the
    // lowest rank a look could give it; a look (one peek) only raises it.
    let mut order: std::collections::BinaryHeap<_> = conns
        .iter()
        .filter(|(_, e)| e.abort.is_some())
        .filter_map(|(id, e)| {
            let look = e.peer.is_some() && e.state.phase() == phase::IDLE;
            let unseen = look.then_some(Unread::Partial);
            rank_for_room(e, now, unseen).map(|r| Reverse((r, *id, look)))
        })
        .collect();
    while let Some(Reverse((rank, id, look))) = order.pop() {
        if !look {
            return Some(id);
        }
        let e = &conns[&id];
        let seen = rank_for_room(e, now, Some(unread(e)));
        match seen {
            Some(r) if r > rank => order.push(Reverse((r, id, false))),
            Some(_) => return Some(id),
            None => {}
        }
    }
    None
}

/// What waits unread in an idle connection's socket.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unread {
    Nothing,
    /// The start of a request head (a slow client's, or a whole head too
    /// long to see).
    Partial,
    Whole,
}

/// Peek into the socket of `e` (non-blocking, as tokio's sockets are).
fn unread(e: &Entry) -> Unread {
    let mut buf = [0u8; 4096];
    match e.peer.as_ref().map(|s| s.peek(&mut buf)) {
        Some(Ok(n)) if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") => Unread::Whole,
        Some(Ok(n)) if n > 0 => Unread::Partial,
        _ => Unread::Nothing,
    }
}

/// The rank of `e` in [`pick_victim`]'s order, given what waits unread in
/// its socket (None: not looked at); None: never closed to make room.
fn rank_for_room(e: &Entry, now: u64, unread: Option<Unread>) -> Option<(u8, u64)> {
    let ms = |d: Duration| d.as_millis() as u64;
    let st = &e.state;
    let since = st.since.load(Ordering::Relaxed);
    let age = now.saturating_sub(since);
    let progress = st.progress.load(Ordering::Relaxed);
    let stalled = now.saturating_sub(progress) >= ms(STALLED);
    let phase = match (st.phase(), unread) {
        (phase::IDLE, Some(Unread::Partial)) => phase::HEAD,
        (phase::IDLE, Some(Unread::Whole)) => return Some((7, since)),
        (p, _) => p,
    };
    Some(match phase {
        phase::HEAD if age >= ms(TRICKLE_GRACE) => (0, since),
        phase::HANDSHAKE | phase::IDLE if age >= ms(WAITING_GRACE) => (0, since),
        phase::STREAMING if stalled => (1, progress),
        phase::HEAD => (2, since),
        phase::HANDSHAKE | phase::IDLE if age >= ms(ARRIVAL_GRACE) => (3, since),
        phase::STREAMING => (4, progress),
        phase::QUEUED => (5, u64::MAX - since),
        phase::HANDSHAKE | phase::IDLE => (6, since),
        _ => return None,
    })
}

struct Server {
    area: AreaSource,
    render: RenderOpts,
    metrics_path: String,
    auth: Option<BasicAuth>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    http: hyper::server::conn::http1::Builder,
    limits: Limits,
    max_connections: usize,
    renders: Arc<tokio::sync::Semaphore>,
    /// By page kind: `2 * format_index(format) + gzip`.
    lanes: Mutex<[Lane; 6]>,
    budget: Arc<Budget>,
    /// Size of the last page, to see early whether the next one fits.
    last_size: AtomicUsize,
    table: Mutex<Table>,
}

impl Server {
    /// Register a new connection, making room if the table is full (None:
    /// nothing could be closed).
    fn admit(
        &self,
        first_phase: u8,
        peer: Option<std::net::TcpStream>,
    ) -> Option<(u64, Arc<ConnState>)> {
        let victim;
        let id;
        let state = ConnState::new(first_phase);
        {
            let mut t = lock(&self.table);
            victim = if t.conns.len() >= self.max_connections {
                let vid = pick_victim(&t.conns, now_ms())?;
                t.conns.remove(&vid)
            } else {
                None
            };
            t.next_id += 1;
            id = t.next_id;
            t.conns.insert(
                id,
                Entry {
                    state: state.clone(),
                    peer,
                    abort: None,
                },
            );
        }
        if let Some(abort) = victim.and_then(|v| v.abort) {
            abort.abort();
        }
        Some((id, state))
    }

    /// Drop the response writer stalled longest, if one has made no
    /// progress for [`STALLED`]; true if one was dropped.
    fn evict_stalled(&self) -> bool {
        let oldest = now_ms().saturating_sub(STALLED.as_millis() as u64);
        let victim = {
            let mut t = lock(&self.table);
            let vid = t
                .conns
                .iter()
                .filter(|(_, e)| e.abort.is_some() && e.state.phase() == phase::STREAMING)
                .map(|(id, e)| (e.state.progress.load(Ordering::Relaxed), *id))
                .filter(|(p, _)| *p <= oldest)
                .min()
                .map(|(_, id)| id);
            vid.and_then(|v| t.conns.remove(&v))
        };
        match victim.and_then(|v| v.abort) {
            Some(abort) => {
                abort.abort();
                true
            }
            None => false,
        }
    }

    /// Close connections past their phase's deadline (every connection that
    /// is not answering a request, once shutting down).
    fn enforce_deadlines(&self) {
        let now = now_ms();
        let stopping = shutting_down();
        let ms = |d: Duration| d.as_millis() as u64;
        let expired: Vec<Entry> = {
            let mut t = lock(&self.table);
            let ids: Vec<u64> = t
                .conns
                .iter()
                .filter(|(_, e)| e.abort.is_some())
                .filter(|(_, e)| {
                    let since = e.state.since.load(Ordering::Relaxed);
                    let limit = match e.state.phase() {
                        phase::IDLE if stopping => 0,
                        phase::HANDSHAKE | phase::HEAD if stopping => 0,
                        phase::IDLE => ms(self.limits.idle_timeout),
                        phase::HANDSHAKE | phase::HEAD => ms(self.limits.head_timeout),
                        _ => ms(self.limits.write_timeout),
                    };
                    now.saturating_sub(since) >= limit
                })
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| t.conns.remove(id)).collect()
        };
        for e in expired {
            if let Some(a) = e.abort {
                a.abort();
            }
        }
    }

    fn connections(&self) -> usize {
        lock(&self.table).conns.len()
    }

    /// Render a page into budgeted chunks (in a blocking thread).
    fn render_page(
        &self,
        format: promshm::Format,
        gzip: bool,
    ) -> Result<Vec<bytes::Bytes>, ScrapeError> {
        lower_priority();
        // See early whether the page can fit; make room if it cannot.
        let need = self.last_size.load(Ordering::Relaxed);
        let deadline = Instant::now() + STALLED;
        while self.budget.used() + need > self.budget.limit() {
            if !self.evict_stalled() || Instant::now() >= deadline {
                return Err(ScrapeError::Busy);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let make_room = || self.evict_stalled();
        let mut w = ChunkWriter::new(&self.budget, &make_room, STALLED);
        let rendered = if gzip {
            let mut z = flate2::write::GzEncoder::new(&mut w, flate2::Compression::fast());
            let mut plain = CountingWriter {
                inner: &mut z,
                count: 0,
            };
            let r = self.area.render(&self.render, format, &mut plain);
            let plain_len = plain.count;
            r.and_then(|_| {
                z.finish()
                    .map(|_| ())
                    .map_err(|e| CliError::failure(format!("gzip: {e}")))
            })
            .map(|_| plain_len)
        } else {
            self.area
                .render(&self.render, format, &mut w)
                .map(|_| w.len())
        };
        if w.exhausted() {
            return Err(ScrapeError::Busy);
        }
        let plain_len = rendered.map_err(ScrapeError::Area)?;
        self.last_size.store(plain_len, Ordering::Relaxed);
        Ok(w.finish().0)
    }
}

/// Counts the bytes written through it.
struct CountingWriter<'a, W: std::io::Write> {
    inner: &'a mut W,
    count: usize,
}

impl<W: std::io::Write> std::io::Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Renders run at a lower CPU priority than the threads that answer
/// `/healthz` and move bytes (Linux sets the nice value per thread). They
/// share no lock with those threads for longer than a few instructions.
fn lower_priority() {
    thread_local!(static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    DONE.with(|d| {
        if !d.replace(true) {
            // SAFETY: gettid and setpriority have no memory preconditions;
            // a failure only leaves the priority as it was.
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, 10);
            }
        }
    });
}

fn text(status: u16, body: &str) -> Response<ChunkBody> {
    let mut r = Response::new(ChunkBody::small(body.to_owned()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn unavailable(body: &str) -> Response<ChunkBody> {
    let mut r = text(503, body);
    r.headers_mut()
        .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// Whether a request announces a body (a length other than 0, or chunks).
fn has_body(req: &Request<Incoming>) -> bool {
    req.headers().contains_key(hyper::header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// The value of a header as text (None if absent or not text).
fn header_text(req: &Request<Incoming>, name: hyper::header::HeaderName) -> Option<String> {
    let mut out: Option<String> = None;
    for v in req.headers().get_all(name) {
        let v = v.to_str().ok()?.trim().to_owned();
        out = Some(match out {
            Some(prev) => format!("{prev}, {v}"),
            None => v,
        });
    }
    out
}

impl Server {
    /// Answer one request.
    async fn handle(
        self: Arc<Self>,
        conn: Arc<ConnState>,
        req: Request<Incoming>,
    ) -> Result<Response<ChunkBody>, Infallible> {
        conn.begin_request();
        // A request body is refused and not read: close after answering.
        let keep = keep_alive(req.version(), req.headers()) && !has_body(&req) && !shutting_down();
        let head_only = req.method() == Method::HEAD;
        let mut resp = self.respond(&req, &conn).await;
        let len = resp.body().len();
        if head_only {
            *resp.body_mut() = ChunkBody::small(bytes::Bytes::new());
        }
        let h = resp.headers_mut();
        h.insert(CONTENT_LENGTH, HeaderValue::from(len));
        h.insert(
            CONNECTION,
            HeaderValue::from_static(if keep { "keep-alive" } else { "close" }),
        );
        let resp = resp.map(|b| b.with_progress(conn));
        Ok(resp)
    }

    async fn respond(
        self: &Arc<Self>,
        req: &Request<Incoming>,
        conn: &ConnState,
    ) -> Response<ChunkBody> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = text(405, "only GET and HEAD are served\n");
            r.headers_mut()
                .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        if has_body(req) {
            return text(413, "request bodies are not accepted\n");
        }
        let path = req.uri().path();
        if path == "/healthz" {
            return text(200, "ok\n");
        }
        if let Some(auth) = &self.auth {
            if !auth.check(header_text(req, AUTHORIZATION).as_deref()) {
                let mut r = text(401, "authentication required\n");
                r.headers_mut().insert(
                    hyper::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"promshm\", charset=\"UTF-8\""),
                );
                return r;
            }
        }
        if path == self.metrics_path {
            return self.metrics(req, conn).await;
        }
        if path == "/" {
            let page = format!(
                "promshm exporter\n\n{}  the metrics (Prometheus text 0.0.4, OpenMetrics or protobuf, by Accept)\n/healthz  liveness\n",
                self.metrics_path
            );
            return text(200, &page);
        }
        text(404, "not found\n")
    }

    async fn metrics(
        self: &Arc<Self>,
        req: &Request<Incoming>,
        conn: &ConnState,
    ) -> Response<ChunkBody> {
        let format = negotiate(header_text(req, ACCEPT).as_deref());
        let gzip = accepts_gzip(req.headers());
        conn.mark(phase::QUEUED);
        let mut done = self.join(format, gzip);
        let outcome =
            tokio::time::timeout(self.limits.write_timeout, done.wait_for(|o| o.is_some()))
                .await
                .ok()
                .and_then(|o| o.ok().and_then(|o| o.clone()));
        drop(done);
        // From now on it is a response writer (see pick_victim).
        conn.progressed();
        conn.mark(phase::STREAMING);
        let Some(page) = outcome else {
            return unavailable("too many scrapes at once\n");
        };
        match page {
            Ok(chunks) => {
                let mut r = Response::new(ChunkBody::new(chunks.to_vec(), None));
                let h = r.headers_mut();
                h.insert(
                    hyper::header::CONTENT_TYPE,
                    HeaderValue::from_static(format.content_type()),
                );
                h.insert(
                    hyper::header::VARY,
                    HeaderValue::from_static("Accept, Accept-Encoding"),
                );
                if gzip {
                    h.insert(
                        hyper::header::CONTENT_ENCODING,
                        HeaderValue::from_static("gzip"),
                    );
                }
                r
            }
            Err(ScrapeError::Busy) => unavailable("response memory budget exhausted\n"),
            // AreaSource has logged it (once).
            Err(ScrapeError::Area(e)) => unavailable(&format!("area unavailable: {}\n", e.msg)),
        }
    }

    /// The render the next page of this kind will come from (see [`Lane`]).
    /// Every format has lanes of its own: a page is never shared across formats.
    fn join(
        self: &Arc<Self>,
        format: promshm::Format,
        gzip: bool,
    ) -> tokio::sync::watch::Receiver<Option<Outcome>> {
        let kind = 2 * format_index(format) + usize::from(gzip);
        let mut lanes = lock(&self.lanes);
        let lane = &mut lanes[kind];
        match &lane.running {
            None => {
                let flight = Flight::new();
                let done = flight.done.subscribe();
                lane.running = Some(flight.clone());
                drop(lanes);
                self.start(kind, format, gzip, flight);
                done
            }
            Some(_) => lane.next.get_or_insert_with(Flight::new).done.subscribe(),
        }
    }

    /// Run `flight` in a render slot, then start the lane's next one.
    fn start(
        self: &Arc<Self>,
        kind: usize,
        format: promshm::Format,
        gzip: bool,
        flight: Arc<Flight>,
    ) {
        let server = self.clone();
        tokio::spawn(async move {
            let outcome = match server.renders.clone().acquire_owned().await {
                Ok(permit) => {
                    let s = server.clone();
                    tokio::task::spawn_blocking(move || {
                        let _permit = permit;
                        s.render_page(format, gzip).map(Arc::new)
                    })
                    .await
                    .unwrap_or_else(|e| {
                        Err(ScrapeError::Area(CliError::failure(format!(
                            "render failed: {e}"
                        ))))
                    })
                }
                Err(_) => Err(ScrapeError::Busy),
            };
            flight.done.send_replace(Some(outcome));
            drop(flight);
            let next = {
                let mut lanes = lock(&server.lanes);
                let lane = &mut lanes[kind];
                lane.running = lane.next.take();
                lane.running.clone()
            };
            if let Some(next) = next {
                server.start(kind, format, gzip, next);
            }
        });
    }

    /// One connection, from accept to close.
    async fn connection(self: Arc<Self>, id: u64, state: Arc<ConnState>, sock: TcpStream) {
        let _guard = ConnGuard {
            server: self.clone(),
            id,
        };
        match &self.tls {
            None => self.serve_http(state, sock).await,
            Some(acceptor) => {
                let Ok(tls) = acceptor.accept(sock).await else {
                    return;
                };
                state.set(phase::IDLE);
                self.serve_http(state, tls).await
            }
        }
    }

    async fn serve_http<T>(self: &Arc<Self>, state: Arc<ConnState>, io: T)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(Watched {
            io,
            state: state.clone(),
        });
        let server = self.clone();
        let svc = hyper::service::service_fn(move |req| server.clone().handle(state.clone(), req));
        let _ = self.http.serve_connection(io, svc).await;
    }
}

fn tls_acceptor(cert: &PathBuf, key: &PathBuf) -> CliResult<tokio_rustls::TlsAcceptor> {
    Ok(tokio_rustls::TlsAcceptor::from(tls_config(cert, key)?))
}

fn tls_config(cert: &PathBuf, key: &PathBuf) -> CliResult<Arc<rustls::ServerConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| CliError::usage(format!("--tls-cert {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(CliError::usage(format!(
            "--tls-cert {}: no certificate found",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| CliError::usage(format!("--tls-key {}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::failure(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| CliError::usage(format!("--tls-cert/--tls-key: {e}")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Kernel send buffer of a connection (the kernel doubles it).
const SEND_BUFFER: libc::c_int = 256 * 1024;

/// A fixed send buffer instead of one that autotunes up to megabytes: a
/// client that does not read then holds little kernel memory, and the
/// threads that move bytes do not spend their time filling its buffer.
fn limit_send_buffer(sock: &TcpStream) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket descriptor and a c_int option of its size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&SEND_BUFFER as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Keep body chunks (64 KiB) and bigger buffers out of glibc's heap: they
/// go back to the system when freed, and freeing one (on an I/O thread)
/// never waits for the lock of an arena that a render thread (at a lower
/// priority) holds. Enough arenas that I/O and render threads rarely share.
fn tame_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, crate::body::CHUNK as libc::c_int);
        libc::mallopt(libc::M_ARENA_MAX, 8);
    }
}

pub fn run(a: Args, files: &FileArgs) -> CliResult {
    let addr = check_args(&a)?;
    let (auth, tls) = load_security(&a)?;
    tame_malloc();
    let area = AreaSource::open(&a.area, files)?;
    let page_size = first_render(&area, &a)?;
    install_signal_handlers()?;
    let max_renders = a.max_renders.map(|n| n as usize).unwrap_or_else(cpus);
    let rt = runtime(max_renders)?;
    let server = Arc::new(Server {
        area,
        render: a.render.clone(),
        metrics_path: a.metrics_path.clone(),
        auth,
        tls,
        http: http_builder(&a),
        limits: Limits {
            head_timeout: a.header_timeout,
            idle_timeout: a.idle_timeout,
            write_timeout: a.write_timeout,
        },
        max_connections: a.max_connections as usize,
        renders: Arc::new(tokio::sync::Semaphore::new(max_renders)),
        lanes: Mutex::new(Default::default()),
        budget: Budget::new(a.max_body_memory),
        last_size: AtomicUsize::new(page_size),
        table: Mutex::new(Table::default()),
    });
    let result = rt.block_on(serve(server, addr, &a));
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Check what clap cannot; returns the address to listen on.
fn check_args(a: &Args) -> CliResult<SocketAddr> {
    a.render.check()?;
    if !a.metrics_path.starts_with('/') {
        return Err(CliError::usage("--metrics-path must start with /"));
    }
    a.listen
        .to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| CliError::usage(format!("--listen {:?}: not an address", a.listen)))
}

/// The basic-auth users and the TLS acceptor, if asked for.
fn load_security(a: &Args) -> CliResult<(Option<BasicAuth>, Option<tokio_rustls::TlsAcceptor>)> {
    let auth = a
        .basic_auth_file
        .as_deref()
        .map(BasicAuth::load)
        .transpose()?;
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some(tls_acceptor(c, k)?),
        _ => None,
    };
    Ok((auth, tls))
}

/// One render now: a damaged area fails here rather than at the first
/// scrape, and the size of a page is known (returned).
fn first_render(area: &AreaSource, a: &Args) -> CliResult<usize> {
    let mut size = CountingWriter {
        inner: &mut std::io::sink(),
        count: 0,
    };
    area.render(&a.render, promshm::Format::OpenMetrics, &mut size)?;
    let page_size = size.count;
    if page_size >= a.max_body_memory / 2 {
        log(&format!(
            "warning: a page is {page_size} bytes; --max-body-memory {} holds fewer than two",
            a.max_body_memory
        ));
    }
    Ok(page_size)
}

fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// A few I/O threads (at most 4) and one blocking thread per render slot.
fn runtime(max_renders: usize) -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus().clamp(1, 4))
        .max_blocking_threads(max_renders)
        .thread_name("promshm-serve")
        .thread_stack_size(512 * 1024)
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the runtime: {e}")))
}

/// hyper's HTTP/1.1 settings, with the limits on request heads.
fn http_builder(a: &Args) -> hyper::server::conn::http1::Builder {
    let mut http = hyper::server::conn::http1::Builder::new();
    // Not pipeline_flush: with it, hyper's automatic 400/431 answers are
    // never flushed.
    http.title_case_headers(true)
        .keep_alive(true)
        .max_headers(a.max_headers as usize)
        .max_header_size(a.max_request_bytes as usize)
        // Head and idle deadlines are the connection table's (see the
        // module doc); hyper's own header timer counts idle time too.
        .header_read_timeout(None);
    http
}

async fn serve(server: Arc<Server>, addr: SocketAddr, a: &Args) -> CliResult {
    let listener = listen(&server, addr, a).await?;
    let watchdog = spawn_watchdog(server.clone());
    accept_until_shutdown(&server, &listener).await;
    // Graceful shutdown: no new connections, idle ones closed (by the
    // watchdog), busy ones finish.
    drop(listener);
    log("shutting down");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.connections() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watchdog.abort();
    Ok(())
}

/// Bind the listening socket and say where (warn when it is open to the
/// network without authentication).
async fn listen(server: &Server, addr: SocketAddr, a: &Args) -> CliResult<TcpListener> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::new(exit::ENDPOINT, format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::failure(e.to_string()))?;
    if !local.ip().is_loopback() && server.auth.is_none() && server.tls.is_none() {
        log(&format!(
            "warning: listening on {local} (not loopback) without --basic-auth-file or TLS"
        ));
    }
    log(&format!(
        "serving {} on {}://{local}{} (read-only)",
        a.area.display(),
        if server.tls.is_some() {
            "https"
        } else {
            "http"
        },
        a.metrics_path
    ));
    Ok(listener)
}

/// Every 100 ms, close the connections past their deadlines.
fn spawn_watchdog(server: Arc<Server>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            server.enforce_deadlines();
        }
    })
}

/// Accept connections until SIGTERM/SIGINT.
async fn accept_until_shutdown(server: &Arc<Server>, listener: &TcpListener) {
    let mut accept_errors = 0u32;
    while !shutting_down() {
        match tokio::time::timeout(Duration::from_millis(200), listener.accept()).await {
            Err(_) => continue,
            Ok(Ok((sock, _))) => server.clone().take(sock),
            Ok(Err(e)) => {
                // EMFILE and friends: back off instead of spinning.
                accept_errors += 1;
                if accept_errors.is_power_of_two() {
                    log(&format!("accept: {e}"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

impl Server {
    /// Admit an accepted connection into the table and start its task, or
    /// turn it away when the table is full of busy connections.
    fn take(self: Arc<Self>, sock: TcpStream) {
        let _ = sock.set_nodelay(true);
        limit_send_buffer(&sock);
        let first = if self.tls.is_some() {
            phase::HANDSHAKE
        } else {
            phase::IDLE
        };
        let peer = match self.tls {
            None => peer_descriptor(&sock),
            Some(_) => None,
        };
        let Some((id, state)) = self.admit(first, peer) else {
            // Full of busy connections: a quick 503 for plain HTTP, then close.
            if self.tls.is_none() {
                let _ = sock.try_write(
                    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
            return;
        };
        let task = tokio::spawn(self.clone().connection(id, state, sock));
        if let Some(e) = lock(&self.table).conns.get_mut(&id) {
            e.abort = Some(task.abort_handle());
        }
    }
}

/// A second descriptor of `sock` (see [`Entry::peer`]); None if the process
/// is short of descriptors (the connection is then ranked without it).
fn peer_descriptor(sock: &TcpStream) -> Option<std::net::TcpStream> {
    use std::os::fd::AsFd;
    let fd = sock.as_fd().try_clone_to_owned().ok()?;
    Some(std::net::TcpStream::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// A connection in `phase` for `age_ms` at time `now`, whose client has
    /// sent `sent` (unread by the server), and the client's end.
    fn conn(
        rt: &tokio::runtime::Runtime,
        now: u64,
        (phase, age_ms, sent): (u8, u64, &[u8]),
    ) -> (Entry, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_end, _) = listener.accept().unwrap();
        server_end.set_nonblocking(true).unwrap();
        client.write_all(sent).unwrap();
        let state = ConnState::new(phase);
        state.since.store(now - age_ms, Ordering::Relaxed);
        state.progress.store(now - age_ms, Ordering::Relaxed);
        let abort = Some(rt.spawn(std::future::pending::<()>()).abort_handle());
        let entry = Entry {
            state,
            peer: Some(server_end),
            abort,
        };
        (entry, client)
    }

    /// Which of `conns` goes first, second ... at time `now`, when each
    /// victim is removed.
    fn eviction_order(mut conns: HashMap<u64, Entry>, now: u64) -> Vec<u64> {
        std::thread::sleep(Duration::from_millis(20)); // the bytes are in
        let mut order = Vec::new();
        while let Some(id) = pick_victim(&conns, now) {
            conns.remove(&id);
            order.push(id);
        }
        order
    }

    #[test]
    fn room_is_made_by_what_each_connection_has_sent() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let whole = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        let cases = [
            // 1: idle, its whole request unread (its task has not run).
            (phase::IDLE, 200, &whole[..]),
            // 2: a response written at a steady pace.
            (phase::STREAMING, 20, b""),
            // 3: idle 200 ms with the start of a head unread: a slow loris.
            (phase::IDLE, 200, b"GET /metrics HTTP/1.1\r\nX-Slow: a"),
            // 4: a scrape waiting for its render.
            (phase::QUEUED, 20, b""),
            // 5: silent for 200 ms.
            (phase::IDLE, 200, b""),
            // 6: has just arrived, nothing yet.
            (phase::IDLE, 0, b""),
            // 7: a head that began 30 ms ago, unread: still arriving.
            (phase::IDLE, 30, b"GET /"),
            // 8: being rendered: never closed.
            (phase::BUSY, 20, b""),
        ];
        let now = now_ms() + 10_000;
        let mut clients = Vec::new();
        let mut conns = HashMap::new();
        for (id, case) in cases.into_iter().enumerate() {
            let (entry, client) = conn(&rt, now, case);
            conns.insert(id as u64 + 1, entry);
            clients.push(client);
        }
        assert_eq!(eviction_order(conns, now), [3, 7, 5, 2, 4, 6, 1]);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("2097152").unwrap(), 2 << 20);
        assert_eq!(parse_bytes("1024KiB").unwrap(), 1 << 20);
        assert!(parse_bytes("1KiB").is_err());
        assert!(parse_bytes("12XB").is_err());
        assert!(parse_bytes("MiB").is_err());
    }
}
