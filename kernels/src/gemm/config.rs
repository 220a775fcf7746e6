//! Tile configurations of the FP8 GEMM and the heuristic that picks one per problem.

use crate::runtime::KernelSpec;

use super::wgmma;

/// The most dynamic shared memory a CTA may use on sm_90 (227 KiB).
pub const MAX_SMEM_BYTES: u32 = 232_448;

/// BLOCK_N values the heuristic chooses from (multiples of 16; non-powers of two balance
/// the last wave over 132 SMs).
pub const BLOCK_N_CANDIDATES: &[u32] = &[16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192];

/// Most pipeline stages used (more buys nothing once the TMA latency is covered).
pub const MAX_STAGES: u32 = 8;

/// One compile-time configuration of `fp8_gemm_1d2d` plus its run-time rasterisation band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fp8GemmConfig {
    /// Rows per tile: 64 (one math warpgroup) or 128 (two).
    pub block_m: u32,
    /// Columns per tile (a multiple of 8; the `wgmma` N). Above 192 the two accumulators
    /// (partial and promoted, BLOCK_N/2 registers each) spill.
    pub block_n: u32,
    /// Shared-memory ring depth.
    pub stages: u32,
    /// N-blocks per rasterisation band (run time; see `cuda/gemm/scheduler.cuh`).
    pub band: u32,
    /// CTAs per cluster along N (1, or 2: the pair shares A by TMA multicast). Needs
    /// BLOCK_M = 128 and an even number of N-blocks ([`Fp8GemmConfig::supports`]).
    pub cluster: u32,
}

impl Fp8GemmConfig {
    /// A config with the most stages that fit in shared memory.
    pub fn new(block_m: u32, block_n: u32) -> Self {
        let stages = (MAX_SMEM_BYTES / Self::stage_bytes(block_m, block_n)).min(MAX_STAGES);
        Fp8GemmConfig {
            block_m,
            block_n,
            stages,
            band: 8,
            cluster: 1,
        }
    }

    /// This config with `cluster` CTAs per cluster.
    pub fn with_cluster(self, cluster: u32) -> Self {
        Fp8GemmConfig { cluster, ..self }
    }

    /// Whether this config can run an `m × n` output: a cluster of 2 needs BLOCK_M = 128
    /// and an even number of N-blocks (both CTAs of a pair share an M-block).
    pub fn supports(&self, _m: usize, n: usize) -> bool {
        match self.cluster {
            1 => true,
            2 => self.block_m == 128 && n.div_ceil(self.block_n as usize) % 2 == 0,
            _ => false,
        }
    }

    fn stage_bytes(block_m: u32, block_n: u32) -> u32 {
        let sfa = (block_m * 4).div_ceil(128) * 128;
        block_m * 128 + block_n * 128 + sfa + 16 // + the stage's two mbarriers
    }

    /// Dynamic shared memory per CTA, bytes.
    pub fn smem_bytes(&self) -> u32 {
        self.stages * Self::stage_bytes(self.block_m, self.block_n)
    }

    /// Threads per CTA: 128 per math warpgroup plus the producer warpgroup.
    pub fn threads(&self) -> u32 {
        (self.block_m / 64 + 1) * 128
    }

    /// The JIT specification (source, entry point, defines).
    pub fn spec(&self) -> KernelSpec {
        KernelSpec {
            label: format!(
                "fp8_gemm_1d2d<BLOCK_M={}, BLOCK_N={}, STAGES={}, CLUSTER={}>",
                self.block_m, self.block_n, self.stages, self.cluster
            ),
            file: "gemm/fp8_gemm_1d2d.cuh",
            function: "fp8_gemm_1d2d",
            prelude: wgmma::fp8_wrapper(self.block_n),
            defines: vec![
                ("BLOCK_M".into(), self.block_m.to_string()),
                ("BLOCK_N".into(), self.block_n.to_string()),
                ("STAGES".into(), self.stages.to_string()),
                ("CLUSTER".into(), self.cluster.to_string()),
            ],
        }
    }
}

/// Picks the tile for an `m × n` output with reduction dimension `k` on `sms` SMs.
///
/// - M ≥ 1024, K ≥ 4096 and an even number of 128-column blocks: 128×128 tiles in CTA
///   pairs that share A by TMA multicast (measured on the H200 at 4096×4096×7168,
///   4096×7168×16384 and 8192³, `benches/README.md`: about 10 % faster than single CTAs
///   with 128, and than the 176/192 tiles the wave rule below picks; smaller K is not
///   measured yet, so it keeps the wave rule).
/// - Otherwise BLOCK_M 64 when M ≤ 64 (else 128), and the BLOCK_N with the fewest waves of
///   tiles, then the fullest last wave, then the largest.
pub fn choose(m: usize, n: usize, k: usize, sms: u32) -> Fp8GemmConfig {
    if m >= 1024 && k >= 4096 && n.div_ceil(128) % 2 == 0 {
        return Fp8GemmConfig::new(128, 128).with_cluster(2);
    }
    let block_m = if m <= 64 { 64 } else { 128 };
    let sms = sms.max(1) as usize;
    let best = BLOCK_N_CANDIDATES.iter().copied().min_by_key(|&bn| {
        let tiles = m.div_ceil(block_m as usize) * n.div_ceil(bn as usize);
        let waves = tiles.div_ceil(sms);
        let last = tiles - (waves.saturating_sub(1)) * sms;
        (waves, std::cmp::Reverse(last), std::cmp::Reverse(bn))
    });
    Fp8GemmConfig::new(block_m, best.unwrap_or(128))
}

/// Every configuration [`choose`] can return (what the CI compile gate builds).
pub fn all_configs() -> Vec<Fp8GemmConfig> {
    let single = [64, 128].iter().flat_map(|&bm| {
        BLOCK_N_CANDIDATES
            .iter()
            .map(move |&bn| Fp8GemmConfig::new(bm, bn))
    });
    let pairs = BLOCK_N_CANDIDATES
        .iter()
        .map(|&bn| Fp8GemmConfig::new(128, bn).with_cluster(2));
    single.chain(pairs).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_choice_is_in_all_configs_and_fits() {
        let all = all_configs();
        for &m in &[1, 7, 64, 65, 128, 1088, 4096] {
            for &n in &[1, 16, 33, 576, 2112, 4096, 7168, 24576, 32768] {
                let c = choose(m, n, 7168, 132);
                assert!(all.contains(&c), "{c:?}");
                assert!(c.supports(m, n), "{c:?} for {m}x{n}");
            }
        }
        for c in &all {
            assert!(c.stages >= 2 && c.smem_bytes() <= MAX_SMEM_BYTES, "{c:?}");
            assert_eq!(c.block_n * 128 % 1024, 0);
        }
    }

    #[test]
    fn small_m_uses_one_math_warpgroup() {
        assert_eq!(choose(1, 7168, 7168, 132).block_m, 64);
        assert_eq!(choose(4096, 7168, 7168, 132).block_m, 128);
    }
}
