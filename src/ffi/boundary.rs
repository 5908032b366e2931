//! The panic boundary: the one macro every export is written with.
//!
//! `ffi_fn!` emits `#[no_mangle] pub extern "C"` (or `pub unsafe extern "C"`)
//! and runs the body inside `catch_unwind`. On the normal path this costs
//! nothing measurable (no landing pad is entered); on a panic the payload is
//! recorded as the thread's last error and the function returns its type's
//! [`PanicDefault`]: `PROMSHM_RESULT_PANIC`, NULL, 0 or false. A bug in promshm
//! therefore never unwinds into, or aborts, the host process (every profile
//! keeps `panic = "unwind"`, see `Cargo.toml`).
//!
//! `scripts/gen-header` runs cbindgen over the macro-expanded crate, so the
//! functions this macro generates, with their `///` docs, are in the header.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::family::promshm_metric_type;
use super::render::promshm_format;
use super::result::{promshm_result, set_last_error};

/// Declare an exported C function whose body runs behind the panic boundary.
///
/// ```ignore
/// ffi_fn! {
///     /// Docs, copied into the header.
///     unsafe fn promshm_thing(x: *const promshm_series) -> promshm_result {
///         ...
///     }
/// }
/// ```
///
/// `unsafe fn` is for functions that dereference pointer arguments (their
/// contract is the module-level safety contract in `ffi`); plain `fn` for
/// the few that take none.
macro_rules! ffi_fn {
    (
        $(#[$meta:meta])*
        unsafe fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        $(#[$meta])*
        #[no_mangle]
        // The pointer contract is the same for every export; it is stated once
        // in `ffi`'s module docs, the header preamble and docs/C-API.md.
        #[allow(clippy::missing_safety_doc)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) $(-> $ret)? {
            $crate::ffi::boundary::run(move || $body)
        }
    };
    (
        $(#[$meta:meta])*
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        $(#[$meta])*
        #[no_mangle]
        pub extern "C" fn $name($($arg: $ty),*) $(-> $ret)? {
            $crate::ffi::boundary::run(move || $body)
        }
    };
}

/// Run `f`; on a panic, record it and return `R`'s panic value.
#[inline(always)]
pub(crate) fn run<R: PanicDefault>(f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => panicked(payload),
    }
}

#[cold]
#[inline(never)]
fn panicked<R: PanicDefault>(payload: Box<dyn Any + Send>) -> R {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string());
    // Dropping a payload can itself panic (a panicking Drop impl): contain it.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
    set_last_error(format!("promshm panicked (a bug; please report it): {msg}").into());
    R::panic_default()
}

/// What an export returns when its body panicked.
pub(crate) trait PanicDefault {
    fn panic_default() -> Self;
}

impl PanicDefault for promshm_result {
    fn panic_default() -> Self {
        promshm_result::Panic
    }
}

impl<T> PanicDefault for *const T {
    fn panic_default() -> Self {
        std::ptr::null()
    }
}

impl<T> PanicDefault for *mut T {
    fn panic_default() -> Self {
        std::ptr::null_mut()
    }
}

impl PanicDefault for () {
    fn panic_default() -> Self {}
}

impl PanicDefault for promshm_metric_type {
    fn panic_default() -> Self {
        promshm_metric_type::Invalid
    }
}

impl PanicDefault for promshm_format {
    fn panic_default() -> Self {
        super::render::PROMSHM_FORMAT_PROMETHEUS
    }
}

macro_rules! zero_on_panic {
    ($($t:ty),*) => {$(
        impl PanicDefault for $t {
            fn panic_default() -> Self {
                Default::default()
            }
        }
    )*};
}
zero_on_panic!(bool, u32, u64, usize, f64);
