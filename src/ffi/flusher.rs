//! Flush: explicit, and the opt-in timer thread (`promshm_flusher`).

use super::handle::{
    field_ends, flag_arg, into_box_handle, read_extensible, take_box, BoxHandle, Extensible, Out,
};
use super::result::{check, promshm_result, FfiError};
use crate::buffer::Flusher;

ffi_fn! {
    /// Push every thread's buffered counter and histogram updates of this
    /// process into the shared areas, so that other processes see them.
    /// Call it at request end (or run a `promshm_flusher`). It also runs
    /// before a render in this process, when a thread exits, and at process
    /// exit (`atexit`; not after `_exit()` or a signal). Cheap when nothing
    /// changed. Thread-safe; concurrent flushes are fine.
    ///
    /// Errors: none (`PROMSHM_RESULT_PANIC` only on an internal bug).
    fn promshm_flush() -> promshm_result {
        crate::buffer::flush();
        promshm_result::Ok
    }
}

/// A background thread that calls `promshm_flush()` on a timer. Uniquely
/// owned (a mutable handle): stop it once with `promshm_flusher_stop()`.
/// promshm starts no thread unless asked to with `promshm_flusher_start()`
/// (in this process or, inherited, in an ancestor: see
/// `promshm_flusher_start_ex()`).
pub struct promshm_flusher {
    _private: [u8; 0],
}

impl BoxHandle for promshm_flusher {
    type Rust = Flusher;
}

/// How to start a flusher (`promshm_flusher_start_ex()`). Initialise it
/// with `PROMSHM_FLUSHER_OPTIONS_INIT` (or zero it and set `size`): zero in
/// a field means its default. Extensible: see "Extensible structs" in
/// docs/C-API.md.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct promshm_flusher_options {
    /// `sizeof(promshm_flusher_options)` as the caller was compiled with (set
    /// by `PROMSHM_FLUSHER_OPTIONS_INIT`); 0 is `INVALID_ARGUMENT`.
    pub size: u32,
    /// Flush every `interval_ms` milliseconds. 0: 1000 (1 s).
    pub interval_ms: u32,
    /// 0 (the default): a child of `fork()` whose parent had this flusher
    /// running starts its own, with the same interval, when it first
    /// buffers an update, and passes it on to its own children. 1: children
    /// get none (they flush themselves, or at exit). Any other value is
    /// `INVALID_ARGUMENT`.
    pub no_inherit: u32,
}

// SAFETY: `#[repr(C)]`, `size: u32` first, integers only.
unsafe impl Extensible for promshm_flusher_options {
    const C_NAME: &'static str = "promshm_flusher_options";
    const INIT: &'static str = "PROMSHM_FLUSHER_OPTIONS_INIT";
    const FIELD_ENDS: &'static [usize] =
        field_ends!(Self, size: u32, interval_ms: u32, no_inherit: u32,);
    fn set_size(&mut self, size: u32) {
        self.size = size;
    }
}
const _: () = assert!(
    promshm_flusher_options::FIELD_ENDS[2] == size_of::<promshm_flusher_options>(),
    "an input struct has no padding"
);

/// Start `flusher` and write it to `out`.
fn start_into(
    flusher: crate::FlusherBuilder,
    out: Out<*mut promshm_flusher>,
) -> Result<(), FfiError> {
    let flusher = flusher.start().map_err(|e| {
        FfiError::new(
            promshm_result::Io,
            format!("starting the flusher thread: {e}"),
        )
    })?;
    out.write(into_box_handle(Box::new(flusher)));
    Ok(())
}

ffi_fn! {
    /// Start a thread that flushes this process's buffers every
    /// `interval_ms` milliseconds (at least 1). On success `*out` receives
    /// the flusher, owned by the caller, who must stop it with
    /// `promshm_flusher_stop()`. Inherited by children: a child of `fork()`
    /// starts its own flusher with the same interval when it first buffers
    /// an update (see `promshm_flusher_start_ex()`, which can turn that
    /// off). Returns once the thread runs (a `fork()` right after it is
    /// safe; see "Fork" in docs/C-API.md). Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`out`), `INVALID_ARGUMENT` (`interval_ms`
    /// is 0), `IO` (the thread could not be created).
    unsafe fn promshm_flusher_start(
        interval_ms: u32,
        out: *mut *mut promshm_flusher,
    ) -> promshm_result {
        check(|| {
            // SAFETY: `out` is NULL or writable (caller contract).
            let out = unsafe { Out::new(out, "out")? };
            if interval_ms == 0 {
                return Err(FfiError::new(
                    promshm_result::InvalidArgument,
                    "flusher interval must be at least 1 ms",
                ));
            }
            let interval = std::time::Duration::from_millis(u64::from(interval_ms));
            start_into(Flusher::builder().interval(interval), out)
        })
    }
}

ffi_fn! {
    /// Start a flusher with options (`options` may be NULL: every default,
    /// a 1 s interval inherited by children). By default (`no_inherit` 0) a
    /// child of `fork()` whose parent had this flusher running starts its
    /// own, with the same interval, lazily when it first buffers an update
    /// (a thread's first update of a series; never in the `fork()` handler,
    /// never on the per-update path), so a child that never ends a request
    /// still publishes within the interval; its own children inherit it the
    /// same way. A child that starts a flusher itself before its first
    /// buffered update gets no second one, and `promshm_flusher_stop()` on
    /// the inherited handle in the child stops (or cancels) the child's.
    /// On success `*out` receives the flusher, to stop with
    /// `promshm_flusher_stop()`. Returns once the thread runs, as
    /// `promshm_flusher_start()`. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`out`), `INVALID_ARGUMENT` (a bad `size`,
    /// `no_inherit` not 0 or 1), `IO` (the thread could not be created).
    unsafe fn promshm_flusher_start_ex(
        options: *const promshm_flusher_options,
        out: *mut *mut promshm_flusher,
    ) -> promshm_result {
        check(|| {
            // SAFETY: `out` is NULL or writable (caller contract).
            let out = unsafe { Out::new(out, "out")? };
            let o = if options.is_null() {
                promshm_flusher_options::default()
            } else {
                // SAFETY: `options` is non-NULL and points to at least its leading `size`
                // field; `read_extensible` reads no more than the caller's size.
                unsafe { read_extensible(options, "options")? }
            };
            let mut builder = Flusher::builder();
            if o.interval_ms != 0 {
                builder = builder.interval(std::time::Duration::from_millis(u64::from(o.interval_ms)));
            }
            let no_inherit = flag_arg(o.no_inherit, "options->no_inherit")?;
            start_into(builder.inherit(!no_inherit), out)
        })
    }
}

ffi_fn! {
    /// Stop a flusher: wake its thread, let it flush one last time, join it,
    /// and free the handle. In a child of `fork()` that inherited the
    /// flusher (whose thread stayed in the parent) it only frees the handle:
    /// nothing is signalled or joined, so it never blocks there. NULL is a
    /// no-op; stopping twice is undefined behaviour. Do not call it from two
    /// threads with the same flusher.
    unsafe fn promshm_flusher_stop(flusher: *mut promshm_flusher) {
        // SAFETY: `flusher` is NULL or a live handle, given up by the caller (caller contract).
        if let Some(flusher) = unsafe { take_box(flusher) } {
            flusher.stop();
        }
    }
}
