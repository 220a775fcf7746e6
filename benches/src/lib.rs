//! Shared helpers for scalegemm's benchmarks: seeded random inputs for the reference and
//! GPU GEMMs, the output comparison metrics of the GPU bench, and the cuBLASLt baselines
//! ([`cublaslt`]).
#![warn(missing_docs)]

pub mod cublaslt;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Random E4M3 codes (never the NaN codes 0x7F/0xFF), `len` bytes, from `seed`.
pub fn random_e4m3_codes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len)
        .map(|_| loop {
            let b: u8 = rng.random();
            if b & 0x7F != 0x7F {
                break b;
            }
        })
        .collect()
}

/// Random positive FP32 scales in `[2^-10, 2^-4)`, `len` values, from `seed`.
pub fn random_scales(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len)
        .map(|_| rng.random_range(1.0f32..64.0) / 1024.0)
        .collect()
}

/// Random BF16 values uniform in `[-1, 1)`, `len` of them, from `seed`.
pub fn random_bf16(len: usize, seed: u64) -> Vec<half::bf16> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len)
        .map(|_| half::bf16::from_f32(rng.random_range(-1.0f32..1.0)))
        .collect()
}

/// Inputs of a 1D2D FP8 GEMM `[M, K] x [N, K]`: A codes, A scales `[M, ceil(K/128)]`,
/// B codes, B scales `[ceil(N/128), ceil(K/128)]`.
pub struct Fp8Inputs {
    /// A codes, `[m, k]` row-major.
    pub a: Vec<u8>,
    /// A per-token scales, `[m, ceil(k/128)]`.
    pub sfa: Vec<f32>,
    /// B codes, `[n, k]` row-major.
    pub b: Vec<u8>,
    /// B per-block scales, `[ceil(n/128), ceil(k/128)]`.
    pub sfb: Vec<f32>,
}

impl Fp8Inputs {
    /// Seeded random inputs for an `m x n x k` problem.
    pub fn new(m: usize, n: usize, k: usize, seed: u64) -> Self {
        let kb = k.div_ceil(128);
        Self {
            a: random_e4m3_codes(m * k, seed),
            sfa: random_scales(m * kb, seed + 1),
            b: random_e4m3_codes(n * k, seed + 2),
            sfb: random_scales(n.div_ceil(128) * kb, seed + 3),
        }
    }
}

/// How closely two outputs of the same GEMM agree ([`agreement`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Agreement {
    /// DeepGEMM's `calc_diff` = 1 − 2Σxy / Σ(x² + y²) over the finite pairs (0 for equal
    /// outputs; DESIGN §3.4).
    pub calc_diff: f64,
    /// max |x − y| / max(|y|, 0.01·rms(y)) over the finite pairs: the relative error, with
    /// a floor so that elements near zero (cancellation) do not dominate.
    pub max_rel: f64,
    /// Pairs where x or y is NaN or infinite (an unwritten, NaN-poisoned element).
    pub non_finite: usize,
}

/// Compares `x(i)` against the reference `y(i)` for `i < len` (two passes, f64).
pub fn agreement(len: usize, x: impl Fn(usize) -> f64, y: impl Fn(usize) -> f64) -> Agreement {
    let (mut xy, mut sq, mut yy, mut finite, mut non_finite) = (0.0, 0.0, 0.0, 0usize, 0usize);
    for i in 0..len {
        let (a, b) = (x(i), y(i));
        if !(a.is_finite() && b.is_finite()) {
            non_finite += 1;
            continue;
        }
        xy += a * b;
        sq += a * a + b * b;
        yy += b * b;
        finite += 1;
    }
    let floor = 0.01 * (yy / finite.max(1) as f64).sqrt();
    let mut max_rel = 0.0f64;
    for i in 0..len {
        let (a, b) = (x(i), y(i));
        if a.is_finite() && b.is_finite() {
            max_rel = max_rel.max((a - b).abs() / b.abs().max(floor).max(f64::MIN_POSITIVE));
        }
    }
    Agreement {
        calc_diff: if sq > 0.0 { 1.0 - 2.0 * xy / sq } else { 0.0 },
        max_rel,
        non_finite,
    }
}
