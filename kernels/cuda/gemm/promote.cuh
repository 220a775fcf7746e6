// Promotion of one 128-K block's wgmma partial sums into the FP32 result (DESIGN §3.3):
// per element `final = fma(fl32(sa·sb), partial, final)`, DeepGEMM's order, which the
// reference's Hopper model (`hopper_fp8_gemm`) follows bit for bit.
//
// Register fragment of an m64nNk32 FP32 accumulator (PTX ISA §9.7.15.5.1.1): thread `lane`
// of warp `w` holds, for each 8-column fragment f, acc[4f], acc[4f+1] at row 16w + lane/4,
// columns 8f + 2(lane%4) + {0, 1}, and acc[4f+2], acc[4f+3] at the row 8 below.
//
// Expects BLOCK_N, N_FRAGS, ACC_REGS and SB_BLOCKS from the including kernel.
#pragma once
#include "../common.cuh"

// 1D2D: B's scales are per 128×128 block. The tile's columns lie in at most SB_BLOCKS
// blocks; `p0[j]` / `p1[j]` are fl32(sa·sb[j]) for this thread's two rows and the j-th
// block, which begins at tile column `bnd1` (j = 1) or `bnd2` (j = 2). Both are multiples
// of 8, so a fragment never straddles two blocks.
SG_DEVICE void promote_1d2d(float (&fin)[ACC_REGS], const float (&acc)[ACC_REGS], const float (&p0)[SB_BLOCKS],
                            const float (&p1)[SB_BLOCKS], u32 bnd1, u32 bnd2) {
#pragma unroll
    for (int f = 0; f < N_FRAGS; ++f) {
        float s0 = p0[0], s1 = p1[0];
        if (SB_BLOCKS > 1 && f * 8 >= bnd1) { s0 = p0[SB_BLOCKS > 1 ? 1 : 0]; s1 = p1[SB_BLOCKS > 1 ? 1 : 0]; }
        if (SB_BLOCKS > 2 && f * 8 >= bnd2) { s0 = p0[SB_BLOCKS - 1]; s1 = p1[SB_BLOCKS - 1]; }
        fin[f * 4 + 0] = __fmaf_rn(s0, acc[f * 4 + 0], fin[f * 4 + 0]);
        fin[f * 4 + 1] = __fmaf_rn(s0, acc[f * 4 + 1], fin[f * 4 + 1]);
        fin[f * 4 + 2] = __fmaf_rn(s1, acc[f * 4 + 2], fin[f * 4 + 2]);
        fin[f * 4 + 3] = __fmaf_rn(s1, acc[f * 4 + 3], fin[f * 4 + 3]);
    }
}

// 1D1D: B's scales are per row of B (a column of D): `sfb` points at this k-block's
// BLOCK_N scales of the tile's columns (shared memory).
SG_DEVICE void promote_1d1d(float (&fin)[ACC_REGS], const float (&acc)[ACC_REGS], float sa0, float sa1,
                            const float* sfb, u32 lane) {
#pragma unroll
    for (int f = 0; f < N_FRAGS; ++f) {
        const float sb0 = sfb[f * 8 + (lane % 4) * 2], sb1 = sfb[f * 8 + (lane % 4) * 2 + 1];
        fin[f * 4 + 0] = __fmaf_rn(__fmul_rn(sa0, sb0), acc[f * 4 + 0], fin[f * 4 + 0]);
        fin[f * 4 + 1] = __fmaf_rn(__fmul_rn(sa0, sb1), acc[f * 4 + 1], fin[f * 4 + 1]);
        fin[f * 4 + 2] = __fmaf_rn(__fmul_rn(sa1, sb0), acc[f * 4 + 2], fin[f * 4 + 2]);
        fin[f * 4 + 3] = __fmaf_rn(__fmul_rn(sa1, sb1), acc[f * 4 + 3], fin[f * 4 + 3]);
    }
}
