//! Measuring one case: quantization error per recipe, the Hopper model's error on a
//! sample, and every GPU kernel's error.

use std::borrow::Cow;
use std::time::Instant;

use faer::{linalg::matmul::matmul, Accum, MatMut, MatRef, Par};
use half::bf16;
use rayon::prelude::*;
use scalegemm_reference::format::bf16 as bf16_fmt;
use scalegemm_reference::gemm::{
    gemm, Fp4Group, Fp4Operand, Fp8Recipe, MatView, OutBuf, OutView, Scales,
};
use scalegemm_reference::hopper::{
    self, hopper_fp8_error_bound, hopper_fp8_error_bound_sample, hopper_fp8_sample, Promotion,
};
use scalegemm_reference::quant::{
    pack_e2m1, per_block_cast, per_token_cast, ue8m0_codes_of, Elem, ScaleRound,
};

use super::cases::{generate, CaseSpec};
use super::kernel::{Fp8GemmNt, Fp8GemmProblem};
use super::{CaseReport, KernelRow, Options, QuantRow, Worst};
use crate::dump::{regrid, sample_spans, Fp8Mat, ScaleData, FULL_BOUND_WORK};
use crate::metrics::{compare, compare_bf16, Bound, Comparison};

/// A quantization recipe of the report. A is always FP8 E4M3 per-token 1×128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipe {
    /// DeepSeek 1D2D: A 1×128, B 128×128, FP32 scales.
    Fp8Fp32,
    /// 1D2D with UE8M0 (power-of-two, rounded up) scales.
    Fp8Ue8m0,
    /// B FP4 E2M1 with a UE8M0 scale per 1×32 (OCP MX); A's scales UE8M0.
    Fp4G32,
    /// B FP4 E2M1 with a UE8M0 scale per 1×128; A's scales UE8M0.
    Fp4G128,
}

impl Recipe {
    /// Every recipe, in report order.
    pub const ALL: [Recipe; 4] = [
        Recipe::Fp8Fp32,
        Recipe::Fp8Ue8m0,
        Recipe::Fp4G32,
        Recipe::Fp4G128,
    ];

    /// The name used in tables and report.json.
    pub fn name(self) -> &'static str {
        match self {
            Recipe::Fp8Fp32 => "fp8 1x128.128x128 fp32",
            Recipe::Fp8Ue8m0 => "fp8 1x128.128x128 ue8m0",
            Recipe::Fp4G32 => "fp8 1x128.fp4 1x32 ue8m0",
            Recipe::Fp4G128 => "fp8 1x128.fp4 1x128 ue8m0",
        }
    }

    /// DeepGEMM's calc_diff threshold (DESIGN §3.4): 1e-3 FP8, 1e-2 one FP4 side.
    pub fn threshold(self) -> f64 {
        match self {
            Recipe::Fp8Fp32 | Recipe::Fp8Ue8m0 => 1e-3,
            Recipe::Fp4G32 | Recipe::Fp4G128 => 1e-2,
        }
    }

    fn is_fp8(self) -> bool {
        matches!(self, Recipe::Fp8Fp32 | Recipe::Fp8Ue8m0)
    }
}

/// B of a quantized pair.
enum BQuant {
    Fp8(Fp8Mat),
    Fp4 {
        packed: Vec<u8>,
        sf: Vec<u8>,
        group: Fp4Group,
    },
}

/// A quantized (A, B) pair.
struct Quant {
    a: Fp8Mat,
    b: BQuant,
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn quantize(
    r: Recipe,
    a: &[f32],
    b: &[f32],
    m: usize,
    n: usize,
    k: usize,
) -> Result<Quant, String> {
    let round = if r == Recipe::Fp8Fp32 {
        ScaleRound::Fp32
    } else {
        ScaleRound::Ue8m0
    };
    let qa = per_token_cast(a, m, k, 128, Elem::E4M3, round).map_err(err)?;
    let am = Fp8Mat {
        codes: qa.codes,
        rows: m,
        k,
        scales: ScaleData::F32(qa.scales),
        recipe: Fp8Recipe::PerToken,
    };
    let bq = if r.is_fp8() {
        let qb = per_block_cast(b, n, k, 128, Elem::E4M3, round).map_err(err)?;
        BQuant::Fp8(Fp8Mat {
            codes: qb.codes,
            rows: n,
            k,
            scales: ScaleData::F32(qb.scales),
            recipe: Fp8Recipe::PerBlock,
        })
    } else {
        let (g, group) = if r == Recipe::Fp4G32 {
            (32, Fp4Group::G32)
        } else {
            (128, Fp4Group::G128)
        };
        let qb = per_token_cast(b, n, k, g, Elem::E2M1, ScaleRound::Ue8m0).map_err(err)?;
        BQuant::Fp4 {
            packed: pack_e2m1(&qb.codes, n, k).map_err(err)?,
            sf: ue8m0_codes_of(&qb.scales).map_err(err)?,
            group,
        }
    };
    Ok(Quant { a: am, b: bq })
}

impl Quant {
    /// The exact product (f64, within K·2⁻⁵³·Σ|a·b|) of the quantized inputs.
    fn exact(&self, n: usize) -> Result<Vec<f64>, String> {
        let (m, k) = (self.a.rows, self.a.k);
        let mut d = vec![0.0f64; m * n];
        let a = self.a.operand().map_err(err)?;
        let mut out = OutView::new(OutBuf::F64(&mut d), m, n, n).map_err(err)?;
        match &self.b {
            BQuant::Fp8(b) => gemm(&a.into(), &b.operand().map_err(err)?.into(), None, &mut out),
            BQuant::Fp4 { packed, sf, group } => {
                let cols = k.div_ceil(group.width());
                let sv = Scales::Ue8m0(MatView::k_major(sf, n, cols, cols).map_err(err)?);
                let b = Fp4Operand::new(packed, n, k, k / 2, sv, *group).map_err(err)?;
                gemm(&a.into(), &b.into(), None, &mut out)
            }
        }
        .map_err(err)?;
        Ok(d)
    }

    /// Operands of the Hopper FP8 model: FP8 as is; FP4 widened to E4M3 with one
    /// promoted block per scale group.
    fn model_operands(&self, n: usize) -> (Cow<'_, Fp8Mat>, Cow<'_, Fp8Mat>) {
        match &self.b {
            BQuant::Fp8(b) => (Cow::Borrowed(&self.a), Cow::Borrowed(b)),
            BQuant::Fp4 { packed, sf, group } => {
                let (a2, b2) = regrid(&self.a, packed, sf, n, group.width());
                (Cow::Owned(a2), Cow::Owned(b2))
            }
        }
    }
}

/// `A·Bᵀ` of f32 inputs in f64 (products exact, sums within K·2⁻⁵³·Σ|a·b|), `[m, n]`.
fn product_f64(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
    let mut t = vec![0.0f64; m * n];
    if m == 0 || n == 0 || k == 0 {
        return t;
    }
    let a64: Vec<f64> = a.par_iter().map(|&x| x as f64).collect();
    let b64: Vec<f64> = b.par_iter().map(|&x| x as f64).collect();
    matmul(
        MatMut::from_row_major_slice_mut(&mut t, m, n),
        Accum::Replace,
        MatRef::from_row_major_slice(&a64, m, k),
        MatRef::from_column_major_slice(&b64, k, n),
        1.0,
        Par::rayon(0),
    );
    t
}

/// `s` indices spread evenly over `0..len`, first and last included (all when `len <= s`).
fn spread(len: usize, s: usize) -> Vec<usize> {
    if len <= s {
        return (0..len).collect();
    }
    if s == 1 {
        return vec![0];
    }
    (0..s).map(|i| i * (len - 1) / (s - 1)).collect()
}

/// The inputs of one case: built-in (generated when run) or given data.
pub(crate) enum CaseInput {
    /// A built-in case, generated from its spec and the seed.
    Builtin { spec: CaseSpec, seed: u64 },
    /// Given A `[m, k]` and B `[n, k]` (real weights).
    Data {
        name: String,
        group: &'static str,
        m: usize,
        n: usize,
        k: usize,
        a: Vec<f32>,
        b: Vec<f32>,
        desc: String,
    },
}

impl CaseInput {
    pub(crate) fn name(&self) -> &str {
        match self {
            CaseInput::Builtin { spec, .. } => &spec.name,
            CaseInput::Data { name, .. } => name,
        }
    }
}

/// The built-in cases as inputs, each with its own seed derived from `seed`.
pub(crate) fn builtin_inputs(specs: &[CaseSpec], seed: u64) -> Vec<CaseInput> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| CaseInput::Builtin {
            spec: s.clone(),
            seed: seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
        })
        .collect()
}

/// Runs every recipe and kernel on one case; failures are recorded in the case.
pub(crate) fn run_case(
    inp: &CaseInput,
    opts: &Options,
    backends: &[Box<dyn Fp8GemmNt>],
    step: &dyn Fn(&str),
) -> CaseReport {
    let (group, m, n, k, desc) = match inp {
        CaseInput::Builtin { spec, .. } => (
            spec.group,
            spec.m,
            spec.n,
            spec.k,
            spec.data.describe().to_string(),
        ),
        CaseInput::Data {
            group,
            m,
            n,
            k,
            desc,
            ..
        } => (*group, *m, *n, *k, desc.clone()),
    };
    let mut rep = CaseReport {
        name: inp.name().to_string(),
        group: group.to_string(),
        m,
        n,
        k,
        data: desc,
        error: None,
        quantization: Vec::new(),
        kernels: Vec::new(),
    };
    step("generating data");
    let (a, b): (Cow<[f32]>, Cow<[f32]>) = match inp {
        CaseInput::Builtin { spec, seed } => {
            let (a, b) = generate(spec, *seed);
            (Cow::Owned(a), Cow::Owned(b))
        }
        CaseInput::Data { a, b, .. } => (Cow::Borrowed(a), Cow::Borrowed(b)),
    };
    if let Err(e) = measure(&mut rep, &a, &b, opts, backends, step) {
        rep.error = Some(e);
    }
    rep
}

fn measure(
    rep: &mut CaseReport,
    a: &[f32],
    b: &[f32],
    opts: &Options,
    backends: &[Box<dyn Fp8GemmNt>],
    step: &dyn Fn(&str),
) -> Result<(), String> {
    let (m, n, k) = (rep.m, rep.n, rep.k);
    step("unquantized product");
    let p = product_f64(a, b, m, n, k);
    for recipe in Recipe::ALL {
        step(&format!("{}: quantize, exact product", recipe.name()));
        let t = Instant::now();
        let q = quantize(recipe, a, b, m, n, k)?;
        let exact = q.exact(n)?;
        let time_s = t.elapsed().as_secs_f64();
        let c = compare(&exact, n, &p, n, [m, n], &Bound::Scalar(f64::INFINITY)).map_err(err)?;
        rep.quantization.push(QuantRow {
            recipe: recipe.name().into(),
            calc_diff: c.calc_diff,
            sqnr_db: c.sqnr_db,
            max_abs: c.max_abs,
            max_rel: c.max_rel,
            threshold: recipe.threshold(),
            above_threshold: c.calc_diff.is_nan() || c.calc_diff > recipe.threshold(),
            time_s,
        });
        step(&format!("{}: Hopper model on a sample", recipe.name()));
        rep.kernels
            .push(model_row(&q, &exact, n, opts.sample, recipe)?);
        if recipe.is_fp8() {
            for be in backends {
                step(&format!("{}: {}", recipe.name(), be.name()));
                rep.kernels
                    .push(gpu_row(be.as_ref(), &q, &exact, n, recipe));
            }
        }
    }
    Ok(())
}

/// A [`KernelRow`] from a comparison over `[1, len]` whose column `i` is element
/// `at(i)` of D.
fn kernel_row(
    kernel: String,
    recipe: Recipe,
    (global, bounded): (&Comparison, &Comparison),
    at: &dyn Fn(usize) -> (usize, usize),
    sampled: Option<String>,
    time_s: f64,
    ratios: Vec<f64>,
) -> KernelRow {
    let outside = bounded.outside_bound + global.nan_mismatches + global.inf_mismatches;
    let checked = bounded.len();
    let inside_pct = if checked == 0 {
        100.0
    } else {
        100.0 * (checked - bounded.outside_bound) as f64 / checked as f64
    };
    KernelRow {
        kernel,
        recipe: recipe.name().into(),
        elements: global.len(),
        checked,
        sampled,
        calc_diff: global.calc_diff,
        max_abs: global.max_abs,
        max_rel: global.max_rel,
        inside_pct,
        outside,
        worst: bounded.worst.map(|w| {
            let (row, col) = at(w.col);
            Worst {
                row,
                col,
                value: w.candidate,
                exact: w.reference,
                diff: w.diff,
                bound: w.bound,
                ratio: w.ratio(),
            }
        }),
        time_s,
        ok: outside == 0,
        error: None,
        ratios,
    }
}

/// The exact values (row-major, `n` columns) at the sampled `(row, col)` pairs.
fn exact_at(exact: &[f64], n: usize, pairs: &[(usize, usize)]) -> Vec<f64> {
    pairs.iter().map(|&(r, c)| exact[r * n + c]).collect()
}

/// Compares sampled kernel values `x` with exact values `y` under per-element `bound`
/// (all three in the order of the sampled pairs, as one row).
fn compare_sampled(x: &[f64], y: &[f64], bound: &[f64]) -> Result<Comparison, String> {
    let len = x.len();
    let per_element = Bound::PerElement {
        values: bound,
        ld: len.max(1),
    };
    compare(x, len, y, len, [1, len], &per_element).map_err(err)
}

fn ratios_of(x: &[f64], y: &[f64], bound: &[f64]) -> Vec<f64> {
    x.iter()
        .zip(y)
        .zip(bound)
        .map(|((x, y), b)| {
            let d = (x - y).abs();
            if d == 0.0 {
                0.0
            } else if d.is_nan() {
                f64::INFINITY
            } else {
                d / b
            }
        })
        .collect()
}

/// The Hopper model (BF16 output) on `s × s` sampled elements against the exact product.
fn model_row(
    q: &Quant,
    exact: &[f64],
    n: usize,
    s: usize,
    recipe: Recipe,
) -> Result<KernelRow, String> {
    let m = q.a.rows;
    let (am, bm) = q.model_operands(n);
    let (ao, bo) = (am.operand().map_err(err)?, bm.operand().map_err(err)?);
    let (rows, cols) = (spread(m, s), spread(n, s));
    let pairs: Vec<(usize, usize)> = rows
        .iter()
        .flat_map(|&r| cols.iter().map(move |&c| (r, c)))
        .collect();
    let t = Instant::now();
    let vals = hopper_fp8_sample(&ao, &bo, None, Promotion::PerBlock, &pairs).map_err(err)?;
    let time_s = t.elapsed().as_secs_f64();
    let bound = hopper_fp8_error_bound_sample(&ao, &bo, None, hopper::OutDtype::Bf16, &pairs)
        .map_err(err)?;
    let x: Vec<f64> = vals
        .iter()
        .map(|&v| bf16_fmt::from_f32(v).to_f64())
        .collect();
    let y = exact_at(exact, n, &pairs);
    let c = compare_sampled(&x, &y, &bound)?;
    let sampled = Some(format!(
        "{} rows x {} columns spread evenly (first and last included)",
        rows.len(),
        cols.len()
    ));
    let ratios = ratios_of(&x, &y, &bound);
    Ok(kernel_row(
        "hopper-model".into(),
        recipe,
        (&c, &c),
        &|i| pairs[i],
        sampled,
        time_s,
        ratios,
    ))
}

/// One GPU kernel on an FP8 recipe: global metrics on all of D, the bound on all of it
/// when `M·N·K <= FULL_BOUND_WORK`, else on sampled rows and columns.
fn gpu_row(be: &dyn Fp8GemmNt, q: &Quant, exact: &[f64], n: usize, recipe: Recipe) -> KernelRow {
    let (m, k) = (q.a.rows, q.a.k);
    let failed = |e: String, time_s: f64| KernelRow {
        kernel: be.name(),
        recipe: recipe.name().into(),
        elements: 0,
        checked: 0,
        sampled: None,
        calc_diff: f64::NAN,
        max_abs: f64::NAN,
        max_rel: f64::NAN,
        inside_pct: 0.0,
        outside: 0,
        worst: None,
        time_s,
        ok: false,
        error: Some(e),
        ratios: Vec::new(),
    };
    let BQuant::Fp8(bm) = &q.b else {
        return failed("not an FP8 recipe".into(), 0.0);
    };
    let f32s = |s: &ScaleData| match s {
        ScaleData::F32(v) => v.clone(),
        ScaleData::Ue8m0(v) => v
            .iter()
            .map(|&c| scalegemm_reference::format::ue8m0::decode(c))
            .collect(),
    };
    let prob = Fp8GemmProblem {
        m,
        n,
        k,
        a: q.a.codes.clone(),
        sfa: f32s(&q.a.scales),
        b: bm.codes.clone(),
        sfb: f32s(&bm.scales),
    };
    let t = Instant::now();
    let res = be.run(&prob);
    let time_s = t.elapsed().as_secs_f64();
    let d: Vec<bf16> = match res {
        Ok(d) if d.len() == m * n => d,
        Ok(d) => {
            return failed(
                format!("returned {} elements, expected {}", d.len(), m * n),
                time_s,
            )
        }
        Err(e) => return failed(e, time_s),
    };
    let run = || -> Result<KernelRow, String> {
        let inf = Bound::Scalar(f64::INFINITY);
        let global = compare_bf16(&d, n, exact, n, [m, n], &inf).map_err(err)?;
        let (ao, bo) = (q.a.operand().map_err(err)?, bm.operand().map_err(err)?);
        let work = m as u128 * n as u128 * k as u128;
        let (pairs, sampled) = if work <= FULL_BOUND_WORK {
            (
                (0..m)
                    .flat_map(|r| (0..n).map(move |c| (r, c)))
                    .collect::<Vec<_>>(),
                None,
            )
        } else {
            let (spans, desc) = sample_spans(m, n, k, 0x5CA1E);
            let pairs = spans
                .iter()
                .flat_map(|&(r, c0, c1)| (c0..c1).map(move |c| (r, c)))
                .collect();
            (pairs, Some(desc))
        };
        let bound = if sampled.is_none() {
            hopper_fp8_error_bound(&ao, &bo, None, hopper::OutDtype::Bf16)
        } else {
            hopper_fp8_error_bound_sample(&ao, &bo, None, hopper::OutDtype::Bf16, &pairs)
        }
        .map_err(err)?;
        let x: Vec<f64> = pairs.iter().map(|&(r, c)| d[r * n + c].to_f64()).collect();
        let y = exact_at(exact, n, &pairs);
        let bounded = compare_sampled(&x, &y, &bound)?;
        let ratios = ratios_of(&x, &y, &bound);
        Ok(kernel_row(
            be.name(),
            recipe,
            (&global, &bounded),
            &|i| pairs[i],
            sampled,
            time_s,
            ratios,
        ))
    };
    run().unwrap_or_else(|e| failed(e, time_s))
}
