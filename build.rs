//! Build script for the C library `libpromshm.so`:
//!
//! - export only the C API (`promshm_*`), through a linker version script;
//! - give it a versioned SONAME, so that programs linked against it record
//!   the ABI they were built for and an installed copy can sit next to other
//!   versions (`scripts/install.sh` installs `libpromshm.so.X.Y.Z` with the
//!   SONAME link and the `libpromshm.so` development link).
//!
//! The SONAME follows the ABI policy of docs/C-API.md (no ABI stability
//! before 1.0, as with rustls-ffi) with cargo-c's rule, which rustls-ffi
//! uses: `libpromshm.so.0.MINOR` while the major version is 0 (every minor
//! release may break the ABI), `libpromshm.so.MAJOR` from 1.0 on.

fn main() {
    let map = "src/ffi/promshm.map";
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={map}");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    // GNU ld, gold and lld take version scripts and -soname; Apple's ld64
    // does not (it has -install_name instead).
    if os != "macos" && os != "ios" && os != "windows" {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
        println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/{map}");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{}", soname());
        link_soname_in_profile_dir();
    }
}

/// A program linked against `target/<profile>/libpromshm.so` records the
/// SONAME, and the loader then looks for that name: make it a link to
/// `libpromshm.so` next to it, so that in-tree builds (docs/C-API.md's
/// `cc ... -Ltarget/release -lpromshm -Wl,-rpath,...`) run as they are.
/// Best effort: OUT_DIR is `target/[<triple>/]<profile>/build/<pkg>-<hash>/out`.
#[cfg(unix)]
fn link_soname_in_profile_dir() {
    let Some(out) = std::env::var_os("OUT_DIR") else {
        return;
    };
    let Some(profile) = std::path::Path::new(&out).ancestors().nth(3) else {
        return;
    };
    let link = profile.join(soname());
    if std::fs::read_link(&link).is_err() {
        let _ = std::os::unix::fs::symlink("libpromshm.so", &link);
    }
}

/// `libpromshm.so.0.MINOR` before 1.0, `libpromshm.so.MAJOR` after.
fn soname() -> String {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("set by cargo");
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").expect("set by cargo");
    if major == "0" {
        format!("libpromshm.so.0.{minor}")
    } else {
        format!("libpromshm.so.{major}")
    }
}

#[cfg(not(unix))]
fn link_soname_in_profile_dir() {}
