//! `scalegemm`: Hopper (sm_90a) tensor-core kernels for fine-grained-scaled FP8 GEMMs,
//! JIT-compiled with NVRTC at run time and launched through `cudarc`.
//!
//! - [`runtime`]: the device handle ([`Device`]), NVRTC compilation to CUBIN, the disk and
//!   memory JIT caches, TMA descriptors, launches with clusters and PDL;
//! - [`tensor`]: typed device operands ([`Matrix`], [`Fp8Operand`] with its scales and
//!   recipe);
//! - [`gemm`]: [`fp8_gemm_nt`] / [`fp8_gemm_nt_acc`] (A 1×128 FP32 scales; B 128×128
//!   "1D2D", the DeepSeek-V3 recipe, or 1×128 "1D1D"; BF16 or FP32 out, optional FP32 C);
//! - [`layout`]: scale-factor layout transforms (TMA-aligned MN-major), host and GPU.
//!
//! Nothing CUDA is needed to build: `libcuda` and `libnvrtc` are loaded at run time.
//! Without them every entry point returns [`Error::NoDevice`] / [`Error::NoNvrtc`].
//!
//! Environment variables: `SCALEGEMM_CACHE_DIR` (JIT cache directory), `SCALEGEMM_JIT_DEBUG`
//! (compile times, cache hits, registers), `SCALEGEMM_DUMP_PTX` / `SCALEGEMM_DUMP_SASS`
//! (write sources, PTX, CUBIN and SASS to a directory), `SCALEGEMM_PRINT_CONFIGS` (chosen
//! tiles), `SCALEGEMM_NUM_SMS` (limit the SMs persistent kernels use, read when a `Device`
//! is created), `SCALEGEMM_PDL` (`0` turns programmatic dependent launch off).
#![warn(missing_docs)]

mod error;
pub mod gemm;
pub mod layout;
pub mod runtime;
pub mod tensor;

pub use error::Error;
pub use gemm::{
    fp8_gemm_nt, fp8_gemm_nt_acc, fp8_gemm_nt_acc_with_config, fp8_gemm_nt_with_config, Accumulate,
    Fp8GemmConfig,
};
pub use runtime::Device;
pub use tensor::{Fp8Operand, Fp8Recipe, Fp8Scales, Matrix, MatrixMut};

/// Re-export of the `cudarc` version whose types the API takes.
pub use cudarc;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
