//! Shared helpers of the multi-process integration tests.
//!
//! Processes are started by re-executing the test binary itself
//! (`std::env::current_exe()`) with `--exact child_entry`, never by `fork()`
//! inside the libtest harness. The `#[test] fn child_entry()` of each test
//! file calls [`child_main`], which does nothing unless [`ROLE_ENV`] is set,
//! and otherwise runs the role and exits the process with a status.
//!
//! Children talk to the parent through lines on stdout prefixed with
//! [`MARK`] (libtest prints its own text on stdout too), and the parent
//! releases or stops them by closing their stdin. Every wait is bounded:
//! on a timeout the child is killed and the test fails with its stderr.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Environment variable naming the role a re-executed test binary plays.
pub const ROLE_ENV: &str = "PROMSHM_CHILD_ROLE";
/// Environment variable with the area path.
pub const AREA_ENV: &str = "PROMSHM_AREA";
/// Prefix of the lines a child sends to its parent on stdout.
pub const MARK: &str = "@@promshm@@ ";

// ---- child side ------------------------------------------------------------------

/// The role of this process, if it was started as a child.
pub fn role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
}

/// Run `dispatch(role)` and exit if this process is a child; return otherwise.
/// A panic in the role (a failed assertion) prints its message on stderr and
/// exits with 101; a role that returns exits with 0.
pub fn child_main(dispatch: impl FnOnce(&str)) {
    let Some(role) = role() else {
        return;
    };
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(&role))).is_ok();
    let _ = std::io::stdout().flush();
    std::process::exit(if ok { 0 } else { 101 });
}

/// A string parameter from the environment (panics if missing).
pub fn env_str(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child parameter {name} is missing"))
}

/// A numeric parameter from the environment.
pub fn env_u64(name: &str) -> u64 {
    let s = env_str(name);
    s.parse()
        .unwrap_or_else(|_| panic!("child parameter {name}={s:?} is not a number"))
}

/// The area path given to this child.
pub fn env_area() -> PathBuf {
    PathBuf::from(env_str(AREA_ENV))
}

/// Send one line to the parent.
pub fn send(msg: &str) {
    let mut out = std::io::stdout().lock();
    // One write per line, flushed at once.
    let _ = out.write_all(format!("{MARK}{msg}\n").as_bytes());
    let _ = out.flush();
}

/// Block until the parent closes our stdin (or writes a line).
pub fn wait_for_parent() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

/// The next line the parent wrote to our stdin, without its newline;
/// `None` once the parent closed it.
pub fn read_parent_line() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches('\n').to_string()),
    }
}

// ---- parent side -----------------------------------------------------------------

/// A temporary directory under `std::env::temp_dir()`, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, uniquely named directory.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "promshm-{tag}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        TempDir(p)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process running a role of this test binary. Killed (and reaped)
/// on drop if it is still running, so a failing test leaves no process behind.
pub struct ChildProc {
    /// What it is, for messages.
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl ChildProc {
    /// Start `role` with these extra environment variables.
    pub fn spawn(role: &str, name: &str, envs: &[(&str, String)]) -> ChildProc {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, role)
            .env_remove(AREA_ENV)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn child {name} ({role}): {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr_pipe = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let err2 = stderr.clone();
        let readers = vec![
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(i) = line.find(MARK) {
                        if tx.send(line[i + MARK.len()..].to_string()).is_err() {
                            break;
                        }
                    }
                }
            }),
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match stderr_pipe.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => err2.lock().unwrap().extend_from_slice(&buf[..n]),
                    }
                }
            }),
        ];
        ChildProc {
            name: name.to_string(),
            child,
            stdin,
            lines,
            stderr,
            readers,
            status: None,
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the child wrote on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Kill the child (if running), reap it and panic with `why` and its stderr.
    pub fn fail(&mut self, why: &str) -> ! {
        let mut why = why.to_string();
        if self.status.is_none() {
            why.push_str(&self.diagnose());
        }
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
        // Give the reader a moment to collect the last of stderr.
        std::thread::sleep(Duration::from_millis(20));
        panic!(
            "child {} (pid {}): {why}\n--- stderr of {} ---\n{}\n--- end ---",
            self.name,
            self.child.id(),
            self.name,
            self.stderr()
        );
    }

    /// Where a running child is stuck: its threads' states and kernel wait
    /// channels, and with `PROMSHM_TEST_GDB=1` their stacks (gdb).
    fn diagnose(&self) -> String {
        let pid = self.child.id();
        let mut out = thread_states(pid as libc::pid_t);
        if std::env::var_os("PROMSHM_TEST_GDB").is_some() {
            if let Ok(o) = Command::new("gdb")
                .args([
                    "-p",
                    &pid.to_string(),
                    "-batch",
                    "-ex",
                    "thread apply all bt",
                ])
                .output()
            {
                out.push('\n');
                out.push_str(&String::from_utf8_lossy(&o.stdout));
            }
        }
        out
    }

    /// The next message line from the child, within `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> String {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => self.fail(&format!("no message within {timeout:?}")),
            Err(RecvTimeoutError::Disconnected) => {
                let _ = self.child.wait().map(|s| self.status = Some(s));
                let st = self.status;
                self.fail(&format!("closed stdout before sending a message ({st:?})"))
            }
        }
    }

    /// Wait for the message `expected` (the whole line) within `timeout`.
    pub fn expect(&mut self, expected: &str, timeout: Duration) {
        let got = self.recv(timeout);
        if got != expected {
            self.fail(&format!("expected message {expected:?}, got {got:?}"));
        }
    }

    /// Write one line to the child's stdin (read with [`read_parent_line`]).
    pub fn send_line(&mut self, line: &str) {
        let ok = match self.stdin.as_mut() {
            Some(stdin) => stdin
                .write_all(format!("{line}\n").as_bytes())
                .and_then(|_| stdin.flush())
                .is_ok(),
            None => false,
        };
        if !ok {
            self.fail(&format!("cannot send {line:?}: stdin closed"));
        }
    }

    /// Close the child's stdin: the signal to go on (see [`wait_for_parent`]).
    pub fn release(&mut self) {
        self.stdin = None;
    }

    /// Wait for the child to exit, within `timeout` (killed and failed otherwise).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    self.status = Some(s);
                    for r in self.readers.drain(..) {
                        let _ = r.join();
                    }
                    return s;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                Ok(None) => self.fail(&format!("still running after {timeout:?}")),
                Err(e) => self.fail(&format!("wait: {e}")),
            }
        }
    }

    /// Wait for the child to exit successfully within `timeout`.
    pub fn expect_success(&mut self, timeout: Duration) {
        let status = self.wait(timeout);
        if !status.success() {
            self.fail(&format!("exited with {status}"));
        }
    }

    /// SIGKILL the child and wait until it is dead, but leave it a zombie
    /// (`waitid(WNOWAIT)`): until [`reap`](Self::reap), its pid still looks
    /// alive to everyone, so nothing it held can be taken over yet.
    pub fn kill_no_reap(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own child, which has not been reaped (so the pid is its).
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: valid pointer; WNOWAIT leaves the child waitable.
            let r = unsafe {
                libc::waitid(
                    libc::P_PID,
                    pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
                )
            };
            // SAFETY: reading the pid field of a siginfo filled in by waitid.
            if r == 0 && unsafe { info.si_pid() } == pid {
                return;
            }
            if r != 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    panic!("waitid({pid}): {e}");
                }
            }
            if Instant::now() > deadline {
                panic!("child {} did not die after SIGKILL", self.name);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// SIGSTOP the child and wait until it is stopped: it stays exactly where
    /// it was (holding whatever it held) until it is killed or continued.
    pub fn stop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own child, which has not been reaped.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        self.wait_stopped(Duration::from_secs(10), "did not stop after SIGSTOP");
    }

    /// Wait (at most `within`) until the child is stopped, by `stop` or by
    /// itself; fail with `why` otherwise. The stop event stays pending.
    pub fn wait_stopped(&mut self, within: Duration, why: &str) {
        let pid = self.child.id() as libc::pid_t;
        let deadline = Instant::now() + within;
        loop {
            // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: valid pointer; WNOWAIT leaves the event pending.
            let r = unsafe {
                libc::waitid(
                    libc::P_PID,
                    pid as libc::id_t,
                    &mut info,
                    libc::WSTOPPED | libc::WNOWAIT | libc::WNOHANG,
                )
            };
            // SAFETY: reading the pid field of a siginfo filled in by waitid.
            if r == 0 && unsafe { info.si_pid() } == pid {
                return;
            }
            if Instant::now() > deadline {
                self.fail(why);
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    /// Reap a child (after [`kill_no_reap`](Self::kill_no_reap) or an exit).
    pub fn reap(&mut self) -> ExitStatus {
        self.wait(Duration::from_secs(10))
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        self.kill_no_reap();
        self.reap();
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Run `role` to completion within `timeout`; its messages, in order.
pub fn run_child(
    role: &str,
    name: &str,
    envs: &[(&str, String)],
    timeout: Duration,
) -> Vec<String> {
    let mut c = ChildProc::spawn(role, name, envs);
    c.release();
    c.expect_success(timeout);
    let mut out = Vec::new();
    while let Ok(l) = c.lines.try_recv() {
        out.push(l);
    }
    out
}

/// Run several children at once; wait for all of them (each within `timeout`).
pub fn run_children(children: &mut [ChildProc], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    for c in children.iter_mut() {
        c.release();
    }
    for c in children.iter_mut() {
        let left = deadline.saturating_duration_since(Instant::now());
        c.expect_success(left.max(Duration::from_millis(1)));
    }
}

/// The area lock word (header offset 56, `hdr::LOCK` in `src/area/format.rs`),
/// read through the file: `pid | start_time_low32 << 32`, 0 when free.
pub fn lock_word(area_path: &Path) -> u64 {
    let f = std::fs::File::open(area_path).expect("open area file");
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, 56).expect("read lock word");
    u64::from_le_bytes(b)
}

/// Where process `pid` is: each of its threads' state and kernel wait
/// channel, one line each (for the message of a hung child).
pub fn thread_states(pid: libc::pid_t) -> String {
    let mut out = String::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let p = t.path();
            let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
            let state = stat.rsplit(") ").next().and_then(|r| r.split(' ').next());
            let wchan = std::fs::read_to_string(p.join("wchan")).unwrap_or_default();
            out.push_str(&format!(
                "\n  thread {}: state {:?}, wchan {wchan:?}",
                t.file_name().to_string_lossy(),
                state.unwrap_or("?")
            ));
        }
    }
    out
}

/// Wait for the forked child `pid` (called `what` in messages) at most
/// `timeout`, and assert that it exited with status 0. On a timeout it is
/// killed and reaped, and the panic says where its threads were stuck.
pub fn wait_forked(pid: libc::pid_t, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "{what} (pid {pid}) failed: status {status:#x}"
            );
            return;
        }
        assert_eq!(r, 0, "waitpid: {}", std::io::Error::last_os_error());
        if Instant::now() > deadline {
            let states = thread_states(pid);
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("{what} (pid {pid}) still running after {timeout:?}:{states}");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Time `f` and fail if it took longer than `bound`.
pub fn bounded<T>(what: &str, bound: Duration, f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    let d = t.elapsed();
    assert!(d <= bound, "{what} took {d:?}, more than {bound:?}");
    (out, d)
}

// ---- deterministic randomness ----------------------------------------------------

/// xorshift64*: deterministic, no crates.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Seeded from the clock (printed by callers that want reproducibility).
    pub fn from_time() -> (Rng, u64) {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        (Rng::new(seed), seed)
    }

    /// Next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal deviate (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // (0, 1]
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

// ---- a parser for the Prometheus text format ---------------------------------------

/// Samples of a scrape: `(name, sorted labels) -> value`.
#[derive(Debug, Default)]
pub struct Scrape {
    samples: HashMap<(String, Vec<(String, String)>), f64>,
    /// `# TYPE` lines: family name -> type.
    pub types: HashMap<String, String>,
}

fn key(name: &str, labels: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    (name.to_string(), l)
}

impl Scrape {
    /// Parse a Prometheus text 0.0.4 page; panics on anything malformed or duplicated.
    pub fn parse(text: &str) -> Scrape {
        let mut s = Scrape::default();
        for (n, line) in text.lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.splitn(2, ' ');
                let name = it.next().unwrap_or_default().to_string();
                let ty = it.next().unwrap_or_default().to_string();
                assert!(
                    s.types.insert(name.clone(), ty).is_none(),
                    "line {}: second TYPE for {name}",
                    n + 1
                );
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (name, labels, value) = parse_sample(line)
                .unwrap_or_else(|| panic!("line {}: cannot parse {line:?}", n + 1));
            let mut labels = labels;
            labels.sort();
            let k = (name, labels);
            assert!(
                s.samples.insert(k.clone(), value).is_none(),
                "line {}: duplicate sample {k:?}",
                n + 1
            );
        }
        s
    }

    /// The value of a sample, if present.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples.get(&key(name, labels)).copied()
    }

    /// The value of a sample that must be present.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| {
            let similar: Vec<_> = self
                .samples
                .keys()
                .filter(|(n, _)| n == name)
                .take(10)
                .collect();
            panic!("no sample {name}{labels:?} in the scrape; samples of that name: {similar:?}")
        })
    }

    /// Every sample of metric `name`: (labels, value).
    pub fn series(&self, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        self.samples
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|((_, l), v)| (l.iter().cloned().collect(), *v))
            .collect()
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// `name{a="x",b="y"} value [timestamp]`
/// A parsed sample line: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

fn parse_sample(line: &str) -> Option<Sample> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let name = line[..i].to_string();
    let mut labels = Vec::new();
    if i < b.len() && b[i] == b'{' {
        i += 1;
        loop {
            if b.get(i) == Some(&b'}') {
                i += 1;
                break;
            }
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let lname = line[start..i].to_string();
            if lname.is_empty() || b.get(i) != Some(&b'=') || b.get(i + 1) != Some(&b'"') {
                return None;
            }
            i += 2;
            let mut value = Vec::new();
            loop {
                match *b.get(i)? {
                    b'"' => {
                        i += 1;
                        break;
                    }
                    b'\\' => {
                        value.push(match *b.get(i + 1)? {
                            b'\\' => b'\\',
                            b'"' => b'"',
                            b'n' => b'\n',
                            _ => return None,
                        });
                        i += 2;
                    }
                    c => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
            labels.push((lname, String::from_utf8(value).ok()?));
            match *b.get(i)? {
                b',' => i += 1,
                b'}' => {}
                _ => return None,
            }
        }
    }
    if b.get(i) != Some(&b' ') {
        return None;
    }
    let mut rest = line[i + 1..].split(' ');
    let value = parse_value(rest.next()?)?;
    if let Some(ts) = rest.next() {
        ts.parse::<i64>().ok()?;
    }
    if rest.next().is_some() {
        return None;
    }
    Some((name, labels, value))
}

/// The Prometheus text rendering of the whole area.
pub fn scrape(area: &promshm::Area) -> (Scrape, promshm::RenderStats) {
    let mut out = Vec::new();
    let stats = area
        .render(&mut out, promshm::Format::Prometheus)
        .expect("render");
    let text = String::from_utf8(out).expect("utf-8");
    (Scrape::parse(&text), stats)
}

impl Scrape {
    /// The value of the sample of `name` with `labels` plus a numeric label
    /// `num.0` (such as `le` or `quantile`) whose value parses to `num.1`.
    pub fn value_at(&self, name: &str, labels: &[(&str, &str)], num: (&str, f64)) -> f64 {
        let mut found = None;
        for (l, v) in self.series(name) {
            let Some(x) = l.get(num.0).and_then(|s| parse_value(s)) else {
                continue;
            };
            if x != num.1 || l.len() != labels.len() + 1 {
                continue;
            }
            if labels
                .iter()
                .all(|(k, val)| l.get(*k).map(String::as_str) == Some(*val))
            {
                assert!(found.is_none(), "two samples {name}{labels:?} {num:?}");
                found = Some(v);
            }
        }
        found.unwrap_or_else(|| panic!("no sample {name}{labels:?} with {}={}", num.0, num.1))
    }
}
