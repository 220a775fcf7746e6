//! cuBLASLt baselines for the GPU benchmarks, on cudarc 0.19's `cublaslt::{result, sys}`
//! layer (the safe `CudaBlasLT` wrapper has no scale modes): the blockwise-scaled FP8 GEMM
//! of the DeepSeek-V3 recipe ([`BlockwiseFp8Gemm`]) and a BF16 GEMM ([`Bf16Gemm`]) for the
//! card's roofline.
//!
//! # The problem and the operand mapping
//! Both compute our `D[M, N] = A[M, K] · B[N, K]ᵀ`: A and B K-major (row-major, leading
//! dimension K), D BF16 row-major (leading dimension N), FP32 accumulation
//! (`CUBLAS_COMPUTE_32F`, scale type `CUDA_R_32F`, α = 1, β = 0, C = D). cuBLASLt is
//! column-major and computes `D_c[m_c × n_c] = op(A_c) · op(B_c)` (cuBLAS docs,
//! "cublasLtMatmul()"; `CUBLASLT_MATMUL_DESC_TRANSA/B` in "cublasLtMatmulDescAttributes_t").
//! Our K-major `[rows, K]` operand is a column-major `K × rows` matrix with leading
//! dimension K, so it enters as cuBLASLt's A with `TRANSA = T` or as its B with
//! `TRANSB = N`. Two mappings follow ([`Fp8Mapping`]):
//!
//! - [`Fp8Mapping::WeightsAsA`] (default; what `torch._scaled_mm` does for a row-major
//!   output): row-major D `[M, N]` is column-major `Dᵀ = B·Aᵀ` (`N × M`, ld N), so
//!   cuBLASLt's A is our B (`K × N`, ld K, `TRANSA = T`, scale mode `BLK128x128_32F`),
//!   cuBLASLt's B is our A (`K × M`, ld K, `TRANSB = N`, scale mode `VEC128_32F`);
//!   `m_c = N`, `n_c = M`. D comes out exactly as our kernel writes it.
//! - [`Fp8Mapping::ActivationsAsA`] (NVIDIA's CUDALibrarySamples `LtBlk128x128Fp8Matmul`:
//!   `TRANSA = T`, `TRANSB = N`, A `VEC128_32F`, B `BLK128x128_32F`): cuBLASLt's A is our A,
//!   its B our B, `m_c = M`, `n_c = N`; D comes out column-major `M × N` (ld M), i.e.
//!   row-major `[N, M]` = our Dᵀ.
//!
//! The scale *modes* follow the operands (`VEC128_32F` on the per-token activations,
//! `BLK128x128_32F` on the per-block weights), so cuBLASLt's "A"/"B" in GPU.md's
//! "A `VEC128_32F` × B `BLK128x128_32F`" depends on the mapping; [`BlockwiseFp8Gemm::new`]
//! reports a mapping cuBLASLt refuses as [`LtError::NotSupported`], and
//! [`BlockwiseFp8Gemm::first_supported`] tries both.
//!
//! # Scale layouts
//! Modes: `CUBLASLT_MATMUL_DESC_{A,B}_SCALE_MODE` take a `cublasLtMatmulMatrixScale_t`
//! (cuBLAS docs, "cublasLtMatmulMatrixScale_t": `VEC128_32F` = one FP32 scale per 128
//! consecutive K elements of a row, `BLK128x128_32F` = one FP32 scale per 128 × 128
//! block); `CUBLASLT_MATMUL_DESC_{A,B}_SCALE_POINTER` take the device address. The tensor
//! layouts are those `torch._scaled_mm` hands to cuBLASLt unchanged (PyTorch
//! `aten/src/ATen/native/cuda/ScaledBlas.cpp`, `is_blockwise_1x128_scaling` /
//! `is_blockwise_128x128_scaling`: "outer-dim-major" and "near-inner-dim-major (with
//! 16-byte aligned strides)"), which GPU.md saw run on the H200 through `torch._scaled_mm`:
//!
//! - `VEC128_32F` for a `[rows, K]` operand: `rows × ceil(K/128)` scales, rows contiguous:
//!   scale `(r, kb)` at `kb · rows + r` ([`vec128_scales`]). This is our TMA-aligned
//!   MN-major layout without its padding of `rows` to a multiple of 4.
//! - `BLK128x128_32F` for a `[rows, K]` operand: `ceil(rows/128) × ceil(K/128)` scales,
//!   K blocks contiguous, rows of scales `ld = round_up(ceil(K/128), 4)` floats apart
//!   (16-byte aligned): scale `(rb, kb)` at `rb · ld + kb` ([`blk128x128_scales`],
//!   [`blk128x128_ld`]). Older PyTorch passed `ld = ceil(K/128)`; both agree when
//!   `ceil(K/128)` is a multiple of 4 (every shape of the bench), and `bench_fp8_gemm
//!   --check` tries both against the CPU reference on a K with 5 blocks.
//!
//! Both layouts depend only on the mode and the operand, not on the mapping, so one set of
//! converted scales serves either mapping. They are checked against `scalegemm-reference`
//! by `bench_fp8_gemm --check` (the bench's "check its scale layouts" step).
//!
//! # Errors
//! Every cuBLASLt status other than success becomes an [`LtError`]; "no algorithm for this
//! problem" (for example M = 1 with `VEC128_32F`, whose scale columns cannot be 16-byte
//! aligned) is [`LtError::NotSupported`], which the bench prints as "n/a". Nothing here
//! panics on a cuBLASLt refusal.

use std::ffi::c_void;
use std::sync::Arc;

use half::bf16;
use scalegemm::cudarc::cublaslt::result::{self, CublasError};
use scalegemm::cudarc::cublaslt::sys;
use scalegemm::cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DriverError};

use sys::cublasLtMatmulDescAttributes_t as Attr;
use sys::cublasLtMatmulMatrixScale_t as ScaleMode;
use sys::cudaDataType_t as DType;

/// Workspace offered to cuBLASLt's algorithms: 32 MiB, NVIDIA's recommendation for Hopper
/// (the size cudarc's own `Workspace` picks for compute capability ≥ 9).
pub const WORKSPACE_BYTES: usize = 32 << 20;

/// What a cuBLASLt call can fail with.
#[derive(Debug)]
pub enum LtError {
    /// `libcublasLt` could not be loaded (no CUDA toolkit libraries on the loader path).
    NoLibrary,
    /// cuBLASLt has no algorithm for this problem (`cublasLtMatmulAlgoGetHeuristic` returned
    /// none, or `CUBLAS_STATUS_NOT_SUPPORTED`); holds what was asked.
    NotSupported(String),
    /// Any other cuBLASLt status, with the call that returned it.
    Cublas {
        /// The call that failed.
        call: &'static str,
        /// Its status.
        status: sys::cublasStatus_t,
    },
    /// A CUDA driver call (allocating the workspace) failed.
    Driver(DriverError),
    /// A buffer is too short for the problem, or a dimension does not fit cuBLASLt's types.
    Shape(String),
}

impl std::fmt::Display for LtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LtError::NoLibrary => write!(f, "libcublasLt not found"),
            LtError::NotSupported(what) => write!(f, "cuBLASLt does not support {what}"),
            LtError::Cublas { call, status } => write!(f, "{call}: {status:?}"),
            LtError::Driver(e) => write!(f, "CUDA driver: {e}"),
            LtError::Shape(what) => write!(f, "shape: {what}"),
        }
    }
}

impl std::error::Error for LtError {}

/// Maps a failed call's status to an [`LtError`] (`NOT_SUPPORTED` to
/// [`LtError::NotSupported`]).
fn check(call: &'static str, what: impl Fn() -> String) -> impl FnOnce(CublasError) -> LtError {
    move |CublasError(status)| match status {
        sys::cublasStatus_t::CUBLAS_STATUS_NOT_SUPPORTED => LtError::NotSupported(what()),
        status => LtError::Cublas { call, status },
    }
}

/// A cuBLASLt handle, its workspace and the stream every matmul of this module runs on.
pub struct Lt {
    handle: sys::cublasLtHandle_t,
    workspace: CudaSlice<u8>,
    stream: Arc<CudaStream>,
}

impl Lt {
    /// Loads cuBLASLt, creates a handle and allocates [`WORKSPACE_BYTES`] on `stream`.
    ///
    /// # Errors
    /// [`LtError::NoLibrary`] when `libcublasLt` is missing (checked first: cudarc panics
    /// on a missing library otherwise); cuBLASLt and driver errors.
    pub fn new(stream: Arc<CudaStream>) -> Result<Self, LtError> {
        // SAFETY: only tries to dlopen the library.
        if !unsafe { sys::is_culib_present() } {
            return Err(LtError::NoLibrary);
        }
        stream.context().bind_to_thread().map_err(LtError::Driver)?;
        let handle = result::create_handle().map_err(check("cublasLtCreate", String::new))?;
        // SAFETY: the workspace is scratch memory cuBLASLt writes before it reads.
        let workspace = unsafe { stream.alloc::<u8>(WORKSPACE_BYTES) };
        let workspace = match workspace {
            Ok(w) => w,
            Err(e) => {
                // SAFETY: `handle` was created above and is not used after this.
                unsafe { result::destroy_handle(handle) }.ok();
                return Err(LtError::Driver(e));
            }
        };
        Ok(Lt {
            handle,
            workspace,
            stream,
        })
    }

    /// The stream cuBLASLt's kernels are enqueued on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }
}

impl Drop for Lt {
    fn drop(&mut self) {
        // SAFETY: the handle was created in `Lt::new` and every plan using it borrows `self`
        // only during a call.
        unsafe { result::destroy_handle(self.handle) }.ok();
    }
}

/// Which of cuBLASLt's operands our A (activations, per-token scales) is; see the module
/// docs for both mappings and where each comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fp8Mapping {
    /// cuBLASLt A = our B (`BLK128x128_32F`, `TRANSA = T`), cuBLASLt B = our A
    /// (`VEC128_32F`, `TRANSB = N`); D row-major `[M, N]` (as `torch._scaled_mm`).
    WeightsAsA,
    /// cuBLASLt A = our A (`VEC128_32F`, `TRANSA = T`), cuBLASLt B = our B
    /// (`BLK128x128_32F`, `TRANSB = N`); D comes out row-major `[N, M]` (our Dᵀ), as in
    /// NVIDIA's `LtBlk128x128Fp8Matmul` sample.
    ActivationsAsA,
}

impl Fp8Mapping {
    /// Whether D is written transposed (row-major `[N, M]`).
    pub fn transposes_d(self) -> bool {
        self == Fp8Mapping::ActivationsAsA
    }
}

/// One configured cuBLASLt matmul: descriptor, layouts and the heuristic's algorithm.
struct Plan {
    desc: sys::cublasLtMatmulDesc_t,
    layouts: [sys::cublasLtMatrixLayout_t; 3], // A_c, B_c, D_c (C = D)
    algo: sys::cublasLtMatmulAlgo_t,
}

/// What a [`Plan`] computes, in cuBLASLt's (column-major) terms.
struct PlanSpec {
    what: String,
    ab_type: DType,
    /// Rows and columns of `D_c`, and K.
    m_c: u64,
    n_c: u64,
    k: u64,
    /// Scale modes of A_c and B_c (FP8 only).
    scale_modes: Option<(ScaleMode, ScaleMode)>,
}

fn set_desc<T>(desc: sys::cublasLtMatmulDesc_t, attr: Attr, value: &T) -> Result<(), LtError> {
    // SAFETY: `desc` is a live descriptor; `value` points to `size_of::<T>()` readable bytes
    // of the attribute's documented type (int32 for TRANS/SCALE_MODE, a pointer for
    // *_SCALE_POINTER), which cuBLASLt copies.
    unsafe {
        result::set_matmul_desc_attribute(
            desc,
            attr,
            value as *const T as *const c_void,
            std::mem::size_of::<T>(),
        )
    }
    .map_err(check("cublasLtMatmulDescSetAttribute", || {
        format!("{attr:?}")
    }))
}

impl Plan {
    /// `D_c = op(A_c)·op(B_c)` with `TRANSA = T` (A_c stored `k × m_c`, ld k), `TRANSB = N`
    /// (B_c stored `k × n_c`, ld k), D_c BF16 `m_c × n_c` (ld m_c); queries the heuristic
    /// with the scale pointers set to a placeholder (the workspace's address: a valid,
    /// 256-byte-aligned device address) that [`Plan::run`] replaces.
    fn new(lt: &Lt, spec: PlanSpec) -> Result<Self, LtError> {
        let mut plan = Plan {
            desc: std::ptr::null_mut(),
            layouts: [std::ptr::null_mut(); 3],
            algo: sys::cublasLtMatmulAlgo_t { data: [0; 8] },
        };
        let what = || spec.what.clone();
        plan.desc = result::create_matmul_desc(
            sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            DType::CUDA_R_32F,
        )
        .map_err(check("cublasLtMatmulDescCreate", what))?;
        let (op_t, op_n) = (1i32, 0i32); // CUBLAS_OP_T, CUBLAS_OP_N
        set_desc(plan.desc, Attr::CUBLASLT_MATMUL_DESC_TRANSA, &op_t)?;
        set_desc(plan.desc, Attr::CUBLASLT_MATMUL_DESC_TRANSB, &op_n)?;
        if let Some((mode_a, mode_b)) = spec.scale_modes {
            let placeholder = plan_placeholder(lt);
            set_desc(
                plan.desc,
                Attr::CUBLASLT_MATMUL_DESC_A_SCALE_MODE,
                &(mode_a as i32),
            )?;
            set_desc(
                plan.desc,
                Attr::CUBLASLT_MATMUL_DESC_B_SCALE_MODE,
                &(mode_b as i32),
            )?;
            set_desc(
                plan.desc,
                Attr::CUBLASLT_MATMUL_DESC_A_SCALE_POINTER,
                &placeholder,
            )?;
            set_desc(
                plan.desc,
                Attr::CUBLASLT_MATMUL_DESC_B_SCALE_POINTER,
                &placeholder,
            )?;
        }
        let dims = [
            (spec.ab_type, spec.k, spec.m_c),
            (spec.ab_type, spec.k, spec.n_c),
            (DType::CUDA_R_16BF, spec.m_c, spec.n_c),
        ];
        for (slot, (ty, rows, cols)) in plan.layouts.iter_mut().zip(dims) {
            let ld = i64::try_from(rows).map_err(|_| LtError::Shape(what()))?;
            *slot = result::create_matrix_layout(ty, rows, cols, ld)
                .map_err(check("cublasLtMatrixLayoutCreate", what))?;
        }
        let pref =
            result::create_matmul_pref().map_err(check("cublasLtMatmulPreferenceCreate", what))?;
        let heuristic = (|| {
            let bytes = WORKSPACE_BYTES as u64;
            // SAFETY: `pref` is live; the attribute is a uint64 read from `bytes`.
            unsafe {
                result::set_matmul_pref_attribute(
                    pref,
                    sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                    &bytes as *const u64 as *const c_void,
                    std::mem::size_of::<u64>(),
                )
            }
            .map_err(check("cublasLtMatmulPreferenceSetAttribute", what))?;
            let [a, b, d] = plan.layouts;
            // SAFETY: handle, descriptor, layouts and preference are live (C = D layout).
            unsafe { result::get_matmul_algo_heuristic(lt.handle, plan.desc, a, b, d, d, pref) }
                .map_err(check("cublasLtMatmulAlgoGetHeuristic", what))
        })();
        // SAFETY: `pref` was created above and is not used after this.
        unsafe { result::destroy_matmul_pref(pref) }.ok();
        plan.algo = heuristic?.algo;
        Ok(plan)
    }

    /// Enqueues the matmul on `lt`'s stream; `scales` = (A_c's, B_c's) scale addresses for FP8.
    ///
    /// # Safety
    /// `a`, `b` and `d` must be device addresses of buffers holding A_c, B_c and D_c as the
    /// plan describes (checked by the callers), and `scales` of scale tensors of the
    /// plan's modes, all alive until the matmul has run.
    unsafe fn run(
        &self,
        lt: &Lt,
        a: u64,
        b: u64,
        d: u64,
        scales: Option<(u64, u64)>,
    ) -> Result<(), LtError> {
        if let Some((sa, sb)) = scales {
            set_desc(self.desc, Attr::CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sa)?;
            set_desc(self.desc, Attr::CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sb)?;
        }
        let (alpha, beta) = (1.0f32, 0.0f32);
        let (ws, _ws_guard) = lt.workspace.device_ptr(&lt.stream);
        let [la, lb, ld] = self.layouts;
        result::matmul(
            lt.handle,
            self.desc,
            &alpha as *const f32 as *const c_void,
            &beta as *const f32 as *const c_void,
            a as *const c_void,
            la,
            b as *const c_void,
            lb,
            d as *const c_void,
            ld,
            d as *mut c_void,
            ld,
            &self.algo,
            ws as *mut c_void,
            WORKSPACE_BYTES,
            lt.stream.cu_stream() as sys::cudaStream_t,
        )
        .map_err(check("cublasLtMatmul", || "this matmul".into()))
    }
}

/// The workspace's device address, used as a placeholder scale pointer (see [`Plan::new`]).
fn plan_placeholder(lt: &Lt) -> u64 {
    let (ptr, _guard) = lt.workspace.device_ptr(&lt.stream);
    ptr
}

impl Drop for Plan {
    fn drop(&mut self) {
        // SAFETY: each non-null handle was created by `Plan::new` and is destroyed once.
        unsafe {
            for layout in self.layouts {
                if !layout.is_null() {
                    result::destroy_matrix_layout(layout).ok();
                }
            }
            if !self.desc.is_null() {
                result::destroy_matmul_desc(self.desc).ok();
            }
        }
    }
}

fn check_len(what: &str, len: usize, need: usize) -> Result<(), LtError> {
    if len < need {
        return Err(LtError::Shape(format!(
            "{what} has {len} elements, needs {need}"
        )));
    }
    Ok(())
}

/// cuBLASLt's blockwise FP8 GEMM for the DeepSeek-V3 "1D2D" recipe:
/// `D[M, N] = Σ_kb sa[m, kb]·sb[n/128, kb]·Σ_{k∈kb} a[m, k]·b[n, k]` in BF16, with A `[M, K]`
/// and B `[N, K]` E4M3 codes (K-major, ld K), A's 1×128 FP32 scales in the
/// [`vec128_scales`] layout and B's 128×128 FP32 scales in the [`blk128x128_scales`]
/// layout. D is row-major `[M, N]` for [`Fp8Mapping::WeightsAsA`] and `[N, M]` for
/// [`Fp8Mapping::ActivationsAsA`].
pub struct BlockwiseFp8Gemm {
    plan: Plan,
    mapping: Fp8Mapping,
    m: usize,
    n: usize,
    k: usize,
}

impl BlockwiseFp8Gemm {
    /// Plans an `m × n × k` blockwise GEMM with `mapping` (heuristic query with a
    /// [`WORKSPACE_BYTES`] workspace).
    ///
    /// # Errors
    /// [`LtError::NotSupported`] when cuBLASLt has no algorithm (e.g. M = 1, or a mapping
    /// whose scale-mode pair it does not run); other cuBLASLt errors.
    pub fn new(
        lt: &Lt,
        m: usize,
        n: usize,
        k: usize,
        mapping: Fp8Mapping,
    ) -> Result<Self, LtError> {
        let (vec, blk) = (
            ScaleMode::CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F,
            ScaleMode::CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F,
        );
        let (m_c, n_c, scale_modes) = match mapping {
            Fp8Mapping::WeightsAsA => (n, m, (blk, vec)),
            Fp8Mapping::ActivationsAsA => (m, n, (vec, blk)),
        };
        let plan = Plan::new(
            lt,
            PlanSpec {
                what: format!("blockwise FP8 {m}x{n}x{k} ({mapping:?})"),
                ab_type: DType::CUDA_R_8F_E4M3,
                m_c: m_c as u64,
                n_c: n_c as u64,
                k: k as u64,
                scale_modes: Some(scale_modes),
            },
        )?;
        Ok(BlockwiseFp8Gemm {
            plan,
            mapping,
            m,
            n,
            k,
        })
    }

    /// [`BlockwiseFp8Gemm::new`] with [`Fp8Mapping::WeightsAsA`], else
    /// [`Fp8Mapping::ActivationsAsA`] when cuBLASLt refuses the first.
    ///
    /// # Errors
    /// The second mapping's error when both are refused.
    pub fn first_supported(lt: &Lt, m: usize, n: usize, k: usize) -> Result<Self, LtError> {
        match Self::new(lt, m, n, k, Fp8Mapping::WeightsAsA) {
            Err(LtError::NotSupported(_)) => Self::new(lt, m, n, k, Fp8Mapping::ActivationsAsA),
            r => r,
        }
    }

    /// The operand mapping of this plan.
    pub fn mapping(&self) -> Fp8Mapping {
        self.mapping
    }

    /// Enqueues `d = a·bᵀ` on the [`Lt`]'s stream.
    ///
    /// - `a`: E4M3 codes `[M, K]` row-major; `a_scales`: [`vec128_scales`] of A (`M·ceil(K/128)`);
    /// - `b`: E4M3 codes `[N, K]` row-major; `b_scales`: [`blk128x128_scales`] of B with
    ///   `ld` = [`blk128x128_ld`] (at least `(ceil(N/128) − 1)·ld + ceil(K/128)` floats; the
    ///   `--check` mode also passes other layouts in buffers that long);
    /// - `d`: BF16, `M·N` elements (layout per [`Fp8Mapping`]).
    ///
    /// # Errors
    /// [`LtError::Shape`] for too-short buffers; cuBLASLt errors.
    pub fn run(
        &self,
        lt: &Lt,
        a: &CudaSlice<u8>,
        a_scales: &CudaSlice<f32>,
        b: &CudaSlice<u8>,
        b_scales: &CudaSlice<f32>,
        d: &mut CudaSlice<bf16>,
    ) -> Result<(), LtError> {
        let (m, n, k) = (self.m, self.n, self.k);
        let kb = k.div_ceil(128);
        check_len("A", a.len(), m * k)?;
        check_len("B", b.len(), n * k)?;
        check_len("A's scales", a_scales.len(), m * kb)?;
        // Room for the padded layout, whatever leading dimension the caller chose.
        let nb = n.div_ceil(128);
        check_len(
            "B's scales",
            b_scales.len(),
            nb.saturating_sub(1) * blk128x128_ld(kb) + kb,
        )?;
        check_len("D", d.len(), m * n)?;
        let s = &lt.stream;
        let (pa, _ga) = a.device_ptr(s);
        let (pb, _gb) = b.device_ptr(s);
        let (psa, _gsa) = a_scales.device_ptr(s);
        let (psb, _gsb) = b_scales.device_ptr(s);
        let (pd, _gd) = d.device_ptr_mut(s);
        let (a_c, b_c, scales) = match self.mapping {
            Fp8Mapping::WeightsAsA => (pb, pa, (psb, psa)),
            Fp8Mapping::ActivationsAsA => (pa, pb, (psa, psb)),
        };
        // SAFETY: lengths checked above against the plan's shapes and the scale layouts of
        // the module docs; the guards keep the buffers alive for the call.
        unsafe { self.plan.run(lt, a_c, b_c, pd, Some(scales)) }
    }
}

/// cuBLASLt BF16 GEMM `D[M, N] = A[M, K]·B[N, K]ᵀ` (BF16 in, FP32 compute, BF16 out, all
/// row-major with ld K, K and N), through the [`Fp8Mapping::WeightsAsA`] mapping: the
/// card's BF16 tensor-core roofline for context.
pub struct Bf16Gemm {
    plan: Plan,
    m: usize,
    n: usize,
    k: usize,
}

impl Bf16Gemm {
    /// Plans an `m × n × k` BF16 GEMM.
    ///
    /// # Errors
    /// [`LtError::NotSupported`] when cuBLASLt has no algorithm; other cuBLASLt errors.
    pub fn new(lt: &Lt, m: usize, n: usize, k: usize) -> Result<Self, LtError> {
        let plan = Plan::new(
            lt,
            PlanSpec {
                what: format!("BF16 {m}x{n}x{k}"),
                ab_type: DType::CUDA_R_16BF,
                m_c: n as u64,
                n_c: m as u64,
                k: k as u64,
                scale_modes: None,
            },
        )?;
        Ok(Bf16Gemm { plan, m, n, k })
    }

    /// Enqueues `d = a·bᵀ` (`a` `[M, K]`, `b` `[N, K]`, `d` `[M, N]`, row-major) on the
    /// [`Lt`]'s stream.
    ///
    /// # Errors
    /// [`LtError::Shape`] for too-short buffers; cuBLASLt errors.
    pub fn run(
        &self,
        lt: &Lt,
        a: &CudaSlice<bf16>,
        b: &CudaSlice<bf16>,
        d: &mut CudaSlice<bf16>,
    ) -> Result<(), LtError> {
        check_len("A", a.len(), self.m * self.k)?;
        check_len("B", b.len(), self.n * self.k)?;
        check_len("D", d.len(), self.m * self.n)?;
        let s = &lt.stream;
        let (pa, _ga) = a.device_ptr(s);
        let (pb, _gb) = b.device_ptr(s);
        let (pd, _gd) = d.device_ptr_mut(s);
        // SAFETY: lengths checked above; guards keep the buffers alive for the call.
        unsafe { self.plan.run(lt, pb, pa, pd, None) }
    }
}

/// Row-major `[rows, kb]` per-token (1×128) scales (as `scalegemm_bench::Fp8Inputs::sfa`)
/// to cuBLASLt's `VEC128_32F` layout: rows contiguous, scale `(r, c)` at `c·rows + r`.
///
/// # Panics
/// If `sf` holds fewer than `rows·kb` values.
pub fn vec128_scales(sf: &[f32], rows: usize, kb: usize) -> Vec<f32> {
    assert!(sf.len() >= rows * kb, "scales shorter than {rows}x{kb}");
    (0..kb)
        .flat_map(|c| (0..rows).map(move |r| sf[r * kb + c]))
        .collect()
}

/// Leading dimension (floats) of the `BLK128x128_32F` layout for `kb` K blocks:
/// `round_up(kb, 4)`, so each row of block scales starts 16-byte aligned.
pub fn blk128x128_ld(kb: usize) -> usize {
    kb.div_ceil(4) * 4
}

/// Row-major `[row_blocks, kb]` per-block (128×128) scales (as
/// `scalegemm_bench::Fp8Inputs::sfb`) to cuBLASLt's `BLK128x128_32F` layout: K blocks
/// contiguous, scale `(rb, c)` at `rb·ld + c`, padding 0 (`ld` ≥ `kb`, normally
/// [`blk128x128_ld`]).
///
/// # Panics
/// If `ld < kb` or `sf` holds fewer than `row_blocks·kb` values.
pub fn blk128x128_scales(sf: &[f32], row_blocks: usize, kb: usize, ld: usize) -> Vec<f32> {
    assert!(
        ld >= kb && sf.len() >= row_blocks * kb,
        "bad 128x128 scale shape"
    );
    let mut out = vec![0.0; row_blocks * ld];
    for rb in 0..row_blocks {
        out[rb * ld..rb * ld + kb].copy_from_slice(&sf[rb * kb..(rb + 1) * kb]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_layouts() {
        // 3 rows × 2 K blocks, value = 10·r + c.
        let sf = [0.0, 1.0, 10.0, 11.0, 20.0, 21.0];
        assert_eq!(vec128_scales(&sf, 3, 2), [0.0, 10.0, 20.0, 1.0, 11.0, 21.0]);
        assert_eq!(blk128x128_ld(5), 8);
        assert_eq!(
            blk128x128_scales(&sf, 3, 2, 4),
            [0.0, 1.0, 0.0, 0.0, 10.0, 11.0, 0.0, 0.0, 20.0, 21.0, 0.0, 0.0]
        );
    }
}
