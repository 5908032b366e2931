//! Request-header rules of `promshm serve` that hyper leaves to us:
//! keep-alive by HTTP version and `Connection`, and gzip by `Accept-Encoding`.

use hyper::header::{HeaderMap, ACCEPT_ENCODING, CONNECTION};
use hyper::Version;

/// All values of a header joined with `, ` (several fields are one list).
fn joined(headers: &HeaderMap, name: hyper::header::HeaderName) -> Option<String> {
    let mut out: Option<String> = None;
    for v in headers.get_all(name) {
        let v = String::from_utf8_lossy(v.as_bytes()).trim().to_owned();
        out = Some(match out {
            Some(prev) => format!("{prev}, {v}"),
            None => v,
        });
    }
    out
}

/// Whether the client wants the connection kept open after the response.
pub fn keep_alive(version: Version, headers: &HeaderMap) -> bool {
    let connection = joined(headers, CONNECTION);
    let has = |tok: &str| {
        connection
            .as_deref()
            .is_some_and(|c| c.split(',').any(|t| t.trim().eq_ignore_ascii_case(tok)))
    };
    if version <= Version::HTTP_10 {
        has("keep-alive")
    } else {
        !has("close")
    }
}

/// Whether `Accept-Encoding` accepts gzip (`gzip` or `*` with q > 0).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    accepts_gzip_value(joined(headers, ACCEPT_ENCODING).as_deref())
}

fn accepts_gzip_value(ae: Option<&str>) -> bool {
    let Some(ae) = ae else {
        return false;
    };
    let mut gzip = None;
    let mut star = None;
    for item in ae.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q_ok = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map(|(_, v)| v.trim().parse::<f64>().map(|q| q > 0.0).unwrap_or(false))
            .unwrap_or(true);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(q_ok);
        } else if coding == "*" {
            star = Some(q_ok);
        }
    }
    gzip.or(star).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_and_gzip_rules() {
        let h = |name: hyper::header::HeaderName, v: Option<&str>| {
            let mut m = HeaderMap::new();
            if let Some(v) = v {
                m.append(name, v.parse().unwrap());
            }
            m
        };
        let ka = |version, c: Option<&str>| keep_alive(version, &h(CONNECTION, c));
        let gz = |ae: Option<&str>| accepts_gzip(&h(ACCEPT_ENCODING, ae));
        assert!(!ka(Version::HTTP_10, None));
        assert!(ka(Version::HTTP_10, Some("Keep-Alive")));
        assert!(!ka(Version::HTTP_11, Some("close")));
        assert!(ka(Version::HTTP_11, Some("TE, keep-alive")));
        assert!(ka(Version::HTTP_11, None));
        assert!(!gz(None));
        assert!(gz(Some("deflate, gzip;q=0.5")));
        assert!(!gz(Some("gzip;q=0")));
        assert!(gz(Some("*")));
        assert!(!gz(Some("*, gzip;q=0")));
        assert!(!gz(Some("identity")));
        let mut two = HeaderMap::new();
        two.append(ACCEPT_ENCODING, "deflate".parse().unwrap());
        two.append(ACCEPT_ENCODING, "gzip".parse().unwrap());
        assert!(accepts_gzip(&two), "several fields are one list");
    }
}
