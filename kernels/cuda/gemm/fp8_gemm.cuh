// FP8 GEMM with fine-grained scales: D[M, N] = (C +) A[M, K] · B[N, K]ᵀ, A's scales per
// 1×128 (FP32, TMA-aligned MN-major) and B's per 128×128 ("1D2D", the DeepSeek-V3 recipe:
// FP32 row-major [ceil(N/128), ceil(K/128)]) or per 1×128 ("1D1D", SFB_TOKEN: TMA-aligned
// MN-major like A's). D is BF16 or FP32 (OUT_F32); with HAS_C an FP32 C is added.
//
// Persistent, warp-specialised: warpgroups 0..NUM_MATH_WG-1 compute (BLOCK_M/NUM_MATH_WG
// rows each, in WAVES waves of 64: one wgmma M), the last warpgroup produces (one thread
// issues TMA loads into a STAGES-deep ring of 128B-swizzled shared-memory tiles, guarded
// by full/empty mbarriers; with B_THREAD a second thread issues B's; for 1D2D a warp
// streams B's scales). Per 128-K block the math warpgroups run four FP8 wgmma (k = 32)
// into a zeroed register tile, then promote it into the FP32 result (promote.cuh). With
// PIPE the partial tiles alternate between two register sets: block kb+1's wgmma are issued
// before block kb is promoted, so the tensor cores stay busy during promotion. Tiles too
// wide for PIPE's second register set (128-row, not pipelined) split their columns into two
// halves instead, each its own wgmma chain, and promote one half while the other's wgmma run
// (HALVES_ON). Out-of-bounds rows/columns/K are zero-filled by TMA and never stored
// (epilogue.cuh).
//
// With CLUSTER = 2, two CTAs computing side-by-side tiles (same M-block) share A: each
// loads half of A's rows and multicasts it to both, and each CTA's consumers release a
// stage on both CTAs' empty barriers (the peer writes into it too).
//
// With SPLIT_K (single CTAs, at most 128 rows), each tile's K is split over `splits` units
// that reduce in a fixed order (split_k.cuh): for small M, whose tiles cannot fill the SMs.
//
// Compile-time: BLOCK_M (64, 128 or 256), BLOCK_N (multiple of 16, ≤ 256), STAGES,
// CLUSTER, PIPE, SPLIT_K, B_THREAD, SFB_TOKEN, OUT_F32, HAS_C, TMA_STORE (BF16 only:
// shared memory reserved for the TMA-store epilogue, used when the run-time flag
// FLAG_TMA_STORE is set; 256-row tiles store per warpgroup, epilogue.cuh).
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
#include "trace.cuh"

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
#ifndef HALVES
#define HALVES 1
#endif
// B_THREAD: B's TMA loads issued by producer thread 64 instead of thread 0 (with A's): the
// two streams wait for free stages independently (faster for the long k-loops of small M,
// slower for short ones; the host chooses).
#ifndef B_THREAD
#define B_THREAD 0
#endif

#define BLOCK_K 128
#define NUM_MATH_WG (BLOCK_M == 64 ? 1 : 2)
#define WAVES (BLOCK_M / (64 * NUM_MATH_WG))
#define NUM_THREADS ((NUM_MATH_WG + 1) * 128)
#define SMEM_A_BYTES (BLOCK_M * BLOCK_K)
#define SMEM_B_BYTES (BLOCK_N * BLOCK_K)
#define SMEM_SFA_BYTES (((BLOCK_M * 4) + 127) / 128 * 128)
// B scales per stage: 1D1D the tile's BLOCK_N (TMA), 1D2D its SB_BLOCKS 128×128-block
// scales (written by a producer warp).
#define SMEM_SFB_BYTES (SFB_TOKEN ? ((BLOCK_N * 4) + 127) / 128 * 128 : 16)
#define N_FRAGS (BLOCK_N / 8)
#define ACC_REGS (BLOCK_N / 2)
// B-scale blocks (1D2D) one tile can touch: 1 when BLOCK_N divides 128 (tiles never
// straddle a 128-column boundary), else 2, or 3 above 128 columns (1D1D: unused, 1).
#define SB_BLOCKS (SFB_TOKEN || 128 % BLOCK_N == 0 ? 1 : (BLOCK_N <= 128 ? 2 : 3))
// The BF16 1D2D 256-row tiles (two waves per warpgroup), the variant measured and tuned
// for them: early products (below) and a k-loop unrolled by four. Read after each wave's
// wait, B's scale put a shared-load round trip between the wait and the promotion, twice
// per k-block; an unrolled loop made the FP32-output and 1D1D 256-row kernels spill, and a
// forced `unroll 1` changed the 64-row kernels' code, so elsewhere ptxas decides.
#define TALL_BF16_1D2D (WAVES > 1 && !SFB_TOKEN && !OUT_F32)
// 1D2D scale products formed when a stage is read (their latency overlaps the wgmma), not
// after the wait: with PIPE and for TALL_BF16_1D2D, at most 128 columns, where the registers
// leave room (holding them made 176/192-column tiles spill, and 144-column pipelined tiles
// too).
#define EARLY_PRODUCTS ((PIPE || TALL_BF16_1D2D) && BLOCK_N <= 128)
// A's scales read only when promoting (not held while the next k-block's wgmma run): the
// 144-column pipelined tile has three 72-register accumulator sets and no room for them.
#define LATE_A_SCALES (PIPE && BLOCK_N > 128)
// Registers per thread after `setmaxnreg` with two math warpgroups: the CTA holds the 384 ×
// 168 registers it was launched with (LAUNCH_REGS), and the
// producer warpgroup hands all but PRODUCER_REGS to the math ones. `setmaxnreg.inc` waits
// for free registers, so asking for more than the CTA holds hangs (240 + 32 did).
#define MATH_REGS 232
#define PRODUCER_REGS 40
#define LAUNCH_REGS ((65536 / NUM_THREADS) & ~7)  // ptxas' cap under __launch_bounds__(NUM_THREADS, 1)
static_assert(MATH_REGS % 8 == 0 && PRODUCER_REGS % 8 == 0, "setmaxnreg takes multiples of 8");
static_assert(NUM_MATH_WG == 1 || (NUM_MATH_WG * MATH_REGS + PRODUCER_REGS) * 128 <= NUM_THREADS * LAUNCH_REGS,
              "setmaxnreg: more registers than the CTA holds");
// Run-time flags (kernel argument `flags`).
#define FLAG_TMA_STORE 1u

#include "promote.cuh"
#include "epilogue.cuh"
#if SPLIT_K
#include "split_k.cuh"
#endif

static_assert(BLOCK_M == 64 || BLOCK_M == 128 || BLOCK_M == 256, "BLOCK_M must be 64, 128 or 256");
static_assert(!PIPE || WAVES == 1, "the pipelined promotion needs one wave per warpgroup");
// Split halves (HALVES_ON, below) for the non-pipelined 128-row tiles; HALVES=0 turns it
// off (for comparisons).
#define HALVES_ON (HALVES && !PIPE && BLOCK_M == 128)
static_assert(CLUSTER == 1 || CLUSTER == 2, "CLUSTER must be 1 or 2");
static_assert(!SPLIT_K || (CLUSTER == 1 && WAVES == 1), "split-K: single CTAs of at most 128 rows");
static_assert(BLOCK_N % 16 == 0 && BLOCK_N >= 16 && BLOCK_N <= 256, "BLOCK_N: multiple of 16 in [16, 256]");
static_assert(SMEM_B_BYTES % 1024 == 0, "B tiles must keep 1024-byte swizzle alignment");
static_assert(!HAS_C || OUT_F32, "C is only added to an FP32 output");
static_assert(!TMA_STORE || !OUT_F32, "the TMA-store epilogue is BF16 only");

// Shared memory: [D staging][A tiles][B tiles][A scales][B scales][full barriers][empty barriers]
// [SPLIT_K: the last-unit flag].
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
// SPLIT_K: one word after the barriers (the host reserves 16 bytes for it).
SG_DEVICE u32* smem_split_flag(u8* base) { return reinterpret_cast<u32*>(smem_bars(base) + 2 * STAGES); }

// HALVES: the tile's columns as two halves of BLOCK_N/2, each its own wgmma chain
// (`wgmma_fp8_half`, m64n{BLOCK_N/2}k32) into its own partial tile, so one half is promoted
// while the other's wgmma run, with no register set beyond the non-pipelined kernel's.
#define HALF_REGS (ACC_REGS / 2)
#define HALF_FRAGS (N_FRAGS / 2)

// Issues one k-block's four wgmma (k = 32) of the 64 tile rows from `a_row` into `acc`
// (zeroed by the first) as one commit group: the whole tile (REGS = ACC_REGS) or, HALVES,
// the half whose columns start at tile column `b_row` (REGS = HALF_REGS; BLOCK_N/2 rows of
// B, a multiple of the 8-row swizzle atom).
template <int REGS>
SG_DEVICE void issue_kblock(float (&acc)[REGS], u8* smem, u32 stage, u32 a_row, u32 b_row = 0) {
    static_assert(REGS == ACC_REGS || REGS == HALF_REGS, "a whole or a half partial tile");
#pragma unroll
    for (int i = 0; i < REGS; ++i) fence_operand(acc[i]);
    wgmma_fence();
    // Descriptors of stage 0 plus the stage's offset (wgmma.cuh): a few uniform adds per
    // k-block instead of rebuilding each of the eight 64-bit descriptors from its address.
    const u32 a_lo = wgmma_desc_lo_k_sw128(smem_a(smem, 0) + a_row * BLOCK_K) + stage * (SMEM_A_BYTES >> 4);
    const u32 b_lo = wgmma_desc_lo_k_sw128(smem_b(smem, 0)) + stage * (SMEM_B_BYTES >> 4) + ((b_row * BLOCK_K) >> 4);
#pragma unroll
    for (int ks = 0; ks < BLOCK_K / 32; ++ks) {
        const u64 da = wgmma_desc_from_lo(a_lo + ks * 2), db = wgmma_desc_from_lo(b_lo + ks * 2);
        if constexpr (REGS == ACC_REGS) {
            wgmma_fp8(acc, da, db, ks > 0 ? 1 : 0);
        } else {
            wgmma_fp8_half(acc, da, db, ks > 0 ? 1 : 0);
        }
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
                                out_t* d, u64 ld_d, const float* c,
                                u64 ld_c, u32 M, u32 N, u32 wg, u32 flags, float* split_partials,
                                u32* split_counters) {
    // With two math warpgroups the 384 threads share 64K registers: move them from the
    // producer to the math warpgroups (MATH_REGS). One math warpgroup has 255 already.
    if (NUM_MATH_WG == 2) warpgroup_reg_alloc<MATH_REGS>();
    const u32 lane = threadIdx.x % 32, warp = (threadIdx.x % 128) / 32;
    // Wave w of this warpgroup: tile rows a_row(w) .. +63; this thread's rows
    // row_in_tile(w) and row_in_tile(w) + 8.
    auto a_row = [&](u32 w) { return (wg * WAVES + w) * 64; };
    auto row_in_tile = [&](u32 w) { return a_row(w) + warp * 16 + lane / 4; };
#ifdef PLANT_SCALE_ROW  // planted bug (verification only): A's scale of the next row
    auto sfa_row = [&](u32 w) { return row_in_tile(w) + 1; };
#else
    auto sfa_row = [&](u32 w) { return row_in_tile(w); };
#endif
    Ring ring;
    WorkUnit unit;
    Trace tr;
    tr.begin();
    while (sched.next_unit(unit)) {
        const u32 m_block = unit.m_block, n_block = unit.n_block;
        // This unit's k-blocks (all of K unless SPLIT_K); `kb` below counts from 0.
        const u32 num_kb = unit.kb_end - unit.kb_begin;
        tr.unit(num_kb);
        const u32 n0 = n_block * BLOCK_N;
        float final_acc[WAVES][ACC_REGS];
#pragma unroll
        for (int w = 0; w < WAVES; ++w)
#pragma unroll
            for (int i = 0; i < ACC_REGS; ++i) final_acc[w][i] = 0.0f;

        // This thread's scales of one k-block: A's for rows `row`, `row` + 8 and, for 1D2D,
        // their products with the tile's B-scale blocks (1D1D reads B's per column while
        // promoting). A's are read from ring stage `s` as soon as it is full, so their
        // latency overlaps the wgmma, except with LATE_A_SCALES; the products too with
        // EARLY_PRODUCTS, else they are formed after the wait, in `finish` (both macros
        // above: holding them costs registers the widest tiles do not have).
        struct KbScales {
            float sa0, sa1, p0[SB_BLOCKS], p1[SB_BLOCKS];
        };
        auto b_products = [&](KbScales& k, u32 s) {
#pragma unroll
            for (u32 j = 0; j < SB_BLOCKS; ++j) {
                const float sb = SFB_TOKEN ? 0.0f : smem_sfb(smem, s)[j];
                k.p0[j] = __fmul_rn(k.sa0, sb);
                k.p1[j] = __fmul_rn(k.sa1, sb);
            }
        };
        auto read_sa = [&](KbScales& k, u32 s, u32 row) {
            k.sa0 = smem_sfa(smem, s)[row];
            k.sa1 = smem_sfa(smem, s)[row + 8];
        };
        auto load_scales = [&](u32 s, u32 row) {
            KbScales k{};
            if (!LATE_A_SCALES) read_sa(k, s, row);
            if (EARLY_PRODUCTS) b_products(k, s);
            return k;
        };

        // Promotes wave `w` of k-block `kb` held in `acc` (its wgmma complete) from ring
        // stage `s`, and releases the stage after the last wave. `bnd`: U32c of the tile
        // column where its second B-scale block begins (1D2D; `with_sb_boundary`).
        auto finish = [&](auto bnd, float (&fin)[ACC_REGS], float (&acc)[ACC_REGS], u32 kb, u32 s, u32 w,
                          KbScales k) {
#pragma unroll
            for (int i = 0; i < ACC_REGS; ++i) fence_operand(acc[i]);
            if (LATE_A_SCALES) read_sa(k, s, sfa_row(w));
#ifdef PLANT_DROP_LAST_KBLOCK  // planted bug (verification only): the last k-block is lost
            if (kb + 1 == num_kb) {
                k.sa0 = k.sa1 = 0.0f;
#pragma unroll
                for (u32 j = 0; j < SB_BLOCKS; ++j) k.p0[j] = k.p1[j] = 0.0f;
            }
#endif
            if (SFB_TOKEN) {
                // Reads the stage's B scales while promoting: released after.
                promote_1d1d(fin, acc, k.sa0, k.sa1, smem_sfb(smem, s), lane);
                if (w == WAVES - 1) release_stage(empty, s, lane);
            } else {
                if (!EARLY_PRODUCTS) b_products(k, s);
                // The stage is released before promoting, so the producer refills it sooner.
                if (w == WAVES - 1) release_stage(empty, s, lane);
                promote_1d2d<decltype(bnd)::value>(fin, acc, k.p0, k.p1);
            }
        };

        // The k-loop, instantiated per position of the tile's B-scale block boundary
        // (1D2D: tile column (n0/128 + 1)·128 − n0; once per tile, see promote.cuh).
        with_sb_boundary((n0 / 128 + 1) * 128 - n0, [&](auto bnd) {
#if PIPE
            // Two partial tiles: block kb+1's wgmma run while block kb is promoted. The loop is
            // unrolled by two so each register set is named statically, and every path states
            // which set is in flight (ptxas serialises all wgmma if it cannot prove that no
            // in-flight accumulator is touched).
            float acc0[ACC_REGS], acc1[ACC_REGS];
            u32 s_cur = ring.stage;
            const u32 row = sfa_row(0);
            tr.wait(&full[s_cur], ring.phase, true);
            KbScales k_cur = load_scales(s_cur, row);
            issue_kblock(acc0, smem, s_cur, a_row(0));
            ring.advance();
            // Block kb is in flight in `cur`: issue block kb+1 into `nxt`, then finish kb.
            auto overlap = [&](float (&cur)[ACC_REGS], float (&nxt)[ACC_REGS], u32 kb) {
                const u32 s_nxt = ring.stage;
                tr.wait(&full[s_nxt], ring.phase, false);
                const KbScales k_nxt = load_scales(s_nxt, row);
                issue_kblock(nxt, smem, s_nxt, a_row(0));
                ring.advance();
                wgmma_wait<1>();
                finish(bnd, final_acc[0], cur, kb, s_cur, 0, k_cur);
                k_cur = k_nxt;
                s_cur = s_nxt;
            };
            for (u32 kb = 0;; kb += 2) {
                // acc0 holds block kb, in flight.
                if (kb + 1 >= num_kb) {
                    wgmma_wait<0>();
                    finish(bnd, final_acc[0], acc0, kb, s_cur, 0, k_cur);
                    break;
                }
                overlap(acc0, acc1, kb);
                // acc1 holds block kb + 1, in flight.
                if (kb + 2 >= num_kb) {
                    wgmma_wait<0>();
                    finish(bnd, final_acc[0], acc1, kb + 1, s_cur, 0, k_cur);
                    break;
                }
                overlap(acc1, acc0, kb + 1);
            }
#elif HALVES_ON
            (void)finish;
            // Half-blocks in the PIPE loop's shape: block kb's high half is issued before its
            // low half is promoted, block kb+1's low half before block kb's high half is, so
            // one half's wgmma always run while the other is promoted; no register set beyond
            // the non-pipelined kernel's (two halves of one partial tile).
            float acc_lo[HALF_REGS], acc_hi[HALF_REGS];
            constexpr u32 B1 = decltype(bnd)::value;
            auto scales = [&](u32 s, u32 kb) {
                KbScales k = load_scales(s, sfa_row(0));
#ifdef PLANT_DROP_LAST_KBLOCK  // planted bug (verification only): the last k-block is lost
                if (kb + 1 == num_kb) k.sa0 = k.sa1 = 0.0f;
#endif
                if (!SFB_TOKEN) b_products(k, s);
                return k;
            };
            auto promote_half = [&](auto hi, float (&acc)[HALF_REGS], const KbScales& k, u32 s) {
#pragma unroll
                for (int i = 0; i < HALF_REGS; ++i) fence_operand(acc[i]);
                constexpr int F0 = decltype(hi)::value * HALF_FRAGS;
                if (SFB_TOKEN) {
                    promote_1d1d<F0, HALF_FRAGS>(final_acc[0], acc, k.sa0, k.sa1, smem_sfb(smem, s), lane);
                } else {
                    promote_1d2d<B1, F0, HALF_FRAGS>(final_acc[0], acc, k.p0, k.p1);
                }
            };
            u32 s_cur = ring.stage;
            tr.wait(&full[s_cur], ring.phase, true);
            KbScales k_cur = scales(s_cur, 0);
            issue_kblock(acc_lo, smem, s_cur, a_row(0));
            ring.advance();
            for (u32 kb = 0;; ++kb) {
                // Never taken (the loop leaves below), but without an exit here, as the PIPE
                // loop has, ptxas cannot prove the accumulator reads below safe and serialises
                // every wgmma (C7514; measured with NVRTC 13.0).
                if (kb >= num_kb) {
                    wgmma_wait<0>();
                    break;
                }
                // Block kb's low half is in flight: issue its high half, promote the low.
                issue_kblock(acc_hi, smem, s_cur, a_row(0), BLOCK_N / 2);
                wgmma_wait<1>();
                promote_half(U32c<0>{}, acc_lo, k_cur, s_cur);
                // Block kb's high half is in flight.
                if (kb + 1 == num_kb) {
                    wgmma_wait<0>();
                    promote_half(U32c<1>{}, acc_hi, k_cur, s_cur);
                    release_stage(empty, s_cur, lane);
                    break;
                }
                const u32 s_nxt = ring.stage;
                tr.wait(&full[s_nxt], ring.phase, false);
                const KbScales k_nxt = scales(s_nxt, kb + 1);
                issue_kblock(acc_lo, smem, s_nxt, a_row(0));
                ring.advance();
                wgmma_wait<1>();
                promote_half(U32c<1>{}, acc_hi, k_cur, s_cur);
                // Block kb's wgmma are complete and its scales read: release its stage.
                release_stage(empty, s_cur, lane);
                k_cur = k_nxt;
                s_cur = s_nxt;
            }
#else
            // Unrolled by four for the BF16 1D2D 256-row tiles: by two was 1.3–1.4 % faster than
            // not unrolled on the M = 4096 shapes (thirteenth session), by four 0.5–1.7 % faster
            // again; by eight beat four only at K ≥ 2048 and took up to 12 s to compile (256×112;
            // benches/README.md, fifteenth session). The loop head's full-barrier wait comes
            // after the last wave's promotion, where its latency is exposed; the other
            // iterations' waits are scheduled among the promotion's FFMA.
#if TALL_BF16_1D2D
#pragma unroll 4
#endif
            for (u32 kb = 0; kb < num_kb; ++kb) {
                const u32 s = ring.stage;
                tr.wait(&full[s], ring.phase, kb == 0);
                KbScales k[WAVES];
#pragma unroll
                for (u32 w = 0; w < WAVES; ++w) k[w] = load_scales(s, sfa_row(w));
#pragma unroll
                for (u32 w = 0; w < WAVES; ++w) {
                    float acc[ACC_REGS];
                    issue_kblock(acc, smem, s, a_row(w));
                    wgmma_wait<0>();
                    finish(bnd, final_acc[w], acc, kb, s, w, k[w]);
                }
                ring.advance();
            }
#endif
        });
        tr.kloop_done();

#if SPLIT_K
        // Only the tile's last unit goes on, with the sum of all its splits.
        if (sched.splits > 1 &&
            !split_k_reduce(final_acc[0], split_partials, split_counters, m_block * sched.num_n_blocks + n_block,
                            unit.split, sched.splits, smem_split_flag(smem), threadIdx.x))
            continue;
#endif
        const u32 m0 = m_block * BLOCK_M;
#ifdef PLANT_SKIP_LAST_N_TILE  // planted bug (verification only): the last N tile is not stored
        if (n0 + BLOCK_N >= N) continue;
#endif
#if TMA_STORE
        if (flags & FLAG_TMA_STORE) {
            // The previous store of these rows must be done reading the staging buffer.
            if (store_leader()) tma_store_wait_read<0>();
            tr.mark(0);
            named_barrier(store_barrier_id(), STORE_THREADS);
            tr.mark(1);
#pragma unroll
            for (u32 w = 0; w < WAVES; ++w) stage_tile_bf16(final_acc[w], smem, row_in_tile(w), lane);
            issue_tile_store(smem, tma_d, WG_STORE ? wg * STORE_ROWS : 0, m0, n0);
            tr.mark(2);
            continue;
        }
#endif
#pragma unroll
        for (u32 w = 0; w < WAVES; ++w) store_direct(final_acc[w], d, ld_d, c, ld_c, M, N, m0 + row_in_tile(w), n0, lane);
    }
#if TMA_STORE
    if (store_leader()) tma_store_wait<0>();
#endif
    if (threadIdx.x % 128 == 0) tr.end(TRACE_MATH0 + wg);
}

extern "C" __global__ void __launch_bounds__(NUM_THREADS, 1)
fp8_gemm(const __grid_constant__ TmaDesc tma_a,    // A codes [M, K], box BLOCK_K × BLOCK_M/CLUSTER
         const __grid_constant__ TmaDesc tma_b,    // B codes [N, K], box BLOCK_K × BLOCK_N
         const __grid_constant__ TmaDesc tma_sfa,  // A scales [ceil(K/128), M] MN-major, box a_box_rows (CLUSTER 1) or BLOCK_M × 1
         const __grid_constant__ TmaDesc tma_sfb,  // 1D1D: B scales [ceil(K/128), N] MN-major, box BLOCK_N × 1
         const __grid_constant__ TmaDesc tma_d,    // TMA_STORE: D [M, N] BF16, box SLAB_COLS × STORE_ROWS
         const float* __restrict__ sfb, u64 ld_sfb, // 1D2D: B scales [ceil(N/128), ceil(K/128)], row stride
         out_t* d, u64 ld_d,                        // D [M, N], row stride (elements)
         const float* c, u64 ld_c,                  // HAS_C: C [M, N] FP32 (may be D), row stride
         u32 M, u32 N, u32 K, u32 band, u32 flags,
         u32 a_box_rows,                            // rows of tma_a's box (< BLOCK_M when M is; tma_sfa's too, CLUSTER 1)
         u32 splits,                                // SPLIT_K: units per tile (1..=ceil(K/128))
         float* split_partials, u32* split_counters) {  // SPLIT_K: the workspace (split_k.cuh)
    extern __shared__ __align__(1024) u8 smem[];
    u64* full = smem_bars(smem);
    u64* empty = full + STAGES;
    // Broadcast from lane 0: ptxas then keeps it (and the A descriptors) in uniform registers.
    const u32 wg = __shfl_sync(0xffffffffu, threadIdx.x / 128, 0);
    const u32 num_kb = ceil_div(K, (u32)BLOCK_K);
    // Built first: its divisors' set-up (scheduler.cuh) overlaps the barriers' and, with PDL,
    // the previous kernel's tail.
    const u32 rank = CLUSTER > 1 ? cluster_rank() : 0;
    TileScheduler sched(M, N, num_kb, BLOCK_M, BLOCK_N, band, splits, rank);

    if (threadIdx.x == 0) {
        tma_prefetch_desc(&tma_a);
        tma_prefetch_desc(&tma_b);
        tma_prefetch_desc(&tma_sfa);
        if (SFB_TOKEN) tma_prefetch_desc(&tma_sfb);
        for (int s = 0; s < STAGES; ++s) {
            // The TMA producer's arrive (with the bytes), plus for 1D2D the B-scale warp's.
            mbar_init(&full[s], SFB_TOKEN ? 1 : 2);
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

    WorkUnit unit;

    if (wg == NUM_MATH_WG) {
        // Producer warpgroup: one thread streams the tiles of every k-block of every tile (B's
        // from a second thread with B_THREAD).
        auto load_b = [&](u32 s, u32 kb, u32 n_block) {
#ifdef PLANT_B_KBLOCK_OFF_BY_ONE  // planted bug (verification only): B's K blocks shifted by one
            tma_load_2d(smem_b(smem, s), &tma_b, &full[s], (kb + 1) * BLOCK_K, n_block * BLOCK_N);
#else
            tma_load_2d(smem_b(smem, s), &tma_b, &full[s], kb * BLOCK_K, n_block * BLOCK_N);
#endif
        };
        if (NUM_MATH_WG == 2) warpgroup_reg_dealloc<PRODUCER_REGS>();
        if (threadIdx.x % 128 == 0) {
            // A's scales: the same rows as A's box, all BLOCK_M with clusters (each CTA loads
            // its whole tile's scales; the host sizes tma_sfa's box so).
            const u32 sfa_box_rows = CLUSTER == 1 ? a_box_rows : BLOCK_M;
            Ring ring;
            Trace tr;
            tr.begin();
            while (sched.next_unit(unit)) {
                const u32 m_block = unit.m_block, n_block = unit.n_block;
                tr.unit(unit.kb_end - unit.kb_begin);
                for (u32 kb = unit.kb_begin; kb < unit.kb_end; ++kb) {
                    const u32 s = ring.stage;
                    tr.wait(&empty[s], ring.phase ^ 1, kb == unit.kb_begin);
                    // A single M-block shorter than BLOCK_M loads only its rows (rounded up to
                    // 8), of A and of its scales: TMA's out-of-bounds fill of the rest measured
                    // as slow as real loads. The stale rows behind them feed only D rows ≥ M,
                    // never stored.
                    mbar_arrive_expect_tx(&full[s], CLUSTER * (a_box_rows * BLOCK_K) + SMEM_B_BYTES + sfa_box_rows * 4 +
                                                        (SFB_TOKEN ? BLOCK_N * 4 : 0));
#if CLUSTER == 2
                    // This CTA's half of A's rows, to both CTAs (tma_a's box is BLOCK_M/2 rows).
                    tma_load_2d_multicast(smem_a(smem, s) + rank * (SMEM_A_BYTES / 2), &tma_a, &full[s], kb * BLOCK_K,
                                          m_block * BLOCK_M + rank * (BLOCK_M / 2), 0x3);
#else
                    tma_load_2d(smem_a(smem, s), &tma_a, &full[s], kb * BLOCK_K, m_block * BLOCK_M);
#endif
                    if (!B_THREAD) load_b(s, kb, n_block);
                    tma_load_2d(smem_sfa(smem, s), &tma_sfa, &full[s], m_block * BLOCK_M, kb);
                    if (SFB_TOKEN) tma_load_2d(smem_sfb(smem, s), &tma_sfb, &full[s], n_block * BLOCK_N, kb);
                    ring.advance();
                }
            }
            tr.end(TRACE_PRODUCER);
        } else if (B_THREAD && threadIdx.x % 128 == 64) {
            // B_THREAD: B's loads from their own thread, into the same stages, completing
            // on the same full barriers. Thread 0's expect_tx counts their bytes; a load that
            // lands first leaves the barrier's tx-count negative until then (PTX ISA
            // §9.7.13.15, contents of the mbarrier object: tx-count ranges over ±(2^20 − 1)),
            // and cannot complete the phase, which also waits for thread 0's arrival (as with
            // a CTA pair's multicast of A).
            Ring ring;
            Trace tr;
            tr.begin();
            while (sched.next_unit(unit)) {
                tr.unit(unit.kb_end - unit.kb_begin);
                for (u32 kb = unit.kb_begin; kb < unit.kb_end; ++kb) {
                    const u32 s = ring.stage;
                    tr.wait(&empty[s], ring.phase ^ 1, kb == unit.kb_begin);
                    load_b(s, kb, unit.n_block);
                    ring.advance();
                }
            }
            tr.end(TRACE_B_THREAD);
        } else if (!SFB_TOKEN && threadIdx.x % 128 / 32 == 1) {
            // 1D2D: producer warp 1 streams each k-block's SB_BLOCKS 128×128-block scales of
            // the tile's columns (rows n0/128 + j of the row-major [ceil(N/128), ceil(K/128)]
            // matrix, the last repeated past N) into the stage, completing on the same full
            // barrier. The warp loads 32 k-blocks' scales at a time into registers (lane t:
            // k-block kb0 + t; the next 32 are loaded while these are written), and lane t
            // writes k-block kb0 + t's into its stage and arrives: per stage a shared store
            // instead of a per-stage cp.async from global memory as before (benches/README,
            // Findings, seventh session).
            const u32 lane = threadIdx.x % 32;
            Ring ring;
            Trace tr;
            tr.begin();
            while (sched.next_unit(unit)) {
                tr.unit(unit.kb_end - unit.kb_begin);
                const u32 sb_first = unit.n_block * BLOCK_N / 128, sb_last = ceil_div(N, 128u) - 1;
                auto load32 = [&](u32 kb0, float (&v)[SB_BLOCKS]) {
#pragma unroll
                    for (u32 j = 0; j < SB_BLOCKS; ++j) {
#ifdef PLANT_SB_NEIGHBOUR  // planted bug (verification only): the next N block's B scales
                        const u32 sb_row = min(sb_first + j + 1, sb_last);
#else
                        const u32 sb_row = min(sb_first + j, sb_last);
#endif
                        v[j] = kb0 + lane < unit.kb_end ? sfb[(u64)sb_row * ld_sfb + kb0 + lane] : 0.0f;
                    }
                };
                float cur[SB_BLOCKS], nxt[SB_BLOCKS];
                load32(unit.kb_begin, cur);
                for (u32 kb0 = unit.kb_begin; kb0 < unit.kb_end; kb0 += 32) {
                    const bool more = kb0 + 32 < unit.kb_end;
                    if (more) load32(kb0 + 32, nxt);
                    const u32 n = min(32u, unit.kb_end - kb0);
                    for (u32 t = 0; t < n; ++t) {
                        const u32 s = ring.stage;
                        tr.wait(&empty[s], ring.phase ^ 1, kb0 + t == unit.kb_begin);
                        if (lane == t) {
#pragma unroll
                            for (u32 j = 0; j < SB_BLOCKS; ++j) smem_sfb(smem, s)[j] = cur[j];
                            mbar_arrive(&full[s]);
                        }
                        ring.advance();
                    }
                    // `nxt` holds the next 32 k-blocks' scales only if they exist.
                    if (more) {
#pragma unroll
                        for (u32 j = 0; j < SB_BLOCKS; ++j) cur[j] = nxt[j];
                    }
                }
            }
            if (lane == 0) tr.end(TRACE_SFB_WARP);
        }
    } else {
        math_warpgroups(smem, full, empty, sched, &tma_d, d, ld_d, HAS_C ? c : nullptr, ld_c, M, N, wg, flags,
                        split_partials, split_counters);
    }
    // A CTA may not exit while its peer can still multicast into it or arrive on its barriers.
    if (CLUSTER > 1) cluster_sync();
}
