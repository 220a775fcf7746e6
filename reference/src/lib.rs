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
//!   (DESIGN §3.2);
//! - [`hopper`]: bit-level model of Hopper `wgmma` accumulation, its FP8 GEMM and error bound.
//! - [`attention`]: the lightning indexer's MQA logits (DeepGEMM `fp8_mqa_logits`,
//!   `fp8_paged_mqa_logits` and their FP4 variants), paged and non-paged.
//!
//! Every fallible function returns [`Error`]; nothing here panics on bad input.
//!
//! # Example: the DeepSeek FP8 recipe, end to end
//! ```
//! use scalegemm_reference::{gemm::*, quant::*};
//!
//! let (m, n, k) = (7, 576, 1152);
//! let x: Vec<f32> = (0..m * k).map(|i| (i as f32).sin()).collect();
//! let w: Vec<f32> = (0..n * k).map(|i| (i as f32).cos()).collect();
//! let qa = per_token_cast(&x, m, k, 128, Elem::E4M3, ScaleRound::Fp32)?; // 1x128
//! let qb = per_block_cast(&w, n, k, 128, Elem::E4M3, ScaleRound::Fp32)?; // 128x128
//! let sa = MatView::k_major(&qa.scales, qa.scale_rows, qa.scale_cols, qa.scale_cols)?;
//! let sb = MatView::k_major(&qb.scales, qb.scale_rows, qb.scale_cols, qb.scale_cols)?;
//! let a = Fp8Operand::new(MatView::k_major(&qa.codes, m, k, k)?, Scales::F32(sa), Fp8Recipe::PerToken)?;
//! let b = Fp8Operand::new(MatView::k_major(&qb.codes, n, k, k)?, Scales::F32(sb), Fp8Recipe::PerBlock)?;
//! let mut d = vec![half::bf16::ZERO; m * n];
//! gemm(&a.into(), &b.into(), None, &mut OutView::new(OutBuf::Bf16(&mut d), m, n, n)?)?;
//! // Every element of `d` is the correctly rounded exact value of A·Bᵀ.
//! assert!(d.iter().all(|v| v.is_finite()));
//! # Ok::<(), scalegemm_reference::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod attention;
mod error;
pub mod format;
pub mod gemm;
pub mod hopper;
pub mod quant;

pub use error::Error;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
