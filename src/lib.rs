//! # promshm
//!
//! Prometheus metrics in a fixed-page shared-memory area, so that every
//! worker process of a pre-fork server updates one store and any process
//! renders it.
//!
//! ```
//! use promshm::{Area, AreaOptions, Format, Opts};
//!
//! let area = Area::anonymous(&AreaOptions::default())?;   // before fork()
//! let registry = area.registry().with_prefix("app")?;
//! let requests = registry.counter(Opts::new("requests", "Requests served.").labels(&["path"]))?;
//! let home = requests.labels(&["/"])?;                     // resolve once...
//! home.inc();                                              // ...update in nanoseconds
//! promshm::flush();                                        // e.g. at request end
//! let text = registry.render_to_string(Format::Prometheus)?;
//! assert!(text.contains("app_requests_total{path=\"/\"} 1"));
//! # Ok::<(), promshm::Error>(())
//! ```
//!
//! The modules follow the architecture: [`area`] (the mapped file, its
//! format, lock, allocator and worker table), [`metrics`] (one module per
//! type), [`buffer`] (thread-local buffers and flush), [`registry`],
//! [`encoding`] (one module per exposition format).
//!
//! The C API (`include/promshm.h`) is a layer over this one, compiled in by
//! the default feature `capi` for `libpromshm.so` and `libpromshm.a`; it is
//! not part of the Rust API. A Rust program that depends on promshm can leave
//! it out (`default-features = false`), so that its `promshm_*` symbols are
//! not linked in (two versions of promshm in one build then link too).
//! `docs/ARCHITECTURE.md` describes the layers.
//!
//! ```compile_fail
//! // Not a Rust API: the C functions are reached through include/promshm.h.
//! let version = unsafe { promshm::ffi::promshm_version() };
//! ```
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod area;
pub mod buffer;
pub mod encoding;
mod error;
#[cfg(feature = "capi")]
mod ffi;
pub mod metrics;
mod process;
pub mod registry;
mod render;
mod validate;

pub use area::{Area, AreaOptions, AreaStats, FileOptions, OpenMode, WorkerInfo};
pub use buffer::{flush, FlushStats, Flusher, FlusherBuilder};
pub use encoding::Format;
pub use error::{Error, Result};
pub use metrics::histogram::LocalHistogram;
pub use metrics::{
    exponential_buckets, linear_buckets, Counter, Family, Gauge, GaugeMode, Histogram, Info,
    StateSet, Summary, SummaryOpts, DEFAULT_BUCKETS,
};
pub use metrics::{LocalCounter, NativeHistogram, NativeOpts};
pub use registry::{Opts, Registry};
pub use render::RenderStats;
