//! Status codes, their messages, the mapping from the core [`Error`], and the
//! thread-local detail of the last failure.

use std::borrow::Cow;
use std::cell::RefCell;
use std::ffi::{c_char, CStr};

use crate::error::Error;

/// The status every fallible function returns. `PROMSHM_RESULT_OK` (0) is
/// success; errors come in numbered blocks by category: 1xx bad arguments,
/// 2xx I/O, 3xx the shared area, 4xx the registry, 9xx internal. Numbers are
/// never reused: a retired code stays reserved. `promshm_result_message()`
/// gives a code's text, `promshm_last_error()` the detail of the last
/// failure on the calling thread.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum promshm_result {
    /// Success.
    Ok = 0,

    // ---- 1xx: bad arguments -------------------------------------------------
    /// A required pointer argument (handle, string, array or out-pointer) was NULL.
    NullParameter = 100,
    /// A metric name does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`, starts with the reserved `promshm_`, or ends in a suffix reserved for another type (`_total` on a gauge, `_count` on a state set, ...).
    InvalidMetricName = 101,
    /// A label name does not match `[a-zA-Z_][a-zA-Z0-9_]*`.
    InvalidLabelName = 102,
    /// A reserved label name: `le`, `quantile`, names starting with `__`, `worker` on an `all`-mode gauge, a state set's own name.
    ReservedLabel = 103,
    /// The same label name was given twice.
    DuplicateLabel = 104,
    /// A unit that is not `[a-zA-Z0-9_]*`, or a unit on an info or state-set family.
    InvalidUnit = 105,
    /// The number of label values differs from the family's number of label names.
    LabelCount = 106,
    /// A label name, given as a name/value pair, that the family does not have.
    UnknownLabel = 107,
    /// Histogram buckets that are not finite and strictly increasing, or bad bucket-helper parameters.
    InvalidBuckets = 108,
    /// Summary quantiles outside [0, 1] or not increasing, or a bad window.
    InvalidSummary = 109,
    /// A state set without states, with duplicate states, or an unknown state name or index.
    InvalidState = 110,
    /// A rejected value: a negative or NaN counter increment, a NaN observation.
    InvalidValue = 111,
    /// A string is too long (metric and label names: 1 KiB; help and label values: 16 KiB).
    TooLong = 112,
    /// A string argument is not valid UTF-8.
    NotUtf8 = 113,
    /// Any other invalid argument: an unknown enum value, an out-of-range page or worker count, too many labels.
    InvalidArgument = 114,
    /// The caller's buffer is too small; the needed size was written to the size out-parameter.
    BufferTooSmall = 115,
    /// The series or family handle is of another metric type than the function (e.g. `promshm_counter_inc` on a gauge).
    WrongType = 116,

    // ---- 2xx: I/O -------------------------------------------------------------
    /// An operating-system error on a file or mapping (see `promshm_last_error()` for the path and errno text).
    Io = 200,
    /// Writing rendered output failed (the write callback returned non-zero).
    WriteFailed = 201,
    /// The file does not exist.
    NotFound = 202,
    /// The operating system denied access to the file.
    PermissionDenied = 203,
    /// The file is not safe to use as an area and was refused: not a regular file (a symbolic link, FIFO, socket, device or directory), owned by another user, or writable by its group or by every user. `promshm_last_error()` names the file and the reason.
    UnsafeFile = 204,

    // ---- 3xx: the shared area ---------------------------------------------------
    /// No room left in the area for a new family or series; existing series keep working.
    AreaFull = 300,
    /// Every worker slot is taken by a live process.
    WorkersFull = 301,
    /// The file is not a promshm area, or has a layout this build cannot read.
    IncompatibleArea = 302,
    /// The area, or a record in it, is damaged.
    CorruptArea = 303,
    /// The area was opened read-only and the operation writes to it.
    ReadOnly = 304,
    /// The cross-process area lock, or the file lock taken while an area file is created or opened, stayed held by another process for too long.
    LockTimeout = 305,

    // ---- 4xx: the registry --------------------------------------------------------
    /// A family of this name exists with another type, labels, unit, buckets, quantiles, states or gauge mode.
    ShapeMismatch = 400,
    /// A name the family would render (its name plus a suffix of its type, e.g. a summary's `_count`) is rendered by another family of the area.
    NameTaken = 401,

    // ---- 9xx: internal ------------------------------------------------------------
    /// promshm panicked (a bug). The panic was caught at the API boundary; the process is unharmed.
    Panic = 900,
}

impl promshm_result {
    pub(crate) const ALL: &'static [promshm_result] = {
        use promshm_result::*;
        &[
            Ok,
            NullParameter,
            InvalidMetricName,
            InvalidLabelName,
            ReservedLabel,
            DuplicateLabel,
            InvalidUnit,
            LabelCount,
            UnknownLabel,
            InvalidBuckets,
            InvalidSummary,
            InvalidState,
            InvalidValue,
            TooLong,
            NotUtf8,
            InvalidArgument,
            BufferTooSmall,
            WrongType,
            Io,
            WriteFailed,
            NotFound,
            PermissionDenied,
            UnsafeFile,
            AreaFull,
            WorkersFull,
            IncompatibleArea,
            CorruptArea,
            ReadOnly,
            LockTimeout,
            ShapeMismatch,
            NameTaken,
            Panic,
        ]
    };

    /// The code for a number from C, if it is one.
    pub(crate) fn from_u32(code: u32) -> Option<promshm_result> {
        Self::ALL.iter().copied().find(|r| *r as u32 == code)
    }

    /// A short, static description.
    pub(crate) fn message(self) -> &'static CStr {
        use promshm_result::*;
        match self {
            Ok => c"ok",
            NullParameter => c"a required pointer argument was NULL",
            InvalidMetricName => c"invalid metric name",
            InvalidLabelName => c"invalid label name",
            ReservedLabel => c"reserved label name",
            DuplicateLabel => c"duplicate label name",
            InvalidUnit => c"invalid unit",
            LabelCount => c"wrong number of label values",
            UnknownLabel => c"unknown label name",
            InvalidBuckets => c"invalid histogram buckets",
            InvalidSummary => c"invalid summary options",
            InvalidState => c"invalid state",
            InvalidValue => c"invalid value",
            TooLong => c"string too long",
            NotUtf8 => c"string is not valid UTF-8",
            InvalidArgument => c"invalid argument",
            BufferTooSmall => c"buffer too small",
            WrongType => c"operation does not apply to this metric type",
            Io => c"I/O error",
            WriteFailed => c"writing the output failed",
            NotFound => c"file not found",
            PermissionDenied => c"permission denied",
            UnsafeFile => c"refused an unsafe area file",
            AreaFull => c"the shared area is full",
            WorkersFull => c"all worker slots are in use",
            IncompatibleArea => c"not a compatible promshm area",
            CorruptArea => c"the shared area is corrupt",
            ReadOnly => c"the area is open read-only",
            LockTimeout => c"timed out waiting for the area lock or file lock",
            ShapeMismatch => c"family already registered with another shape",
            NameTaken => c"a name this family would render is taken by another family",
            Panic => c"internal error (panic caught at the API boundary)",
        }
    }
}

/// The status code for a core error. The only place where errors are mapped.
pub(crate) fn from_error(e: &Error) -> promshm_result {
    use promshm_result as R;
    match e {
        Error::InvalidMetricName(_) | Error::ReservedSuffix { .. } => R::InvalidMetricName,
        Error::InvalidLabelName(_) => R::InvalidLabelName,
        Error::ReservedLabelName(_) => R::ReservedLabel,
        Error::DuplicateLabelName(_) => R::DuplicateLabel,
        Error::InvalidUnit(_) => R::InvalidUnit,
        Error::LabelCount { .. } => R::LabelCount,
        Error::UnknownLabel(_) => R::UnknownLabel,
        Error::InvalidBuckets(_) => R::InvalidBuckets,
        Error::InvalidSummary(_) => R::InvalidSummary,
        Error::InvalidState(_) => R::InvalidState,
        Error::InvalidValue { .. } => R::InvalidValue,
        Error::TooLong { .. } => R::TooLong,
        Error::ShapeMismatch { .. } => R::ShapeMismatch,
        Error::NameTaken { .. } => R::NameTaken,
        Error::WrongType { .. } => R::WrongType,
        Error::AreaFull { .. } => R::AreaFull,
        Error::WorkersFull(_) => R::WorkersFull,
        Error::IncompatibleArea(_) => R::IncompatibleArea,
        Error::CorruptArea(_) => R::CorruptArea,
        Error::ReadOnly => R::ReadOnly,
        Error::InvalidArgument(_) => R::InvalidArgument,
        Error::LockTimeout(_) | Error::FileLockTimeout { .. } => R::LockTimeout,
        Error::UnsafeFile { .. } => R::UnsafeFile,
        Error::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => R::NotFound,
            std::io::ErrorKind::PermissionDenied => R::PermissionDenied,
            _ => R::Io,
        },
        Error::Write(_) => R::WriteFailed,
    }
}

/// A failure on its way to C: the code to return and the detail to keep.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub code: promshm_result,
    pub detail: Cow<'static, str>,
}

impl FfiError {
    pub(crate) fn new(code: promshm_result, detail: impl Into<Cow<'static, str>>) -> Self {
        FfiError {
            code,
            detail: detail.into(),
        }
    }

    /// `what` was NULL.
    #[cold]
    pub(crate) fn null(what: &'static str) -> Self {
        Self::new(promshm_result::NullParameter, format!("{what} is NULL"))
    }

    /// Record the detail for `promshm_last_error` and give the code.
    #[cold]
    #[inline(never)]
    pub(crate) fn into_code(self) -> promshm_result {
        set_last_error(self.detail);
        self.code
    }
}

impl From<Error> for FfiError {
    #[cold]
    fn from(e: Error) -> Self {
        FfiError::new(from_error(&e), e.to_string())
    }
}

/// Run a fallible body: `Ok` is `PROMSHM_RESULT_OK`, an error records its
/// detail and returns its code.
#[inline(always)]
pub(crate) fn check(f: impl FnOnce() -> Result<(), FfiError>) -> promshm_result {
    match f() {
        Ok(()) => promshm_result::Ok,
        Err(e) => e.into_code(),
    }
}

thread_local! {
    static LAST_ERROR: RefCell<Cow<'static, str>> = const { RefCell::new(Cow::Borrowed("")) };
}

/// Remember `detail` as this thread's last error, and in the error object
/// of the `_e` call running on this thread, if any.
pub(crate) fn set_last_error(detail: Cow<'static, str>) {
    super::error::record_detail(&detail);
    // During thread teardown the slot may be gone: then there is no one to tell.
    let _ = LAST_ERROR.try_with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            *l = detail;
        }
    });
}

ffi_fn! {
    /// The static, NUL-terminated English message for a status code, e.g.
    /// "invalid label name" for `PROMSHM_RESULT_INVALID_LABEL_NAME`.
    ///
    /// Takes the code as a plain integer, so any value is safe: an unknown
    /// code gives "unknown result code". The returned string is owned by the
    /// library and valid for the life of the process; never free it.
    /// Thread-safe. Never fails (on an internal panic: NULL).
    fn promshm_result_message(code: u32) -> *const c_char {
        match promshm_result::from_u32(code) {
            Some(r) => r.message().as_ptr(),
            None => c"unknown result code".as_ptr(),
        }
    }
}

ffi_fn! {
    /// Copy the detail of the last failure on the calling thread (e.g.
    /// `invalid label name "a-b": must match [a-zA-Z_][a-zA-Z0-9_]*`) into
    /// `buf`.
    ///
    /// Every function that returns an error (or NULL or 0 for a panic) sets
    /// this detail; successful calls leave it unchanged, and other threads
    /// have their own. It is the empty string until the first failure.
    ///
    /// Writes at most `len - 1` bytes (cut at a UTF-8 character boundary)
    /// followed by a NUL, and the full length of the detail, NUL excluded, to
    /// `*out_len` (so `*out_len >= len` means it was truncated). `buf` may be
    /// NULL only when `len` is 0: then this is a pure size query. `out_len`
    /// may be NULL. Calling this does not change the detail.
    ///
    /// Errors: `PROMSHM_RESULT_NULL_PARAMETER` if `buf` is NULL and `len` > 0.
    unsafe fn promshm_last_error(
        buf: *mut c_char,
        len: usize,
        out_len: *mut usize,
    ) -> promshm_result {
        if buf.is_null() && len > 0 {
            return promshm_result::NullParameter;
        }
        LAST_ERROR.with(|l| {
            let detail = l.borrow();
            let bytes = detail.as_bytes();
            if len > 0 {
                let mut n = bytes.len().min(len - 1);
                while !detail.is_char_boundary(n) {
                    n -= 1;
                }
                // SAFETY: `buf` is writable for `len` bytes (caller contract), n < len.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), n);
                    *buf.add(n) = 0;
                }
            }
            if !out_len.is_null() {
                // SAFETY: a non-NULL `out_len` is writable (caller contract).
                unsafe { *out_len = bytes.len() };
            }
        });
        promshm_result::Ok
    }
}
