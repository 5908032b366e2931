//! `promshm_local_counter`: a caller-owned local handle on a counter series.
//!
//! The increments are `static inline` functions of the header (`trailer` in
//! cbindgen.toml): a plain add to `count` or `pending`. The functions here make one,
//! flush it through the counter's normal update path (the Rust
//! `LocalCounter::flush`) and release it.

use super::handle::{borrow, clone_handle, free_handle};
use super::result::{check, promshm_result, FfiError};
use super::series::{promshm_series, AnySeries};
use crate::Counter;

/// A counter's local handle, like the Rust `LocalCounter`: owned by the
/// caller (on the stack, in a struct, in thread-local storage) and used by
/// one thread at a time, so `promshm_local_counter_inc()` and
/// `promshm_local_counter_add()`, defined `static inline` in this header,
/// are a plain add (`inc` to the integer `count`, `add` to `pending`).
/// Nothing reaches the series until
/// `promshm_local_counter_flush()`, which adds `count + pending` as
/// `promshm_counter_add()` would (to the thread's buffer or, on an eager
/// family, the area) and zeroes both. Set it up with
/// `promshm_local_counter_init()` and end it with
/// `promshm_local_counter_release()`. It belongs to the process that
/// initialised it: in a child after `fork()`, its first flush drops what is
/// pending (the parent's to flush), so initialise it after the fork. The
/// fields are the header's inline functions' business: read `count` and
/// `pending` if you like, change none.
#[repr(C)]
pub struct promshm_local_counter {
    /// Added by `promshm_local_counter_add()` since the last flush.
    pub pending: f64,
    /// `promshm_local_counter_inc()` calls since the last flush.
    pub count: u64,
    /// The counter series (a reference this struct holds), NULL before
    /// `promshm_local_counter_init()` and after `promshm_local_counter_release()`.
    pub series: *const promshm_series,
    /// The fork generation of the process that initialised it.
    pub generation: u32,
}

/// The struct behind `l`, or `NullParameter`.
unsafe fn local_arg<'a>(
    l: *mut promshm_local_counter,
) -> Result<&'a mut promshm_local_counter, FfiError> {
    // SAFETY: `l` is NULL or a writable struct of the caller's, used by this
    // thread only (caller contract).
    unsafe { l.as_mut() }.ok_or_else(|| FfiError::null("local counter"))
}

ffi_fn! {
    /// Make `*l` a local handle on the counter series `series`, with nothing
    /// pending. `*l` takes a reference to the series (the caller may free its
    /// own), given back by `promshm_local_counter_release()`; initialising a
    /// struct that holds one already leaks it. Not thread-safe on `*l`.
    ///
    /// Errors: `NULL_PARAMETER` (`l` or `series`), `WRONG_TYPE` (not a
    /// counter); `*l` is left as it was.
    unsafe fn promshm_local_counter_init(
        l: *mut promshm_local_counter,
        series: *const promshm_series,
    ) -> promshm_result {
        check(|| {
            // SAFETY: NULL or a caller-owned struct (caller contract).
            let l = unsafe { local_arg(l)? };
            // SAFETY: NULL or a live series handle (caller contract).
            match unsafe { borrow::<promshm_series>(series)? } {
                AnySeries::Counter(_) => {}
                _ => return Err(not_a_counter("promshm_local_counter_init")),
            }
            *l = promshm_local_counter {
                pending: 0.0,
                count: 0,
                // SAFETY: a live series handle (checked above).
                series: unsafe { clone_handle(series) },
                generation: Counter::__local_generation(),
            };
            Ok(())
        })
    }
}

#[cold]
#[inline(never)]
fn not_a_counter(func: &'static str) -> FfiError {
    FfiError::new(
        promshm_result::WrongType,
        format!("{func}: the series is not a counter"),
    )
}

/// Add `l.count + l.pending` to its counter (dropped in another process than the one
/// that initialised it) and zero it.
unsafe fn flush(l: &mut promshm_local_counter, func: &'static str) -> Result<(), FfiError> {
    // SAFETY: NULL or the live series reference `init` stored (caller contract).
    let counter = match unsafe { borrow::<promshm_series>(l.series)? } {
        AnySeries::Counter(c) => c,
        _ => return Err(not_a_counter(func)),
    };
    let pending = std::mem::take(&mut l.count) as f64 + std::mem::take(&mut l.pending);
    counter.__flush_local(pending, &mut l.generation);
    Ok(())
}

ffi_fn! {
    /// Add what `*l` has pending to its counter, as `promshm_counter_add()`
    /// (buffered: the area sees it at the next `promshm_flush()`; a removed
    /// series takes nothing), and zero `count` and `pending`. Call it as often as you
    /// like (at request end, say): it costs one buffered add. Not
    /// thread-safe on `*l`.
    ///
    /// Errors: `NULL_PARAMETER` (`l`, or `l->series`: not initialised),
    /// `WRONG_TYPE` (`l->series` changed to another type's series).
    unsafe fn promshm_local_counter_flush(l: *mut promshm_local_counter) -> promshm_result {
        check(|| {
            // SAFETY: NULL or a caller-owned struct (caller contract).
            let l = unsafe { local_arg(l)? };
            // SAFETY: `l` holds NULL or the series reference `init` stored.
            unsafe { flush(l, "promshm_local_counter_flush") }
        })
    }
}

ffi_fn! {
    /// Flush `*l` (as `promshm_local_counter_flush()`), give back its
    /// reference to the series and set `l->series` to NULL: the end of a
    /// local counter (it may be initialised again). A released struct (series
    /// NULL) is left alone; `l` NULL is a no-op. Not thread-safe on `*l`.
    ///
    /// Errors: `WRONG_TYPE` (`l->series` changed to another type's series;
    /// the reference is given back all the same).
    unsafe fn promshm_local_counter_release(l: *mut promshm_local_counter) -> promshm_result {
        check(|| {
            // SAFETY: NULL or a caller-owned struct (caller contract).
            let Ok(l) = (unsafe { local_arg(l) }) else {
                return Ok(());
            };
            if l.series.is_null() {
                return Ok(());
            }
            // SAFETY: the series reference `init` stored (non-NULL here).
            let flushed = unsafe { flush(l, "promshm_local_counter_release") };
            // SAFETY: that reference is given back once; the field is cleared.
            unsafe { free_handle(std::mem::replace(&mut l.series, std::ptr::null())) };
            flushed
        })
    }
}
