//! GPU tests of `scalegemm::fp8_gemm_nt` / `fp8_gemm_nt_acc` against the exact reference
//! (DESIGN §3.4).
//!
//! Harness: libtest-mimic. Every GPU trial is reported as **ignored** when no usable GPU
//! is found at run time (no libcuda, no device, not sm_90); on an H200 they all run. One
//! CPU trial (the checker's self-test) always runs.
//!
//! # Variants
//! Every case has a variant (`gpu_common::Variant`), named in the trial after
//! `fp8_gemm_nt` (nothing for the default, so its names are those of the 1D2D-only suite):
//! - B's recipe: `1d2d` (128×128 scales, the default) or `1d1d` (1×128 scales, row-major
//!   or, in the "pre-transformed" cases, TMA-aligned MN-major like A's);
//! - D's dtype: `bf16` (default) or `f32`;
//! - C (FP32 output only): none (default), `+C` (`Accumulate::From`: a separate FP32
//!   `[M, N]` matrix with its own leading dimension, its buffer NaN-padded and checked
//!   unchanged afterwards), `+=C` (`Accumulate::InPlace`: D's in-bounds elements start as C);
//! - optionally a forced tile configuration (`_with_config`).
//!
//! BF16 outputs take the TMA-store epilogue when D is 16-byte aligned with a row stride a
//! multiple of 16 bytes, direct stores otherwise (odd ldd, D misaligned by one element);
//! FP32 outputs always store directly (paired where D, and C, allow it). The "TMA store =
//! direct stores" trials run one problem through both and require identical bits.
//!
//! # Checks
//! Per case: fresh random inputs quantized with the reference's 1×128 / 128×128 casts,
//! operand padding filled with E4M3 NaN codes (a kernel reading it produces NaN), C drawn
//! as N(0, 1)·8 with exact (±)zeros, D poisoned with NaN (BF16 `0x7FC0`, FP32 `0x7FBADBAD`:
//! padding columns and anything before an offset D must keep those bits, every
//! in-bounds element must be finite), then
//! - every element against the exact `C + A·Bᵀ` of the quantized inputs: within the
//!   Hopper model's per-element bound (`hopper_fp8_error_bound_sample` with C and the
//!   output dtype) where `M·N·K ≤ 2^31`, else on sampled rows and columns, plus a coarse
//!   bound on all elements (`2^-11·Σ|a·b·sa·sb|` plus `2^-8·|exact|` for BF16 or
//!   `2^-22·|exact|` for FP32: it catches wrong scales, blocks, tiles and a lost C);
//! - bit-for-bit agreement with the Hopper model (`hopper_fp8_sample`, with C; BF16
//!   compared after RNE; `Promotion::SplitK` with the launch's split count) on the sampled
//!   elements is reported (not asserted: the model is a published reconstruction);
//! - `calc_diff` < 1e-3 against the unquantized product (+ C) on sampled rows (normal
//!   data, from 256 elements);
//! - two launches give bitwise equal output.
//!
//! Besides the cases: every kernel configuration (pipelined, split-K and `b` ones included) for
//! the default variant, a subset of 18 (BLOCK_M 64, 128 and 256; BLOCK_N 16…192; CTA pairs;
//! pipelined; split-K) for each other variant, split-K launches in a row sharing the
//! workspace, typed errors, a call from a new thread with no current context, and the GPU
//! scale transform.

mod gpu_common;

use gpu_common::*;
use libtest_mimic::{Arguments, Trial};

fn main() {
    let args = Arguments::from_args();
    let gpu = gpu_common::device();
    let mut trials = Vec::new();
    let mut gpu_trial = |name: String, f: Box<dyn FnOnce() -> TestResult + Send>| {
        trials.push(
            Trial::test(name, move || f().map_err(Into::into)).with_ignored_flag(gpu.is_none()),
        );
    };
    for case in cases() {
        let c = case.clone();
        gpu_trial(case.name, Box::new(move || run_case(&c)));
    }
    let tma = "fp8_gemm_nt 1d2d bf16 TMA store = direct stores";
    gpu_trial(
        format!("{tma}: 4096x7168x2048"),
        Box::new(|| tma_store_vs_direct(4096, 7168, 2048, &[])),
    );
    gpu_trial(
        format!("{tma}: 1x4096x7168 (M = 1)"),
        Box::new(|| tma_store_vs_direct(1, 4096, 7168, &[])),
    );
    gpu_trial(
        format!("{tma}: 1024x10240x128, 256-row tiles (each CTA reuses the staging)"),
        Box::new(|| tma_store_vs_direct(1024, 10240, 128, &["256x128", "256x96"])),
    );
    gpu_trial(
        format!("{tma}: 100x328x400, 256-row tiles (warpgroup 1's rows all past M)"),
        Box::new(|| tma_store_vs_direct(100, 328, 400, &["256x128", "256x32"])),
    );
    gpu_trial(
        format!(
            "{tma}: 200x328x400, {} configs (every slab width)",
            TMA_STORE_CONFIGS.len()
        ),
        Box::new(|| tma_store_vs_direct(200, 328, 400, TMA_STORE_CONFIGS)),
    );
    gpu_trial(
        "fp8_gemm_nt as a new thread's first CUDA call".into(),
        Box::new(fresh_thread_case),
    );
    gpu_trial(
        "errors: bad operands are refused on the host".into(),
        Box::new(check_errors),
    );
    gpu_trial(
        "every kernel configuration on one shape".into(),
        Box::new(all_configs_case),
    );
    gpu_trial(
        "split-K: launches in a row share the workspace".into(),
        Box::new(split_k_sequence_case),
    );
    gpu_trial(
        "split-K: launches back to back, no sync between".into(),
        Box::new(split_k_back_to_back_case),
    );
    gpu_trial(
        "every B-scale block boundary position in a tile (1D2D)".into(),
        Box::new(sb_boundary_case),
    );
    for v in Variant::others() {
        gpu_trial(
            format!("every kernel configuration, other variants: {}", v.tag()),
            Box::new(move || config_subset_case(v)),
        );
    }
    gpu_trial(
        "scale transform: GPU = host = reference layout".into(),
        Box::new(check_sf_transform),
    );
    trials.push(Trial::test(
        "checker self-test (CPU): the model's output passes, corrupted D fails",
        || check_selftest().map_err(Into::into),
    ));
    trials.push(
        Trial::test("without a driver: Device::new returns NoDevice", no_device)
            .with_ignored_flag(scalegemm::runtime::is_driver_available()),
    );
    if let Err(why) = gpu_common::device_error() {
        eprintln!("GPU tests ignored: {why}");
    }
    libtest_mimic::run(&args, trials).exit();
}

fn no_device() -> Result<(), libtest_mimic::Failed> {
    match scalegemm::Device::new(0) {
        Err(scalegemm::Error::NoDevice(_)) => Ok(()),
        other => Err(format!("expected Error::NoDevice, got {other:?}").into()),
    }
}
