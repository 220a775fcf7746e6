//! GEMM host APIs (DESIGN §2 naming: `D = C + A·Bᵀ`, `_nt` = both operands K-major).

pub mod config;
mod fp8;
pub mod wgmma;

pub use config::{Fp8GemmConfig, Fp8Variant, OutDtype};
pub use fp8::{
    fp8_gemm_nt, fp8_gemm_nt_acc, fp8_gemm_nt_acc_with_config, fp8_gemm_nt_with_config, Accumulate,
    Fp8Out, MAX_SPLIT_SCRATCH_BYTES,
};
