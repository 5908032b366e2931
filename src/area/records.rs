//! Records in the data pages: allocation (under the area lock), commit,
//! and a validating walk that never trusts a length or an offset.
//!
//! A record never crosses a page boundary unless it is larger than a page,
//! in which case it starts on one. So a damaged record costs at most the
//! rest of its page: the walk skips to the next page and counts it.

use std::sync::atomic::Ordering;

use super::format::*;
use super::free::{Classes, HoleTake};
use super::{AreaInner, AreaLockGuard};
use crate::error::{Error, Result};

/// A record header that passed the structural checks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    /// Offset of the record in the area.
    pub off: usize,
    /// `KIND_*`.
    pub kind: u8,
    /// `STATE_*`.
    pub state: u8,
    /// Total length in bytes, header included.
    pub len: usize,
}

/// What a walk found.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WalkEnd {
    /// Where the walk stopped (the cursor, or the first uncommitted record
    /// when `stop_at_writing` was asked for).
    pub end: usize,
    /// Damaged records (or page tails) skipped.
    pub bad: u64,
}

pub(crate) fn tag(kind: u8, state: u8) -> u32 {
    u32::from(kind) | (u32::from(state) << 8)
}

impl AreaInner {
    /// Free the blob an info cell holding `cell` referred to (offset in the
    /// low 32 bits, the blob's generation in the high ones), if it is still
    /// that blob (under the area lock).
    pub(crate) fn free_blob(&self, guard: &AreaLockGuard<'_>, cell: u64) {
        let off = cell as u32 as usize;
        if off != 0
            && self.record_state(off, KIND_BLOB) == Some(STATE_LIVE)
            && self.generation(off) as u32 == (cell >> 32) as u32
        {
            self.free_record(guard, off);
        }
    }

    /// Read and check the record header at `off` (below `limit`).
    fn record_at(&self, off: usize, limit: usize) -> Option<Record> {
        // The tag and the length, with one bounds check.
        let header = self.u32_words(off, RECORD_HEADER)?;
        let t = header[0].load(Ordering::Acquire);
        let len = header[1].load(Ordering::Acquire) as usize;
        let kind = (t & 0xff) as u8;
        let state = ((t >> 8) & 0xff) as u8;
        if !(KIND_FAMILY..=KIND_LAST).contains(&kind)
            || state > STATE_FREE
            || t >> 16 != 0
            || len < RECORD_HEADER
            || len % 8 != 0
            || off.checked_add(len)? > limit
            || (reusable(kind)
                && if state == STATE_FREE {
                    !super::free::hole_shape_ok(off, len)
                } else {
                    len < rec::MIN_LEN || !is_class_size(len)
                })
        {
            return None;
        }
        let in_page = off % PAGE_SIZE;
        if len <= PAGE_SIZE {
            if in_page + len > PAGE_SIZE {
                return None;
            }
        } else if in_page != 0 {
            return None;
        }
        if kind == KIND_PADDING && (off + len) % PAGE_SIZE != 0 {
            return None;
        }
        Some(Record {
            off,
            kind,
            state,
            len,
        })
    }

    /// The record at `off` if it is a LIVE record of `kind` (header checks only).
    pub(crate) fn live_record(&self, off: usize, kind: u8) -> Option<Record> {
        self.record_at(off, self.cursor())
            .filter(|r| r.kind == kind && r.state == STATE_LIVE)
    }

    /// Walk records from `from` to the cursor, calling `f` on each family,
    /// series and blob record (any state). With `stop_at_writing`, stop at
    /// the first record still being written (its writer may be alive).
    pub(crate) fn walk(
        &self,
        from: usize,
        stop_at_writing: bool,
        mut f: impl FnMut(Record),
    ) -> WalkEnd {
        let limit = self.cursor();
        let mut off = from.max(self.data_offset());
        if off % 8 != 0 {
            off = align8(off);
        }
        let mut bad = 0;
        while off + RECORD_HEADER <= limit {
            match self.record_at(off, limit) {
                Some(r) => {
                    if r.state == STATE_WRITING && r.kind != KIND_PADDING && stop_at_writing {
                        return WalkEnd { end: off, bad };
                    }
                    if r.kind != KIND_PADDING {
                        f(r);
                    }
                    off += r.len;
                }
                None => {
                    bad += 1;
                    off = (off / PAGE_SIZE + 1) * PAGE_SIZE;
                }
            }
        }
        WalkEnd { end: limit, bad }
    }

    /// Allocate a zeroed record for `len` bytes of `kind`, in state
    /// WRITING. Call [`commit`](Self::commit) when it is filled in. Series
    /// and blobs get their size class's size (see [`try_alloc`](Self::try_alloc));
    /// if only holes in their grace period would do, this waits for them
    /// under the lock (a few rounds of at most `FREE_GRACE_MS`).
    pub(crate) fn alloc(&self, lock: &AreaLockGuard<'_>, kind: u8, len: usize) -> Result<usize> {
        for _ in 0..3 {
            match self.try_alloc(lock, kind, len)? {
                Alloc::At(off) => return Ok(off),
                Alloc::ReadyAt(ready) => sleep_until_ms(ready),
            }
        }
        match self.try_alloc(lock, kind, len)? {
            Alloc::At(off) => Ok(off),
            Alloc::ReadyAt(_) => Err(self.refuse(size_class(len.max(rec::MIN_LEN)).1)),
        }
    }

    /// Allocate as [`alloc`](Self::alloc), never waiting: families and
    /// larger records from the cursor; series and blobs from a hole of their
    /// own class that is past its grace period, else from the cursor (fresh
    /// space), else by splitting a larger ready hole; if none is ready but
    /// one will be, `ReadyAt` (the caller waits, without the lock if it
    /// can, and asks again); if none would do, after a rebuild of the free
    /// lists (which reclaims what dead holders left and merges neighbouring
    /// holes) the same once more, then `AreaFull`.
    pub(crate) fn try_alloc(
        &self,
        lock: &AreaLockGuard<'_>,
        kind: u8,
        len: usize,
    ) -> Result<Alloc> {
        if !reusable(kind) {
            return self
                .alloc_at_cursor(kind, align8(len.max(RECORD_HEADER)))
                .map(Alloc::At);
        }
        let (_, size) = size_class(len.max(rec::MIN_LEN));
        let own = self.take_hole(lock, size, Classes::Own);
        if let HoleTake::Taken(off) = own {
            return Ok(Alloc::At(self.reuse(off, kind, size)));
        }
        match self.alloc_at_cursor(kind, size) {
            Ok(off) => {
                self.new_generation(off);
                return Ok(Alloc::At(off));
            }
            Err(Error::AreaFull { .. }) => {}
            Err(e) => return Err(e),
        }
        let larger = self.take_hole(lock, size, Classes::Larger);
        if let HoleTake::Taken(off) = larger {
            return Ok(Alloc::At(self.reuse(off, kind, size)));
        }
        let soonest = match (own.ready_at(), larger.ready_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(ready) = soonest {
            if !self.merge_due(size) {
                return Ok(Alloc::ReadyAt(ready));
            }
            // Holes of smaller classes may sit side by side (freed by a
            // phase of smaller records): merged, they may hold this one.
            self.rebuild_free_lists(lock);
            return Ok(match self.take_hole(lock, size, Classes::All) {
                HoleTake::Taken(off) => Alloc::At(self.reuse(off, kind, size)),
                HoleTake::ReadyAt(r) => Alloc::ReadyAt(r),
                HoleTake::Nothing => Alloc::ReadyAt(ready),
            });
        }
        self.rebuild_free_lists(lock);
        match self.take_hole(lock, size, Classes::All) {
            HoleTake::Taken(off) => Ok(Alloc::At(self.reuse(off, kind, size))),
            HoleTake::ReadyAt(ready) => Ok(Alloc::ReadyAt(ready)),
            HoleTake::Nothing => Err(self.refuse(size)),
        }
    }

    /// Whether an allocation of `size` bytes that would wait should first
    /// merge neighbouring holes (a rebuild): when the listed holes hold at
    /// least 4 such records, at most once per `MERGE_EVERY_MS` in this
    /// process (a rebuild walks the area, and makes every process re-walk
    /// its index).
    fn merge_due(&self, size: usize) -> bool {
        static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let free = self.hdr(hdr::FREE_BYTES).load(Ordering::Relaxed);
        let now = crate::process::monotonic_ms();
        let last = LAST.load(Ordering::Relaxed);
        if free < 4 * size as u64 || now < last.saturating_add(MERGE_EVERY_MS) {
            return false;
        }
        LAST.store(now, Ordering::Relaxed);
        true
    }

    /// A refused registration of a record of `size` bytes: counted in
    /// `stat_refused`.
    pub(crate) fn refuse(&self, size: usize) -> Error {
        self.bump(hdr::STAT_REFUSED, 1);
        Error::AreaFull {
            needed: size,
            free: self.len() - self.cursor(),
        }
    }

    /// Turn the hole at `off` (just taken, now WRITING of `size` bytes)
    /// into a record of `kind`, zeroed but for its generation, and log it.
    fn reuse(&self, off: usize, kind: u8, size: usize) -> usize {
        if let Some(t) = self.u32_at(off) {
            // Not FREE any more (and not yet anything a reader uses).
            t.store(tag(kind, STATE_WRITING), Ordering::Release);
        }
        self.log_reuse(off);
        self.zero_bytes(off + rec::GEN + 8, size - rec::GEN - 8);
        off
    }

    fn alloc_at_cursor(&self, kind: u8, len: usize) -> Result<usize> {
        let cursor = self.hdr(hdr::ALLOC_CURSOR).load(Ordering::Acquire) as usize;
        if cursor < self.data_offset() || cursor > self.len() || cursor % 8 != 0 {
            return Err(Error::CorruptArea(format!(
                "allocation cursor {cursor} is outside the data pages"
            )));
        }
        let in_page = cursor % PAGE_SIZE;
        let pad = if in_page == 0 {
            0
        } else if len > PAGE_SIZE || in_page + len > PAGE_SIZE {
            PAGE_SIZE - in_page
        } else {
            0
        };
        let start = cursor + pad;
        // Past the end, or no blocks for the new pages (disk full): refused
        // alike, never a SIGBUS later.
        let fits = start + len <= self.len() && len <= u32::MAX as usize;
        if !fits || !self.reserve_space(cursor, start + len) {
            if !reusable(kind) {
                self.bump(hdr::STAT_REFUSED, 1);
            }
            return Err(Error::AreaFull {
                needed: len,
                free: self.len() - cursor,
            });
        }
        if pad > 0 {
            self.write_header(cursor, tag(KIND_PADDING, STATE_LIVE), pad);
        }
        self.zero_bytes(start, len);
        self.write_header(start, tag(kind, STATE_WRITING), len);
        self.hdr(hdr::ALLOC_CURSOR)
            .store((start + len) as u64, Ordering::Release);
        Ok(start)
    }

    fn write_header(&self, off: usize, t: u32, len: usize) {
        if let (Some(l), Some(tg)) = (self.u32_at(off + 4), self.u32_at(off)) {
            l.store(len as u32, Ordering::Relaxed);
            tg.store(t, Ordering::Release);
        }
    }

    fn zero_bytes(&self, off: usize, len: usize) {
        const ZEROS: [u8; 512] = [0; 512];
        let mut at = off;
        while at < off + len {
            let n = (off + len - at).min(ZEROS.len());
            self.write_bytes(at, &ZEROS[..n]);
            at += n;
        }
    }

    /// Publish a filled-in record.
    pub(crate) fn commit(&self, off: usize, kind: u8) {
        if let Some(t) = self.u32_at(off) {
            t.store(tag(kind, STATE_LIVE), Ordering::Release);
        }
    }

    /// The state of the record at `off` if it is of `kind`.
    pub(crate) fn record_state(&self, off: usize, kind: u8) -> Option<u8> {
        tag_state(self.u32_at(off)?.load(Ordering::Acquire), kind)
    }
}

/// The state in a record's tag word `t` if the record is of `kind` (the
/// one decoder of a tag: `record_state`, `free::SeriesLiveness`).
#[inline(always)]
pub(crate) fn tag_state(t: u32, kind: u8) -> Option<u8> {
    ((t & 0xff) as u8 == kind).then_some(((t >> 8) & 0xff) as u8)
}

/// The least time (ms) between two merges of holes by allocations that
/// would otherwise wait, in one process.
const MERGE_EVERY_MS: u64 = 10_000;

/// What [`AreaInner::try_alloc`] gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alloc {
    /// The record, in state WRITING.
    At(usize),
    /// No room now; a hole that would do is ready at this `monotonic_ms`.
    ReadyAt(u64),
}

/// Sleep until `monotonic_ms` reaches `ready` (at most the grace period).
pub(crate) fn sleep_until_ms(ready: u64) {
    let now = crate::process::monotonic_ms();
    if ready > now {
        let ms = (ready - now).min(super::format::FREE_GRACE_MS);
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Whether records of `kind` are reused (size-classed, with a generation).
pub(crate) fn reusable(kind: u8) -> bool {
    kind == KIND_SERIES || kind == KIND_BLOB || kind == KIND_GAUGE_EXT || kind == KIND_EXEMPLAR
}

/// Reads fields out of one record, bounds-checked against the record.
pub(crate) struct RecordReader<'a> {
    area: &'a AreaInner,
    rec: Record,
    pos: usize,
}

impl<'a> RecordReader<'a> {
    /// Start reading `rec` at relative offset `pos`.
    pub(crate) fn new(area: &'a AreaInner, rec: Record, pos: usize) -> Self {
        RecordReader { area, rec, pos }
    }

    fn take(&mut self, n: usize) -> Option<usize> {
        let at = self.pos;
        if at.checked_add(n)? > self.rec.len {
            return None;
        }
        self.pos += n;
        Some(self.rec.off + at)
    }

    /// Whether everything up to the record's end was read (up to the 8-byte
    /// alignment). Writers size records exactly, so a longer record has a
    /// damaged length that would otherwise hide the records it swallowed.
    pub(crate) fn at_end(&self) -> bool {
        if reusable(self.rec.kind) {
            size_class(align8(self.pos).max(rec::MIN_LEN)).1 == self.rec.len
        } else {
            align8(self.pos) == self.rec.len
        }
    }

    /// A little-endian u32.
    pub(crate) fn u32(&mut self) -> Option<u32> {
        let mut b = [0u8; 4];
        let at = self.take(4)?;
        self.area
            .read_bytes(at, &mut b)
            .then(|| u32::from_le_bytes(b))
    }

    /// A little-endian f64.
    pub(crate) fn f64(&mut self) -> Option<f64> {
        let mut b = [0u8; 8];
        let at = self.take(8)?;
        self.area
            .read_bytes(at, &mut b)
            .then(|| f64::from_le_bytes(b))
    }

    /// A u32-length-prefixed UTF-8 string of at most `max` bytes, appended to `out`.
    pub(crate) fn string_into(&mut self, max: usize, out: &mut String) -> Option<()> {
        let n = self.u32()? as usize;
        if n > max {
            return None;
        }
        let at = self.take(n)?;
        // Read straight into `out`'s bytes (no buffer per string); on bad
        // bytes `out` is given back as it was.
        let mut bytes = std::mem::take(out).into_bytes();
        let start = bytes.len();
        bytes.resize(start + n, 0);
        let read = self.area.read_bytes(at, &mut bytes[start..]);
        if !read {
            bytes.truncate(start);
        }
        // `out` was UTF-8, so the whole is UTF-8 exactly when the new part is.
        match String::from_utf8(bytes) {
            Ok(s) => {
                *out = s;
                read.then_some(())
            }
            Err(e) => {
                let mut bytes = e.into_bytes();
                bytes.truncate(start);
                *out = String::from_utf8(bytes).unwrap_or_default();
                None
            }
        }
    }

    /// A u32-length-prefixed UTF-8 string of at most `max` bytes.
    pub(crate) fn string(&mut self, max: usize) -> Option<String> {
        let mut s = String::new();
        self.string_into(max, &mut s)?;
        Some(s)
    }

    /// Compare the next length-prefixed string with `expected`, consuming
    /// it (copied out a chunk at a time onto the stack: no allocation).
    pub(crate) fn string_eq(&mut self, expected: &str) -> Option<bool> {
        let n = self.u32()? as usize;
        let at = self.take(n)?;
        if n != expected.len() {
            return Some(false);
        }
        let mut chunk = [0u8; 128];
        for (i, want) in expected.as_bytes().chunks(chunk.len()).enumerate() {
            let got = &mut chunk[..want.len()];
            if !self.area.read_bytes(at + i * 128, got) {
                return None;
            }
            if got != want {
                return Some(false);
            }
        }
        Some(true)
    }
}

/// Builds a record's bytes locally before they are copied into the area.
#[derive(Default)]
pub(crate) struct RecordWriter {
    /// The bytes, starting at the record header.
    pub buf: Vec<u8>,
}

impl RecordWriter {
    /// A writer positioned after `fixed` zeroed bytes (header and fixed fields).
    pub(crate) fn with_fixed(fixed: usize) -> Self {
        RecordWriter {
            buf: vec![0; fixed],
        }
    }
    /// Put a u8 at a fixed position.
    pub(crate) fn put_u8(&mut self, at: usize, v: u8) {
        self.buf[at] = v;
    }
    /// Put a u16 at a fixed position.
    pub(crate) fn put_u16(&mut self, at: usize, v: u16) {
        self.buf[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
    /// Put a u32 at a fixed position.
    pub(crate) fn put_u32(&mut self, at: usize, v: u32) {
        self.buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    /// Put a u64 at a fixed position.
    pub(crate) fn put_u64(&mut self, at: usize, v: u64) {
        self.buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    /// Append an f64.
    pub(crate) fn push_f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// Append a u32-length-prefixed string.
    pub(crate) fn push_str(&mut self, s: &str) {
        self.buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(s.as_bytes());
    }
    /// Length of the contents (rounded up to 8); records of reusable kinds
    /// are allocated at their size class.
    pub(crate) fn len(&self) -> usize {
        align8(self.buf.len())
    }
}

/// FNV-1a 64 over length-prefixed strings: the series hash stored in records.
pub(crate) fn hash_strings<'s>(parts: impl IntoIterator<Item = &'s str>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    for p in parts {
        for b in (p.len() as u32).to_le_bytes() {
            eat(b);
        }
        for &b in p.as_bytes() {
            eat(b);
        }
    }
    h
}
