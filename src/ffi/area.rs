//! `promshm_area`: create, open, attach, reap, inspect.

use std::ffi::c_char;
use std::sync::Arc;

use super::handle::{
    borrow, clone_handle, free_handle, into_handle, str_arg, write_opt, ArcHandle, Out,
};
use super::result::{check, promshm_result, FfiError};
use crate::area::{Area, AreaOptions, OpenMode};

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

/// How to create an area. Zero in a field means its default, so a
/// zero-initialised struct (or passing NULL) gives the defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct promshm_area_options {
    /// Number of 4 KiB pages, header and worker table included. 0: 4096 (16 MiB).
    pub pages: u32,
    /// Worker slots: the most processes attached at once. 0: 64.
    pub max_workers: u32,
    /// Make families eager (write-through) unless they say otherwise.
    pub eager: bool,
}

/// How `promshm_area_open()` maps an existing area (a `uint32_t`).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct promshm_open_mode(pub u32);

/// Open for reading and writing: register, update, flush, render.
pub const PROMSHM_OPEN_MODE_READ_WRITE: promshm_open_mode = promshm_open_mode(0);
/// Open read-only: render and inspect only; never writes a byte, never reaps.
pub const PROMSHM_OPEN_MODE_READ_ONLY: promshm_open_mode = promshm_open_mode(1);

/// Usage of an area and promshm's own counters (the `promshm_*` self-metrics).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct promshm_area_stats {
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
    /// Area locks taken over from dead holders.
    pub locks_recovered: u64,
    /// Gauge updates dropped because no worker slot was free.
    pub dropped_updates: u64,
    /// Creation time of the area, Unix milliseconds.
    pub created_ms: u64,
}

/// One row of an area's worker table.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct promshm_worker_info {
    /// Slot index (the `worker` label of `all`-mode gauges).
    pub slot: u32,
    /// Process id.
    pub pid: u32,
    /// Process start time, clock ticks since boot.
    pub start_time: u64,
    /// Times this slot was taken.
    pub generation: u32,
    /// Whether the process is still running, as far as this process can tell.
    pub alive: bool,
    /// Attach time, Unix milliseconds.
    pub attached_ms: u64,
    /// Last flush, Unix milliseconds (0: never).
    pub last_flush_ms: u64,
    /// Last sign of life, Unix milliseconds.
    pub heartbeat_ms: u64,
    /// Flushes made by this worker.
    pub flushes: u64,
}

unsafe fn options_arg(options: *const promshm_area_options) -> AreaOptions {
    let mut o = AreaOptions::default();
    if !options.is_null() {
        // SAFETY: a non-NULL options pointer is readable (caller contract).
        let c = unsafe { *options };
        if c.pages != 0 {
            o.pages = c.pages;
        }
        if c.max_workers != 0 {
            o.max_workers = c.max_workers;
        }
        o.eager = c.eager;
    }
    o
}

ffi_fn! {
    /// Create the area file at `path` (mode 0600, `O_NOFOLLOW`), or open it
    /// read-write if it already holds a compatible area (which then keeps its
    /// own size and options). Two processes creating the same file at once
    /// end up sharing one valid area.
    ///
    /// `options` may be NULL for the defaults (4096 pages = 16 MiB, 64
    /// workers, buffered). On success `*out` receives a new area handle,
    /// owned by the caller and released with `promshm_area_free()`.
    /// Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`path` or `out`), `NOT_UTF8`,
    /// `INVALID_ARGUMENT` (page or worker count out of range), `NOT_FOUND`
    /// (missing directory), `PERMISSION_DENIED`, `IO`, `INCOMPATIBLE_AREA`
    /// (the file is something else), `CORRUPT_AREA`.
    unsafe fn promshm_area_create(
        path: *const c_char,
        options: *const promshm_area_options,
        out: *mut *const promshm_area,
    ) -> promshm_result {
        check(|| {
            let out = unsafe { Out::new(out, "out")? };
            let path = unsafe { str_arg(path, "path")? };
            let area = Area::create(path, &unsafe { options_arg(options) })?;
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
    /// `options` may be NULL for the defaults. On success `*out` receives a
    /// new area handle, owned by the caller (`promshm_area_free()`).
    /// Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`out`), `INVALID_ARGUMENT`, `IO`.
    unsafe fn promshm_area_anonymous(
        options: *const promshm_area_options,
        out: *mut *const promshm_area,
    ) -> promshm_result {
        check(|| {
            let out = unsafe { Out::new(out, "out")? };
            let area = Area::anonymous(&unsafe { options_arg(options) })?;
            out.write(into_handle(Arc::new(area)));
            Ok(())
        })
    }
}

ffi_fn! {
    /// Open an existing area file, read-write or read-only
    /// (`PROMSHM_OPEN_MODE_*`). A read-only area renders and inspects but
    /// never writes a byte: registering on it returns `READ_ONLY`. Waits for
    /// a creator that is still initialising the file.
    ///
    /// On success `*out` receives a new area handle, owned by the caller
    /// (`promshm_area_free()`). Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`path` or `out`), `NOT_UTF8`,
    /// `INVALID_ARGUMENT` (unknown mode), `NOT_FOUND`, `PERMISSION_DENIED`,
    /// `IO`, `INCOMPATIBLE_AREA`, `CORRUPT_AREA`.
    unsafe fn promshm_area_open(
        path: *const c_char,
        mode: promshm_open_mode,
        out: *mut *const promshm_area,
    ) -> promshm_result {
        check(|| {
            let out = unsafe { Out::new(out, "out")? };
            let path = unsafe { str_arg(path, "path")? };
            let mode = match mode {
                PROMSHM_OPEN_MODE_READ_WRITE => OpenMode::ReadWrite,
                PROMSHM_OPEN_MODE_READ_ONLY => OpenMode::ReadOnly,
                promshm_open_mode(m) => {
                    return Err(FfiError::new(
                        promshm_result::InvalidArgument,
                        format!("unknown open mode {m}"),
                    ))
                }
            };
            let area = Area::open(path, mode)?;
            out.write(into_handle(Arc::new(area)));
            Ok(())
        })
    }
}

ffi_fn! {
    /// A new reference to the same area (the mapping is shared, not copied).
    /// Release it with `promshm_area_free()`. NULL gives NULL. Thread-safe.
    unsafe fn promshm_area_clone(area: *const promshm_area) -> *const promshm_area {
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
        unsafe { free_handle(area) }
    }
}

ffi_fn! {
    /// Whether the area was opened read-only. NULL (or an internal panic)
    /// gives false. Thread-safe.
    unsafe fn promshm_area_is_read_only(area: *const promshm_area) -> bool {
        unsafe { borrow(area) }.map(Area::is_read_only).unwrap_or(false)
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
            let slot = unsafe { borrow(area)? }.attach()?;
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
            let n = unsafe { borrow(area)? }.reap_dead_workers()?;
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
            let out = unsafe { Out::new(out, "out")? };
            let s = unsafe { borrow(area)? }.stats();
            out.write(promshm_area_stats {
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
            });
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
            let out_count = unsafe { Out::new(out_count, "out_count")? };
            if out.is_null() && cap > 0 {
                return Err(FfiError::null("out"));
            }
            let workers = unsafe { borrow(area)? }.workers();
            if workers.len() > cap {
                out_count.write(workers.len());
                return Err(FfiError::new(
                    promshm_result::BufferTooSmall,
                    format!("{} worker entries need a larger array than {cap}", workers.len()),
                ));
            }
            for (i, w) in workers.iter().enumerate() {
                // SAFETY: `out` covers `cap` entries (caller contract), i < len <= cap.
                unsafe {
                    out.add(i).write(promshm_worker_info {
                        slot: w.slot,
                        pid: w.pid,
                        start_time: w.start_time,
                        generation: w.generation,
                        alive: w.alive,
                        attached_ms: w.attached_ms,
                        last_flush_ms: w.last_flush_ms,
                        heartbeat_ms: w.heartbeat_ms,
                        flushes: w.flushes,
                    })
                };
            }
            out_count.write(workers.len());
            Ok(())
        })
    }
}
