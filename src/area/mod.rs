//! The shared area: a file or an anonymous shared mapping of fixed-size
//! pages holding a header, a worker table and records (families and series).
//!
//! Everything in the mapping is reached through `AreaInner`'s accessors,
//! which bounds-check every offset: bytes in the area come from other
//! processes and are never trusted.

pub(crate) mod cells;
mod epoch;
pub(crate) mod exemplar_rec;
mod file;
pub(crate) mod fork;
pub(crate) mod format;
mod free;
pub(crate) use free::SeriesLiveness;
pub(crate) mod gauge_ext;
pub(crate) mod gauge_fold;
pub(crate) mod index;
mod lock;
pub(crate) mod ofd;
pub(crate) mod records;
mod workers;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::process;
use format::*;

pub(crate) use epoch::WriteGuard;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub use epoch::{hook as __write_hook, test_disable_membarrier as __test_disable_membarrier};
pub use file::FileOptions;
pub(crate) use lock::AreaLockGuard;
#[doc(hidden)]
pub use lock::HeldAreaLock;
pub(crate) use lock::ATTACH_WAIT;
pub use workers::WorkerInfo;

/// How to create an area.
///
/// ```
/// use promshm::{Area, AreaOptions};
///
/// let options = AreaOptions {
///     max_workers: 8,
///     ..AreaOptions::with_pages(256) // 1 MiB
/// };
/// assert_eq!(Area::anonymous(&options)?.pages(), 256);
/// // Too small for the header, the worker table and a page of records.
/// assert!(Area::anonymous(&AreaOptions::with_pages(1)).is_err());
/// # Ok::<(), promshm::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct AreaOptions {
    /// Number of 4 KiB pages (header and worker table included). Default 4096 (16 MiB).
    pub pages: u32,
    /// Number of worker slots: the most processes attached at once. Default 64.
    pub max_workers: u32,
    /// Make new families eager (write-through) by default.
    pub eager: bool,
}

impl Default for AreaOptions {
    fn default() -> Self {
        AreaOptions {
            pages: 4096,
            max_workers: 64,
            eager: false,
        }
    }
}

impl AreaOptions {
    /// Options with `pages` pages and the other defaults.
    pub fn with_pages(pages: u32) -> Self {
        AreaOptions {
            pages,
            ..Default::default()
        }
    }

    fn check(&self) -> Result<()> {
        if !(MIN_PAGES..=MAX_PAGES).contains(&self.pages) {
            return Err(Error::InvalidArgument(format!(
                "pages must be in {MIN_PAGES}..={MAX_PAGES}, got {}",
                self.pages
            )));
        }
        if !(1..=MAX_WORKERS).contains(&self.max_workers) {
            return Err(Error::InvalidArgument(format!(
                "max_workers must be in 1..={MAX_WORKERS}, got {}",
                self.max_workers
            )));
        }
        let worker_pages = worker_table_pages(self.max_workers);
        if 1 + worker_pages + 1 > self.pages as usize {
            return Err(Error::InvalidArgument(format!(
                "{} pages cannot hold the header, {} worker slots and a data page",
                self.pages, self.max_workers
            )));
        }
        Ok(())
    }
}

fn worker_table_pages(max_workers: u32) -> usize {
    (max_workers as usize * slot::SIZE).div_ceil(PAGE_SIZE)
}

/// How to open an existing area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read and write: register, update, flush.
    ReadWrite,
    /// Read only: render and inspect. Never writes a byte, never reaps.
    ReadOnly,
}

/// A shared area, mapped into this process. Cheap to clone (an `Arc`).
///
/// Create it in the parent before `fork` (anonymous or file) or open the
/// same file from every process; all of them then see one store.
///
/// ```
/// use promshm::{Area, AreaOptions, Opts};
///
/// let area = Area::anonymous(&AreaOptions::default())?; // in the parent, before fork()
/// let jobs = area.registry().counter(Opts::new("jobs", "Jobs run."))?.get()?;
/// jobs.inc();
/// promshm::flush(); // updates are buffered per thread until a flush
/// assert_eq!(jobs.get(), 1.0);
/// assert_eq!(area.pages(), 4096);
/// # Ok::<(), promshm::Error>(())
/// ```
#[derive(Clone)]
pub struct Area {
    pub(crate) inner: Arc<AreaInner>,
}

impl std::fmt::Debug for Area {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Area")
            .field("path", &self.inner.path)
            .field("pages", &(self.inner.len / PAGE_SIZE))
            .field("read_only", &self.inner.read_only)
            .finish()
    }
}

/// The process-local side of a mapped area.
pub(crate) struct AreaInner {
    _map: memmap2::MmapRaw,
    base: *mut u8,
    len: usize,
    pub(crate) read_only: bool,
    pub(crate) path: Option<PathBuf>,
    max_workers: u32,
    workers_offset: usize,
    data_offset: usize,
    /// Serializes this process's threads before the cross-process lock.
    pub(crate) local_lock: std::sync::Mutex<()>,
    /// This process's worker slot: `fork_gen << 32 | (slot + 1)`, 0 when not attached.
    worker: AtomicU64,
    /// Same pid namespace as the creator (matters only without OFD locks).
    pub(crate) same_pid_ns: bool,
    /// The area's file (a memfd for anonymous areas), kept open on its own
    /// open file description, which never holds a lock: liveness is asked
    /// through it, and this process's lock descriptor is reopened from it.
    file: ofd::KeptFd,
    /// Liveness by open-file-description locks (`FLAG_OFD_LOCKS`, the creator's choice).
    ofd: bool,
    /// This process's lock descriptor (see `lock`).
    lock_fd: lock::LockFd,
    /// Backoff of lazy attaching after a failure.
    attach_backoff: workers::Backoff,
    /// Backoff of reaping by renders after a failure.
    reap_backoff: workers::Backoff,
    /// Process-local index of families and series (see `index`).
    pub(crate) index: std::sync::Mutex<index::LocalIndex>,
    /// Process-unique id (keys the threads' cached lanes, `epoch`).
    id: u64,
    /// Process-unique key of this area's lanes as cached by threads: new
    /// whenever `worker` changes (`epoch`'s fast path compares only this).
    lane_key: AtomicU64,
    /// Generations published before this process's last barrier (`epoch`).
    barrier_gen: AtomicU64,
    /// Process-local text of series kept by renders (see `render`).
    pub(crate) series_text: std::sync::Mutex<crate::encoding::SeriesTextCache>,
}

// SAFETY: the mapping is only accessed through atomics or through copies of
// bytes that are immutable once their record is committed; the raw pointer
// stays valid as long as `_map` lives, which is as long as `AreaInner`.
unsafe impl Send for AreaInner {}
// SAFETY: see `Send`; every shared mutation goes through atomics.
unsafe impl Sync for AreaInner {}

impl Area {
    fn wrap(inner: AreaInner) -> Area {
        let inner = Arc::new(inner);
        fork::register(&inner);
        Area { inner }
    }

    /// Create an anonymous shared area (a `memfd` mapped `MAP_SHARED`).
    ///
    /// Make it before `fork`: children inherit the mapping and share it.
    pub fn anonymous(options: &AreaOptions) -> Result<Area> {
        options.check()?;
        let len = options.pages as usize * PAGE_SIZE;
        // SAFETY: a valid NUL-terminated name and flags.
        let fd = unsafe { libc::memfd_create(c"promshm".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(Error::io(
                "memfd_create",
                "(anonymous)",
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: fd is a fresh descriptor we own.
        let file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        file.set_len(len as u64)
            .map_err(|e| Error::io("size", "(anonymous)", e))?;
        let map = map_file(&file, len, false).map_err(|e| Error::io("map", "(anonymous)", e))?;
        Ok(Area::wrap(AreaInner::initialize(
            map, len, options, None, file,
        )))
    }

    /// The file behind the area, if any.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Whether the area was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// Total pages of the area.
    pub fn pages(&self) -> u32 {
        (self.inner.len / PAGE_SIZE) as u32
    }

    /// Numbers about the area: usage and the self-metric counters.
    pub fn stats(&self) -> AreaStats {
        let a = &self.inner;
        let cursor = a.cursor();
        AreaStats {
            pages_total: (a.len / PAGE_SIZE) as u32,
            pages_used: cursor.div_ceil(PAGE_SIZE) as u32,
            bytes_free: a.len - cursor,
            bytes_in_free_records: a.hdr(hdr::FREE_BYTES).load(Ordering::Relaxed),
            records_freed: a.hdr(hdr::STAT_FREED).load(Ordering::Relaxed),
            records_reused: a.hdr(hdr::STAT_REUSED).load(Ordering::Relaxed),
            free_list_rebuilds: a.hdr(hdr::STAT_FREE_REBUILDS).load(Ordering::Relaxed),
            max_workers: a.max_workers,
            families: a.hdr(hdr::STAT_FAMILIES).load(Ordering::Relaxed),
            series: a.hdr(hdr::STAT_SERIES).load(Ordering::Relaxed),
            refused: a.hdr(hdr::STAT_REFUSED).load(Ordering::Relaxed),
            reaped_workers: a.hdr(hdr::STAT_REAPED).load(Ordering::Relaxed),
            flushes: a.hdr(hdr::STAT_FLUSHES).load(Ordering::Relaxed),
            bad_records: a.hdr(hdr::STAT_BAD_RECORDS).load(Ordering::Relaxed),
            render_ns: a.hdr(hdr::STAT_RENDER_NS).load(Ordering::Relaxed),
            locks_recovered: a.hdr(hdr::STAT_LOCK_RECOVERED).load(Ordering::Relaxed),
            dropped_updates: a.hdr(hdr::STAT_DROPPED).load(Ordering::Relaxed),
            lock_timeouts: a.hdr(hdr::STAT_LOCK_TIMEOUTS).load(Ordering::Relaxed),
            locks_taken: a.hdr(hdr::STAT_LOCKS_TAKEN).load(Ordering::Relaxed),
            name_clashes: a.hdr(hdr::STAT_NAME_CLASHES).load(Ordering::Relaxed),
            format_version: FORMAT_VERSION,
            created_ms: a.hdr(hdr::CREATED_MS).load(Ordering::Relaxed),
        }
    }

    /// Attach this process to a worker slot (done lazily by gauge writes and
    /// flushes; call it to fail early). Returns the slot index. Waits at
    /// most 100 ms for the area lock; after a failure, attempts fail at once
    /// until a backoff (100 ms doubling to 5 s) has passed.
    pub fn attach(&self) -> Result<u32> {
        self.inner.worker_slot()
    }

    /// The worker table.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.inner.worker_infos()
    }

    /// Find workers whose process is gone (SIGKILL and OOM included), fold
    /// their gauge values as their mode says, and free their slots.
    /// Returns how many were reaped. A read-only area reaps nothing.
    pub fn reap_dead_workers(&self) -> Result<u32> {
        self.inner.reap_dead_workers_now()
    }

    /// Test support: take the area lock and hold it until the result is dropped.
    #[doc(hidden)]
    pub fn __hold_lock_for_tests(&self) -> Result<HeldAreaLock<'_>> {
        self.inner.lock().map(HeldAreaLock::new)
    }
}

/// Usage and self-metric counters of an area.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AreaStats {
    /// Pages in the area.
    pub pages_total: u32,
    /// Pages holding the header, worker table and records.
    pub pages_used: u32,
    /// Bytes not yet allocated (after the allocation cursor).
    pub bytes_free: usize,
    /// Bytes in free records (removed series, replaced info blobs), reused
    /// by later registrations of the same size class (informative).
    pub bytes_in_free_records: u64,
    /// Records freed so far.
    pub records_freed: u64,
    /// Allocations served from the free lists so far.
    pub records_reused: u64,
    /// Free lists rebuilt from a walk of the records (a damaged list, or an
    /// area that was full and reclaimed what dead holders left).
    pub free_list_rebuilds: u64,
    /// Worker slots.
    pub max_workers: u32,
    /// Families registered.
    pub families: u64,
    /// Live series.
    pub series: u64,
    /// Registrations refused because the area was full.
    pub refused: u64,
    /// Dead workers reaped.
    pub reaped_workers: u64,
    /// Flushes into the area.
    pub flushes: u64,
    /// Bad records skipped by the last render.
    pub bad_records: u64,
    /// Duration of the last render in nanoseconds.
    pub render_ns: u64,
    /// Area locks left by dead holders and recovered.
    pub locks_recovered: u64,
    /// Gauge updates dropped because this process had no worker slot (none
    /// free, or attaching is backing off after a failure).
    pub dropped_updates: u64,
    /// Waits for the area lock that gave up (`LockTimeout`).
    pub lock_timeouts: u64,
    /// Times the area lock was taken.
    pub locks_taken: u64,
    /// Registrations refused because a name the family would render is
    /// another family's ([`Error::NameTaken`]).
    pub name_clashes: u64,
    /// Layout version.
    pub format_version: u32,
    /// Creation time, Unix milliseconds.
    pub created_ms: u64,
}

fn map_file(file: &File, len: usize, read_only: bool) -> std::io::Result<memmap2::MmapRaw> {
    let mut opts = memmap2::MmapOptions::new();
    opts.len(len);
    if read_only {
        opts.map_raw_read_only(file)
    } else {
        opts.map_raw(file)
    }
}

impl AreaInner {
    fn from_map(
        map: memmap2::MmapRaw,
        len: usize,
        read_only: bool,
        path: Option<PathBuf>,
        file: File,
    ) -> AreaInner {
        process::init();
        // Read our start time now, while opening files evidently works.
        process::identity();
        let base = map.as_mut_ptr();
        AreaInner {
            _map: map,
            base,
            len,
            read_only,
            path,
            max_workers: 0,
            workers_offset: 0,
            data_offset: 0,
            local_lock: std::sync::Mutex::new(()),
            worker: AtomicU64::new(0),
            same_pid_ns: false,
            lock_fd: lock::LockFd::new(ofd::file_id(file.as_raw_fd()).unwrap_or((0, 0))),
            file: ofd::KeptFd::new(file),
            ofd: false,
            attach_backoff: Default::default(),
            reap_backoff: Default::default(),
            index: std::sync::Mutex::new(Default::default()),
            id: epoch::new_area_id(),
            lane_key: AtomicU64::new(epoch::new_area_id()),
            barrier_gen: AtomicU64::new(0),
            series_text: std::sync::Mutex::new(Default::default()),
        }
    }

    /// Write a fresh header into a zeroed mapping.
    fn initialize(
        map: memmap2::MmapRaw,
        len: usize,
        options: &AreaOptions,
        path: Option<PathBuf>,
        file: File,
    ) -> AreaInner {
        let ofd = ofd::supported(&file);
        let mut a = AreaInner::from_map(map, len, false, path, file);
        a.ofd = ofd;
        let worker_pages = worker_table_pages(options.max_workers);
        a.max_workers = options.max_workers;
        a.workers_offset = PAGE_SIZE;
        a.data_offset = PAGE_SIZE * (1 + worker_pages);
        a.same_pid_ns = true;
        a.hdr32(hdr::INIT_STATE).store(INIT_BUSY, Ordering::Relaxed);
        a.hdr32(hdr::VERSION)
            .store(FORMAT_VERSION, Ordering::Relaxed);
        a.hdr32(hdr::HEADER_SIZE)
            .store(PAGE_SIZE as u32, Ordering::Relaxed);
        a.hdr32(hdr::PAGE_SIZE)
            .store(PAGE_SIZE as u32, Ordering::Relaxed);
        a.hdr32(hdr::PAGE_COUNT)
            .store((len / PAGE_SIZE) as u32, Ordering::Relaxed);
        a.hdr32(hdr::ENDIAN).store(ENDIAN_TAG, Ordering::Relaxed);
        a.hdr32(hdr::MAX_WORKERS)
            .store(options.max_workers, Ordering::Relaxed);
        a.hdr32(hdr::FLAGS).store(
            if options.eager { FLAG_EAGER } else { 0 } | if ofd { FLAG_OFD_LOCKS } else { 0 },
            Ordering::Relaxed,
        );
        a.hdr32(hdr::WORKERS_OFFSET)
            .store(a.workers_offset as u32, Ordering::Relaxed);
        a.hdr32(hdr::DATA_OFFSET)
            .store(a.data_offset as u32, Ordering::Relaxed);
        a.hdr(hdr::ALLOC_CURSOR)
            .store(a.data_offset as u64, Ordering::Relaxed);
        a.hdr(hdr::PID_NS)
            .store(process::pid_namespace(), Ordering::Relaxed);
        a.hdr(hdr::CREATED_MS)
            .store(process::now_ms(), Ordering::Relaxed);
        if !epoch::barrier_available() {
            // Writers then order their lane stores themselves (SeqCst).
            a.hdr(hdr::LANE_EPOCH).store(LANE_SEQCST, Ordering::Relaxed);
        }
        a.hdr32(hdr::INIT_STATE)
            .store(INIT_READY, Ordering::Release);
        a.hdr(hdr::MAGIC).store(MAGIC, Ordering::Release);
        a
    }

    /// Check an existing header; nothing in it is trusted before this passes.
    fn validate(
        map: memmap2::MmapRaw,
        len: usize,
        read_only: bool,
        path: Option<PathBuf>,
        file: File,
    ) -> Result<AreaInner> {
        let mut a = AreaInner::from_map(map, len, read_only, path, file);
        let magic = a.hdr(hdr::MAGIC).load(Ordering::Acquire);
        if magic != MAGIC {
            if magic == 0 && a.hdr32(hdr::INIT_STATE).load(Ordering::Acquire) != INIT_READY {
                return Err(Error::IncompatibleArea(
                    "not initialised (its creator died or is still creating it)".into(),
                ));
            }
            return Err(Error::IncompatibleArea(
                "not a promshm area (bad magic)".into(),
            ));
        }
        let endian = a.hdr32(hdr::ENDIAN).load(Ordering::Relaxed);
        if endian != ENDIAN_TAG {
            return Err(Error::IncompatibleArea(format!(
                "written on a machine of the other byte order (tag {endian:#x})"
            )));
        }
        let version = a.hdr32(hdr::VERSION).load(Ordering::Relaxed);
        if version != FORMAT_VERSION {
            return Err(Error::IncompatibleArea(format!(
                "format version {version}, this build reads version {FORMAT_VERSION}"
            )));
        }
        if a.hdr32(hdr::INIT_STATE).load(Ordering::Acquire) != INIT_READY {
            return Err(Error::IncompatibleArea(
                "initialisation never finished".into(),
            ));
        }
        let page_size = a.hdr32(hdr::PAGE_SIZE).load(Ordering::Relaxed) as usize;
        let header_size = a.hdr32(hdr::HEADER_SIZE).load(Ordering::Relaxed) as usize;
        if page_size != PAGE_SIZE || header_size != PAGE_SIZE {
            return Err(Error::IncompatibleArea(format!(
                "page size {page_size} / header size {header_size}, expected {PAGE_SIZE}"
            )));
        }
        let pages = a.hdr32(hdr::PAGE_COUNT).load(Ordering::Relaxed) as usize;
        if pages < MIN_PAGES as usize || pages * PAGE_SIZE > len {
            return Err(Error::CorruptArea(format!(
                "header says {pages} pages but the file holds {} bytes",
                len
            )));
        }
        // Only the declared size is used, even if the file is longer.
        a.len = pages * PAGE_SIZE;
        let max_workers = a.hdr32(hdr::MAX_WORKERS).load(Ordering::Relaxed);
        let workers_offset = a.hdr32(hdr::WORKERS_OFFSET).load(Ordering::Relaxed) as usize;
        let data_offset = a.hdr32(hdr::DATA_OFFSET).load(Ordering::Relaxed) as usize;
        if !(1..=MAX_WORKERS).contains(&max_workers)
            || workers_offset != PAGE_SIZE
            || data_offset != PAGE_SIZE * (1 + worker_table_pages(max_workers))
            || data_offset >= a.len
        {
            return Err(Error::CorruptArea(format!(
                "inconsistent layout: {max_workers} workers at {workers_offset}, data at {data_offset}"
            )));
        }
        a.max_workers = max_workers;
        a.workers_offset = workers_offset;
        a.data_offset = data_offset;
        let ns = process::pid_namespace();
        a.same_pid_ns = ns != 0 && ns == a.hdr(hdr::PID_NS).load(Ordering::Relaxed);
        a.ofd = a.hdr32(hdr::FLAGS).load(Ordering::Relaxed) & FLAG_OFD_LOCKS != 0;
        Ok(a)
    }

    // ---- bounds-checked access to the mapping -------------------------------------

    /// A u64 header field. Header offsets are constants below `PAGE_SIZE <= len`.
    #[inline]
    pub(crate) fn hdr(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off % 8 == 0 && off + 8 <= PAGE_SIZE);
        // SAFETY: `off` is a constant 8-aligned offset inside the header page,
        // which is inside the mapping (len >= MIN_PAGES pages); the mapping is
        // page-aligned, so the pointer is 8-aligned; it lives as long as `self`.
        unsafe { AtomicU64::from_ptr(self.base.add(off).cast()) }
    }

    /// A u32 header field.
    #[inline]
    fn hdr32(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off % 4 == 0 && off + 4 <= PAGE_SIZE);
        // SAFETY: as for `hdr`, with 4-byte alignment.
        unsafe { AtomicU32::from_ptr(self.base.add(off).cast()) }
    }

    /// The u64 at `off`, or `None` if it is out of bounds or misaligned.
    #[inline]
    pub(crate) fn u64_at(&self, off: usize) -> Option<&AtomicU64> {
        if off % 8 != 0 || off.checked_add(8)? > self.len {
            return None;
        }
        // SAFETY: checked just above: aligned and inside the mapping.
        Some(unsafe { AtomicU64::from_ptr(self.base.add(off).cast()) })
    }

    /// The `len / 8` u64 words from `off` (a record's), or `None` if they
    /// are out of bounds or misaligned: reads within a record with one
    /// bounds check.
    #[inline]
    pub(crate) fn u64_words(&self, off: usize, len: usize) -> Option<&[AtomicU64]> {
        if off % 8 != 0 || off.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: checked just above: aligned and inside the mapping, which
        // lives as long as `self`; every access is atomic (the bytes are
        // shared with other processes).
        Some(unsafe { std::slice::from_raw_parts(self.base.add(off).cast(), len / 8) })
    }

    /// The `len / 4` u32 words from `off`, or `None` if they are out of
    /// bounds or misaligned (as [`u64_words`](Self::u64_words)).
    #[inline]
    pub(crate) fn u32_words(&self, off: usize, len: usize) -> Option<&[AtomicU32]> {
        if off % 4 != 0 || off.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: as in `u64_words`, with 4-byte alignment.
        Some(unsafe { std::slice::from_raw_parts(self.base.add(off).cast(), len / 4) })
    }

    /// The u32 at `off`, or `None` if it is out of bounds or misaligned.
    #[inline]
    pub(crate) fn u32_at(&self, off: usize) -> Option<&AtomicU32> {
        if off % 4 != 0 || off.checked_add(4)? > self.len {
            return None;
        }
        // SAFETY: checked just above: aligned and inside the mapping.
        Some(unsafe { AtomicU32::from_ptr(self.base.add(off).cast()) })
    }

    /// Copy `out.len()` bytes from `off`; `false` if out of bounds.
    pub(crate) fn read_bytes(&self, off: usize, out: &mut [u8]) -> bool {
        match off.checked_add(out.len()) {
            Some(end) if end <= self.len => {
                // SAFETY: the range is inside the mapping; `out` is a distinct
                // local buffer. Bytes are copied, never referenced, so a racing
                // writer can only give us wrong bytes, which callers validate.
                unsafe {
                    std::ptr::copy_nonoverlapping(self.base.add(off), out.as_mut_ptr(), out.len())
                };
                true
            }
            _ => false,
        }
    }

    /// Write bytes at `off` (only into records this process allocated and has
    /// not yet committed). `false` if out of bounds or read-only.
    pub(crate) fn write_bytes(&self, off: usize, data: &[u8]) -> bool {
        if self.read_only {
            return false;
        }
        match off.checked_add(data.len()) {
            Some(end) if end <= self.len => {
                // SAFETY: the range is inside a writable mapping, and belongs to a
                // record allocated under the area lock that nobody reads before it
                // is committed with a Release store.
                unsafe {
                    std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.add(off), data.len())
                };
                true
            }
            _ => false,
        }
    }

    /// Size of the mapping in use.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// First byte of the data pages.
    pub(crate) fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// End of allocated records, clamped to the mapping.
    pub(crate) fn cursor(&self) -> usize {
        let c = self.hdr(hdr::ALLOC_CURSOR).load(Ordering::Acquire) as usize;
        c.clamp(self.data_offset, self.len)
    }

    /// Whether new families default to eager.
    pub(crate) fn eager_default(&self) -> bool {
        self.hdr32(hdr::FLAGS).load(Ordering::Relaxed) & FLAG_EAGER != 0
    }

    /// Bump a header statistic.
    pub(crate) fn bump(&self, field: usize, by: u64) {
        if !self.read_only {
            self.hdr(field).fetch_add(by, Ordering::Relaxed);
        }
    }

    /// Set a header statistic.
    pub(crate) fn set_stat(&self, field: usize, v: u64) {
        if !self.read_only {
            self.hdr(field).store(v, Ordering::Relaxed);
        }
    }

    pub(crate) fn max_workers(&self) -> u32 {
        self.max_workers
    }

    /// The area's path for messages (`(anonymous)` for a memfd).
    pub(crate) fn display_path(&self) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| PathBuf::from("(anonymous)"))
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.read_only {
            Err(Error::ReadOnly)
        } else {
            Ok(())
        }
    }
}
