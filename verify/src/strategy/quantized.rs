//! Quantized FP8 operands drawn directly as E4M3 codes and FP32 scales, for tests of
//! scale ranges no quantization recipe produces (1e-30..1e30, a single huge block).

use std::fmt;
use std::path::Path;

use proptest::option;
use proptest::prelude::*;
use scalegemm_reference::gemm::{Fp8Operand, Fp8Recipe, MatView, Scales};
use scalegemm_reference::quant::ScaleRound;

use super::hash::{pow2f, tag, ElemRng};
use super::shape::{gemm_shape, ShapeCap};
use super::values::{CaseDesc, Values};
use super::write::{write_fp8_gemm_case, Fp8GemmTensors};

/// The E4M3 NaN code (sign bit clear).
const E4M3_NAN: u8 = 0x7F;

/// How E4M3 codes are drawn (never NaN; see [`CodeSpec::nan_at`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeDist {
    /// Values in `{0, ±0.5, ±1, ±1.5, ±2}`: the shrink target.
    SmallInts,
    /// Every finite code uniformly (the 254 codes other than `0x7F` and `0xFF`).
    Any,
    /// ±448 only (`0x7E`, `0xFE`): the largest products.
    Max,
    /// Zero and the subnormals `±k·2^-9`, `k = 1..=7` (exponent field 0).
    Subnormal,
}

impl CodeDist {
    fn sample(self, rng: &mut ElemRng) -> u8 {
        let sign = (rng.next_u64() as u8) & 0x80;
        let mag = match self {
            // 0, 0.5, 1, 1.5, 2 as E4M3 (bias 7, 3 mantissa bits)
            CodeDist::SmallInts => [0x00, 0x30, 0x38, 0x3C, 0x40][rng.below(5) as usize],
            CodeDist::Any => {
                let c = rng.below(254) as u8;
                return if c >= E4M3_NAN { c + 1 } else { c };
            }
            CodeDist::Max => 0x7E,
            CodeDist::Subnormal => rng.below(8) as u8,
        };
        mag | sign
    }
}

/// How one operand's codes are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeSpec {
    /// The code distribution.
    pub dist: CodeDist,
    /// `Some((row, col))`: the code at `(row % rows, col % K)` is the E4M3 NaN `0x7F`.
    pub nan_at: Option<(u16, u16)>,
}

/// How scales are drawn (all finite and positive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleDist {
    /// Every scale 1: the shrink target.
    One,
    /// Uniform in log scale over `[0.5, 2)`, any mantissa (typical FP32 scales).
    NearOne,
    /// Powers of two `2^e`, `e` uniform in `-100..=100` (about 1e-30..1e30).
    PowersOfTwo,
    /// Any UE8M0 value `2^e`, `e` uniform in `-127..=127` (2^-127 is an f32 subnormal).
    Ue8m0Any,
    /// Log-uniform over `[1e-30, 1e30]`, any mantissa.
    LogUniform,
}

impl ScaleDist {
    fn sample(self, rng: &mut ElemRng) -> f32 {
        match self {
            ScaleDist::One => 1.0,
            ScaleDist::NearOne => (2.0f64.powf(rng.unit_open0() * 2.0 - 1.0)) as f32,
            ScaleDist::PowersOfTwo => pow2f(rng.below(201) as i32 - 100),
            ScaleDist::Ue8m0Any => pow2f(rng.below(255) as i32 - 127),
            ScaleDist::LogUniform => {
                let x = (10.0f64.powf(rng.unit_open0() * 60.0 - 30.0)) as f32;
                x.clamp(1e-30, 1e30)
            }
        }
    }

    /// Whether every scale drawn is a UE8M0 value (a power of two in 2^-127..=2^127).
    pub fn is_ue8m0(self) -> bool {
        matches!(
            self,
            ScaleDist::One | ScaleDist::PowersOfTwo | ScaleDist::Ue8m0Any
        )
    }
}

/// One scale set to `2^log2` (huge: `log2` in 64..=127).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HugeScale {
    /// Scale row, taken modulo the scale rows.
    pub row: u16,
    /// Scale column, taken modulo the scale columns.
    pub col: u16,
    /// Binary exponent of the huge scale.
    pub log2: u8,
}

/// How one operand's scales are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScaleSpec {
    /// The scale distribution.
    pub dist: ScaleDist,
    /// One huge scale in one block.
    pub huge: Option<HugeScale>,
}

impl ScaleSpec {
    /// Whether every scale is a UE8M0 value.
    pub fn is_ue8m0(&self) -> bool {
        self.dist.is_ue8m0()
    }
}

/// `[rows, cols]` codes for `spec`, local in `(i, j)` like [`super::fill`].
fn codes(rows: usize, cols: usize, spec: &CodeSpec, seed: u64, stream: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        for j in 0..cols {
            out.push(
                spec.dist
                    .sample(&mut ElemRng::new(seed, stream, i as u64, j as u64)),
            );
        }
    }
    if let (Some((r, c)), true) = (spec.nan_at, rows > 0 && cols > 0) {
        out[(r as usize % rows) * cols + c as usize % cols] = E4M3_NAN;
    }
    out
}

/// `[rows, cols]` scales for `spec`, local in `(i, j)`.
fn scales(rows: usize, cols: usize, spec: &ScaleSpec, seed: u64, stream: u64) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        for j in 0..cols {
            let mut rng = ElemRng::new(seed, stream | tag::SCALE, i as u64, j as u64);
            out.push(spec.dist.sample(&mut rng));
        }
    }
    if let (Some(h), true) = (spec.huge, rows > 0 && cols > 0) {
        out[(h.row as usize % rows) * cols + h.col as usize % cols] = pow2f(h.log2.min(127) as i32);
    }
    out
}

/// How a generated [`Fp8GemmCase`] was made: [`Fp8CaseDesc::build`] makes it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fp8CaseDesc {
    /// M.
    pub m: usize,
    /// N.
    pub n: usize,
    /// K.
    pub k: usize,
    /// A's codes.
    pub a: CodeSpec,
    /// B's codes.
    pub b: CodeSpec,
    /// A's per-token scales.
    pub sfa: ScaleSpec,
    /// B's per-block scales.
    pub sfb: ScaleSpec,
    /// Seed.
    pub seed: u64,
}

impl Fp8CaseDesc {
    /// The case this description stands for.
    pub fn build(&self) -> Fp8GemmCase {
        let (m, n, k) = (self.m, self.n, self.k);
        let kb = k.div_ceil(128);
        Fp8GemmCase {
            m,
            n,
            k,
            a: codes(m, k, &self.a, self.seed, tag::A),
            sfa: scales(m, kb, &self.sfa, self.seed, tag::A),
            b: codes(n, k, &self.b, self.seed, tag::B),
            sfb: scales(n.div_ceil(128), kb, &self.sfb, self.seed, tag::B),
            origin: Fp8Origin::Generated(*self),
        }
    }
}

/// Where an [`Fp8GemmCase`] came from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fp8Origin {
    /// Drawn directly.
    Generated(Fp8CaseDesc),
    /// Quantized from an unquantized case ([`super::GemmCase::quantize_1d2d`]).
    Quantized {
        /// The unquantized case.
        from: CaseDesc,
        /// Its scale rounding.
        round: ScaleRound,
    },
}

/// FP8 operands of one 1D2D GEMM `D = A·Bᵀ` (DeepGEMM `fp8_gemm_nt`): E4M3 codes A
/// `[M, K]` and B `[N, K]` row-major, FP32 scales `sfa` `[M, ceil(K/128)]` (per-token
/// 1×128) and `sfb` `[ceil(N/128), ceil(K/128)]` (per-block 128×128), row-major.
#[derive(Clone, PartialEq)]
pub struct Fp8GemmCase {
    /// M.
    pub m: usize,
    /// N.
    pub n: usize,
    /// K.
    pub k: usize,
    /// A's E4M3 codes, `[M, K]`.
    pub a: Vec<u8>,
    /// A's scales, `[M, ceil(K/128)]`.
    pub sfa: Vec<f32>,
    /// B's E4M3 codes, `[N, K]`.
    pub b: Vec<u8>,
    /// B's scales, `[ceil(N/128), ceil(K/128)]`.
    pub sfb: Vec<f32>,
    /// How it was made.
    pub origin: Fp8Origin,
}

impl Fp8GemmCase {
    /// `ceil(K/128)`, the scale columns.
    pub fn kb(&self) -> usize {
        self.k.div_ceil(128)
    }

    /// A as a reference operand (per-token, FP32 scales).
    pub fn a_operand(&self) -> scalegemm_reference::Result<Fp8Operand<'_>> {
        let kb = self.kb();
        Fp8Operand::new(
            MatView::k_major(&self.a, self.m, self.k, self.k)?,
            Scales::F32(MatView::k_major(&self.sfa, self.m, kb, kb)?),
            Fp8Recipe::PerToken,
        )
    }

    /// B as a reference operand (per-block, FP32 scales).
    pub fn b_operand(&self) -> scalegemm_reference::Result<Fp8Operand<'_>> {
        let kb = self.kb();
        Fp8Operand::new(
            MatView::k_major(&self.b, self.n, self.k, self.k)?,
            Scales::F32(MatView::k_major(&self.sfb, self.n.div_ceil(128), kb, kb)?),
            Fp8Recipe::PerBlock,
        )
    }

    /// The tensors of the `fp8_gemm_nt` dump format, with an optional C `[M, N]`.
    pub fn tensors<'a>(&'a self, c: Option<&'a [f32]>) -> Fp8GemmTensors<'a> {
        Fp8GemmTensors {
            m: self.m,
            n: self.n,
            k: self.k,
            a: &self.a,
            sfa: &self.sfa,
            b: &self.b,
            sfb: &self.sfb,
            c,
        }
    }

    /// Writes the case as an `fp8_gemm_nt` safetensors dump ([`write_fp8_gemm_case`]).
    pub fn write_dump(&self, path: impl AsRef<Path>, c: Option<&[f32]>) -> crate::Result<()> {
        write_fp8_gemm_case(path, &self.tensors(c))
    }
}

impl fmt::Debug for Fp8GemmCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fp8GemmCase")
            .field("m", &self.m)
            .field("n", &self.n)
            .field("k", &self.k)
            .field("origin", &self.origin)
            .field("a", &Values(&self.a))
            .field("sfa", &Values(&self.sfa))
            .field("b", &Values(&self.b))
            .field("sfb", &Values(&self.sfb))
            .finish()
    }
}

fn code_dist() -> impl Strategy<Value = CodeDist> {
    prop_oneof![
        Just(CodeDist::SmallInts),
        Just(CodeDist::Any),
        Just(CodeDist::Max),
        Just(CodeDist::Subnormal),
    ]
}

/// Finite codes from any [`CodeDist`].
pub fn code_spec() -> BoxedStrategy<CodeSpec> {
    code_dist()
        .prop_map(|dist| CodeSpec { dist, nan_at: None })
        .boxed()
}

/// Codes from any [`CodeDist`] with one NaN code (`0x7F`) planted.
pub fn code_spec_with_nan() -> BoxedStrategy<CodeSpec> {
    (code_dist(), any::<(u16, u16)>())
        .prop_map(|(dist, at)| CodeSpec {
            dist,
            nan_at: Some(at),
        })
        .boxed()
}

/// Scales from any [`ScaleDist`], with one huge scale (`2^64..=2^127`) in one case in
/// five.
pub fn scale_spec() -> BoxedStrategy<ScaleSpec> {
    let dist = prop_oneof![
        Just(ScaleDist::One),
        Just(ScaleDist::NearOne),
        Just(ScaleDist::PowersOfTwo),
        Just(ScaleDist::Ue8m0Any),
        Just(ScaleDist::LogUniform),
    ];
    let huge = (any::<u16>(), any::<u16>(), 64u8..=127).prop_map(|(row, col, log2)| HugeScale {
        row,
        col,
        log2,
    });
    (dist, option::weighted(0.2, huge))
        .prop_map(|(dist, huge)| ScaleSpec { dist, huge })
        .boxed()
}

/// FP8 1D2D cases within `cap` with finite codes ([`code_spec`]) and [`scale_spec`]
/// scales for both operands.
pub fn fp8_gemm_case(cap: ShapeCap) -> impl Strategy<Value = Fp8GemmCase> {
    fp8_gemm_case_with(cap, code_spec(), code_spec(), scale_spec(), scale_spec())
}

/// FP8 1D2D cases within `cap` from the given code and scale strategies. Shrinks M, N,
/// K, then A's codes, B's codes, A's scales, B's scales.
pub fn fp8_gemm_case_with(
    cap: ShapeCap,
    codes_a: impl Strategy<Value = CodeSpec>,
    codes_b: impl Strategy<Value = CodeSpec>,
    scales_a: impl Strategy<Value = ScaleSpec>,
    scales_b: impl Strategy<Value = ScaleSpec>,
) -> impl Strategy<Value = Fp8GemmCase> {
    (
        gemm_shape(cap),
        codes_a,
        codes_b,
        scales_a,
        scales_b,
        any::<u64>().no_shrink(),
    )
        .prop_map(|((m, n, k), a, b, sfa, sfb, seed)| {
            Fp8CaseDesc {
                m,
                n,
                k,
                a,
                b,
                sfa,
                sfb,
                seed,
            }
            .build()
        })
}
