//! Fork safety of the in-process locks.
//!
//! A child of `fork` has one thread. If another thread of the parent held an
//! area's index mutex, its local lock, a family's series cache, the list of
//! thread buffers, a buffer's entries or the buffer id pool at that moment,
//! the child would inherit it locked forever. So before `fork` the forking
//! thread takes all of them (in the order the rest of the crate takes them:
//! buffer list, each buffer's entries, then per area the index, the series
//! caches, the local lock, and last the id pool) and releases them in both
//! parent and child right after. The data they guard is never copied
//! half-updated.
//!
//! These locks are `std::sync` locks on purpose (futex words: waiters wait in
//! the kernel): unlocking one in the child only resets its word. promshm
//! uses no `parking_lot` lock or condvar: those park waiters in a
//! process-wide user-space table, and a parent thread parked there when
//! `fork` runs leaves a queue entry that a thread of the child may collide
//! with (the child then loops or crashes in the table). The timer flusher
//! sleeps in `ppoll` on an eventfd for the same reason.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError};

use super::AreaInner;

/// Addresses of the live `AreaInner`s of this process.
static AREAS: Mutex<Vec<usize>> = Mutex::new(Vec::new());
static HOOKS: Once = Once::new();

/// Anything kept until the fork is over (guards, and the Arcs they borrow from).
trait Held {}
impl<T> Held for T {}

thread_local! {
    /// What `before_fork` took, released by `after_fork`.
    static HELD: RefCell<Vec<Box<dyn Held>>> = const { RefCell::new(Vec::new()) };
    /// Families whose cache guards are in `HELD`, dropped only after every
    /// guard (`AREAS` included): one of them may be the last owner of its
    /// area, whose `Drop` takes `AREAS`.
    static KEPT: RefCell<Vec<Arc<dyn Any + Send + Sync>>> = const { RefCell::new(Vec::new()) };
}

/// Most fork hooks of each kind (the layers above register one each).
const MAX_FORK_HOOKS: usize = 4;

/// Hooks run by `before_fork` before the areas' locks are taken (as `fn()`
/// addresses; 0 is a free slot). Plain atomics: no lock and no allocation,
/// because they are read around `fork`.
static BEFORE_AREAS: [AtomicUsize; MAX_FORK_HOOKS] =
    [const { AtomicUsize::new(0) }; MAX_FORK_HOOKS];
/// Hooks run by `before_fork` after every area's locks are taken.
static AFTER_AREAS: [AtomicUsize; MAX_FORK_HOOKS] = [const { AtomicUsize::new(0) }; MAX_FORK_HOOKS];

/// Register hooks of a layer above: `before_areas` and `after_areas` run in
/// the forking thread before `fork`, before and after the areas' locks are
/// taken. They take their own locks and keep the guards with [`hold`], so
/// that `after_fork` releases them (in reverse order) in parent and child.
/// Registering the same hooks again does nothing; lock-free, so callable at
/// load time and on any path.
pub(crate) fn register_fork_hooks(before_areas: fn(), after_areas: fn()) {
    add_hook(&BEFORE_AREAS, before_areas);
    add_hook(&AFTER_AREAS, after_areas);
}

fn add_hook(slots: &[AtomicUsize; MAX_FORK_HOOKS], hook: fn()) {
    let addr = hook as usize;
    for slot in slots {
        match slot.compare_exchange(0, addr, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(cur) if cur == addr => return,
            Err(_) => {}
        }
    }
    panic!("more than {MAX_FORK_HOOKS} fork hooks registered");
}

fn run_hooks(slots: &[AtomicUsize; MAX_FORK_HOOKS]) {
    for slot in slots {
        let addr = slot.load(Ordering::Acquire);
        if addr == 0 {
            break;
        }
        // SAFETY: only `fn()` addresses are stored in the slots (`add_hook`).
        let hook: fn() = unsafe { std::mem::transmute::<usize, fn()>(addr) };
        hook();
    }
}

/// Lock a mutex, ignoring poisoning: every critical section of the crate
/// leaves its data consistent at each step, and a panic is already reported.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Installs the fork handlers when the library is loaded (before `main`, or inside `dlopen`): no other thread of the
/// process can be inside promshm then. Installed only at first use, a
/// `fork` by one thread while another runs an installing `Once` would
/// leave that `Once` running in the child, which waits for it forever at
/// its own first use (and a `fork` before the handlers exist copies the
/// locks as they are). The lazy calls stay for a static link that leaves
/// this entry out: they find the `Once`s done.
#[used]
#[link_section = ".init_array"]
static INSTALL_AT_LOAD: extern "C" fn() = install_at_load;

extern "C" fn install_at_load() {
    let _ = std::panic::catch_unwind(|| {
        install_hooks();
    });
}

/// Install the fork handlers once.
pub(crate) fn install_hooks() {
    // Child handlers run in the order they were registered: the process
    // hook (new fork generation, inherited lock descriptors closed) must run
    // before `after_fork`, which may drop the last handle of an area (whose
    // lock descriptor must then be seen as the parent's, never unlocked).
    crate::process::init();
    HOOKS.call_once(|| {
        // SAFETY: registers plain extern "C" functions with no arguments.
        unsafe { libc::pthread_atfork(Some(before_fork), Some(after_fork), Some(after_fork)) };
    });
}

/// Track an area that now lives at a stable address (inside its `Arc`).
pub(crate) fn register(area: &Arc<AreaInner>) {
    install_hooks();
    lock(&AREAS).push(Arc::as_ptr(area) as usize);
}

impl Drop for AreaInner {
    fn drop(&mut self) {
        let me = self as *const AreaInner as usize;
        lock(&AREAS).retain(|&a| a != me);
    }
}

/// Run `f` on the live area at `addr` if it has id `id`, with AREAS held
/// (so it is not freed meanwhile).
pub(crate) fn with_live_area(addr: usize, id: u64, f: impl FnOnce(&AreaInner)) {
    let areas = lock(&AREAS);
    if areas.contains(&addr) {
        // SAFETY: addresses leave AREAS (held) before their AreaInner is freed.
        let a = unsafe { &*(addr as *const AreaInner) };
        if a.id == id {
            f(a);
        }
    }
}

/// Keep the items whose area (`key`: address and id) is live. Never waits:
/// if the list of areas is busy, keeps them all (callable on any path,
/// inside the fork handlers included).
pub(crate) fn retain_live_areas<T>(items: &mut Vec<T>, key: impl Fn(&T) -> (usize, u64)) {
    let areas = match AREAS.try_lock() {
        Ok(a) => a,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return,
    };
    items.retain(|item| {
        let (addr, id) = key(item);
        // SAFETY: addresses leave AREAS (held) before their AreaInner is freed.
        areas.contains(&addr) && unsafe { &*(addr as *const AreaInner) }.id == id
    });
}

/// Keep `guard` until the fork is over.
///
/// # Safety
/// `guard` must borrow from data that outlives the fork handlers' run
/// (areas are kept alive because `AREAS` is held; families by their Arc
/// in `KEPT`, released after every guard).
pub(crate) unsafe fn hold<G>(guard: G) {
    // Per the contract, what the guard borrows outlives its stay in HELD,
    // which ends in `after_fork` in this same thread.
    let boxed: Box<dyn Held + '_> = Box::new(guard);
    // SAFETY: only the lifetime bound changes (same layout), see above.
    let guard: Box<dyn Held> = unsafe { std::mem::transmute(boxed) };
    HELD.with(|h| h.borrow_mut().push(guard));
}

extern "C" fn before_fork() {
    let _ = std::panic::catch_unwind(|| {
        run_hooks(&BEFORE_AREAS);
        let areas = lock(&AREAS);
        let addrs = areas.clone();
        // Held first, released last: no area can be freed while its guards are held.
        // SAFETY: AREAS is a static.
        unsafe { hold(areas) };
        for addr in addrs {
            // SAFETY: addresses leave AREAS (held until after the fork) before
            // their AreaInner is freed, so each one is live.
            let area = unsafe { &*(addr as *const AreaInner) };
            let index = lock(&area.index);
            for family in index.families_handed_out() {
                // Kept (in KEPT) until after its guards are released.
                KEPT.with(|k| {
                    k.borrow_mut()
                        .push(family.clone() as Arc<dyn Any + Send + Sync>)
                });
                // SAFETY: the Arc is kept in KEPT longer than its guards in HELD.
                unsafe { family.hold_for_fork() };
            }
            // SAFETY: the area outlives the handlers (AREAS is held).
            unsafe {
                hold(index);
                hold(lock(&area.local_lock));
            }
        }
        run_hooks(&AFTER_AREAS);
    });
}

extern "C" fn after_fork() {
    // Release in reverse order of acquisition.
    let held = HELD.with(|h| std::mem::take(&mut *h.borrow_mut()));
    for guard in held.into_iter().rev() {
        drop(guard);
    }
    // Last: dropping a family may drop its area, which takes AREAS.
    drop(KEPT.with(|k| std::mem::take(&mut *k.borrow_mut())));
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::{Duration, Instant};

    use crate::{Area, AreaOptions, Opts};

    /// Another thread may drop its last handles to an area while a fork is
    /// under way: the family that `before_fork` kept is then the last owner
    /// of the area, and `after_fork` must release it without deadlocking on
    /// the list of areas it still holds. Run in a child process so that a
    /// hang cannot take the other tests' locks with it. (The last handle is
    /// a series handle: dropping a `Family` takes its series cache's lock,
    /// which the fork holds, so another thread's `Family` drop waits for the
    /// fork to end.)
    #[test]
    fn after_fork_can_drop_the_last_handle_of_an_area() {
        // SAFETY: the child only runs the scenario and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = std::panic::catch_unwind(|| {
                let area = Area::anonymous(&AreaOptions::with_pages(16)).unwrap();
                let family = area.registry().counter(Opts::new("c", "h")).unwrap();
                let series = family.get().unwrap();
                drop(family);
                super::before_fork();
                // What another thread of the parent may do meanwhile.
                drop(series);
                drop(area);
                super::after_fork();
            })
            .is_ok();
            // SAFETY: leave the child without running the harness's exit path.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let status = wait_for_child(
            pid,
            "after_fork deadlocked dropping the last handle of an area",
        );
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child failed: status {status:#x}"
        );
    }

    /// Fork a child that runs `f` and leaves with `_exit` (1 if `f` panicked).
    pub(crate) fn fork_child(f: impl FnOnce()) -> libc::pid_t {
        // SAFETY: the child only runs `f` (no lock another thread may hold)
        // and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_ok();
            // SAFETY: leave the child without running the harness's exit path.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        pid
    }

    /// Wait at most 10 s for the forked child `pid` and return its wait
    /// status; past that, kill it and panic with `hung`.
    pub(crate) fn wait_for_child(pid: libc::pid_t, hung: &str) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                return status;
            }
            if Instant::now() > deadline {
                // SAFETY: our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                panic!("{hung}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
