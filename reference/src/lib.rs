//! `scalegemm-reference`: the exact CPU reference every `scalegemm` kernel is judged against.
//!
//! Pure Rust, no GPU, no `unsafe`. It holds
//! - [`format`](mod@format): bit-exact codecs for E4M3, E5M2, E2M1 (FP4), UE8M0 and a correctly
//!   rounded f64 → BF16 (OCP OFP8 v1.0, OCP MX v1.0; DESIGN §3.1);
//! - [`quant`]: the quantization recipes inference stacks use (per-token 1×G, per-block
//!   G×G, per-channel; FP32 or UE8M0 scales; FP4 packing) and the scale-factor layouts
//!   the kernels read;
//! - [`gemm`]: `D = C + A·Bᵀ` for FP8×FP8 (1D2D, 1D1D), FP8×FP4, BF16×BF16 over any
//!   layout, dense and grouped (contiguous, masked, K-grouped), exact to the final cast
//!   (DESIGN §3.2).
//!
//! Every fallible function returns [`Error`]; nothing here panics on bad input.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod format;
pub mod gemm;
pub mod quant;

pub use error::Error;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
