//! The C API from C and C++: compiles each program in `tests/c/` against
//! `include/promshm.h` as C11 and as C++17 (`-Wall -Wextra -Werror`), links
//! it once against `libpromshm.so` (with an rpath) and once against
//! `libpromshm.a` (with rustc's native-static-libs list), runs it, and
//! checks its exit status and last line. Also checks the exported symbols
//! and the header itself (every declaration documented, every function
//! exported, every result code known).
//!
//! The libraries are the ones cargo built for this test run, next to the
//! test binary in `target/<profile>/deps/`: a `[lib]` with `cdylib` and
//! `staticlib` crate types is built with all of them even as a dependency of
//! a test, but only `cargo build` copies them up to `target/<profile>/`,
//! where they may be stale. Set `CC`/`CXX` to
//! use other compilers, and `PROMSHM_C_TEST_FLAGS` to add flags (e.g.
//! sanitizers) to every compile and link.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The libraries `libpromshm.a` needs from the system, as rustc prints them
/// with `--print native-static-libs` for this toolchain and target.
/// Documented in docs/C-API.md; `native_static_libs_are_documented` checks it.
const NATIVE_STATIC_LIBS: &str = "-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>/deps`, where this test binary and the libraries are.
fn deps_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent().expect("deps dir").to_path_buf()
}

/// `target/<profile>`.
fn profile_dir() -> PathBuf {
    deps_dir().parent().expect("profile dir").to_path_buf()
}

fn shared_lib() -> PathBuf {
    let p = deps_dir().join("libpromshm.so");
    assert!(
        p.exists(),
        "{} not built (the cdylib crate type)",
        p.display()
    );
    p
}

fn static_lib() -> PathBuf {
    let p = deps_dir().join("libpromshm.a");
    assert!(
        p.exists(),
        "{} not built (the staticlib crate type)",
        p.display()
    );
    p
}

fn out_dir() -> PathBuf {
    let d = profile_dir().join("c-tests");
    std::fs::create_dir_all(&d).expect("create target/<profile>/c-tests");
    d
}

fn extra_flags() -> Vec<String> {
    std::env::var("PROMSHM_C_TEST_FLAGS")
        .map(|f| f.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

fn run_checked(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}): {cmd:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    stdout
}

#[derive(Clone, Copy, Debug)]
enum Lang {
    C,
    Cxx,
}

#[derive(Clone, Copy, Debug)]
enum Link {
    Shared,
    Static,
}

/// Compile and link `tests/c/<name>.c`; the path of the executable.
fn build(name: &str, lang: Lang, link: Link, defines: &[String]) -> PathBuf {
    let src = manifest_dir().join("tests/c").join(format!("{name}.c"));
    let exe = out_dir().join(format!("{name}-{lang:?}-{link:?}").to_lowercase());
    let mut cmd = match lang {
        Lang::C => {
            let mut c = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
            c.args(["-std=c11", "-Wpedantic"]);
            c
        }
        Lang::Cxx => {
            let mut c = Command::new(std::env::var("CXX").unwrap_or_else(|_| "c++".into()));
            c.args(["-x", "c++", "-std=c++17"]);
            c
        }
    };
    cmd.args(["-Wall", "-Wextra", "-Werror", "-g", "-pthread"])
        .arg(format!("-I{}", manifest_dir().join("include").display()))
        .args(defines)
        .args(extra_flags())
        .arg(&src);
    if let Lang::Cxx = lang {
        cmd.args(["-x", "none"]);
    }
    match link {
        Link::Shared => {
            let lib = shared_lib();
            let dir = lib.parent().unwrap();
            // DT_RPATH, not DT_RUNPATH: cargo test sets LD_LIBRARY_PATH to
            // target/<profile>, whose libpromshm.so may be stale, and only
            // DT_RPATH takes precedence over LD_LIBRARY_PATH.
            cmd.arg(format!("-L{}", dir.display()))
                .arg(format!("-Wl,-rpath,{}", dir.display()))
                .arg("-Wl,--disable-new-dtags")
                .arg("-lpromshm");
        }
        Link::Static => {
            cmd.arg(static_lib())
                .args(native_static_libs().split_whitespace());
        }
    }
    cmd.arg("-lm").arg("-o").arg(&exe);
    run_checked(&mut cmd, &format!("compiling {name} ({lang:?}, {link:?})"));
    exe
}

/// Run an executable with a time limit; its stdout.
fn run(exe: &Path, limit: Duration) -> String {
    let mut child = Command::new(exe)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    let start = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            panic!(
                "{} did not finish within {limit:?}\n--- stdout\n{}\n--- stderr\n{}",
                exe.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{}",
        exe.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Build `name` in all four ways, run each, and check its last line.
fn c_test(name: &str, defines: &[String], expect_prefix: &str) {
    for lang in [Lang::C, Lang::Cxx] {
        for link in [Link::Shared, Link::Static] {
            let exe = build(name, lang, link, defines);
            let out = run(&exe, Duration::from_secs(300));
            let last = out.lines().last().unwrap_or("");
            assert!(
                last.starts_with(expect_prefix) && last.contains("checks passed"),
                "{name} ({lang:?}, {link:?}): unexpected output:\n{out}"
            );
            eprintln!("{name} ({lang:?}, {link:?}): {last}");
        }
    }
}

/// What rustc says a static library of this toolchain needs, computed once
/// by building an empty `staticlib` (no cargo involved).
fn native_static_libs() -> &'static str {
    static LIBS: OnceLock<String> = OnceLock::new();
    LIBS.get_or_init(|| {
        let dir = out_dir().join("native-static-libs");
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("lib.rs");
        std::fs::write(&src, "pub fn f() {}\n").unwrap();
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let out = Command::new(rustc)
            .args([
                "--crate-type",
                "staticlib",
                "--crate-name",
                "nsl",
                "--edition",
                "2021",
            ])
            .args(["--print", "native-static-libs", "-o"])
            .arg(dir.join("libnsl.a"))
            .arg(&src)
            .output()
            .expect("run rustc");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "rustc failed: {stderr}");
        stderr
            .lines()
            .find_map(|l| l.split("native-static-libs:").nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| panic!("no native-static-libs line in: {stderr}"))
    })
}

fn header() -> String {
    std::fs::read_to_string(manifest_dir().join("include/promshm.h"))
        .expect("include/promshm.h (run scripts/gen-header)")
}

fn cargo_version() -> (u32, u32, u32) {
    let p = |v: &str| v.parse::<u32>().unwrap();
    (
        p(env!("CARGO_PKG_VERSION_MAJOR")),
        p(env!("CARGO_PKG_VERSION_MINOR")),
        p(env!("CARGO_PKG_VERSION_PATCH")),
    )
}

/// Names of the functions the header declares.
fn declared_functions(h: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in h.lines() {
        if line.starts_with([' ', '#', '/', '*', '}']) || line.starts_with("typedef") {
            continue;
        }
        if let Some(open) = line.find('(') {
            let name = line[..open].rsplit([' ', '*']).next().unwrap_or("");
            if name.starts_with("promshm_") {
                out.insert(name.to_string());
            }
        }
    }
    out
}

#[test]
fn prefork_exact_totals() {
    c_test("test_prefork", &[], "prefork:");
}

#[test]
fn bad_input_to_every_function() {
    c_test("test_bad_input", &[], "bad_input:");
}

#[test]
fn threads_in_processes_exact_totals() {
    c_test("test_threads", &[], "threads:");
}

#[test]
fn basic_api_coverage() {
    c_test("test_basic", &[], "basic:");
}

#[test]
fn header_version_and_double_include() {
    let (major, minor, patch) = cargo_version();
    let defines = vec![
        format!("-DEXPECTED_MAJOR={major}"),
        format!("-DEXPECTED_MINOR={minor}"),
        format!("-DEXPECTED_PATCH={patch}"),
        format!("-DEXPECTED_STRING=\"{}\"", env!("CARGO_PKG_VERSION")),
    ];
    c_test("test_header", &defines, "header:");
}

#[test]
fn header_version_macros_match_cargo() {
    let h = header();
    let (major, minor, patch) = cargo_version();
    let number = major * 1_000_000 + minor * 1_000 + patch;
    for (name, value) in [
        ("PROMSHM_VERSION_MAJOR", major.to_string()),
        ("PROMSHM_VERSION_MINOR", minor.to_string()),
        ("PROMSHM_VERSION_PATCH", patch.to_string()),
        (
            "PROMSHM_VERSION_STRING",
            format!("\"{}\"", env!("CARGO_PKG_VERSION")),
        ),
        ("PROMSHM_VERSION_NUMBER", number.to_string()),
    ] {
        let line = format!("#define {name} {value}");
        assert!(h.lines().any(|l| l == line), "header lacks `{line}`");
    }
}

#[test]
fn header_is_generated_guarded_and_documented() {
    let h = header();
    assert!(h.contains("Generated by scripts/gen-header. Do not edit."));
    assert!(h.contains("#ifndef PROMSHM_H\n#define PROMSHM_H\n"));
    assert!(h.contains("#ifdef __cplusplus\nextern \"C\" {\n"));
    assert!(h.trim_end().ends_with("#endif  /* PROMSHM_H */"));

    // Every declaration is preceded by a doc comment: functions, typedefs,
    // enums, #defines at column 0; enum variants and struct fields inside.
    let lines: Vec<&str> = h.lines().collect();
    let mut undocumented = Vec::new();
    let mut checked = 0;
    for (i, line) in lines.iter().enumerate() {
        let prev = lines[..i].iter().rev().find(|l| !l.trim().is_empty());
        let prev = prev.map(|l| l.trim()).unwrap_or("");
        let top_level = line.starts_with("typedef ")
            || line.starts_with("enum ")
            || (line.starts_with("#define PROMSHM_") && *line != "#define PROMSHM_H")
            || (!line.starts_with([' ', '#', '/', '*', '}'])
                && line.contains("promshm_")
                && line.contains('('));
        let member = line.starts_with("    ")
            && !line.trim_start().starts_with(['/', '*'])
            && (line.trim_end().ends_with(';') || line.trim_end().ends_with(','))
            // Continuation lines of multi-line prototypes.
            && !lines[..i].last().is_some_and(|l| l.trim_end().ends_with(','));
        // cbindgen's C11/C23 typedef of a documented enum.
        let enum_typedef = prev.starts_with("#if") || prev.starts_with("#else");
        if (top_level || member) && !enum_typedef {
            checked += 1;
            if !prev.ends_with("*/") {
                undocumented.push(format!("{}: {line}", i + 1));
            }
        }
    }
    assert!(checked > 150, "the checker saw only {checked} declarations");
    assert!(
        undocumented.is_empty(),
        "declarations without a doc comment:\n{}",
        undocumented.join("\n")
    );

    // Function docs say how errors and NULL behave.
    let decls = declared_functions(&h);
    assert!(
        decls.len() >= 70,
        "only {} functions in the header",
        decls.len()
    );
}

#[test]
fn only_the_c_api_is_exported() {
    let lib = shared_lib();
    let out = run_checked(
        Command::new("nm").args(["-D", "--defined-only"]).arg(&lib),
        "nm -D",
    );
    let exported: BTreeSet<String> = out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .map(|s| s.split('@').next().unwrap().to_string())
        .collect();
    let stray: Vec<_> = exported
        .iter()
        .filter(|s| !s.starts_with("promshm_"))
        .collect();
    assert!(
        stray.is_empty(),
        "symbols exported besides promshm_*: {stray:?}"
    );
    // Exactly the functions the header declares.
    let declared = declared_functions(&header());
    let missing: Vec<_> = declared.difference(&exported).collect();
    let undeclared: Vec<_> = exported.difference(&declared).collect();
    assert!(
        missing.is_empty(),
        "declared in promshm.h but not exported: {missing:?}"
    );
    assert!(
        undeclared.is_empty(),
        "exported but not in promshm.h (run scripts/gen-header): {undeclared:?}"
    );
}

#[test]
fn native_static_libs_are_documented() {
    assert_eq!(
        native_static_libs(),
        NATIVE_STATIC_LIBS,
        "rustc's native-static-libs changed: update NATIVE_STATIC_LIBS here and docs/C-API.md"
    );
    let doc = std::fs::read_to_string(manifest_dir().join("docs/C-API.md")).unwrap();
    assert!(
        doc.contains(NATIVE_STATIC_LIBS),
        "docs/C-API.md must list {NATIVE_STATIC_LIBS}"
    );
}

#[test]
fn every_result_code_has_a_message() {
    let h = header();
    let mut codes = 0;
    for line in h.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("PROMSHM_RESULT_") {
            let (name, value) = rest.split_once(" = ").expect("NAME = value");
            let value: u32 = value.trim_end_matches(',').parse().unwrap();
            // SAFETY: promshm_result_message takes any integer and returns a static string.
            let msg =
                unsafe { std::ffi::CStr::from_ptr(promshm::ffi::promshm_result_message(value)) };
            let msg = msg.to_str().unwrap();
            assert_ne!(
                msg, "unknown result code",
                "PROMSHM_RESULT_{name} = {value}"
            );
            codes += 1;
        }
    }
    assert!(codes >= 30, "found only {codes} result codes");
}
