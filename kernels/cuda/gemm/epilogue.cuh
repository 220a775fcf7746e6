// Epilogues of the FP8 GEMM: the promoted FP32 tile (register fragments, see promote.cuh)
// to D, either by bounds-checked direct stores (BF16 or FP32, optional FP32 C added first)
// or, for BF16 without C, through shared memory and TMA stores.
//
// Expects BLOCK_M, BLOCK_N, N_FRAGS, ACC_REGS, NUM_MATH_WG, WAVES and OUT_F32 from the kernel.
#pragma once
#include "../common.cuh"
#include "../ptx/cvt.cuh"
#include "../ptx/tma.cuh"
#include "../ptx/sync.cuh"
#include "../ptx/stmatrix.cuh"

#if OUT_F32
typedef float out_t;
#else
typedef u16 out_t;
#endif

// Rows r0 and r0 + 8 (global), columns n0 + 8f + 2(lane%4) + {0, 1}. `c` (FP32, may alias
// `d`: each element is read before the same thread writes it) is added as fl32(final + c),
// or ignored when null. Pairs are stored as one 4- or 8-byte word where aligned.
SG_DEVICE void store_direct(const float (&fin)[ACC_REGS], out_t* d, u64 ld_d, const float* c, u64 ld_c, u32 M,
                            u32 N, u32 r0, u32 n0, u32 lane) {
    const bool d_pairs = (ld_d % 2) == 0 && (reinterpret_cast<u64>(d) % (2 * sizeof(out_t))) == 0;
    const bool c_pairs = c != nullptr && (ld_c % 2) == 0 && (reinterpret_cast<u64>(c) % 8) == 0;
#pragma unroll
    for (int f = 0; f < N_FRAGS; ++f) {
        const u32 col = n0 + f * 8 + (lane % 4) * 2;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const u32 r = r0 + h * 8;
            if (r >= M || col >= N) continue;
            const bool two = col + 1 < N;
            float lo = fin[f * 4 + h * 2], hi = fin[f * 4 + h * 2 + 1];
            if (c != nullptr) {
                const float* pc = c + (u64)r * ld_c + col;
                if (two && c_pairs) {
                    const float2 cv = *reinterpret_cast<const float2*>(pc);
                    lo = __fadd_rn(lo, cv.x);
                    hi = __fadd_rn(hi, cv.y);
                } else {
                    lo = __fadd_rn(lo, pc[0]);
                    if (two) hi = __fadd_rn(hi, pc[1]);
                }
            }
            out_t* p = d + (u64)r * ld_d + col;
#if OUT_F32
            if (two && d_pairs) {
                *reinterpret_cast<float2*>(p) = make_float2(lo, hi);
            } else {
                p[0] = lo;
                if (two) p[1] = hi;
            }
#else
            if (two && d_pairs) {
                *reinterpret_cast<u32*>(p) = pack_bf16x2(lo, hi);
            } else {
                p[0] = to_bf16(lo);
                if (two) p[1] = to_bf16(hi);
            }
#endif
        }
    }
}

// BF16 tile through shared memory: the tile is staged as BLOCK_N / SLAB_COLS column slabs,
// each BLOCK_M rows of SLAB_BYTES (128, 64 or 32: the largest dividing a tile row) with the
// matching TMA swizzle (16-byte chunk index XOR address bits 7.., as CU_TENSOR_MAP_SWIZZLE_
// {128,64,32}B), so the 16-byte block rows stmatrix writes are free of bank conflicts. One
// thread then issues one TMA store per slab (256-row tiles: one per warpgroup, for its 128
// rows; WG_STORE below); TMA clips rows ≥ M and columns ≥ N.
#define D_ROW_BYTES (BLOCK_N * 2)
#define SLAB_BYTES (D_ROW_BYTES % 128 == 0 ? 128 : (D_ROW_BYTES % 64 == 0 ? 64 : 32))
#define SLAB_COLS (SLAB_BYTES / 2)
#define NUM_SLABS (BLOCK_N / SLAB_COLS)
#define SMEM_D_BYTES (BLOCK_M * BLOCK_N * 2)
static_assert(D_ROW_BYTES % 32 == 0, "TMA-store epilogue: BLOCK_N must be a multiple of 16");

#ifdef PLANT_STORE_NO_SWIZZLE  // planted bug (verification only): staging written unswizzled
SG_DEVICE u32 swizzle_offset(u32 off) { return off; }
#else
SG_DEVICE u32 swizzle_offset(u32 off) { return off ^ (((off >> 7) & (SLAB_BYTES / 16 - 1)) << 4); }
#endif

// The math threads that store a tile together: both warpgroups (one TMA store of all
// BLOCK_M rows) or, with two waves per warpgroup (256-row tiles), each warpgroup its own
// BLOCK_M/2 rows (tma_d's box has STORE_ROWS rows).
#define WG_STORE (WAVES == 2)
#define STORE_THREADS (WG_STORE ? 128 : NUM_MATH_WG * 128)
#define STORE_ROWS (WG_STORE ? BLOCK_M / NUM_MATH_WG : BLOCK_M)
static_assert(!WG_STORE || STORE_ROWS == WAVES * 64, "WG_STORE: each warpgroup's rows are contiguous");
// Named barrier of the threads storing together (1, or 3 + the warpgroup; 2 is split_k.cuh's).
SG_DEVICE u32 store_barrier_id() { return WG_STORE ? 3 + threadIdx.x / 128 : 1; }
// Whether this thread issues (and waits for) its storing group's TMA stores.
SG_DEVICE bool store_leader() { return WG_STORE ? threadIdx.x % 128 == 0 : threadIdx.x == 0; }

// Writes one wave of the tile into the staging slabs: `row` is this thread's first tile row
// (the second is row + 8). Each stmatrix.x4 stores four 8×8 blocks of the warp's 16 rows:
// fragments f and f + 1, rows +0 and +8; an 8-column block row is one 16-byte swizzle chunk.
// The previous store of these rows must be done reading (the caller waits with
// tma_store_wait_read before the barrier that precedes this).
SG_DEVICE void stage_tile_bf16(const float (&fin)[ACC_REGS], u8* smem_d, u32 row, u32 lane) {
    static_assert(N_FRAGS % 2 == 0, "stmatrix.x4 stores fragments in pairs");
    // This lane addresses row lane % 8 of block lane / 8: fragment f + (lane / 16), rows
    // +8 for odd blocks.
    const u32 r = row - lane / 4 + (lane / 8 % 2) * 8 + lane % 8;
#pragma unroll
    for (int f = 0; f < N_FRAGS; f += 2) {
        const u32 col = (f + lane / 16) * 8;
        u8* slab = smem_d + (col / SLAB_COLS) * (BLOCK_M * SLAB_BYTES);
        const u32 off = r * SLAB_BYTES + (col % SLAB_COLS) * 2;
        stmatrix_x4(slab + swizzle_offset(off), pack_bf16x2(fin[f * 4], fin[f * 4 + 1]),
                    pack_bf16x2(fin[f * 4 + 2], fin[f * 4 + 3]), pack_bf16x2(fin[f * 4 + 4], fin[f * 4 + 5]),
                    pack_bf16x2(fin[f * 4 + 6], fin[f * 4 + 7]));
    }
}

// After every storing thread's stage_tile_bf16: one thread issues one TMA store per slab of
// the STORE_ROWS rows from tile row `r0` ((m0, n0) the tile origin).
SG_DEVICE void issue_tile_store(u8* smem_d, const TmaDesc* tma_d, u32 r0, u32 m0, u32 n0) {
    fence_proxy_async_shared();
    named_barrier(store_barrier_id(), STORE_THREADS);
    if (store_leader()) {
#pragma unroll
        for (int s = 0; s < NUM_SLABS; ++s)
            tma_store_2d(tma_d, smem_d + s * (BLOCK_M * SLAB_BYTES) + r0 * SLAB_BYTES, n0 + s * SLAB_COLS, m0 + r0);
        tma_store_commit();
    }
}
