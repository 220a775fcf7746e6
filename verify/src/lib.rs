//! `scalegemm-verify`: comparison metrics and the verification harness for `scalegemm`.
//!
//! - [`metrics`]: DeepGEMM's `calc_diff`, SQNR, max absolute/relative error, per-element
//!   bound checks with the first and worst mismatch located, NaN/inf mismatch counts, all
//!   gathered by [`metrics::compare`] into a [`metrics::Comparison`] (DESIGN §3.4);
//! - [`data`]: the real tensors in the shared data directory (`SCALEGEMM_DATA_DIR`) and a
//!   small safetensors reader for them.
//!
//! Every fallible function returns [`Error`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod data;
mod error;
pub mod metrics;

pub use error::Error;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
