//! Byte layout of an area, version 6. `docs/FORMAT.md` is the prose version
//! of this file; keep the two in step.
//!
//! All integers are little-endian on the machines we build for and are
//! accessed in place as naturally aligned atomics. Offsets are byte offsets
//! from the start of the area; 0 means "none".

/// `b"PROMSHM1"` read as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"PROMSHM1");
/// Layout version written by this build; an area of another version is refused.
///
/// Version 5: counter, histogram and native histogram series end with an
/// exemplar link cell (`ex`), and exemplar records (`KIND_EXEMPLAR`) hold
/// the newest exemplar of a series (per bucket for classic histograms).
/// Version 4: a gauge series holds entries only for the worker slots that
/// wrote it (inline, then in linked extension records, `KIND_GAUGE_EXT`).
/// Version 3: the space of removed series and replaced info blobs is
/// reused (size classes, free lists, record generations, the reuse log).
/// Version 2: liveness by open-file-description locks (`FLAG_OFD_LOCKS`,
/// `LOCK_BYTE`, `SLOT_LOCK_BASE`); version 1 areas used a takeover word.
/// Version 5: in-flight write lanes (`LANES`, `hdr::LANE_EPOCH`,
/// `hdr::OVERFLOW_HIGH`, `slot::OVERFLOW`): a hole is not reused while a write that may have
/// checked its old generation is in flight.
/// Version 6: a counter series' total is an integer cell plus an `f64` cell
/// (whole increments are one `fetch_add`), before its exemplar link.
pub const FORMAT_VERSION: u32 = 6;
/// Page size of every area.
pub const PAGE_SIZE: usize = 4096;
/// Written in native byte order; a reader of the other endianness sees it swapped.
pub const ENDIAN_TAG: u32 = 0x0102_0304;
/// Smallest area: header page, one worker page, one data page.
pub const MIN_PAGES: u32 = 3;
/// Largest area (4 GiB of pages would overflow the u32 offsets).
pub const MAX_PAGES: u32 = (u32::MAX as usize / PAGE_SIZE) as u32;
/// Most worker slots an area can have.
pub const MAX_WORKERS: u32 = 4096;

/// `init_state`: the creator is writing the header.
pub const INIT_BUSY: u32 = 1;
/// `init_state`: the area is ready.
pub const INIT_READY: u32 = 2;

/// Header field offsets (page 0).
pub mod hdr {
    /// u64 magic, stored last by the creator.
    pub const MAGIC: usize = 0;
    /// u32 format version.
    pub const VERSION: usize = 8;
    /// u32 header size in bytes (one page).
    pub const HEADER_SIZE: usize = 12;
    /// u32 page size.
    pub const PAGE_SIZE: usize = 16;
    /// u32 number of pages.
    pub const PAGE_COUNT: usize = 20;
    /// u32 endianness tag.
    pub const ENDIAN: usize = 24;
    /// u32 init state (atomic).
    pub const INIT_STATE: usize = 28;
    /// u32 number of worker slots.
    pub const MAX_WORKERS: usize = 32;
    /// u32 flags (bit 0: eager by default).
    pub const FLAGS: usize = 36;
    /// u32 offset of the worker table.
    pub const WORKERS_OFFSET: usize = 40;
    /// u32 offset of the first data page.
    pub const DATA_OFFSET: usize = 44;
    /// u64 next free byte (atomic, written under the area lock).
    pub const ALLOC_CURSOR: usize = 48;
    /// u64 lock word: `pid | start_time_low32 << 32` of the holder, 0 when
    /// free. With `FLAG_OFD_LOCKS` it is diagnostic only (written by the
    /// holder after it took the kernel lock); without, it is the lock.
    pub const LOCK: usize = 56;
    /// u64 pid namespace inode of the creator.
    pub const PID_NS: usize = 64;
    /// u64 creation time, Unix milliseconds.
    pub const CREATED_MS: usize = 72;
    /// u64 registrations refused because the area was full.
    pub const STAT_REFUSED: usize = 80;
    /// u64 dead workers reaped.
    pub const STAT_REAPED: usize = 88;
    /// u64 flushes into this area.
    pub const STAT_FLUSHES: usize = 96;
    /// u64 bad records seen by the last render.
    pub const STAT_BAD_RECORDS: usize = 104;
    /// u64 duration of the last render, nanoseconds.
    pub const STAT_RENDER_NS: usize = 112;
    /// u64 locks left by dead holders and recovered.
    pub const STAT_LOCK_RECOVERED: usize = 120;
    /// u64 number of live series (maintained under the lock).
    pub const STAT_SERIES: usize = 128;
    /// u64 number of families.
    pub const STAT_FAMILIES: usize = 136;
    /// u64 gauge updates dropped because the writing process had no worker
    /// slot (none free, or attaching is backing off).
    pub const STAT_DROPPED: usize = 144;
    /// u64 pid namespace inode of the lock holder (diagnostic, 0 when free or unknown).
    pub const LOCK_PID_NS: usize = 256;
    /// u64 waits for the area lock that gave up (timeouts).
    pub const STAT_LOCK_TIMEOUTS: usize = 264;
    /// u64 times the area lock was taken.
    pub const STAT_LOCKS_TAKEN: usize = 272;
    /// u64 registrations refused because a name the family would render is
    /// another family's (`NameTaken`).
    pub const STAT_NAME_CLASHES: usize = 280;
    /// u64 gauge fold sequence: odd while the reaper folds one gauge series
    /// (a seqlock that gauge readers check around their read).
    pub const FOLD_SEQ: usize = 152;
    /// u64 offset of the cells of the gauge series being folded.
    pub const FOLD_CELLS: usize = 160;
    /// u64 that series' retained value (f64 bits) once the fold is done.
    pub const FOLD_VALUE: usize = 168;
    /// u64 that series' retained stamp once the fold is done.
    pub const FOLD_STAMP: usize = 176;
    /// u64 bytes in free records (informative).
    pub const FREE_BYTES: usize = 288;
    /// u64 allocations served from a free list.
    pub const STAT_REUSED: usize = 296;
    /// u64 records freed (removed series, replaced blobs, abandoned records).
    pub const STAT_FREED: usize = 304;
    /// u64 sequence of the reuse log: records reallocated so far.
    pub const REUSE_SEQ: usize = 312;
    /// u64 free lists rebuilt from the walk (damaged list, or space reclaimed).
    pub const STAT_FREE_REBUILDS: usize = 320;
    /// u64 the last generation given to a record (generations never repeat).
    pub const GEN_COUNTER: usize = 328;
    /// u64 native histogram observations outside their family's window,
    /// counted in its edge bucket.
    pub const STAT_NATIVE_CLAMPED: usize = 336;
    /// u64 lane epoch: bits 0..63 the latest generation published (stored
    /// after that record's generation, under the lock); bit 63
    /// (`LANE_SEQCST`) writers store their lanes with SeqCst.
    pub const LANE_EPOCH: usize = 344;
    /// u64 every worker slot whose `slot::OVERFLOW` count was ever raised
    /// is below this index (`fetch_max` before the first raise): the reuse
    /// check reads those counts of slots below it only.
    pub const OVERFLOW_HIGH: usize = 352;
    /// u64 lanes ever claimed are below this index (claims take the first
    /// free lane, so they stay at the front): the reuse check reads no further.
    pub const LANE_HIGH: usize = 360;
    /// Free list heads: class `c` at `FREE_LISTS + 8 * c`: u32 head, u32 tail.
    pub const FREE_LISTS: usize = 512;
    /// Reuse log: entry `i` (u32 record offset) at `REUSE_LOG + 4 * i`.
    pub const REUSE_LOG: usize = 1024;
}

/// In-flight write lanes: `LANE_COUNT` lanes of `LANE_SIZE` bytes from
/// header offset `LANES` (u64 owner `slot + 1 | slot_generation << 32`, 0 =
/// free; u64 epoch, 0 = idle, else the announced epoch + 1).
pub const LANES: usize = 2048;
/// Bytes of one lane.
pub const LANE_SIZE: usize = 16;
/// Lanes of an area.
pub const LANE_COUNT: usize = (PAGE_SIZE - LANES) / LANE_SIZE;
/// `hdr::LANE_EPOCH` bit: writers store their lanes with SeqCst (the
/// area's creator could not issue `membarrier`).
pub const LANE_SEQCST: u64 = 1 << 63;

/// Entries of the reuse log (a ring; a reader that fell further behind re-walks).
pub const REUSE_LOG_LEN: usize = 256;

/// Record sizes of the small size classes (records of at most a page).
pub const SMALL_CLASSES: [usize; 27] = [
    32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024,
    1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096,
];
/// Largest record (in pages) that has a size class; larger ones are never reused.
pub const MAX_CLASS_PAGES: usize = 16;
/// Number of free lists: the small classes, then 2..=MAX_CLASS_PAGES pages
/// (the last one also holds larger holes).
pub const FREE_CLASSES: usize = SMALL_CLASSES.len() + MAX_CLASS_PAGES - 1;

/// The size class of a reusable record of `len` bytes: `(class, record
/// size)`. Records larger than `MAX_CLASS_PAGES` pages have no class (their
/// size is a whole number of pages).
pub fn size_class(len: usize) -> (Option<usize>, usize) {
    if let Some(c) = SMALL_CLASSES.iter().position(|&n| n >= len) {
        return (Some(c), SMALL_CLASSES[c]);
    }
    let pages = len.div_ceil(PAGE_SIZE);
    if pages <= MAX_CLASS_PAGES {
        (Some(SMALL_CLASSES.len() + pages - 2), pages * PAGE_SIZE)
    } else {
        (None, pages * PAGE_SIZE)
    }
}

/// Whether a reusable record of `len` bytes has its size class's size
/// (`size_class(len).1 == len`): by a table for a page or less, the
/// search of [`size_class`] past that.
#[inline(always)]
pub fn is_class_size(len: usize) -> bool {
    /// Bit `len / 8` set for the size of every small class.
    const SMALL: [u64; PAGE_SIZE / 8 / 64 + 1] = {
        let mut t = [0u64; PAGE_SIZE / 8 / 64 + 1];
        let mut i = 0;
        while i < SMALL_CLASSES.len() {
            let b = SMALL_CLASSES[i] / 8;
            t[b / 64] |= 1 << (b % 64);
            i += 1;
        }
        t
    };
    if len <= PAGE_SIZE {
        let b = len / 8;
        return len % 8 == 0 && SMALL[b / 64] & (1 << (b % 64)) != 0;
    }
    size_class(len).1 == len
}

/// A free record stays unused this long (ms) after it was freed, so that a
/// writer that checked the record's generation just before the free has
/// finished its store before the record is zeroed for a new owner.
pub const FREE_GRACE_MS: u64 = 100;

/// Check word of a free record at `off` with generation `gen` (detects a
/// free-list link into bytes that are not a free record).
pub fn free_check(off: usize, gen: u64) -> u32 {
    let x = (off as u64) ^ gen.rotate_left(32) ^ 0x4652_4545_5245_4331;
    let m = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    ((m >> 32) as u32) | 1
}

/// Fields of every reusable record (series, blob) and of a free record.
pub mod rec {
    /// u64 generation: incremented each time the record is freed. Handles
    /// capture it when they resolve; a write checks it first.
    pub const GEN: usize = 8;
    /// Free record: u32 offset of the next free record of its class (0 = none).
    pub const FREE_NEXT: usize = 16;
    /// Free record: u32 check word, `free_check(off, gen)`.
    pub const FREE_CHECK: usize = 20;
    /// Free record: u64 monotonic ms when it was freed.
    pub const FREE_AT_MS: usize = 24;
    /// Smallest reusable record (the free record fields).
    pub const MIN_LEN: usize = 32;
}

/// Flag bit: new families are eager (write-through) unless they say otherwise.
pub const FLAG_EAGER: u32 = 1;
/// Flag bit: liveness is judged by open-file-description locks (set by the
/// creator when the kernel and file system support them). Every process
/// follows the creator's choice, so all of them use one protocol.
pub const FLAG_OFD_LOCKS: u32 = 2;

/// Byte of the area file whose `F_OFD_SETLK` write lock is the area lock
/// (far beyond any area: record locks may lie beyond the end of a file).
pub const LOCK_BYTE: i64 = 1 << 40;
/// Byte `SLOT_LOCK_BASE + s` carries a read lock of every live holder of
/// worker slot `s`.
pub const SLOT_LOCK_BASE: i64 = LOCK_BYTE + 1;

/// Worker slot layout (64 bytes each).
pub mod slot {
    /// Size of one slot.
    pub const SIZE: usize = 64;
    /// u32 state: 0 free, 1 live, 2 being reaped.
    pub const STATE: usize = 0;
    /// u32 generation, bumped on every attach.
    pub const GENERATION: usize = 4;
    /// u64 identity: `pid | start_time_low32 << 32`.
    pub const IDENTITY: usize = 8;
    /// u64 pid namespace inode.
    pub const PID_NS: usize = 16;
    /// u64 full process start time (clock ticks since boot).
    pub const START_TIME: usize = 24;
    /// u64 last heartbeat (Unix ms): attach, flush, gauge writes.
    pub const HEARTBEAT_MS: usize = 32;
    /// u64 last flush (Unix ms).
    pub const LAST_FLUSH_MS: usize = 40;
    /// u64 attach time (Unix ms).
    pub const ATTACHED_MS: usize = 48;
    /// u32 flushes by this worker (wraps).
    pub const FLUSHES: usize = 56;
    /// u32 writes in flight by threads of this worker without a lane of
    /// their own (every lane taken); 0 when the slot is taken or reaped, and
    /// ignored unless the slot is live with a live holder (`docs/FORMAT.md`
    /// §6.5).
    pub const OVERFLOW: usize = 60;
}

/// Slot state: free.
pub const SLOT_FREE: u32 = 0;
/// Slot state: held by a live process.
pub const SLOT_LIVE: u32 = 1;
/// Slot state: its process is dead and its gauge values are being folded.
pub const SLOT_REAPING: u32 = 2;

/// Record header: `u32 tag` (kind in bits 0..8, state in bits 8..16), `u32 len`.
pub const RECORD_HEADER: usize = 8;
/// Record kind: family metadata.
pub const KIND_FAMILY: u8 = 1;
/// Record kind: one series.
pub const KIND_SERIES: u8 = 2;
/// Record kind: padding up to the end of a page.
pub const KIND_PADDING: u8 = 3;
/// Record kind: an info payload (label pairs), referenced from a series.
pub const KIND_BLOB: u8 = 4;
/// Record kind: more entries of one gauge series (`gx`), linked from it.
pub const KIND_GAUGE_EXT: u8 = 5;
/// Record kind: the exemplars of one counter or histogram series (`ex`), linked from it.
pub const KIND_EXEMPLAR: u8 = 6;
/// The last record kind.
pub const KIND_LAST: u8 = KIND_EXEMPLAR;
/// Record state: being written (or its writer died).
pub const STATE_WRITING: u8 = 0;
/// Record state: committed and live.
pub const STATE_LIVE: u8 = 1;
/// Record state: removed (series) or replaced (blob), not yet free; the
/// next lock holder that needs space frees it.
pub const STATE_REMOVED: u8 = 2;
/// Record state: free (its generation was bumped; it may be in a free list).
pub const STATE_FREE: u8 = 3;

/// Family record fields (after the record header).
pub mod fam {
    /// u64 hash of the name.
    pub const NAME_HASH: usize = 8;
    /// u8 metric type.
    pub const TYPE: usize = 16;
    /// u8 gauge mode.
    pub const GAUGE_MODE: usize = 17;
    /// u8 flags (bit 0 eager).
    pub const FLAGS: usize = 18;
    /// u8 number of label names.
    pub const N_LABELS: usize = 19;
    /// u16 number of f64 parameters (buckets without +Inf, or quantiles).
    pub const N_PARAMS: usize = 20;
    /// u16 number of states (StateSet).
    pub const N_STATES: usize = 22;
    /// u32 summary age buckets (0 = no window).
    pub const AGE_BUCKETS: usize = 24;
    /// u32 number of value cells in each series record.
    pub const N_CELLS: usize = 28;
    /// u64 summary max age in milliseconds.
    pub const MAX_AGE_MS: usize = 32;
    /// Start of the f64 parameter array; strings follow it.
    pub const PARAMS: usize = 40;
}

/// Series record fields (after the record header).
pub mod ser {
    // 8: u64 generation, `rec::GEN`.
    /// u32 offset of the family record.
    pub const FAMILY: usize = 16;
    /// u32 number of value cells.
    pub const N_CELLS: usize = 20;
    /// f64 creation time, Unix seconds.
    pub const CREATED: usize = 24;
    /// u64 hash of the label values.
    pub const HASH: usize = 32;
    /// Start of the u64 value cells; label values follow them.
    pub const CELLS: usize = 40;
}

/// Blob record fields (after the record header).
pub mod blob {
    // 8: u64 generation, `rec::GEN`.
    /// u32 number of pairs.
    pub const N_PAIRS: usize = 16;
    /// Start of the pairs (after a zero u32).
    pub const PAIRS: usize = 24;
}

/// Gauge series layout: the series' cells, and its extension records
/// (`KIND_GAUGE_EXT`). An entry is two u64 words `[tagstamp, value]`:
/// `tagstamp = (slot + 1) << TAG_SHIFT | stamp`, tag 0 = free, stamp 0 =
/// claimed but not written (readers skip it).
pub mod gx {
    /// Cell: retained value (f64 bits) of reaped workers.
    pub const RETAINED_VALUE: usize = 0;
    /// Cell: retained stamp (0 = nothing retained).
    pub const RETAINED_STAMP: usize = 1;
    /// Cell: u64 offset of the first extension record (0 = none).
    pub const LINK: usize = 2;
    /// Cell: the first inline entry.
    pub const ENTRIES: usize = 3;
    /// Entries inside the series record.
    pub const INLINE_ENTRIES: usize = 2;
    /// Cells of a gauge series.
    pub const CELLS: usize = ENTRIES + 2 * INLINE_ENTRIES;
    /// Bytes of one entry.
    pub const ENTRY_SIZE: usize = 16;
    /// The slot tag's position in an entry's first word.
    pub const TAG_SHIFT: u32 = 48;
    /// The stamp bits of an entry's first word.
    pub const STAMP_MASK: u64 = (1 << TAG_SHIFT) - 1;
    // Extension record: 8: u64 generation, `rec::GEN`.
    /// Extension: u32 offset of the series record that owns it.
    pub const EXT_OWNER: usize = 16;
    /// Extension: u32 number of entries in it.
    pub const EXT_N_ENTRIES: usize = 20;
    /// Extension: u64 generation of the owner when the extension was made.
    pub const EXT_OWNER_GEN: usize = 24;
    /// Extension: u64 offset of the next extension (0 = none).
    pub const EXT_LINK: usize = 32;
    /// Extension: the first entry.
    pub const EXT_ENTRIES: usize = 40;
    /// Fewest entries a new extension asks for.
    pub const EXT_MIN_ENTRIES: usize = 8;
    /// Most entries of one extension (it fits in a page).
    pub const EXT_MAX_ENTRIES: usize = (crate::area::format::PAGE_SIZE - EXT_ENTRIES) / ENTRY_SIZE;
    /// Most extensions a walk of one series' chain follows.
    pub const MAX_HOPS: usize = 64;
}

/// Exemplar records (`KIND_EXEMPLAR`) and the link to them: the last cell
/// of a counter, histogram or native histogram series holds the u64 offset
/// of its exemplar record (0 = none yet). The record names its owner like a
/// gauge extension (`gx::EXT_OWNER`, `gx::EXT_OWNER_GEN`) and holds
/// `n_slots` slots of `slot_size` bytes, each a seqlock-protected exemplar:
/// `[seq, value, timestamp, check, len | n_pairs << 32, payload...]`.
pub mod ex {
    /// Record: u32 offset of the owning series record (as `gx::EXT_OWNER`).
    pub const OWNER: usize = 16;
    /// Record: u32 number of slots.
    pub const N_SLOTS: usize = 20;
    /// Record: u64 generation of the owner when the record was made.
    pub const OWNER_GEN: usize = 24;
    /// Record: u32 bytes of one slot (`SMALL_SLOT` or `LARGE_SLOT`).
    pub const SLOT_SIZE: usize = 32;
    /// Record: the first slot.
    pub const SLOTS: usize = 40;
    /// Slot: u64 sequence. Even: stable (0: never written); odd: a writer
    /// holds the slot.
    pub const SEQ: usize = 0;
    /// Slot: f64 bits of the exemplar's value.
    pub const VALUE: usize = 8;
    /// Slot: f64 bits of its timestamp, Unix seconds.
    pub const TIMESTAMP: usize = 16;
    /// Slot: u64 check word over value, timestamp, lengths and payload
    /// (`metrics::exemplar::check_word`).
    pub const CHECK: usize = 24;
    /// Slot: u32 payload length in bytes, u32 number of label pairs.
    pub const LEN: usize = 32;
    /// Slot: the payload: each label name and value followed by a 0xFF byte.
    pub const PAYLOAD: usize = 40;
    /// Payload bytes of a small slot (what the first exemplar of a series
    /// gets when its labels fit).
    pub const SMALL_PAYLOAD: usize = 128;
    /// Payload bytes of a large slot: any 128 characters of label names and
    /// values (4 bytes each at most) with their 0xFF terminators.
    pub const LARGE_PAYLOAD: usize = 768;
    /// A small slot.
    pub const SMALL_SLOT: usize = PAYLOAD + SMALL_PAYLOAD;
    /// A large slot.
    pub const LARGE_SLOT: usize = PAYLOAD + LARGE_PAYLOAD;
    /// Slots of a native histogram series' record (chosen by the
    /// observation's bucket index).
    pub const NATIVE_SLOTS: usize = 4;
    /// Most characters of label names and values of one exemplar (OpenMetrics).
    pub const MAX_CHARS: usize = 128;
}

/// Largest metric name, label name, unit or state name, in bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Largest help text, in bytes.
pub const MAX_HELP_LEN: usize = 16 * 1024;
/// Largest label value, in bytes.
pub const MAX_VALUE_LEN: usize = 16 * 1024;
/// Most label names a family can have.
pub const MAX_LABELS: usize = 64;
/// Most histogram buckets / summary quantiles.
pub const MAX_PARAMS: usize = 1024;
/// Most StateSet states.
pub const MAX_STATES: usize = 1024;

/// Round `n` up to a multiple of 8.
pub const fn align8(n: usize) -> usize {
    (n + 7) & !7
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table says what the search says, for every length up to past
    /// the largest class (odd lengths and lengths not a multiple of 8
    /// included).
    #[test]
    fn is_class_size_is_the_search() {
        let mut sizes = 0;
        for len in 0..=(MAX_CLASS_PAGES + 2) * PAGE_SIZE {
            let want = size_class(len).1 == len;
            assert_eq!(is_class_size(len), want, "len {len}");
            sizes += usize::from(want);
        }
        // The 27 small classes and every whole number of pages from 2 up.
        assert_eq!(sizes, SMALL_CLASSES.len() + MAX_CLASS_PAGES + 1);
    }
}
