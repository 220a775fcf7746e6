// Split-K with a deterministic, in-kernel reduction (SPLIT_K; for the small-M GEMMs, whose
// tiles are too few to fill the SMs and whose k-loop runs at a fixed latency per k-block).
//
// Work unit (tile, split s) promotes k-blocks [s·n/S, (s+1)·n/S) of the tile's n into its
// own FP32 tile, from zero, exactly as an unsplit tile does (scheduler.cuh gives the range).
// Every unit writes that tile to the workspace, then counts itself on the tile's counter;
// the unit that counts last (whichever CTA it runs on) sums the S tiles in split order (the others read back from the workspace),
// fl32(fl32(p0 + p1) + p2) + ..., so the bits do not depend on which unit finished last
// (the reference's `Promotion::SplitK`), resets the counter to 0 for the next launch, and
// runs the normal epilogue (C, the output cast, the stores). No unit waits for another, so
// any number of CTAs may be resident.
//
// Workspace (host: fp8.rs): `counters`, one u32 per tile, zero before the launch (each
// launch leaves them zero); `partials`, S tiles of BLOCK_M·BLOCK_N floats per tile, each
// stored in the fragment order of the math threads (float4 q of thread t at q·threads + t:
// coalesced, and read back by the same thread).
//
// Memory ordering (PTX memory model): the stores, a CTA barrier, then one thread's
// acquire-release atomic at GPU scope (its release covers the CTA's stores by cumulativity
// through the barrier, its acquire the other units' published stores); a second barrier,
// then every thread of the last unit reads the tiles through L2 (`ld.cg`).
//
// Expects BLOCK_M, BLOCK_N, ACC_REGS and NUM_MATH_WG from the kernel.
#pragma once
#include "../common.cuh"
#include "../ptx/sync.cuh"

#define SPLIT_THREADS (NUM_MATH_WG * 128)
#define SPLIT_TILE_F4 (BLOCK_M * BLOCK_N / 4)
// Split tiles loaded at once by the last unit: 64 registers' worth (128 made the 64- and
// 128-column pipelined kernels spill).
#define SPLIT_GROUP (ACC_REGS >= 64 ? 1 : 64 / ACC_REGS)
// The last unit keeps its own tile in registers instead of reading it back, for tiles of
// up to 64 columns (wider ones would spill).
#define SPLIT_OWN_IN_REGS (ACC_REGS <= 32)
static_assert(ACC_REGS % 4 == 0, "split-K stores the fragments as float4");
static_assert(SPLIT_TILE_F4 == SPLIT_THREADS * (ACC_REGS / 4), "one wave per math warpgroup");

// Unit `split` of `splits` of tile `tile` holds its promoted tile in `fin`. Returns true
// (with `fin` the sum of all splits, in split order) when this unit was the tile's last, and
// false otherwise (the tile's output is then another unit's). `flag`: one shared-memory word.
// Called by every math thread (`tid` in 0..SPLIT_THREADS-1).
SG_DEVICE bool split_k_reduce(float (&fin)[ACC_REGS], float* partials, u32* counters, u32 tile, u32 split,
                              u32 splits, u32* flag, u32 tid) {
    float4* base = reinterpret_cast<float4*>(partials) + (u64)tile * splits * SPLIT_TILE_F4 + tid;
    float4* mine = base + (u64)split * SPLIT_TILE_F4;
#pragma unroll
    for (int q = 0; q < ACC_REGS / 4; ++q)
        __stcg(mine + q * SPLIT_THREADS, make_float4(fin[4 * q], fin[4 * q + 1], fin[4 * q + 2], fin[4 * q + 3]));
    named_barrier(2, SPLIT_THREADS);
    if (tid == 0) {
        const bool last = atomic_add_acq_rel_gpu(&counters[tile], 1u) == splits - 1;
        if (last) counters[tile] = 0;  // every unit of this tile has counted
        *flag = last ? 1u : 0u;
    }
    named_barrier(2, SPLIT_THREADS);
    // Thread 0 writes `flag` again only after the next unit's first barrier, which every
    // thread reaches after this read.
    if (*flag == 0) return false;
    // The other splits' tiles from L2 (this unit's own too where registers are short),
    // SPLIT_GROUP at a time so their loads are in flight together (an L2 round trip per
    // split would cost more than the loads).
    auto load = [&](float (&v)[ACC_REGS], u32 s) {
        const float4* p = base + (u64)s * SPLIT_TILE_F4;
#pragma unroll
        for (int q = 0; q < ACC_REGS / 4; ++q) {
            const float4 x = __ldcg(p + q * SPLIT_THREADS);
            v[4 * q] = x.x;
            v[4 * q + 1] = x.y;
            v[4 * q + 2] = x.z;
            v[4 * q + 3] = x.w;
        }
    };
#if SPLIT_OWN_IN_REGS
    float own[ACC_REGS];
#pragma unroll
    for (int i = 0; i < ACC_REGS; ++i) own[i] = fin[i];
#endif
    for (u32 s0 = 0; s0 < splits; s0 += SPLIT_GROUP) {
        float v[SPLIT_GROUP][ACC_REGS];
#pragma unroll
        for (u32 g = 0; g < SPLIT_GROUP; ++g) {
            if (s0 + g >= splits) continue;
#if SPLIT_OWN_IN_REGS
            if (s0 + g == split) {
#pragma unroll
                for (int i = 0; i < ACC_REGS; ++i) v[g][i] = own[i];
                continue;
            }
#endif
            load(v[g], s0 + g);
        }
#pragma unroll
        for (u32 g = 0; g < SPLIT_GROUP; ++g)
            if (s0 + g < splits) {
#pragma unroll
                for (int i = 0; i < ACC_REGS; ++i) fin[i] = s0 + g == 0 ? v[g][i] : __fadd_rn(fin[i], v[g][i]);
            }
    }
    return true;
}
