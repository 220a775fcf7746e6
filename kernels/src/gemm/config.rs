//! Tile configurations of the FP8 GEMM, its kernel variants, and the heuristic that picks
//! a tile per problem.

use crate::runtime::KernelSpec;
use crate::tensor::Fp8Recipe;

use super::wgmma;

/// The most dynamic shared memory a CTA may use on sm_90 (227 KiB).
pub const MAX_SMEM_BYTES: u32 = 232_448;

/// BLOCK_N values the heuristic chooses from (multiples of 16; non-powers of two balance
/// the last wave over 132 SMs).
pub const BLOCK_N_CANDIDATES: &[u32] = &[16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192];

/// Most pipeline stages used (small tiles of memory-bound small-M GEMMs need many in
/// flight to cover DRAM latency; large tiles are limited by shared memory first).
pub const MAX_STAGES: u32 = 16;

/// Largest BLOCK_N with the pipelined promotion ([`Fp8GemmConfig::pipelined`]) and two
/// math warpgroups: three accumulator sets of BLOCK_N/2 registers must fit in 232 (255 with
/// one). At 144 columns (216 accumulator registers) they fit only in the 1D2D kernels, which
/// then read A's scales when promoting; the 1D1D kernels spill there (ptxas: 24–68 bytes),
/// so [`choose_for`] pipelines 1D1D tiles only up to [`MAX_PIPELINED_BLOCK_N_1D1D`] columns.
/// [`Fp8GemmConfig::supports`] accepts forced 1D1D 144-column pipelined tiles: they compute
/// the same result, slower.
pub const MAX_PIPELINED_BLOCK_N: u32 = 144;

/// Largest BLOCK_N [`choose_for`] pipelines for a 1D1D variant (see [`MAX_PIPELINED_BLOCK_N`]).
pub const MAX_PIPELINED_BLOCK_N_1D1D: u32 = 128;

/// Most units one tile's K may be split into ([`Fp8GemmConfig::splits`]).
pub const MAX_SPLITS: u32 = 32;

/// Largest BLOCK_N with BLOCK_M 256: a partial and two promoted accumulator sets of
/// BLOCK_N/2 registers each must fit in 232.
pub const MAX_BLOCK_N_M256: u32 = 128;

/// Output element type of the FP8 GEMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutDtype {
    /// BF16, rounded to nearest even.
    Bf16,
    /// FP32 (optionally `C` added: [`Fp8Variant::with_c`]).
    F32,
}

/// What a kernel computes (the compile-time switches besides the tile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fp8Variant {
    /// B's recipe: [`Fp8Recipe::PerBlock`] (128×128, "1D2D") or [`Fp8Recipe::PerToken`]
    /// (1×128, "1D1D").
    pub b_recipe: Fp8Recipe,
    /// D's element type.
    pub out: OutDtype,
    /// Whether an FP32 `C` is added (`D = C + A·Bᵀ`; FP32 output only).
    pub with_c: bool,
}

impl Fp8Variant {
    /// The DeepSeek-V3 inference GEMM: 1D2D, BF16 out, no C.
    pub const BF16_1D2D: Fp8Variant = Fp8Variant {
        b_recipe: Fp8Recipe::PerBlock,
        out: OutDtype::Bf16,
        with_c: false,
    };

    /// Every variant the host API can launch (6).
    pub fn all() -> Vec<Fp8Variant> {
        let mut v = Vec::new();
        for b_recipe in [Fp8Recipe::PerBlock, Fp8Recipe::PerToken] {
            for (out, with_c) in [
                (OutDtype::Bf16, false),
                (OutDtype::F32, false),
                (OutDtype::F32, true),
            ] {
                v.push(Fp8Variant {
                    b_recipe,
                    out,
                    with_c,
                });
            }
        }
        v
    }
}

/// N-blocks per rasterisation band unless a config says otherwise ([`Fp8GemmConfig::band`]).
pub const DEFAULT_BAND: u32 = 8;

/// One tile configuration of the `fp8_gemm` kernel plus its run-time rasterisation band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fp8GemmConfig {
    /// Rows per tile: 64 (one math warpgroup), 128 (two), or 256 (two, each computing two
    /// 64-row waves per k-block into two promoted accumulators: BLOCK_N ≤
    /// [`MAX_BLOCK_N_M256`]; with the TMA-store epilogue each warpgroup stores its own
    /// 128 rows).
    pub block_m: u32,
    /// Columns per tile (a multiple of 16; the `wgmma` N). Above 192 the two accumulators
    /// (partial and promoted, BLOCK_N/2 registers each) spill.
    pub block_n: u32,
    /// Most shared-memory ring stages; each variant uses as many as fit, up to this.
    pub stages: u32,
    /// N-blocks per rasterisation band (run time; see `cuda/gemm/scheduler.cuh`); clamped
    /// to 1..=the number of N-blocks (of CTA pairs, with clusters) at launch.
    pub band: u32,
    /// CTAs per cluster along N (1, or 2: the pair shares A by TMA multicast). Needs
    /// BLOCK_M ≥ 128 and an even number of N-blocks ([`Fp8GemmConfig::supports`]).
    pub cluster: u32,
    /// Pipelined promotion: two partial accumulator sets, block kb+1's `wgmma` issued
    /// before block kb is promoted (BLOCK_N ≤ [`MAX_PIPELINED_BLOCK_N`]).
    pub pipelined: bool,
    /// BF16 outputs by direct stores, without the TMA-store epilogue's shared-memory
    /// staging (which costs BLOCK_M·BLOCK_N·2 bytes, often one ring stage; 64 KiB for
    /// 256×128, whose ring then has 3 stages instead of 4).
    pub direct_store: bool,
    /// Split-K: each tile's k-blocks are divided among this many work units (1 to
    /// [`MAX_SPLITS`]; single CTAs of at most 128 rows), split `s` of `S` taking k-blocks
    /// `[s·n/S, (s+1)·n/S)` of the `n = ceil(K/128)`, promoted from zero; the last unit of a
    /// tile to finish adds the `S` FP32 tiles in split order (`cuda/gemm/split_k.cuh`), so
    /// the result is deterministic and the reference's `Promotion::SplitK` models it bit
    /// for bit. A launch uses [`Fp8GemmConfig::splits_for`] splits. For small M, where the
    /// tiles alone cannot fill the SMs.
    pub splits: u32,
    /// B's TMA loads issued by a producer thread of their own instead of by A's (the
    /// kernel's `B_THREAD`): faster for long k-loops at small M, slower for short ones
    /// ([`choose_for`] sets it: [`B_THREAD_MIN_KBLOCKS`]).
    pub b_thread: bool,
}

impl Fp8GemmConfig {
    /// A config with up to [`MAX_STAGES`] stages, no cluster, no pipelining.
    pub fn new(block_m: u32, block_n: u32) -> Self {
        Fp8GemmConfig {
            block_m,
            block_n,
            stages: MAX_STAGES,
            band: DEFAULT_BAND,
            cluster: 1,
            pipelined: false,
            direct_store: false,
            splits: 1,
            b_thread: false,
        }
    }

    /// This config with B's loads from their own producer thread ([`Fp8GemmConfig::b_thread`]).
    pub fn with_b_thread(self, b_thread: bool) -> Self {
        Fp8GemmConfig { b_thread, ..self }
    }

    /// This config with split-K over `splits` units per tile ([`Fp8GemmConfig::splits`]).
    pub fn with_splits(self, splits: u32) -> Self {
        Fp8GemmConfig { splits, ..self }
    }

    /// The splits a launch with reduction dimension `k` uses: [`Fp8GemmConfig::splits`],
    /// at most one per 128-K block (at least 1).
    pub fn splits_for(&self, k: usize) -> u32 {
        (self.splits as usize).min(k.div_ceil(128)).max(1) as u32
    }

    /// Whether the kernel is the split-K one (it also runs a launch of one split).
    fn split_kernel(&self) -> bool {
        self.splits > 1
    }

    /// This config with the run-time-only settings normalised: the same compiled kernel
    /// runs every split count ≥ 2 (as 2 here) and every band (as [`DEFAULT_BAND`]).
    pub fn kernel_config(&self) -> Fp8GemmConfig {
        Fp8GemmConfig {
            splits: self.splits.min(2),
            band: DEFAULT_BAND,
            ..*self
        }
    }

    /// This config with the BF16 TMA-store epilogue off (`true`) or on where possible.
    pub fn with_direct_store(self, direct_store: bool) -> Self {
        Fp8GemmConfig {
            direct_store,
            ..self
        }
    }

    /// Shared memory staging D for the TMA-store epilogue of variant `v`: the whole BF16
    /// tile unless [`Fp8GemmConfig::direct_store`].
    pub fn staging_bytes(&self, v: Fp8Variant) -> u32 {
        match v.out {
            OutDtype::Bf16 if !self.direct_store => self.block_m * self.block_n * 2,
            _ => 0,
        }
    }

    /// This config with `band` N-blocks per rasterisation band (≥ 1).
    pub fn with_band(self, band: u32) -> Self {
        Fp8GemmConfig { band, ..self }
    }

    /// This config with `cluster` CTAs per cluster.
    pub fn with_cluster(self, cluster: u32) -> Self {
        Fp8GemmConfig { cluster, ..self }
    }

    /// This config with the pipelined promotion on or off.
    pub fn with_pipeline(self, pipelined: bool) -> Self {
        Fp8GemmConfig { pipelined, ..self }
    }

    /// Whether this config can run an `m × n` output: BLOCK_M 64, 128 or 256 (the last with
    /// BLOCK_N ≤ [`MAX_BLOCK_N_M256`], not pipelined), BLOCK_N a multiple of 16 in 16..=256;
    /// a cluster of 2 needs BLOCK_M ≥ 128 and an even number of N-blocks (both CTAs of a
    /// pair share an M-block); the pipelined promotion needs BLOCK_N ≤
    /// [`MAX_PIPELINED_BLOCK_N`]; split-K ([`Fp8GemmConfig::splits`] > 1) needs single CTAs
    /// of at most 128 rows and at most [`MAX_SPLITS`] splits.
    pub fn supports(&self, _m: usize, n: usize) -> bool {
        let tile_ok = matches!(self.block_m, 64 | 128 | 256)
            && self.block_n % 16 == 0
            && (16..=256).contains(&self.block_n)
            && (self.block_m != 256 || (self.block_n <= MAX_BLOCK_N_M256 && !self.pipelined))
            && (!self.pipelined || self.block_n <= MAX_PIPELINED_BLOCK_N)
            && (1..=MAX_SPLITS).contains(&self.splits)
            && (!self.split_kernel() || (self.cluster == 1 && self.block_m <= 128));
        tile_ok
            && match self.cluster {
                1 => true,
                2 => self.block_m >= 128 && n.div_ceil(self.block_n as usize) % 2 == 0,
                _ => false,
            }
    }

    fn stage_bytes(&self, v: Fp8Variant) -> u32 {
        let sfa = (self.block_m * 4).div_ceil(128) * 128;
        let sfb = match v.b_recipe {
            Fp8Recipe::PerToken => (self.block_n * 4).div_ceil(128) * 128,
            Fp8Recipe::PerBlock => 16,
        };
        self.block_m * 128 + self.block_n * 128 + sfa + sfb + 16 // + the stage's two mbarriers
    }

    /// Shared memory besides the stages and the staging: the split-K kernel's flag word
    /// (16 bytes).
    fn extra_bytes(&self) -> u32 {
        if self.split_kernel() {
            16
        } else {
            0
        }
    }

    /// Ring stages of variant `v`: as many as fit next to the output staging, ≤ `stages`.
    pub fn stages_for(&self, v: Fp8Variant) -> u32 {
        let free = MAX_SMEM_BYTES.saturating_sub(self.staging_bytes(v) + self.extra_bytes());
        (free / self.stage_bytes(v)).min(self.stages)
    }

    /// Dynamic shared memory per CTA for variant `v`, bytes.
    pub fn smem_bytes(&self, v: Fp8Variant) -> u32 {
        self.staging_bytes(v) + self.stages_for(v) * self.stage_bytes(v) + self.extra_bytes()
    }

    /// Threads per CTA: 128 per math warpgroup (one for BLOCK_M 64, else two) plus the
    /// producer warpgroup.
    pub fn threads(&self) -> u32 {
        if self.block_m == 64 {
            256
        } else {
            384
        }
    }

    /// The JIT specification (source, entry point, defines) of variant `v`.
    pub fn spec(&self, v: Fp8Variant) -> KernelSpec {
        let b = match v.b_recipe {
            Fp8Recipe::PerBlock => "1d2d",
            Fp8Recipe::PerToken => "1d1d",
        };
        let out = match (v.out, v.with_c) {
            (OutDtype::Bf16, _) if self.staging_bytes(v) == 0 => "bf16d",
            (OutDtype::Bf16, _) => "bf16",
            (OutDtype::F32, false) => "f32",
            (OutDtype::F32, true) => "f32+c",
        };
        let stages = self.stages_for(v);
        let flag = |x: bool| if x { "1" } else { "0" }.to_string();
        KernelSpec {
            label: format!(
                "fp8_gemm_{b}_{out}<BLOCK_M={}, BLOCK_N={}, STAGES={stages}, CLUSTER={}, PIPE={}, SPLIT_K={}{}>",
                self.block_m,
                self.block_n,
                self.cluster,
                u8::from(self.pipelined),
                u8::from(self.split_kernel()),
                if self.b_thread { ", B_THREAD=1" } else { "" }
            ),
            file: "gemm/fp8_gemm.cuh",
            function: "fp8_gemm",
            prelude: wgmma::fp8_wrapper(self.block_n)
                + &wgmma::fp8_wrapper_named("wgmma_fp8_half", self.block_n / 2),
            defines: vec![
                ("BLOCK_M".into(), self.block_m.to_string()),
                ("BLOCK_N".into(), self.block_n.to_string()),
                ("STAGES".into(), stages.to_string()),
                ("CLUSTER".into(), self.cluster.to_string()),
                ("PIPE".into(), flag(self.pipelined)),
                ("SFB_TOKEN".into(), flag(v.b_recipe == Fp8Recipe::PerToken)),
                ("OUT_F32".into(), flag(v.out == OutDtype::F32)),
                ("HAS_C".into(), flag(v.with_c)),
                ("TMA_STORE".into(), flag(self.staging_bytes(v) > 0)),
                ("SPLIT_K".into(), flag(self.split_kernel())),
                ("B_THREAD".into(), flag(self.b_thread)),
            ],
        }
    }
}

impl std::str::FromStr for Fp8GemmConfig {
    type Err = String;

    /// Parses `BMxBN`, optionally followed by `cC` (C CTAs per cluster), `p` (pipelined
    /// promotion), `d` (direct stores), `b` (B's loads from their own thread), `kS`
    /// (split-K over S units) and `/B` (B N-blocks per rasterisation band), e.g.
    /// `128x128c2p`, `128x64pk4`, `64x128pb` or `128x128p/16`; stages as
    /// [`Fp8GemmConfig::new`]. S must be 1 to [`MAX_SPLITS`], B at least 1.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}`: expected BMxBN[cC][p][d][b][kS][/B], e.g. 128x128c2p");
        let positive = |x: &str| x.parse::<u32>().ok().filter(|&b| b > 0).ok_or_else(bad);
        let (s, band) = match s.split_once('/') {
            Some((t, b)) => (t, positive(b)?),
            None => (s, DEFAULT_BAND),
        };
        let (s, splits) = match s.split_once('k') {
            Some((t, k)) => (
                t,
                positive(k).and_then(|k| if k <= MAX_SPLITS { Ok(k) } else { Err(bad()) })?,
            ),
            None => (s, 1),
        };
        let (s, b_thread) = match s.strip_suffix('b') {
            Some(t) => (t, true),
            None => (s, false),
        };
        let (s1, direct) = match s.strip_suffix('d') {
            Some(b) => (b, true),
            None => (s, false),
        };
        let (body, pipelined) = match s1.strip_suffix('p') {
            Some(b) => (b, true),
            None => (s1, false),
        };
        let (tile, cluster) = body.split_once('c').unwrap_or((body, "1"));
        let (m, n) = tile.split_once('x').ok_or_else(bad)?;
        let parse = |x: &str| x.parse::<u32>().map_err(|_| bad());
        Ok(Fp8GemmConfig::new(parse(m)?, parse(n)?)
            .with_cluster(parse(cluster)?)
            .with_pipeline(pipelined)
            .with_direct_store(direct)
            .with_splits(splits)
            .with_b_thread(b_thread)
            .with_band(band))
    }
}

/// Picks the tile for an `m × n` output with reduction dimension `k` on `sms` SMs
/// (measured on the H200, 2026-11-30, `benches/README.md`):
///
/// - M ≤ 128, K > 3968 (at least 32 k-blocks) and B (N·K bytes) under 32 MiB: split-K ([`Fp8GemmConfig::splits`]),
///   64×{64, 32} (M ≤ 64) or 128×{64, 32} pipelined tiles, the first width whose tiles times
///   2 to [`MAX_AUTO_SPLITS`] splits fill 3/4 of the SMs (1×576×7168: 5.9 µs in 7 splits of
///   64×32 against 11.6 with 64×16; 128×2112×7168: 10.1 in 4 of 128×64 against 12.4 with
///   64×32; 128×4096×7168: 12.7 in 2 of 128×64 against 13.7 with 64×64). The cases below
///   apply otherwise.
/// - 64 < M ≤ 128: one 128-row M-block with the pipelined promotion (B read once, not
///   once per 64-row block) when its tiles fill the SMs: the smallest BLOCK_N of
///   [`MEDIUM_M_BLOCK_N`] with at most two waves (else 128), if that is at least 3/4 of a wave
///   (128×32768×512: 7.4 µs with 128×128 against 9.8 with 64×128; 128×24576×1536: 13.4 with
///   128×96 against 16.2; 128×7168×16384: 40.2 with 128×64 against 45.4; 128×7168×2048:
///   6.8 against 7.3). Otherwise (128×4096×7168: 64 tiles of 128×64 took 18.0 µs, 128 of
///   64×64 13.7) as M ≤ 64.
/// - M ≤ 64, K ≥ 8192 and B (N·K bytes) of 32 MiB or more: 64×128 pipelined
///   (1×7168×16384: 35.2 µs, 3.3 TB/s, against 37.8 with 64×64 and 38.8 with 64×128; the
///   pipelined promotion did not help BLOCK_N ≤ 64).
/// - M ≤ 128 with a pipelined tile (the two cases above) and at least
///   [`B_THREAD_MIN_KBLOCKS`] k-blocks: B's loads from their own producer thread
///   ([`Fp8GemmConfig::b_thread`]; 1×7168×16384 35.3 → 32.0 µs, 128×7168×16384 38.5 →
///   36.5; split-K rows and K ≤ 2048 were 0.1–0.6 µs slower with it; nothing between 56
///   and 128 k-blocks was measured). The 128×128 pipelined tiles of larger M (the last
///   case below) have it too, whatever K (4096×4096×7168 191.3–192.2 → 187.7–188.5 µs,
///   4096×24576×1536 264.3–265.0 → 261.3–262.4, two shapes that now take 256×128 pairs;
///   measured at M = 4096 and 8192 only).
/// - Other M ≤ 64 (memory-bound): BLOCK_M 64; the smallest BLOCK_N whose tiles fit in one wave
///   if they fill 3/4 of it (1×24576×1536: 8.6 µs with 128 tiles of 64×192, 11.1 with
///   192 of 64×128); else BLOCK_N 128
///   when B (N·K bytes) is 32 MiB or more (1×32768×512: 5.9 µs with 64×128, 7.0 with
///   64×192), else the smallest BLOCK_N whose tiles fit in one wave (each k-block's latency
///   grows with BLOCK_N: 128×2112×7168 takes 14.0 µs with 64×32, 19.3 with 64×128).
/// - Otherwise 128×128 single CTAs with the pipelined promotion (measured interleaved in
///   one process: 1134–1203 TFLOPS at 4096×4096×7168 against 950–974 without pipelining,
///   1016–1062 in CTA pairs, 937 with 256-row tiles; 4096×24576×1536: 1111–1178 against
///   1082–1088 with 128×176 and 727 with 256×128; those 256-row rates were with direct
///   stores: with the TMA-store epilogue 256×128 runs within 1–3 % of 128×128pb, e.g.
///   4096×24576×1536 261.9 against 260.5 µs, 4096×7168×2048 100.9 against 98.3),
///   unless another BLOCK_N of
///   [`LARGE_M_BLOCK_N`] fills the waves over `sms` SMs more than 15 % better: the wider
///   non-pipelined tiles run at 0.9–1.0× its rate on full waves (4096×4096×7168: 128×176
///   1150–1154, 128×128p 1229–1275), and win where they balance the waves (4096×2112×7168:
///   544 tiles of 128×128 are 4.1 waves, 384 of 128×176 are 2.9: 1163–1176 against
///   1008–1059; 4096×576×7168: one wave of 128×144, 1072–1087 against 793–805; pipelined,
///   1164–1167 against 1100 not). Tiles up to [`MAX_PIPELINED_BLOCK_N`] columns (1D1D:
///   [`MAX_PIPELINED_BLOCK_N_1D1D`]) are pipelined; wider ones have no room for a second
///   register set and split their columns into two halves instead, one promoted while the
///   other's wgmma run (the kernel's `HALVES`; 3–6 % faster than unsplit on 128×144 to
///   128×192, e.g. 4096×2112×7168 with 128×176 pairs 1221 → 1244–1246 TFLOPS; the rates
///   above were measured unsplit), and above [`PAIRED_ABOVE_BLOCK_N`] columns they run as
///   CTA pairs sharing A when the N-blocks pair up (4096×2112×7168: 128×176 pairs).
///   Where that keeps 128 columns, BF16 1D2D with M ≥ 2048, 512 ≤ K ≤ 7168, N a multiple of
///   8 and an even number of 128-column N-blocks takes 256×128 tiles as CTA pairs sharing A
///   where their waves fill about as well (`tall_pair_pays`: 2.3–4 % faster on the
///   measured shapes, among them 4096×24576×1536, 4096×32768×512, 4096×4096×7168 and
///   4096×7168×2048); otherwise, where K ≤ 2048 and M ≥ 2048, a single
///   128×[`WIDE_BLOCK_N`] tile (split halves) when its waves times its measured cost per
///   column ([`WIDE_COLUMN_COST`]) undercut 128's (BF16 1D2D only; measured on
///   4096×24576×1536 and 4096×32768×512, 3.5 % and 1.4 % faster than 128×128, before the
///   pairs took those shapes; 4096×7168×2048 kept 128×128).
///   The 128×128 pipelined tiles with K ≥ [`LONG_K_BAND_MIN_K`] rasterise in bands of
///   [`LONG_K_BAND`] N-blocks instead of [`DEFAULT_BAND`] (less DRAM traffic; 4096×4096×7168,
///   which now takes the pairs, 184.0–184.9 → 180.3–181.6 µs, 4096×7168×16384 787–826 →
///   746–759), and the 256×128 pairs with K ≤ [`SHORT_K_PAIR_BAND_MAX_K`] in bands of
///   [`SHORT_K_PAIR_BAND`] pairs (0.1–0.9 % faster at M = 4096; 2048×24576×1536 within
///   noise).
///
/// For the BF16 1D2D variant; [`choose_for`] gives the others.
pub fn choose(m: usize, n: usize, k: usize, sms: u32) -> Fp8GemmConfig {
    choose_for(Fp8Variant::BF16_1D2D, m, n, k, sms)
}

/// [`choose`] for variant `v`: as for BF16 1D2D, except that with an FP32 `C`
/// ([`Fp8Variant::with_c`]) 128-row tiles are at most [`MAX_BLOCK_N_WITH_C`] wide.
pub fn choose_for(v: Fp8Variant, m: usize, n: usize, k: usize, sms: u32) -> Fp8GemmConfig {
    split_k_choice(m, n, k, sms.max(1) as usize)
        .unwrap_or_else(|| choose_unsplit_for(v, m, n, k, sms))
}

/// [`choose_for`] without split-K: every output element is then computed in the same order
/// (one promoted sum over all of K) whatever M and the SM count (batch-invariant results).
pub fn choose_unsplit_for(v: Fp8Variant, m: usize, n: usize, k: usize, sms: u32) -> Fp8GemmConfig {
    let cfg = unsplit_tile(v, m, n, k, sms);
    // B's loads from their own thread for the long unsplit pipelined k-loops of small M,
    // where they measured faster (benches/README.md, Findings, sixth session: 1×7168×16384
    // with 64×128p 35.3 → 32.0 µs, 128×7168×16384 with 128×64p 38.5 → 36.5) and not for
    // short or split ones (split-K rows and K ≤ 2048: 0.1–0.6 µs slower), and for the
    // 128×128 pipelined tiles of larger M, whatever K (eighth session, 5 alternating rounds:
    // 0.5–2.2 % faster on four of the M = 4096 shapes that use them, 12 % and 3.6 % in the
    // median on the power-limited 4096×7168×16384 and 8192³; M between 129 and 4095 was not
    // measured).
    let small_m = m <= 128 && k.div_ceil(128) >= B_THREAD_MIN_KBLOCKS;
    let large_m_128 = m > 128 && cfg.block_m == 128 && cfg.block_n == 128 && cfg.cluster == 1;
    let cfg = cfg.with_b_thread(cfg.pipelined && (small_m || large_m_128));
    // Wider rasterisation bands for the long-K 128×128 tiles of large M: B's column blocks of
    // a band then stay in L2 from one wave to the next (benches/README.md, Findings, eleventh
    // session, BF16 1D2D). ncu, one launch: DRAM bytes read 147 → 102 MB at 4096×4096×7168,
    // 667 → 452 MB at 8192³, 833 → 822 MB at 4096×7168×16384; the single launches' times
    // did not improve (181.3 → 183.1, 849.5 → 838.8, 740.6 → 749.1 µs). Timed in alternating
    // processes: 4096×4096×7168 184.0–184.9 → 180.3–181.6 µs (8 rounds), 4096×7168×16384
    // 787–826 → 746–759 (3 rounds), 8192³ median 967 → 926 (5 rounds, 831–979 against
    // 817–969). At K = 2048 (4096×7168×2048) band 8 was the fastest for the 128×128pb
    // tiles that shape then took. Measured at M = 4096 and 8192 only; M between 129 and
    // 4095, K between 2048 and 7168 and the other variants (the band only orders the tiles:
    // their results are the same bits) were not; at 2048×8192×8192 band 8 measured faster
    // (thirteenth session). 4096×4096×7168 now takes 256×128 pairs (BF16 1D2D), which keep
    // the default band except with K ≤ `SHORT_K_PAIR_BAND_MAX_K` (`SHORT_K_PAIR_BAND`).
    let pairs_256 = cfg.block_m == 256 && cfg.cluster == 2;
    if large_m_128 && k >= LONG_K_BAND_MIN_K {
        cfg.with_band(LONG_K_BAND)
    } else if pairs_256 && k <= SHORT_K_PAIR_BAND_MAX_K {
        cfg.with_band(SHORT_K_PAIR_BAND)
    } else {
        cfg
    }
}

/// Rasterisation band (in CTA pairs, each two N-blocks) of [`choose_unsplit_for`]'s 256×128
/// pairs with K ≤ [`SHORT_K_PAIR_BAND_MAX_K`] (else [`DEFAULT_BAND`]). At M = 4096 a band of
/// 4 pairs × 16 M-blocks is about one wave of 66 clusters. Measured on the H200
/// (`benches/README.md`, fourteenth session; one tile per `bench_fp8_gemm --only-ours`
/// process, 8 alternating rounds, µs, band 4 against 8): 4096×24576×1536 241.7–242.5 against
/// 243.7–244.7, 4096×7168×2048 94.2–95.0 against 94.9–95.4, 4096×32768×512 131.1–132.0
/// against 131.5–132.2, 2048×24576×1536 122.8–123.7 against 123.2–123.6 (within noise); at
/// K = 7168 (4096×4096×7168) band 8 was faster, 179.7–180.5 against 181.4–182.5. Measured
/// at M = 2048 and 4096 on 132 SMs only (at M = 8192 a band of 4 pairs is about two waves,
/// at M = 2048 half of one); K between 2048 and 7168 was not measured.
pub const SHORT_K_PAIR_BAND: u32 = 4;

/// Longest K given the [`SHORT_K_PAIR_BAND`] (elements; 2048 the longest measured faster
/// with it, 7168 the next measured, slower).
pub const SHORT_K_PAIR_BAND_MAX_K: usize = 2048;

/// N-blocks per rasterisation band of [`choose_unsplit_for`]'s 128×128 tiles of large M with
/// K ≥ [`LONG_K_BAND_MIN_K`] (else [`DEFAULT_BAND`]).
pub const LONG_K_BAND: u32 = 16;

/// Smallest K given the [`LONG_K_BAND`] (elements; between the measured 2048, where band 8
/// was faster, and 7168, where 16 was: no K in between was measured).
pub const LONG_K_BAND_MIN_K: usize = 4096;

/// Fewest 128-K blocks from which [`choose_for`] gives the unsplit pipelined tiles of
/// M ≤ 128 B's own loading thread ([`Fp8GemmConfig::b_thread`]).
pub const B_THREAD_MIN_KBLOCKS: usize = 64;

/// The tile of [`choose_unsplit_for`].
fn unsplit_tile(v: Fp8Variant, m: usize, n: usize, k: usize, sms: u32) -> Fp8GemmConfig {
    let sms = sms.max(1) as usize;
    if m > 64 && m <= 128 {
        let medium = MEDIUM_M_BLOCK_N
            .iter()
            .copied()
            .find(|&bn| n.div_ceil(bn as usize) <= 2 * sms)
            .unwrap_or(128);
        if 4 * n.div_ceil(medium as usize) >= 3 * sms {
            return Fp8GemmConfig::new(128, medium).with_pipeline(true);
        }
    }
    if m <= 64 && k >= 8192 && n.saturating_mul(k) >= 32 << 20 {
        // A long reduction over a large B: few deep streams, their promotion pipelined.
        return Fp8GemmConfig::new(64, 128).with_pipeline(true);
    }
    if m <= 128 {
        // B streams from DRAM. One wave of the smallest tiles that fill 3/4 of it; else few
        // wide streams (BLOCK_N 128) when B is large, else one wave of the smallest tiles
        // (each k-block's latency grows with BLOCK_N).
        let m_blocks = m.div_ceil(64);
        let tiles = |bn: u32| m_blocks * n.div_ceil(bn as usize);
        let one_wave = BLOCK_N_CANDIDATES
            .iter()
            .copied()
            .find(|&bn| tiles(bn) <= sms);
        let bn = match one_wave {
            Some(bn) if 4 * tiles(bn) >= 3 * sms => bn,
            _ if n.saturating_mul(k) >= 32 << 20 => 128,
            Some(bn) if bn <= 128 => bn,
            _ => 128,
        };
        return Fp8GemmConfig::new(64, bn);
    }
    let score = |bn: u32| {
        let tiles = m.div_ceil(128) * n.div_ceil(bn as usize);
        let waves = tiles.div_ceil(sms);
        tiles as f64 / (waves * sms) as f64
    };
    let base = score(128);
    let best = large_m_block_n(v)
        // Equal fills: the smaller BLOCK_N (less padding computed).
        .max_by(|&a, &b| score(a).total_cmp(&score(b)).then(b.cmp(&a)))
        .filter(|&bn| score(bn) > 1.15 * base)
        .unwrap_or(128);
    if best == 128 {
        let tall = Fp8GemmConfig::new(256, 128).with_cluster(2);
        if tall_pair_pays(v, m, n, k, sms) && tall.supports(m, n) {
            return tall;
        }
        if wide_tile_pays(v, m, n, k, sms) {
            return Fp8GemmConfig::new(128, WIDE_BLOCK_N);
        }
    }
    let cfg = Fp8GemmConfig::new(128, best).with_pipeline(pipelines(v, best));
    let paired = cfg.with_cluster(2);
    if best > PAIRED_ABOVE_BLOCK_N && paired.supports(m, n) {
        paired
    } else {
        cfg
    }
}

/// Smallest M for which [`choose`] gives the 256×128 CTA pairs (`tall_pair_pays`; measured
/// at M = 2048 and 4096).
pub const TALL_MIN_M: usize = 2048;

/// Smallest K for which [`choose`] gives the 256×128 CTA pairs (4096×32768×512, the shortest
/// measured, took them 2.4 % faster than 128×192).
pub const TALL_MIN_K: usize = 512;

/// Longest K for which [`choose`] gives the 256×128 CTA pairs: with K of 8192 and more the
/// GEMMs run long enough to sit at the card's power limit, and there, timed as
/// `bench_fp8_gemm` times them (each repeat alternating with cuBLASLt's), the 128×128
/// pipelined tiles with band 16 were 2.5–4 % faster (4096×7168×16384 805–811 µs against
/// 824–833, 8192³ 911–921 against 949–950, three rounds; 2048×8192×8192 mixed), though
/// in processes timing our kernel alone the pairs had led (thirteenth session).
pub const TALL_MAX_K: usize = 7168;

/// Least fraction of the 128×128 tiles' wave fill (tiles / (waves · SMs)) the 256×128 CTA
/// pairs must reach for [`choose`] to take them: they have half as many tiles, so they lose
/// where that leaves a last wave emptier (2048×7168×2048: 448 tiles in 3.4 waves, fill 0.85
/// against 0.97 for 128×128, 54.9 µs against 48.9 timing our kernel alone).
pub const TALL_MIN_FILL_RATIO: f64 = 0.97;

/// Whether [`choose`] gives an `m × n × k` GEMM over `sms` SMs 256×128 tiles as CTA pairs
/// sharing A by TMA multicast (BLOCK_M 256: each math warpgroup computes 128 rows in two
/// waves) where no wider 128-row tile balances the waves better (it is weighed before the
/// 128×[`WIDE_BLOCK_N`] tile, and the caller checks that the N-blocks pair up): BF16 1D2D
/// with `n` a multiple of 8
/// (the TMA-store epilogue; with direct stores the 256-row tiles ran 26 % slower, ninth
/// session), M ≥ [`TALL_MIN_M`], [`TALL_MIN_K`] ≤ K ≤ [`TALL_MAX_K`] and wave fill as
/// [`TALL_MIN_FILL_RATIO`] says (pairs counted over `sms / 2` clusters). A D whose address
/// or row stride the TMA store cannot take still gets them, and stores directly: every tile
/// is slow then (256×128 354 µs, 128×128 with direct stores 375–414, 4096×24576×1536, ninth
/// and eighth sessions). They read half the L2 bytes per FLOP of 128×128 (A shared
/// by the pair, B by the 256 rows); DeepGEMM's cost model picks the same tile for these
/// shapes. Measured on the H200 as `bench_fp8_gemm` times (`benches/README.md`, thirteenth
/// session, two rounds with the tiles forced in rotated order, µs): 4096×24576×1536
/// 241.3–247.1 against 248.8–257.2 (128×192), 4096×32768×512 130.3–130.4 against
/// 133.5–133.6 (128×192), 4096×7168×2048 93.8 against 96.0–96.3 (128×128pb),
/// 2048×24576×1536 122.3–122.4 against 127.3–127.4 (128×192), and in three rounds
/// 4096×4096×7168 178.8–181.5 against 183.6–187.7 (128×128pb/16).
fn tall_pair_pays(v: Fp8Variant, m: usize, n: usize, k: usize, sms: usize) -> bool {
    if v != Fp8Variant::BF16_1D2D
        || m < TALL_MIN_M
        || !(TALL_MIN_K..=TALL_MAX_K).contains(&k)
        || n % 8 != 0
    {
        return false;
    }
    // Work units over the slots that take them: 128×128 tiles over the SMs, 256×128 pairs
    // over the clusters (two SMs each).
    let fill = |units: usize, slots: usize| units as f64 / (units.div_ceil(slots) * slots) as f64;
    let pairs = (m.div_ceil(256) * n.div_ceil(128)).div_ceil(2);
    sms >= 2
        && fill(pairs, sms / 2)
            >= TALL_MIN_FILL_RATIO * fill(m.div_ceil(128) * n.div_ceil(128), sms)
}

/// BLOCK_N of the wide 128-row tile [`choose`] weighs against 128×128 when neither fills
/// the waves much better ([`WIDE_COLUMN_COST`]); not pipelined (no room for a second
/// register set: its columns are promoted in halves) and a single CTA (as CTA pairs it was
/// slower: 4096×24576×1536 256.2–257.1 µs against 253.3–253.9).
pub const WIDE_BLOCK_N: u32 = 192;

/// Time of a 128×[`WIDE_BLOCK_N`] tile per output column, relative to the pipelined
/// 128×128 tile's (with B's own loading thread), on the H200 (`benches/README.md`, Findings,
/// tenth session; each tile timed in its own process, 2–3 rounds; the wave counts divided
/// out): 0.946 at 4096×24576×1536, 0.987 at 4096×32768×512, 0.956 at 4096×7168×2048, where
/// a tile's k-loop is short and its epilogue weighs (fewer, wider tiles pay it less often
/// per FLOP). With long k-loops it was no cheaper: 0.93 at 4096×4096×7168, 1.0–1.09 at
/// 4096×7168×16384 and 8192³ under sustained load (0.92–0.96 for 8192³ timed alone, cold).
/// [`choose`] takes the wide tile where K ≤ [`WIDE_MAX_K`], M ≥ [`WIDE_MIN_M`] and
/// `waves(192) · 192 · cost < waves(128) · 128`.
pub const WIDE_COLUMN_COST: f64 = 0.95;

/// Longest K for which [`choose`] weighs the wide tile (the measured short-K shapes).
pub const WIDE_MAX_K: usize = 2048;

/// Smallest M for which [`choose`] weighs the wide tile (measured at M = 4096; with few
/// M-blocks the waves, not the per-column cost, decide, and the unpipelined tile was not
/// measured there).
pub const WIDE_MIN_M: usize = 2048;

/// Whether the 128×[`WIDE_BLOCK_N`] tile beats 128×128 on an `m × n × k` GEMM over `sms`
/// SMs by [`WIDE_COLUMN_COST`]'s model, within the range it was measured in (BF16 1D2D,
/// [`WIDE_MAX_K`], [`WIDE_MIN_M`]). Against the model's choice (tenth session, before the
/// 256×128 pairs took these shapes, `tall_pair_pays`): 4096×24576×1536 253.3–253.9 µs
/// against 262.3–262.7 (wide), 4096×32768×512 140.6–140.7 against 142.5–142.7 (wide);
/// 4096×7168×2048 101.2–101.3 against 98.8–99.1 (128×128 kept).
fn wide_tile_pays(v: Fp8Variant, m: usize, n: usize, k: usize, sms: usize) -> bool {
    if v != Fp8Variant::BF16_1D2D || k > WIDE_MAX_K || m < WIDE_MIN_M {
        return false;
    }
    let waves = |bn: u32| (m.div_ceil(128) * n.div_ceil(bn as usize)).div_ceil(sms) as f64;
    waves(WIDE_BLOCK_N) * WIDE_BLOCK_N as f64 * WIDE_COLUMN_COST < waves(128) * 128.0
}

/// Split-K for M ≤ 128 with a long K over a B small enough not to be bandwidth-bound: at
/// least 32 k-blocks (K > 3968) and `N·K` under 32 MiB. Tiles of 64 rows (M ≤ 64) or 128 rows, pipelined
/// (64 < M ≤ 128; B is then read once), [`SPLIT_BLOCK_N`] columns, the first width whose tiles
/// times `S` fill 3/4 of the SMs, with `S` = SMs / tiles, at most [`MAX_AUTO_SPLITS`] and at
/// most one per 8 k-blocks (`S` ≥ 2, else no split). Measured on the H200 (benches/README.md,
/// fifth session; µs, one shape at a time, tiles alternating in one process):
///
/// | M×N×K | without split-K | split-K |
/// |---|---|---|
/// | 128×2112×7168 | 12.4 (64×32) | 10.1 (128×64p, 4 splits) |
/// | 128×576×7168 | 11.6 (64×16) | 7.3 (128×32p, 7) |
/// | 128×4096×7168 | 13.7 (64×64) | 12.7 (128×64p, 2) |
/// | 1×2112×7168 | 12.0 (64×16) | 7.9 (64×64, 4) |
/// | 1×576×7168 | 11.6 (64×16) | 5.9 (64×32, 7) |
/// | 1×4096×7168 | 12.5 (64×32) | 10.2 (64×64, 2) |
///
/// and no gain where K ≤ 2048 (128×7168×2048: 6.4 unsplit, 10.2 with 128×112p in 2 splits)
/// or B is large (128×7168×16384: 38.6, 39.4 with 128×112p in 2). About 1.3–1.6 µs of a split
/// launch are the partial tiles' stores and counting and 1.2–1.8 µs the last unit's reads
/// (SPLIT_K experiments, same benches), so a split pays only where the k-loop shrinks more.
fn split_k_choice(m: usize, n: usize, k: usize, sms: usize) -> Option<Fp8GemmConfig> {
    let kb = k.div_ceil(128);
    if m == 0 || m > 128 || kb < 32 || n.saturating_mul(k) >= 32 << 20 {
        return None;
    }
    let (block_m, pipelined) = if m > 64 { (128u32, true) } else { (64, false) };
    SPLIT_BLOCK_N.iter().find_map(|&bn| {
        let tiles = m.div_ceil(block_m as usize) * n.div_ceil(bn as usize);
        let splits = (sms / tiles).min(MAX_AUTO_SPLITS as usize).min(kb / 8);
        (splits >= 2 && 4 * tiles * splits >= 3 * sms).then(|| {
            Fp8GemmConfig::new(block_m, bn)
                .with_pipeline(pipelined)
                .with_splits(splits as u32)
        })
    })
}

/// BLOCK_N values [`choose_for`] tries for split-K, in order (the last unit of a tile reads
/// every split's FP32 tile, so wider tiles cost more there).
pub const SPLIT_BLOCK_N: &[u32] = &[64, 32];

/// Most splits [`choose_for`] picks (the last unit's reads grow with the count).
pub const MAX_AUTO_SPLITS: u32 = 8;

/// 128-row tiles wider than this run as CTA pairs sharing A ([`Fp8GemmConfig::cluster`])
/// when their N-blocks pair up (measured in alternating processes, three rounds:
/// 4096×2112×7168 with 128×176 tiles 1209–1213 TFLOPS in pairs, 1164–1172 single;
/// 4096×576×7168 with 128×144 tiles, then not pipelined, 1085–1086 in pairs, 1084–1091
/// single). Pairs of pipelined 128×128 tiles were equal or up to 5 % slower at M = 4096 and
/// 1.2–1.8 µs slower at M = 128 (benches/README.md, fourth session).
pub const PAIRED_ABOVE_BLOCK_N: u32 = 144;

/// BLOCK_N values [`choose`] considers for M > 128 (each with 128-row tiles, pipelined up
/// to [`MAX_PIPELINED_BLOCK_N`], for 1D1D up to [`MAX_PIPELINED_BLOCK_N_1D1D`]).
pub const LARGE_M_BLOCK_N: &[u32] = &[96, 112, 128, 144, 160, 176, 192];

/// Widest 128-row tile [`choose_for`] gives a variant with an FP32 `C`: the kernels with C
/// spill above it (ptxas: 1D2D at 160–192 columns, 20 bytes; 1D1D at 192, 16 bytes).
/// [`Fp8GemmConfig::supports`] still accepts those tiles for a forced config: they compute
/// the same result, slower.
pub const MAX_BLOCK_N_WITH_C: u32 = 144;

/// Whether [`choose_for`] pipelines a 128-row tile of `block_n` columns for variant `v`
/// (registers: [`MAX_PIPELINED_BLOCK_N`], [`MAX_PIPELINED_BLOCK_N_1D1D`]).
fn pipelines(v: Fp8Variant, block_n: u32) -> bool {
    let max = match v.b_recipe {
        Fp8Recipe::PerBlock => MAX_PIPELINED_BLOCK_N,
        Fp8Recipe::PerToken => MAX_PIPELINED_BLOCK_N_1D1D,
    };
    block_n <= max
}

/// [`LARGE_M_BLOCK_N`] as variant `v` may use it.
fn large_m_block_n(v: Fp8Variant) -> impl Iterator<Item = u32> {
    let max = if v.with_c {
        MAX_BLOCK_N_WITH_C
    } else {
        u32::MAX
    };
    LARGE_M_BLOCK_N.iter().copied().filter(move |&bn| bn <= max)
}

/// BLOCK_N values [`choose`] considers for 64 < M ≤ 128 (128-row tiles, pipelined).
pub const MEDIUM_M_BLOCK_N: &[u32] = &[64, 96, 128];

/// Every tile configuration [`choose_for`] can return for variant `v`, split-K ones with 2
/// splits standing for every count ([`Fp8GemmConfig::kernel_config`]; the compile gate
/// builds each).
pub fn chosen_configs_for(v: Fp8Variant) -> Vec<Fp8GemmConfig> {
    let small = BLOCK_N_CANDIDATES
        .iter()
        .map(|&bn| Fp8GemmConfig::new(64, bn));
    let large = large_m_block_n(v).flat_map(|bn| {
        let c = Fp8GemmConfig::new(128, bn).with_pipeline(pipelines(v, bn));
        let pairs = (bn > PAIRED_ABOVE_BLOCK_N).then(|| c.with_cluster(2));
        std::iter::once(c).chain(pairs)
    });
    let medium = MEDIUM_M_BLOCK_N
        .iter()
        .map(|&bn| Fp8GemmConfig::new(128, bn).with_pipeline(true));
    // Split-K, one per kernel (any split count ≥ 2 runs the same kernel).
    let split = SPLIT_BLOCK_N.iter().flat_map(|&bn| {
        [
            Fp8GemmConfig::new(64, bn).with_splits(2),
            Fp8GemmConfig::new(128, bn)
                .with_pipeline(true)
                .with_splits(2),
        ]
    });
    // B's own loading thread for the pipelined tiles M ≤ 128 gets, and for larger M's
    // 128×128 (`choose_unsplit_for`).
    let b_thread = MEDIUM_M_BLOCK_N
        .iter()
        .map(|&bn| Fp8GemmConfig::new(128, bn).with_pipeline(true))
        .chain([
            Fp8GemmConfig::new(64, 128).with_pipeline(true),
            Fp8GemmConfig::new(128, 128).with_pipeline(true),
        ])
        .map(|c| c.with_b_thread(true));
    let mut out: Vec<_> = small.chain(large).chain(medium).chain(split).collect();
    if v == Fp8Variant::BF16_1D2D {
        out.push(Fp8GemmConfig::new(256, 128).with_cluster(2));
    }
    out.push(Fp8GemmConfig::new(64, 128).with_pipeline(true));
    out.extend(b_thread);
    let mut seen = std::collections::HashSet::new();
    out.retain(|c| seen.insert(*c));
    out
}

/// Every tile configuration [`choose`] can return (BF16 1D2D; [`chosen_configs_for`] per
/// variant).
pub fn chosen_configs() -> Vec<Fp8GemmConfig> {
    chosen_configs_for(Fp8Variant::BF16_1D2D)
}

/// Every tile configuration the kernels are built and tested in: [`chosen_configs`], CTA
/// pairs of every BLOCK_N, the pipelined version of each that supports it, split-K ones and
/// those with B's own loading thread (the compile gate and the GPU suite cover all of them
/// in the BF16 1D2D variant).
pub fn all_configs() -> Vec<Fp8GemmConfig> {
    let single = [64, 128].iter().flat_map(|&bm| {
        BLOCK_N_CANDIDATES
            .iter()
            .map(move |&bn| Fp8GemmConfig::new(bm, bn))
    });
    let pairs = BLOCK_N_CANDIDATES
        .iter()
        .map(|&bn| Fp8GemmConfig::new(128, bn).with_cluster(2));
    let m256 = BLOCK_N_CANDIDATES
        .iter()
        .filter(|&&bn| bn <= MAX_BLOCK_N_M256)
        .flat_map(|&bn| [1, 2].map(|c| Fp8GemmConfig::new(256, bn).with_cluster(c)));
    let plain: Vec<_> = single.chain(pairs).chain(m256).collect();
    let piped = plain
        .iter()
        .map(|c| c.with_pipeline(true))
        .filter(|c| c.supports(0, 2 * c.block_n as usize));
    // Split-K (the kernel is the same for every count ≥ 2): 3 splits (uneven over 4 or 5
    // k-blocks) for the 64-row tiles, 4 for the 128-row ones, every kind of k-loop.
    let split = SPLIT_TILES
        .iter()
        .map(|s| s.parse::<Fp8GemmConfig>().expect("SPLIT_TILES parse"));
    // B's own loading thread: the tiles `choose_for` gives it.
    let b_thread = chosen_configs().into_iter().filter(|c| c.b_thread);
    let mut out: Vec<_> = plain
        .iter()
        .copied()
        .chain(piped)
        .chain(split)
        .chain(b_thread)
        .collect();
    let mut seen = std::collections::HashSet::new();
    out.retain(|c| seen.insert(*c));
    out
}

/// The split-K configs of [`all_configs`] besides those [`chosen_configs`] gives.
const SPLIT_TILES: &[&str] = &[
    "64x16k3",
    "64x32k3",
    "64x64k3",
    "64x128k3",
    "64x128pk3",
    "128x32pk4",
    "128x64pk4",
    "128x128pk4",
    "128x144pk4",
    "128x176k4",
    // B's own loading thread in a split-K kernel (a forced config; the heuristic gives `b`
    // only to unsplit tiles).
    "128x64pbk4",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_choice_is_in_all_configs_and_fits() {
        let all: Vec<_> = all_configs().iter().map(|c| c.kernel_config()).collect();
        for v in Fp8Variant::all() {
            let chosen = chosen_configs_for(v);
            for &m in &[1, 7, 64, 65, 128, 1088, 4096] {
                for &n in &[1, 16, 33, 576, 1408, 2112, 4096, 7168, 24576, 32768] {
                    // 56 and 128 k-blocks: split-K, and B's own loading thread
                    for k in [7168, 16384] {
                        let c = choose_for(v, m, n, k, 132);
                        assert!(chosen.contains(&c.kernel_config()), "{c:?} for {v:?}");
                        assert!(c.supports(m, n), "{c:?} for {m}x{n}");
                        if v.with_c && c.block_m == 128 {
                            assert!(c.block_n <= MAX_BLOCK_N_WITH_C, "{c:?} for {v:?}");
                        }
                    }
                }
            }
            assert!(chosen.iter().all(|c| all.contains(&c.kernel_config())));
        }
        for c in &all {
            for v in Fp8Variant::all() {
                assert!(
                    c.stages_for(v) >= 3 && c.smem_bytes(v) <= MAX_SMEM_BYTES,
                    "{c:?} {v:?}"
                );
            }
            assert_eq!(c.block_n * 128 % 1024, 0);
        }
    }

    #[test]
    fn small_m_uses_one_math_warpgroup() {
        assert_eq!(choose(1, 7168, 7168, 132).block_m, 64);
        assert_eq!(choose(64, 7168, 7168, 132).block_m, 64);
        assert_eq!(choose(1024, 7168, 7168, 132).block_m, 128);
        assert_eq!(choose(4096, 7168, 7168, 132).block_m, 256);
        // Memory-bound: wide streams for a large B, else one wave of small tiles.
        // (with B's own loading thread from 64 k-blocks on)
        assert_eq!(
            choose(1, 7168, 16384, 132),
            Fp8GemmConfig::new(64, 128)
                .with_pipeline(true)
                .with_b_thread(true)
        );
        assert!(!choose(128, 7168, 8064, 132).b_thread);
        assert!(choose(128, 7168, 8065, 132).b_thread);
        assert_eq!(choose(1, 7168, 7168, 132).block_n, 64);
        assert_eq!(choose(1, 24576, 1536, 132).block_n, 192);
        assert_eq!(choose(1, 32768, 512, 132).block_n, 128);
        // Without split-K (K < 4096): one wave of the smallest tiles.
        assert_eq!(choose(1, 576, 3968, 132).block_n, 16);
        assert_eq!(choose(128, 2112, 3968, 132).block_n, 32);
        assert_eq!(choose(128, 4096, 3968, 132), Fp8GemmConfig::new(64, 64));
        // Split-K: at least 32 k-blocks (K > 3968) and B under 32 MiB; the first of 64, 32
        // columns whose tiles times the splits (≤ 8, ≤ SMs / tiles) fill 3/4 of the SMs.
        let split = |bm, bn, s| {
            Fp8GemmConfig::new(bm, bn)
                .with_pipeline(bm == 128)
                .with_splits(s)
        };
        assert_eq!(choose(1, 576, 7168, 132), split(64, 32, 7));
        assert_eq!(choose(1, 2112, 7168, 132), split(64, 64, 4));
        assert_eq!(choose(1, 4096, 7168, 132), split(64, 64, 2));
        assert_eq!(choose(128, 576, 7168, 132), split(128, 32, 7));
        assert_eq!(choose(128, 2112, 7168, 132), split(128, 64, 4));
        assert_eq!(choose(128, 4096, 7168, 132), split(128, 64, 2));
        assert_eq!(choose(64, 4096, 4096, 132), split(64, 64, 2));
        // not where B is 32 MiB or more, nor for K < 4096, nor when tiles fill the SMs
        assert_eq!(choose(1, 7168, 7168, 132).splits, 1);
        assert_eq!(choose(128, 4096, 3968, 132).splits, 1);
        assert_eq!(choose(128, 8192, 3968, 132).splits, 1);
        assert_eq!(choose(129, 576, 7168, 132).splits, 1);
        // fewer SMs, fewer splits (SCALEGEMM_NUM_SMS)
        assert_eq!(choose(1, 2112, 7168, 66), split(64, 64, 2));
        // without split-K, as before it (batch-invariant)
        let unsplit = |m, n, k| choose_unsplit_for(Fp8Variant::BF16_1D2D, m, n, k, 132);
        assert_eq!(unsplit(128, 2112, 7168), Fp8GemmConfig::new(64, 32));
        assert_eq!(unsplit(1, 576, 7168), Fp8GemmConfig::new(64, 16));
        assert_eq!(unsplit(4096, 4096, 7168), choose(4096, 4096, 7168, 132));
        assert_eq!(unsplit(1024, 4096, 7168), choose(1024, 4096, 7168, 132));
        // 64 < M ≤ 128 with enough 128-row tiles: one M-block, pipelined.
        let medium = |bn| Fp8GemmConfig::new(128, bn).with_pipeline(true);
        assert_eq!(
            choose(128, 7168, 16384, 132),
            medium(64).with_b_thread(true)
        );
        // Large M: B's own thread for 128x128 pipelined tiles only.
        assert!(choose(1024, 7168, 16384, 132).b_thread);
        assert!(choose(1024, 4096, 7168, 132).b_thread);
        assert!(!choose(4096, 4096, 7168, 132).b_thread);
        assert!(!choose(4096, 2112, 7168, 132).b_thread);
        assert!(!choose(4096, 576, 7168, 132).b_thread);
        assert_eq!(choose(100, 7168, 2048, 132), medium(64));
        assert_eq!(choose(128, 24576, 1536, 132), medium(96));
        assert_eq!(choose(128, 32768, 512, 132), medium(128));
        // More than two waves even at 128 columns: 128 columns.
        assert_eq!(choose(128, 65536, 512, 132), medium(128));
        // Large M, full waves, no 256x128 pairs (N not a multiple of 8): 128x192 where its
        // waves times its column cost beat 128's.
        let wide = Fp8GemmConfig::new(128, WIDE_BLOCK_N);
        assert_eq!(choose(4096, 24572, 1536, 132), wide);
        assert_eq!(choose(4096, 32764, 512, 132), wide);
        // not where the waves favour 128, nor beyond the measured K and M
        for (m, n, k) in [
            (4096, 7164, 2048),
            (4096, 7164, 16384),
            (8192, 8192, 8192),
            (4096, 24572, 2176),
            (1024, 24576, 1536),
            (256, 7168, 7168),
        ] {
            let c = choose(m, n, k, 132);
            assert_eq!((c.block_m, c.block_n), (128, 128), "{m}x{n}x{k}");
        }
        // only for the variant measured
        for v in Fp8Variant::all()
            .into_iter()
            .filter(|&v| v != Fp8Variant::BF16_1D2D)
        {
            assert_ne!(choose_for(v, 4096, 24572, 1536, 132), wide, "{v:?}");
        }
        // Large M: 128x128 unless the waves are much fuller (576 = 4 x 144) or 256x128
        // pairs fill them as well (M ≥ 2048).
        assert_eq!(
            choose(1024, 4096, 7168, 132),
            Fp8GemmConfig::new(128, 128)
                .with_pipeline(true)
                .with_b_thread(true)
                .with_band(LONG_K_BAND)
        );
        // Wider bands only for those tiles of M > 128 and K ≥ LONG_K_BAND_MIN_K.
        assert_eq!(choose(1024, 8192, 8192, 132).band, LONG_K_BAND);
        assert_eq!(choose(1024, 7168, 16384, 132).band, LONG_K_BAND);
        assert_eq!(choose(1024, 7168, LONG_K_BAND_MIN_K, 132).band, LONG_K_BAND);
        let below = choose(1024, 7168, LONG_K_BAND_MIN_K - 1, 132);
        assert_eq!((below.block_n, below.band), (128, DEFAULT_BAND));
        assert_eq!(choose(1024, 7168, 2048, 132).band, DEFAULT_BAND);
        assert_eq!(choose(8192, 8192, 8192, 132).band, LONG_K_BAND);
        assert_eq!(choose(4096, 7168, 16384, 132).band, LONG_K_BAND);
        // 256x128 pairs keep the default band (16 N-blocks: the band counts pairs) except
        // with K ≤ SHORT_K_PAIR_BAND_MAX_K.
        assert_eq!(choose(4096, 4096, 7168, 132).band, DEFAULT_BAND);
        for (m, n, k) in [
            (4096, 24576, 1536),
            (4096, 32768, TALL_MIN_K),
            (2048, 24576, 1536),
            (4096, 7168, SHORT_K_PAIR_BAND_MAX_K),
        ] {
            let c = choose(m, n, k, 132);
            assert_eq!(
                (c.block_m, c.cluster, c.band),
                (256, 2, SHORT_K_PAIR_BAND),
                "{m}x{n}x{k}"
            );
        }
        // The measured edge, in literals: K = 2048 takes band 4, K = 2049 and 4096 band 8.
        assert_eq!(SHORT_K_PAIR_BAND_MAX_K, 2048);
        assert_eq!(choose(4096, 7168, 2048, 132).band, 4);
        for k in [2049, 4096] {
            let above = choose(4096, 7168, k, 132);
            assert_eq!(
                (above.block_m, above.cluster, above.band),
                (256, 2, 8),
                "K = {k}"
            );
        }
        // Other variants do not take the pairs, nor the short-K pair band.
        for v in Fp8Variant::all() {
            let c = choose_for(v, 4096, 24576, 1536, 132);
            let bf16 = v == Fp8Variant::BF16_1D2D;
            assert_eq!(c.band == SHORT_K_PAIR_BAND, bf16, "{v:?}");
            assert_eq!(c.block_m == 256, bf16, "{v:?}");
        }
        assert_eq!(choose(4096, 2112, 7168, 132).band, DEFAULT_BAND);
        // M ≤ 128: a 128x128 pipelined tile at K ≥ 4096 keeps the default band.
        let medium_128 = choose(128, 32768, 4096, 132);
        assert_eq!((medium_128.block_n, medium_128.pipelined), (128, true));
        assert_eq!(medium_128.band, DEFAULT_BAND);
        // every variant (the band orders the tiles only)
        for v in Fp8Variant::all() {
            assert_eq!(
                choose_for(v, 1024, 4096, 7168, 132).band,
                LONG_K_BAND,
                "{v:?}"
            );
        }
        assert_eq!(choose(4096, 576, 7168, 132).block_n, 144);
        // 4096x2112: 544 tiles of 128x128 are 4.1 waves; 384 of 128x176, 2.9 (in pairs:
        // 12 N-blocks); an odd number of N-blocks runs single CTAs (3072x736: 5 of 160).
        assert_eq!(
            choose(4096, 2112, 7168, 132),
            Fp8GemmConfig::new(128, 176).with_cluster(2)
        );
        assert_eq!(choose(3072, 736, 7168, 132), Fp8GemmConfig::new(128, 160));
        // With an FP32 C at most 144 columns (wider tiles spill).
        let with_c = Fp8Variant {
            out: OutDtype::F32,
            with_c: true,
            ..Fp8Variant::BF16_1D2D
        };
        assert_eq!(choose_for(with_c, 4096, 2112, 7168, 132).block_n, 128);
        assert_eq!(choose_for(with_c, 4096, 576, 7168, 132).block_n, 144);
    }

    #[test]
    fn large_m_takes_256_row_pairs_where_waves_allow() {
        let tall = Fp8GemmConfig::new(256, 128).with_cluster(2);
        // The measured shapes (thirteenth session), all faster with them.
        for (m, n, k) in [
            (4096, 24576, 1536),
            (4096, 32768, 512),
            (4096, 4096, 7168),
            (4096, 7168, 2048),
            (2048, 24576, 1536),
        ] {
            let band = if k <= SHORT_K_PAIR_BAND_MAX_K {
                SHORT_K_PAIR_BAND
            } else {
                DEFAULT_BAND
            };
            assert_eq!(choose(m, n, k, 132), tall.with_band(band), "{m}x{n}x{k}");
        }
        // Not for the power-limited long K (K > 7168): 128x128 pipelined, band 16.
        let long_k = Fp8GemmConfig::new(128, 128)
            .with_pipeline(true)
            .with_b_thread(true)
            .with_band(LONG_K_BAND);
        for (m, n, k) in [(4096, 7168, 16384), (8192, 8192, 8192), (2048, 8192, 8192)] {
            assert_eq!(choose(m, n, k, 132), long_k, "{m}x{n}x{k}");
        }
        // Not where their last wave is emptier (2048x7168x2048: 448 tiles, 3.4 waves; it
        // measured 12 % slower), nor below the measured M and K, nor for an N the TMA-store
        // epilogue cannot take, nor where a wider 128-row tile balances the waves.
        assert_eq!(
            choose(2048, 7168, 2048, 132),
            Fp8GemmConfig::new(128, 128)
                .with_pipeline(true)
                .with_b_thread(true)
        );
        assert_eq!(choose(1024, 24576, 1536, 132).block_m, 128);
        assert_eq!(choose(4096, 24576, 384, 132).block_m, 128);
        assert_eq!(choose(4096, 24572, 1536, 132).block_m, 128);
        assert_eq!(choose(4096, 2112, 7168, 132).block_n, 176);
        // An odd number of N-blocks cannot pair (3968 = 31 x 128).
        assert_eq!(choose(4096, 3968, 1536, 132).block_m, 128);
        // The bounds, exactly: M ≥ 2048, 512 ≤ K ≤ 7168.
        assert_eq!(choose(2047, 24576, 1536, 132).block_m, 128);
        assert_eq!(choose(4096, 32768, 511, 132).block_m, 128);
        assert_eq!(choose(4096, 4096, 7169, 132).block_m, 128);
        // The fill rule at its edge: 7936x8192 fills 0.969 of 128x128's waves, 2304x30208
        // 0.971.
        assert_eq!(choose(7936, 8192, 2048, 132).block_m, 128);
        assert_eq!(
            choose(2304, 30208, 2048, 132),
            tall.with_band(SHORT_K_PAIR_BAND)
        );
        // Fewer SMs (SCALEGEMM_NUM_SMS) change the waves, pairs filling clusters of two:
        // 66 SMs still fill them at 4096x4096; at 2048x8192 132 SMs do (64 pairs on 66
        // clusters against 4 x 132 tiles of 128x128), 100 do not (64 on 50 clusters).
        assert_eq!(choose(4096, 4096, 7168, 66), tall);
        assert_eq!(
            choose(2048, 8192, 2048, 132),
            tall.with_band(SHORT_K_PAIR_BAND)
        );
        assert_eq!(choose(2048, 8192, 2048, 100).block_m, 128);
        assert_eq!(choose(4096, 4096, 7168, 2), tall);
        assert_eq!(choose(4096, 4096, 7168, 1).block_m, 128);
        // Only BF16 1D2D: the others keep 128-row tiles.
        for v in Fp8Variant::all()
            .into_iter()
            .filter(|&v| v != Fp8Variant::BF16_1D2D)
        {
            assert_eq!(choose_for(v, 4096, 4096, 7168, 132).block_m, 128, "{v:?}");
        }
    }

    #[test]
    fn parses_tiles() {
        let c: Fp8GemmConfig = "128x128c2p".parse().unwrap();
        assert_eq!(
            c,
            Fp8GemmConfig::new(128, 128)
                .with_cluster(2)
                .with_pipeline(true)
        );
        assert_eq!("64x96".parse(), Ok(Fp8GemmConfig::new(64, 96)));
        assert!("128".parse::<Fp8GemmConfig>().is_err());
        assert!("128xq".parse::<Fp8GemmConfig>().is_err());
        // Rasterisation band: `/B` last, B ≥ 1.
        assert_eq!(
            "128x128c2p/16".parse(),
            Ok(Fp8GemmConfig::new(128, 128)
                .with_cluster(2)
                .with_pipeline(true)
                .with_band(16))
        );
        assert_eq!(
            "128x128d/4".parse(),
            Ok(Fp8GemmConfig::new(128, 128)
                .with_direct_store(true)
                .with_band(4))
        );
        assert_eq!("64x32".parse::<Fp8GemmConfig>().unwrap().band, DEFAULT_BAND);
        // Split-K: `kS` before the band.
        assert_eq!(
            "128x64pk4".parse(),
            Ok(Fp8GemmConfig::new(128, 64)
                .with_pipeline(true)
                .with_splits(4))
        );
        assert_eq!(
            "64x32k3/4".parse(),
            Ok(Fp8GemmConfig::new(64, 32).with_splits(3).with_band(4))
        );
        // B's own loading thread: `b` after `p`/`d`, before `kS`.
        assert_eq!(
            "64x128pb".parse(),
            Ok(Fp8GemmConfig::new(64, 128)
                .with_pipeline(true)
                .with_b_thread(true))
        );
        assert_eq!(
            "128x64pdbk2".parse(),
            Ok(Fp8GemmConfig::new(128, 64)
                .with_pipeline(true)
                .with_direct_store(true)
                .with_b_thread(true)
                .with_splits(2))
        );
        assert!("128x64bp".parse::<Fp8GemmConfig>().is_err());
        for bad in [
            "128x128p/0",
            "128x128p/",
            "128x128/16p",
            "128x128/x",
            "128x64pk0",
            "128x64pk33",
            "128x64pk",
            "128x64k2p",
        ] {
            assert!(bad.parse::<Fp8GemmConfig>().is_err(), "{bad}");
        }
    }

    #[test]
    fn split_k_limits() {
        let c = Fp8GemmConfig::new(128, 64)
            .with_pipeline(true)
            .with_splits(4);
        assert!(c.supports(128, 64));
        assert_eq!(c.splits_for(7168), 4);
        assert_eq!(c.splits_for(300), 3, "one split per 128-K block at most");
        assert_eq!(c.splits_for(0), 1);
        assert!(!c.with_cluster(2).supports(128, 128), "single CTAs only");
        assert!(!Fp8GemmConfig::new(256, 64).with_splits(2).supports(256, 64));
        assert!(!c.with_splits(0).supports(128, 64));
        assert!(!c.with_splits(MAX_SPLITS + 1).supports(128, 64));
        // the flag word: 16 bytes, and the kernel is its own variant
        let v = Fp8Variant::BF16_1D2D;
        let one = c.with_splits(1);
        assert_eq!(
            c.smem_bytes(v) - c.stages_for(v) * one.stage_bytes(v),
            one.staging_bytes(v) + 16
        );
        assert_ne!(c.spec(v), one.spec(v));
        assert_eq!(c.spec(v), c.with_splits(7).spec(v));
    }

    #[test]
    fn pipelining_is_limited_by_registers() {
        assert!(Fp8GemmConfig::new(128, 128)
            .with_pipeline(true)
            .supports(128, 128));
        assert!(Fp8GemmConfig::new(128, 144)
            .with_pipeline(true)
            .supports(128, 144));
        assert!(!Fp8GemmConfig::new(128, 160)
            .with_pipeline(true)
            .supports(128, 160));
        // 1D2D pipelines 144-column tiles, 1D1D (spilling there) only up to 128.
        for v in Fp8Variant::all() {
            let c = choose_for(v, 4096, 576, 7168, 132);
            assert_eq!((c.block_m, c.block_n), (128, 144), "{v:?}");
            assert_eq!(c.pipelined, v.b_recipe == Fp8Recipe::PerBlock, "{v:?}");
        }
    }
}
