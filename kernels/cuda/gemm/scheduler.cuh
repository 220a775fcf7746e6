// Persistent tile scheduler: CTA b takes tiles b, b + gridDim.x, b + 2·gridDim.x, ...
// Tiles are rasterised in bands of `band` N-blocks; inside a band the M-block index moves
// slowest, so the CTAs running at one time share both A row-blocks and B column-blocks in L2.
// With clusters of CLUSTER CTAs (1 or 2), the unit of work is a group of CLUSTER tiles side
// by side along N (same M-block, so they can share A by TMA multicast): cluster c takes
// units c, c + gridDim.x/CLUSTER, ..., and its CTA of rank r the unit's r-th N-block. The
// host launches this only when the number of N-blocks is a multiple of CLUSTER.
//
// With SPLIT_K (CLUSTER 1 only) each tile is `splits` consecutive units, split s taking
// k-blocks [s·num_kb/splits, (s+1)·num_kb/splits) (split_k.cuh reduces them).
//
// The kernel sees only `next_unit` → (m_block, n_block, k-block range) and turns them into TMA coordinates
// (A rows m_block·BLOCK_M, B rows n_block·BLOCK_N) and output rows/columns. Grouped GEMMs
// (a later issue) are meant to plug in here as tile-to-group mappings, not as new kernels:
// M-grouped contiguous maps a linear M-block to its group (B's row offset group·N) from the
// per-group row counts; M-grouped masked walks groups × ceil(masked_m[g] / BLOCK_M) M-blocks
// (A and D row offset group·M_max); K-grouped keeps (m_block, n_block) per group and changes
// the K range and the tensor maps per group.
#pragma once
#include "../common.cuh"

#ifndef CLUSTER
#define CLUSTER 1
#endif
#ifndef SPLIT_K
#define SPLIT_K 0
#endif

// Unsigned 32-bit division by a divisor fixed at construction, as a multiply-high, a
// subtract and two shifts (Granlund & Montgomery, "Division by invariant integers using
// multiplication", PLDI 1994, Figure 4.1): exact for every n and every d ≥ 1. The
// scheduler divides on the path from one tile's epilogue to the next tile's first wgmma,
// where the compiler's division (a reciprocal through I2F, MUFU.RCP and F2I, then fix-ups)
// sat in the latency before the k-loop's dispatch.
struct FastDivU32 {
    u32 m, sh1, sh2;
    SG_DEVICE FastDivU32() : m(1), sh1(0), sh2(0) {}
    SG_DEVICE explicit FastDivU32(u32 d) {
        const u32 l = d > 1 ? 32 - __clz(d - 1) : 0;  // ceil(log2 d)
        // 2^32 · (2^l − d) / d + 1 < 2^32 (64-bit: 2^l may be 2^32).
        m = (u32)((((1ull << l) - d) << 32) / d + 1);
        sh1 = min(l, 1u);
        sh2 = l > 0 ? l - 1 : 0;
    }
    SG_DEVICE u32 div(u32 n) const {
        const u32 t = __umulhi(m, n);
        return (t + ((n - t) >> sh1)) >> sh2;
    }
};

// One unit of work: a tile, and (SPLIT_K) the k-blocks [kb_begin, kb_end) of its split.
struct WorkUnit {
    u32 m_block, n_block, split, kb_begin, kb_end;
};

struct TileScheduler {
    u32 num_m_blocks, num_n_blocks, band, num_tiles, num_kb, splits, num_units;
    u32 next;

    u32 rank;
    // Divisions by M-blocks × band, by the band, and by the last band's width.
    FastDivU32 div_per_band, div_band, div_last_width;

    // `rank`: this CTA's rank in its cluster (0 without clusters); `splits_`: units per tile
    // (SPLIT_K only: 1 ≤ splits_ ≤ num_kb_, checked by the host).
    SG_DEVICE TileScheduler(u32 m, u32 n, u32 num_kb_, u32 block_m, u32 block_n, u32 band_, u32 splits_, u32 rank_)
        : num_m_blocks(ceil_div(m, block_m)), num_n_blocks(ceil_div(n, block_n) / CLUSTER), band(band_),
          num_kb(num_kb_), splits(SPLIT_K ? splits_ : 1), next(blockIdx.x / CLUSTER), rank(rank_) {
        num_tiles = num_m_blocks * num_n_blocks;
        num_units = num_tiles * splits;
        div_per_band = FastDivU32(num_m_blocks * band);
        div_band = FastDivU32(band);
        div_last_width = FastDivU32(num_n_blocks - (ceil_div(num_n_blocks, band) - 1) * band);
    }

    // Fills the next unit and returns true, or returns false when done. With SPLIT_K the
    // units of one tile are consecutive (split fastest), so they run at about the same time.
    SG_DEVICE bool next_unit(WorkUnit& u) {
        if (next >= num_units) return false;
        u32 t = next;
        next += gridDim.x / CLUSTER;
#if SPLIT_K
        u.split = t % splits;
        t /= splits;
        u.kb_begin = u.split * num_kb / splits;
        u.kb_end = (u.split + 1) * num_kb / splits;
#else
        u.split = 0;
        u.kb_begin = 0;
        u.kb_end = num_kb;
#endif
        const u32 band_idx = div_per_band.div(t);
        const u32 in_band = t - band_idx * num_m_blocks * band;
        // Every band is `band` N-blocks wide but the last (the host keeps 1 ≤ band ≤ N-blocks).
        const bool last = (band_idx + 1) * band >= num_n_blocks;
        const u32 width = last ? num_n_blocks - band_idx * band : band;
        u.m_block = (last ? div_last_width : div_band).div(in_band);
        u.n_block = (band_idx * band + (in_band - u.m_block * width)) * CLUSTER + rank;
        return true;
    }
};
