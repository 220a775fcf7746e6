// Persistent tile scheduler: CTA b takes tiles b, b + gridDim.x, b + 2·gridDim.x, ...
// Tiles are rasterised in bands of `band` N-blocks; inside a band the M-block index moves
// slowest, so the CTAs running at one time share both A row-blocks and B column-blocks in L2.
#pragma once
#include "../common.cuh"

struct TileScheduler {
    u32 num_m_blocks, num_n_blocks, band, num_tiles;
    u32 next;

    SG_DEVICE TileScheduler(u32 m, u32 n, u32 block_m, u32 block_n, u32 band_)
        : num_m_blocks(ceil_div(m, block_m)), num_n_blocks(ceil_div(n, block_n)), band(band_),
          next(blockIdx.x) {
        num_tiles = num_m_blocks * num_n_blocks;
    }

    // Writes the next tile's (m_block, n_block) and returns true, or returns false when done.
    SG_DEVICE bool next_tile(u32& m_block, u32& n_block) {
        if (next >= num_tiles) return false;
        u32 t = next;
        next += gridDim.x;
        u32 per_band = num_m_blocks * band;
        u32 band_idx = t / per_band;
        u32 in_band = t - band_idx * per_band;
        u32 width = min(band, num_n_blocks - band_idx * band);
        m_block = in_band / width;
        n_block = band_idx * band + (in_band - m_block * width);
        return true;
    }
};
