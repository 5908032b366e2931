//! Memory follows use (issue 13, item 4): an area file is sparse at its
//! maximum size; the allocator reserves pages as it first uses them, so a
//! full tmpfs refuses a registration with `AreaFull` instead of SIGBUS.
//! Needs root (to mount a small tmpfs); skipped with a printed reason otherwise.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use promshm::{Area, AreaOptions, Error, Format, Opts};

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A 2 MiB tmpfs of its own for the test named `tag` (tests run in parallel).
fn small_tmpfs(tag: &str) -> Option<Mount> {
    // SAFETY: plain getter.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: not root, cannot mount a tmpfs");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("promshm-space-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        let _ = std::fs::remove_dir(&dir);
        println!("skipped: mount -t tmpfs failed");
        return None;
    }
    Some(Mount(dir))
}

fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn full_tmpfs_refuses_registration_without_sigbus() {
    let Some(mount) = small_tmpfs("full") else {
        return;
    };
    let path = mount.0.join("area");
    let area = Area::create(&path, &AreaOptions::with_pages(4096)).unwrap();
    let used = allocated(&path);
    println!("16 MiB area on a 2 MiB tmpfs: {used} bytes allocated at creation");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 16 << 20);
    assert!(used < 1 << 20, "{used}");
    let c = area
        .registry()
        .counter(Opts::new("jobs", "Jobs.").labels(&["id"]))
        .unwrap();
    for i in 0..10u32 {
        c.labels(&[&i.to_string()]).unwrap().inc();
    }
    // SAFETY: the child only registers and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let mut code = 3;
        for i in 10..1_000_000u32 {
            match c.labels(&[&i.to_string()]) {
                Ok(s) => s.inc(),
                Err(Error::AreaFull { .. }) => {
                    code = 0;
                    break;
                }
                Err(_) => {
                    code = 4;
                    break;
                }
            }
        }
        // SAFETY: leave the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: our child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status),
        "child died of a signal: {status:#x}"
    );
    assert_eq!(libc::WEXITSTATUS(status), 0, "child never saw AreaFull");
    let full = allocated(&path);
    println!("allocated when full: {full} bytes");
    assert!(full <= 2 << 20);
    for i in 0..10u32 {
        c.labels(&[&i.to_string()]).unwrap().inc();
    }
    let text = area.render_to_string(Format::Prometheus).unwrap();
    for i in 0..10u32 {
        assert!(
            text.contains(&format!("jobs_total{{id=\"{i}\"}} 2\n")),
            "{i}"
        );
    }
}

/// The child half of the next test: runs with `fallocate` refused by an
/// `LD_PRELOAD` shim, so the area must take its fallback.
fn without_fallocate_child(dir: &Path) {
    // The shim really is in force: the raw call fails with EOPNOTSUPP.
    let probe = std::fs::File::create(dir.join("probe")).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: plain call on a descriptor we own.
    let r = unsafe { libc::fallocate(probe.as_raw_fd(), 0, 0, 4096) };
    assert_eq!(r, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EOPNOTSUPP)
    );
    drop(probe);
    std::fs::remove_file(dir.join("probe")).unwrap();

    // A 1 MiB area: the whole file is reserved at creation.
    let path = dir.join("small");
    let area = Area::create(&path, &AreaOptions::with_pages(256)).unwrap();
    assert_eq!(allocated(&path), 1 << 20, "the whole file is reserved");
    let c = area
        .registry()
        .counter(Opts::new("jobs", "Jobs.").labels(&["id"]))
        .unwrap();
    let mut made = 0u32;
    loop {
        match c.labels(&[&made.to_string()]) {
            Ok(s) => s.inc(),
            Err(Error::AreaFull { .. }) => break,
            Err(e) => panic!("unexpected error after {made} series: {e}"),
        }
        made += 1;
    }
    println!("without fallocate: 1 MiB area fully reserved, {made} series until AreaFull");
    assert!(made > 1_000, "{made}");
    let text = area.render_to_string(Format::Prometheus).unwrap();
    assert!(text.contains("jobs_total{id=\"0\"} 1\n"));
    drop(area);
    std::fs::remove_file(&path).unwrap();

    // A 16 MiB area cannot be reserved on the 2 MiB tmpfs: creation fails
    // with a clear error, and the file keeps no blocks.
    let big = dir.join("big");
    let err = match Area::create(&big, &AreaOptions::with_pages(4096)) {
        Ok(_) => panic!("a 16 MiB area was created on a 2 MiB tmpfs without fallocate"),
        Err(e) => e,
    };
    let msg = err.to_string();
    println!("without fallocate, 16 MiB on 2 MiB: {msg}");
    assert!(msg.contains("allocate"), "{msg}");
    assert_eq!(allocated(&big), 0, "the failed reservation is given back");
}

/// On a filesystem without `fallocate` (simulated: an `LD_PRELOAD` shim
/// makes it fail with `EOPNOTSUPP`, as on ext3 or some network
/// filesystems) the whole file is reserved at creation, so the area still
/// never raises SIGBUS: a 1 MiB area fills up to `AreaFull`, a 16 MiB one
/// on a 2 MiB tmpfs is refused at creation.
#[test]
fn without_fallocate_the_whole_file_is_reserved_at_creation() {
    if let Some(dir) = std::env::var_os("PROMSHM_NOFALLOCATE_DIR") {
        without_fallocate_child(Path::new(&dir));
        return;
    }
    let Some(mount) = small_tmpfs("nofallocate") else {
        return;
    };
    let shim_c = mount.0.join("shim.c");
    let shim = std::env::temp_dir().join(format!("promshm-nofallocate-{}.so", std::process::id()));
    std::fs::write(
        &shim_c,
        "#define _GNU_SOURCE\n#include <errno.h>\n#include <fcntl.h>\n\
         int fallocate(int fd, int mode, off_t off, off_t len) { errno = EOPNOTSUPP; return -1; }\n\
         int fallocate64(int fd, int mode, off_t off, off_t len) { errno = EOPNOTSUPP; return -1; }\n",
    )
    .unwrap();
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&shim)
        .arg(&shim_c)
        .status()
        .expect("cc (the C compiler the C API tests use) runs");
    assert!(built.success(), "the shim compiles");
    std::fs::remove_file(&shim_c).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "without_fallocate_the_whole_file_is_reserved_at_creation",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PROMSHM_NOFALLOCATE_DIR", &mount.0)
        .env("LD_PRELOAD", &shim)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&shim);
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the child failed: {:?}", out.status);
    assert!(text.contains("1 MiB area fully reserved"), "the child ran");
}
