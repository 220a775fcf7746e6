//! `fp8_gemm_nt`: FP8 GEMMs with fine-grained FP32 scales (A 1×128; B 128×128 "1D2D" or
//! 1×128 "1D1D"), BF16 or FP32 output, optional FP32 accumulation input C.

use std::sync::OnceLock;

use cudarc::driver::{CudaSlice, DevicePtr, SyncOnDrop};
use half::bf16;

use super::config::{self, Fp8GemmConfig, Fp8Variant, OutDtype};
use crate::layout;
use crate::runtime::launch::{arg, Launch};
use crate::runtime::tma::{self, TensorMap, TmaElem, TmaSwizzle};
use crate::runtime::Device;
use crate::tensor::{check_device, Fp8Operand, Fp8Recipe, Fp8Scales, Matrix, MatrixMut};
use crate::Error;

mod sealed {
    pub trait Sealed {}
    impl Sealed for half::bf16 {}
    impl Sealed for f32 {}
}

/// Output element types of the FP8 GEMMs: [`half::bf16`] (round to nearest even) and `f32`.
pub trait Fp8Out:
    sealed::Sealed + cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits
{
    /// The kernel variant's output type.
    const DTYPE: OutDtype;

    /// `D = C` row by row (the K = 0 case of `D = C + A·Bᵀ`); only FP32 outputs take a C.
    #[doc(hidden)]
    fn copy_c(dev: &Device, c: &Matrix<f32>, d: &mut MatrixMut<Self>) -> Result<(), Error>
    where
        Self: Sized;
}

impl Fp8Out for bf16 {
    const DTYPE: OutDtype = OutDtype::Bf16;

    fn copy_c(_: &Device, _: &Matrix<f32>, _: &mut MatrixMut<Self>) -> Result<(), Error> {
        Err(Error::Shape("C is only added to an FP32 output".into()))
    }
}

impl Fp8Out for f32 {
    const DTYPE: OutDtype = OutDtype::F32;

    fn copy_c(dev: &Device, c: &Matrix<f32>, d: &mut MatrixMut<f32>) -> Result<(), Error> {
        let n = d.cols();
        for r in 0..d.rows() {
            let src = c.data.slice(r * c.ld..r * c.ld + n);
            let mut dst = d.data.slice_mut(r * d.ld..r * d.ld + n);
            dev.stream()
                .memcpy_dtod(&src, &mut dst)
                .map_err(Error::driver("copying C into D"))?;
        }
        Ok(())
    }
}

/// The accumulation input `C` of `D = C + A·Bᵀ` (FP32 output only).
#[derive(Debug, Clone, Copy)]
pub enum Accumulate<'x, 'a> {
    /// `D = A·Bᵀ`.
    No,
    /// `D = C + A·Bᵀ` with `C` an FP32 `[M, N]` row-major matrix (any leading dimension).
    From(&'x Matrix<'a, f32>),
    /// `D += A·Bᵀ`: `C` is `D` itself (each element is read before it is written).
    InPlace,
}

/// `D = A · Bᵀ` on `dev`'s stream, with the tile [`config::choose_for`] picks for its
/// variant.
///
/// - `a`: E4M3 `[M, K]` K-major, [`Fp8Recipe::PerToken`] scales (1×128, FP32);
/// - `b`: E4M3 `[N, K]` K-major, [`Fp8Recipe::PerBlock`] scales (128×128, FP32: the
///   DeepSeek-V3 "1D2D" recipe) or [`Fp8Recipe::PerToken`] (1×128: "1D1D", the
///   weight-gradient GEMM);
/// - `d`: `[M, N]` row-major, BF16 (round to nearest even) or FP32, any leading
///   dimension ≥ N.
///
/// `D[m, n] = Σ_kb sa[m, kb]·sb[n, kb]·Σ_{k∈kb} a[m, k]·b[n, k]` (`sb[n, kb]` the scale of
/// B's block holding row n), computed as Hopper FP8 `wgmma` partial sums per 128-K block
/// promoted into FP32 with `final = fma(fl32(sa·sb), partial, final)` (DeepGEMM's order; the
/// reference's `hopper_fp8_gemm` models it bit for bit, DESIGN §3.3; split-K below). Any M, N, K ≥ 0 (a K
/// tail shorter than 128 is zero-padded in shared memory, never read from global memory);
/// the launch is asynchronous.
///
/// For M ≤ 128 with a long K the heuristic may split K ([`Fp8GemmConfig::splits`], shown
/// by `SCALEGEMM_PRINT_CONFIGS=1`): each split's k-blocks are promoted as above from zero and
/// the splits' FP32 results added in split order; the reference's `hopper_fp8_gemm_split`
/// with [`Fp8GemmConfig::splits_for`] models that bit for bit. A launch is deterministic
/// (same inputs and config, same bits), but the split count depends on M, N, K and the SM
/// count, so the same row can round differently at M = 128 and M = 129, or with
/// `SCALEGEMM_NUM_SMS`; `SCALEGEMM_SPLIT_K=0` (read once) turns split-K off for batch-invariant
/// results. Split launches use a workspace the [`Device`] keeps and grows on demand (a u32
/// counter per tile plus `splits` FP32 tiles per tile, in whole MiB: 4.3 MB of scratch at
/// 128×2112×7168; buffers it outgrows stay allocated until the `Device` is dropped). To
/// capture split launches in a CUDA graph, make the largest such call once before capturing
/// (an allocation inside a capture would belong to the graph), and do not replay graphs with
/// split launches of one `Device` concurrently on several streams (they share its counters).
///
/// TMA constraints the caller must meet: the codes' base addresses 16-byte aligned and their
/// leading dimensions (bytes) multiples of 16 — pad `ld`, not the shape.
///
/// Host cost per call (H200 hosts, warm caches, `benches/README.md`): 2.7–7.4 µs, varying
/// between the machines the device calls ran on, of which the driver's `cuLaunchKernelEx`
/// takes most (an empty kernel's launch: 2.0–3.5 µs on hosts where this call took
/// 2.7–5.0; the four tensor maps 0.05–0.13 µs each, the heuristic 0.01); cudarc's
/// per-buffer event tracking (on by default when a context has several streams) adds about
/// 3–4 µs (`CudaContext::disable_event_tracking` removes it; that call is unsafe: the caller
/// then orders uses across streams).
///
/// # Errors
/// [`Error::Scale`] for the wrong recipes; [`Error::Shape`] when K or the output shape
/// disagree; [`Error::Alignment`] for TMA alignment; [`Error::Device`] when an operand lives
/// in another context; [`Error::TooLarge`] for a dimension ≥ 2^31 (or, forced configs, a
/// split-K scratch above [`MAX_SPLIT_SCRATCH_BYTES`]); compile and driver errors.
pub fn fp8_gemm_nt<T: Fp8Out>(
    dev: &Device,
    a: &Fp8Operand,
    b: &Fp8Operand,
    d: &mut MatrixMut<T>,
) -> Result<(), Error> {
    let v = variant::<T>(b, &Accumulate::No);
    let cfg = heuristic(dev, v, a.rows(), b.rows(), a.k());
    run(dev, a, b, Accumulate::No, d, cfg)
}

/// `D = C + A·Bᵀ` in FP32 ([`Accumulate`] says where C comes from), otherwise as
/// [`fp8_gemm_nt`]. The reference's `hopper_fp8_gemm` with `c` models it: the promoted sum,
/// then `fl32(final + C)`.
///
/// # Errors
/// As [`fp8_gemm_nt`], plus [`Error::Shape`] / [`Error::Device`] for a C of the wrong shape
/// or context.
pub fn fp8_gemm_nt_acc(
    dev: &Device,
    a: &Fp8Operand,
    b: &Fp8Operand,
    c: Accumulate,
    d: &mut MatrixMut<f32>,
) -> Result<(), Error> {
    let v = variant::<f32>(b, &c);
    let cfg = heuristic(dev, v, a.rows(), b.rows(), a.k());
    run(dev, a, b, c, d, cfg)
}

/// [`fp8_gemm_nt`] with an explicit tile configuration (tests and benchmarks use it to cover
/// every configuration).
///
/// # Errors
/// As [`fp8_gemm_nt`], plus [`Error::Shape`] when `cfg` cannot run this output
/// ([`Fp8GemmConfig::supports`]: e.g. a CTA pair needs an even number of N-blocks).
pub fn fp8_gemm_nt_with_config<T: Fp8Out>(
    dev: &Device,
    a: &Fp8Operand,
    b: &Fp8Operand,
    d: &mut MatrixMut<T>,
    cfg: Fp8GemmConfig,
) -> Result<(), Error> {
    run(dev, a, b, Accumulate::No, d, cfg)
}

/// [`fp8_gemm_nt_acc`] with an explicit tile configuration.
///
/// # Errors
/// As [`fp8_gemm_nt_acc`] and [`fp8_gemm_nt_with_config`].
pub fn fp8_gemm_nt_acc_with_config(
    dev: &Device,
    a: &Fp8Operand,
    b: &Fp8Operand,
    c: Accumulate,
    d: &mut MatrixMut<f32>,
    cfg: Fp8GemmConfig,
) -> Result<(), Error> {
    run(dev, a, b, c, d, cfg)
}

fn env_flag(name: &str, default: bool) -> bool {
    std::env::var(name).map_or(default, |v| !v.is_empty() && v != "0")
}

/// `SCALEGEMM_PRINT_CONFIGS`, read once.
fn print_configs() -> bool {
    static V: OnceLock<bool> = OnceLock::new();
    *V.get_or_init(|| env_flag("SCALEGEMM_PRINT_CONFIGS", false))
}

/// `SCALEGEMM_PDL` (default on), read once: launch with programmatic dependent launch, so
/// the kernel's set-up overlaps the previous kernel's tail (it waits for that kernel with
/// `griddepcontrol.wait` before reading any input).
fn pdl() -> bool {
    static V: OnceLock<bool> = OnceLock::new();
    *V.get_or_init(|| env_flag("SCALEGEMM_PDL", true))
}

fn check_operands<T>(
    dev: &Device,
    a: &Fp8Operand,
    b: &Fp8Operand,
    c: &Accumulate,
    d: &MatrixMut<T>,
) -> Result<(), Error> {
    if a.recipe() != Fp8Recipe::PerToken {
        return Err(Error::Scale("A must use per-token (1×128) scales".into()));
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
    if let Accumulate::From(c) = c {
        if c.rows() != d.rows() || c.cols() != d.cols() {
            return Err(Error::Shape(format!(
                "C is {}×{}, D is {}×{}",
                c.rows(),
                c.cols(),
                d.rows(),
                d.cols()
            )));
        }
        check_device("C", &c.data, dev)?;
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
    for (name, op) in [("A's scales", a), ("B's scales", b)] {
        match &op.scales {
            Fp8Scales::RowMajor(s) => check_device(name, &s.data, dev)?,
            Fp8Scales::TmaAlignedMnMajor(v) => check_device(name, v, dev)?,
        }
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

/// Per-token scales as the kernel reads them: TMA-aligned MN-major, transposed on the GPU
/// into `tmp` when given row-major. Returns the device address and the guard that records
/// the kernel's read for cudarc's cross-stream tracking (keep it until after the launch).
fn mn_major_scales<'o>(
    dev: &'o Device,
    op: &'o Fp8Operand,
    tmp: &'o mut Option<CudaSlice<f32>>,
) -> Result<(u64, SyncOnDrop<'o>), Error> {
    let stream = dev.stream();
    Ok(match &op.scales {
        Fp8Scales::RowMajor(s) => {
            let t = tmp.insert(layout::to_tma_aligned_mn_major_gpu(dev, s)?);
            t.device_ptr(stream)
        }
        Fp8Scales::TmaAlignedMnMajor(v) => v.device_ptr(stream),
    })
}

/// TMA map of per-token scales (TMA-aligned MN-major, `kb` columns of `rows`), boxes of
/// `box_rows` scales of one k-block.
fn scale_map(ptr: u64, rows: usize, kb: usize, box_rows: u32) -> Result<TensorMap, Error> {
    let ld = layout::tma_aligned_ld(rows) as u64;
    tma::encode_2d(
        TmaElem::F32,
        ptr,
        kb as u64,
        rows as u64,
        ld,
        1,
        box_rows,
        TmaSwizzle::None,
    )
}

/// The staging-slab width of the BF16 TMA-store epilogue (`cuda/gemm/epilogue.cuh`):
/// the largest of 128, 64, 32 bytes dividing a tile row.
fn slab(block_n: u32) -> (u32, TmaSwizzle) {
    let row = block_n * 2;
    if row % 128 == 0 {
        (64, TmaSwizzle::B128)
    } else if row % 64 == 0 {
        (32, TmaSwizzle::B64)
    } else {
        (16, TmaSwizzle::B32)
    }
}

/// The kernel variant computing into `T` with B's recipe and C as given.
fn variant<T: Fp8Out>(b: &Fp8Operand, c: &Accumulate) -> Fp8Variant {
    Fp8Variant {
        b_recipe: b.recipe(),
        out: T::DTYPE,
        with_c: !matches!(c, Accumulate::No),
    }
}

fn run<T: Fp8Out>(
    dev: &Device,
    a: &Fp8Operand,
    b: &Fp8Operand,
    c: Accumulate,
    d: &mut MatrixMut<T>,
    cfg: Fp8GemmConfig,
) -> Result<(), Error> {
    check_operands(dev, a, b, &c, d)?;
    // Encoding tensor maps needs the context current on this thread, which may never have
    // used it (measured: CUDA_ERROR_INVALID_CONTEXT from cuTensorMapEncodeTiled).
    dev.bind_to_thread()?;
    let (m, n, k) = (a.rows(), b.rows(), a.k());
    if !cfg.supports(m, n) {
        return Err(Error::Shape(format!(
            "{cfg:?} cannot run a {m}×{n} output (Fp8GemmConfig::supports: BLOCK_M, BLOCK_N, pipelining, CTA pairs, splits)"
        )));
    }
    let variant = variant::<T>(b, &c);
    if m == 0 || n == 0 {
        return Ok(());
    }
    let stream = dev.stream();
    if k == 0 {
        return empty_sum(dev, c, d);
    }
    let kb = k.div_ceil(128);
    let (bm, bn) = (cfg.block_m, cfg.block_n);

    // Scales: A's (and 1D1D B's) TMA-aligned MN-major; 1D2D B's row-major as given.
    let (mut tmp_a, mut tmp_b) = (None, None);
    let (sfa_ptr, _g_sfa) = mn_major_scales(dev, a, &mut tmp_a)?;
    // With a cluster of 2 each CTA loads (and multicasts) half of A's rows. A single M-block
    // shorter than the tile loads only its rows, rounded up to the 8-row swizzle atom (the
    // H200 spent as long on TMA's zero fill of the other rows as on loading them: M = 1 at
    // 1×7168×16384 took 86.6 µs with 64×32 tiles, M = 64 53.7 µs).
    let a_box_rows = if cfg.cluster == 1 && m < bm as usize {
        m.div_ceil(8) as u32 * 8
    } else {
        bm / cfg.cluster
    };
    // A's scales: the rows of A's box (all BLOCK_M with clusters, where each CTA loads its
    // tile's scales whole); the kernel expects that many bytes.
    let sfa_box_rows = if cfg.cluster == 1 { a_box_rows } else { bm };
    let tma_sfa = scale_map(sfa_ptr, m, kb, sfa_box_rows)?;
    let (sfb_ptr, ld_sfb, tma_sfb, _g_sfb) = match b.recipe() {
        Fp8Recipe::PerBlock => {
            let Fp8Scales::RowMajor(sfb) = &b.scales else {
                return Err(Error::Scale(
                    "per-block (128×128) scales are only accepted row-major".into(),
                ));
            };
            let (p, g) = sfb.ptr(stream);
            (p, sfb.ld as u64, tma_sfa, g)
        }
        Fp8Recipe::PerToken => {
            let (p, g) = mn_major_scales(dev, b, &mut tmp_b)?;
            (0u64, 0u64, scale_map(p, n, kb, bn)?, g)
        }
    };
    let (a_ptr, _g_a) = a.codes.ptr(stream);
    let (b_ptr, _g_b) = b.codes.ptr(stream);
    let tma_a = tma::encode_2d(
        TmaElem::U8,
        a_ptr,
        m as u64,
        k as u64,
        a.codes.ld as u64,
        a_box_rows,
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

    let ld_d = d.ld as u64;
    let (d_ptr, _g_d) = d.ptr_mut(stream);
    // The BF16 TMA-store epilogue needs D 16-byte aligned with a row stride a multiple of
    // 16 bytes, and N a multiple of 8: measured on the H200, a TMA store writes the whole
    // 16-byte chunk holding the last column, so a row ending mid-chunk would overwrite the
    // caller's padding. Otherwise the kernel stores directly (any alignment).
    let mut flags = 0u32;
    let mut tma_d = tma_sfa;
    if cfg.staging_bytes(variant) > 0
        && d_ptr % 16 == 0
        && (ld_d * 2 % 16 == 0 || m == 1)
        && n % 8 == 0
    {
        let (cols, swizzle) = slab(bn);
        // 256-row tiles: each math warpgroup stores its own 128 rows (the box's rows equal the
        // kernel's STORE_ROWS, `cuda/gemm/epilogue.cuh`).
        tma_d = tma::encode_2d(
            TmaElem::Bf16,
            d_ptr,
            m as u64,
            n as u64,
            ld_d,
            bm.min(128),
            cols,
            swizzle,
        )?;
        flags |= 1;
    }
    let (c_ptr, ld_c, _g_c) = match c {
        Accumulate::No => (0u64, 0u64, None),
        Accumulate::InPlace => (d_ptr, ld_d, None),
        Accumulate::From(cm) => {
            let (p, g) = cm.ptr(stream);
            (p, cm.ld as u64, Some(g))
        }
    };

    let threads = cfg.threads();
    let smem_bytes = cfg.smem_bytes(variant);
    let shape = Launch {
        grid: (cfg.cluster, 1, 1),
        block: (threads, 1, 1),
        smem_bytes,
        cluster_x: cfg.cluster,
        pdl: pdl(),
    };
    let tiles = m.div_ceil(bm as usize) * n.div_ceil(bn as usize);
    let splits = cfg.splits_for(k);
    // Split-K's workspace (`cuda/gemm/split_k.cuh`): a zero u32 counter per tile and
    // `splits` FP32 tiles per tile. Held (locked) until the launch is enqueued.
    let scratch = tiles * splits as usize * (bm * bn) as usize * 4;
    if cfg.splits > 1 && scratch > MAX_SPLIT_SCRATCH_BYTES {
        return Err(Error::TooLarge(format!(
            "{cfg:?} on {m}×{n}×{k} needs {scratch} bytes of split-K scratch (at most {MAX_SPLIT_SCRATCH_BYTES}): fewer splits or larger tiles"
        )));
    }
    let prepared = dev.prepared((cfg.kernel_config(), variant), || {
        (cfg.spec(variant), shape)
    })?;
    let workspace = if cfg.splits > 1 {
        Some(dev.workspace(tiles, scratch)?)
    } else {
        None
    };
    let (split_counters, split_partials) = workspace
        .as_ref()
        .map_or((0u64, 0u64), |w| (w.counters, w.scratch));
    let units = tiles * splits as usize / cfg.cluster as usize;
    // Whole clusters only, one CTA per SM at most, and (with clusters) no more than can be
    // resident at once: GPCs may not pair up every SM, and surplus clusters of a
    // persistent kernel would wait for whole resident ones.
    let clusters = units
        .min(dev.usable_sms() as usize / cfg.cluster as usize)
        .min(prepared.max_clusters as usize)
        .max(1) as u32;
    let launch = Launch {
        grid: (clusters * cfg.cluster, 1, 1),
        ..shape
    };
    if print_configs() {
        eprintln!(
            "[scalegemm] fp8_gemm_nt {m}x{n}x{k} {variant:?}: {cfg:?}, {} stages, {splits} split(s), grid {} CTAs, TMA store {}",
            cfg.stages_for(variant),
            launch.grid.0,
            flags & 1 != 0
        );
    }

    // The scheduler divides by the band and by M-blocks × band: at least 1, at most the
    // N-block units (a wider band is the same order), so neither is 0 nor wraps.
    let n_units = (n.div_ceil(bn as usize) / cfg.cluster as usize).max(1) as u32;
    let band = cfg.band.clamp(1, n_units);
    let (m32, n32, k32) = (m as u32, n as u32, k as u32);
    let mut args = [
        arg(&tma_a),
        arg(&tma_b),
        arg(&tma_sfa),
        arg(&tma_sfb),
        arg(&tma_d),
        arg(&sfb_ptr),
        arg(&ld_sfb),
        arg(&d_ptr),
        arg(&ld_d),
        arg(&c_ptr),
        arg(&ld_c),
        arg(&m32),
        arg(&n32),
        arg(&k32),
        arg(&band),
        arg(&flags),
        arg(&a_box_rows),
        arg(&splits),
        arg(&split_partials),
        arg(&split_counters),
    ];
    // SAFETY: the arguments match the kernel's parameters (5 TmaDesc, const float*, u64,
    // out_t*, u64, const float*, u64, u32 ×7, float*, u32*). TMA reads stay inside the described tensors
    // (M×K, N×K, kb×M and kb×N with the leading dimensions checked above and by
    // Matrix::new / Fp8Operand::new); 1D2D reads sfb rows < ceil(N/128) and columns < kb
    // (Fp8Operand::new checked that shape); C is read and D written only at rows < M and
    // columns < N (TMA stores clip to the [M, N] tensor). `prepared` raised the shared-memory
    // limit to this variant's size. Split-K (1 ≤ splits ≤ ceil(K/128), checked by
    // `supports` and `splits_for`) touches the workspace only below the `tiles` counters
    // and `tiles·splits` partial tiles sized above, and `workspace` keeps it allocated until
    // the launch is enqueued (later frees are stream-ordered).
    let result = unsafe { launch.run_raised(&prepared.func, stream, &mut args) };
    drop(workspace);
    result
}

/// Most scratch bytes a split-K launch may need ([`Fp8GemmConfig::splits`]: S FP32 tiles
/// per tile; the heuristic's picks need at most a few MB, e.g. 4.3 MB at 128×2112×7168).
pub const MAX_SPLIT_SCRATCH_BYTES: usize = 1 << 30;

/// `SCALEGEMM_SPLIT_K` (default on), read once: whether the heuristic may split K
/// ([`config::choose_for`]); off, it never does ([`config::choose_unsplit_for`]), so every
/// output element is computed in the same order whatever M and the SM count.
fn split_k_enabled() -> bool {
    static V: OnceLock<bool> = OnceLock::new();
    *V.get_or_init(|| env_flag("SCALEGEMM_SPLIT_K", true))
}

/// The heuristic's config for variant `v` of an `m × n × k` GEMM on `dev`.
fn heuristic(dev: &Device, v: Fp8Variant, m: usize, n: usize, k: usize) -> Fp8GemmConfig {
    if split_k_enabled() {
        config::choose_for(v, m, n, k, dev.usable_sms())
    } else {
        config::choose_unsplit_for(v, m, n, k, dev.usable_sms())
    }
}

/// K = 0: an empty sum, `D = C` (or 0).
fn empty_sum<T: Fp8Out>(dev: &Device, c: Accumulate, d: &mut MatrixMut<T>) -> Result<(), Error> {
    match c {
        Accumulate::InPlace => Ok(()),
        Accumulate::From(cm) => T::copy_c(dev, cm, d),
        Accumulate::No => {
            let n = d.cols();
            for r in 0..d.rows() {
                let mut row = d.data.slice_mut(r * d.ld..r * d.ld + n);
                dev.stream()
                    .memset_zeros(&mut row)
                    .map_err(Error::driver("zeroing D"))?;
            }
            Ok(())
        }
    }
}
