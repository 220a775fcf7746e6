//! `fp8_gemm_nt`: the DeepSeek-recipe FP8 GEMM (A 1×128, B 128×128 FP32 scales, BF16 out).

use cudarc::driver::DevicePtr;
use half::bf16;

use super::config::{self, Fp8GemmConfig};
use crate::layout;
use crate::runtime::launch::{arg, Launch};
use crate::runtime::tma::{self, TmaElem, TmaSwizzle};
use crate::runtime::Device;
use crate::tensor::{check_device, Fp8Operand, Fp8Recipe, Fp8Scales, MatrixMut};
use crate::Error;

/// `D = A · Bᵀ` in BF16 for the DeepSeek-V3 FP8 recipe ("1D2D"), on `dev`'s stream.
///
/// - `a`: E4M3 `[M, K]` K-major, [`Fp8Recipe::PerToken`] scales (1×128, FP32);
/// - `b`: E4M3 `[N, K]` K-major, [`Fp8Recipe::PerBlock`] scales (128×128, FP32);
/// - `d`: BF16 `[M, N]` row-major with any leading dimension ≥ N.
///
/// `D[m, n] = Σ_kb sa[m, kb]·sb[n/128, kb]·Σ_{k∈kb} a[m, k]·b[n, k]`, computed as Hopper FP8
/// `wgmma` partial sums per 128-K block promoted into FP32 with
/// `final = fma(sa·sb, partial, final)` (DeepGEMM's order; the reference's
/// `hopper_fp8_gemm` models it bit for bit, DESIGN §3.3), rounded to BF16 (nearest even).
/// Any M, N, K ≥ 0 (a K tail shorter than 128 is zero-padded in shared memory, never read
/// from global memory); the launch is asynchronous.
///
/// TMA constraints the caller must meet: the codes' base addresses 16-byte aligned and their
/// leading dimensions (bytes) multiples of 16 — pad `ld`, not the shape.
///
/// # Errors
/// [`Error::Scale`] for the wrong recipes; [`Error::Shape`] when K or the output shape
/// disagree; [`Error::Alignment`] for TMA alignment; [`Error::Device`] when an operand lives
/// in another context; [`Error::TooLarge`] for a dimension ≥ 2^31; compile and driver errors.
pub fn fp8_gemm_nt(
    dev: &Device,
    a: &Fp8Operand,
    b: &Fp8Operand,
    d: &mut MatrixMut<bf16>,
) -> Result<(), Error> {
    let cfg = config::choose(a.rows(), b.rows(), a.k(), dev.usable_sms());
    fp8_gemm_nt_with_config(dev, a, b, d, cfg)
}

fn print_configs() -> bool {
    std::env::var("SCALEGEMM_PRINT_CONFIGS").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn check_operands(
    dev: &Device,
    a: &Fp8Operand,
    b: &Fp8Operand,
    d: &MatrixMut<bf16>,
) -> Result<(), Error> {
    if a.recipe() != Fp8Recipe::PerToken {
        return Err(Error::Scale("A must use per-token (1×128) scales".into()));
    }
    if b.recipe() != Fp8Recipe::PerBlock {
        return Err(Error::Scale("B must use per-block (128×128) scales".into()));
    }
    if a.k() != b.k() {
        return Err(Error::Shape(format!(
            "A has K = {}, B has K = {}",
            a.k(),
            b.k()
        )));
    }
    if d.rows() != a.rows() || d.cols() != b.rows() {
        return Err(Error::Shape(format!(
            "D is {}×{}, A·Bᵀ is {}×{}",
            d.rows(),
            d.cols(),
            a.rows(),
            b.rows()
        )));
    }
    for (name, v) in [("M", a.rows()), ("N", b.rows()), ("K", a.k())] {
        if v >= 1 << 31 {
            return Err(Error::TooLarge(format!(
                "{name} = {v} (the kernel indexes with 32 bits)"
            )));
        }
    }
    check_device("A", &a.codes.data, dev)?;
    check_device("B", &b.codes.data, dev)?;
    check_device("D", &d.data, dev)?;
    match &a.scales {
        Fp8Scales::RowMajor(s) => check_device("A's scales", &s.data, dev)?,
        Fp8Scales::TmaAlignedMnMajor(v) => check_device("A's scales", v, dev)?,
    }
    if let Fp8Scales::RowMajor(s) = &b.scales {
        check_device("B's scales", &s.data, dev)?;
    }
    for (name, op) in [("A", a), ("B", b)] {
        if op.codes.ld % 16 != 0 && op.rows() > 1 {
            return Err(Error::Alignment(format!(
                "{name}'s leading dimension {} bytes is not a multiple of 16 (TMA); pad it (e.g. to {})",
                op.codes.ld,
                op.codes.ld.div_ceil(16) * 16
            )));
        }
    }
    Ok(())
}

/// [`fp8_gemm_nt`] with an explicit tile configuration (tests and benchmarks use it to cover
/// every configuration the heuristic can pick).
///
/// # Errors
/// As [`fp8_gemm_nt`], plus [`Error::Shape`] when `cfg` cannot run this output
/// ([`Fp8GemmConfig::supports`]: a CTA pair needs an even number of N-blocks).
pub fn fp8_gemm_nt_with_config(
    dev: &Device,
    a: &Fp8Operand,
    b: &Fp8Operand,
    d: &mut MatrixMut<bf16>,
    cfg: Fp8GemmConfig,
) -> Result<(), Error> {
    check_operands(dev, a, b, d)?;
    let (m, n, k) = (a.rows(), b.rows(), a.k());
    if !cfg.supports(m, n) {
        return Err(Error::Shape(format!(
            "{cfg:?} cannot run a {m}×{n} output (see Fp8GemmConfig::supports)"
        )));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let stream = dev.stream();
    if k == 0 {
        // An empty sum: D = 0.
        for r in 0..m {
            let mut row = d.data.slice_mut(r * d.ld..r * d.ld + n);
            stream
                .memset_zeros(&mut row)
                .map_err(Error::driver("zeroing D"))?;
        }
        return Ok(());
    }
    let kb = k.div_ceil(128);

    // A's scales in the TMA-aligned MN-major layout (transposed on the GPU if needed).
    let transformed;
    let (sfa_ptr, _g_sfa) = match &a.scales {
        Fp8Scales::RowMajor(s) => {
            transformed = layout::to_tma_aligned_mn_major_gpu(dev, s)?;
            transformed.device_ptr(stream)
        }
        Fp8Scales::TmaAlignedMnMajor(v) => v.device_ptr(stream),
    };
    let Fp8Scales::RowMajor(sfb) = &b.scales else {
        return Err(Error::Scale(
            "per-block (128×128) scales are only accepted row-major".into(),
        ));
    };
    let (sfb_ptr, _g_sfb) = sfb.ptr(stream);
    let (a_ptr, _g_a) = a.codes.ptr(stream);
    let (b_ptr, _g_b) = b.codes.ptr(stream);

    let (bm, bn) = (cfg.block_m, cfg.block_n);
    let tma_a = tma::encode_2d(
        TmaElem::U8,
        a_ptr,
        m as u64,
        k as u64,
        a.codes.ld as u64,
        bm / cfg.cluster, // with a cluster of 2 each CTA loads (and multicasts) half of A
        128,
        TmaSwizzle::B128,
    )?;
    let tma_b = tma::encode_2d(
        TmaElem::U8,
        b_ptr,
        n as u64,
        k as u64,
        b.codes.ld as u64,
        bn,
        128,
        TmaSwizzle::B128,
    )?;
    let mld = layout::tma_aligned_ld(m) as u64;
    let tma_sfa = tma::encode_2d(
        TmaElem::F32,
        sfa_ptr,
        kb as u64,
        m as u64,
        mld,
        1,
        bm,
        TmaSwizzle::None,
    )?;

    let spec = cfg.spec();
    let func = dev.function(&spec)?;
    let ld_sfb = sfb.ld as u64;
    let ld_d = d.ld as u64;
    let (d_ptr, _g_d) = d.ptr_mut(stream);
    let (m32, n32, k32, band) = (m as u32, n as u32, k as u32, cfg.band);
    let mut args = [
        arg(&tma_a),
        arg(&tma_b),
        arg(&tma_sfa),
        arg(&sfb_ptr),
        arg(&ld_sfb),
        arg(&d_ptr),
        arg(&ld_d),
        arg(&m32),
        arg(&n32),
        arg(&k32),
        arg(&band),
    ];
    let c = cfg.cluster as usize;
    let units = m.div_ceil(bm as usize) * n.div_ceil(bn as usize) / c;
    let mut launch = Launch {
        // Whole clusters only: a multiple of `cluster` CTAs, one per SM at most.
        grid: (
            units.min(dev.usable_sms() as usize / c).max(1) as u32 * cfg.cluster,
            1,
            1,
        ),
        block: (cfg.threads(), 1, 1),
        smem_bytes: cfg.smem_bytes(),
        cluster_x: cfg.cluster,
        pdl: false,
    };
    if cfg.cluster > 1 {
        // Persistent clusters: launch no more than can be resident at once (GPCs may not
        // pair up every SM), else the surplus would wait for whole resident clusters.
        let resident = dev.max_active_clusters(&spec, &launch)?.max(1);
        launch.grid.0 = launch.grid.0.min(resident * cfg.cluster);
    }
    if print_configs() {
        eprintln!(
            "[scalegemm] fp8_gemm_nt {m}x{n}x{k}: {cfg:?}, grid {} CTAs",
            launch.grid.0
        );
    }

    // SAFETY: the arguments match the kernel's parameters (3 TmaDesc, const float*, u64,
    // u16*, u64, u32 ×4). TMA reads stay inside the described tensors (M×K, N×K, kb×M with
    // the leading dimensions checked above and by Matrix::new); the kernel reads sfb rows
    // < ceil(N/128) and columns < kb (Fp8Operand::new checked that shape) and writes D only
    // at rows < M and columns < N.
    unsafe { launch.run(&func, stream, &mut args) }
}
