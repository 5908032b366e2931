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
//!
//! The same way, it builds and runs the C++ wrapper's tests
//! (`bindings/cpp/tests/test_wrapper.cpp`) and the examples against the
//! repository build: the pre-fork HTTP server (`examples/c/server.c`, driven
//! over loopback HTTP) and the C++ example (`examples/cpp/main.cpp`).
//!
//! Modes, for `scripts/test.sh`:
//!
//! - `PROMSHM_C_TEST_FLAGS="-fsanitize=address -fno-omit-frame-pointer"`
//!   with `ASAN_OPTIONS=detect_leaks=1`: every program under AddressSanitizer
//!   and LeakSanitizer (a report makes the program, or the worker and so its
//!   parent, exit non-zero).
//! - `PROMSHM_C_TEST_VALGRIND=1`: every program runs under Valgrind memcheck
//!   (`--error-exitcode=1 --leak-check=full
//!   --errors-for-leak-kinds=definite,indirect`; forked children are checked
//!   too). The load tests then make `PROMSHM_C_TEST_ITERATIONS` (default
//!   20000) iterations per worker or thread instead of their full count.
//!
//! Each mode builds into its own directory (`target/<profile>/c-tests*`), so
//! the modes can run at the same time.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The libraries `libpromshm.a` needs from the system, as rustc prints them
/// with `--print native-static-libs` for this toolchain and target.
/// Documented in docs/C-API.md; `native_static_libs_are_documented` checks it.
const NATIVE_STATIC_LIBS: &str = "-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc";

/// Set (to anything but "" or "0") to run every program under Valgrind.
const VALGRIND_ENV: &str = "PROMSHM_C_TEST_VALGRIND";
/// Iterations per worker/thread of the load tests (they default to their own).
const ITERATIONS_ENV: &str = "PROMSHM_C_TEST_ITERATIONS";
/// The load tests' iteration count under Valgrind, unless ITERATIONS_ENV is set.
const VALGRIND_ITERATIONS: &str = "20000";
/// Valgrind memcheck: any error or a definite/indirect leak fails the run.
const VALGRIND_ARGS: &[&str] = &[
    "--quiet",
    "--error-exitcode=1",
    "--leak-check=full",
    "--errors-for-leak-kinds=definite,indirect",
    "--show-leak-kinds=definite,indirect",
];

fn valgrind() -> bool {
    std::env::var(VALGRIND_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

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

/// `target/<profile>/c-tests`, or `c-tests-<hash>` for extra flags or
/// Valgrind, so that the modes never overwrite each other's programs.
fn out_dir() -> PathBuf {
    let flags = extra_flags();
    let name = if flags.is_empty() && !valgrind() {
        "c-tests".to_string()
    } else {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&flags, valgrind()).hash(&mut h);
        format!("c-tests-{:016x}", h.finish())
    };
    let d = profile_dir().join(name);
    std::fs::create_dir_all(&d).expect("create target/<profile>/c-tests*");
    d
}

/// The SONAME build.rs gives libpromshm.so: `libpromshm.so.0.MINOR` before
/// 1.0, `libpromshm.so.MAJOR` after (docs/C-API.md, "ABI stability").
fn soname() -> String {
    let (major, minor, _) = cargo_version();
    if major == 0 {
        format!("libpromshm.so.0.{minor}")
    } else {
        format!("libpromshm.so.{major}")
    }
}

/// A directory holding `<soname>` -> the `libpromshm.so` under test. A
/// program linked with `-lpromshm` records the SONAME and the loader looks
/// for that name; cargo only makes `libpromshm.so`. (scripts/install.sh
/// installs the real links.)
fn soname_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = out_dir().join("lib");
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join(soname());
        let tmp = dir.join(format!(".{}.{}", soname(), std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(shared_lib(), &tmp).expect("symlink");
        std::fs::rename(&tmp, &link).expect("rename symlink");
        dir
    })
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
    build_program(&src, name, lang, link, defines)
}

/// Compile and link the C or C++ program `src` (with `include/` on the
/// include path and `defines`, which may be any flags); the path of the
/// executable.
fn build_program(src: &Path, name: &str, lang: Lang, link: Link, defines: &[String]) -> PathBuf {
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
        .arg(src);
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
                .arg(format!("-Wl,-rpath,{}", soname_dir().display()))
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

/// The command that runs `exe`: directly, or under Valgrind in that mode
/// (with the smaller iteration count of the load tests).
fn program(exe: &Path) -> Command {
    assert!(
        !(valgrind() && extra_flags().iter().any(|f| f.starts_with("-fsanitize"))),
        "{VALGRIND_ENV} and sanitizer flags in PROMSHM_C_TEST_FLAGS do not mix"
    );
    if valgrind() {
        let mut cmd = Command::new("valgrind");
        cmd.args(VALGRIND_ARGS).arg(exe);
        if std::env::var_os(ITERATIONS_ENV).is_none() {
            cmd.env(ITERATIONS_ENV, VALGRIND_ITERATIONS);
        }
        cmd
    } else {
        Command::new(exe)
    }
}

/// How long a program may take: longer under Valgrind.
fn limit(normal: Duration) -> Duration {
    if valgrind() {
        normal * 5
    } else {
        normal
    }
}

/// Run an executable with a time limit; its stdout.
fn run(exe: &Path, limit: Duration) -> String {
    run_with_args(exe, &[], limit)
}

/// Read a child's pipe to its end on a thread (a program writing more than
/// a pipe holds, e.g. Valgrind's reports, must not block on it).
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    let mut pipe = pipe.expect("piped");
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Run an executable with arguments and a time limit; its stdout.
fn run_with_args(exe: &Path, args: &[&str], limit: Duration) -> String {
    let mut child = program(exe)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not finish within {limit:?}\n--- stdout\n{}\n--- stderr\n{}",
                exe.display(),
                stdout.join().expect("stdout reader"),
                stderr.join().expect("stderr reader")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    assert!(
        status.success(),
        "{} failed ({status})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        exe.display(),
    );
    stdout
}

/// Build `name` in all four ways, run each, and check its last line.
fn c_test(name: &str, defines: &[String], expect_prefix: &str) {
    for lang in [Lang::C, Lang::Cxx] {
        for link in [Link::Shared, Link::Static] {
            let exe = build(name, lang, link, defines);
            let out = run(&exe, limit(Duration::from_secs(300)));
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
        // `static inline` functions are defined in the header, not exported.
        if line.starts_with([' ', '#', '/', '*', '}'])
            || line.starts_with("typedef")
            || line.starts_with("static inline ")
        {
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

/// Local counters: the header's inline increments, init / flush / release
/// and their errors, 4 forked workers with exact totals.
#[test]
fn local_counter_prefork() {
    c_test("test_local", &[], "local:");
}

/// Local histograms: the header's inline observe (the same buckets as
/// `promshm_histogram_observe`), init / flush / release and their errors,
/// 4 forked workers with exact buckets, count and sum.
#[test]
fn local_histogram_prefork() {
    c_test("test_local_histogram", &[], "local histogram:");
}

#[test]
fn prefork_exact_totals() {
    c_test("test_prefork", &[], "prefork:");
}

/// Native histograms: 4 forked workers, exact count and sum, the errors.
#[test]
fn native_histogram_prefork() {
    c_test("test_native", &[], "native:");
}

/// A native histogram with classic buckets too: 4 forked workers; the C
/// program checks the classic view in text, this the protobuf message it
/// wrote: exact native buckets and classic buckets, side by side.
#[test]
fn native_histogram_with_classic_buckets_prefork() {
    use promshm::encoding::protobuf::{decode_families, proto::BucketSpan};
    for lang in [Lang::C, Lang::Cxx] {
        for link in [Link::Shared, Link::Static] {
            let exe = build("test_native_dual", lang, link, &[]);
            let pb = exe.with_extension("pb");
            let out = run_with_args(
                &exe,
                &[pb.to_str().unwrap()],
                limit(Duration::from_secs(300)),
            );
            let last = out.lines().last().unwrap_or("");
            assert!(
                last.starts_with("native_dual:") && last.contains("checks passed"),
                "test_native_dual ({lang:?}, {link:?}): unexpected output:\n{out}"
            );
            // "native_dual: 4 workers x N rounds, ..."
            let rounds: u64 = last.split_whitespace().nth(4).unwrap().parse().unwrap();
            let n = 4 * rounds;
            let fams = decode_families(&std::fs::read(&pb).unwrap()).unwrap();
            let fam = fams.iter().find(|f| f.name() == "latency_seconds").unwrap();
            let h = fam.metric[0].histogram.as_ref().unwrap();
            assert_eq!(h.sample_count(), 6 * n);
            assert_eq!(
                h.sample_sum(),
                n as f64 * (0.5 + 1.0 + 3.0 - 2.0 + 1073741824.0)
            );
            // Native, schema 0: 0 in the zero bucket (threshold 0.25); 0.5 in
            // bucket -1, 1 in 0, 3 in 2, 2^30 clamped to 20 (2^20); -2 in 1.
            assert_eq!(
                (h.schema(), h.zero_threshold(), h.zero_count()),
                (0, 0.25, n)
            );
            let span = |o, l| BucketSpan {
                offset: Some(o),
                length: Some(l),
            };
            assert_eq!(h.positive_span, [span(-1, 4), span(17, 1)]);
            let n = n as i64;
            assert_eq!(h.positive_delta, [n, 0, -n, n, 0]);
            assert_eq!(h.negative_span, [span(1, 1)]);
            assert_eq!(h.negative_delta, [n]);
            // Classic, cumulative, in the same message.
            let classic: Vec<(f64, u64)> = h
                .bucket
                .iter()
                .map(|b| (b.upper_bound(), b.cumulative_count()))
                .collect();
            let n = n as u64;
            assert_eq!(
                classic,
                [(0.5, 3 * n), (1.0, 4 * n), (2.5, 4 * n), (10.0, 5 * n)]
            );
            let ex = h.bucket[3].exemplar.as_ref().expect("the exemplar of 3.0");
            assert_eq!((ex.value(), ex.label[0].value()), (3.0, "w"));
            assert_eq!(h.exemplars.len(), 1);
            eprintln!("test_native_dual ({lang:?}, {link:?}): {last}");
        }
    }
}

/// Exemplars: 4 forked workers, exact totals, whole exemplars, the errors.
#[test]
fn exemplar_prefork() {
    c_test("test_exemplar", &[], "exemplar:");
}

#[test]
fn forked_children_inherit_the_flusher() {
    c_test("test_flusher_inherit", &[], "flusher_inherit:");
}

#[test]
fn bad_input_to_every_function() {
    c_test("test_bad_input", &[], "bad_input:");
}

#[test]
fn threads_in_processes_exact_totals() {
    c_test("test_threads", &[], "threads:");
}

/// The error object: 8 threads fail 8 different calls at once, each reads
/// its own status and detail from its own `promshm_error`.
#[test]
fn error_object_per_caller_in_threads() {
    c_test("test_error_object", &[], "error_object:");
}

/// The size query always fits the next render; render_alloc with exact
/// totals from 2 processes; the `_simple` registrations and `uint32_t` flags.
#[test]
fn render_alloc_and_size_query_fits() {
    c_test("test_render_alloc", &[], "render_alloc:");
}

/// Extensible structs (older and newer sizes, canaries, size 0 rejected) and
/// flags (a value of 2 rejected): docs/C-API.md, "Extensible structs".
#[test]
fn extensible_structs_and_flags() {
    c_test("test_abi", &[], "abi:");
}

/// The file checks set by `promshm_area_options` (`allow_owner` with a
/// chowned file, as root; `allow_group_write`, `allow_other_write`) and the
/// `lock_timeout_ms` bound, through `promshm_area_create` and
/// `promshm_area_open_with`; and the lock statistics of
/// `promshm_area_stats` and the page while the area lock is held.
#[test]
fn file_checks_and_lock_timeout_options() {
    c_test("test_file_checks", &[], "file_checks:");
}

/// Updates by label values without a series handle
/// (`promshm_family_inc_by_values`, `promshm_family_observe_by_values`):
/// exact totals from threads and a child, removed series, freed families,
/// every error.
#[test]
fn updates_by_label_values() {
    c_test("test_by_values", &[], "by_values:");
}

/// Unregistering families (`promshm_registry_unregister`): 4 forked
/// workers register, update and unregister a family of one name, as a
/// counter then a gauge, in a 1 MiB area: exact totals, never AREA_FULL,
/// stale handles update nothing; the errors.
#[test]
fn unregister_families_in_forked_workers() {
    c_test("test_unregister", &[], "unregister:");
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
        // `#define PROMSHM_X v` right after its documented `enum { PROMSHM_X = v };`.
        let enum_define = line.strip_prefix("#define ").is_some_and(|d| {
            let (name, value) = d.split_once(' ').unwrap_or((d, ""));
            prev == format!("enum {{ {name} = {value} }};")
        });
        if enum_define {
            continue;
        }
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

// The C API is not part of the Rust API: this test declares the function it
// calls as a C program does, and links the library that defines it (the
// default feature `capi` compiles the exports in).
extern crate promshm;
extern "C" {
    fn promshm_result_message(code: u32) -> *const std::ffi::c_char;
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
            let msg = unsafe { std::ffi::CStr::from_ptr(promshm_result_message(value)) };
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

#[test]
fn shared_library_has_versioned_soname() {
    let out = run_checked(
        Command::new("readelf").arg("-d").arg(shared_lib()),
        "readelf -d",
    );
    let want = format!("Library soname: [{}]", soname());
    assert!(
        out.contains(&want),
        "libpromshm.so lacks `{want}` (build.rs):\n{out}"
    );
}

/// The C++ wrapper's own tests, as C++17 with -Wall -Wextra -Wpedantic
/// -Werror, against the .so and the .a.
#[test]
fn cpp_wrapper() {
    let src = manifest_dir().join("bindings/cpp/tests/test_wrapper.cpp");
    let flags = vec![
        format!("-I{}", manifest_dir().join("bindings/cpp").display()),
        "-Wpedantic".to_string(),
    ];
    for link in [Link::Shared, Link::Static] {
        let exe = build_program(&src, "test_wrapper", Lang::Cxx, link, &flags);
        let out = run(&exe, limit(Duration::from_secs(300)));
        let last = out.lines().last().unwrap_or("");
        assert!(
            last.starts_with("cpp_wrapper:") && last.ends_with("checks passed"),
            "test_wrapper ({link:?}): unexpected output:\n{out}"
        );
        eprintln!("test_wrapper (C++, {link:?}): {last}");
    }
}

/// examples/cpp: forks 3 workers and prints the exposition of their area.
#[test]
fn example_cpp_program() {
    let src = manifest_dir().join("examples/cpp/main.cpp");
    let flags = vec![format!(
        "-I{}",
        manifest_dir().join("bindings/cpp").display()
    )];
    for link in [Link::Shared, Link::Static] {
        let exe = build_program(&src, "example_cpp", Lang::Cxx, link, &flags);
        let out = run_with_args(&exe, &["3"], limit(Duration::from_secs(120)));
        check_cpp_example_output(&out, 3);
        let om = run_with_args(
            &exe,
            &["2", "--openmetrics"],
            limit(Duration::from_secs(120)),
        );
        assert!(om.ends_with("# EOF\n"), "not OpenMetrics:\n{om}");
    }
}

/// What examples/cpp prints for `workers` workers of 10,000 jobs.
fn check_cpp_example_output(out: &str, workers: u64) {
    let value = |series: &str| -> f64 {
        let line = out
            .lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {series} in:\n{out}"));
        line[series.len() + 1..].parse().unwrap()
    };
    let jobs = 10_000 * workers;
    let app = "app=\"cpp-example\"";
    assert_eq!(
        value(&format!(
            "batch_jobs_total{{{app},kind=\"thumbnail\",outcome=\"ok\"}}"
        )),
        (jobs / 2) as f64
    );
    assert_eq!(
        value(&format!(
            "batch_jobs_total{{{app},kind=\"resize\",outcome=\"failed\"}}"
        )),
        (workers * 100) as f64
    );
    assert_eq!(
        value(&format!("batch_job_duration_seconds_count{{{app}}}")),
        jobs as f64
    );
    assert_eq!(
        value(&format!("batch_job_size_bytes_count{{{app}}}")),
        jobs as f64
    );
}

/// examples/c: the pre-fork HTTP server, with 4 workers on a free loopback
/// port, driven over HTTP, then stopped with SIGTERM.
#[test]
fn example_c_server() {
    let src = manifest_dir().join("examples/c/server.c");
    for link in [Link::Shared, Link::Static] {
        let exe = build_program(&src, "example_server", Lang::C, link, &[]);
        let mut cmd = program(&exe);
        cmd.args(["-p", "0", "-w", "4", "-q"]);
        exercise_server(cmd, &format!("{link:?}"));
    }
}

// ---- driving the example server ------------------------------------------------

#[path = "support/server.rs"]
mod server;
use server::Server;

fn start_server(cmd: Command) -> Server {
    server::start_server(cmd, limit(Duration::from_secs(60)))
}

fn http(port: u16, head: &str) -> (u16, Vec<(String, String)>, String) {
    server::http(port, head, limit(Duration::from_secs(30)))
}

fn get(port: u16, path: &str, accept: Option<&str>) -> (u16, Vec<(String, String)>, String) {
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{accept}\r\n"),
    )
}

fn header_of<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn sample_value(text: &str, series: &str) -> f64 {
    let mut found = text
        .lines()
        .filter(|l| l.starts_with(series) && l[series.len()..].starts_with(' '));
    let line = found
        .next()
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    assert!(found.next().is_none(), "{series} twice in:\n{text}");
    line[series.len() + 1..].parse().unwrap()
}

/// Start the server, send requests from several threads, check /metrics in
/// both formats, stop it with SIGTERM and check it exits 0.
fn exercise_server(cmd: Command, what: &str) {
    let mut server = start_server(cmd);
    let port = server.port;

    const CLIENTS: usize = 4;
    const PER_CLIENT: usize = 25;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..PER_CLIENT {
                    let (status, headers, body) = get(port, "/?x=1", None);
                    assert_eq!(status, 200, "{body}");
                    assert!(body.starts_with("hello from worker"), "{body}");
                    assert_eq!(
                        header_of(&headers, "content-length"),
                        body.len().to_string()
                    );
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client thread");
    }
    for _ in 0..5 {
        assert_eq!(get(port, "/no/such/page", None).0, 404);
    }
    let (status, headers, body) = http(port, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((status, body.as_str()), (200, ""));
    assert!(
        header_of(&headers, "content-length")
            .parse::<usize>()
            .unwrap()
            > 0
    );
    assert_eq!(http(port, "POST / HTTP/1.1\r\nHost: x\r\n\r\n").0, 405);
    assert_eq!(http(port, "NONSENSE\r\n\r\n").0, 400);
    // A port probe (connect, send nothing, close) is not a request.
    drop(TcpStream::connect(("127.0.0.1", port)).expect("connect"));

    // OpenMetrics when the scraper prefers it.
    let (status, headers, om) = get(
        port,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    );
    assert_eq!(status, 200);
    assert!(
        header_of(&headers, "content-type").starts_with("application/openmetrics-text"),
        "{headers:?}"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");

    // Text 0.0.4 otherwise; every response above is counted exactly, whichever
    // worker served it (each flushes before responding).
    let (status, headers, text) = get(port, "/metrics", None);
    assert_eq!(status, 200);
    assert!(
        header_of(&headers, "content-type").starts_with("text/plain; version=0.0.4"),
        "{headers:?}"
    );
    let n = (CLIENTS * PER_CLIENT) as f64;
    assert_eq!(
        sample_value(&text, "http_requests_total{path=\"/\",status=\"200\"}"),
        n + 1.0 // and the HEAD
    );
    assert_eq!(
        sample_value(&text, "http_requests_total{path=\"other\",status=\"404\"}"),
        5.0
    );
    assert_eq!(
        sample_value(&text, "http_requests_total{path=\"/\",status=\"405\"}"),
        1.0
    );
    assert_eq!(
        sample_value(&text, "http_requests_total{path=\"other\",status=\"400\"}"),
        1.0
    );
    assert_eq!(
        sample_value(
            &text,
            "http_requests_total{path=\"/metrics\",status=\"200\"}"
        ),
        1.0
    );
    assert_eq!(
        sample_value(&text, "http_request_duration_seconds_count{path=\"/\"}"),
        n + 2.0
    );
    assert_eq!(
        sample_value(
            &text,
            "http_request_duration_seconds_bucket{path=\"/\",le=\"+Inf\"}"
        ),
        n + 2.0
    );
    assert_eq!(sample_value(&text, "http_requests_in_flight"), 1.0);
    let per_worker: f64 = text
        .lines()
        .filter(|l| l.starts_with("http_worker_requests{worker=\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    // GETs, 404s, HEAD, POST, NONSENSE, the first /metrics; not this one yet.
    assert_eq!(per_worker, n + 5.0 + 4.0);

    // SIGTERM: the workers finish and the server exits 0.
    let pid = server.child.id() as libc::pid_t;
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < limit(Duration::from_secs(30)),
            "the server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut e) = server.child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(
        status.success(),
        "server ({what}) exited with {status}\n--- stderr\n{stderr}"
    );
    eprintln!("example server ({what}): {n} + 11 requests, /metrics exact, stopped cleanly");
}
