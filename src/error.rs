//! The one error type of the core. The C API maps each variant to a
//! numbered `promshm_result` code in exactly one place (`ffi::result`).

use std::path::PathBuf;

/// Everything that can go wrong in promshm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A metric (family) name does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("invalid metric name {0:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]*")]
    InvalidMetricName(String),
    /// A label name does not match `[a-zA-Z_][a-zA-Z0-9_]*`.
    #[error("invalid label name {0:?}: must match [a-zA-Z_][a-zA-Z0-9_]*")]
    InvalidLabelName(String),
    /// A label name that the exposition formats reserve (`le`, `quantile`, `__*`, ...).
    #[error("label name {0:?} is reserved")]
    ReservedLabelName(String),
    /// The same label name given twice.
    #[error("label name {0:?} given more than once")]
    DuplicateLabelName(String),
    /// A unit that is not `[a-zA-Z0-9_]*`, or a unit on a type that cannot have one.
    #[error("invalid unit {0:?}")]
    InvalidUnit(String),
    /// The number of label values differs from the number of label names.
    #[error("wrong number of label values: expected {expected}, got {got}")]
    LabelCount {
        /// Label names the family has.
        expected: usize,
        /// Label values supplied.
        got: usize,
    },
    /// A label name passed by name/value pairs that the family does not have.
    #[error("unknown label name {0:?}")]
    UnknownLabel(String),
    /// Histogram buckets that are empty, not strictly increasing, or NaN.
    #[error("invalid buckets: {0}")]
    InvalidBuckets(String),
    /// Summary objectives outside (0, 1), not increasing, or a bad window.
    #[error("invalid summary options: {0}")]
    InvalidSummary(String),
    /// A StateSet/Enum without states, with duplicates, or an unknown state.
    #[error("invalid state: {0}")]
    InvalidState(String),
    /// A negative or NaN counter increment.
    #[error("invalid value {value} for {what}")]
    InvalidValue {
        /// What was being updated.
        what: &'static str,
        /// The rejected value.
        value: f64,
    },
    /// A string that is too long to store (names, help, label values).
    #[error("{what} is too long ({len} bytes, at most {max})")]
    TooLong {
        /// Which string.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A family was registered before with another type, labels, buckets or options.
    #[error("family {name:?} is already registered with another shape: {detail}")]
    ShapeMismatch {
        /// The family name.
        name: String,
        /// What differs.
        detail: String,
    },
    /// A name the new family would render (its name plus a suffix of its
    /// type, e.g. a summary's `_count`) is already rendered by another family
    /// of the area, registered by this process or any other.
    #[error(
        "family {name:?} would render {taken:?}, which family {owner:?} already renders: \
         choose another name"
    )]
    NameTaken {
        /// The family being registered.
        name: String,
        /// The rendered name both would use.
        taken: String,
        /// The family registered first.
        owner: String,
    },
    /// A family name that ends in a suffix the text format reserves for the
    /// samples of another type (`_total` on a gauge, `_count` on a state
    /// set, ...), which `promtool check metrics` rejects.
    #[error(
        "invalid metric name {name:?}: a {kind} name may not end in {suffix:?}, which the \
         exposition reserves for {owner}"
    )]
    ReservedSuffix {
        /// The full family name.
        name: String,
        /// Its type (`gauge`, ...).
        kind: &'static str,
        /// The reserved suffix it ends in.
        suffix: &'static str,
        /// The types that suffix belongs to.
        owner: &'static str,
    },
    /// The operation does not apply to this metric type.
    #[error("operation {op} does not apply to a {kind}")]
    WrongType {
        /// The operation.
        op: &'static str,
        /// The family's type.
        kind: &'static str,
    },
    /// No room left in the area for a new family or series.
    #[error("the area is full: {needed} bytes needed, {free} free")]
    AreaFull {
        /// Bytes the record needs.
        needed: usize,
        /// Bytes left.
        free: usize,
    },
    /// Every worker slot is taken by a live process.
    #[error("all {0} worker slots are in use by live processes")]
    WorkersFull(u32),
    /// The file is not a promshm area, or one this build cannot read.
    #[error("incompatible area: {0}")]
    IncompatibleArea(String),
    /// The area (or a record in it) is damaged.
    #[error("corrupt area: {0}")]
    CorruptArea(String),
    /// The area was opened read-only and the operation writes.
    #[error("the area is open read-only")]
    ReadOnly,
    /// Invalid options (page count, worker count, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Waiting for the area lock took longer than the bound.
    #[error("timed out waiting for the area lock held by pid {0}")]
    LockTimeout(u32),
    /// A file that is not safe to use as an area: not a regular file (a
    /// symbolic link, FIFO, socket, device or directory), owned by a user the
    /// caller did not allow, or writable by its group or by every user.
    #[error("refusing {path}: {reason}")]
    UnsafeFile {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// Waiting for another process's `flock` on an area file (taken while it
    /// creates or validates the file) took longer than the bound.
    #[error("timed out after {waited_ms} ms waiting for the file lock on {path}: another process holds it")]
    FileLockTimeout {
        /// The file.
        path: PathBuf,
        /// How long we waited, in milliseconds.
        waited_ms: u64,
    },
    /// An I/O error on a path.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An I/O error from a writer (rendering).
    #[error("write failed: {0}")]
    Write(#[from] std::io::Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn unsafe_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::UnsafeFile {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
