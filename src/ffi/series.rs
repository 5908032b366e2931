//! `promshm_series`: the updates (the hot path) and the value getters.
//!
//! An update is one NULL check, one type check and the Rust update itself:
//! no allocation, no lock. Errors are built on `#[cold]` paths.

use std::ffi::c_char;

use super::family::{promshm_metric_type, series_type};
use super::handle::{clone_handle, free_handle, label_pairs, slice_arg, str_arg, ArcHandle, Out};
use super::registry::promshm_label;
use super::result::{check, promshm_result, FfiError};
use crate::metrics::{Counter, Gauge, Histogram, Info, NativeHistogram, StateSet, Summary};

/// One series (a family plus label values) of any type: what the updates
/// take. Reference-counted (an `Arc` in Rust): `const`, safe to update from several
/// threads at once (buffered updates go to each thread's own buffer).
/// Functions of another type's series return `PROMSHM_RESULT_WRONG_TYPE`.
pub struct promshm_series {
    _private: [u8; 0],
}

/// A series handle of one of the six types.
pub(crate) enum AnySeries {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
    Summary(Summary),
    Info(Info),
    StateSet(StateSet),
    NativeHistogram(NativeHistogram),
}

impl ArcHandle for promshm_series {
    type Rust = AnySeries;
    const WHAT: &'static str = "series";
}

/// The series behind a handle, `None` for NULL.
#[inline(always)]
unsafe fn get<'a>(p: *const promshm_series) -> Option<&'a AnySeries> {
    // SAFETY: NULL or a live handle from `into_handle` (caller contract).
    unsafe { p.cast::<AnySeries>().as_ref() }
}

pub(crate) fn type_name(t: promshm_metric_type) -> &'static str {
    match t {
        promshm_metric_type::Invalid => "invalid",
        promshm_metric_type::Counter => "counter",
        promshm_metric_type::Gauge => "gauge",
        promshm_metric_type::Histogram => "histogram",
        promshm_metric_type::Summary => "summary",
        promshm_metric_type::Info => "info",
        promshm_metric_type::StateSet => "state set",
        promshm_metric_type::NativeHistogram => "native histogram",
    }
}

/// The error for a NULL series or a series of another type than `want`.
#[cold]
#[inline(never)]
fn mismatch(func: &'static str, want: promshm_metric_type, got: Option<&AnySeries>) -> FfiError {
    match got {
        None => FfiError::null("series"),
        Some(s) => FfiError::new(
            promshm_result::WrongType,
            format!(
                "{func}: the series is a {}, not a {}",
                type_name(series_type(s)),
                type_name(want)
            ),
        ),
    }
}

/// `Ok(&Counter)` etc., or the NULL / wrong-type error.
macro_rules! typed {
    ($p:expr, $variant:ident, $func:literal) => {
        // SAFETY: `$p` is NULL or a live series handle (caller contract).
        match unsafe { get($p) } {
            Some(AnySeries::$variant(s)) => Ok(s),
            other => Err(mismatch($func, promshm_metric_type::$variant, other)),
        }
    };
}

ffi_fn! {
    /// Add 1 to a counter. The hot path: on a buffered family this touches
    /// only the calling thread's buffer (nanoseconds, no lock, no syscall);
    /// the area sees it at the next flush. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER`, `WRONG_TYPE`.
    unsafe fn promshm_counter_inc(series: *const promshm_series) -> promshm_result {
        // SAFETY: `series` is NULL or a live series handle (caller contract).
        match unsafe { get(series) } {
            Some(AnySeries::Counter(c)) => {
                c.inc();
                promshm_result::Ok
            }
            other => {
                mismatch("promshm_counter_inc", promshm_metric_type::Counter, other).into_code()
            }
        }
    }
}

ffi_fn! {
    /// Add `value` (>= 0, not NaN) to a counter. Hot path, as
    /// `promshm_counter_inc()`. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER`, `WRONG_TYPE`, `INVALID_VALUE` (negative or
    /// NaN; nothing is added).
    unsafe fn promshm_counter_add(series: *const promshm_series, value: f64) -> promshm_result {
        check(|| Ok(typed!(series, Counter, "promshm_counter_add")?.add(value)?))
    }
}

ffi_fn! {
    /// Write the counter's total in the area (what every process has
    /// flushed) to `*out`. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`series` or `out`), `WRONG_TYPE`.
    unsafe fn promshm_counter_get(series: *const promshm_series, out: *mut f64) -> promshm_result {
        check(|| {
            // SAFETY: `out` is NULL or writable (caller contract).
            let out = unsafe { Out::new(out, "out")? };
            out.write(typed!(series, Counter, "promshm_counter_get")?.get());
            Ok(())
        })
    }
}

ffi_fn! {
    /// Reset a counter to 0 for every process sharing the area, with its
    /// `_created` time now; every handle on the series (in any process)
    /// keeps counting from 0. Increments still buffered (in another thread
    /// or process) are added after the reset: flush first for this thread's.
    /// Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER`, `WRONG_TYPE`.
    unsafe fn promshm_counter_reset(series: *const promshm_series) -> promshm_result {
        check(|| {
            typed!(series, Counter, "promshm_counter_reset")?.reset();
            Ok(())
        })
    }
}

ffi_fn! {
    /// Set this process's value of a gauge. Gauges write through to this
    /// worker's cell in the area (no flush needed); the family's mode
    /// combines the workers' values at render time. If every worker slot is
    /// taken the update is dropped and counted in
    /// `promshm_area_stats.dropped_updates`. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER`, `WRONG_TYPE`.
    unsafe fn promshm_gauge_set(series: *const promshm_series, value: f64) -> promshm_result {
        check(|| {
            typed!(series, Gauge, "promshm_gauge_set")?.set(value);
            Ok(())
        })
    }
}

ffi_fn! {
    /// Add 1 to this process's value of a gauge. As `promshm_gauge_set()`.
    ///
    /// Errors: `NULL_PARAMETER`, `WRONG_TYPE`.
    unsafe fn promshm_gauge_inc(series: *const promshm_series) -> promshm_result {
        check(|| {
            typed!(series, Gauge, "promshm_gauge_inc")?.inc();
            Ok(())
        })
    }
}

ffi_fn! {
    /// Subtract 1 from this process's value of a gauge. As
    /// `promshm_gauge_set()`.
    ///
    /// Errors: `NULL_PARAMETER`, `WRONG_TYPE`.
    unsafe fn promshm_gauge_dec(series: *const promshm_series) -> promshm_result {
        check(|| {
            typed!(series, Gauge, "promshm_gauge_dec")?.dec();
            Ok(())
        })
    }
}

ffi_fn! {
    /// Add `value` (any sign) to this process's value of a gauge. As
    /// `promshm_gauge_set()`.
    ///
    /// Errors: `NULL_PARAMETER`, `WRONG_TYPE`.
    unsafe fn promshm_gauge_add(series: *const promshm_series, value: f64) -> promshm_result {
        check(|| {
            typed!(series, Gauge, "promshm_gauge_add")?.add(value);
            Ok(())
        })
    }
}

ffi_fn! {
    /// Subtract `value` from this process's value of a gauge. As
    /// `promshm_gauge_set()`.
    ///
    /// Errors: `NULL_PARAMETER`, `WRONG_TYPE`.
    unsafe fn promshm_gauge_sub(series: *const promshm_series, value: f64) -> promshm_result {
        check(|| {
            typed!(series, Gauge, "promshm_gauge_sub")?.sub(value);
            Ok(())
        })
    }
}

ffi_fn! {
    /// Set this process's value of a gauge to the current Unix time in
    /// seconds. As `promshm_gauge_set()`.
    ///
    /// Errors: `NULL_PARAMETER`, `WRONG_TYPE`.
    unsafe fn promshm_gauge_set_to_current_time(series: *const promshm_series) -> promshm_result {
        check(|| {
            typed!(series, Gauge, "promshm_gauge_set_to_current_time")?.set_to_current_time();
            Ok(())
        })
    }
}

ffi_fn! {
    /// Write the gauge's value as a render would show it (the family's mode
    /// applied over every worker; for `ALL` mode the sum over live workers)
    /// to `*out`. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`series` or `out`), `WRONG_TYPE`.
    unsafe fn promshm_gauge_get(series: *const promshm_series, out: *mut f64) -> promshm_result {
        check(|| {
            // SAFETY: `out` is NULL or writable (caller contract).
            let out = unsafe { Out::new(out, "out")? };
            out.write(typed!(series, Gauge, "promshm_gauge_get")?.get());
            Ok(())
        })
    }
}

ffi_fn! {
    /// Write this process's own value of the gauge to `*out`. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`series` or `out`), `WRONG_TYPE`.
    unsafe fn promshm_gauge_get_local(
        series: *const promshm_series,
        out: *mut f64,
    ) -> promshm_result {
        check(|| {
            // SAFETY: `out` is NULL or writable (caller contract).
            let out = unsafe { Out::new(out, "out")? };
            out.write(typed!(series, Gauge, "promshm_gauge_get_local")?.get_local());
            Ok(())
        })
    }
}

ffi_fn! {
    /// Record one observation in a histogram. The hot path: on a buffered
    /// family this touches only the calling thread's buffer. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER`, `WRONG_TYPE`, `INVALID_VALUE` (NaN; nothing
    /// is recorded).
    unsafe fn promshm_histogram_observe(
        series: *const promshm_series,
        value: f64,
    ) -> promshm_result {
        // SAFETY: `series` is NULL or a live series handle (caller contract).
        match unsafe { get(series) } {
            Some(AnySeries::Histogram(h)) => match h.observe(value) {
                Ok(()) => promshm_result::Ok,
                Err(e) => FfiError::from(e).into_code(),
            },
            other => {
                let want = promshm_metric_type::Histogram;
                mismatch("promshm_histogram_observe", want, other).into_code()
            }
        }
    }
}

ffi_fn! {
    /// Write the histogram's observation count and sum in the area (flushed,
    /// every process) to `*out_count` and `*out_sum`; either may be NULL if
    /// not wanted. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`series`), `WRONG_TYPE`.
    unsafe fn promshm_histogram_get(
        series: *const promshm_series,
        out_count: *mut u64,
        out_sum: *mut f64,
    ) -> promshm_result {
        check(|| {
            let (count, sum) = typed!(series, Histogram, "promshm_histogram_get")?.get();
            // SAFETY: `out_count` and `out_sum` are NULL or writable (caller contract).
            unsafe {
                super::handle::write_opt(out_count, count);
                super::handle::write_opt(out_sum, sum);
            }
            Ok(())
        })
    }
}

ffi_fn! {
    /// Record one observation in a native histogram: one atomic add into its
    /// bucket and one into the sum, straight into the area (no buffer, no
    /// lock). A value outside the family's bucket window counts in the
    /// window's edge bucket (and in `promshm_native_observations_clamped`).
    /// Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER`, `WRONG_TYPE`, `INVALID_VALUE` (NaN; nothing
    /// is recorded).
    unsafe fn promshm_native_histogram_observe(
        series: *const promshm_series,
        value: f64,
    ) -> promshm_result {
        // SAFETY: `series` is NULL or a live series handle (caller contract).
        match unsafe { get(series) } {
            Some(AnySeries::NativeHistogram(h)) => match h.observe(value) {
                Ok(()) => promshm_result::Ok,
                Err(e) => FfiError::from(e).into_code(),
            },
            other => {
                let want = promshm_metric_type::NativeHistogram;
                mismatch("promshm_native_histogram_observe", want, other).into_code()
            }
        }
    }
}

ffi_fn! {
    /// Add `value` (>= 0, not NaN) to a counter, as `promshm_counter_add()`
    /// (buffered or eager), with an exemplar: `n_labels` name/value pairs
    /// (say `{"trace_id", "abc"}`) stored at once in the area as the series'
    /// newest exemplar, for every process, rendered in OpenMetrics and
    /// protobuf. `labels` may be NULL when `n_labels` is 0. The labels must
    /// be valid label names, each once, with at most 128 UTF-8 characters of
    /// names and values together. The series' first exemplar takes the area
    /// lock (to make its exemplar record); later ones take no lock.
    /// Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER`, `WRONG_TYPE`, `INVALID_VALUE` (nothing is
    /// added), `NOT_UTF8`, `INVALID_LABEL_NAME`, `RESERVED_LABEL_NAME`,
    /// `INVALID_ARGUMENT` (a name twice, over 128 characters; nothing is
    /// added), `LOCK_TIMEOUT`, `AREA_FULL`, `READ_ONLY` (the exemplar was not
    /// stored; the value was added).
    unsafe fn promshm_counter_add_exemplar(
        series: *const promshm_series,
        value: f64,
        labels: *const super::registry::promshm_label,
        n_labels: usize,
    ) -> promshm_result {
        check(|| {
            let c = typed!(series, Counter, "promshm_counter_add_exemplar")?;
            // SAFETY: `labels` covers `n_labels` labels, their strings NULL or NUL-terminated
            // (caller contract).
            let pairs = unsafe { super::handle::label_pairs(labels, n_labels, "labels")? };
            Ok(c.add_with_exemplar(value, &pairs)?)
        })
    }
}

ffi_fn! {
    /// Add 1 to a counter with an exemplar: `promshm_counter_add_exemplar()`
    /// with a value of 1.
    ///
    /// Errors: as `promshm_counter_add_exemplar()`.
    unsafe fn promshm_counter_inc_exemplar(
        series: *const promshm_series,
        labels: *const super::registry::promshm_label,
        n_labels: usize,
    ) -> promshm_result {
        check(|| {
            let c = typed!(series, Counter, "promshm_counter_inc_exemplar")?;
            // SAFETY: as in `promshm_counter_add_exemplar`.
            let pairs = unsafe { super::handle::label_pairs(labels, n_labels, "labels")? };
            Ok(c.inc_with_exemplar(&pairs)?)
        })
    }
}

ffi_fn! {
    /// Record one observation in a histogram, as
    /// `promshm_histogram_observe()`, with an exemplar stored as its
    /// bucket's newest (see `promshm_counter_add_exemplar()` for the labels).
    /// Thread-safe.
    ///
    /// Errors: as `promshm_counter_add_exemplar()` (`INVALID_VALUE`: NaN).
    unsafe fn promshm_histogram_observe_exemplar(
        series: *const promshm_series,
        value: f64,
        labels: *const super::registry::promshm_label,
        n_labels: usize,
    ) -> promshm_result {
        check(|| {
            let h = typed!(series, Histogram, "promshm_histogram_observe_exemplar")?;
            // SAFETY: as in `promshm_counter_add_exemplar`.
            let pairs = unsafe { super::handle::label_pairs(labels, n_labels, "labels")? };
            Ok(h.observe_with_exemplar(value, &pairs)?)
        })
    }
}

ffi_fn! {
    /// Record one observation in a native histogram, as
    /// `promshm_native_histogram_observe()`, with an exemplar (the series
    /// keeps 4, chosen by the observation's bucket; see
    /// `promshm_counter_add_exemplar()` for the labels). Thread-safe.
    ///
    /// Errors: as `promshm_histogram_observe_exemplar()`.
    unsafe fn promshm_native_histogram_observe_exemplar(
        series: *const promshm_series,
        value: f64,
        labels: *const super::registry::promshm_label,
        n_labels: usize,
    ) -> promshm_result {
        check(|| {
            let h = typed!(
                series,
                NativeHistogram,
                "promshm_native_histogram_observe_exemplar"
            )?;
            // SAFETY: as in `promshm_counter_add_exemplar`.
            let pairs = unsafe { super::handle::label_pairs(labels, n_labels, "labels")? };
            Ok(h.observe_with_exemplar(value, &pairs)?)
        })
    }
}

ffi_fn! {
    /// Store an exemplar of `value` with `n_labels` labels on a counter,
    /// histogram or native histogram series, without changing its value:
    /// for callers that counted the increment or observation already (a
    /// counter's one exemplar; a histogram's, of the bucket `value` falls
    /// in), timestamped `timestamp` (Unix seconds; 0, negative or NaN: now).
    /// Labels as `promshm_counter_add_exemplar()`. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER`, `WRONG_TYPE` (another type), `INVALID_VALUE`
    /// (NaN), and the label and storage errors of
    /// `promshm_counter_add_exemplar()`.
    unsafe fn promshm_series_set_exemplar(
        series: *const promshm_series,
        value: f64,
        timestamp: f64,
        labels: *const super::registry::promshm_label,
        n_labels: usize,
    ) -> promshm_result {
        check(|| {
            // SAFETY: `labels` covers `n_labels` labels, their strings NULL or NUL-terminated
            // (caller contract).
            let pairs = unsafe { super::handle::label_pairs(labels, n_labels, "labels")? };
            // SAFETY: `series` is NULL or a live series handle (caller contract).
            match unsafe { get(series) } {
                Some(AnySeries::Counter(c)) => Ok(c.set_exemplar(value, Some(timestamp), &pairs)?),
                Some(AnySeries::Histogram(h)) => Ok(h.set_exemplar(value, Some(timestamp), &pairs)?),
                Some(AnySeries::NativeHistogram(h)) => {
                    Ok(h.set_exemplar(value, Some(timestamp), &pairs)?)
                }
                other => Err(mismatch(
                    "promshm_series_set_exemplar",
                    promshm_metric_type::Counter,
                    other,
                )),
            }
        })
    }
}

ffi_fn! {
    /// Write the native histogram's observation count and sum in the area
    /// (every process) to `*out_count` and `*out_sum`; either may be NULL if
    /// not wanted. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`series`), `WRONG_TYPE`.
    unsafe fn promshm_native_histogram_get(
        series: *const promshm_series,
        out_count: *mut u64,
        out_sum: *mut f64,
    ) -> promshm_result {
        check(|| {
            let h = typed!(series, NativeHistogram, "promshm_native_histogram_get")?;
            let (count, sum) = h.get();
            // SAFETY: `out_count` and `out_sum` are NULL or writable (caller contract).
            unsafe {
                super::handle::write_opt(out_count, count);
                super::handle::write_opt(out_sum, sum);
            }
            Ok(())
        })
    }
}

ffi_fn! {
    /// Record one observation in a summary. Summaries write through to the
    /// area (three atomic operations, no lock). Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER`, `WRONG_TYPE`, `INVALID_VALUE` (NaN).
    unsafe fn promshm_summary_observe(series: *const promshm_series, value: f64) -> promshm_result {
        check(|| Ok(typed!(series, Summary, "promshm_summary_observe")?.observe(value)?))
    }
}

ffi_fn! {
    /// Write the summary's observation count and sum (every process) to
    /// `*out_count` and `*out_sum`; either may be NULL if not wanted.
    /// Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`series`), `WRONG_TYPE`.
    unsafe fn promshm_summary_get(
        series: *const promshm_series,
        out_count: *mut u64,
        out_sum: *mut f64,
    ) -> promshm_result {
        check(|| {
            let (count, sum) = typed!(series, Summary, "promshm_summary_get")?.get();
            // SAFETY: `out_count` and `out_sum` are NULL or writable (caller contract).
            unsafe {
                super::handle::write_opt(out_count, count);
                super::handle::write_opt(out_sum, sum);
            }
            Ok(())
        })
    }
}

ffi_fn! {
    /// Estimate the `n` quantiles in `quantiles` (each in [0, 1]; any, not
    /// only the family's) over the summary's window, across every process,
    /// and write them to `out`, an array of `n` doubles owned by the caller.
    /// An estimate is NaN when there are no observations. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`series`, or an array with `n` > 0),
    /// `WRONG_TYPE`, `INVALID_SUMMARY` (a quantile outside [0, 1]).
    unsafe fn promshm_summary_quantiles(
        series: *const promshm_series,
        quantiles: *const f64,
        n: usize,
        out: *mut f64,
    ) -> promshm_result {
        check(|| {
            let s = typed!(series, Summary, "promshm_summary_quantiles")?;
            // SAFETY: `quantiles` covers `n` elements, or is NULL with a count of 0 (caller
            // contract).
            let q = unsafe { slice_arg(quantiles, n, "quantiles")? };
            if n > 0 && out.is_null() {
                return Err(FfiError::null("out"));
            }
            if let Some(bad) = q.iter().find(|q| !(0.0..=1.0).contains(*q)) {
                return Err(FfiError::new(
                    promshm_result::InvalidSummary,
                    format!("quantile {bad} is not in [0, 1]"),
                ));
            }
            let values = s.quantiles(q);
            // SAFETY: `out` holds `n` doubles (caller contract); `values` has `n`.
            unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), out, values.len().min(n)) };
            Ok(())
        })
    }
}

ffi_fn! {
    /// Replace the information of an info series with the `n_labels`
    /// name/value pairs in `labels` (names valid, distinct, and not among the
    /// family's own label names). Setting the same pairs again is free. The
    /// strings are copied. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER`, `NOT_UTF8`, `WRONG_TYPE`,
    /// `INVALID_LABEL_NAME`, `RESERVED_LABEL`, `DUPLICATE_LABEL`, `TOO_LONG`,
    /// `INVALID_ARGUMENT` (more than 64 pairs), `READ_ONLY`, `AREA_FULL`,
    /// `LOCK_TIMEOUT`.
    unsafe fn promshm_info_set(
        series: *const promshm_series,
        labels: *const promshm_label,
        n_labels: usize,
    ) -> promshm_result {
        check(|| {
            let info = typed!(series, Info, "promshm_info_set")?;
            // SAFETY: `labels` covers `n_labels` labels, their strings NULL or NUL-terminated
            // (caller contract).
            let pairs = unsafe { label_pairs(labels, n_labels, "labels")? };
            Ok(info.set(&pairs)?)
        })
    }
}

ffi_fn! {
    /// Make `state` (one of the family's states) the current state of a
    /// state-set series. Takes effect in the area at once. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER`, `NOT_UTF8`, `WRONG_TYPE`, `INVALID_STATE`
    /// (unknown state), `READ_ONLY`.
    unsafe fn promshm_stateset_set(
        series: *const promshm_series,
        state: *const c_char,
    ) -> promshm_result {
        check(|| {
            let s = typed!(series, StateSet, "promshm_stateset_set")?;
            // SAFETY: `state` is NULL or a NUL-terminated string (caller contract).
            Ok(s.set(unsafe { str_arg(state, "state")? })?)
        })
    }
}

ffi_fn! {
    /// Make the `index`-th state (0-based, in registration order) the current
    /// state of a state-set series. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER`, `WRONG_TYPE`, `INVALID_STATE` (index out of
    /// range), `READ_ONLY`.
    unsafe fn promshm_stateset_set_index(
        series: *const promshm_series,
        index: usize,
    ) -> promshm_result {
        check(|| Ok(typed!(series, StateSet, "promshm_stateset_set_index")?.set_index(index)?))
    }
}

ffi_fn! {
    /// Write the index of the current state of a state-set series to `*out`.
    /// Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`series` or `out`), `WRONG_TYPE`.
    unsafe fn promshm_stateset_get(
        series: *const promshm_series,
        out: *mut usize,
    ) -> promshm_result {
        check(|| {
            // SAFETY: `out` is NULL or writable (caller contract).
            let out = unsafe { Out::new(out, "out")? };
            let s = typed!(series, StateSet, "promshm_stateset_get")?;
            let current = s.get();
            let states = &s.series.family.shape.states;
            out.write(states.iter().position(|x| x == current).unwrap_or(0));
            Ok(())
        })
    }
}

ffi_fn! {
    /// The series' type; `PROMSHM_METRIC_TYPE_INVALID` for NULL. Thread-safe.
    unsafe fn promshm_series_type(series: *const promshm_series) -> promshm_metric_type {
        // SAFETY: `series` is NULL or a live series handle (caller contract).
        unsafe { get(series) }
            .map(series_type)
            .unwrap_or(promshm_metric_type::Invalid)
    }
}

ffi_fn! {
    /// A new reference to the same series; release it with
    /// `promshm_series_free()`. NULL gives NULL. Thread-safe.
    unsafe fn promshm_series_clone(series: *const promshm_series) -> *const promshm_series {
        // SAFETY: `series` is NULL or a live handle from this library (caller contract).
        unsafe { clone_handle(series) }
    }
}

ffi_fn! {
    /// Release a series handle. What this thread buffered for it is kept and
    /// flushed as usual. NULL is a no-op; freeing twice is undefined
    /// behaviour.
    unsafe fn promshm_series_free(series: *const promshm_series) {
        // SAFETY: `series` is NULL or a live handle, given up by the caller (caller contract).
        unsafe { free_handle(series) }
    }
}
