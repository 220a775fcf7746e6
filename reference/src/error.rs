use thiserror::Error;

/// Everything the reference rejects. Tensor names are the argument names of the
/// function that failed (`"a"`, `"sfb"`, `"grouped_layout"`, ...); coordinates are
/// logical (row, column) of that tensor, or (group, row, column) where stated.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// A dimension or a tensor's logical shape does not match what the operation needs.
    #[error("shape mismatch for `{tensor}`: expected {expected}, got {got}")]
    Shape {
        /// Offending tensor or argument.
        tensor: &'static str,
        /// What was required, e.g. `"[7, 9]"`.
        expected: String,
        /// What was given.
        got: String,
    },
    /// A strided view would read or write outside its buffer, or its strides overlap
    /// where they must not (an output view whose rows alias each other).
    #[error("invalid strides for `{tensor}`: {reason}")]
    Stride {
        /// Offending tensor.
        tensor: &'static str,
        /// What is wrong, with the numbers.
        reason: String,
    },
    /// A NaN or ±inf in an input to quantization: the reference never invents numbers.
    #[error("non-finite value {value} in `{tensor}` at [{row}, {col}]")]
    NonFinite {
        /// Offending tensor.
        tensor: &'static str,
        /// Row of the first offending element (row-major scan).
        row: usize,
        /// Column of the first offending element.
        col: usize,
        /// The value found.
        value: f32,
    },
    /// A scale factor the recipe does not allow: not finite, not positive where a
    /// quantization recipe needs a positive scale, or not a power of two where the
    /// recipe is UE8M0.
    #[error("invalid scale {value} in `{tensor}` at index {index}: {reason}")]
    Scale {
        /// Offending scale tensor.
        tensor: &'static str,
        /// Flat index (row-major over the logical scale shape).
        index: usize,
        /// The scale value found.
        value: f32,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A group index or group size outside its valid range.
    #[error("invalid group data in `{tensor}` at index {index}: {reason}")]
    Group {
        /// Offending tensor (`"grouped_layout"`, `"masked_m"`, `"ks"`, ...).
        tensor: &'static str,
        /// Flat index of the offending entry.
        index: usize,
        /// Why it is rejected.
        reason: String,
    },
    /// An argument outside its allowed set (granularity, recipe combination, ...).
    #[error("invalid argument `{name}`: {reason}")]
    Argument {
        /// Argument name.
        name: &'static str,
        /// Why it is rejected.
        reason: String,
    },
}

/// The element count of a shape, or [`Error::Shape`] naming `tensor` when it overflows
/// `usize` (a broadcast view with stride 0 can describe a logically huge matrix).
pub(crate) fn checked_len(tensor: &'static str, dims: &[usize]) -> Result<usize, Error> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::Shape {
            tensor,
            expected: "a shape whose element count fits in usize".into(),
            got: format!("{dims:?}"),
        })
}

/// Shape error for a flat buffer of the wrong length.
pub(crate) fn len_error(tensor: &'static str, shape: String, need: usize, got: usize) -> Error {
    Error::Shape {
        tensor,
        expected: format!("{shape} = {need} elements"),
        got: format!("{got} elements"),
    }
}

/// Checks that a flat buffer of `len` elements holds exactly the shape `dims`; returns
/// the element count.
pub(crate) fn expect_len(tensor: &'static str, len: usize, dims: &[usize]) -> Result<usize, Error> {
    let n = checked_len(tensor, dims)?;
    if len != n {
        return Err(len_error(tensor, format!("{dims:?}"), n, len));
    }
    Ok(n)
}
