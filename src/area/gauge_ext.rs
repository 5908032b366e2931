//! The entries of a gauge series (`docs/FORMAT.md` §6.6): `gx::INLINE_ENTRIES`
//! inside the series record, then extension records (`KIND_GAUGE_EXT`)
//! linked from it, each naming its owner (series offset and generation).
//! An entry belongs to one worker slot (its tag), claimed by a
//! compare-exchange of its tag word (`metrics::gauge`); extensions are
//! linked under the area lock.
//!
//! Nothing read from the area is trusted: a link is followed only to a LIVE
//! extension record of the right size that names this series and its
//! generation, at most `gx::MAX_HOPS` times and never to an extension seen
//! before. A damaged chain ends the walk there.

use std::sync::atomic::Ordering;

use super::format::*;
use super::{AreaInner, AreaLockGuard};
use crate::error::{Error, Result};

/// Where a walk of a series' entries ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChainEnd {
    /// The entry at which the visitor asked to stop.
    pub hit: Option<usize>,
    /// Offset of the last link word reached (the series' own, or that of
    /// the last valid extension): where a new extension is linked.
    pub link: usize,
    /// Entries visited.
    pub entries: usize,
    /// Extensions visited.
    pub hops: usize,
}

impl AreaInner {
    /// The number of entries of the extension at `off`, if it is a LIVE
    /// extension record of the series at `owner` of generation `gen`.
    fn gauge_extension(&self, off: usize, owner: usize, gen: u64) -> Option<usize> {
        if off % 8 != 0 {
            return None;
        }
        let r = self.live_record(off, KIND_GAUGE_EXT)?;
        let o = self.u32_at(off + gx::EXT_OWNER)?.load(Ordering::Relaxed) as usize;
        let n = self
            .u32_at(off + gx::EXT_N_ENTRIES)?
            .load(Ordering::Relaxed) as usize;
        let g = self
            .u64_at(off + gx::EXT_OWNER_GEN)?
            .load(Ordering::Relaxed);
        let fits = gx::EXT_ENTRIES + n * gx::ENTRY_SIZE <= r.len;
        (o == owner && g == gen && (1..=gx::EXT_MAX_ENTRIES).contains(&n) && fits).then_some(n)
    }

    /// Visit the entries (offsets of their first word) of the gauge series
    /// record at `series`, of generation `gen`: the inline ones, then those
    /// of each valid extension of its chain, calling `on_ext` on each
    /// extension first. Stops at the entry for which `f` returns `true`.
    pub(crate) fn walk_gauge_chain(
        &self,
        series: usize,
        gen: u64,
        mut on_ext: impl FnMut(usize),
        mut f: impl FnMut(usize) -> bool,
    ) -> ChainEnd {
        let cells = series + ser::CELLS;
        let mut end = ChainEnd {
            hit: None,
            link: cells + 8 * gx::LINK,
            entries: 0,
            hops: 0,
        };
        let mut run = |first: usize, n: usize, end: &mut ChainEnd| {
            for i in 0..n {
                let e = first + i * gx::ENTRY_SIZE;
                end.entries += 1;
                if f(e) {
                    end.hit = Some(e);
                    return true;
                }
            }
            false
        };
        if run(cells + 8 * gx::ENTRIES, gx::INLINE_ENTRIES, &mut end) {
            return end;
        }
        let mut seen = [0usize; gx::MAX_HOPS];
        while end.hops < gx::MAX_HOPS {
            let Some(next) = self.u64_at(end.link).map(|l| l.load(Ordering::Acquire)) else {
                break;
            };
            let next = usize::try_from(next).unwrap_or(0);
            if next == 0 || seen[..end.hops].contains(&next) {
                break;
            }
            let Some(n) = self.gauge_extension(next, series, gen) else {
                break;
            };
            seen[end.hops] = next;
            end.hops += 1;
            on_ext(next);
            if run(next + gx::EXT_ENTRIES, n, &mut end) {
                return end;
            }
            end.link = next + gx::EXT_LINK;
        }
        end
    }

    /// Visit the entries of a gauge series (see [`walk_gauge_chain`](Self::walk_gauge_chain)).
    pub(crate) fn visit_gauge_entries(
        &self,
        series: usize,
        gen: u64,
        f: impl FnMut(usize) -> bool,
    ) -> ChainEnd {
        self.walk_gauge_chain(series, gen, |_| {}, f)
    }

    /// The extension records of the gauge series at `series` (its current
    /// generation), in chain order.
    pub(crate) fn gauge_extensions(&self, series: usize) -> Vec<usize> {
        let mut exts = Vec::new();
        self.walk_gauge_chain(series, self.generation(series), |e| exts.push(e), |_| false);
        exts
    }

    /// Under the lock: allocate an extension of the series at `series`
    /// (generation `gen`) whose chain ended at `end`, and link it there.
    /// Returns its first entry. It asks for twice as many entries as the
    /// chain has (at least `gx::EXT_MIN_ENTRIES`, no more than the slots left),
    /// rounded up to fill its size class. The link is stored before the
    /// record is committed: a holder killed in between leaves a link to a
    /// WRITING record, which walks do not follow, the next rebuild frees,
    /// and the next extension of the series replaces.
    pub(crate) fn extend_gauge_chain(
        &self,
        guard: &AreaLockGuard<'_>,
        series: usize,
        gen: u64,
        end: &ChainEnd,
    ) -> Result<usize> {
        let slots = self.max_workers() as usize;
        if end.hops >= gx::MAX_HOPS || end.entries >= 2 * slots + gx::INLINE_ENTRIES {
            // Only a damaged chain (entries of unknown slots) gets here.
            return Err(Error::CorruptArea(format!(
                "gauge series at {series}: {} entries in {} extensions and none free",
                end.entries, end.hops
            )));
        }
        let want = (2 * end.entries)
            .max(gx::EXT_MIN_ENTRIES)
            .min(slots.saturating_sub(end.entries).max(1))
            .min(gx::EXT_MAX_ENTRIES);
        let (_, size) = size_class(gx::EXT_ENTRIES + want * gx::ENTRY_SIZE);
        let n = ((size - gx::EXT_ENTRIES) / gx::ENTRY_SIZE).min(gx::EXT_MAX_ENTRIES);
        let off = self.alloc(guard, KIND_GAUGE_EXT, gx::EXT_ENTRIES + n * gx::ENTRY_SIZE)?;
        let fields = (
            self.u32_at(off + gx::EXT_OWNER),
            self.u32_at(off + gx::EXT_N_ENTRIES),
            self.u64_at(off + gx::EXT_OWNER_GEN),
            self.u64_at(off + gx::EXT_LINK),
            self.u64_at(end.link),
        );
        let (Some(o), Some(c), Some(g), Some(l), Some(link)) = fields else {
            return Err(Error::CorruptArea(format!(
                "gauge extension at {off} does not fit the area"
            )));
        };
        o.store(series as u32, Ordering::Relaxed);
        c.store(n as u32, Ordering::Relaxed);
        g.store(gen, Ordering::Relaxed);
        l.store(0, Ordering::Relaxed);
        link.store(off as u64, Ordering::Release);
        self.commit(off, KIND_GAUGE_EXT);
        Ok(off + gx::EXT_ENTRIES)
    }
}
