//! The series index: what this process knows of the area's family and
//! series records, and the lookups, creation and removal of series through
//! it.
//!
//! Each process keeps a `LocalIndex` of the records it has seen (one per
//! area, `AreaInner::index`), caught up incrementally by walking the records
//! added since (records are only ever appended) and those the reuse log
//! names. Lookups never take the area lock; creating a family or series
//! does, after a last catch-up, so two processes never create the same one.
//!
//! The index knows records, not metric types: what it needs of a family
//! record (its name, type, cell count, how its series' label values are read
//! and which records go with a series when it is freed) it learns from a
//! [`FamilyShape`] that the metrics layer decodes (`metrics::shape::Shape`,
//! through a [`DecodeFamily`] the caller passes); the family objects it keeps
//! for the registry are [`HandedOut`]s (`metrics::FamilyInner`), whose
//! locks it takes for `fork` (`fork::before_fork`).

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::format::*;
use super::records::{hash_strings, Alloc, Record, RecordReader, RecordWriter};
use super::{AreaInner, AreaLockGuard};
use crate::encoding::MetricType;
use crate::error::Result;

/// A family record as the layer that knows the metric types decoded and
/// checked it (`metrics::shape::Shape`): what the index needs of it.
pub(crate) trait FamilyShape: Any + Send + Sync {
    /// The family's full name.
    fn name(&self) -> &str;
    /// Its type (which names it renders: `MetricType::rendered_suffixes`).
    fn kind(&self) -> MetricType;
    /// Value cells in each of its series records.
    fn n_cells(&self, max_workers: u32) -> usize;
    /// Read the label values of its LIVE series record `rec` into `out`;
    /// `None` if the record is damaged.
    fn series_values(&self, area: &AreaInner, rec: Record, out: &mut Vec<String>) -> Option<()>;
    /// What goes with its LIVE series record at `off` when it is freed
    /// (read before the series record is freed).
    fn series_links(&self, area: &AreaInner, off: usize) -> SeriesLinks;
}

/// The records freed with a series record.
#[derive(Debug, Default)]
pub(crate) struct SeriesLinks {
    /// An info blob reference (`AreaInner::free_blob`).
    pub blob: Option<u64>,
    /// Records freed as they are (gauge extensions, an exemplar record).
    pub records: Vec<usize>,
}

/// Decodes and checks a LIVE family record for the index; `None` if it is
/// not a valid family (the index then leaves it out).
pub(crate) type DecodeFamily = fn(&AreaInner, Record) -> Option<Arc<dyn FamilyShape>>;

/// A family object the registry handed out (`metrics::FamilyInner`), kept
/// (weakly) by the index so that registering again reuses it.
pub(crate) trait HandedOut: Any + Send + Sync {
    /// Take the object's own locks for `fork` and keep their guards with
    /// `fork::hold`.
    ///
    /// # Safety
    /// The object must outlive the guards' stay (`fork::before_fork` keeps
    /// an `Arc` of it until after they are released).
    unsafe fn hold_for_fork(&self);
}

/// Key of a family object handed out: family record offset, eager, the
/// registry's constant label values.
pub(crate) type HandOutKey = (usize, bool, Vec<String>);

/// A registered family as the series functions of the index see it.
pub(crate) struct FamilyView<'a> {
    /// Its area.
    pub area: &'a AreaInner,
    /// Offset of its record.
    pub off: usize,
    /// Generation of its record when it was registered.
    pub gen: u64,
    /// Its shape.
    pub shape: &'a dyn FamilyShape,
    /// How the index decodes family records while it catches up.
    pub decode: DecodeFamily,
}

impl FamilyView<'_> {
    /// Whether the family is still registered (no process unregistered it).
    fn is_registered(&self) -> bool {
        self.area.family_live(self.off, self.gen)
    }
}

/// Hashes record offsets (never chosen by a caller) for the index's
/// offset-keyed maps: one multiply instead of SipHash's rounds.
#[derive(Default, Clone, Copy)]
struct OffsetHasher(u64);

impl std::hash::Hasher for OffsetHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        // murmur3's finaliser: every input bit reaches the low bits (the
        // bucket) and the top ones (hashbrown's tag); offsets are multiples of 8.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// A map keyed by record offsets.
type OffsetMap<V> = HashMap<usize, V, std::hash::BuildHasherDefault<OffsetHasher>>;

/// Hashes `(family offset, label hash)` keys from a per-map random seed:
/// the label hash is FNV of caller-given values, so the buckets must not
/// be predictable from them.
#[derive(Clone)]
struct SeededState(u64);

impl Default for SeededState {
    fn default() -> Self {
        use std::hash::BuildHasher;
        SeededState(std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64))
    }
}

impl std::hash::BuildHasher for SeededState {
    type Hasher = OffsetHasher;
    fn build_hasher(&self) -> OffsetHasher {
        OffsetHasher(self.0)
    }
}

/// The series records under one `(family, label hash)` key: almost always
/// one (no allocation), more only for label hashes that collide.
#[derive(Debug, Clone)]
enum Offsets {
    /// One record.
    One(usize),
    /// Colliding records.
    Many(Vec<usize>),
}

impl Offsets {
    fn as_slice(&self) -> &[usize] {
        match self {
            Offsets::One(o) => std::slice::from_ref(o),
            Offsets::Many(v) => v,
        }
    }

    fn push(&mut self, off: usize) {
        match self {
            Offsets::One(o) => *self = Offsets::Many(vec![*o, off]),
            Offsets::Many(v) => v.push(off),
        }
    }

    /// Drop `off`; whether none is left.
    fn remove(&mut self, off: usize) -> bool {
        match self {
            Offsets::One(o) => *o == off,
            Offsets::Many(v) => {
                v.retain(|&o| o != off);
                v.is_empty()
            }
        }
    }
}

/// What this process knows of the area's records.
#[derive(Default)]
pub(crate) struct LocalIndex {
    /// Records before this offset have been indexed.
    scanned: usize,
    /// Family name -> (record offset, generation, shape). A family may be
    /// unregistered by any process: checked (`family_live`) at lookup.
    families: HashMap<String, (usize, u64, Arc<dyn FamilyShape>)>,
    /// Family record offset -> shape.
    by_offset: OffsetMap<Arc<dyn FamilyShape>>,
    /// Every name a family of the area renders (its name plus each of its
    /// type's [`rendered_suffixes`](MetricType::rendered_suffixes)) -> that
    /// family's name; the first family in record order keeps a name.
    rendered: HashMap<String, String>,
    /// Family objects handed out, so that registering again (e.g. once per
    /// request from a dynamic language) reuses one object and its series cache.
    handed_out: HashMap<HandOutKey, Weak<dyn HandedOut>>,
    /// (family offset, label hash) -> series record offsets.
    series: HashMap<(usize, u64), Offsets, SeededState>,
    /// Series record offset -> its key in `series` (records are reused:
    /// a reused one leaves its old key).
    keys: OffsetMap<(usize, u64)>,
    /// Reuse log entries consumed (see `AreaInner::reuse_log_since`).
    reuse_seq: u64,
    /// Reused records that were still being written at the last catch-up.
    pending: Vec<usize>,
    /// Series seen before their family (a series may reuse space before
    /// its family's record): indexed once the family is.
    orphans: Vec<usize>,
    /// Free list rebuilds seen (`STAT_FREE_REBUILDS`): a rebuild merges
    /// holes, so `scanned` may no longer be a record boundary.
    rebuilds: u64,
}

impl LocalIndex {
    /// The first name a family `name` of type `kind` would render that a
    /// family of another name already renders: `(rendered name, owner)`.
    pub(crate) fn clash(&self, name: &str, kind: MetricType) -> Option<(String, String)> {
        kind.rendered_suffixes().find_map(|sfx| {
            let rendered = format!("{name}{sfx}");
            match self.rendered.get(&rendered) {
                Some(owner) if owner != name => Some((rendered, owner.clone())),
                _ => None,
            }
        })
    }

    /// Whether a family `name` of type `kind` would render a name some
    /// family of the area renders (that family itself included).
    pub(crate) fn taken(&self, name: &str, kind: MetricType) -> bool {
        kind.rendered_suffixes()
            .any(|sfx| self.rendered.contains_key(&format!("{name}{sfx}")))
    }

    /// The family objects of this index that are still alive.
    pub(crate) fn families_handed_out(&self) -> Vec<Arc<dyn HandedOut>> {
        self.handed_out.values().filter_map(Weak::upgrade).collect()
    }

    /// The family object handed out for `key`, if it is still alive.
    pub(crate) fn handed_out(&self, key: &HandOutKey) -> Option<Arc<dyn HandedOut>> {
        self.handed_out.get(key).and_then(Weak::upgrade)
    }

    /// Keep `family` as the object handed out for `key` (forgetting the
    /// objects that are gone).
    pub(crate) fn hand_out(&mut self, key: HandOutKey, family: Weak<dyn HandedOut>) {
        self.handed_out.retain(|_, w| w.strong_count() > 0);
        self.handed_out.insert(key, family);
    }

    /// The family `name` as indexed (registered or not any more):
    /// `(record offset, generation, shape)`.
    pub(crate) fn family(&self, name: &str) -> Option<&(usize, u64, Arc<dyn FamilyShape>)> {
        self.families.get(name)
    }

    /// Index the records appended since the last call, and those the reuse
    /// log names (reallocated in place). Without the area lock, stop at a
    /// record still being written; under it, skip such records (their
    /// writer died). A log that wrapped since the last call means a re-walk
    /// of every series. Family records are decoded by `decode` (the layer
    /// that knows the metric types). `false` if there was nothing new to look at.
    pub(crate) fn catch_up(
        &mut self,
        area: &AreaInner,
        locked: bool,
        decode: DecodeFamily,
    ) -> bool {
        let (logged, seq) = area.reuse_log_since(self.reuse_seq);
        let rebuilds = area.hdr(hdr::STAT_FREE_REBUILDS).load(Ordering::Acquire);
        if seq == self.reuse_seq
            && rebuilds == self.rebuilds
            && self.pending.is_empty()
            && self.orphans.is_empty()
            && area.cursor() <= self.scanned
        {
            return false;
        }
        let mut redo = std::mem::take(&mut self.pending);
        match logged {
            Some(offs) if rebuilds == self.rebuilds => redo.extend(offs),
            _ => {
                self.rebuilds = rebuilds;
                self.series.clear();
                self.keys.clear();
                redo.clear();
                self.scanned = 0;
            }
        }
        self.reuse_seq = seq;
        let mut values = Vec::new();
        for off in redo {
            self.forget(off);
            let Some(len) = area
                .u32_at(off + 4)
                .map(|l| l.load(Ordering::Relaxed) as usize)
            else {
                continue;
            };
            // A reused record is a series, or a family (`alloc_family`).
            let kind = match area.record_state(off, KIND_FAMILY) {
                Some(_) => KIND_FAMILY,
                None => KIND_SERIES,
            };
            match area.record_state(off, kind) {
                Some(STATE_LIVE) => self.index(
                    area,
                    Record {
                        off,
                        kind,
                        state: STATE_LIVE,
                        len,
                    },
                    &mut values,
                    decode,
                ),
                Some(STATE_WRITING) if !locked => self.pending.push(off),
                _ => {}
            }
        }
        let end = area.walk(self.scanned, !locked, |rec| {
            if rec.state != STATE_LIVE {
                return;
            }
            self.index(area, rec, &mut values, decode);
        });
        self.scanned = end.end;
        for off in std::mem::take(&mut self.orphans) {
            if let Some(rec) = area.live_record(off, KIND_SERIES) {
                self.index(area, rec, &mut values, decode);
            }
        }
        true
    }

    /// The family `name` of the index if it is still registered in the area
    /// (its record LIVE, of the generation indexed).
    pub(crate) fn live_family(
        &self,
        area: &AreaInner,
        name: &str,
    ) -> Option<(usize, u64, Arc<dyn FamilyShape>)> {
        let (off, gen, shape) = self.families.get(name)?;
        area.family_live(*off, *gen)
            .then(|| (*off, *gen, shape.clone()))
    }

    /// Forget the families that a family `name` of type `kind` would meet
    /// (its own name, and the owners of the names it would render) if
    /// they were unregistered (by any process), so their names are free.
    fn prune_dead(&mut self, area: &AreaInner, name: &str, kind: MetricType) {
        let mut owners: Vec<String> = kind
            .rendered_suffixes()
            .filter_map(|sfx| self.rendered.get(&format!("{name}{sfx}")).cloned())
            .collect();
        owners.push(name.to_owned());
        for owner in owners {
            if self.families.contains_key(&owner) && self.live_family(area, &owner).is_none() {
                self.drop_family(&owner);
            }
        }
    }

    /// Forget the family `name` (unregistered): its names, its offset's
    /// shape (unless a newer family holds the offset), its series.
    pub(crate) fn drop_family(&mut self, name: &str) {
        self.rendered.retain(|_, owner| owner != name);
        let Some((off, _, _)) = self.families.remove(name) else {
            return;
        };
        if self.by_offset.get(&off).is_some_and(|s| s.name() == name) {
            self.by_offset.remove(&off);
            for o in self.series_of(off) {
                self.forget(o);
            }
        }
        self.handed_out.retain(|k, _| k.0 != off);
    }

    /// Index the series record at `off` that this process just created
    /// under the lock, with `(seq, cursor)` the reuse sequence and
    /// allocation cursor before its allocation: if the index was caught up
    /// then, the allocation (a reuse logged or the cursor moved, by this
    /// process alone) needs no second look at the next catch-up.
    fn add_own_series(
        &mut self,
        area: &AreaInner,
        (fam, hash, off): (usize, u64, usize),
        (seq, cursor): (u64, usize),
    ) {
        self.add_series(fam, hash, off);
        let rebuilds = area.hdr(hdr::STAT_FREE_REBUILDS).load(Ordering::Acquire);
        if self.reuse_seq != seq || self.scanned != cursor || self.rebuilds != rebuilds {
            return;
        }
        let now_seq = area.hdr(hdr::REUSE_SEQ).load(Ordering::Acquire);
        let now_cursor = area.cursor();
        if now_seq == seq + 1 || (now_seq == seq && off + 8 <= now_cursor && off >= cursor) {
            self.reuse_seq = now_seq;
            self.scanned = now_cursor;
        }
    }

    /// The series records indexed under the family record at `fam`.
    fn series_of(&self, fam: usize) -> Vec<usize> {
        self.series
            .iter()
            .filter(|((f, _), _)| *f == fam)
            .flat_map(|(_, offs)| offs.as_slice().iter().copied())
            .collect()
    }

    /// Drop the series record at `off` from the index.
    fn forget(&mut self, off: usize) {
        if let Some(key) = self.keys.remove(&off) {
            if self.series.get_mut(&key).is_some_and(|o| o.remove(off)) {
                self.series.remove(&key);
            }
        }
    }

    /// Index one LIVE record.
    fn index(
        &mut self,
        area: &AreaInner,
        rec: Record,
        values: &mut Vec<String>,
        decode: DecodeFamily,
    ) {
        {
            match rec.kind {
                KIND_FAMILY => {
                    if let Some(shape) = decode(area, rec) {
                        let gen = area.generation(rec.off);
                        // Names of unregistered families are free again.
                        self.prune_dead(area, shape.name(), shape.kind());
                        for sfx in shape.kind().rendered_suffixes() {
                            self.rendered
                                .entry(format!("{}{sfx}", shape.name()))
                                .or_insert_with(|| shape.name().to_owned());
                        }
                        self.by_offset.insert(rec.off, shape.clone());
                        self.families
                            .entry(shape.name().to_owned())
                            .or_insert((rec.off, gen, shape));
                    }
                }
                KIND_SERIES => {
                    let Some(fam) = area.u32_at(rec.off + ser::FAMILY) else {
                        return;
                    };
                    let fam = fam.load(Ordering::Relaxed) as usize;
                    let Some(shape) = self.by_offset.get(&fam) else {
                        if !self.orphans.contains(&rec.off) {
                            self.orphans.push(rec.off);
                        }
                        return;
                    };
                    if shape.series_values(area, rec, values).is_some() {
                        let h = hash_strings(values.iter().map(String::as_str));
                        self.add_series(fam, h, rec.off);
                    }
                }
                _ => {}
            }
        }
    }

    /// Index the series record at `off` under `(fam, hash)`.
    fn add_series(&mut self, fam: usize, hash: u64, off: usize) {
        self.forget(off);
        self.series
            .entry((fam, hash))
            .and_modify(|o| o.push(off))
            .or_insert(Offsets::One(off));
        self.keys.insert(off, (fam, hash));
    }

    /// A live series of `fam` with exactly these values: its offset and
    /// generation (read before the checks and unchanged after them).
    fn find_series(
        &self,
        area: &AreaInner,
        fam: usize,
        values: &[&str],
        hash: u64,
    ) -> Option<(usize, u64)> {
        let shape = self.by_offset.get(&fam)?;
        let n_cells = shape.n_cells(area.max_workers());
        let mut gen = 0;
        let off = self
            .series
            .get(&(fam, hash))?
            .as_slice()
            .iter()
            .copied()
            .find(|&off| {
                gen = area.generation(off);
                if area.record_state(off, KIND_SERIES) != Some(STATE_LIVE)
                    || area
                        .u32_at(off + ser::FAMILY)
                        .map(|f| f.load(Ordering::Relaxed) as usize)
                        != Some(fam)
                {
                    return false;
                }
                let Some(len) = area
                    .u32_at(off + 4)
                    .map(|l| l.load(Ordering::Relaxed) as usize)
                else {
                    return false;
                };
                let rec = Record {
                    off,
                    kind: KIND_SERIES,
                    state: STATE_LIVE,
                    len,
                };
                let mut r = RecordReader::new(area, rec, ser::CELLS + 8 * n_cells);
                values.iter().all(|v| r.string_eq(v) == Some(true))
                    && area.record_state(off, KIND_SERIES) == Some(STATE_LIVE)
                    && area.generation(off) == gen
            })?;
        Some((off, gen))
    }
}

/// The longest a registration waits for holes to leave their grace period
/// (as long as a wait for the area lock) before it is refused.
const GRACE_WAIT_BOUND: std::time::Duration = std::time::Duration::from_secs(10);

/// Find or create the series of `family` with label values `values`
/// (constant labels included); the offset and generation of its record.
/// When only holes still in their grace period would hold it, wait for
/// them without the area lock (other processes and threads go on), and
/// try again, for at most [`GRACE_WAIT_BOUND`].
pub(crate) fn resolve_series(
    family: &FamilyView<'_>,
    values: &[&str],
    hash: u64,
) -> Result<(usize, u64)> {
    let started = std::time::Instant::now();
    loop {
        match try_resolve_series(family, values, hash)? {
            Ok(found) => return Ok(found),
            Err(_) if started.elapsed() >= GRACE_WAIT_BOUND => {
                let size = ser::CELLS + family.shape.n_cells(family.area.max_workers()) * 8;
                return Err(family.area.refuse(size));
            }
            Err(ready) => super::records::sleep_until_ms(ready),
        }
    }
}

/// The generation that a family that was unregistered resolves every
/// series to (with the dead family's own offset, in the mapping; never read
/// through): no record ever has it, so that its handles
/// (`metrics::SeriesInner::cell`) update nothing and read zero, like a
/// removed series'.
pub(crate) const DEAD_GEN: u64 = u64::MAX;

/// One attempt of [`resolve_series`]: the series' offset and generation
/// (the one its lookup checked, or read under the lock that created it),
/// or the `monotonic_ms` at which to try again.
fn try_resolve_series(
    family: &FamilyView<'_>,
    values: &[&str],
    hash: u64,
) -> Result<std::result::Result<(usize, u64), u64>> {
    let area = family.area;
    let dead = (family.off, DEAD_GEN);
    let mut idx = super::fork::lock(&area.index);
    // A series found is the family's if the family is still registered
    // after the lookup (its record cannot have been reused meanwhile: a
    // hole waits out its grace period).
    let found = |idx: &LocalIndex| {
        idx.find_series(area, family.off, values, hash).map(|s| {
            if family.is_registered() {
                s
            } else {
                dead
            }
        })
    };
    if !family.is_registered() {
        return Ok(Ok(dead));
    }
    if let Some(found) = found(&idx) {
        return Ok(Ok(found));
    }
    if idx.catch_up(area, false, family.decode) {
        if let Some(found) = found(&idx) {
            return Ok(Ok(found));
        }
    }
    let guard = area.lock()?;
    if idx.catch_up(area, true, family.decode) {
        if let Some(found) = found(&idx) {
            return Ok(Ok(found));
        }
    }
    if !family.is_registered() {
        // Unregistered (by any process): no series is ever created in it.
        return Ok(Ok(dead));
    }
    let before = (
        area.hdr(hdr::REUSE_SEQ).load(Ordering::Acquire),
        area.cursor(),
    );
    match create_series(area, &guard, family, values, hash)? {
        Alloc::At(off) => {
            idx.add_own_series(area, (family.off, hash, off), before);
            // Under the lock: nobody has removed it yet.
            Ok(Ok((off, area.generation(off))))
        }
        Alloc::ReadyAt(ready) => Ok(Err(ready)),
    }
}

fn create_series(
    area: &AreaInner,
    guard: &AreaLockGuard<'_>,
    family: &FamilyView<'_>,
    values: &[&str],
    hash: u64,
) -> Result<Alloc> {
    let n_cells = family.shape.n_cells(area.max_workers());
    let cells = ser::CELLS + 8 * n_cells;
    let mut w = RecordWriter::with_fixed(ser::CELLS);
    w.put_u64(ser::HASH, hash);
    // The generation stays what the record had (`alloc` keeps it).
    w.put_u32(ser::FAMILY, family.off as u32);
    w.put_u32(ser::N_CELLS, n_cells as u32);
    w.put_u64(ser::CREATED, crate::process::now_secs().to_bits());
    for v in values {
        w.push_str(v);
    }
    let len = cells + (w.buf.len() - ser::CELLS);
    let made = area.try_alloc(guard, KIND_SERIES, align8(len))?;
    if let Alloc::At(off) = made {
        // The record comes zeroed: the cells are not written again.
        area.write_bytes(off + ser::FAMILY, &w.buf[ser::FAMILY..ser::CELLS]);
        area.write_bytes(off + cells, &w.buf[ser::CELLS..]);
        area.commit(off, KIND_SERIES);
        area.bump(hdr::STAT_SERIES, 1);
    }
    Ok(made)
}

/// Remove the live series with these values and free its record (and an
/// info series' blob); its offset and generation if it was live.
pub(crate) fn remove_series(
    family: &FamilyView<'_>,
    values: &[&str],
    hash: u64,
) -> Result<Option<(usize, u64)>> {
    let area = family.area;
    area.check_writable()?;
    let mut idx = super::fork::lock(&area.index);
    // Under the lock the index is complete (an unlocked catch-up stops at
    // a record another process is writing).
    let guard = area.lock()?;
    idx.catch_up(area, true, family.decode);
    let Some((off, gen)) = idx.find_series(area, family.off, values, hash) else {
        return Ok(None);
    };
    // A removed series is never found again: forget it (lookups stay as
    // fast as the live series, however often labels are removed and re-added).
    idx.forget(off);
    if !free_series(area, &guard, family.shape, off) {
        return Ok(None);
    }
    Ok(Some((off, gen)))
}

/// Free the LIVE series record at `off` of a family of `shape` (under the
/// lock): the record, then what goes with it ([`FamilyShape::series_links`]:
/// an info blob, gauge extensions, an exemplar record). `false` if it was
/// not live.
fn free_series(
    area: &AreaInner,
    guard: &AreaLockGuard<'_>,
    shape: &dyn FamilyShape,
    off: usize,
) -> bool {
    if area.record_state(off, KIND_SERIES) != Some(STATE_LIVE) {
        return false;
    }
    let links = shape.series_links(area, off);
    if !area.free_record(guard, off) {
        return false;
    }
    if let Some(b) = links.blob {
        area.free_blob(guard, b);
    }
    for e in links.records {
        area.free_record(guard, e);
    }
    area.hdr(hdr::STAT_SERIES).fetch_sub(1, Ordering::Relaxed);
    true
}

/// Remove every live series of the family and free their records; how many.
pub(crate) fn clear_family(family: &FamilyView<'_>) -> Result<usize> {
    let area = family.area;
    let mut idx = super::fork::lock(&area.index);
    // Under the lock no process can add a series while we clear.
    let guard = area.lock()?;
    idx.catch_up(area, true, family.decode);
    let offs = idx.series_of(family.off);
    let mut n = 0;
    for off in offs {
        idx.forget(off);
        if free_series(area, &guard, family.shape, off) {
            n += 1;
        }
    }
    Ok(n)
}

/// Unregister the family in the area (see `registry::unregister`): under
/// the lock, its record LIVE -> REMOVED, then every series of it freed,
/// then its record a hole, and its name forgotten by the index. `false` if
/// it was not registered any more.
pub(crate) fn unregister_family(family: &FamilyView<'_>) -> Result<bool> {
    let area = family.area;
    area.check_writable()?;
    let mut idx = super::fork::lock(&area.index);
    let guard = area.lock()?;
    // Under the lock the index is complete: every series of the family.
    idx.catch_up(area, true, family.decode);
    if !area.mark_family_removed(family.off, family.gen) {
        return Ok(false);
    }
    let offs = idx.series_of(family.off);
    for off in offs {
        idx.forget(off);
        let of_family = area
            .u32_at(off + ser::FAMILY)
            .is_some_and(|f| f.load(Ordering::Relaxed) as usize == family.off);
        if of_family {
            free_series(area, &guard, family.shape, off);
        }
    }
    if area.free_family_record(&guard, family.off) {
        let n = area.hdr(hdr::STAT_FAMILIES);
        let _ = n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
    }
    drop(guard);
    idx.drop_family(family.shape.name());
    Ok(true)
}
