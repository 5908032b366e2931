//! Thread-local buffers and flush.
//!
//! Each thread that updates a buffered series gets, on first touch, a small
//! array of cells for it. The owning thread only ever *stores* into its cells
//! (load, add, store: no atomic read-modify-write, no lock, no syscall); the
//! cells hold running totals. A flusher — any thread — reads each cell, adds
//! the difference from what it flushed last time to the shared record with
//! one atomic add, and remembers the new total. Nothing is lost between the
//! hot path and the flush, and flushers never block the owner.
//!
//! Flush runs on [`flush`], before a render in this process, when a thread
//! exits, at process exit (`atexit`), and from an optional [`Flusher`] thread.
//! After `fork` the child starts with empty buffers: what the parent had not
//! flushed is the parent's to flush, never the child's.

use std::cell::UnsafeCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use crate::metrics::{atomic_add_f64, SeriesInner};
use crate::process;

static NEXT_LOCAL_ID: AtomicU32 = AtomicU32::new(0);
static BUFFERS: std::sync::Mutex<Vec<Arc<ThreadShared>>> = std::sync::Mutex::new(Vec::new());
static AT_EXIT: Once = Once::new();

/// A fresh process-wide id for a series handle.
pub(crate) fn next_local_id() -> u32 {
    NEXT_LOCAL_ID.fetch_add(1, Ordering::Relaxed)
}

/// The part of a thread's buffer that flushers see.
struct ThreadShared {
    /// Fork generation the buffer belongs to.
    gen: u32,
    entries: parking_lot::Mutex<Vec<Entry>>,
}

/// One series as buffered by one thread.
struct Entry {
    series: Arc<SeriesInner>,
    /// Running totals written by the owner. Cell 0 holds f64 bits, the others u64.
    cells: Box<[AtomicU64]>,
    /// What the last flush saw, in the same encoding.
    flushed: Box<[u64]>,
}

impl Entry {
    /// Push the deltas into the area. Returns whether anything was dirty.
    fn flush(&mut self) -> bool {
        let mut dirty = false;
        for (i, (cell, last)) in self.cells.iter().zip(self.flushed.iter_mut()).enumerate() {
            let cur = cell.load(Ordering::Acquire);
            if cur == *last {
                continue;
            }
            dirty = true;
            if let Some(target) = self.series.cell(i) {
                if i == 0 {
                    atomic_add_f64(target, f64::from_bits(cur) - f64::from_bits(*last));
                } else {
                    target.fetch_add(cur.wrapping_sub(*last), Ordering::Relaxed);
                }
            }
            *last = cur;
        }
        dirty
    }
}

/// The owner's side: cells by series id.
struct Local {
    shared: UnsafeCell<Arc<ThreadShared>>,
    index: UnsafeCell<Vec<Option<NonNull<[AtomicU64]>>>>,
}

impl Local {
    fn new() -> Local {
        AT_EXIT.call_once(|| {
            // SAFETY: registers plain extern "C" functions with no arguments.
            unsafe {
                libc::atexit(flush_at_exit);
            }
            crate::area::fork::install_hooks();
        });
        Local {
            shared: UnsafeCell::new(register_shared()),
            index: UnsafeCell::new(Vec::new()),
        }
    }

    /// The cells of `series` for this thread, created on first touch.
    #[inline]
    fn cells(&self, series: &Arc<SeriesInner>) -> &[AtomicU64] {
        // SAFETY: `Local` lives in a thread_local and is only reached from its
        // own thread; no reference into `shared`/`index` outlives this call
        // except the returned cells, which are owned by an `Entry` kept alive
        // by `shared` (entries are never removed while the thread lives).
        unsafe {
            let shared = &*self.shared.get();
            if shared.gen != process::fork_generation() {
                self.reset_after_fork();
            }
            let index = &*self.index.get();
            if let Some(Some(p)) = index.get(series.local_id as usize) {
                return p.as_ref();
            }
            self.first_touch(series)
        }
    }

    #[cold]
    fn reset_after_fork(&self) {
        // SAFETY: only this thread touches `shared` and `index` (see `cells`).
        unsafe {
            *self.index.get() = Vec::new();
            *self.shared.get() = register_shared();
        }
    }

    #[cold]
    fn first_touch(&self, series: &Arc<SeriesInner>) -> &[AtomicU64] {
        let n = series.n_cells;
        let cells: Box<[AtomicU64]> = (0..n).map(|_| AtomicU64::new(0)).collect();
        let flushed = vec![0u64; n].into_boxed_slice();
        let ptr = NonNull::from(&*cells);
        // SAFETY: single-threaded access as in `cells`; the boxed slice's heap
        // block does not move when the `Entry` is moved into the vector.
        unsafe {
            (&*self.shared.get()).entries.lock().push(Entry {
                series: series.clone(),
                cells,
                flushed,
            });
            let index = &mut *self.index.get();
            let id = series.local_id as usize;
            if index.len() <= id {
                index.resize(id + 1, None);
            }
            index[id] = Some(ptr);
            ptr.as_ref()
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let shared = self.shared.get_mut().clone();
        if shared.gen == process::fork_generation() {
            for e in shared.entries.lock().iter_mut() {
                if e.flush() {
                    e.series.area().note_flush();
                }
            }
        }
        crate::area::fork::lock(&BUFFERS).retain(|b| !Arc::ptr_eq(b, &shared));
    }
}

fn register_shared() -> Arc<ThreadShared> {
    let shared = Arc::new(ThreadShared {
        gen: process::fork_generation(),
        entries: parking_lot::Mutex::new(Vec::new()),
    });
    crate::area::fork::lock(&BUFFERS).push(shared.clone());
    shared
}

thread_local! {
    static LOCAL: Local = Local::new();
}

/// Add `v` to f64 cell `i` of this thread's buffer for `series`.
#[inline]
pub(crate) fn add_f64(series: &Arc<SeriesInner>, i: usize, v: f64) {
    let done = LOCAL.try_with(|l| {
        if let Some(c) = l.cells(series).get(i) {
            c.store(
                (f64::from_bits(c.load(Ordering::Relaxed)) + v).to_bits(),
                Ordering::Release,
            );
        }
    });
    if done.is_err() {
        // The thread is exiting and its buffer is gone: write through.
        if let Some(c) = series.cell(i) {
            atomic_add_f64(c, v);
        }
    }
}

/// Histogram observation: f64 cell 0 (sum) += v, u64 cell `1 + bucket` += 1.
#[inline]
pub(crate) fn observe(series: &Arc<SeriesInner>, bucket: usize, v: f64) {
    let done = LOCAL.try_with(|l| {
        let cells = l.cells(series);
        if let (Some(sum), Some(b)) = (cells.first(), cells.get(1 + bucket)) {
            b.store(b.load(Ordering::Relaxed) + 1, Ordering::Release);
            sum.store(
                (f64::from_bits(sum.load(Ordering::Relaxed)) + v).to_bits(),
                Ordering::Release,
            );
        }
    });
    if done.is_err() {
        if let (Some(sum), Some(b)) = (series.cell(0), series.cell(1 + bucket)) {
            b.fetch_add(1, Ordering::Relaxed);
            atomic_add_f64(sum, v);
        }
    }
}

/// What a flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlushStats {
    /// Thread buffers visited.
    pub buffers: usize,
    /// Series whose deltas were pushed into an area.
    pub dirty_series: usize,
}

/// Flush every thread's buffer of this process into the areas.
///
/// Safe to call from any thread at any time; concurrent flushes serialize
/// per thread buffer. Cost: one read per buffered cell, one atomic add per
/// changed cell.
pub fn flush() -> FlushStats {
    let gen = process::fork_generation();
    let list: Vec<Arc<ThreadShared>> = {
        let mut all = crate::area::fork::lock(&BUFFERS);
        // Buffers inherited from a parent process are never flushed here.
        all.retain(|b| b.gen == gen);
        all.clone()
    };
    let mut stats = FlushStats {
        buffers: list.len(),
        dirty_series: 0,
    };
    let mut areas: Vec<*const crate::area::AreaInner> = Vec::new();
    let mut touched = Vec::new();
    for b in &list {
        for e in b.entries.lock().iter_mut() {
            if e.flush() {
                stats.dirty_series += 1;
                let a: *const crate::area::AreaInner = e.series.area();
                if !areas.contains(&a) {
                    areas.push(a);
                    touched.push(e.series.clone());
                }
            }
        }
    }
    for s in touched {
        s.area().note_flush();
    }
    stats
}

/// Hold the buffer list across `fork` so a child never inherits it locked
/// (called by `area::fork`'s handler, which releases it after the fork).
pub(crate) fn hold_for_fork() {
    // SAFETY: BUFFERS is a static.
    unsafe { crate::area::fork::hold(crate::area::fork::lock(&BUFFERS)) };
}

extern "C" fn flush_at_exit() {
    let _ = std::panic::catch_unwind(flush);
}

/// A background thread that flushes every `interval`; stops (after a last
/// flush) when dropped or [`stop`](Flusher::stop)ped. Opt-in: promshm starts
/// no thread on its own. A child of `fork` does not inherit the thread:
/// dropping an inherited `Flusher` there does nothing; start a new one.
#[derive(Debug)]
pub struct Flusher {
    stop: Arc<(parking_lot::Mutex<bool>, parking_lot::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Fork generation of the process that started the thread.
    gen: u32,
}

impl Flusher {
    /// Start flushing every `interval` (at least 1 ms).
    pub fn start(interval: Duration) -> std::io::Result<Flusher> {
        let interval = interval.max(Duration::from_millis(1));
        let stop = Arc::new((parking_lot::Mutex::new(false), parking_lot::Condvar::new()));
        let s2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("promshm-flush".into())
            .spawn(move || {
                let (lock, cv) = &*s2;
                let mut stopped = lock.lock();
                while !*stopped {
                    cv.wait_for(&mut stopped, interval);
                    parking_lot::MutexGuard::unlocked(&mut stopped, || {
                        let _ = std::panic::catch_unwind(flush);
                    });
                }
            })?;
        Ok(Flusher {
            stop,
            thread: Some(thread),
            gen: process::fork_generation(),
        })
    }

    /// Stop the thread and wait for its last flush.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.gen != process::fork_generation() {
            // Inherited through fork: the thread does not exist in this
            // process, and its lock may have been copied held. Leave both.
            std::mem::forget(self.thread.take());
            std::mem::forget(self.stop.clone());
            return;
        }
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::{Area, AreaOptions, Opts};

    fn counter() -> (Area, crate::Counter) {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let c = area
            .registry()
            .counter(Opts::new("buffered", "b").eager(false))
            .unwrap()
            .get()
            .unwrap();
        (area, c)
    }

    #[test]
    fn updates_stay_local_until_flushed_and_flush_is_idempotent() {
        let (_area, c) = counter();
        c.inc();
        c.add(2.5).unwrap();
        // (Not asserted: other tests in this process may flush at any time.)
        super::flush();
        assert_eq!(c.get(), 3.5);
        super::flush();
        super::flush();
        assert_eq!(c.get(), 3.5, "a flush pushes deltas, never totals twice");
        c.inc();
        super::flush();
        assert_eq!(c.get(), 4.5);
    }

    #[test]
    fn a_thread_flushes_its_buffer_when_it_exits() {
        let (_area, c) = counter();
        let c2 = c.clone();
        std::thread::spawn(move || {
            for _ in 0..1000 {
                c2.inc();
            }
        })
        .join()
        .unwrap();
        assert_eq!(c.get(), 1000.0);
    }

    #[test]
    fn the_timer_flusher_pushes_updates_and_stops() {
        let (_area, c) = counter();
        let flusher = super::Flusher::start(Duration::from_millis(5)).unwrap();
        for _ in 0..10 {
            c.inc();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.get() < 10.0 {
            assert!(Instant::now() < deadline, "the flusher never flushed");
            std::thread::sleep(Duration::from_millis(2));
        }
        flusher.stop();
        assert_eq!(c.get(), 10.0);
    }

    #[test]
    fn a_flush_from_another_thread_sees_this_threads_updates() {
        let (_area, c) = counter();
        for _ in 0..100 {
            c.inc();
        }
        std::thread::spawn(super::flush).join().unwrap();
        assert_eq!(c.get(), 100.0);
    }
}
