//! Exposition encoders: Prometheus text 0.0.4, OpenMetrics 1.0 text and
//! the Prometheus protobuf format.
//!
//! The registry walks the area and hands each family to an [`Encoder`] as a
//! [`FamilyDesc`] followed by its [`Point`]s. Encoders only format: naming
//! suffixes (`_total`, `_info`, `_bucket`, ...), escaping and numbers. They
//! stream into any [`std::io::Write`] through a small reusable buffer.

use std::ffi::CStr;
use std::io;

mod negotiate;
mod number;
mod openmetrics;
pub mod protobuf;
mod sample;
mod text;

pub use negotiate::{negotiate, negotiate_text, Format};
pub use number::{write_canonical_f64, write_f64, write_u64};
pub use openmetrics::OpenMetricsEncoder;
pub use protobuf::ProtobufEncoder;
pub use sample::{Sample, SampleEncoder};
pub use text::TextEncoder;
pub use text::{CreatedText, SeriesText};
pub(crate) use text::{KeptFamily, SeriesTextCache};

/// The type of a metric family, as stored in the area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MetricType {
    /// Monotonic counter (`_total`).
    Counter = 1,
    /// Gauge.
    Gauge = 2,
    /// Histogram with cumulative `le` buckets.
    Histogram = 3,
    /// Summary with `_count`, `_sum` and quantiles.
    Summary = 4,
    /// Info (`_info` with value 1).
    Info = 5,
    /// StateSet (Enum).
    StateSet = 6,
    /// Native (sparse, exponential-bucket) histogram. Exposed as a
    /// histogram; only the protobuf format carries its buckets.
    NativeHistogram = 7,
}

impl MetricType {
    /// Every metric type, in the order of their numbers.
    pub const ALL: [MetricType; 7] = [
        MetricType::Counter,
        MetricType::Gauge,
        MetricType::Histogram,
        MetricType::Summary,
        MetricType::Info,
        MetricType::StateSet,
        MetricType::NativeHistogram,
    ];

    /// Lower-case name, as in OpenMetrics `# TYPE` lines.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram | MetricType::NativeHistogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
        }
    }

    /// What a family of this type appends to its name in the sample names
    /// (and the Prometheus 0.0.4 `# HELP`/`# TYPE` names) it renders, in
    /// either text format, the bare name (`""`) first: every name the family
    /// renders is its name followed by one of these. Registration reserves
    /// all of them in the area.
    pub fn rendered_suffixes(self) -> impl Iterator<Item = &'static str> {
        self.rendered_suffixes_c()
            .iter()
            .map(|c| c.to_str().expect("the suffixes are ASCII"))
    }

    /// [`rendered_suffixes`](MetricType::rendered_suffixes) as C strings
    /// (the one table of them, also given out by the C API).
    pub(crate) fn rendered_suffixes_c(self) -> &'static [&'static CStr] {
        match self {
            MetricType::Counter => &[c"", c"_total", c"_created"],
            MetricType::Gauge | MetricType::StateSet => &[c""],
            MetricType::Histogram | MetricType::NativeHistogram => {
                &[c"", c"_bucket", c"_count", c"_sum", c"_created"]
            }
            MetricType::Summary => &[c"", c"_count", c"_sum", c"_created"],
            MetricType::Info => &[c"", c"_info"],
        }
    }

    /// Decode the byte stored in a family record.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => MetricType::Counter,
            2 => MetricType::Gauge,
            3 => MetricType::Histogram,
            4 => MetricType::Summary,
            5 => MetricType::Info,
            6 => MetricType::StateSet,
            7 => MetricType::NativeHistogram,
            _ => return None,
        })
    }
}

/// What an encoder needs to know about a family.
///
/// `name` is the base name: it already carries the registry prefix and the
/// unit suffix, but never the type suffixes (`_total`, `_info`) — encoders add those.
#[derive(Debug, Clone, Copy)]
pub struct FamilyDesc<'a> {
    /// Base name, e.g. `http_requests` or `request_duration_seconds`.
    pub name: &'a str,
    /// Help text, unescaped. Empty means none.
    pub help: &'a str,
    /// Unit, e.g. `seconds`. Empty means none.
    pub unit: &'a str,
    /// The family's type.
    pub kind: MetricType,
}

/// Label pairs of one series, in family order, unescaped.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// One series' values, ready to format.
#[derive(Debug, Clone, Copy)]
pub enum Point<'a> {
    /// A counter total and its creation time (Unix seconds).
    Counter {
        /// Current total.
        value: f64,
        /// Creation time in Unix seconds, if known.
        created: Option<f64>,
    },
    /// A gauge value.
    Gauge {
        /// Current value.
        value: f64,
    },
    /// A histogram. `buckets` are `(upper bound, cumulative count)` in increasing
    /// order and the last bound is `+Inf`; its count is the `_count`.
    Histogram {
        /// Cumulative buckets, ending with `+Inf`.
        buckets: &'a [(f64, u64)],
        /// Sum of observations.
        sum: f64,
        /// Creation time in Unix seconds, if known.
        created: Option<f64>,
    },
    /// A summary with its `(quantile, value)` pairs (possibly none).
    Summary {
        /// `(quantile, value)` in increasing quantile order; value NaN when empty.
        quantiles: &'a [(f64, f64)],
        /// Number of observations.
        count: u64,
        /// Sum of observations.
        sum: f64,
        /// Creation time in Unix seconds, if known.
        created: Option<f64>,
    },
    /// A native histogram: sparse exponential buckets (see
    /// `metrics::native`), perhaps with classic buckets too. Text formats
    /// show its classic buckets (or only one `+Inf` bucket), count and sum;
    /// protobuf carries it whole.
    NativeHistogram {
        /// The schema of the buckets (after any reduction).
        schema: i32,
        /// Values with `|v| <= zero_threshold` are in the zero bucket.
        zero_threshold: f64,
        /// The zero bucket's count.
        zero_count: u64,
        /// Number of observations (the zero bucket plus every bucket).
        count: u64,
        /// Sum of observations.
        sum: f64,
        /// Populated positive buckets `(index, count)`, increasing index.
        positive: &'a [(i32, u64)],
        /// Populated negative buckets `(index of |v|, count)`, increasing index.
        negative: &'a [(i32, u64)],
        /// The classic buckets of a family that has them too, as
        /// [`Point::Histogram`]'s (cumulative, ending with `+Inf` = `count`);
        /// empty for a native-only family.
        classic: &'a [(f64, u64)],
        /// Creation time in Unix seconds, if known.
        created: Option<f64>,
    },
    /// An info metric: the labels are the information, the value is 1.
    Info,
    /// A state set: every state and whether it is set.
    StateSet {
        /// `(state name, is set)` for every state of the family.
        states: &'a [(&'a str, bool)],
    },
}

impl<'a> Point<'a> {
    /// The point the text formats (and samples) write for this one: a
    /// native histogram becomes a classic histogram with its classic
    /// buckets or else one `+Inf` bucket (held in `inf`), its count and its
    /// sum, as client_golang exposes one in text (those formats cannot carry
    /// native buckets); every other point is itself.
    pub(crate) fn for_text<'b>(&'b self, inf: &'b mut [(f64, u64); 1]) -> Point<'b> {
        match *self {
            Point::NativeHistogram {
                count,
                sum,
                classic,
                created,
                ..
            } => {
                inf[0] = (f64::INFINITY, count);
                Point::Histogram {
                    buckets: if classic.is_empty() {
                        &inf[..]
                    } else {
                        classic
                    },
                    sum,
                    created,
                }
            }
            p => p,
        }
    }
}

/// An exemplar of a series, as the area holds it: the newest one any
/// process saw for its slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// The slot: 0 for a counter, the bucket's index (into the point's
    /// buckets) for a classic histogram, the slot for a native one.
    pub bucket: usize,
    /// Its labels, e.g. `trace_id`.
    pub labels: Vec<(String, String)>,
    /// The increment or observation it was given with.
    pub value: f64,
    /// When it was stored, Unix seconds.
    pub timestamp: f64,
}

/// A histogram's count: its cumulative `+Inf` bucket (the last), 0 if none.
pub(crate) fn histogram_count(buckets: &[(f64, u64)]) -> u64 {
    buckets.last().map_or(0, |b| b.1)
}

/// A streaming exposition encoder.
///
/// Call [`family`](Encoder::family) once per family (families sorted by name,
/// never twice), then [`point`](Encoder::point) for each of its series, then
/// [`finish`](Encoder::finish) once.
pub trait Encoder {
    /// Start a family: writes its metadata lines.
    fn family(&mut self, family: &FamilyDesc<'_>) -> io::Result<()>;
    /// Write one series of the current family.
    fn point(
        &mut self,
        family: &FamilyDesc<'_>,
        labels: Labels<'_>,
        point: &Point<'_>,
    ) -> io::Result<()>;
    /// Write one series with its exemplars (none: the same as
    /// [`point`](Encoder::point)). Formats without exemplars (0.0.4 text,
    /// samples) ignore them: this default.
    fn point_with_exemplars(
        &mut self,
        family: &FamilyDesc<'_>,
        labels: Labels<'_>,
        point: &Point<'_>,
        exemplars: &[Exemplar],
    ) -> io::Result<()> {
        let _ = exemplars;
        self.point(family, labels, point)
    }
    /// Write one series of the current family like [`point`](Encoder::point)
    /// would with the series' labels, from the text the render keeps for the
    /// series from one render to the next ([`SeriesText`]: its labels
    /// already encoded, its last `_created` text). `Ok(false)`: not written
    /// (the default; the text encoders write counters and gauges), the
    /// caller writes it with `point`.
    fn point_text(
        &mut self,
        family: &FamilyDesc<'_>,
        text: SeriesText<'_>,
        point: &Point<'_>,
    ) -> io::Result<bool> {
        let _ = (family, text, point);
        Ok(false)
    }
    /// Whether [`point_text`](Encoder::point_text) uses the text (if not,
    /// the render keeps none for this encoder).
    fn keeps_series_text(&self) -> bool {
        false
    }
    /// End the exposition (OpenMetrics writes `# EOF`) and flush the writer.
    fn finish(&mut self) -> io::Result<()>;
}

/// Run `f` with the encoder for `format` appending to `out`: the text
/// formats write into `out` itself (no copy of the text from a line buffer
/// into it), protobuf through its line buffer as [`encoder`] does.
pub(crate) fn with_vec_encoder<R>(
    format: Format,
    out: &mut Vec<u8>,
    f: impl FnOnce(&mut dyn Encoder) -> R,
) -> R {
    match format {
        Format::Prometheus => {
            let mut enc = TextEncoder::into_vec(std::mem::take(out));
            let r = f(&mut enc);
            *out = enc.into_buffer();
            r
        }
        Format::OpenMetrics => {
            let mut enc = OpenMetricsEncoder::into_vec(std::mem::take(out));
            let r = f(&mut enc);
            *out = enc.into_buffer();
            r
        }
        Format::Protobuf => f(&mut ProtobufEncoder::new(out)),
    }
}

/// Make the encoder for `format` over `out`.
pub fn encoder<'w, W: io::Write + 'w>(format: Format, out: W) -> Box<dyn Encoder + 'w> {
    match format {
        Format::Prometheus => Box::new(TextEncoder::new(out)),
        Format::OpenMetrics => Box::new(OpenMetricsEncoder::new(out)),
        Format::Protobuf => Box::new(ProtobufEncoder::new(out)),
    }
}
