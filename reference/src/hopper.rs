//! Bit-level model of Hopper (sm_90) `wgmma` accumulation, and the FP8 GEMM a
//! DeepGEMM-style kernel computes with it (DESIGN §3.3), with a per-element error bound
//! derived from the model (DESIGN §3.4).
//!
//! # The model of one `wgmma` step
//! Followed from MMA-Sim (arXiv 2511.10909; microsoft/MMA-Sim, `mmasim/simulator/nv.py`,
//! class `WGMMASim`, and `mmasim/simulator/functions.py`, functions `nv_fused_dot_add`,
//! `fused_dot_add`, `fused_sum`, `extract_significand_exponent`; read at commit 16a0188);
//! this is an independent integer implementation of the same rules. One output element
//! of one instruction, `d = c + Σ_{i<k} a_i·b_i`:
//!
//! 1. **NaN / inf**: if the f64 value `c + Σ a_i·b_i` is NaN, the result is the canonical
//!    NaN `0x7FFF_FFFF`; if it is ±inf, the result is that infinity. (E4M3 has no
//!    infinity and its products are finite, so for FP8 this means: any NaN code or a NaN
//!    `c` gives NaN, an infinite `c` passes through.)
//! 2. **Decomposition**: every input `x` is `s·2^e` with `e` the format's exponent and
//!    `s` its significand: in `[1, 2)` for normal numbers; subnormals keep the minimum
//!    exponent (E4M3 −6, BF16 and FP32 −126) and a significand below 1. A product's
//!    exponent is the *unnormalised* `ea + eb` with significand `sa·sb` in `[0, 4)` (never
//!    renormalised). Zeros (either factor zero, or `c = ±0`) get exponent −999, so they
//!    never set the alignment: this module simply leaves them out.
//! 3. **Alignment**: `E` = the largest exponent among the accumulator `c` and the `k`
//!    products (the accumulator takes part).
//! 4. **Truncation**: every term (accumulator included) is truncated toward zero to a
//!    multiple of `2^(E − F)`, `F` = 13 fraction bits for FP8 (E4M3/E5M2) inputs and 25
//!    for BF16/FP16 inputs (`WGMMASim.n_accum_fractional_bits`).
//! 5. **Summation**: the truncated terms are added exactly.
//! 6. **Output**: the sum is normalised as an FP32 number (subnormal below 2^-126) and
//!    truncated toward zero to 13 mantissa bits for FP8 (`output_type = "f32_e8m13"`) or
//!    23 for BF16; a magnitude of 2^128 or more is ±inf. A zero sum is `+0` whatever the
//!    signs of the inputs (the model adds truncated integers, which have no signed zero).
//!
//! Both step functions take fixed-size arrays (`k` = 32 for FP8, 16 for BF16), so a
//! wrong length is a type error rather than a run-time one.
//!
//! # The GEMM (DeepGEMM's `sm90_fp8_gemm_1d2d_impl` order)
//! For each output element and each 128-wide K block: a zeroed FP32 accumulator, four
//! FP8 steps of 32 (the last, partial block's codes zero-padded, as TMA's out-of-bounds
//! fill gives the kernel), then promotion on CUDA cores. In DeepGEMM's math warpgroups
//! (`deep_gemm/include/deep_gemm/impls/sm90_fp8_gemm_1d2d.cuh`, deepseek-ai/DeepGEMM at
//! commit 02c5df0) the scale is `scale_a * scale_b` computed first in FP32 (one
//! rounding), then `final_accum += scale * accum`, which nvcc contracts to one FFMA: here
//! `final = fma(fl32(sa·sb), partial, final)` starting from `final = +0`. Optional C is
//! added afterwards in FP32 (`fl32(final + c)`, one rounding; DeepGEMM's sm_90 1D2D kernel
//! has no C, this is our convention), and the result is cast to BF16 with
//! round-to-nearest-even (`__float22bfloat162_rn`) or stored as FP32.
//! [`hopper_fp8_gemm_no_promotion`] runs one accumulator over all of K instead (scales
//! must then be uniform along K), to show the error promotion avoids.
//! [`hopper_fp8_gemm_split`] models `scalegemm`'s split-K launches: the same promotion over
//! each split's range of k-blocks from zero, then the splits' FP32 results added in split
//! order ([`Promotion::SplitK`]); the error bound below covers it (it holds for any
//! summation order of the promoted block products).
//!
//! The model is bit-level and slow (a few hundred ns per step): the GEMMs are
//! rayon-parallel over rows, and [`hopper_fp8_sample`] computes only given (row, col)
//! pairs for large shapes.
//!
//! # The error bound ([`hopper_fp8_error_bound`])
//! Let `x_kb` be the exact partial sum of block `kb` (integer multiples of 2^-18, exact in
//! f64, DESIGN §3.2) and `x̃_kb` the model's partial. Within a block, step `j` has
//! nonzero products `p_i` with exponents `e_i`, and `P_j` = Σ|p_i| over steps `≤ j`.
//!
//! *One step.* Truncation toward zero never increases a magnitude, so the accumulator
//! entering step `j` has `|acc| ≤ P_{j−1}`, its exponent is at most
//! `⌊log2 P_{j−1}⌋`, and `E_j ≤ Ê_j = max(max_i e_i, ⌊log2 P_{j−1}⌋)`. A product
//! `P·2^(e−6)` (`P` an integer) is a multiple of `2^(E−13)` when `E − e ≤ 7`, so it is
//! truncated exactly; otherwise it loses less than `min(|p_i|, 2^(E−13))`. The
//! accumulator loses less than `2^(E−13)` (when nonzero), and the final truncation to 13
//! mantissa bits less than `max(2^-13·|S|, 2^-139)` with `|S| ≤ P_j`. All these grow with
//! `E`, so with `Ê_j`:
//! `err_j ≤ Σ_{i: Ê_j−e_i>7} min(|p_i|, 2^(Ê_j−13)) + [P_{j−1}>0]·2^(Ê_j−13) + 2^-13·P_j + 2^-139`.
//! A step with no nonzero product changes nothing (the accumulator is already an
//! e8m13 value, aligned to its own exponent) and contributes 0.
//! `E_kb = Σ_j err_j` bounds `|x̃_kb − x_kb|` (this refines DESIGN §3.4's
//! "2^-13·(k+1)·largest magnitude" per step).
//!
//! *Promotion.* With `s_kb = sa·sb` (exact in f64), `fl32(s_kb) = s_kb(1+δ) + η`,
//! `|δ| ≤ u = 2^-24`, `|η| ≤ 2^-150`; the `n` FMAs are a recursive sum of
//! `T_kb = fl32(s_kb)·x̃_kb`, each with one rounding, so (Higham, *Accuracy and Stability
//! of Numerical Algorithms*, §4.2, with underflow) `|final − Σ T| ≤ γ_n·Σ|T| + n·2^-150`.
//! Hence, with `A = Σ|s_kb|·(|x_kb| + E_kb)`:
//! `|final − Σ s_kb·x_kb| ≤ Σ|s_kb|·E_kb + (u + γ_n·(1+u))·A + (n + 1)·2^-149·(1 + Σ(|x_kb|+E_kb))`.
//! Adding C costs `u·(|D| + bound)`, the BF16 cast `2^-8·(|D| + bound) + 2^-134` (half an
//! ulp relative to the value, or half the smallest subnormal), with `|D|` the exact
//! result (computed in f64 and padded by 10^-12 of `Σ|s_kb·x_kb| + |C|`). The total is
//! inflated by 10^-9 relative for the f64 arithmetic of the bound itself. It is `+inf`
//! where the model can give a non-finite value (a NaN code in the row of A or B, a
//! non-finite C, or a magnitude that may reach `f32::MAX`).

use crate::error::checked_len;
use crate::gemm::{Fp8Operand, Fp8Recipe, MatView, OutView, FP8_GRAN_K};
use crate::{Error, Result};
use half::bf16;
use rayon::prelude::*;

/// Products per FP8 (E4M3) `wgmma` instruction along K.
pub const FP8_STEP_K: usize = 32;
/// Products per BF16 `wgmma` instruction along K.
pub const BF16_STEP_K: usize = 16;
/// Fraction bits kept by the aligned FP8 sum (MMA-Sim `WGMMASim`).
pub const FP8_SUM_FRACTION_BITS: i32 = 13;
/// Fraction bits kept by the aligned BF16 sum (MMA-Sim `WGMMASim`).
pub const BF16_SUM_FRACTION_BITS: i32 = 25;
/// Bits of the canonical NaN the model returns.
pub const CANONICAL_NAN_BITS: u32 = 0x7FFF_FFFF;

/// Mantissa bits of the FP8 `wgmma` output (FP32 truncated to e8m13).
const FP8_OUT_FRACTION_BITS: i32 = 13;
/// Fraction bits of an E4M3 product significand `ma·mb / 64`.
const FP8_PRODUCT_FRACTION_BITS: i32 = 6;
/// Fraction bits of a BF16 product significand `ma·mb / 2^14`.
const BF16_PRODUCT_FRACTION_BITS: i32 = 14;

/// An E4M3 code split as the model sees it: value `(-1)^neg · sig/8 · 2^exp`.
#[derive(Clone, Copy)]
struct E4m3Parts {
    neg: bool,
    sig: u8,
    exp: i8,
    nan: bool,
}

const fn e4m3_parts(code: u8) -> E4m3Parts {
    let field = (code >> 3) & 0xF;
    let frac = code & 7;
    let (sig, exp) = if field == 0 {
        (frac, -6)
    } else {
        (frac | 8, field as i8 - 7)
    };
    E4m3Parts {
        neg: code & 0x80 != 0,
        sig,
        exp,
        nan: field == 0xF && frac == 7,
    }
}

const fn e4m3_table() -> [E4m3Parts; 256] {
    let mut t = [e4m3_parts(0); 256];
    let mut i = 0;
    while i < 256 {
        t[i] = e4m3_parts(i as u8);
        i += 1;
    }
    t
}

static E4M3: [E4m3Parts; 256] = e4m3_table();

/// `2^e` as f64, exact for `-1022 <= e <= 1023`.
fn pow2(e: i32) -> f64 {
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// A nonzero FP32 value as `(neg, M, e)` with value `M · 2^(e − 23)`, `M < 2^24`
/// (subnormals keep `e = −126`); `None` for ±0. Callers handle NaN/inf first.
fn f32_parts(x: f32) -> Option<(bool, u64, i32)> {
    let bits = x.to_bits();
    let field = ((bits >> 23) & 0xFF) as i32;
    let frac = (bits & 0x7F_FFFF) as u64;
    let neg = bits >> 31 != 0;
    match (field, frac) {
        (0, 0) => None,
        (0, _) => Some((neg, frac, -126)),
        _ => Some((neg, frac | (1 << 23), field - 127)),
    }
}

/// `mag · 2^left`, truncated toward zero when `left < 0`.
fn align(mag: u64, left: i32) -> u64 {
    if left >= 0 {
        mag << left
    } else if left <= -64 {
        0
    } else {
        mag >> (-left)
    }
}

/// The model's output normalisation: `s · 2^q` as FP32, truncated toward zero to
/// `out_bits` mantissa bits (subnormal below 2^-126), ±inf at 2^128 and above, `+0` for
/// a zero result.
fn finish(s: i64, q: i32, out_bits: i32) -> f32 {
    if s == 0 {
        return 0.0;
    }
    let neg = s < 0;
    let mag = s.unsigned_abs();
    let top = 63 - mag.leading_zeros() as i32 + q;
    if top >= 128 {
        return if neg {
            f32::NEG_INFINITY
        } else {
            f32::INFINITY
        };
    }
    let quantum = top.max(-126) - out_bits;
    let kept = align(mag, q - quantum);
    if kept == 0 {
        return 0.0;
    }
    // kept < 2^(out_bits + 1) <= 2^24 and quantum >= -149: exact in f64 and in f32.
    let v = (kept as f64 * pow2(quantum)) as f32;
    if neg {
        -v
    } else {
        v
    }
}

/// The shared core: `acc` plus products `(neg, P, e)` of value `P · 2^(e − pf)`, aligned to
/// the largest exponent, truncated to `frac` fraction bits, summed, and normalised to
/// `out_bits` mantissa bits. NaN/inf are handled by the callers.
fn fused_dot_add(
    acc: f32,
    products: &[(bool, u64, i32)],
    pf: i32,
    frac: i32,
    out_bits: i32,
) -> f32 {
    let acc = f32_parts(acc);
    let mut e_max = acc.map_or(i32::MIN, |(_, _, e)| e);
    for &(_, _, e) in products {
        e_max = e_max.max(e);
    }
    if e_max == i32::MIN {
        return 0.0;
    }
    let mut sum = 0i64;
    for &(neg, p, e) in products {
        let t = align(p, frac - pf - (e_max - e)) as i64;
        sum += if neg { -t } else { t };
    }
    if let Some((neg, m, e)) = acc {
        let t = align(m, frac - 23 - (e_max - e)) as i64;
        sum += if neg { -t } else { t };
    }
    finish(sum, e_max - frac, out_bits)
}

/// The FP32 result of one FP8 `wgmma` step (E4M3 × E4M3 → FP32, k = 32) for one output
/// element: `acc + Σ a_i·b_i` under the model of the [module docs](self) (13 fraction
/// bits after alignment, result truncated to 13 mantissa bits).
pub fn fp8_mma_step(acc: f32, a: &[u8; FP8_STEP_K], b: &[u8; FP8_STEP_K]) -> f32 {
    fp8_step(acc, a, b)
}

/// [`fp8_mma_step`] on slices of equal length (at most [`FP8_STEP_K`]).
fn fp8_step(acc: f32, a: &[u8], b: &[u8]) -> f32 {
    if acc.is_nan() {
        return f32::from_bits(CANONICAL_NAN_BITS);
    }
    let mut products = [(false, 0u64, 0i32); FP8_STEP_K];
    let mut n = 0;
    let mut nan = false;
    for (&ca, &cb) in a.iter().zip(b) {
        let (pa, pb) = (E4M3[ca as usize], E4M3[cb as usize]);
        nan |= pa.nan | pb.nan;
        let p = pa.sig as u64 * pb.sig as u64;
        if p != 0 {
            products[n] = (pa.neg ^ pb.neg, p, pa.exp as i32 + pb.exp as i32);
            n += 1;
        }
    }
    if nan {
        return f32::from_bits(CANONICAL_NAN_BITS);
    }
    if acc.is_infinite() {
        return acc;
    }
    fused_dot_add(
        acc,
        &products[..n],
        FP8_PRODUCT_FRACTION_BITS,
        FP8_SUM_FRACTION_BITS,
        FP8_OUT_FRACTION_BITS,
    )
}

/// The FP32 result of one BF16 `wgmma` step (BF16 × BF16 → FP32, k = 16) for one output
/// element: `acc + Σ a_i·b_i` under the model of the [module docs](self) (25 fraction
/// bits after alignment, result truncated to FP32's 23 mantissa bits).
pub fn bf16_mma_step(acc: f32, a: &[bf16; BF16_STEP_K], b: &[bf16; BF16_STEP_K]) -> f32 {
    let check = a
        .iter()
        .zip(b)
        .map(|(x, y)| x.to_f64() * y.to_f64())
        .sum::<f64>()
        + acc as f64;
    if check.is_nan() {
        return f32::from_bits(CANONICAL_NAN_BITS);
    }
    if check.is_infinite() {
        return check as f32;
    }
    let parts = |x: bf16| {
        let bits = x.to_bits();
        let field = ((bits >> 7) & 0xFF) as i32;
        let frac = (bits & 0x7F) as u64;
        if field == 0 {
            (bits >> 15 != 0, frac, -126)
        } else {
            (bits >> 15 != 0, frac | 0x80, field - 127)
        }
    };
    let mut products = [(false, 0u64, 0i32); BF16_STEP_K];
    let mut n = 0;
    for (&x, &y) in a.iter().zip(b) {
        let ((na, ma, ea), (nb, mb, eb)) = (parts(x), parts(y));
        if ma * mb != 0 {
            products[n] = (na ^ nb, ma * mb, ea + eb);
            n += 1;
        }
    }
    fused_dot_add(
        acc,
        &products[..n],
        BF16_PRODUCT_FRACTION_BITS,
        BF16_SUM_FRACTION_BITS,
        23,
    )
}

/// When the FP8 GEMM model promotes the tensor-core accumulator to FP32 with the scales.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Promotion {
    /// DeepGEMM: a fresh accumulator per 128-K block, `final = fma(sa·sb, partial, final)`.
    PerBlock,
    /// One accumulator over all of K, scaled once at the end (`fl32(sa·sb)·acc`); needs
    /// each element's scales to be uniform along K.
    Never,
    /// Split-K as `scalegemm`'s split kernels compute it (`Fp8GemmConfig::splits`): the
    /// `n` 128-K blocks divided into `S = min(splits, n)` (at least 1) ranges, split `s`
    /// taking blocks `[s·n/S, (s+1)·n/S)`, each promoted from zero as in
    /// [`Promotion::PerBlock`], then `fl32(fl32(f_0 + f_1) + f_2) + …` in split order.
    /// `SplitK(1)` is [`Promotion::PerBlock`]. The error bound ([`hopper_fp8_error_bound`])
    /// covers it: it holds for any order of summing the promoted block products.
    SplitK(usize),
}

/// The output dtype a bound is computed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutDtype {
    /// FP32 result cast to BF16 with round-to-nearest-even.
    Bf16,
    /// The FP32 result itself.
    F32,
}

/// Operands unpacked for the model: codes zero-padded to whole 128-K blocks, row-major.
struct Prepared<'c> {
    m: usize,
    n: usize,
    kp: usize,
    blocks: usize,
    a: Vec<u8>,
    b: Vec<u8>,
    sa: Vec<f32>,
    sb: Vec<f32>,
    gb: usize,
    c: Option<MatView<'c, f32>>,
}

impl Prepared<'_> {
    fn a_row(&self, r: usize) -> &[u8] {
        &self.a[r * self.kp..(r + 1) * self.kp]
    }

    fn b_row(&self, j: usize) -> &[u8] {
        &self.b[j * self.kp..(j + 1) * self.kp]
    }

    /// `(sa, sb)` of element (r, j) in block `kb`.
    fn scales(&self, r: usize, j: usize, kb: usize) -> (f32, f32) {
        (
            self.sa[r * self.blocks + kb],
            self.sb[(j / self.gb) * self.blocks + kb],
        )
    }
}

fn padded_codes(v: MatView<u8>, kp: usize) -> Vec<u8> {
    let (rows, k) = (v.rows(), v.cols());
    let mut out = vec![0u8; rows * kp];
    out.par_chunks_mut(kp.max(1))
        .enumerate()
        .for_each(|(r, row)| {
            if r < rows {
                for (c, x) in row[..k].iter_mut().enumerate() {
                    *x = v.get(r, c);
                }
            }
        });
    out
}

fn prepare<'c>(
    a: &Fp8Operand,
    b: &Fp8Operand,
    c: Option<MatView<'c, f32>>,
) -> Result<Prepared<'c>> {
    if a.recipe() != Fp8Recipe::PerToken {
        return Err(Error::Argument {
            name: "a",
            reason:
                "the Hopper FP8 model takes A per-token (1x128), as DeepGEMM's 1D2D/1D1D kernels"
                    .into(),
        });
    }
    if a.k() != b.k() {
        return Err(Error::Shape {
            tensor: "b",
            expected: format!("K = {} (A's K)", a.k()),
            got: format!("K = {}", b.k()),
        });
    }
    let (m, n, k) = (a.rows(), b.rows(), a.k());
    if let Some(c) = &c {
        c.expect_shape("c", m, n)?;
    }
    let blocks = k.div_ceil(FP8_GRAN_K);
    let kp = blocks * FP8_GRAN_K;
    // The padded copies and the outputs below are allocated from these products (a view
    // with a zero stride can describe a shape far larger than its buffer).
    checked_len("a", &[m, kp])?;
    checked_len("b", &[n, kp])?;
    checked_len("d", &[m, n])?;
    let (sa, _) = a.checked_scales("sfa")?;
    let (sb, gb) = b.checked_scales("sfb")?;
    // Checked scales came from f32 (or UE8M0 powers of two): the casts are exact.
    let to_f32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    Ok(Prepared {
        m,
        n,
        kp,
        blocks,
        a: padded_codes(a.codes(), kp),
        b: padded_codes(b.codes(), kp),
        sa: to_f32(sa),
        sb: to_f32(sb),
        gb,
        c,
    })
}

/// Errors with [`Error::Argument`] unless every element's scales are uniform along K.
fn check_uniform(p: &Prepared) -> Result<()> {
    let uniform = |s: &[f32], name: &'static str| {
        for (row, chunk) in s.chunks(p.blocks.max(1)).enumerate() {
            if chunk.iter().any(|x| x.to_bits() != chunk[0].to_bits()) {
                return Err(Error::Argument {
                    name,
                    reason: format!(
                        "scale row {row} is not uniform along K: the no-promotion model scales one accumulator once"
                    ),
                });
            }
        }
        Ok(())
    };
    uniform(&p.sa, "sfa")?;
    uniform(&p.sb, "sfb")
}

/// The model's FP32 value of element (r, j), C included, before the output cast.
fn model_element(p: &Prepared, r: usize, j: usize, promotion: Promotion) -> f32 {
    let (ar, br) = (p.a_row(r), p.b_row(j));
    // The promoted sum of blocks `kbs`, from zero.
    let promoted = |kbs: std::ops::Range<usize>| {
        let mut fin = 0.0f32;
        for kb in kbs {
            let mut acc = 0.0f32;
            for s in 0..FP8_GRAN_K / FP8_STEP_K {
                let k0 = kb * FP8_GRAN_K + s * FP8_STEP_K;
                acc = fp8_step(acc, &ar[k0..k0 + FP8_STEP_K], &br[k0..k0 + FP8_STEP_K]);
            }
            let (sa, sb) = p.scales(r, j, kb);
            fin = (sa * sb).mul_add(acc, fin);
        }
        fin
    };
    let value = match promotion {
        Promotion::PerBlock => promoted(0..p.blocks),
        Promotion::SplitK(splits) => {
            let (n, parts) = (p.blocks, splits.min(p.blocks).max(1));
            (1..parts).fold(promoted(0..n / parts), |sum, s| {
                sum + promoted(s * n / parts..(s + 1) * n / parts)
            })
        }
        Promotion::Never => {
            let mut acc = 0.0f32;
            for k0 in (0..p.kp).step_by(FP8_STEP_K) {
                acc = fp8_step(acc, &ar[k0..k0 + FP8_STEP_K], &br[k0..k0 + FP8_STEP_K]);
            }
            if p.blocks == 0 {
                acc
            } else {
                let (sa, sb) = p.scales(r, j, 0);
                (sa * sb) * acc
            }
        }
    };
    match &p.c {
        Some(c) => value + c.get(r, j),
        None => value,
    }
}

fn run_gemm(
    a: &Fp8Operand,
    b: &Fp8Operand,
    c: Option<MatView<f32>>,
    d: &mut OutView,
    promotion: Promotion,
) -> Result<()> {
    let p = prepare(a, b, c)?;
    if d.rows() != p.m || d.cols() != p.n {
        return Err(Error::Shape {
            tensor: "d",
            expected: format!("[{}, {}]", p.m, p.n),
            got: format!("[{}, {}]", d.rows(), d.cols()),
        });
    }
    if promotion == Promotion::Never {
        check_uniform(&p)?;
    }
    if p.m == 0 || p.n == 0 {
        return Ok(());
    }
    let mut vals = vec![0.0f32; p.m * p.n];
    vals.par_chunks_mut(p.n).enumerate().for_each(|(r, row)| {
        for (j, v) in row.iter_mut().enumerate() {
            *v = model_element(&p, r, j, promotion);
        }
    });
    for (r, row) in vals.chunks(p.n).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            // BF16: correctly rounded (RNE) from the exact f32 value; F32/F64: the value.
            d.set(r, j, v as f64);
        }
    }
    Ok(())
}

/// `D = C + A·Bᵀ` as a DeepGEMM-style sm_90 FP8 kernel computes it under the MMA-Sim
/// model: per 128-K block four `wgmma` steps into a zeroed accumulator, promotion
/// `final = fma(fl32(sa·sb), partial, final)`, then `fl32(final + C)` and the output cast
/// (BF16 RNE; FP32 as is; [`crate::gemm::OutBuf::F64`] receives the FP32 value).
///
/// A must be per-token (1×128); B per-block (128×128, the 1D2D recipe) or per-token
/// (1D1D). Any layouts. Errors: [`Error::Argument`] for a per-block A, [`Error::Shape`]
/// for mismatched shapes, [`Error::Scale`] for invalid scales.
pub fn hopper_fp8_gemm(
    a: &Fp8Operand,
    b: &Fp8Operand,
    c: Option<MatView<f32>>,
    d: &mut OutView,
) -> Result<()> {
    run_gemm(a, b, c, d, Promotion::PerBlock)
}

/// As [`hopper_fp8_gemm`] for a split-K launch of `splits` units per tile
/// ([`Promotion::SplitK`]: `scalegemm`'s `Fp8GemmConfig::splits_for(K)` of the config that
/// ran); `splits` ≤ 1 is [`hopper_fp8_gemm`]. Errors: as [`hopper_fp8_gemm`].
pub fn hopper_fp8_gemm_split(
    a: &Fp8Operand,
    b: &Fp8Operand,
    c: Option<MatView<f32>>,
    d: &mut OutView,
    splits: usize,
) -> Result<()> {
    run_gemm(a, b, c, d, Promotion::SplitK(splits))
}

/// As [`hopper_fp8_gemm`] but with no promotion: one tensor-core accumulator over all of
/// K (steps of 32, the tail zero-padded), then `fl32(fl32(sa·sb)·acc)`, C and the cast.
/// Shows the error DeepGEMM's promotion avoids. Errors: as [`hopper_fp8_gemm`], plus
/// [`Error::Argument`] when a row of A's or B's scales is not uniform along K.
pub fn hopper_fp8_gemm_no_promotion(
    a: &Fp8Operand,
    b: &Fp8Operand,
    c: Option<MatView<f32>>,
    d: &mut OutView,
) -> Result<()> {
    run_gemm(a, b, c, d, Promotion::Never)
}

fn check_pairs(p: &Prepared, pairs: &[(usize, usize)]) -> Result<()> {
    if let Some(i) = pairs.iter().position(|&(r, j)| r >= p.m || j >= p.n) {
        return Err(Error::Argument {
            name: "pairs",
            reason: format!(
                "pair {i} = {:?} outside D's shape [{}, {}]",
                pairs[i], p.m, p.n
            ),
        });
    }
    Ok(())
}

/// The model's FP32 values (C included, before the output cast: apply
/// [`crate::format::bf16::from_f32`] for BF16 outputs) of the listed `(row, col)`
/// elements only, in order: the entry point for large shapes. Errors: as
/// [`hopper_fp8_gemm`] / [`hopper_fp8_gemm_no_promotion`], plus [`Error::Argument`] for
/// a pair outside `[M, N]`.
pub fn hopper_fp8_sample(
    a: &Fp8Operand,
    b: &Fp8Operand,
    c: Option<MatView<f32>>,
    promotion: Promotion,
    pairs: &[(usize, usize)],
) -> Result<Vec<f32>> {
    let p = prepare(a, b, c)?;
    check_pairs(&p, pairs)?;
    if promotion == Promotion::Never {
        check_uniform(&p)?;
    }
    Ok(pairs
        .par_iter()
        .map(|&(r, j)| model_element(&p, r, j, promotion))
        .collect())
}

/// `γ_n = n·u/(1 − n·u)` for FP32 (`u = 2^-24`), inflated by 0.1%.
fn gamma32(n: usize) -> f64 {
    let nu = n as f64 * pow2(-24);
    1.001 * nu / (1.0 - nu)
}

/// The bound of the [module docs](self) for element (r, j) of the promoted model.
fn bound_element(p: &Prepared, r: usize, j: usize, out: OutDtype) -> f64 {
    let (ar, br) = (p.a_row(r), p.b_row(j));
    if ar.iter().chain(br).any(|&x| E4M3[x as usize].nan) {
        return f64::INFINITY;
    }
    let c = p.c.as_ref().map_or(0.0, |c| c.get(r, j) as f64);
    if !c.is_finite() {
        return f64::INFINITY;
    }
    let u = pow2(-24);
    let (mut sum_e, mut sum_a, mut sum_xe, mut d, mut d_abs) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for kb in 0..p.blocks {
        let (mut x, mut cum, mut e_blk) = (0.0f64, 0.0f64, 0.0f64);
        for step in 0..FP8_GRAN_K / FP8_STEP_K {
            let k0 = kb * FP8_GRAN_K + step * FP8_STEP_K;
            let mut prods = [(0.0f64, 0i32); FP8_STEP_K];
            let mut n = 0;
            let mut e_max = i32::MIN;
            for (&ca, &cb) in ar[k0..k0 + FP8_STEP_K].iter().zip(&br[k0..k0 + FP8_STEP_K]) {
                let (pa, pb) = (E4M3[ca as usize], E4M3[cb as usize]);
                let mag = pa.sig as u64 * pb.sig as u64;
                if mag != 0 {
                    let e = pa.exp as i32 + pb.exp as i32;
                    let v = mag as f64 * pow2(e - FP8_PRODUCT_FRACTION_BITS);
                    prods[n] = (if pa.neg ^ pb.neg { -v } else { v }, e);
                    n += 1;
                    e_max = e_max.max(e);
                }
            }
            if n == 0 {
                continue; // a step of zero products leaves the accumulator unchanged
            }
            let mut e_hat = e_max;
            if cum > 0.0 {
                // floor(log2(cum)): cum is a positive normal f64
                e_hat = e_hat.max(((cum.to_bits() >> 52) as i32) - 1023);
            }
            let quantum = pow2(e_hat - FP8_SUM_FRACTION_BITS);
            let mut err = if cum > 0.0 { quantum } else { 0.0 };
            for &(v, e) in &prods[..n] {
                if e_hat - e > 7 {
                    err += v.abs().min(quantum);
                }
                x += v;
                cum += v.abs();
            }
            err += pow2(-13) * cum + pow2(-139);
            e_blk += err;
        }
        let (sa, sb) = p.scales(r, j, kb);
        let s = sa as f64 * sb as f64;
        if s.abs() >= f32::MAX as f64 {
            return f64::INFINITY; // fl32(sa·sb) may overflow
        }
        sum_e += s.abs() * e_blk;
        sum_a += s.abs() * (x.abs() + e_blk);
        sum_xe += x.abs() + e_blk;
        d += s * x;
        d_abs += (s * x).abs();
    }
    let n = p.blocks;
    let mut bound = sum_e
        + (u + gamma32(n) * (1.0 + u)) * sum_a
        + (n as f64 + 1.0) * pow2(-149) * (1.0 + sum_xe);
    let exact = (d + c).abs() + 1e-12 * (d_abs + c.abs());
    if p.c.is_some() {
        bound += u * (exact + bound);
    }
    if exact + bound >= f32::MAX as f64 {
        return f64::INFINITY;
    }
    if out == OutDtype::Bf16 {
        bound += pow2(-8) * (exact + bound) + pow2(-134);
    }
    bound * (1.0 + 1e-9)
}

/// Per-element bound on `|D_model − D_exact|` for [`hopper_fp8_gemm`] (the promoted
/// model), `D_exact` the exact `C + A·Bᵀ` of the quantized inputs, derived in the
/// [module docs](self); row-major `[M, N]`. `+inf` where the model may be non-finite.
/// Errors: as [`hopper_fp8_gemm`].
pub fn hopper_fp8_error_bound(
    a: &Fp8Operand,
    b: &Fp8Operand,
    c: Option<MatView<f32>>,
    out: OutDtype,
) -> Result<Vec<f64>> {
    let p = prepare(a, b, c)?;
    let mut bounds = vec![0.0f64; p.m * p.n];
    if p.n > 0 {
        bounds.par_chunks_mut(p.n).enumerate().for_each(|(r, row)| {
            for (j, v) in row.iter_mut().enumerate() {
                *v = bound_element(&p, r, j, out);
            }
        });
    }
    Ok(bounds)
}

/// [`hopper_fp8_error_bound`] for the listed `(row, col)` elements only, in order.
/// Errors: as [`hopper_fp8_sample`].
pub fn hopper_fp8_error_bound_sample(
    a: &Fp8Operand,
    b: &Fp8Operand,
    c: Option<MatView<f32>>,
    out: OutDtype,
    pairs: &[(usize, usize)],
) -> Result<Vec<f64>> {
    let p = prepare(a, b, c)?;
    check_pairs(&p, pairs)?;
    Ok(pairs
        .par_iter()
        .map(|&(r, j)| bound_element(&p, r, j, out))
        .collect())
}
