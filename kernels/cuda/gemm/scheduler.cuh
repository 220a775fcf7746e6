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

// One unit of work: a tile, and (SPLIT_K) the k-blocks [kb_begin, kb_end) of its split.
struct WorkUnit {
    u32 m_block, n_block, split, kb_begin, kb_end;
};

struct TileScheduler {
    u32 num_m_blocks, num_n_blocks, band, num_tiles, num_kb, splits, num_units;
    u32 next;

    u32 rank;

    // `rank`: this CTA's rank in its cluster (0 without clusters); `splits_`: units per tile
    // (SPLIT_K only: 1 ≤ splits_ ≤ num_kb_, checked by the host).
    SG_DEVICE TileScheduler(u32 m, u32 n, u32 num_kb_, u32 block_m, u32 block_n, u32 band_, u32 splits_, u32 rank_)
        : num_m_blocks(ceil_div(m, block_m)), num_n_blocks(ceil_div(n, block_n) / CLUSTER), band(band_),
          num_kb(num_kb_), splits(SPLIT_K ? splits_ : 1), next(blockIdx.x / CLUSTER), rank(rank_) {
        num_tiles = num_m_blocks * num_n_blocks;
        num_units = num_tiles * splits;
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
        u32 per_band = num_m_blocks * band;
        u32 band_idx = t / per_band;
        u32 in_band = t - band_idx * per_band;
        u32 width = min(band, num_n_blocks - band_idx * band);
        u.m_block = in_band / width;
        u.n_block = (band_idx * band + (in_band - u.m_block * width)) * CLUSTER + rank;
        return true;
    }
};
