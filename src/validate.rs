//! Name and label checks shared by every registration path.

use crate::area::format::{MAX_HELP_LEN, MAX_NAME_LEN, MAX_VALUE_LEN};
use crate::encoding::MetricType;
use crate::error::{Error, Result};

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub(crate) fn metric_name(name: &str) -> Result<()> {
    too_long("metric name", name)?;
    let ok = !name.is_empty()
        && name.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphabetic() || b == b'_' || b == b':' || (i > 0 && b.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidMetricName(name.to_owned()))
    }
}

fn too_long(what: &'static str, name: &str) -> Result<()> {
    if name.len() > MAX_NAME_LEN {
        return Err(Error::TooLong {
            what,
            len: name.len(),
            max: MAX_NAME_LEN,
        });
    }
    Ok(())
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`.
pub(crate) fn label_name(name: &str) -> Result<()> {
    too_long("label name", name)?;
    let ok = !name.is_empty()
        && name
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_alphabetic() || b == b'_' || (i > 0 && b.is_ascii_digit()));
    if !ok {
        return Err(Error::InvalidLabelName(name.to_owned()));
    }
    if name.starts_with("__") {
        return Err(Error::ReservedLabelName(name.to_owned()));
    }
    Ok(())
}

/// Every label name of a family: valid, not reserved for its type, no duplicates.
pub(crate) fn label_names(names: &[String], kind: MetricType, family: &str) -> Result<()> {
    for (i, n) in names.iter().enumerate() {
        label_name(n)?;
        // `le` and `quantile` are reserved on every type, so that any family
        // can be turned into a histogram or summary view without a clash.
        let reserved =
            n == "le" || n == "quantile" || (kind == MetricType::StateSet && n == family);
        if reserved {
            return Err(Error::ReservedLabelName(n.clone()));
        }
        if names[..i].contains(n) {
            return Err(Error::DuplicateLabelName(n.clone()));
        }
    }
    Ok(())
}

/// A unit: `[a-zA-Z0-9_]*`, and none on info or stateset.
pub(crate) fn unit(unit: &str, kind: MetricType) -> Result<()> {
    if unit.is_empty() {
        return Ok(());
    }
    let ok = unit.len() <= MAX_NAME_LEN
        && unit.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !matches!(kind, MetricType::Info | MetricType::StateSet);
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidUnit(unit.to_owned()))
    }
}

/// A family name (prefix and unit included) that does not end in a suffix
/// the Prometheus text format reserves for the samples of another type
/// (`_total`: counters; `_bucket`: histograms; `_count`, `_sum`: histograms
/// and summaries), which `promtool check metrics` rejects. Counters and info
/// families are exposed with their own `_total`/`_info` after the name, so
/// their names may end in anything.
pub(crate) fn family_name_suffix(name: &str, kind: MetricType) -> Result<()> {
    use MetricType as T;
    let reserved: &[(&str, &str)] = match kind {
        T::Counter | T::Info => &[],
        T::Histogram | T::NativeHistogram => &[("_total", "counters")],
        T::Summary => &[("_total", "counters"), ("_bucket", "histograms")],
        T::Gauge | T::StateSet => &[
            ("_total", "counters"),
            ("_bucket", "histograms"),
            ("_count", "histograms and summaries"),
            ("_sum", "histograms and summaries"),
        ],
    };
    match reserved.iter().find(|(sfx, _)| name.ends_with(sfx)) {
        Some(&(suffix, owner)) => Err(Error::ReservedSuffix {
            name: name.to_owned(),
            kind: kind.as_str(),
            suffix,
            owner,
        }),
        None => Ok(()),
    }
}

/// Help text length.
pub(crate) fn help(help: &str) -> Result<()> {
    if help.len() > MAX_HELP_LEN {
        return Err(Error::TooLong {
            what: "help",
            len: help.len(),
            max: MAX_HELP_LEN,
        });
    }
    Ok(())
}

/// Label values: count and length.
pub(crate) fn label_values(expected: usize, values: &[&str]) -> Result<()> {
    if values.len() != expected {
        return Err(Error::LabelCount {
            expected,
            got: values.len(),
        });
    }
    for v in values {
        if v.len() > MAX_VALUE_LEN {
            return Err(Error::TooLong {
                what: "label value",
                len: v.len(),
                max: MAX_VALUE_LEN,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(metric_name("http_requests:rate5m").is_ok());
        assert!(metric_name("_x").is_ok());
        for bad in ["", "1abc", "a-b", "a b", "é"] {
            assert!(
                matches!(metric_name(bad), Err(Error::InvalidMetricName(_))),
                "{bad}"
            );
        }
        assert!(label_name("path").is_ok());
        assert!(matches!(label_name("a:b"), Err(Error::InvalidLabelName(_))));
        assert!(matches!(
            label_name("__name__"),
            Err(Error::ReservedLabelName(_))
        ));
    }

    #[test]
    fn reserved_per_type() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(label_names(&v(&["le"]), MetricType::Histogram, "h").is_err());
        assert!(label_names(&v(&["quantile"]), MetricType::Summary, "s").is_err());
        assert!(label_names(&v(&["s"]), MetricType::StateSet, "s").is_err());
        assert!(label_names(&v(&["a", "a"]), MetricType::Gauge, "g").is_err());
        assert!(label_names(&v(&["le"]), MetricType::Counter, "c").is_err());
        assert!(label_names(&v(&["path"]), MetricType::Counter, "c").is_ok());
    }
}
