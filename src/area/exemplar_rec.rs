//! Exemplar records (`KIND_EXEMPLAR`, `docs/FORMAT.md` §6.8): the newest
//! exemplar of a counter, histogram or native histogram series (one per
//! bucket for a classic histogram, `ex::NATIVE_SLOTS` for a native one),
//! in a record made on the series' first exemplar and linked from its last
//! cell. Each slot is a seqlock: a writer takes its sequence word odd by a
//! compare-exchange, writes, and makes it even again; a reader retries a
//! bounded number of times and then skips the slot. A check word over the
//! slot's contents makes a mix of two writes (a writer that took over a slot
//! whose holder seemed dead, while that holder was only slow) unreadable too.
//!
//! Nothing read from the area is trusted: a link is followed only to a LIVE
//! exemplar record of a known slot size that names the series and its
//! generation, has the slots the series needs and fits its length; a slot's
//! lengths are bounded by its size and its check word must match.

use std::sync::atomic::{fence, Ordering};

use super::format::*;
use super::{AreaInner, AreaLockGuard};
use crate::error::{Error, Result};

/// A validated exemplar record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExRecord {
    /// Offset of the record.
    pub off: usize,
    /// Number of slots.
    pub n_slots: usize,
    /// Bytes of one slot.
    pub slot_size: usize,
}

impl ExRecord {
    /// Payload bytes a slot holds.
    pub(crate) fn capacity(&self) -> usize {
        self.slot_size - ex::PAYLOAD
    }

    fn slot(&self, i: usize) -> usize {
        self.off + ex::SLOTS + i * self.slot_size
    }
}

/// One exemplar as stored in a slot (the payload not decoded).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawExemplar {
    pub value: f64,
    pub timestamp: f64,
    pub n_pairs: u32,
    pub payload: Vec<u8>,
}

/// How often a reader retries a slot that changes under it before skipping it.
const READ_TRIES: usize = 16;
/// How long (spins) a writer waits for the holder of a slot before taking
/// it over (the holder was killed while writing, or is very slow: either
/// way its write is lost, and the check word hides any mix).
const HOLDER_SPINS: usize = 1 << 14;

/// The check word of a slot's contents (never 0, so that a zeroed slot
/// never checks): a multiply-rotate mix of the value, timestamp and length
/// words, then the payload as little-endian words (the last zero-padded).
pub(crate) fn check_word(value: u64, timestamp: u64, len_word: u64, payload: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mix = |h: u64, w: u64| (h ^ w).wrapping_mul(K).rotate_left(29);
    let mut h = mix(mix(mix(0x6578_656d_706c_6172, value), timestamp), len_word);
    for chunk in payload.chunks(8) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        h = mix(h, u64::from_le_bytes(b));
    }
    (h ^ (h >> 32)) | 1
}

impl AreaInner {
    /// The offset of the exemplar link cell of the series record at
    /// `series`: its last cell (by the record's own cell count, which must
    /// leave the cells inside the record's length).
    pub(crate) fn exemplar_link(&self, series: usize) -> Option<usize> {
        let n = self.u32_at(series + ser::N_CELLS)?.load(Ordering::Relaxed) as usize;
        let len = self.u32_at(series + 4)?.load(Ordering::Relaxed) as usize;
        if n == 0 || n > 1 << 20 || ser::CELLS + 8 * n > len {
            return None;
        }
        let link = series + ser::CELLS + 8 * (n - 1);
        self.u64_at(link).map(|_| link)
    }

    /// The exemplar record at `off` if it is a LIVE one of the series at
    /// `owner` (generation `gen`) with `n_slots` slots.
    fn exemplar_record(
        &self,
        off: usize,
        owner: usize,
        gen: u64,
        n_slots: usize,
    ) -> Option<ExRecord> {
        if off % 8 != 0 || off == 0 {
            return None;
        }
        let r = self.live_record(off, KIND_EXEMPLAR)?;
        let o = self.u32_at(off + ex::OWNER)?.load(Ordering::Relaxed) as usize;
        let n = self.u32_at(off + ex::N_SLOTS)?.load(Ordering::Relaxed) as usize;
        let g = self.u64_at(off + ex::OWNER_GEN)?.load(Ordering::Relaxed);
        let size = self.u32_at(off + ex::SLOT_SIZE)?.load(Ordering::Relaxed) as usize;
        let size_ok = size == ex::SMALL_SLOT || size == ex::LARGE_SLOT;
        let fits = n
            .checked_mul(size)
            .and_then(|b| b.checked_add(ex::SLOTS))
            .is_some_and(|b| b <= r.len);
        (o == owner && g == gen && n == n_slots && size_ok && fits).then_some(ExRecord {
            off,
            n_slots: n,
            slot_size: size,
        })
    }

    /// The exemplar record of the series at `series` (generation `gen`,
    /// `n_slots` slots), if it has a valid one.
    pub(crate) fn exemplar_record_of(
        &self,
        series: usize,
        gen: u64,
        n_slots: usize,
    ) -> Option<ExRecord> {
        let link = self
            .u64_at(self.exemplar_link(series)?)?
            .load(Ordering::Acquire);
        self.exemplar_record(usize::try_from(link).ok()?, series, gen, n_slots)
    }

    /// Under the lock: give the live series at `series` (generation `gen`)
    /// an exemplar record of `n_slots` slots of `slot_size` bytes, copying
    /// the stable slots of its current record `old` (if any, which is then
    /// freed). The link is stored before the record is committed (as for
    /// gauge extensions): a holder killed in between leaves a link to a
    /// WRITING record, which nobody follows and the next rebuild frees.
    pub(crate) fn make_exemplar_record(
        &self,
        guard: &AreaLockGuard<'_>,
        series: usize,
        gen: u64,
        n_slots: usize,
        slot_size: usize,
        old: Option<ExRecord>,
    ) -> Result<ExRecord> {
        let gone = || Error::InvalidArgument("the series was removed".into());
        if !self.series_live(series, gen) {
            return Err(gone());
        }
        let link = self.exemplar_link(series).ok_or_else(gone)?;
        let len = ex::SLOTS + n_slots * slot_size;
        let off = self.alloc(guard, KIND_EXEMPLAR, len)?;
        let fields = (
            self.u32_at(off + ex::OWNER),
            self.u32_at(off + ex::N_SLOTS),
            self.u64_at(off + ex::OWNER_GEN),
            self.u32_at(off + ex::SLOT_SIZE),
            self.u64_at(link),
        );
        let (Some(o), Some(n), Some(g), Some(s), Some(l)) = fields else {
            return Err(Error::CorruptArea(format!(
                "exemplar record at {off} does not fit the area"
            )));
        };
        o.store(series as u32, Ordering::Relaxed);
        n.store(n_slots as u32, Ordering::Relaxed);
        g.store(gen, Ordering::Relaxed);
        s.store(slot_size as u32, Ordering::Relaxed);
        let rec = ExRecord {
            off,
            n_slots,
            slot_size,
        };
        if let Some(old) = old {
            for i in 0..old.n_slots.min(n_slots) {
                if let Some(e) = self.read_exemplar_slot(&old, i) {
                    if e.payload.len() <= rec.capacity() {
                        self.write_exemplar_slot(&rec, i, &e);
                    }
                }
            }
        }
        l.store(off as u64, Ordering::Release);
        self.commit(off, KIND_EXEMPLAR);
        if let Some(old) = old {
            self.free_record(guard, old.off);
        }
        Ok(rec)
    }

    /// Write exemplar `e` into slot `i` of `rec` (its payload fits: the
    /// caller checked). `false` if it was dropped: another writer held the
    /// slot and released it, or took it over, meanwhile (that writer's
    /// exemplar is as new as this one: "the newest any process saw").
    pub(crate) fn write_exemplar_slot(&self, rec: &ExRecord, i: usize, e: &RawExemplar) -> bool {
        if i >= rec.n_slots || e.payload.len() > rec.capacity() || self.check_writable().is_err() {
            return false;
        }
        let slot = rec.slot(i);
        let Some(seq) = self.u64_at(slot + ex::SEQ) else {
            return false;
        };
        let mut s = seq.load(Ordering::Relaxed);
        if s & 1 == 1 {
            // Held: wait a little for its holder, then take it over if the
            // same holder still has it (it was killed, or is stalled).
            let held = s;
            let mut spins = 0;
            while s == held && spins < HOLDER_SPINS {
                std::hint::spin_loop();
                spins += 1;
                s = seq.load(Ordering::Relaxed);
            }
            if s != held && s & 1 == 1 {
                return false; // someone else is writing (or took it over)
            }
        }
        // From even `s` to odd `s + 1`, or from a stuck odd `s` to odd `s + 2`
        // (wrapping: the word is read from the shared file and may be any
        // value, `u64::MAX` included; the release never makes it 0, "never
        // written").
        let taken = s.wrapping_add(if s & 1 == 0 { 1 } else { 2 });
        let released = match taken.wrapping_add(1) {
            0 => 2,
            r => r,
        };
        if seq
            .compare_exchange(s, taken, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        fence(Ordering::Release);
        let len_word = e.payload.len() as u64 | u64::from(e.n_pairs) << 32;
        let (v, t) = (e.value.to_bits(), e.timestamp.to_bits());
        let words = [
            (ex::VALUE, v),
            (ex::TIMESTAMP, t),
            (ex::CHECK, check_word(v, t, len_word, &e.payload)),
            (ex::LEN, len_word),
        ];
        for (at, w) in words {
            if let Some(c) = self.u64_at(slot + at) {
                c.store(w, Ordering::Relaxed);
            }
        }
        for (k, chunk) in e.payload.chunks(8).enumerate() {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            if let Some(c) = self.u64_at(slot + ex::PAYLOAD + 8 * k) {
                c.store(u64::from_le_bytes(b), Ordering::Relaxed);
            }
        }
        // A CAS, not a store: if another writer took the slot over
        // meanwhile, its release is the one that counts.
        seq.compare_exchange(taken, released, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// Read slot `i` of `rec`: `None` if it was never written, or if it
    /// changed under every one of `READ_TRIES` reads, or its contents do
    /// not check (damaged, or a mix of two writers).
    pub(crate) fn read_exemplar_slot(&self, rec: &ExRecord, i: usize) -> Option<RawExemplar> {
        if i >= rec.n_slots {
            return None;
        }
        let slot = rec.slot(i);
        let seq = self.u64_at(slot + ex::SEQ)?;
        let cap = rec.capacity();
        let mut payload = Vec::new();
        for _ in 0..READ_TRIES {
            let s1 = seq.load(Ordering::Acquire);
            if s1 == 0 {
                return None;
            }
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let word = |at: usize| self.u64_at(slot + at).map(|c| c.load(Ordering::Relaxed));
            let (Some(v), Some(t), Some(check), Some(len_word)) = (
                word(ex::VALUE),
                word(ex::TIMESTAMP),
                word(ex::CHECK),
                word(ex::LEN),
            ) else {
                return None;
            };
            let len = (len_word & 0xffff_ffff) as usize;
            payload.clear();
            if len <= cap {
                for k in 0..len.div_ceil(8) {
                    payload.extend_from_slice(&word(ex::PAYLOAD + 8 * k)?.to_le_bytes());
                }
                payload.truncate(len);
            }
            fence(Ordering::Acquire);
            if seq.load(Ordering::Relaxed) != s1 {
                continue;
            }
            if len > cap || check_word(v, t, len_word, &payload) != check {
                // Damaged, or mixed by a takeover: wait for the next write.
                return None;
            }
            return Some(RawExemplar {
                value: f64::from_bits(v),
                timestamp: f64::from_bits(t),
                n_pairs: (len_word >> 32) as u32,
                payload,
            });
        }
        None
    }

    /// Whether the rebuild keeps the LIVE exemplar record at `off`: its
    /// owner is a series record (not free) of the generation it names, and
    /// the owner's link points at it (a record replaced by a larger one
    /// whose replacer died before freeing it is not linked any more).
    pub(crate) fn exemplar_record_kept(&self, off: usize) -> bool {
        let owner = self.u32_at(off + ex::OWNER);
        let gen = self.u64_at(off + ex::OWNER_GEN);
        let (Some(owner), Some(gen)) = (owner, gen) else {
            return false;
        };
        let owner = owner.load(Ordering::Relaxed) as usize;
        let state = self.record_state(owner, KIND_SERIES);
        let linked = self
            .exemplar_link(owner)
            .and_then(|l| self.u64_at(l))
            .is_some_and(|l| l.load(Ordering::Acquire) == off as u64);
        state.is_some_and(|s| s != STATE_FREE)
            && self.generation(owner) == gen.load(Ordering::Relaxed)
            && linked
    }
}
