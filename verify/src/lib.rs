//! `scalegemm-verify`: comparison metrics and the verification harness for `scalegemm`.
//!
//! - [`metrics`]: DeepGEMM's `calc_diff`, SQNR, max absolute/relative error, per-element
//!   bound checks with the first and worst mismatch located, NaN/inf mismatch counts, all
//!   gathered by [`metrics::compare`] into a [`metrics::Comparison`] (DESIGN §3.4);
//! - [`data`]: the real tensors in the shared data directory (`SCALEGEMM_DATA_DIR`) and a
//!   small safetensors reader for them;
//! - [`dump`]: the safetensors dump format (`"op"` + fixed tensor names) through which
//!   other frameworks' kernels are checked, its reader, reference and bound;
//! - [`report`]: the numerical-error report of the `scalegemm-verify` CLI (cases, measures,
//!   Markdown/JSON/HTML output, the GPU kernels under test);
//! - [`strategy`]: proptest strategies (edge-biased shapes, adversarial values and scales)
//!   that shrink to small cases printable as dumps.
//!
//! Every fallible function returns [`Error`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod data;
pub mod dump;
mod error;
pub mod metrics;
pub mod report;
pub mod strategy;

pub use error::Error;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
