//! `promshm serve`: an HTTP(S) exporter for an area, opened read-only.
//!
//! Resources are bounded whatever clients do:
//! - at most `--max-connections` connections, one thread each (small stacks);
//!   when all are taken, the connection that has waited longest for a request
//!   (an idle keep-alive or a slow-loris one) is closed to make room, and if
//!   none is waiting the newcomer gets a 503;
//! - a request head must arrive within `--header-timeout` of its first byte
//!   (TLS handshake included), within `--max-request-bytes` and
//!   `--max-headers`; an idle keep-alive connection is closed after
//!   `--idle-timeout`; a response must be written within `--write-timeout`;
//! - at most `--max-renders` renders run at once (each holds one rendering
//!   of the area in memory); others wait up to `--header-timeout`, then 503.
//!
//! SIGTERM/SIGINT stop accepting, close idle connections, let responses in
//! flight finish (up to 10 s) and exit 0.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use promshm::encoding::negotiate;

use crate::auth::BasicAuth;
use crate::common::{
    exit, install_signal_handlers, log, parse_duration, render, shutting_down, AreaFile, CliError,
    CliResult, RenderOpts,
};
use crate::http::{read_head, write_response, Conn, HeadError, Limits, Request, Response};

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
    /// Most open connections (one thread each).
    #[arg(long, value_name = "N", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub max_connections: u32,
    /// Most renders at once (default: the number of CPUs).
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
}

/// Lock, ignoring poisoning: a panic in one connection thread must not take
/// the others down (the data behind these locks stays consistent).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A counting semaphore with a bounded wait.
struct Slots {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Slots {
    /// A slot, released when the guard drops (panics included).
    fn acquire(&self, timeout: Duration) -> Option<SlotGuard<'_>> {
        let deadline = Instant::now() + timeout;
        let mut free = lock(&self.free);
        while *free == 0 {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            free = self
                .cv
                .wait_timeout(free, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *free -= 1;
        Some(SlotGuard(self))
    }
}

struct SlotGuard<'a>(&'a Slots);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *lock(&self.0.free) += 1;
        self.0.cv.notify_one();
    }
}

/// Removes a connection from the table when its thread ends (panics included).
struct ConnGuard {
    server: Arc<Server>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.server.forget(self.id);
    }
}

/// Open connections: a clone of each socket (to close it from outside) and
/// since when it has been waiting for a request (None while serving one).
#[derive(Default)]
struct ConnTable {
    next_id: u64,
    conns: HashMap<u64, (TcpStream, Option<Instant>)>,
}

struct Server {
    area: Mutex<AreaFile>,
    render: RenderOpts,
    metrics_path: String,
    auth: Option<BasicAuth>,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    max_connections: usize,
    renders: Slots,
    table: Mutex<ConnTable>,
    table_cv: Condvar,
    /// Size of the last rendering, to size the next buffer.
    size_hint: AtomicUsize,
}

impl Server {
    /// Make room for one more connection and register it; its id.
    fn admit(&self, sock: &TcpStream) -> Option<u64> {
        let mut t = lock(&self.table);
        if t.conns.len() >= self.max_connections {
            // Evict the connection that has been waiting longest for a request.
            let victim = t
                .conns
                .iter()
                .filter_map(|(id, (_, since))| since.map(|s| (s, *id)))
                .min()
                .map(|(_, id)| id);
            let (s, _) = t.conns.remove(&victim?)?;
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        let clone = sock.try_clone().ok()?;
        t.next_id += 1;
        let id = t.next_id;
        t.conns.insert(id, (clone, Some(Instant::now())));
        Some(id)
    }

    /// Mark a connection waiting for a request (evictable) or busy.
    /// False if it was evicted meanwhile.
    fn set_waiting(&self, id: u64, waiting: bool) -> bool {
        let mut t = lock(&self.table);
        match t.conns.get_mut(&id) {
            Some((_, since)) => {
                *since = waiting.then(Instant::now);
                true
            }
            None => false,
        }
    }

    fn forget(&self, id: u64) {
        lock(&self.table).conns.remove(&id);
        self.table_cv.notify_all();
    }

    /// Close every connection that is waiting for a request (shutdown).
    fn close_waiting(&self) {
        let mut t = lock(&self.table);
        t.conns.retain(|_, (s, since)| {
            if since.is_some() {
                let _ = s.shutdown(std::net::Shutdown::Both);
                false
            } else {
                true
            }
        });
        self.table_cv.notify_all();
    }

    fn serve_connection(&self, id: u64, sock: TcpStream) {
        let mut conn = match &self.tls {
            None => Conn::Plain(sock),
            Some(cfg) => match Conn::accept_tls(sock, cfg, self.limits.head_timeout) {
                Ok(c) => c,
                Err(_) => return,
            },
        };
        let mut buf = Vec::with_capacity(1024);
        loop {
            if !self.set_waiting(id, true) {
                return;
            }
            let head = read_head(&mut conn, &mut buf, &self.limits);
            if !self.set_waiting(id, false) {
                return;
            }
            let req = match head {
                Ok(r) => r,
                Err(HeadError::Closed | HeadError::Idle) => return,
                Err(e) => {
                    let (status, msg) = match e {
                        HeadError::Timeout => (408, "request head not received in time\n"),
                        HeadError::TooLarge => (431, "request head too large\n"),
                        HeadError::TooManyHeaders => (431, "too many header fields\n"),
                        _ => (400, "malformed request\n"),
                    };
                    let _ = write_response(
                        &mut conn,
                        &Response::text(status, msg),
                        false,
                        false,
                        &self.limits,
                    );
                    return;
                }
            };
            let keep_alive = req.keep_alive() && !req.has_body && !shutting_down();
            let head_only = req.method == "HEAD";
            let ok = self.respond(&req, |resp| {
                write_response(&mut conn, &resp, head_only, keep_alive, &self.limits).is_ok()
            });
            if !ok || !keep_alive {
                let _ = conn.flush();
                return;
            }
        }
    }

    /// Build the response to `req` and hand it to `send`.
    fn respond(&self, req: &Request, send: impl FnOnce(Response<'_>) -> bool) -> bool {
        if req.method != "GET" && req.method != "HEAD" {
            return send(
                Response::text(405, "only GET and HEAD are served\n").header("Allow", "GET, HEAD"),
            );
        }
        if req.has_body {
            return send(Response::text(413, "request bodies are not accepted\n"));
        }
        if req.path == "/healthz" {
            return send(Response::text(200, "ok\n"));
        }
        if let Some(auth) = &self.auth {
            if !auth.check(req.authorization.as_deref()) {
                return send(Response::text(401, "authentication required\n").header(
                    "WWW-Authenticate",
                    "Basic realm=\"promshm\", charset=\"UTF-8\"",
                ));
            }
        }
        if req.path == self.metrics_path {
            return self.metrics(req, send);
        }
        if req.path == "/" {
            let page = format!(
                "promshm exporter\n\n{}  the metrics (Prometheus text 0.0.4 or OpenMetrics, by Accept)\n/healthz  liveness\n",
                self.metrics_path
            );
            return send(Response::new(
                200,
                "text/plain; charset=utf-8",
                page.as_bytes(),
            ));
        }
        send(Response::text(404, "not found\n"))
    }

    fn metrics(&self, req: &Request, send: impl FnOnce(Response<'_>) -> bool) -> bool {
        let format = negotiate(req.accept.as_deref());
        let Some(slot) = self.renders.acquire(self.limits.head_timeout) else {
            return send(
                Response::text(503, "too many scrapes at once\n").header("Retry-After", "1"),
            );
        };
        let area = lock(&self.area).current().clone();
        let mut body = Vec::with_capacity(self.size_hint.load(Ordering::Relaxed) + 4096);
        let rendered = render(&area, &self.render, format, &mut body);
        drop(area);
        let gzip = rendered.is_ok() && req.accepts_gzip();
        let body = if gzip {
            let mut z = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4 + 64),
                flate2::Compression::fast(),
            );
            match z.write_all(&body).and_then(|_| z.finish()) {
                Ok(compressed) => {
                    self.size_hint.store(body.len(), Ordering::Relaxed);
                    Ok(compressed)
                }
                Err(e) => Err(CliError::failure(format!("gzip: {e}"))),
            }
        } else {
            if rendered.is_ok() {
                self.size_hint.store(body.len(), Ordering::Relaxed);
            }
            rendered.map(|_| body)
        };
        drop(slot);
        match body {
            Ok(body) => {
                let mut resp = Response::new(200, format.content_type(), &body)
                    .header("Vary", "Accept, Accept-Encoding");
                if gzip {
                    resp = resp.header("Content-Encoding", "gzip");
                }
                send(resp)
            }
            Err(e) => {
                log(&format!("scrape failed: {}", e.msg));
                let msg = format!("render failed: {}\n", e.msg);
                send(Response::text(500, &msg))
            }
        }
    }
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

/// Keep big buffers out of glibc's heap so that memory goes back to the
/// system after a scrape, and limit per-thread arenas.
fn tame_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

/// Wait until `fd` is readable or `timeout` passes.
fn wait_readable(fd: i32, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let r = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as libc::c_int) };
    r > 0
}

pub fn run(a: Args) -> CliResult {
    a.render.check()?;
    if !a.metrics_path.starts_with('/') {
        return Err(CliError::usage("--metrics-path must start with /"));
    }
    let addr: SocketAddr = a
        .listen
        .to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| CliError::usage(format!("--listen {:?}: not an address", a.listen)))?;
    let auth = a
        .basic_auth_file
        .as_deref()
        .map(BasicAuth::load)
        .transpose()?;
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some(tls_config(c, k)?),
        _ => None,
    };
    let mut area = AreaFile::open(&a.area)?;
    tame_malloc();
    // One render now: a damaged area fails here rather than at the first
    // scrape, and buffers are sized right from the first scrape on.
    let mut warm = Vec::new();
    render(
        area.current(),
        &a.render,
        promshm::Format::OpenMetrics,
        &mut warm,
    )?;
    let size_hint = warm.len();
    drop(warm);
    install_signal_handlers()?;
    let listener = TcpListener::bind(addr)
        .map_err(|e| CliError::new(exit::ENDPOINT, format!("cannot listen on {addr}: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| CliError::failure(format!("listener: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::failure(e.to_string()))?;
    if !local.ip().is_loopback() && auth.is_none() && tls.is_none() {
        log(&format!(
            "warning: listening on {local} (not loopback) without --basic-auth-file or TLS"
        ));
    }
    let max_renders = a.max_renders.map(|n| n as usize).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let server = Arc::new(Server {
        area: Mutex::new(area),
        render: a.render.clone(),
        metrics_path: a.metrics_path.clone(),
        auth,
        tls: tls.clone(),
        limits: Limits {
            max_head_bytes: a.max_request_bytes as usize,
            max_headers: a.max_headers as usize,
            head_timeout: a.header_timeout,
            idle_timeout: a.idle_timeout,
            write_timeout: a.write_timeout,
        },
        max_connections: a.max_connections as usize,
        renders: Slots {
            free: Mutex::new(max_renders),
            cv: Condvar::new(),
        },
        table: Mutex::new(ConnTable::default()),
        table_cv: Condvar::new(),
        size_hint: AtomicUsize::new(size_hint),
    });
    log(&format!(
        "serving {} on {}://{local}{} (read-only)",
        a.area.display(),
        if tls.is_some() { "https" } else { "http" },
        a.metrics_path
    ));

    let mut accept_errors = 0u32;
    while !shutting_down() {
        if !wait_readable(listener.as_raw_fd(), Duration::from_millis(200)) {
            continue;
        }
        let sock = match listener.accept() {
            Ok((s, _)) => s,
            // The pending connection went away between poll and accept.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                accept_errors += 1;
                if accept_errors.is_power_of_two() {
                    log(&format!("accept: {e}"));
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let _ = sock.set_nonblocking(false);
        let _ = sock.set_nodelay(true);
        let Some(id) = server.admit(&sock) else {
            // Full of busy connections: a quick 503 for plain HTTP, then close.
            if server.tls.is_none() {
                let _ = sock.set_nonblocking(true);
                let _ = (&sock).write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
            continue;
        };
        let s = server.clone();
        let spawned = std::thread::Builder::new()
            .name("promshm-conn".into())
            .stack_size(512 * 1024)
            .spawn(move || {
                let guard = ConnGuard { server: s, id };
                guard.server.serve_connection(id, sock);
            });
        if spawned.is_err() {
            server.forget(id);
        }
    }

    // Graceful shutdown: no new connections, idle ones closed, busy ones finish.
    drop(listener);
    log("shutting down");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut t = lock(&server.table);
    loop {
        drop(t);
        server.close_waiting();
        t = lock(&server.table);
        if t.conns.is_empty() || Instant::now() >= deadline {
            break;
        }
        t = server
            .table_cv
            .wait_timeout(t, Duration::from_millis(100))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    Ok(())
}
