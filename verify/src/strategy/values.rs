//! Unquantized inputs: value distributions, matrices and GEMM cases.

use std::fmt;

use proptest::option;
use proptest::prelude::*;
use scalegemm_reference::quant::{per_block_cast, per_token_cast, Elem, ScaleRound};

use super::hash::{pow2f, tag, ElemRng};
use super::quantized::{Fp8GemmCase, Fp8Origin};
use super::shape::{gemm_shape, matrix_shape, ShapeCap};

/// Pinned elements of [`ValueDist::RoundingBoundaries`] and [`ValueDist::Subnormals`]
/// sit in every column `j` with `j % PIN_PERIOD == 0`, so every 1×32 and 1×128 block
/// (and every 32×32 or 128×128 block) holds one.
const PIN_PERIOD: usize = 32;

/// Side of the zero tiles of [`ValueSpec::zero_tiles`]: the FP8 scale block.
const TILE: usize = 128;

/// Above this many elements, `Debug` of a case prints a summary instead of the values.
const DEBUG_MAX_ELEMS: usize = 64;

/// How the elements of an unquantized matrix are drawn. Each variant's parameters
/// shrink toward the plainest case; the variants are listed from simplest to most
/// adversarial, which is the order shrinking moves in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueDist {
    /// Integers in `-4..=4`: exact in every format, the shrink target.
    SmallInts,
    /// Normal N(0, 1) times `2^log2_scale`.
    Normal {
        /// Binary exponent of the standard deviation.
        log2_scale: i8,
    },
    /// Heavy tails: `N(0,1) / U^(2/3)` (U uniform in (0, 1], a Pareto tail of index
    /// 1.5, magnitudes up to ~2^35) times `2^log2_scale`.
    HeavyTailed {
        /// Binary exponent of the bulk's scale.
        log2_scale: i8,
    },
    /// Normal activations with outlier channels, as LLM activations have: each column
    /// (a K channel) is an outlier with probability `1/period`, and its values are
    /// multiplied by `factor`.
    ChannelOutliers {
        /// Binary exponent of the bulk's standard deviation.
        log2_scale: i8,
        /// Outlier magnitude factor, 20..=1000.
        factor: u16,
        /// One column in `period` (on average) is an outlier channel.
        period: u8,
    },
    /// Every element is 448 (E4M3's largest finite value), with a random sign when
    /// `signed`: every block's scale is exactly 1 (E4M3) and every code saturates.
    AllEqualMax {
        /// Random signs instead of all +448.
        signed: bool,
    },
    /// Values just under, exactly on and just over the rounding boundaries (midpoints
    /// between neighbours) of `elem`, and the representable values themselves, all
    /// times `2^log2_scale`. Every column `j` with `j % 32 == 0` holds a pin
    /// `±max_finite(elem)·2^log2_scale`, so every 1×32 or 128-wide block's scale is
    /// exactly `2^log2_scale` and `x / scale` lands on the boundary itself (not on a
    /// rounded neighbour of it).
    RoundingBoundaries {
        /// The format whose boundaries are targeted.
        elem: Elem,
        /// Binary exponent of the scale, `-12..=20` (pins stay above the `1e-4` amax
        /// floor).
        log2_scale: i8,
    },
    /// Subnormals of `elem` (and the midpoints between them, ±1 f32 ulp), pinned like
    /// [`ValueDist::RoundingBoundaries`], with one element in eight an f32 subnormal.
    Subnormals {
        /// The format whose subnormal range is targeted.
        elem: Elem,
        /// Binary exponent of the scale, `-12..=20`.
        log2_scale: i8,
    },
    /// Arbitrary finite f32 bit patterns: every binade from f32 subnormals to
    /// `f32::MAX`, both signs.
    FiniteBits,
}

/// Positive representable values of `elem`, ascending, from the bit layout (written
/// independently of the reference's codecs).
fn positive_values(elem: Elem) -> Vec<f32> {
    let (man_bits, bias, max) = match elem {
        Elem::E4M3 => (3u32, 7i32, 448.0f32),
        Elem::E2M1 => (1, 1, 6.0),
    };
    let mut v = Vec::new();
    for code in 0u32.. {
        let e = (code >> man_bits) as i32;
        let m = (code & ((1 << man_bits) - 1)) as f32;
        let x = if e == 0 {
            m * pow2f(1 - bias - man_bits as i32)
        } else {
            (m + pow2f(man_bits as i32)) * pow2f(e - bias - man_bits as i32)
        };
        if x > max {
            break;
        }
        v.push(x);
    }
    v
}

impl ValueDist {
    /// Element `(i, j)` for `seed` and `stream` (which separates operands).
    fn sample(&self, rng: &mut ElemRng, cache: &Cache, j: usize) -> f32 {
        match *self {
            ValueDist::SmallInts => rng.below(9) as f32 - 4.0,
            ValueDist::Normal { log2_scale } => rng.normal() as f32 * pow2f(log2_scale as i32),
            ValueDist::HeavyTailed { log2_scale } => {
                let x = rng.normal() / rng.unit_open0().powf(2.0 / 3.0);
                x as f32 * pow2f(log2_scale as i32)
            }
            ValueDist::ChannelOutliers {
                log2_scale, factor, ..
            } => {
                let x = rng.normal() as f32 * pow2f(log2_scale as i32);
                if cache.outlier_cols[j] {
                    x * factor as f32
                } else {
                    x
                }
            }
            ValueDist::AllEqualMax { signed } => {
                if signed {
                    448.0 * rng.sign()
                } else {
                    448.0
                }
            }
            ValueDist::RoundingBoundaries { elem, log2_scale } => {
                let s = pow2f(log2_scale as i32);
                if j % PIN_PERIOD == 0 {
                    return elem.max_finite() * s * rng.sign();
                }
                let v = &cache.values;
                let idx = rng.below(v.len() as u64 - 1) as usize;
                let mid = (v[idx] + v[idx + 1]) / 2.0 * s; // exact: 5 significant bits
                let x = match rng.below(4) {
                    0 => v[idx] * s,
                    1 => mid.next_down(),
                    2 => mid,
                    _ => mid.next_up(),
                };
                x * rng.sign()
            }
            ValueDist::Subnormals { elem, log2_scale } => {
                let s = pow2f(log2_scale as i32);
                if j % PIN_PERIOD == 0 {
                    return elem.max_finite() * s * rng.sign();
                }
                if rng.below(8) == 0 {
                    // an f32 subnormal (possibly zero)
                    return f32::from_bits(rng.next_u64() as u32 & 0x807F_FFFF);
                }
                // Multiples of half the smallest subnormal up to the smallest normal:
                // the subnormals, the midpoints between them, and their neighbours.
                let (half_sub, steps) = match elem {
                    Elem::E4M3 => (pow2f(-10), 16),
                    Elem::E2M1 => (pow2f(-2), 4),
                };
                let x = rng.below(steps + 1) as f32 * half_sub * s;
                let x = match rng.below(3) {
                    0 => x,
                    1 => x.next_down().max(0.0),
                    _ => x.next_up(),
                };
                x * rng.sign()
            }
            ValueDist::FiniteBits => {
                let bits = rng.next_u64() as u32;
                let x = f32::from_bits(bits);
                if x.is_finite() {
                    x
                } else {
                    f32::from_bits(bits & !0x0080_0000) // exponent 255 → 254
                }
            }
        }
    }
}

/// Per-matrix precomputation for [`ValueDist::sample`].
struct Cache {
    outlier_cols: Vec<bool>,
    values: Vec<f32>,
}

/// A special value planted in one element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonFinite {
    /// A quiet NaN.
    Nan,
    /// +inf.
    PosInf,
    /// −inf.
    NegInf,
}

impl NonFinite {
    /// The f32 value.
    pub fn value(self) -> f32 {
        match self {
            NonFinite::Nan => f32::NAN,
            NonFinite::PosInf => f32::INFINITY,
            NonFinite::NegInf => f32::NEG_INFINITY,
        }
    }
}

/// One non-finite element at `(row % rows, col % cols)` (coordinates shrink toward 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planted {
    /// Row, taken modulo the matrix's rows.
    pub row: u16,
    /// Column, taken modulo the matrix's columns.
    pub col: u16,
    /// What is planted.
    pub value: NonFinite,
}

impl Planted {
    /// The planted element's `(row, col)` in a `[rows, cols]` matrix (both non-zero).
    pub fn position(&self, rows: usize, cols: usize) -> (usize, usize) {
        (self.row as usize % rows, self.col as usize % cols)
    }
}

/// Everything that decides a matrix's values besides its shape and seed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ValueSpec {
    /// The element distribution.
    pub dist: ValueDist,
    /// `Some(t)`: each aligned 128×128 tile is all zeros with probability `1/t`
    /// (`t = 1`: the whole matrix); the zeroing happens after the pins are placed, so a
    /// zero tile is zero everywhere.
    pub zero_tiles: Option<u8>,
    /// A NaN or ±inf planted in one element, after everything else.
    pub planted: Option<Planted>,
}

impl ValueSpec {
    /// `dist` with no zero tiles and nothing planted.
    pub fn plain(dist: ValueDist) -> Self {
        Self {
            dist,
            zero_tiles: None,
            planted: None,
        }
    }

    /// Whether every element the spec produces is finite.
    pub fn is_finite(&self) -> bool {
        self.planted.is_none()
    }
}

/// The values of a `[rows, cols]` row-major matrix for `spec`, `seed` and `stream` (any
/// number; it separates matrices drawn from one seed, e.g. A and B of a GEMM).
///
/// Deterministic, and local: element `(i, j)` depends only on `(spec, seed, stream, i,
/// j)` (for [`ValueDist::ChannelOutliers`] also on whether column `j` is an outlier,
/// itself a hash of `j`), never on `rows` or `cols`, except for where a planted value
/// lands (its coordinates are taken modulo the shape).
pub fn fill(rows: usize, cols: usize, spec: &ValueSpec, seed: u64, stream: u64) -> Vec<f32> {
    let outlier_cols = match spec.dist {
        ValueDist::ChannelOutliers { period, .. } => (0..cols)
            .map(|j| {
                ElemRng::new(seed, stream | tag::OUTLIER, 0, j as u64).below(period.max(1) as u64)
                    == 0
            })
            .collect(),
        _ => Vec::new(),
    };
    let values = match spec.dist {
        ValueDist::RoundingBoundaries { elem, .. } => positive_values(elem),
        _ => Vec::new(),
    };
    let cache = Cache {
        outlier_cols,
        values,
    };
    let mut out = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        for j in 0..cols {
            let mut rng = ElemRng::new(seed, stream, i as u64, j as u64);
            out.push(spec.dist.sample(&mut rng, &cache, j));
        }
    }
    if let Some(t) = spec.zero_tiles {
        for ti in 0..rows.div_ceil(TILE) {
            for tj in 0..cols.div_ceil(TILE) {
                let mut rng = ElemRng::new(seed, stream | tag::ZERO_TILE, ti as u64, tj as u64);
                if rng.below(t.max(1) as u64) == 0 {
                    for i in ti * TILE..((ti + 1) * TILE).min(rows) {
                        out[i * cols + tj * TILE..i * cols + ((tj + 1) * TILE).min(cols)].fill(0.0);
                    }
                }
            }
        }
    }
    if let Some(p) = spec.planted {
        if rows > 0 && cols > 0 {
            let (i, j) = p.position(rows, cols);
            out[i * cols + j] = p.value.value();
        }
    }
    out
}

/// The value distributions, simplest first: [`ValueDist::SmallInts`], normal and
/// heavy-tailed with `log2_scale` in `-40..=40`, channel outliers (factor 20..=1000,
/// one column in 2..=16), all-equal ±448, rounding boundaries and subnormals of E4M3
/// and E2M1 (`log2_scale` in `-12..=20`), arbitrary finite bits.
pub fn value_dist() -> BoxedStrategy<ValueDist> {
    let log2 = -40i8..=40;
    let pinned = -12i8..=20;
    let elem = prop_oneof![Just(Elem::E4M3), Just(Elem::E2M1)];
    prop_oneof![
        Just(ValueDist::SmallInts),
        log2.clone()
            .prop_map(|log2_scale| ValueDist::Normal { log2_scale }),
        log2.clone()
            .prop_map(|log2_scale| ValueDist::HeavyTailed { log2_scale }),
        (log2, 20u16..=1000, 2u8..=16).prop_map(|(log2_scale, factor, period)| {
            ValueDist::ChannelOutliers {
                log2_scale,
                factor,
                period,
            }
        }),
        any::<bool>().prop_map(|signed| ValueDist::AllEqualMax { signed }),
        (elem.clone(), pinned.clone())
            .prop_map(|(elem, log2_scale)| ValueDist::RoundingBoundaries { elem, log2_scale }),
        (elem, pinned).prop_map(|(elem, log2_scale)| ValueDist::Subnormals { elem, log2_scale }),
        Just(ValueDist::FiniteBits),
    ]
    .boxed()
}

/// Finite value specs: a [`value_dist`], zero tiles in one case in four (probability
/// 1/1 to 1/4 per tile), nothing planted.
pub fn value_spec() -> BoxedStrategy<ValueSpec> {
    (value_dist(), option::weighted(0.25, 1u8..=4))
        .prop_map(|(dist, zero_tiles)| ValueSpec {
            dist,
            zero_tiles,
            planted: None,
        })
        .boxed()
}

/// Value specs with one NaN, +inf or −inf planted at a random position (shrinking
/// toward element (0, 0) and NaN).
pub fn value_spec_non_finite() -> BoxedStrategy<ValueSpec> {
    let planted = (
        any::<u16>(),
        any::<u16>(),
        prop_oneof![
            Just(NonFinite::Nan),
            Just(NonFinite::PosInf),
            Just(NonFinite::NegInf)
        ],
    )
        .prop_map(|(row, col, value)| Planted { row, col, value });
    (value_spec(), planted)
        .prop_map(|(spec, planted)| ValueSpec {
            planted: Some(planted),
            ..spec
        })
        .boxed()
}

/// How a [`Matrix`] was made: [`MatrixDesc::build`] makes it again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatrixDesc {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Values.
    pub spec: ValueSpec,
    /// Seed.
    pub seed: u64,
}

impl MatrixDesc {
    /// The matrix this description stands for.
    pub fn build(&self) -> Matrix {
        Matrix {
            rows: self.rows,
            cols: self.cols,
            data: fill(self.rows, self.cols, &self.spec, self.seed, tag::MATRIX),
            desc: *self,
        }
    }
}

/// An unquantized `[rows, cols]` row-major f32 matrix with its description.
#[derive(Clone, PartialEq)]
pub struct Matrix {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row-major values.
    pub data: Vec<f32>,
    /// How it was made.
    pub desc: MatrixDesc,
}

impl Matrix {
    /// The values of the transpose, `[cols, rows]` row-major.
    pub fn transposed(&self) -> Vec<f32> {
        (0..self.cols)
            .flat_map(|j| (0..self.rows).map(move |i| self.data[i * self.cols + j]))
            .collect()
    }
}

impl fmt::Debug for Matrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Matrix")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("desc", &self.desc)
            .field("data", &Values(&self.data))
            .finish()
    }
}

/// Values printed in full when short, summarized otherwise.
pub(crate) struct Values<'a, T>(pub(crate) &'a [T]);

impl<T: fmt::Debug> fmt::Debug for Values<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() <= DEBUG_MAX_ELEMS {
            f.debug_list().entries(self.0).finish()
        } else {
            write!(
                f,
                "[{} values: rebuild from desc; first {:?}, ...]",
                self.0.len(),
                &self.0[..4]
            )
        }
    }
}

/// A matrix of `[rows, cols]` with `rows <= max_rows`, `cols <= max_cols`,
/// `rows·cols <= max_elems` (from [`matrix_shape`]) and values from `spec`.
pub fn matrix(
    max_rows: usize,
    max_cols: usize,
    max_elems: usize,
    spec: impl Strategy<Value = ValueSpec>,
) -> impl Strategy<Value = Matrix> {
    (
        matrix_shape(max_rows, max_cols, max_elems),
        spec,
        any::<u64>().no_shrink(),
    )
        .prop_map(|((rows, cols), spec, seed)| {
            MatrixDesc {
                rows,
                cols,
                spec,
                seed,
            }
            .build()
        })
}

/// How a [`GemmCase`] was made: [`CaseDesc::build`] makes it again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CaseDesc {
    /// M.
    pub m: usize,
    /// N.
    pub n: usize,
    /// K.
    pub k: usize,
    /// A's values.
    pub a: ValueSpec,
    /// B's values.
    pub b: ValueSpec,
    /// Seed of both (A and B use different streams of it).
    pub seed: u64,
}

impl CaseDesc {
    /// The case this description stands for.
    pub fn build(&self) -> GemmCase {
        GemmCase {
            m: self.m,
            n: self.n,
            k: self.k,
            a: fill(self.m, self.k, &self.a, self.seed, tag::A),
            b: fill(self.n, self.k, &self.b, self.seed, tag::B),
            desc: *self,
        }
    }
}

/// Unquantized inputs of one GEMM `D = A·Bᵀ`: A `[M, K]` and B `[N, K]`, both row-major
/// (K-major, the `_nt` layout), with the description that made them.
#[derive(Clone, PartialEq)]
pub struct GemmCase {
    /// M.
    pub m: usize,
    /// N.
    pub n: usize,
    /// K.
    pub k: usize,
    /// A, `[M, K]` row-major.
    pub a: Vec<f32>,
    /// B, `[N, K]` row-major.
    pub b: Vec<f32>,
    /// How it was made.
    pub desc: CaseDesc,
}

impl GemmCase {
    /// Quantizes with the DeepSeek 1D2D recipe through the reference: A per-token 1×128,
    /// B per-block 128×128, both E4M3 with `round` scales
    /// ([`scalegemm_reference::quant::per_token_cast`],
    /// [`scalegemm_reference::quant::per_block_cast`]).
    ///
    /// Errors: the reference's, e.g. [`scalegemm_reference::Error::NonFinite`] for a
    /// planted NaN or inf.
    pub fn quantize_1d2d(&self, round: ScaleRound) -> scalegemm_reference::Result<Fp8GemmCase> {
        let qa = per_token_cast(&self.a, self.m, self.k, 128, Elem::E4M3, round)?;
        let qb = per_block_cast(&self.b, self.n, self.k, 128, Elem::E4M3, round)?;
        Ok(Fp8GemmCase {
            m: self.m,
            n: self.n,
            k: self.k,
            a: qa.codes,
            sfa: qa.scales,
            b: qb.codes,
            sfb: qb.scales,
            origin: Fp8Origin::Quantized {
                from: self.desc,
                round,
            },
        })
    }
}

impl fmt::Debug for GemmCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GemmCase")
            .field("m", &self.m)
            .field("n", &self.n)
            .field("k", &self.k)
            .field("desc", &self.desc)
            .field("a", &Values(&self.a))
            .field("b", &Values(&self.b))
            .finish()
    }
}

/// GEMM cases within `cap` with finite values from [`value_spec`] for both operands.
pub fn gemm_case(cap: ShapeCap) -> impl Strategy<Value = GemmCase> {
    gemm_case_with(cap, value_spec(), value_spec())
}

/// GEMM cases within `cap` with A's values from `a` and B's from `b` (e.g.
/// `Just(ValueSpec::plain(ValueDist::Normal { log2_scale: 0 }))`, or
/// [`value_spec_non_finite`]). Shrinks M, N, K, then A's spec, then B's.
pub fn gemm_case_with(
    cap: ShapeCap,
    a: impl Strategy<Value = ValueSpec>,
    b: impl Strategy<Value = ValueSpec>,
) -> impl Strategy<Value = GemmCase> {
    (gemm_shape(cap), a, b, any::<u64>().no_shrink()).prop_map(|((m, n, k), a, b, seed)| {
        CaseDesc {
            m,
            n,
            k,
            a,
            b,
            seed,
        }
        .build()
    })
}
