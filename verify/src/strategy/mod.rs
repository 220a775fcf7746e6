//! Reusable [proptest] strategies for GEMM tests: shapes biased to the edges kernels get
//! wrong, adversarial value distributions for unquantized inputs, and quantized FP8
//! operands (codes and scales drawn directly) for scale-range tests.
//!
//! # Design
//!
//! Every generated case is a small, shrinkable *description* (shape, distribution
//! parameters, a seed) plus the data it stands for. The data is a pure function of the
//! description, computed element by element from a counter-based hash of
//! `(seed, operand, row, column)` ([`fill`]): shrinking a dimension therefore keeps every
//! remaining element as it was (a smaller case is the top-left corner of the bigger
//! one), so a failure that depends on one bad element survives shrinking and proptest
//! ends on the smallest shape that still shows it. Distribution choices shrink toward
//! the simplest one ([`ValueDist::SmallInts`], [`CodeDist::SmallInts`],
//! [`ScaleDist::One`]) and optional features (zero tiles, a planted NaN, a huge scale)
//! shrink to "none". Seeds do not shrink (a different seed is a different case, not a
//! simpler one).
//!
//! - Shapes ([`edge_dim`], [`gemm_shape`], [`ShapeCap`]): 1, 7, 15, 16, 127, 128, 129,
//!   576, 1088, multiples of 16/32/64/128 and their neighbours ±1, and anything up to the
//!   cap; a cap on `M·N·K` keeps CPU tests fast.
//! - Unquantized values ([`ValueDist`], [`ValueSpec`], [`value_spec`], [`matrix`],
//!   [`gemm_case`] → [`GemmCase`]): normal, heavy-tailed, channel outliers ×20–×1000,
//!   all-equal ±448, values just under, on and just over every E4M3 / E2M1 rounding
//!   boundary (with each 32-wide block's maximum pinned so the scale is an exact power
//!   of two and the boundaries survive the scaling), format and f32 subnormals,
//!   arbitrary finite f32 bit patterns; whole zero 128×128 tiles; one NaN or ±inf planted
//!   in one element ([`value_spec_non_finite`]).
//! - Quantized FP8 operands ([`CodeDist`], [`ScaleDist`], [`fp8_gemm_case`] →
//!   [`Fp8GemmCase`]): E4M3 codes and FP32 scales for the 1D2D recipe (A per-token
//!   1×128, B per-block 128×128), scales log-uniform in 1e-30..1e30, powers of two only
//!   (within 2^±100 or the whole UE8M0 range), one huge scale in one block, optionally a
//!   NaN code.
//! - A shrunk failing case can be written as a ready-to-run `fp8_gemm_nt` dump
//!   ([`write_fp8_gemm_case`], [`Fp8GemmCase::write_dump`]).
//!
//! # Example
//!
//! ```
//! use proptest::prelude::*;
//! use scalegemm_verify::strategy::{gemm_case, ShapeCap};
//! use scalegemm_reference::quant::ScaleRound;
//!
//! proptest!(ProptestConfig::with_cases(4), |(case in gemm_case(ShapeCap::TINY))| {
//!     let q = case.quantize_1d2d(ScaleRound::Fp32).unwrap();
//!     prop_assert_eq!(q.sfa.len(), case.m * case.k.div_ceil(128));
//! });
//! ```

mod hash;
mod quantized;
mod shape;
mod values;
mod write;

pub use quantized::{
    code_spec, code_spec_with_nan, fp8_gemm_case, fp8_gemm_case_with, scale_spec, CodeDist,
    CodeSpec, Fp8CaseDesc, Fp8GemmCase, Fp8Origin, HugeScale, ScaleDist, ScaleSpec,
};
pub use shape::{edge_dim, gemm_shape, matrix_shape, ShapeCap, BLOCK_SIZES, EDGE_DIMS};
pub use values::{
    fill, gemm_case, gemm_case_with, matrix, value_dist, value_spec, value_spec_non_finite,
    CaseDesc, GemmCase, Matrix, MatrixDesc, NonFinite, Planted, ValueDist, ValueSpec,
};
pub use write::{write_fp8_gemm_case, Fp8GemmTensors, FP8_GEMM_NT_OP};
