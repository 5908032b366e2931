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
    // SAFETY: `p` is NULL or a live handle from this library (caller contract).
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
        // SAFETY: `p` is a NUL-terminated string (caller contract; not NULL here).
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
    // SAFETY: `p` covers `n` string pointers, or is NULL with a count of 0 (caller contract).
    let ptrs = unsafe { slice_arg(p, n, what)? };
    if ptrs.len() <= STACK_STRS {
        let mut buf = [""; STACK_STRS];
        for (slot, &s) in buf.iter_mut().zip(ptrs) {
            // SAFETY: `s` is NULL or a NUL-terminated string (caller contract).
            *slot = unsafe { str_arg(s, what)? };
        }
        f(&buf[..ptrs.len()])
    } else {
        let v = ptrs
            .iter()
            // SAFETY: `s` is NULL or a NUL-terminated string (caller contract).
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
    // SAFETY: `p` covers `n` labels, or is NULL with a count of 0 (caller contract).
    let labels = unsafe { slice_arg(p, n, what)? };
    labels
        .iter()
        // SAFETY: each label's name and value are NULL or NUL-terminated (caller contract).
        .map(|l| unsafe { Ok((str_arg(l.name, what)?, str_arg(l.value, what)?)) })
        .collect()
}

/// A `#[repr(C)]` struct of the C API that starts with a `uint32_t size`
/// field, which the caller sets to the `sizeof` it was compiled with
/// (docs/C-API.md, "Extensible structs"). Older callers pass a smaller size,
/// newer ones a larger: the library reads and writes only the first
/// `min(size, size_of::<Self>())` bytes.
///
/// # Safety
///
/// The implementing type must be `#[repr(C)]`, start with a `u32` at offset
/// 0, and consist of integers and raw pointers only (no `bool`, no enum), so
/// that any bytes a caller wrote, or zero, are a valid value of it.
pub(crate) unsafe trait Extensible: Copy {
    /// The C type name, used in error details and to name the init macro.
    const C_NAME: &'static str;
    /// The init macro a C caller uses (`PROMSHM_AREA_OPTIONS_INIT`).
    const INIT: &'static str;
    /// The sizes a caller's version of an input struct can have: where each
    /// field ends (a version is always a prefix ending at a field). Input
    /// structs have no padding, so no other size is a real one.
    const FIELD_ENDS: &'static [usize];
    /// Write the `size` field.
    fn set_size(&mut self, size: u32);
}

/// Largest `size` accepted: no struct of this API will ever be this large, so
/// a bigger value is an uninitialised field, not a newer caller.
pub(crate) const MAX_STRUCT_SIZE: usize = 4096;

/// The caller's `size` field of the struct at `p` (non-NULL), checked: at
/// least 4 (the field itself) and at most [`MAX_STRUCT_SIZE`].
pub(crate) unsafe fn struct_size<T: Extensible>(
    p: *const T,
    what: &'static str,
) -> Result<usize, FfiError> {
    // SAFETY: `p` is non-NULL and points to a struct of this API, whatever its
    // version, which starts with its `uint32_t size` (caller contract).
    let size = unsafe { p.cast::<u32>().read_unaligned() } as usize;
    let hint = format!("set it to sizeof({}), e.g. with {}", T::C_NAME, T::INIT);
    if size == 0 {
        return Err(FfiError::new(
            promshm_result::InvalidArgument,
            format!("{what}->size is 0: {hint}"),
        ));
    }
    if size < size_of::<u32>() || size > MAX_STRUCT_SIZE {
        return Err(FfiError::new(
            promshm_result::InvalidArgument,
            format!(
                "{what}->size is {size}, not the size of a {}: {hint}",
                T::C_NAME
            ),
        ));
    }
    Ok(size)
}

/// Read an extensible input struct: the first `min(size, ours)` bytes, the
/// fields past the caller's size left zero (their defaults). A size that
/// ends inside a field is `InvalidArgument`; a size beyond ours is a newer
/// caller whose extra fields this library does not know and ignores.
pub(crate) unsafe fn read_extensible<T: Extensible + Default>(
    p: *const T,
    what: &'static str,
) -> Result<T, FfiError> {
    // SAFETY: `p` points to a struct of the caller that starts with its `size` field (caller
    // contract).
    let size = unsafe { struct_size(p, what)? };
    let ours = size_of::<T>();
    if size < ours && !T::FIELD_ENDS.contains(&size) {
        return Err(FfiError::new(
            promshm_result::InvalidArgument,
            format!(
                "{what}->size is {size}, which ends inside a field of {} (field ends: {:?}): \
                 set it to sizeof({}), e.g. with {}",
                T::C_NAME,
                T::FIELD_ENDS,
                T::C_NAME,
                T::INIT
            ),
        ));
    }
    let mut value = T::default();
    // SAFETY: the caller's struct has `size` readable bytes (caller contract)
    // and ours `ours`; any bytes are a valid `T` (the `Extensible` contract).
    unsafe {
        std::ptr::copy_nonoverlapping(
            p.cast::<u8>(),
            (&mut value as *mut T).cast::<u8>(),
            size.min(ours),
        )
    };
    value.set_size(ours as u32);
    Ok(value)
}

/// Write an extensible output struct of `size` bytes (as checked by
/// [`struct_size`]) at `p`: the first `min(size, ours)` bytes of `value`,
/// with its `size` field set to that count (which fields were filled).
/// Nothing at or past `p + size` is touched.
pub(crate) unsafe fn write_extensible<T: Extensible>(p: *mut T, size: usize, mut value: T) {
    let n = size.min(size_of::<T>());
    value.set_size(n as u32);
    // SAFETY: the caller's struct at `p` has `size` writable bytes (caller
    // contract), and `n <= size`; `value` is a plain C value of `n` or more bytes.
    unsafe { std::ptr::copy_nonoverlapping((&value as *const T).cast::<u8>(), p.cast::<u8>(), n) };
}

/// The field ends of a struct, for [`Extensible::FIELD_ENDS`]:
/// `field_ends!(T, a: A, b: B)` gives `[offset_of!(T, a) + size_of::<A>(), ...]`.
macro_rules! field_ends {
    ($t:ty, $($field:ident: $ft:ty),+ $(,)?) => {
        &[$(::std::mem::offset_of!($t, $field) + ::std::mem::size_of::<$ft>()),+]
    };
}
pub(crate) use field_ends;

/// A C boolean (a `uint32_t` flag field or parameter, never a C `bool`,
/// whose other byte values would be undefined behaviour in Rust): 0 is
/// false, 1 true, anything else `InvalidArgument`.
pub(crate) fn flag_arg(value: u32, what: &'static str) -> Result<bool, FfiError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(FfiError::new(
            promshm_result::InvalidArgument,
            format!("{what} is {v}: a flag must be 0 or 1"),
        )),
    }
}
