// Basic types and helpers shared by every kernel. NVRTC compiles without the CUDA
// toolkit headers (DESIGN §1), so the fixed-width types are declared here.
#pragma once

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

#define SG_DEVICE __device__ __forceinline__

template <typename T> SG_DEVICE constexpr T ceil_div(T a, T b) { return (a + b - 1) / b; }

// Shared-memory (CTA window) address of a generic pointer, as PTX `.shared` operands take it.
SG_DEVICE u32 smem_u32(const void* p) {
    return static_cast<u32>(__cvta_generic_to_shared(p));
}

// An opaque TMA descriptor (CUtensorMap, 128 bytes), built on the host by
// cuTensorMapEncodeTiled and passed by value as a __grid_constant__ kernel parameter.
struct alignas(64) TmaDesc {
    u64 opaque[16];
};
