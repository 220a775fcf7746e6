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
// aligned. Advancing `smem` by 32 bytes selects the next k32 slice of the same rows.
SG_DEVICE u64 wgmma_desc_k_sw128(const void* smem) {
    u64 addr = smem_u32(smem);
    u64 desc = (addr & 0x3FFFF) >> 4;   // bits 0-13: start address >> 4
    desc |= (u64)1 << 16;               // bits 16-29: leading byte offset (unused for swizzled K-major)
    desc |= (u64)(1024 >> 4) << 32;     // bits 32-45: stride byte offset
#ifdef PLANT_WRONG_SWIZZLE  // planted bug (verification only): 64-byte swizzle mode
    desc |= (u64)2 << 62;
#else
    desc |= (u64)1 << 62;               // bits 62-63: 128-byte swizzle
#endif
    return desc;
}
