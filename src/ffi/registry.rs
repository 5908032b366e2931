//! `promshm_registry`: a view on an area with a prefix and constant labels,
//! where families of every type are registered.

use std::ffi::c_char;
use std::sync::Arc;
use std::time::Duration;

use super::area::promshm_area;
use super::error::{capture, promshm_error};
use super::family::{promshm_family, AnyFamily, FamilyHandle};
use super::handle::{
    borrow, clone_handle, field_ends, free_handle, into_handle, label_pairs, opt_str_arg,
    read_extensible, slice_arg, str_arg, with_strs, ArcHandle, Extensible, Out,
};
use super::result::{check, promshm_result, FfiError};
use crate::metrics::{GaugeMode, NativeOpts, SummaryOpts};
use crate::registry::{Opts, Registry};

/// A registry: a view on an area with an optional prefix (namespace) and
/// constant labels, where families are registered. Reference-counted (an `Arc` in Rust):
/// `const`, safe to use from several threads at once; families made from it
/// stay usable after `promshm_registry_free()`.
pub struct promshm_registry {
    _private: [u8; 0],
}

impl ArcHandle for promshm_registry {
    type Rust = Registry;
    const WHAT: &'static str = "registry";
}

/// A label given by name: a constant label, a label of a series resolved by
/// name, or an info pair. Both strings are NUL-terminated UTF-8, borrowed for
/// the duration of the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct promshm_label {
    /// Label name, `[a-zA-Z_][a-zA-Z0-9_]*`.
    pub name: *const c_char,
    /// Label value, any UTF-8 up to 16 KiB.
    pub value: *const c_char,
}

/// Whether a family's updates are buffered per thread or written through
/// (a `uint32_t`).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct promshm_update_mode(pub u32);

/// The area's default (`promshm_area_options.eager`). The value of a zeroed `promshm_metric_opts`.
pub const PROMSHM_UPDATE_MODE_DEFAULT: promshm_update_mode = promshm_update_mode(0);
/// Counter and histogram updates go to a thread-local buffer (nanoseconds, no lock) and reach the area on flush.
pub const PROMSHM_UPDATE_MODE_BUFFERED: promshm_update_mode = promshm_update_mode(1);
/// Every update is an atomic write into the area, visible at once.
pub const PROMSHM_UPDATE_MODE_EAGER: promshm_update_mode = promshm_update_mode(2);

/// How the values that several worker processes set on one gauge combine
/// (a `uint32_t`).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct promshm_gauge_mode(pub u32);

/// Sum over all workers, dead ones included (their last value is kept).
pub const PROMSHM_GAUGE_MODE_SUM: promshm_gauge_mode = promshm_gauge_mode(0);
/// Sum over live workers only: a dead worker's value disappears.
pub const PROMSHM_GAUGE_MODE_LIVESUM: promshm_gauge_mode = promshm_gauge_mode(1);
/// Largest value of any worker, dead ones included.
pub const PROMSHM_GAUGE_MODE_MAX: promshm_gauge_mode = promshm_gauge_mode(2);
/// Smallest value of any worker, dead ones included.
pub const PROMSHM_GAUGE_MODE_MIN: promshm_gauge_mode = promshm_gauge_mode(3);
/// The value written last, by whichever worker.
pub const PROMSHM_GAUGE_MODE_MOSTRECENT: promshm_gauge_mode = promshm_gauge_mode(4);
/// One series per live worker, labelled `worker="<slot>"`.
pub const PROMSHM_GAUGE_MODE_ALL: promshm_gauge_mode = promshm_gauge_mode(5);
/// Largest value of the live workers: a dead worker's value disappears.
pub const PROMSHM_GAUGE_MODE_LIVEMAX: promshm_gauge_mode = promshm_gauge_mode(6);
/// Smallest value of the live workers: a dead worker's value disappears.
pub const PROMSHM_GAUGE_MODE_LIVEMIN: promshm_gauge_mode = promshm_gauge_mode(7);
/// The value written last by a live worker: a dead worker's disappears.
pub const PROMSHM_GAUGE_MODE_LIVEMOSTRECENT: promshm_gauge_mode = promshm_gauge_mode(8);

/// What every family needs, whatever its type. Initialise it with
/// `PROMSHM_METRIC_OPTS_INIT` (or zero it and set `size`) and set the fields
/// you need: a zero field is "none" or the default. All pointers are
/// borrowed for the duration of the registration call only. Extensible: see
/// "Extensible structs" in docs/C-API.md.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct promshm_metric_opts {
    /// `sizeof(promshm_metric_opts)` as the caller was compiled with (set by
    /// `PROMSHM_METRIC_OPTS_INIT`); 0 is `INVALID_ARGUMENT`.
    pub size: u32,
    /// `PROMSHM_UPDATE_MODE_*`; 0 is the area's default.
    pub update_mode: promshm_update_mode,
    /// Metric name, required. The registry prefix and the unit are added to
    /// it; do not add `_total` (counters) or `_info` (info): the exposition
    /// adds them.
    pub name: *const c_char,
    /// Help text; NULL means none.
    pub help: *const c_char,
    /// Unit, e.g. "seconds", appended to the name unless already there; NULL or "" means none.
    pub unit: *const c_char,
    /// Label names, `n_label_names` strings; may be NULL when `n_label_names` is 0.
    pub label_names: *const *const c_char,
    /// Number of label names (at most 64, constant labels included).
    pub n_label_names: usize,
}

impl Default for promshm_metric_opts {
    fn default() -> Self {
        Self {
            size: 0,
            update_mode: PROMSHM_UPDATE_MODE_DEFAULT,
            name: std::ptr::null(),
            help: std::ptr::null(),
            unit: std::ptr::null(),
            label_names: std::ptr::null(),
            n_label_names: 0,
        }
    }
}

// SAFETY: `#[repr(C)]`, `size: u32` first, then integers (`update_mode` is a
// transparent `u32`) and raw pointers only.
unsafe impl Extensible for promshm_metric_opts {
    const C_NAME: &'static str = "promshm_metric_opts";
    const INIT: &'static str = "PROMSHM_METRIC_OPTS_INIT";
    const FIELD_ENDS: &'static [usize] = field_ends!(
        Self,
        size: u32,
        update_mode: promshm_update_mode,
        name: *const c_char,
        help: *const c_char,
        unit: *const c_char,
        label_names: *const *const c_char,
        n_label_names: usize,
    );
    fn set_size(&mut self, size: u32) {
        self.size = size;
    }
}
const _: () = assert!(
    promshm_metric_opts::FIELD_ENDS[6] == size_of::<promshm_metric_opts>(),
    "an input struct has no padding"
);

unsafe fn opts_arg(p: *const promshm_metric_opts) -> Result<Opts, FfiError> {
    if p.is_null() {
        return Err(FfiError::null("opts"));
    }
    // SAFETY: `p` points to a struct of the caller that starts with its `size` field (caller
    // contract).
    let o = unsafe { read_extensible(p, "opts")? };
    let eager = match o.update_mode {
        PROMSHM_UPDATE_MODE_DEFAULT => None,
        PROMSHM_UPDATE_MODE_BUFFERED => Some(false),
        PROMSHM_UPDATE_MODE_EAGER => Some(true),
        promshm_update_mode(m) => {
            return Err(FfiError::new(
                promshm_result::InvalidArgument,
                format!("unknown update mode {m}"),
            ))
        }
    };
    // SAFETY: `o.label_names` covers `o.n_label_names` pointers, each NULL or a NUL-terminated
    // string (caller contract).
    let labels = unsafe {
        with_strs(o.label_names, o.n_label_names, "opts.label_names", |l| {
            Ok(l.iter().map(|s| s.to_string()).collect())
        })?
    };
    Ok(Opts {
        // SAFETY: `o.name` is NULL or a NUL-terminated string (caller contract).
        name: unsafe { str_arg(o.name, "opts.name")? }.to_owned(),
        // SAFETY: `o.help` is NULL or a NUL-terminated string (caller contract).
        help: unsafe { opt_str_arg(o.help, "opts.help")? }.to_owned(),
        // SAFETY: `o.unit` is NULL or a NUL-terminated string (caller contract).
        unit: unsafe { opt_str_arg(o.unit, "opts.unit")? }.to_owned(),
        labels,
        eager,
    })
}

/// The common steps of every `promshm_registry_<type>` function.
unsafe fn register(
    reg: *const promshm_registry,
    opts: *const promshm_metric_opts,
    out: *mut *const promshm_family,
    make: impl FnOnce(&Registry, Opts) -> Result<AnyFamily, FfiError>,
) -> promshm_result {
    check(|| {
        // SAFETY: `out` is NULL or writable (caller contract).
        let out = unsafe { Out::new(out, "out")? };
        // SAFETY: `reg` is NULL or a live handle from this library (caller contract).
        let reg = unsafe { borrow(reg)? };
        // SAFETY: `opts` is NULL or a valid `promshm_metric_opts` (caller contract).
        let opts = unsafe { opts_arg(opts)? };
        let family = make(reg, opts)?;
        out.write(into_handle(Arc::new(FamilyHandle::new(family))));
        Ok(())
    })
}

ffi_fn! {
    /// A registry on `area` with no prefix and no constant labels, whose
    /// renders include promshm's own `promshm_*` metrics. On success `*out`
    /// receives a new handle, owned by the caller (`promshm_registry_free()`).
    /// Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`area` or `out`).
    unsafe fn promshm_area_registry(
        area: *const promshm_area,
        out: *mut *const promshm_registry,
    ) -> promshm_result {
        check(|| {
            // SAFETY: `out` is NULL or writable (caller contract).
            let out = unsafe { Out::new(out, "out")? };
            // SAFETY: `area` is NULL or a live handle from this library (caller contract).
            let area = unsafe { borrow(area)? };
            out.write(into_handle(Arc::new(area.registry())));
            Ok(())
        })
    }
}

ffi_fn! {
    /// A registry on `area` whose families are named `<prefix>_<name>` and
    /// carry the constant labels `const_labels` (an array of
    /// `n_const_labels` name/value pairs, added first to every series).
    /// `prefix` may be NULL or "" for none; `const_labels` may be NULL when
    /// `n_const_labels` is 0. Rendering a registry with a prefix shows only
    /// its namespace. Several registries (apps) can share one area under
    /// different prefixes.
    ///
    /// On success `*out` receives a new handle, owned by the caller
    /// (`promshm_registry_free()`). The strings are copied. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER`, `NOT_UTF8`, `INVALID_METRIC_NAME` (prefix),
    /// `INVALID_LABEL_NAME`, `RESERVED_LABEL`, `DUPLICATE_LABEL`, `TOO_LONG`.
    unsafe fn promshm_registry_new(
        area: *const promshm_area,
        prefix: *const c_char,
        const_labels: *const promshm_label,
        n_const_labels: usize,
        out: *mut *const promshm_registry,
    ) -> promshm_result {
        check(|| {
            // SAFETY: `out` is NULL or writable (caller contract).
            let out = unsafe { Out::new(out, "out")? };
            // SAFETY: `area` is NULL or a live handle from this library (caller contract).
            let area = unsafe { borrow(area)? };
            // SAFETY: `prefix` is NULL or a NUL-terminated string (caller contract).
            let prefix = unsafe { opt_str_arg(prefix, "prefix")? };
            // SAFETY: `const_labels` covers `n_const_labels` labels, their strings NULL or
            // NUL-terminated (caller contract).
            let labels = unsafe { label_pairs(const_labels, n_const_labels, "const_labels")? };
            let reg = area.registry().with_prefix(prefix)?.with_const_labels(&labels)?;
            out.write(into_handle(Arc::new(reg)));
            Ok(())
        })
    }
}

ffi_fn! {
    /// A copy of `registry` whose renders leave out promshm's own `promshm_*`
    /// metrics. On success `*out` receives a new handle, owned by the caller
    /// (`promshm_registry_free()`); `registry` is unchanged. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER`.
    unsafe fn promshm_registry_without_self_metrics(
        registry: *const promshm_registry,
        out: *mut *const promshm_registry,
    ) -> promshm_result {
        check(|| {
            // SAFETY: `out` is NULL or writable (caller contract).
            let out = unsafe { Out::new(out, "out")? };
            // SAFETY: `registry` is NULL or a live handle from this library (caller contract).
            let reg = unsafe { borrow(registry)? }.clone().without_self_metrics();
            out.write(into_handle(Arc::new(reg)));
            Ok(())
        })
    }
}

ffi_fn! {
    /// A new reference to the same registry; release it with
    /// `promshm_registry_free()`. NULL gives NULL. Thread-safe.
    unsafe fn promshm_registry_clone(registry: *const promshm_registry) -> *const promshm_registry {
        // SAFETY: `registry` is NULL or a live handle from this library (caller contract).
        unsafe { clone_handle(registry) }
    }
}

ffi_fn! {
    /// Release a registry handle. Families registered through it stay
    /// usable. NULL is a no-op; freeing twice is undefined behaviour.
    unsafe fn promshm_registry_free(registry: *const promshm_registry) {
        // SAFETY: `registry` is NULL or a live handle, given up by the caller (caller contract).
        unsafe { free_handle(registry) }
    }
}

ffi_fn! {
    /// Register a counter family (a monotonic total, exposed as
    /// `<name>_total`), or find the one any process registered with the same
    /// name and shape. On success `*out` receives a new family handle, owned
    /// by the caller (`promshm_family_free()`). Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`registry`, `opts`, `opts->name`, a label
    /// name, `out`), `NOT_UTF8`, `INVALID_METRIC_NAME`, `INVALID_LABEL_NAME`,
    /// `RESERVED_LABEL`, `DUPLICATE_LABEL`, `INVALID_UNIT`, `TOO_LONG`,
    /// `INVALID_ARGUMENT` (update mode, too many labels), `SHAPE_MISMATCH`,
    /// `NAME_TAKEN` (a name it would render, e.g. `<name>_total`, is another
    /// family's: see `promshm_area_name_taken()`), `READ_ONLY`, `AREA_FULL`,
    /// `LOCK_TIMEOUT`.
    unsafe fn promshm_registry_counter(
        registry: *const promshm_registry,
        opts: *const promshm_metric_opts,
        out: *mut *const promshm_family,
    ) -> promshm_result {
        // SAFETY: every pointer is NULL or valid for its use (caller contract).
        unsafe { register(registry, opts, out, |r, o| Ok(AnyFamily::Counter(r.counter(o)?))) }
    }
}

ffi_fn! {
    /// Register (or find) a gauge family whose per-worker values combine as
    /// `mode` says (`PROMSHM_GAUGE_MODE_*`). On success `*out` receives a new
    /// family handle, owned by the caller. Thread-safe.
    ///
    /// Errors: as `promshm_registry_counter()`, plus `INVALID_ARGUMENT` for an
    /// unknown mode and `RESERVED_LABEL` for a `worker` label in `ALL` mode.
    unsafe fn promshm_registry_gauge(
        registry: *const promshm_registry,
        opts: *const promshm_metric_opts,
        mode: promshm_gauge_mode,
        out: *mut *const promshm_family,
    ) -> promshm_result {
        // SAFETY: every pointer is NULL or valid for its use (caller contract).
        unsafe {
            register(registry, opts, out, |r, o| {
                let mode = u8::try_from(mode.0)
                    .ok()
                    .and_then(GaugeMode::from_u8)
                    .ok_or_else(|| {
                        FfiError::new(
                            promshm_result::InvalidArgument,
                            format!("unknown gauge mode {}", mode.0),
                        )
                    })?;
                Ok(AnyFamily::Gauge(r.gauge(o, mode)?))
            })
        }
    }
}

ffi_fn! {
    /// Register (or find) a histogram family with the upper bounds `buckets`
    /// (`n_buckets` finite values, strictly increasing; a trailing +Inf is
    /// allowed and `+Inf` is always implied; at most 1024). `buckets` may be
    /// NULL when `n_buckets` is 0 (only the +Inf bucket). See
    /// `promshm_default_buckets()`, `promshm_buckets_linear()` and
    /// `promshm_buckets_exponential()`. The array is copied. On success `*out`
    /// receives a new family handle, owned by the caller. Thread-safe.
    ///
    /// Errors: as `promshm_registry_counter()`, plus `INVALID_BUCKETS`.
    unsafe fn promshm_registry_histogram(
        registry: *const promshm_registry,
        opts: *const promshm_metric_opts,
        buckets: *const f64,
        n_buckets: usize,
        out: *mut *const promshm_family,
    ) -> promshm_result {
        // SAFETY: every pointer is NULL or valid for its use (caller contract).
        unsafe {
            register(registry, opts, out, |r, o| {
                let buckets = slice_arg(buckets, n_buckets, "buckets")?;
                Ok(AnyFamily::Histogram(r.histogram(o, buckets)?))
            })
        }
    }
}

/// The Rust options of `promshm_registry_native_histogram()`'s arguments
/// (client_golang's meanings: 0 picks the default).
fn native_opts(
    bucket_factor: f64,
    zero_threshold: f64,
    max_buckets: u32,
    min_value: f64,
    max_value: f64,
) -> crate::Result<NativeOpts> {
    let mut n = NativeOpts::new().max_buckets(max_buckets);
    if bucket_factor != 0.0 {
        n = n.bucket_factor(bucket_factor)?;
    }
    if zero_threshold != 0.0 {
        n = n.zero_threshold(zero_threshold.max(0.0));
    }
    let or = |v: f64, d: f64| if v == 0.0 { d } else { v };
    Ok(n.range(
        or(min_value, crate::metrics::native::DEFAULT_MIN_VALUE),
        or(max_value, crate::metrics::native::DEFAULT_MAX_VALUE),
    ))
}

ffi_fn! {
    /// Register (or find) a native (sparse, exponential-bucket) histogram
    /// family, shared by every process: each observation is an atomic add
    /// into the bucket cells in the area, so buckets, count and sum are
    /// exact across processes. Only the protobuf format carries its buckets;
    /// the text formats show its `_count`, `_sum` and a single `+Inf` bucket.
    ///
    /// With client_golang's meanings: `bucket_factor` (> 1; 0: 1.1) picks the
    /// schema, the largest whose bucket growth is at most the factor (1.1 is
    /// schema 3); `zero_threshold` is the width of the zero bucket (0:
    /// 2^-128; negative: 0, only exact zeros); `max_buckets` is the most
    /// populated buckets a scrape shows, the schema being reduced at render
    /// until they fit (0: no limit). `min_value` and `max_value` (> 0; 0:
    /// 2^-32 and 2^32) bound the window of buckets the area holds (at most
    /// 8192 a sign): a value outside it counts in the window's edge bucket
    /// and in the self-metric `promshm_native_observations_clamped`.
    /// Native families are always eager (`opts->eager` is ignored). On
    /// success `*out` receives a new family handle, owned by the caller.
    /// Thread-safe.
    ///
    /// Errors: as `promshm_registry_counter()`, plus `INVALID_BUCKETS` (a
    /// bucket factor <= 1, a range with `min_value > max_value`, or a window
    /// of more than 8192 buckets).
    unsafe fn promshm_registry_native_histogram(
        registry: *const promshm_registry,
        opts: *const promshm_metric_opts,
        bucket_factor: f64,
        zero_threshold: f64,
        max_buckets: u32,
        min_value: f64,
        max_value: f64,
        out: *mut *const promshm_family,
    ) -> promshm_result {
        // SAFETY: the same pointers, valid for the same uses (caller
        // contract); no classic bucket (NULL with a count of 0).
        unsafe {
            promshm_registry_native_histogram_buckets(
                registry,
                opts,
                bucket_factor,
                zero_threshold,
                max_buckets,
                min_value,
                max_value,
                std::ptr::null(),
                0,
                out,
            )
        }
    }
}

ffi_fn! {
    /// Register (or find) a native histogram family that has classic
    /// buckets too (client_golang's `Buckets` beside
    /// `NativeHistogramBucketFactor`): every observation counts, exactly
    /// across processes, in its native bucket and in its classic bucket.
    /// The native arguments are those of
    /// `promshm_registry_native_histogram()`; `buckets` are the classic
    /// upper bounds as for `promshm_registry_histogram()` (`n_buckets` finite
    /// values, strictly increasing, a trailing +Inf allowed, `+Inf` implied;
    /// NULL when `n_buckets` is 0, which registers a native-only family, as
    /// `promshm_registry_native_histogram()`). The array is copied.
    ///
    /// The protobuf format carries both views in one histogram (the classic
    /// cumulative buckets beside the native spans; a Prometheus scraping it
    /// stores the native histogram, and with `scrape_classic_histograms`
    /// the `_bucket` series too); the text formats show the classic buckets,
    /// `_count` and `_sum`. Exemplars (`promshm_native_histogram_observe_exemplar()`)
    /// are kept per classic bucket. On success `*out` receives a new family
    /// handle, owned by the caller. Thread-safe.
    ///
    /// Errors: as `promshm_registry_native_histogram()`; the same name with
    /// other classic bounds (or none) is `SHAPE_MISMATCH`.
    unsafe fn promshm_registry_native_histogram_buckets(
        registry: *const promshm_registry,
        opts: *const promshm_metric_opts,
        bucket_factor: f64,
        zero_threshold: f64,
        max_buckets: u32,
        min_value: f64,
        max_value: f64,
        buckets: *const f64,
        n_buckets: usize,
        out: *mut *const promshm_family,
    ) -> promshm_result {
        // SAFETY: every pointer is NULL or valid for its use (caller contract).
        unsafe {
            register(registry, opts, out, |r, o| {
                let n = native_opts(bucket_factor, zero_threshold, max_buckets, min_value, max_value)?;
                let buckets = slice_arg(buckets, n_buckets, "buckets")?;
                Ok(AnyFamily::NativeHistogram(
                    r.native_histogram_with_buckets(o, n, buckets)?,
                ))
            })
        }
    }
}

ffi_fn! {
    /// Register (or find) a summary family: `_count`, `_sum` and the
    /// `n_quantiles` quantiles in `quantiles` (each in [0, 1], increasing;
    /// none for count and sum only; NULL allowed when `n_quantiles` is 0),
    /// which are correct across processes within 1 % relative error.
    ///
    /// `max_age_ms` 0 computes quantiles over every observation ever;
    /// otherwise over the last `max_age_ms` milliseconds, in `age_buckets`
    /// rotating steps (0: 5 steps; at most 64). On success `*out` receives a
    /// new family handle, owned by the caller. Thread-safe.
    ///
    /// Errors: as `promshm_registry_counter()`, plus `INVALID_SUMMARY`.
    unsafe fn promshm_registry_summary(
        registry: *const promshm_registry,
        opts: *const promshm_metric_opts,
        quantiles: *const f64,
        n_quantiles: usize,
        max_age_ms: u64,
        age_buckets: u32,
        out: *mut *const promshm_family,
    ) -> promshm_result {
        // SAFETY: every pointer is NULL or valid for its use (caller contract).
        unsafe {
            register(registry, opts, out, |r, o| {
                let q = slice_arg(quantiles, n_quantiles, "quantiles")?;
                let mut s = SummaryOpts::quantiles(q);
                if max_age_ms > 0 {
                    let steps = if age_buckets == 0 { 5 } else { age_buckets };
                    s = s.window(Duration::from_millis(max_age_ms), steps);
                }
                Ok(AnyFamily::Summary(r.summary(o, &s)?))
            })
        }
    }
}

ffi_fn! {
    /// Register (or find) an info family (exposed as `<name>_info` with value
    /// 1; set its information with `promshm_info_set()`). Info families take
    /// no unit. On success `*out` receives a new family handle, owned by the
    /// caller. Thread-safe.
    ///
    /// Errors: as `promshm_registry_counter()`.
    unsafe fn promshm_registry_info(
        registry: *const promshm_registry,
        opts: *const promshm_metric_opts,
        out: *mut *const promshm_family,
    ) -> promshm_result {
        // SAFETY: every pointer is NULL or valid for its use (caller contract).
        unsafe { register(registry, opts, out, |r, o| Ok(AnyFamily::Info(r.info(o)?))) }
    }
}

ffi_fn! {
    /// Register (or find) a state-set (enum) family with the `n_states`
    /// states in `states` (at least one, distinct; a new series starts in the
    /// first). State sets take no unit, and no label may have the family's
    /// name. The strings are copied. On success `*out` receives a new family
    /// handle, owned by the caller. Thread-safe.
    ///
    /// Errors: as `promshm_registry_counter()`, plus `INVALID_STATE`.
    unsafe fn promshm_registry_stateset(
        registry: *const promshm_registry,
        opts: *const promshm_metric_opts,
        states: *const *const c_char,
        n_states: usize,
        out: *mut *const promshm_family,
    ) -> promshm_result {
        // SAFETY: every pointer is NULL or valid for its use (caller contract).
        unsafe {
            register(registry, opts, out, |r, o| {
                with_strs(states, n_states, "states", |s| {
                    Ok(AnyFamily::StateSet(r.state_set(o, s)?))
                })
            })
        }
    }
}

/// The options of a `_simple` registration: name, help and label names,
/// every other field its default.
fn simple_opts(
    name: *const c_char,
    help: *const c_char,
    label_names: *const *const c_char,
    n_label_names: usize,
) -> promshm_metric_opts {
    promshm_metric_opts {
        size: size_of::<promshm_metric_opts>() as u32,
        name,
        help,
        label_names,
        n_label_names,
        ..Default::default()
    }
}

ffi_fn! {
    /// `promshm_registry_counter()` with plain arguments instead of a
    /// `promshm_metric_opts`, for FFIs where filling a struct of C strings is
    /// awkward: `name` (required), `help` (NULL: none), `label_names` (an
    /// array of `n_label_names` strings; NULL when 0); no unit, the area's
    /// update mode. Stores the status and failure detail in `err` if that is
    /// not NULL (see `promshm_error_new()`). On success `*out` receives a new
    /// family handle, owned by the caller (`promshm_family_free()`).
    /// Thread-safe.
    ///
    /// Errors: as `promshm_registry_counter()`.
    unsafe fn promshm_registry_counter_simple(
        registry: *const promshm_registry,
        name: *const c_char,
        help: *const c_char,
        label_names: *const *const c_char,
        n_label_names: usize,
        out: *mut *const promshm_family,
        err: *mut promshm_error,
    ) -> promshm_result {
        let opts = simple_opts(name, help, label_names, n_label_names);
        // SAFETY: the pointers are NULL or valid as documented (caller contract); passed on unchanged.
        capture(err, || unsafe { promshm_registry_counter(registry, &opts, out) })
    }
}

ffi_fn! {
    /// `promshm_registry_gauge()` with plain arguments, as
    /// `promshm_registry_counter_simple()`, and the gauge `mode`
    /// (`PROMSHM_GAUGE_MODE_*`).
    ///
    /// Errors: as `promshm_registry_gauge()`.
    unsafe fn promshm_registry_gauge_simple(
        registry: *const promshm_registry,
        name: *const c_char,
        help: *const c_char,
        label_names: *const *const c_char,
        n_label_names: usize,
        mode: promshm_gauge_mode,
        out: *mut *const promshm_family,
        err: *mut promshm_error,
    ) -> promshm_result {
        let opts = simple_opts(name, help, label_names, n_label_names);
        // SAFETY: the pointers are NULL or valid as documented (caller contract); passed on unchanged.
        capture(err, || unsafe { promshm_registry_gauge(registry, &opts, mode, out) })
    }
}

ffi_fn! {
    /// `promshm_registry_histogram()` with plain arguments, as
    /// `promshm_registry_counter_simple()`, and the `n_buckets` upper bounds
    /// `buckets` (NULL when 0).
    ///
    /// Errors: as `promshm_registry_histogram()`.
    unsafe fn promshm_registry_histogram_simple(
        registry: *const promshm_registry,
        name: *const c_char,
        help: *const c_char,
        label_names: *const *const c_char,
        n_label_names: usize,
        buckets: *const f64,
        n_buckets: usize,
        out: *mut *const promshm_family,
        err: *mut promshm_error,
    ) -> promshm_result {
        let opts = simple_opts(name, help, label_names, n_label_names);
        // SAFETY: the pointers are NULL or valid as documented (caller contract); passed on unchanged.
        capture(err, || unsafe {
            promshm_registry_histogram(registry, &opts, buckets, n_buckets, out)
        })
    }
}

ffi_fn! {
    /// `promshm_registry_summary()` with plain arguments, as
    /// `promshm_registry_counter_simple()`, and its `quantiles`,
    /// `n_quantiles`, `max_age_ms` and `age_buckets`.
    ///
    /// Errors: as `promshm_registry_summary()`.
    unsafe fn promshm_registry_summary_simple(
        registry: *const promshm_registry,
        name: *const c_char,
        help: *const c_char,
        label_names: *const *const c_char,
        n_label_names: usize,
        quantiles: *const f64,
        n_quantiles: usize,
        max_age_ms: u64,
        age_buckets: u32,
        out: *mut *const promshm_family,
        err: *mut promshm_error,
    ) -> promshm_result {
        let opts = simple_opts(name, help, label_names, n_label_names);
        // SAFETY: the pointers are NULL or valid as documented (caller contract); passed on unchanged.
        capture(err, || unsafe {
            promshm_registry_summary(
                registry,
                &opts,
                quantiles,
                n_quantiles,
                max_age_ms,
                age_buckets,
                out,
            )
        })
    }
}

ffi_fn! {
    /// `promshm_registry_info()` with plain arguments, as
    /// `promshm_registry_counter_simple()`.
    ///
    /// Errors: as `promshm_registry_info()`.
    unsafe fn promshm_registry_info_simple(
        registry: *const promshm_registry,
        name: *const c_char,
        help: *const c_char,
        label_names: *const *const c_char,
        n_label_names: usize,
        out: *mut *const promshm_family,
        err: *mut promshm_error,
    ) -> promshm_result {
        let opts = simple_opts(name, help, label_names, n_label_names);
        // SAFETY: the pointers are NULL or valid as documented (caller contract); passed on unchanged.
        capture(err, || unsafe { promshm_registry_info(registry, &opts, out) })
    }
}

ffi_fn! {
    /// `promshm_registry_stateset()` with plain arguments, as
    /// `promshm_registry_counter_simple()`, and the `n_states` states.
    ///
    /// Errors: as `promshm_registry_stateset()`.
    unsafe fn promshm_registry_stateset_simple(
        registry: *const promshm_registry,
        name: *const c_char,
        help: *const c_char,
        label_names: *const *const c_char,
        n_label_names: usize,
        states: *const *const c_char,
        n_states: usize,
        out: *mut *const promshm_family,
        err: *mut promshm_error,
    ) -> promshm_result {
        let opts = simple_opts(name, help, label_names, n_label_names);
        // SAFETY: the pointers are NULL or valid as documented (caller contract); passed on unchanged.
        capture(err, || unsafe {
            promshm_registry_stateset(registry, &opts, states, n_states, out)
        })
    }
}

/// Number of Prometheus default histogram buckets (see `promshm_default_buckets()`).
pub const PROMSHM_DEFAULT_BUCKETS_COUNT: usize = 11;
const _: () = assert!(PROMSHM_DEFAULT_BUCKETS_COUNT == crate::metrics::DEFAULT_BUCKETS.len());

ffi_fn! {
    /// The Prometheus default histogram buckets (0.005, 0.01, 0.025, 0.05,
    /// 0.1, 0.25, 0.5, 1, 2.5, 5, 10), a static array of
    /// `PROMSHM_DEFAULT_BUCKETS_COUNT` values owned by the library (never free
    /// it). Writes the count to `*out_count` if it is not NULL. Thread-safe;
    /// never fails (on an internal panic: NULL).
    unsafe fn promshm_default_buckets(out_count: *mut usize) -> *const f64 {
        static BUCKETS: [f64; PROMSHM_DEFAULT_BUCKETS_COUNT] = crate::metrics::DEFAULT_BUCKETS;
        // SAFETY: `out_count` is NULL or writable (caller contract).
        unsafe { super::handle::write_opt(out_count, BUCKETS.len()) };
        BUCKETS.as_ptr()
    }
}

/// Copy computed buckets into the caller's array of `count` values.
unsafe fn write_buckets(
    made: crate::Result<Vec<f64>>,
    out: *mut f64,
    count: usize,
) -> Result<(), FfiError> {
    if out.is_null() {
        return Err(FfiError::null("out"));
    }
    let v = made?;
    debug_assert_eq!(v.len(), count);
    // SAFETY: `out` holds `count` values (caller contract) and `v` has `count`.
    unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), out, v.len().min(count)) };
    Ok(())
}

/// The most buckets the helpers make (a histogram takes at most 1024).
const MAX_HELPER_BUCKETS: usize = 1024;

fn bucket_count(count: usize) -> Result<(), FfiError> {
    if count > MAX_HELPER_BUCKETS {
        return Err(FfiError::new(
            promshm_result::InvalidBuckets,
            format!("{count} buckets, at most {MAX_HELPER_BUCKETS}"),
        ));
    }
    Ok(())
}

ffi_fn! {
    /// Write `count` buckets `start, start + width, ..., start + (count-1) *
    /// width` into `out`, an array of at least `count` doubles owned by the
    /// caller. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`out`), `INVALID_BUCKETS` (`count` 0 or above
    /// 1024, `width` not > 0, `start` not finite). Nothing is written on error.
    unsafe fn promshm_buckets_linear(
        start: f64,
        width: f64,
        count: usize,
        out: *mut f64,
    ) -> promshm_result {
        check(|| {
            bucket_count(count)?;
            let made = crate::metrics::linear_buckets(start, width, count);
            // SAFETY: `out` is NULL or holds `count` values (caller contract).
            unsafe { write_buckets(made, out, count) }
        })
    }
}

ffi_fn! {
    /// Write `count` buckets `start, start * factor, ..., start *
    /// factor^(count-1)` into `out`, an array of at least `count` doubles
    /// owned by the caller. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`out`), `INVALID_BUCKETS` (`count` 0 or above
    /// 1024, `start` not > 0, `factor` not > 1, or an overflow to infinity).
    /// Nothing is written on error.
    unsafe fn promshm_buckets_exponential(
        start: f64,
        factor: f64,
        count: usize,
        out: *mut f64,
    ) -> promshm_result {
        check(|| {
            bucket_count(count)?;
            let made = crate::metrics::exponential_buckets(start, factor, count);
            // SAFETY: `out` is NULL or holds `count` values (caller contract).
            unsafe { write_buckets(made, out, count) }
        })
    }
}
