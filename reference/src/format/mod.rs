//! Bit-exact codecs for the low-precision formats of the scaled GEMMs.
//!
//! Sources: OCP 8-bit Floating Point Specification (OFP8) v1.0 §5 (E4M3, E5M2), OCP
//! Microscaling Formats (MX) v1.0 §5.3 (E2M1) and §5.4 (E8M0), NVIDIA `cuda_fp8.hpp` /
//! `cuda_fp4.hpp` host emulation, PTX ISA §9.7.9.21 (`cvt` with `.satfinite`), and the
//! `ml_dtypes` Python package for the non-saturating overflow behaviour (DESIGN §3.1).
//!
//! | format | bias | max finite | min subnormal | specials |
//! |---|---|---|---|---|
//! | [`e4m3`] (fn) | 7 | 448 | 2^-9 | NaN = S.1111.111, no inf |
//! | [`e5m2`] | 15 | 57344 | 2^-16 | ±inf = S.11111.00, NaN = S.11111.{01,10,11} |
//! | [`e2m1`] | 1 | 6 | 0.5 | none: {0, .5, 1, 1.5, 2, 3, 4, 6} |
//! | [`ue8m0`] | 127 | 2^127 | 2^-127 (code 0) | 0xFF = NaN, no zero, no sign |
//!
//! Each of `e4m3`, `e5m2`, `e2m1` has `decode(bits) -> f32`, `encode(x: f32) -> u8`
//! (round to nearest even, non-saturating overflow as `ml_dtypes`) and
//! `encode_satfinite(x: f32) -> u8` (as PTX `cvt.rn.satfinite`). [`ue8m0`] has `decode`,
//! `encode` (nearest power of two, ties up) and `encode_ceil` (DeepGEMM's
//! `ceil_to_ue8m0`). [`bf16`] rounds f64 (and f64 with a sticky remainder) correctly.

pub mod bf16;
pub mod e2m1;
pub mod e4m3;
pub mod e5m2;
mod minifloat;
pub mod ue8m0;

pub use minifloat::round_f64_to_f32;
