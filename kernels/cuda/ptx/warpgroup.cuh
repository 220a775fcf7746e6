// Warpgroup-level register reallocation (PTX ISA §9.7.19.5, setmaxnreg, sm_90a).
#pragma once
#include "../common.cuh"

template <int REGS> SG_DEVICE void warpgroup_reg_dealloc() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(REGS));
}
template <int REGS> SG_DEVICE void warpgroup_reg_alloc() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(REGS));
}
