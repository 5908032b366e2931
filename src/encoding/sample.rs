//! Flat samples: each series of a render as the `(name, labels, value)`
//! triples that a Prometheus server stores when it scrapes the text format
//! 0.0.4: `_total` for counters, `_bucket{le}`/`_sum`/`_count` for
//! histograms, `{quantile}`/`_sum`/`_count` for summaries, `_info` for info
//! metrics (value 1) and one `{family="state"}` sample per state of a state
//! set. `_created` is not a sample (0.0.4 has none).
//!
//! This is the structured view for consumers that are not text, such as
//! Prometheus remote-write: feed a [`SampleEncoder`] to
//! [`Registry::render_with`](crate::Registry::render_with) and get every
//! sample, named as a scrape would name it, without parsing text back.

use std::io;

use super::number::write_canonical_f64;
use super::{Encoder, FamilyDesc, Labels, MetricType, Point};

/// One sample: a full metric name, its labels and its value.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// The family the sample belongs to (type, help, unit, base name).
    pub family: &'a FamilyDesc<'a>,
    /// Metric name: the family's base name plus the sample's suffix
    /// (`_total`, `_bucket`, `_sum`, `_count`, `_info`, or none).
    pub name: &'a str,
    /// The series' labels in family order (unescaped), then the sample's own
    /// label if it has one: `le` for a bucket, `quantile` for a quantile,
    /// the family's name for a state of a state set. Not sorted.
    pub labels: Labels<'a>,
    /// The value; counts (buckets, `_count`) are converted to `f64`, as
    /// Prometheus stores them.
    pub value: f64,
}

/// An [`Encoder`] that hands every sample to a callback instead of writing text.
///
/// `le` and `quantile` values are in canonical form (`1.0`, `0.005`,
/// `+Inf`), as both text encoders write them.
pub struct SampleEncoder<F> {
    visit: F,
}

impl<F> SampleEncoder<F>
where
    F: FnMut(&Sample<'_>) -> io::Result<()>,
{
    /// Call `visit` for every sample; an error from it stops the render.
    pub fn new(visit: F) -> Self {
        SampleEncoder { visit }
    }

    /// The callback, back.
    pub fn into_inner(self) -> F {
        self.visit
    }

    fn number(&self, v: f64) -> String {
        let mut b = Vec::with_capacity(24);
        write_canonical_f64(&mut b, v);
        // The number writers only emit ASCII.
        String::from_utf8(b).unwrap_or_default()
    }

    fn emit(
        &mut self,
        family: &FamilyDesc<'_>,
        suffix: &str,
        labels: Labels<'_>,
        value: f64,
    ) -> io::Result<()> {
        let name = format!("{}{suffix}", family.name);
        (self.visit)(&Sample {
            family,
            name: &name,
            labels,
            value,
        })
    }

    /// Emit one sample per `(extra label value, sample value)` with the extra label appended.
    fn emit_with_extra(
        &mut self,
        family: &FamilyDesc<'_>,
        suffix: &str,
        labels: Labels<'_>,
        extra_name: &str,
        extras: &[(String, f64)],
    ) -> io::Result<()> {
        let name = format!("{}{suffix}", family.name);
        for (extra_value, value) in extras {
            let mut all: Vec<(&str, &str)> = Vec::with_capacity(labels.len() + 1);
            all.extend_from_slice(labels);
            all.push((extra_name, extra_value));
            (self.visit)(&Sample {
                family,
                name: &name,
                labels: &all,
                value: *value,
            })?;
        }
        Ok(())
    }
}

impl<F> Encoder for SampleEncoder<F>
where
    F: FnMut(&Sample<'_>) -> io::Result<()>,
{
    fn family(&mut self, _family: &FamilyDesc<'_>) -> io::Result<()> {
        Ok(())
    }

    fn point(
        &mut self,
        family: &FamilyDesc<'_>,
        labels: Labels<'_>,
        point: &Point<'_>,
    ) -> io::Result<()> {
        let mut inf = [(0.0, 0)];
        match point.for_text(&mut inf) {
            Point::Counter { value, .. } => self.emit(family, "_total", labels, value),
            Point::Gauge { value } => self.emit(family, "", labels, value),
            Point::Histogram { buckets, sum, .. } => {
                let extras: Vec<(String, f64)> = buckets
                    .iter()
                    .map(|&(le, n)| (self.number(le), n as f64))
                    .collect();
                self.emit_with_extra(family, "_bucket", labels, "le", &extras)?;
                self.emit(family, "_sum", labels, sum)?;
                let count = super::histogram_count(buckets);
                self.emit(family, "_count", labels, count as f64)
            }
            Point::Summary {
                quantiles,
                count,
                sum,
                ..
            } => {
                let extras: Vec<(String, f64)> = quantiles
                    .iter()
                    .map(|&(q, v)| (self.number(q), v))
                    .collect();
                self.emit_with_extra(family, "", labels, "quantile", &extras)?;
                self.emit(family, "_sum", labels, sum)?;
                self.emit(family, "_count", labels, count as f64)
            }
            Point::Info => {
                debug_assert_eq!(family.kind, MetricType::Info);
                self.emit(family, "_info", labels, 1.0)
            }
            Point::StateSet { states } => {
                let extras: Vec<(String, f64)> = states
                    .iter()
                    .map(|&(state, set)| (state.to_owned(), if set { 1.0 } else { 0.0 }))
                    .collect();
                self.emit_with_extra(family, "", labels, family.name, &extras)
            }
            // Written as the classic histogram `for_text` made of it.
            Point::NativeHistogram { .. } => Ok(()),
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::text::push_escaped;
    use super::super::text::tests::{
        all_types_fixture, encode_all, escaping_fixture, numbers_fixture, render, Series,
    };
    use super::*;
    use crate::encoding::Format;

    /// The samples of `fams`, written back as 0.0.4 sample lines.
    fn sample_lines(fams: &[(FamilyDesc<'_>, Vec<Series<'_>>)]) -> Vec<String> {
        let mut lines = Vec::new();
        {
            let visit = |s: &Sample<'_>| {
                let mut b = s.name.as_bytes().to_vec();
                if !s.labels.is_empty() {
                    b.push(b'{');
                    for (i, (k, v)) in s.labels.iter().enumerate() {
                        if i > 0 {
                            b.push(b',');
                        }
                        b.extend_from_slice(k.as_bytes());
                        b.extend_from_slice(b"=\"");
                        push_escaped(&mut b, v, true);
                        b.push(b'"');
                    }
                    b.push(b'}');
                }
                b.push(b' ');
                crate::encoding::write_f64(&mut b, s.value);
                lines.push(String::from_utf8(b).unwrap());
                Ok(())
            };
            let mut enc = SampleEncoder::new(visit);
            encode_all(&mut enc, fams);
            enc.finish().unwrap();
        }
        lines
    }

    /// Split a sample line into (series, value as f64).
    fn split(line: &str) -> (&str, f64) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let v = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap(),
        };
        (series, v)
    }

    /// Samples name every series exactly as the text encoder does.
    #[test]
    fn samples_match_the_text_encoder() {
        for fams in [all_types_fixture(), escaping_fixture(), numbers_fixture()] {
            let text = render(Format::Prometheus, |enc| encode_all(enc, &fams));
            let want: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
            let got = sample_lines(&fams);
            assert_eq!(want.len(), got.len(), "{text}\n{got:#?}");
            for (w, g) in want.iter().zip(&got) {
                let (ws, wv) = split(w);
                let (gs, gv) = split(g);
                assert_eq!(ws, gs);
                assert!(wv == gv || (wv.is_nan() && gv.is_nan()), "{w} vs {g}");
            }
        }
    }

    #[test]
    fn canonical_le_and_quantile() {
        let lines = sample_lines(&all_types_fixture());
        assert!(
            lines.iter().any(|l| l.contains("le=\"+Inf\"")),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .filter(|l| l.contains("le=\""))
                .all(|l| !l.contains("le=\"1\"")),
            "{lines:#?}"
        );
    }

    #[test]
    fn visitor_errors_stop() {
        let fams = all_types_fixture();
        let mut n = 0;
        let mut enc = SampleEncoder::new(|_: &Sample<'_>| {
            n += 1;
            Err(io::Error::other("stop"))
        });
        let (fam, series) = &fams[0];
        let (labels, point) = &series[0];
        assert!(enc.point(fam, labels, point).is_err());
        assert_eq!(n, 1);
    }
}
