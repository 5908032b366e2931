//! Thousands of randomly corrupted or truncated area files: open and render
//! return errors or partial output with the bad records counted, never a
//! crash or an out-of-bounds read (invariant 6 of the design brief).
//!
//! A realistic area (every metric type, summaries with and without a window,
//! info, state set, every gauge mode, several label sets, records larger
//! than a page, a removed series, padding) is built once per test. Each
//! iteration copies its bytes, corrupts the copy with a seeded xorshift
//! generator, writes it to a fresh file and then:
//!
//! * opens it `ReadOnly`: `workers()`, `stats()`, `reap_dead_workers()`,
//!   render in both formats;
//! * opens it `ReadWrite`: the same, plus registering families and
//!   resolving, updating and creating series of every type.
//!
//! Every iteration runs under `catch_unwind` (a panic fails the test with
//! the seed) on a worker thread watched by the test thread (an iteration
//! that does not finish in `WATCHDOG` fails the test with the seed, so an
//! infinite loop cannot hang CI). A read outside the mapping would kill the
//! process with SIGSEGV/SIGBUS; set `PROMSHM_FUZZ_TRACE=1` to print every
//! seed to stderr before it runs, and `PROMSHM_FUZZ_SEED=0x...` to replay
//! one seed. `PROMSHM_FUZZ_ITERS=N` changes the number of iterations and
//! `PROMSHM_FUZZ_SALT=N` the seeds, e.g. for a long run:
//! `PROMSHM_FUZZ_ITERS=60000 PROMSHM_FUZZ_SALT=7 cargo test --release --test corruption fuzz_`.
//!
//! The header and record layout used to aim the corruption is the one of
//! `docs/FORMAT.md`; this file decodes the pristine bytes on its own.
//!
//! Out of scope (see `docs/FORMAT.md`): a file truncated *while* it is
//! mapped raises SIGBUS; here every file is corrupted before it is opened.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use promshm::{
    Area, AreaOptions, Error, Format, GaugeMode, OpenMode, Opts, RenderStats, SummaryOpts,
};

// ---- layout constants (docs/FORMAT.md) -----------------------------------------

const PAGE: usize = 4096;
const H_MAGIC: usize = 0;
const H_VERSION: usize = 8;
const H_PAGE_COUNT: usize = 20;
const H_INIT_STATE: usize = 28;
const H_MAX_WORKERS: usize = 32;
const H_DATA_OFFSET: usize = 44;
const H_CURSOR: usize = 48;
const H_LOCK: usize = 56;
const H_PID_NS: usize = 64;
/// End of the header fields in use.
const H_END: usize = 152;
/// Free list heads and tails (format 3): u32 head, u32 tail per class.
const H_FREE_LISTS: usize = 512;
const FREE_CLASSES: usize = 42;
/// Record fields of a free record: next hole, check word, freed-at stamp.
const FREE_NEXT: usize = 16;
const FREE_AT_MS: usize = 24;
const STATE_LIVE: u8 = 1;
const STATE_FREE: u8 = 3;
const WORKERS_OFFSET: usize = PAGE;
const SLOT_SIZE: usize = 64;

const KIND_FAMILY: u8 = 1;
const KIND_SERIES: u8 = 2;
const KIND_PADDING: u8 = 3;
const KIND_BLOB: u8 = 4;
const KIND_GAUGE_EXT: u8 = 5;

/// Pages and worker slots of the test area.
const PAGES: u32 = 64;
const MAX_WORKERS: u32 = 4;
/// Window of the windowed summary, and its age buckets.
const WINDOW_MS: u64 = 600_000;
const WINDOW_BUCKETS: u32 = 2;

/// What the iterations saw, printed at the end of each fuzz test.
static OPENED: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);
static WITH_BAD_RECORDS: AtomicU64 = AtomicU64::new(0);
static OP_ERRORS: AtomicU64 = AtomicU64::new(0);

/// What each fuzz worker thread is doing, for the watchdog's message.
static PHASES: Mutex<BTreeMap<String, &'static str>> = Mutex::new(BTreeMap::new());

fn phase(p: &'static str) {
    if let Some(name) = std::thread::current().name() {
        if let Ok(mut m) = PHASES.lock() {
            m.insert(name.to_string(), p);
        }
    }
}

/// An iteration that takes longer than this is taken for an infinite loop.
const WATCHDOG: Duration = Duration::from_secs(20);

// ---- deterministic randomness ---------------------------------------------------

/// xorshift64*: deterministic, no crates.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// True with probability `pct` %.
    fn pct(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}

fn seed_of(base: u64, i: u64) -> u64 {
    base ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03)
}

// ---- reading the pristine bytes --------------------------------------------------

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64le(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    if at + 4 <= b.len() {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    if at + 8 <= b.len() {
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
}

#[derive(Debug, Clone, Copy)]
struct Rec {
    off: usize,
    kind: u8,
    state: u8,
    len: usize,
}

/// The pristine area, decoded by this test, and where to aim corruption.
struct Base {
    /// Keeps this process attached (slot 0 holds our identity) while the test runs.
    _area: Area,
    dir: PathBuf,
    bytes: Vec<u8>,
    records: Vec<Rec>,
    /// `(byte offset, record index or usize::MAX for the header/worker table)`
    /// of lengths, counts, offsets, tags and fixed fields.
    hot: Vec<(usize, usize)>,
    /// Family record offset -> stored (base) name.
    family_names: HashMap<usize, String>,
    /// Series record offset -> family record offset.
    series_family: HashMap<usize, usize>,
    /// Blob record offset -> offsets of the info families whose series point at it.
    blob_users: HashMap<usize, Vec<usize>>,
    /// Gauge extension record offset -> its owner series' family record offset.
    ext_family: HashMap<usize, usize>,
}

fn walk_pristine(bytes: &[u8]) -> Vec<Rec> {
    let mut off = u32le(bytes, H_DATA_OFFSET) as usize;
    let cursor = u64le(bytes, H_CURSOR) as usize;
    let mut out = Vec::new();
    while off + 8 <= cursor {
        let tag = u32le(bytes, off);
        let len = u32le(bytes, off + 4) as usize;
        assert!(len >= 8 && len % 8 == 0, "pristine record at {off}");
        out.push(Rec {
            off,
            kind: tag as u8,
            state: (tag >> 8) as u8,
            len,
        });
        off += len;
    }
    out
}

/// Positions of the u32-length-prefixed strings starting at `at`; returns the strings too.
fn strings_at(bytes: &[u8], mut at: usize, n: usize) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let len = u32le(bytes, at) as usize;
        let s = String::from_utf8(bytes[at + 4..at + 4 + len].to_vec()).unwrap();
        out.push((at, s));
        at += 4 + len;
    }
    out
}

impl Base {
    fn new(tag: &str) -> Base {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("corruption-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("base.promshm");
        let area = build_area(&path);
        let mut bytes = std::fs::read(&path).unwrap();
        let records = walk_pristine(&bytes);
        // Holes freed long ago: a new record may take them at once (no
        // grace period left), which the free list fuzzer relies on.
        for r in &records {
            if r.state == STATE_FREE {
                put_u64(&mut bytes, r.off + FREE_AT_MS, 1);
            }
        }

        let mut hot: Vec<(usize, usize)> = Vec::new();
        for at in (0..H_END).step_by(4) {
            hot.push((at, usize::MAX));
        }
        for s in 0..MAX_WORKERS as usize {
            for f in (0..SLOT_SIZE).step_by(4) {
                hot.push((WORKERS_OFFSET + s * SLOT_SIZE + f, usize::MAX));
            }
        }
        let mut family_names = HashMap::new();
        let mut family_labels = HashMap::new();
        let mut family_type = HashMap::new();
        let mut series_family = HashMap::new();
        let mut blob_users: HashMap<usize, Vec<usize>> = HashMap::new();
        for c in 0..2 * FREE_CLASSES {
            hot.push((H_FREE_LISTS + 4 * c, usize::MAX));
        }
        for (i, r) in records.iter().enumerate() {
            hot.push((r.off, i));
            hot.push((r.off + 4, i));
            if r.state != STATE_LIVE {
                // A hole (or a removed record): generation and free fields.
                for f in [8, 16, 20, 24] {
                    hot.push((r.off + f, i));
                }
                continue;
            }
            match r.kind {
                KIND_FAMILY => {
                    for f in [8, 16, 17, 18, 19, 20, 22, 24, 28, 32] {
                        hot.push((r.off + f, i));
                    }
                    let n_labels = bytes[r.off + 19] as usize;
                    let n_params = u16::from_le_bytes([bytes[r.off + 20], bytes[r.off + 21]]);
                    let n_states = u16::from_le_bytes([bytes[r.off + 22], bytes[r.off + 23]]);
                    let strings = strings_at(
                        &bytes,
                        r.off + 40 + 8 * n_params as usize,
                        3 + n_labels + n_states as usize,
                    );
                    for (at, _) in &strings {
                        hot.push((*at, i));
                    }
                    family_names.insert(r.off, strings[0].1.clone());
                    family_labels.insert(r.off, n_labels);
                    family_type.insert(r.off, bytes[r.off + 16]);
                }
                KIND_SERIES => {
                    for f in [8, 16, 20, 24, 32, 40] {
                        hot.push((r.off + f, i));
                    }
                    let fam = u32le(&bytes, r.off + 16) as usize;
                    let n_cells = u32le(&bytes, r.off + 20) as usize;
                    series_family.insert(r.off, fam);
                    for (at, _) in strings_at(&bytes, r.off + 40 + 8 * n_cells, family_labels[&fam])
                    {
                        hot.push((at, i));
                    }
                    if family_type[&fam] == 2 {
                        // A gauge's link word and inline entries' tag words.
                        for f in [56, 64, 80] {
                            hot.push((r.off + f, i));
                        }
                    }
                    if family_type[&fam] == 5 {
                        // The info cell: blob offset, low 32 bits.
                        let blob = u32le(&bytes, r.off + 40) as usize;
                        blob_users.entry(blob).or_default().push(fam);
                    }
                }
                KIND_BLOB => {
                    hot.push((r.off + 8, i));
                    hot.push((r.off + 16, i));
                    let n = u32le(&bytes, r.off + 16) as usize;
                    for (at, _) in strings_at(&bytes, r.off + 24, 2 * n) {
                        hot.push((at, i));
                    }
                }
                KIND_GAUGE_EXT => {
                    // Owner, entries, owner generation, link, first tag.
                    for f in [8, 16, 20, 24, 32, 40] {
                        hot.push((r.off + f, i));
                    }
                }
                _ => {}
            }
        }
        let ext_family: HashMap<usize, usize> = records
            .iter()
            .filter(|r| r.kind == KIND_GAUGE_EXT && r.state == STATE_LIVE)
            .map(|r| (r.off, series_family[&(u32le(&bytes, r.off + 16) as usize)]))
            .collect();
        assert_eq!(ext_family.len(), 1, "the base has one gauge extension");
        Base {
            _area: area,
            dir,
            bytes,
            records,
            hot,
            family_names,
            series_family,
            blob_users,
            ext_family,
        }
    }
}

impl Drop for Base {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The realistic area every iteration starts from.
fn build_area(path: &Path) -> Area {
    let options = AreaOptions {
        pages: PAGES,
        max_workers: MAX_WORKERS,
        eager: false,
    };
    let area = Area::create(path, &options).unwrap();
    let reg = area.registry();

    let requests = reg
        .counter(
            Opts::new("http_requests", "Requests by path and status.").labels(&["path", "status"]),
        )
        .unwrap();
    for (i, (p, s)) in [("/", "200"), ("/api", "500"), ("/x\"y\\z\n", "404")]
        .iter()
        .enumerate()
    {
        let c = requests.labels(&[p, s]).unwrap();
        for _ in 0..=7 * i {
            c.inc();
        }
        c.add(0.5).unwrap();
    }
    requests.labels(&["/gone", "410"]).unwrap().inc();
    assert!(requests.remove(&["/gone", "410"]).unwrap());
    // Holes of several sizes, in several free lists (format 3).
    let scratch = reg
        .gauge(
            Opts::new("scratch", "Removed again.").labels(&["n"]),
            GaugeMode::Sum,
        )
        .unwrap();
    for n in 0..6 {
        scratch.labels(&[&"x".repeat(n * 40)]).unwrap().set(1.0);
    }
    for n in [0, 2, 3, 5] {
        assert!(scratch.remove(&[&"x".repeat(n * 40)]).unwrap());
    }
    for n in 0..5 {
        requests.labels(&["/tmp", &n.to_string()]).unwrap().inc();
        assert!(requests.remove(&["/tmp", &n.to_string()]).unwrap());
    }

    let jobs = reg
        .counter(Opts::new("jobs_total", "Jobs done.").eager(true))
        .unwrap();
    jobs.get().unwrap().add(42.0).unwrap();

    for (k, mode) in [
        GaugeMode::Sum,
        GaugeMode::LiveSum,
        GaugeMode::Max,
        GaugeMode::Min,
        GaugeMode::MostRecent,
        GaugeMode::All,
    ]
    .into_iter()
    .enumerate()
    {
        let g = reg
            .gauge(
                Opts::new(format!("temp_{}_mode", mode.as_str()), "A gauge.").labels(&["shard"]),
                mode,
            )
            .unwrap();
        g.labels(&["a"]).unwrap().set(1.5 + k as f64);
        g.labels(&["b"]).unwrap().set(-2.25);
    }

    let latency = reg
        .histogram(
            Opts::new("latency", "Latency.")
                .unit("seconds")
                .labels(&["method"]),
            &[0.1, 0.5, 1.0, 5.0],
        )
        .unwrap();
    for (m, obs) in [
        ("get", &[0.05, 0.2, 0.7, 3.0, 9.0][..]),
        ("post", &[0.3][..]),
    ] {
        let h = latency.labels(&[m]).unwrap();
        for &v in obs {
            h.observe(v).unwrap();
        }
    }

    let payload = reg
        .summary(
            Opts::new("payload", "Payload sizes.")
                .unit("bytes")
                .labels(&["op"]),
            &SummaryOpts::quantiles(&[0.5, 0.9, 0.99]),
        )
        .unwrap();
    for (op, n) in [("read", 100), ("write", 3)] {
        let s = payload.labels(&[op]).unwrap();
        for i in 0..n {
            s.observe(f64::from(i) * 10.0).unwrap();
        }
    }
    let windowed = reg
        .summary(
            Opts::new("window_latency", "Windowed latency.").labels(&["op"]),
            &SummaryOpts::quantiles(&[0.5, 0.99])
                .window(Duration::from_millis(WINDOW_MS), WINDOW_BUCKETS),
        )
        .unwrap();
    let w = windowed.labels(&["read"]).unwrap();
    for v in [0.01, 0.02, 0.5] {
        w.observe(v).unwrap();
    }

    let build = reg.info(Opts::new("build", "Build information.")).unwrap();
    let b = build.get().unwrap();
    b.set(&[("version", "1.2.2")]).unwrap();
    b.set(&[("version", "1.2.3"), ("commit", "abc")]).unwrap();
    let component = reg
        .info(Opts::new("component", "Components.").labels(&["name"]))
        .unwrap();
    for (n, v) in [("db", "pg16"), ("cache", "redis7")] {
        component
            .labels(&[n])
            .unwrap()
            .set(&[("engine", v)])
            .unwrap();
    }

    let mode = reg
        .state_set(
            Opts::new("unit_state", "Unit state.").labels(&["unit"]),
            &["starting", "running", "stopped"],
        )
        .unwrap();
    mode.labels(&["web"]).unwrap().set("running").unwrap();
    mode.labels(&["db"]).unwrap().set("stopped").unwrap();

    // A family record larger than a page.
    let big = reg
        .gauge(Opts::new("big_help", "h".repeat(6000)), GaugeMode::Sum)
        .unwrap();
    big.get().unwrap().set(7.0);

    let app = area
        .registry()
        .with_prefix("app")
        .unwrap()
        .with_const_labels(&[("env", "prod")])
        .unwrap();
    let hits = app
        .counter(Opts::new("hits", "Hits.").labels(&["route"]))
        .unwrap();
    hits.labels(&["/a"]).unwrap().inc();
    hits.labels(&["/b"]).unwrap().add(2.0).unwrap();

    // A gauge series with an extension record (format 4): the entries of
    // two other slots fill its inline ones, so this process's first write
    // links an extension.
    let c = chained(&reg).labels(&[CHAIN_LABEL]).unwrap();
    fake_inline_writers(path, CHAIN_LABEL);
    c.set(4.0);

    promshm::flush();
    area
}

/// The label value of the gauge series with an extension.
const CHAIN_LABEL: &str = "chain-series";

fn chained(reg: &promshm::Registry) -> promshm::Family<promshm::Gauge> {
    reg.gauge(
        Opts::new("chained", "Linked entries.").labels(&["k"]),
        GaugeMode::Sum,
    )
    .unwrap()
}

/// Write, through the file, entries of slots 1 and 2 (value 1, written)
/// into both inline entries of the gauge series labelled `label` (7 cells:
/// retained pair, link, two entries of `[slot + 1 << 48 | stamp, value]`).
fn fake_inline_writers(path: &Path, label: &str) {
    use std::os::unix::fs::FileExt;
    let bytes = std::fs::read(path).unwrap();
    let mut needle = (label.len() as u32).to_le_bytes().to_vec();
    needle.extend_from_slice(label.as_bytes());
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .expect("the chained series");
    let off = at - 40 - 7 * 8;
    assert_eq!(
        u32le(&bytes, off),
        u32::from(KIND_SERIES) | (u32::from(STATE_LIVE) << 8)
    );
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    for (i, slot) in [1u64, 2].into_iter().enumerate() {
        let e = off + 40 + 8 * (3 + 2 * i);
        let words = [((slot + 1) << 48) | 1, 1.0f64.to_bits()];
        for (j, w) in words.iter().enumerate() {
            file.write_all_at(&w.to_le_bytes(), (e + 8 * j) as u64)
                .unwrap();
        }
    }
}

// ---- corruption ------------------------------------------------------------------

fn interesting_u32(rng: &mut Rng, current: u32, file_len: usize) -> u32 {
    let specials = [
        0,
        1,
        2,
        3,
        7,
        8,
        9,
        0xff,
        0x100,
        0x101,
        0x102,
        0x201,
        0x301,
        64,
        65,
        1024,
        1025,
        16 * 1024,
        16 * 1024 + 1,
        PAGE as u32 - 8,
        PAGE as u32,
        PAGE as u32 + 8,
        file_len as u32,
        (file_len as u32).wrapping_sub(8),
        (file_len as u32).wrapping_add(8),
        0x7fff_ffff,
        0x8000_0000,
        0xffff_fff8,
        0xffff_ffff,
    ];
    match rng.below(4) {
        0 => rng.next() as u32,
        1 => current
            .wrapping_add(8 * (rng.below(9) as u32))
            .wrapping_sub(32),
        2 => current ^ (1 << rng.below(32)),
        _ => *rng.pick(&specials),
    }
}

/// Apply one random corruption to `buf`; describe it in `log`.
fn corrupt_once(rng: &mut Rng, base: &Base, buf: &mut Vec<u8>, log: &mut Vec<String>) {
    if buf.is_empty() {
        return;
    }
    let len = buf.len();
    match rng.below(100) {
        // A bit anywhere.
        0..=9 => {
            let at = rng.below(len);
            let bit = rng.below(8);
            buf[at] ^= 1 << bit;
            log.push(format!("flip bit {bit} at {at}"));
        }
        // A bit in the header fields.
        10..=19 => {
            let at = rng.below(H_END.min(len));
            let bit = rng.below(8);
            buf[at] ^= 1 << bit;
            log.push(format!("flip header bit {bit} at {at}"));
        }
        // A byte of a length, count, offset, tag or fixed field.
        20..=39 => {
            let (at, _) = *rng.pick(&base.hot);
            let at = at + rng.below(4);
            if at < len {
                let v = match rng.below(3) {
                    0 => 0,
                    1 => 0xff,
                    _ => rng.next() as u8,
                };
                buf[at] = v;
                log.push(format!("byte {v:#x} at {at}"));
            }
        }
        // A whole u32 field set to an interesting value.
        40..=54 => {
            let (at, _) = *rng.pick(&base.hot);
            if at + 4 <= len {
                let v = interesting_u32(rng, u32le(buf, at), len);
                put_u32(buf, at, v);
                log.push(format!("u32 {v:#x} at {at}"));
            }
        }
        // A range overwritten with 0x00, 0xFF or random bytes.
        55..=64 => {
            let start = match rng.pick(&base.records).off {
                off if off < len && rng.pct(50) => off,
                _ => rng.below(len),
            };
            let n = match rng.below(4) {
                0 => 1 + rng.below(8),
                1 => 1 + rng.below(64),
                2 => 1 + rng.below(PAGE),
                _ => 1 + rng.below(3 * PAGE),
            };
            let end = (start + n).min(len);
            let how = rng.below(3);
            match how {
                0 => buf[start..end].fill(0),
                1 => buf[start..end].fill(0xff),
                _ => rng.fill(&mut buf[start..end]),
            }
            log.push(format!(
                "fill {start}..{end} with {}",
                ["0x00", "0xFF", "random"][how]
            ));
        }
        // Truncate.
        65..=72 => {
            let new_len = match rng.below(5) {
                0 => rng.below(len),
                1 => rng.below(3 * PAGE),
                2 => PAGE * rng.below(len / PAGE + 1),
                3 if len > 3 * PAGE => 3 * PAGE + rng.below(len - 3 * PAGE),
                _ => len - 1 - rng.below(PAGE.min(len)),
            }
            .min(len);
            buf.truncate(new_len);
            log.push(format!("truncate to {new_len}"));
        }
        // Extend.
        73..=77 => {
            let n = match rng.below(3) {
                0 => 1 + rng.below(PAGE),
                1 => PAGE * (1 + rng.below(4)),
                _ => PAGE * (1 + rng.below(4)) + 1 + rng.below(PAGE - 1),
            };
            let at = buf.len();
            buf.resize(at + n, 0);
            if rng.pct(50) {
                rng.fill(&mut buf[at..]);
            }
            log.push(format!("extend by {n}"));
        }
        // Header fields the library updates: cursor, lock, init state, layout, stats.
        78..=89 => {
            if len < H_END {
                return;
            }
            let data = u32le(&base.bytes, H_DATA_OFFSET) as u64;
            let cursor = u64le(&base.bytes, H_CURSOR);
            let field = rng.below(9);
            match field {
                0 => {
                    let v = match rng.below(8) {
                        0 => rng.next(),
                        1 => 0,
                        2 => data,
                        3 => data - 8,
                        4 => cursor + 1 + rng.below(7) as u64,
                        5 => len as u64 + 8 * rng.below(4) as u64,
                        6 => cursor.wrapping_sub(8 * (1 + rng.below(2000)) as u64),
                        _ => u64::MAX,
                    };
                    put_u64(buf, H_CURSOR, v);
                    log.push(format!("cursor = {v:#x}"));
                }
                1 => {
                    let pid = std::process::id() as u64;
                    let v = match rng.below(5) {
                        0 => rng.next(),
                        1 => u64::MAX,
                        2 => 0xffff_ffff,
                        3 => pid | (rng.next() << 32),
                        _ => 1 | (rng.next() << 32),
                    };
                    put_u64(buf, H_LOCK, v);
                    log.push(format!("lock = {v:#x}"));
                }
                2 => {
                    let v = interesting_u32(rng, u32le(buf, H_INIT_STATE), len);
                    put_u32(buf, H_INIT_STATE, v);
                    log.push(format!("init_state = {v:#x}"));
                }
                3 => {
                    let v = interesting_u32(rng, u32le(buf, H_PAGE_COUNT), len);
                    put_u32(buf, H_PAGE_COUNT, v);
                    log.push(format!("page_count = {v:#x}"));
                }
                4 => {
                    let v = interesting_u32(rng, u32le(buf, H_MAX_WORKERS), len);
                    put_u32(buf, H_MAX_WORKERS, v);
                    log.push(format!("max_workers = {v:#x}"));
                }
                5 => {
                    let at = *rng.pick(&[40usize, 44, 12, 16, 24, 8]);
                    let v = interesting_u32(rng, u32le(buf, at), len);
                    put_u32(buf, at, v);
                    log.push(format!("header u32 at {at} = {v:#x}"));
                }
                6 => {
                    let v = rng.next();
                    put_u64(buf, H_PID_NS, v);
                    log.push(format!("pid_ns = {v:#x}"));
                }
                7 => {
                    let at = 72 + 8 * rng.below((H_END - 72) / 8);
                    let v = if rng.pct(50) { u64::MAX } else { rng.next() };
                    put_u64(buf, at, v);
                    log.push(format!("stat at {at} = {v:#x}"));
                }
                _ => {
                    put_u64(buf, H_MAGIC, rng.next());
                    log.push("magic = random".into());
                }
            }
        }
        // Worker slots.
        _ => {
            let slot = rng.below(MAX_WORKERS as usize);
            let at = WORKERS_OFFSET + slot * SLOT_SIZE;
            if at + SLOT_SIZE > len {
                return;
            }
            match rng.below(4) {
                0 => {
                    rng.fill(&mut buf[at..at + SLOT_SIZE]);
                    log.push(format!("slot {slot} random"));
                }
                1 => {
                    // A "live" slot of a process that does not exist (or never did).
                    put_u32(buf, at, 1);
                    let id = match rng.below(3) {
                        0 => rng.next(),
                        1 => 0xffff_ffff | (rng.next() << 32),
                        _ => 1 | (rng.next() << 32),
                    };
                    put_u64(buf, at + 8, id);
                    let ns = if rng.pct(70) {
                        u64le(&base.bytes, H_PID_NS)
                    } else {
                        rng.next()
                    };
                    put_u64(buf, at + 16, ns);
                    log.push(format!("slot {slot} live with identity {id:#x}"));
                }
                2 => {
                    let v = interesting_u32(rng, u32le(buf, at), len);
                    put_u32(buf, at, v);
                    log.push(format!("slot {slot} state = {v:#x}"));
                }
                _ => {
                    let f = 8 * rng.below(SLOT_SIZE / 8);
                    let v = rng.next();
                    put_u64(buf, at + f, v);
                    log.push(format!("slot {slot} field {f} = {v:#x}"));
                }
            }
        }
    }
}

/// A lock word held by a process we cannot judge (the header's pid namespace
/// is not ours) is waited for up to the lock timeout (10 s) by design: a
/// fuzz iteration that produced one frees it so that every iteration stays
/// fast. The takeover from dead holders is still exercised whenever the
/// namespace field is intact.
fn keep_lock_judgeable(base: &Base, buf: &mut [u8], log: &mut Vec<String>) {
    if buf.len() >= H_END
        && u64le(buf, H_LOCK) != 0
        && u64le(buf, H_PID_NS) != u64le(&base.bytes, H_PID_NS)
    {
        put_u64(buf, H_LOCK, 0);
        log.push("(lock word cleared: foreign pid namespace)".into());
    }
}

// ---- exercising an area ----------------------------------------------------------

fn render_both(area: &Area) -> Vec<(Format, String, RenderStats)> {
    [Format::Prometheus, Format::OpenMetrics]
        .into_iter()
        .map(|f| {
            let mut out = Vec::new();
            let stats = area
                .render(&mut out, f)
                .unwrap_or_else(|e| panic!("render {f:?} failed: {e}"));
            let text = String::from_utf8(out).expect("rendered output is UTF-8");
            if f == Format::OpenMetrics {
                assert!(
                    text.ends_with("# EOF\n"),
                    "OpenMetrics output without # EOF"
                );
            }
            if stats.bad_records > 0 {
                WITH_BAD_RECORDS.fetch_add(1, Ordering::Relaxed);
            }
            (f, text, stats)
        })
        .collect()
}

/// Render without self-metrics (they change from render to render).
fn render_plain(area: &Area, f: Format) -> (String, RenderStats) {
    let mut out = Vec::new();
    let stats = area
        .registry()
        .without_self_metrics()
        .render(&mut out, f)
        .unwrap_or_else(|e| panic!("render {f:?} failed: {e}"));
    if stats.bad_records > 0 {
        WITH_BAD_RECORDS.fetch_add(1, Ordering::Relaxed);
    }
    (String::from_utf8(out).unwrap(), stats)
}

fn check_open_error(e: &Error, len: usize) {
    REFUSED.fetch_add(1, Ordering::Relaxed);
    let msg = e.to_string();
    assert!(!msg.is_empty());
    assert!(
        matches!(e, Error::IncompatibleArea(_) | Error::CorruptArea(_)),
        "open of a damaged file ({len} bytes) failed with an unexpected error: {e:?}"
    );
    if len < 3 * PAGE {
        assert!(
            matches!(e, Error::IncompatibleArea(_)),
            "a file of {len} bytes must be IncompatibleArea, got {e:?}"
        );
    }
}

/// An operation on a damaged area may fail, but with a real message.
fn tolerate<T>(what: &str, r: promshm::Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            OP_ERRORS.fetch_add(1, Ordering::Relaxed);
            assert!(!e.to_string().is_empty(), "{what}: empty error message");
            None
        }
    }
}

fn exercise_read_only(path: &Path, len: usize) -> Option<Area> {
    phase("open read-only");
    match Area::open(path, OpenMode::ReadOnly) {
        Ok(area) => {
            OPENED.fetch_add(1, Ordering::Relaxed);
            assert!(area.is_read_only());
            phase("read-only: workers, stats, reap");
            let _ = area.workers();
            let stats = area.stats();
            assert!(stats.pages_used <= stats.pages_total);
            assert_eq!(
                area.reap_dead_workers().unwrap(),
                0,
                "read-only reaps nothing"
            );
            phase("read-only: render");
            render_both(&area);
            Some(area)
        }
        Err(e) => {
            check_open_error(&e, len);
            None
        }
    }
}

fn exercise_read_write(path: &Path, len: usize) {
    phase("open read-write");
    let area = match Area::open(path, OpenMode::ReadWrite) {
        Ok(area) => {
            OPENED.fetch_add(1, Ordering::Relaxed);
            area
        }
        Err(e) => {
            check_open_error(&e, len);
            return;
        }
    };
    phase("read-write: workers, stats, reap");
    let _ = area.workers();
    let _ = area.stats();
    tolerate("reap", area.reap_dead_workers());
    phase("read-write: counters");
    let reg = area.registry();
    // Every family touched is cleared at the end (after the render): one more
    // lock-taking, record-walking operation on the damaged area.
    let mut clears: Vec<Box<dyn FnOnce()>> = Vec::new();
    // Existing families (same shape as the base) and new ones; eager so that
    // nothing is left in thread-local buffers pointing at this mapping.
    if let Some(f) = tolerate(
        "counter",
        reg.counter(
            Opts::new("http_requests", "Requests by path and status.")
                .labels(&["path", "status"])
                .eager(true),
        ),
    ) {
        let g = f.clone();
        clears.push(Box::new(move || drop(g.clear())));
        if let Some(c) = tolerate("resolve", f.labels(&["/", "200"])) {
            c.inc();
            let _ = c.get();
        }
        if let Some(c) = tolerate("create", f.labels(&["/fuzz", "599"])) {
            c.add(2.0).unwrap();
        }
        tolerate("remove", f.remove(&["/api", "500"]));
    }
    if let Some(f) = tolerate(
        "new counter",
        reg.counter(Opts::new("fuzz_new", "New.").eager(true)),
    ) {
        let g = f.clone();
        clears.push(Box::new(move || drop(g.clear())));
        if let Some(c) = tolerate("get", f.get()) {
            c.inc();
        }
    }
    phase("read-write: gauges");
    for mode in [GaugeMode::Max, GaugeMode::All, GaugeMode::LiveSum] {
        if let Some(f) = tolerate(
            "gauge",
            reg.gauge(
                Opts::new(format!("temp_{}_mode", mode.as_str()), "A gauge.").labels(&["shard"]),
                mode,
            ),
        ) {
            let g = f.clone();
            clears.push(Box::new(move || drop(g.clear())));
            if let Some(g) = tolerate("gauge series", f.labels(&["a"])) {
                g.set(3.0);
                g.inc();
                let _ = g.get();
            }
        }
    }
    if let Some(f) = tolerate(
        "chained gauge",
        reg.gauge(
            Opts::new("chained", "Linked entries.").labels(&["k"]),
            GaugeMode::Sum,
        ),
    ) {
        let g = f.clone();
        clears.push(Box::new(move || drop(g.clear())));
        // A fresh handle: finds (or claims) its entry through the chain.
        if let Some(g) = tolerate("chained series", f.labels(&[CHAIN_LABEL])) {
            g.set(2.0);
            g.inc();
            let _ = g.get();
        }
    }
    phase("read-write: histogram, summaries");
    if let Some(f) = tolerate(
        "histogram",
        reg.histogram(
            Opts::new("latency", "Latency.")
                .unit("seconds")
                .labels(&["method"])
                .eager(true),
            &[0.1, 0.5, 1.0, 5.0],
        ),
    ) {
        let g = f.clone();
        clears.push(Box::new(move || drop(g.clear())));
        if let Some(h) = tolerate("histogram series", f.labels(&["get"])) {
            h.observe(0.3).unwrap();
            let _ = h.get();
        }
    }
    for (name, window) in [("payload", false), ("window_latency", true)] {
        let (opts, so) = if window {
            (
                Opts::new(name, "Windowed latency.").labels(&["op"]),
                SummaryOpts::quantiles(&[0.5, 0.99])
                    .window(Duration::from_millis(WINDOW_MS), WINDOW_BUCKETS),
            )
        } else {
            (
                Opts::new(name, "Payload sizes.")
                    .unit("bytes")
                    .labels(&["op"]),
                SummaryOpts::quantiles(&[0.5, 0.9, 0.99]),
            )
        };
        if let Some(f) = tolerate("summary", reg.summary(opts, &so)) {
            let g = f.clone();
            clears.push(Box::new(move || drop(g.clear())));
            if let Some(s) = tolerate("summary series", f.labels(&["read"])) {
                s.observe(12.5).unwrap();
                let _ = s.get();
                let _ = s.quantiles(&[0.5]);
            }
        }
    }
    phase("read-write: info, stateset");
    if let Some(f) = tolerate(
        "info",
        reg.info(Opts::new("component", "Components.").labels(&["name"])),
    ) {
        let g = f.clone();
        clears.push(Box::new(move || drop(g.clear())));
        if let Some(i) = tolerate("info series", f.labels(&["db"])) {
            let _ = i.get();
            tolerate("info set", i.set(&[("engine", "pg17")]));
        }
    }
    if let Some(f) = tolerate(
        "stateset",
        reg.state_set(
            Opts::new("unit_state", "Unit state.").labels(&["unit"]),
            &["starting", "running", "stopped"],
        ),
    ) {
        let g = f.clone();
        clears.push(Box::new(move || drop(g.clear())));
        if let Some(s) = tolerate("stateset series", f.labels(&["web"])) {
            let _ = s.get();
            tolerate("stateset set", s.set("starting"));
        }
    }
    phase("read-write: render");
    render_both(&area);
    let _ = area.workers();
    let _ = area.stats();
    phase("read-write: clear");
    for clear in clears {
        clear();
    }
    phase("done");
}

// ---- comparing renders -----------------------------------------------------------

/// Output lines grouped by the family name of their `# HELP`/`# TYPE`/`# UNIT` lines.
fn blocks(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if line == "# EOF" {
            continue;
        }
        if let Some(rest) = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
            .or_else(|| line.strip_prefix("# UNIT "))
        {
            let name = rest.split(' ').next().unwrap_or("");
            if name != current {
                current = name.to_string();
            }
        }
        out.entry(current.clone())
            .or_default()
            .push(line.to_string());
    }
    out
}

/// Whether an output block name is the block of the family stored as `base`.
fn is_block_of(block: &str, base: &str) -> bool {
    block == base
        || block.strip_suffix("_total") == Some(base)
        || block.strip_suffix("_info") == Some(base)
}

/// Renders of the pristine area, redone when the windowed summary rotates.
struct Pristine {
    epoch: u64,
    renders: Vec<(Format, String)>,
}

fn window_epoch() -> u64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    ms / (WINDOW_MS / u64::from(WINDOW_BUCKETS))
}

fn pristine_renders(base: &Base, cache: &mut Option<Pristine>) -> Vec<(Format, String)> {
    let epoch = window_epoch();
    if cache.as_ref().map(|p| p.epoch) != Some(epoch) {
        let path = base.dir.join("pristine.promshm");
        std::fs::write(&path, &base.bytes).unwrap();
        let area = Area::open(&path, OpenMode::ReadOnly).unwrap();
        let renders = [Format::Prometheus, Format::OpenMetrics]
            .into_iter()
            .map(|f| {
                let (text, stats) = render_plain(&area, f);
                assert_eq!(stats.bad_records, 0, "the pristine area has no bad record");
                (f, text)
            })
            .collect();
        *cache = Some(Pristine { epoch, renders });
    }
    cache.as_ref().unwrap().renders.clone()
}

// ---- the fuzz loops --------------------------------------------------------------

fn iterations(default: u64) -> u64 {
    std::env::var("PROMSHM_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn replay_seed() -> Option<u64> {
    let s = std::env::var("PROMSHM_FUZZ_SEED").ok()?;
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Run `body(base, seed, state)` for `iters` seeds on a worker thread under
/// `catch_unwind`, with a watchdog; fail with the seeds that panicked or hung.
fn fuzz<S: Default + 'static>(
    tag: &'static str,
    base_seed: u64,
    iters: u64,
    body: fn(&Base, u64, &mut S),
) {
    // PROMSHM_FUZZ_SALT explores other seeds (e.g. in a long release run).
    let base_seed = base_seed
        ^ std::env::var("PROMSHM_FUZZ_SALT")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .map_or(0, |s| s.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let seeds: Vec<u64> = match replay_seed() {
        Some(s) => vec![s],
        None => (0..iters).map(|i| seed_of(base_seed, i)).collect(),
    };
    let n = seeds.len();
    let current = Arc::new(AtomicU64::new(0));
    let done_count = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let failures: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let trace = std::env::var_os("PROMSHM_FUZZ_TRACE").is_some();
    let started = Instant::now();
    let worker = {
        let (current, done_count, finished, failures) = (
            current.clone(),
            done_count.clone(),
            finished.clone(),
            failures.clone(),
        );
        std::thread::Builder::new()
            .name(format!("fuzz-{tag}"))
            .spawn(move || {
                let base = Base::new(tag);
                let mut state = S::default();
                for seed in seeds {
                    current.store(seed, Ordering::SeqCst);
                    if trace {
                        let _ = writeln!(std::io::stderr(), "{tag}: seed {seed:#x}");
                    }
                    let r = catch_unwind(AssertUnwindSafe(|| body(&base, seed, &mut state)));
                    if let Err(p) = r {
                        let msg = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "(non-string panic)".into());
                        let mut f = failures.lock().unwrap();
                        f.push(format!(
                            "seed {seed:#x} panicked: {msg}\n  replay: PROMSHM_FUZZ_SEED={seed:#x} cargo test --test corruption {tag}"
                        ));
                        if f.len() >= 5 {
                            break;
                        }
                    }
                    done_count.fetch_add(1, Ordering::SeqCst);
                }
                finished.store(true, Ordering::SeqCst);
            })
            .unwrap()
    };
    let mut last = (u64::MAX, Instant::now());
    while !finished.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
        let d = done_count.load(Ordering::SeqCst);
        if d != last.0 {
            last = (d, Instant::now());
        } else if last.1.elapsed() > WATCHDOG {
            let seed = current.load(Ordering::SeqCst);
            let at = PHASES
                .lock()
                .ok()
                .and_then(|m| m.get(&format!("fuzz-{tag}")).copied())
                .unwrap_or("?");
            panic!(
                "{tag}: seed {seed:#x} did not finish within {WATCHDOG:?} (infinite loop?), stuck in {at:?}\n  replay: PROMSHM_FUZZ_SEED={seed:#x} cargo test --test corruption {tag}"
            );
        }
    }
    worker.join().expect("fuzz worker");
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{tag}: {} failing seed(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{tag}: {} iterations in {:.1?} (both tests so far: {} opens, {} refused, \
         {} renders with bad records, {} operations failed cleanly)",
        done_count.load(Ordering::SeqCst),
        started.elapsed(),
        OPENED.load(Ordering::Relaxed),
        REFUSED.load(Ordering::Relaxed),
        WITH_BAD_RECORDS.load(Ordering::Relaxed),
        OP_ERRORS.load(Ordering::Relaxed),
    );
    assert_eq!(done_count.load(Ordering::SeqCst), n as u64);
}

/// Write `bytes` to a fresh file (never one that is still mapped).
fn fresh_file(base: &Base, seed: u64, bytes: &[u8]) -> PathBuf {
    let path = base.dir.join(format!("{seed:016x}.promshm"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Random corruption anywhere: header, worker table, records, size.
fn random_iteration(base: &Base, seed: u64, _: &mut ()) {
    let mut rng = Rng::new(seed);
    let mut buf = base.bytes.clone();
    let mut log = Vec::new();
    for _ in 0..1 + rng.below(4) {
        corrupt_once(&mut rng, base, &mut buf, &mut log);
    }
    keep_lock_judgeable(base, &mut buf, &mut log);
    if std::env::var_os("PROMSHM_FUZZ_TRACE").is_some() {
        let _ = writeln!(std::io::stderr(), "  {log:?}");
    }
    let path = fresh_file(base, seed, &buf);
    let r = catch_unwind(AssertUnwindSafe(|| {
        let ro = exercise_read_only(&path, buf.len());
        exercise_read_write(&path, buf.len());
        drop(ro);
    }));
    let _ = std::fs::remove_file(&path);
    if let Err(p) = r {
        eprintln!("corruption of seed {seed:#x}: {log:?}");
        std::panic::resume_unwind(p);
    }
}

/// Corruption confined to the bytes of one record: the area opens, both
/// renders succeed, and either a bad record is counted or only the series of
/// that record (its family) render differently.
fn record_iteration(base: &Base, seed: u64, pristine: &mut Option<Pristine>) {
    let mut rng = Rng::new(seed);
    let ri = rng.below(base.records.len());
    let rec = base.records[ri];
    let hot: Vec<usize> = base
        .hot
        .iter()
        .filter(|&&(_, r)| r == ri)
        .map(|&(at, _)| at)
        .collect();
    let mut buf = base.bytes.clone();
    let mut log = vec![format!(
        "record {ri} at {} (kind {}, {} bytes)",
        rec.off, rec.kind, rec.len
    )];
    let end = rec.off + rec.len;
    for _ in 0..1 + rng.below(3) {
        let at = if rng.pct(60) && !hot.is_empty() {
            (rng.pick(&hot) + rng.below(4)).min(end - 1)
        } else {
            rec.off + rng.below(rec.len)
        };
        match rng.below(4) {
            0 => {
                let bit = rng.below(8);
                buf[at] ^= 1 << bit;
                log.push(format!("flip bit {bit} at {at}"));
            }
            1 if at + 4 <= end => {
                let v = interesting_u32(&mut rng, u32le(&buf, at), buf.len());
                put_u32(&mut buf, at, v);
                log.push(format!("u32 {v:#x} at {at}"));
            }
            2 => {
                let n = (1 + rng.below(64)).min(end - at);
                let v = if rng.pct(50) { 0 } else { 0xff };
                buf[at..at + n].fill(v);
                log.push(format!("fill {at}..{} with {v:#x}", at + n));
            }
            _ => {
                let v = rng.next() as u8;
                buf[at] = v;
                log.push(format!("byte {v:#x} at {at}"));
            }
        }
    }
    assert_eq!(buf.len(), base.bytes.len());
    let path = fresh_file(base, seed, &buf);
    let r = catch_unwind(AssertUnwindSafe(|| {
        // Families whose output may differ.
        let mut allowed: BTreeSet<String> = BTreeSet::new();
        let kind_now = buf[rec.off];
        match rec.kind {
            KIND_FAMILY => {
                allowed.insert(base.family_names[&rec.off].clone());
            }
            // (A hole, a free record of format 3, renders nothing.)
            KIND_SERIES if rec.state == STATE_LIVE => {
                allowed.insert(base.family_names[&base.series_family[&rec.off]].clone());
            }
            KIND_BLOB => {
                for fam in base.blob_users.get(&rec.off).into_iter().flatten() {
                    allowed.insert(base.family_names[fam].clone());
                }
            }
            // Its entries are its owner series' values.
            KIND_GAUGE_EXT => {
                if let Some(fam) = base.ext_family.get(&rec.off) {
                    allowed.insert(base.family_names[fam].clone());
                }
            }
            _ => {}
        }
        if kind_now == KIND_SERIES {
            // The family field may now name another family.
            let fam = u32le(&buf, rec.off + 16) as usize;
            if let Some(n) = base.family_names.get(&fam) {
                allowed.insert(n.clone());
            }
        }
        let new_names_ok = kind_now == KIND_FAMILY;
        // A record still in state WRITING is skipped unread (its writer may be
        // filling it in right now), so its length cannot be checked: a damaged
        // one may hide the records after it without being counted.
        let unverifiable = buf[rec.off + 1] == 0 && buf[rec.off + 2] == 0 && buf[rec.off + 3] == 0;
        loop {
            let epoch = window_epoch();
            let expected = pristine_renders(base, pristine);
            let area = Area::open(&path, OpenMode::ReadOnly)
                .unwrap_or_else(|e| panic!("a damaged record must not stop the open: {e}"));
            let mut retry = false;
            for (f, want) in &expected {
                let (got, stats) = render_plain(&area, *f);
                if window_epoch() != epoch {
                    retry = true;
                    break;
                }
                if stats.bad_records > 0 || unverifiable {
                    continue;
                }
                let (want, got) = (blocks(want), blocks(&got));
                let names: BTreeSet<&String> = want.keys().chain(got.keys()).collect();
                for name in names {
                    if want.get(name) == got.get(name) {
                        continue;
                    }
                    let ok = allowed.iter().any(|a| is_block_of(name, a))
                        || (new_names_ok
                            && !base.family_names.values().any(|b| is_block_of(name, b)));
                    assert!(
                        ok,
                        "{f:?}: no bad record counted, yet family {name:?} changed \
                         (allowed: {allowed:?})\n  want: {:?}\n  got:  {:?}",
                        want.get(name),
                        got.get(name)
                    );
                }
            }
            if !retry {
                break;
            }
        }
        exercise_read_write(&path, buf.len());
    }));
    let _ = std::fs::remove_file(&path);
    if let Err(p) = r {
        eprintln!("corruption of seed {seed:#x}: {log:?}");
        std::panic::resume_unwind(p);
    }
}

#[test]
fn fuzz_random_corruption() {
    fuzz::<()>(
        "fuzz_random_corruption",
        0x5EED_C0DE_0001,
        iterations(2500),
        random_iteration,
    );
}

#[test]
fn fuzz_record_confined_corruption() {
    fuzz::<Option<Pristine>>(
        "fuzz_record_confined_corruption",
        0x5EED_C0DE_0002,
        iterations(1500),
        record_iteration,
    );
}

/// Damage confined to the free lists (format 3): list heads and tails, and
/// the links, check words and generations of free records, set to other
/// records (live ones included), to themselves (cycles), to free records of
/// other sizes, to offsets inside records, to garbage. Then a writer
/// allocates in the damaged area — series of the freed sizes (which take
/// holes first) and info replacements (which free and reuse blobs): every
/// live series of the pristine area renders exactly as before (no writer
/// overwrote a live record), every new series holds what was written,
/// nothing is counted bad, and every iteration ends (the watchdog catches
/// a writer looping on a cyclic list).
fn free_list_iteration(base: &Base, seed: u64, pristine: &mut Option<Pristine>) {
    let mut rng = Rng::new(seed);
    let mut buf = base.bytes.clone();
    let mut log = Vec::new();
    let holes: Vec<usize> = base
        .records
        .iter()
        .filter(|r| r.state == STATE_FREE)
        .map(|r| r.off)
        .collect();
    assert!(holes.len() >= 8, "the base has holes to damage");
    let records: Vec<usize> = base.records.iter().map(|r| r.off).collect();
    for _ in 0..1 + rng.below(4) {
        let v = match rng.below(7) {
            0 => 0,
            1 => *rng.pick(&records) as u32,
            2 => *rng.pick(&holes) as u32,
            3 => (*rng.pick(&records) + 8 * (1 + rng.below(8))) as u32,
            4 => rng.next() as u32,
            5 => u32le(&buf, H_DATA_OFFSET),
            _ => u32::MAX,
        };
        if rng.pct(50) {
            let at = H_FREE_LISTS + 4 * rng.below(2 * FREE_CLASSES);
            put_u32(&mut buf, at, v);
            log.push(format!("list word {at} = {v:#x}"));
        } else {
            let h = *rng.pick(&holes);
            let f = *rng.pick(&[FREE_NEXT, FREE_NEXT + 4, 8]);
            let v = if f == FREE_NEXT && rng.pct(20) {
                h as u32
            } else {
                v
            };
            put_u32(&mut buf, h + f, v);
            log.push(format!("hole {h} field {f} = {v:#x}"));
        }
    }
    let path = fresh_file(base, seed, &buf);
    let r = catch_unwind(AssertUnwindSafe(|| {
        phase("free lists: allocate");
        let area = Area::open(&path, OpenMode::ReadWrite)
            .expect("free list damage must not stop the open");
        let reg = area.registry();
        let g = reg
            .gauge(
                Opts::new("fuzz_alloc", "New gauges.").labels(&["n"]),
                GaugeMode::Sum,
            )
            .unwrap();
        let c = reg
            .counter(
                Opts::new("fuzz_alloc_c", "New counters.")
                    .labels(&["n"])
                    .eager(true),
            )
            .unwrap();
        let label = |n: usize| "y".repeat(n * 20);
        for n in 0..12 {
            g.labels(&[&label(n)]).unwrap().set(n as f64);
            c.labels(&[&label(n)]).unwrap().add(n as f64 + 1.0).unwrap();
        }
        let build = reg
            .info(Opts::new("build", "Build information."))
            .unwrap()
            .get()
            .unwrap();
        for v in ["2.0", "2.1", "2.2"] {
            build.set(&[("version", v)]).unwrap();
        }
        for n in 0..12 {
            assert_eq!(g.labels(&[&label(n)]).unwrap().get(), n as f64);
            assert_eq!(c.labels(&[&label(n)]).unwrap().get(), n as f64 + 1.0);
        }
        phase("free lists: compare");
        drop((g, c, build, reg, area));
        loop {
            let epoch = window_epoch();
            let expected = pristine_renders(base, pristine);
            let area = Area::open(&path, OpenMode::ReadOnly).unwrap();
            let mut retry = false;
            for (f, want) in &expected {
                let (got, stats) = render_plain(&area, *f);
                if window_epoch() != epoch {
                    retry = true;
                    break;
                }
                assert_eq!(
                    stats.bad_records, 0,
                    "{f:?}: bad records after free list damage"
                );
                let got = blocks(&got);
                for (name, lines) in blocks(want) {
                    if name.starts_with("build") || name.starts_with("promshm_") || name.is_empty()
                    {
                        continue;
                    }
                    assert_eq!(
                        got.get(&name),
                        Some(&lines),
                        "{f:?}: family {name} changed: a live record was overwritten"
                    );
                }
                let new = got.get("fuzz_alloc").map(Vec::len).unwrap_or(0);
                assert_eq!(new, 12 + 2, "{f:?}: the new gauges");
            }
            if !retry {
                break;
            }
        }
        phase("done");
    }));
    if r.is_err() && std::env::var_os("PROMSHM_FUZZ_KEEP").is_some() {
        let _ = std::fs::copy(&path, "/tmp/fuzzkeep.promshm");
    }
    {
        let _ = std::fs::remove_file(&path);
    }
    if let Err(p) = r {
        eprintln!(
            "free list corruption of seed {seed:#x}: {log:?} ({})",
            path.display()
        );
        std::panic::resume_unwind(p);
    }
}

#[test]
fn fuzz_free_list_corruption() {
    fuzz::<Option<Pristine>>(
        "fuzz_free_list_corruption",
        0x5EED_C0DE_0003,
        iterations(400),
        free_list_iteration,
    );
}

// ---- specific cases --------------------------------------------------------------

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("corruption-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A small valid area file; returns its bytes.
fn small_area(dir: &TempDir) -> Vec<u8> {
    let path = dir.join("small.promshm");
    let area = Area::create(&path, &AreaOptions::with_pages(8)).unwrap();
    area.registry()
        .counter(Opts::new("c", "C.").eager(true))
        .unwrap()
        .get()
        .unwrap()
        .inc();
    drop(area);
    std::fs::read(&path).unwrap()
}

fn open_both(path: &Path) -> [promshm::Result<Area>; 2] {
    [
        Area::open(path, OpenMode::ReadOnly),
        Area::open(path, OpenMode::ReadWrite),
    ]
}

#[test]
fn wrong_magic_is_incompatible() {
    let dir = TempDir::new("magic");
    let mut bytes = small_area(&dir);
    bytes[..8].copy_from_slice(b"PROMSHM0");
    let path = dir.join("magic.promshm");
    std::fs::write(&path, &bytes).unwrap();
    for r in open_both(&path) {
        match r {
            Err(Error::IncompatibleArea(m)) => assert!(m.contains("magic"), "{m}"),
            other => panic!("expected IncompatibleArea, got {other:?}"),
        }
    }
}

#[test]
fn other_version_is_incompatible_and_named() {
    // Version 2 (no space reuse), version 3 (a cell pair per slot in every
    // gauge series), version 4 (no exemplar link cell, no in-flight write
    // lanes), version 5 (a counter's total in one f64 cell) and a future
    // version 7.
    for v in [2u32, 3, 4, 5, 7] {
        let dir = TempDir::new("version");
        let mut bytes = small_area(&dir);
        put_u32(&mut bytes, H_VERSION, v);
        let path = dir.join(&format!("v{v}.promshm"));
        std::fs::write(&path, &bytes).unwrap();
        for r in open_both(&path) {
            match r {
                Err(Error::IncompatibleArea(m)) => {
                    assert!(m.contains(&format!("version {v}")), "{m}");
                    assert!(m.contains("reads version 6"), "{m}");
                }
                other => panic!("expected IncompatibleArea, got {other:?}"),
            }
        }
    }
}

#[test]
fn truncated_below_three_pages_is_incompatible() {
    let dir = TempDir::new("short");
    let bytes = small_area(&dir);
    for len in [
        0,
        1,
        8,
        H_END,
        PAGE - 1,
        PAGE,
        PAGE + 1,
        2 * PAGE,
        3 * PAGE - 1,
    ] {
        let path = dir.join(&format!("short-{len}.promshm"));
        std::fs::write(&path, &bytes[..len]).unwrap();
        for r in open_both(&path) {
            match r {
                Err(Error::IncompatibleArea(m)) => assert!(m.contains("too small"), "{len}: {m}"),
                other => panic!("{len} bytes: expected IncompatibleArea, got {other:?}"),
            }
        }
    }
}

#[test]
fn more_pages_in_header_than_in_file_is_corrupt() {
    let dir = TempDir::new("pages");
    let bytes = small_area(&dir);
    // The file is cut to 5 of its 8 pages, or the header claims 9.
    let mut claims = bytes.clone();
    put_u32(&mut claims, H_PAGE_COUNT, 9);
    for (name, data) in [("cut", bytes[..5 * PAGE].to_vec()), ("claims", claims)] {
        let path = dir.join(&format!("{name}.promshm"));
        std::fs::write(&path, &data).unwrap();
        for r in open_both(&path) {
            match r {
                Err(Error::CorruptArea(m)) => assert!(m.contains("pages"), "{name}: {m}"),
                other => panic!("{name}: expected CorruptArea, got {other:?}"),
            }
        }
    }
    // A file longer than its header says is fine: only the declared pages are used.
    let mut longer = bytes.clone();
    longer.resize(bytes.len() + 3 * PAGE + 17, 0xAB);
    let path = dir.join("longer.promshm");
    std::fs::write(&path, &longer).unwrap();
    for r in open_both(&path) {
        let area = r.unwrap();
        assert_eq!(area.pages(), 8);
        assert!(area
            .render_to_string(Format::Prometheus)
            .unwrap()
            .contains("c_total 1"));
    }
}

#[test]
fn garbage_and_empty_files() {
    let dir = TempDir::new("garbage");
    let mut rng = Rng::new(99);
    for (i, len) in [3 * PAGE, 3 * PAGE + 5, 8 * PAGE, 64 * PAGE]
        .into_iter()
        .enumerate()
    {
        let mut bytes = vec![0u8; len];
        rng.fill(&mut bytes);
        let path = dir.join(&format!("garbage-{i}.promshm"));
        std::fs::write(&path, &bytes).unwrap();
        for r in open_both(&path) {
            assert!(
                matches!(r, Err(Error::IncompatibleArea(_))),
                "random bytes: {r:?}"
            );
        }
        // Area::create does not overwrite an existing file that is not an area.
        assert!(matches!(
            Area::create(&path, &AreaOptions::with_pages(8)),
            Err(Error::IncompatibleArea(_))
        ));
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }
    // All zeros: "not initialised" (a creator that died before finishing).
    let path = dir.join("zeros.promshm");
    std::fs::write(&path, vec![0u8; 4 * PAGE]).unwrap();
    for r in open_both(&path) {
        match r {
            Err(Error::IncompatibleArea(m)) => assert!(m.contains("not initialised"), "{m}"),
            other => panic!("zeros: {other:?}"),
        }
    }
    // Empty: open refuses it; create initialises it.
    let path = dir.join("empty.promshm");
    std::fs::write(&path, b"").unwrap();
    for r in open_both(&path) {
        assert!(matches!(r, Err(Error::IncompatibleArea(_))), "empty: {r:?}");
    }
    let area = Area::create(&path, &AreaOptions::with_pages(4)).unwrap();
    assert_eq!(area.pages(), 4);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 4 * PAGE as u64);
}

#[test]
fn create_refuses_symlinks_and_makes_0600_files() {
    let dir = TempDir::new("symlink");
    let target = dir.join("target.promshm");
    let link = dir.join("link.promshm");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    // Dangling link: must not create the target through it.
    match Area::create(&link, &AreaOptions::with_pages(4)) {
        Err(Error::UnsafeFile { path, reason }) => {
            assert_eq!(path, link);
            assert!(reason.contains("symbolic link"), "{reason}");
        }
        other => panic!("create through a symlink: {other:?}"),
    }
    assert!(!target.exists(), "the symlink target was created");
    // Link to a real area: refused too, for create and open.
    let area = Area::create(&target, &AreaOptions::with_pages(4)).unwrap();
    drop(area);
    let mode = std::fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {:o}", mode & 0o777);
    assert!(Area::create(&link, &AreaOptions::with_pages(4)).is_err());
    for r in open_both(&link) {
        assert!(
            matches!(r, Err(Error::UnsafeFile { .. })),
            "open through a symlink: {r:?}"
        );
    }
}

#[test]
fn not_initialised_and_unfinished_init() {
    let dir = TempDir::new("init");
    let mut bytes = small_area(&dir);
    // Magic stored last: a creator that died before storing it leaves magic 0.
    put_u64(&mut bytes, H_MAGIC, 0);
    put_u32(&mut bytes, H_INIT_STATE, 1);
    let path = dir.join("busy.promshm");
    std::fs::write(&path, &bytes).unwrap();
    for r in open_both(&path) {
        assert!(matches!(r, Err(Error::IncompatibleArea(_))), "{r:?}");
    }
    // Magic present but init_state not READY.
    let mut bytes = small_area(&dir);
    put_u32(&mut bytes, H_INIT_STATE, 1);
    std::fs::write(&path, &bytes).unwrap();
    for r in open_both(&path) {
        assert!(matches!(r, Err(Error::IncompatibleArea(_))), "{r:?}");
    }
}

#[test]
fn garbage_lock_words_are_taken_over_quickly() {
    let dir = TempDir::new("lock");
    let clean = small_area(&dir);
    // 0xffffffff as a pid is kill(-1, 0): "some process exists". It must not
    // be mistaken for a live holder (nor any pid above i32::MAX).
    for word in [
        0xffff_ffffu64,
        u64::MAX,
        0x8000_0000 | (7 << 32),
        0xdead_beef_dead_beef,
        1 | (12345 << 32),
    ] {
        let mut bytes = clean.clone();
        put_u64(&mut bytes, H_LOCK, word);
        let path = dir.join(&format!("lock-{word:x}.promshm"));
        std::fs::write(&path, &bytes).unwrap();
        let area = Area::open(&path, OpenMode::ReadWrite).unwrap();
        let t = Instant::now();
        let c = area
            .registry()
            .counter(Opts::new("new_family", "Needs the lock.").eager(true))
            .unwrap();
        c.get().unwrap().inc();
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "lock word {word:#x}: took {:?}",
            t.elapsed()
        );
        assert!(area.stats().locks_recovered >= 1, "lock word {word:#x}");
    }
}

#[test]
fn bad_records_are_counted_not_fatal() {
    let dir = TempDir::new("badrec");
    let path = dir.join("a.promshm");
    let area = Area::create(&path, &AreaOptions::with_pages(8)).unwrap();
    let reg = area.registry();
    for name in ["aaa", "bbb", "ccc"] {
        reg.counter(Opts::new(name, "X.").eager(true))
            .unwrap()
            .get()
            .unwrap()
            .inc();
    }
    drop(area);
    let mut bytes = std::fs::read(&path).unwrap();
    let records = walk_pristine(&bytes);
    // Break the length of the second family record: the rest of its page is skipped.
    let fam = records
        .iter()
        .filter(|r| r.kind == KIND_FAMILY)
        .nth(1)
        .unwrap();
    put_u32(&mut bytes, fam.off + 4, 3);
    let bad = dir.join("bad.promshm");
    std::fs::write(&bad, &bytes).unwrap();
    for r in open_both(&bad) {
        let area = r.unwrap();
        let (text, stats) = render_plain(&area, Format::Prometheus);
        assert!(stats.bad_records > 0, "{stats:?}");
        assert!(text.contains("aaa_total 1"), "{text}");
        assert!(!text.contains("bbb_total"), "{text}");
    }
    let _ = KIND_PADDING;
}

#[test]
fn pristine_copy_is_clean_in_both_modes() {
    let base = Base::new("pristine");
    let path = fresh_file(&base, 0, &base.bytes);
    let ro = Area::open(&path, OpenMode::ReadOnly).unwrap();
    for (f, text, stats) in render_both(&ro) {
        assert_eq!(stats.bad_records, 0, "{f:?}\n{text}");
        assert!(
            text.contains("http_requests_total{path=\"/\",status=\"200\"} 1.5"),
            "{text}"
        );
    }
    drop(ro);
    exercise_read_write(&path, base.bytes.len());
    let rw = Area::open(&path, OpenMode::ReadWrite).unwrap();
    for (f, text, stats) in render_both(&rw) {
        assert_eq!(stats.bad_records, 0, "{f:?}\n{text}");
        // exercise_read_write clears what it touched; the rest is intact.
        assert!(text.contains("jobs_total 42"), "{text}");
        assert!(!text.contains("fuzz_new_total 1"), "{text}");
    }
}

fn mapped(path: &Path) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let p = path.to_str().unwrap();
    maps.lines().any(|l| l.ends_with(p))
}

#[test]
fn dropped_areas_are_unmapped() {
    let dir = TempDir::new("unmap");
    let path = dir.join("a.promshm");
    let area = Area::create(&path, &AreaOptions::with_pages(8)).unwrap();
    let fam = area
        .registry()
        .counter(Opts::new("c", "C.").labels(&["l"]).eager(true))
        .unwrap();
    fam.labels(&["x"]).unwrap().inc();
    fam.clear().unwrap();
    drop(fam);
    drop(area);
    assert!(
        !mapped(&path),
        "the area is still mapped after its last handle"
    );
    let ro = Area::open(&path, OpenMode::ReadOnly).unwrap();
    ro.render_to_string(Format::OpenMetrics).unwrap();
    drop(ro);
    assert!(!mapped(&path), "a read-only area is still mapped");
}

/// Regression: a family's series cache once held `Arc<SeriesInner>` while
/// every series holds `Arc<FamilyInner>`; the cycle kept the family, its
/// series and the area's mapping alive after the last handle was dropped, so
/// the fuzz loops ran into `vm.max_map_count` (mmap failed with ENOMEM).
#[test]
fn resolved_series_do_not_pin_the_mapping() {
    let dir = TempDir::new("pin");
    let path = dir.join("a.promshm");
    let area = Area::create(&path, &AreaOptions::with_pages(8)).unwrap();
    let fam = area
        .registry()
        .counter(Opts::new("c", "C.").labels(&["l"]).eager(true))
        .unwrap();
    fam.labels(&["x"]).unwrap().inc();
    drop(fam);
    drop(area);
    assert!(
        !mapped(&path),
        "the area is still mapped after its last handle"
    );
}

// ---- exemplar records (format 5) ---------------------------------------------------

const KIND_EXEMPLAR: u8 = 6;
/// Exemplar record fields (docs/FORMAT.md §6.8): owner, slots, generation,
/// slot size, first slot; slot fields: sequence, value, timestamp, check,
/// length word, payload.
const EX_OWNER: usize = 16;
const EX_N_SLOTS: usize = 20;
const EX_OWNER_GEN: usize = 24;
const EX_SLOT_SIZE: usize = 32;
const EX_SLOTS: usize = 40;
const SL_SEQ: usize = 0;
const SL_VALUE: usize = 8;
const SL_TIMESTAMP: usize = 16;
const SL_LEN: usize = 32;
const SL_PAYLOAD: usize = 40;

/// An area whose counter, histogram and native histogram series carry
/// exemplars, and a removed series whose exemplar record was freed.
fn exemplar_area(path: &Path) -> Area {
    let area = Area::create(path, &AreaOptions::with_pages(PAGES)).unwrap();
    let reg = area.registry();
    let c = reg
        .counter(Opts::new("ex_c", "C.").labels(&["k"]).eager(true))
        .unwrap();
    c.labels(&["a"])
        .unwrap()
        .add_with_exemplar(2.0, &[("trace_id", "ca")])
        .unwrap();
    c.labels(&["b"])
        .unwrap()
        .add_with_exemplar(3.0, &[("trace_id", "cb"), ("span", "größe")])
        .unwrap();
    let gone = c.labels(&["gone"]).unwrap();
    gone.add_with_exemplar(1.0, &[("trace_id", "gone")])
        .unwrap();
    assert!(c.remove(&["gone"]).unwrap());
    let h = reg
        .histogram(Opts::new("ex_h", "H.").eager(true), &[1.0, 2.0])
        .unwrap()
        .get()
        .unwrap();
    h.observe_with_exemplar(0.5, &[("t", "h1")]).unwrap();
    h.observe_with_exemplar(7.0, &[("t", &"L".repeat(100))])
        .unwrap();
    let n = reg
        .native_histogram(
            Opts::new("ex_n", "N.").eager(true),
            promshm::NativeOpts::new(),
        )
        .unwrap()
        .get()
        .unwrap();
    n.observe_with_exemplar(1.5, &[("t", "n1")]).unwrap();
    n.observe(0.25).unwrap();
    promshm::flush();
    area
}

/// Render `f` of the area at `path` on a thread; fails if it takes longer
/// than `WATCHDOG` (a reader spinning on a stuck seqlock) or panics.
fn render_bounded(path: &Path, f: Format) -> (Vec<u8>, RenderStats) {
    let path = path.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let area = Area::open(&path, OpenMode::ReadOnly).expect("open read-only");
        let mut out = Vec::new();
        let stats = area
            .registry()
            .without_self_metrics()
            .render(&mut out, f)
            .unwrap_or_else(|e| panic!("render {f:?}: {e}"));
        let _ = tx.send((out, stats));
    });
    rx.recv_timeout(WATCHDOG)
        .unwrap_or_else(|e| panic!("render {f:?} did not finish ({e}): a reader spins"))
}

/// `(line without its exemplar, exemplar)` of each OpenMetrics sample line.
fn split_exemplars(om: &str) -> (Vec<String>, BTreeSet<String>) {
    let mut lines = Vec::new();
    let mut exemplars = BTreeSet::new();
    for l in om.lines() {
        match l.split_once(" # {") {
            Some((sample, ex)) if !l.starts_with('#') => {
                lines.push(sample.to_string());
                exemplars.insert(ex.to_string());
            }
            _ => lines.push(l.to_string()),
        }
    }
    (lines, exemplars)
}

/// Bytes to write over the area: `(offset, bytes)`.
type Damage = Vec<(usize, Vec<u8>)>;

/// One damage to the exemplar parts of the area, by name.
fn exemplar_damages(bytes: &[u8], records: &[Rec]) -> Vec<(String, Damage)> {
    let cursor = u64le(bytes, H_CURSOR) as usize;
    let live_ex: Vec<Rec> = records
        .iter()
        .copied()
        .filter(|r| r.kind == KIND_EXEMPLAR && r.state == STATE_LIVE)
        .collect();
    let freed_ex = records
        .iter()
        .find(|r| r.kind == KIND_EXEMPLAR && r.state == STATE_FREE)
        .expect("the removed series' exemplar record is freed");
    let family = records.iter().find(|r| r.kind == KIND_FAMILY).unwrap();
    assert_eq!(
        live_ex.len(),
        4,
        "two counters, a histogram, a native histogram"
    );
    let link_of = |r: &Rec| {
        let series = u32le(bytes, r.off + EX_OWNER) as usize;
        let n = u32le(bytes, series + 20) as usize;
        series + 40 + 8 * (n - 1)
    };
    let u64v = |v: u64| v.to_le_bytes().to_vec();
    let u32v = |v: u32| v.to_le_bytes().to_vec();
    let mut out: Vec<(String, Damage)> = Vec::new();
    for (ri, r) in live_ex.iter().enumerate() {
        let link = link_of(r);
        let other = live_ex[(ri + 1) % live_ex.len()];
        for (what, v) in [
            ("0", 0u64),
            ("past the cursor", cursor as u64 + 64),
            ("past the file", u64::MAX - 7),
            ("inside the record", r.off as u64 + 48),
            ("at a family record", family.off as u64),
            ("at another series' exemplar record", other.off as u64),
            ("at a freed exemplar record", freed_ex.off as u64),
            (
                "at its own series record",
                u64::from(u32le(bytes, r.off + EX_OWNER)),
            ),
        ] {
            out.push((format!("rec {ri}: link {what}"), vec![(link, u64v(v))]));
        }
        let n_slots = u32le(bytes, r.off + EX_N_SLOTS);
        let size = u32le(bytes, r.off + EX_SLOT_SIZE) as usize;
        for (what, at, v) in [
            ("kind", r.off, vec![KIND_SERIES]),
            ("state FREE", r.off + 1, vec![STATE_FREE]),
            ("state WRITING", r.off + 1, vec![0]),
            ("length 8", r.off + 4, u32v(8)),
            ("length huge", r.off + 4, u32v(u32::MAX - 7)),
            ("length short", r.off + 4, u32v(r.len as u32 - 8)),
            ("owner", r.off + EX_OWNER, u32v(family.off as u32)),
            ("slots +1", r.off + EX_N_SLOTS, u32v(n_slots + 1)),
            ("slots huge", r.off + EX_N_SLOTS, u32v(u32::MAX)),
            (
                "generation",
                r.off + EX_OWNER_GEN,
                u64v(u64le(bytes, r.off + EX_OWNER_GEN) + 1),
            ),
            ("slot size 8", r.off + EX_SLOT_SIZE, u32v(8)),
            ("slot size huge", r.off + EX_SLOT_SIZE, u32v(u32::MAX)),
        ] {
            out.push((format!("rec {ri}: {what}"), vec![(at, v)]));
        }
        for s in 0..n_slots as usize {
            let slot = r.off + EX_SLOTS + s * size;
            let len = u32le(bytes, slot + SL_LEN) as usize;
            if u64le(bytes, slot + SL_SEQ) == 0 {
                continue;
            }
            let seq = u64le(bytes, slot + SL_SEQ);
            let payload_at = slot + SL_PAYLOAD;
            for (what, at, v) in [
                ("seq stuck odd", slot + SL_SEQ, u64v(seq | 1)),
                ("seq odd max", slot + SL_SEQ, u64v(u64::MAX)),
                ("value NaN", slot + SL_VALUE, u64v(f64::NAN.to_bits())),
                ("value inf", slot + SL_VALUE, u64v(f64::INFINITY.to_bits())),
                (
                    "timestamp NaN",
                    slot + SL_TIMESTAMP,
                    u64v(f64::NAN.to_bits()),
                ),
                (
                    "timestamp -inf",
                    slot + SL_TIMESTAMP,
                    u64v(f64::NEG_INFINITY.to_bits()),
                ),
                ("length past capacity", slot + SL_LEN, u32v(size as u32)),
                ("length max", slot + SL_LEN, u32v(u32::MAX)),
                (
                    "length shorter",
                    slot + SL_LEN,
                    u32v(len.saturating_sub(1) as u32),
                ),
                ("pairs huge", slot + SL_LEN + 4, u32v(u32::MAX)),
                ("pairs 0", slot + SL_LEN + 4, u32v(0)),
                ("invalid UTF-8", payload_at + 1, vec![0xc3, 0x28]),
                ("no terminator", payload_at, vec![b'x'; len.max(1)]),
                ("terminator in a name", payload_at, vec![0xff]),
            ] {
                out.push((format!("rec {ri} slot {s}: {what}"), vec![(at, v)]));
            }
        }
    }
    out
}

/// Every damage of `exemplar_damages`, and random bytes in the exemplar
/// records and link cells: all three formats render promptly and without
/// panic; OpenMetrics shows only exemplars the pristine area has (never a
/// part of one, never a damaged one); with no bad record counted, every
/// sample renders as before; then a new exemplar written to every series
/// either works (and renders) or is refused with an error, and no LIVE
/// record other than the series' own exemplar record changes.
#[test]
fn damaged_exemplars_are_left_out_never_trusted() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("corruption-{}-exemplars", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let base_path = dir.join("base.promshm");
    let _keep = exemplar_area(&base_path);
    let bytes = std::fs::read(&base_path).unwrap();
    let records = walk_pristine(&bytes);
    let (want_om, _) = render_bounded(&base_path, Format::OpenMetrics);
    let (want_lines, want_ex) = split_exemplars(&String::from_utf8(want_om).unwrap());
    assert_eq!(want_ex.len(), 5, "{want_ex:?}");

    let mut damages = exemplar_damages(&bytes, &records);
    let targets: Vec<(usize, usize)> = records
        .iter()
        .filter(|r| r.kind == KIND_EXEMPLAR && r.state == STATE_LIVE)
        .flat_map(|r| {
            let series = u32le(&bytes, r.off + EX_OWNER) as usize;
            let n = u32le(&bytes, series + 20) as usize;
            [(r.off, r.len), (series + 40 + 8 * (n - 1), 8)]
        })
        .collect();
    let mut rng = Rng::new(seed_of(0x5EED_C0DE_00E8, 0));
    for i in 0..iterations(600) {
        let mut d = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let &(off, len) = rng.pick(&targets);
            // Inside the target (records and cells are 8-aligned).
            let at = off + rng.below(len);
            match rng.below(3) {
                0 => d.push((at, vec![bytes[at] ^ (1 << rng.below(8))])),
                1 => d.push((at, vec![rng.next() as u8])),
                _ => {
                    let at = at & !3;
                    let v = interesting_u32(&mut rng, u32le(&bytes, at), bytes.len());
                    d.push((at, v.to_le_bytes().to_vec()));
                }
            }
        }
        damages.push((format!("random {i}"), d));
    }

    let (mut refused, mut with_bad, mut shown) = (0, 0, 0);
    let mut lost: Vec<String> = Vec::new();
    for (name, d) in &damages {
        let mut buf = bytes.clone();
        for (at, v) in d {
            let end = (at + v.len()).min(buf.len());
            buf[*at..end].copy_from_slice(&v[..end - at]);
        }
        let path = dir.join("damaged.promshm");
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, &buf).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            let mut bad = false;
            for f in [Format::Prometheus, Format::OpenMetrics, Format::Protobuf] {
                let (out, stats) = render_bounded(&path, f);
                assert!(out.len() < 1 << 20, "{f:?}: {} bytes", out.len());
                bad |= stats.bad_records > 0;
                if f == Format::Protobuf {
                    continue;
                }
                let text = String::from_utf8(out).expect("UTF-8 output");
                let (lines, exemplars) = split_exemplars(&text);
                for e in &exemplars {
                    assert!(
                        want_ex.contains(e),
                        "{f:?}: exemplar not in the pristine area: {e}"
                    );
                }
                if f == Format::Prometheus {
                    assert!(exemplars.is_empty());
                }
                if f == Format::OpenMetrics && !bad {
                    assert_eq!(lines, want_lines, "samples changed, no bad record counted");
                }
            }
            if bad {
                with_bad += 1;
            }
            // A writer: every series gets a new exemplar, or an error.
            let area = Area::open(&path, OpenMode::ReadWrite).expect("open read-write");
            let before = std::fs::read(&path).unwrap();
            let reg = area.registry();
            let mut oks = Vec::new();
            let c = reg
                .counter(Opts::new("ex_c", "C.").labels(&["k"]).eager(true))
                .and_then(|f| Ok((f.labels(&["a"])?, f.labels(&["b"])?)));
            if let Ok((a, b)) = c {
                oks.push(("new_ca", a.add_with_exemplar(1.0, &[("w", "new_ca")])));
                oks.push(("new_cb", b.add_with_exemplar(1.0, &[("w", "new_cb")])));
            }
            if let Ok(h) = reg
                .histogram(Opts::new("ex_h", "H.").eager(true), &[1.0, 2.0])
                .and_then(|f| f.get())
            {
                oks.push(("new_h", h.observe_with_exemplar(1.5, &[("w", "new_h")])));
            }
            if let Ok(n) = reg
                .native_histogram(
                    Opts::new("ex_n", "N.").eager(true),
                    promshm::NativeOpts::new(),
                )
                .and_then(|f| f.get())
            {
                oks.push(("new_n", n.observe_with_exemplar(3.0, &[("w", "new_n")])));
            }
            let after = std::fs::read(&path).unwrap();
            // The writes touch series cells and exemplar records only: every
            // LIVE family record (what a damaged link may point at) stays
            // byte for byte.
            for r in walk_pristine_lenient(&before) {
                if r.kind == KIND_FAMILY && r.state == STATE_LIVE {
                    assert_eq!(
                        before[r.off..r.off + r.len],
                        after[r.off..r.off + r.len],
                        "a writer changed the family record at {}",
                        r.off
                    );
                }
            }
            let (om, stats) = render_bounded(&path, Format::OpenMetrics);
            let om = String::from_utf8(om).unwrap();
            for (label, ok) in &oks {
                if ok.is_err() {
                    refused += 1;
                } else if om.contains(&format!("{{w=\"{label}\"}}")) {
                    shown += 1;
                } else if stats.bad_records == 0 {
                    lost.push(format!("{name}: {label}"));
                }
            }
            let (_, exemplars) = split_exemplars(&om);
            for e in &exemplars {
                assert!(
                    want_ex.contains(e)
                        || oks
                            .iter()
                            .any(|(l, _)| e.starts_with(&format!("w=\"{l}\"}}"))),
                    "after the writes: unexpected exemplar {e}"
                );
            }
        }));
        if let Err(p) = r {
            eprintln!("exemplar damage {name:?}: {d:?}");
            std::panic::resume_unwind(p);
        }
    }
    eprintln!(
        "{} exemplar damages: {with_bad} with bad records, {refused} writes refused, {shown} new exemplars shown, {} lost: {lost:?}",
        damages.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "accepted, yet not shown: {lost:?}");
    drop(_keep);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The records of a (possibly damaged) area, stopping at the first bad length.
fn walk_pristine_lenient(bytes: &[u8]) -> Vec<Rec> {
    let mut off = u32le(bytes, H_DATA_OFFSET) as usize;
    let cursor = (u64le(bytes, H_CURSOR) as usize).min(bytes.len());
    let mut out = Vec::new();
    while off + 8 <= cursor {
        let tag = u32le(bytes, off);
        let len = u32le(bytes, off + 4) as usize;
        if len < 8 || len % 8 != 0 || off + len > cursor {
            break;
        }
        out.push(Rec {
            off,
            kind: tag as u8,
            state: (tag >> 8) as u8,
            len,
        });
        off += len;
    }
    out
}
