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
// block, which begins at tile column BND1 (j = 1) or BND1 + 128 (j = 2). BND1 is a
// multiple of 8 in (0, 128], so a fragment never straddles two blocks; it is a template
// argument (see `with_sb_boundary`) so each fragment's scale is fixed at compile time: a
// run-time boundary cost up to two ISETP and four FSEL per fragment (128×176: 44 and 80 for
// 22 fragments, next to 88 FFMA), more than doubling the promotion of 144–192-column tiles.
template <u32 BND1, int F0 = 0, int NF = N_FRAGS>
SG_DEVICE void promote_1d2d(float (&fin)[ACC_REGS], const float (&acc)[NF * 4], const float (&p0)[SB_BLOCKS],
                            const float (&p1)[SB_BLOCKS]) {
#pragma unroll
    for (int i = 0; i < NF; ++i) {
        const int f = F0 + i;
        const u32 j = min((f * 8 >= BND1 ? 1u : 0u) + (f * 8 >= BND1 + 128 ? 1u : 0u), SB_BLOCKS - 1u);
        const float s0 = p0[j], s1 = p1[j];
        fin[f * 4 + 0] = __fmaf_rn(s0, acc[i * 4 + 0], fin[f * 4 + 0]);
        fin[f * 4 + 1] = __fmaf_rn(s0, acc[i * 4 + 1], fin[f * 4 + 1]);
        fin[f * 4 + 2] = __fmaf_rn(s1, acc[i * 4 + 2], fin[f * 4 + 2]);
        fin[f * 4 + 3] = __fmaf_rn(s1, acc[i * 4 + 3], fin[f * 4 + 3]);
    }
}

// A compile-time u32.
template <u32 V> struct U32c {
    static constexpr u32 value = V;
};

// Step of the tile column where a tile's second B-scale block begins: tiles start at
// multiples of BLOCK_N, so that column is a multiple of gcd(BLOCK_N, 128).
#define SB_STEP (BLOCK_N % 128 == 0 ? 128u : BLOCK_N % 64 == 0 ? 64u : BLOCK_N % 32 == 0 ? 32u : 16u)

// Calls `fn(U32c<bnd1>{})` for the run-time `bnd1` (a multiple of SB_STEP in (0, 128]), by
// a chain of compares once per tile. A boundary at or past BLOCK_N promotes like 128 (the
// whole tile in one block), so it is folded into `fn(U32c<128>{})`; with SB_BLOCKS == 1
// that is the only instantiation.
template <u32 B = SB_STEP, typename F>
SG_DEVICE void with_sb_boundary(u32 bnd1, F&& fn) {
    if constexpr (SB_BLOCKS == 1 || B >= 128 || B >= BLOCK_N) {
        fn(U32c<128>{});
    } else {
#ifdef PLANT_SB_BOUNDARY  // planted bug (verification only): the boundary one step late
        if (bnd1 == B) fn(U32c<(B + SB_STEP < 128 ? B + SB_STEP : 128)>{});
#else
        if (bnd1 == B) fn(U32c<B>{});
#endif
        else with_sb_boundary<B + SB_STEP>(bnd1, fn);
    }
}

// 1D1D: B's scales are per row of B (a column of D): `sfb` points at this k-block's
// BLOCK_N scales of the tile's columns (shared memory).
template <int F0 = 0, int NF = N_FRAGS>
SG_DEVICE void promote_1d1d(float (&fin)[ACC_REGS], const float (&acc)[NF * 4], float sa0, float sa1,
                            const float* sfb, u32 lane) {
#pragma unroll
    for (int i = 0; i < NF; ++i) {
        const int f = F0 + i;
        const float sb0 = sfb[f * 8 + (lane % 4) * 2], sb1 = sfb[f * 8 + (lane % 4) * 2 + 1];
        fin[f * 4 + 0] = __fmaf_rn(__fmul_rn(sa0, sb0), acc[i * 4 + 0], fin[f * 4 + 0]);
        fin[f * 4 + 1] = __fmaf_rn(__fmul_rn(sa0, sb1), acc[i * 4 + 1], fin[f * 4 + 1]);
        fin[f * 4 + 2] = __fmaf_rn(__fmul_rn(sa1, sb0), acc[i * 4 + 2], fin[f * 4 + 2]);
        fin[f * 4 + 3] = __fmaf_rn(__fmul_rn(sa1, sb1), acc[i * 4 + 3], fin[f * 4 + 3]);
    }
}
