//! The C API: a thin layer over the Rust API, exported from `libpromshm.so`
//! and `libpromshm.a` and declared in the generated `include/promshm.h`.
//!
//! Conventions (restated for C users in `docs/C-API.md`):
//!
//! - Every export is written with `ffi_fn!` (in `boundary.rs`), which emits
//!   `#[no_mangle] pub extern "C"` and runs the body under `catch_unwind`: a
//!   panic becomes `PROMSHM_RESULT_PANIC` (or NULL / 0 / false) and never
//!   unwinds into C. No `#[no_mangle]` appears anywhere else.
//! - Fallible functions return [`promshm_result`] and write their
//!   out-parameters only on success; the detail of the last failure on a
//!   thread is kept for [`promshm_last_error`].
//! - Handles are opaque. `const` handles (`promshm_area`, `promshm_registry`,
//!   `promshm_family`, `promshm_series`) are `Arc`s: shared, usable from any
//!   thread at once, released with their `*_free`; `*_free(NULL)` is a no-op.
//!   The one mutable handle, `promshm_flusher`, is a `Box`.
//! - Enumerations that C passes *in* are `uint32_t` typedefs with `#define`
//!   constants, so any value C sends is defined behaviour and an unknown one
//!   is `PROMSHM_RESULT_INVALID_ARGUMENT`. Enumerations that only come *out*
//!   ([`promshm_result`], [`promshm_metric_type`]) are C enums.
//!
//! # Safety contract (all exports)
//!
//! Every pointer argument is NULL or valid for the access its documentation
//! describes: a handle pointer came from this library and was not freed; a
//! `const char *` is NUL-terminated; an array pointer covers the given count;
//! an out-pointer is writable. Breaking this is undefined behaviour, as in
//! any C library; NULL, invalid UTF-8, bad names, wrong counts and wrong
//! handle types are all reported with a status code.
#![allow(non_camel_case_types)]

// `boundary` first: its macro is used by the modules below. The order of
// the rest is the order of the declarations in include/promshm.h.
#[macro_use]
mod boundary;
mod handle;

mod error;
mod result;
mod version;

mod area;

// Its PROMSHM_GAUGE_MODE_* constants are for the header only: C passes their
// values and the Rust side decodes the number.
#[allow(dead_code)]
mod registry;

mod family;

mod series;

mod local;

mod flusher;

mod render;

// Last: the `_e` variants of every fallible function above.
mod variants;

#[cfg(test)]
mod tests;

// Every export, for `tests`. C reaches them through the header; Rust users
// do not at all: `ffi` is a private module of the crate (feature `capi`).
#[cfg(test)]
use {
    area::*, error::*, family::*, flusher::*, registry::*, render::*, result::*, series::*,
    variants::*, version::*,
};
