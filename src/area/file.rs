//! Creating and opening area files safely.
//!
//! Nothing about a file found at a path is trusted: every open is made with
//! `O_NOFOLLOW | O_NONBLOCK | O_NOCTTY` (so a FIFO or a device cannot block
//! it), and the opened descriptor is then checked with `fstat` — a regular
//! file, owned by the effective uid (or an owner the caller allowed), not
//! writable by its group or by every user (unless allowed) — before it is
//! locked or mapped. Every wait (the `flock` of a creator or another
//! opener, a creator that has not initialised its file yet) is bounded.
//! No process-local lock is held across any of this.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use super::format::*;
use super::{map_file, ofd, Area, AreaInner, AreaOptions, OpenMode};
use crate::error::{Error, Result};

/// Default bound on every wait of [`Area::create`] and [`Area::open`].
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an opener waits for the creator of an empty file to initialise
/// it (at most the timeout). A creator makes the file and takes its
/// exclusive `flock` right after, so only a stalled or dead creator (or an
/// empty file that is not an area) outlasts this.
const EMPTY_WAIT: Duration = Duration::from_secs(1);

/// How an area file is checked, and how long its locks are waited for, when
/// it is created or opened ([`Area::create_with`], [`Area::open_with`]).
///
/// By default a file is accepted only if it is a regular file owned by the
/// effective uid of this process, with neither the group nor the "other"
/// write permission bit, and every wait is bounded by 10 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOptions {
    owners: Vec<u32>,
    group_write: bool,
    other_write: bool,
    timeout: Duration,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            owners: Vec::new(),
            group_write: false,
            other_write: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl FileOptions {
    /// The defaults: own files only, no group or other write bit, 10 s bound.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also accept files owned by `uid` (e.g. an exporter running as
    /// another user than the application). Call it once per owner.
    pub fn allow_owner(mut self, uid: u32) -> Self {
        if !self.owners.contains(&uid) {
            self.owners.push(uid);
        }
        self
    }

    /// Accept a file that its group may write (mode `g+w`), for an area
    /// shared by users of one group. New files are still created `0600`.
    pub fn allow_group_write(mut self, allow: bool) -> Self {
        self.group_write = allow;
        self
    }

    /// Accept a file that every user may write (mode `o+w`). Any local user
    /// can then forge or damage its contents: almost never what you want.
    pub fn allow_other_write(mut self, allow: bool) -> Self {
        self.other_write = allow;
        self
    }

    /// Bound on each wait (default 10 s): for the file lock another process
    /// holds while it creates or validates the file. After it, the call fails
    /// with [`Error::FileLockTimeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Why the file behind `meta` (from `fstat` on the opened descriptor) is
    /// not acceptable, if it is not.
    fn refusal(&self, meta: &std::fs::Metadata) -> Option<String> {
        let ft = meta.file_type();
        if !ft.is_file() {
            return Some(format!("it is {}, not a regular file", kind_of(&ft)));
        }
        let owner = meta.uid();
        let me = effective_uid();
        if owner != me && !self.owners.contains(&owner) {
            return Some(format!(
                "it is owned by uid {owner}, not by this process's effective uid {me} \
                 (another user may have planted it; FileOptions::allow_owner accepts an owner)"
            ));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o002 != 0 && !self.other_write {
            return Some(format!(
                "every user may write it (mode {mode:04o}); make it 0600"
            ));
        }
        if mode & 0o020 != 0 && !self.group_write {
            return Some(format!(
                "its group may write it (mode {mode:04o}); make it 0600, or allow group write"
            ));
        }
        None
    }
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// "a FIFO", "a directory", ... for a refusal message.
fn kind_of(ft: &std::fs::FileType) -> &'static str {
    if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// The error for a failed `open(2)` of `path`: a clear refusal when the path
/// names something that is not a regular file, the OS error otherwise.
fn open_error(op: &'static str, path: &Path, e: std::io::Error) -> Error {
    match e.raw_os_error() {
        // O_NOFOLLOW on a symbolic link.
        Some(libc::ELOOP) => Error::unsafe_file(
            path,
            "it is a symbolic link (areas are never opened through one)",
        ),
        // A socket (or a device without a driver); a directory opened for writing.
        Some(libc::ENXIO) | Some(libc::EISDIR) => match std::fs::symlink_metadata(path) {
            Ok(m) if !m.file_type().is_file() => Error::unsafe_file(
                path,
                format!("it is {}, not a regular file", kind_of(&m.file_type())),
            ),
            _ => Error::io(op, path, e),
        },
        _ => Error::io(op, path, e),
    }
}

/// Open `path` without following a symbolic link and without blocking, check
/// the opened file, and clear `O_NONBLOCK`. With `create`, a missing file is
/// created `0600` (exclusively: an existing one is opened, never truncated).
fn open_checked(path: &Path, write: bool, create: bool, opts: &FileOptions) -> Result<File> {
    let flags = libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
    let mut attempts = 0;
    let file = loop {
        let mut o = OpenOptions::new();
        o.read(true).write(write).custom_flags(flags);
        if create {
            o.create_new(true).mode(0o600);
            match o.open(path) {
                Ok(f) => break f,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(open_error("create", path, e)),
            }
            // It exists: open it as it is (never through O_CREAT, which the
            // kernel may refuse for another user's file in a sticky directory
            // before we could say why).
            let mut o = OpenOptions::new();
            o.read(true).write(write).custom_flags(flags);
            match o.open(path) {
                Ok(f) => break f,
                // Removed between the two opens: try again, a few times.
                Err(e) if e.kind() == ErrorKind::NotFound && attempts < 8 => attempts += 1,
                Err(e) => return Err(open_error("open", path, e)),
            }
        } else {
            match o.open(path) {
                Ok(f) => break f,
                Err(e) => return Err(open_error("open", path, e)),
            }
        }
    };
    let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
    if let Some(reason) = opts.refusal(&meta) {
        return Err(Error::unsafe_file(path, reason));
    }
    // SAFETY: valid fd owned by `file`; F_GETFL/F_SETFL take and return flags.
    let cleared = unsafe {
        let fl = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
        fl >= 0 && libc::fcntl(file.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK) == 0
    };
    if !cleared {
        return Err(Error::io("fcntl", path, std::io::Error::last_os_error()));
    }
    Ok(file)
}

/// Sleep a little before retrying, growing from 100 µs to 10 ms, never past
/// `deadline`. `false` once the deadline has passed.
fn back_off(delay: &mut Duration, deadline: Instant) -> bool {
    let now = Instant::now();
    if now >= deadline {
        return false;
    }
    std::thread::sleep((*delay).min(deadline - now));
    *delay = (*delay * 2).min(Duration::from_millis(10));
    true
}

impl Area {
    /// Create the area file at `path`, or open it if it exists with a compatible layout.
    ///
    /// The file is created `0600`, exclusively, without following a symbolic
    /// link. An existing file is used only if it passes the checks of
    /// [`FileOptions::default`] (see [`Area::create_with`]). Two processes
    /// creating the same file at once end up with one valid area (an
    /// exclusive `flock` guards initialisation). An existing area keeps its
    /// own size.
    pub fn create(path: impl AsRef<Path>, options: &AreaOptions) -> Result<Area> {
        Self::create_with(path, options, &FileOptions::default())
    }

    /// [`Area::create`] with explicit file checks and wait bound.
    ///
    /// Fails with [`Error::UnsafeFile`] (naming the file and the reason) if
    /// the path is a symbolic link, a FIFO, socket, device or directory, or a
    /// file owned by another user or writable by others than `file` allows;
    /// with [`Error::FileLockTimeout`] if another process holds the file's
    /// `flock` longer than the bound. Nothing is ever written to a refused file.
    pub fn create_with(
        path: impl AsRef<Path>,
        options: &AreaOptions,
        file_options: &FileOptions,
    ) -> Result<Area> {
        options.check()?;
        let path = path.as_ref();
        let deadline = Instant::now() + file_options.timeout;
        let file = open_checked(path, true, true, file_options)?;
        let _flock = Flock::take(&file, libc::LOCK_EX, deadline, path)?;
        let mut size = file
            .metadata()
            .map_err(|e| Error::io("stat", path, e))?
            .len();
        if size > 0 && creator_died_initialising(&file) {
            // We hold the exclusive flock its creator held, and no opener
            // accepts an uninitialised header: nobody uses it. Start over.
            file.set_len(0).map_err(|e| Error::io("reset", path, e))?;
            size = 0;
        }
        if size == 0 {
            let len = options.pages as usize * PAGE_SIZE;
            file.set_len(len as u64)
                .map_err(|e| Error::io("size", path, e))?;
            // The file stays sparse: only the header and worker pages are
            // reserved now; the allocator reserves data pages as it first
            // hands them out (`AreaInner::reserve_space`), so a full disk
            // refuses a registration instead of raising SIGBUS later.
            let head = PAGE_SIZE * (1 + super::worker_table_pages(options.max_workers));
            let r = match fallocate(file.as_raw_fd(), 0, head.min(len)) {
                // No fallocate on this filesystem: reserve the whole file
                // now, as before (glibc emulates it by writing).
                libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL => {
                    // SAFETY: valid fd, offset 0, length within the file we just sized.
                    unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) }
                }
                r => r,
            };
            if r != 0 && r != libc::EOPNOTSUPP && r != libc::EINVAL {
                let _ = file.set_len(0);
                return Err(Error::io(
                    "allocate",
                    path,
                    std::io::Error::from_raw_os_error(r),
                ));
            }
            let map = map_file(&file, len, false).map_err(|e| Error::io("map", path, e))?;
            let kept = ofd::reopen_file(&file, Some(path), true)
                .map_err(|e| Error::io("reopen", path, e))?;
            let inner = AreaInner::initialize(map, len, options, Some(path.to_path_buf()), kept);
            return Ok(Area::wrap(inner));
        }
        Self::map_existing(&file, size, path, OpenMode::ReadWrite)
    }

    /// Open an existing area file.
    ///
    /// The file must pass the checks of [`FileOptions::default`] (see
    /// [`Area::open_with`]). Waits (bounded) for a creator that is still
    /// initialising it.
    pub fn open(path: impl AsRef<Path>, mode: OpenMode) -> Result<Area> {
        Self::open_with(path, mode, &FileOptions::default())
    }

    /// [`Area::open`] with explicit file checks and wait bound.
    ///
    /// Never blocks on the file itself (a FIFO or device at the path is
    /// refused with [`Error::UnsafeFile`] at once). While another process
    /// holds the file's exclusive `flock` (its creator initialising it),
    /// waits up to the bound, then fails with [`Error::FileLockTimeout`]. An
    /// empty file is a creator that has not locked it yet: it is waited for
    /// up to 1 s (at most the bound), then refused as too small.
    pub fn open_with(
        path: impl AsRef<Path>,
        mode: OpenMode,
        file_options: &FileOptions,
    ) -> Result<Area> {
        let path = path.as_ref();
        let start = Instant::now();
        let deadline = start + file_options.timeout;
        let empty_deadline = start + EMPTY_WAIT.min(file_options.timeout);
        let file = open_checked(path, mode == OpenMode::ReadWrite, false, file_options)?;
        let mut delay = Duration::from_micros(100);
        loop {
            // Wait for a creator that is still initialising.
            let flock = Flock::take(&file, libc::LOCK_SH, deadline, path)?;
            let size = file
                .metadata()
                .map_err(|e| Error::io("stat", path, e))?
                .len();
            // A creator sizes and initialises its file under the exclusive
            // flock, so under our shared one a size of 0 means the creator
            // has not taken its flock yet (or died before): wait for it.
            if size == 0 {
                drop(flock);
                if back_off(&mut delay, empty_deadline) {
                    continue;
                }
            }
            return Self::map_existing(&file, size, path, mode);
        }
    }

    /// Map and validate an existing file of `size` bytes (its flock held).
    fn map_existing(file: &File, size: u64, path: &Path, mode: OpenMode) -> Result<Area> {
        if size < (MIN_PAGES as usize * PAGE_SIZE) as u64 {
            return Err(Error::IncompatibleArea(format!(
                "{}: {size} bytes is too small to be an area",
                path.display()
            )));
        }
        if size > MAX_PAGES as u64 * PAGE_SIZE as u64 {
            return Err(Error::IncompatibleArea(format!(
                "{}: {size} bytes is larger than any area",
                path.display()
            )));
        }
        let map = map_file(file, size as usize, mode == OpenMode::ReadOnly)
            .map_err(|e| Error::io("map", path, e))?;
        let kept = ofd::reopen_file(file, Some(path), mode == OpenMode::ReadWrite)
            .map_err(|e| Error::io("reopen", path, e))?;
        let inner = AreaInner::validate(
            map,
            size as usize,
            mode == OpenMode::ReadOnly,
            Some(path.to_path_buf()),
            kept,
        )
        .map_err(|e| match e {
            Error::IncompatibleArea(m) => {
                Error::IncompatibleArea(format!("{}: {m}", path.display()))
            }
            other => other,
        })?;
        Ok(Area::wrap(inner))
    }
}

/// Whether the file starts with a header whose creator never finished:
/// magic not yet written and init state not READY.
fn creator_died_initialising(file: &File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 32];
    if file.read_exact_at(&mut head, 0).is_err() {
        return false;
    }
    let u32_at =
        |off: usize| u32::from_ne_bytes(head[off..off + 4].try_into().unwrap_or([0xff; 4]));
    let magic = u64::from_ne_bytes(
        head[hdr::MAGIC..hdr::MAGIC + 8]
            .try_into()
            .unwrap_or([1; 8]),
    );
    let state = u32_at(hdr::INIT_STATE);
    let version = u32_at(hdr::VERSION);
    let page_size = u32_at(hdr::PAGE_SIZE);
    let size_ok = file
        .metadata()
        .map(|m| m.len() % PAGE_SIZE as u64 == 0)
        .unwrap_or(false);
    // Only what an interrupted `initialize` leaves behind: no magic, state
    // none or busy, the fields it writes either unwritten or ours.
    magic == 0
        && (state == 0 || state == INIT_BUSY)
        && (version == 0 || version == FORMAT_VERSION)
        && (page_size == 0 || page_size == PAGE_SIZE as u32)
        && size_ok
}

/// An `flock` held for the scope of area creation or opening.
struct Flock<'f>(&'f File);

impl<'f> Flock<'f> {
    /// Take `op` (`LOCK_EX` or `LOCK_SH`) without ever blocking in the
    /// kernel: poll with `LOCK_NB`, backing off, until `deadline`.
    fn take(file: &'f File, op: libc::c_int, deadline: Instant, path: &Path) -> Result<Self> {
        let start = Instant::now();
        let mut delay = Duration::from_micros(100);
        loop {
            // SAFETY: valid fd owned by `file`.
            if unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
                return Ok(Flock(file));
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EWOULDBLOCK) => {
                    if !back_off(&mut delay, deadline) {
                        return Err(Error::FileLockTimeout {
                            path: path.to_path_buf(),
                            waited_ms: start.elapsed().as_millis() as u64,
                        });
                    }
                }
                Some(libc::EINTR) => {}
                _ => return Err(Error::io("lock", path, e)),
            }
        }
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        // SAFETY: valid fd owned by the borrowed file.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// `fallocate(fd, 0, off, len)` (no emulation), retried on `EINTR`: 0 or the errno.
fn fallocate(fd: std::os::fd::RawFd, off: usize, len: usize) -> i32 {
    loop {
        // SAFETY: plain syscall on a descriptor; a bad one only fails.
        let r = unsafe { libc::fallocate(fd, 0, off as libc::off_t, len as libc::off_t) };
        if r == 0 {
            return 0;
        }
        let e = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        if e != libc::EINTR {
            return e;
        }
    }
}

impl AreaInner {
    /// Reserve the file's blocks for the pages the allocator is about to
    /// use past `cursor`, up to `end` (page-rounded). Every page below the
    /// cursor is already reserved (the header and worker pages at creation,
    /// data pages here before the cursor passed them), so the cursor is the
    /// reserved high-water mark and nothing is added to the format; a
    /// repeated reservation of a reserved range is a no-op anyway.
    ///
    /// False when the blocks cannot be had (`ENOSPC`, `EFBIG`, a lost
    /// descriptor, …): the caller refuses the allocation (`AreaFull`)
    /// rather than let a store into a hole raise SIGBUS. A filesystem
    /// without `fallocate` had the whole file reserved at creation.
    pub(crate) fn reserve_space(&self, cursor: usize, end: usize) -> bool {
        let round = |x: usize| x.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let (from, to) = (round(cursor), round(end).min(self.len()));
        if to <= from {
            return true;
        }
        let Some(fd) = self.file.get(self.path.as_deref()) else {
            return false;
        };
        matches!(
            fallocate(fd, from, to - from),
            0 | libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL
        )
    }
}
