//! Reuse of the space of freed records (`docs/FORMAT.md` §6.5): free
//! records ("holes") of any size, one FIFO list per size range, split on
//! allocation and merged with their neighbours when the area is full;
//! record generations; and the reuse log.
//!
//! Everything here runs under the area lock. A record's own header is the
//! truth (a record is LIVE, or it is not); a free list is only an index of
//! FREE records, checked node by node when it is used and rebuilt from a
//! walk of the records when it is found damaged or when the area is full
//! (which also reclaims what holders that died mid-way left behind).
//!
//! Stale writes: every record identity gets a generation (`rec::GEN`) that
//! no record of the area ever had before (a counter in the header); a
//! freed record gets a new one before anything else changes, and handles
//! check theirs before every write. A hole is not reused before
//! `FREE_GRACE_MS` have passed since it was freed, nor while a write that
//! may have read one of its old generations is still in flight (the lanes
//! of `epoch`): a writer stopped between its check and its store, however
//! long, never stores into the record's new owner.

use std::sync::atomic::Ordering;

use super::epoch::Reuse;
use super::format::*;
use super::records::{reusable, tag};
use super::{AreaInner, AreaLockGuard};
use crate::process;

/// How long a hole deferred by an in-flight write waits before it is looked
/// at again (ms).
const LANE_RETRY_MS: u64 = 1;

/// A node of a free list that passed the checks.
#[derive(Clone, Copy)]
struct Hole {
    off: usize,
    len: usize,
    next: usize,
    freed_at: u64,
    gen: u64,
}

/// Which free lists [`take_hole`](AreaInner::take_hole) looks at.
#[derive(Clone, Copy)]
pub(crate) enum Classes {
    /// The record's own size class only.
    Own,
    /// The classes above it (a hole that is split).
    Larger,
    /// Both.
    All,
}

/// What [`take_hole`](AreaInner::take_hole) found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HoleTake {
    /// A hole, taken: the record's offset.
    Taken(usize),
    /// None ready; the first one that would do is ready at this
    /// `monotonic_ms`.
    ReadyAt(u64),
    /// No hole of these lists would do.
    Nothing,
}

impl HoleTake {
    /// When a hole is ready, if one will be.
    pub(crate) fn ready_at(self) -> Option<u64> {
        match self {
            HoleTake::ReadyAt(r) => Some(r),
            _ => None,
        }
    }
}

/// One look at list heads.
enum Scan {
    Ready(usize, Hole),
    Soonest(u64),
    None,
    Damaged,
}

/// The free list of a hole of `len` bytes: the largest class it can serve.
pub(crate) fn hole_class(len: usize) -> Option<usize> {
    if len < rec::MIN_LEN {
        return None;
    }
    if len <= PAGE_SIZE {
        return Some(SMALL_CLASS_AT[len / 16] as usize);
    }
    let pages = (len / PAGE_SIZE).min(MAX_CLASS_PAGES);
    Some(SMALL_CLASSES.len() + pages - 2)
}

/// `SMALL_CLASS_AT[len / 16]`: the largest small class of at most `len`
/// bytes (`32 <= len <= PAGE_SIZE`; the classes are multiples of 16).
const SMALL_CLASS_AT: [u8; PAGE_SIZE / 16 + 1] = {
    let mut t = [0u8; PAGE_SIZE / 16 + 1];
    let mut i = 0;
    while i < t.len() {
        let mut c = 0;
        while c + 1 < SMALL_CLASSES.len() && SMALL_CLASSES[c + 1] <= i * 16 {
            c += 1;
        }
        t[i] = c as u8;
        i += 1;
    }
    t
};

/// Whether a free record of `len` bytes at `off` obeys the page rules.
pub(crate) fn hole_shape_ok(off: usize, len: usize) -> bool {
    len >= rec::MIN_LEN
        && len % 8 == 0
        && if len <= PAGE_SIZE {
            off % PAGE_SIZE + len <= PAGE_SIZE
        } else {
            off % PAGE_SIZE == 0 && len % PAGE_SIZE == 0
        }
}

impl AreaInner {
    fn list_word(&self, class: usize, tail: bool) -> Option<&std::sync::atomic::AtomicU32> {
        if class >= FREE_CLASSES {
            return None;
        }
        self.u32_at(hdr::FREE_LISTS + 8 * class + if tail { 4 } else { 0 })
    }

    /// The generation of the reusable record at `off` (`u64::MAX` if out of bounds).
    #[inline]
    pub(crate) fn generation(&self, off: usize) -> u64 {
        self.u64_at(off + rec::GEN)
            .map(|g| g.load(Ordering::Acquire))
            .unwrap_or(u64::MAX)
    }

    /// Whether the series record at `off` is live and still of generation
    /// `gen` (not removed, cleared or reused since a handle resolved it).
    #[inline]
    pub(crate) fn series_live(&self, off: usize, gen: u64) -> bool {
        // SAFETY: `self` is the area the words were checked in, mapped
        // for as long as this call.
        self.series_liveness(off, gen)
            .is_some_and(|l| unsafe { l.is_live() })
    }

    /// The liveness check of the series record at `off` (generation `gen`)
    /// with its tag and generation words checked to be inside the mapping
    /// once, here: `None` if they are not. Valid as long as this area is
    /// mapped (its user keeps the area, as a family's series cache does).
    #[inline]
    pub(crate) fn series_liveness(&self, off: usize, gen: u64) -> Option<SeriesLiveness> {
        Some(SeriesLiveness {
            tag: self.u32_at(off)?.into(),
            gen_word: self.u64_at(off + rec::GEN)?.into(),
            gen,
        })
    }
}

/// [`AreaInner::series_live`] of one series record, whose words were
/// checked once ([`AreaInner::series_liveness`]): two loads and compares.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SeriesLiveness {
    /// The record's tag word.
    tag: std::ptr::NonNull<std::sync::atomic::AtomicU32>,
    /// The record's generation word.
    gen_word: std::ptr::NonNull<std::sync::atomic::AtomicU64>,
    /// The generation it must still have.
    gen: u64,
}

// SAFETY: the pointers are words of a shared mapping, only read through
// atomics; nothing is tied to the thread that made them.
unsafe impl Send for SeriesLiveness {}
// SAFETY: as for `Send`.
unsafe impl Sync for SeriesLiveness {}

impl SeriesLiveness {
    /// Whether the series record is live and still of its generation.
    ///
    /// # Safety
    /// The area it was made from is still mapped.
    #[inline(always)]
    pub(crate) unsafe fn is_live(&self) -> bool {
        // SAFETY: aligned words inside the mapping (checked when made),
        // still mapped (caller contract).
        let (tag, gen) = unsafe { (self.tag.as_ref(), self.gen_word.as_ref()) };
        super::records::tag_state(tag.load(Ordering::Acquire), KIND_SERIES) == Some(STATE_LIVE)
            && gen.load(Ordering::Acquire) == self.gen
    }
}

impl AreaInner {
    /// A generation no record of the area has had (for the record at
    /// `off`, whatever generation it holds now).
    fn fresh_generation(&self, off: usize) -> u64 {
        let counter = self.hdr(hdr::GEN_COUNTER);
        let old = self
            .u64_at(off + rec::GEN)
            .map(|g| g.load(Ordering::Relaxed))
            .unwrap_or(0);
        let g = counter.load(Ordering::Relaxed).max(old).wrapping_add(1);
        counter.store(g, Ordering::Relaxed);
        g
    }

    /// Give the record at `off` a fresh generation.
    pub(crate) fn new_generation(&self, off: usize) {
        let g = self.fresh_generation(off);
        if let Some(w) = self.u64_at(off + rec::GEN) {
            w.store(g, Ordering::Release);
            self.publish_generation(g);
        }
    }

    /// Check the free record at `off` as a node of list `class`.
    fn hole(&self, off: usize, class: usize) -> Option<Hole> {
        if off < self.data_offset() || off % 8 != 0 {
            return None;
        }
        let t = self.u32_at(off)?.load(Ordering::Acquire);
        let len = self.u32_at(off + 4)?.load(Ordering::Acquire) as usize;
        let kind = (t & 0xff) as u8;
        if (t >> 8) & 0xff != u32::from(STATE_FREE)
            || t >> 16 != 0
            || !reusable(kind)
            || off.checked_add(len)? > self.cursor()
            || !hole_shape_ok(off, len)
            || hole_class(len) != Some(class)
        {
            return None;
        }
        let check = self.u32_at(off + rec::FREE_CHECK)?.load(Ordering::Relaxed);
        let gen = self.generation(off);
        if check != free_check(off, gen) {
            return None;
        }
        Some(Hole {
            off,
            len,
            gen,
            next: self.u32_at(off + rec::FREE_NEXT)?.load(Ordering::Relaxed) as usize,
            freed_at: self.u64_at(off + rec::FREE_AT_MS)?.load(Ordering::Relaxed),
        })
    }

    /// Take a hole for a record of `size` bytes (a class size) from the
    /// lists `classes` picks (`size`'s own, or the larger ones): the head of
    /// the first of them whose grace period is over and that splits into
    /// `size` and a valid remainder (which becomes a hole of its own), or
    /// else when the first head that would do is ready. Never waits. A list
    /// found damaged is rebuilt (once). A hole taken is in state WRITING,
    /// of `size`.
    pub(crate) fn take_hole(
        &self,
        guard: &AreaLockGuard<'_>,
        size: usize,
        classes: Classes,
    ) -> HoleTake {
        let Some(own) = hole_class(size) else {
            return HoleTake::Nothing;
        };
        let last = if size <= PAGE_SIZE {
            SMALL_CLASSES.len() - 1
        } else {
            FREE_CLASSES - 1
        };
        let range = match classes {
            Classes::Own => own..=own,
            Classes::Larger => own + 1..=last,
            Classes::All => own..=last,
        };
        for attempt in 0..2 {
            match self.scan_heads(size, range.clone()) {
                Scan::Damaged if attempt == 0 => self.rebuild_free_lists(guard),
                Scan::Damaged => return HoleTake::Nothing,
                Scan::Ready(class, h) => return HoleTake::Taken(self.split_hole(class, h, size)),
                Scan::Soonest(ready) => return HoleTake::ReadyAt(ready),
                Scan::None => return HoleTake::Nothing,
            }
        }
        HoleTake::Nothing
    }

    /// One look at the heads of the lists `range` for a record of `size`.
    fn scan_heads(&self, size: usize, range: std::ops::RangeInclusive<usize>) -> Scan {
        let now = process::monotonic_ms();
        let mut soonest: Option<u64> = None;
        for class in range {
            let Some(head) = self.list_word(class, false) else {
                return Scan::Damaged;
            };
            let head = head.load(Ordering::Relaxed) as usize;
            if head == 0 {
                continue;
            }
            let Some(h) = self.hole(head, class) else {
                return Scan::Damaged;
            };
            let rest = h.len.saturating_sub(size);
            if h.len < size || (rest != 0 && !hole_shape_ok(h.off + size, rest)) {
                continue;
            }
            // A stamp in the future (damage) counts as now.
            let mut ready = h.freed_at.min(now) + FREE_GRACE_MS;
            if ready <= now {
                // Past its grace period: unless a write that may have
                // checked its old generation is still in flight (§6.5).
                match self.reuse_check(h.gen) {
                    Reuse::Safe => return Scan::Ready(class, h),
                    Reuse::Defer => ready = now + LANE_RETRY_MS,
                    Reuse::Never => continue,
                }
            }
            soonest = Some(soonest.map_or(ready, |r| r.min(ready)));
        }
        soonest.map_or(Scan::None, Scan::Soonest)
    }

    /// Unlink hole `h` (the head of `class`), cut a record of `size` from
    /// its front and make the rest a hole. The rest's header is written
    /// while it is still inside `h` (invisible to a walk), then `h`'s
    /// length shrinks: a walk sees the old hole or the two parts, never
    /// anything else, whenever the holder dies.
    fn split_hole(&self, class: usize, h: Hole, size: usize) -> usize {
        if let Some(w) = self.list_word(class, false) {
            w.store(h.next as u32, Ordering::Relaxed);
        }
        if h.next == 0 {
            if let Some(w) = self.list_word(class, true) {
                w.store(0, Ordering::Relaxed);
            }
        }
        self.hdr(hdr::FREE_BYTES)
            .fetch_sub(h.len as u64, Ordering::Relaxed);
        let rest = h.len - size;
        if rest > 0 {
            let r = h.off + size;
            self.make_hole(r, rest, h.freed_at, KIND_BLOB);
        }
        if let (Some(t), Some(l)) = (self.u32_at(h.off), self.u32_at(h.off + 4)) {
            // Still a (smaller) hole, then WRITING: a walk sees a valid
            // record at every step.
            l.store(size as u32, Ordering::Release);
            t.store(tag(KIND_BLOB, STATE_WRITING), Ordering::Release);
        }
        if rest > 0 {
            // The remainder is ready (its donor was): at the head of its
            // list, not behind holes still in their grace period.
            self.link_or_repair(h.off + size, rest, false, true);
        }
        h.off
    }

    /// Write a FREE record of `len` bytes at `off` (fresh generation,
    /// `freed_at`, no next), not linked.
    fn make_hole(&self, off: usize, len: usize, freed_at: u64, kind: u8) {
        let gen = self.fresh_generation(off);
        let fields = (
            self.u64_at(off + rec::GEN),
            self.u32_at(off + rec::FREE_NEXT),
            self.u32_at(off + rec::FREE_CHECK),
            self.u64_at(off + rec::FREE_AT_MS),
            self.u32_at(off + 4),
            self.u32_at(off),
        );
        if let (Some(g), Some(n), Some(c), Some(a), Some(l), Some(t)) = fields {
            g.store(gen, Ordering::Release);
            // Writers announcing this epoch or later see `gen` (epoch).
            self.publish_generation(gen);
            n.store(0, Ordering::Relaxed);
            a.store(freed_at, Ordering::Relaxed);
            c.store(free_check(off, gen), Ordering::Relaxed);
            l.store(len as u32, Ordering::Release);
            t.store(tag(kind, STATE_FREE), Ordering::Release);
        }
    }

    /// Free the record at `off` (a series or blob, LIVE, REMOVED, or WRITING
    /// with a dead writer): a fresh generation first, then the free record
    /// fields, state FREE, and a link at the tail of its list. A holder
    /// killed at any step leaves it not LIVE (REMOVED, or FREE perhaps
    /// unlinked): the next rebuild links it. `false` if it was not freed.
    pub(crate) fn free_record(&self, guard: &AreaLockGuard<'_>, off: usize) -> bool {
        if !self.mark_free(off) {
            return false;
        }
        let len = self
            .u32_at(off + 4)
            .map(|l| l.load(Ordering::Relaxed) as usize)
            .unwrap_or(0);
        self.link_or_repair(off, len, true, false);
        let _ = guard;
        true
    }

    /// Steps 1–3 of freeing (see `free_record`), without the link.
    fn mark_free(&self, off: usize) -> bool {
        let Some(t) = self.u32_at(off) else {
            return false;
        };
        let cur = t.load(Ordering::Acquire);
        let kind = (cur & 0xff) as u8;
        let state = ((cur >> 8) & 0xff) as u8;
        if !reusable(kind) || cur >> 16 != 0 || state == STATE_FREE || self.fold_pins(off) {
            // A gauge fold step open on it: the next reap finishes it first
            // (and a later rebuild frees the record).
            return false;
        }
        if state == STATE_LIVE
            && t.compare_exchange(
                tag(kind, STATE_LIVE),
                tag(kind, STATE_REMOVED),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return false;
        }
        let len = self
            .u32_at(off + 4)
            .map(|l| l.load(Ordering::Relaxed) as usize)
            .unwrap_or(0);
        if !hole_shape_ok(off, len) || off + len > self.cursor() {
            return false;
        }
        self.make_hole(off, len, process::monotonic_ms(), kind);
        self.bump(hdr::STAT_FREED, 1);
        true
    }

    /// Link hole `off` of `len` bytes into its list (at its tail, or with
    /// `front` at its head); if the list is damaged, rebuild every list
    /// (which links it too), or, while rebuilding, restart that list.
    fn link_or_repair(&self, off: usize, len: usize, may_rebuild: bool, front: bool) {
        let Some(class) = hole_class(len) else {
            return;
        };
        let link = |area: &Self| {
            if front {
                area.link_hole_front(class, off)
            } else {
                area.link_hole(class, off)
            }
        };
        if link(self) {
            self.hdr(hdr::FREE_BYTES)
                .fetch_add(len as u64, Ordering::Relaxed);
            return;
        }
        if may_rebuild {
            self.rebuild_lists_now();
        } else {
            for tail in [false, true] {
                if let Some(w) = self.list_word(class, tail) {
                    w.store(0, Ordering::Relaxed);
                }
            }
            if self.link_hole(class, off) {
                self.hdr(hdr::FREE_BYTES)
                    .fetch_add(len as u64, Ordering::Relaxed);
            }
        }
    }

    /// Append hole `off` to list `class`; `false` (nothing written) if the
    /// list's tail is damaged.
    fn link_hole(&self, class: usize, off: usize) -> bool {
        let (Some(head), Some(tail)) = (self.list_word(class, false), self.list_word(class, true))
        else {
            return false;
        };
        let last = tail.load(Ordering::Relaxed) as usize;
        let ok_tail =
            last == 0 || matches!(self.hole(last, class), Some(n) if n.next == 0 && last != off);
        if !ok_tail || (last == 0 && head.load(Ordering::Relaxed) != 0) {
            return false; // a damaged tail, or a head without a tail
        }
        // The new last node ends the list (a rebuild relinks old holes).
        match self.u32_at(off + rec::FREE_NEXT) {
            Some(n) => n.store(0, Ordering::Relaxed),
            None => return false,
        }
        if last == 0 {
            head.store(off as u32, Ordering::Relaxed);
        } else if let Some(w) = self.u32_at(last + rec::FREE_NEXT) {
            w.store(off as u32, Ordering::Relaxed);
        }
        tail.store(off as u32, Ordering::Relaxed);
        true
    }

    /// Whether the rebuild keeps the LIVE gauge extension at `off`: its
    /// owner is still the series that made it (a series record of the
    /// generation it names, not freed). An owner freed, or reused with a
    /// new generation, leaves it an orphan (its freer died before freeing
    /// it). Decided after the rebuild freed the series it frees.
    fn gauge_extension_kept(&self, off: usize) -> bool {
        let owner = self.u32_at(off + gx::EXT_OWNER);
        let gen = self.u64_at(off + gx::EXT_OWNER_GEN);
        let (Some(owner), Some(gen)) = (owner, gen) else {
            return false;
        };
        let owner = owner.load(Ordering::Relaxed) as usize;
        let state = self.record_state(owner, KIND_SERIES);
        state.is_some_and(|s| s != STATE_FREE)
            && self.generation(owner) == gen.load(Ordering::Relaxed)
    }

    /// Whether the rebuild keeps the LIVE record at `off` that a series
    /// links to (a gauge extension or an exemplar record).
    fn linked_record_kept(&self, off: usize) -> bool {
        if self.record_state(off, KIND_EXEMPLAR).is_some() {
            self.exemplar_record_kept(off)
        } else {
            self.gauge_extension_kept(off)
        }
    }

    /// Push hole `off` at the head of list `class`: its `next` is the old
    /// head, then the head is `off` (then the tail, if the list was empty:
    /// a holder killed between leaves a head without a tail, which the next
    /// link finds damaged). `false` (nothing written) if the head is damaged.
    fn link_hole_front(&self, class: usize, off: usize) -> bool {
        let (Some(head), Some(tail)) = (self.list_word(class, false), self.list_word(class, true))
        else {
            return false;
        };
        let first = head.load(Ordering::Relaxed) as usize;
        let empty = first == 0;
        if (empty && tail.load(Ordering::Relaxed) != 0)
            || (!empty && (first == off || self.hole(first, class).is_none()))
        {
            return false;
        }
        match self.u32_at(off + rec::FREE_NEXT) {
            Some(n) => n.store(first as u32, Ordering::Relaxed),
            None => return false,
        }
        head.store(off as u32, Ordering::Relaxed);
        if empty {
            tail.store(off as u32, Ordering::Relaxed);
        }
        true
    }

    /// Whether a gauge fold step is open on the series at `off`.
    fn fold_pins(&self, off: usize) -> bool {
        self.hdr(hdr::FOLD_SEQ).load(Ordering::Acquire) & 1 == 1
            && self.hdr(hdr::FOLD_CELLS).load(Ordering::Relaxed) == (off + ser::CELLS) as u64
    }

    /// Rebuild every free list from a walk of the records (under the lock).
    pub(crate) fn rebuild_free_lists(&self, _guard: &AreaLockGuard<'_>) {
        self.rebuild_lists_now();
    }

    /// The rebuild: free the records that are not LIVE but not free either
    /// (REMOVED; WRITING, whose writer died: the lock is ours), the LIVE
    /// blobs no LIVE info series refers to (their replacer died before
    /// freeing them) and the LIVE gauge extensions whose owner series is
    /// gone (`gauge_extension_kept`); merge neighbouring holes of a page into one; link
    /// every hole, in walk order. Bounded by the walk.
    fn rebuild_lists_now(&self) {
        for c in 0..FREE_CLASSES {
            for tail in [false, true] {
                if let Some(w) = self.list_word(c, tail) {
                    w.store(0, Ordering::Relaxed);
                }
            }
        }
        self.set_stat(hdr::FREE_BYTES, 0);
        self.bump(hdr::STAT_FREE_REBUILDS, 1);
        self.reclaim_unregistered_families();
        let mut info_families = std::collections::HashSet::new();
        let mut info_cells = Vec::new();
        let mut records = Vec::new();
        self.walk(0, false, |r| {
            match (r.kind, r.state) {
                (KIND_FAMILY, STATE_LIVE) => {
                    let mut kind = [0u8];
                    if self.read_bytes(r.off + fam::TYPE, &mut kind)
                        && crate::encoding::MetricType::from_u8(kind[0])
                            == Some(crate::encoding::MetricType::Info)
                    {
                        info_families.insert(r.off);
                    }
                }
                (KIND_SERIES, STATE_LIVE) => {
                    // Its family may follow it: decided after the walk.
                    let fam = self
                        .u32_at(r.off + ser::FAMILY)
                        .map(|f| f.load(Ordering::Relaxed) as usize);
                    if let (Some(fam), Some(c)) = (fam, self.u64_at(r.off + ser::CELLS)) {
                        info_cells.push((fam, c.load(Ordering::Acquire) as u32 as usize));
                    }
                }
                _ => {}
            }
            if reusable(r.kind) {
                records.push(r);
            }
        });
        let referenced: std::collections::HashSet<usize> = info_cells
            .into_iter()
            .filter(|(fam, _)| info_families.contains(fam))
            .map(|(_, blob)| blob)
            .collect();
        // Free what is neither live nor free (and damaged holes afresh).
        let mut holes: Vec<(usize, usize, u64)> = Vec::new();
        let freed_at = |off: usize| {
            self.u64_at(off + rec::FREE_AT_MS)
                .map(|a| a.load(Ordering::Relaxed))
                .unwrap_or(0)
        };
        let mut exts = Vec::new();
        for r in &records {
            if (r.kind == KIND_GAUGE_EXT || r.kind == KIND_EXEMPLAR) && r.state == STATE_LIVE {
                // Decided once the series are done (its owner may be freed).
                exts.push(r.off);
                continue;
            }
            let class = hole_class(r.len);
            let valid_hole =
                r.state == STATE_FREE && class.is_some_and(|c| self.hole(r.off, c).is_some());
            let orphan_blob =
                r.kind == KIND_BLOB && r.state == STATE_LIVE && !referenced.contains(&r.off);
            if r.state == STATE_FREE && !valid_hole {
                if let Some(t) = self.u32_at(r.off) {
                    t.store(tag(r.kind, STATE_REMOVED), Ordering::Release);
                }
            }
            let freed =
                valid_hole || ((r.state != STATE_LIVE || orphan_blob) && self.mark_free(r.off));
            if freed {
                holes.push((r.off, r.len, freed_at(r.off)));
            }
        }
        for off in exts {
            if !self.linked_record_kept(off) && self.mark_free(off) {
                let len = self.u32_at(off + 4).map(|l| l.load(Ordering::Relaxed));
                holes.push((off, len.unwrap_or(0) as usize, freed_at(off)));
            }
        }
        holes.sort_unstable_by_key(|h| h.0);
        // Merge holes that follow each other inside a page, then link.
        let mut i = 0;
        while i < holes.len() {
            let (off, mut len, mut at) = holes[i];
            let mut j = i + 1;
            while j < holes.len()
                && holes[j].0 == off + len
                && len <= PAGE_SIZE
                && holes[j].1 <= PAGE_SIZE
                && hole_shape_ok(off, len + holes[j].1)
            {
                len += holes[j].1;
                at = at.max(holes[j].2);
                j += 1;
            }
            if j > i + 1 {
                let kind = self
                    .u32_at(off)
                    .map(|t| (t.load(Ordering::Relaxed) & 0xff) as u8)
                    .unwrap_or(KIND_BLOB);
                // One store of the length swallows the holes after it.
                self.make_hole(off, len, at, kind);
            }
            self.link_or_repair(off, len, false, false);
            i = j;
        }
    }

    /// Note in the reuse log that the record at `off` (taken from a free
    /// list) is being reallocated, so that other processes index it again.
    pub(crate) fn log_reuse(&self, off: usize) {
        let seq = self.hdr(hdr::REUSE_SEQ);
        let s = seq.load(Ordering::Relaxed);
        if let Some(e) = self.u32_at(hdr::REUSE_LOG + 4 * (s as usize % REUSE_LOG_LEN)) {
            e.store(off as u32, Ordering::Relaxed);
        }
        seq.store(s + 1, Ordering::Release);
        self.bump(hdr::STAT_REUSED, 1);
    }

    /// The reuse log entries after `from`: `Some(offsets)` and the new
    /// sequence, or `None` if the log wrapped past `from` (re-walk).
    pub(crate) fn reuse_log_since(&self, from: u64) -> (Option<Vec<usize>>, u64) {
        let seq = self.hdr(hdr::REUSE_SEQ);
        let now = seq.load(Ordering::Acquire);
        if now < from || now - from > REUSE_LOG_LEN as u64 {
            return (None, now);
        }
        let out: Vec<usize> = (from..now)
            .filter_map(|s| {
                self.u32_at(hdr::REUSE_LOG + 4 * (s as usize % REUSE_LOG_LEN))
                    .map(|e| e.load(Ordering::Relaxed) as usize)
            })
            .collect();
        std::sync::atomic::fence(Ordering::Acquire);
        let after = seq.load(Ordering::Relaxed);
        if after.wrapping_sub(from) > REUSE_LOG_LEN as u64 {
            return (None, after);
        }
        (Some(out), now)
    }
}

/// Family records (unregistering, `docs/FORMAT.md` §7): a family's record
/// carries a generation at record offset 8 like a reusable record; an
/// unregistered family becomes a hole (of kind BLOB, so the lists only ever
/// hold reusable kinds), and families are allocated from holes too. A
/// family record larger than a page is allocated in whole pages, the rest
/// of its last page a PADDING record, so that its hole is whole pages.
impl AreaInner {
    /// Whether the family record at `off` is LIVE and of generation `gen`.
    #[inline]
    pub(crate) fn family_live(&self, off: usize, gen: u64) -> bool {
        self.record_state(off, KIND_FAMILY) == Some(STATE_LIVE) && self.generation(off) == gen
    }

    /// The bytes a family record of `len` bytes occupies: `len`, or whole
    /// pages above a page.
    fn family_span(len: usize) -> usize {
        if len > PAGE_SIZE {
            len.div_ceil(PAGE_SIZE) * PAGE_SIZE
        } else {
            len
        }
    }

    /// Allocate a zeroed family record of `len` bytes (`align8`), WRITING,
    /// with a generation no record had: from a hole past its grace period
    /// (logged for the other processes' indexes), else from the cursor;
    /// if only holes in their grace period would do, wait for them (under
    /// the lock, at most 3 rounds of the grace period, as for blobs).
    pub(crate) fn alloc_family(
        &self,
        guard: &AreaLockGuard<'_>,
        len: usize,
    ) -> crate::Result<usize> {
        let span = Self::family_span(len);
        let mut rounds = 0;
        let off = loop {
            let from_hole = self.take_hole(guard, span, Classes::All);
            if let HoleTake::Taken(off) = from_hole {
                if let Some(t) = self.u32_at(off) {
                    t.store(tag(KIND_FAMILY, STATE_WRITING), Ordering::Release);
                }
                self.log_reuse(off);
                // Zero the body (the generation stays the hole's).
                let zeros = vec![0u8; span - rec::GEN - 8];
                self.write_bytes(off + rec::GEN + 8, &zeros);
                break off;
            }
            if rounds < 3 && !self.cursor_fits(span) {
                match from_hole.ready_at() {
                    Some(ready) => crate::area::records::sleep_until_ms(ready),
                    None => {
                        // Reclaim and merge, then one more look.
                        self.rebuild_free_lists(guard);
                        rounds = 3;
                        continue;
                    }
                }
                rounds += 1;
                continue;
            }
            let off = self.alloc(guard, KIND_FAMILY, span)?;
            self.new_generation(off);
            break off;
        };
        if span > len {
            // The rest of the last page: padding, written inside the
            // record before its length shrinks (a walk sees either).
            if let (Some(t), Some(l)) = (self.u32_at(off + len), self.u32_at(off + len + 4)) {
                l.store((span - len) as u32, Ordering::Relaxed);
                t.store(tag(KIND_PADDING, STATE_LIVE), Ordering::Release);
            }
            if let Some(l) = self.u32_at(off + 4) {
                l.store(len as u32, Ordering::Release);
            }
        }
        Ok(off)
    }

    /// Whether a record of `len` bytes fits at the cursor (page rules).
    fn cursor_fits(&self, len: usize) -> bool {
        let cursor = self.cursor();
        let in_page = cursor % PAGE_SIZE;
        let pad = if in_page != 0 && (len > PAGE_SIZE || in_page + len > PAGE_SIZE) {
            PAGE_SIZE - in_page
        } else {
            0
        };
        cursor + pad + len <= self.len()
    }

    /// The first step of unregistering the family at `off` of generation
    /// `gen`: compare-exchange its tag LIVE -> REMOVED. From then on it is
    /// gone for every reader and writer; `false` if it was not live.
    pub(crate) fn mark_family_removed(&self, off: usize, gen: u64) -> bool {
        if self.generation(off) != gen {
            return false;
        }
        self.u32_at(off).is_some_and(|t| {
            t.compare_exchange(
                tag(KIND_FAMILY, STATE_LIVE),
                tag(KIND_FAMILY, STATE_REMOVED),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
        })
    }

    /// The last step of unregistering: the REMOVED family record at `off`
    /// (its series freed) becomes a hole (a fresh generation, kind BLOB)
    /// and is linked; with `link` false it is left unlinked (the rebuild,
    /// which links every hole). `false` if it is not a REMOVED family or its
    /// span is not a valid hole (a family above a page without its padding,
    /// written before families were freed: it stays REMOVED).
    fn free_family_record_at(&self, off: usize, link: bool) -> bool {
        if self.record_state(off, KIND_FAMILY) != Some(STATE_REMOVED) {
            return false;
        }
        let len = self
            .u32_at(off + 4)
            .map(|l| l.load(Ordering::Relaxed) as usize)
            .unwrap_or(0);
        let span = Self::family_span(len);
        if span > len {
            let padding = self.u32_at(off + len).map(|t| t.load(Ordering::Acquire));
            let pad_len = self
                .u32_at(off + len + 4)
                .map(|l| l.load(Ordering::Relaxed));
            if padding != Some(tag(KIND_PADDING, STATE_LIVE))
                || pad_len != Some((span - len) as u32)
            {
                return false;
            }
        }
        if !hole_shape_ok(off, span) || off + span > self.cursor() {
            return false;
        }
        self.make_hole(off, span, process::monotonic_ms(), KIND_BLOB);
        self.bump(hdr::STAT_FREED, 1);
        if link {
            self.link_or_repair(off, span, true, false);
        }
        true
    }

    /// [`free_family_record_at`](Self::free_family_record_at), linked.
    pub(crate) fn free_family_record(&self, _guard: &AreaLockGuard<'_>, off: usize) -> bool {
        self.free_family_record_at(off, true)
    }

    /// The rebuild's share of unregistering (its first step, before its
    /// walk): what a holder killed mid-unregister left. Every LIVE series
    /// whose family is not a LIVE family record is freed (its family was
    /// unregistered, or is damaged), then every REMOVED family becomes a
    /// hole (unlinked: the rebuild's walk links it). Series first, so no
    /// series ever names a family record that was reused.
    fn reclaim_unregistered_families(&self) {
        let mut removed = Vec::new();
        let mut series = Vec::new();
        self.walk(0, false, |r| match (r.kind, r.state) {
            (KIND_FAMILY, STATE_REMOVED) => removed.push(r.off),
            (KIND_SERIES, STATE_LIVE) => {
                if let Some(f) = self.u32_at(r.off + ser::FAMILY) {
                    series.push((r.off, f.load(Ordering::Relaxed) as usize));
                }
            }
            _ => {}
        });
        for (off, fam) in series {
            if self.record_state(fam, KIND_FAMILY) != Some(STATE_LIVE) && self.mark_free(off) {
                let n = self.hdr(hdr::STAT_SERIES);
                let _ = n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
            }
        }
        for off in removed {
            if self.free_family_record_at(off, false) {
                let n = self.hdr(hdr::STAT_FAMILIES);
                let _ = n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_class_table_gives_the_largest_class_that_fits() {
        for len in rec::MIN_LEN..=PAGE_SIZE {
            let want = SMALL_CLASSES.iter().rposition(|&c| c <= len);
            assert_eq!(hole_class(len), want, "{len}");
        }
        assert_eq!(hole_class(rec::MIN_LEN - 8), None);
        assert_eq!(hole_class(2 * PAGE_SIZE), Some(SMALL_CLASSES.len()));
    }
}
