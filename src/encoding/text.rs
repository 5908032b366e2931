//! Prometheus text exposition format 0.0.4.
//!
//! Also holds the line buffer and label/escaping helpers shared with the
//! OpenMetrics encoder.

use std::io::{self, Write};

use super::number::{write_canonical_f64, write_f64, write_u64};
use super::{Encoder, FamilyDesc, Labels, MetricType, Point};

/// Flush the line buffer to the writer once it holds more than this.
pub(super) const FLUSH_AT: usize = 32 * 1024;

/// A reusable line buffer in front of a writer, or the caller's vector
/// itself ([`LineBuf::whole`]).
pub(super) struct LineBuf<W: Write> {
    out: W,
    pub(super) buf: Vec<u8>,
    /// The buffer is the output: never handed to `out`.
    whole: bool,
}

impl<W: Write> LineBuf<W> {
    pub(super) fn new(out: W) -> Self {
        LineBuf {
            out,
            buf: Vec::with_capacity(4096),
            whole: false,
        }
    }

    /// A line buffer that is `buf` itself (its bytes kept, the text
    /// appended), never drained into `out`: the whole text is taken back
    /// with [`into_buffer`](LineBuf::into_buffer), not copied.
    pub(super) fn whole(out: W, buf: Vec<u8>) -> Self {
        LineBuf {
            out,
            buf,
            whole: true,
        }
    }

    /// The buffer (all the text of a [`whole`](LineBuf::whole) one).
    pub(super) fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    /// Hand the buffer to the writer if it is past the threshold.
    #[inline]
    pub(super) fn maybe_flush(&mut self) -> io::Result<()> {
        if self.buf.len() > FLUSH_AT && !self.whole {
            self.drain()?;
        }
        Ok(())
    }

    fn drain(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let r = self.out.write_all(&self.buf);
            self.buf.clear();
            r?;
        }
        Ok(())
    }

    /// Write everything out and flush the writer (a
    /// [`whole`](LineBuf::whole) buffer keeps its text).
    pub(super) fn finish(&mut self) -> io::Result<()> {
        if self.whole {
            return Ok(());
        }
        self.drain()?;
        self.out.flush()
    }
}

/// Append `s`, escaping `\` as `\\`, newline as `\n` and, if `quote`, `"` as `\"`.
#[inline]
pub(super) fn push_escaped(buf: &mut Vec<u8>, s: &str, quote: bool) {
    let bytes = s.as_bytes();
    if needs_escaping(bytes, quote) {
        push_escaped_slow(buf, bytes, quote);
    } else {
        buf.extend_from_slice(bytes);
    }
}

/// [`push_escaped`] of bytes that need it: out of line, so that the common
/// case is a scan and a copy where it is called.
#[cold]
#[inline(never)]
fn push_escaped_slow(buf: &mut Vec<u8>, bytes: &[u8], quote: bool) {
    let needs = |b: u8| b == b'\\' || b == b'\n' || (quote && b == b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if needs(b) {
            buf.extend_from_slice(&bytes[start..i]);
            buf.extend_from_slice(match b {
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                _ => b"\\\"",
            });
            start = i + 1;
        }
    }
    buf.extend_from_slice(&bytes[start..]);
}

/// Whether a byte of `bytes` is `\`, a newline or, if `quote`, `"`: eight
/// bytes at a time (the last eight overlap the ones before), byte by byte
/// under eight.
#[inline]
fn needs_escaping(bytes: &[u8], quote: bool) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Without `quote`, the third byte looked for is the backslash again.
    let third = if quote { b'"' } else { b'\\' };
    // Exact test for a byte of `w` equal to `b`: a zero byte of `w ^ b..b`.
    let has = |w: u64, b: u8| {
        let x = w ^ (ONES * u64::from(b));
        x.wrapping_sub(ONES) & !x & HIGH != 0
    };
    let word = |c: &[u8]| {
        let w = <[u8; 8]>::try_from(c).map_or(0, u64::from_le_bytes);
        has(w, b'\\') | has(w, b'\n') | has(w, third)
    };
    if bytes.len() < 8 {
        return bytes
            .iter()
            .any(|&b| b == b'\\' || b == b'\n' || b == third);
    }
    bytes.chunks_exact(8).any(word) || word(&bytes[bytes.len() - 8..])
}

/// The label appended after a series' own labels.
#[derive(Clone, Copy)]
pub(super) enum Extra<'a> {
    /// None.
    No,
    /// `le`/`quantile` with a number, in canonical form (`1.0`) in both formats:
    /// the form client_python writes in 0.0.4 too, so series keep their
    /// identity for users moving from it (and Prometheus 3 stores this form).
    Num(&'a str, f64),
    /// A string-valued label (the StateSet state).
    Str(&'a str, &'a str),
}

/// Append `name` `suffix` `{labels,extra}` and the separating space.
pub(super) fn push_series(
    buf: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    labels: Labels<'_>,
    extra: Extra<'_>,
) {
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(suffix.as_bytes());
    if labels.is_empty() && matches!(extra, Extra::No) {
        buf.push(b' ');
        return;
    }
    buf.push(b'{');
    let mut first = true;
    for &(k, v) in labels {
        if !first {
            buf.push(b',');
        }
        first = false;
        buf.extend_from_slice(k.as_bytes());
        buf.extend_from_slice(b"=\"");
        push_escaped(buf, v, true);
        buf.push(b'"');
    }
    match extra {
        Extra::No => {}
        Extra::Num(k, v) => {
            if !first {
                buf.push(b',');
            }
            buf.extend_from_slice(k.as_bytes());
            buf.extend_from_slice(b"=\"");
            write_canonical_f64(buf, v);
            buf.push(b'"');
        }
        Extra::Str(k, v) => {
            if !first {
                buf.push(b',');
            }
            buf.extend_from_slice(k.as_bytes());
            buf.extend_from_slice(b"=\"");
            push_escaped(buf, v, true);
            buf.push(b'"');
        }
    }
    buf.extend_from_slice(b"} ");
}

/// Append the label block of a series: `{k="v",...} ` with every value
/// escaped, or a space alone without labels: what [`push_series`] writes
/// after the name without an extra label, the same in both text formats.
pub(crate) fn encode_label_block(buf: &mut Vec<u8>, labels: Labels<'_>) {
    for (i, &(k, v)) in labels.iter().enumerate() {
        buf.push(if i == 0 { b'{' } else { b',' });
        buf.extend_from_slice(k.as_bytes());
        buf.extend_from_slice(b"=\"");
        push_escaped(buf, v, true);
        buf.push(b'"');
    }
    buf.extend_from_slice(if labels.is_empty() { b" " } else { b"} " });
}

/// The sample names of the current family's counter or gauge lines
/// (`name_total` and `name_created`, or `name`), made once per family.
#[derive(Default)]
pub(super) struct Heads {
    bytes: Vec<u8>,
    split: usize,
    /// The family they were made for: its name's address and kind.
    of: Option<(usize, MetricType)>,
}

impl Heads {
    /// Make the names of `family`: its name followed by `first`, and by `second`.
    pub(super) fn set(&mut self, family: &FamilyDesc<'_>, first: &str, second: &str) {
        let name = family.name.as_bytes();
        self.bytes.clear();
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(first.as_bytes());
        self.split = self.bytes.len();
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(second.as_bytes());
        self.of = Some((family.name.as_ptr() as usize, family.kind));
    }

    /// The two names, if made for `family` (the one the last `family` call
    /// started, as the points that follow it are).
    #[inline]
    pub(super) fn get(&self, family: &FamilyDesc<'_>) -> Option<(&[u8], &[u8])> {
        if self.of != Some((family.name.as_ptr() as usize, family.kind)) {
            return None;
        }
        Some(self.bytes.split_at(self.split))
    }
}

/// A sample line's series, its labels already encoded by
/// [`encode_label_block`]: `head` (the sample name) and `block`, with room
/// reserved for the value and newline after them. Byte for byte what
/// `push_series` writes without an extra label.
#[inline]
pub(super) fn push_series_block(buf: &mut Vec<u8>, head: &[u8], block: &[u8]) {
    // The value is at most 24 bytes: the copies and the value reserve nothing.
    buf.reserve(head.len() + block.len() + 32);
    put(buf, head);
    put(buf, block);
}

/// Append `s`: a slice of up to 64 bytes (the pieces of a sample line) by
/// a few overlapping word copies where it is called, a longer one by
/// `extend_from_slice` (a call to `memcpy`, which is slower for a few bytes).
#[inline(always)]
pub(super) fn put(buf: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if n > 64 {
        buf.extend_from_slice(s);
        return;
    }
    buf.reserve(n);
    let at = buf.len();
    // SAFETY: `n <= 64` bytes of capacity are free from `at` (reserved just
    // above); `copy_small` writes exactly those, and the length then covers
    // only bytes written.
    unsafe {
        copy_small(buf.as_mut_ptr().add(at), s);
        buf.set_len(at + n);
    }
}

/// Copy `s` (at most 64 bytes) to `dst` by a few overlapping word copies.
///
/// # Safety
///
/// `dst` is valid for writes of `s.len() <= 64` bytes, apart from `s`.
#[inline(always)]
unsafe fn copy_small(dst: *mut u8, s: &[u8]) {
    let n = s.len();
    debug_assert!(n <= 64);
    let src = s.as_ptr();
    // SAFETY: every copy below reads inside `s` (offsets and widths within
    // `0..n` by the branch it is in) and writes the same range of the `n`
    // bytes at `dst` (valid by the caller's contract), and together they
    // cover all `n`.
    unsafe {
        let copy16 = |o: usize| {
            dst.add(o)
                .cast::<u128>()
                .write_unaligned(src.add(o).cast::<u128>().read_unaligned())
        };
        if n >= 32 {
            copy16(0);
            copy16(16);
            copy16(n - 32);
            copy16(n - 16);
        } else if n >= 16 {
            copy16(0);
            copy16(n - 16);
        } else if n >= 8 {
            let w = |o: usize| {
                dst.add(o)
                    .cast::<u64>()
                    .write_unaligned(src.add(o).cast::<u64>().read_unaligned())
            };
            w(0);
            w(n - 8);
        } else if n >= 4 {
            let w = |o: usize| {
                dst.add(o)
                    .cast::<u32>()
                    .write_unaligned(src.add(o).cast::<u32>().read_unaligned())
            };
            w(0);
            w(n - 4);
        } else if n > 0 {
            *dst = *src;
            *dst.add(n / 2) = *src.add(n / 2);
            *dst.add(n - 1) = *src.add(n - 1);
        }
    }
}

/// [`kept_line`] of a value other than the kept one (or of a long head or
/// label block), out of line.
#[inline(never)]
fn kept_line_new(buf: &mut Vec<u8>, head: &[u8], text: &mut SeriesText<'_>, value: f64) {
    push_series_block(buf, head, text.labels);
    text.value.write(buf, value);
    buf.push(b'\n');
}

/// Append a counter or gauge sample line from its kept text: `head` (the
/// sample name), the label block, the value (from its kept text if it is
/// the same number), a newline. Byte for byte what [`push_series_block`],
/// [`write_f64`] and the newline write.
#[inline(always)]
pub(super) fn kept_line(buf: &mut Vec<u8>, head: &[u8], text: &mut SeriesText<'_>, value: f64) {
    let (block, kept) = (text.labels, &*text.value);
    let short = head.len() <= 64 && block.len() <= 64;
    if !(short && kept.len > 0 && kept.bits == value.to_bits()) {
        kept_line_new(buf, head, text, value);
        return;
    }
    let (h, b, v) = (head.len(), block.len(), usize::from(kept.len));
    buf.reserve(h + b + CREATED_TEXT + 1);
    let at = buf.len();
    // SAFETY: `h + b + CREATED_TEXT + 1` bytes of capacity are free from
    // `at` (reserved just above): the head and the block (each at most 64
    // bytes, checked above) are copied to the first `h + b`, the kept
    // value's whole array stored after them (`v <= CREATED_TEXT` of its
    // bytes are its text), the newline after the text; the length then
    // covers only those `h + b + v + 1` bytes, all written.
    unsafe {
        let dst = buf.as_mut_ptr().add(at);
        copy_small(dst, head);
        copy_small(dst.add(h), block);
        dst.add(h + b)
            .cast::<[u8; CREATED_TEXT]>()
            .write_unaligned(kept.text);
        *dst.add(h + b + v) = b'\n';
        buf.set_len(at + h + b + v + 1);
    }
}

/// What the text encoders keep of one series across renders (see
/// [`SeriesText`]): the text of a number last written for it (its value,
/// its `_created` value), written again from it while the number is the
/// same.
#[derive(Clone, Copy, Default)]
pub struct CreatedText {
    /// The bits of the `f64` written, valid when `len > 0`.
    bits: u64,
    len: u8,
    text: [u8; CREATED_TEXT],
}

/// Room for the text of a `_created` value: a Unix timestamp with its
/// shortest fraction (`1764694800.1234567`, 18 bytes), or any other
/// `f64` in Go's `%g` layout (at most 24 bytes: `-1.2345678901234567e-308`).
const CREATED_TEXT: usize = 24;

impl CreatedText {
    /// Append `t` as [`write_f64`] does, from the text kept for the same
    /// value, or formatting it (and keeping its text).
    #[inline]
    pub(super) fn write(&mut self, buf: &mut Vec<u8>, t: f64) {
        if self.len > 0 && self.bits == t.to_bits() {
            // The whole array is stored, the length covers the text.
            buf.reserve(CREATED_TEXT);
            let at = buf.len();
            // SAFETY: `CREATED_TEXT` bytes of capacity are free from `at`
            // (reserved just above): the unaligned store writes exactly
            // those, and the length then covers only the first `len <=
            // CREATED_TEXT` of them, which it initialized.
            unsafe {
                buf.as_mut_ptr()
                    .add(at)
                    .cast::<[u8; CREATED_TEXT]>()
                    .write_unaligned(self.text);
                buf.set_len(at + usize::from(self.len));
            }
            return;
        }
        self.write_new(buf, t);
    }

    /// [`write`](CreatedText::write) of a number other than the kept one.
    #[inline(never)]
    fn write_new(&mut self, buf: &mut Vec<u8>, t: f64) {
        let at = buf.len();
        write_f64(buf, t);
        let text = &buf[at..];
        if text.len() <= CREATED_TEXT {
            self.text[..text.len()].copy_from_slice(text);
            self.len = text.len() as u8;
            self.bits = t.to_bits();
        } else {
            self.len = 0;
        }
    }
}

/// The text of one series the render keeps from one render to the next
/// (its labels never change while it lives): its label block, encoded once
/// by `encode_label_block`, and the text of its last value and `_created`.
pub struct SeriesText<'a> {
    /// The label block (`{k="v",...`, or empty).
    pub labels: &'a [u8],
    /// The last value written and its text.
    pub value: &'a mut CreatedText,
    /// The last `_created` value written and its text.
    pub created: &'a mut CreatedText,
}

/// The text of series that renders keep from one render to the next: per
/// family (by its record's offset), its series' entries in area order (by
/// record offset), each for one generation of its record (a series' labels
/// never change while it lives, and a record reused is of a new
/// generation). Process-local, one per area. A render of a family keeps
/// the entries of the series it wrote and drops the others; a render of
/// the whole area drops the families it did not render. Memory follows the
/// series rendered.
#[derive(Default)]
pub(crate) struct SeriesTextCache {
    families: std::collections::HashMap<usize, FamilyText>,
    /// The current render's number.
    epoch: u64,
}

/// One family's kept series, in area order.
#[derive(Default)]
struct FamilyText {
    series: Vec<CachedSeries>,
    /// The last render that rendered the family.
    epoch: u64,
}

/// One series' kept text.
pub(crate) struct CachedSeries {
    /// Its record's offset and generation.
    off: usize,
    gen: u64,
    /// The label block ([`encode_label_block`]).
    block: Box<[u8]>,
    /// The last value written and its text.
    value: CreatedText,
    /// The last `_created` value written and its text.
    created: CreatedText,
}

impl CachedSeries {
    /// The text of the series for [`Encoder::point_text`].
    pub(crate) fn text(&mut self) -> SeriesText<'_> {
        SeriesText {
            labels: &self.block,
            value: &mut self.value,
            created: &mut self.created,
        }
    }
}

impl SeriesTextCache {
    /// Start a render.
    pub(crate) fn begin(&mut self) {
        self.epoch += 1;
    }

    /// Start writing the family at `family`: its entries are looked up in
    /// area order ([`KeptFamily::take`]).
    pub(crate) fn family(&mut self, family: usize) -> KeptFamily<'_> {
        let f = self.families.entry(family).or_default();
        f.epoch = self.epoch;
        KeptFamily {
            family: f,
            pos: 0,
            moved: None,
        }
    }

    /// End a render: drop the families it did not render if it rendered
    /// the whole area.
    pub(crate) fn end(&mut self, whole_area: bool) {
        if whole_area {
            let epoch = self.epoch;
            self.families.retain(|_, f| f.epoch == epoch);
        }
    }

    /// Series kept of the family at `family` (by the last render of it).
    pub(crate) fn series_of(&self, family: usize) -> usize {
        self.families.get(&family).map_or(0, |f| f.series.len())
    }

    /// Series kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.families.values().map(|f| f.series.len()).sum()
    }
}

/// The kept series of one family while it is written. While its series
/// are those of the previous render, in the same order, each is used where
/// it is (`pos`: the entries before it are this render's). At the first
/// that differs (a series added, removed or of a new generation), the
/// entries after `pos` are moved one by one to this render's list as their
/// series are written, the others dropped.
pub(crate) struct KeptFamily<'a> {
    family: &'a mut FamilyText,
    pos: usize,
    /// The previous render's entries not yet looked at, and this render's.
    moved: Option<(std::vec::IntoIter<CachedSeries>, Vec<CachedSeries>)>,
}

impl KeptFamily<'_> {
    /// Make this render's entry of the series at `off` the kept one, if it
    /// is of generation `gen` (then [`last`](KeptFamily::last)); `false` if
    /// none is kept for it. Series are asked for in area order.
    #[inline]
    pub(crate) fn take(&mut self, off: usize, gen: u64) -> bool {
        if self.moved.is_none() {
            if let Some(e) = self.family.series.get(self.pos) {
                if e.off == off && e.gen == gen {
                    self.pos += 1;
                    return true;
                }
            }
            self.start_moving();
        }
        let Some((old, new)) = self.moved.as_mut() else {
            return false;
        };
        // Entries of series before this one were not written: dropped.
        while old.as_slice().first().is_some_and(|e| e.off < off) {
            old.next();
        }
        let kept = match old.as_slice().first() {
            Some(e) if e.off == off => old.next().filter(|e| e.gen == gen),
            _ => None,
        };
        kept.map(|e| new.push(e)).is_some()
    }

    /// [`take`](KeptFamily::take), and the entry if one is kept.
    #[inline]
    pub(crate) fn take_entry(&mut self, off: usize, gen: u64) -> Option<&mut CachedSeries> {
        let pos = self.pos;
        let here = |e: &CachedSeries| e.off == off && e.gen == gen;
        if self.moved.is_none() && self.family.series.get(pos).is_some_and(here) {
            self.pos += 1;
            return self.family.series.get_mut(pos);
        }
        if self.take(off, gen) {
            self.last()
        } else {
            None
        }
    }

    /// Stop using entries where they are: the ones before `pos` are this
    /// render's, the rest is moved from.
    #[cold]
    fn start_moving(&mut self) {
        let mut this = std::mem::take(&mut self.family.series);
        let rest = this.split_off(self.pos.min(this.len()));
        self.moved = Some((rest.into_iter(), this));
    }

    /// Keep the series at `off` (of generation `gen`) with its label pairs,
    /// after [`take`](KeptFamily::take) found none.
    pub(crate) fn insert(&mut self, off: usize, gen: u64, labels: Labels<'_>) {
        if self.moved.is_none() {
            self.start_moving();
        }
        let mut block = Vec::new();
        encode_label_block(&mut block, labels);
        if let Some((_, new)) = self.moved.as_mut() {
            new.push(CachedSeries {
                off,
                gen,
                block: block.into_boxed_slice(),
                value: CreatedText::default(),
                created: CreatedText::default(),
            });
        }
    }

    /// The entry taken or inserted last.
    #[inline]
    pub(crate) fn last(&mut self) -> Option<&mut CachedSeries> {
        match self.moved.as_mut() {
            None => self
                .pos
                .checked_sub(1)
                .and_then(|i| self.family.series.get_mut(i)),
            Some((_, new)) => new.last_mut(),
        }
    }

    /// Put this render's entries into the cache (the series not written
    /// are dropped).
    pub(crate) fn finish(self) {
        match self.moved {
            None => self.family.series.truncate(self.pos),
            Some((_, new)) => self.family.series = new,
        }
    }
}

/// The lines of an info or state-set point: the same in both formats (only
/// their `# TYPE` lines differ).
pub(super) fn info_or_states(buf: &mut Vec<u8>, name: &str, labels: Labels<'_>, point: &Point<'_>) {
    match point {
        Point::Info => line_u64(buf, name, "_info", labels, Extra::No, 1),
        Point::StateSet { states } => {
            for &(state, set) in states.iter() {
                line_u64(
                    buf,
                    name,
                    "",
                    labels,
                    Extra::Str(name, state),
                    u64::from(set),
                );
            }
        }
        _ => {}
    }
}

/// Append a float sample line: series, value, newline.
pub(super) fn line_f64(
    buf: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    labels: Labels<'_>,
    extra: Extra<'_>,
    v: f64,
) {
    push_series(buf, name, suffix, labels, extra);
    write_f64(buf, v);
    buf.push(b'\n');
}

/// Append an integer sample line: series, value, newline.
pub(super) fn line_u64(
    buf: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    labels: Labels<'_>,
    extra: Extra<'_>,
    v: u64,
) {
    push_series(buf, name, suffix, labels, extra);
    write_u64(buf, v);
    buf.push(b'\n');
}

/// Encoder for the Prometheus text format, version 0.0.4.
///
/// Counters are exposed as `name_total` (HELP, TYPE and samples), info
/// metrics as the gauge `name_info`, state sets as a gauge with one sample per
/// state. Units and `_created` are not part of this format and are left out.
/// Output is buffered; call [`Encoder::finish`] to write the rest and flush.
pub struct TextEncoder<W: Write> {
    lb: LineBuf<W>,
    heads: Heads,
}

impl<W: Write> TextEncoder<W> {
    /// Make an encoder writing to `out`.
    pub fn new(out: W) -> Self {
        TextEncoder {
            lb: LineBuf::new(out),
            heads: Heads::default(),
        }
    }
}

impl TextEncoder<io::Sink> {
    /// An encoder appending to `buf` itself (see [`LineBuf::whole`]).
    pub(super) fn into_vec(buf: Vec<u8>) -> Self {
        TextEncoder {
            lb: LineBuf::whole(io::sink(), buf),
            heads: Heads::default(),
        }
    }

    /// The text (after `buf`'s bytes).
    pub(super) fn into_buffer(self) -> Vec<u8> {
        self.lb.into_buffer()
    }
}

/// The sample/family name suffix and the TYPE word used in 0.0.4.
fn text_family(kind: super::MetricType) -> (&'static str, &'static str) {
    use super::MetricType as T;
    match kind {
        T::Counter => ("_total", "counter"),
        T::Gauge => ("", "gauge"),
        T::Histogram | T::NativeHistogram => ("", "histogram"),
        T::Summary => ("", "summary"),
        T::Info => ("_info", "gauge"),
        T::StateSet => ("", "gauge"),
    }
}

impl<W: Write> Encoder for TextEncoder<W> {
    fn family(&mut self, family: &FamilyDesc<'_>) -> io::Result<()> {
        let (suffix, ty) = text_family(family.kind);
        let buf = &mut self.lb.buf;
        if !family.help.is_empty() {
            buf.extend_from_slice(b"# HELP ");
            buf.extend_from_slice(family.name.as_bytes());
            buf.extend_from_slice(suffix.as_bytes());
            buf.push(b' ');
            push_escaped(buf, family.help, false);
            buf.push(b'\n');
        }
        buf.extend_from_slice(b"# TYPE ");
        buf.extend_from_slice(family.name.as_bytes());
        buf.extend_from_slice(suffix.as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(ty.as_bytes());
        buf.push(b'\n');
        self.heads.set(family, suffix, "");
        self.lb.maybe_flush()
    }

    fn point(
        &mut self,
        family: &FamilyDesc<'_>,
        labels: Labels<'_>,
        point: &Point<'_>,
    ) -> io::Result<()> {
        let name = family.name;
        let buf = &mut self.lb.buf;
        let mut inf = [(0.0, 0)];
        match point.for_text(&mut inf) {
            Point::Counter { value, .. } => {
                line_f64(buf, name, "_total", labels, Extra::No, value);
            }
            Point::Gauge { value } => {
                line_f64(buf, name, "", labels, Extra::No, value);
            }
            Point::Histogram { buckets, sum, .. } => {
                for &(le, n) in buckets {
                    line_u64(buf, name, "_bucket", labels, Extra::Num("le", le), n);
                }
                line_f64(buf, name, "_sum", labels, Extra::No, sum);
                let count = super::histogram_count(buckets);
                line_u64(buf, name, "_count", labels, Extra::No, count);
            }
            Point::Summary {
                quantiles,
                count,
                sum,
                ..
            } => {
                for &(q, v) in quantiles {
                    line_f64(buf, name, "", labels, Extra::Num("quantile", q), v);
                }
                line_f64(buf, name, "_sum", labels, Extra::No, sum);
                line_u64(buf, name, "_count", labels, Extra::No, count);
            }
            Point::Info | Point::StateSet { .. } => info_or_states(buf, name, labels, point),
            // Written as the classic histogram `for_text` made of it.
            Point::NativeHistogram { .. } => {}
        }
        self.lb.maybe_flush()
    }

    fn point_text(
        &mut self,
        family: &FamilyDesc<'_>,
        mut text: SeriesText<'_>,
        point: &Point<'_>,
    ) -> io::Result<bool> {
        let Some((head, _)) = self.heads.get(family) else {
            return Ok(false);
        };
        let buf = &mut self.lb.buf;
        match (point, family.kind) {
            // Text 0.0.4 has no `_created`; the head is `name_total` for a
            // counter, `name` for a gauge.
            (&Point::Counter { value, .. }, MetricType::Counter)
            | (&Point::Gauge { value }, MetricType::Gauge) => {
                kept_line(buf, head, &mut text, value);
            }
            _ => return Ok(false),
        }
        self.lb.maybe_flush().map(|()| true)
    }

    fn keeps_series_text(&self) -> bool {
        true
    }

    fn finish(&mut self) -> io::Result<()> {
        self.lb.finish()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::{encoder, Encoder, FamilyDesc, Format, MetricType, Point};
    use super::*;

    /// Run `f` against a fresh encoder for `format` and return the text.
    pub(in super::super) fn render<F>(format: Format, f: F) -> String
    where
        F: FnOnce(&mut dyn Encoder),
    {
        let mut out = Vec::new();
        {
            let mut enc = encoder(format, &mut out);
            f(&mut *enc);
            enc.finish().unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    /// One family with its series, for the shared golden fixtures.
    pub(in super::super) type Series<'a> = (Vec<(&'a str, &'a str)>, Point<'a>);

    /// Encode a list of families and their series.
    pub(in super::super) fn encode_all(
        enc: &mut dyn Encoder,
        fams: &[(FamilyDesc<'_>, Vec<Series<'_>>)],
    ) {
        for (fam, series) in fams {
            enc.family(fam).unwrap();
            for (labels, p) in series {
                enc.point(fam, labels, p).unwrap();
            }
        }
    }

    /// Families in name order, as the registry hands them out.
    fn sorted<'a>(
        mut v: Vec<(FamilyDesc<'a>, Vec<Series<'a>>)>,
    ) -> Vec<(FamilyDesc<'a>, Vec<Series<'a>>)> {
        v.sort_by_key(|f| f.0.name);
        v
    }

    /// Escaping fixture: nasty label values and help texts.
    pub(in super::super) fn escaping_fixture() -> Vec<(FamilyDesc<'static>, Vec<Series<'static>>)> {
        sorted(vec![
            (
                FamilyDesc {
                    name: "esc_requests",
                    help: "Back\\slash, \"quotes\" and a\nnewline; UTF-8: größe ✓",
                    unit: "",
                    kind: MetricType::Counter,
                },
                vec![
                    (
                        vec![("path", "C:\\dir\\file")],
                        Point::Counter {
                            value: 1.0,
                            created: Some(1.5),
                        },
                    ),
                    (
                        vec![("path", "say \"hi\"")],
                        Point::Counter {
                            value: 2.0,
                            created: None,
                        },
                    ),
                    (
                        vec![("path", "line1\nline2")],
                        Point::Counter {
                            value: 3.0,
                            created: None,
                        },
                    ),
                    (
                        vec![("path", "ünïcödé ✓ 日本")],
                        Point::Counter {
                            value: 4.0,
                            created: None,
                        },
                    ),
                    (
                        vec![("path", "")],
                        Point::Counter {
                            value: 5.0,
                            created: None,
                        },
                    ),
                    (
                        vec![("path", "\\\"\n\\n")],
                        Point::Counter {
                            value: 6.0,
                            created: None,
                        },
                    ),
                    (
                        vec![("path", "{},=# \t")],
                        Point::Counter {
                            value: 7.0,
                            created: None,
                        },
                    ),
                ],
            ),
            (
                FamilyDesc {
                    name: "esc_plain",
                    help: "Plain.",
                    unit: "",
                    kind: MetricType::Gauge,
                },
                vec![(vec![("a", "x"), ("b", "")], Point::Gauge { value: 0.0 })],
            ),
            (
                FamilyDesc {
                    name: "esc_state",
                    help: "A \\ state",
                    unit: "",
                    kind: MetricType::StateSet,
                },
                vec![(
                    vec![("q", "\"")],
                    Point::StateSet {
                        states: &[("a\\b", true), ("c\"d", false), ("e\nf", false)],
                    },
                )],
            ),
        ])
    }

    /// Numbers fixture: gauges with special values, buckets with odd bounds.
    pub(in super::super) fn numbers_fixture() -> Vec<(FamilyDesc<'static>, Vec<Series<'static>>)> {
        let gauges: &[(&'static str, f64)] = &[
            ("zero", 0.0),
            ("neg_zero", -0.0),
            ("one", 1.0),
            ("tenth", 0.1),
            ("third", 1.0 / 3.0),
            ("e_minus_5", 1e-5),
            ("e_minus_4", 1e-4),
            ("e_minus_10", 1e-10),
            ("int_6", 123456.0),
            ("e6", 1e6),
            ("e21", 1e21),
            ("e22", 1e22),
            ("min_sub", 5e-324),
            ("max", f64::MAX),
            ("min", f64::MIN),
            ("pos_inf", f64::INFINITY),
            ("neg_inf", f64::NEG_INFINITY),
            ("nan", f64::NAN),
        ];
        let series = gauges
            .iter()
            .map(|&(k, v)| (vec![("case", k)], Point::Gauge { value: v }))
            .collect();
        sorted(vec![
            (
                FamilyDesc {
                    name: "num_value",
                    help: "Special values.",
                    unit: "",
                    kind: MetricType::Gauge,
                },
                series,
            ),
            (
                FamilyDesc {
                    name: "num_latency_seconds",
                    help: "Bucket bounds.",
                    unit: "seconds",
                    kind: MetricType::Histogram,
                },
                vec![(
                    vec![],
                    Point::Histogram {
                        buckets: &[
                            (1e-5, 0),
                            (0.0001, 1),
                            (0.1, 2),
                            (1.0, 3),
                            (10.0, 4),
                            (100000.0, 5),
                            (1e6, 6),
                            (f64::INFINITY, u64::MAX),
                        ],
                        sum: 1e21,
                        created: Some(1_700_000_000.25),
                    },
                )],
            ),
            (
                FamilyDesc {
                    name: "num_size_bytes",
                    help: "Quantiles.",
                    unit: "bytes",
                    kind: MetricType::Summary,
                },
                vec![(
                    vec![],
                    Point::Summary {
                        quantiles: &[(0.0, 1.0), (0.5, 2.5), (0.99, 1e6), (1.0, f64::NAN)],
                        count: 18446744073709551615,
                        sum: 123456789.0,
                        created: Some(0.0),
                    },
                )],
            ),
        ])
    }

    /// All types fixture.
    pub(in super::super) fn all_types_fixture() -> Vec<(FamilyDesc<'static>, Vec<Series<'static>>)>
    {
        sorted(vec![
            (
                FamilyDesc {
                    name: "app_build",
                    help: "Build information.",
                    unit: "",
                    kind: MetricType::Info,
                },
                vec![(vec![("version", "1.2.3"), ("revision", "abc")], Point::Info)],
            ),
            (
                FamilyDesc {
                    name: "app_mode",
                    help: "Operating mode.",
                    unit: "",
                    kind: MetricType::StateSet,
                },
                vec![
                    (
                        vec![],
                        Point::StateSet {
                            states: &[("fast", true), ("slow", false)],
                        },
                    ),
                    (
                        vec![("worker", "2")],
                        Point::StateSet {
                            states: &[("fast", false), ("slow", true)],
                        },
                    ),
                ],
            ),
            (
                FamilyDesc {
                    name: "app_requests",
                    help: "Requests served.",
                    unit: "",
                    kind: MetricType::Counter,
                },
                vec![
                    (
                        vec![("code", "200"), ("method", "get")],
                        Point::Counter {
                            value: 1027.0,
                            created: Some(1700000000.0),
                        },
                    ),
                    (
                        vec![("code", "500"), ("method", "post")],
                        Point::Counter {
                            value: 3.0,
                            created: None,
                        },
                    ),
                ],
            ),
            (
                FamilyDesc {
                    name: "app_request_duration_seconds",
                    help: "Request latency.",
                    unit: "seconds",
                    kind: MetricType::Histogram,
                },
                vec![
                    (
                        vec![("method", "get")],
                        Point::Histogram {
                            buckets: &[(0.005, 1), (0.1, 5), (1.0, 9), (f64::INFINITY, 10)],
                            sum: 3.25,
                            created: Some(1700000000.5),
                        },
                    ),
                    (
                        vec![("method", "post")],
                        Point::Histogram {
                            buckets: &[(0.005, 0), (0.1, 0), (1.0, 0), (f64::INFINITY, 0)],
                            sum: 0.0,
                            created: None,
                        },
                    ),
                ],
            ),
            (
                FamilyDesc {
                    name: "app_response_size_bytes",
                    help: "Response sizes.",
                    unit: "bytes",
                    kind: MetricType::Summary,
                },
                vec![
                    (
                        vec![("method", "get")],
                        Point::Summary {
                            quantiles: &[(0.5, 512.0), (0.9, 2048.0), (0.99, 4096.5)],
                            count: 100,
                            sum: 81920.0,
                            created: Some(1700000000.0),
                        },
                    ),
                    (
                        vec![("method", "post")],
                        Point::Summary {
                            quantiles: &[],
                            count: 0,
                            sum: 0.0,
                            created: None,
                        },
                    ),
                    (
                        vec![("method", "put")],
                        Point::Summary {
                            quantiles: &[(0.5, f64::NAN)],
                            count: 0,
                            sum: 0.0,
                            created: None,
                        },
                    ),
                ],
            ),
            (
                FamilyDesc {
                    name: "app_temperature_celsius",
                    help: "Current temperature.",
                    unit: "celsius",
                    kind: MetricType::Gauge,
                },
                vec![
                    (vec![], Point::Gauge { value: -3.5 }),
                    (vec![("room", "b")], Point::Gauge { value: 21.0 }),
                ],
            ),
        ])
    }

    fn text(fams: &[(FamilyDesc<'_>, Vec<Series<'_>>)]) -> String {
        render(Format::Prometheus, |e| encode_all(e, fams))
    }

    /// Compare against a golden file; `UPDATE_GOLDEN=1` rewrites it instead.
    pub(in super::super) fn golden(name: &str, want: &str, got: &str) {
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
            std::fs::write(path, got).unwrap();
            return;
        }
        assert_eq!(
            got, want,
            "golden file tests/golden/{name} differs; got:\n{got}"
        );
    }

    #[test]
    fn golden_escaping() {
        golden(
            "escaping.prom",
            include_str!("../../tests/golden/escaping.prom"),
            &text(&escaping_fixture()),
        );
    }

    #[test]
    fn golden_numbers() {
        golden(
            "numbers.prom",
            include_str!("../../tests/golden/numbers.prom"),
            &text(&numbers_fixture()),
        );
    }

    #[test]
    fn golden_all_types() {
        golden(
            "all_types.prom",
            include_str!("../../tests/golden/all_types.prom"),
            &text(&all_types_fixture()),
        );
    }

    /// The word-at-a-time scan finds every byte to escape, at every
    /// position of every length up to 24, and nothing else.
    #[test]
    fn needs_escaping_at_every_position() {
        for len in 0..24 {
            for at in 0..len {
                for b in [b'\\', b'\n', b'"', b'a', 0, 0x80, 0xff, b'\\' + 1, b'"' - 1] {
                    let mut v = vec![b'x'; len];
                    v[at] = b;
                    let escaped = b == b'\\' || b == b'\n';
                    assert_eq!(needs_escaping(&v, false), escaped, "{v:?}");
                    assert_eq!(needs_escaping(&v, true), escaped || b == b'"', "{v:?}");
                }
            }
            assert!(!needs_escaping(&vec![b'y'; len], true));
        }
    }

    #[test]
    fn escaping_rules() {
        let mut b = Vec::new();
        push_escaped(&mut b, "a\\b\"c\nd", false);
        assert_eq!(b, b"a\\\\b\"c\\nd");
        b.clear();
        push_escaped(&mut b, "a\\b\"c\nd", true);
        assert_eq!(b, b"a\\\\b\\\"c\\nd");
        b.clear();
        push_escaped(&mut b, "plain ✓", true);
        assert_eq!(b, "plain ✓".as_bytes());
    }

    #[test]
    fn counter_and_help() {
        let fam = FamilyDesc {
            name: "x",
            help: "h\\\"\n",
            unit: "seconds",
            kind: MetricType::Counter,
        };
        let got = render(Format::Prometheus, |e| {
            e.family(&fam).unwrap();
            e.point(
                &fam,
                &[],
                &Point::Counter {
                    value: 5.0,
                    created: Some(1.0),
                },
            )
            .unwrap();
        });
        assert_eq!(
            got,
            "# HELP x_total h\\\\\"\\n\n# TYPE x_total counter\nx_total 5\n"
        );
    }

    #[test]
    fn empty_help_is_omitted() {
        let fam = FamilyDesc {
            name: "g",
            help: "",
            unit: "",
            kind: MetricType::Gauge,
        };
        let got = render(Format::Prometheus, |e| {
            e.family(&fam).unwrap();
            e.point(&fam, &[("a", "1")], &Point::Gauge { value: 0.5 })
                .unwrap();
        });
        assert_eq!(got, "# TYPE g gauge\ng{a=\"1\"} 0.5\n");
    }

    #[test]
    fn empty_exposition() {
        let got = render(Format::Prometheus, |_| {});
        assert_eq!(got, "");
    }

    /// A writer that records how many `write` calls reached it.
    struct Counting {
        data: Vec<u8>,
        writes: usize,
        flushed: bool,
    }
    impl Write for Counting {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.writes += 1;
            self.data.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.flushed = true;
            Ok(())
        }
    }

    #[test]
    fn buffers_and_flushes_in_chunks() {
        let mut w = Counting {
            data: Vec::new(),
            writes: 0,
            flushed: false,
        };
        let fam = FamilyDesc {
            name: "g",
            help: "",
            unit: "",
            kind: MetricType::Gauge,
        };
        let n = 10_000;
        {
            let mut e = TextEncoder::new(&mut w);
            e.family(&fam).unwrap();
            for i in 0..n {
                let v = format!("{i}");
                e.point(&fam, &[("i", &v)], &Point::Gauge { value: i as f64 })
                    .unwrap();
            }
            e.finish().unwrap();
        }
        assert!(w.flushed);
        let text = String::from_utf8(w.data).unwrap();
        assert_eq!(text.lines().count(), n + 1);
        assert!(text.ends_with("g{i=\"9999\"} 9999\n"));
        // ~20 bytes per line, 32 KiB chunks: a handful of writes, not thousands.
        assert!(w.writes > 1 && w.writes < 20, "writes = {}", w.writes);
    }

    struct Failing;
    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "gone"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_errors_propagate() {
        let fam = FamilyDesc {
            name: "g",
            help: "",
            unit: "",
            kind: MetricType::Gauge,
        };
        let mut e = TextEncoder::new(Failing);
        e.family(&fam).unwrap();
        e.point(&fam, &[], &Point::Gauge { value: 1.0 }).unwrap();
        assert_eq!(e.finish().unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }
}
