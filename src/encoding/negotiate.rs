//! Content negotiation: pick the exposition format from an HTTP `Accept` header.
//!
//! Follows prometheus/docs `content_negotiation.md`: the target picks the
//! highest-q protocol it supports and falls back to Prometheus text 0.0.4.
//! Supported here: `application/openmetrics-text` (version `1.0.0`, `0.0.1` or
//! none), `text/plain` (version `0.0.4` or none) and
//! `application/vnd.google.protobuf` with `proto=io.prometheus.client.MetricFamily`
//! and `encoding=delimited` (both required, as client_golang's `expfmt`
//! requires them); `*/*` and `text/*` stand for the default, Prometheus text.
//! On equal q a more specific range wins, then the one listed first.

/// An exposition format this crate can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Prometheus,
    /// OpenMetrics text format 1.0.0.
    OpenMetrics,
    /// The Prometheus protobuf format: length-delimited
    /// `io.prometheus.client.MetricFamily` messages. Binary: it may hold NUL bytes.
    Protobuf,
}

impl Format {
    /// The `Content-Type` header value to answer with.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Protobuf => {
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
            }
        }
    }

    /// Whether the rendering is text (UTF-8, no NUL bytes): false for protobuf.
    pub fn is_text(self) -> bool {
        !matches!(self, Format::Protobuf)
    }
}

/// One acceptable media range that maps to a format we can produce.
#[derive(Clone, Copy)]
struct Candidate {
    format: Format,
    /// q-value in thousandths (0..=1000), exact like the RFC 9110 grammar.
    q: u16,
    /// 2 = `type/subtype`, 1 = `type/*`, 0 = `*/*`.
    specificity: u8,
}

/// Parse an RFC 9110 qvalue (`0`, `0.5`, `1.000`, ...) into thousandths.
/// Lenient about extra digits; rejects anything outside `0..=1`.
fn parse_q(v: &str) -> Option<u16> {
    let v = v.trim();
    let q: f64 = v.parse().ok()?;
    if !(0.0..=1.0).contains(&q) || v.starts_with(['+', '-']) {
        return None;
    }
    Some((q * 1000.0).round() as u16)
}

/// Strip optional double quotes around a parameter value.
fn unquote(v: &str) -> &str {
    let v = v.trim();
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

/// Classify one media range (`type/subtype;param=value;q=0.5`).
fn candidate(range: &str) -> Option<Candidate> {
    let mut parts = range.split(';');
    let media = parts.next()?.trim();
    let (ty, sub) = media.split_once('/')?;
    let (ty, sub) = (ty.trim(), sub.trim());
    if ty.is_empty() || sub.is_empty() {
        return None;
    }
    let mut version: Option<&str> = None;
    let mut proto: Option<&str> = None;
    let mut encoding: Option<&str> = None;
    let mut q: u16 = 1000;
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let (k, v) = p.split_once('=')?;
        let k = k.trim();
        if k.eq_ignore_ascii_case("q") {
            q = parse_q(v)?;
        } else if k.eq_ignore_ascii_case("version") {
            version = Some(unquote(v));
        } else if k.eq_ignore_ascii_case("proto") {
            proto = Some(unquote(v));
        } else if k.eq_ignore_ascii_case("encoding") {
            encoding = Some(unquote(v));
        }
        // charset, escaping, ...: our output is UTF-8 with legacy names,
        // acceptable under every escaping scheme; ignore.
    }
    let (format, specificity) = if ty.eq_ignore_ascii_case("application")
        && sub.eq_ignore_ascii_case("openmetrics-text")
    {
        match version {
            None | Some("1.0.0") | Some("0.0.1") => (Format::OpenMetrics, 2),
            Some(_) => return None,
        }
    } else if ty.eq_ignore_ascii_case("application")
        && sub.eq_ignore_ascii_case("vnd.google.protobuf")
    {
        match (proto, encoding) {
            (Some("io.prometheus.client.MetricFamily"), Some("delimited")) => (Format::Protobuf, 2),
            _ => return None,
        }
    } else if ty.eq_ignore_ascii_case("text") && sub.eq_ignore_ascii_case("plain") {
        match version {
            None | Some("0.0.4") => (Format::Prometheus, 2),
            Some(_) => return None,
        }
    } else if ty.eq_ignore_ascii_case("text") && sub == "*" {
        (Format::Prometheus, 1)
    } else if ty == "*" && sub == "*" {
        (Format::Prometheus, 0)
    } else {
        return None;
    };
    Some(Candidate {
        format,
        q,
        specificity,
    })
}

/// Choose the format for a scrape from its `Accept` header.
///
/// Returns the format whose acceptable range has the highest q (> 0) among
/// the ranges we support: [`Format::Protobuf`] for
/// `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited`,
/// [`Format::OpenMetrics`] for `application/openmetrics-text` (version
/// 1.0.0, 0.0.1 or unversioned); otherwise — also for a missing, empty or
/// unparsable header — [`Format::Prometheus`].
pub fn negotiate(accept: Option<&str>) -> Format {
    pick(accept, true)
}

/// As [`negotiate`], among the text formats only (never [`Format::Protobuf`]):
/// for callers that handle a rendering as a string.
pub fn negotiate_text(accept: Option<&str>) -> Format {
    pick(accept, false)
}

fn pick(accept: Option<&str>, binary: bool) -> Format {
    let Some(accept) = accept else {
        return Format::Prometheus;
    };
    let mut best: Option<Candidate> = None;
    for range in accept.split(',') {
        let Some(c) = candidate(range) else { continue };
        if c.q == 0 || (!binary && !c.format.is_text()) {
            continue;
        }
        let better = match best {
            None => true,
            Some(b) => c.q > b.q || (c.q == b.q && c.specificity > b.specificity),
        };
        if better {
            best = Some(c);
        }
    }
    best.map_or(Format::Prometheus, |c| c.format)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

    #[test]
    fn real_prometheus_header_gets_openmetrics() {
        assert_eq!(negotiate(Some(PROMETHEUS_3)), Format::OpenMetrics);
    }

    #[test]
    fn prometheus_2_headers() {
        // Prometheus 2.x default scrape protocols.
        let p2 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(Some(p2)), Format::OpenMetrics);
        // Prometheus with OpenMetrics disabled.
        let p2_text = "text/plain;version=0.0.4;q=1,*/*;q=0.1";
        assert_eq!(negotiate(Some(p2_text)), Format::Prometheus);
    }

    #[test]
    fn fallbacks() {
        assert_eq!(negotiate(None), Format::Prometheus);
        assert_eq!(negotiate(Some("")), Format::Prometheus);
        assert_eq!(negotiate(Some("garbage")), Format::Prometheus);
        assert_eq!(negotiate(Some(";;;,,,/")), Format::Prometheus);
        assert_eq!(negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(negotiate(Some("text/html")), Format::Prometheus);
        assert_eq!(negotiate(Some("application/json")), Format::Prometheus);
    }

    /// Prometheus 2.x with `--enable-feature=native-histograms`, and 3.x
    /// with `scrape_protocols: [PrometheusProto, ...]`.
    const PROTO_FIRST: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,application/openmetrics-text;version=0.0.1;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

    #[test]
    fn protobuf_when_preferred() {
        assert_eq!(negotiate(Some(PROTO_FIRST)), Format::Protobuf);
        assert_eq!(negotiate_text(Some(PROTO_FIRST)), Format::OpenMetrics);
        assert_eq!(
            negotiate(Some("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited")),
            Format::Protobuf
        );
        assert_eq!(
            negotiate(Some("Application/Vnd.Google.Protobuf;proto=\"io.prometheus.client.MetricFamily\";encoding=delimited")),
            Format::Protobuf
        );
        // Prometheus 3 default: OpenMetrics first, protobuf below it.
        let om_first = "application/openmetrics-text;version=1.0.0;q=0.5,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.4,*/*;q=0.1";
        assert_eq!(negotiate(Some(om_first)), Format::OpenMetrics);
        assert_eq!(negotiate_text(Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")), Format::Prometheus);
    }

    #[test]
    fn protobuf_needs_both_parameters() {
        for accept in [
            "application/vnd.google.protobuf",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily",
            "application/vnd.google.protobuf;encoding=delimited",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=compact-text",
            "application/vnd.google.protobuf;proto=other.Message;encoding=delimited",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0",
        ] {
            assert_eq!(negotiate(Some(accept)), Format::Prometheus, "{accept}");
        }
    }

    #[test]
    fn openmetrics_versions() {
        assert_eq!(
            negotiate(Some("application/openmetrics-text")),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text; version=1.0.0")),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;version=0.0.1")),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;version=\"1.0.0\"")),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(Some(
                "Application/OpenMetrics-Text; Version=1.0.0; Charset=utf-8"
            )),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;version=2.0.0")),
            Format::Prometheus
        );
    }

    #[test]
    fn q_values() {
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0")),
            Format::Prometheus
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0.000")),
            Format::Prometheus
        );
        assert_eq!(
            negotiate(Some(
                "text/plain;version=0.0.4;q=0.9, application/openmetrics-text;q=0.5"
            )),
            Format::Prometheus
        );
        assert_eq!(
            negotiate(Some(
                "text/plain;version=0.0.4;q=0.4, application/openmetrics-text;q=0.5"
            )),
            Format::OpenMetrics
        );
        // Unsupported text/plain version does not compete.
        assert_eq!(
            negotiate(Some(
                "text/plain;version=1.0.0;q=0.9, application/openmetrics-text;q=0.5"
            )),
            Format::OpenMetrics
        );
        // Invalid q drops that range only.
        assert_eq!(
            negotiate(Some("text/plain;q=2, application/openmetrics-text;q=0.5")),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=abc")),
            Format::Prometheus
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=-0.5")),
            Format::Prometheus
        );
        // Whitespace everywhere.
        assert_eq!(
            negotiate(Some(" text/plain ; q = 0.1 ,  application/openmetrics-text ; version = 1.0.0 ; q = 0.8 ")),
            Format::OpenMetrics
        );
    }

    #[test]
    fn ties() {
        // Equal q: explicit type beats a wildcard.
        assert_eq!(
            negotiate(Some("*/*, application/openmetrics-text")),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0.5, text/*;q=0.5")),
            Format::OpenMetrics
        );
        // Equal q and specificity: the first listed wins.
        assert_eq!(
            negotiate(Some("text/plain, application/openmetrics-text")),
            Format::Prometheus
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text, text/plain")),
            Format::OpenMetrics
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Format::Prometheus.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(
            Format::OpenMetrics.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert_eq!(
            Format::Protobuf.content_type(),
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
        );
        assert!(Format::Prometheus.is_text() && !Format::Protobuf.is_text());
    }
}
