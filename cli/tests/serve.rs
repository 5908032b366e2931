//! `promshm serve`: content negotiation, gzip, /healthz, basic auth, TLS,
//! request limits, keep-alive and pipelining, graceful shutdown, and
//! robustness (1,000 scrapes, slow-loris clients, bounded memory).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const OM_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const JOBS_A: &str = "app_jobs_total{kind=\"a\"} 4000\n";

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Send raw bytes on a fresh connection and read one response.
fn raw(addr: SocketAddr, bytes: &[u8]) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(bytes)?;
    read_response(&mut s)
}

#[test]
fn negotiation_gzip_healthz_and_errors() {
    let dir = TempDir::new("serve");
    let area = dir.path("a.promshm");
    let _keep = populate(&area);
    let (mut serve, addr) = start_serve(&area, &[]);

    let r = http_get(addr, "/metrics", &[]).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(r.header("content-encoding").is_none());
    let plain = r.text();
    assert!(plain.contains(JOBS_A), "{plain}");
    assert!(plain.contains("app_latency_seconds_bucket{le=\"+Inf\"} 40\n"));

    for accept in [OM_ACCEPT, "application/openmetrics-text"] {
        let r = http_get(addr, "/metrics", &[("Accept", accept)]).unwrap();
        assert_eq!(
            r.header("content-type"),
            Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
        );
        let om = r.text();
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert!(
            om.contains("app_latency_seconds_bucket{le=\"1.0\"} 30\n"),
            "{om}"
        );
    }
    let r = http_get(addr, "/metrics", &[("Accept", "text/plain;version=0.0.4")]).unwrap();
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));

    // gzip when asked, and only then.
    let r = http_get(addr, "/metrics", &[("Accept-Encoding", "gzip, deflate")]).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept, Accept-Encoding"));
    assert_eq!(String::from_utf8(gunzip(&r.body)).unwrap(), plain);
    let r = http_get(
        addr,
        "/metrics",
        &[("Accept-Encoding", "gzip"), ("Accept", OM_ACCEPT)],
    )
    .unwrap();
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(String::from_utf8(gunzip(&r.body))
        .unwrap()
        .ends_with("# EOF\n"));
    let r = http_get(addr, "/metrics", &[("Accept-Encoding", "gzip;q=0")]).unwrap();
    assert!(r.header("content-encoding").is_none());

    let r = http_get(addr, "/healthz", &[]).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    assert_eq!(http_get(addr, "/", &[]).unwrap().status, 200);
    assert_eq!(http_get(addr, "/nope", &[]).unwrap().status, 404);
    assert_eq!(
        http_get(addr, "/metrics?x=1", &[]).unwrap().status,
        200,
        "a query string is ignored"
    );

    // Methods, bodies, limits, garbage.
    let r = raw(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = raw(
        addr,
        b"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    )
    .unwrap();
    assert_eq!(r.status, 413);
    let big = format!(
        "GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(10_000)
    );
    assert_eq!(raw(addr, big.as_bytes()).unwrap().status, 431);
    let many: String = (0..100).map(|i| format!("X-{i}: v\r\n")).collect();
    let many = format!("GET /metrics HTTP/1.1\r\n{many}\r\n");
    assert_eq!(raw(addr, many.as_bytes()).unwrap().status, 431);
    assert_eq!(
        raw(addr, b"\x16\x03\x01\x02\x00 hello\r\n\r\n")
            .unwrap()
            .status,
        400
    );

    // HEAD: the headers of GET, no body.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"HEAD /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let all = String::from_utf8(all).unwrap();
    assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
    assert!(all.ends_with("\r\n\r\n"), "{all}");
    assert!(
        all.contains(&format!("Content-Length: {}\r\n", plain.len())),
        "{all}"
    );

    // Keep-alive, then two pipelined requests in one write.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for _ in 0..3 {
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let r = read_response(&mut s).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("keep-alive"));
        assert!(r.text().contains(JOBS_A));
    }
    s.write_all(b"GET /healthz HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s).unwrap().text(), "ok\n");
    let r = read_response(&mut s).unwrap();
    assert_eq!(r.header("connection"), Some("close"));
    assert!(r.text().contains(JOBS_A));
    let mut rest = Vec::new();
    assert_eq!(
        s.read_to_end(&mut rest).unwrap(),
        0,
        "closed after Connection: close"
    );

    // An HTTP/1.0 request is answered and closed.
    let r = raw(addr, b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(r.header("connection"), Some("close"));

    // SIGTERM: exits 0 promptly, even with an idle keep-alive connection open.
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").unwrap();
    read_response(&mut idle).unwrap();
    let t = Instant::now();
    let st = serve
        .terminate(Duration::from_secs(8))
        .expect("exit on SIGTERM");
    assert!(st.success(), "{st}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

const PROTO_ACCEPT: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// `app_jobs_total{kind="a"}` of a protobuf page.
fn pb_jobs_a(body: &[u8]) -> f64 {
    let fams = promshm::encoding::protobuf::decode_families(body).unwrap();
    let jobs = fams.iter().find(|f| f.name() == "app_jobs_total").unwrap();
    jobs.metric
        .iter()
        .find(|m| {
            m.label
                .iter()
                .any(|l| l.name() == "kind" && l.value() == "a")
        })
        .and_then(|m| m.counter.as_ref())
        .unwrap()
        .value()
}

/// Protobuf when the scraper prefers it (gzip too), and scrapes of every
/// format at once each get their own page: a page is never shared across
/// formats.
#[test]
fn protobuf_negotiated_and_never_shared_with_text() {
    let dir = TempDir::new("serve-pb");
    let area = dir.path("a.promshm");
    let _keep = populate(&area);
    let (_serve, addr) = start_serve(&area, &[]);
    let pb_type = promshm::Format::Protobuf.content_type();

    let r = http_get(addr, "/metrics", &[("Accept", PROTO_ACCEPT)]).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some(pb_type));
    assert_eq!(pb_jobs_a(&r.body), 4000.0);
    let r = http_get(
        addr,
        "/metrics",
        &[("Accept", PROTO_ACCEPT), ("Accept-Encoding", "gzip")],
    )
    .unwrap();
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(pb_jobs_a(&gunzip(&r.body)), 4000.0);

    let accepts = [PROTO_ACCEPT, OM_ACCEPT, "text/plain"];
    let threads: Vec<_> = (0..30)
        .map(|i| {
            let accept = accepts[i % 3];
            std::thread::spawn(move || {
                let r = http_get(addr, "/metrics", &[("Accept", accept)]).unwrap();
                (i % 3, r)
            })
        })
        .collect();
    for t in threads {
        let (kind, r) = t.join().unwrap();
        assert_eq!(r.status, 200);
        let ct = r.header("content-type").unwrap().to_owned();
        match kind {
            0 => {
                assert_eq!(ct, pb_type);
                assert_eq!(pb_jobs_a(&r.body), 4000.0);
            }
            1 => {
                assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
                assert!(r.text().ends_with("# EOF\n") && r.text().contains(JOBS_A));
            }
            _ => {
                assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
                assert!(r.text().contains(JOBS_A) && !r.text().contains("# EOF"));
            }
        }
    }
}

#[test]
fn basic_auth() {
    let dir = TempDir::new("auth");
    let area = dir.path("a.promshm");
    let _keep = populate(&area);
    let users = dir.path("users");
    // graf's password is "secret", given as its SHA-256.
    std::fs::write(
        &users,
        "# users\nprom:s3cr:et\ngraf:sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b\n",
    )
    .unwrap();
    std::fs::set_permissions(&users, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (_serve, addr) = start_serve(&area, &["--basic-auth-file", users.to_str().unwrap()]);

    // "prom:s3cr:et", "graf:secret", "prom:wrong" in base64.
    let basic = |s: &str| {
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let b = s.as_bytes();
        let mut out = String::from("Basic ");
        for c in b.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    };
    let r = http_get(addr, "/metrics", &[]).unwrap();
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic realm="));
    assert!(!r.text().contains("app_"));
    let r = http_get(addr, "/metrics", &[("Authorization", &basic("prom:wrong"))]).unwrap();
    assert_eq!(r.status, 401);
    let r = http_get(
        addr,
        "/metrics",
        &[("Authorization", &basic("nobody:s3cr:et"))],
    )
    .unwrap();
    assert_eq!(r.status, 401);
    let r = http_get(
        addr,
        "/metrics",
        &[("Authorization", &basic("prom:s3cr:et"))],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains(JOBS_A));
    let r = http_get(
        addr,
        "/metrics",
        &[("Authorization", &basic("graf:secret"))],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    // /healthz stays open for load balancers.
    assert_eq!(http_get(addr, "/healthz", &[]).unwrap().status, 200);
}

#[test]
fn tls() {
    // Only to make a certificate; not installed by scripts/setup.sh.
    if !on_path("openssl") {
        eprintln!("SKIPPED: openssl is not installed");
        return;
    }
    let dir = TempDir::new("tls");
    let area = dir.path("a.promshm");
    let _keep = populate(&area);
    let (cert, key) = (dir.path("cert.pem"), dir.path("key.pem"));
    let o = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let (_serve, addr) = start_serve(
        &area,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--header-timeout",
            "2s",
        ],
    );

    // A client that connects and never says a word does not hold anything up.
    let _silent = TcpStream::connect(addr).unwrap();

    let pem = std::fs::read(&cert).unwrap();
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|i| match i {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                .build(),
        )
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let url = format!("https://127.0.0.1:{}/metrics", addr.port());
    for _ in 0..3 {
        let mut r = agent.get(&url).header("Accept", OM_ACCEPT).call().unwrap();
        assert_eq!(r.status(), 200);
        let body = r.body_mut().read_to_string().unwrap();
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert!(body.contains("app_jobs_total{kind=\"a\"} 4000"));
    }
    // Plain HTTP on the TLS port is refused, and the server carries on.
    assert!(raw(addr, b"GET /metrics HTTP/1.1\r\n\r\n").is_err_or_not_200());
    let mut r = agent.get(&url).call().unwrap();
    assert!(r.body_mut().read_to_string().unwrap().contains(JOBS_A));
}

trait NotOk {
    fn is_err_or_not_200(&self) -> bool;
}
impl NotOk for std::io::Result<Resp> {
    fn is_err_or_not_200(&self) -> bool {
        !matches!(self, Ok(r) if r.status == 200)
    }
}

#[test]
fn follows_a_replaced_area_file() {
    let dir = TempDir::new("replace");
    let area = dir.path("a.promshm");
    drop(populate(&area));
    let (_serve, addr) = start_serve(&area, &["--namespace", "app"]);
    assert!(http_get(addr, "/metrics", &[])
        .unwrap()
        .text()
        .contains(JOBS_A));
    // The application restarts and recreates its area under the same name.
    let fresh = dir.path("b.promshm");
    let a2 = promshm::Area::create(&fresh, &promshm::AreaOptions::with_pages(64)).unwrap();
    let c = a2
        .registry()
        .with_prefix("app")
        .unwrap()
        .counter(promshm::Opts::new("restarts", "Restarts.").eager(true))
        .unwrap();
    c.get().unwrap().inc();
    std::fs::rename(&fresh, &area).unwrap();
    let text = http_get(addr, "/metrics", &[]).unwrap().text();
    assert!(text.contains("app_restarts_total 1\n"), "{text}");
    assert!(!text.contains("app_jobs_total"), "{text}");
}

/// 50 threads × 20 scrapes, each on a new connection: all answered, all complete.
#[test]
fn a_thousand_scrapes() {
    let dir = TempDir::new("thousand");
    let area = dir.path("a.promshm");
    let _keep = populate(&area);
    let (serve, addr) = start_serve(&area, &[]);
    let ok = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let ok = ok.clone();
            std::thread::spawn(move || {
                for j in 0..20 {
                    let gzip = (i + j) % 3 == 0;
                    let headers: &[(&str, &str)] = if gzip {
                        &[("Accept-Encoding", "gzip")]
                    } else {
                        &[]
                    };
                    let r = http_get(addr, "/metrics", headers)
                        .unwrap_or_else(|e| panic!("scrape {i}/{j}: {e}"));
                    assert_eq!(r.status, 200);
                    let body = if gzip { gunzip(&r.body) } else { r.body };
                    let text = String::from_utf8(body).unwrap();
                    assert!(text.contains(JOBS_A), "{text}");
                    assert!(text.contains("app_size_bytes_count 100\n"), "{text}");
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(ok.load(Ordering::Relaxed), 1000);
    eprintln!("1000 scrapes in {:?}", started.elapsed());
    let rss = proc_kib(serve.pid(), "VmRSS");
    let hwm = proc_kib(serve.pid(), "VmHWM");
    eprintln!("serve VmRSS {rss} KiB, VmHWM {hwm} KiB");
    assert!(rss < 64 * 1024, "VmRSS {rss} KiB");
    assert!(hwm < 64 * 1024, "VmHWM {hwm} KiB");
}

/// Clients that trickle a request head byte by byte, and reconnect when cut
/// off, do not stop normal scrapes; threads and memory stay bounded.
#[test]
fn slow_loris_does_not_starve_scrapes() {
    let dir = TempDir::new("loris");
    let area = dir.path("a.promshm");
    let _keep = populate(&area);
    let (serve, addr) = start_serve(
        &area,
        &["--max-connections", "16", "--header-timeout", "2s"],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let attackers: Vec<_> = (0..40)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let line = b"GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    };
                    for b in line.iter().cycle() {
                        if stop.load(Ordering::Relaxed) || s.write_all(&[*b]).is_err() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));

    // One slow client of our own: the server cuts it off within the head timeout.
    let mut probe = TcpStream::connect(addr).unwrap();
    probe
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t = Instant::now();
    let mut cut = false;
    for b in b"GET /metrics HTTP/1.1\r\nX-Slow: "
        .iter()
        .cycle()
        .take(100)
    {
        if probe.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        probe.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        let closed = probe.read(&mut buf).is_ok();
        probe.set_nonblocking(false).unwrap();
        if closed {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(cut, "a slow client was never cut off");
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());

    // Normal scrapes during the attack: every one answered, promptly.
    let mut worst = Duration::ZERO;
    let mut max_threads = 0;
    for _ in 0..30 {
        let t = Instant::now();
        let r = http_get(addr, "/metrics", &[]).expect("scrape during the attack");
        assert_eq!(r.status, 200);
        assert!(r.text().contains(JOBS_A));
        worst = worst.max(t.elapsed());
        max_threads = max_threads.max(proc_kib_threads(serve.pid()));
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.join().unwrap();
    }
    eprintln!("worst scrape latency under attack {worst:?}, max threads {max_threads}");
    assert!(worst < Duration::from_secs(3), "{worst:?}");
    assert!(max_threads <= 32, "{max_threads} threads for 40 attackers");
    let rss = proc_kib(serve.pid(), "VmRSS");
    assert!(rss < 64 * 1024, "VmRSS {rss} KiB");
}

fn proc_kib_threads(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}
