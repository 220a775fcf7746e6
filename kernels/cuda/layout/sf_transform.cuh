// Scale-factor layout transforms on the GPU (DESIGN §2).
#pragma once
#include "../common.cuh"

// Natural row-major scales [rows, cols] (row stride `ld_in`) to the TMA-aligned MN-major
// layout [cols, ld_out] (ld_out = rows rounded up to a multiple of 4, so each column starts
// 16-byte aligned); padding entries are written as 0. One thread per output element.
extern "C" __global__ void sf_to_tma_aligned_mn_major(const float* __restrict__ in, u64 ld_in,
                                                       float* __restrict__ out, u64 ld_out,
                                                       u32 rows, u32 cols) {
    const u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= ld_out * cols) return;
    const u64 c = i / ld_out, r = i - c * ld_out;
    out[i] = r < rows ? in[r * ld_in + c] : 0.0f;
}
