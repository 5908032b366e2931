//! `promshm push`: send the area to a Prometheus Pushgateway.
//!
//! The group URL is `GATEWAY/metrics/job/<job>{/<label>/<value>}`; values are
//! percent-encoded, and a value containing `/` (or an empty one) uses the
//! `<label>@base64/<base64url>` form, which survives proxies that decode
//! `%2F`. The body is text format 0.0.4. `PUT` replaces the whole group,
//! `POST` only the families it contains.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use promshm::Format;

use crate::client::{check_url, Client, ClientOpts, SendError};
use crate::common::{
    every, install_signal_handlers, parse_duration, parse_label_pair, AreaSource, CliError,
    CliResult, RenderOpts,
};
use crate::files::FileArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// Replace every metric of the group.
    Put,
    /// Replace only the metric families pushed.
    Post,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The area file.
    pub area: PathBuf,
    /// Pushgateway base URL, e.g. http://127.0.0.1:9091.
    #[arg(long, value_name = "URL")]
    pub gateway: String,
    /// The `job` grouping label.
    #[arg(long, value_name = "NAME")]
    pub job: String,
    /// Another grouping label (repeatable), e.g. --grouping instance=web-1.
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_label_pair)]
    pub grouping: Vec<(String, String)>,
    /// PUT replaces the whole group, POST only the families pushed.
    #[arg(long, value_enum, default_value = "put")]
    pub method: Method,
    /// Push again every DURATION until SIGTERM/SIGINT (default: push once).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Option<Duration>,
    #[command(flatten)]
    pub render: RenderOpts,
    #[command(flatten)]
    pub client: ClientOpts,
}

/// Percent-encode one path segment (RFC 3986 unreserved characters pass).
fn escape_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `/<name>/<value>` or `/<name>@base64/<encoded>`.
fn label_path(name: &str, value: &str) -> String {
    if value.is_empty() {
        // The Pushgateway's spelling of an empty value.
        format!("/{name}@base64/=")
    } else if value.contains('/') {
        let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value);
        format!("/{name}@base64/{enc}")
    } else {
        format!("/{name}/{}", escape_segment(value))
    }
}

/// The group URL for `job` and `grouping` under `gateway`.
pub fn group_url(gateway: &str, job: &str, grouping: &[(String, String)]) -> CliResult<String> {
    if job.is_empty() {
        return Err(CliError::usage("--job must not be empty"));
    }
    let mut seen = vec!["job"];
    for (k, _) in grouping {
        if seen.contains(&k.as_str()) {
            return Err(CliError::usage(format!(
                "--grouping {k}: label given twice (job is set by --job)"
            )));
        }
        seen.push(k);
    }
    let mut url = gateway.trim_end_matches('/').to_owned();
    url.push_str("/metrics");
    url.push_str(&label_path("job", job));
    for (k, v) in grouping {
        url.push_str(&label_path(k, v));
    }
    Ok(url)
}

pub fn run(a: Args, files: &FileArgs) -> CliResult {
    check_url("--gateway", &a.gateway)?;
    a.render.check()?;
    let url = group_url(&a.gateway, &a.job, &a.grouping)?;
    let client = Client::new(&a.client)?;
    let area = AreaSource::open(&a.area, files)?;
    let method = match a.method {
        Method::Put => "PUT",
        Method::Post => "POST",
    };
    let content_type = [("Content-Type", Format::Prometheus.content_type())];
    let push_once = |area: &AreaSource| -> CliResult {
        let mut body = Vec::new();
        area.render(&a.render, Format::Prometheus, &mut body)?;
        client
            .send_with_retries(method, &url, &content_type, &body)
            .map_err(|e| match e {
                SendError::Rejected(m) => CliError::endpoint(format!("push rejected: {m}")),
                SendError::Transient(m) => CliError::endpoint(format!("push failed: {m}")),
            })
    };
    match a.interval {
        None => push_once(&area),
        Some(interval) => {
            install_signal_handlers()?;
            every(interval, || push_once(&area))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            group_url("http://gw:9091/", "batch", &[]).unwrap(),
            "http://gw:9091/metrics/job/batch"
        );
        assert_eq!(
            group_url(
                "http://gw:9091/prefix",
                "a b",
                &[
                    ("instance".into(), "web-1:80".into()),
                    ("path".into(), "/var/tmp".into()),
                    ("empty".into(), "".into()),
                ]
            )
            .unwrap(),
            "http://gw:9091/prefix/metrics/job/a%20b/instance/web-1%3A80/path@base64/L3Zhci90bXA/empty@base64/="
        );
        assert_eq!(
            group_url("http://gw", "x/y", &[]).unwrap(),
            "http://gw/metrics/job@base64/eC95"
        );
        assert!(group_url("http://gw", "", &[]).is_err());
        assert!(group_url("http://gw", "j", &[("job".into(), "x".into())]).is_err());
        assert!(group_url(
            "http://gw",
            "j",
            &[("a".into(), "x".into()), ("a".into(), "y".into())]
        )
        .is_err());
    }
}
