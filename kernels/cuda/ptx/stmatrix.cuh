// Warp-wide stores of 8×8 matrices of 16-bit elements to shared memory (PTX ISA §9.7.14.5.16
// stmatrix).
#pragma once
#include "../common.cuh"

// Four 8×8 b16 matrices: thread t holds row t/4, elements 2(t%4) and 2(t%4)+1 of matrix j in
// `rj` (low half first), the layout of an mma/wgmma accumulator fragment's row pair; lane l
// gives the address of row l%8 of matrix l/8 (16 contiguous bytes, 16-byte aligned).
SG_DEVICE void stmatrix_x4(void* row_addr, u32 r0, u32 r1, u32 r2, u32 r3) {
    asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};" ::"r"(smem_u32(row_addr)),
                 "r"(r0), "r"(r1), "r"(r2), "r"(r3)
                 : "memory");
}
