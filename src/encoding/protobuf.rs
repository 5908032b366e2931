//! The Prometheus protobuf exposition format: length-delimited
//! `io.prometheus.client.MetricFamily` messages
//! (`application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited`).
//!
//! The messages are written out by hand with `prost`'s derive, mirroring the
//! field numbers of `io/prometheus/client/metrics.proto` (proto2, so every
//! scalar is optional and present only when set), instead of generated from
//! the `.proto` file at build time: no `protoc` is needed to build the
//! library, and the file is small and frozen (fields are only ever added).
//! Exemplars: a counter's in `Counter.exemplar`, a classic histogram's in
//! its buckets' `exemplar` (an exemplar of the `+Inf` bucket adds that
//! bucket, as client_golang does), a native histogram's in `exemplars` and
//! its newest also on a `+Inf` bucket (what receivers older than the
//! `exemplars` field read; the text formats show that bucket too); a native
//! histogram with classic buckets too has each on its classic bucket and all
//! in `exemplars`.
//!
//! How each type maps, following client_golang and the 0.0.4 text format
//! (so a scrape stores the same series whichever format it negotiated):
//! - counter: `COUNTER` named `name_total`, with `created_timestamp`;
//! - gauge: `GAUGE`;
//! - histogram: `HISTOGRAM` with `sample_count`, `sample_sum`, the finite
//!   cumulative buckets (the `+Inf` bucket is `sample_count`, as
//!   client_golang leaves it out) and `created_timestamp`;
//! - native histogram: `HISTOGRAM` with the count, sum, schema, zero bucket,
//!   spans and deltas, and, for a family with classic buckets too, those
//!   finite cumulative buckets in the same message (as client_golang);
//! - summary: `SUMMARY` with the quantiles, count, sum, `created_timestamp`;
//! - info: `GAUGE` named `name_info` with value 1 (protobuf has no info type);
//! - stateset: `GAUGE` named `name`, one metric per state with the label
//!   `name="state"` and value 1 or 0 (protobuf has no state-set type).
//!
//! A family without series is left out (client_golang does the same). Each
//! family is held until the next one starts, then written as one message.

use std::io::{self, Write};

use prost::Message;

use super::text::LineBuf;
use super::{Encoder, Exemplar, FamilyDesc, Labels, MetricType, Point};

/// The messages of `io/prometheus/client/metrics.proto`.
pub mod proto {
    /// `io.prometheus.client.MetricType`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum MetricType {
        /// A monotonic counter.
        Counter = 0,
        /// A gauge.
        Gauge = 1,
        /// A summary.
        Summary = 2,
        /// A sample of unknown type.
        Untyped = 3,
        /// A histogram (classic, native, or both).
        Histogram = 4,
        /// A gauge histogram.
        GaugeHistogram = 5,
    }

    /// `google.protobuf.Timestamp`.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Timestamp {
        /// Seconds since the Unix epoch.
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        /// Nanoseconds within the second, 0..=999_999_999.
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }

    /// `LabelPair`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPair {
        /// Label name.
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        /// Label value.
        #[prost(string, optional, tag = "2")]
        pub value: Option<String>,
    }

    /// `Gauge`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Gauge {
        /// Value.
        #[prost(double, optional, tag = "1")]
        pub value: Option<f64>,
    }

    /// `Counter`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Counter {
        /// Total.
        #[prost(double, optional, tag = "1")]
        pub value: Option<f64>,
        /// The latest exemplar.
        #[prost(message, optional, tag = "2")]
        pub exemplar: Option<Exemplar>,
        /// When the series started counting.
        #[prost(message, optional, tag = "3")]
        pub created_timestamp: Option<Timestamp>,
    }

    /// `Quantile`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Quantile {
        /// The quantile (0..=1).
        #[prost(double, optional, tag = "1")]
        pub quantile: Option<f64>,
        /// Its value.
        #[prost(double, optional, tag = "2")]
        pub value: Option<f64>,
    }

    /// `Summary`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Summary {
        /// Number of observations.
        #[prost(uint64, optional, tag = "1")]
        pub sample_count: Option<u64>,
        /// Sum of observations.
        #[prost(double, optional, tag = "2")]
        pub sample_sum: Option<f64>,
        /// Quantiles.
        #[prost(message, repeated, tag = "3")]
        pub quantile: Vec<Quantile>,
        /// When the series started.
        #[prost(message, optional, tag = "4")]
        pub created_timestamp: Option<Timestamp>,
    }

    /// `Untyped`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Untyped {
        /// Value.
        #[prost(double, optional, tag = "1")]
        pub value: Option<f64>,
    }

    /// `Histogram`: classic buckets and the native (sparse) representation.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Histogram {
        /// Number of observations.
        #[prost(uint64, optional, tag = "1")]
        pub sample_count: Option<u64>,
        /// Number of observations, for float histograms.
        #[prost(double, optional, tag = "4")]
        pub sample_count_float: Option<f64>,
        /// Sum of observations.
        #[prost(double, optional, tag = "2")]
        pub sample_sum: Option<f64>,
        /// Classic buckets, in increasing order.
        #[prost(message, repeated, tag = "3")]
        pub bucket: Vec<Bucket>,
        /// When the series started.
        #[prost(message, optional, tag = "15")]
        pub created_timestamp: Option<Timestamp>,
        /// Native: the schema (resolution).
        #[prost(sint32, optional, tag = "5")]
        pub schema: Option<i32>,
        /// Native: the zero bucket's width.
        #[prost(double, optional, tag = "6")]
        pub zero_threshold: Option<f64>,
        /// Native: the zero bucket's count.
        #[prost(uint64, optional, tag = "7")]
        pub zero_count: Option<u64>,
        /// Native: the zero bucket's count, for float histograms.
        #[prost(double, optional, tag = "8")]
        pub zero_count_float: Option<f64>,
        /// Native: the spans of populated negative buckets.
        #[prost(message, repeated, tag = "9")]
        pub negative_span: Vec<BucketSpan>,
        /// Native: negative bucket counts, each as a delta to the previous one.
        #[prost(sint64, repeated, packed = "false", tag = "10")]
        pub negative_delta: Vec<i64>,
        /// Native: negative bucket counts, for float histograms.
        #[prost(double, repeated, packed = "false", tag = "11")]
        pub negative_count: Vec<f64>,
        /// Native: the spans of populated positive buckets.
        #[prost(message, repeated, tag = "12")]
        pub positive_span: Vec<BucketSpan>,
        /// Native: positive bucket counts, each as a delta to the previous one.
        #[prost(sint64, repeated, packed = "false", tag = "13")]
        pub positive_delta: Vec<i64>,
        /// Native: positive bucket counts, for float histograms.
        #[prost(double, repeated, packed = "false", tag = "14")]
        pub positive_count: Vec<f64>,
        /// Native: exemplars.
        #[prost(message, repeated, tag = "16")]
        pub exemplars: Vec<Exemplar>,
    }

    /// `Bucket` of a classic histogram.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Bucket {
        /// Observations less than or equal to `upper_bound`.
        #[prost(uint64, optional, tag = "1")]
        pub cumulative_count: Option<u64>,
        /// The same, for float histograms.
        #[prost(double, optional, tag = "4")]
        pub cumulative_count_float: Option<f64>,
        /// Inclusive upper bound.
        #[prost(double, optional, tag = "2")]
        pub upper_bound: Option<f64>,
        /// The latest exemplar in this bucket.
        #[prost(message, optional, tag = "3")]
        pub exemplar: Option<Exemplar>,
    }

    /// `BucketSpan` of a native histogram.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct BucketSpan {
        /// Gap to the previous span (or the start, for the first one).
        #[prost(sint32, optional, tag = "1")]
        pub offset: Option<i32>,
        /// Number of consecutive buckets.
        #[prost(uint32, optional, tag = "2")]
        pub length: Option<u32>,
    }

    /// `Exemplar`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        /// Its labels (e.g. a trace id).
        #[prost(message, repeated, tag = "1")]
        pub label: Vec<LabelPair>,
        /// The observed value.
        #[prost(double, optional, tag = "2")]
        pub value: Option<f64>,
        /// When it was observed.
        #[prost(message, optional, tag = "3")]
        pub timestamp: Option<Timestamp>,
    }

    /// `Metric`: one series.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metric {
        /// Its labels.
        #[prost(message, repeated, tag = "1")]
        pub label: Vec<LabelPair>,
        /// Set for a gauge.
        #[prost(message, optional, tag = "2")]
        pub gauge: Option<Gauge>,
        /// Set for a counter.
        #[prost(message, optional, tag = "3")]
        pub counter: Option<Counter>,
        /// Set for a summary.
        #[prost(message, optional, tag = "4")]
        pub summary: Option<Summary>,
        /// Set for an untyped sample.
        #[prost(message, optional, tag = "5")]
        pub untyped: Option<Untyped>,
        /// Set for a histogram.
        #[prost(message, optional, tag = "7")]
        pub histogram: Option<Histogram>,
        /// An explicit sample time (never set by promshm).
        #[prost(int64, optional, tag = "6")]
        pub timestamp_ms: Option<i64>,
    }

    /// `MetricFamily`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricFamily {
        /// The name every series of it has.
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        /// Help text.
        #[prost(string, optional, tag = "2")]
        pub help: Option<String>,
        /// Its type.
        #[prost(enumeration = "MetricType", optional, tag = "3")]
        pub r#type: Option<i32>,
        /// Its series.
        #[prost(message, repeated, tag = "4")]
        pub metric: Vec<Metric>,
        /// Unit, e.g. `seconds`.
        #[prost(string, optional, tag = "5")]
        pub unit: Option<String>,
    }
}

use proto::MetricType as PbType;

/// Encoder for the length-delimited protobuf format. See the module docs
/// for how each type maps; [`Encoder::finish`] writes the last family.
pub struct ProtobufEncoder<W: Write> {
    lb: LineBuf<W>,
    current: Option<proto::MetricFamily>,
}

impl<W: Write> ProtobufEncoder<W> {
    /// Make an encoder writing to `out`.
    pub fn new(out: W) -> Self {
        ProtobufEncoder {
            lb: LineBuf::new(out),
            current: None,
        }
    }

    /// Write the family in progress, if it has series.
    fn close_family(&mut self) -> io::Result<()> {
        if let Some(mf) = self.current.take() {
            if !mf.metric.is_empty() {
                mf.encode_length_delimited(&mut self.lb.buf)
                    .map_err(io::Error::other)?;
            }
        }
        self.lb.maybe_flush()
    }
}

/// The family name and type as stored by a scrape (see the module docs).
fn family_name_and_type(family: &FamilyDesc<'_>) -> (String, PbType) {
    let name = family.name;
    match family.kind {
        MetricType::Counter => (format!("{name}_total"), PbType::Counter),
        MetricType::Gauge | MetricType::StateSet => (name.to_owned(), PbType::Gauge),
        MetricType::Histogram | MetricType::NativeHistogram => (name.to_owned(), PbType::Histogram),
        MetricType::Summary => (name.to_owned(), PbType::Summary),
        MetricType::Info => (format!("{name}_info"), PbType::Gauge),
    }
}

fn label_pairs(labels: Labels<'_>) -> Vec<proto::LabelPair> {
    labels
        .iter()
        .map(|&(k, v)| proto::LabelPair {
            name: Some(k.to_owned()),
            value: Some(v.to_owned()),
        })
        .collect()
}

/// A Unix time in seconds as a `Timestamp` (`None` if not finite or out of range).
pub(super) fn timestamp(secs: f64) -> Option<proto::Timestamp> {
    if !secs.is_finite() || secs.abs() > 1e15 {
        return None;
    }
    let whole = secs.floor();
    let nanos = ((secs - whole) * 1e9).round().min(999_999_999.0);
    Some(proto::Timestamp {
        seconds: whole as i64,
        nanos: nanos as i32,
    })
}

fn gauge(labels: Vec<proto::LabelPair>, value: f64) -> proto::Metric {
    proto::Metric {
        label: labels,
        gauge: Some(proto::Gauge { value: Some(value) }),
        ..Default::default()
    }
}

/// Spans and deltas of sorted populated buckets `(index, count)`, as
/// client_golang's `makeBuckets` writes them: a new span after a gap of more
/// than two empty buckets, smaller gaps filled with zero counts.
pub fn spans_and_deltas(buckets: &[(i32, u64)]) -> (Vec<proto::BucketSpan>, Vec<i64>) {
    let mut spans: Vec<proto::BucketSpan> = Vec::new();
    let mut deltas = Vec::with_capacity(buckets.len());
    let (mut prev, mut next) = (0i64, 0i32);
    let mut push = |spans: &mut Vec<proto::BucketSpan>, count: i64| {
        if let Some(s) = spans.last_mut() {
            s.length = Some(s.length() + 1);
        }
        deltas.push(count.wrapping_sub(prev));
        prev = count;
    };
    for (n, &(i, count)) in buckets.iter().enumerate() {
        let gap = i.wrapping_sub(next);
        if n == 0 || gap > 2 {
            spans.push(proto::BucketSpan {
                offset: Some(gap),
                length: Some(0),
            });
        } else {
            for _ in 0..gap {
                push(&mut spans, 0);
            }
        }
        push(&mut spans, count as i64);
        next = i.wrapping_add(1);
    }
    (spans, deltas)
}

/// The classic buckets of a `Histogram` message: `(bound, cumulative
/// count)` without the `+Inf` one (implied by `sample_count`).
fn classic_buckets(buckets: &[(f64, u64)]) -> Vec<proto::Bucket> {
    buckets
        .iter()
        .filter(|b| b.0 != f64::INFINITY)
        .map(|&(le, n)| proto::Bucket {
            cumulative_count: Some(n),
            upper_bound: Some(le),
            ..Default::default()
        })
        .collect()
}

/// The `Histogram` message of a native histogram point: schema, zero
/// bucket, spans and deltas, count, sum, and the classic buckets of a
/// family that has them too (client_golang's `Buckets` beside
/// `NativeHistogramBucketFactor`: both views in one message).
fn native_histogram(point: &Point<'_>) -> proto::Histogram {
    let Point::NativeHistogram {
        schema,
        zero_threshold,
        zero_count,
        count,
        sum,
        positive,
        negative,
        classic,
        created,
    } = *point
    else {
        return proto::Histogram::default();
    };
    let (mut positive_span, positive_delta) = spans_and_deltas(positive);
    let (negative_span, negative_delta) = spans_and_deltas(negative);
    if zero_threshold == 0.0
        && zero_count == 0
        && positive_span.is_empty()
        && negative_span.is_empty()
    {
        // As client_golang: without it, an empty native histogram with a
        // zero threshold of 0 would look like a classic one.
        positive_span.push(proto::BucketSpan {
            offset: Some(0),
            length: Some(0),
        });
    }
    proto::Histogram {
        sample_count: Some(count),
        sample_sum: Some(sum),
        schema: Some(schema),
        zero_threshold: Some(zero_threshold),
        zero_count: Some(zero_count),
        positive_span,
        positive_delta,
        negative_span,
        negative_delta,
        bucket: classic_buckets(classic),
        created_timestamp: created.and_then(timestamp),
        ..Default::default()
    }
}

fn exemplar(e: &Exemplar) -> proto::Exemplar {
    proto::Exemplar {
        label: e
            .labels
            .iter()
            .map(|(k, v)| proto::LabelPair {
                name: Some(k.clone()),
                value: Some(v.clone()),
            })
            .collect(),
        value: Some(e.value),
        timestamp: timestamp(e.timestamp),
    }
}

/// Put the exemplars of a series into its metric (see the module docs).
fn add_exemplars(m: &mut proto::Metric, point: &Point<'_>, exemplars: &[Exemplar]) {
    if let Some(c) = m.counter.as_mut() {
        c.exemplar = exemplars.iter().find(|e| e.bucket == 0).map(exemplar);
    }
    let Some(h) = m.histogram.as_mut() else {
        return;
    };
    match *point {
        Point::NativeHistogram { classic, .. } if !classic.is_empty() => {
            // Both views: each classic bucket's exemplar on its bucket, and
            // all of them as the native histogram's.
            bucket_exemplars(h, classic, exemplars);
            h.exemplars = exemplars.iter().map(exemplar).collect();
        }
        Point::NativeHistogram { count, .. } => {
            h.exemplars = exemplars.iter().map(exemplar).collect();
            // Receivers that predate `exemplars` (Prometheus before 2.49)
            // read a native histogram's exemplars from its classic buckets:
            // the one `+Inf` bucket the text formats show too, with the
            // newest exemplar.
            let newest = exemplars
                .iter()
                .max_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
            if let (true, Some(e)) = (h.bucket.is_empty(), newest) {
                h.bucket.push(proto::Bucket {
                    cumulative_count: Some(count),
                    upper_bound: Some(f64::INFINITY),
                    exemplar: Some(exemplar(e)),
                    ..Default::default()
                });
            }
        }
        Point::Histogram { buckets, .. } => bucket_exemplars(h, buckets, exemplars),
        _ => {}
    }
}

/// Put each exemplar of a classic histogram (slot = bucket index into
/// `buckets`, `+Inf` last) on its bucket of `h`; the `+Inf` one on a `+Inf`
/// bucket added for it.
fn bucket_exemplars(h: &mut proto::Histogram, buckets: &[(f64, u64)], exemplars: &[Exemplar]) {
    for e in exemplars {
        if let Some(b) = h.bucket.get_mut(e.bucket) {
            b.exemplar = Some(exemplar(e));
        } else if e.bucket + 1 == buckets.len() {
            h.bucket.push(proto::Bucket {
                cumulative_count: Some(super::histogram_count(buckets)),
                upper_bound: Some(f64::INFINITY),
                exemplar: Some(exemplar(e)),
                ..Default::default()
            });
        }
    }
}

/// The metrics (one, or one per state of a state set) of one series.
fn metrics(family: &FamilyDesc<'_>, labels: Labels<'_>, point: &Point<'_>) -> Vec<proto::Metric> {
    let label = label_pairs(labels);
    let one = match *point {
        Point::Counter { value, created } => proto::Metric {
            label,
            counter: Some(proto::Counter {
                value: Some(value),
                exemplar: None,
                created_timestamp: created.and_then(timestamp),
            }),
            ..Default::default()
        },
        Point::Gauge { value } => gauge(label, value),
        Point::Histogram {
            buckets,
            sum,
            created,
        } => proto::Metric {
            label,
            histogram: Some(proto::Histogram {
                sample_count: Some(super::histogram_count(buckets)),
                sample_sum: Some(sum),
                bucket: classic_buckets(buckets),
                created_timestamp: created.and_then(timestamp),
                ..Default::default()
            }),
            ..Default::default()
        },
        Point::NativeHistogram { .. } => proto::Metric {
            label,
            histogram: Some(native_histogram(point)),
            ..Default::default()
        },
        Point::Summary {
            quantiles,
            count,
            sum,
            created,
        } => proto::Metric {
            label,
            summary: Some(proto::Summary {
                sample_count: Some(count),
                sample_sum: Some(sum),
                quantile: quantiles
                    .iter()
                    .map(|&(q, v)| proto::Quantile {
                        quantile: Some(q),
                        value: Some(v),
                    })
                    .collect(),
                created_timestamp: created.and_then(timestamp),
            }),
            ..Default::default()
        },
        Point::Info => gauge(label, 1.0),
        Point::StateSet { states } => {
            return states
                .iter()
                .map(|&(state, set)| {
                    let mut l = label.clone();
                    l.push(proto::LabelPair {
                        name: Some(family.name.to_owned()),
                        value: Some(state.to_owned()),
                    });
                    gauge(l, if set { 1.0 } else { 0.0 })
                })
                .collect();
        }
    };
    vec![one]
}

impl<W: Write> Encoder for ProtobufEncoder<W> {
    fn family(&mut self, family: &FamilyDesc<'_>) -> io::Result<()> {
        self.close_family()?;
        let (name, ty) = family_name_and_type(family);
        let unit = !family.unit.is_empty()
            && !matches!(family.kind, MetricType::Info | MetricType::StateSet);
        self.current = Some(proto::MetricFamily {
            name: Some(name),
            help: (!family.help.is_empty()).then(|| family.help.to_owned()),
            r#type: Some(ty as i32),
            metric: Vec::new(),
            unit: unit.then(|| family.unit.to_owned()),
        });
        Ok(())
    }

    fn point(
        &mut self,
        family: &FamilyDesc<'_>,
        labels: Labels<'_>,
        point: &Point<'_>,
    ) -> io::Result<()> {
        let Some(mf) = self.current.as_mut() else {
            return Err(io::Error::other("a point before its family"));
        };
        mf.metric.extend(metrics(family, labels, point));
        Ok(())
    }

    fn point_with_exemplars(
        &mut self,
        family: &FamilyDesc<'_>,
        labels: Labels<'_>,
        point: &Point<'_>,
        exemplars: &[Exemplar],
    ) -> io::Result<()> {
        let Some(mf) = self.current.as_mut() else {
            return Err(io::Error::other("a point before its family"));
        };
        let mut ms = metrics(family, labels, point);
        if let (false, [m]) = (exemplars.is_empty(), &mut ms[..]) {
            add_exemplars(m, point, exemplars);
        }
        mf.metric.extend(ms);
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.close_family()?;
        self.lb.finish()
    }
}

/// Decode a length-delimited stream of `MetricFamily` messages (for tests
/// and tools that read what the encoder wrote).
pub fn decode_families(mut bytes: &[u8]) -> Result<Vec<proto::MetricFamily>, prost::DecodeError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        out.push(proto::MetricFamily::decode_length_delimited(&mut bytes)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::text::tests::{all_types_fixture, encode_all, escaping_fixture, Series};
    use super::super::{encoder, FamilyDesc, Format};
    use super::proto::{MetricFamily, MetricType as T};
    use super::*;

    fn pb(fams: &[(FamilyDesc<'_>, Vec<Series<'_>>)]) -> Vec<MetricFamily> {
        let mut out = Vec::new();
        {
            let mut enc = encoder(Format::Protobuf, &mut out);
            encode_all(&mut *enc, fams);
            enc.finish().unwrap();
        }
        decode_families(&out).unwrap()
    }

    fn labels(m: &proto::Metric) -> Vec<(&str, &str)> {
        m.label
            .iter()
            .map(|l| (l.name(), l.value()))
            .collect::<Vec<_>>()
    }

    fn by_name<'a>(fams: &'a [MetricFamily], name: &str) -> &'a MetricFamily {
        fams.iter()
            .find(|f| f.name() == name)
            .unwrap_or_else(|| panic!("no family {name}"))
    }

    #[test]
    fn every_type_decodes_with_its_values() {
        let fams = pb(&all_types_fixture());
        assert_eq!(fams.len(), all_types_fixture().len());
        let c = by_name(&fams, "app_requests_total");
        assert_eq!(c.r#type(), T::Counter);
        assert_eq!(c.help(), "Requests served.");
        assert_eq!(c.metric.len(), 2);
        let c0 = &c.metric[0];
        assert_eq!(labels(c0), [("code", "200"), ("method", "get")]);
        let cc = c0.counter.as_ref().unwrap();
        assert_eq!(cc.value(), 1027.0);
        assert_eq!(
            cc.created_timestamp,
            Some(proto::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0
            })
        );
        assert_eq!(c.metric[1].counter.as_ref().unwrap().value(), 3.0);
        assert_eq!(
            c.metric[1].counter.as_ref().unwrap().created_timestamp,
            None
        );

        let h = by_name(&fams, "app_request_duration_seconds");
        assert_eq!(h.r#type(), T::Histogram);
        assert_eq!(h.unit(), "seconds");
        let hh = h.metric[0].histogram.as_ref().unwrap();
        assert_eq!(hh.sample_count(), 10);
        assert_eq!(hh.sample_sum(), 3.25);
        let b: Vec<(f64, u64)> = hh
            .bucket
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect();
        assert_eq!(b, [(0.005, 1), (0.1, 5), (1.0, 9)]);
        assert_eq!(
            hh.created_timestamp,
            Some(proto::Timestamp {
                seconds: 1_700_000_000,
                nanos: 500_000_000
            })
        );
        assert_eq!(hh.schema, None);
        assert!(hh.positive_span.is_empty());

        let i = by_name(&fams, "app_build_info");
        assert_eq!(i.r#type(), T::Gauge);
        assert_eq!(
            labels(&i.metric[0]),
            [("version", "1.2.3"), ("revision", "abc")]
        );
        assert_eq!(i.metric[0].gauge.as_ref().unwrap().value(), 1.0);

        let s = by_name(&fams, "app_mode");
        assert_eq!(s.r#type(), T::Gauge);
        let states: Vec<(Vec<(&str, &str)>, f64)> = s
            .metric
            .iter()
            .map(|m| (labels(m), m.gauge.as_ref().unwrap().value()))
            .collect();
        assert_eq!(
            states,
            [
                (vec![("app_mode", "fast")], 1.0),
                (vec![("app_mode", "slow")], 0.0),
                (vec![("worker", "2"), ("app_mode", "fast")], 0.0),
                (vec![("worker", "2"), ("app_mode", "slow")], 1.0),
            ]
        );
    }

    #[test]
    fn gauges_and_summaries() {
        let fams = pb(&all_types_fixture());
        for f in &fams {
            for m in &f.metric {
                let set = [
                    m.gauge.is_some(),
                    m.counter.is_some(),
                    m.summary.is_some(),
                    m.histogram.is_some(),
                    m.untyped.is_some(),
                ];
                assert_eq!(set.iter().filter(|&&x| x).count(), 1, "{f:?}");
                let want = match f.r#type() {
                    T::Gauge => m.gauge.is_some(),
                    T::Counter => m.counter.is_some(),
                    T::Summary => m.summary.is_some(),
                    T::Histogram => m.histogram.is_some(),
                    _ => false,
                };
                assert!(want, "{f:?}");
                assert_eq!(m.timestamp_ms, None);
            }
        }
        let fixture = all_types_fixture();
        for (fam, series) in &fixture {
            let got = by_name(&fams, &family_name_and_type(fam).0);
            for (i, (_, point)) in series.iter().enumerate() {
                match *point {
                    Point::Gauge { value } => {
                        let g = got.metric[i].gauge.as_ref().unwrap().value();
                        assert!(g == value || (g.is_nan() && value.is_nan()), "{fam:?}");
                    }
                    Point::Summary {
                        quantiles,
                        count,
                        sum,
                        ..
                    } => {
                        let s = got.metric[i].summary.as_ref().unwrap();
                        assert_eq!(s.sample_count(), count);
                        assert_eq!(s.sample_sum(), sum);
                        let q: Vec<(f64, f64)> = s
                            .quantile
                            .iter()
                            .map(|q| (q.quantile(), q.value()))
                            .collect();
                        assert_eq!(q.len(), quantiles.len());
                        for (a, b) in q.iter().zip(quantiles) {
                            assert_eq!(a.0, b.0);
                            assert!(a.1 == b.1 || (a.1.is_nan() && b.1.is_nan()));
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn strings_are_raw() {
        let fams = pb(&escaping_fixture());
        let fixture = escaping_fixture();
        for (fam, series) in &fixture {
            let got = by_name(&fams, &family_name_and_type(fam).0);
            assert_eq!(got.help(), fam.help);
            for (i, (want, _)) in series.iter().enumerate() {
                let l = labels(&got.metric[i]);
                assert_eq!(&l[..want.len()], &want[..]);
            }
        }
    }

    #[test]
    fn empty_families_are_left_out_and_empty_output_is_empty() {
        let g = FamilyDesc {
            name: "idle",
            help: "",
            unit: "",
            kind: MetricType::Gauge,
        };
        let mut out = Vec::new();
        {
            let mut enc = encoder(Format::Protobuf, &mut out);
            enc.family(&g).unwrap();
            enc.finish().unwrap();
        }
        assert!(out.is_empty());
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            timestamp(1.25),
            Some(proto::Timestamp {
                seconds: 1,
                nanos: 250_000_000
            })
        );
        assert_eq!(timestamp(f64::NAN), None);
        assert_eq!(timestamp(f64::INFINITY), None);
        assert_eq!(timestamp(0.0), Some(proto::Timestamp::default()));
    }

    #[test]
    fn large_output_streams_in_order() {
        // Many families: the buffer is flushed along the way and the stream
        // still decodes to all of them, in order.
        let names: Vec<String> = (0..3000).map(|i| format!("g{i:05}")).collect();
        let mut out = Vec::new();
        {
            let mut enc = encoder(Format::Protobuf, &mut out);
            for n in &names {
                let f = FamilyDesc {
                    name: n,
                    help: "some help text to make it longer",
                    unit: "",
                    kind: MetricType::Gauge,
                };
                enc.family(&f).unwrap();
                enc.point(&f, &[("a", "b")], &Point::Gauge { value: 2.5 })
                    .unwrap();
            }
            enc.finish().unwrap();
        }
        assert!(out.len() > 2 * super::super::text::FLUSH_AT);
        let fams = decode_families(&out).unwrap();
        let got: Vec<&str> = fams.iter().map(|f| f.name()).collect();
        assert_eq!(got, names.iter().map(String::as_str).collect::<Vec<_>>());
    }
}
