//! Shared pieces of the GPU tests: the device, case generation, upload, and the checks.
#![allow(dead_code)]

use std::fmt;
use std::sync::OnceLock;

use half::bf16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use scalegemm::cudarc::driver::CudaSlice;
use scalegemm::gemm::config::{all_configs, MAX_BLOCK_N_WITH_C};
use scalegemm::{
    Accumulate, Device, Fp8GemmConfig, Fp8Operand as GpuOp, Fp8Recipe as GpuRecipe, Fp8Scales,
    Matrix, MatrixMut,
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

fn se(e: scalegemm::Error) -> String {
    e.to_string()
}

fn re(e: scalegemm_reference::Error) -> String {
    e.to_string()
}

fn de(e: scalegemm::cudarc::driver::DriverError) -> String {
    e.to_string()
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

/// Where the FP32 accumulation input C of `D = C + A·Bᵀ` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CMode {
    /// No C (`fp8_gemm_nt`).
    None,
    /// `Accumulate::From`: C in its own buffer, with its own leading dimension.
    From,
    /// `Accumulate::InPlace`: C is D's prior content.
    InPlace,
}

/// What a case computes: B's recipe, D's dtype and C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// `PerBlock` (128×128, "1D2D") or `PerToken` (1×128, "1D1D").
    pub b: GpuRecipe,
    pub out: OutDtype,
    /// Only with `out == F32`.
    pub c: CMode,
}

impl Variant {
    /// The DeepSeek-V3 inference GEMM: 1D2D, BF16 out, no C.
    pub const DEFAULT: Variant = Variant {
        b: GpuRecipe::PerBlock,
        out: OutDtype::Bf16,
        c: CMode::None,
    };

    /// Every variant but [`Variant::DEFAULT`] (all host-visible combinations: C only with
    /// FP32 output).
    pub fn others() -> Vec<Variant> {
        let mut v = Vec::new();
        for b in [GpuRecipe::PerBlock, GpuRecipe::PerToken] {
            for (out, c) in [
                (OutDtype::Bf16, CMode::None),
                (OutDtype::F32, CMode::None),
                (OutDtype::F32, CMode::From),
                (OutDtype::F32, CMode::InPlace),
            ] {
                let x = Variant { b, out, c };
                if x != Variant::DEFAULT {
                    v.push(x);
                }
            }
        }
        v
    }

    /// Short name: `1d2d bf16`, `1d1d f32`, `1d2d f32+C` (C from its own buffer),
    /// `1d1d f32+=C` (C in place).
    pub fn tag(&self) -> String {
        let b = match self.b {
            GpuRecipe::PerBlock => "1d2d",
            GpuRecipe::PerToken => "1d1d",
        };
        let out = match self.out {
            OutDtype::Bf16 => "bf16",
            OutDtype::F32 => "f32",
        };
        let c = match self.c {
            CMode::None => "",
            CMode::From => "+C",
            CMode::InPlace => "+=C",
        };
        format!("{b} {out}{c}")
    }

    /// The kernel variant this launches.
    pub fn kernel(&self) -> scalegemm::gemm::Fp8Variant {
        scalegemm::gemm::Fp8Variant {
            b_recipe: self.b,
            out: match self.out {
                OutDtype::Bf16 => scalegemm::gemm::OutDtype::Bf16,
                OutDtype::F32 => scalegemm::gemm::OutDtype::F32,
            },
            with_c: self.c != CMode::None,
        }
    }

    /// Mixed into the seed so variants see different data (0 for the default variant, so
    /// its cases keep their data).
    fn code(&self) -> u64 {
        let b = u64::from(self.b == GpuRecipe::PerToken);
        let out = u64::from(self.out == OutDtype::F32);
        let c = match self.c {
            CMode::None => 0,
            CMode::From => 1,
            CMode::InPlace => 2,
        };
        b | (out << 1) | (c << 2)
    }
}

/// `BMxBN[c2][p][b][kS]`, as `Fp8GemmConfig`'s `FromStr` parses it.
pub fn cfg_name(cfg: &Fp8GemmConfig) -> String {
    format!(
        "{}x{}{}{}{}{}",
        cfg.block_m,
        cfg.block_n,
        if cfg.cluster > 1 {
            format!("c{}", cfg.cluster)
        } else {
            String::new()
        },
        if cfg.pipelined { "p" } else { "" },
        if cfg.b_thread { "b" } else { "" },
        if cfg.splits > 1 {
            format!("k{}", cfg.splits)
        } else {
            String::new()
        }
    )
}

/// One GEMM case: variant, shape, leading dimensions, data, optional forced config.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub variant: Variant,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub lda: usize,
    pub ldb: usize,
    pub ldd: usize,
    /// C's leading dimension with [`CMode::From`] (in place, C is D: `ldd`).
    pub ldc: usize,
    /// D starts this many elements into its buffer (poisoned before it; 1 misaligns D).
    pub d_offset: usize,
    /// C (with [`CMode::From`]) starts this many elements into its buffer (NaN before it).
    pub c_offset: usize,
    pub dist: Dist,
    pub seed: u64,
    /// Pass A's scales already in the TMA-aligned MN-major layout (made by the reference).
    pub pre_transformed_sfa: bool,
    /// The same for B's scales (1D1D only).
    pub pre_transformed_sfb: bool,
    /// Launch with this configuration instead of the heuristic's.
    pub cfg: Option<Fp8GemmConfig>,
}

impl Case {
    /// The default variant (1D2D, BF16, no C).
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        Case::of(Variant::DEFAULT, m, n, k)
    }

    /// Named `fp8_gemm_nt MxNxK` for the default variant, `fp8_gemm_nt <tag> MxNxK` else.
    pub fn of(variant: Variant, m: usize, n: usize, k: usize) -> Self {
        let ld = k.div_ceil(16) * 16;
        let name = if variant == Variant::DEFAULT {
            format!("fp8_gemm_nt {m}x{n}x{k}")
        } else {
            format!("fp8_gemm_nt {} {m}x{n}x{k}", variant.tag())
        };
        Case {
            name,
            variant,
            m,
            n,
            k,
            lda: ld,
            ldb: ld,
            ldd: n,
            ldc: n,
            d_offset: 0,
            c_offset: 0,
            dist: Dist::Normal,
            seed: (m * 1_000_003 + n * 1009 + k) as u64 ^ (variant.code() << 48),
            pre_transformed_sfa: false,
            pre_transformed_sfb: false,
            cfg: None,
        }
    }

    pub fn with(mut self, f: impl FnOnce(&mut Case), tag: &str) -> Self {
        f(&mut self);
        self.name = format!("{} {tag}", self.name);
        self
    }

    /// C's leading dimension, for [`CMode::From`] cases (others are returned unchanged).
    pub fn ldc(self, ldc: usize) -> Self {
        if self.variant.c == CMode::From {
            self.with(|c| c.ldc = ldc, &format!("ldc={ldc}"))
        } else {
            self
        }
    }

    /// D (and a separate C) one element past a 16-byte boundary: direct, unpaired stores
    /// (and loads of C).
    pub fn misaligned(self) -> Self {
        let from = self.variant.c == CMode::From;
        self.with(
            |c| {
                c.d_offset = 1;
                c.c_offset = usize::from(from);
            },
            if from {
                "D and C misaligned by 1 element"
            } else {
                "D misaligned by 1 element"
            },
        )
    }

    pub fn with_cfg(self, cfg: Fp8GemmConfig) -> Self {
        self.with(|c| c.cfg = Some(cfg), &format!("cfg {}", cfg_name(&cfg)))
    }
}

/// DeepGEMM's dense shapes, the edge shapes, adversarial data and proptest shapes
/// (default variant), then the same kinds of shapes for every other variant.
pub fn cases() -> Vec<Case> {
    let draws = proptest_draws(16 + 2 * Variant::others().len());
    let mut v = Vec::new();
    let nk = scalegemm_verify::report::cases::DSV3_NK;
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
    // Split-K: 5 uneven splits (11 or 12 of 56 k-blocks, the last one partial) and a
    // partial last tile (CTAs running several units: "every kernel configuration").
    v.push(
        Case::new(100, 1000, 7100)
            .with_cfg("128x64pk5".parse().expect("a config"))
            .with(|c| c.ldd = 1004, "ldd=1004"),
    );
    // B's loads from their own producer thread (`b`; the heuristic's choice for the
    // 1×7168×16384 and 128×7168×16384 above): a partial M-block and a partial last k-block,
    // unsplit and split-K (4 units of 32–33 k-blocks), M = 1, and CTAs running two units
    // (140 tiles of 128×64 on 132 SMs: thread 64's ring carries over into the next unit).
    for (m, n, k, cfg) in [
        (100, 640, 8300, "128x64pb"),
        (100, 640, 16600, "128x64pbk4"),
        (1, 520, 8200, "64x128pb"),
        (200, 4480, 8300, "128x64pb"),
    ] {
        v.push(Case::new(m, n, k).with_cfg(cfg.parse().expect("a config")));
    }
    v.push(Case::new(300, 700, 16));
    v.push(Case::new(1024, 1024, 4096).with(|c| c.dist = Dist::SameSign, "same-sign [0.5,2)"));
    v.push(Case::new(512, 1536, 7168).with(|c| c.dist = Dist::Outliers, "outlier channels x300"));
    v.push(Case::new(384, 640, 1024).with(|c| c.dist = Dist::ZeroBlocks, "zero K blocks"));
    v.push(
        Case::new(333, 1000, 2304)
            .with(|c| c.pre_transformed_sfa = true, "pre-transformed A scales"),
    );
    for (i, &d) in draws[..16].iter().enumerate() {
        v.push(proptest_case(Variant::DEFAULT, i, d));
    }
    for (vi, var) in Variant::others().into_iter().enumerate() {
        v.extend(variant_cases(var));
        for (i, &d) in draws.iter().enumerate().skip(16 + 2 * vi).take(2) {
            v.push(proptest_case(var, i, d));
        }
    }
    v
}

/// The shapes every non-default variant runs (the sampled large ones, M = 1, K tails, odd
/// and misaligned D, C with its own leading dimension).
fn variant_cases(v: Variant) -> Vec<Case> {
    let mut out = vec![
        Case::of(v, 4096, 7168, 2048),
        Case::of(v, 4096, 2112, 7168).ldc(2116),
        Case::of(v, 128, 576, 7168).ldc(577),
        Case::of(v, 1, 4096, 7168),
        Case::of(v, 200, 300, 200)
            .with(
                |c| (c.lda, c.ldb) = (256, 224),
                "K=200 (partial K block), padded lda/ldb",
            )
            .ldc(301),
        Case::of(v, 129, 129, 129)
            .with(|c| c.lda = 160, "K=129")
            .ldc(130)
            .misaligned(),
        Case::of(v, 64, 33, 256)
            .with(|c| c.ldd = 33, "ldd=33 (odd, scalar stores)")
            .ldc(40),
        Case::of(v, 100, 640, 8300)
            .with_cfg("128x64pb".parse().expect("a config"))
            .ldc(648),
    ];
    if v.b == GpuRecipe::PerToken {
        out.push(Case::of(v, 333, 1000, 2304).with(
            |c| (c.pre_transformed_sfa, c.pre_transformed_sfb) = (true, true),
            "pre-transformed A and B scales",
        ));
    }
    out
}

/// `(m, n, k, pad)` drawn by proptest (deterministic runner), biased to block-size edges.
fn proptest_draws(count: usize) -> Vec<(usize, usize, usize, usize)> {
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
    (0..count)
        .map(|_| strat.new_tree(&mut runner).unwrap().current())
        .collect()
}

fn proptest_case(v: Variant, i: usize, (m, n, k, pad): (usize, usize, usize, usize)) -> Case {
    let mut c = Case::of(v, m, n, k);
    c.lda += 16 * pad;
    c.ldd = n + pad;
    c.ldc = n + (i % 3);
    let prefix = if v == Variant::DEFAULT {
        String::new()
    } else {
        format!("fp8_gemm_nt {} ", v.tag())
    };
    let ldc = if v.c == CMode::From {
        format!(" ldc={}", c.ldc)
    } else {
        String::new()
    };
    c.name = format!(
        "{prefix}proptest #{i}: {m}x{n}x{k} lda={} ldd={}{ldc}",
        c.lda, c.ldd
    );
    c
}

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    // Box-Muller.
    let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

fn gen(rng: &mut ChaCha8Rng, rows: usize, cols: usize, dist: Dist, is_a: bool) -> Vec<f32> {
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

/// C: N(0, 1)·8 (comparable to A·Bᵀ's rows, so a lost or doubled C shows), with exact
/// zeros (one in 97) and negative zeros (one in 97).
fn gen_c(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| match i % 97 {
            13 => 0.0,
            50 => -0.0,
            _ => normal(rng) * 8.0,
        })
        .collect()
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
    /// C `[M, N]` dense row-major, when the variant has one.
    pub c: Option<Vec<f32>>,
}

impl Problem {
    /// C as the reference reads it.
    fn c_view(&self) -> Result<Option<MatView<'_, f32>>, String> {
        self.c
            .as_ref()
            .map(|c| MatView::k_major(c, self.case.m, self.case.n, self.case.n).map_err(re))
            .transpose()
    }
}

pub fn problem(case: &Case) -> Result<Problem, String> {
    let v = case.variant;
    if (v.c != CMode::None && v.out != OutDtype::F32)
        || (case.pre_transformed_sfb && v.b != GpuRecipe::PerToken)
    {
        return Err(format!("{}: not a valid test case", case.name));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(case.seed);
    let a_f32 = gen(&mut rng, case.m, case.k, case.dist, true);
    let b_f32 = gen(&mut rng, case.n, case.k, case.dist, false);
    let qa = quant::per_token_cast(&a_f32, case.m, case.k, 128, Elem::E4M3, ScaleRound::Fp32)
        .map_err(re)?;
    let qb = match v.b {
        GpuRecipe::PerBlock => {
            quant::per_block_cast(&b_f32, case.n, case.k, 128, Elem::E4M3, ScaleRound::Fp32)
        }
        GpuRecipe::PerToken => {
            quant::per_token_cast(&b_f32, case.n, case.k, 128, Elem::E4M3, ScaleRound::Fp32)
        }
    }
    .map_err(re)?;
    let c = (v.c != CMode::None).then(|| gen_c(&mut rng, case.m * case.n));
    Ok(Problem {
        case: case.clone(),
        a_f32,
        b_f32,
        qa,
        qb,
        c,
    })
}

/// E4M3-NaN-free poison of a separate C's padding: a NaN, so a kernel that reads C at a
/// wrong address writes NaN into D.
pub const C_POISON: u32 = 0x7FC0_0C0C;

/// Device copies of a problem's operands.
pub struct Uploaded {
    pub a: CudaSlice<u8>,
    pub b: CudaSlice<u8>,
    pub sfa: CudaSlice<f32>,
    pub sfb: CudaSlice<f32>,
    /// C's buffer with [`CMode::From`]: `c_offset` NaNs, then `[M, ldc]` (NaN padding).
    pub c: Option<CudaSlice<f32>>,
    /// What `c` was uploaded from (the kernel must leave it as it is).
    pub c_host: Vec<f32>,
}

fn tma_aligned(s: &[f32], rows: usize, kb: usize) -> Result<Vec<f32>, String> {
    quant::to_tma_aligned_mn_major(s, 1, rows, kb).map_err(re)
}

pub fn upload(dev: &Device, p: &Problem) -> Result<Uploaded, String> {
    let s = dev.stream();
    let c = &p.case;
    let sfa_host = if c.pre_transformed_sfa {
        tma_aligned(&p.qa.scales, c.m, p.qa.scale_cols)?
    } else {
        p.qa.scales.clone()
    };
    let sfb_host = if c.pre_transformed_sfb {
        tma_aligned(&p.qb.scales, c.n, p.qb.scale_cols)?
    } else {
        p.qb.scales.clone()
    };
    let c_host = match (&p.c, c.variant.c) {
        (Some(cv), CMode::From) => {
            let mut h = vec![f32::from_bits(C_POISON); c.c_offset + c.m * c.ldc];
            for r in 0..c.m {
                let at = c.c_offset + r * c.ldc;
                h[at..at + c.n].copy_from_slice(&cv[r * c.n..(r + 1) * c.n]);
            }
            h
        }
        _ => Vec::new(),
    };
    Ok(Uploaded {
        a: s.clone_htod(&pad_codes(&p.qa, c.lda)).map_err(de)?,
        b: s.clone_htod(&pad_codes(&p.qb, c.ldb)).map_err(de)?,
        sfa: s.clone_htod(&sfa_host).map_err(de)?,
        sfb: s.clone_htod(&sfb_host).map_err(de)?,
        c: if c_host.is_empty() {
            None
        } else {
            Some(s.clone_htod(&c_host).map_err(de)?)
        },
        c_host,
    })
}

/// BF16 NaN: D's initial content outside `[M, N]` (and everywhere without in-place C).
pub const POISON_BF16: u16 = 0x7FC0;
/// An FP32 NaN with a payload no arithmetic produces (the canonical NaN is 0x7FFF_FFFF).
pub const POISON_F32: u32 = 0x7FBA_DBAD;

/// D's whole buffer (`d_offset + M·ldd` elements) as copied back from the GPU.
#[derive(Debug, Clone)]
pub enum Out {
    Bf16(Vec<bf16>),
    F32(Vec<f32>),
}

impl Out {
    pub fn len(&self) -> usize {
        match self {
            Out::Bf16(v) => v.len(),
            Out::F32(v) => v.len(),
        }
    }

    /// The bit pattern of element `i` (BF16 in the low 16 bits).
    pub fn bits(&self, i: usize) -> u32 {
        match self {
            Out::Bf16(v) => u32::from(v[i].to_bits()),
            Out::F32(v) => v[i].to_bits(),
        }
    }

    pub fn val(&self, i: usize) -> f64 {
        match self {
            Out::Bf16(v) => v[i].to_f64(),
            Out::F32(v) => v[i] as f64,
        }
    }

    /// The poison's bit pattern for this dtype.
    pub fn poison(&self) -> u32 {
        match self {
            Out::Bf16(_) => u32::from(POISON_BF16),
            Out::F32(_) => POISON_F32,
        }
    }

    /// Whether the two buffers are bitwise equal.
    pub fn bit_equal(&self, other: &Out) -> bool {
        self.len() == other.len() && (0..self.len()).all(|i| self.bits(i) == other.bits(i))
    }
}

/// D's initial buffer for `case`: poison, with C in `[M, N]` for in-place C.
fn initial_d(p: &Problem) -> Out {
    let c = &p.case;
    let len = (c.d_offset + c.m * c.ldd).max(1);
    match c.variant.out {
        OutDtype::Bf16 => Out::Bf16(vec![bf16::from_bits(POISON_BF16); len]),
        OutDtype::F32 => {
            let mut v = vec![f32::from_bits(POISON_F32); len];
            if let (CMode::InPlace, Some(cv)) = (c.variant.c, &p.c) {
                for r in 0..c.m {
                    let at = c.d_offset + r * c.ldd;
                    v[at..at + c.n].copy_from_slice(&cv[r * c.n..(r + 1) * c.n]);
                }
            }
            Out::F32(v)
        }
    }
}

/// Runs the GPU GEMM of `p`'s variant into a poisoned D buffer (`d_offset + M·ldd`
/// elements; C in place where the variant says so) and returns the whole buffer (host
/// copy). `cfg` forces a configuration (else the heuristic's).
///
/// Entry points: BF16 and FP32 without C through `fp8_gemm_nt` (`_with_config`), except
/// FP32 without C under a forced config, which goes through
/// `fp8_gemm_nt_acc_with_config(.., Accumulate::No, ..)` so that path is covered too; C
/// (from a buffer or in place) through `fp8_gemm_nt_acc` (`_with_config`). With a separate
/// C, its buffer is read back and must be unchanged.
pub fn run_gpu(
    dev: &Device,
    p: &Problem,
    u: &Uploaded,
    cfg: Option<Fp8GemmConfig>,
) -> Result<Out, String> {
    let c = &p.case;
    let s = dev.stream();
    let (a, b) = gpu_operands(p, u)?;
    let (m, n, ldd, off) = (c.m, c.n, c.ldd, c.d_offset);
    let out = match initial_d(p) {
        Out::Bf16(init) => {
            let mut d = s.clone_htod(&init).map_err(de)?;
            {
                let mut dv = MatrixMut::new(d.slice_mut(off..), m, n, ldd).map_err(se)?;
                match cfg {
                    None => scalegemm::fp8_gemm_nt(dev, &a, &b, &mut dv),
                    Some(cfg) => scalegemm::fp8_gemm_nt_with_config(dev, &a, &b, &mut dv, cfg),
                }
                .map_err(se)?;
            }
            Out::Bf16(s.clone_dtoh(&d).map_err(de)?)
        }
        Out::F32(init) => {
            let mut d = s.clone_htod(&init).map_err(de)?;
            let cm = match (c.variant.c, &u.c) {
                (CMode::From, Some(buf)) => {
                    Some(Matrix::new(buf.slice(c.c_offset..), m, n, c.ldc).map_err(se)?)
                }
                (CMode::From, None) => return Err("C was not uploaded".into()),
                _ => None,
            };
            let acc = match (c.variant.c, &cm) {
                (CMode::From, Some(cm)) => Accumulate::From(cm),
                (CMode::InPlace, _) => Accumulate::InPlace,
                _ => Accumulate::No,
            };
            {
                let mut dv = MatrixMut::new(d.slice_mut(off..), m, n, ldd).map_err(se)?;
                match (c.variant.c, cfg) {
                    (CMode::None, None) => scalegemm::fp8_gemm_nt(dev, &a, &b, &mut dv),
                    (_, None) => scalegemm::fp8_gemm_nt_acc(dev, &a, &b, acc, &mut dv),
                    (_, Some(cfg)) => {
                        scalegemm::fp8_gemm_nt_acc_with_config(dev, &a, &b, acc, &mut dv, cfg)
                    }
                }
                .map_err(se)?;
            }
            Out::F32(s.clone_dtoh(&d).map_err(de)?)
        }
    };
    if let Some(buf) = &u.c {
        let back = s.clone_dtoh(buf).map_err(de)?;
        if let Some(i) = (0..back.len()).find(|&i| back[i].to_bits() != u.c_host[i].to_bits()) {
            return Err(format!(
                "the kernel wrote C's buffer at element {i}: {} (was {})",
                back[i], u.c_host[i]
            ));
        }
    }
    dev.synchronize().map_err(se)?;
    Ok(out)
}

/// A and B of `p` as the GPU API takes them, over `u`'s buffers.
fn gpu_operands<'a>(p: &Problem, u: &'a Uploaded) -> Result<(GpuOp<'a>, GpuOp<'a>), String> {
    let c = &p.case;
    let a = GpuOp::new(
        Matrix::new(u.a.as_view(), c.m, c.k, c.lda).map_err(se)?,
        sfa_of(p, u)?,
        GpuRecipe::PerToken,
    )
    .map_err(se)?;
    let b = GpuOp::new(
        Matrix::new(u.b.as_view(), c.n, c.k, c.ldb).map_err(se)?,
        sfb_of(p, u)?,
        c.variant.b,
    )
    .map_err(se)?;
    Ok((a, b))
}

fn row_major<'a>(v: &'a CudaSlice<f32>, rows: usize, cols: usize) -> Result<Fp8Scales<'a>, String> {
    Ok(Fp8Scales::RowMajor(
        Matrix::new(v.as_view(), rows, cols, cols).map_err(se)?,
    ))
}

fn sfa_of<'a>(p: &Problem, u: &'a Uploaded) -> Result<Fp8Scales<'a>, String> {
    if p.case.pre_transformed_sfa {
        Ok(Fp8Scales::TmaAlignedMnMajor(u.sfa.as_view()))
    } else {
        row_major(&u.sfa, p.qa.scale_rows, p.qa.scale_cols)
    }
}

fn sfb_of<'a>(p: &Problem, u: &'a Uploaded) -> Result<Fp8Scales<'a>, String> {
    if p.case.pre_transformed_sfb {
        Ok(Fp8Scales::TmaAlignedMnMajor(u.sfb.as_view()))
    } else {
        row_major(&u.sfb, p.qb.scale_rows, p.qb.scale_cols)
    }
}

fn ref_operands<'a>(
    p: &'a Problem,
    abs_a: &'a [u8],
    abs_b: &'a [u8],
    abs: bool,
) -> Result<(Fp8Operand<'a>, Fp8Operand<'a>), String> {
    let c = &p.case;
    let (ca, cb) = if abs {
        (abs_a, abs_b)
    } else {
        (&p.qa.codes[..], &p.qb.codes[..])
    };
    let scales = |q: &'a Quantized| -> Result<Scales<'a>, String> {
        Ok(Scales::F32(
            MatView::k_major(&q.scales, q.scale_rows, q.scale_cols, q.scale_cols).map_err(re)?,
        ))
    };
    let a = Fp8Operand::new(
        MatView::k_major(ca, c.m, c.k, c.k).map_err(re)?,
        scales(&p.qa)?,
        Fp8Recipe::PerToken,
    )
    .map_err(re)?;
    let b_recipe = match c.variant.b {
        GpuRecipe::PerBlock => Fp8Recipe::PerBlock,
        GpuRecipe::PerToken => Fp8Recipe::PerToken,
    };
    let b = Fp8Operand::new(
        MatView::k_major(cb, c.n, c.k, c.k).map_err(re)?,
        scales(&p.qb)?,
        b_recipe,
    )
    .map_err(re)?;
    Ok((a, b))
}

/// What [`check`] found.
#[derive(Debug, Clone)]
pub struct Report {
    /// Elements checked against the model's bound.
    pub checked: usize,
    /// Whether that was all of them.
    pub full: bool,
    /// The largest error / bound ratio.
    pub worst: f64,
    /// Elements bitwise equal to the Hopper model, of `compared`.
    pub same: usize,
    pub compared: usize,
    /// `calc_diff` against the unquantized product (+ C).
    pub diff: f64,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} elements in the model bound ({}; worst err/bound {:.3}), {}/{} bit-equal to the Hopper model, calc_diff {:.2e}",
            self.checked,
            if self.full { "all" } else { "sampled" },
            self.worst,
            self.same,
            self.compared,
            self.diff
        )
    }
}

/// The split-K count a launch of `p` with `cfg` (else the heuristic's config) uses: the
/// Hopper model's [`Promotion::SplitK`] for [`check`].
pub fn launch_splits(dev: &Device, p: &Problem, cfg: Option<Fp8GemmConfig>) -> u32 {
    let c = &p.case;
    cfg.unwrap_or_else(|| {
        scalegemm::gemm::config::choose_for(c.variant.kernel(), c.m, c.n, c.k, dev.usable_sms())
    })
    .splits_for(c.k)
}

/// The checks of the module docs on D's whole buffer `d` (as [`run_gpu`] returns it), the
/// bitwise comparison against the Hopper model with `splits` split-K units
/// ([`launch_splits`]).
pub fn check(p: &Problem, d: &Out, splits: u32) -> Result<Report, String> {
    let c = &p.case;
    let (m, n) = (c.m, c.n);
    let bf16_out = c.variant.out == OutDtype::Bf16;
    if bf16_out != matches!(d, Out::Bf16(_)) {
        return Err("D's dtype is not the case's".into());
    }
    if d.len() < c.d_offset + m * c.ldd {
        return Err(format!("D's buffer has {} elements", d.len()));
    }
    let at = |r: usize, j: usize| c.d_offset + r * c.ldd + j;
    let poison = d.poison();
    // 1. Padding (and anything before D's start) untouched, every element finite.
    if let Some(i) = (0..c.d_offset).find(|&i| d.bits(i) != poison) {
        return Err(format!(
            "element {i} before D's start was written ({})",
            d.val(i)
        ));
    }
    for r in 0..m {
        for j in 0..c.ldd {
            let i = at(r, j);
            if j >= n && d.bits(i) != poison {
                return Err(format!(
                    "padding D[{r}, {j}] was written ({}, bits {:#x})",
                    d.val(i),
                    d.bits(i)
                ));
            }
            if j < n && !d.val(i).is_finite() {
                return Err(format!(
                    "D[{r}, {j}] = {} (bits {:#x}: not written, or a NaN/inf result)",
                    d.val(i),
                    d.bits(i)
                ));
            }
        }
    }
    let got = |r: usize, j: usize| d.val(at(r, j));
    // 2. Exact C + A·Bᵀ of the quantized inputs, and Σ|a·b·sa·sb|.
    let abs_a: Vec<u8> = p.qa.codes.iter().map(|&x| x & 0x7F).collect();
    let abs_b: Vec<u8> = p.qb.codes.iter().map(|&x| x & 0x7F).collect();
    let (ra, rb) = ref_operands(p, &abs_a, &abs_b, false)?;
    let (aa, ab) = ref_operands(p, &abs_a, &abs_b, true)?;
    let cv = p.c_view()?;
    let mut exact = vec![0.0f64; m * n];
    let mut sabs = vec![0.0f64; m * n];
    gemm::gemm(
        &ra.into(),
        &rb.into(),
        cv,
        &mut OutView::new(OutBuf::F64(&mut exact), m, n, n).map_err(re)?,
    )
    .map_err(re)?;
    gemm::gemm(
        &aa.into(),
        &ab.into(),
        None,
        &mut OutView::new(OutBuf::F64(&mut sabs), m, n, n).map_err(re)?,
    )
    .map_err(re)?;
    // 3. Coarse bound on every element: 2^-11·Σ|ab| for the FP8 accumulation, plus the
    //    output's rounding (BF16: 2^-8 relative; FP32, with the C addition: 2^-22).
    let rel = if bf16_out {
        2f64.powi(-8)
    } else {
        2f64.powi(-22)
    };
    let coarse = (0..m * n).into_par_iter().find_first(|&i| {
        let (r, j) = (i / n, i % n);
        let bound = rel * exact[i].abs() + 2f64.powi(-11) * sabs[i] + 1e-30;
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
        hopper::hopper_fp8_error_bound_sample(&ra, &rb, cv, c.variant.out, &pairs).map_err(re)?;
    let mut worst = 0.0f64;
    for (&(r, j), &bd) in pairs.iter().zip(&bounds) {
        let err = (got(r, j) - exact[r * n + j]).abs();
        if err > bd {
            return Err(format!(
                "D[{r}, {j}] = {} but exact {}: error {err:e} > model bound {bd:e}",
                got(r, j),
                exact[r * n + j]
            ));
        }
        if bd > 0.0 {
            worst = worst.max(err / bd);
        }
    }
    // 5. Bitwise agreement with the Hopper model on (up to 4096 of) the checked elements.
    let model_pairs: Vec<(usize, usize)> = pairs
        .iter()
        .step_by(pairs.len().div_ceil(4096).max(1))
        .copied()
        .collect();
    let promotion = Promotion::SplitK(splits as usize);
    let model = hopper::hopper_fp8_sample(&ra, &rb, cv, promotion, &model_pairs).map_err(re)?;
    let same = model_pairs
        .iter()
        .zip(&model)
        .filter(|(&(r, j), &v)| {
            let want = if bf16_out {
                u32::from(scalegemm_reference::format::bf16::from_f32(v).to_bits())
            } else {
                v.to_bits()
            };
            want == d.bits(at(r, j))
        })
        .count();
    // Split-K's order is only visible bitwise (the bound allows any order): a split launch
    // must agree with `Promotion::SplitK` on every compared element (every launch of the
    // fifth session's suites agreed everywhere, split or not).
    if splits > 1 && same != model_pairs.len() {
        return Err(format!(
            "split-K ({splits} splits): {same} of {} sampled elements bit-equal to Promotion::SplitK",
            model_pairs.len()
        ));
    }
    // 6. calc_diff against the unquantized product (+ C) on sampled rows (normal-like data).
    let rows: Vec<usize> = (0..m).step_by(m.div_ceil(8)).collect();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for &r in &rows {
        for j in 0..n {
            let dot: f64 = (0..c.k)
                .map(|t| p.a_f32[r * c.k + t] as f64 * p.b_f32[j * c.k + t] as f64)
                .sum();
            let cc = p.c.as_ref().map_or(0.0, |cv| cv[r * n + j] as f64);
            x.push(got(r, j));
            y.push(dot + cc);
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
    Ok(Report {
        checked: pairs.len(),
        full,
        worst,
        same,
        compared: model_pairs.len(),
        diff,
    })
}

pub fn run_case(case: &Case) -> TestResult {
    let dev = dev()?;
    let p = problem(case)?;
    let u = upload(dev, &p)?;
    let t = std::time::Instant::now();
    let d1 = run_gpu(dev, &p, &u, case.cfg)?;
    let first = t.elapsed().as_secs_f64();
    let d2 = run_gpu(dev, &p, &u, case.cfg)?;
    if !d1.bit_equal(&d2) {
        return Err("two launches on the same input differ".into());
    }
    let report = check(&p, &d1, launch_splits(dev, &p, case.cfg))?;
    eprintln!("  {}: {report} (first call {:.3} s)", case.name, first);
    Ok(())
}

/// `cfgs` on awkward shapes for variant `v`: 200×333×400 (ldd 336, a separate C with ldc
/// 340) for single CTAs; for CTA pairs (which need an even number of N-blocks)
/// 200×(6·BLOCK_N−5)×400 (ldd = ldc = N, odd), so the last tile of the last pair is partial.
/// 256-row tiles get M = 333 instead of 200: a full M-block and a partial second one.
fn configs_on_awkward_shapes(v: Variant, cfgs: &[Fp8GemmConfig]) -> TestResult {
    let dev = dev()?;
    let m_for = |cfg: &Fp8GemmConfig| if cfg.block_m == 256 { 333 } else { 200 };
    let mut singles = Vec::new();
    for m in [200, 333] {
        if cfgs.iter().any(|c| c.cluster == 1 && m_for(c) == m) {
            let case = Case::of(v, m, 333, 400)
                .with(|c| c.ldd = 336, "all configs")
                .ldc(340);
            let p = problem(&case)?;
            let u = upload(dev, &p)?;
            singles.push((m, p, u));
        }
    }
    for &cfg in cfgs {
        if cfg.cluster == 1 {
            let (_, p1, u1) = singles
                .iter()
                .find(|(m, _, _)| *m == m_for(&cfg))
                .ok_or("no problem for this M")?;
            let d = run_gpu(dev, p1, u1, Some(cfg)).map_err(|e| format!("{cfg:?}: {e}"))?;
            check(p1, &d, cfg.splits_for(p1.case.k)).map_err(|e| format!("{cfg:?}: {e}"))?;
        } else {
            let case = Case::of(v, m_for(&cfg), 6 * cfg.block_n as usize - 5, 400);
            let p = problem(&case)?;
            let u = upload(dev, &p)?;
            let d = run_gpu(dev, &p, &u, Some(cfg))
                .map_err(|e| format!("{cfg:?} on {}: {e}", case.name))?;
            check(&p, &d, cfg.splits_for(case.k))
                .map_err(|e| format!("{cfg:?} on {}: {e}", case.name))?;
        }
    }
    Ok(())
}

/// Every configuration the heuristic can pick, pipelined ones included (default variant).
pub fn all_configs_case() -> TestResult {
    configs_on_awkward_shapes(Variant::DEFAULT, &all_configs())
}

/// Every position of a B-scale block boundary inside a tile (1D2D). A tile starts at
/// column j·BLOCK_N, so when BLOCK_N does not divide 128 the next 128-column boundary falls
/// at one of 128/gcd(BLOCK_N, 128) positions, and the kernel's promotion is compiled once
/// per position (`with_sb_boundary`, kernels/cuda/gemm/promote.cuh). BF16 output: every such
/// config of `all_configs()`; the FP32 1D2D variants (compiled separately): a subset of
/// [`SB_BOUNDARY_SUBSET`] (at most 144 columns with C, as `choose_for`). Each on 200×N×256
/// with N = P·BLOCK_N + 5 (P positions, plus a partial last tile; one more block for CTA
/// pairs, which need an even number of N-blocks).
pub fn sb_boundary_case() -> TestResult {
    let dev = dev()?;
    let mut runs: Vec<(Variant, Fp8GemmConfig)> = Vec::new();
    for v in Variant::others() {
        if v.b != GpuRecipe::PerBlock {
            continue;
        }
        for cfg in parse_configs(SB_BOUNDARY_SUBSET)? {
            if v.c == CMode::None || cfg.block_n <= MAX_BLOCK_N_WITH_C {
                runs.push((v, cfg));
            }
        }
    }
    runs.extend(
        all_configs()
            .into_iter()
            .filter(|c| 128 % c.block_n != 0)
            .map(|c| (Variant::DEFAULT, c)),
    );
    if runs.is_empty() {
        return Err("no config with a BLOCK_N that does not divide 128".into());
    }
    for &(v, cfg) in &runs {
        let bn = cfg.block_n as usize;
        let positions = 128 / gcd(bn, 128);
        let blocks = if cfg.cluster == 2 && (positions + 1) % 2 == 1 {
            positions + 1
        } else {
            positions
        };
        let case = Case::of(v, 200, blocks * bn + 5, 256);
        let p = problem(&case)?;
        let u = upload(dev, &p)?;
        let what = || format!("{} on {}", cfg_name(&cfg), case.name);
        let d = run_gpu(dev, &p, &u, Some(cfg)).map_err(|e| format!("{}: {e}", what()))?;
        check(&p, &d, cfg.splits_for(p.case.k)).map_err(|e| format!("{}: {e}", what()))?;
    }
    eprintln!(
        "  {} config/variant pairs, every boundary position",
        runs.len()
    );
    Ok(())
}

/// Split-K launches one after another on the shared workspace, few tiles with large
/// partial tiles then many tiles with small ones and back (a layout that put one launch's
/// partial tiles where the next keeps its counters left 87 % of 1024×1024×400 unwritten),
/// then 1024×1024×400 in several units per CTA with FP32 C in place.
pub fn split_k_sequence_case() -> TestResult {
    let dev = dev()?;
    let in_place = Variant {
        out: OutDtype::F32,
        c: CMode::InPlace,
        ..Variant::DEFAULT
    };
    let runs = [
        (Variant::DEFAULT, 200, 336, 400, "128x64pk4"),
        (Variant::DEFAULT, 1024, 1024, 400, "64x16k3"),
        (Variant::DEFAULT, 200, 336, 400, "128x144pk4"),
        (Variant::DEFAULT, 1024, 1024, 1024, "64x16k3"),
        (in_place, 1024, 1024, 1024, "128x64pk4"),
    ];
    for (v, m, n, k, name) in runs {
        let cfg = parse_configs(&[name])?[0];
        let p = problem(&Case::of(v, m, n, k))?;
        let u = upload(dev, &p)?;
        let what = || format!("{name} on {}", p.case.name);
        let d = run_gpu(dev, &p, &u, Some(cfg)).map_err(|e| format!("{}: {e}", what()))?;
        let report = check(&p, &d, cfg.splits_for(k)).map_err(|e| format!("{}: {e}", what()))?;
        eprintln!("  {}: {report}", what());
    }
    Ok(())
}

/// Split-K launches enqueued back to back (their D buffers uploaded first, nothing on the
/// stream between the GEMMs, A's scales pre-transformed so no transform kernel runs), then
/// every D copied back and checked: adjacent split kernels (programmatic dependent launch
/// between them, unless `SCALEGEMM_PDL=0`) share the counters, which each must leave zero.
/// Mixes the last-unit reduction with one unit per CTA and several, and the split kernel run
/// with one split (K ≤ 128).
pub fn split_k_back_to_back_case() -> TestResult {
    let dev = dev()?;
    let runs = [
        (128, 2112, 7168, "128x64pk4", 4),
        (1, 576, 7168, "64x32k3", 7),
        (200, 1000, 1000, "64x16k3", 3),
        (128, 4096, 7168, "128x64pk4", 2),
        (64, 333, 100, "128x64pk4", 4),
        (128, 2112, 7168, "128x64pk4", 4),
    ];
    let mut probs = Vec::new();
    for &(m, n, k, name, splits) in &runs {
        let cfg = parse_configs(&[name])?[0].with_splits(splits);
        let case =
            Case::new(m, n, k).with(|c| c.pre_transformed_sfa = true, "pre-transformed A scales");
        let p = problem(&case)?;
        let u = upload(dev, &p)?;
        probs.push((p, u, cfg));
    }
    let s = dev.stream();
    let mut ds = Vec::new();
    for (p, _, _) in &probs {
        match initial_d(p) {
            Out::Bf16(init) => ds.push(s.clone_htod(&init).map_err(de)?),
            Out::F32(_) => return Err("BF16 cases only".into()),
        }
    }
    for ((p, u, cfg), d) in probs.iter().zip(ds.iter_mut()) {
        let c = &p.case;
        let (a, b) = gpu_operands(p, u)?;
        let mut dv = MatrixMut::new(d.slice_mut(c.d_offset..), c.m, c.n, c.ldd).map_err(se)?;
        scalegemm::fp8_gemm_nt_with_config(dev, &a, &b, &mut dv, *cfg).map_err(se)?;
    }
    for ((p, _, cfg), d) in probs.iter().zip(&ds) {
        let out = Out::Bf16(s.clone_dtoh(d).map_err(de)?);
        let report = check(p, &out, cfg.splits_for(p.case.k))
            .map_err(|e| format!("{} on {}: {e}", cfg_name(cfg), p.case.name))?;
        eprintln!("  {} on {}: {report}", cfg_name(cfg), p.case.name);
    }
    dev.synchronize().map_err(se)?;
    Ok(())
}

/// Configurations [`sb_boundary_case`] runs in the FP32 1D2D variants: BLOCK_N 48, 112
/// (pipelined), 144 (pipelined, as `choose_for` picks it for 1D2D, and not), 176 (paired, as
/// `choose` picks it) and 192.
pub const SB_BOUNDARY_SUBSET: &[&str] = &[
    "64x48",
    "128x112p",
    "128x144p",
    "128x144",
    "128x176c2",
    "128x192",
];

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The configurations the other variants run: every BLOCK_M (64, 128, 256), BLOCK_N small,
/// odd (not a power of two) and large (16, 48, 112, 128, 144, 192), CTA pairs, pipelined
/// promotion (single and paired; 128×144p with A's scales read late, which 1D1D runs only
/// when forced), split-K (64-row, 128-row pipelined), and 256×128 tiles, single and paired
/// (the heuristic picks 256x128c2 for BF16 1D2D only and never 256x128, so these variants run
/// them only when forced; [`configs_on_awkward_shapes`] gives 256-row tiles two M-blocks).
pub const CONFIG_SUBSET: &[&str] = &[
    "64x16",
    "64x112p",
    "128x48",
    "128x112",
    "128x144",
    "128x144p",
    "64x192",
    "128x192",
    "128x128p",
    "128x16c2",
    "128x144c2",
    "128x128c2p",
    "128x192c2",
    "64x32k3",
    "128x64pk4",
    "128x144pk4",
    "256x128",
    "256x128c2",
];

/// Parses `names`, each of which must be one of `all_configs()` (what the compile gate covers).
fn parse_configs(names: &[&str]) -> Result<Vec<Fp8GemmConfig>, String> {
    let all = all_configs();
    names
        .iter()
        .map(|s| {
            let cfg: Fp8GemmConfig = s.parse()?;
            if all.contains(&cfg) {
                Ok(cfg)
            } else {
                Err(format!("{s} is not one of all_configs()"))
            }
        })
        .collect()
}

/// [`CONFIG_SUBSET`] for variant `v`.
pub fn config_subset_case(v: Variant) -> TestResult {
    configs_on_awkward_shapes(v, &parse_configs(CONFIG_SUBSET)?)
}

/// Configurations whose BF16 tile rows stage in every slab width of the TMA-store
/// epilogue (32 bytes: BLOCK_N 16, 48, 112, 144; 64: 96, 160; 128: 128, 192), pipelined,
/// paired and 256-row ones (each warpgroup storing its own 128 rows) included.
pub const TMA_STORE_CONFIGS: &[&str] = &[
    "64x16",
    "64x48",
    "128x96",
    "128x144",
    "128x160",
    "128x192",
    "128x128p",
    "64x112p",
    "128x128c2",
    "128x48c2p",
    "256x128",
    "256x96",
    "256x48c2",
];

/// The BF16 (1D2D) epilogues against each other: the same problem stored with ldd = N
/// (TMA store: D 16-byte aligned, row stride a multiple of 16 bytes), ldd = N + 1 (direct
/// stores; for M = 1 the API still stores the single row by TMA) and ldd = N with D one
/// element past a 16-byte boundary (direct, unpaired stores). Each is checked against the
/// reference, and their `[M, N]` elements must be bitwise equal. `cfgs` empty: the
/// heuristic's config; else each config (pairs on M×(6·BLOCK_N−8)×K, an even number of
/// N-blocks with a partial last one).
pub fn tma_store_vs_direct(m: usize, n: usize, k: usize, cfgs: &[&str]) -> TestResult {
    let dev = dev()?;
    let cfgs: Vec<Option<Fp8GemmConfig>> = if cfgs.is_empty() {
        vec![None]
    } else {
        parse_configs(cfgs)?.into_iter().map(Some).collect()
    };
    for cfg in cfgs {
        let n = match cfg {
            Some(c) if c.cluster > 1 => 6 * c.block_n as usize - 8,
            _ => n,
        };
        if n % 8 != 0 {
            return Err(format!("N = {n}: ldd = N would not take the TMA store"));
        }
        let what = cfg.map_or("heuristic config".to_string(), |c| cfg_name(&c));
        let mut p = problem(&Case::new(m, n, k))?;
        let u = upload(dev, &p)?;
        let odd = if m == 1 {
            "ldd = N+1 (one row: still a TMA store)"
        } else {
            "ldd = N+1 (direct stores)"
        };
        let layouts = [
            ("ldd = N (TMA store)", n, 0),
            (odd, n + 1, 0),
            ("D misaligned by 1 element (direct stores)", n, 1),
        ];
        let mut outs = Vec::new();
        for (name, ldd, off) in layouts {
            (p.case.ldd, p.case.d_offset) = (ldd, off);
            let d = run_gpu(dev, &p, &u, cfg).map_err(|e| format!("{what}, {name}: {e}"))?;
            let report = check(&p, &d, launch_splits(dev, &p, cfg))
                .map_err(|e| format!("{what}, {name}: {e}"))?;
            eprintln!("  {m}x{n}x{k} {what}, {name}: {report}");
            let vals: Vec<u32> = (0..m)
                .flat_map(|r| (0..n).map(move |j| off + r * ldd + j))
                .map(|i| d.bits(i))
                .collect();
            outs.push((name, vals));
        }
        for (name, vals) in &outs[1..] {
            if let Some(i) = (0..vals.len()).find(|&i| vals[i] != outs[0].1[i]) {
                return Err(format!(
                    "{what}: D[{}, {}] differs between {} ({:#06x}) and {name} ({:#06x})",
                    i / n,
                    i % n,
                    outs[0].0,
                    outs[0].1[i],
                    vals[i]
                ));
            }
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
        let buf = dev.stream().clone_htod(&host).map_err(de)?;
        let m = Matrix::new(buf.as_view(), rows, cols, ld).map_err(se)?;
        let gpu = scalegemm::layout::to_tma_aligned_mn_major_gpu(dev, &m).map_err(se)?;
        let gpu = dev.stream().clone_dtoh(&gpu).map_err(de)?;
        let host_t =
            scalegemm::layout::to_tma_aligned_mn_major(&host, rows, cols, ld).map_err(se)?;
        let dense: Vec<f32> = (0..rows)
            .flat_map(|r| host[r * ld..r * ld + cols].to_vec())
            .collect();
        let refl = quant::to_tma_aligned_mn_major(&dense, 1, rows, cols).map_err(re)?;
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
    let codes = s.alloc_zeros::<u8>(64 * 160).map_err(de)?;
    let sf = s.alloc_zeros::<f32>(64 * 2).map_err(de)?;
    let mut out = s.alloc_zeros::<bf16>(64 * 64).map_err(de)?;
    let mut out32 = s.alloc_zeros::<f32>(64 * 64).map_err(de)?;
    let cbuf = s.alloc_zeros::<f32>(64 * 64).map_err(de)?;
    let sfm = |rows, cols| Matrix::new(sf.as_view(), rows, cols, cols);
    let cm = |rows, cols, ld| Matrix::new(cbuf.as_view(), rows, cols, ld);
    let codes_m = |ld| Matrix::new(codes.as_view(), 64, 144, ld);
    // Wrong scale shape.
    let r = GpuOp::new(
        codes_m(160).map_err(se)?,
        Fp8Scales::RowMajor(sfm(64, 1).map_err(se)?),
        GpuRecipe::PerToken,
    );
    if !matches!(r, Err(Error::Scale(_))) {
        return Err(format!("wrong scale shape: {r:?}"));
    }
    // 1D1D B with per-block-shaped scales ([1, 2] for 64 rows).
    let r = GpuOp::new(
        codes_m(160).map_err(se)?,
        Fp8Scales::RowMajor(sfm(1, 2).map_err(se)?),
        GpuRecipe::PerToken,
    );
    if !matches!(r, Err(Error::Scale(_))) {
        return Err(format!("1D1D B with 1x2 scales: {r:?}"));
    }
    // 1D1D B with too short a TMA-aligned scale buffer (needs 64·2 floats).
    let r = GpuOp::new(
        codes_m(160).map_err(se)?,
        Fp8Scales::TmaAlignedMnMajor(sf.slice(..64 * 2 - 1)),
        GpuRecipe::PerToken,
    );
    if !matches!(r, Err(Error::Scale(_))) {
        return Err(format!("1D1D B with short TMA-aligned scales: {r:?}"));
    }
    // Per-block scales in the TMA-aligned layout.
    let r = GpuOp::new(
        codes_m(160).map_err(se)?,
        Fp8Scales::TmaAlignedMnMajor(sf.as_view()),
        GpuRecipe::PerBlock,
    );
    if !matches!(r, Err(Error::Scale(_))) {
        return Err(format!("per-block TMA-aligned scales: {r:?}"));
    }
    // Too short a buffer.
    if !matches!(
        Matrix::new(codes.as_view(), 65, 160, 160),
        Err(Error::Shape(_))
    ) {
        return Err("short buffer accepted".into());
    }
    // Leading dimension not a multiple of 16 bytes.
    let a150 = GpuOp::new(
        codes_m(150).map_err(se)?,
        Fp8Scales::RowMajor(sfm(64, 2).map_err(se)?),
        GpuRecipe::PerToken,
    )
    .map_err(se)?;
    let b = GpuOp::new(
        codes_m(160).map_err(se)?,
        Fp8Scales::RowMajor(sfm(1, 2).map_err(se)?),
        GpuRecipe::PerBlock,
    )
    .map_err(se)?;
    let a = GpuOp::new(
        codes_m(160).map_err(se)?,
        Fp8Scales::RowMajor(sfm(64, 2).map_err(se)?),
        GpuRecipe::PerToken,
    )
    .map_err(se)?;
    {
        let mut d = MatrixMut::new(out.as_view_mut(), 64, 64, 64).map_err(se)?;
        let r = scalegemm::fp8_gemm_nt(dev, &a150, &b, &mut d);
        if !matches!(r, Err(Error::Alignment(_))) {
            return Err(format!("lda 150: {r:?}"));
        }
        // Recipes swapped.
        let r = scalegemm::fp8_gemm_nt(dev, &b, &b, &mut d);
        if !matches!(r, Err(Error::Scale(_))) {
            return Err(format!("per-block A: {r:?}"));
        }
        // A config that cannot run this output: pipelined BLOCK_N 160 (registers); a CTA pair over one
        // N-block.
        // Split-K: with a CTA pair, with 256-row tiles.
        for cfg in ["128x160p", "128x128c2", "128x128c2k2", "256x64k2"] {
            let cfg: Fp8GemmConfig = cfg.parse()?;
            let r = scalegemm::fp8_gemm_nt_with_config(dev, &a, &b, &mut d, cfg);
            if !matches!(r, Err(Error::Shape(_))) {
                return Err(format!("{cfg:?} on 64x64: {r:?}"));
            }
        }
    }
    // D of the wrong shape (BF16, and FP32 with the 1D1D B).
    let mut d = MatrixMut::new(out.as_view_mut(), 64, 63, 64).map_err(se)?;
    let r = scalegemm::fp8_gemm_nt(dev, &a, &b, &mut d);
    if !matches!(r, Err(Error::Shape(_))) {
        return Err(format!("D 64x63: {r:?}"));
    }
    let b11 = GpuOp::new(
        codes_m(160).map_err(se)?,
        Fp8Scales::RowMajor(sfm(64, 2).map_err(se)?),
        GpuRecipe::PerToken,
    )
    .map_err(se)?;
    {
        let mut d32 = MatrixMut::new(out32.as_view_mut(), 64, 63, 64).map_err(se)?;
        let r = scalegemm::fp8_gemm_nt(dev, &a, &b11, &mut d32);
        if !matches!(r, Err(Error::Shape(_))) {
            return Err(format!("FP32 D 64x63 (1D1D): {r:?}"));
        }
        let r = scalegemm::fp8_gemm_nt_acc(dev, &a, &b, Accumulate::InPlace, &mut d32);
        if !matches!(r, Err(Error::Shape(_))) {
            return Err(format!("FP32 D 64x63, C in place: {r:?}"));
        }
    }
    // C of the wrong shape.
    let mut d32 = MatrixMut::new(out32.as_view_mut(), 64, 64, 64).map_err(se)?;
    for (rows, cols) in [(64, 63), (63, 64)] {
        let c = cm(rows, cols, 64).map_err(se)?;
        let r = scalegemm::fp8_gemm_nt_acc(dev, &a, &b11, Accumulate::From(&c), &mut d32);
        if !matches!(r, Err(Error::Shape(_))) {
            return Err(format!("C {rows}x{cols} for D 64x64: {r:?}"));
        }
    }
    // C's leading dimension below its columns.
    let r = cm(64, 64, 63);
    if !matches!(r, Err(Error::Stride(_))) {
        return Err(format!("C with ldc 63 < 64 columns: {r:?}"));
    }
    Ok(())
}

/// The checker itself, on the CPU: for every variant, the Hopper model's own output
/// (placed in a poisoned buffer as the GPU's would be) passes with every compared element
/// bit-equal, and corrupted buffers are refused. Also: every kernel variant the API has is
/// covered by some test variant, and the config lists name configs of `all_configs()`.
pub fn check_selftest() -> TestResult {
    parse_configs(CONFIG_SUBSET)?;
    parse_configs(TMA_STORE_CONFIGS)?;
    let mut variants = vec![Variant::DEFAULT];
    variants.extend(Variant::others());
    for kv in scalegemm::gemm::Fp8Variant::all() {
        if !variants.iter().any(|v| v.kernel() == kv) {
            return Err(format!("kernel variant {kv:?} is not tested"));
        }
    }
    for v in variants {
        let case = Case::of(v, 70, 100, 300)
            .with(|c| c.ldd = 103, "ldd=103")
            .ldc(101)
            .misaligned();
        let p = problem(&case)?;
        let (ra, rb) = ref_operands(&p, &[], &[], false)?;
        let mut model = vec![0.0f32; case.m * case.n];
        hopper::hopper_fp8_gemm(
            &ra,
            &rb,
            p.c_view()?,
            &mut OutView::new(OutBuf::F32(&mut model), case.m, case.n, case.n).map_err(re)?,
        )
        .map_err(re)?;
        let mut d = initial_d(&p);
        let at = |r: usize, j: usize| case.d_offset + r * case.ldd + j;
        let set = |d: &mut Out, i: usize, x: f32| match d {
            Out::Bf16(b) => b[i] = scalegemm_reference::format::bf16::from_f32(x),
            Out::F32(f) => f[i] = x,
        };
        for r in 0..case.m {
            for j in 0..case.n {
                set(&mut d, at(r, j), model[r * case.n + j]);
            }
        }
        let report =
            check(&p, &d, 1).map_err(|e| format!("{}: model output refused: {e}", case.name))?;
        if report.same != report.compared || !report.full {
            return Err(format!("{}: model output: {report}", case.name));
        }
        let bad: [(&str, usize, f32); 4] = [
            ("an element off by 1%+1", at(3, 5), {
                let x = model[3 * case.n + 5];
                x + x.abs() * 0.01 + 1.0
            }),
            ("a NaN element", at(69, 99), f32::NAN),
            ("a written padding column", at(7, case.n + 1), 0.0),
            ("a write before D's start", 0, 0.0),
        ];
        for (what, i, x) in bad {
            let mut e = d.clone();
            set(&mut e, i, x);
            if check(&p, &e, 1).is_ok() {
                return Err(format!("{}: {what} was accepted", case.name));
            }
        }
    }
    Ok(())
}

/// `fp8_gemm_nt` as the first CUDA call of a new thread, where no context is current (a
/// caller's worker thread): the call makes the handle's context current itself (without
/// that, `cuTensorMapEncodeTiled` failed there with CUDA_ERROR_INVALID_CONTEXT). Run on a
/// handle of its own with cudarc's event tracking off (as the bench and careful callers
/// run: a tracked buffer's first use makes the context current as a side effect, which
/// would hide the bug), with A's scales pre-transformed (row-major ones are transformed
/// through cudarc calls that do the same). Operands are uploaded and D allocated on the
/// calling thread; the output is checked against the reference. The default tiles and a
/// CTA pair (whose first launch also counts resident clusters), each from a new thread.
pub fn fresh_thread_case() -> TestResult {
    let dev = Device::new(0).map_err(se)?;
    // SAFETY: the buffers made below are used on this handle's one stream only (stream
    // order then orders every use and free; each D is read back by a synchronising copy).
    unsafe { dev.context().disable_event_tracking() };
    let dev = &dev;
    let s = dev.stream();
    let mut case = Case::new(256, 384, 640);
    case.pre_transformed_sfa = true;
    let p = problem(&case)?;
    let u = upload(dev, &p)?;
    let (a, b) = gpu_operands(&p, &u)?;
    let cfgs = [None, Some(parse_configs(&["128x192c2"])?[0])];
    for cfg in cfgs {
        let mut d = s
            .clone_htod(&vec![bf16::from_bits(POISON_BF16); 256 * 384])
            .map_err(de)?;
        {
            let mut dv = MatrixMut::new(d.as_view_mut(), 256, 384, 384).map_err(se)?;
            std::thread::scope(|t| {
                t.spawn(|| match cfg {
                    None => scalegemm::fp8_gemm_nt(dev, &a, &b, &mut dv),
                    Some(c) => scalegemm::fp8_gemm_nt_with_config(dev, &a, &b, &mut dv, c),
                })
                .join()
                .map_err(|_| "the thread panicked".to_string())?
                .map_err(|e| format!("{cfg:?} from a new thread: {e}"))
            })?;
        }
        let out = Out::Bf16(s.clone_dtoh(&d).map_err(de)?);
        let report = check(&p, &out, launch_splits(dev, &p, cfg))?;
        eprintln!("  256x384x640 {cfg:?} from a new thread: {report}");
    }
    dev.synchronize().map_err(se)?;
    Ok(())
}
