//! Error metrics: how far a candidate (a kernel's output) is from a reference.
//!
//! Two kinds of metric (DESIGN §3.4):
//! - *global* ones, one number per tensor: DeepGEMM's [`calc_diff`] (the number its
//!   thresholds are written in: 1e-3 FP8, 1e-2 one FP4 side, 2e-2 both FP4, 1e-5 BF16)
//!   and [`sqnr_db`];
//! - *per-element* ones, which catch local bugs a global number hides (one wrong scale
//!   block): [`max_abs_error`], [`max_rel_error`] and the bound check of [`compare`],
//!   which counts the elements with |x − y| > bound and locates the first and the worst.
//!
//! [`compare`] computes all of them for one `[rows, cols]` matrix in one pass and returns a
//! [`Comparison`]; the free functions over flat slices return the same numbers as the
//! corresponding fields of `compare` on the shape `[1, n]`, and [`Error::Shape`] when the
//! two slices differ in length.
//!
//! # Conventions
//! - `x` is the candidate, `y` the reference (the exact or higher-precision value). All
//!   arithmetic is in `f64`; candidates in f32 or BF16 are widened exactly
//!   ([`compare_f32`], [`compare_bf16`]).
//! - Sums are accumulated with Neumaier's compensated summation (A. Neumaier, ZAMM 54
//!   (1974) 39–51; Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
//!   §4.3): the error of each sum is about 2u·|S| + O(n·u²)·Σ|tᵢ| (u = 2⁻⁵³) instead of
//!   the (n − 1)·u·Σ|tᵢ| of a plain loop, so sums over 10⁸ elements keep full precision.
//!   Inputs whose largest magnitude is above 2⁴⁰⁰ or below 2⁻⁴⁰⁰ are rescaled by a power of
//!   two before the sums (exact, and every global metric here is scale invariant), so the
//!   squares neither overflow nor underflow.
//! - Non-finite values. For each element the pair (x, y) is one of: *finite* (both
//!   finite); a *non-finite agreement* (both NaN, or both +inf, or both −inf: the same
//!   special value in the same place is agreement, not an error); a *NaN mismatch*
//!   (exactly one side is NaN); an *inf mismatch* (neither is NaN, at least one is ±inf,
//!   and they differ: inf against a finite number, or +inf against −inf). The
//!   per-element difference used by every per-element metric is
//!   `d(x, y) = |x − y|` for a finite pair, `0` for a non-finite agreement and `+inf`
//!   for a mismatch, so a mismatch can never hide behind a NaN that compares false.
//!   The global metrics ([`calc_diff`], [`sqnr_db`]) are NaN as soon as either side has
//!   any non-finite element (as DeepGEMM's formula gives in PyTorch: inf/inf or NaN
//!   propagation); [`Comparison`] also carries them over the finite pairs alone.

use std::fmt;

use half::bf16;

use crate::{Error, Result};

// ---------------------------------------------------------------------------------------
// Summation and the global metrics
// ---------------------------------------------------------------------------------------

/// Neumaier's compensated sum ("improved Kahan–Babuška"). Negating every term negates the
/// result exactly (round-to-nearest is symmetric), which `calc_diff(x, -x) == 2` relies on.
#[derive(Clone, Copy, Debug, Default)]
struct Neumaier {
    sum: f64,
    comp: f64,
}

impl Neumaier {
    #[inline]
    fn add(&mut self, v: f64) {
        let t = self.sum + v;
        if self.sum.abs() >= v.abs() {
            self.comp += (self.sum - t) + v;
        } else {
            self.comp += (v - t) + self.sum;
        }
        self.sum = t;
    }

    #[inline]
    fn value(&self) -> f64 {
        self.sum + self.comp
    }
}

/// Σx², Σy², Σxy and Σ(x − y)² over the finite pairs.
#[derive(Clone, Copy, Debug, Default)]
struct Sums {
    xx: Neumaier,
    yy: Neumaier,
    xy: Neumaier,
    dd: Neumaier,
}

impl Sums {
    #[inline]
    fn add(&mut self, x: f64, y: f64) {
        self.xx.add(x * x);
        self.yy.add(y * y);
        self.xy.add(x * y);
        let d = x - y;
        self.dd.add(d * d);
    }

    /// DeepGEMM's `1 − 2Σxy / Σ(x² + y²)`, 0 when both sides are all zero.
    fn calc_diff(&self) -> f64 {
        let den = self.xx.value() + self.yy.value();
        if den == 0.0 {
            return 0.0;
        }
        1.0 - 2.0 * self.xy.value() / den
    }

    /// `10·log10(Σy² / Σ(x − y)²)`, +inf when the two sides are identical.
    fn sqnr_db(&self) -> f64 {
        let dd = self.dd.value();
        if dd == 0.0 {
            return f64::INFINITY;
        }
        10.0 * (self.yy.value() / dd).log10()
    }
}

/// Accumulates the global metrics element by element.
#[derive(Clone, Copy, Debug, Default)]
struct GlobalAcc {
    sums: Sums,
    /// Largest |x| or |y| over the finite pairs.
    amax: f64,
    /// Elements where x or y is not finite.
    nonfinite: usize,
}

/// Largest magnitude handled without rescaling: squares up to 2^800, sums of up to 2^200
/// of them stay finite.
const SAFE_MAX: f64 = 2.5822498780869086e120; // 2^400
/// Smallest largest-magnitude handled without rescaling: squares at least 2^-800 are
/// normal, and elements 2^137 times smaller than the largest contribute below 2^-274 of
/// its square when they underflow.
const SAFE_MIN: f64 = 3.872591914849318e-121; // 2^-400

/// Multiplies by 2^e in steps that cannot overflow the exponent of the factor.
fn scale_pow2(mut v: f64, mut e: i32) -> f64 {
    while e != 0 {
        let step = e.clamp(-1000, 1000);
        v *= 2f64.powi(step);
        e -= step;
    }
    v
}

/// The four global numbers.
#[derive(Clone, Copy, Debug)]
struct Global {
    calc_diff: f64,
    sqnr_db: f64,
    finite_calc_diff: f64,
    finite_sqnr_db: f64,
}

impl GlobalAcc {
    #[inline]
    fn add(&mut self, x: f64, y: f64) {
        if x.is_finite() && y.is_finite() {
            self.sums.add(x, y);
            self.amax = self.amax.max(x.abs()).max(y.abs());
        } else {
            self.nonfinite += 1;
        }
    }

    /// `again` replays the same pairs in the same order; it is called only when the data
    /// must be rescaled (largest magnitude outside [2^-400, 2^400]).
    fn finish<I: Iterator<Item = (f64, f64)>>(self, again: impl FnOnce() -> I) -> Global {
        let sums = if self.amax > SAFE_MAX || (self.amax > 0.0 && self.amax < SAFE_MIN) {
            let e = -(self.amax.log2().floor() as i32);
            let mut s = Sums::default();
            for (x, y) in again() {
                if x.is_finite() && y.is_finite() {
                    s.add(scale_pow2(x, e), scale_pow2(y, e));
                }
            }
            s
        } else {
            self.sums
        };
        let (fc, fs) = (sums.calc_diff(), sums.sqnr_db());
        let (c, s) = if self.nonfinite > 0 {
            (f64::NAN, f64::NAN)
        } else {
            (fc, fs)
        };
        Global {
            calc_diff: c,
            sqnr_db: s,
            finite_calc_diff: fc,
            finite_sqnr_db: fs,
        }
    }
}

/// [`Error::Shape`] unless the candidate `x` and the reference `y` of the flat metric
/// `what` have the same length.
fn check_same_len(x: &[f64], y: &[f64], what: &str) -> Result<()> {
    if x.len() != y.len() {
        return Err(Error::Shape {
            tensor: format!("{what}: reference"),
            expected: format!("{} elements (the candidate's length)", x.len()),
            got: format!("{} elements", y.len()),
        });
    }
    Ok(())
}

fn global_flat(x: &[f64], y: &[f64], what: &str) -> Result<Global> {
    check_same_len(x, y, what)?;
    let pairs = || x.iter().copied().zip(y.iter().copied());
    let mut acc = GlobalAcc::default();
    for (a, b) in pairs() {
        acc.add(a, b);
    }
    Ok(acc.finish(pairs))
}

/// DeepGEMM's relative difference between two tensors of the same shape (any layout, as
/// long as both slices list the elements in the same order):
///
/// `calc_diff(x, y) = 1 − 2·Σ xᵢyᵢ / Σ (xᵢ² + yᵢ²)`  (= ‖x − y‖² / (‖x‖² + ‖y‖²)),
///
/// from `calc_diff` in DeepGEMM's `deep_gemm/testing/numeric.py` (both tensors in double,
/// `denominator = (x*x + y*y).sum(); sim = 2*(x*y).sum()/denominator; return 1 - sim`).
/// Dimensionless, symmetric in x and y, invariant under scaling both by the same nonzero
/// factor, in `[0, 2]`: 0 for x = y, 1 for orthogonal tensors, 2 for x = −y. DeepGEMM's
/// thresholds (DESIGN §3.4) are written in it.
///
/// Computed with compensated sums in f64 (see the module docs), in the same
/// "1 − similarity" form as DeepGEMM, so results below about 1e-15 are rounding noise.
///
/// Special cases (where we decide; DeepGEMM does not):
/// - both all zero (including empty slices): `0.0`, the two are identical (DeepGEMM's
///   formula gives NaN from 0/0);
/// - any NaN or ±inf in either slice: NaN, even where both sides hold the same special
///   value (DeepGEMM's formula gives NaN through inf/inf or NaN propagation; use
///   [`Comparison::finite_calc_diff`] to compare the finite elements alone).
///
/// # Errors
/// [`Error::Shape`] (tensor `"calc_diff: reference"`, expected the candidate's length) if
/// `x` and `y` have different lengths.
pub fn calc_diff(x: &[f64], y: &[f64]) -> Result<f64> {
    Ok(global_flat(x, y, "calc_diff")?.calc_diff)
}

/// Signal-to-quantization-noise ratio in decibels, with `y` the reference (the signal) and
/// `x − y` the noise:
///
/// `sqnr_db(x, y) = 10·log10(Σ yᵢ² / Σ (xᵢ − yᵢ)²)`,
///
/// as PyTorch's `torch.ao.ns.fx.utils.compute_sqnr(x, y)` = `20·log10(‖x‖ / ‖x − y‖)`
/// (there with the first argument as the reference). +inf when x = y (all-zero inputs
/// included), −inf when the reference is all zero and the candidate is not. Each bit of
/// precision is worth about 6.02 dB. NaN when either side has a NaN or ±inf (see the
/// module docs). Compensated sums as in [`calc_diff`].
///
/// # Errors
/// [`Error::Shape`] (tensor `"sqnr_db: reference"`) if `x` and `y` have different lengths.
pub fn sqnr_db(x: &[f64], y: &[f64]) -> Result<f64> {
    Ok(global_flat(x, y, "sqnr_db")?.sqnr_db)
}

// ---------------------------------------------------------------------------------------
// Per-element differences
// ---------------------------------------------------------------------------------------

/// How one (candidate, reference) pair relates; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PairKind {
    Finite,
    Agree,
    NanMismatch,
    InfMismatch,
}

#[inline]
fn pair_kind(x: f64, y: f64) -> PairKind {
    if x.is_finite() && y.is_finite() {
        PairKind::Finite
    } else if x.is_nan() || y.is_nan() {
        if x.is_nan() && y.is_nan() {
            PairKind::Agree
        } else {
            PairKind::NanMismatch
        }
    } else if x == y {
        PairKind::Agree // the same infinity
    } else {
        PairKind::InfMismatch
    }
}

/// `d(x, y)`: |x − y| for a finite pair, 0 for an agreement, +inf for a mismatch.
#[inline]
fn elem_diff(kind: PairKind, x: f64, y: f64) -> f64 {
    match kind {
        PairKind::Finite => (x - y).abs(),
        PairKind::Agree => 0.0,
        PairKind::NanMismatch | PairKind::InfMismatch => f64::INFINITY,
    }
}

/// `d(x, y) / |y|`: 0 when d = 0 (both zero, or the same special value, included), +inf
/// when d = +inf (a mismatch, whatever y is) or when d > 0 and y = 0.
#[inline]
fn elem_rel(d: f64, y: f64) -> f64 {
    if d == 0.0 {
        0.0
    } else if d.is_infinite() || y == 0.0 {
        f64::INFINITY
    } else {
        d / y.abs()
    }
}

/// Largest absolute error `max |xᵢ − yᵢ|` (the "Max absolute difference" that
/// `numpy.testing.assert_allclose` reports). In the units of the data; 0 for empty
/// slices. A NaN or inf mismatch counts as +inf, the same special value on both sides as
/// 0 (module docs).
///
/// # Errors
/// [`Error::Shape`] (tensor `"max_abs_error: reference"`) if `x` and `y` have different
/// lengths.
pub fn max_abs_error(x: &[f64], y: &[f64]) -> Result<f64> {
    check_same_len(x, y, "max_abs_error")?;
    Ok(x.iter()
        .zip(y)
        .fold(0.0, |m, (&a, &b)| m.max(elem_diff(pair_kind(a, b), a, b))))
}

/// Largest relative error `max |xᵢ − yᵢ| / |yᵢ|`, with `y` the reference (the "Max
/// relative difference" of `numpy.testing.assert_allclose`, whose `desired` is our `y`).
/// Dimensionless. Where the reference is zero: 0 if the candidate is zero too, +inf
/// otherwise. A NaN or inf mismatch counts as +inf, the same special value on both sides
/// as 0. 0 for empty slices.
///
/// # Errors
/// [`Error::Shape`] (tensor `"max_rel_error: reference"`) if `x` and `y` have different
/// lengths.
pub fn max_rel_error(x: &[f64], y: &[f64]) -> Result<f64> {
    check_same_len(x, y, "max_rel_error")?;
    Ok(x.iter().zip(y).fold(0.0, |m, (&a, &b)| {
        m.max(elem_rel(elem_diff(pair_kind(a, b), a, b), b))
    }))
}

// ---------------------------------------------------------------------------------------
// Bounds and the full comparison
// ---------------------------------------------------------------------------------------

/// The allowed error of each element, for the bound check of [`compare`]. Every bound is
/// a number in `[0, +inf]` (a NaN or negative bound is [`Error::Bound`]); an element is
/// *outside* its bound when `|x − y| > bound`, or when it is a NaN or inf mismatch
/// (whatever its bound: an infinite bound does not excuse a NaN).
#[derive(Clone, Copy)]
pub enum Bound<'a> {
    /// The same bound for every element (in the units of the data).
    Scalar(f64),
    /// `atol + rtol·|y|` with `y` the reference, as `numpy.isclose(x, y, rtol, atol)`
    /// (`|x − y| <= atol + rtol·|y|`). Both must be finite and ≥ 0 ([`Error::Argument`]).
    /// Where the reference is not finite the bound is +inf (only the special-value
    /// checks apply there).
    Tolerance {
        /// Absolute tolerance, in the units of the data.
        atol: f64,
        /// Relative tolerance, dimensionless.
        rtol: f64,
    },
    /// One bound per element: a `[rows, cols]` row-major matrix with leading dimension
    /// `ld` (element (r, c) at `values[r·ld + c]`), the shape of the compared matrix.
    PerElement {
        /// The bounds.
        values: &'a [f64],
        /// Leading dimension of `values`, ≥ cols.
        ld: usize,
    },
    /// A function of (row, col, reference value), called once per element in row-major
    /// order (for every element, whatever the values, so a bad bound is always caught).
    Fn(&'a dyn Fn(usize, usize, f64) -> f64),
}

impl fmt::Debug for Bound<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Scalar(b) => f.debug_tuple("Scalar").field(b).finish(),
            Bound::Tolerance { atol, rtol } => f
                .debug_struct("Tolerance")
                .field("atol", atol)
                .field("rtol", rtol)
                .finish(),
            Bound::PerElement { values, ld } => f
                .debug_struct("PerElement")
                .field("len", &values.len())
                .field("ld", ld)
                .finish(),
            Bound::Fn(_) => f.write_str("Fn(..)"),
        }
    }
}

/// One element of a comparison, located in the `[rows, cols]` matrix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ElementDiff {
    /// Row (0-based).
    pub row: usize,
    /// Column (0-based).
    pub col: usize,
    /// The candidate's value, widened to f64.
    pub candidate: f64,
    /// The reference value.
    pub reference: f64,
    /// `d(x, y)`: |x − y|, 0 for the same special value on both sides, +inf for a NaN or
    /// inf mismatch (module docs).
    pub diff: f64,
    /// The element's bound.
    pub bound: f64,
}

impl ElementDiff {
    /// `diff / bound`, the fraction of its bound the element uses (> 1: outside). 0 when
    /// `diff` is 0, +inf when `diff` is +inf or the bound is 0 and `diff` is not.
    pub fn ratio(&self) -> f64 {
        if self.diff == 0.0 {
            0.0
        } else if self.diff.is_infinite() {
            f64::INFINITY
        } else {
            self.diff / self.bound
        }
    }
}

/// Every metric of this module for one (candidate, reference, bound) triple over a
/// `[rows, cols]` matrix, from [`compare`]. Candidate `x`, reference `y`; `d(x, y)` as in
/// the module docs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// Number of rows compared.
    pub rows: usize,
    /// Number of columns compared.
    pub cols: usize,
    /// [`calc_diff`] over all elements (DeepGEMM; NaN if any element is not finite).
    pub calc_diff: f64,
    /// [`sqnr_db`] over all elements, in dB (NaN if any element is not finite).
    pub sqnr_db: f64,
    /// `calc_diff` over the pairs where both sides are finite (equal to `calc_diff` when
    /// every element is finite).
    pub finite_calc_diff: f64,
    /// `sqnr_db` over the pairs where both sides are finite, in dB.
    pub finite_sqnr_db: f64,
    /// [`max_abs_error`]: largest `d(x, y)`, in the units of the data (0 when empty).
    pub max_abs: f64,
    /// Where `max_abs` is reached (first in row-major order); `None` when empty.
    pub max_abs_at: Option<(usize, usize)>,
    /// [`max_rel_error`]: largest `d(x, y) / |y|` (0/0 = 0, d/0 = +inf), dimensionless.
    pub max_rel: f64,
    /// Where `max_rel` is reached (first in row-major order); `None` when empty.
    pub max_rel_at: Option<(usize, usize)>,
    /// Number of elements outside their bound (see [`Bound`]).
    pub outside_bound: usize,
    /// The first element outside its bound in row-major order, if any.
    pub first_mismatch: Option<ElementDiff>,
    /// The element with the largest [`ElementDiff::ratio`] (first in row-major order among
    /// ties; the element (0, 0) when every ratio is 0); `None` when empty.
    pub worst: Option<ElementDiff>,
    /// Elements where exactly one side is NaN.
    pub nan_mismatches: usize,
    /// Elements where neither side is NaN, at least one is ±inf, and they differ (inf
    /// against a finite number, or +inf against −inf).
    pub inf_mismatches: usize,
    /// Elements where both sides hold the same special value (both NaN, or the same
    /// infinity): agreement, not counted as errors.
    pub nonfinite_agreements: usize,
}

impl Comparison {
    /// Number of elements compared, rows × cols.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// True when the matrix has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when no element is outside its bound (which includes: no NaN or inf mismatch).
    pub fn within_bound(&self) -> bool {
        self.outside_bound == 0
    }
}

fn fmt_at(at: Option<(usize, usize)>) -> String {
    match at {
        Some((r, c)) => format!("@({r},{c})"),
        None => String::new(),
    }
}

impl fmt::Display for Comparison {
    /// One line, e.g. `[316x384] calc_diff 1.234e-4 sqnr 38.1dB max_abs 2.0e-2@(3,17)
    /// max_rel 4.1e-1@(7,2) outside 0/121344 worst 0.41x@(5,6)`, followed by the first
    /// mismatch and the special-value counts when there are any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}x{}] calc_diff {:.3e} sqnr {:.1}dB max_abs {:.3e}{} max_rel {:.3e}{} outside {}/{}",
            self.rows,
            self.cols,
            self.calc_diff,
            self.sqnr_db,
            self.max_abs,
            fmt_at(self.max_abs_at),
            self.max_rel,
            fmt_at(self.max_rel_at),
            self.outside_bound,
            self.len(),
        )?;
        if let Some(w) = &self.worst {
            write!(f, " worst {:.3}x@({},{})", w.ratio(), w.row, w.col)?;
        }
        if let Some(m) = &self.first_mismatch {
            write!(
                f,
                " first@({},{}) x={:e} y={:e} |d|={:.3e} bound={:.3e}",
                m.row, m.col, m.candidate, m.reference, m.diff, m.bound
            )?;
        }
        if self.nan_mismatches + self.inf_mismatches + self.nonfinite_agreements > 0 {
            write!(
                f,
                " nan_mismatch {} inf_mismatch {} nonfinite_agree {} finite_calc_diff {:.3e}",
                self.nan_mismatches,
                self.inf_mismatches,
                self.nonfinite_agreements,
                self.finite_calc_diff
            )?;
        }
        Ok(())
    }
}

/// Elements a `[rows, cols]` matrix with leading dimension `ld` spans: `(rows − 1)·ld +
/// cols`, or 0 when empty.
fn span(tensor: &'static str, rows: usize, cols: usize, ld: usize) -> Result<usize> {
    if rows == 0 || cols == 0 {
        return Ok(0);
    }
    if ld < cols {
        return Err(Error::Stride {
            tensor,
            reason: format!("ld {ld} < cols {cols}"),
        });
    }
    (rows - 1)
        .checked_mul(ld)
        .and_then(|v| v.checked_add(cols))
        .ok_or_else(|| Error::Stride {
            tensor,
            reason: format!("[{rows}, {cols}] with ld {ld} overflows usize"),
        })
}

fn check_matrix(tensor: &'static str, len: usize, shape: [usize; 2], ld: usize) -> Result<()> {
    let [rows, cols] = shape;
    let need = span(tensor, rows, cols, ld)?;
    if len < need {
        return Err(Error::Shape {
            tensor: tensor.to_string(),
            expected: format!("at least {need} elements ([{rows}, {cols}], ld {ld})"),
            got: format!("{len} elements"),
        });
    }
    Ok(())
}

/// A bound is a number in [0, +inf]: not NaN, not negative (−0 is 0).
#[inline]
fn valid_bound(b: f64) -> bool {
    b >= 0.0
}

fn check_tolerance(name: &'static str, v: f64) -> Result<()> {
    if !(v.is_finite() && v >= 0.0) {
        return Err(Error::Argument {
            name,
            reason: format!("{v} is not a finite number >= 0"),
        });
    }
    Ok(())
}

fn compare_impl<T: Copy>(
    candidate: &[T],
    widen: impl Fn(T) -> f64 + Copy,
    ld_x: usize,
    reference: &[f64],
    ld_y: usize,
    shape: [usize; 2],
    bound: &Bound<'_>,
) -> Result<Comparison> {
    let [rows, cols] = shape;
    check_matrix("candidate", candidate.len(), shape, ld_x)?;
    check_matrix("reference", reference.len(), shape, ld_y)?;
    match *bound {
        Bound::Scalar(b) => {
            if !valid_bound(b) {
                return Err(Error::Argument {
                    name: "bound",
                    reason: format!("scalar bound {b} is not in [0, +inf]"),
                });
            }
        }
        Bound::Tolerance { atol, rtol } => {
            check_tolerance("atol", atol)?;
            check_tolerance("rtol", rtol)?;
        }
        Bound::PerElement { values, ld } => check_matrix("bound", values.len(), shape, ld)?,
        Bound::Fn(_) => {}
    }

    let mut acc = GlobalAcc::default();
    let mut out = Comparison {
        rows,
        cols,
        calc_diff: 0.0,
        sqnr_db: f64::INFINITY,
        finite_calc_diff: 0.0,
        finite_sqnr_db: f64::INFINITY,
        max_abs: 0.0,
        max_abs_at: None,
        max_rel: 0.0,
        max_rel_at: None,
        outside_bound: 0,
        first_mismatch: None,
        worst: None,
        nan_mismatches: 0,
        inf_mismatches: 0,
        nonfinite_agreements: 0,
    };
    let mut worst_ratio = f64::NEG_INFINITY;
    // An empty matrix (either dimension zero) has nothing to compare, however many rows.
    let rows = if cols == 0 { 0 } else { rows };
    for r in 0..rows {
        let xr = &candidate[r * ld_x..r * ld_x + cols];
        let yr = &reference[r * ld_y..r * ld_y + cols];
        for c in 0..cols {
            let x = widen(xr[c]);
            let y = yr[c];
            acc.add(x, y);
            let b = match *bound {
                Bound::Scalar(b) => b,
                Bound::Tolerance { atol, rtol } => {
                    if y.is_finite() {
                        atol + rtol * y.abs()
                    } else {
                        f64::INFINITY
                    }
                }
                Bound::PerElement { values, ld } => values[r * ld + c],
                Bound::Fn(f) => f(r, c, y),
            };
            if !valid_bound(b) {
                return Err(Error::Bound {
                    row: r,
                    col: c,
                    value: b,
                });
            }
            let kind = pair_kind(x, y);
            match kind {
                PairKind::Finite => {}
                PairKind::Agree => out.nonfinite_agreements += 1,
                PairKind::NanMismatch => out.nan_mismatches += 1,
                PairKind::InfMismatch => out.inf_mismatches += 1,
            }
            let d = elem_diff(kind, x, y);
            if out.max_abs_at.is_none() || d > out.max_abs {
                out.max_abs = d;
                out.max_abs_at = Some((r, c));
            }
            let rel = elem_rel(d, y);
            if out.max_rel_at.is_none() || rel > out.max_rel {
                out.max_rel = rel;
                out.max_rel_at = Some((r, c));
            }
            let e = ElementDiff {
                row: r,
                col: c,
                candidate: x,
                reference: y,
                diff: d,
                bound: b,
            };
            let outside = match kind {
                PairKind::Finite => d > b,
                PairKind::Agree => false,
                PairKind::NanMismatch | PairKind::InfMismatch => true,
            };
            if outside {
                out.outside_bound += 1;
                if out.first_mismatch.is_none() {
                    out.first_mismatch = Some(e);
                }
            }
            let ratio = e.ratio();
            if ratio > worst_ratio {
                worst_ratio = ratio;
                out.worst = Some(e);
            }
        }
    }
    let g = acc.finish(|| {
        (0..rows).flat_map(move |r| {
            (0..cols).map(move |c| (widen(candidate[r * ld_x + c]), reference[r * ld_y + c]))
        })
    });
    out.calc_diff = g.calc_diff;
    out.sqnr_db = g.sqnr_db;
    out.finite_calc_diff = g.finite_calc_diff;
    out.finite_sqnr_db = g.finite_sqnr_db;
    Ok(out)
}

/// Compares a candidate `[rows, cols]` matrix with a reference one of the same shape and
/// checks every element against its bound, in one pass (a second pass over the data only
/// when it must be rescaled, see the module docs).
///
/// - `candidate`: row-major, element (r, c) at `candidate[r·ld_x + c]`, `ld_x ≥ cols`;
/// - `reference`: row-major, element (r, c) at `reference[r·ld_y + c]`, `ld_y ≥ cols`;
/// - `shape`: `[rows, cols]`; slices may be longer than `(rows − 1)·ld + cols` (views into
///   larger buffers), never shorter;
/// - `bound`: the allowed |x − y| per element, see [`Bound`].
///
/// Formulas and their sources: [`calc_diff`] (DeepGEMM), [`sqnr_db`], [`max_abs_error`],
/// [`max_rel_error`] (numpy's `assert_allclose` report), [`Bound::Tolerance`]
/// (`numpy.isclose`). `report.calc_diff == calc_diff(x, y)` bit for bit on the
/// row-major lists of the logical elements.
///
/// # Errors
/// [`Error::Stride`] if a leading dimension is below `cols` (for a non-empty shape) or the
/// span overflows; [`Error::Shape`] if a slice is too short; [`Error::Argument`] for a
/// scalar bound outside `[0, +inf]` or a tolerance that is negative or not finite;
/// [`Error::Bound`] for the first per-element bound (row-major) that is NaN or negative.
pub fn compare(
    candidate: &[f64],
    ld_x: usize,
    reference: &[f64],
    ld_y: usize,
    shape: [usize; 2],
    bound: &Bound<'_>,
) -> Result<Comparison> {
    compare_impl(candidate, |v| v, ld_x, reference, ld_y, shape, bound)
}

/// [`compare`] for an f32 candidate (a kernel's FP32 output), widened exactly to f64.
///
/// # Errors
/// As [`compare`].
pub fn compare_f32(
    candidate: &[f32],
    ld_x: usize,
    reference: &[f64],
    ld_y: usize,
    shape: [usize; 2],
    bound: &Bound<'_>,
) -> Result<Comparison> {
    compare_impl(candidate, f64::from, ld_x, reference, ld_y, shape, bound)
}

/// [`compare`] for a BF16 candidate (a kernel's BF16 output), widened exactly to f64.
///
/// # Errors
/// As [`compare`].
pub fn compare_bf16(
    candidate: &[bf16],
    ld_x: usize,
    reference: &[f64],
    ld_y: usize,
    shape: [usize; 2],
    bound: &Bound<'_>,
) -> Result<Comparison> {
    compare_impl(candidate, bf16::to_f64, ld_x, reference, ld_y, shape, bound)
}
