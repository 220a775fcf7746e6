// Thread-block clusters (PTX ISA §9.7.13.4 barrier.cluster, §9.7.9.22 mapa): rank, cluster
// barrier, arrivals on a peer CTA's mbarrier, and TMA multicast to every CTA of the cluster.
#pragma once
#include "../common.cuh"

SG_DEVICE u32 cluster_rank() {
    u32 r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
}

// Every thread of every CTA of the cluster arrives and waits (release/acquire).
SG_DEVICE void cluster_sync() {
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}

// Arrives on the mbarrier at the same shared-memory offset as `bar` in CTA `rank`, with the
// default (CTA-scope) semantics: the arrival only says "this stage's shared memory is no
// longer read" (wgmma reads were waited for, loaded values are in registers). An explicit
// `.release.cluster` compiles to a memory barrier that ncu showed costing ~36 % of the
// math warps' cycles and halving throughput.
SG_DEVICE void mbar_arrive_cluster(u64* bar, u32 rank) {
    asm volatile(
        "{\n.reg .b32 remote;\n"
        "mapa.shared::cluster.u32 remote, %0, %1;\n"
        "mbarrier.arrive.shared::cluster.b64 _, [remote];\n}" ::"r"(smem_u32(bar)),
        "r"(rank)
        : "memory");
}

// As tma_load_2d, but the box lands at `dst` (and completes on `bar`) in every CTA whose bit
// is set in `mask`.
SG_DEVICE void tma_load_2d_multicast(void* dst, const TmaDesc* desc, u64* bar, int c0, int c1, u16 mask) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster"
        " [%0], [%1, {%3, %4}], [%2], %5;" ::"r"(smem_u32(dst)),
        "l"(desc), "r"(smem_u32(bar)), "r"(c0), "r"(c1), "h"(mask)
        : "memory");
}
