//! The library version at run time (the header's `PROMSHM_VERSION_*` macros
//! give it at compile time; both come from `Cargo.toml`).

use std::ffi::c_char;

/// `"MAJOR.MINOR.PATCH"` with a NUL, from Cargo.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

const fn parse(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0u32;
    while i < b.len() {
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    v
}

/// `MAJOR * 1000000 + MINOR * 1000 + PATCH`, as `PROMSHM_VERSION_NUMBER`.
const VERSION_NUMBER: u32 = parse(env!("CARGO_PKG_VERSION_MAJOR")) * 1_000_000
    + parse(env!("CARGO_PKG_VERSION_MINOR")) * 1_000
    + parse(env!("CARGO_PKG_VERSION_PATCH"));

ffi_fn! {
    /// The version of the loaded library, e.g. "0.1.0": a static string
    /// owned by the library (never free it). Compare with
    /// `PROMSHM_VERSION_STRING` to detect a header/library mismatch.
    /// Thread-safe; never fails.
    fn promshm_version() -> *const c_char {
        VERSION.as_ptr().cast()
    }
}

ffi_fn! {
    /// The version of the loaded library as `MAJOR * 1000000 + MINOR * 1000 +
    /// PATCH`, comparable with `PROMSHM_VERSION_NUMBER`. Thread-safe; never
    /// fails.
    fn promshm_version_number() -> u32 {
        VERSION_NUMBER
    }
}
