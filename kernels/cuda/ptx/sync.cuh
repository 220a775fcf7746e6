// CTA-level named barriers (PTX ISA §9.7.13.1 bar.sync) and programmatic dependent launch
// (PTX ISA §9.7.13.11 griddepcontrol).
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
