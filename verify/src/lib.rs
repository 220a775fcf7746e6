//! `scalegemm-verify`: comparison metrics and the verification harness for `scalegemm`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod metrics;
