//! `promshm_family`: a registered family; resolves label values to series,
//! removes and clears series.

use std::ffi::{c_char, CString};
use std::sync::Arc;

use super::error::{capture, promshm_error};
use super::handle::{
    borrow, clone_handle, free_handle, into_handle, label_pairs, with_strs, write_opt, ArcHandle,
    Out,
};
use super::result::{check, promshm_result};
use super::series::{promshm_series, AnySeries};
use crate::metrics::{Counter, Family, Gauge, Histogram, Info, NativeHistogram, StateSet, Summary};

/// A registered metric family of any type. Reference-counted (an `Arc` in Rust):
/// `const`, safe to use from several threads at once; series resolved from
/// it stay usable after `promshm_family_free()`.
pub struct promshm_family {
    _private: [u8; 0],
}

/// The type of a family or series.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum promshm_metric_type {
    /// Not a metric type: returned for a NULL handle.
    Invalid = 0,
    /// Counter.
    Counter = 1,
    /// Gauge.
    Gauge = 2,
    /// Histogram.
    Histogram = 3,
    /// Summary.
    Summary = 4,
    /// Info.
    Info = 5,
    /// State set (enum).
    StateSet = 6,
    /// Native (exponential-bucket) histogram.
    NativeHistogram = 7,
}

/// A family of one of the six types.
pub(crate) enum AnyFamily {
    Counter(Family<Counter>),
    Gauge(Family<Gauge>),
    Histogram(Family<Histogram>),
    Summary(Family<Summary>),
    Info(Family<Info>),
    StateSet(Family<StateSet>),
    NativeHistogram(Family<NativeHistogram>),
}

/// Apply the same expression to whichever typed family is inside.
macro_rules! with_family {
    ($any:expr, $f:ident => $e:expr) => {
        match $any {
            AnyFamily::Counter($f) => $e,
            AnyFamily::Gauge($f) => $e,
            AnyFamily::Histogram($f) => $e,
            AnyFamily::Summary($f) => $e,
            AnyFamily::Info($f) => $e,
            AnyFamily::StateSet($f) => $e,
            AnyFamily::NativeHistogram($f) => $e,
        }
    };
}

/// What a `promshm_family` points to.
pub(crate) struct FamilyHandle {
    family: AnyFamily,
    /// The full name, NUL-terminated, for `promshm_family_name`.
    name: CString,
}

impl ArcHandle for promshm_family {
    type Rust = FamilyHandle;
    const WHAT: &'static str = "family";
}

impl FamilyHandle {
    pub(crate) fn new(family: AnyFamily) -> Self {
        // Metric names are `[a-zA-Z0-9_:]`: never an interior NUL.
        let name = CString::new(with_family!(&family, f => f.name())).unwrap_or_default();
        FamilyHandle { family, name }
    }

    fn metric_type(&self) -> promshm_metric_type {
        match self.family {
            AnyFamily::Counter(_) => promshm_metric_type::Counter,
            AnyFamily::Gauge(_) => promshm_metric_type::Gauge,
            AnyFamily::Histogram(_) => promshm_metric_type::Histogram,
            AnyFamily::Summary(_) => promshm_metric_type::Summary,
            AnyFamily::Info(_) => promshm_metric_type::Info,
            AnyFamily::StateSet(_) => promshm_metric_type::StateSet,
            AnyFamily::NativeHistogram(_) => promshm_metric_type::NativeHistogram,
        }
    }

    fn labels(&self, values: &[&str]) -> crate::Result<AnySeries> {
        Ok(match &self.family {
            AnyFamily::Counter(f) => AnySeries::Counter(f.labels(values)?),
            AnyFamily::Gauge(f) => AnySeries::Gauge(f.labels(values)?),
            AnyFamily::Histogram(f) => AnySeries::Histogram(f.labels(values)?),
            AnyFamily::Summary(f) => AnySeries::Summary(f.labels(values)?),
            AnyFamily::Info(f) => AnySeries::Info(f.labels(values)?),
            AnyFamily::StateSet(f) => AnySeries::StateSet(f.labels(values)?),
            AnyFamily::NativeHistogram(f) => AnySeries::NativeHistogram(f.labels(values)?),
        })
    }

    fn labels_by_name(&self, pairs: &[(&str, &str)]) -> crate::Result<AnySeries> {
        Ok(match &self.family {
            AnyFamily::Counter(f) => AnySeries::Counter(f.labels_by_name(pairs)?),
            AnyFamily::Gauge(f) => AnySeries::Gauge(f.labels_by_name(pairs)?),
            AnyFamily::Histogram(f) => AnySeries::Histogram(f.labels_by_name(pairs)?),
            AnyFamily::Summary(f) => AnySeries::Summary(f.labels_by_name(pairs)?),
            AnyFamily::Info(f) => AnySeries::Info(f.labels_by_name(pairs)?),
            AnyFamily::StateSet(f) => AnySeries::StateSet(f.labels_by_name(pairs)?),
            AnyFamily::NativeHistogram(f) => AnySeries::NativeHistogram(f.labels_by_name(pairs)?),
        })
    }
}

ffi_fn! {
    /// Resolve the series with these label values (`n_values` strings, in
    /// the order of the family's label names, constant labels excluded),
    /// creating it in the area if no process has. This validates and may
    /// take the area lock: do it once and keep the series handle for the
    /// updates. `values` may be NULL when `n_values` is 0.
    ///
    /// On success `*out` receives a new series handle, owned by the caller
    /// (`promshm_series_free()`). Resolving the same values again gives a
    /// handle to the same series. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`family`, `values` with `n_values` > 0, a
    /// value, `out`), `NOT_UTF8`, `LABEL_COUNT`, `TOO_LONG`, `AREA_FULL`,
    /// `LOCK_TIMEOUT`.
    unsafe fn promshm_family_labels(
        family: *const promshm_family,
        values: *const *const c_char,
        n_values: usize,
        out: *mut *const promshm_series,
    ) -> promshm_result {
        check(|| {
            // SAFETY: `out` is NULL or writable (caller contract).
            let out = unsafe { Out::new(out, "out")? };
            // SAFETY: `family` is NULL or a live handle from this library (caller contract).
            let family = unsafe { borrow(family)? };
            // SAFETY: `values` covers `n_values` pointers, each NULL or a NUL-terminated string
            // (caller contract).
            let series =
                unsafe { with_strs(values, n_values, "values", |v| Ok(family.labels(v)?))? };
            out.write(into_handle(Arc::new(series)));
            Ok(())
        })
    }
}

ffi_fn! {
    /// Resolve the series given by `n_labels` name/value pairs in any order
    /// (every label of the family exactly once, constant labels excluded).
    /// Otherwise as `promshm_family_labels()`.
    ///
    /// Errors: as `promshm_family_labels()`, plus `UNKNOWN_LABEL` and
    /// `DUPLICATE_LABEL`.
    unsafe fn promshm_family_labels_by_name(
        family: *const promshm_family,
        labels: *const super::registry::promshm_label,
        n_labels: usize,
        out: *mut *const promshm_series,
    ) -> promshm_result {
        check(|| {
            // SAFETY: `out` is NULL or writable (caller contract).
            let out = unsafe { Out::new(out, "out")? };
            // SAFETY: `family` is NULL or a live handle from this library (caller contract).
            let family = unsafe { borrow(family)? };
            // SAFETY: `labels` covers `n_labels` labels, their strings NULL or NUL-terminated
            // (caller contract).
            let pairs = unsafe { label_pairs(labels, n_labels, "labels")? };
            let series = family.labels_by_name(&pairs)?;
            out.write(into_handle(Arc::new(series)));
            Ok(())
        })
    }
}

ffi_fn! {
    /// Remove the series with these label values, in every process: it is no
    /// longer rendered, handles to it keep working but update nothing
    /// visible, and resolving the values again creates a fresh series. Writes
    /// whether it existed to `*out_removed` if that is not NULL. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER`, `NOT_UTF8`, `LABEL_COUNT`, `TOO_LONG`,
    /// `READ_ONLY`.
    unsafe fn promshm_family_remove(
        family: *const promshm_family,
        values: *const *const c_char,
        n_values: usize,
        out_removed: *mut bool,
    ) -> promshm_result {
        check(|| {
            // SAFETY: `family` is NULL or a live handle from this library (caller contract).
            let family = unsafe { borrow(family)? };
            // SAFETY: `values` covers `n_values` pointers, each NULL or a NUL-terminated string
            // (caller contract).
            let removed = unsafe {
                with_strs(values, n_values, "values", |v| {
                    Ok(with_family!(&family.family, f => f.remove(v))?)
                })?
            };
            // SAFETY: `out_removed` is NULL or writable (caller contract).
            unsafe { write_opt(out_removed, removed) };
            Ok(())
        })
    }
}

ffi_fn! {
    /// `promshm_family_remove()` with a `uint32_t` flag, for FFIs without a C
    /// `bool`, and an error object: writes 1 (it existed) or 0 to
    /// `*out_removed` if that is not NULL; stores the status and failure
    /// detail in `err` if that is not NULL (see `promshm_error_new()`).
    /// Thread-safe.
    ///
    /// Errors: as `promshm_family_remove()`.
    unsafe fn promshm_family_remove_u32(
        family: *const promshm_family,
        values: *const *const c_char,
        n_values: usize,
        out_removed: *mut u32,
        err: *mut promshm_error,
    ) -> promshm_result {
        capture(err, || {
            let mut removed = false;
            // SAFETY: the family and value pointers are NULL or valid (caller contract); `removed` is a local.
            let rc = unsafe { promshm_family_remove(family, values, n_values, &mut removed) };
            if rc == promshm_result::Ok {
                // SAFETY: `out_removed` is NULL or writable (caller contract).
                unsafe { write_opt(out_removed, u32::from(removed)) };
            }
            rc
        })
    }
}

ffi_fn! {
    /// Remove every series of the family, in every process. Writes how many
    /// were removed to `*out_removed` if that is not NULL. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`family`), `READ_ONLY`, `LOCK_TIMEOUT`.
    unsafe fn promshm_family_clear(
        family: *const promshm_family,
        out_removed: *mut usize,
    ) -> promshm_result {
        check(|| {
            // SAFETY: `family` is NULL or a live handle from this library (caller contract).
            let family = unsafe { borrow(family)? };
            let n = with_family!(&family.family, f => f.clear())?;
            // SAFETY: `out_removed` is NULL or writable (caller contract).
            unsafe { write_opt(out_removed, n) };
            Ok(())
        })
    }
}

ffi_fn! {
    /// Unregister `family` from the area, in every process: its series and
    /// its record are freed (their space is reused by later registrations),
    /// it is no longer rendered, and its name is free for a new
    /// registration of any type and labels. Handles to the family and to
    /// its series (in any process) stay valid but update nothing and read
    /// zero, like a removed series' handles; `promshm_family_labels()` on
    /// it never creates a series. The handles still need their
    /// `promshm_family_free()` / `promshm_series_free()`. Writes whether it
    /// was registered (1, or 0 if some process unregistered it already) to
    /// `*out_unregistered` if that is not NULL. Thread-safe.
    ///
    /// Errors: `NULL_PARAMETER` (`registry`, `family`), `INVALID_ARGUMENT`
    /// (a family of another area than the registry's), `READ_ONLY`,
    /// `LOCK_TIMEOUT`.
    unsafe fn promshm_registry_unregister(
        registry: *const super::registry::promshm_registry,
        family: *const promshm_family,
        out_unregistered: *mut u32,
    ) -> promshm_result {
        check(|| {
            // SAFETY: `registry` is NULL or a live handle from this library (caller contract).
            let registry = unsafe { borrow(registry)? };
            // SAFETY: `family` is NULL or a live handle from this library (caller contract).
            let family = unsafe { borrow(family)? };
            let done = with_family!(&family.family, f => registry.unregister(f))?;
            // SAFETY: `out_unregistered` is NULL or writable (caller contract).
            unsafe { write_opt(out_unregistered, u32::from(done)) };
            Ok(())
        })
    }
}

ffi_fn! {
    /// Whether the family is still registered in the area: 1, or 0 once
    /// any process unregistered it (`promshm_registry_unregister()`), and
    /// for NULL. Thread-safe.
    unsafe fn promshm_family_is_registered(family: *const promshm_family) -> u32 {
        // SAFETY: `family` is NULL or a live handle from this library (caller contract).
        unsafe { borrow(family) }
            .map(|f| u32::from(with_family!(&f.family, f => f.is_registered())))
            .unwrap_or(0)
    }
}

ffi_fn! {
    /// The family's type; `PROMSHM_METRIC_TYPE_INVALID` for NULL. Thread-safe.
    unsafe fn promshm_family_type(family: *const promshm_family) -> promshm_metric_type {
        // SAFETY: `family` is NULL or a live handle from this library (caller contract).
        unsafe { borrow(family) }
            .map(FamilyHandle::metric_type)
            .unwrap_or(promshm_metric_type::Invalid)
    }
}

ffi_fn! {
    /// The family's full name (prefix and unit included, without the
    /// `_total`/`_info` the exposition adds), NUL-terminated. Borrowed: valid
    /// as long as this family handle is; do not free it. NULL for NULL.
    /// Thread-safe.
    unsafe fn promshm_family_name(family: *const promshm_family) -> *const c_char {
        // SAFETY: `family` is NULL or a live handle from this library (caller contract).
        unsafe { borrow(family) }
            .map(|f| f.name.as_ptr())
            .unwrap_or(std::ptr::null())
    }
}

ffi_fn! {
    /// The number of label values `promshm_family_labels()` expects
    /// (constant labels excluded); 0 for NULL. Thread-safe.
    unsafe fn promshm_family_label_count(family: *const promshm_family) -> usize {
        // SAFETY: `family` is NULL or a live handle from this library (caller contract).
        unsafe { borrow(family) }
            .map(|f| with_family!(&f.family, f => f.label_names().len()))
            .unwrap_or(0)
    }
}

ffi_fn! {
    /// A new reference to the same family; release it with
    /// `promshm_family_free()`. NULL gives NULL. Thread-safe.
    unsafe fn promshm_family_clone(family: *const promshm_family) -> *const promshm_family {
        // SAFETY: `family` is NULL or a live handle from this library (caller contract).
        unsafe { clone_handle(family) }
    }
}

ffi_fn! {
    /// Release a family handle. Series resolved from it stay usable; the
    /// family stays registered in the area. NULL is a no-op; freeing twice is
    /// undefined behaviour.
    unsafe fn promshm_family_free(family: *const promshm_family) {
        // SAFETY: `family` is NULL or a live handle, given up by the caller (caller contract).
        unsafe { free_handle(family) }
    }
}

/// The series type of an `AnySeries`.
pub(crate) fn series_type(s: &AnySeries) -> promshm_metric_type {
    match s {
        AnySeries::Counter(_) => promshm_metric_type::Counter,
        AnySeries::Gauge(_) => promshm_metric_type::Gauge,
        AnySeries::Histogram(_) => promshm_metric_type::Histogram,
        AnySeries::Summary(_) => promshm_metric_type::Summary,
        AnySeries::Info(_) => promshm_metric_type::Info,
        AnySeries::StateSet(_) => promshm_metric_type::StateSet,
        AnySeries::NativeHistogram(_) => promshm_metric_type::NativeHistogram,
    }
}

// ---- updates by label values, without a series handle ------------------------------------

/// Series resolved by label values on this thread, so that
/// `promshm_family_inc_by_values()` and `promshm_family_observe_by_values()`
/// find them again without validating, hashing, locking or allocating.
///
/// A hit needs the same family handle, the same number of values, the same
/// bytes for each, and a series record still live in the area: the check
/// the family's own series cache makes (`FamilyInner::resolve`). Entries
/// hold a reference to the family, so its address cannot be reused by
/// another family while cached. After `fork()` the child's copy stays valid:
/// it holds handles, no lock.
struct ByValues {
    family: Arc<FamilyHandle>,
    /// The values, each with its NUL.
    values: Box<[u8]>,
    n_values: usize,
    series: AnySeries,
}

/// Entries per thread, replaced in turn.
const BY_VALUES_SLOTS: usize = 4;

struct ByValuesCache {
    slots: [Option<ByValues>; BY_VALUES_SLOTS],
    next: usize,
}

thread_local! {
    static BY_VALUES: std::cell::RefCell<ByValuesCache> = const {
        std::cell::RefCell::new(ByValuesCache { slots: [const { None }; BY_VALUES_SLOTS], next: 0 })
    };
}

impl ByValues {
    /// Whether the C strings `values` are the cached ones.
    ///
    /// # Safety
    /// `values` covers `self.n_values` pointers, each NULL or NUL-terminated.
    #[inline]
    unsafe fn matches(&self, values: *const *const c_char) -> bool {
        let mut cached = &self.values[..];
        for i in 0..self.n_values {
            // SAFETY: `i < n_values` pointers are readable (caller contract).
            let p = unsafe { *values.add(i) }.cast::<u8>();
            if p.is_null() {
                return false;
            }
            let mut j = 0;
            loop {
                // SAFETY: bytes up to and including the string's NUL are readable; the loop
                // stops at the first difference, and the cached segment ends with a NUL, so
                // it never reads past the caller's NUL.
                let b = unsafe { *p.add(j) };
                if b != cached[j] {
                    return false;
                }
                j += 1;
                if b == 0 {
                    break;
                }
            }
            cached = &cached[j..];
        }
        true
    }

    fn is_live(&self) -> bool {
        with_series!(&self.series, s => s.series.is_live())
    }
}

/// Apply the same expression to whichever typed series is inside.
macro_rules! with_series {
    ($any:expr, $s:ident => $e:expr) => {
        match $any {
            AnySeries::Counter($s) => $e,
            AnySeries::Gauge($s) => $e,
            AnySeries::Histogram($s) => $e,
            AnySeries::Summary($s) => $e,
            AnySeries::Info($s) => $e,
            AnySeries::StateSet($s) => $e,
            AnySeries::NativeHistogram($s) => $e,
        }
    };
}
use with_series;

/// Run `update` on the series of `family` with label values `values`: from
/// this thread's cache when the same values were resolved here before,
/// otherwise resolved (and created if need be) as `promshm_family_labels()`
/// does, then cached. `want` is the family type the caller's update needs.
///
/// # Safety
/// `family` is NULL or a live family handle; `values` covers `n_values`
/// pointers, each NULL or a NUL-terminated string.
unsafe fn update_by_values(
    func: &'static str,
    family: *const promshm_family,
    values: *const *const c_char,
    n_values: usize,
    want: &[promshm_metric_type],
    update: impl Fn(&AnySeries) -> crate::Result<()>,
) -> Result<(), super::result::FfiError> {
    // SAFETY: `family` is NULL or a live handle from this library (caller contract).
    let handle = unsafe { borrow(family)? };
    if !want.contains(&handle.metric_type()) {
        return Err(wrong_family_type(func, handle.metric_type(), want[0]));
    }
    let hit = BY_VALUES.try_with(|cache| {
        let cache = cache.try_borrow().ok()?;
        let entry = cache.slots.iter().flatten().find(|e| {
            std::ptr::eq(Arc::as_ptr(&e.family), handle)
                && e.n_values == n_values
                && (n_values == 0 || !values.is_null())
                // SAFETY: `values` covers `n_values` pointers (caller contract).
                && unsafe { e.matches(values) }
                && e.is_live()
        })?;
        Some(update(&entry.series))
    });
    if let Ok(Some(done)) = hit {
        return Ok(done?);
    }
    // Miss: resolve with full validation, then remember it.
    // SAFETY: as above.
    let series = unsafe { with_strs(values, n_values, "values", |v| Ok(handle.labels(v)?))? };
    update(&series)?;
    // SAFETY: `family` is a live handle (checked by `borrow` above).
    let family = unsafe { super::handle::clone_arc(family)? };
    // SAFETY: as above; every value was read successfully by `with_strs`.
    let bytes = unsafe { value_bytes(values, n_values) };
    let entry = ByValues {
        family,
        values: bytes,
        n_values,
        series,
    };
    // During thread teardown the cache may be gone: then nothing is kept.
    let _ = BY_VALUES.try_with(|cache| {
        if let Ok(mut cache) = cache.try_borrow_mut() {
            let i = cache.next;
            cache.next = (i + 1) % BY_VALUES_SLOTS;
            cache.slots[i] = Some(entry);
        }
    });
    Ok(())
}

/// The NUL-terminated strings `values[..n]`, concatenated with their NULs.
///
/// # Safety
/// `values` covers `n` non-NULL NUL-terminated strings.
unsafe fn value_bytes(values: *const *const c_char, n: usize) -> Box<[u8]> {
    let mut bytes = Vec::new();
    for i in 0..n {
        // SAFETY: caller contract.
        let s = unsafe { std::ffi::CStr::from_ptr(*values.add(i)) };
        bytes.extend_from_slice(s.to_bytes_with_nul());
    }
    bytes.into_boxed_slice()
}

#[cold]
#[inline(never)]
fn wrong_family_type(
    func: &'static str,
    got: promshm_metric_type,
    want: promshm_metric_type,
) -> super::result::FfiError {
    use super::series::type_name;
    super::result::FfiError::new(
        super::result::promshm_result::WrongType,
        format!(
            "{func}: the family is a {}, not a {}",
            type_name(got),
            type_name(want)
        ),
    )
}

ffi_fn! {
    /// Add `delta` (>= 0, not NaN) to the counter series with these label
    /// values (as `promshm_family_labels()`: `n_values` strings in the order
    /// of the family's label names), creating it if no process has, without
    /// a series handle. The series this thread resolved last by the same
    /// values (a few per thread) is found again without validation, hashing,
    /// locking or allocation; otherwise this resolves as
    /// `promshm_family_labels()` does. Buffered or eager as the family is.
    /// The thread's cache keeps a reference to the family and the series
    /// until the entry is replaced or the thread exits. Thread-safe.
    ///
    /// Errors: as `promshm_family_labels()`, plus `WRONG_TYPE` (not a
    /// counter family) and `INVALID_VALUE` (negative or NaN `delta`; nothing
    /// is added).
    unsafe fn promshm_family_inc_by_values(
        family: *const promshm_family,
        values: *const *const c_char,
        n_values: usize,
        delta: f64,
    ) -> promshm_result {
        check(|| {
            // SAFETY: the pointers are NULL or valid (caller contract).
            unsafe {
                update_by_values(
                    "promshm_family_inc_by_values",
                    family,
                    values,
                    n_values,
                    &[promshm_metric_type::Counter],
                    |s| match s {
                        AnySeries::Counter(c) => c.add(delta),
                        _ => Ok(()),
                    },
                )
            }
        })
    }
}

ffi_fn! {
    /// Record `value` (not NaN) in the histogram, native histogram or summary
    /// series with these label values, without a series handle; otherwise as
    /// `promshm_family_inc_by_values()`. Thread-safe.
    ///
    /// Errors: as `promshm_family_labels()`, plus `WRONG_TYPE` (not a
    /// histogram, native histogram or summary family) and `INVALID_VALUE` (NaN; nothing is
    /// recorded).
    unsafe fn promshm_family_observe_by_values(
        family: *const promshm_family,
        values: *const *const c_char,
        n_values: usize,
        value: f64,
    ) -> promshm_result {
        check(|| {
            // SAFETY: the pointers are NULL or valid (caller contract).
            unsafe {
                update_by_values(
                    "promshm_family_observe_by_values",
                    family,
                    values,
                    n_values,
                    &[
                        promshm_metric_type::Histogram,
                        promshm_metric_type::Summary,
                        promshm_metric_type::NativeHistogram,
                    ],
                    |s| match s {
                        AnySeries::Histogram(h) => h.observe(value),
                        AnySeries::NativeHistogram(h) => h.observe(value),
                        AnySeries::Summary(q) => q.observe(value),
                        _ => Ok(()),
                    },
                )
            }
        })
    }
}
