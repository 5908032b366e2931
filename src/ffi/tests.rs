//! The exports called directly from Rust: NULLs, bad input, undersized
//! buffers, a caught panic. (The C programs in tests/c/ cover the same
//! ground from C and C++.)

use std::ffi::{c_char, CStr};
use std::ptr::{null, null_mut};

use super::*;

fn last_error() -> String {
    let mut buf = [0 as c_char; 512];
    let mut len = 0usize;
    // SAFETY: a writable buffer of the given length and a valid out-pointer.
    let rc = unsafe { promshm_last_error(buf.as_mut_ptr(), buf.len(), &mut len) };
    assert_eq!(rc, promshm_result::Ok);
    // SAFETY: promshm_last_error NUL-terminates within the buffer.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn message(code: u32) -> String {
    // SAFETY: any integer is accepted; the result is a static C string.
    unsafe { CStr::from_ptr(promshm_result_message(code)) }
        .to_string_lossy()
        .into_owned()
}

fn opts(name: &CStr) -> promshm_metric_opts {
    promshm_metric_opts {
        size: size_of::<promshm_metric_opts>() as u32,
        name: name.as_ptr(),
        ..Default::default()
    }
}

#[test]
fn null_arguments_are_errors_not_crashes() {
    use promshm_result::NullParameter as NP;
    // SAFETY: every pointer is NULL or valid; NULL is what is being tested.
    unsafe {
        let mut area = null();
        assert_eq!(promshm_area_create(null(), null(), &mut area), NP);
        assert_eq!(
            promshm_area_create(c"/tmp/x".as_ptr(), null(), null_mut()),
            NP
        );
        assert_eq!(promshm_area_anonymous(null(), null_mut()), NP);
        assert_eq!(
            promshm_area_open(null(), PROMSHM_OPEN_MODE_READ_ONLY, &mut area),
            NP
        );
        assert!(area.is_null(), "out-parameter written on failure");
        assert_eq!(promshm_area_attach(null(), null_mut()), NP);
        assert_eq!(promshm_area_reap(null(), null_mut()), NP);
        assert_eq!(promshm_area_get_stats(null(), null_mut()), NP);
        assert_eq!(promshm_area_workers(null(), null_mut(), 0, null_mut()), NP);
        assert!(!promshm_area_is_read_only(null()));
        assert!(promshm_area_clone(null()).is_null());
        promshm_area_free(null());

        let mut reg = null();
        assert_eq!(promshm_area_registry(null(), &mut reg), NP);
        assert_eq!(
            promshm_registry_new(null(), null(), null(), 0, &mut reg),
            NP
        );
        assert_eq!(promshm_registry_without_self_metrics(null(), &mut reg), NP);
        assert!(promshm_registry_clone(null()).is_null());
        promshm_registry_free(null());

        let o = opts(c"x");
        let mut fam = null();
        assert_eq!(promshm_registry_counter(null(), &o, &mut fam), NP);
        assert_eq!(
            promshm_registry_gauge(null(), &o, PROMSHM_GAUGE_MODE_SUM, &mut fam),
            NP
        );
        assert_eq!(
            promshm_registry_histogram(null(), &o, null(), 0, &mut fam),
            NP
        );
        assert_eq!(
            promshm_registry_summary(null(), &o, null(), 0, 0, 0, &mut fam),
            NP
        );
        assert_eq!(promshm_registry_info(null(), &o, &mut fam), NP);
        assert_eq!(
            promshm_registry_stateset(null(), &o, null(), 0, &mut fam),
            NP
        );
        assert!(fam.is_null());

        let mut series = null();
        assert_eq!(promshm_family_labels(null(), null(), 0, &mut series), NP);
        assert_eq!(
            promshm_family_labels_by_name(null(), null(), 0, &mut series),
            NP
        );
        assert_eq!(promshm_family_remove(null(), null(), 0, null_mut()), NP);
        assert_eq!(promshm_family_clear(null(), null_mut()), NP);
        assert_eq!(promshm_family_type(null()), promshm_metric_type::Invalid);
        assert!(promshm_family_name(null()).is_null());
        assert_eq!(promshm_family_label_count(null()), 0);
        assert!(promshm_family_clone(null()).is_null());
        promshm_family_free(null());

        let mut v = 0.0;
        let mut n = 0usize;
        assert_eq!(promshm_counter_inc(null()), NP);
        assert_eq!(promshm_counter_add(null(), 1.0), NP);
        assert_eq!(promshm_counter_get(null(), &mut v), NP);
        assert_eq!(promshm_gauge_set(null(), 1.0), NP);
        assert_eq!(promshm_gauge_inc(null()), NP);
        assert_eq!(promshm_gauge_dec(null()), NP);
        assert_eq!(promshm_gauge_add(null(), 1.0), NP);
        assert_eq!(promshm_gauge_sub(null(), 1.0), NP);
        assert_eq!(promshm_gauge_set_to_current_time(null()), NP);
        assert_eq!(promshm_gauge_get(null(), &mut v), NP);
        assert_eq!(promshm_gauge_get_local(null(), &mut v), NP);
        assert_eq!(promshm_histogram_observe(null(), 1.0), NP);
        assert_eq!(promshm_histogram_get(null(), null_mut(), null_mut()), NP);
        assert_eq!(promshm_summary_observe(null(), 1.0), NP);
        assert_eq!(promshm_summary_get(null(), null_mut(), null_mut()), NP);
        assert_eq!(promshm_summary_quantiles(null(), null(), 0, null_mut()), NP);
        assert_eq!(promshm_info_set(null(), null(), 0), NP);
        assert_eq!(promshm_stateset_set(null(), c"a".as_ptr()), NP);
        assert_eq!(promshm_stateset_set_index(null(), 0), NP);
        assert_eq!(promshm_stateset_get(null(), &mut n), NP);
        assert_eq!(promshm_series_type(null()), promshm_metric_type::Invalid);
        assert!(promshm_series_clone(null()).is_null());
        promshm_series_free(null());

        assert_eq!(promshm_flusher_start(10, null_mut()), NP);
        promshm_flusher_stop(null_mut());

        let mut len = 0usize;
        let f = PROMSHM_FORMAT_PROMETHEUS;
        assert_eq!(promshm_area_render(null(), f, null_mut(), 0, &mut len), NP);
        assert_eq!(
            promshm_area_render_callback(null(), f, None, null_mut()),
            NP
        );
        assert_eq!(promshm_area_render_to_file(null(), f, null()), NP);
        assert_eq!(
            promshm_registry_render(null(), f, null_mut(), 0, &mut len),
            NP
        );
        assert_eq!(
            promshm_registry_render_callback(null(), f, None, null_mut()),
            NP
        );
        assert_eq!(promshm_registry_render_to_file(null(), f, null()), NP);
        assert_eq!(len, 0);

        assert_eq!(promshm_buckets_linear(0.0, 1.0, 3, null_mut()), NP);
        assert_eq!(promshm_buckets_exponential(1.0, 2.0, 3, null_mut()), NP);
        assert!(!promshm_default_buckets(null_mut()).is_null());
        assert_eq!(
            promshm_format_from_accept(null()),
            PROMSHM_FORMAT_PROMETHEUS
        );
        assert!(promshm_format_content_type(promshm_format(7)).is_null());
        assert_eq!(promshm_last_error(null_mut(), 1, null_mut()), NP);
    }
    assert!(last_error().contains("is NULL"), "{}", last_error());
}

#[test]
fn end_to_end_and_wrong_types() {
    // SAFETY: valid pointers throughout; handles freed once.
    unsafe {
        let mut area = null();
        assert_eq!(
            promshm_area_anonymous(null(), &mut area),
            promshm_result::Ok
        );
        let mut reg = null();
        assert_eq!(
            promshm_registry_new(area, c"ffi_unit".as_ptr(), null(), 0, &mut reg),
            promshm_result::Ok
        );
        let labels = [c"k".as_ptr()];
        let mut o = opts(c"hits");
        o.label_names = labels.as_ptr();
        o.n_label_names = 1;
        let mut fam = null();
        assert_eq!(
            promshm_registry_counter(reg, &o, &mut fam),
            promshm_result::Ok
        );
        // SAFETY: a live family handle returns a NUL-terminated name.
        let name = CStr::from_ptr(promshm_family_name(fam));
        assert_eq!(name.to_str().unwrap(), "ffi_unit_hits");

        let values = [c"v".as_ptr()];
        let mut s = null();
        assert_eq!(
            promshm_family_labels(fam, values.as_ptr(), 1, &mut s),
            promshm_result::Ok
        );
        assert_eq!(promshm_counter_inc(s), promshm_result::Ok);
        assert_eq!(promshm_counter_add(s, 2.0), promshm_result::Ok);
        assert_eq!(promshm_counter_add(s, -1.0), promshm_result::InvalidValue);
        assert_eq!(promshm_gauge_set(s, 1.0), promshm_result::WrongType);
        assert!(last_error().contains("not a gauge"), "{}", last_error());
        assert_eq!(promshm_histogram_observe(s, 1.0), promshm_result::WrongType);
        assert_eq!(promshm_flush(), promshm_result::Ok);
        let mut v = 0.0;
        assert_eq!(promshm_counter_get(s, &mut v), promshm_result::Ok);
        assert_eq!(v, 3.0);

        // Wrong label count, and the out-parameter left alone.
        let mut s2 = null();
        assert_eq!(
            promshm_family_labels(fam, null(), 0, &mut s2),
            promshm_result::LabelCount
        );
        assert!(s2.is_null());

        // Render: size query, too small, exact.
        let mut need = 0usize;
        let fmt = PROMSHM_FORMAT_OPENMETRICS;
        assert_eq!(
            promshm_registry_render(reg, fmt, null_mut(), 0, &mut need),
            promshm_result::BufferTooSmall
        );
        let mut buf = vec![0 as c_char; need];
        let mut small = 0usize;
        assert_eq!(
            promshm_registry_render(reg, fmt, buf.as_mut_ptr(), need - 1, &mut small),
            promshm_result::BufferTooSmall
        );
        assert_eq!(small, need);
        let mut len = 0usize;
        assert_eq!(
            promshm_registry_render(reg, fmt, buf.as_mut_ptr(), need, &mut len),
            promshm_result::Ok
        );
        assert_eq!(len, need - 1);
        let text = CStr::from_ptr(buf.as_ptr()).to_str().unwrap();
        assert!(text.contains("ffi_unit_hits_total{k=\"v\"} 3"), "{text}");
        assert!(text.ends_with("# EOF\n"));

        promshm_series_free(s);
        promshm_family_free(fam);
        promshm_registry_free(reg);
        promshm_area_free(area);
    }
}

#[test]
fn bad_strings_and_enums() {
    // SAFETY: valid pointers; the strings are NUL-terminated.
    unsafe {
        let mut area = null();
        assert_eq!(
            promshm_area_anonymous(null(), &mut area),
            promshm_result::Ok
        );
        let mut reg = null();
        assert_eq!(promshm_area_registry(area, &mut reg), promshm_result::Ok);
        let mut fam = null();
        let bad = [0x66u8, 0xff, 0];
        let o = promshm_metric_opts {
            name: bad.as_ptr().cast(),
            ..opts(c"x")
        };
        assert_eq!(
            promshm_registry_counter(reg, &o, &mut fam),
            promshm_result::NotUtf8
        );
        let o = promshm_metric_opts {
            update_mode: promshm_update_mode(3),
            ..opts(c"x")
        };
        assert_eq!(
            promshm_registry_counter(reg, &o, &mut fam),
            promshm_result::InvalidArgument
        );
        assert_eq!(
            promshm_registry_gauge(reg, &opts(c"g"), promshm_gauge_mode(9), &mut fam),
            promshm_result::InvalidArgument
        );
        assert_eq!(
            promshm_registry_gauge(reg, &opts(c"g"), promshm_gauge_mode(256), &mut fam),
            promshm_result::InvalidArgument
        );
        let mut a2 = null();
        assert_eq!(
            promshm_area_open(c"/nonexistent".as_ptr(), promshm_open_mode(2), &mut a2),
            promshm_result::InvalidArgument
        );
        assert!(fam.is_null() && a2.is_null());
        let mut len = 0;
        assert_eq!(
            promshm_area_render(area, promshm_format(3), null_mut(), 0, &mut len),
            promshm_result::InvalidArgument
        );
        promshm_registry_free(reg);
        promshm_area_free(area);
    }
}

#[test]
fn last_error_buffer_handling() {
    // SAFETY: valid pointers and lengths.
    unsafe {
        // A detail with multi-byte characters: the label name "é-é".
        let mut area = null();
        assert_eq!(
            promshm_area_anonymous(null(), &mut area),
            promshm_result::Ok
        );
        let mut reg = null();
        let labels = [promshm_label {
            name: c"\u{e9}-\u{e9}".as_ptr(),
            value: c"v".as_ptr(),
        }];
        assert_eq!(
            promshm_registry_new(area, null(), labels.as_ptr(), 1, &mut reg),
            promshm_result::InvalidLabelName
        );
        let full = last_error();
        assert!(
            full.starts_with("invalid label name \"\u{e9}-\u{e9}\""),
            "{full}"
        );

        let mut len = 0usize;
        assert_eq!(
            promshm_last_error(null_mut(), 0, &mut len),
            promshm_result::Ok
        );
        assert_eq!(len, full.len());
        // Cut inside the first "é" (bytes 20..22): only whole characters are copied.
        let mut buf = [0x55 as c_char; 22];
        assert_eq!(
            promshm_last_error(buf.as_mut_ptr(), 22, &mut len),
            promshm_result::Ok
        );
        let cut = CStr::from_ptr(buf.as_ptr()).to_str().expect("valid UTF-8");
        assert_eq!(cut, "invalid label name \"");
        assert_eq!(len, full.len());
        // Other threads have their own detail.
        let other = std::thread::spawn(last_error).join().unwrap();
        assert_eq!(other, "");
        promshm_area_free(area);
    }
}

#[test]
fn panics_are_caught_at_the_boundary() {
    let r: promshm_result = boundary::run(|| panic!("boom {}", 42));
    assert_eq!(r, promshm_result::Panic);
    assert!(last_error().contains("boom 42"), "{}", last_error());
    let p: *const promshm_area = boundary::run(|| panic!("boom"));
    assert!(p.is_null());
    let n: usize = boundary::run(|| panic!("boom"));
    assert_eq!(n, 0);
    let b: bool = boundary::run(|| panic!("boom"));
    assert!(!b);
    let t: promshm_metric_type = boundary::run(|| panic!("boom"));
    assert_eq!(t, promshm_metric_type::Invalid);
}

#[test]
fn result_codes_and_messages() {
    let mut seen = std::collections::HashSet::new();
    for &r in promshm_result::ALL {
        assert_eq!(promshm_result::from_u32(r as u32), Some(r));
        let m = message(r as u32);
        assert_ne!(m, "unknown result code");
        assert!(seen.insert(m), "two codes share a message");
    }
    assert_eq!(promshm_result::ALL.len(), 32);
    assert_eq!(message(1), "unknown result code");
    assert_eq!(message(u32::MAX), "unknown result code");
    assert_eq!(message(0), "ok");
    // The one mapping, spot-checked across blocks.
    let io = |kind| crate::Error::io("open", "/x", std::io::Error::from(kind));
    assert_eq!(
        result::from_error(&io(std::io::ErrorKind::NotFound)),
        promshm_result::NotFound
    );
    assert_eq!(
        result::from_error(&io(std::io::ErrorKind::Other)),
        promshm_result::Io
    );
    assert_eq!(
        result::from_error(&crate::Error::ReadOnly),
        promshm_result::ReadOnly
    );
    assert_eq!(
        result::from_error(&crate::Error::LabelCount {
            expected: 1,
            got: 2
        }),
        promshm_result::LabelCount
    );
    assert_eq!(
        result::from_error(&crate::Error::unsafe_file("/x", "it is a FIFO")),
        promshm_result::UnsafeFile
    );
    assert_eq!(promshm_result::UnsafeFile as u32, 204);
    assert_eq!(
        result::from_error(&crate::Error::FileLockTimeout {
            path: "/x".into(),
            waited_ms: 1
        }),
        promshm_result::LockTimeout
    );
}

#[test]
fn content_types_match_the_core() {
    for (f, core) in [
        (PROMSHM_FORMAT_PROMETHEUS, crate::Format::Prometheus),
        (PROMSHM_FORMAT_OPENMETRICS, crate::Format::OpenMetrics),
        (PROMSHM_FORMAT_PROTOBUF, crate::Format::Protobuf),
    ] {
        // SAFETY: known formats give static C strings.
        let ct = unsafe { CStr::from_ptr(promshm_format_content_type(f)) };
        assert_eq!(ct.to_str().unwrap(), core.content_type());
    }
}

#[test]
fn version_matches_cargo() {
    // SAFETY: a static C string.
    let v = unsafe { CStr::from_ptr(promshm_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    let p = |s: &str| s.parse::<u32>().unwrap();
    assert_eq!(
        promshm_version_number(),
        p(env!("CARGO_PKG_VERSION_MAJOR")) * 1_000_000
            + p(env!("CARGO_PKG_VERSION_MINOR")) * 1_000
            + p(env!("CARGO_PKG_VERSION_PATCH"))
    );
}

/// Every export goes through `ffi_fn!`: `no_mangle` appears nowhere else.
#[test]
fn no_mangle_only_in_the_boundary_macro() {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                let hits = text
                    .lines()
                    .map(str::trim_start)
                    .filter(|l| {
                        l.starts_with("#[no_mangle")
                            || l.starts_with("#[unsafe(no_mangle")
                            || l.starts_with("#[export_name")
                    })
                    .count();
                // The macro's two arms.
                let allowed = if p.ends_with("ffi/boundary.rs") { 2 } else { 0 };
                if hits > allowed {
                    out.push(format!("{}: {hits}", p.display()));
                }
            }
        }
    }
    let mut offenders = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut offenders,
    );
    assert!(
        offenders.is_empty(),
        "no_mangle outside ffi_fn!: {offenders:?}"
    );
}

/// Size query then render into exactly the size answered.
unsafe fn query(area: *const promshm_area, format: promshm_format) -> usize {
    let mut need = 0usize;
    // SAFETY: `area` is a live handle of the test; a NULL buffer of length 0 is allowed.
    let rc = unsafe { promshm_area_render(area, format, null_mut(), 0, &mut need) };
    assert_eq!(rc, promshm_result::BufferTooSmall);
    need
}

unsafe extern "C" fn append_chunk(
    userdata: *mut std::ffi::c_void,
    data: *const u8,
    len: usize,
) -> i32 {
    // SAFETY: `userdata` is the test's Vec<u8>; `data` holds `len` bytes for the call.
    unsafe {
        let out = &mut *userdata.cast::<Vec<u8>>();
        out.extend_from_slice(std::slice::from_raw_parts(data, len));
    }
    0
}

/// Protobuf renders are binary: the buffer, allocation and callback renders
/// all hand out every byte (NULs included) by length, and they decode.
#[test]
fn protobuf_renders_are_binary_safe_in_every_c_render() {
    use crate::encoding::protobuf::decode_families;
    // SAFETY: valid handles and out-pointers; buffers of the lengths given.
    unsafe {
        let mut a = null();
        assert_eq!(promshm_area_anonymous(null(), &mut a), promshm_result::Ok);
        let fmt = PROMSHM_FORMAT_PROTOBUF;
        let need = query(a, fmt);
        let mut buf = vec![0u8; need];
        let mut len = 0usize;
        let rc = promshm_area_render(a, fmt, buf.as_mut_ptr().cast(), need, &mut len);
        assert_eq!(rc, promshm_result::Ok, "{}", last_error());
        assert_eq!(len + 1, need);
        let from_buffer = &buf[..len];
        assert!(from_buffer.contains(&0), "protobuf zeros are NUL bytes");
        let fams = decode_families(from_buffer).unwrap();
        assert!(fams.iter().any(|f| f.name().starts_with("promshm_")));

        let mut p: *mut c_char = null_mut();
        let rc = promshm_area_render_alloc(a, fmt, &mut p, &mut len, null_mut());
        assert_eq!(rc, promshm_result::Ok);
        let alloc = std::slice::from_raw_parts(p.cast::<u8>(), len).to_vec();
        promshm_render_free(p);
        assert_eq!(decode_families(&alloc).unwrap().len(), fams.len());

        let mut streamed: Vec<u8> = Vec::new();
        let rc = promshm_area_render_callback(
            a,
            fmt,
            Some(append_chunk),
            (&mut streamed as *mut Vec<u8>).cast(),
        );
        assert_eq!(rc, promshm_result::Ok);
        assert_eq!(decode_families(&streamed).unwrap().len(), fams.len());
        promshm_area_free(a);
    }
}

#[test]
fn accept_negotiation_text_only_and_any() {
    let proto_first = c"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
    // SAFETY: NUL-terminated strings or NULL.
    unsafe {
        assert_eq!(
            promshm_format_from_accept_any(proto_first.as_ptr()),
            PROMSHM_FORMAT_PROTOBUF
        );
        assert_eq!(
            promshm_format_from_accept(proto_first.as_ptr()),
            PROMSHM_FORMAT_OPENMETRICS
        );
        assert_eq!(
            promshm_format_from_accept_any(null()),
            PROMSHM_FORMAT_PROMETHEUS
        );
        assert_eq!(
            promshm_format_from_accept_any(c"text/plain".as_ptr()),
            PROMSHM_FORMAT_PROMETHEUS
        );
    }
}

#[test]
fn size_query_answer_fits_the_next_render_of_that_area_and_format_only() {
    // SAFETY: valid handles and out-pointers; buffers of the lengths given.
    unsafe {
        let (mut a, mut b) = (null(), null());
        assert_eq!(promshm_area_anonymous(null(), &mut a), promshm_result::Ok);
        assert_eq!(promshm_area_anonymous(null(), &mut b), promshm_result::Ok);
        // A fresh area: the query's own render changes the render duration.
        let need = query(a, PROMSHM_FORMAT_PROMETHEUS);
        let mut buf = vec![0 as c_char; need];
        let mut len = 0usize;
        let rc = promshm_area_render(
            a,
            PROMSHM_FORMAT_PROMETHEUS,
            buf.as_mut_ptr(),
            need,
            &mut len,
        );
        assert_eq!(rc, promshm_result::Ok, "{}", last_error());
        assert_eq!(len + 1, need);
        let measured = CStr::from_ptr(buf.as_ptr()).to_owned();
        // Kept once: the next render is a new one (same area, same page
        // apart from the self-metrics).
        let mut again = vec![0 as c_char; need + 4096];
        let rc = promshm_area_render(
            a,
            PROMSHM_FORMAT_PROMETHEUS,
            again.as_mut_ptr(),
            again.len(),
            &mut len,
        );
        assert_eq!(rc, promshm_result::Ok);
        // A query of one area or format is not the answer for another.
        let need_b = query(b, PROMSHM_FORMAT_OPENMETRICS);
        let rc = promshm_area_render(
            a,
            PROMSHM_FORMAT_OPENMETRICS,
            again.as_mut_ptr(),
            again.len(),
            &mut len,
        );
        assert_eq!(rc, promshm_result::Ok);
        let text = CStr::from_ptr(again.as_ptr())
            .to_string_lossy()
            .into_owned();
        assert!(text.ends_with("# EOF\n"), "{text}");
        let mut buf_b = vec![0 as c_char; need_b];
        let rc = promshm_area_render(
            b,
            PROMSHM_FORMAT_OPENMETRICS,
            buf_b.as_mut_ptr(),
            need_b,
            &mut len,
        );
        assert_eq!(rc, promshm_result::Ok, "{}", last_error());
        assert_eq!(len + 1, need_b);
        assert!(measured.to_bytes().starts_with(b"# HELP promshm_"));
        promshm_area_free(a);
        promshm_area_free(b);
    }
}

#[test]
fn error_object_holds_the_calls_status_and_detail() {
    // SAFETY: valid handles and out-pointers; the error object from promshm_error_new.
    unsafe {
        let err = promshm_error_new();
        assert!(!err.is_null());
        assert_eq!(promshm_error_code(err), promshm_result::Ok);
        let mut area = null();
        assert_eq!(
            promshm_area_anonymous_e(null(), &mut area, err),
            promshm_result::Ok
        );
        let mut reg = null();
        assert_eq!(promshm_area_registry(area, &mut reg), promshm_result::Ok);
        let mut fam = null();
        let rc =
            promshm_registry_counter_simple(reg, c"a-b".as_ptr(), null(), null(), 0, &mut fam, err);
        assert_eq!(rc, promshm_result::InvalidMetricName);
        assert!(fam.is_null());
        assert_eq!(promshm_error_code(err), rc);
        let detail = CStr::from_ptr(promshm_error_detail(err))
            .to_string_lossy()
            .into_owned();
        assert!(detail.contains("\"a-b\""), "{detail}");
        assert_eq!(detail, last_error(), "the thread-local detail is set too");
        // A panic inside an _e call lands in the error object.
        let rc = error::capture(err, || boundary::run(|| panic!("boom 7")));
        assert_eq!(rc, promshm_result::Panic);
        assert_eq!(promshm_error_code(err), promshm_result::Panic);
        let detail = CStr::from_ptr(promshm_error_detail(err))
            .to_string_lossy()
            .into_owned();
        assert!(detail.contains("boom 7"), "{detail}");
        // A success clears it.
        assert_eq!(promshm_flush_e(err), promshm_result::Ok);
        assert_eq!(promshm_error_code(err), promshm_result::Ok);
        assert_eq!(CStr::from_ptr(promshm_error_detail(err)).to_bytes(), b"");
        let rc =
            promshm_registry_counter_simple(reg, c"ok".as_ptr(), null(), null(), 0, &mut fam, err);
        assert_eq!(rc, promshm_result::Ok);
        let mut removed = 9u32;
        let one: [*const c_char; 1] = [c"x".as_ptr()];
        let rc = promshm_family_remove_u32(fam, one.as_ptr(), 1, &mut removed, err);
        assert_eq!(rc, promshm_result::LabelCount);
        assert_eq!(removed, 9, "out-parameter written on failure");
        assert_eq!(promshm_error_code(err), promshm_result::LabelCount);
        promshm_family_free(fam);
        promshm_registry_free(reg);
        promshm_area_free(area);
        promshm_error_free(err);
        promshm_error_free(null_mut());
    }
}
