//! What every subcommand shares: errors with exit codes, opening an area
//! read-only (and noticing when its file is replaced), rendering, durations,
//! the shutdown flag, and time formatting.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use promshm::{Area, Format, OpenMode, Registry};

use crate::files::FileArgs;
use crate::sigbus;

/// Exit codes (documented in `--help` and the README).
pub mod exit {
    /// Any other failure (local I/O, an unexpected error).
    pub const FAILURE: i32 = 1;
    /// Bad command line (clap uses 2 too).
    pub const USAGE: i32 = 2;
    /// The area file is missing or unreadable.
    pub const AREA_UNREADABLE: i32 = 3;
    /// The file is not an area this build reads, or it is damaged.
    pub const AREA_INCOMPATIBLE: i32 = 4;
    /// The endpoint (Pushgateway, remote-write receiver, listen address) is
    /// unreachable or rejected the request.
    pub const ENDPOINT: i32 = 5;
    /// The area file was refused: owned by another user, or writable by its
    /// group or by every user, and not allowed by `--allow-*`.
    pub const AREA_REFUSED: i32 = 6;
}

/// A one-line error and the exit code that goes with it.
#[derive(Debug, Clone)]
pub struct CliError {
    /// Process exit code.
    pub code: i32,
    /// Message, without the `promshm: ` prefix.
    pub msg: String,
}

impl CliError {
    pub fn new(code: i32, msg: impl Into<String>) -> Self {
        CliError {
            code,
            msg: msg.into(),
        }
    }
    pub fn usage(msg: impl Into<String>) -> Self {
        Self::new(exit::USAGE, msg)
    }
    pub fn failure(msg: impl Into<String>) -> Self {
        Self::new(exit::FAILURE, msg)
    }
    pub fn endpoint(msg: impl Into<String>) -> Self {
        Self::new(exit::ENDPOINT, msg)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// Map a library error about `path` to an exit code and one line.
pub fn area_error(path: &Path, e: promshm::Error) -> CliError {
    let one_line = |s: String| s.replace('\n', " ");
    match e {
        promshm::Error::Io { op, source, .. } => CliError::new(
            exit::AREA_UNREADABLE,
            format!("{}: cannot {op} the area: {source}", path.display()),
        ),
        promshm::Error::IncompatibleArea(m) | promshm::Error::CorruptArea(m) => {
            // The library prefixes most messages with the path already.
            let m = one_line(m);
            let shown = path.display().to_string();
            let msg = if m.starts_with(&shown) {
                m
            } else {
                format!("{shown}: {m}")
            };
            CliError::new(
                exit::AREA_INCOMPATIBLE,
                format!("{msg} (not a readable promshm area)"),
            )
        }
        // Without the file's metadata: the library's reason (see `open_checked`).
        promshm::Error::UnsafeFile { reason, .. } => {
            FileArgs::default().refused(path, &reason, None)
        }
        // The message names the file and the wait.
        e @ promshm::Error::FileLockTimeout { .. } => {
            CliError::new(exit::AREA_UNREADABLE, one_line(e.to_string()))
        }
        other => CliError::failure(format!(
            "{}: {}",
            path.display(),
            one_line(other.to_string())
        )),
    }
}

/// Open `path` on a non-blocking descriptor and check that it is a regular
/// file (a FIFO or a device never blocks us): the descriptor and the file's
/// (device, inode).
fn regular_file(path: &Path) -> CliResult<(std::fs::File, (u64, u64))> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // O_NOFOLLOW: the library never opens an area through a link.
            Some(libc::ELOOP) => CliError::new(
                exit::AREA_INCOMPATIBLE,
                format!(
                    "{}: is a symbolic link, not a regular file (areas are never opened \
                     through one: give the file's own path)",
                    path.display()
                ),
            ),
            _ => CliError::new(
                exit::AREA_UNREADABLE,
                format!("{}: cannot open the area: {e}", path.display()),
            ),
        })?;
    let meta = file.metadata().map_err(|e| {
        CliError::new(
            exit::AREA_UNREADABLE,
            format!("{}: cannot stat the area: {e}", path.display()),
        )
    })?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let kind = if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_dir() {
            "a directory"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(CliError::new(
            exit::AREA_INCOMPATIBLE,
            format!(
                "{}: is {kind}, not a regular file (not a readable promshm area)",
                path.display()
            ),
        ));
    }
    Ok((file, (meta.dev(), meta.ino())))
}

/// Open an area file read-only: a regular file (checked without blocking),
/// then the area in it, which must be that same file, accepted by the
/// library's file checks as widened by `files`.
pub fn open_area(path: &Path, files: &FileArgs) -> CliResult<Area> {
    Ok(open_checked(path, files)?.0)
}

fn open_checked(path: &Path, files: &FileArgs) -> CliResult<(Area, std::fs::File, (u64, u64))> {
    let (file, ident) = regular_file(path)?;
    let area =
        Area::open_with(path, OpenMode::ReadOnly, &files.options()).map_err(|e| match e {
            promshm::Error::UnsafeFile { reason, .. } => {
                files.refused(path, &reason, file.metadata().ok().as_ref())
            }
            e => area_error(path, e),
        })?;
    // The file we checked must be the one the library opened.
    if file_ident(path) != Some(ident) {
        return Err(CliError::new(
            exit::AREA_UNREADABLE,
            format!("{}: replaced while being opened", path.display()),
        ));
    }
    Ok((area, file, ident))
}

/// Which families to render, shared by every subcommand that renders.
#[derive(Debug, Clone, clap::Args)]
pub struct RenderOpts {
    /// Only the families of this namespace (registry prefix): names starting with `NS_`.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Leave out promshm's own `promshm_*` metrics (always left out with --namespace).
    #[arg(long)]
    pub no_self_metrics: bool,
}

impl RenderOpts {
    /// The registry view on `area` these options select.
    pub fn registry(&self, area: &Area) -> CliResult<Registry> {
        let mut r = area.registry();
        if let Some(ns) = &self.namespace {
            r = r
                .with_prefix(ns)
                .map_err(|e| CliError::usage(format!("--namespace {ns:?}: {e}")))?;
        }
        if self.no_self_metrics {
            r = r.without_self_metrics();
        }
        Ok(r)
    }

    /// Validate the options once, before any loop.
    pub fn check(&self) -> CliResult<()> {
        match &self.namespace {
            Some(ns) if !valid_metric_name(ns) => Err(CliError::usage(format!(
                "--namespace {ns:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]*"
            ))),
            _ => Ok(()),
        }
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn valid_metric_name(k: &str) -> bool {
    let mut b = k.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// Render `area` as `format` into `out`.
pub fn render(
    area: &Area,
    opts: &RenderOpts,
    format: Format,
    out: &mut dyn Write,
) -> CliResult<()> {
    let registry = opts.registry(area)?;
    registry
        .render(&mut *out, format)
        .map(|_| ())
        .map_err(|e| area_error(area.path().unwrap_or(Path::new("(area)")), e))
}

/// Bytes in a page of the area format (docs/FORMAT.md: always 4096).
const AREA_PAGE: u64 = 4096;

/// An area opened read-only from a regular file, with our own descriptor of
/// that file kept to notice a truncation before reading the mapping.
pub struct Mapped {
    area: Area,
    file: std::fs::File,
    ident: (u64, u64),
    len: u64,
    /// The mapping as watched by the SIGBUS handler (None if not found).
    guard: Option<sigbus::Guard>,
}

impl Mapped {
    /// Open `path` as [`open_area`] does, keeping the descriptor.
    pub fn open(path: &Path, files: &FileArgs) -> CliResult<Mapped> {
        let (area, file, ident) = open_checked(path, files)?;
        let len = u64::from(area.pages()) * AREA_PAGE;
        let guard = sigbus::find_mapping(ident.0, ident.1, len as usize)
            .and_then(|base| sigbus::Guard::watch(base, len as usize));
        Ok(Mapped {
            area,
            file,
            ident,
            len,
            guard,
        })
    }

    /// The area.
    pub fn area(&self) -> &Area {
        &self.area
    }

    /// Why the mapping cannot be read safely now, if it cannot: the file is
    /// shorter than the mapping (reading past its end would raise SIGBUS).
    pub fn check(&self) -> Result<(), String> {
        match self.file.metadata() {
            Ok(m) if m.len() < self.len => Err(format!(
                "truncated to {} bytes under a {}-byte mapping",
                m.len(),
                self.len
            )),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("cannot stat the area: {e}")),
        }
    }

    /// Whether a read of the mapping faulted (the file shrank under it): what
    /// was read since it was opened is garbage.
    pub fn faulted(&self) -> bool {
        self.guard.as_ref().is_some_and(|g| g.faulted())
    }
}

/// What [`AreaSource`] shares between threads.
struct SourceState {
    current: Arc<Mapped>,
    /// Why `current` must not be read any more (truncated, faulted).
    broken: Option<String>,
    /// The last problem logged, so each is logged once.
    logged: Option<String>,
}

/// The area at a path, kept open across renders and reopened when the file
/// there is replaced (an application restart that recreates the area) or
/// was truncated. Shared by threads; no lock is held across an open.
pub struct AreaSource {
    path: PathBuf,
    /// Which files are accepted (at every reopen too).
    files: FileArgs,
    state: std::sync::Mutex<SourceState>,
    /// A reopen is under way (others use what is there meanwhile).
    reopening: AtomicBool,
    /// Longest wait for the library to open the file.
    open_timeout: Duration,
}

/// Clears the reopening flag however the reopen ends.
struct Reopening<'a>(&'a AtomicBool);

impl Drop for Reopening<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl AreaSource {
    /// Open the area at `path` (fails at once if it is not one).
    pub fn open(path: &Path, files: &FileArgs) -> CliResult<AreaSource> {
        let current = Arc::new(Mapped::open(path, files)?);
        Ok(AreaSource {
            path: path.to_owned(),
            files: files.clone(),
            state: std::sync::Mutex::new(SourceState {
                current,
                broken: None,
                logged: None,
            }),
            reopening: AtomicBool::new(false),
            open_timeout: Duration::from_secs(5),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SourceState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn unavailable(&self, why: &str) -> CliError {
        CliError::new(
            exit::AREA_UNREADABLE,
            format!("{}: {why}", self.path.display()),
        )
    }

    /// Log `msg` unless it was the last thing logged.
    fn log_once(&self, msg: &str) {
        let mut s = self.lock();
        if s.logged.as_deref() != Some(msg) {
            s.logged = Some(msg.to_owned());
            drop(s);
            log(msg);
        }
    }

    /// Mark `m` unreadable (if it is still the current one).
    fn mark_broken(&self, m: &Arc<Mapped>, why: &str) {
        let mut s = self.lock();
        if Arc::ptr_eq(&s.current, m) && s.broken.is_none() {
            s.broken = Some(why.to_owned());
        }
    }

    /// The area to read now: the current one if it is sound and still the
    /// file at the path, else a fresh open of the path.
    pub fn get(&self) -> CliResult<Arc<Mapped>> {
        let (current, mut broken) = {
            let s = self.lock();
            (s.current.clone(), s.broken.clone())
        };
        if broken.is_none() {
            if let Err(why) = current.check() {
                self.log_once(&format!("{}: {why}; reopening", self.path.display()));
                self.mark_broken(&current, &why);
                broken = Some(why);
            }
        }
        // A missing path keeps the last area; another file there replaces it.
        let replaced = file_ident(&self.path).is_some_and(|id| id != current.ident);
        if broken.is_none() && !replaced {
            return Ok(current);
        }
        if self.reopening.swap(true, Ordering::AcqRel) {
            // Someone else is reopening: use what is there meanwhile.
            return match broken {
                Some(why) => Err(self.unavailable(&why)),
                None => Ok(current),
            };
        }
        let _reopening = Reopening(&self.reopening);
        match self.open_bounded() {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                let mut s = self.lock();
                s.current = fresh.clone();
                s.broken = None;
                s.logged = None;
                drop(s);
                log(&format!("{}: area file reopened", self.path.display()));
                Ok(fresh)
            }
            Err(e) => {
                let msg = match &broken {
                    Some(why) => format!("{} ({why})", e.msg),
                    None => e.msg.clone(),
                };
                self.log_once(&msg);
                Err(CliError::new(e.code, msg))
            }
        }
    }

    /// [`Mapped::open`] in a thread of its own, given up after
    /// `open_timeout` (the thread is then left to finish on its own), so that
    /// no caller waits forever whatever the file is.
    fn open_bounded(&self) -> CliResult<Mapped> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (path, files) = (self.path.clone(), self.files.clone());
        std::thread::Builder::new()
            .name("promshm-open".into())
            .spawn(move || {
                let _ = tx.send(Mapped::open(&path, &files));
            })
            .map_err(|e| CliError::failure(format!("cannot start a thread: {e}")))?;
        rx.recv_timeout(self.open_timeout).unwrap_or_else(|_| {
            Err(self.unavailable(&format!(
                "opening the area did not finish in {:?}",
                self.open_timeout
            )))
        })
    }

    /// Run `read` on the area. Whatever it read from a file that was
    /// truncated meanwhile is never returned: the error says so, and the
    /// next call reopens.
    pub fn with<R>(&self, read: impl FnOnce(&Area) -> CliResult<R>) -> CliResult<R> {
        let m = self.get()?;
        let result = read(m.area());
        if m.faulted() {
            let why = "truncated while being read (what was read is discarded)";
            self.log_once(&format!("{}: {why}; reopening", self.path.display()));
            self.mark_broken(&m, why);
            return Err(self.unavailable(why));
        }
        result
    }

    /// Render the area as `format` into `out` (see [`AreaSource::with`]).
    pub fn render(&self, opts: &RenderOpts, format: Format, out: &mut dyn Write) -> CliResult<()> {
        self.with(|area| render(area, opts, format, out))
    }
}

fn file_ident(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// One line to stderr, prefixed like every message of the command.
pub fn log(msg: &str) {
    eprintln!("promshm: {msg}");
}

/// Parse `10`, `2.5`, `10s`, `500ms`, `2m`, `1h` into a duration (> 0).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (examples: 15, 15s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
        return Err(format!("{s:?}: must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parse `k=v` (a label pair) with a valid label name.
pub fn parse_label_pair(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=VALUE"))?;
    if !valid_label_name(k) {
        return Err(format!("{k:?} is not a valid label name"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(k: &str) -> bool {
    let mut b = k.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

// ---- shutdown ---------------------------------------------------------------------

static SHUTDOWN: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Install SIGTERM/SIGINT handlers (in the command, never in the library):
/// the first signal sets the shutdown flag, a second SIGINT/SIGTERM exits at once.
pub fn install_signal_handlers() -> CliResult<()> {
    let flag = SHUTDOWN.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // Order matters: the conditional exit is armed before the flag is set.
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())
            .and_then(|_| signal_hook::flag::register(sig, flag.clone()))
            .map_err(|e| CliError::failure(format!("cannot install signal handlers: {e}")))?;
    }
    Ok(())
}

/// Whether a shutdown was requested.
pub fn shutting_down() -> bool {
    SHUTDOWN.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

/// Sleep for `d`, waking early on shutdown. Returns false if shutting down.
pub fn sleep_unless_shutdown(d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if shutting_down() {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
    }
}

/// Run `tick` now and then every `interval` (measured start to start) until
/// shutdown. A failing tick is logged and the loop goes on.
pub fn every(interval: Duration, mut tick: impl FnMut() -> CliResult<()>) -> CliResult<()> {
    let mut next = Instant::now();
    loop {
        if let Err(e) = tick() {
            log(&e.msg);
        }
        next += interval;
        let now = Instant::now();
        if next < now {
            next = now; // fell behind: do not burst
        }
        if !sleep_unless_shutdown(next - now) {
            return Ok(());
        }
    }
}

// ---- time -------------------------------------------------------------------------

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `2024-05-01T12:34:56.789Z` for Unix milliseconds (`-` for 0).
pub fn rfc3339_ms(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    let secs = (ms / 1000) as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        ms % 1000
    )
}

/// Wall-clock Unix ms of a process start time given in clock ticks since boot.
pub fn start_ticks_to_ms(ticks: u64) -> Option<u64> {
    if ticks == 0 {
        return None;
    }
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return None;
    }
    Some(btime * 1000 + ticks * 1000 / hz as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("abc").is_err());
    }

    #[test]
    fn label_pairs() {
        assert_eq!(
            parse_label_pair("a=b=c").unwrap(),
            ("a".into(), "b=c".into())
        );
        assert_eq!(parse_label_pair("_x=").unwrap(), ("_x".into(), "".into()));
        assert!(parse_label_pair("1a=b").is_err());
        assert!(parse_label_pair("ab").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339_ms(0), "-");
        assert_eq!(rfc3339_ms(1), "1970-01-01T00:00:00.001Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_714_566_896_789), "2024-05-01T12:34:56.789Z");
    }
}
