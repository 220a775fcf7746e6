//! Shared helpers for scalegemm's benchmarks: seeded random inputs for the reference
//! GEMMs.

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
