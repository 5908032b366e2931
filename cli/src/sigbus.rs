//! Surviving an area file truncated under its mapping.
//!
//! Reading a page of a `MAP_SHARED` mapping past the end of its (now
//! shorter) file raises SIGBUS. The library installs no signal handler
//! (invariant 10), but this command may: [`install`] sets a SIGBUS handler
//! that, for a fault inside a range [`Guard`]ed here, maps anonymous zero
//! pages over the rest of that range (`mmap(MAP_FIXED | MAP_ANONYMOUS)`, an
//! async-signal-safe call) and flags the range. The faulting read then
//! resumes on zeros, the render finishes on garbage, and its caller sees
//! [`Guard::faulted`], throws the result away and reopens the file. A fault
//! anywhere else restores the previous disposition and re-faults, so real
//! bugs still crash (Rust's own handler or the default action).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Ranges watched at once (an area and its replacement, with room to spare).
const SLOTS: usize = 16;

struct Slot {
    /// Start of the range (0: slot free).
    base: AtomicUsize,
    /// Length in bytes.
    len: AtomicUsize,
    /// Set by the handler once it has patched this range.
    faulted: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    base: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    faulted: AtomicBool::new(false),
};
static RANGES: [Slot; SLOTS] = [FREE; SLOTS];

/// The disposition before ours, restored for faults we do not own.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // Only atomics, mmap and sigaction below: all async-signal-safe.
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Relaxed);
    for slot in &RANGES {
        let base = slot.base.load(Ordering::Acquire);
        let len = slot.len.load(Ordering::Acquire);
        if base == 0 || addr < base || addr >= base + len {
            continue;
        }
        let start = addr & !(page - 1);
        // SAFETY: [start, base + len) lies inside a mapping that a live
        // Guard registered (it unregisters before the mapping goes away);
        // replacing its pages with private zero pages only changes what
        // reads of this doomed mapping return.
        let r = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                base + len - start,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if r != libc::MAP_FAILED {
            slot.faulted.store(true, Ordering::Release);
            return;
        }
        break;
    }
    // Not ours (or the patch failed): put back what was there and return;
    // the access faults again and gets the previous treatment.
    let prev: *const libc::sigaction = PREVIOUS.get().map_or(std::ptr::null(), |p| p);
    // SAFETY: `prev` is a sigaction saved by `install`, or null (then we
    // reset to the default action).
    unsafe {
        if prev.is_null() {
            libc::signal(sig, libc::SIG_DFL);
        } else {
            libc::sigaction(sig, prev, std::ptr::null_mut());
        }
    }
}

static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// Install the SIGBUS handler (once; later calls do nothing).
pub fn install() -> io::Result<()> {
    static DONE: OnceLock<Result<(), i32>> = OnceLock::new();
    let r = DONE.get_or_init(|| {
        PAGE.store(page_size(), Ordering::Relaxed);
        // SAFETY: a zeroed sigaction is a valid starting value; we fill in
        // the handler, flags and an empty mask before passing it.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_sigbus as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut act.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, &act, &mut old) != 0 {
                return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
            }
            let _ = PREVIOUS.set(old);
        }
        Ok(())
    });
    r.map_err(io::Error::from_raw_os_error)
}

/// A mapped range watched by the handler while the guard lives.
#[derive(Debug)]
pub struct Guard {
    slot: usize,
}

impl Guard {
    /// Watch `[base, base + len)`; None if every slot is taken.
    pub fn watch(base: usize, len: usize) -> Option<Guard> {
        for (i, slot) in RANGES.iter().enumerate() {
            if slot
                .base
                .compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                // Reserved with an impossible base; publish len, then base.
                slot.faulted.store(false, Ordering::Relaxed);
                slot.len.store(len, Ordering::Release);
                slot.base.store(base, Ordering::Release);
                return Some(Guard { slot: i });
            }
        }
        None
    }

    /// Whether a read of this range faulted (its contents are now zeros).
    pub fn faulted(&self) -> bool {
        RANGES[self.slot].faulted.load(Ordering::Acquire)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let slot = &RANGES[self.slot];
        slot.len.store(0, Ordering::Release);
        slot.base.store(0, Ordering::Release);
    }
}

/// Where `/proc/self/maps` shows a mapping of the file `(dev, ino)` at offset
/// 0 with exactly `len` bytes, not yet watched: its start address.
pub fn find_mapping(dev: u64, ino: u64, len: usize) -> Option<usize> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let want_dev = format!("{major:02x}:{minor:02x}");
    maps.lines().find_map(|line| {
        let mut f = line.split_ascii_whitespace();
        let (range, _perms, offset, d, inode) =
            (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
        let (start, end) = range.split_once('-')?;
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        let same_dev = d == want_dev
            || d.split_once(':').is_some_and(|(a, b)| {
                u32::from_str_radix(a, 16).ok() == Some(major)
                    && u32::from_str_radix(b, 16).ok() == Some(minor)
            });
        let watched = RANGES
            .iter()
            .any(|s| s.base.load(Ordering::Acquire) == start);
        (same_dev
            && inode.parse::<u64>().ok() == Some(ino)
            && u64::from_str_radix(offset, 16).ok() == Some(0)
            && end - start == len
            && !watched)
            .then_some(start)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;

    /// A file truncated under a watched mapping: the read returns zeros
    /// instead of killing the process, and the guard says so.
    #[test]
    fn truncation_under_a_watched_mapping_reads_zeros() {
        install().unwrap();
        let path = std::env::temp_dir().join(format!("promshm-sigbus-{}", std::process::id()));
        let len = 4 * page_size();
        std::fs::write(&path, vec![7u8; len]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let meta = file.metadata().unwrap();
        // SAFETY: mapping a file we just wrote, read-only, unmapped below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        let base = base as usize;
        assert_eq!(find_mapping(meta.dev(), meta.ino(), len), Some(base));
        let guard = Guard::watch(base, len).unwrap();
        assert_eq!(
            find_mapping(meta.dev(), meta.ino(), len),
            None,
            "already watched"
        );
        // SAFETY: reading inside the mapping.
        let read = |off: usize| unsafe { std::ptr::read_volatile((base + off) as *const u8) };
        assert_eq!(read(3 * page_size()), 7);
        assert!(!guard.faulted());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(page_size() as u64)
            .unwrap();
        assert_eq!(read(3 * page_size() + 5), 0, "zero page after the fault");
        assert!(guard.faulted());
        assert_eq!(read(0), 7, "pages before the fault are untouched");
        drop(guard);
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(base as *mut libc::c_void, len) };
        let _ = std::fs::remove_file(&path);
    }
}
