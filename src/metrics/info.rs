//! Info: a series whose labels carry information (`build_info{version="1.2"} 1`).
//!
//! The `(name, value)` pairs given to [`Info::set`] are stored in a blob
//! record; the series' one cell holds the blob's offset and the low 32 bits
//! of its generation, swapped atomically; the replaced blob is freed (under
//! the area lock) for reuse. Setting the same pairs again allocates nothing.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{metric_handle, SeriesInner};
use crate::area::format::{blob, KIND_BLOB, MAX_LABELS, MAX_NAME_LEN, MAX_VALUE_LEN, STATE_LIVE};
use crate::area::records::{Record, RecordReader, RecordWriter};
use crate::area::AreaInner;
use crate::encoding::MetricType;
use crate::error::{Error, Result};

/// An info series handle.
///
/// ```
/// use promshm::{Area, AreaOptions, Opts};
///
/// let area = Area::anonymous(&AreaOptions::default())?;
/// let build = area.registry().info(Opts::new("build", "Build information."))?.get()?;
/// assert_eq!(build.get(), None);
/// build.set(&[("version", "1.2.3"), ("commit", "abc123")])?;
/// let pairs = build.get().unwrap();
/// assert_eq!(pairs[0], ("version".to_string(), "1.2.3".to_string()));
/// assert_eq!(pairs.len(), 2);
/// # Ok::<(), promshm::Error>(())
/// ```
#[derive(Clone)]
pub struct Info {
    pub(crate) series: Arc<SeriesInner>,
}

metric_handle!(Info, MetricType::Info);

impl Info {
    /// Replace the information pairs (label names must be valid and distinct
    /// from the family's own label names).
    pub fn set(&self, pairs: &[(&str, &str)]) -> Result<()> {
        let s = &self.series;
        let area = s.area();
        area.check_writable()?;
        if pairs.len() > MAX_LABELS {
            return Err(Error::InvalidArgument(format!(
                "at most {MAX_LABELS} info labels"
            )));
        }
        for (i, (k, v)) in pairs.iter().enumerate() {
            crate::validate::label_name(k)?;
            if *k == "le" || *k == "quantile" {
                return Err(Error::ReservedLabelName(k.to_string()));
            }
            if s.family.shape.label_names.iter().any(|n| n == k)
                || pairs[..i].iter().any(|(p, _)| p == k)
            {
                return Err(Error::DuplicateLabelName(k.to_string()));
            }
            crate::validate::label_values(1, &[v])?;
        }
        if self.get().as_deref()
            == Some(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>()[..],
            )
        {
            return Ok(());
        }
        let mut w = RecordWriter::with_fixed(blob::PAIRS);
        w.put_u32(blob::N_PAIRS, pairs.len() as u32);
        for (k, v) in pairs {
            w.push_str(k);
            w.push_str(v);
        }
        let guard = area.lock()?;
        // A removed series' handle updates nothing (checked under the lock:
        // no process frees the series meanwhile).
        let Some(cell) = s.cell(0) else {
            return Ok(());
        };
        let off = area.alloc(&guard, KIND_BLOB, w.len())?;
        area.write_bytes(off + blob::N_PAIRS, &w.buf[blob::N_PAIRS..]);
        area.commit(off, KIND_BLOB);
        let new = (area.generation(off) as u32 as u64) << 32 | off as u64;
        let old = cell.swap(new, Ordering::AcqRel);
        area.free_blob(&guard, old);
        Ok(())
    }

    /// The current pairs, or `None` if never set.
    pub fn get(&self) -> Option<Vec<(String, String)>> {
        let s = &self.series;
        let cell = s.cell(0)?.load(Ordering::Acquire);
        read_blob(s.area(), cell)
    }
}

/// Read and check the info blob an info cell holding `cell` refers to
/// (offset in the low 32 bits, the blob's generation in the high ones).
/// `None` if unset, damaged, or freed meanwhile.
pub(crate) fn read_blob(area: &AreaInner, cell: u64) -> Option<Vec<(String, String)>> {
    let off = cell as u32 as usize;
    let gen = (cell >> 32) as u32;
    let current = |area: &AreaInner| {
        area.record_state(off, KIND_BLOB) == Some(STATE_LIVE) && area.generation(off) as u32 == gen
    };
    if off == 0 || !current(area) {
        return None;
    }
    let pairs = read_blob_pairs(area, off)?;
    // Not freed (and perhaps reused) while it was read.
    current(area).then_some(pairs)
}

/// Check and read the pairs of the LIVE blob record at `off`.
pub(crate) fn read_blob_pairs(area: &AreaInner, off: usize) -> Option<Vec<(String, String)>> {
    let len = area.u32_at(off + 4)?.load(Ordering::Relaxed) as usize;
    if len < blob::PAIRS || off.checked_add(len)? > area.len() {
        return None;
    }
    let rec = Record {
        off,
        kind: KIND_BLOB,
        state: STATE_LIVE,
        len,
    };
    let mut r = RecordReader::new(area, rec, blob::N_PAIRS);
    let n = r.u32()? as usize;
    if n > MAX_LABELS {
        return None;
    }
    let _pad = r.u32()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let k = r.string(MAX_NAME_LEN)?;
        let v = r.string(MAX_VALUE_LEN)?;
        crate::validate::label_name(&k).ok()?;
        // What `set` refuses: reserved names and duplicates (they would make
        // the exposition invalid).
        if k == "le" || k == "quantile" || out.iter().any(|(p, _)| *p == k) {
            return None;
        }
        out.push((k, v));
    }
    r.at_end().then_some(out)
}

/// Render one info series: cell 0 holds the blob of its pairs, added to the
/// labels (a pair naming a label of the family makes the series bad).
pub(crate) fn emit(
    view: &super::view::SeriesCells<'_>,
    cx: super::view::Ctx<'_, '_>,
) -> Result<super::view::Emitted> {
    use super::view::Emitted;
    let pairs = read_blob(view.area(), view.cell(0)).unwrap_or_default();
    if pairs
        .iter()
        .any(|(k, _)| cx.shape.label_names.iter().any(|n| n == k))
    {
        return Ok(Emitted::Bad);
    }
    let mut labels = Vec::with_capacity(cx.labels.len() + pairs.len());
    labels.extend_from_slice(cx.labels);
    labels.extend(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if !view.same() {
        return Ok(Emitted::Skipped);
    }
    cx.enc
        .point(cx.desc, &labels, &crate::encoding::Point::Info)?;
    Ok(Emitted::Written)
}
