//! OpenMetrics 1.0 text exposition format.

use std::io::{self, Write};

use super::number::write_f64;
use super::text::{
    info_or_states, kept_line, line_f64, line_u64, push_escaped, push_series, push_series_block,
    Extra, Heads, LineBuf, SeriesText,
};
use super::{Encoder, Exemplar, FamilyDesc, Labels, MetricType, Point};

/// Encoder for the OpenMetrics text format, version 1.0.0.
///
/// Metadata is written as `# TYPE`, `# UNIT` (if any, never for info or
/// stateset), `# HELP` (if any). Counters expose `name_total` and, when known,
/// `name_created`; histograms and summaries `_count`, `_sum` and `_created`;
/// `le` and `quantile` values are in canonical form (`1.0`, `+Inf`). A
/// histogram with a negative bucket bound has no `_sum` (the spec forbids it)
/// and therefore no `_count` either (the two go together); the `+Inf` bucket
/// still carries the count. [`Encoder::finish`] writes `# EOF` and flushes.
pub struct OpenMetricsEncoder<W: Write> {
    lb: LineBuf<W>,
    heads: Heads,
}

impl<W: Write> OpenMetricsEncoder<W> {
    /// Make an encoder writing to `out`.
    pub fn new(out: W) -> Self {
        OpenMetricsEncoder {
            lb: LineBuf::new(out),
            heads: Heads::default(),
        }
    }
}

/// Append ` # {labels} value timestamp` before the line's newline (the
/// line just written ends with one).
fn exemplar_suffix(buf: &mut Vec<u8>, e: &Exemplar) {
    if buf.last() == Some(&b'\n') {
        buf.pop();
    }
    buf.extend_from_slice(b" # {");
    for (i, (k, v)) in e.labels.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(k.as_bytes());
        buf.extend_from_slice(b"=\"");
        push_escaped(buf, v, true);
        buf.push(b'"');
    }
    buf.extend_from_slice(b"} ");
    write_f64(buf, e.value);
    // Seconds with milliseconds, in plain decimal (parsers such as
    // prometheus_client's read an exemplar timestamp without an exponent).
    if e.timestamp.is_finite() && (0.0..1e15).contains(&e.timestamp) {
        let ms = (e.timestamp * 1000.0).round() as u64;
        buf.push(b' ');
        super::number::write_u64(buf, ms / 1000);
        buf.push(b'.');
        let frac = ms % 1000;
        buf.extend_from_slice(&[
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ]);
    }
    buf.push(b'\n');
}

/// The newest exemplar of a list.
fn newest(exemplars: &[Exemplar]) -> Option<&Exemplar> {
    exemplars
        .iter()
        .max_by(|a, b| a.timestamp.total_cmp(&b.timestamp))
}

/// Append `_created <secs>` when known.
fn created_line(buf: &mut Vec<u8>, name: &str, labels: Labels<'_>, created: Option<f64>) {
    if let Some(t) = created {
        line_f64(buf, name, "_created", labels, Extra::No, t);
    }
}

impl OpenMetricsEncoder<io::Sink> {
    /// An encoder appending to `buf` itself (see [`LineBuf::whole`]).
    pub(super) fn into_vec(buf: Vec<u8>) -> Self {
        OpenMetricsEncoder {
            lb: LineBuf::whole(io::sink(), buf),
            heads: Heads::default(),
        }
    }

    /// The text (after `buf`'s bytes).
    pub(super) fn into_buffer(self) -> Vec<u8> {
        self.lb.into_buffer()
    }
}

impl<W: Write> Encoder for OpenMetricsEncoder<W> {
    fn family(&mut self, family: &FamilyDesc<'_>) -> io::Result<()> {
        let buf = &mut self.lb.buf;
        let name = family.name.as_bytes();
        buf.extend_from_slice(b"# TYPE ");
        buf.extend_from_slice(name);
        buf.push(b' ');
        buf.extend_from_slice(family.kind.as_str().as_bytes());
        buf.push(b'\n');
        if !family.unit.is_empty()
            && !matches!(family.kind, MetricType::Info | MetricType::StateSet)
        {
            buf.extend_from_slice(b"# UNIT ");
            buf.extend_from_slice(name);
            buf.push(b' ');
            buf.extend_from_slice(family.unit.as_bytes());
            buf.push(b'\n');
        }
        if !family.help.is_empty() {
            buf.extend_from_slice(b"# HELP ");
            buf.extend_from_slice(name);
            buf.push(b' ');
            push_escaped(buf, family.help, true);
            buf.push(b'\n');
        }
        match family.kind {
            MetricType::Counter => self.heads.set(family, "_total", "_created"),
            _ => self.heads.set(family, "", ""),
        }
        self.lb.maybe_flush()
    }

    fn point(
        &mut self,
        family: &FamilyDesc<'_>,
        labels: Labels<'_>,
        point: &Point<'_>,
    ) -> io::Result<()> {
        self.point_with_exemplars(family, labels, point, &[])
    }

    /// Exemplars follow the counter's `_total` line and a histogram's
    /// bucket lines (a native-only histogram's newest on its one `+Inf` line).
    fn point_with_exemplars(
        &mut self,
        family: &FamilyDesc<'_>,
        labels: Labels<'_>,
        point: &Point<'_>,
        exemplars: &[Exemplar],
    ) -> io::Result<()> {
        let native = matches!(point, Point::NativeHistogram { classic: [], .. });
        let name = family.name;
        let buf = &mut self.lb.buf;
        let mut inf = [(0.0, 0)];
        match point.for_text(&mut inf) {
            Point::Counter { value, created } => {
                // The `{labels} ` of the `_total` line, escaped once and
                // copied into the `_created` line.
                let start = buf.len() + name.len() + "_total".len();
                push_series(buf, name, "_total", labels, Extra::No);
                let series = start..buf.len();
                write_f64(buf, value);
                buf.push(b'\n');
                if let Some(e) = exemplars.iter().find(|e| e.bucket == 0) {
                    exemplar_suffix(buf, e);
                }
                if let Some(t) = created {
                    buf.extend_from_slice(name.as_bytes());
                    buf.extend_from_slice(b"_created");
                    buf.extend_from_within(series);
                    write_f64(buf, t);
                    buf.push(b'\n');
                }
            }
            Point::Gauge { value } => {
                line_f64(buf, name, "", labels, Extra::No, value);
            }
            Point::Histogram {
                buckets,
                sum,
                created,
            } => {
                for (i, &(le, n)) in buckets.iter().enumerate() {
                    line_u64(buf, name, "_bucket", labels, Extra::Num("le", le), n);
                    let e = if native {
                        newest(exemplars)
                    } else {
                        exemplars.iter().find(|e| e.bucket == i)
                    };
                    if let Some(e) = e {
                        exemplar_suffix(buf, e);
                    }
                }
                let negative = buckets.first().is_some_and(|b| b.0 < 0.0);
                if !negative {
                    let count = super::histogram_count(buckets);
                    line_u64(buf, name, "_count", labels, Extra::No, count);
                    line_f64(buf, name, "_sum", labels, Extra::No, sum);
                }
                created_line(buf, name, labels, created);
            }
            Point::Summary {
                quantiles,
                count,
                sum,
                created,
            } => {
                for &(q, v) in quantiles {
                    line_f64(buf, name, "", labels, Extra::Num("quantile", q), v);
                }
                line_u64(buf, name, "_count", labels, Extra::No, count);
                line_f64(buf, name, "_sum", labels, Extra::No, sum);
                created_line(buf, name, labels, created);
            }
            Point::Info | Point::StateSet { .. } => info_or_states(buf, name, labels, point),
            // Written as the classic histogram `for_text` made of it.
            Point::NativeHistogram { .. } => {}
        }
        self.lb.maybe_flush()
    }

    fn point_text(
        &mut self,
        family: &FamilyDesc<'_>,
        mut text: SeriesText<'_>,
        point: &Point<'_>,
    ) -> io::Result<bool> {
        let Some((head, created_head)) = self.heads.get(family) else {
            return Ok(false);
        };
        let buf = &mut self.lb.buf;
        // Every field named: a field added to these points must be written
        // here too (as `point` writes it), or left to `point`.
        match (point, family.kind) {
            (&Point::Counter { value, created }, MetricType::Counter) => {
                kept_line(buf, head, &mut text, value);
                if let Some(t) = created {
                    push_series_block(buf, created_head, text.labels);
                    text.created.write(buf, t);
                    buf.push(b'\n');
                }
            }
            (&Point::Gauge { value }, MetricType::Gauge) => {
                kept_line(buf, head, &mut text, value);
            }
            _ => return Ok(false),
        }
        self.lb.maybe_flush().map(|()| true)
    }

    fn keeps_series_text(&self) -> bool {
        true
    }

    fn finish(&mut self) -> io::Result<()> {
        self.lb.buf.extend_from_slice(b"# EOF\n");
        self.lb.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::text::tests::{
        all_types_fixture, encode_all, escaping_fixture, golden, numbers_fixture, render, Series,
    };
    use super::super::{FamilyDesc, Format, MetricType, Point};

    fn om(fams: &[(FamilyDesc<'_>, Vec<Series<'_>>)]) -> String {
        render(Format::OpenMetrics, |e| encode_all(e, fams))
    }

    #[test]
    fn golden_escaping() {
        golden(
            "escaping.om",
            include_str!("../../tests/golden/escaping.om"),
            &om(&escaping_fixture()),
        );
    }

    #[test]
    fn golden_numbers() {
        golden(
            "numbers.om",
            include_str!("../../tests/golden/numbers.om"),
            &om(&numbers_fixture()),
        );
    }

    #[test]
    fn golden_all_types() {
        golden(
            "all_types.om",
            include_str!("../../tests/golden/all_types.om"),
            &om(&all_types_fixture()),
        );
    }

    #[test]
    fn empty_exposition_is_just_eof() {
        assert_eq!(render(Format::OpenMetrics, |_| {}), "# EOF\n");
    }

    #[test]
    fn metadata_order_and_omissions() {
        let c = FamilyDesc {
            name: "x_seconds",
            help: "a \"b\" \\ c\nd",
            unit: "seconds",
            kind: MetricType::Counter,
        };
        let i = FamilyDesc {
            name: "build",
            help: "",
            unit: "ignored",
            kind: MetricType::Info,
        };
        let got = render(Format::OpenMetrics, |e| {
            e.family(&c).unwrap();
            e.point(
                &c,
                &[],
                &Point::Counter {
                    value: 0.0,
                    created: None,
                },
            )
            .unwrap();
            e.family(&i).unwrap();
            e.point(&i, &[("v", "1")], &Point::Info).unwrap();
        });
        assert_eq!(
            got,
            "# TYPE x_seconds counter\n# UNIT x_seconds seconds\n# HELP x_seconds a \\\"b\\\" \\\\ c\\nd\n\
             x_seconds_total 0\n\
             # TYPE build info\nbuild_info{v=\"1\"} 1\n# EOF\n"
        );
    }

    #[test]
    fn negative_buckets_drop_sum_and_count() {
        let h = FamilyDesc {
            name: "temp_celsius",
            help: "",
            unit: "",
            kind: MetricType::Histogram,
        };
        let got = render(Format::OpenMetrics, |e| {
            e.family(&h).unwrap();
            e.point(
                &h,
                &[],
                &Point::Histogram {
                    buckets: &[(-10.0, 1), (0.0, 2), (f64::INFINITY, 3)],
                    sum: -4.0,
                    created: Some(2.0),
                },
            )
            .unwrap();
        });
        assert_eq!(
            got,
            "# TYPE temp_celsius histogram\n\
             temp_celsius_bucket{le=\"-10.0\"} 1\n\
             temp_celsius_bucket{le=\"0.0\"} 2\n\
             temp_celsius_bucket{le=\"+Inf\"} 3\n\
             temp_celsius_created 2\n# EOF\n"
        );
    }

    #[test]
    fn labels_keep_order_and_extra_goes_last() {
        let s = FamilyDesc {
            name: "rpc_seconds",
            help: "",
            unit: "",
            kind: MetricType::Summary,
        };
        let got = render(Format::OpenMetrics, |e| {
            e.family(&s).unwrap();
            e.point(
                &s,
                &[("z", "1"), ("a", "2")],
                &Point::Summary {
                    quantiles: &[(0.5, 1.0), (1.0, 2.0)],
                    count: 2,
                    sum: 3.0,
                    created: None,
                },
            )
            .unwrap();
        });
        assert_eq!(
            got,
            "# TYPE rpc_seconds summary\n\
             rpc_seconds{z=\"1\",a=\"2\",quantile=\"0.5\"} 1\n\
             rpc_seconds{z=\"1\",a=\"2\",quantile=\"1.0\"} 2\n\
             rpc_seconds_count{z=\"1\",a=\"2\"} 2\n\
             rpc_seconds_sum{z=\"1\",a=\"2\"} 3\n# EOF\n"
        );
    }
}
