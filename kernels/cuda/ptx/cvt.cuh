// Conversions (PTX ISA §9.7.9.21, cvt): FP32 pairs to packed BF16, round to nearest even.
#pragma once
#include "../common.cuh"

// Returns the two BF16 values as one 32-bit word: `lo` in bits 0-15, `hi` in bits 16-31.
SG_DEVICE u32 pack_bf16x2(float lo, float hi) {
    u32 r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

SG_DEVICE u16 to_bf16(float x) {
    u16 r;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(x));
    return r;
}
