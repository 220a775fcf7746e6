// FP8 GEMM with fine-grained scales: D[M, N] = (C +) A[M, K] · B[N, K]ᵀ, A's scales per
// 1×128 (FP32, TMA-aligned MN-major) and B's per 128×128 ("1D2D", the DeepSeek-V3 recipe:
// FP32 row-major [ceil(N/128), ceil(K/128)]) or per 1×128 ("1D1D", SFB_TOKEN: TMA-aligned
// MN-major like A's). D is BF16 or FP32 (OUT_F32); with HAS_C an FP32 C is added.
//
// Persistent, warp-specialised: warpgroups 0..NUM_MATH_WG-1 compute (64 rows each), the
// last warpgroup produces (one thread issues TMA loads into a STAGES-deep ring of
// 128B-swizzled shared-memory tiles, guarded by full/empty mbarriers). Per 128-K block the
// math warpgroups run four FP8 wgmma (k = 32) into a zeroed register tile, then promote it
// into the FP32 result (promote.cuh). With PIPE the partial tiles alternate between two
// register sets: block kb+1's wgmma are issued before block kb is promoted, so the tensor
// cores stay busy during promotion. Out-of-bounds rows/columns/K are zero-filled by TMA
// and never stored (epilogue.cuh).
//
// With CLUSTER = 2, two CTAs computing side-by-side tiles (same M-block) share A: each
// loads half of A's rows and multicasts it to both, and each CTA's consumers release a
// stage on both CTAs' empty barriers (the peer writes into it too).
//
// Compile-time: BLOCK_M (64·NUM_MATH_WG), BLOCK_N (multiple of 16, ≤ 256), STAGES,
// CLUSTER, PIPE, SFB_TOKEN, OUT_F32, HAS_C, TMA_STORE (BF16 only: shared memory reserved
// for the TMA-store epilogue, used when the run-time flag FLAG_TMA_STORE is set).
#pragma once
#include "../common.cuh"
#include "../ptx/mbarrier.cuh"
#include "../ptx/tma.cuh"
#include "../ptx/wgmma.cuh"
#include "../ptx/warpgroup.cuh"
#include "../ptx/cvt.cuh"
#include "../ptx/cluster.cuh"
#include "../ptx/sync.cuh"
#include "scheduler.cuh"

#ifndef PIPE
#define PIPE 0
#endif
#ifndef SFB_TOKEN
#define SFB_TOKEN 0
#endif
#ifndef OUT_F32
#define OUT_F32 0
#endif
#ifndef HAS_C
#define HAS_C 0
#endif
#ifndef TMA_STORE
#define TMA_STORE 0
#endif

#define BLOCK_K 128
#define NUM_MATH_WG (BLOCK_M / 64)
#define NUM_THREADS ((NUM_MATH_WG + 1) * 128)
#define SMEM_A_BYTES (BLOCK_M * BLOCK_K)
#define SMEM_B_BYTES (BLOCK_N * BLOCK_K)
#define SMEM_SFA_BYTES (((BLOCK_M * 4) + 127) / 128 * 128)
#define SMEM_SFB_BYTES (SFB_TOKEN ? ((BLOCK_N * 4) + 127) / 128 * 128 : 0)
#define N_FRAGS (BLOCK_N / 8)
#define ACC_REGS (BLOCK_N / 2)
// B-scale blocks (1D2D) one tile can touch: 1 when BLOCK_N divides 128 (tiles never
// straddle a 128-column boundary), else 2, or 3 above 128 columns.
#define SB_BLOCKS (128 % BLOCK_N == 0 ? 1 : (BLOCK_N <= 128 ? 2 : 3))
// Run-time flags (kernel argument `flags`).
#define FLAG_TMA_STORE 1u

#include "promote.cuh"
#include "epilogue.cuh"

static_assert(BLOCK_M == 64 || BLOCK_M == 128, "BLOCK_M must be 64 or 128");
static_assert(CLUSTER == 1 || CLUSTER == 2, "CLUSTER must be 1 or 2");
static_assert(BLOCK_N % 16 == 0 && BLOCK_N >= 16 && BLOCK_N <= 256, "BLOCK_N: multiple of 16 in [16, 256]");
static_assert(SMEM_B_BYTES % 1024 == 0, "B tiles must keep 1024-byte swizzle alignment");
static_assert(!HAS_C || OUT_F32, "C is only added to an FP32 output");
static_assert(!TMA_STORE || !OUT_F32, "the TMA-store epilogue is BF16 only");

// Shared memory: [D staging][A tiles][B tiles][A scales][B scales][full barriers][empty barriers].
#define SMEM_D_RESERVED (TMA_STORE ? SMEM_D_BYTES : 0)
SG_DEVICE u8* smem_a(u8* base, u32 s) { return base + SMEM_D_RESERVED + s * SMEM_A_BYTES; }
SG_DEVICE u8* smem_b(u8* base, u32 s) { return base + SMEM_D_RESERVED + STAGES * SMEM_A_BYTES + s * SMEM_B_BYTES; }
SG_DEVICE float* smem_sfa(u8* base, u32 s) {
    return reinterpret_cast<float*>(base + SMEM_D_RESERVED + STAGES * (SMEM_A_BYTES + SMEM_B_BYTES) +
                                    s * SMEM_SFA_BYTES);
}
SG_DEVICE float* smem_sfb(u8* base, u32 s) {
    return reinterpret_cast<float*>(base + SMEM_D_RESERVED + STAGES * (SMEM_A_BYTES + SMEM_B_BYTES + SMEM_SFA_BYTES) +
                                    s * SMEM_SFB_BYTES);
}
SG_DEVICE u64* smem_bars(u8* base) {
    return reinterpret_cast<u64*>(base + SMEM_D_RESERVED +
                                  STAGES * (SMEM_A_BYTES + SMEM_B_BYTES + SMEM_SFA_BYTES + SMEM_SFB_BYTES));
}

// Issues one k-block's four wgmma (k = 32) of this warpgroup's 64 rows into `acc` (zeroed
// by the first) as one commit group.
SG_DEVICE void issue_kblock(float (&acc)[ACC_REGS], u8* smem, u32 stage, u32 wg) {
#pragma unroll
    for (int i = 0; i < ACC_REGS; ++i) fence_operand(acc[i]);
    wgmma_fence();
    const u8* a_tile = smem_a(smem, stage) + wg * 64 * BLOCK_K;
    const u8* b_tile = smem_b(smem, stage);
#pragma unroll
    for (int ks = 0; ks < BLOCK_K / 32; ++ks) {
        wgmma_fp8(acc, wgmma_desc_k_sw128(a_tile + ks * 32), wgmma_desc_k_sw128(b_tile + ks * 32), ks > 0 ? 1 : 0);
    }
    wgmma_commit();
}

// The stage's shared memory is no longer read: hand it back to the producer(s).
SG_DEVICE void release_stage(u64* empty, u32 stage, u32 lane) {
    __syncwarp();
    if (CLUSTER > 1) {
        if (lane < CLUSTER) mbar_arrive_cluster(&empty[stage], lane);
    } else if (lane == 0) {
        mbar_arrive(&empty[stage]);
    }
}

struct Ring {
    u32 stage = 0, phase = 0;
    SG_DEVICE void advance() {
        if (++stage == STAGES) { stage = 0; phase ^= 1; }
    }
};

// The math warpgroups' loop over their tiles (see the file comment).
SG_DEVICE void math_warpgroups(u8* smem, u64* full, u64* empty, TileScheduler& sched, const TmaDesc* tma_d,
                                const float* __restrict__ sfb, u64 ld_sfb, out_t* d, u64 ld_d, const float* c,
                                u64 ld_c, u32 M, u32 N, u32 num_kb, u32 wg, u32 flags) {
    u32 m_block, n_block;
    // With two math warpgroups the 384 threads share 64K registers: move them from the
    // producer (40) to the math warpgroups (232). One math warpgroup has 255 already.
    if (NUM_MATH_WG == 2) warpgroup_reg_alloc<232>();
    const u32 lane = threadIdx.x % 32, warp = (threadIdx.x % 128) / 32;
    const u32 row_in_tile = wg * 64 + warp * 16 + lane / 4;  // and row_in_tile + 8
    Ring ring;
    while (sched.next_tile(m_block, n_block)) {
        const u32 n0 = n_block * BLOCK_N;
        // 1D2D: the B-scale rows this tile touches: n0/128 .. (n0 + BLOCK_N - 1)/128, and
        // the tile columns where the second and third begin (multiples of 8, as n0 is).
        const u32 sb_first = n0 / 128, sb_rows = ceil_div(N, 128u);
        const u32 bnd1 = (sb_first + 1) * 128 - n0, bnd2 = bnd1 + 128;
        float final_acc[ACC_REGS];
#pragma unroll
        for (int i = 0; i < ACC_REGS; ++i) final_acc[i] = 0.0f;

        // 1D2D B scales (global, tiny, L2-resident) are loaded one k-block ahead, so their
        // latency hides behind the previous block's wgmma.
        float sb[SB_BLOCKS], sb_next[SB_BLOCKS];
        auto load_sb = [&](u32 kb) {
#pragma unroll
            for (u32 j = 0; j < SB_BLOCKS; ++j) sb_next[j] = __ldg(&sfb[min(sb_first + j, sb_rows - 1) * ld_sfb + kb]);
        };
        if (!SFB_TOKEN) load_sb(0);

        // Finishes k-block `kb` held in `acc` (its wgmma complete) from ring stage `s`.
        auto finish = [&](float (&acc)[ACC_REGS], u32 kb, u32 s, float sa0, float sa1) {
#pragma unroll
            for (int i = 0; i < ACC_REGS; ++i) fence_operand(acc[i]);
            if (SFB_TOKEN) {
                promote_1d1d(final_acc, acc, sa0, sa1, smem_sfb(smem, s), lane);
                release_stage(empty, s, lane);
            } else {
#pragma unroll
                for (u32 j = 0; j < SB_BLOCKS; ++j) sb[j] = sb_next[j];
                release_stage(empty, s, lane);
                // Issued only after the arrive, which would otherwise wait for these loads.
                if (kb + 1 < num_kb) load_sb(kb + 1);
                promote_1d2d(final_acc, acc, sa0, sa1, sb, bnd1, bnd2);
            }
        };

#if PIPE
        // Two partial tiles: block kb+1's wgmma run while block kb is promoted. The loop is
        // unrolled by two so each register set is named statically, and every path states
        // which set is in flight (ptxas serialises all wgmma if it cannot prove that no
        // in-flight accumulator is touched).
        float acc0[ACC_REGS], acc1[ACC_REGS];
        u32 s_cur = ring.stage;
        mbar_wait(&full[s_cur], ring.phase);
        float sa0 = smem_sfa(smem, s_cur)[row_in_tile], sa1 = smem_sfa(smem, s_cur)[row_in_tile + 8];
        issue_kblock(acc0, smem, s_cur, wg);
        ring.advance();
        // Block kb is in flight in `cur`: issue block kb+1 into `nxt`, then finish kb.
        auto overlap = [&](float (&cur)[ACC_REGS], float (&nxt)[ACC_REGS], u32 kb) {
            const u32 s_nxt = ring.stage;
            mbar_wait(&full[s_nxt], ring.phase);
            const float na0 = smem_sfa(smem, s_nxt)[row_in_tile], na1 = smem_sfa(smem, s_nxt)[row_in_tile + 8];
            issue_kblock(nxt, smem, s_nxt, wg);
            ring.advance();
            wgmma_wait<1>();
            finish(cur, kb, s_cur, sa0, sa1);
            sa0 = na0;
            sa1 = na1;
            s_cur = s_nxt;
        };
        for (u32 kb = 0;; kb += 2) {
            // acc0 holds block kb, in flight.
            if (kb + 1 >= num_kb) {
                wgmma_wait<0>();
                finish(acc0, kb, s_cur, sa0, sa1);
                break;
            }
            overlap(acc0, acc1, kb);
            // acc1 holds block kb + 1, in flight.
            if (kb + 2 >= num_kb) {
                wgmma_wait<0>();
                finish(acc1, kb + 1, s_cur, sa0, sa1);
                break;
            }
            overlap(acc1, acc0, kb + 1);
        }
#else
        for (u32 kb = 0; kb < num_kb; ++kb) {
            const u32 s = ring.stage;
            mbar_wait(&full[s], ring.phase);
            // Scales are read before the wgmma so their latency overlaps it.
            const float sa0 = smem_sfa(smem, s)[row_in_tile], sa1 = smem_sfa(smem, s)[row_in_tile + 8];
            float acc[ACC_REGS];
            issue_kblock(acc, smem, s, wg);
            wgmma_wait<0>();
            ring.advance();
            finish(acc, kb, s, sa0, sa1);
        }
#endif

        const u32 m0 = m_block * BLOCK_M;
#if TMA_STORE
        if (flags & FLAG_TMA_STORE) {
            // The previous tile's TMA store must be done reading the staging buffer.
            if (threadIdx.x == 0) tma_store_wait_read<0>();
            named_barrier(1, NUM_MATH_WG * 128);
            store_tma_bf16(final_acc, smem, tma_d, row_in_tile, m0, n0, lane);
            continue;
        }
#endif
        store_direct(final_acc, d, ld_d, c, ld_c, M, N, m0 + row_in_tile, n0, lane);
    }
#if TMA_STORE
    if (threadIdx.x == 0) tma_store_wait<0>();
#endif
}

extern "C" __global__ void __launch_bounds__(NUM_THREADS, 1)
fp8_gemm(const __grid_constant__ TmaDesc tma_a,    // A codes [M, K], box BLOCK_K × BLOCK_M/CLUSTER
         const __grid_constant__ TmaDesc tma_b,    // B codes [N, K], box BLOCK_K × BLOCK_N
         const __grid_constant__ TmaDesc tma_sfa,  // A scales [ceil(K/128), M] MN-major, box BLOCK_M × 1
         const __grid_constant__ TmaDesc tma_sfb,  // 1D1D: B scales [ceil(K/128), N] MN-major, box BLOCK_N × 1
         const __grid_constant__ TmaDesc tma_d,    // TMA_STORE: D [M, N] BF16, box SLAB_COLS × BLOCK_M
         const float* __restrict__ sfb, u64 ld_sfb, // 1D2D: B scales [ceil(N/128), ceil(K/128)], row stride
         out_t* d, u64 ld_d,                        // D [M, N], row stride (elements)
         const float* c, u64 ld_c,                  // HAS_C: C [M, N] FP32 (may be D), row stride
         u32 M, u32 N, u32 K, u32 band, u32 flags) {
    extern __shared__ __align__(1024) u8 smem[];
    u64* full = smem_bars(smem);
    u64* empty = full + STAGES;
    const u32 wg = threadIdx.x / 128;
    const u32 num_kb = ceil_div(K, (u32)BLOCK_K);

    if (threadIdx.x == 0) {
        tma_prefetch_desc(&tma_a);
        tma_prefetch_desc(&tma_b);
        tma_prefetch_desc(&tma_sfa);
        if (SFB_TOKEN) tma_prefetch_desc(&tma_sfb);
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(&full[s], 1);
            mbar_init(&empty[s], NUM_MATH_WG * 4 * CLUSTER);
        }
        mbar_init_fence();
    }
    // The peer's barriers must be initialised before anything arrives on them.
    if (CLUSTER > 1) cluster_sync(); else __syncthreads();
    // Programmatic dependent launch: the set-up above may overlap the previous kernel's
    // tail; its outputs (our inputs) are read only after this.
    grid_dependency_wait();
    grid_launch_dependents();

    const u32 rank = CLUSTER > 1 ? cluster_rank() : 0;
    TileScheduler sched(M, N, BLOCK_M, BLOCK_N, band, rank);
    u32 m_block, n_block;

    if (wg == NUM_MATH_WG) {
        // Producer warpgroup: one thread streams the tiles of every k-block of every tile.
        if (NUM_MATH_WG == 2) warpgroup_reg_dealloc<40>();
        if (threadIdx.x % 128 == 0) {
            Ring ring;
            while (sched.next_tile(m_block, n_block)) {
                for (u32 kb = 0; kb < num_kb; ++kb) {
                    const u32 s = ring.stage;
                    mbar_wait(&empty[s], ring.phase ^ 1);
                    mbar_arrive_expect_tx(&full[s], SMEM_A_BYTES + SMEM_B_BYTES + BLOCK_M * 4 + (SFB_TOKEN ? BLOCK_N * 4 : 0));
#if CLUSTER == 2
                    // This CTA's half of A's rows, to both CTAs (tma_a's box is BLOCK_M/2 rows).
                    tma_load_2d_multicast(smem_a(smem, s) + rank * (SMEM_A_BYTES / 2), &tma_a, &full[s], kb * BLOCK_K,
                                          m_block * BLOCK_M + rank * (BLOCK_M / 2), 0x3);
#else
                    tma_load_2d(smem_a(smem, s), &tma_a, &full[s], kb * BLOCK_K, m_block * BLOCK_M);
#endif
                    tma_load_2d(smem_b(smem, s), &tma_b, &full[s], kb * BLOCK_K, n_block * BLOCK_N);
                    tma_load_2d(smem_sfa(smem, s), &tma_sfa, &full[s], m_block * BLOCK_M, kb);
                    if (SFB_TOKEN) tma_load_2d(smem_sfb(smem, s), &tma_sfb, &full[s], n_block * BLOCK_N, kb);
                    ring.advance();
                }
            }
        }
    } else {
        math_warpgroups(smem, full, empty, sched, &tma_d, sfb, ld_sfb, d, ld_d, HAS_C ? c : nullptr, ld_c, M, N, num_kb,
                        wg, flags);
    }
    // A CTA may not exit while its peer can still multicast into it or arrive on its barriers.
    if (CLUSTER > 1) cluster_sync();
}
