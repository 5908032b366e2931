//! `promshm_local_counter` and `promshm_local_histogram`: caller-owned
//! local handles on a counter or a histogram series.
//!
//! The updates are `static inline` functions of the header (`trailer` in
//! cbindgen.toml): a plain add to `count` or `pending`, a search of the
//! bounds and two plain adds. The functions here make one, flush it through
//! the type's own flush (the Rust `LocalCounter::flush`,
//! `LocalHistogram::flush`) and release it.

use super::handle::{borrow, clone_handle, free_handle};
use super::result::{check, promshm_result, FfiError};
use super::series::{promshm_series, AnySeries};
use crate::{Counter, Histogram};

/// A counter's local handle, like the Rust `LocalCounter`: owned by the
/// caller (on the stack, in a struct, in thread-local storage) and used by
/// one thread at a time, so `promshm_local_counter_inc()` and
/// `promshm_local_counter_add()`, defined `static inline` in this header,
/// are a plain add (`inc` to the integer `count`, `add` to `pending`).
/// Nothing reaches the series until
/// `promshm_local_counter_flush()`, which adds `count + pending` as
/// `promshm_counter_add()` would (to the thread's buffer or, on an eager
/// family, the area) and zeroes both. Set it up with
/// `promshm_local_counter_init()` and end it with
/// `promshm_local_counter_release()`. It belongs to the process that
/// initialised it: in a child after `fork()`, its first flush drops what is
/// pending (the parent's to flush), so initialise it after the fork. The
/// fields are the header's inline functions' business: read `count` and
/// `pending` if you like, change none.
#[repr(C)]
pub struct promshm_local_counter {
    /// Added by `promshm_local_counter_add()` since the last flush.
    pub pending: f64,
    /// `promshm_local_counter_inc()` calls since the last flush.
    pub count: u64,
    /// The counter series (a reference this struct holds), NULL before
    /// `promshm_local_counter_init()` and after `promshm_local_counter_release()`.
    pub series: *const promshm_series,
    /// The fork generation of the process that initialised it.
    pub generation: u32,
}

/// The struct behind `l` (a local `what`), or `NullParameter`.
unsafe fn local_arg<'a, T>(l: *mut T, what: &'static str) -> Result<&'a mut T, FfiError> {
    // SAFETY: `l` is NULL or a writable struct of the caller's, used by this
    // thread only (caller contract).
    unsafe { l.as_mut() }.ok_or_else(|| FfiError::null(what))
}

ffi_fn! {
    /// Make `*l` a local handle on the counter series `series`, with nothing
    /// pending. `*l` takes a reference to the series (the caller may free its
    /// own), given back by `promshm_local_counter_release()`; initialising a
    /// struct that holds one already leaks it. Not thread-safe on `*l`.
    ///
    /// Errors: `NULL_PARAMETER` (`l` or `series`), `WRONG_TYPE` (not a
    /// counter); `*l` is left as it was.
    unsafe fn promshm_local_counter_init(
        l: *mut promshm_local_counter,
        series: *const promshm_series,
    ) -> promshm_result {
        check(|| {
            // SAFETY: NULL or a caller-owned struct (caller contract).
            let l = unsafe { local_arg(l, promshm_local_counter::WHAT)? };
            // SAFETY: NULL or a live series handle (caller contract).
            match unsafe { borrow::<promshm_series>(series)? } {
                AnySeries::Counter(_) => {}
                _ => return Err(not_a("promshm_local_counter_init", "counter")),
            }
            *l = promshm_local_counter {
                pending: 0.0,
                count: 0,
                // SAFETY: a live series handle (checked above).
                series: unsafe { clone_handle(series) },
                generation: Counter::__local_generation(),
            };
            Ok(())
        })
    }
}

#[cold]
#[inline(never)]
fn not_a(func: &'static str, what: &'static str) -> FfiError {
    FfiError::new(
        promshm_result::WrongType,
        format!("{func}: the series is not a {what}"),
    )
}

/// A local handle's struct, as `release` sees it.
trait LocalStruct {
    /// What the struct is called in a `NULL_PARAMETER` error.
    const WHAT: &'static str;
    /// The series reference field (NULL: not initialised, or released).
    fn series(&mut self) -> &mut *const promshm_series;
    /// Hand what is pending to the series (as `func`) and zero it.
    ///
    /// # Safety
    /// The fields are as `init` left them.
    unsafe fn flush(&mut self, func: &'static str) -> Result<(), FfiError>;
    /// Free what `init` allocated besides the series reference.
    ///
    /// # Safety
    /// As for `flush`; the struct is not used again before another `init`.
    unsafe fn free_parts(&mut self) {}
}

/// Flush `*l`, free its parts and give back its series reference (each
/// once: the fields are cleared); NULL or released: nothing to do.
///
/// # Safety
/// `l` is NULL or a caller-owned struct as `init` (or `release`) left it.
unsafe fn release<L: LocalStruct>(l: *mut L, func: &'static str) -> Result<(), FfiError> {
    // SAFETY: NULL or a caller-owned struct (caller contract).
    let Ok(l) = (unsafe { local_arg(l, L::WHAT) }) else {
        return Ok(());
    };
    if l.series().is_null() {
        return Ok(());
    }
    // SAFETY: the fields `init` stored (series non-NULL here).
    let flushed = unsafe { l.flush(func) };
    // SAFETY: as above; the struct is cleared for reuse.
    unsafe { l.free_parts() };
    // SAFETY: that reference is given back once; the field is cleared.
    unsafe { free_handle(std::mem::replace(l.series(), std::ptr::null())) };
    flushed
}

impl LocalStruct for promshm_local_counter {
    const WHAT: &'static str = "local counter";

    fn series(&mut self) -> &mut *const promshm_series {
        &mut self.series
    }

    /// Add `count + pending` to its counter (dropped in another process
    /// than the one that initialised it) and zero it.
    unsafe fn flush(&mut self, func: &'static str) -> Result<(), FfiError> {
        // SAFETY: NULL or the live series reference `init` stored (caller contract).
        let counter = match unsafe { borrow::<promshm_series>(self.series)? } {
            AnySeries::Counter(c) => c,
            _ => return Err(not_a(func, "counter")),
        };
        let (count, pending) = (
            std::mem::take(&mut self.count),
            std::mem::take(&mut self.pending),
        );
        counter.__flush_local(count, pending, &mut self.generation);
        Ok(())
    }
}

ffi_fn! {
    /// Add what `*l` has pending to its counter, as `promshm_counter_add()`
    /// (buffered: the area sees it at the next `promshm_flush()`; a removed
    /// series takes nothing), and zero `count` and `pending`. Call it as often as you
    /// like (at request end, say): it costs one buffered add. Not
    /// thread-safe on `*l`.
    ///
    /// Errors: `NULL_PARAMETER` (`l`, or `l->series`: not initialised),
    /// `WRONG_TYPE` (`l->series` changed to another type's series).
    unsafe fn promshm_local_counter_flush(l: *mut promshm_local_counter) -> promshm_result {
        check(|| {
            // SAFETY: NULL or a caller-owned struct (caller contract).
            let l = unsafe { local_arg(l, promshm_local_counter::WHAT)? };
            // SAFETY: `l` holds NULL or the series reference `init` stored.
            unsafe { l.flush("promshm_local_counter_flush") }
        })
    }
}

ffi_fn! {
    /// Flush `*l` (as `promshm_local_counter_flush()`), give back its
    /// reference to the series and set `l->series` to NULL: the end of a
    /// local counter (it may be initialised again). A released struct (series
    /// NULL) is left alone; `l` NULL is a no-op. Not thread-safe on `*l`.
    ///
    /// Errors: `WRONG_TYPE` (`l->series` changed to another type's series;
    /// the reference is given back all the same).
    unsafe fn promshm_local_counter_release(l: *mut promshm_local_counter) -> promshm_result {
        // SAFETY: NULL or a caller-owned struct as `init` left it (caller contract).
        check(|| unsafe { release(l, "promshm_local_counter_release") })
    }
}

/// A histogram's local handle, like the Rust `LocalHistogram`: owned by
/// the caller (on the stack, in a struct, in thread-local storage) and used
/// by one thread at a time, so `promshm_local_histogram_observe()`, defined
/// `static inline` in this header, is a search of `bounds` and two plain
/// adds (1 to the observation's bucket in `counts`, the value to `sum`),
/// with no call. `promshm_local_histogram_init()` points `bounds` at the
/// histogram's own bounds (valid while the struct holds its reference to
/// the series) and `counts` at an array of `n_bounds + 1` zeroed counts
/// that it allocates (`+Inf` last) and `promshm_local_histogram_release()`
/// frees. Nothing reaches the series until
/// `promshm_local_histogram_flush()`, which adds the pending counts and
/// sum straight to the area (as an eager observe: one write announcement,
/// an atomic add a bucket observed and one for the sum) and zeroes them.
/// It belongs to the process that initialised it: in a child after
/// `fork()`, its first flush drops what is pending (the parent's to
/// flush), so initialise it after the fork. The fields are the header's
/// inline function's business: read them if you like, change none.
#[repr(C)]
pub struct promshm_local_histogram {
    /// Sum of the observations since the last flush.
    pub sum: f64,
    /// Observations a bucket since the last flush, `n_bounds + 1` of them
    /// (the `+Inf` bucket last), allocated by `promshm_local_histogram_init()`;
    /// NULL before it and after `promshm_local_histogram_release()`.
    pub counts: *mut u64,
    /// The histogram's bounds, ascending, `n_bounds` of them (the `+Inf`
    /// bucket's is not among them); the series' own array.
    pub bounds: *const f64,
    /// The number of bounds.
    pub n_bounds: usize,
    /// The histogram series (a reference this struct holds), NULL before
    /// `promshm_local_histogram_init()` and after `promshm_local_histogram_release()`.
    pub series: *const promshm_series,
    /// The fork generation of the process that initialised it.
    pub generation: u32,
}

/// The histogram a local histogram's `series` is (as `func`), or why not.
unsafe fn histogram_of<'a>(
    series: *const promshm_series,
    func: &'static str,
) -> Result<&'a Histogram, FfiError> {
    // SAFETY: NULL or a live series handle (caller contract).
    match unsafe { borrow::<promshm_series>(series)? } {
        AnySeries::Histogram(h) => Ok(h),
        _ => Err(not_a(func, "histogram")),
    }
}

ffi_fn! {
    /// Make `*l` a local handle on the histogram series `series`, with
    /// nothing pending: `counts` a new zeroed array of `n_bounds + 1`,
    /// `bounds` the histogram's bounds. `*l` takes a reference to the
    /// series (the caller may free its own); `promshm_local_histogram_release()`
    /// gives it back and frees `counts`, and initialising a struct that
    /// holds them already leaks them. Not thread-safe on `*l`.
    ///
    /// Errors: `NULL_PARAMETER` (`l` or `series`), `WRONG_TYPE` (not a
    /// classic histogram: a native histogram is refused too); `*l` is left
    /// as it was.
    unsafe fn promshm_local_histogram_init(
        l: *mut promshm_local_histogram,
        series: *const promshm_series,
    ) -> promshm_result {
        check(|| {
            // SAFETY: NULL or a caller-owned struct (caller contract).
            let l = unsafe { local_arg(l, promshm_local_histogram::WHAT)? };
            // SAFETY: NULL or a live series handle (caller contract).
            let bounds = unsafe { histogram_of(series, "promshm_local_histogram_init")? }.bounds();
            let counts = vec![0u64; bounds.len() + 1].into_boxed_slice();
            *l = promshm_local_histogram {
                sum: 0.0,
                counts: Box::into_raw(counts).cast::<u64>(),
                bounds: bounds.as_ptr(),
                n_bounds: bounds.len(),
                // SAFETY: a live series handle (checked above).
                series: unsafe { clone_handle(series) },
                generation: Histogram::__local_generation(),
            };
            Ok(())
        })
    }
}

impl LocalStruct for promshm_local_histogram {
    const WHAT: &'static str = "local histogram";

    fn series(&mut self) -> &mut *const promshm_series {
        &mut self.series
    }

    /// Add the pending counts and sum to its histogram (dropped in another
    /// process than the one that initialised it) and zero them.
    unsafe fn flush(&mut self, func: &'static str) -> Result<(), FfiError> {
        // SAFETY: NULL or the live series reference `init` stored (caller contract).
        let h = unsafe { histogram_of(self.series, func)? };
        if self.counts.is_null() {
            return Err(FfiError::null("local histogram's counts"));
        }
        // SAFETY: `counts` is the array of `n_bounds + 1` that `init`
        // allocated (the fields are unchanged: caller contract), used by
        // this thread only.
        let counts = unsafe { std::slice::from_raw_parts_mut(self.counts, self.n_bounds + 1) };
        h.__flush_local(counts, &mut self.sum, &mut self.generation);
        Ok(())
    }

    /// Free `counts` and clear `bounds` and `n_bounds`.
    unsafe fn free_parts(&mut self) {
        let counts = std::mem::replace(&mut self.counts, std::ptr::null_mut());
        if !counts.is_null() {
            let counts = std::ptr::slice_from_raw_parts_mut(counts, self.n_bounds + 1);
            // SAFETY: the array `init` allocated with this length (the
            // fields are unchanged: caller contract), freed once: the field
            // is cleared.
            drop(unsafe { Box::from_raw(counts) });
        }
        (self.bounds, self.n_bounds) = (std::ptr::null(), 0);
    }
}

ffi_fn! {
    /// Add what `*l` has pending to its histogram, straight to the area (as
    /// an eager `promshm_histogram_observe()`: every process sees it at
    /// once; a removed series takes nothing), and zero `counts` and `sum`.
    /// Call it as often as you like (at request end, say): it costs one
    /// write announcement, an atomic add a bucket observed since the last
    /// flush and one for the sum (nothing when nothing is pending). Not
    /// thread-safe on `*l`.
    ///
    /// Errors: `NULL_PARAMETER` (`l`, or `l->series`: not initialised, or
    /// released), `WRONG_TYPE` (`l->series` changed to another type's series).
    unsafe fn promshm_local_histogram_flush(l: *mut promshm_local_histogram) -> promshm_result {
        check(|| {
            // SAFETY: NULL or a caller-owned struct (caller contract).
            let l = unsafe { local_arg(l, promshm_local_histogram::WHAT)? };
            // SAFETY: `l` holds NULL or the series reference and counts `init` stored.
            unsafe { l.flush("promshm_local_histogram_flush") }
        })
    }
}

ffi_fn! {
    /// Flush `*l` (as `promshm_local_histogram_flush()`), free `counts`,
    /// give back its reference to the series and set `counts`, `bounds` and
    /// `series` to NULL and `n_bounds` to 0: the end of a local histogram
    /// (it may be initialised again). A released struct (series NULL) is
    /// left alone; `l` NULL is a no-op. Not thread-safe on `*l`.
    ///
    /// Errors: `WRONG_TYPE` (`l->series` changed to another type's series;
    /// the array is freed and the reference given back all the same).
    unsafe fn promshm_local_histogram_release(l: *mut promshm_local_histogram) -> promshm_result {
        // SAFETY: NULL or a caller-owned struct as `init` left it (caller contract).
        check(|| unsafe { release(l, "promshm_local_histogram_release") })
    }
}
