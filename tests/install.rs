//! `scripts/install.sh` into a temporary prefix, then the examples built
//! against the installed copy the way a user would: `make PKG_CONFIG=1`
//! with `PKG_CONFIG_PATH` pointing at the prefix, so the flags come from
//! `pkg-config --cflags --libs promshm`. The C pre-fork server is started on
//! a free loopback port, answers requests and serves exact `/metrics`; the
//! C++ example forks workers and prints their totals. A static link with
//! `pkg-config --static` (Libs.private) is checked too.
//!
//! The libraries installed are the ones cargo built for this test run
//! (`install.sh --from target/<profile>/deps`): running `cargo build` from
//! inside `cargo test` would wait on cargo's own lock.

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// What libpromshm.a needs from the system (as in tests/c_api.rs and
/// docs/C-API.md); install.sh writes it as Libs.private.
const NATIVE_STATIC_LIBS: &str = "-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>/deps`, where this test binary and the libraries are.
fn deps_dir() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run_checked(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}): {cmd:?}\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn soname() -> String {
    let major: u32 = env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap();
    let minor = env!("CARGO_PKG_VERSION_MINOR");
    if major == 0 {
        format!("libpromshm.so.0.{minor}")
    } else {
        format!("libpromshm.so.{major}")
    }
}

#[test]
fn install_then_build_and_run_the_examples_with_pkg_config() {
    let work = deps_dir()
        .parent()
        .unwrap()
        .join("install-test")
        .join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let prefix = work.join("prefix");
    let lib = prefix.join("lib");
    let pc_path = lib.join("pkgconfig");

    // ---- install ------------------------------------------------------------
    let out = run_checked(
        Command::new("bash")
            .arg(manifest_dir().join("scripts/install.sh"))
            .arg("--prefix")
            .arg(&prefix)
            .arg("--from")
            .arg(deps_dir()),
        "scripts/install.sh",
    );
    eprintln!("{out}");

    let version = env!("CARGO_PKG_VERSION");
    let real = lib.join(format!("libpromshm.so.{version}"));
    let meta = std::fs::symlink_metadata(&real).expect("the real shared library");
    assert!(
        meta.file_type().is_file(),
        "{} is not a file",
        real.display()
    );
    assert_eq!(
        std::fs::read_link(lib.join(soname())).expect("SONAME link"),
        PathBuf::from(format!("libpromshm.so.{version}"))
    );
    assert_eq!(
        std::fs::read_link(lib.join("libpromshm.so")).expect("development link"),
        PathBuf::from(soname())
    );
    let dynamic = run_checked(Command::new("readelf").arg("-d").arg(&real), "readelf");
    assert!(
        dynamic.contains(&format!("Library soname: [{}]", soname())),
        "{dynamic}"
    );
    assert!(lib.join("libpromshm.a").is_file());
    assert_eq!(
        std::fs::read(prefix.join("include/promshm.h")).unwrap(),
        std::fs::read(manifest_dir().join("include/promshm.h")).unwrap()
    );
    assert_eq!(
        std::fs::read(prefix.join("include/promshm.hpp")).unwrap(),
        std::fs::read(manifest_dir().join("bindings/cpp/promshm.hpp")).unwrap()
    );
    assert_eq!(
        std::fs::read(prefix.join("include/promshm_ffi.h")).unwrap(),
        std::fs::read(manifest_dir().join("include/promshm_ffi.h")).unwrap()
    );
    assert_eq!(
        std::fs::read(prefix.join("share/promshm/promshm-api.json")).unwrap(),
        std::fs::read(manifest_dir().join("docs/promshm-api.json")).unwrap()
    );

    // ---- pkg-config -----------------------------------------------------------
    let pkg_config = |args: &[&str]| {
        run_checked(
            Command::new("pkg-config")
                .args(args)
                .arg("promshm")
                .env("PKG_CONFIG_PATH", &pc_path),
            "pkg-config",
        )
        .trim()
        .to_string()
    };
    assert_eq!(pkg_config(&["--modversion"]), version);
    assert_eq!(
        pkg_config(&["--cflags", "--libs"]),
        format!(
            "-I{} -L{} -lpromshm",
            prefix.join("include").display(),
            lib.display()
        )
    );
    assert_eq!(
        pkg_config(&["--libs", "--static"]),
        format!("-L{} -lpromshm {NATIVE_STATIC_LIBS}", lib.display())
    );

    // ---- the C server, built with `make PKG_CONFIG=1` ----------------------------
    let bin = work.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let make = |dir: &str, extra: &str| {
        run_checked(
            Command::new("make")
                .arg("-C")
                .arg(manifest_dir().join(dir))
                .arg("PKG_CONFIG=1")
                .arg(format!("OUT={}", bin.display()))
                .arg(extra)
                .env("PKG_CONFIG_PATH", &pc_path)
                // The installed copy only: no repository paths leak in.
                .env_remove("LIBRARY_PATH")
                .env_remove("LD_LIBRARY_PATH"),
            &format!("make -C {dir} PKG_CONFIG=1"),
        )
    };
    let log = make("examples/c", "EXTRA_CFLAGS=-Werror");
    assert!(
        log.contains(&format!("-I{}", prefix.join("include").display())),
        "{log}"
    );
    let server = bin.join("server");
    let ldd = run_checked(
        Command::new("ldd")
            .arg(&server)
            .env_remove("LD_LIBRARY_PATH"),
        "ldd",
    );
    let resolved = ldd
        .lines()
        .find(|l| l.contains("libpromshm"))
        .unwrap_or_else(|| panic!("server does not link libpromshm:\n{ldd}"));
    assert!(
        resolved.contains(&format!("{} => {}", soname(), lib.join(soname()).display())),
        "the server must load the installed library: {resolved}"
    );

    let mut cmd = Command::new(&server);
    cmd.args(["-p", "0", "-w", "4", "-q"])
        .env_remove("LD_LIBRARY_PATH");
    exercise_server(cmd);

    // ---- the C++ example ------------------------------------------------------------
    make("examples/cpp", "EXTRA_CXXFLAGS=-Werror");
    let out = run_checked(
        Command::new(bin.join("main"))
            .arg("3")
            .env_remove("LD_LIBRARY_PATH"),
        "examples/cpp/main 3",
    );
    let line = "batch_jobs_total{app=\"cpp-example\",kind=\"thumbnail\",outcome=\"ok\"} 15000";
    assert!(out.lines().any(|l| l == line), "no `{line}` in:\n{out}");

    // ---- a static link from the same pkg-config file ------------------------------
    let static_exe = bin.join("server-static");
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cc.args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .args(pkg_config(&["--cflags"]).split_whitespace())
        .arg(manifest_dir().join("examples/c/server.c"))
        .arg(lib.join("libpromshm.a"))
        .args(
            pkg_config(&["--libs-only-l", "--static"])
                .split_whitespace()
                .filter(|f| *f != "-lpromshm"),
        )
        .arg("-o")
        .arg(&static_exe);
    run_checked(&mut cc, "static link with pkg-config --static");
    let ldd = run_checked(Command::new("ldd").arg(&static_exe), "ldd");
    assert!(!ldd.contains("libpromshm"), "{ldd}");
    let mut cmd = Command::new(&static_exe);
    cmd.args(["-p", "0", "-w", "2", "-q"]);
    exercise_server(cmd);

    let _ = std::fs::remove_dir_all(&work);
}

// ---- driving the server ---------------------------------------------------------

#[path = "support/server.rs"]
mod server;

/// GET `path`; the status code and the body.
fn get(port: u16, path: &str) -> (u16, String) {
    let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let (status, _, body) = server::http(port, &head, Duration::from_secs(30));
    (status, body)
}

fn exercise_server(cmd: Command) {
    let mut server = server::start_server(cmd, Duration::from_secs(60));
    for i in 0..60 {
        let path = if i % 3 == 0 { "/missing" } else { "/" };
        let (status, _) = get(server.port, path);
        let want = if i % 3 == 0 { 404 } else { 200 };
        assert_eq!(status, want, "{path}");
    }
    let (status, text) = get(server.port, "/metrics");
    assert_eq!(status, 200);
    for line in [
        "http_requests_total{path=\"/\",status=\"200\"} 40",
        "http_requests_total{path=\"other\",status=\"404\"} 20",
        "http_request_duration_seconds_count{path=\"/\"} 40",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }

    // SAFETY: plain kill(2) on our own child.
    assert_eq!(
        unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut e) = server.child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(status.success(), "server exited with {status}\n{stderr}");
}
