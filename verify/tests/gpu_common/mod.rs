//! Shared pieces of the GPU tests: the device, case generation, upload, and the checks.
#![allow(dead_code)]

use std::sync::OnceLock;

use half::bf16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use scalegemm::cudarc::driver::CudaSlice;
use scalegemm::{
    Device, Fp8Operand as GpuOp, Fp8Recipe as GpuRecipe, Fp8Scales, Matrix, MatrixMut,
};
use scalegemm_reference::gemm::{self, Fp8Operand, Fp8Recipe, MatView, OutBuf, OutView, Scales};
use scalegemm_reference::hopper::{self, OutDtype, Promotion};
use scalegemm_reference::quant::{self, Elem, Quantized, ScaleRound};
use scalegemm_verify::metrics::calc_diff;

pub type TestResult = Result<(), String>;

static DEVICE: OnceLock<Result<Device, String>> = OnceLock::new();

fn init() -> &'static Result<Device, String> {
    DEVICE.get_or_init(|| Device::new(0).map_err(|e| e.to_string()))
}

/// The GPU, or `None` when there is none usable (trials are then ignored).
pub fn device() -> Option<&'static Device> {
    init().as_ref().ok()
}

/// Why there is no GPU.
pub fn device_error() -> Result<(), String> {
    init().as_ref().map(|_| ()).map_err(Clone::clone)
}

fn dev() -> Result<&'static Device, String> {
    init().as_ref().map_err(Clone::clone)
}

/// Input distributions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dist {
    /// N(0, 1).
    Normal,
    /// Uniform [0.5, 2): same sign everywhere, the worst case for truncating accumulation.
    SameSign,
    /// N(0, 1) with a few K columns ×300 (activation outlier channels).
    Outliers,
    /// N(0, 1) with every other 128-wide K block of A zero.
    ZeroBlocks,
}

/// One GEMM case: shape, leading dimensions, data.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub lda: usize,
    pub ldb: usize,
    pub ldd: usize,
    pub dist: Dist,
    pub seed: u64,
    /// Pass A's scales already in the TMA-aligned MN-major layout (made by the reference).
    pub pre_transformed_sfa: bool,
}

impl Case {
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        let ld = k.div_ceil(16) * 16;
        Case {
            name: format!("fp8_gemm_nt {m}x{n}x{k}"),
            m,
            n,
            k,
            lda: ld,
            ldb: ld,
            ldd: n,
            dist: Dist::Normal,
            seed: (m * 1_000_003 + n * 1009 + k) as u64,
            pre_transformed_sfa: false,
        }
    }
    fn with(mut self, f: impl FnOnce(&mut Case), tag: &str) -> Self {
        f(&mut self);
        self.name = format!("{} {tag}", self.name);
        self
    }
}

/// DeepGEMM's dense shapes, the edge shapes, adversarial data and proptest shapes.
pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    let nk = [
        (2112, 7168),
        (576, 7168),
        (24576, 1536),
        (32768, 512),
        (7168, 16384),
        (4096, 7168),
        (7168, 2048),
    ];
    for m in [1, 128, 4096] {
        for (n, k) in nk {
            v.push(Case::new(m, n, k));
        }
    }
    v.push(Case::new(7, 2048, 2048));
    v.push(Case::new(1088, 2048, 2048));
    v.push(Case::new(128, 33, 1024).with(|c| c.ldd = 40, "ldd=40"));
    v.push(Case::new(64, 33, 256).with(|c| c.ldd = 33, "ldd=33 (odd, scalar stores)"));
    v.push(Case::new(256, 576, 1152));
    v.push(Case::new(576, 16, 7168));
    v.push(Case::new(200, 300, 200).with(
        |c| (c.lda, c.ldb) = (256, 224),
        "K=200 (partial K block), padded lda/ldb",
    ));
    v.push(Case::new(129, 129, 129).with(|c| c.lda = 160, "K=129"));
    v.push(Case::new(1, 1, 16));
    v.push(Case::new(300, 700, 16));
    v.push(Case::new(1024, 1024, 4096).with(|c| c.dist = Dist::SameSign, "same-sign [0.5,2)"));
    v.push(Case::new(512, 1536, 7168).with(|c| c.dist = Dist::Outliers, "outlier channels x300"));
    v.push(Case::new(384, 640, 1024).with(|c| c.dist = Dist::ZeroBlocks, "zero K blocks"));
    v.push(
        Case::new(333, 1000, 2304)
            .with(|c| c.pre_transformed_sfa = true, "pre-transformed A scales"),
    );
    v.extend(proptest_shapes());
    v
}

/// Shapes drawn by proptest (deterministic runner), biased to block-size edges.
fn proptest_shapes() -> Vec<Case> {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let edge = prop_oneof![
        Just(1usize),
        Just(7),
        Just(15),
        Just(16),
        Just(63),
        Just(64),
        Just(65),
        Just(127),
        Just(128),
        Just(129),
        Just(576),
        1usize..1200,
    ];
    let kdim = prop_oneof![
        Just(16usize),
        Just(128),
        Just(144),
        Just(1152),
        (1usize..100).prop_map(|x| x * 16)
    ];
    let strat = (edge.clone(), edge, kdim, 0usize..3);
    let mut runner = TestRunner::deterministic();
    (0..16)
        .map(|i| {
            let (m, n, k, pad) = strat.new_tree(&mut runner).unwrap().current();
            let mut c = Case::new(m, n, k);
            c.lda += 16 * pad;
            c.ldd = n + pad;
            c.name = format!("proptest #{i}: {m}x{n}x{k} lda={} ldd={}", c.lda, c.ldd);
            c
        })
        .collect()
}

fn gen(rng: &mut ChaCha8Rng, rows: usize, cols: usize, dist: Dist, is_a: bool) -> Vec<f32> {
    let normal = |rng: &mut ChaCha8Rng| -> f32 {
        // Box-Muller.
        let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    };
    let mut x = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            x[r * cols + c] = match dist {
                Dist::Normal => normal(rng),
                Dist::SameSign => rng.random_range(0.5f32..2.0),
                Dist::Outliers => normal(rng) * if is_a && c % 97 == 5 { 300.0 } else { 1.0 },
                Dist::ZeroBlocks => {
                    if is_a && (c / 128) % 2 == 1 {
                        0.0
                    } else {
                        normal(rng)
                    }
                }
            };
        }
    }
    x
}

/// Codes `[rows, ld]` with the padding columns set to E4M3 NaN (0x7F).
fn pad_codes(q: &Quantized, ld: usize) -> Vec<u8> {
    let (rows, cols) = (q.rows, q.cols);
    let mut out = vec![0x7Fu8; rows * ld];
    for r in 0..rows {
        out[r * ld..r * ld + cols].copy_from_slice(&q.codes[r * cols..(r + 1) * cols]);
    }
    out
}

pub struct Problem {
    pub case: Case,
    pub a_f32: Vec<f32>,
    pub b_f32: Vec<f32>,
    pub qa: Quantized,
    pub qb: Quantized,
}

pub fn problem(case: &Case) -> Result<Problem, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(case.seed);
    let a_f32 = gen(&mut rng, case.m, case.k, case.dist, true);
    let b_f32 = gen(&mut rng, case.n, case.k, case.dist, false);
    let qa = quant::per_token_cast(&a_f32, case.m, case.k, 128, Elem::E4M3, ScaleRound::Fp32)
        .map_err(|e| e.to_string())?;
    let qb = quant::per_block_cast(&b_f32, case.n, case.k, 128, Elem::E4M3, ScaleRound::Fp32)
        .map_err(|e| e.to_string())?;
    Ok(Problem {
        case: case.clone(),
        a_f32,
        b_f32,
        qa,
        qb,
    })
}

/// Device copies of a problem's operands.
pub struct Uploaded {
    pub a: CudaSlice<u8>,
    pub b: CudaSlice<u8>,
    pub sfa: CudaSlice<f32>,
    pub sfb: CudaSlice<f32>,
}

pub fn upload(dev: &Device, p: &Problem) -> Result<Uploaded, String> {
    let s = dev.stream();
    let e = |e: scalegemm::cudarc::driver::DriverError| e.to_string();
    let sfa_host = if p.case.pre_transformed_sfa {
        quant::to_tma_aligned_mn_major(&p.qa.scales, 1, p.case.m, p.qa.scale_cols)
            .map_err(|e| e.to_string())?
    } else {
        p.qa.scales.clone()
    };
    Ok(Uploaded {
        a: s.clone_htod(&pad_codes(&p.qa, p.case.lda)).map_err(e)?,
        b: s.clone_htod(&pad_codes(&p.qb, p.case.ldb)).map_err(e)?,
        sfa: s.clone_htod(&sfa_host).map_err(e)?,
        sfb: s.clone_htod(&p.qb.scales).map_err(e)?,
    })
}

pub const POISON: u16 = 0x7FC0; // BF16 NaN

/// Runs the GPU GEMM into a NaN-poisoned `[M, ldd]` buffer and returns it (host copy).
pub fn run_gpu(
    dev: &Device,
    p: &Problem,
    u: &Uploaded,
    cfg: Option<scalegemm::Fp8GemmConfig>,
) -> Result<Vec<bf16>, String> {
    let c = &p.case;
    let s = dev.stream();
    let e = |e: scalegemm::Error| e.to_string();
    let a = GpuOp::new(
        Matrix::new(u.a.as_view(), c.m, c.k, c.lda).map_err(e)?,
        sfa_of(p, u)?,
        GpuRecipe::PerToken,
    )
    .map_err(e)?;
    let b = GpuOp::new(
        Matrix::new(u.b.as_view(), c.n, c.k, c.ldb).map_err(e)?,
        Fp8Scales::RowMajor(
            Matrix::new(
                u.sfb.as_view(),
                p.qb.scale_rows,
                p.qb.scale_cols,
                p.qb.scale_cols,
            )
            .map_err(e)?,
        ),
        GpuRecipe::PerBlock,
    )
    .map_err(e)?;
    let mut d = s
        .clone_htod(&vec![bf16::from_bits(POISON); (c.m * c.ldd).max(1)])
        .map_err(|e| e.to_string())?;
    {
        let mut dv = MatrixMut::new(d.as_view_mut(), c.m, c.n, c.ldd).map_err(e)?;
        match cfg {
            None => scalegemm::fp8_gemm_nt(dev, &a, &b, &mut dv).map_err(e)?,
            Some(cfg) => {
                scalegemm::fp8_gemm_nt_with_config(dev, &a, &b, &mut dv, cfg).map_err(e)?
            }
        }
    }
    let out = s.clone_dtoh(&d).map_err(|e| e.to_string())?;
    dev.synchronize().map_err(e)?;
    Ok(out)
}

fn sfa_of<'a>(p: &Problem, u: &'a Uploaded) -> Result<Fp8Scales<'a>, String> {
    let e = |e: scalegemm::Error| e.to_string();
    Ok(if p.case.pre_transformed_sfa {
        Fp8Scales::TmaAlignedMnMajor(u.sfa.as_view())
    } else {
        Fp8Scales::RowMajor(
            Matrix::new(
                u.sfa.as_view(),
                p.qa.scale_rows,
                p.qa.scale_cols,
                p.qa.scale_cols,
            )
            .map_err(e)?,
        )
    })
}

fn ref_operands<'a>(
    p: &'a Problem,
    abs_a: &'a [u8],
    abs_b: &'a [u8],
    abs: bool,
) -> Result<(Fp8Operand<'a>, Fp8Operand<'a>), String> {
    let c = &p.case;
    let e = |e: scalegemm_reference::Error| e.to_string();
    let (ca, cb) = if abs {
        (abs_a, abs_b)
    } else {
        (&p.qa.codes[..], &p.qb.codes[..])
    };
    let a = Fp8Operand::new(
        MatView::k_major(ca, c.m, c.k, c.k).map_err(e)?,
        Scales::F32(
            MatView::k_major(
                &p.qa.scales,
                p.qa.scale_rows,
                p.qa.scale_cols,
                p.qa.scale_cols,
            )
            .map_err(e)?,
        ),
        Fp8Recipe::PerToken,
    )
    .map_err(e)?;
    let b = Fp8Operand::new(
        MatView::k_major(cb, c.n, c.k, c.k).map_err(e)?,
        Scales::F32(
            MatView::k_major(
                &p.qb.scales,
                p.qb.scale_rows,
                p.qb.scale_cols,
                p.qb.scale_cols,
            )
            .map_err(e)?,
        ),
        Fp8Recipe::PerBlock,
    )
    .map_err(e)?;
    Ok((a, b))
}

/// The checks of the module docs; returns a one-line summary.
pub fn check(p: &Problem, d: &[bf16]) -> Result<String, String> {
    let c = &p.case;
    let (m, n) = (c.m, c.n);
    // 1. Padding untouched, every element written.
    for r in 0..m {
        for j in 0..c.ldd {
            let v = d[r * c.ldd + j];
            if j >= n && v.to_bits() != POISON {
                return Err(format!("padding D[{r}, {j}] was written ({v})"));
            }
            if j < n && !v.to_f32().is_finite() {
                return Err(format!(
                    "D[{r}, {j}] = {v} (not written, or a NaN/inf result)"
                ));
            }
        }
    }
    let got = |r: usize, j: usize| d[r * c.ldd + j].to_f32() as f64;
    // 2. Exact product of the quantized inputs, and Σ|a·b·sa·sb|.
    let abs_a: Vec<u8> = p.qa.codes.iter().map(|&x| x & 0x7F).collect();
    let abs_b: Vec<u8> = p.qb.codes.iter().map(|&x| x & 0x7F).collect();
    let (ra, rb) = ref_operands(p, &abs_a, &abs_b, false)?;
    let (aa, ab) = ref_operands(p, &abs_a, &abs_b, true)?;
    let mut exact = vec![0.0f64; m * n];
    let mut sabs = vec![0.0f64; m * n];
    let e = |e: scalegemm_reference::Error| e.to_string();
    gemm::gemm(
        &ra.into(),
        &rb.into(),
        None,
        &mut OutView::new(OutBuf::F64(&mut exact), m, n, n).map_err(e)?,
    )
    .map_err(e)?;
    gemm::gemm(
        &aa.into(),
        &ab.into(),
        None,
        &mut OutView::new(OutBuf::F64(&mut sabs), m, n, n).map_err(e)?,
    )
    .map_err(e)?;
    // 3. Coarse bound on every element.
    let coarse = (0..m * n).into_par_iter().find_first(|&i| {
        let (r, j) = (i / n, i % n);
        let bound = 2f64.powi(-8) * exact[i].abs() + 2f64.powi(-11) * sabs[i] + 1e-30;
        (got(r, j) - exact[i]).abs() > bound
    });
    if let Some(i) = coarse {
        let (r, j) = (i / n, i % n);
        return Err(format!(
            "D[{r}, {j}] = {} but exact {} (Σ|ab| {}): outside the coarse bound",
            got(r, j),
            exact[i],
            sabs[i]
        ));
    }
    // 4. The model's per-element bound: everywhere when affordable, else on a sample.
    let (ra, rb) = ref_operands(p, &abs_a, &abs_b, false)?;
    let full = (m as u64) * (n as u64) * (c.k as u64) <= 1 << 31;
    let pairs: Vec<(usize, usize)> = if full {
        (0..m).flat_map(|r| (0..n).map(move |j| (r, j))).collect()
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(c.seed ^ 0x5eed);
        let rows: Vec<usize> = [0, m - 1]
            .into_iter()
            .chain((0..2).map(|_| rng.random_range(0..m)))
            .collect();
        let cols: Vec<usize> = [0, n - 1]
            .into_iter()
            .chain((0..2).map(|_| rng.random_range(0..n)))
            .collect();
        let mut v: Vec<(usize, usize)> = Vec::new();
        for &r in &rows {
            v.extend((0..n).step_by(n.div_ceil(2048)).map(|j| (r, j)));
        }
        for &j in &cols {
            v.extend((0..m).step_by(m.div_ceil(2048)).map(|r| (r, j)));
        }
        v
    };
    let bounds =
        hopper::hopper_fp8_error_bound_sample(&ra, &rb, None, OutDtype::Bf16, &pairs).map_err(e)?;
    let mut worst = (0.0f64, 0usize);
    for (i, (&(r, j), &bd)) in pairs.iter().zip(&bounds).enumerate() {
        let err = (got(r, j) - exact[r * n + j]).abs();
        if err > bd {
            return Err(format!(
                "D[{r}, {j}] = {} but exact {}: error {err:e} > model bound {bd:e}",
                got(r, j),
                exact[r * n + j]
            ));
        }
        if bd > 0.0 && err / bd > worst.0 {
            worst = (err / bd, i);
        }
    }
    // 5. Bitwise agreement with the Hopper model on (up to 4096 of) the checked elements.
    let model_pairs: Vec<(usize, usize)> = pairs
        .iter()
        .step_by(pairs.len().div_ceil(4096).max(1))
        .copied()
        .collect();
    let model =
        hopper::hopper_fp8_sample(&ra, &rb, None, Promotion::PerBlock, &model_pairs).map_err(e)?;
    let same = model_pairs
        .iter()
        .zip(&model)
        .filter(|(&(r, j), &v)| {
            scalegemm_reference::format::bf16::from_f32(v).to_bits() == d[r * c.ldd + j].to_bits()
        })
        .count();
    // 6. calc_diff against the unquantized product on sampled rows (normal-like data).
    let rows: Vec<usize> = (0..m).step_by(m.div_ceil(8)).collect();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for &r in &rows {
        for j in 0..n {
            let dot: f64 = (0..c.k)
                .map(|t| p.a_f32[r * c.k + t] as f64 * p.b_f32[j * c.k + t] as f64)
                .sum();
            x.push(got(r, j));
            y.push(dot);
        }
    }
    let diff = calc_diff(&x, &y).map_err(|e| e.to_string())?;
    // calc_diff is a statistic: with a handful of elements one unlucky quantization
    // dominates (1×1×16 gives 4e-3), so DeepGEMM's 1e-3 applies from 256 elements on.
    if c.dist != Dist::SameSign && x.len() >= 256 && diff >= 1e-3 {
        return Err(format!(
            "calc_diff vs the unquantized product = {diff:e} ≥ 1e-3"
        ));
    }
    Ok(format!(
        "{} elements in the model bound ({}; worst err/bound {:.3}), {}/{} bit-equal to the Hopper model, calc_diff {:.2e}",
        pairs.len(),
        if full { "all" } else { "sampled" },
        worst.0,
        same,
        model_pairs.len(),
        diff
    ))
}

pub fn run_case(case: &Case) -> TestResult {
    let dev = dev()?;
    let p = problem(case)?;
    let u = upload(dev, &p)?;
    let t = std::time::Instant::now();
    let d1 = run_gpu(dev, &p, &u, None)?;
    let first = t.elapsed().as_secs_f64();
    let d2 = run_gpu(dev, &p, &u, None)?;
    if d1.iter().zip(&d2).any(|(x, y)| x.to_bits() != y.to_bits()) {
        return Err("two launches on the same input differ".into());
    }
    let summary = check(&p, &d1)?;
    eprintln!("  {}: {summary} (first call {:.3} s)", case.name, first);
    Ok(())
}

/// Every configuration the heuristic can pick, on awkward shapes: 200×333×400 (ldd 336)
/// for single CTAs; for CTA pairs (which need an even number of N-blocks) 200×(6·BLOCK_N−5)×400,
/// so the last tile of the last pair is partial.
pub fn all_configs_case() -> TestResult {
    let dev = dev()?;
    let single = Case::new(200, 333, 400).with(|c| c.ldd = 336, "all configs");
    let p1 = problem(&single)?;
    let u1 = upload(dev, &p1)?;
    for cfg in scalegemm::gemm::config::all_configs() {
        if cfg.cluster == 1 {
            let d = run_gpu(dev, &p1, &u1, Some(cfg))?;
            check(&p1, &d).map_err(|e| format!("{cfg:?}: {e}"))?;
        } else {
            let case = Case::new(200, 6 * cfg.block_n as usize - 5, 400);
            let p = problem(&case)?;
            let u = upload(dev, &p)?;
            let d = run_gpu(dev, &p, &u, Some(cfg))?;
            check(&p, &d).map_err(|e| format!("{cfg:?} on {}: {e}", case.name))?;
        }
    }
    Ok(())
}

/// The GPU scale transform equals the host one and the reference's layout.
pub fn check_sf_transform() -> TestResult {
    let dev = dev()?;
    for &(rows, cols, ld) in &[
        (1usize, 1usize, 1usize),
        (7, 3, 5),
        (129, 56, 56),
        (4096, 56, 60),
    ] {
        let host: Vec<f32> = (0..rows * ld).map(|i| i as f32 * 0.5 + 1.0).collect();
        let buf = dev.stream().clone_htod(&host).map_err(|e| e.to_string())?;
        let m = Matrix::new(buf.as_view(), rows, cols, ld).map_err(|e| e.to_string())?;
        let gpu =
            scalegemm::layout::to_tma_aligned_mn_major_gpu(dev, &m).map_err(|e| e.to_string())?;
        let gpu = dev.stream().clone_dtoh(&gpu).map_err(|e| e.to_string())?;
        let host_t = scalegemm::layout::to_tma_aligned_mn_major(&host, rows, cols, ld)
            .map_err(|e| e.to_string())?;
        let dense: Vec<f32> = (0..rows)
            .flat_map(|r| host[r * ld..r * ld + cols].to_vec())
            .collect();
        let refl =
            quant::to_tma_aligned_mn_major(&dense, 1, rows, cols).map_err(|e| e.to_string())?;
        if gpu != host_t
            || host_t[..] != refl[..host_t.len().min(refl.len())]
            || host_t.len() != refl.len()
        {
            return Err(format!(
                "{rows}x{cols} ld {ld}: GPU, host and reference layouts differ"
            ));
        }
    }
    Ok(())
}

/// Typed errors, before any launch.
pub fn check_errors() -> TestResult {
    use scalegemm::Error;
    let dev = dev()?;
    let s = dev.stream();
    let codes = s.alloc_zeros::<u8>(64 * 160).map_err(|e| e.to_string())?;
    let sf = s.alloc_zeros::<f32>(64 * 2).map_err(|e| e.to_string())?;
    let mut out = s.alloc_zeros::<bf16>(64 * 64).map_err(|e| e.to_string())?;
    let e = |e: Error| e.to_string();
    let sfm = |rows, cols| Matrix::new(sf.as_view(), rows, cols, cols);
    // Wrong scale shape.
    let r = GpuOp::new(
        Matrix::new(codes.as_view(), 64, 144, 160).map_err(e)?,
        Fp8Scales::RowMajor(sfm(64, 1).map_err(e)?),
        GpuRecipe::PerToken,
    );
    if !matches!(r, Err(Error::Scale(_))) {
        return Err(format!("wrong scale shape: {r:?}"));
    }
    // Too short a buffer.
    if !matches!(
        Matrix::new(codes.as_view(), 65, 160, 160),
        Err(Error::Shape(_))
    ) {
        return Err("short buffer accepted".into());
    }
    // Leading dimension not a multiple of 16 bytes.
    let a = GpuOp::new(
        Matrix::new(codes.as_view(), 64, 144, 150).map_err(e)?,
        Fp8Scales::RowMajor(sfm(64, 2).map_err(e)?),
        GpuRecipe::PerToken,
    )
    .map_err(e)?;
    let b = GpuOp::new(
        Matrix::new(codes.as_view(), 64, 144, 160).map_err(e)?,
        Fp8Scales::RowMajor(sfm(1, 2).map_err(e)?),
        GpuRecipe::PerBlock,
    )
    .map_err(e)?;
    let mut d = MatrixMut::new(out.as_view_mut(), 64, 64, 64).map_err(e)?;
    let r = scalegemm::fp8_gemm_nt(dev, &a, &b, &mut d);
    if !matches!(r, Err(Error::Alignment(_))) {
        return Err(format!("lda 150: {r:?}"));
    }
    // Recipes swapped.
    let r = scalegemm::fp8_gemm_nt(dev, &b, &b, &mut d);
    if !matches!(r, Err(Error::Scale(_))) {
        return Err(format!("per-block A: {r:?}"));
    }
    // D of the wrong shape.
    let a = GpuOp::new(
        Matrix::new(codes.as_view(), 64, 144, 160).map_err(e)?,
        Fp8Scales::RowMajor(sfm(64, 2).map_err(e)?),
        GpuRecipe::PerToken,
    )
    .map_err(e)?;
    let mut d = MatrixMut::new(out.as_view_mut(), 64, 63, 64).map_err(e)?;
    let r = scalegemm::fp8_gemm_nt(dev, &a, &b, &mut d);
    if !matches!(r, Err(Error::Shape(_))) {
        return Err(format!("D 64x63: {r:?}"));
    }
    Ok(())
}
