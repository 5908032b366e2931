//! The HTTP/1.x connection layer of `promshm serve`: request heads parsed by
//! `httparse` under explicit limits (bytes, header count, time), responses
//! with a known length written under a deadline, optional TLS (rustls).
//!
//! Only what an exporter needs: `GET`/`HEAD`, no request bodies, keep-alive
//! and pipelining, `Connection: close`.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Limits on one connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Request line plus headers, in bytes.
    pub max_head_bytes: usize,
    /// Number of header fields.
    pub max_headers: usize,
    /// Time to receive a whole request head once its first byte arrived
    /// (and to finish the TLS handshake after accept).
    pub head_timeout: Duration,
    /// Time a keep-alive connection may wait for the next request.
    pub idle_timeout: Duration,
    /// Time to write a whole response.
    pub write_timeout: Duration,
}

/// A plain or TLS connection.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Conn {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }

    /// Wrap `sock` in TLS and finish the handshake within `timeout`.
    pub fn accept_tls(
        sock: TcpStream,
        config: &Arc<rustls::ServerConfig>,
        timeout: Duration,
    ) -> io::Result<Conn> {
        let mut conn = rustls::ServerConnection::new(config.clone()).map_err(io::Error::other)?;
        let deadline = Instant::now() + timeout;
        let mut sock = sock;
        while conn.is_handshaking() {
            let now = Instant::now();
            if now >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake timed out",
                ));
            }
            sock.set_read_timeout(Some(deadline - now))?;
            sock.set_write_timeout(Some(deadline - now))?;
            conn.complete_io(&mut sock)?;
        }
        Ok(Conn::Tls(Box::new(rustls::StreamOwned::new(conn, sock))))
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// The parts of a request the exporter uses.
#[derive(Debug, Default)]
pub struct Request {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub accept: Option<String>,
    pub accept_encoding: Option<String>,
    pub authorization: Option<String>,
    pub connection: Option<String>,
    /// A body was announced (Content-Length > 0 or Transfer-Encoding).
    pub has_body: bool,
}

impl Request {
    /// Whether the client wants the connection kept open after the response.
    pub fn keep_alive(&self) -> bool {
        let has = |tok: &str| {
            self.connection
                .as_deref()
                .is_some_and(|c| c.split(',').any(|t| t.trim().eq_ignore_ascii_case(tok)))
        };
        if self.version == 0 {
            has("keep-alive")
        } else {
            !has("close")
        }
    }

    /// Whether `Accept-Encoding` accepts gzip (`gzip` or `*` with q > 0).
    pub fn accepts_gzip(&self) -> bool {
        let Some(ae) = &self.accept_encoding else {
            return false;
        };
        let mut gzip = None;
        let mut star = None;
        for item in ae.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let q_ok = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map(|(_, v)| v.trim().parse::<f64>().map(|q| q > 0.0).unwrap_or(false))
                .unwrap_or(true);
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(q_ok);
            } else if coding == "*" {
                star = Some(q_ok);
            }
        }
        gzip.or(star).unwrap_or(false)
    }
}

/// Why no request was read.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// The peer closed, or the connection failed (nothing to answer).
    Closed,
    /// No request started within the idle timeout (close silently).
    Idle,
    /// A request started but its head did not complete in time (408).
    Timeout,
    /// The head is larger than allowed (431).
    TooLarge,
    /// More header fields than allowed (431).
    TooManyHeaders,
    /// Not HTTP/1.x (400).
    Malformed,
}

/// Whether `buf` holds the blank line that ends a head (CRLF or bare LF).
fn head_complete(buf: &[u8]) -> bool {
    buf.windows(2).any(|w| w == b"\n\n") || buf.windows(3).any(|w| w == b"\n\r\n")
}

/// Read the next request head from `conn`. `buf` carries bytes already
/// received after the previous request (pipelining) and keeps the rest.
pub fn read_head(
    conn: &mut Conn,
    buf: &mut Vec<u8>,
    limits: &Limits,
) -> Result<Request, HeadError> {
    let started = Instant::now();
    let mut first_byte = (!buf.is_empty()).then_some(started);
    let mut chunk = [0u8; 4096];
    loop {
        if !buf.is_empty() && head_complete(buf) {
            return parse_head(buf, limits);
        }
        if buf.len() > limits.max_head_bytes {
            return Err(HeadError::TooLarge);
        }
        let deadline = match first_byte {
            None => started + limits.idle_timeout,
            Some(t) => t + limits.head_timeout,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(if first_byte.is_some() {
                HeadError::Timeout
            } else {
                HeadError::Idle
            });
        }
        if conn.tcp().set_read_timeout(Some(deadline - now)).is_err() {
            return Err(HeadError::Closed);
        }
        let room = (limits.max_head_bytes + 1 - buf.len()).min(chunk.len());
        match conn.read(&mut chunk[..room]) {
            Ok(0) => return Err(HeadError::Closed),
            Ok(n) => {
                first_byte.get_or_insert_with(Instant::now);
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return Err(HeadError::Closed),
        }
    }
}

fn parse_head(buf: &mut Vec<u8>, limits: &Limits) -> Result<Request, HeadError> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(HeadError::Malformed),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(_) => return Err(HeadError::Malformed),
    };
    if n > limits.max_head_bytes {
        return Err(HeadError::TooLarge);
    }
    let target = req.path.unwrap_or("/");
    let mut out = Request {
        method: req.method.unwrap_or("").to_owned(),
        path: target.split(['?', '#']).next().unwrap_or("/").to_owned(),
        version: req.version.unwrap_or(1),
        ..Default::default()
    };
    for h in req.headers.iter() {
        let value = || String::from_utf8_lossy(h.value).trim().to_owned();
        let name = h.name;
        if name.eq_ignore_ascii_case("accept") {
            // Several Accept fields combine into one list.
            out.accept = Some(match out.accept.take() {
                Some(prev) => format!("{prev}, {}", value()),
                None => value(),
            });
        } else if name.eq_ignore_ascii_case("accept-encoding") {
            out.accept_encoding = Some(match out.accept_encoding.take() {
                Some(prev) => format!("{prev}, {}", value()),
                None => value(),
            });
        } else if name.eq_ignore_ascii_case("authorization") {
            out.authorization = Some(value());
        } else if name.eq_ignore_ascii_case("connection") {
            out.connection = Some(value());
        } else if name.eq_ignore_ascii_case("content-length") {
            if value() != "0" {
                out.has_body = true;
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            out.has_body = true;
        }
    }
    buf.drain(..n);
    Ok(out)
}

/// A response with its whole body in memory.
pub struct Response<'a> {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: &'a [u8],
}

impl<'a> Response<'a> {
    pub fn new(status: u16, content_type: &str, body: &'a [u8]) -> Self {
        Response {
            status,
            headers: vec![("Content-Type", content_type.to_owned())],
            body,
        }
    }

    pub fn text(status: u16, body: &'a str) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body.as_bytes())
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Write `resp` (head only for `HEAD`) within `limits.write_timeout`.
pub fn write_response(
    conn: &mut Conn,
    resp: &Response<'_>,
    head_only: bool,
    keep_alive: bool,
    limits: &Limits,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    head.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let deadline = Instant::now() + limits.write_timeout;
    let body = if head_only { &[][..] } else { resp.body };
    // Small responses go out in one write.
    if body.len() <= 16 * 1024 {
        let mut all = head.into_bytes();
        all.extend_from_slice(body);
        write_all_by(conn, &all, deadline)?;
    } else {
        write_all_by(conn, head.as_bytes(), deadline)?;
        write_all_by(conn, body, deadline)?;
    }
    conn.flush()
}

fn write_all_by(conn: &mut Conn, mut data: &[u8], deadline: Instant) -> io::Result<()> {
    while !data.is_empty() {
        let now = Instant::now();
        if now >= deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "write deadline"));
        }
        conn.tcp().set_write_timeout(Some(deadline - now))?;
        let n = data.len().min(64 * 1024);
        match conn.write(&data[..n]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(w) => data = &data[w..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_head_bytes: 256,
            max_headers: 4,
            head_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn parses_and_keeps_pipelined_bytes() {
        let mut buf = b"GET /metrics?x=1 HTTP/1.1\r\nAccept: text/plain\r\naccept: application/openmetrics-text\r\nAccept-Encoding: gzip\r\n\r\nGET /".to_vec();
        let r = parse_head(&mut buf, &limits()).unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/metrics");
        assert_eq!(r.version, 1);
        assert_eq!(
            r.accept.as_deref(),
            Some("text/plain, application/openmetrics-text")
        );
        assert!(r.accepts_gzip());
        assert!(r.keep_alive());
        assert!(!r.has_body);
        assert_eq!(buf, b"GET /");
    }

    #[test]
    fn limits_apply() {
        let mut buf = b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\ne: 5\r\n\r\n".to_vec();
        assert_eq!(
            parse_head(&mut buf, &limits()).unwrap_err(),
            HeadError::TooManyHeaders
        );
        let mut buf = b"\x16\x03\x01 garbage\r\n\r\n".to_vec();
        assert_eq!(
            parse_head(&mut buf, &limits()).unwrap_err(),
            HeadError::Malformed
        );
    }

    #[test]
    fn keep_alive_and_gzip_rules() {
        let r = |version, connection: Option<&str>, ae: Option<&str>| Request {
            version,
            connection: connection.map(str::to_owned),
            accept_encoding: ae.map(str::to_owned),
            ..Default::default()
        };
        assert!(!r(0, None, None).keep_alive());
        assert!(r(0, Some("Keep-Alive"), None).keep_alive());
        assert!(!r(1, Some("close"), None).keep_alive());
        assert!(r(1, Some("TE, keep-alive"), None).keep_alive());
        assert!(!r(1, None, None).accepts_gzip());
        assert!(r(1, None, Some("deflate, gzip;q=0.5")).accepts_gzip());
        assert!(!r(1, None, Some("gzip;q=0")).accepts_gzip());
        assert!(r(1, None, Some("*")).accepts_gzip());
        assert!(!r(1, None, Some("*, gzip;q=0")).accepts_gzip());
        assert!(!r(1, None, Some("identity")).accepts_gzip());
    }
}
