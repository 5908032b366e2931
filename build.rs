//! Build script: export only the C API (`promshm_*`) from `libpromshm.so`.

fn main() {
    let map = "src/ffi/promshm.map";
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={map}");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    // GNU ld, gold and lld take version scripts; Apple's ld64 does not.
    if os != "macos" && os != "ios" && os != "windows" {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
        println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/{map}");
    }
}
