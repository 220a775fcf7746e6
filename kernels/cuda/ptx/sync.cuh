// CTA-level named barriers (PTX ISA §9.7.13.1 bar.sync), programmatic dependent launch
// (PTX ISA §9.7.13.11 griddepcontrol) and a GPU-scope acquire-release counter.
#pragma once
#include "../common.cuh"

// Barrier `id` (1..15; 0 is __syncthreads) over `threads` threads (a multiple of 32).
SG_DEVICE void named_barrier(u32 id, u32 threads) {
    asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

// Waits until the grids this one depends on (the previous kernel on the stream, when this
// one was launched with programmatic stream serialization) have completed and their
// memory operations are visible. A no-op for a normal launch.
SG_DEVICE void grid_dependency_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }

// Lets the next kernel on the stream (if launched with programmatic stream serialization)
// start its prologue; it still waits in grid_dependency_wait for this grid to finish.
SG_DEVICE void grid_launch_dependents() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }

// `*p += v` at GPU scope with acquire-release semantics (PTX ISA §9.7.13.5 atom, memory
// model §8): after a CTA barrier, one thread's release publishes the whole CTA's earlier
// writes (cumulativity), and its acquire, followed by a barrier, makes other CTAs' published
// writes visible to the CTA. Returns the old value. Cheaper than __threadfence() in every
// thread (membar.gl: MEMBAR.SC.GPU plus an L1 invalidation).
SG_DEVICE u32 atomic_add_acq_rel_gpu(u32* p, u32 v) {
    u32 old;
    asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], %2;" : "=r"(old) : "l"(p), "r"(v) : "memory");
    return old;
}
