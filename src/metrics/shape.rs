//! The shape of a family (everything but its series), and its record encoding.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::gauge::GaugeMode;
use super::sketch::SKETCH_BUCKETS;
use crate::area::format::*;
use crate::area::index::{FamilyShape, SeriesLinks};
use crate::area::records::{Record, RecordReader, RecordWriter};
use crate::area::AreaInner;
use crate::encoding::MetricType;

/// Family metadata as stored in the area.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Shape {
    pub kind: MetricType,
    /// Full name: prefix and unit included.
    pub name: String,
    pub help: String,
    pub unit: String,
    /// All label names, constant labels first.
    pub label_names: Vec<String>,
    /// Histogram upper bounds (without +Inf) or summary quantiles.
    pub params: Vec<f64>,
    /// StateSet states.
    pub states: Vec<String>,
    pub gauge_mode: GaugeMode,
    /// Summary window: number of age buckets (0 = no window) and max age.
    pub age_buckets: u32,
    pub max_age_ms: u64,
}

impl Shape {
    /// A shape of `kind` with nothing else set.
    pub(crate) fn new(kind: MetricType, name: String, help: String, unit: String) -> Self {
        Shape {
            kind,
            name,
            help,
            unit,
            label_names: Vec::new(),
            params: Vec::new(),
            states: Vec::new(),
            gauge_mode: GaugeMode::Sum,
            age_buckets: 0,
            max_age_ms: 0,
        }
    }

    /// Number of u64 value cells in each series record (since format 4 the
    /// same for any number of worker slots).
    /// Counters and histograms end with their exemplar link cell
    /// (`super::exemplar`).
    #[inline]
    pub(crate) fn n_cells(&self, _max_workers: u32) -> usize {
        match self.kind {
            MetricType::Counter => super::counter::VALUE_CELLS + super::exemplar::LINK_CELLS,
            MetricType::Gauge => super::gauge::cells(),
            MetricType::Histogram => 1 + self.params.len() + 1 + super::exemplar::LINK_CELLS,
            MetricType::Summary => {
                let windows = self.age_buckets.max(1) as usize;
                let epoch = usize::from(self.age_buckets > 0);
                2 + windows * (epoch + SKETCH_BUCKETS)
            }
            MetricType::Info => 1,
            MetricType::StateSet => 1,
            MetricType::NativeHistogram => {
                super::native::Layout::from_params(&self.params).map_or(2, |l| l.n_cells())
                    + super::exemplar::LINK_CELLS
            }
        }
    }

    /// Why `other` is not the same family, if it is not. Help text is not compared.
    pub(crate) fn difference(&self, other: &Shape) -> Option<String> {
        if self.kind != other.kind {
            return Some(format!(
                "type {} vs {}",
                self.kind.as_str(),
                other.kind.as_str()
            ));
        }
        if self.label_names != other.label_names {
            return Some(format!(
                "labels {:?} vs {:?}",
                self.label_names, other.label_names
            ));
        }
        if self.unit != other.unit {
            return Some(format!("unit {:?} vs {:?}", self.unit, other.unit));
        }
        let same_params = self.params.len() == other.params.len()
            && self
                .params
                .iter()
                .zip(&other.params)
                .all(|(a, b)| a.to_bits() == b.to_bits());
        if !same_params && self.kind == MetricType::NativeHistogram {
            return Some(format!(
                "native histogram [schema, zero threshold, lo, hi, max buckets, classic bounds...] {:?} vs {:?}",
                self.params, other.params
            ));
        }
        if !same_params {
            return Some(format!(
                "buckets/quantiles {:?} vs {:?}",
                self.params, other.params
            ));
        }
        if self.states != other.states {
            return Some(format!("states {:?} vs {:?}", self.states, other.states));
        }
        if self.kind == MetricType::Gauge && self.gauge_mode != other.gauge_mode {
            return Some(format!(
                "gauge mode {} vs {}",
                self.gauge_mode.as_str(),
                other.gauge_mode.as_str()
            ));
        }
        if self.age_buckets != other.age_buckets || self.max_age_ms != other.max_age_ms {
            return Some(format!(
                "summary window {}ms/{} vs {}ms/{}",
                self.max_age_ms, self.age_buckets, other.max_age_ms, other.age_buckets
            ));
        }
        None
    }

    /// The family record bytes (header left zero; `alloc` writes it).
    pub(crate) fn encode(&self, eager: bool, max_workers: u32) -> RecordWriter {
        let mut w = RecordWriter::with_fixed(fam::PARAMS);
        w.put_u64(
            fam::NAME_HASH,
            crate::area::records::hash_strings([self.name.as_str()]),
        );
        w.put_u8(fam::TYPE, self.kind as u8);
        w.put_u8(fam::GAUGE_MODE, self.gauge_mode as u8);
        w.put_u8(fam::FLAGS, u8::from(eager));
        w.put_u8(fam::N_LABELS, self.label_names.len() as u8);
        w.put_u16(fam::N_PARAMS, self.params.len() as u16);
        w.put_u16(fam::N_STATES, self.states.len() as u16);
        w.put_u32(fam::AGE_BUCKETS, self.age_buckets);
        w.put_u32(fam::N_CELLS, self.n_cells(max_workers) as u32);
        w.put_u64(fam::MAX_AGE_MS, self.max_age_ms);
        for &p in &self.params {
            w.push_f64(p);
        }
        w.push_str(&self.name);
        w.push_str(&self.help);
        w.push_str(&self.unit);
        for l in &self.label_names {
            w.push_str(l);
        }
        for s in &self.states {
            w.push_str(s);
        }
        w
    }

    /// Decode and check a family record; `None` if anything is off.
    pub(crate) fn decode(area: &AreaInner, rec: Record) -> Option<Shape> {
        let mut fixed = [0u8; fam::PARAMS - fam::TYPE];
        if !area.read_bytes(rec.off + fam::TYPE, &mut fixed) {
            return None;
        }
        let at = |o: usize| o - fam::TYPE;
        let kind = MetricType::from_u8(fixed[at(fam::TYPE)])?;
        let gauge_mode = GaugeMode::from_u8(fixed[at(fam::GAUGE_MODE)])?;
        let n_labels = fixed[at(fam::N_LABELS)] as usize;
        let le16 = |o: usize| u16::from_le_bytes([fixed[at(o)], fixed[at(o) + 1]]) as usize;
        let le32 =
            |o: usize| u32::from_le_bytes(fixed[at(o)..at(o) + 4].try_into().expect("4 bytes"));
        let n_params = le16(fam::N_PARAMS);
        let n_states = le16(fam::N_STATES);
        let age_buckets = le32(fam::AGE_BUCKETS);
        let n_cells = le32(fam::N_CELLS) as usize;
        let max_age_ms = u64::from_le_bytes(
            fixed[at(fam::MAX_AGE_MS)..at(fam::MAX_AGE_MS) + 8]
                .try_into()
                .expect("8 bytes"),
        );
        if n_labels > MAX_LABELS
            || n_params > MAX_PARAMS
            || n_states > MAX_STATES
            || age_buckets > 64
        {
            return None;
        }
        let mut r = RecordReader::new(area, rec, fam::PARAMS);
        let mut params = Vec::with_capacity(n_params);
        for _ in 0..n_params {
            params.push(r.f64()?);
        }
        let name = r.string(MAX_NAME_LEN)?;
        let help = r.string(MAX_HELP_LEN)?;
        let unit = r.string(MAX_NAME_LEN)?;
        let mut label_names = Vec::with_capacity(n_labels);
        for _ in 0..n_labels {
            label_names.push(r.string(MAX_NAME_LEN)?);
        }
        let mut states = Vec::with_capacity(n_states);
        for _ in 0..n_states {
            states.push(r.string(MAX_NAME_LEN)?);
        }
        if !r.at_end() {
            return None;
        }
        let shape = Shape {
            kind,
            name,
            help,
            unit,
            label_names,
            params,
            states,
            gauge_mode,
            age_buckets,
            max_age_ms,
        };
        // Everything a renderer relies on must hold, whoever wrote the bytes.
        shape.check().ok()?;
        if n_cells != shape.n_cells(area.max_workers()) {
            return None;
        }
        Some(shape)
    }

    /// The invariants registration enforces (re-checked on decode).
    pub(crate) fn check(&self) -> crate::error::Result<()> {
        use crate::error::Error;
        crate::validate::metric_name(&self.name)?;
        crate::validate::help(&self.help)?;
        crate::validate::unit(&self.unit, self.kind)?;
        crate::validate::label_names(&self.label_names, self.kind, &self.name)?;
        if self.label_names.len() > MAX_LABELS {
            return Err(Error::InvalidArgument(format!(
                "at most {MAX_LABELS} labels"
            )));
        }
        match self.kind {
            MetricType::Histogram => super::histogram::check_buckets(&self.params)?,
            MetricType::Summary => {
                super::summary::check_quantiles(&self.params, self.age_buckets, self.max_age_ms)?
            }
            MetricType::StateSet => super::stateset::check_states(&self.states)?,
            MetricType::NativeHistogram => super::native::check_params(&self.params)?,
            _ => {
                if !self.params.is_empty() || !self.states.is_empty() {
                    return Err(Error::InvalidArgument("unexpected parameters".into()));
                }
            }
        }
        if self.kind == MetricType::Gauge
            && self.gauge_mode == GaugeMode::All
            && self
                .label_names
                .iter()
                .any(|l| l == super::gauge::WORKER_LABEL)
        {
            return Err(Error::ReservedLabelName(super::gauge::WORKER_LABEL.into()));
        }
        Ok(())
    }
}

/// What the area's series index needs of a family: the shape is the one
/// place that knows its type's cells and the records hanging off a series.
impl FamilyShape for Shape {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> MetricType {
        self.kind
    }

    fn n_cells(&self, max_workers: u32) -> usize {
        Shape::n_cells(self, max_workers)
    }

    fn series_values(&self, area: &AreaInner, rec: Record, out: &mut Vec<String>) -> Option<()> {
        super::view::read_series_values(area, rec, self, out)
    }

    /// An info series' blob (its cell 0), a gauge series' extensions, a
    /// counter's or histogram's exemplar record.
    fn series_links(&self, area: &AreaInner, off: usize) -> SeriesLinks {
        let blob = (self.kind == MetricType::Info)
            .then(|| {
                area.u64_at(off + ser::CELLS)
                    .map(|c| c.load(Ordering::Acquire))
            })
            .flatten();
        let mut records = if self.kind == MetricType::Gauge {
            area.gauge_extensions(off)
        } else {
            Vec::new()
        };
        records.extend(super::exemplar::record_of_series(area, off, self));
        SeriesLinks { blob, records }
    }
}

/// Decode a family record for the area's series index
/// (`area::index::DecodeFamily`).
pub(crate) fn decode_family(area: &AreaInner, rec: Record) -> Option<Arc<dyn FamilyShape>> {
    Shape::decode(area, rec).map(|s| Arc::new(s) as Arc<dyn FamilyShape>)
}
