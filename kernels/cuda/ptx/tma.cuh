// TMA: bulk tensor copies global -> shared, completing on an mbarrier (PTX ISA §9.7.9.25).
#pragma once
#include "../common.cuh"

SG_DEVICE void tma_prefetch_desc(const TmaDesc* desc) {
    asm volatile("prefetch.tensormap [%0];" ::"l"(desc) : "memory");
}

// Copies the box at coordinates (c0 innermost, c1) of `desc` into `dst`; the transferred
// bytes (the whole box, out-of-bounds elements zero-filled) complete on `bar`.
SG_DEVICE void tma_load_2d(void* dst, const TmaDesc* desc, u64* bar, int c0, int c1) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%3, %4}], [%2];" ::"r"(smem_u32(dst)),
        "l"(desc), "r"(smem_u32(bar)), "r"(c0), "r"(c1)
        : "memory");
}
