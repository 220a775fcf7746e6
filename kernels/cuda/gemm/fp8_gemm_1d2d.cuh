// FP8 GEMM, DeepSeek recipe ("1D2D"): D[M, N] (BF16) = A[M, K] · B[N, K]ᵀ, with A's scales
// per 1×128 (FP32, TMA-aligned MN-major) and B's per 128×128 (FP32, [ceil(N/128), ceil(K/128)]).
//
// Persistent, warp-specialised: warpgroups 0..NUM_MATH_WG-1 compute (64 rows each),
// the last warpgroup produces (one thread issues TMA loads into a STAGES-deep ring of
// 128B-swizzled shared-memory tiles, guarded by full/empty mbarriers). Per 128-K block the
// math warpgroups run four FP8 wgmma (k = 32) into a zeroed register tile, then promote it
// into the FP32 result with `final = fma(sa·sb, partial, final)` (DeepGEMM's order, which
// the reference's Hopper model follows). Out-of-bounds rows/columns/K are zero-filled by
// TMA and never stored.
//
// With CLUSTER = 2, two CTAs computing side-by-side tiles (same M-block) share A: each
// loads half of A's rows and multicasts it to both, and each CTA's consumers release a
// stage on both CTAs' empty barriers (the peer writes into it too).
//
// Compile-time: BLOCK_M (64·NUM_MATH_WG), BLOCK_N (multiple of 8, ≤ 256), STAGES, CLUSTER.
#pragma once
#include "../common.cuh"
#include "../ptx/mbarrier.cuh"
#include "../ptx/tma.cuh"
#include "../ptx/wgmma.cuh"
#include "../ptx/warpgroup.cuh"
#include "../ptx/cvt.cuh"
#include "../ptx/cluster.cuh"
#include "scheduler.cuh"

#define BLOCK_K 128
#define NUM_MATH_WG (BLOCK_M / 64)
#define NUM_THREADS ((NUM_MATH_WG + 1) * 128)
#define SMEM_A_BYTES (BLOCK_M * BLOCK_K)
#define SMEM_B_BYTES (BLOCK_N * BLOCK_K)
#define SMEM_SFA_BYTES (((BLOCK_M * 4) + 127) / 128 * 128)
#define N_FRAGS (BLOCK_N / 8)
#define ACC_REGS (BLOCK_N / 2)
// B-scale blocks one tile can touch: 1 when BLOCK_N divides 128 (tiles never straddle a
// 128-column boundary), else 2, or 3 above 128 columns.
#define SB_BLOCKS (128 % BLOCK_N == 0 ? 1 : (BLOCK_N <= 128 ? 2 : 3))

static_assert(BLOCK_M == 64 || BLOCK_M == 128, "BLOCK_M must be 64 or 128");
static_assert(CLUSTER == 1 || CLUSTER == 2, "CLUSTER must be 1 or 2");
static_assert(BLOCK_N % 8 == 0 && BLOCK_N >= 8 && BLOCK_N <= 256, "BLOCK_N: multiple of 8 in [8, 256]");
static_assert(SMEM_B_BYTES % 1024 == 0, "B tiles must keep 1024-byte swizzle alignment");

// Shared memory: [A tiles][B tiles][A scales][full barriers][empty barriers].
SG_DEVICE u8* smem_a(u8* base, u32 s) { return base + s * SMEM_A_BYTES; }
SG_DEVICE u8* smem_b(u8* base, u32 s) { return base + STAGES * SMEM_A_BYTES + s * SMEM_B_BYTES; }
SG_DEVICE float* smem_sfa(u8* base, u32 s) {
    return reinterpret_cast<float*>(base + STAGES * (SMEM_A_BYTES + SMEM_B_BYTES) + s * SMEM_SFA_BYTES);
}
SG_DEVICE u64* smem_bars(u8* base) {
    return reinterpret_cast<u64*>(base + STAGES * (SMEM_A_BYTES + SMEM_B_BYTES + SMEM_SFA_BYTES));
}

// The math warpgroups' loop over their tiles (see the file comment).
SG_DEVICE void math_warpgroups(u8* smem, u64* full, u64* empty, TileScheduler& sched,
                                const float* __restrict__ sfb, u64 ld_sfb, u16* __restrict__ d, u64 ld_d,
                                u32 M, u32 N, u32 num_kb, u32 wg) {
    u32 m_block, n_block;
    // With two math warpgroups the 384 threads share 64K registers: move them from the
    // producer (40) to the math warpgroups (232). One math warpgroup has 255 already.
    if (NUM_MATH_WG == 2) warpgroup_reg_alloc<232>();
    const u32 lane = threadIdx.x % 32, warp = (threadIdx.x % 128) / 32;
    const u32 row_in_tile = wg * 64 + warp * 16 + lane / 4;  // and row_in_tile + 8
    u32 stage = 0, phase = 0;
    while (sched.next_tile(m_block, n_block)) {
        const u32 n0 = n_block * BLOCK_N;
        // The B-scale rows this tile touches: n0/128 .. (n0 + BLOCK_N - 1)/128.
        const u32 sb_first = n0 / 128;
        const u32 sb_rows = ceil_div(N, 128u);
        // Tile columns where the second and third B-scale blocks begin. Both are multiples
        // of 8 (n0 is), so each 8-column wgmma fragment lies in one scale block.
        const u32 bnd1 = (sb_first + 1) * 128 - n0, bnd2 = bnd1 + 128;
        float final_acc[ACC_REGS];
#pragma unroll
        for (int i = 0; i < ACC_REGS; ++i) final_acc[i] = 0.0f;

        // B scales (global, tiny, L2-resident) are loaded one k-block ahead, so their
        // latency hides behind the previous block's wgmma.
        float sb[SB_BLOCKS], sb_next[SB_BLOCKS];
#pragma unroll
        for (u32 j = 0; j < SB_BLOCKS; ++j) sb_next[j] = __ldg(&sfb[min(sb_first + j, sb_rows - 1) * ld_sfb]);
        for (u32 kb = 0; kb < num_kb; ++kb) {
#pragma unroll
            for (u32 j = 0; j < SB_BLOCKS; ++j) sb[j] = sb_next[j];
            mbar_wait(&full[stage], phase);

            float acc[ACC_REGS];
#pragma unroll
            for (int i = 0; i < ACC_REGS; ++i) fence_operand(acc[i]);
            wgmma_fence();
            const u8* a_tile = smem_a(smem, stage) + wg * 64 * BLOCK_K;
            const u8* b_tile = smem_b(smem, stage);
#pragma unroll
            for (int ks = 0; ks < BLOCK_K / 32; ++ks) {
                wgmma_fp8(acc, wgmma_desc_k_sw128(a_tile + ks * 32), wgmma_desc_k_sw128(b_tile + ks * 32),
                          ks > 0 ? 1 : 0);
            }
            wgmma_commit();
            wgmma_wait<0>();
#pragma unroll
            for (int i = 0; i < ACC_REGS; ++i) fence_operand(acc[i]);

            const float* sfa_s = smem_sfa(smem, stage);
            const float sa0 = sfa_s[row_in_tile], sa1 = sfa_s[row_in_tile + 8];
            // The stage's shared memory is no longer read: hand it back to the producer.
            __syncwarp();
            if (lane == 0) {
                if (CLUSTER > 1) {
#pragma unroll
                    for (u32 r = 0; r < CLUSTER; ++r) mbar_arrive_cluster(&empty[stage], r);
                } else {
                    mbar_arrive(&empty[stage]);
                }
            }
            if (++stage == STAGES) { stage = 0; phase ^= 1; }
            // Next block's B scales, issued only now: the arrive above has release semantics
            // and would otherwise wait for these loads (with clusters, at cluster scope).
            if (kb + 1 < num_kb) {
#pragma unroll
                for (u32 j = 0; j < SB_BLOCKS; ++j) sb_next[j] = __ldg(&sfb[min(sb_first + j, sb_rows - 1) * ld_sfb + kb + 1]);
            }

            // Promotion: final = fma(fl32(sa·sb), partial, final), per element; the scale
            // products are formed once per k-block.
            float p0[SB_BLOCKS], p1[SB_BLOCKS];
#pragma unroll
            for (int j = 0; j < SB_BLOCKS; ++j) {
                p0[j] = __fmul_rn(sa0, sb[j]);
                p1[j] = __fmul_rn(sa1, sb[j]);
            }
#pragma unroll
            for (int f = 0; f < N_FRAGS; ++f) {
                float s0 = p0[0], s1 = p1[0];
                if (SB_BLOCKS > 1 && f * 8 >= bnd1) { s0 = p0[SB_BLOCKS > 1 ? 1 : 0]; s1 = p1[SB_BLOCKS > 1 ? 1 : 0]; }
                if (SB_BLOCKS > 2 && f * 8 >= bnd2) { s0 = p0[SB_BLOCKS - 1]; s1 = p1[SB_BLOCKS - 1]; }
                final_acc[f * 4 + 0] = __fmaf_rn(s0, acc[f * 4 + 0], final_acc[f * 4 + 0]);
                final_acc[f * 4 + 1] = __fmaf_rn(s0, acc[f * 4 + 1], final_acc[f * 4 + 1]);
                final_acc[f * 4 + 2] = __fmaf_rn(s1, acc[f * 4 + 2], final_acc[f * 4 + 2]);
                final_acc[f * 4 + 3] = __fmaf_rn(s1, acc[f * 4 + 3], final_acc[f * 4 + 3]);
            }
        }

        // Epilogue: BF16 (round to nearest even), bounds-checked direct stores.
        const u32 r0 = m_block * BLOCK_M + row_in_tile;
        const bool pair_ok = (ld_d % 2) == 0 && (reinterpret_cast<u64>(d) % 4) == 0;
#pragma unroll
        for (int f = 0; f < N_FRAGS; ++f) {
            const u32 col = n0 + f * 8 + (lane % 4) * 2;
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const u32 r = r0 + h * 8;
                if (r >= M || col >= N) continue;
                const float lo = final_acc[f * 4 + h * 2], hi = final_acc[f * 4 + h * 2 + 1];
                u16* p = d + (u64)r * ld_d + col;
                if (col + 1 < N && pair_ok) {
                    *reinterpret_cast<u32*>(p) = pack_bf16x2(lo, hi);
                } else {
                    p[0] = to_bf16(lo);
                    if (col + 1 < N) p[1] = to_bf16(hi);
                }
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(NUM_THREADS, 1)
fp8_gemm_1d2d(const __grid_constant__ TmaDesc tma_a,    // A codes [M, K], box BLOCK_K × BLOCK_M
              const __grid_constant__ TmaDesc tma_b,    // B codes [N, K], box BLOCK_K × BLOCK_N
              const __grid_constant__ TmaDesc tma_sfa,  // A scales [ceil(K/128), M] MN-major, box BLOCK_M × 1
              const float* __restrict__ sfb, u64 ld_sfb, // B scales [ceil(N/128), ceil(K/128)], row stride
              u16* __restrict__ d, u64 ld_d,             // D [M, N] BF16, row stride (elements)
              u32 M, u32 N, u32 K, u32 band) {
    extern __shared__ __align__(1024) u8 smem[];
    u64* full = smem_bars(smem);
    u64* empty = full + STAGES;
    const u32 wg = threadIdx.x / 128;
    const u32 num_kb = ceil_div(K, (u32)BLOCK_K);

    if (threadIdx.x == 0) {
        tma_prefetch_desc(&tma_a);
        tma_prefetch_desc(&tma_b);
        tma_prefetch_desc(&tma_sfa);
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(&full[s], 1);
            mbar_init(&empty[s], NUM_MATH_WG * 4 * CLUSTER);
        }
        mbar_init_fence();
    }
    // The peer's barriers must be initialised before anything arrives on them.
    if (CLUSTER > 1) cluster_sync(); else __syncthreads();

    const u32 rank = CLUSTER > 1 ? cluster_rank() : 0;
    TileScheduler sched(M, N, BLOCK_M, BLOCK_N, band, rank);
    u32 m_block, n_block;

    if (wg == NUM_MATH_WG) {
        // Producer warpgroup: one thread streams the tiles of every k-block of every tile.
        if (NUM_MATH_WG == 2) warpgroup_reg_dealloc<40>();
        if (threadIdx.x % 128 == 0) {
            u32 stage = 0, phase = 0;
            while (sched.next_tile(m_block, n_block)) {
                for (u32 kb = 0; kb < num_kb; ++kb) {
                    mbar_wait(&empty[stage], phase ^ 1);
                    mbar_arrive_expect_tx(&full[stage], SMEM_A_BYTES + SMEM_B_BYTES + BLOCK_M * 4);
#if CLUSTER == 2
                    // This CTA's half of A's rows, to both CTAs (tma_a's box is BLOCK_M/2 rows).
                    tma_load_2d_multicast(smem_a(smem, stage) + rank * (SMEM_A_BYTES / 2), &tma_a, &full[stage],
                                          kb * BLOCK_K, m_block * BLOCK_M + rank * (BLOCK_M / 2), 0x3);
#else
                    tma_load_2d(smem_a(smem, stage), &tma_a, &full[stage], kb * BLOCK_K, m_block * BLOCK_M);
#endif
                    tma_load_2d(smem_b(smem, stage), &tma_b, &full[stage], kb * BLOCK_K, n_block * BLOCK_N);
                    tma_load_2d(smem_sfa(smem, stage), &tma_sfa, &full[stage], m_block * BLOCK_M, kb);
                    if (++stage == STAGES) { stage = 0; phase ^= 1; }
                }
            }
        }
    } else {
        math_warpgroups(smem, full, empty, sched, sfb, ld_sfb, d, ld_d, M, N, num_kb, wg);
    }
    // A CTA may not exit while its peer can still multicast into it or arrive on its barriers.
    if (CLUSTER > 1) cluster_sync();
}
