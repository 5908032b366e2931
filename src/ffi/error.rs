//! `promshm_error`: an error out-object that belongs to the caller, not to
//! the OS thread, for runtimes whose green threads (goroutines, fibers,
//! worker-pool tasks) move between OS threads: the thread-local
//! `promshm_last_error()` may then belong to another task's failure.
//!
//! Every fallible function has an `_e` variant (in `variants.rs`) with one
//! more parameter, `promshm_error *err`, and the functions added since take
//! it directly. While such a call runs, the error object is this thread's
//! "sink": [`record_detail`] (called wherever the last-error detail is set)
//! also writes there. The call itself runs on one OS thread from start to
//! end, so the sink is never seen by another task.

use std::cell::Cell;
use std::ffi::{c_char, CString};

use super::handle::{into_box_handle, take_box, BoxHandle};
use super::result::promshm_result;

/// An error object owned by the caller: the status and the detail of the
/// last call it was passed to. Make one with `promshm_error_new()` (one per
/// goroutine, fiber or task, or one per call), pass it as the `err`
/// argument of an `_e` function (or of a function taking `err`), read it
/// with `promshm_error_code()` and `promshm_error_detail()`, release it with
/// `promshm_error_free()`. Not for two calls at the same time.
pub struct promshm_error {
    _private: [u8; 0],
}

/// What a `promshm_error` points to.
pub(crate) struct ErrorObject {
    code: promshm_result,
    detail: CString,
    /// Set when the running call recorded a detail.
    filled: bool,
}

impl BoxHandle for promshm_error {
    type Rust = ErrorObject;
}

thread_local! {
    /// The error object of the `_e` call running on this thread (NULL: none).
    static SINK: Cell<*mut ErrorObject> = const { Cell::new(std::ptr::null_mut()) };
}

/// A detail as a C string: an interior NUL (never produced by promshm's own
/// messages) ends it.
fn c_detail(detail: &str) -> CString {
    let end = detail.find('\0').unwrap_or(detail.len());
    CString::new(&detail[..end]).unwrap_or_default()
}

/// Copy `detail` into the error object of the call running on this thread.
pub(crate) fn record_detail(detail: &str) {
    let _ = SINK.try_with(|s| {
        let p = s.get();
        if !p.is_null() {
            // SAFETY: the sink is set by `capture` only for the duration of
            // a call, from an error object the caller passed to that call.
            let obj = unsafe { &mut *p };
            obj.detail = c_detail(detail);
            obj.filled = true;
        }
    });
}

/// Run `f` with `err` (NULL: no error object) as this thread's sink, then
/// store its status in `err`: OK clears the detail; a failure keeps the
/// detail it recorded, or the code's message if it recorded none.
pub(crate) fn capture(
    err: *mut promshm_error,
    f: impl FnOnce() -> promshm_result,
) -> promshm_result {
    let obj = err.cast::<ErrorObject>();
    if obj.is_null() {
        return f();
    }
    // SAFETY: a non-NULL `err` came from `promshm_error_new()` and is not
    // used by another call at the same time (caller contract).
    unsafe { (*obj).filled = false };
    let prev = SINK.with(|s| s.replace(obj));
    let rc = f();
    SINK.with(|s| s.set(prev));
    // SAFETY: as above; the sink no longer refers to it.
    let o = unsafe { &mut *obj };
    o.code = rc;
    if rc == promshm_result::Ok {
        o.detail = CString::default();
    } else if !o.filled {
        o.detail = CString::from(rc.message());
    }
    rc
}

ffi_fn! {
    /// A new error object, status `PROMSHM_RESULT_OK` and an empty detail,
    /// owned by the caller (`promshm_error_free()`). NULL only if memory ran
    /// out (or on an internal panic). Thread-safe.
    fn promshm_error_new() -> *mut promshm_error {
        into_box_handle(Box::new(ErrorObject {
            code: promshm_result::Ok,
            detail: CString::default(),
            filled: false,
        }))
    }
}

ffi_fn! {
    /// Release an error object (and its detail string). NULL is a no-op;
    /// freeing twice is undefined behaviour.
    unsafe fn promshm_error_free(err: *mut promshm_error) {
        // SAFETY: `err` is NULL or an error object from `promshm_error_new` not yet freed (caller contract).
        drop(unsafe { take_box(err) });
    }
}

ffi_fn! {
    /// The status of the last call `err` was passed to (the value that call
    /// returned): `PROMSHM_RESULT_OK` (0) for a new object, after a success
    /// and for NULL.
    unsafe fn promshm_error_code(err: *const promshm_error) -> promshm_result {
        if err.is_null() {
            return promshm_result::Ok;
        }
        // SAFETY: a non-NULL `err` came from `promshm_error_new()` (caller contract).
        unsafe { (*err.cast::<ErrorObject>()).code }
    }
}

ffi_fn! {
    /// The detail of the last failure of a call `err` was passed to (as
    /// `promshm_last_error()` gives it), NUL-terminated UTF-8; the empty
    /// string after a success, for a new object and for NULL. Borrowed from
    /// `err`: valid until `err` is passed to another call or freed; never
    /// free it.
    unsafe fn promshm_error_detail(err: *const promshm_error) -> *const c_char {
        if err.is_null() {
            return c"".as_ptr();
        }
        // SAFETY: as in `promshm_error_code`.
        unsafe { (*err.cast::<ErrorObject>()).detail.as_ptr() }
    }
}
