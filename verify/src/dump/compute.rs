//! The reference output of a dump and the check of a candidate against it.
//!
//! # The bound `check` uses
//! A kernel's output is compared with the exact `C + A·Bᵀ` of the quantized inputs (the
//! reference's f64 value, within `K·2⁻⁵³·Σ|a·b|` of exact) element by element:
//!
//! - FP8 GEMMs (`fp8_gemm_nt`, the M-grouped and K-grouped ones): the per-element bound
//!   of the reference's Hopper `wgmma` model, `scalegemm_reference::hopper::
//!   hopper_fp8_error_bound` (DESIGN §3.3/§3.4: 13-bit truncated tensor-core accumulation
//!   in steps of 32, promotion to FP32 with `fl32(sa·sb)` every 128-K block as DeepGEMM
//!   does, optional C added in FP32), plus half an ulp of the output dtype (BF16:
//!   `2⁻⁸·(|y| + b) + 2⁻¹³⁴`; FP32: `2⁻²⁴·(|y| + b) + 2⁻¹⁵⁰`). A kernel that accumulates
//!   like DeepGEMM (or more precisely) is inside it; one that promotes less often than
//!   every 128 K, or mishandles a scale, an element or a block, is not.
//! - `fp8_fp4_gemm_nt`: the same model with B's E2M1 codes widened exactly to E4M3 and a
//!   promotion per FP4 scale group (each group of 32 or 128 K elements is one promoted
//!   block), the way a Hopper kernel without FP4 tensor cores has to run it.
//! - `fp8_mqa_logits`, `fp8_paged_mqa_logits`: the Hopper bound of each head's
//!   `s_j·(q·k)` (one promoted block per 128 of `D`), then the weight multiply and the
//!   FP32 sum over heads: `Σ_h |w_h|·e_h + (2u + γ_H)·Σ_h |w_h|·(|x_h| + e_h)`
//!   (`u = 2⁻²⁴`, Higham §4.2), plus half an ulp of the output.
//! - `bf16_gemm_nt`: no bit-level BF16 model is in the reference yet, so a model-free
//!   bound from the same MMA-Sim rules (BF16 `wgmma`: steps of 16 products aligned and
//!   truncated to 25 fraction bits, result truncated to FP32; no promotion): each step
//!   loses at most `(17·2⁻²⁵ + 2⁻²³)·P` with `P` the running Σ|a·b| (normal products),
//!   so `b = ⌈K/16⌉·5.25·2⁻²³·Σ|a·b| + (C: 2⁻²⁴·(|y| + Σ|a·b| + |c|))` plus half an
//!   ulp. It ignores subnormal BF16 products.
//!
//! NaN or ±inf against a finite reference is always outside. Only the elements the op
//! writes are compared (padding rows of grouped GEMMs, rows past `masked_m`, keys outside
//! a query's range are not). For an `fp8_gemm_nt` whose `M·N·K` exceeds
//! [`FULL_BOUND_WORK`], the per-element bound is evaluated on sampled rows and columns
//! (one per band, spread over the whole output) and the global metrics on every element;
//! the report says so.

use std::fmt;

use half::bf16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::Dtype;
use scalegemm_reference::attention::{
    mqa_logits, paged_mqa_logits, ContextLens, Keys, KvCacheFormat, MqaInputs, PagedMqaInputs,
    Query,
};
use scalegemm_reference::format::{e2m1, e4m3};
use scalegemm_reference::gemm::{
    gemm, k_grouped_gemm, m_grouped_gemm_contiguous, m_grouped_gemm_masked, Fp4Operand, Fp8Operand,
    Fp8Recipe, MGroupLayout, MatView, Operand, OutBuf, OutView, Scales,
};
use scalegemm_reference::hopper::{self, hopper_fp8_error_bound, hopper_fp8_error_bound_sample};

use super::parse::{Fp8Mat, Inner, MqaData, MqaKind, ScaleData};
use super::{Dump, DumpError, DumpResult, Op, Problem, Tensor};
use crate::metrics::{compare, Bound, Comparison, ElementDiff};

/// Largest `M·N·K` for which `check` evaluates the Hopper bound on every element of an
/// `fp8_gemm_nt` (the bound costs about 10 ns per multiply-add and core: 2^31 is about
/// 10 s on 2 cores); above it, sampled rows and columns worth about as much work.
pub const FULL_BOUND_WORK: u128 = 1 << 31;

/// The dtype of the `d` that `reference` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutDtype {
    /// BF16, correctly rounded (RNE) from the exact value.
    Bf16,
    /// FP32, correctly rounded (RNE) from the exact value.
    F32,
}

impl OutDtype {
    /// Half an ulp of a value of magnitude `x` in this dtype, subnormals included.
    pub fn half_ulp(self, x: f64) -> f64 {
        match self {
            OutDtype::Bf16 => x * 2f64.powi(-8) + 2f64.powi(-134),
            OutDtype::F32 => x * 2f64.powi(-24) + 2f64.powi(-150),
        }
    }

    /// The least magnitude that rounds (RNE) to infinity in this dtype: the midpoint
    /// between the largest finite value and the next power of two.
    pub fn overflow_threshold(self) -> f64 {
        match self {
            OutDtype::Bf16 => (2.0 - 2f64.powi(-8)) * 2f64.powi(127),
            OutDtype::F32 => (2.0 - 2f64.powi(-24)) * 2f64.powi(127),
        }
    }
}

impl Fp8Mat {
    fn scale_rows(&self) -> usize {
        match self.recipe {
            Fp8Recipe::PerToken => self.rows,
            Fp8Recipe::PerBlock => self.rows.div_ceil(128),
        }
    }

    /// The reference operand over this data.
    pub(crate) fn operand(&self) -> DumpResult<Fp8Operand<'_>> {
        let (sr, kb) = (self.scale_rows(), self.kb());
        let scales = match &self.scales {
            ScaleData::F32(v) => Scales::F32(MatView::k_major(v, sr, kb, kb)?),
            ScaleData::Ue8m0(v) => Scales::Ue8m0(MatView::k_major(v, sr, kb, kb)?),
        };
        let codes = MatView::k_major(&self.codes, self.rows, self.k, self.k)?;
        Ok(Fp8Operand::new(codes, scales, self.recipe)?)
    }
}

fn c_view(c: Option<&[f32]>, rows: usize, cols: usize) -> DumpResult<Option<MatView<'_, f32>>> {
    Ok(match c {
        Some(c) => Some(MatView::k_major(c, rows, cols, cols)?),
        None => None,
    })
}

fn ops(v: &[Fp8Mat]) -> DumpResult<Vec<Operand<'_>>> {
    v.iter().map(|x| Ok(x.operand()?.into())).collect()
}

/// Elements of one output row compared by `check`: `(row, first col, end col)`.
type Span = (usize, usize, usize);

impl Problem {
    /// Runs the reference into `buf` (`[rows, cols]` row-major); rows the op does not write
    /// keep their value.
    fn run(&self, buf: OutBuf) -> DumpResult<()> {
        let (rows, cols) = (self.rows, self.cols);
        let c = c_view(self.c.as_deref(), rows, cols)?;
        let mut d = OutView::new(buf, rows, cols, cols)?;
        match &self.inner {
            Inner::Fp8Gemm { a, b } => gemm(&a.operand()?.into(), &b.operand()?.into(), c, &mut d)?,
            Inner::Bf16Gemm { k, a, b } => {
                let av = MatView::k_major(a, rows, *k, *k)?;
                let bv = MatView::k_major(b, cols, *k, *k)?;
                gemm(&av.into(), &bv.into(), c, &mut d)?
            }
            Inner::Fp8Fp4Gemm { a, b, sfb, group } => {
                let k = a.k;
                let sc = k.div_ceil(group.width());
                let sv = Scales::Ue8m0(MatView::k_major(sfb, cols, sc, sc)?);
                let bo = Fp4Operand::new(b, cols, k, k / 2, sv, *group)?;
                gemm(&a.operand()?.into(), &bo.into(), c, &mut d)?
            }
            Inner::MGroupedContiguous { a, b, layout } => m_grouped_gemm_contiguous(
                &a.operand()?.into(),
                &ops(b)?,
                MGroupLayout::PerRow(layout),
                c,
                &mut d,
            )?,
            Inner::MGroupedMasked { a, b, masked_m } => {
                m_grouped_gemm_masked(&a.operand()?.into(), &ops(b)?, masked_m, c, &mut d)?
            }
            Inner::KGrouped { a, b } => k_grouped_gemm(&ops(a)?, &ops(b)?, c, &mut d)?,
            Inner::Mqa(x) => match &x.kind {
                MqaKind::Dense {
                    seq_len,
                    kv,
                    kv_scales,
                    ks,
                    ke,
                } => {
                    let inputs = MqaInputs {
                        q: Query::Fp8(&x.q),
                        kv: Keys::Fp8 {
                            codes: kv,
                            scales: kv_scales,
                        },
                        weights: &x.weights,
                        ks,
                        ke,
                        seq_len: *seq_len,
                        seq_len_kv: cols,
                        heads: x.heads,
                        dim: x.dim,
                    };
                    mqa_logits(&inputs, true, &mut d)?
                }
                MqaKind::Paged {
                    batch,
                    next_n,
                    kv_cache,
                    num_blocks,
                    block_kv,
                    context_lens,
                    per_token_lens,
                    block_table,
                    max_blocks,
                } => {
                    let inputs = PagedMqaInputs {
                        q: Query::Fp8(&x.q),
                        kv_cache,
                        kv_format: KvCacheFormat::Fp8,
                        weights: &x.weights,
                        context_lens: if *per_token_lens {
                            ContextLens::PerToken(context_lens)
                        } else {
                            ContextLens::PerSequence(context_lens)
                        },
                        block_table,
                        batch: *batch,
                        next_n: *next_n,
                        heads: x.heads,
                        dim: x.dim,
                        num_blocks: *num_blocks,
                        block_kv: *block_kv,
                        max_blocks: *max_blocks,
                    };
                    paged_mqa_logits(&inputs, true, &mut d)?
                }
            },
        }
        Ok(())
    }

    /// The elements the op writes, as row spans (call after [`Problem::run`] succeeded,
    /// which validated the ranges).
    fn spans(&self) -> Vec<Span> {
        let (rows, cols) = (self.rows, self.cols);
        match &self.inner {
            Inner::MGroupedContiguous { layout, .. } => (0..rows)
                .filter(|&r| layout[r] >= 0)
                .map(|r| (r, 0, cols))
                .collect(),
            Inner::MGroupedMasked { masked_m, .. } => {
                let max_m = rows / masked_m.len().max(1);
                masked_m
                    .iter()
                    .enumerate()
                    .flat_map(|(g, &mm)| (0..mm as usize).map(move |r| (g * max_m + r, 0, cols)))
                    .collect()
            }
            Inner::Mqa(x) => match &x.kind {
                MqaKind::Dense { ks, ke, .. } => ks
                    .iter()
                    .zip(ke)
                    .enumerate()
                    .map(|(i, (&s, &e))| {
                        let hi = (e as usize).min(cols);
                        (i, (s as usize).min(hi), hi)
                    })
                    .collect(),
                MqaKind::Paged {
                    next_n,
                    context_lens,
                    per_token_lens,
                    ..
                } => (0..rows)
                    .map(|r| (r, 0, visible(context_lens, *per_token_lens, *next_n, r)))
                    .collect(),
            },
            _ => (0..rows).map(|r| (r, 0, cols)).collect(),
        }
    }

    /// The per-element bound on `[rows, cols]` (0 where the op writes nothing), for a
    /// candidate of dtype `out`, and a one-line description.
    fn bound(&self, exact: &[f64], out: OutDtype) -> DumpResult<(Vec<f64>, &'static str)> {
        let (rows, cols) = (self.rows, self.cols);
        let mut b = vec![0.0f64; rows * cols];
        let desc = match &self.inner {
            Inner::Fp8Gemm { a, b: bb } => {
                let c = c_view(self.c.as_deref(), rows, cols)?;
                b = hopper_fp8_error_bound(
                    &a.operand()?,
                    &bb.operand()?,
                    c,
                    hopper::OutDtype::F32,
                )?;
                HOPPER
            }
            Inner::MGroupedContiguous { a, b: bs, layout } => {
                for (g, bg) in bs.iter().enumerate() {
                    let rs: Vec<usize> = (0..rows).filter(|&r| layout[r] == g as i32).collect();
                    self.group_bound(&mut b, &a.gather(&rs), bg, &rs)?;
                }
                HOPPER
            }
            Inner::MGroupedMasked { a, b: bs, masked_m } => {
                let max_m = rows / bs.len();
                for (g, bg) in bs.iter().enumerate() {
                    let rs: Vec<usize> = (g * max_m..g * max_m + masked_m[g] as usize).collect();
                    self.group_bound(&mut b, &a.row_range(g * max_m, rs.len()), bg, &rs)?;
                }
                HOPPER
            }
            Inner::KGrouped { a, b: bs } => {
                let m = rows / a.len();
                for (g, (ag, bg)) in a.iter().zip(bs).enumerate() {
                    let rs: Vec<usize> = (g * m..(g + 1) * m).collect();
                    self.group_bound(&mut b, ag, bg, &rs)?;
                }
                HOPPER
            }
            Inner::Fp8Fp4Gemm {
                a,
                b: packed,
                sfb,
                group,
            } => {
                let w = group.width();
                let (a2, b2) = regrid(a, packed, sfb, cols, w);
                let c = c_view(self.c.as_deref(), rows, cols)?;
                b = hopper_fp8_error_bound(
                    &a2.operand()?,
                    &b2.operand()?,
                    c,
                    hopper::OutDtype::F32,
                )?;
                "Hopper wgmma model with E2M1 widened to E4M3, one promotion per FP4 scale group"
            }
            Inner::Bf16Gemm { k, a, b: bb } => {
                let abs = |v: &[bf16]| {
                    v.iter()
                        .map(|x| bf16::from_bits(x.to_bits() & 0x7FFF))
                        .collect::<Vec<_>>()
                };
                let (aa, ba) = (abs(a), abs(bb));
                let mut t = vec![0.0f64; rows * cols];
                let cabs: Option<Vec<f32>> =
                    self.c.as_ref().map(|c| c.iter().map(|x| x.abs()).collect());
                gemm(
                    &MatView::k_major(&aa, rows, *k, *k)?.into(),
                    &MatView::k_major(&ba, cols, *k, *k)?.into(),
                    c_view(cabs.as_deref(), rows, cols)?,
                    &mut OutView::new(OutBuf::F64(&mut t), rows, cols, cols)?,
                )?;
                let steps = k.div_ceil(16) as f64;
                let rho = steps * 5.25 * 2f64.powi(-23);
                for ((bv, &tv), &y) in b.iter_mut().zip(&t).zip(exact) {
                    *bv = rho * tv;
                    if self.c.is_some() {
                        *bv += 2f64.powi(-24) * (y.abs() + tv);
                    }
                }
                "model-free BF16 wgmma bound: ceil(K/16)*5.25*2^-23*sum|a*b| (MMA-Sim rules, no subnormal products)"
            }
            Inner::Mqa(x) => {
                mqa_bound(x, cols, &mut b)?;
                "Hopper wgmma model per head, then FP32 weight multiply and head sum"
            }
        };
        for (bv, &y) in b.iter_mut().zip(exact) {
            let y = if y.is_finite() { y.abs() } else { 0.0 };
            *bv += out.half_ulp(y + *bv);
            if bv.is_nan() {
                // A NaN in the inputs (a NaN code or scale, an infinity times a zero)
                // reached the bound's own sums: no bound there, as the Hopper model's
                // bound is +inf wherever the model may be non-finite.
                *bv = f64::INFINITY;
            }
        }
        Ok((b, desc))
    }

    /// Writes the Hopper bound of one group (rows `rs` of the output) into `b`.
    fn group_bound(&self, b: &mut [f64], a: &Fp8Mat, bg: &Fp8Mat, rs: &[usize]) -> DumpResult<()> {
        let cols = self.cols;
        let cg: Option<Vec<f32>> = self.c.as_ref().map(|c| {
            rs.iter()
                .flat_map(|&r| c[r * cols..(r + 1) * cols].iter().copied())
                .collect()
        });
        let v = hopper_fp8_error_bound(
            &a.operand()?,
            &bg.operand()?,
            c_view(cg.as_deref(), rs.len(), cols)?,
            hopper::OutDtype::F32,
        )?;
        for (i, &r) in rs.iter().enumerate() {
            b[r * cols..(r + 1) * cols].copy_from_slice(&v[i * cols..(i + 1) * cols]);
        }
        Ok(())
    }
}

const HOPPER: &str = "Hopper wgmma model (DeepGEMM accumulation order, DESIGN 3.3/3.4)";

/// Visible positions of paged query row `r` (as `paged_mqa_logits` defines them).
fn visible(lens: &[i32], per_token: bool, next_n: usize, r: usize) -> usize {
    if per_token {
        lens[r].max(0) as usize
    } else {
        let (b, t) = (r / next_n, r % next_n);
        let l = lens[b] as i64;
        (l - next_n as i64 + t as i64 + 1).clamp(0, l.max(0)) as usize
    }
}

/// FP8 A and FP4 B re-laid so that each FP4 scale group of `w` K elements is one 128-K
/// block of a per-token × per-token FP8 problem (the group's codes at the start of the
/// block, zeros after): the Hopper model then promotes once per FP4 group.
pub(crate) fn regrid(
    a: &Fp8Mat,
    packed: &[u8],
    sfb: &[u8],
    n: usize,
    w: usize,
) -> (Fp8Mat, Fp8Mat) {
    let k = a.k;
    let groups = k.div_ceil(w);
    let kp = groups * 128;
    let widen: Vec<u8> = (0..16u8).map(|c| e4m3::encode(e2m1::decode(c))).collect();
    let (kb, m) = (a.kb(), a.rows);
    let mut ac = vec![0u8; m * kp];
    let mut bc = vec![0u8; n * kp];
    for g in 0..groups {
        let (k0, k1) = (g * w, ((g + 1) * w).min(k));
        for r in 0..m {
            ac[r * kp + g * 128..r * kp + g * 128 + (k1 - k0)]
                .copy_from_slice(&a.codes[r * k + k0..r * k + k1]);
        }
        for r in 0..n {
            for kk in k0..k1 {
                let byte = packed[r * (k / 2) + kk / 2];
                let nib = if kk % 2 == 0 { byte & 0xF } else { byte >> 4 };
                bc[r * kp + g * 128 + kk - k0] = widen[nib as usize];
            }
        }
    }
    let pick = |r: usize, g: usize| r * kb + (g * w) / 128;
    let sa = match &a.scales {
        ScaleData::F32(v) => ScaleData::F32(
            (0..m)
                .flat_map(|r| (0..groups).map(move |g| v[pick(r, g)]))
                .collect(),
        ),
        ScaleData::Ue8m0(v) => ScaleData::Ue8m0(
            (0..m)
                .flat_map(|r| (0..groups).map(move |g| v[pick(r, g)]))
                .collect(),
        ),
    };
    (
        Fp8Mat {
            codes: ac,
            rows: m,
            k: kp,
            scales: sa,
            recipe: Fp8Recipe::PerToken,
        },
        Fp8Mat {
            codes: bc,
            rows: n,
            k: kp,
            scales: ScaleData::Ue8m0(sfb.to_vec()),
            recipe: Fp8Recipe::PerToken,
        },
    )
}

/// The MQA bound (see the module docs) into `b` `[rows, cols]`.
fn mqa_bound(x: &MqaData, cols: usize, b: &mut [f64]) -> DumpResult<()> {
    let (h, d) = (x.heads, x.dim);
    let kb = d.div_ceil(128);
    let u = 2f64.powi(-24);
    let hu = h as f64 * u;
    let gamma_h = 1.001 * hu / (1.0 - hu);
    // One query block `q_rows` (tokens t0..t0+nt) against keys `kv` with row scales.
    let block = |t0: usize, nt: usize, kv: &[u8], sc: &[f32], b: &mut [f64]| -> DumpResult<()> {
        let nk = sc.len();
        if nt == 0 || nk == 0 {
            return Ok(());
        }
        let qa = Fp8Mat {
            codes: x.q[t0 * h * d..(t0 + nt) * h * d].to_vec(),
            rows: nt * h,
            k: d,
            scales: ScaleData::F32(vec![1.0; nt * h * kb]),
            recipe: Fp8Recipe::PerToken,
        };
        // A key whose scale is not finite (the reference computes NaN/inf logits there)
        // has no bound: its columns get +inf below; the operand takes a stand-in scale.
        let kvm = Fp8Mat {
            codes: kv.to_vec(),
            rows: nk,
            k: d,
            scales: ScaleData::F32(
                sc.iter()
                    .flat_map(|&s| std::iter::repeat_n(if s.is_finite() { s } else { 1.0 }, kb))
                    .collect(),
            ),
            recipe: Fp8Recipe::PerToken,
        };
        let (qo, ko) = (qa.operand()?, kvm.operand()?);
        let e = hopper_fp8_error_bound(&qo, &ko, None, hopper::OutDtype::F32)?;
        let mut xs = vec![0.0f64; nt * h * nk];
        gemm(
            &qo.into(),
            &ko.into(),
            None,
            &mut OutView::new(OutBuf::F64(&mut xs), nt * h, nk, nk)?,
        )?;
        for t in 0..nt {
            for j in 0..nk.min(cols) {
                let (mut s1, mut s2) = (0.0, 0.0);
                for hh in 0..h {
                    let i = (t * h + hh) * nk + j;
                    let w = x.weights[(t0 + t) * h + hh].abs() as f64;
                    s1 += w * e[i];
                    s2 += w * (xs[i].abs() + e[i]);
                }
                b[(t0 + t) * cols + j] = if sc[j].is_finite() {
                    s1 + (2.0 * u + gamma_h) * s2 * (1.0 + u)
                } else {
                    f64::INFINITY
                };
            }
        }
        Ok(())
    };
    match &x.kind {
        MqaKind::Dense {
            kv,
            kv_scales,
            seq_len,
            ..
        } => block(0, *seq_len, kv, kv_scales, b),
        MqaKind::Paged {
            batch,
            next_n,
            kv_cache,
            block_kv,
            context_lens,
            per_token_lens,
            block_table,
            max_blocks,
            ..
        } => {
            let row_bytes = d + 4;
            let blk_bytes = block_kv * row_bytes;
            for bi in 0..*batch {
                let r0 = bi * next_n;
                let n_kv = (r0..r0 + next_n)
                    .map(|r| visible(context_lens, *per_token_lens, *next_n, r))
                    .max()
                    .unwrap_or(0);
                let (mut kv, mut sc) = (Vec::with_capacity(n_kv * d), Vec::with_capacity(n_kv));
                for p in 0..n_kv {
                    let blk = block_table[bi * max_blocks + p / block_kv] as usize;
                    let base = blk * blk_bytes;
                    let (row, sb) = (p % block_kv, base + block_kv * d);
                    kv.extend_from_slice(&kv_cache[base + row * d..base + (row + 1) * d]);
                    let s = &kv_cache[sb + 4 * row..sb + 4 * row + 4];
                    sc.push(f32::from_le_bytes([s[0], s[1], s[2], s[3]]));
                }
                block(r0, *next_n, &kv, &sc, b)?;
            }
            Ok(())
        }
    }
}

/// The reference output of a dump: the input dump (all its tensors and metadata) with
/// `d` added or replaced, `d` having the op's output shape and dtype `out`.
///
/// Every element of a GEMM `d` (all ops but the MQA logits) is the correctly rounded
/// (round-to-nearest-even) value of the exact `C + A·Bᵀ` of the inputs as stored, in
/// BF16 or FP32 (the reference certifies each rounding and falls back to exact
/// summation, DESIGN §3.2). MQA logits are rounded once from an f64 value within
/// `(H + 2)·2⁻⁵³·Σ_h|term_h|` of the exact one, so they are correctly rounded except
/// where the exact value lies within that distance (below `10⁻¹²·Σ|terms|`) of a rounding
/// boundary. Elements the op does not write (grouped padding rows, rows past
/// `masked_m`) are 0; logits outside a query's key range are −inf (DeepGEMM's
/// `clean_logits`).
///
/// # Errors
/// Any [`DumpError`] of [`Problem::parse`], and [`DumpError::Reference`] when the
/// reference rejects a value (a NaN or infinite scale, a UE8M0 NaN code, a block table
/// entry out of range).
pub fn reference(dump: &Dump, out: OutDtype) -> DumpResult<Dump> {
    let p = Problem::parse(dump)?;
    let n = p.rows * p.cols;
    let t = match out {
        OutDtype::Bf16 => {
            let mut d = vec![bf16::ZERO; n];
            p.run(OutBuf::Bf16(&mut d))?;
            Tensor::from_bf16(&p.d_shape, &d)
        }
        OutDtype::F32 => {
            let mut d = vec![0f32; n];
            p.run(OutBuf::F32(&mut d))?;
            Tensor::from_f32(&p.d_shape, &d)
        }
    };
    let mut res = dump.clone();
    res.insert("d", t);
    Ok(res)
}

/// The result of [`check`]: what was compared and how it went.
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// The op.
    pub op: Op,
    /// Shape of `d` in the file.
    pub d_shape: Vec<usize>,
    /// Dtype of the candidate `d`.
    pub d_dtype: OutDtype,
    /// Elements the op writes (all of them enter [`CheckReport::global`]).
    pub written: usize,
    /// Global metrics over every written element (calc_diff, max abs/rel); its
    /// `outside_bound` counts only NaN/inf mismatches (the bound there is +inf).
    /// Coordinates are `(row, col)` of `d` flattened to 2-D.
    pub global: Comparison,
    /// The per-element bound check over the elements whose bound was evaluated (all
    /// written elements, or a sample: see [`CheckReport::sampled`]).
    pub bounded: Comparison,
    /// Which bound was used (module docs).
    pub bound: &'static str,
    /// `Some(description)` when the bound was evaluated on a sample only.
    pub sampled: Option<String>,
    /// DeepGEMM's calc_diff threshold for this op's input types (DESIGN §3.4), printed
    /// for context; it does not decide the verdict.
    pub calc_diff_threshold: f64,
}

impl CheckReport {
    /// True when every checked element is inside its bound and no element anywhere is a
    /// NaN/inf mismatch.
    pub fn passed(&self) -> bool {
        self.bounded.outside_bound == 0 && self.global.outside_bound == 0
    }
}

fn dtype_name(d: OutDtype) -> &'static str {
    match d {
        OutDtype::Bf16 => "BF16",
        OutDtype::F32 => "F32",
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (g, b) = (&self.global, &self.bounded);
        writeln!(
            f,
            "op {}: d {:?} {}, {} elements written by the op",
            self.op.name(),
            self.d_shape,
            dtype_name(self.d_dtype),
            self.written
        )?;
        writeln!(
            f,
            "bound: {} + 1/2 ulp of {}",
            self.bound,
            dtype_name(self.d_dtype)
        )?;
        if let Some(s) = &self.sampled {
            writeln!(f, "bound evaluated on a sample: {s}")?;
        }
        let inside = b.len() - b.outside_bound;
        let pct = if b.is_empty() {
            100.0
        } else {
            100.0 * inside as f64 / b.len() as f64
        };
        writeln!(
            f,
            "per-element bound: {inside}/{} inside ({pct:.4}%), {} outside",
            b.len(),
            b.outside_bound
        )?;
        let elem =
            |e: &ElementDiff| {
                format!(
                "({}, {}): d = {:e}, exact = {:e}, |diff| = {:.3e}, bound = {:.3e} ({:.3}x bound)",
                e.row, e.col, e.candidate, e.reference, e.diff, e.bound, e.ratio()
            )
            };
        if let Some(w) = &b.worst {
            writeln!(f, "worst element {}", elem(w))?;
        }
        if let Some(m) = &b.first_mismatch {
            writeln!(f, "first outside {}", elem(m))?;
        }
        let at =
            |a: Option<(usize, usize)>| a.map_or(String::new(), |(r, c)| format!(" at ({r}, {c})"));
        writeln!(
            f,
            "max abs error {:.3e}{}, max rel error {:.3e}{}",
            g.max_abs,
            at(g.max_abs_at),
            g.max_rel,
            at(g.max_rel_at)
        )?;
        let verdict = if g.calc_diff <= self.calc_diff_threshold {
            "below"
        } else {
            "ABOVE"
        };
        writeln!(
            f,
            "calc_diff {:.3e} ({verdict} DeepGEMM's threshold {:.0e}, context only), sqnr {:.1} dB",
            g.calc_diff, self.calc_diff_threshold, g.sqnr_db
        )?;
        if g.nan_mismatches + g.inf_mismatches > 0 {
            writeln!(
                f,
                "NaN mismatches {}, inf mismatches {}",
                g.nan_mismatches, g.inf_mismatches
            )?;
        }
        write!(
            f,
            "verdict: {}",
            if self.passed() {
                "PASS (inside the bound)"
            } else {
                "FAIL (outside the bound)"
            }
        )
    }
}

/// The flat order of `spans`, for mapping a flat index back to `(row, col)`.
struct Flat {
    spans: Vec<Span>,
    starts: Vec<usize>,
}

impl Flat {
    fn new(spans: Vec<Span>) -> Self {
        let mut starts = Vec::with_capacity(spans.len());
        let mut n = 0;
        for &(_, c0, c1) in &spans {
            starts.push(n);
            n += c1 - c0;
        }
        Self { spans, starts }
    }

    fn gather<T: Copy>(&self, v: &[T], cols: usize) -> Vec<T> {
        self.spans
            .iter()
            .flat_map(|&(r, c0, c1)| v[r * cols + c0..r * cols + c1].iter().copied())
            .collect()
    }

    fn locate(&self, i: usize) -> (usize, usize) {
        let s = self.starts.partition_point(|&x| x <= i) - 1;
        let (r, c0, _) = self.spans[s];
        (r, c0 + i - self.starts[s])
    }

    /// Rewrites the `[1, n]` coordinates of `c` to `(row, col)` of the output.
    fn relocate(&self, mut c: Comparison) -> Comparison {
        let at = |a: Option<(usize, usize)>| a.map(|(_, i)| self.locate(i));
        c.max_abs_at = at(c.max_abs_at);
        c.max_rel_at = at(c.max_rel_at);
        for e in [&mut c.worst, &mut c.first_mismatch].into_iter().flatten() {
            (e.row, e.col) = self.locate(e.col);
        }
        c
    }
}

/// Sampled output elements for the bound of a large `fp8_gemm_nt`: about
/// `FULL_BOUND_WORK / K` elements, as whole rows (one random row in each of `nr` equal
/// bands of M) and whole columns (likewise over N), so every band of rows and columns is
/// visited. Returns the spans (rows, then column pieces outside the sampled rows).
pub(crate) fn sample_spans(m: usize, n: usize, k: usize, seed: u64) -> (Vec<Span>, String) {
    let budget = (FULL_BOUND_WORK / k.max(1) as u128) as usize;
    let nr = (budget / (2 * n.max(1))).clamp(1, m);
    let nc = (budget / (2 * m.max(1))).clamp(1, n);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pick = |len: usize, count: usize| -> Vec<usize> {
        (0..count)
            .map(|i| {
                let (lo, hi) = (len * i / count, len * (i + 1) / count);
                rng.random_range(lo..hi.max(lo + 1))
            })
            .collect()
    };
    let rows = pick(m, nr);
    let cols = pick(n, nc);
    let mut spans: Vec<Span> = rows.iter().map(|&r| (r, 0, n)).collect();
    let mut is_row = vec![false; m];
    rows.iter().for_each(|&r| is_row[r] = true);
    for (r, _) in is_row.iter().enumerate().filter(|(_, &sampled)| !sampled) {
        spans.extend(cols.iter().map(|&c| (r, c, c + 1)));
    }
    let desc = format!(
        "{nr} whole rows (one per band of {} rows) and {nc} whole columns (one per band of {} columns), seed {seed}",
        m.div_ceil(nr),
        n.div_ceil(nc)
    );
    (spans, desc)
}

/// Compares the dump's candidate `d` with the reference under the op's per-element bound
/// (module docs) and returns the report; [`CheckReport::passed`] decides exit code 0
/// or 1.
///
/// # Errors
/// As [`reference()`], plus [`DumpError::Missing`] without `d`, [`DumpError::Dtype`] when
/// `d` is not BF16 or F32, [`DumpError::Shape`] when it is not the op's output shape.
pub fn check(dump: &Dump) -> DumpResult<CheckReport> {
    let p = Problem::parse(dump)?;
    let t = dump.tensors.get("d").ok_or_else(|| DumpError::Missing {
        op: p.op.name(),
        name: "d".into(),
        what: format!("the candidate output, BF16 or F32 {:?}", p.d_shape),
    })?;
    let d_dtype = match t.dtype() {
        Dtype::BF16 => OutDtype::Bf16,
        Dtype::F32 => OutDtype::F32,
        other => {
            return Err(DumpError::Dtype {
                name: "d".into(),
                expected: "BF16 or F32".into(),
                got: other.to_string(),
            })
        }
    };
    if t.shape() != p.d_shape {
        return Err(DumpError::Shape {
            name: "d".into(),
            expected: format!("the op's output shape {:?}", p.d_shape),
            got: t.shape().to_vec(),
        });
    }
    let cand: Vec<f64> = t.to_f32().into_iter().map(f64::from).collect();
    let (rows, cols) = (p.rows, p.cols);
    let mut exact = vec![0.0f64; rows * cols];
    p.run(OutBuf::F64(&mut exact))?;
    let written = Flat::new(p.spans());

    let mut sampled = None;
    let (bound_flat, bounds, desc) = match &p.inner {
        Inner::Fp8Gemm { a, b }
            if (rows as u128) * (cols as u128) * (a.k as u128) > FULL_BOUND_WORK =>
        {
            let (spans, s) = sample_spans(rows, cols, a.k, 0x5CA1E);
            sampled = Some(s);
            let flat = Flat::new(spans);
            let pairs: Vec<(usize, usize)> = flat
                .spans
                .iter()
                .flat_map(|&(r, c0, c1)| (c0..c1).map(move |c| (r, c)))
                .collect();
            let c = c_view(p.c.as_deref(), rows, cols)?;
            let mut bv = hopper_fp8_error_bound_sample(
                &a.operand()?,
                &b.operand()?,
                c,
                hopper::OutDtype::F32,
                &pairs,
            )?;
            for (v, &(r, c)) in bv.iter_mut().zip(&pairs) {
                let y = exact[r * cols + c];
                let y = if y.is_finite() { y.abs() } else { 0.0 };
                *v += d_dtype.half_ulp(y + *v);
            }
            (flat, bv, HOPPER)
        }
        _ => {
            let (full, desc) = p.bound(&exact, d_dtype)?;
            let flat = Flat::new(written.spans.clone());
            let bv = flat.gather(&full, cols);
            (flat, bv, desc)
        }
    };

    // An exact value whose correctly rounded output overflows is compared as that
    // infinity (the reference writes it), not as a finite value an infinity misses.
    let limit = d_dtype.overflow_threshold();
    let exact_out: Vec<f64> = exact
        .iter()
        .map(|&y| {
            if y.abs() >= limit {
                f64::INFINITY.copysign(y)
            } else {
                y
            }
        })
        .collect();
    let flat_cmp = |flat: &Flat, bound: &Bound| -> DumpResult<Comparison> {
        let x = flat.gather(&cand, cols);
        let y = flat.gather(&exact_out, cols);
        let n = x.len();
        let c = compare(&x, n, &y, n, [1, n], bound).map_err(|e| DumpError::Value {
            name: "d".into(),
            reason: e.to_string(),
        })?;
        Ok(flat.relocate(c))
    };
    let global = flat_cmp(&written, &Bound::Scalar(f64::INFINITY))?;
    let n = bounds.len();
    let bounded = flat_cmp(
        &bound_flat,
        &Bound::PerElement {
            values: &bounds,
            ld: n.max(1),
        },
    )?;
    let calc_diff_threshold = match p.op {
        Op::Bf16GemmNt => 1e-5,
        Op::Fp8Fp4GemmNt => 1e-2,
        _ => 1e-3,
    };
    Ok(CheckReport {
        op: p.op,
        d_shape: p.d_shape.clone(),
        d_dtype,
        written: global.len(),
        global,
        bounded,
        bound: desc,
        sampled,
        calc_diff_threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_spans_visit_every_band_once() {
        let (m, n, k) = (3000, 5000, 1 << 14);
        let (spans, desc) = sample_spans(m, n, k, 1);
        let flat = Flat::new(spans);
        let mut seen = std::collections::HashSet::new();
        let (mut rows, mut cols) = (
            std::collections::BTreeSet::new(),
            std::collections::BTreeSet::new(),
        );
        for &(r, c0, c1) in &flat.spans {
            if c1 - c0 == n {
                rows.insert(r);
            } else {
                cols.insert(c0);
            }
            for c in c0..c1 {
                assert!(seen.insert((r, c)), "({r}, {c}) twice");
            }
        }
        let work = seen.len() as u128 * k as u128;
        assert!(work <= 2 * FULL_BOUND_WORK, "{desc}: {work}");
        // One sampled row per band of M, one sampled column per band of N.
        let (nr, nc) = (rows.len(), cols.len());
        assert!(nr >= 1 && nc >= 1, "{desc}");
        for (i, r) in rows.iter().enumerate() {
            assert!((m * i / nr..m * (i + 1) / nr).contains(r), "{desc}");
        }
        for (i, c) in cols.iter().enumerate() {
            assert!((n * i / nc..n * (i + 1) / nc).contains(c), "{desc}");
        }
        // Flat indices map back to their coordinates.
        let i = flat.starts[flat.spans.len() / 2];
        assert_eq!(
            flat.locate(i),
            (
                flat.spans[flat.spans.len() / 2].0,
                flat.spans[flat.spans.len() / 2].1
            )
        );
    }
}
