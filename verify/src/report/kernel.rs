//! The hook through which GPU kernels (or any other implementation) enter the report.

use half::bf16;

/// One `fp8_gemm_nt` problem in DeepGEMM's 1D2D recipe, as a kernel under test receives
/// it: `D[M, N] = A · Bᵀ` with
/// - `a`: E4M3 codes `[M, K]` row-major (K-major), one byte each;
/// - `sfa`: FP32 scales `[M, ceil(K/128)]` row-major (per-token 1×128);
/// - `b`: E4M3 codes `[N, K]` row-major (K-major);
/// - `sfb`: FP32 scales `[ceil(N/128), ceil(K/128)]` row-major (per-block 128×128).
///
/// The scales are FP32 values; with the UE8M0 recipe they are powers of two held in FP32
/// (DESIGN §2). The expected result is BF16 `[M, N]` row-major.
#[derive(Clone, Debug)]
pub struct Fp8GemmProblem {
    /// Rows of A and D.
    pub m: usize,
    /// Rows of B, columns of D.
    pub n: usize,
    /// The reduction dimension.
    pub k: usize,
    /// A's E4M3 codes, `[M, K]` row-major.
    pub a: Vec<u8>,
    /// A's scales, `[M, ceil(K/128)]` row-major.
    pub sfa: Vec<f32>,
    /// B's E4M3 codes, `[N, K]` row-major.
    pub b: Vec<u8>,
    /// B's scales, `[ceil(N/128), ceil(K/128)]` row-major.
    pub sfb: Vec<f32>,
}

/// A GPU (or any other) implementation of `fp8_gemm_nt` under test. The report runs
/// every backend that [`super::gpu::gpu_backends`] returns on every case, and compares
/// its BF16 output with the exact product of the quantized inputs under the Hopper-model
/// per-element bound.
pub trait Fp8GemmNt {
    /// A short name for tables, e.g. `"scalegemm fp8_gemm_nt (H200)"`.
    fn name(&self) -> String;

    /// Computes `D = A·Bᵀ` (BF16 `[M, N]` row-major) for `p`.
    ///
    /// # Errors
    /// A message when the kernel cannot run this problem (unsupported shape, launch
    /// failure); the report records it as a failed case.
    fn run(&self, p: &Fp8GemmProblem) -> Result<Vec<bf16>, String>;
}
