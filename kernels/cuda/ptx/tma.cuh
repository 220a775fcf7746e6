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

// Copies the box at `src` (shared memory, written by this CTA's threads and made visible
// with fence_proxy_async_shared) to coordinates (c0, c1) of `desc`; elements outside the
// tensor are not written. Completes as part of the current bulk group (tma_store_commit).
SG_DEVICE void tma_store_2d(const TmaDesc* desc, const void* src, int c0, int c1) {
    asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%2, %3}], [%1];" ::"l"(desc),
                 "r"(smem_u32(src)), "r"(c0), "r"(c1)
                 : "memory");
}

SG_DEVICE void tma_store_commit() { asm volatile("cp.async.bulk.commit_group;" ::: "memory"); }

// Waits until at most N bulk groups are pending reading their shared-memory source.
template <int N> SG_DEVICE void tma_store_wait_read() {
    asm volatile("cp.async.bulk.wait_group.read %0;" ::"n"(N) : "memory");
}

// Waits until at most N bulk groups are pending (writes complete).
template <int N> SG_DEVICE void tma_store_wait() {
    asm volatile("cp.async.bulk.wait_group %0;" ::"n"(N) : "memory");
}

// Orders this thread's generic-proxy shared-memory writes before later async-proxy (TMA)
// reads of them (PTX ISA §9.7.13.4.1 membar/fence, proxy fences).
SG_DEVICE void fence_proxy_async_shared() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }
