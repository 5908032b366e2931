//! Flush: explicit, and the opt-in timer thread (`promshm_flusher`).

use super::handle::{into_box_handle, take_box, BoxHandle, Out};
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
/// promshm starts no thread unless asked to with `promshm_flusher_start()`.
pub struct promshm_flusher {
    _private: [u8; 0],
}

impl BoxHandle for promshm_flusher {
    type Rust = Flusher;
}

ffi_fn! {
    /// Start a thread that flushes this process's buffers every
    /// `interval_ms` milliseconds (at least 1). On success `*out` receives
    /// the flusher, owned by the caller, who must stop it with
    /// `promshm_flusher_stop()`. A thread does not survive `fork()`: start
    /// flushers in the worker processes, after forking. Thread-safe.
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
            let flusher = Flusher::start(interval).map_err(|e| {
                FfiError::new(
                    promshm_result::Io,
                    format!("starting the flusher thread: {e}"),
                )
            })?;
            out.write(into_box_handle(Box::new(flusher)));
            Ok(())
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
