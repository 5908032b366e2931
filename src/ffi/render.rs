//! Rendering an area or a registry: into a caller buffer (with a size
//! query), through a write callback (streaming), or into a file replaced
//! atomically; and the exposition format choice.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use super::area::promshm_area;
use super::error::{capture, promshm_error};
use super::handle::{borrow, clone_arc, str_arg, write_opt, ArcHandle, Out};
use super::registry::promshm_registry;
use super::result::{check, promshm_result, FfiError};
use crate::encoding::{negotiate, negotiate_text, Format};
use crate::error::Error;

/// An exposition format (a `uint32_t`).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct promshm_format(pub u32);

/// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
pub const PROMSHM_FORMAT_PROMETHEUS: promshm_format = promshm_format(0);
/// OpenMetrics 1.0 text format (`application/openmetrics-text; version=1.0.0`).
pub const PROMSHM_FORMAT_OPENMETRICS: promshm_format = promshm_format(1);
/// The Prometheus protobuf format (`application/vnd.google.protobuf;
/// proto=io.prometheus.client.MetricFamily; encoding=delimited`):
/// length-delimited `MetricFamily` messages. Binary: the rendering may hold
/// NUL bytes, so use its length (`*out_len`, the callback's `len`), never
/// `strlen()`; the buffer renders still append a NUL after it.
pub const PROMSHM_FORMAT_PROTOBUF: promshm_format = promshm_format(2);

/// A streaming sink for rendered text: called with consecutive chunks of
/// the exposition (never empty, at most about 64 KiB each). `data` is
/// borrowed for the call only. Return 0 to go on; any other value stops the
/// render, which then returns `PROMSHM_RESULT_WRITE_FAILED`. It runs on the
/// calling thread, and must not unwind (C++ exceptions) or `longjmp` through
/// promshm.
pub type promshm_write_fn =
    Option<unsafe extern "C" fn(userdata: *mut c_void, data: *const u8, len: usize) -> c_int>;

impl promshm_format {
    fn to_rust(self) -> Result<Format, FfiError> {
        match self {
            PROMSHM_FORMAT_PROMETHEUS => Ok(Format::Prometheus),
            PROMSHM_FORMAT_OPENMETRICS => Ok(Format::OpenMetrics),
            PROMSHM_FORMAT_PROTOBUF => Ok(Format::Protobuf),
            promshm_format(f) => Err(FfiError::new(
                promshm_result::InvalidArgument,
                format!("unknown format {f}"),
            )),
        }
    }

    fn from_rust(f: Format) -> Self {
        match f {
            Format::Prometheus => PROMSHM_FORMAT_PROMETHEUS,
            Format::OpenMetrics => PROMSHM_FORMAT_OPENMETRICS,
            Format::Protobuf => PROMSHM_FORMAT_PROTOBUF,
        }
    }
}

/// Something that renders: an area (everything) or a registry (its namespace).
trait Source {
    fn render_into(&self, out: &mut dyn Write, format: Format) -> crate::Result<()>;
    /// The same, appended to `out` (the text formats written into it directly).
    fn render_vec(&self, out: &mut Vec<u8>, format: Format) -> crate::Result<()>;
}

impl Source for crate::Area {
    fn render_into(&self, out: &mut dyn Write, format: Format) -> crate::Result<()> {
        self.render(out, format).map(drop)
    }
    fn render_vec(&self, out: &mut Vec<u8>, format: Format) -> crate::Result<()> {
        self.render_to_vec(out, format).map(drop)
    }
}

impl Source for crate::Registry {
    fn render_into(&self, out: &mut dyn Write, format: Format) -> crate::Result<()> {
        self.render(out, format).map(drop)
    }
    fn render_vec(&self, out: &mut Vec<u8>, format: Format) -> crate::Result<()> {
        self.render_to_vec(out, format).map(drop)
    }
}

/// The text a size query measured, kept for the next buffer render of the
/// same source and format on this thread.
struct Measured {
    /// The source (area or registry object); a `Weak` keeps its allocation,
    /// so another object can never take its address while this is kept.
    source: Weak<dyn Any + Send + Sync>,
    format: Format,
    text: Vec<u8>,
    /// The process that measured it: a child forked in between renders anew.
    pid: u32,
}

thread_local! {
    static MEASURED: RefCell<Option<Measured>> = const { RefCell::new(None) };
}

fn same_source(a: &Weak<dyn Any + Send + Sync>, b: &Arc<dyn Any + Send + Sync>) -> bool {
    std::ptr::addr_eq(a.as_ptr(), Arc::as_ptr(b))
}

/// The text the last size query of this thread measured for this source
/// and format, taken out if it fits `len` bytes with its NUL.
fn take_measured(
    source: &Arc<dyn Any + Send + Sync>,
    format: Format,
    len: usize,
) -> Option<Vec<u8>> {
    MEASURED
        .try_with(|m| {
            let mut m = m.try_borrow_mut().ok()?;
            let fits = m.as_ref().is_some_and(|k| {
                same_source(&k.source, source)
                    && k.format == format
                    && k.text.len() < len
                    && k.pid == std::process::id()
            });
            if fits {
                m.take().map(|k| k.text)
            } else {
                None
            }
        })
        .ok()
        .flatten()
}

fn keep_measured(source: &Arc<dyn Any + Send + Sync>, format: Format, text: Vec<u8>) {
    let _ = MEASURED.try_with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            *m = Some(Measured {
                source: Arc::downgrade(source),
                format,
                text,
                pid: std::process::id(),
            });
        }
    });
}

/// Render into the caller's buffer. A render that does not fit (a size
/// query) keeps its text for this thread, and the next render of the same
/// source and format into a buffer of the size it answered returns exactly
/// that text, so the answer always fits (the query's own render changes
/// promshm's self-metrics, e.g. `promshm_render_duration_seconds`, and the
/// area may grow between two calls).
unsafe fn to_buffer<C>(
    handle: *const C,
    format: promshm_format,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> promshm_result
where
    C: ArcHandle,
    C::Rust: Source + Any + Send + Sync,
{
    check(|| {
        // SAFETY: `out_len` is NULL or writable (caller contract).
        let out_len = unsafe { Out::new(out_len, "out_len")? };
        // SAFETY: `handle` is NULL or a live handle from this library (caller contract).
        let source = unsafe { clone_arc(handle)? };
        if buf.is_null() && len > 0 {
            return Err(FfiError::null("buf"));
        }
        let format = format.to_rust()?;
        let key: Arc<dyn Any + Send + Sync> = source.clone();
        let text = match take_measured(&key, format, len) {
            Some(text) => text,
            None => {
                let mut text = Vec::new();
                source.render_vec(&mut text, format)?;
                text
            }
        };
        let needed = text.len() + 1;
        if needed > len {
            out_len.write(needed);
            keep_measured(&key, format, text);
            return Err(FfiError::new(
                promshm_result::BufferTooSmall,
                format!("the rendering needs {needed} bytes (NUL included), the buffer has {len}"),
            ));
        }
        // SAFETY: `buf` is writable for `len >= text.len() + 1` bytes (caller contract).
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
            *buf.add(text.len()) = 0;
        }
        out_len.write(text.len());
        Ok(())
    })
}

/// Render into a new `malloc`ed, NUL-terminated string for the caller.
unsafe fn to_allocation<C>(
    handle: *const C,
    format: promshm_format,
    out: *mut *mut c_char,
    out_len: *mut usize,
    err: *mut promshm_error,
) -> promshm_result
where
    C: ArcHandle,
    C::Rust: Source,
{
    capture(err, || {
        check(|| {
            // SAFETY: the out-pointer is NULL or writable (caller contract).
            let out = unsafe { Out::new(out, "out")? };
            // SAFETY: `handle` is NULL or a live handle from this library (caller contract).
            let source = unsafe { borrow(handle)? };
            let format = format.to_rust()?;
            let mut text = Vec::new();
            source.render_vec(&mut text, format)?;
            // SAFETY: plain allocation of text.len() + 1 bytes, checked for NULL.
            let p = unsafe { libc::malloc(text.len() + 1) }.cast::<u8>();
            if p.is_null() {
                return Err(FfiError::new(
                    promshm_result::Io,
                    format!("out of memory for a rendering of {} bytes", text.len() + 1),
                ));
            }
            // SAFETY: `p` holds text.len() + 1 bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(text.as_ptr(), p, text.len());
                *p.add(text.len()) = 0;
                write_opt(out_len, text.len());
            }
            out.write(p.cast());
            Ok(())
        })
    })
}

/// A `Write` over the caller's callback.
struct CallbackWriter {
    write: unsafe extern "C" fn(*mut c_void, *const u8, usize) -> c_int,
    userdata: *mut c_void,
    /// Set by the first failure: the callback is never called again (a
    /// `BufWriter` being dropped would otherwise retry its buffer).
    failed: bool,
}

impl Write for CallbackWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.failed {
            return Err(std::io::Error::other("the write callback failed before"));
        }
        if data.is_empty() {
            return Ok(0);
        }
        // SAFETY: a C function pointer given by the caller with its userdata;
        // `data` is valid for the call.
        let rc = unsafe { (self.write)(self.userdata, data.as_ptr(), data.len()) };
        if rc != 0 {
            self.failed = true;
            return Err(std::io::Error::other(format!(
                "the write callback returned {rc}"
            )));
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn to_callback(
    src: &dyn Source,
    format: promshm_format,
    write: promshm_write_fn,
    userdata: *mut c_void,
) -> promshm_result {
    check(|| {
        let write = write.ok_or_else(|| FfiError::null("write"))?;
        let format = format.to_rust()?;
        let mut out = CallbackWriter {
            write,
            userdata,
            failed: false,
        };
        src.render_into(&mut out, format)?;
        Ok(())
    })
}

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Render into a temporary file next to `path`, fsync it, rename it over
/// `path`, and fsync the directory, so a reader sees the old or the new
/// file, never a partial one.
fn write_file_atomically(path: &Path, src: &dyn Source, format: Format) -> crate::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        Error::InvalidArgument(format!("{} does not name a file", path.display()))
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        TEMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    let result = (|| {
        src.render_into(&mut file, format).map_err(|e| match e {
            Error::Write(e) => Error::io("write", &tmp, e),
            other => other,
        })?;
        file.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    // Make the rename durable; a failure here does not undo the new file.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

unsafe fn to_file(src: &dyn Source, format: promshm_format, path: *const c_char) -> promshm_result {
    check(|| {
        // SAFETY: `path` is NULL or a NUL-terminated string (caller contract).
        let path = unsafe { str_arg(path, "path")? };
        let format = format.to_rust()?;
        Ok(write_file_atomically(Path::new(path), src, format)?)
    })
}

ffi_fn! {
    /// Render every family of the area (and promshm's own `promshm_*`
    /// metrics) into `buf`, a caller buffer of `len` bytes, followed by a
    /// NUL; on success `*out_len` is the text length, NUL excluded. Flushes
    /// this process's buffers and reaps dead workers first (unless
    /// read-only). Never blocks writers. Thread-safe.
    ///
    /// Size query: if the text and its NUL do not fit (e.g. `buf` NULL, `len`
    /// 0) it returns `BUFFER_TOO_SMALL` and writes the size needed, NUL
    /// included, to `*out_len`; nothing is written to `buf`. That size always
    /// fits the next render: the next call on the same thread for the same
    /// area and format with a buffer of at least that size returns the very
    /// text the query measured (kept for it, once), whatever changed since.
    /// `promshm_area_render_alloc()` needs no size query at all.
    ///
    /// Errors: `NULL_PARAMETER` (`area`, `out_len`, or `buf` with `len` > 0),
    /// `INVALID_ARGUMENT` (format), `BUFFER_TOO_SMALL`.
    unsafe fn promshm_area_render(
        area: *const promshm_area,
        format: promshm_format,
        buf: *mut c_char,
        len: usize,
        out_len: *mut usize,
    ) -> promshm_result {
        // SAFETY: the handle is NULL or live, the buffer NULL or `len` bytes, `out_len` NULL or
        // writable (caller contract).
        unsafe { to_buffer(area, format, buf, len, out_len) }
    }
}

ffi_fn! {
    /// Render every family of the area through `write` (see
    /// `promshm_write_fn`), streaming in bounded memory; `userdata` is passed
    /// to every call untouched and may be NULL. Otherwise as
    /// `promshm_area_render()`.
    ///
    /// Errors: `NULL_PARAMETER` (`area` or `write`), `INVALID_ARGUMENT`,
    /// `WRITE_FAILED` (the callback returned non-zero; it is not called
    /// again).
    unsafe fn promshm_area_render_callback(
        area: *const promshm_area,
        format: promshm_format,
        write: promshm_write_fn,
        userdata: *mut c_void,
    ) -> promshm_result {
        // SAFETY: `area` is NULL or a live handle from this library (caller contract).
        match unsafe { borrow(area) } {
            Ok(a) => to_callback(a, format, write, userdata),
            Err(e) => e.into_code(),
        }
    }
}

ffi_fn! {
    /// Render every family of the area into the file `path`, replaced
    /// atomically: the text goes to a temporary file in the same directory
    /// (mode 0644 less the umask), which is fsynced and renamed over `path`.
    /// Readers such as the node_exporter textfile collector (name the file
    /// `*.prom`, Prometheus format) see the old or the new file, never part of
    /// one. Otherwise as `promshm_area_render()`.
    ///
    /// Errors: `NULL_PARAMETER` (`area` or `path`), `NOT_UTF8`,
    /// `INVALID_ARGUMENT` (format, or a path without a file name),
    /// `NOT_FOUND` (no such directory), `PERMISSION_DENIED`, `IO`.
    unsafe fn promshm_area_render_to_file(
        area: *const promshm_area,
        format: promshm_format,
        path: *const c_char,
    ) -> promshm_result {
        // SAFETY: `area` is NULL or a live handle from this library (caller contract).
        match unsafe { borrow(area) } {
            // SAFETY: `path` is NULL or a NUL-terminated string (caller contract).
            Ok(a) => unsafe { to_file(a, format, path) },
            Err(e) => e.into_code(),
        }
    }
}

ffi_fn! {
    /// Render the registry's families: with a prefix, only that namespace;
    /// without one, every family of the area plus promshm's own metrics
    /// (unless made with `promshm_registry_without_self_metrics()`).
    /// Otherwise as `promshm_area_render()`.
    ///
    /// Errors: as `promshm_area_render()`.
    unsafe fn promshm_registry_render(
        registry: *const promshm_registry,
        format: promshm_format,
        buf: *mut c_char,
        len: usize,
        out_len: *mut usize,
    ) -> promshm_result {
        // SAFETY: the handle is NULL or live, the buffer NULL or `len` bytes, `out_len` NULL or
        // writable (caller contract).
        unsafe { to_buffer(registry, format, buf, len, out_len) }
    }
}

ffi_fn! {
    /// Render the registry's families through `write`. As
    /// `promshm_area_render_callback()` with the selection of
    /// `promshm_registry_render()`.
    ///
    /// Errors: as `promshm_area_render_callback()`.
    unsafe fn promshm_registry_render_callback(
        registry: *const promshm_registry,
        format: promshm_format,
        write: promshm_write_fn,
        userdata: *mut c_void,
    ) -> promshm_result {
        // SAFETY: `registry` is NULL or a live handle from this library (caller contract).
        match unsafe { borrow(registry) } {
            Ok(r) => to_callback(r, format, write, userdata),
            Err(e) => e.into_code(),
        }
    }
}

ffi_fn! {
    /// Render the registry's families into `path`, replaced atomically. As
    /// `promshm_area_render_to_file()` with the selection of
    /// `promshm_registry_render()`.
    ///
    /// Errors: as `promshm_area_render_to_file()`.
    unsafe fn promshm_registry_render_to_file(
        registry: *const promshm_registry,
        format: promshm_format,
        path: *const c_char,
    ) -> promshm_result {
        // SAFETY: `registry` is NULL or a live handle from this library (caller contract).
        match unsafe { borrow(registry) } {
            // SAFETY: `path` is NULL or a NUL-terminated string (caller contract).
            Ok(r) => unsafe { to_file(r, format, path) },
            Err(e) => e.into_code(),
        }
    }
}

ffi_fn! {
    /// Render every family of the area, as `promshm_area_render()`, into a
    /// new NUL-terminated string: on success `*out` receives it, owned by the
    /// caller (release it with `promshm_render_free()`), and `*out_len` (if
    /// `out_len` is not NULL) its length, NUL excluded. No size query, no
    /// retry. Stores the status and failure detail in `err` if that is not
    /// NULL (see `promshm_error_new()`). Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`area` or `out`), `INVALID_ARGUMENT`
    /// (format), `IO` (out of memory).
    unsafe fn promshm_area_render_alloc(
        area: *const promshm_area,
        format: promshm_format,
        out: *mut *mut c_char,
        out_len: *mut usize,
        err: *mut promshm_error,
    ) -> promshm_result {
        // SAFETY: the handle is NULL or live, `out`/`out_len` NULL or writable (caller contract).
        unsafe { to_allocation(area, format, out, out_len, err) }
    }
}

ffi_fn! {
    /// Render the registry's families, with the selection of
    /// `promshm_registry_render()`, into a new string, as
    /// `promshm_area_render_alloc()`; release it with `promshm_render_free()`.
    ///
    /// Errors: as `promshm_area_render_alloc()`.
    unsafe fn promshm_registry_render_alloc(
        registry: *const promshm_registry,
        format: promshm_format,
        out: *mut *mut c_char,
        out_len: *mut usize,
        err: *mut promshm_error,
    ) -> promshm_result {
        // SAFETY: the handle is NULL or live, `out`/`out_len` NULL or writable (caller contract).
        unsafe { to_allocation(registry, format, out, out_len, err) }
    }
}

ffi_fn! {
    /// Release a string from `promshm_area_render_alloc()` or
    /// `promshm_registry_render_alloc()`. NULL is a no-op; freeing twice, or
    /// any other pointer, is undefined behaviour.
    unsafe fn promshm_render_free(text: *mut c_char) {
        // SAFETY: `text` came from `to_allocation`'s `malloc` (caller contract).
        unsafe { libc::free(text.cast()) }
    }
}

ffi_fn! {
    /// The text format to answer a scrape with, from its HTTP `Accept`
    /// header: `PROMSHM_FORMAT_OPENMETRICS` when OpenMetrics text is
    /// acceptable with the highest preference among the text formats,
    /// otherwise `PROMSHM_FORMAT_PROMETHEUS` (also for NULL, an empty,
    /// unparsable or non-UTF-8 header). Never `PROMSHM_FORMAT_PROTOBUF`, so a
    /// program that handles renderings as strings stays correct; one that
    /// uses their lengths calls `promshm_format_from_accept_any()`.
    /// Thread-safe; never fails.
    unsafe fn promshm_format_from_accept(accept: *const c_char) -> promshm_format {
        // SAFETY: `accept` is NULL or a NUL-terminated string (caller contract).
        promshm_format::from_rust(negotiate_text(unsafe { accept_arg(accept) }))
    }
}

ffi_fn! {
    /// As `promshm_format_from_accept()`, but among every format, the binary
    /// one too: `PROMSHM_FORMAT_PROTOBUF` when
    /// `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited`
    /// has the highest preference (as Prometheus sends with native histograms
    /// enabled or `scrape_protocols: [PrometheusProto, ...]`). The rendering
    /// then may hold NUL bytes: send it by its length. Thread-safe; never
    /// fails.
    unsafe fn promshm_format_from_accept_any(accept: *const c_char) -> promshm_format {
        // SAFETY: `accept` is NULL or a NUL-terminated string (caller contract).
        promshm_format::from_rust(negotiate(unsafe { accept_arg(accept) }))
    }
}

/// An `Accept` header argument: `None` for NULL or non-UTF-8.
///
/// # Safety
/// `accept` is NULL or a NUL-terminated string.
unsafe fn accept_arg<'a>(accept: *const c_char) -> Option<&'a str> {
    if accept.is_null() {
        None
    } else {
        // SAFETY: `accept` is a NUL-terminated string (caller contract).
        unsafe { str_arg(accept, "accept") }.ok()
    }
}

ffi_fn! {
    /// The `Content-Type` header value for a format, e.g. `text/plain;
    /// version=0.0.4; charset=utf-8`: a static string owned by the library
    /// (never free it). NULL for an unknown format. Thread-safe.
    fn promshm_format_content_type(format: promshm_format) -> *const c_char {
        match format {
            PROMSHM_FORMAT_PROMETHEUS => c"text/plain; version=0.0.4; charset=utf-8".as_ptr(),
            PROMSHM_FORMAT_OPENMETRICS => {
                c"application/openmetrics-text; version=1.0.0; charset=utf-8".as_ptr()
            }
            PROMSHM_FORMAT_PROTOBUF => c"application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited".as_ptr(),
            _ => std::ptr::null(),
        }
    }
}
