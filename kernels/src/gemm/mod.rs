//! GEMM host APIs (DESIGN §2 naming: `D = C + A·Bᵀ`, `_nt` = both operands K-major).

pub mod config;
mod fp8;
pub mod wgmma;

pub use config::Fp8GemmConfig;
pub use fp8::{fp8_gemm_nt, fp8_gemm_nt_with_config};
