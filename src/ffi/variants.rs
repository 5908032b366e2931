//! The `_e` variants: every fallible function of the API once more, with a
//! last parameter `promshm_error *err` (see `error.rs`). `promshm_x_e(...,
//! err)` is `promshm_x(...)`, and also stores its status and failure detail
//! in `err` (which may be NULL); the thread-local last error is set as
//! before. Generated from one table, so no variant can differ from its
//! function.

use std::ffi::{c_char, c_void};

use super::area::*;
use super::error::{capture, promshm_error};
use super::family::*;
use super::flusher::*;
use super::local::*;
use super::registry::*;
use super::render::*;
use super::result::promshm_result;
use super::series::*;

/// `$variant => $function(args)`: an export `$variant(args, err)` calling
/// `$function(args)` with `err` as the error object.
macro_rules! error_variants {
    ($($variant:ident => $function:ident($($arg:ident: $ty:ty),* $(,)?);)*) => {$(
        ffi_fn! {
            #[doc = concat!(
                " `", stringify!($function), "()` with an error object: the same call, which also ",
                "stores its status and, on failure, its detail in `err` (NULL: none; see ",
                "`promshm_error_new()`). For callers whose threads are not OS threads."
            )]
            unsafe fn $variant($($arg: $ty,)* err: *mut promshm_error) -> promshm_result {
                // SAFETY: the arguments are passed on unchanged under the same contract.
                capture(err, || unsafe { $function($($arg),*) })
            }
        }
    )*};
}

error_variants! {
    promshm_area_create_e => promshm_area_create(path: *const c_char, options: *const promshm_area_options, out: *mut *const promshm_area);
    promshm_area_anonymous_e => promshm_area_anonymous(options: *const promshm_area_options, out: *mut *const promshm_area);
    promshm_area_open_e => promshm_area_open(path: *const c_char, mode: promshm_open_mode, out: *mut *const promshm_area);
    promshm_area_open_with_e => promshm_area_open_with(path: *const c_char, mode: promshm_open_mode, options: *const promshm_area_options, out: *mut *const promshm_area);
    promshm_area_attach_e => promshm_area_attach(area: *const promshm_area, out_slot: *mut u32);
    promshm_area_reap_e => promshm_area_reap(area: *const promshm_area, out_reaped: *mut u32);
    promshm_area_get_stats_e => promshm_area_get_stats(area: *const promshm_area, out: *mut promshm_area_stats);
    promshm_area_workers_e => promshm_area_workers(area: *const promshm_area, out: *mut promshm_worker_info, cap: usize, out_count: *mut usize);
    promshm_area_name_taken_e => promshm_area_name_taken(area: *const promshm_area, name: *const c_char, metric_type: u32, out_taken: *mut u32);
    promshm_area_registry_e => promshm_area_registry(area: *const promshm_area, out: *mut *const promshm_registry);
    promshm_registry_new_e => promshm_registry_new(area: *const promshm_area, prefix: *const c_char, const_labels: *const promshm_label, n_const_labels: usize, out: *mut *const promshm_registry);
    promshm_registry_without_self_metrics_e => promshm_registry_without_self_metrics(registry: *const promshm_registry, out: *mut *const promshm_registry);
    promshm_registry_counter_e => promshm_registry_counter(registry: *const promshm_registry, opts: *const promshm_metric_opts, out: *mut *const promshm_family);
    promshm_registry_gauge_e => promshm_registry_gauge(registry: *const promshm_registry, opts: *const promshm_metric_opts, mode: promshm_gauge_mode, out: *mut *const promshm_family);
    promshm_registry_histogram_e => promshm_registry_histogram(registry: *const promshm_registry, opts: *const promshm_metric_opts, buckets: *const f64, n_buckets: usize, out: *mut *const promshm_family);
    promshm_registry_native_histogram_e => promshm_registry_native_histogram(registry: *const promshm_registry, opts: *const promshm_metric_opts, bucket_factor: f64, zero_threshold: f64, max_buckets: u32, min_value: f64, max_value: f64, out: *mut *const promshm_family);
    promshm_registry_native_histogram_buckets_e => promshm_registry_native_histogram_buckets(registry: *const promshm_registry, opts: *const promshm_metric_opts, bucket_factor: f64, zero_threshold: f64, max_buckets: u32, min_value: f64, max_value: f64, buckets: *const f64, n_buckets: usize, out: *mut *const promshm_family);
    promshm_registry_summary_e => promshm_registry_summary(registry: *const promshm_registry, opts: *const promshm_metric_opts, quantiles: *const f64, n_quantiles: usize, max_age_ms: u64, age_buckets: u32, out: *mut *const promshm_family);
    promshm_registry_info_e => promshm_registry_info(registry: *const promshm_registry, opts: *const promshm_metric_opts, out: *mut *const promshm_family);
    promshm_registry_stateset_e => promshm_registry_stateset(registry: *const promshm_registry, opts: *const promshm_metric_opts, states: *const *const c_char, n_states: usize, out: *mut *const promshm_family);
    promshm_buckets_linear_e => promshm_buckets_linear(start: f64, width: f64, count: usize, out: *mut f64);
    promshm_buckets_exponential_e => promshm_buckets_exponential(start: f64, factor: f64, count: usize, out: *mut f64);
    promshm_family_labels_e => promshm_family_labels(family: *const promshm_family, values: *const *const c_char, n_values: usize, out: *mut *const promshm_series);
    promshm_family_labels_by_name_e => promshm_family_labels_by_name(family: *const promshm_family, labels: *const promshm_label, n_labels: usize, out: *mut *const promshm_series);
    promshm_family_inc_by_values_e => promshm_family_inc_by_values(family: *const promshm_family, values: *const *const c_char, n_values: usize, delta: f64);
    promshm_family_observe_by_values_e => promshm_family_observe_by_values(family: *const promshm_family, values: *const *const c_char, n_values: usize, value: f64);
    promshm_family_clear_e => promshm_family_clear(family: *const promshm_family, out_removed: *mut usize);
    promshm_registry_unregister_e => promshm_registry_unregister(registry: *const promshm_registry, family: *const promshm_family, out_unregistered: *mut u32);
    promshm_counter_inc_e => promshm_counter_inc(series: *const promshm_series);
    promshm_counter_add_e => promshm_counter_add(series: *const promshm_series, value: f64);
    promshm_counter_get_e => promshm_counter_get(series: *const promshm_series, out: *mut f64);
    promshm_counter_reset_e => promshm_counter_reset(series: *const promshm_series);
    promshm_gauge_set_e => promshm_gauge_set(series: *const promshm_series, value: f64);
    promshm_gauge_inc_e => promshm_gauge_inc(series: *const promshm_series);
    promshm_gauge_dec_e => promshm_gauge_dec(series: *const promshm_series);
    promshm_gauge_add_e => promshm_gauge_add(series: *const promshm_series, value: f64);
    promshm_gauge_sub_e => promshm_gauge_sub(series: *const promshm_series, value: f64);
    promshm_gauge_set_to_current_time_e => promshm_gauge_set_to_current_time(series: *const promshm_series);
    promshm_gauge_get_e => promshm_gauge_get(series: *const promshm_series, out: *mut f64);
    promshm_gauge_get_local_e => promshm_gauge_get_local(series: *const promshm_series, out: *mut f64);
    promshm_histogram_observe_e => promshm_histogram_observe(series: *const promshm_series, value: f64);
    promshm_histogram_get_e => promshm_histogram_get(series: *const promshm_series, out_count: *mut u64, out_sum: *mut f64);
    promshm_native_histogram_observe_e => promshm_native_histogram_observe(series: *const promshm_series, value: f64);
    promshm_counter_add_exemplar_e => promshm_counter_add_exemplar(series: *const promshm_series, value: f64, labels: *const promshm_label, n_labels: usize);
    promshm_series_set_exemplar_e => promshm_series_set_exemplar(series: *const promshm_series, value: f64, timestamp: f64, labels: *const promshm_label, n_labels: usize);
    promshm_counter_inc_exemplar_e => promshm_counter_inc_exemplar(series: *const promshm_series, labels: *const promshm_label, n_labels: usize);
    promshm_histogram_observe_exemplar_e => promshm_histogram_observe_exemplar(series: *const promshm_series, value: f64, labels: *const promshm_label, n_labels: usize);
    promshm_native_histogram_observe_exemplar_e => promshm_native_histogram_observe_exemplar(series: *const promshm_series, value: f64, labels: *const promshm_label, n_labels: usize);
    promshm_native_histogram_get_e => promshm_native_histogram_get(series: *const promshm_series, out_count: *mut u64, out_sum: *mut f64);
    promshm_summary_observe_e => promshm_summary_observe(series: *const promshm_series, value: f64);
    promshm_summary_get_e => promshm_summary_get(series: *const promshm_series, out_count: *mut u64, out_sum: *mut f64);
    promshm_summary_quantiles_e => promshm_summary_quantiles(series: *const promshm_series, quantiles: *const f64, n: usize, out: *mut f64);
    promshm_info_set_e => promshm_info_set(series: *const promshm_series, labels: *const promshm_label, n_labels: usize);
    promshm_stateset_set_e => promshm_stateset_set(series: *const promshm_series, state: *const c_char);
    promshm_stateset_set_index_e => promshm_stateset_set_index(series: *const promshm_series, index: usize);
    promshm_stateset_get_e => promshm_stateset_get(series: *const promshm_series, out: *mut usize);
    promshm_local_counter_init_e => promshm_local_counter_init(l: *mut promshm_local_counter, series: *const promshm_series);
    promshm_local_counter_flush_e => promshm_local_counter_flush(l: *mut promshm_local_counter);
    promshm_local_counter_release_e => promshm_local_counter_release(l: *mut promshm_local_counter);
    promshm_local_histogram_init_e => promshm_local_histogram_init(l: *mut promshm_local_histogram, series: *const promshm_series);
    promshm_local_histogram_flush_e => promshm_local_histogram_flush(l: *mut promshm_local_histogram);
    promshm_local_histogram_release_e => promshm_local_histogram_release(l: *mut promshm_local_histogram);
    promshm_flusher_start_e => promshm_flusher_start(interval_ms: u32, out: *mut *mut promshm_flusher);
    promshm_flusher_start_ex_e => promshm_flusher_start_ex(options: *const promshm_flusher_options, out: *mut *mut promshm_flusher);
    promshm_area_render_e => promshm_area_render(area: *const promshm_area, format: promshm_format, buf: *mut c_char, len: usize, out_len: *mut usize);
    promshm_area_render_callback_e => promshm_area_render_callback(area: *const promshm_area, format: promshm_format, write: promshm_write_fn, userdata: *mut c_void);
    promshm_area_render_to_file_e => promshm_area_render_to_file(area: *const promshm_area, format: promshm_format, path: *const c_char);
    promshm_registry_render_e => promshm_registry_render(registry: *const promshm_registry, format: promshm_format, buf: *mut c_char, len: usize, out_len: *mut usize);
    promshm_registry_render_callback_e => promshm_registry_render_callback(registry: *const promshm_registry, format: promshm_format, write: promshm_write_fn, userdata: *mut c_void);
    promshm_registry_render_to_file_e => promshm_registry_render_to_file(registry: *const promshm_registry, format: promshm_format, path: *const c_char);
}

ffi_fn! {
    /// `promshm_flush()` with an error object: the same call, which also
    /// stores its status and, on failure, its detail in `err` (NULL: none).
    unsafe fn promshm_flush_e(err: *mut promshm_error) -> promshm_result {
        capture(err, || promshm_flush())
    }
}
