//! HTTP basic auth for `promshm serve --basic-auth-file FILE`.
//!
//! One user a line, `#` comments and blank lines ignored:
//!
//! ```text
//! prometheus:plain text password
//! grafana:sha256:5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
//! ```
//!
//! The part after the first `:` is the password, unless it is `sha256:`
//! followed by 64 hex digits: then it is the SHA-256 of the password
//! (`printf %s 'password' | sha256sum`). Only digests are kept in memory and
//! they are compared in constant time. Prefer hashed entries and a file
//! readable by the exporter's user only.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine as _;
use ring::digest::{digest, SHA256};

use crate::common::{log, CliError, CliResult};

pub struct BasicAuth {
    users: Vec<(String, [u8; 32])>,
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, data).as_ref());
    out
}

fn from_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Equal in time independent of where the inputs differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl BasicAuth {
    pub fn parse(text: &str) -> Result<BasicAuth, String> {
        let mut users = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let (user, secret) = line
                .split_once(':')
                .ok_or_else(|| format!("line {}: expected user:password", i + 1))?;
            if user.is_empty() {
                return Err(format!("line {}: empty user name", i + 1));
            }
            let hash = match secret.strip_prefix("sha256:").and_then(from_hex) {
                Some(h) => h,
                None => sha256(secret.as_bytes()),
            };
            users.push((user.to_owned(), hash));
        }
        if users.is_empty() {
            return Err("no user:password line".into());
        }
        Ok(BasicAuth { users })
    }

    pub fn load(path: &Path) -> CliResult<BasicAuth> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::usage(format!("--basic-auth-file {}: {e}", path.display())))?;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                log(&format!(
                    "warning: {} is readable by other users; chmod 600 it",
                    path.display()
                ));
            }
        }
        BasicAuth::parse(&text)
            .map_err(|e| CliError::usage(format!("--basic-auth-file {}: {e}", path.display())))
    }

    /// Whether an `Authorization` header value names a known user and password.
    pub fn check(&self, authorization: Option<&str>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let Some((scheme, creds)) = value.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(creds.trim()) else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else {
            return false;
        };
        let (user, pass) = (&decoded[..colon], &decoded[colon + 1..]);
        let hash = sha256(pass);
        // Check every entry, so the time does not tell which user exists.
        let mut ok = false;
        for (u, h) in &self.users {
            ok |= ct_eq(u.as_bytes(), user) & ct_eq(h, &hash);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    }

    #[test]
    fn plain_and_hashed() {
        // sha256("secret")
        let a = BasicAuth::parse(
            "# users\n\nprom:pa:ss word\ngraf:sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b\n",
        )
        .unwrap();
        assert!(a.check(Some(&header("prom", "pa:ss word"))));
        assert!(a.check(Some(&header("graf", "secret"))));
        assert!(!a.check(Some(&header("graf", "Secret"))));
        assert!(!a.check(Some(&header("prom", "secret"))));
        assert!(!a.check(Some(&header("nobody", "pa:ss word"))));
        assert!(!a.check(None));
        assert!(!a.check(Some("Bearer x")));
        assert!(!a.check(Some("Basic !!!")));
        assert!(BasicAuth::parse("# only comments\n").is_err());
        assert!(BasicAuth::parse("nocolon\n").is_err());
    }
}
