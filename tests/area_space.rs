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

fn small_tmpfs() -> Option<Mount> {
    // SAFETY: plain getter.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: not root, cannot mount a tmpfs");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("promshm-space-{}", std::process::id()));
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
    let Some(mount) = small_tmpfs() else { return };
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
