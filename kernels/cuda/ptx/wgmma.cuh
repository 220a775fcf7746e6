// Warpgroup MMA (PTX ISA §9.7.15): fences, commit/wait, shared-memory matrix descriptors.
// The `wgmma.mma_async` wrappers themselves are generated per N by the host
// (kernels/src/gemm/wgmma.rs), since each N has N/2 accumulator operands.
#pragma once
#include "../common.cuh"

SG_DEVICE void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
SG_DEVICE void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N> SG_DEVICE void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}

// Pins an accumulator register in program order relative to the wgmma asm statements, so
// the compiler neither reads it before `wgmma_wait` nor writes it after `wgmma_fence`.
SG_DEVICE void fence_operand(float& r) { asm volatile("" : "+f"(r)::"memory"); }

// Descriptor of a K-major tile with 128-byte swizzle (PTX ISA §9.7.15.5.1): rows of 128
// bytes, 8-row swizzle atoms 1024 bytes apart (stride byte offset), tile base 1024-byte
// aligned. The high word is constant; the low word holds the start address >> 4 (bits
// 0-13) and the leading byte offset 1 (bits 16-29, unused for swizzled K-major), so a
// descriptor `lo` advances by `bytes >> 4` when its tile does (the next k32 slice of the
// same rows: +2; the next ring stage: +stage bytes >> 4). Shared-memory addresses are below
// 2^18, so the address field never carries into the LBO field.
#define WGMMA_DESC_SBO_HI (1024u >> 4)            // bits 32-45: stride byte offset
#ifdef PLANT_WRONG_SWIZZLE  // planted bug (verification only): 64-byte swizzle mode
#define WGMMA_DESC_SWIZZLE_HI (2u << 30)          // bits 62-63 = 2
#else
#define WGMMA_DESC_SWIZZLE_HI (1u << 30)          // bits 62-63 = 1: 128-byte swizzle
#endif
SG_DEVICE u32 wgmma_desc_lo_k_sw128(const void* smem) { return (smem_u32(smem) >> 4) | (1u << 16); }
SG_DEVICE u64 wgmma_desc_from_lo(u32 lo) {
    return ((u64)(WGMMA_DESC_SBO_HI | WGMMA_DESC_SWIZZLE_HI) << 32) | lo;
}
