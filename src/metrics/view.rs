//! What a type's reader sees of one series while rendering: its label
//! values ([`read_series_labels`]; [`read_series_values`] is what the
//! area's series index reads), its cells, its created timestamp, and the
//! recheck that the series is still the one the walk saw. Each type module
//! reads its own cells through this view (`counter::emit`, `gauge::emit`,
//! ...) and hands points to the encoder; [`emit`] dispatches by kind, the one
//! place that does.

use std::sync::atomic::{AtomicU64, Ordering};

use super::shape::Shape;
use crate::area::format::{rec, ser, KIND_SERIES, MAX_VALUE_LEN, STATE_LIVE};
use crate::area::records::{Record, RecordReader};
use crate::area::AreaInner;
use crate::encoding::{Encoder, FamilyDesc, MetricType};
use crate::error::Result;

/// One series' cells as a reader sees them: the series record the walk
/// found, of the generation it had then.
pub(crate) struct SeriesCells<'a> {
    area: &'a AreaInner,
    /// The record's offset.
    off: usize,
    /// The record's words (empty if they are not in the area): the reads
    /// inside the record, with one bounds check.
    words: &'a [AtomicU64],
    /// The record's generation when the view was made.
    gen: u64,
}

impl<'a> SeriesCells<'a> {
    /// The view of the series record `rec`, of the generation it has now.
    #[inline]
    pub(crate) fn new(area: &'a AreaInner, rec: Record) -> Self {
        let words = area.u64_words(rec.off, rec.len).unwrap_or(&[]);
        let mut view = SeriesCells {
            area,
            off: rec.off,
            words,
            gen: 0,
        };
        view.gen = view.word(rec::GEN).unwrap_or(u64::MAX);
        view
    }

    /// The u64 at `at` in the record, or in the area past it (`None`
    /// outside the area).
    #[inline]
    fn word(&self, at: usize) -> Option<u64> {
        match self.words.get(at / 8) {
            Some(w) => Some(w.load(Ordering::Acquire)),
            None => self
                .area
                .u64_at(self.off + at)
                .map(|c| c.load(Ordering::Acquire)),
        }
    }

    /// Cell `i` (0 if out of the area).
    #[inline]
    pub(crate) fn cell(&self, i: usize) -> u64 {
        self.word(ser::CELLS + 8 * i).unwrap_or(0)
    }

    /// Cell `i` as an `f64`.
    pub(crate) fn cell_f64(&self, i: usize) -> f64 {
        f64::from_bits(self.cell(i))
    }

    /// The series' created timestamp, if set and sane.
    #[inline]
    pub(crate) fn created(&self) -> Option<f64> {
        self.word(ser::CREATED)
            .map(f64::from_bits)
            .filter(|t| t.is_finite() && *t > 0.0)
    }

    /// Whether the series is still the one the walk saw: live, of the same
    /// generation (check it before reading the cells, and after, before
    /// writing the point).
    #[inline]
    pub(crate) fn same(&self) -> bool {
        self.area.record_state(self.off, KIND_SERIES) == Some(STATE_LIVE)
            && self.word(rec::GEN).unwrap_or(u64::MAX) == self.gen
    }

    /// The generation the series had when the view was made.
    pub(crate) fn generation(&self) -> u64 {
        self.gen
    }

    /// The area, for readers that read more than plain cells (the gauge's
    /// per-worker slots, the summary's sketches, info blobs).
    pub(crate) fn area(&self) -> &'a AreaInner {
        self.area
    }

    /// The offset of cell 0 in the area.
    pub(crate) fn cells_off(&self) -> usize {
        self.off + ser::CELLS
    }
}

/// Read a series' label values (after checking its cell count against the
/// shape) into `out`, one `String` each: what the area's series index reads
/// (through `Shape`'s `FamilyShape::series_values`).
/// The same checks as [`read_series_labels`], which the render uses.
pub(crate) fn read_series_values(
    area: &AreaInner,
    rec: Record,
    shape: &Shape,
    out: &mut Vec<String>,
) -> Option<()> {
    let mut sc = LabelScratch::default();
    let values = read_series_labels(area, rec, shape, &mut sc)?;
    let n = shape.label_names.len();
    out.truncate(n);
    out.resize_with(n, String::new);
    for (o, v) in out.iter_mut().zip(values.iter()) {
        o.clear();
        o.push_str(v);
    }
    Some(())
}

/// Buffers [`read_series_labels`] reuses from series to series.
#[derive(Default)]
pub(crate) struct LabelScratch {
    /// The record's bytes after its cells, copied out of the area at once.
    raw: Vec<u8>,
    /// The values alone, when the copy as a whole is not ASCII (a length of
    /// 128 bytes or more, or a value that is not ASCII).
    text: String,
    /// Where each value is in the text (checked: in bounds, on char boundaries).
    spans: Vec<(usize, usize)>,
}

/// A series' label values, in family order, borrowed from a [`LabelScratch`].
#[derive(Clone, Copy)]
pub(crate) struct LabelValues<'s> {
    text: &'s str,
    spans: &'s [(usize, usize)],
}

impl<'s> LabelValues<'s> {
    /// The values, in family order.
    pub(crate) fn iter(self) -> impl Iterator<Item = &'s str> {
        // Every span was checked by `read_series_labels`: `get` cannot fail.
        self.spans
            .iter()
            .map(move |&(a, b)| self.text.get(a..b).unwrap_or(""))
    }
}

/// Read a series' label values: its stored cell count must be the shape's,
/// then `u32` length and bytes for each label (at most [`MAX_VALUE_LEN`],
/// UTF-8), nothing after them but the padding. The bytes after the cells are
/// copied out of the area once and checked on that private copy (a writer
/// changing them meanwhile can only make the copy wrong, never unchecked);
/// the values are then borrowed from it, no allocation once `sc` is warm.
pub(crate) fn read_series_labels<'s>(
    area: &AreaInner,
    rec: Record,
    shape: &Shape,
    sc: &'s mut LabelScratch,
) -> Option<LabelValues<'s>> {
    let n_cells = shape.n_cells(area.max_workers());
    let stored = area.u32_at(rec.off + ser::N_CELLS)?.load(Ordering::Relaxed) as usize;
    let start = ser::CELLS + 8 * n_cells;
    if stored != n_cells || rec.len < start {
        return None;
    }
    let tail = rec.len - start;
    if sc.raw.len() < tail {
        sc.raw.resize(tail, 0);
    }
    let raw = &mut sc.raw[..tail];
    if !area.read_bytes(rec.off + start, raw) {
        return None;
    }
    let raw = &sc.raw[..tail];
    sc.spans.clear();
    let mut pos = 0;
    for _ in 0..shape.label_names.len() {
        let len = raw.get(pos..pos + 4)?;
        let n = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if n > MAX_VALUE_LEN || n > tail - pos - 4 {
            return None;
        }
        sc.spans.push((pos + 4, pos + 4 + n));
        pos += 4 + n;
    }
    if !RecordReader::new(area, rec, start + pos).at_end() {
        return None;
    }
    // The copy as a whole is ASCII in the common case (ASCII values, lengths
    // below 128, zero padding): then every value is UTF-8 and every index a
    // char boundary. Otherwise each value is checked and copied alone.
    let text = if raw.is_ascii() {
        // SAFETY: ASCII bytes are UTF-8 (checked just above, on the private
        // copy, which nothing changes while it is borrowed).
        unsafe { std::str::from_utf8_unchecked(raw) }
    } else {
        sc.text.clear();
        for span in sc.spans.iter_mut() {
            let v = std::str::from_utf8(&raw[span.0..span.1]).ok()?;
            let at = sc.text.len();
            sc.text.push_str(v);
            *span = (at, sc.text.len());
        }
        &sc.text
    };
    Some(LabelValues {
        text,
        spans: &sc.spans,
    })
}

/// What a reader did with one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Emitted {
    /// Its point(s) were written.
    Written,
    /// Skipped: the series changed under the read.
    Skipped,
    /// Skipped: its cells are damaged (counted as a bad record).
    Bad,
}

/// Buffers the readers reuse from series to series.
#[derive(Default)]
pub(crate) struct Scratch {
    pub(crate) buckets: Vec<(f64, u64)>,
    pub(crate) quantiles: Vec<(f64, f64)>,
    pub(crate) counts: Vec<u64>,
    pub(crate) qout: Vec<f64>,
    /// A native histogram's populated positive and negative buckets.
    pub(crate) native_pos: Vec<(i32, u64)>,
    pub(crate) native_neg: Vec<(i32, u64)>,
    /// The series' exemplars (`super::exemplar::read`).
    pub(crate) exemplars: Vec<crate::encoding::Exemplar>,
}

/// Everything a reader needs besides the cells.
pub(crate) struct Ctx<'e, 'l> {
    pub(crate) shape: &'e Shape,
    pub(crate) desc: &'e FamilyDesc<'e>,
    pub(crate) labels: &'e [(&'l str, &'l str)],
    pub(crate) enc: &'e mut dyn Encoder,
    pub(crate) sc: &'e mut Scratch,
}

/// The one point a counter or gauge series (not of mode `all`) writes when
/// its reader has nothing else to write (no exemplar), read as its reader
/// reads it: for the render's kept-text path, which writes it from the
/// series' kept text. `None` for the other types, or when the reader must
/// decide (then [`emit`]).
#[inline(always)]
pub(crate) fn plain_point(
    view: &SeriesCells<'_>,
    shape: &Shape,
) -> Option<crate::encoding::Point<'static>> {
    match shape.kind {
        MetricType::Counter => super::counter::plain_point(view, shape),
        MetricType::Gauge => super::gauge::plain_point(view, shape),
        _ => None,
    }
}

/// Read one series with its type's reader and write its point(s).
pub(crate) fn emit(view: &SeriesCells<'_>, cx: Ctx<'_, '_>) -> Result<Emitted> {
    match cx.shape.kind {
        MetricType::Counter => super::counter::emit(view, cx),
        MetricType::Gauge => super::gauge::emit(view, cx),
        MetricType::Histogram => super::histogram::emit(view, cx),
        MetricType::Summary => super::summary::emit(view, cx),
        MetricType::Info => super::info::emit(view, cx),
        MetricType::StateSet => super::stateset::emit(view, cx),
        MetricType::NativeHistogram => super::native::emit(view, cx),
    }
}

#[cfg(test)]
mod tests {
    use crate::{Area, AreaOptions, Format, Opts};

    /// Values whose record bytes are not ASCII as a whole (a length of 128
    /// bytes or more has a byte >= 0x80, or a value is not ASCII) read
    /// through the value-by-value path, next to ASCII ones read at once.
    #[test]
    fn label_values_long_and_non_ascii() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let fam = area
            .registry()
            .counter(Opts::new("c", "C.").labels(&["a", "b"]))
            .unwrap();
        let long = "x".repeat(200);
        let cases = [("plain", "1"), ("größe ✓", "日本"), (long.as_str(), "é")];
        for (a, b) in cases {
            fam.labels(&[a, b]).unwrap().inc();
        }
        let text = area.render_to_string(Format::Prometheus).unwrap();
        for (a, b) in cases {
            let line = format!("c_total{{a=\"{a}\",b=\"{b}\"}} 1\n");
            assert!(text.contains(&line), "{line} not in {text}");
        }
    }

    /// A series with more labels than the render keeps on the stack (8)
    /// renders them all, in family order.
    #[test]
    fn many_labels() {
        let area = Area::anonymous(&AreaOptions::with_pages(64)).unwrap();
        let names: Vec<String> = (0..10).map(|i| format!("l{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let fam = area
            .registry()
            .counter(Opts::new("m", "M.").labels(&names))
            .unwrap();
        let values: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        fam.labels(&values).unwrap().inc();
        let text = area.render_to_string(Format::Prometheus).unwrap();
        let pairs: Vec<String> = (0..10).map(|i| format!("l{i}=\"v{i}\"")).collect();
        let line = format!("m_total{{{}}} 1\n", pairs.join(","));
        assert!(text.contains(&line), "{line} not in {text}");
    }
}
