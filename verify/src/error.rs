use std::path::PathBuf;

use thiserror::Error;

/// Everything `scalegemm-verify` rejects. Argument names (`"candidate"`, `"reference"`,
/// `"bound"`) are those of the function that failed; coordinates are logical
/// (row, column) of the compared `[rows, cols]` matrix.
#[derive(Debug, Error)]
pub enum Error {
    /// A slice is too short for the `[rows, cols]` matrix it should hold with its leading
    /// dimension, the two slices of a flat metric ([`crate::metrics::calc_diff`], ...)
    /// differ in length, or a tensor in a file does not have the shape the caller needs.
    #[error("shape mismatch for `{tensor}`: expected {expected}, got {got}")]
    Shape {
        /// Offending argument or tensor name.
        tensor: String,
        /// What was required, e.g. `"at least 1200 elements ([3, 400], ld 400)"`.
        expected: String,
        /// What was given.
        got: String,
    },
    /// A leading dimension smaller than the number of columns, or a shape whose element
    /// count overflows `usize`.
    #[error("invalid leading dimension for `{tensor}`: {reason}")]
    Stride {
        /// Offending argument.
        tensor: &'static str,
        /// What is wrong, with the numbers.
        reason: String,
    },
    /// A per-element bound that is NaN or negative (a bound must be a number in
    /// `[0, +inf]`).
    #[error("invalid bound {value} at [{row}, {col}]: a bound must be in [0, +inf]")]
    Bound {
        /// Row of the first offending element (row-major scan).
        row: usize,
        /// Column of the first offending element.
        col: usize,
        /// The bound found.
        value: f64,
    },
    /// An argument outside its allowed set (a negative or NaN tolerance, ...).
    #[error("invalid argument `{name}`: {reason}")]
    Argument {
        /// Argument name.
        name: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// Reading a file failed.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not a valid safetensors file (bad header, offsets, ...).
    #[error("invalid safetensors file {}: {source}", path.display())]
    SafeTensors {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// The file has no tensor of that name.
    #[error("no tensor `{name}` in {}", path.display())]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        name: String,
    },
    /// The tensor exists but has another element type than the one asked for.
    #[error("tensor `{name}` has dtype {got}, expected {expected}")]
    Dtype {
        /// Tensor name.
        name: String,
        /// The dtype the caller needs, as safetensors spells it (`"BF16"`).
        expected: &'static str,
        /// The dtype found, as safetensors spells it.
        got: String,
    },
}
