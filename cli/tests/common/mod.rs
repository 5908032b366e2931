//! Shared helpers of the `promshm` command's tests: temp dirs, child
//! processes that are always killed, a tiny HTTP client, areas with known
//! contents, and worker processes (the test binary re-executed).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use promshm::{Area, AreaOptions, GaugeMode, OpenMode, Opts, SummaryOpts};

/// The `promshm` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_promshm")
}

/// Run `promshm ARGS` to completion (bounded).
pub fn run(args: &[&str]) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promshm");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("promshm {args:?} did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("promshm-cli-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (SIGTERM, then SIGKILL) and reaped on drop.
pub struct ChildGuard {
    pub child: Child,
    pub name: String,
}

impl ChildGuard {
    pub fn spawn(name: &str, cmd: &mut Command) -> ChildGuard {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        ChildGuard {
            child,
            name: name.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait up to `timeout`; the exit status if it exited.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return Some(st);
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.terminate(Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port that was free a moment ago (for servers that cannot report theirs).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `promshm serve AREA --listen 127.0.0.1:0 EXTRA...`; returns the guard and
/// the address it printed. Its stderr is forwarded to ours.
pub fn start_serve(area: &Path, extra: &[&str]) -> (ChildGuard, SocketAddr) {
    let mut cmd = Command::new(bin());
    cmd.arg("serve")
        .arg(area)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut guard = ChildGuard::spawn("promshm serve", &mut cmd);
    let stderr = guard.child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("[serve] {line}");
            if let Some(rest) = line.split("://").nth(1) {
                if line.contains("serving") {
                    let addr = rest.split('/').next().unwrap().to_owned();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("promshm serve did not report its address");
    (guard, addr.parse().unwrap())
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Read one response (Content-Length framed) from `s`.
pub fn read_response(s: &mut impl Read) -> std::io::Result<Resp> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
        if buf.len() > 64 * 1024 {
            return Err(std::io::Error::other("response head too large"));
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        // Chunked (Go servers use it for large bodies).
        let mut body = Vec::new();
        loop {
            let mut line = Vec::new();
            while !line.ends_with(b"\r\n") {
                s.read_exact(&mut byte)?;
                line.push(byte[0]);
            }
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&line)
                    .trim()
                    .split(';')
                    .next()
                    .unwrap(),
                16,
            )
            .map_err(std::io::Error::other)?;
            let mut chunk = vec![0u8; size + 2];
            s.read_exact(&mut chunk)?;
            if size == 0 {
                break body;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = find("content-length") {
        let mut body = vec![0u8; len.parse().map_err(std::io::Error::other)?];
        s.read_exact(&mut body)?;
        body
    } else {
        let mut body = Vec::new();
        s.read_to_end(&mut body)?;
        body
    };
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// One request on a new connection (`Connection: close`).
pub fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    read_response(&mut s)
}

/// Poll `f` until it returns Some, or panic after `timeout` with `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A line of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
pub fn proc_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Whether `program` is on the PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// Whether an external program is installed; without it, tests that need it
/// fail on CI (which installs it) and are skipped elsewhere with a note.
pub fn have(program: &str) -> bool {
    let found = on_path(program);
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{program} is not installed (scripts/setup.sh installs it)");
        }
        eprintln!("SKIPPED: {program} is not installed (run scripts/setup.sh)");
    }
    found
}

// ---- areas with known contents ------------------------------------------------------

/// Create an area at `path` with one family of each type and known values.
pub fn populate(path: &Path) -> Area {
    let area = Area::create(path, &AreaOptions::with_pages(256)).unwrap();
    let reg = area.registry().with_prefix("app").unwrap();
    let jobs = reg
        .counter(
            Opts::new("jobs", "Jobs done.")
                .labels(&["kind"])
                .eager(true),
        )
        .unwrap();
    jobs.labels(&["a"]).unwrap().add(4000.0).unwrap();
    jobs.labels(&["b"]).unwrap().add(1000.0).unwrap();
    let lat = reg
        .histogram(
            Opts::new("latency", "Latency.").unit("seconds").eager(true),
            &[0.1, 0.5, 1.0],
        )
        .unwrap();
    let h = lat.get().unwrap();
    for v in [0.05, 0.3, 0.7, 2.0] {
        for _ in 0..10 {
            h.observe(v).unwrap();
        }
    }
    let temp = reg
        .gauge(
            Opts::new("temperature", "A gauge.").eager(true),
            GaugeMode::MostRecent,
        )
        .unwrap();
    temp.get().unwrap().set(21.5);
    let build = reg.info(Opts::new("build", "Build info.")).unwrap();
    build.get().unwrap().set(&[("version", "1.2.3")]).unwrap();
    let state = reg
        .state_set(Opts::new("mode", "A state set."), &["on", "off"])
        .unwrap();
    state.get().unwrap().set("off").unwrap();
    let sizes = reg
        .summary(
            Opts::new("size", "A summary.").unit("bytes").eager(true),
            &SummaryOpts::quantiles(&[0.5]),
        )
        .unwrap();
    let s = sizes.get().unwrap();
    for v in 1..=100 {
        s.observe(f64::from(v)).unwrap();
    }
    promshm::flush();
    area
}

/// Dyadic observations (the sum is exact in any order): zero, negative,
/// positive, a value in the zero bucket, spread over distant buckets.
pub const NATIVE_VALUES: [f64; 8] = [0.0, -3.0, 0.25, 1.0, 1.0, 1.5, 1024.0, 1e-300];

/// One native histogram family `rw_native_seconds{path}` with
/// [`NATIVE_VALUES`] observed `rounds` times into `path="/a"`.
pub fn populate_native(path: &Path, rounds: u32) -> Area {
    let area = Area::create(path, &AreaOptions::with_pages(256)).unwrap();
    let fam = area
        .registry()
        .native_histogram(
            promshm::Opts::new("rw_native_seconds", "Native.").labels(&["path"]),
            promshm::NativeOpts::new().zero_threshold(1e-9),
        )
        .unwrap();
    let h = fam.labels(&["/a"]).unwrap();
    for _ in 0..rounds {
        for v in NATIVE_VALUES {
            h.observe(v).unwrap();
        }
    }
    area
}

// ---- worker processes -----------------------------------------------------------------

/// Environment variable that turns the test binary into a worker.
pub const WORKER_ENV: &str = "PROMSHM_CLI_TEST_WORKER";

/// Observations cycle through these (one per bucket of [0.1, 0.5, 1]).
pub const OBSERVATIONS: [f64; 4] = [0.05, 0.3, 0.7, 2.0];

/// Start `n` workers, each running [`worker_body`] with `per_worker` updates,
/// by re-executing this test binary on the test named `entry`.
pub fn spawn_workers(entry: &str, area: &Path, n: usize, per_worker: u64) -> Vec<ChildGuard> {
    (0..n)
        .map(|i| {
            let mut cmd = Command::new(std::env::current_exe().unwrap());
            cmd.args(["--exact", entry, "--nocapture", "--test-threads=1"])
                .env(WORKER_ENV, format!("{}|{i}|{per_worker}", area.display()))
                .stdout(Stdio::null());
            ChildGuard::spawn(&format!("worker {i}"), &mut cmd)
        })
        .collect()
}

/// Body of a worker process, if this process is one. Updates
/// `app_jobs_total{kind="a"}` `per_worker` times, `{kind="b"}` every 4th
/// time, and observes [`OBSERVATIONS`] in turn into `app_latency_seconds`,
/// flushing every 50 updates and pausing so that scrapes see it move.
pub fn worker_body() {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return;
    };
    let mut parts = spec.split('|');
    let path = PathBuf::from(parts.next().unwrap());
    let _idx: usize = parts.next().unwrap().parse().unwrap();
    let n: u64 = parts.next().unwrap().parse().unwrap();
    let area = Area::open(&path, OpenMode::ReadWrite).unwrap();
    let reg = area.registry().with_prefix("app").unwrap();
    let jobs = reg
        .counter(Opts::new("jobs", "Jobs done.").labels(&["kind"]))
        .unwrap();
    let lat = reg
        .histogram(
            Opts::new("latency", "Latency.").unit("seconds"),
            &[0.1, 0.5, 1.0],
        )
        .unwrap();
    let (a, b, h) = (
        jobs.labels(&["a"]).unwrap(),
        jobs.labels(&["b"]).unwrap(),
        lat.get().unwrap(),
    );
    for i in 0..n {
        a.inc();
        if i % 4 == 0 {
            b.inc();
        }
        h.observe(OBSERVATIONS[(i % 4) as usize]).unwrap();
        if i % 50 == 49 {
            promshm::flush();
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    promshm::flush();
    std::process::exit(0);
}

/// Wait for every worker to exit with status 0.
pub fn join_workers(workers: &mut [ChildGuard]) {
    for w in workers.iter_mut() {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = w.child.try_wait().unwrap() {
                assert!(st.success(), "{} failed: {st}", w.name);
                break;
            }
            assert!(Instant::now() < deadline, "{} did not finish", w.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// ---- Prometheus -------------------------------------------------------------------------

/// Query a Prometheus server's `/api/v1/query`; (labels, value) of each series.
pub fn prom_query(port: u16, query: &str) -> Option<Vec<(BTreeMap<String, String>, String)>> {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let q: String = query
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let resp = http_get(addr, &format!("/api/v1/query?query={q}"), &[]).ok()?;
    if resp.status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&resp.body).ok()?;
    let result = v["data"]["result"].as_array()?;
    Some(
        result
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect();
                (labels, r["value"][1].as_str().unwrap().to_owned())
            })
            .collect(),
    )
}

/// Start a Prometheus server with `config` (YAML) and extra flags; waits until ready.
pub fn start_prometheus(dir: &TempDir, config: &str, extra: &[&str]) -> (ChildGuard, u16) {
    let cfg = dir.path("prometheus.yml");
    std::fs::write(&cfg, config).unwrap();
    let port = free_port();
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let guard = ChildGuard::spawn("prometheus", &mut cmd);
    wait_until_ready(port, "prometheus");
    (guard, port)
}

/// Wait for `/-/ready` on 127.0.0.1:`port`.
pub fn wait_until_ready(port: u16, what: &str) {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for(Duration::from_secs(30), what, || {
        http_get(addr, "/-/ready", &[])
            .ok()
            .filter(|r| r.status == 200)
    });
}
