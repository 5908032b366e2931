//! The HTTP client side (push, remote-write): one blocking `ureq` agent,
//! extra headers, and a retry loop with exponential backoff that tells a
//! transient failure (network, 429, 5xx) from a rejection (other 4xx).

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use crate::common::{log, parse_duration, sleep_unless_shutdown, CliError, CliResult};

/// Options of every command that sends HTTP requests.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientOpts {
    /// Extra request header, e.g. 'X-Scope-OrgID: tenant1' (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Send `Authorization: Bearer TOKEN` with TOKEN read from this file.
    #[arg(long, value_name = "FILE")]
    pub bearer_token_file: Option<PathBuf>,
    /// Trust the CA certificates in this PEM file (instead of the bundled web roots) for https.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Timeout of one request (connect, send, response).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Retries of a request that failed for a transient reason (network, HTTP 429, 5xx).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_retries: u32,
    /// First retry delay; doubled at each retry up to --max-backoff.
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
    pub min_backoff: Duration,
    /// Longest delay between two retries.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub max_backoff: Duration,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected 'NAME: VALUE'"))?;
    let k = k.trim();
    if k.is_empty()
        || !k
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return Err(format!("{k:?} is not a valid header name"));
    }
    let v = v.trim();
    if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err("header values cannot contain CR, LF or NUL".into());
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// A configured client.
pub struct Client {
    agent: ureq::Agent,
    headers: Vec<(String, String)>,
    opts: ClientOpts,
}

/// Why a request failed.
#[derive(Debug)]
pub enum SendError {
    /// Worth retrying: the endpoint could not be reached, or said 429/5xx.
    Transient(String),
    /// The endpoint rejected the request (4xx other than 429): retrying cannot help.
    Rejected(String),
}

impl Client {
    pub fn new(opts: &ClientOpts) -> CliResult<Client> {
        let mut cfg = ureq::Agent::config_builder()
            .timeout_global(Some(opts.timeout))
            .http_status_as_error(false)
            .user_agent(concat!("promshm/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &opts.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| CliError::usage(format!("--ca-file {}: {e}", path.display())))?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(CliError::usage(format!(
                    "--ca-file {}: no PEM certificate found",
                    path.display()
                )));
            }
            cfg = cfg.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        let mut headers = opts.headers.clone();
        if let Some(path) = &opts.bearer_token_file {
            let token = std::fs::read_to_string(path).map_err(|e| {
                CliError::usage(format!("--bearer-token-file {}: {e}", path.display()))
            })?;
            let token = token.trim();
            if token.is_empty() || token.bytes().any(|b| b.is_ascii_control()) {
                return Err(CliError::usage(format!(
                    "--bearer-token-file {}: empty or not a single line",
                    path.display()
                )));
            }
            headers.push(("Authorization".into(), format!("Bearer {token}")));
        }
        Ok(Client {
            agent: cfg.build().into(),
            headers,
            opts: opts.clone(),
        })
    }

    /// One request. `method` is `PUT`, `POST` or `DELETE`.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), SendError> {
        let mut req = match method {
            "PUT" => self.agent.put(url),
            "POST" => self.agent.post(url),
            "DELETE" => {
                // DELETE has no body in ureq's typed API.
                let mut req = self.agent.delete(url);
                for (k, v) in self.headers.iter() {
                    req = req.header(k, v);
                }
                return classify(url, req.call());
            }
            other => return Err(SendError::Rejected(format!("unsupported method {other}"))),
        };
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        classify(url, req.send(body))
    }

    /// [`send`](Client::send) with retries and exponential backoff on transient
    /// failures. Gives up at once on a rejection, and early on shutdown.
    pub fn send_with_retries(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), SendError> {
        let mut backoff = self.opts.min_backoff;
        let mut attempt = 0;
        loop {
            match self.send(method, url, headers, body) {
                Ok(()) => return Ok(()),
                Err(SendError::Transient(m)) if attempt < self.opts.max_retries => {
                    attempt += 1;
                    log(&format!(
                        "{m}; retry {attempt}/{} in {backoff:?}",
                        self.opts.max_retries
                    ));
                    if !sleep_unless_shutdown(backoff) {
                        return Err(SendError::Transient(format!("{m} (shutting down)")));
                    }
                    backoff = (backoff * 2).min(self.opts.max_backoff);
                }
                Err(SendError::Transient(m)) if attempt > 0 => {
                    return Err(SendError::Transient(format!(
                        "{m} (gave up after {attempt} retries)"
                    )))
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn classify(
    url: &str,
    r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(), SendError> {
    let mut resp = match r {
        Ok(resp) => resp,
        Err(e) => return Err(SendError::Transient(format!("{url}: {e}"))),
    };
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        // Drain a little so the connection can be reused.
        let _ = resp
            .body_mut()
            .as_reader()
            .take(64 * 1024)
            .read_to_end(&mut Vec::new());
        return Ok(());
    }
    let mut body = Vec::new();
    let _ = resp.body_mut().as_reader().take(512).read_to_end(&mut body);
    let text: String = String::from_utf8_lossy(&body)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let msg = if text.is_empty() {
        format!("{url}: HTTP {status}")
    } else {
        format!("{url}: HTTP {status}: {text}")
    };
    if status == 429 || status >= 500 {
        Err(SendError::Transient(msg))
    } else {
        Err(SendError::Rejected(msg))
    }
}

/// Check a URL's scheme early, with a usage error.
pub fn check_url(flag: &str, url: &str) -> CliResult<()> {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) || url.len() < 8 {
        return Err(CliError::usage(format!(
            "{flag} {url:?}: expected an http:// or https:// URL"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("X-Scope-OrgID: t1").unwrap(),
            ("X-Scope-OrgID".into(), "t1".into())
        );
        assert_eq!(parse_header("A:b:c").unwrap(), ("A".into(), "b:c".into()));
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
        assert!(parse_header(": x").is_err());
    }
}
