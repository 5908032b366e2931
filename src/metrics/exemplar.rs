//! Exemplars: the newest one any process saw, per counter series, per
//! bucket of a classic histogram series and in `ex::NATIVE_SLOTS` slots of
//! a native histogram series (chosen by the observation's bucket), kept in
//! the area (`area::exemplar_rec`, `docs/FORMAT.md` §6.8) and rendered in
//! OpenMetrics and protobuf.
//!
//! An exemplar's labels are validated as OpenMetrics asks: valid label
//! names, no name twice, at most 128 UTF-8 characters of names and values
//! together. The value update of `*_with_exemplar` is the normal one
//! (buffered or eager); the exemplar itself is written through to the area
//! at once (its record is made, under the area lock, on the series' first
//! exemplar). Two processes writing the same slot at the same instant: one
//! of the two exemplars is kept, whole.

use super::shape::Shape;
use super::view::SeriesCells;
use super::SeriesInner;
use crate::area::exemplar_rec::{ExRecord, RawExemplar};
use crate::area::format::ex;
use crate::area::AreaInner;
use crate::encoding::{Exemplar, MetricType};
use crate::error::{Error, Result};

/// Cells a counter or histogram series gives its exemplar link (its last).
pub(crate) const LINK_CELLS: usize = 1;

/// Ends each label name and value in a slot's payload (never in UTF-8).
const END: u8 = 0xff;

/// The exemplar slots of a series of `shape` (0: the type has none).
pub(crate) fn slots(shape: &Shape) -> usize {
    match shape.kind {
        MetricType::Counter => 1,
        MetricType::Histogram => shape.params.len() + 1,
        MetricType::NativeHistogram => match super::native::classic_bounds(&shape.params) {
            [] => ex::NATIVE_SLOTS,
            classic => classic.len() + 1,
        },
        _ => 0,
    }
}

/// Check exemplar labels (OpenMetrics' rules) and encode them as a slot's
/// payload: `(number of pairs, bytes)`.
pub(crate) fn encode(labels: &[(&str, &str)]) -> Result<(u32, Vec<u8>)> {
    let mut chars = 0;
    let bytes: usize = labels.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut payload = Vec::with_capacity(bytes);
    for (i, &(name, value)) in labels.iter().enumerate() {
        crate::validate::label_name(name)?;
        if labels[..i].iter().any(|&(n, _)| n == name) {
            return Err(Error::InvalidArgument(format!(
                "exemplar label {name:?} given twice"
            )));
        }
        chars += name.chars().count() + value.chars().count();
        payload.extend_from_slice(name.as_bytes());
        payload.push(END);
        payload.extend_from_slice(value.as_bytes());
        payload.push(END);
    }
    if chars > ex::MAX_CHARS {
        return Err(Error::InvalidArgument(format!(
            "exemplar labels have {chars} characters (names and values together); \
             OpenMetrics allows at most {}",
            ex::MAX_CHARS
        )));
    }
    Ok((labels.len() as u32, payload))
}

/// Decode a slot's payload into label pairs (`None` if it is not what
/// [`encode`] writes).
fn decode(n_pairs: u32, payload: &[u8]) -> Option<Vec<(String, String)>> {
    let mut parts = payload.split(|&b| b == END);
    let mut out = Vec::with_capacity(n_pairs as usize);
    for _ in 0..n_pairs {
        let name = std::str::from_utf8(parts.next()?).ok()?;
        let value = std::str::from_utf8(parts.next()?).ok()?;
        crate::validate::label_name(name).ok()?;
        out.push((name.to_owned(), value.to_owned()));
    }
    // Every part ended with END: what follows the last one is empty.
    (parts.next() == Some(&[][..]) && parts.next().is_none()).then_some(out)
}

/// Store an exemplar of `value` with `labels` (already encoded by
/// [`encode`]) in slot `slot` of the series, timestamped now. Makes (or
/// grows) the series' exemplar record under the area lock when needed.
pub(crate) fn store(
    series: &SeriesInner,
    slot: usize,
    value: f64,
    ex: (u32, Vec<u8>),
) -> Result<()> {
    store_at(series, slot, value, crate::process::now_secs(), ex)
}

/// [`store`] with the exemplar's timestamp (Unix seconds).
fn store_at(
    series: &SeriesInner,
    slot: usize,
    value: f64,
    timestamp: f64,
    (n_pairs, payload): (u32, Vec<u8>),
) -> Result<()> {
    let area = series.area();
    area.check_writable()?;
    let n_slots = slots(&series.family.shape);
    if slot >= n_slots {
        return Ok(());
    }
    let e = RawExemplar {
        value,
        timestamp,
        n_pairs,
        payload,
    };
    let rec = match area.exemplar_record_of(series.off, series.gen, n_slots) {
        Some(r) if e.payload.len() <= r.capacity() => r,
        _ => match record_for(area, series, n_slots, e.payload.len())? {
            Some(r) => r,
            None => return Ok(()), // removed: like its value, stored nowhere
        },
    };
    area.write_exemplar_slot(&rec, slot, &e);
    Ok(())
}

/// Store an exemplar of `value` with `labels` in the slot `value` falls
/// in (a counter's one slot, a histogram's bucket), without changing the
/// series' value: for callers that counted the value already (the
/// prometheus_client backend, whose `set_exemplar` follows its `inc`),
/// timestamped `timestamp` (Unix seconds; `None`, or not finite and
/// positive: now).
pub(crate) fn set(
    series: &SeriesInner,
    value: f64,
    timestamp: Option<f64>,
    labels: &[(&str, &str)],
) -> Result<()> {
    let ex = encode(labels)?;
    let timestamp = timestamp
        .filter(|t| t.is_finite() && *t > 0.0)
        .unwrap_or_else(crate::process::now_secs);
    if value.is_nan() {
        return Err(Error::InvalidValue {
            what: "exemplar value",
            value,
        });
    }
    let shape = &series.family.shape;
    let slot = match shape.kind {
        MetricType::Counter => 0,
        MetricType::Histogram => super::histogram::bucket_of(&shape.params, value),
        MetricType::NativeHistogram => {
            let l = super::native::Layout::from_params(&shape.params).unwrap_or_default();
            let classic = super::native::classic_bounds(&shape.params);
            l.exemplar_slot(value, super::histogram::bucket_of(classic, value))
        }
        other => {
            return Err(Error::WrongType {
                op: "set_exemplar",
                kind: other.as_str(),
            })
        }
    };
    store_at(series, slot, value, timestamp, ex)
}

/// Under the lock: the series' exemplar record, made (or replaced by one
/// with large slots) if it has none whose slots hold `need` bytes; `None`
/// if the series was removed.
#[cold]
fn record_for(
    area: &AreaInner,
    series: &SeriesInner,
    n_slots: usize,
    need: usize,
) -> Result<Option<ExRecord>> {
    let guard = area.lock()?;
    if !area.series_live(series.off, series.gen) {
        return Ok(None);
    }
    if area.exemplar_link(series.off) != Some(series.cells + 8 * (series.n_cells - 1)) {
        return Err(Error::CorruptArea(format!(
            "series at {}: its cell count is not its family's",
            series.off
        )));
    }
    // Another process may have made it meanwhile.
    let old = area.exemplar_record_of(series.off, series.gen, n_slots);
    if let Some(r) = old.filter(|r| need <= r.capacity()) {
        return Ok(Some(r));
    }
    let size = if need <= ex::SMALL_PAYLOAD {
        ex::SMALL_SLOT
    } else {
        ex::LARGE_SLOT
    };
    area.make_exemplar_record(&guard, series.off, series.gen, n_slots, size, old)
        .map(Some)
}

/// The exemplar record linked from the series record at `off` (for
/// freeing it with the series), if it has a valid one.
pub(crate) fn record_of_series(area: &AreaInner, off: usize, shape: &Shape) -> Option<usize> {
    let n = slots(shape);
    (n > 0)
        .then(|| area.exemplar_record_of(off, area.generation(off), n))
        .flatten()
        .map(|r| r.off)
}

/// Read the exemplars of the series `view` shows into `out` (cleared
/// first), each with its slot as `bucket`. Slots never written, being
/// written through every retry, or damaged are left out.
/// Whether the series has an exemplar record to read: its type has slots
/// and its link cell (the last) is set.
#[inline]
pub(crate) fn linked(view: &SeriesCells<'_>, shape: &Shape) -> bool {
    slots(shape) != 0 && view.cell(shape.n_cells(view.area().max_workers()) - 1) != 0
}

pub(crate) fn read(view: &SeriesCells<'_>, shape: &Shape, out: &mut Vec<Exemplar>) {
    out.clear();
    if !linked(view, shape) {
        return;
    }
    let n = slots(shape);
    let area = view.area();
    let series = view.cells_off() - crate::area::format::ser::CELLS;
    let Some(rec) = area.exemplar_record_of(series, area.generation(series), n) else {
        return;
    };
    for i in 0..n {
        let Some(raw) = area.read_exemplar_slot(&rec, i) else {
            continue;
        };
        let Some(labels) = decode(raw.n_pairs, &raw.payload) else {
            continue;
        };
        out.push(Exemplar {
            bucket: i,
            labels,
            value: raw.value,
            timestamp: raw.timestamp,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn labels_encode_and_decode_back() {
        let labels = [("trace_id", "abc"), ("span", "größe ✓"), ("e", "")];
        let (n, p) = encode(&labels).unwrap();
        let back = decode(n, &p).unwrap();
        let back: Vec<(&str, &str)> = back.iter().map(|(a, b)| (&a[..], &b[..])).collect();
        assert_eq!(back, labels);
        assert_eq!(decode(0, &[]).unwrap(), Vec::<(String, String)>::new());
        assert!(decode(1, &p).is_none(), "pairs left over");
        assert!(decode(4, &p).is_none(), "too few pairs");
    }

    #[test]
    fn the_128_character_limit_counts_characters() {
        let v = "é".repeat(120); // 240 bytes, 120 characters
        assert!(encode(&[("trace_id", &v)]).is_ok()); // 8 + 120 = 128
        let v = "é".repeat(121);
        let e = encode(&[("trace_id", &v)]).unwrap_err();
        assert!(e.to_string().contains("129 characters"), "{e}");
        assert!(encode(&[("0bad", "x")]).is_err());
        assert!(encode(&[("a", "x"), ("a", "y")]).is_err());
    }

    /// Each type's exemplars render in OpenMetrics (after the `_total` and
    /// bucket lines) and protobuf, not in 0.0.4 text; a later exemplar of
    /// the same slot replaces the earlier one; long labels move the series
    /// to a record of large slots, keeping the other slots' exemplars.
    #[test]
    fn exemplars_render_and_replace() {
        use crate::{Area, AreaOptions, Format, NativeOpts, Opts};
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let reg = area.registry();
        let c = reg.counter(Opts::new("c", "C.")).unwrap().get().unwrap();
        let h = reg
            .histogram(Opts::new("h", "H.").eager(true), &[1.0, 2.0])
            .unwrap()
            .get()
            .unwrap();
        let n = reg
            .native_histogram(Opts::new("n", "N."), NativeOpts::new())
            .unwrap()
            .get()
            .unwrap();
        c.add_with_exemplar(2.0, &[("trace_id", "old")]).unwrap();
        c.add_with_exemplar(3.0, &[("trace_id", "abc")]).unwrap();
        h.observe_with_exemplar(0.5, &[("t", "a")]).unwrap();
        h.observe_with_exemplar(7.0, &[("t", "inf")]).unwrap();
        n.observe_with_exemplar(1.5, &[("t", "n")]).unwrap();
        assert!(c
            .add_with_exemplar(1.0, &[("x", &"y".repeat(128))])
            .is_err());
        crate::flush();
        assert_eq!(
            c.get(),
            5.0,
            "the invalid exemplar's increment was not counted"
        );
        let om = area.render_to_string(Format::OpenMetrics).unwrap();
        let line = |prefix: &str| {
            om.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in\n{om}"))
                .to_owned()
        };
        assert!(
            line("c_total ").starts_with("c_total 5 # {trace_id=\"abc\"} 3 "),
            "{om}"
        );
        assert!(line("h_bucket{le=\"1.0\"}").starts_with("h_bucket{le=\"1.0\"} 1 # {t=\"a\"} 0.5 "));
        assert!(!line("h_bucket{le=\"2.0\"}").contains('#'));
        assert!(line("h_bucket{le=\"+Inf\"}").contains("# {t=\"inf\"} 7 "));
        assert!(line("n_bucket{le=\"+Inf\"}").contains("# {t=\"n\"} 1.5 "));
        let ts: f64 = line("c_total ")
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((ts - crate::process::now_secs()).abs() < 60.0, "{ts}");
        let text = area.render_to_string(Format::Prometheus).unwrap();
        assert!(!text.contains('#') || !text.contains("trace_id"), "{text}");

        let mut pb = Vec::new();
        area.render(&mut pb, Format::Protobuf).unwrap();
        let fams = crate::encoding::protobuf::decode_families(&pb).unwrap();
        let fam = |name: &str| fams.iter().find(|f| f.name() == name).unwrap().metric[0].clone();
        let ce = fam("c_total").counter.unwrap().exemplar.unwrap();
        assert_eq!((ce.label[0].value(), ce.value()), ("abc", 3.0));
        let hb = fam("h").histogram.unwrap().bucket;
        assert_eq!(hb.len(), 3, "the +Inf bucket is added for its exemplar");
        assert_eq!(hb[0].exemplar.as_ref().unwrap().value(), 0.5);
        assert!(hb[1].exemplar.is_none());
        assert_eq!(hb[2].exemplar.as_ref().unwrap().value(), 7.0);
        assert_eq!(hb[2].upper_bound(), f64::INFINITY);
        let nh = fam("n").histogram.unwrap();
        assert_eq!(nh.exemplars.len(), 1);
        assert_eq!(nh.exemplars[0].value(), 1.5);
        assert_eq!(nh.bucket.len(), 1, "the +Inf bucket, for older receivers");
        assert_eq!(nh.bucket[0].exemplar.as_ref().unwrap().value(), 1.5);
        assert_eq!(nh.bucket[0].cumulative_count(), 1);

        // Grow: a long (non-ASCII) label moves the series to large slots.
        let small = area
            .inner
            .exemplar_record_of(h.series.off, h.series.gen, 3)
            .unwrap();
        assert_eq!(small.slot_size, ex::SMALL_SLOT);
        let long = "日".repeat(100);
        h.observe_with_exemplar(1.5, &[("t", &long)]).unwrap();
        let large = area
            .inner
            .exemplar_record_of(h.series.off, h.series.gen, 3)
            .unwrap();
        assert_eq!(large.slot_size, ex::LARGE_SLOT);
        assert_ne!(large.off, small.off);
        assert_eq!(
            area.inner
                .record_state(small.off, crate::area::format::KIND_EXEMPLAR),
            Some(crate::area::format::STATE_FREE)
        );
        let om = area.render_to_string(Format::OpenMetrics).unwrap();
        assert!(
            om.contains(&format!("h_bucket{{le=\"2.0\"}} 2 # {{t=\"{long}\"}} 1.5 ")),
            "{om}"
        );
        assert!(
            om.contains("h_bucket{le=\"1.0\"} 1 # {t=\"a\"} 0.5 "),
            "{om}"
        );
    }

    /// Removing a series frees its exemplar record with it.
    #[test]
    fn a_removed_series_frees_its_exemplar_record() {
        use crate::area::format::{KIND_EXEMPLAR, STATE_FREE, STATE_LIVE};
        use crate::{Area, AreaOptions, Opts};
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let fam = area
            .registry()
            .counter(Opts::new("c", "C.").labels(&["k"]))
            .unwrap();
        let c = fam.labels(&["a"]).unwrap();
        c.inc_with_exemplar(&[("trace_id", "1")]).unwrap();
        let rec = area
            .inner
            .exemplar_record_of(c.series.off, c.series.gen, 1)
            .unwrap();
        assert_eq!(
            area.inner.record_state(rec.off, KIND_EXEMPLAR),
            Some(STATE_LIVE)
        );
        assert!(fam.remove(&["a"]).unwrap());
        assert_eq!(
            area.inner.record_state(rec.off, KIND_EXEMPLAR),
            Some(STATE_FREE)
        );
        // The old handle stores nothing (its series is gone).
        c.inc_with_exemplar(&[("trace_id", "2")]).unwrap();
        assert_eq!(
            area.inner.record_state(rec.off, KIND_EXEMPLAR),
            Some(STATE_FREE)
        );
        assert!(area
            .inner
            .exemplar_record_of(c.series.off, c.series.gen, 1)
            .is_none());
    }

    /// A damaged exemplar record is never trusted: a link to another
    /// series' record, a record with a wrong slot size or owner, or a slot
    /// with a length past its capacity is not followed or read; a writer
    /// makes the series a new record instead (never writing into what the
    /// link named), and the rebuild frees what is no longer linked.
    #[test]
    fn damaged_exemplar_records_are_not_trusted() {
        use crate::area::format::{ser, KIND_EXEMPLAR, KIND_SERIES, STATE_FREE, STATE_LIVE};
        use crate::{Area, AreaOptions, Format, Opts};
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let a = &area.inner;
        let fam = area
            .registry()
            .counter(Opts::new("c", "C.").labels(&["k"]).eager(true))
            .unwrap();
        let (x, y) = (fam.labels(&["x"]).unwrap(), fam.labels(&["y"]).unwrap());
        x.inc_with_exemplar(&[("t", "x1")]).unwrap();
        let link = a.exemplar_link(x.series.off).unwrap();
        let rec = a.exemplar_record_of(x.series.off, x.series.gen, 1).unwrap();
        let bytes = |off: usize, len: usize| {
            let mut b = vec![0u8; len];
            assert!(a.read_bytes(off, &mut b));
            b
        };
        // 1. The link names series y's record: not followed; x gets a new
        //    record and y's record is untouched.
        let y_before = bytes(y.series.off, 64);
        a.u64_at(link)
            .unwrap()
            .store(y.series.off as u64, Ordering::Release);
        assert!(a
            .exemplar_record_of(x.series.off, x.series.gen, 1)
            .is_none());
        let om = area.render_to_string(Format::OpenMetrics).unwrap();
        assert!(!om.contains("x1"), "{om}");
        x.inc_with_exemplar(&[("t", "x2")]).unwrap();
        assert_eq!(bytes(y.series.off, 64), y_before);
        assert_eq!(a.record_state(y.series.off, KIND_SERIES), Some(STATE_LIVE));
        let new = a.exemplar_record_of(x.series.off, x.series.gen, 1).unwrap();
        assert_ne!(new.off, rec.off);
        // The first record is LIVE but linked from nowhere: the rebuild frees it.
        assert_eq!(a.record_state(rec.off, KIND_EXEMPLAR), Some(STATE_LIVE));
        a.rebuild_free_lists(&a.lock().unwrap());
        assert_eq!(a.record_state(rec.off, KIND_EXEMPLAR), Some(STATE_FREE));
        assert_eq!(a.record_state(new.off, KIND_EXEMPLAR), Some(STATE_LIVE));
        // 2. A slot length past its capacity: the slot is skipped.
        let len_word = a.u64_at(new.off + ex::SLOTS + ex::LEN).unwrap();
        let good = len_word.load(Ordering::Relaxed);
        len_word.store(good | 0xffff, Ordering::Relaxed);
        let om = area.render_to_string(Format::OpenMetrics).unwrap();
        assert!(om.contains("c_total{k=\"x\"} 2\n"), "{om}");
        len_word.store(good, Ordering::Relaxed);
        let om = area.render_to_string(Format::OpenMetrics).unwrap();
        assert!(om.contains("c_total{k=\"x\"} 2 # {t=\"x2\"} 1 "), "{om}");
        // 3. A wrong slot size or owner: the record is not followed.
        for (field, bad) in [(ex::SLOT_SIZE, 4000u32), (ex::OWNER, y.series.off as u32)] {
            let w = a.u32_at(new.off + field).unwrap();
            let was = w.load(Ordering::Relaxed);
            w.store(bad, Ordering::Relaxed);
            assert!(a
                .exemplar_record_of(x.series.off, x.series.gen, 1)
                .is_none());
            assert!(!area
                .render_to_string(Format::OpenMetrics)
                .unwrap()
                .contains("x2"));
            w.store(was, Ordering::Relaxed);
        }
        // 4. A damaged series cell count never sends the link past the record.
        let n = a.u32_at(x.series.off + ser::N_CELLS).unwrap();
        n.store(u32::MAX, Ordering::Relaxed);
        assert!(a.exemplar_link(x.series.off).is_none());
        // Inside the record, but not the family's count: a writer refuses.
        n.store(1, Ordering::Relaxed);
        assert!(x.inc_with_exemplar(&[("t", "x3")]).is_err());
        n.store(2, Ordering::Relaxed);
        assert_eq!(y.get(), 0.0);
    }
}
