//! GPU tests of `scalegemm::fp8_gemm_nt` against the exact reference (DESIGN §3.4).
//!
//! Harness: libtest-mimic. Every GPU trial is reported as **ignored** when no usable GPU
//! is found at run time (no libcuda, no device, not sm_90); on an H200 they all run.
//!
//! Per case: fresh random inputs quantized with the reference's 1×128 / 128×128 casts,
//! operand padding filled with E4M3 NaN codes (a kernel reading it produces NaN), D
//! poisoned with NaN (padding columns must stay NaN, every in-bounds element must be
//! written), then
//! - every element against the exact product of the quantized inputs: within the Hopper
//!   model's per-element bound (`hopper_fp8_error_bound`, BF16 output) where the shape is
//!   small enough to compute it everywhere, else on sampled rows and columns, plus a coarse
//!   bound on all elements (`2^-8·|exact| + 2^-11·Σ|a·b·sa·sb|`, about 4× the truncation
//!   error the model allows on typical data: it catches wrong scales, blocks and tiles);
//! - bit-for-bit agreement with the Hopper model on the sampled elements is reported
//!   (not asserted: the model is a published reconstruction);
//! - `calc_diff` < 1e-3 against the unquantized product on sampled rows (normal data);
//! - two launches give bitwise equal output.

mod gpu_common;

use gpu_common::*;
use libtest_mimic::{Arguments, Trial};

fn main() {
    let args = Arguments::from_args();
    let gpu = gpu_common::device();
    let mut trials = Vec::new();
    for case in cases() {
        let c = case.clone();
        trials.push(
            Trial::test(case.name.clone(), move || run_case(&c).map_err(Into::into))
                .with_ignored_flag(gpu.is_none()),
        );
    }
    trials.push(
        Trial::test("errors: bad operands are refused on the host", || {
            check_errors().map_err(Into::into)
        })
        .with_ignored_flag(gpu.is_none()),
    );
    trials.push(
        Trial::test("every kernel configuration on one shape", || {
            all_configs_case().map_err(Into::into)
        })
        .with_ignored_flag(gpu.is_none()),
    );
    trials.push(
        Trial::test("scale transform: GPU = host = reference layout", || {
            check_sf_transform().map_err(Into::into)
        })
        .with_ignored_flag(gpu.is_none()),
    );
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
