//! Every conversion between C pointers and Rust values: handles, strings,
//! arrays and out-parameters. No other module casts a handle pointer.
//!
//! All functions here are `unsafe` with one contract: each pointer is NULL
//! or valid as the caller's documentation describes (see `ffi`).

use std::ffi::{c_char, CStr};
use std::ptr::NonNull;
use std::sync::Arc;

use super::result::{promshm_result, FfiError};

/// An opaque C handle type backed by an `Arc<Self::Rust>`.
///
/// C holds the pointer from `Arc::into_raw`; `*_clone` adds a reference,
/// `*_free` drops one.
pub(crate) trait ArcHandle {
    /// The Rust value behind the handle.
    type Rust;
    /// Used in error details ("series is NULL").
    const WHAT: &'static str;
}

/// Give `value` to C as a new handle (one reference).
pub(crate) fn into_handle<C: ArcHandle>(value: Arc<C::Rust>) -> *const C {
    Arc::into_raw(value).cast()
}

/// Borrow the value behind a handle, or `NullParameter`.
#[inline(always)]
pub(crate) unsafe fn borrow<'a, C: ArcHandle>(p: *const C) -> Result<&'a C::Rust, FfiError> {
    if p.is_null() {
        return Err(FfiError::null(C::WHAT));
    }
    // SAFETY: a non-NULL handle came from `into_handle` and was not freed
    // (caller contract), so it points to a live `C::Rust` inside an `Arc`.
    Ok(unsafe { &*p.cast::<C::Rust>() })
}

/// A new owning `Arc` from a handle (the handle keeps its own reference).
pub(crate) unsafe fn clone_arc<C: ArcHandle>(p: *const C) -> Result<Arc<C::Rust>, FfiError> {
    if p.is_null() {
        return Err(FfiError::null(C::WHAT));
    }
    let p = p.cast::<C::Rust>();
    // SAFETY: as in `borrow`; the count is incremented before `from_raw`
    // takes ownership of one reference, so the handle's own stays valid.
    unsafe {
        Arc::increment_strong_count(p);
        Ok(Arc::from_raw(p))
    }
}

/// `*_clone`: one more reference to the same object (NULL for NULL).
pub(crate) unsafe fn clone_handle<C: ArcHandle>(p: *const C) -> *const C {
    match unsafe { clone_arc(p) } {
        Ok(arc) => into_handle(arc),
        Err(_) => std::ptr::null(),
    }
}

/// `*_free`: drop the handle's reference; NULL is a no-op.
pub(crate) unsafe fn free_handle<C: ArcHandle>(p: *const C) {
    if !p.is_null() {
        // SAFETY: the handle owns one reference, given back exactly once
        // (freeing twice is the caller's bug, as documented).
        drop(unsafe { Arc::from_raw(p.cast::<C::Rust>()) });
    }
}

/// An opaque C handle type backed by a `Box<Self::Rust>`: uniquely owned,
/// `*mut` in C, consumed by its destructor.
pub(crate) trait BoxHandle {
    /// The Rust value behind the handle.
    type Rust;
}

/// Give `value` to C as a new uniquely owned handle.
pub(crate) fn into_box_handle<C: BoxHandle>(value: Box<C::Rust>) -> *mut C {
    Box::into_raw(value).cast()
}

/// Take back ownership of a boxed handle; `None` for NULL.
pub(crate) unsafe fn take_box<C: BoxHandle>(p: *mut C) -> Option<Box<C::Rust>> {
    // SAFETY: a non-NULL handle came from `into_box_handle` and is taken back
    // exactly once (caller contract).
    (!p.is_null()).then(|| unsafe { Box::from_raw(p.cast::<C::Rust>()) })
}

/// A required out-parameter, checked for NULL before any work is done and
/// written only once the work succeeded.
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    #[inline(always)]
    pub(crate) unsafe fn new(p: *mut T, what: &'static str) -> Result<Self, FfiError> {
        NonNull::new(p).map(Out).ok_or_else(|| FfiError::null(what))
    }

    #[inline(always)]
    pub(crate) fn write(self, value: T) {
        // SAFETY: non-NULL and writable (caller contract); `T` is a plain C
        // value (pointer, integer, float, `#[repr(C)]` struct), nothing to drop.
        unsafe { self.0.as_ptr().write(value) }
    }
}

/// An optional out-parameter: NULL means "not wanted".
pub(crate) unsafe fn write_opt<T>(p: *mut T, value: T) {
    if !p.is_null() {
        // SAFETY: as in `Out::write`.
        unsafe { p.write(value) }
    }
}

/// A required NUL-terminated UTF-8 string.
#[inline]
pub(crate) unsafe fn str_arg<'a>(
    p: *const c_char,
    what: &'static str,
) -> Result<&'a str, FfiError> {
    if p.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated (caller contract); the string lives
    // for the call, which is all `'a` is used for.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    std::str::from_utf8(bytes).map_err(|e| {
        FfiError::new(
            promshm_result::NotUtf8,
            format!("{what} is not valid UTF-8 ({e})"),
        )
    })
}

/// An optional string: NULL is the empty string.
pub(crate) unsafe fn opt_str_arg<'a>(
    p: *const c_char,
    what: &'static str,
) -> Result<&'a str, FfiError> {
    if p.is_null() {
        Ok("")
    } else {
        unsafe { str_arg(p, what) }
    }
}

/// Longest array accepted from C. Far above any real limit (64 labels, 1024
/// buckets or states); it only keeps a garbage count from becoming a slice
/// over all of memory.
const MAX_ARRAY: usize = 1 << 20;

/// A C array `(p, n)` as a slice; `p` may be NULL when `n` is 0.
pub(crate) unsafe fn slice_arg<'a, T>(
    p: *const T,
    n: usize,
    what: &'static str,
) -> Result<&'a [T], FfiError> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(FfiError::null(what));
    }
    if n > MAX_ARRAY {
        return Err(FfiError::new(
            promshm_result::InvalidArgument,
            format!("{what}: {n} elements is more than the {MAX_ARRAY} accepted"),
        ));
    }
    // SAFETY: `p` covers `n` elements (caller contract); checked non-NULL.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// Labels resolved without touching the heap below this many.
const STACK_STRS: usize = 16;

/// Call `f` with the strings of a C array of `n` strings (NULL elements are
/// `NullParameter`). Up to 16 strings are collected on the stack, so series
/// resolution does not allocate for the array.
#[inline]
pub(crate) unsafe fn with_strs<R>(
    p: *const *const c_char,
    n: usize,
    what: &'static str,
    f: impl FnOnce(&[&str]) -> Result<R, FfiError>,
) -> Result<R, FfiError> {
    let ptrs = unsafe { slice_arg(p, n, what)? };
    if ptrs.len() <= STACK_STRS {
        let mut buf = [""; STACK_STRS];
        for (slot, &s) in buf.iter_mut().zip(ptrs) {
            *slot = unsafe { str_arg(s, what)? };
        }
        f(&buf[..ptrs.len()])
    } else {
        let v = ptrs
            .iter()
            .map(|&s| unsafe { str_arg(s, what) })
            .collect::<Result<Vec<_>, _>>()?;
        f(&v)
    }
}

/// A `promshm_label` array as `(name, value)` pairs.
pub(crate) unsafe fn label_pairs<'a>(
    p: *const super::registry::promshm_label,
    n: usize,
    what: &'static str,
) -> Result<Vec<(&'a str, &'a str)>, FfiError> {
    let labels = unsafe { slice_arg(p, n, what)? };
    labels
        .iter()
        .map(|l| unsafe { Ok((str_arg(l.name, what)?, str_arg(l.value, what)?)) })
        .collect()
}
