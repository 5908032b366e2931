//! `promshm_area`: create, open, attach, reap, inspect.

use std::ffi::c_char;
use std::sync::Arc;
use std::time::Duration;

use super::handle::{
    borrow, clone_handle, field_ends, flag_arg, free_handle, into_handle, read_extensible, str_arg,
    struct_size, write_extensible, write_opt, ArcHandle, Extensible, Out,
};
use super::result::{check, promshm_result, FfiError};
use crate::area::{Area, AreaOptions, FileOptions, OpenMode};
use crate::encoding::MetricType;

/// A shared area mapped into this process: a file, or an anonymous shared
/// mapping made before `fork()`. Reference-counted (an `Arc` in Rust): the handle is
/// `const`, every function taking it is safe to call from several threads
/// at once, and registries, families and series made from it keep the
/// mapping alive after `promshm_area_free()`. After `fork()` the child uses
/// the handles it inherited.
pub struct promshm_area {
    _private: [u8; 0],
}

impl ArcHandle for promshm_area {
    type Rust = Area;
    const WHAT: &'static str = "area";
}

/// How to create an area. Initialise it with `PROMSHM_AREA_OPTIONS_INIT`
/// (or zero it and set `size`), then set the fields you need: zero in a
/// field means its default, and passing NULL gives the defaults.
/// Extensible: see "Extensible structs" in docs/C-API.md.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct promshm_area_options {
    /// `sizeof(promshm_area_options)` as the caller was compiled with (set by
    /// `PROMSHM_AREA_OPTIONS_INIT`); 0 is `INVALID_ARGUMENT`.
    pub size: u32,
    /// Number of 4 KiB pages, header and worker table included. 0: 4096 (16 MiB).
    pub pages: u32,
    /// Worker slots: the most processes attached at once. 0: 64.
    pub max_workers: u32,
    /// 1: make families eager (write-through) unless they say otherwise; 0:
    /// buffered. Any other value is `INVALID_ARGUMENT`.
    pub eager: u32,
    /// 1: also accept an existing area file owned by the uid in
    /// `allowed_owner` (e.g. an exporter reading an application's area as
    /// another user); 0: only files owned by the effective uid. Any other
    /// value is `INVALID_ARGUMENT`.
    pub allow_owner: u32,
    /// The uid accepted by `allow_owner` = 1 (0 is root). Must be 0 while
    /// `allow_owner` is 0 (`INVALID_ARGUMENT` otherwise: a uid without the
    /// flag is a mistake, not a request).
    pub allowed_owner: u32,
    /// 1: accept an existing file its group may write (mode `g+w`); 0:
    /// refuse it (`UNSAFE_FILE`). New files are created 0600 either way.
    pub allow_group_write: u32,
    /// 1: accept an existing file every user may write (mode `o+w`): any
    /// local user can then forge its contents. 0: refuse it.
    pub allow_other_write: u32,
    /// Bound, in milliseconds, on the wait for the file lock another process
    /// holds while it creates or validates the file; `LOCK_TIMEOUT` after
    /// it. 0: 10000 (10 s).
    pub lock_timeout_ms: u32,
}

// SAFETY: `#[repr(C)]`, `size: u32` first, integers only.
unsafe impl Extensible for promshm_area_options {
    const C_NAME: &'static str = "promshm_area_options";
    const INIT: &'static str = "PROMSHM_AREA_OPTIONS_INIT";
    const FIELD_ENDS: &'static [usize] = field_ends!(
        Self,
        size: u32,
        pages: u32,
        max_workers: u32,
        eager: u32,
        allow_owner: u32,
        allowed_owner: u32,
        allow_group_write: u32,
        allow_other_write: u32,
        lock_timeout_ms: u32,
    );
    fn set_size(&mut self, size: u32) {
        self.size = size;
    }
}
const _: () = assert!(
    promshm_area_options::FIELD_ENDS[8] == size_of::<promshm_area_options>(),
    "an input struct has no padding"
);

/// How `promshm_area_open()` maps an existing area (a `uint32_t`).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct promshm_open_mode(pub u32);

/// Open for reading and writing: register, update, flush, render.
pub const PROMSHM_OPEN_MODE_READ_WRITE: promshm_open_mode = promshm_open_mode(0);
/// Open read-only: render and inspect only; never writes a byte, never reaps.
pub const PROMSHM_OPEN_MODE_READ_ONLY: promshm_open_mode = promshm_open_mode(1);

/// Usage of an area and promshm's own counters (the `promshm_*` self-metrics).
/// Initialise it with `PROMSHM_AREA_STATS_INIT` (or set `size`) before
/// passing it to `promshm_area_get_stats()`. Extensible: see "Extensible
/// structs" in docs/C-API.md.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct promshm_area_stats {
    /// In: `sizeof(promshm_area_stats)` as the caller was compiled with (set
    /// by `PROMSHM_AREA_STATS_INIT`). Out: the number of bytes filled in.
    pub size: u32,
    /// Pages in the area.
    pub pages_total: u32,
    /// Pages holding the header, the worker table and records.
    pub pages_used: u32,
    /// Bytes not yet allocated.
    pub bytes_free: usize,
    /// Worker slots.
    pub max_workers: u32,
    /// Layout version of the area format.
    pub format_version: u32,
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
    /// Damaged records skipped by the last render.
    pub bad_records: u64,
    /// Duration of the last render, nanoseconds.
    pub render_ns: u64,
    /// Area locks left by dead holders and recovered.
    pub locks_recovered: u64,
    /// Gauge updates dropped because the writing process had no worker
    /// slot: none was free, or attaching is backing off after a failure
    /// (a lock timeout, for example).
    pub dropped_updates: u64,
    /// Creation time of the area, Unix milliseconds.
    pub created_ms: u64,
    /// Times the area lock was taken, by every process.
    pub locks_taken: u64,
    /// Waits for the area lock that gave up (`LOCK_TIMEOUT`, or a backoff
    /// of a lazy attach or of a render's reaping), by every process.
    pub lock_timeouts: u64,
    /// Registrations refused with `NAME_TAKEN` (a name the family would
    /// render is another family's), by every process.
    pub name_clashes: u64,
}

// SAFETY: `#[repr(C)]`, `size: u32` first, integers only.
unsafe impl Extensible for promshm_area_stats {
    const C_NAME: &'static str = "promshm_area_stats";
    const INIT: &'static str = "PROMSHM_AREA_STATS_INIT";
    const FIELD_ENDS: &'static [usize] = &[];
    fn set_size(&mut self, size: u32) {
        self.size = size;
    }
}

/// One row of an area's worker table. Set `size` in the first entry of the
/// array given to `promshm_area_workers()` (`PROMSHM_WORKER_INFO_INIT`).
/// Extensible: see "Extensible structs" in docs/C-API.md.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct promshm_worker_info {
    /// In (first entry): `sizeof(promshm_worker_info)` as the caller was
    /// compiled with, which is also the array's stride. Out (every entry):
    /// the number of bytes filled in.
    pub size: u32,
    /// Slot index (the `worker` label of `all`-mode gauges).
    pub slot: u32,
    /// Process id.
    pub pid: u32,
    /// Times this slot was taken.
    pub generation: u32,
    /// Process start time, clock ticks since boot.
    pub start_time: u64,
    /// 1 if the process is still running, as far as this process can tell; 0 if not.
    pub alive: u32,
    /// Attach time, Unix milliseconds.
    pub attached_ms: u64,
    /// Last flush, Unix milliseconds (0: never).
    pub last_flush_ms: u64,
    /// Last sign of life, Unix milliseconds.
    pub heartbeat_ms: u64,
    /// Flushes made by this worker.
    pub flushes: u64,
}

// SAFETY: `#[repr(C)]`, `size: u32` first, integers only.
unsafe impl Extensible for promshm_worker_info {
    const C_NAME: &'static str = "promshm_worker_info";
    const INIT: &'static str = "PROMSHM_WORKER_INFO_INIT";
    const FIELD_ENDS: &'static [usize] = &[];
    fn set_size(&mut self, size: u32) {
        self.size = size;
    }
}

/// The options a C caller gave (NULL: the defaults), validated: the area's
/// and the file's.
unsafe fn options_arg(
    options: *const promshm_area_options,
) -> Result<(AreaOptions, FileOptions), FfiError> {
    let mut o = AreaOptions::default();
    let mut f = FileOptions::new();
    if !options.is_null() {
        // SAFETY: `options` points to a struct of the caller that starts with its `size` field
        // (caller contract).
        let c = unsafe { read_extensible(options, "options")? };
        if c.pages != 0 {
            o.pages = c.pages;
        }
        if c.max_workers != 0 {
            o.max_workers = c.max_workers;
        }
        o.eager = flag_arg(c.eager, "options->eager")?;
        if flag_arg(c.allow_owner, "options->allow_owner")? {
            f = f.allow_owner(c.allowed_owner);
        } else if c.allowed_owner != 0 {
            return Err(FfiError::new(
                promshm_result::InvalidArgument,
                format!(
                    "options->allowed_owner is {} but options->allow_owner is 0: \
                     set allow_owner to 1 to accept files owned by that uid",
                    c.allowed_owner
                ),
            ));
        }
        f = f
            .allow_group_write(flag_arg(c.allow_group_write, "options->allow_group_write")?)
            .allow_other_write(flag_arg(c.allow_other_write, "options->allow_other_write")?);
        if c.lock_timeout_ms != 0 {
            f = f.timeout(Duration::from_millis(u64::from(c.lock_timeout_ms)));
        }
    }
    Ok((o, f))
}

/// A `promshm_open_mode` passed in by a C caller.
fn open_mode_arg(mode: promshm_open_mode) -> Result<OpenMode, FfiError> {
    match mode {
        PROMSHM_OPEN_MODE_READ_WRITE => Ok(OpenMode::ReadWrite),
        PROMSHM_OPEN_MODE_READ_ONLY => Ok(OpenMode::ReadOnly),
        promshm_open_mode(m) => Err(FfiError::new(
            promshm_result::InvalidArgument,
            format!("unknown open mode {m}"),
        )),
    }
}

ffi_fn! {
    /// Create the area file at `path` (mode 0600, `O_NOFOLLOW`), or open it
    /// read-write if it already holds a compatible area (which then keeps its
    /// own size and options). Two processes creating the same file at once
    /// end up sharing one valid area. An existing file is used only if it is
    /// a regular file owned by the effective uid and not writable by its
    /// group or others (checked with `fstat` on the opened descriptor; a FIFO
    /// or device never blocks the call), unless `options` accepts another
    /// owner (`allow_owner`, `allowed_owner`) or write bits
    /// (`allow_group_write`, `allow_other_write`); waits for another
    /// process's lock on the file are bounded (`lock_timeout_ms`, 10 s by
    /// default).
    ///
    /// `options` may be NULL for the defaults (4096 pages = 16 MiB, 64
    /// workers, buffered, the file checks above). On success `*out` receives a new area handle,
    /// owned by the caller and released with `promshm_area_free()`.
    /// Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`path` or `out`), `NOT_UTF8`,
    /// `INVALID_ARGUMENT` (page or worker count out of range, a flag other
    /// than 0 or 1, `allowed_owner` without `allow_owner`), `NOT_FOUND`
    /// (missing directory), `PERMISSION_DENIED`, `IO`, `UNSAFE_FILE` (a
    /// symbolic link, FIFO, socket, device or directory, another user's file,
    /// or one writable by others: refused untouched), `LOCK_TIMEOUT`,
    /// `INCOMPATIBLE_AREA` (the file is something else), `CORRUPT_AREA`.
    unsafe fn promshm_area_create(
        path: *const c_char,
        options: *const promshm_area_options,
        out: *mut *const promshm_area,
    ) -> promshm_result {
        check(|| {
            // SAFETY: `out` is NULL or writable (caller contract).
            let out = unsafe { Out::new(out, "out")? };
            // SAFETY: `path` is NULL or a NUL-terminated string (caller contract).
            let path = unsafe { str_arg(path, "path")? };
            // SAFETY: `options` is NULL or a valid `promshm_area_options` (caller contract).
            let (area_options, file_options) = unsafe { options_arg(options)? };
            let area = Area::create_with(path, &area_options, &file_options)?;
            out.write(into_handle(Arc::new(area)));
            Ok(())
        })
    }
}

ffi_fn! {
    /// Create an anonymous shared area (a `memfd` mapped `MAP_SHARED`), for a
    /// pre-fork server: make it in the parent before `fork()`, and every child
    /// shares it through the handle it inherits.
    ///
    /// `options` may be NULL for the defaults; its file-check and
    /// `lock_timeout_ms` fields do not apply (there is no file) but are
    /// validated. On success `*out` receives a new area handle, owned by the
    /// caller (`promshm_area_free()`). Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`out`), `INVALID_ARGUMENT`, `IO`.
    unsafe fn promshm_area_anonymous(
        options: *const promshm_area_options,
        out: *mut *const promshm_area,
    ) -> promshm_result {
        check(|| {
            // SAFETY: `out` is NULL or writable (caller contract).
            let out = unsafe { Out::new(out, "out")? };
            // SAFETY: `options` is NULL or a valid `promshm_area_options` (caller contract).
            let (area_options, _) = unsafe { options_arg(options)? };
            let area = Area::anonymous(&area_options)?;
            out.write(into_handle(Arc::new(area)));
            Ok(())
        })
    }
}

ffi_fn! {
    /// Open an existing area file, read-write or read-only
    /// (`PROMSHM_OPEN_MODE_*`). A read-only area renders and inspects but
    /// never writes a byte: registering on it returns `READ_ONLY`. Waits
    /// (bounded: 10 s) for a creator that is still initialising the file.
    /// The file must be a regular file owned by the effective uid and not
    /// writable by its group or others (checked with `fstat` on the opened
    /// descriptor; a FIFO or device never blocks the call). To accept
    /// another owner or write bits, or to change the bound, use
    /// `promshm_area_open_with()`.
    ///
    /// On success `*out` receives a new area handle, owned by the caller
    /// (`promshm_area_free()`). Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`path` or `out`), `NOT_UTF8`,
    /// `INVALID_ARGUMENT` (unknown mode), `NOT_FOUND`, `PERMISSION_DENIED`,
    /// `IO`, `UNSAFE_FILE`, `LOCK_TIMEOUT`, `INCOMPATIBLE_AREA`,
    /// `CORRUPT_AREA`.
    unsafe fn promshm_area_open(
        path: *const c_char,
        mode: promshm_open_mode,
        out: *mut *const promshm_area,
    ) -> promshm_result {
        // SAFETY: the caller's pointers, passed on; NULL options are the defaults.
        unsafe { promshm_area_open_with(path, mode, std::ptr::null(), out) }
    }
}

ffi_fn! {
    /// `promshm_area_open()` with the file checks and the wait bound of
    /// `options` (NULL: the defaults, as `promshm_area_open()`). Only its
    /// `allow_owner`, `allowed_owner`, `allow_group_write`,
    /// `allow_other_write` and `lock_timeout_ms` fields apply; `pages`,
    /// `max_workers` and `eager` are ignored (an existing area keeps its
    /// own), though every flag is validated. An older caller's smaller
    /// struct gets the defaults for the fields it lacks.
    ///
    /// On success `*out` receives a new area handle, owned by the caller
    /// (`promshm_area_free()`). Thread-safe.
    ///
    /// Errors: those of `promshm_area_open()`, and `INVALID_ARGUMENT` for a
    /// bad `options` (its `size`, a flag other than 0 or 1,
    /// `allowed_owner` without `allow_owner`).
    unsafe fn promshm_area_open_with(
        path: *const c_char,
        mode: promshm_open_mode,
        options: *const promshm_area_options,
        out: *mut *const promshm_area,
    ) -> promshm_result {
        check(|| {
            // SAFETY: `out` is NULL or writable (caller contract).
            let out = unsafe { Out::new(out, "out")? };
            // SAFETY: `path` is NULL or a NUL-terminated string (caller contract).
            let path = unsafe { str_arg(path, "path")? };
            let mode = open_mode_arg(mode)?;
            // SAFETY: `options` is NULL or a valid `promshm_area_options` (caller contract).
            let (_, file_options) = unsafe { options_arg(options)? };
            let area = Area::open_with(path, mode, &file_options)?;
            out.write(into_handle(Arc::new(area)));
            Ok(())
        })
    }
}

ffi_fn! {
    /// A new reference to the same area (the mapping is shared, not copied).
    /// Release it with `promshm_area_free()`. NULL gives NULL. Thread-safe.
    unsafe fn promshm_area_clone(area: *const promshm_area) -> *const promshm_area {
        // SAFETY: `area` is NULL or a live handle from this library (caller contract).
        unsafe { clone_handle(area) }
    }
}

ffi_fn! {
    /// Release an area handle. Registries, families and series made from it
    /// keep the mapping alive and stay usable. The mapping is unmapped when
    /// no area, registry, family or series handle of it is left: freeing
    /// the last family (or series) handle of a family first flushes every
    /// thread's buffered updates of its series into the area, and thread
    /// buffers then hold nothing of it. NULL is a no-op; freeing a handle
    /// twice is undefined behaviour. Thread-safe with respect to other
    /// handles.
    unsafe fn promshm_area_free(area: *const promshm_area) {
        // SAFETY: `area` is NULL or a live handle, given up by the caller (caller contract).
        unsafe { free_handle(area) }
    }
}

ffi_fn! {
    /// Whether the area was opened read-only. NULL (or an internal panic)
    /// gives false. Thread-safe.
    unsafe fn promshm_area_is_read_only(area: *const promshm_area) -> bool {
        // SAFETY: `area` is NULL or a live handle from this library (caller contract).
        unsafe { borrow(area) }.map(Area::is_read_only).unwrap_or(false)
    }
}

ffi_fn! {
    /// `promshm_area_is_read_only()` as a `uint32_t` flag, for FFIs without a
    /// C `bool`: 1 if the area was opened read-only, else 0 (also for NULL or
    /// an internal panic). Thread-safe.
    unsafe fn promshm_area_is_read_only_u32(area: *const promshm_area) -> u32 {
        // SAFETY: `area` is NULL or a live handle (caller contract), passed on unchanged.
        u32::from(unsafe { promshm_area_is_read_only(area) })
    }
}

ffi_fn! {
    /// Attach the calling process to a worker slot now (it happens anyway on
    /// the first gauge write or flush; call this to fail early, e.g. right
    /// after `fork()`). Writes the slot index to `*out_slot` if `out_slot` is
    /// not NULL. Attaching again is cheap and returns the same slot.
    /// Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`area`), `READ_ONLY`, `WORKERS_FULL`,
    /// `LOCK_TIMEOUT`.
    unsafe fn promshm_area_attach(area: *const promshm_area, out_slot: *mut u32) -> promshm_result {
        check(|| {
            // SAFETY: `area` is NULL or a live handle from this library (caller contract).
            let slot = unsafe { borrow(area)? }.attach()?;
            // SAFETY: `out_slot` is NULL or writable (caller contract).
            unsafe { write_opt(out_slot, slot) };
            Ok(())
        })
    }
}

ffi_fn! {
    /// Find workers whose process is gone (SIGKILL and OOM included), fold
    /// their gauge values as each gauge's mode says, and free their slots.
    /// Rendering does this too. Writes how many were reaped to `*out_reaped`
    /// if it is not NULL. A read-only area reaps nothing (0). Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`area`), `LOCK_TIMEOUT`.
    unsafe fn promshm_area_reap(area: *const promshm_area, out_reaped: *mut u32) -> promshm_result {
        check(|| {
            // SAFETY: `area` is NULL or a live handle from this library (caller contract).
            let n = unsafe { borrow(area)? }.reap_dead_workers()?;
            // SAFETY: `out_reaped` is NULL or writable (caller contract).
            unsafe { write_opt(out_reaped, n) };
            Ok(())
        })
    }
}

ffi_fn! {
    /// Fill `*out` with the area's usage and self-metric counters (the
    /// numbers behind the `promshm_*` families of a render). Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`area` or `out`).
    unsafe fn promshm_area_get_stats(
        area: *const promshm_area,
        out: *mut promshm_area_stats,
    ) -> promshm_result {
        check(|| {
            if out.is_null() {
                return Err(FfiError::null("out"));
            }
            // SAFETY: `out` points to a struct of the caller that starts with its `size` field
            // (caller contract).
            let size = unsafe { struct_size(out, "out")? };
            // SAFETY: `area` is NULL or a live handle from this library (caller contract).
            let s = unsafe { borrow(area)? }.stats();
            let stats = promshm_area_stats {
                size: 0,
                pages_total: s.pages_total,
                pages_used: s.pages_used,
                bytes_free: s.bytes_free,
                max_workers: s.max_workers,
                format_version: s.format_version,
                families: s.families,
                series: s.series,
                refused: s.refused,
                reaped_workers: s.reaped_workers,
                flushes: s.flushes,
                bad_records: s.bad_records,
                render_ns: s.render_ns,
                locks_recovered: s.locks_recovered,
                dropped_updates: s.dropped_updates,
                created_ms: s.created_ms,
                locks_taken: s.locks_taken,
                lock_timeouts: s.lock_timeouts,
                name_clashes: s.name_clashes,
            };
            // SAFETY: `out` has `size` writable bytes, the size checked by `struct_size` (caller
            // contract).
            unsafe { write_extensible(out, size, stats) };
            Ok(())
        })
    }
}

ffi_fn! {
    /// Copy the area's worker table (the slots in use) into `out`, an array
    /// of `cap` entries, and write the number of entries to `*out_count`.
    ///
    /// Size query: with `out` NULL and `cap` 0 (or any `cap` too small) it
    /// returns `BUFFER_TOO_SMALL` and writes the number of entries needed to
    /// `*out_count`; nothing else is written. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`area`, `out_count`, or `out` with `cap` > 0),
    /// `BUFFER_TOO_SMALL`.
    unsafe fn promshm_area_workers(
        area: *const promshm_area,
        out: *mut promshm_worker_info,
        cap: usize,
        out_count: *mut usize,
    ) -> promshm_result {
        check(|| {
            // SAFETY: `out_count` is NULL or writable (caller contract).
            let out_count = unsafe { Out::new(out_count, "out_count")? };
            if out.is_null() && cap > 0 {
                return Err(FfiError::null("out"));
            }
            // The first entry's size is the caller's struct size and stride.
            // SAFETY: `out` points to a struct of the caller that starts with its `size` field
            // (caller contract).
            let stride = if cap > 0 { unsafe { struct_size(out, "out")? } } else { 0 };
            // SAFETY: `area` is NULL or a live handle from this library (caller contract).
            let workers = unsafe { borrow(area)? }.workers();
            if workers.len() > cap {
                out_count.write(workers.len());
                return Err(FfiError::new(
                    promshm_result::BufferTooSmall,
                    format!("{} worker entries need a larger array than {cap}", workers.len()),
                ));
            }
            for (i, w) in workers.iter().enumerate() {
                let info = promshm_worker_info {
                    size: 0,
                    slot: w.slot,
                    pid: w.pid,
                    generation: w.generation,
                    start_time: w.start_time,
                    alive: u32::from(w.alive),
                    attached_ms: w.attached_ms,
                    last_flush_ms: w.last_flush_ms,
                    heartbeat_ms: w.heartbeat_ms,
                    flushes: w.flushes,
                };
                // SAFETY: `out` covers `cap` entries of `stride` bytes each
                // (caller contract), and i < len <= cap.
                let entry = unsafe { out.cast::<u8>().add(i * stride) }.cast::<promshm_worker_info>();
                // SAFETY: `entry` has `stride` writable bytes, the size checked by `struct_size`
                // (caller contract).
                unsafe { write_extensible(entry, stride, info) };
            }
            out_count.write(workers.len());
            Ok(())
        })
    }
}

/// A `PROMSHM_METRIC_TYPE_*` value passed in as a `uint32_t`.
fn metric_type_arg(value: u32) -> Result<MetricType, FfiError> {
    u8::try_from(value)
        .ok()
        .and_then(MetricType::from_u8)
        .ok_or_else(|| {
            FfiError::new(
                promshm_result::InvalidArgument,
                format!("unknown metric type {value}"),
            )
        })
}

ffi_fn! {
    /// Whether a family named `name` (its full name, without the suffixes
    /// the exposition adds) of type `metric_type` (a
    /// `PROMSHM_METRIC_TYPE_*` value) would render a name that a family of
    /// the area, registered by any process, already renders (that family
    /// itself included), or a name of promshm's own `promshm_*` metrics.
    /// Writes 1 (taken) or 0 to `*out_taken`. For code that renders
    /// families of its own next to the area's (e.g. custom collectors), to
    /// skip one that would appear twice; registering such a family fails
    /// with `NAME_TAKEN`. Takes no lock. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`area`, `name` or `out_taken`), `NOT_UTF8`,
    /// `INVALID_ARGUMENT` (unknown type).
    unsafe fn promshm_area_name_taken(
        area: *const promshm_area,
        name: *const c_char,
        metric_type: u32,
        out_taken: *mut u32,
    ) -> promshm_result {
        check(|| {
            // SAFETY: `out_taken` is NULL or writable (caller contract).
            let out = unsafe { Out::new(out_taken, "out_taken")? };
            // SAFETY: `area` is NULL or a live handle from this library (caller contract).
            let area = unsafe { borrow(area)? };
            // SAFETY: `name` is NULL or a NUL-terminated string (caller contract).
            let name = unsafe { str_arg(name, "name")? };
            let kind = metric_type_arg(metric_type)?;
            out.write(u32::from(area.name_taken(name, kind)));
            Ok(())
        })
    }
}

ffi_fn! {
    /// The `index`-th (0-based) suffix that a family of type `metric_type`
    /// (a `PROMSHM_METRIC_TYPE_*` value) appends to its name in the names it
    /// renders, in either text format: index 0 is "" (the bare name), then
    /// e.g. "_total" and "_created" for a counter. Every name a family
    /// renders is its name followed by one of them; two families clash when
    /// they share one. A static string owned by the library (never free
    /// it); NULL past the last suffix or for an unknown type. Thread-safe;
    /// never fails.
    fn promshm_metric_type_suffix(metric_type: u32, index: usize) -> *const c_char {
        metric_type_arg(metric_type)
            .ok()
            .and_then(|k| k.rendered_suffixes_c().get(index))
            .map_or(std::ptr::null(), |s| s.as_ptr())
    }
}
