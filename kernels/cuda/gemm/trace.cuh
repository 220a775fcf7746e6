// Where the FP8 GEMM's roles wait: an experiment probe, compiled in only with SG_TRACE
// (through SCALEGEMM_KERNEL_DEFINES, never in production). Each role's lead thread counts
// SM cycles (%clock) spent in its ring waits (the math warpgroups on full barriers, the
// producers on empty ones), split into a unit's first k-block and the rest, and, for the
// math warpgroups, the cycles from a unit's k-loop end to the next unit (epilogue, split-K
// reduction, scheduler), with the TMA-store epilogue's parts marked (`mark`: up to the
// previous store's wait, the barrier, the staging and store). Every launch overwrites the
// module's `sg_trace_buf`; the kernel `sg_trace_dump` (launched by `Device::print_traces`)
// prints it with device printf, one "SGT ..." line per role and CTA (printf in the GEMM
// itself would serialise its wgmma, C7510). scripts/trace-summary.py summarises them
// (benches/README.md, "Tracing the ring"). The traced kernels spill a few registers
// (the 128×128 pipelined one 12/44 bytes), so the probe slows what it measures a little.
// Without SG_TRACE every member is a no-op and `wait` is mbar_wait.
#pragma once
#include "../common.cuh"
#include "../ptx/mbarrier.cuh"

// Roles: math warpgroup 0 and 1, the TMA producer thread, the 1D2D B-scale warp, the
// B_THREAD thread.
#define TRACE_MATH0 0
#define TRACE_PRODUCER 2
#define TRACE_SFB_WARP 3
#define TRACE_B_THREAD 4

#ifdef SG_TRACE
#define TRACE_ROLES 5
#define TRACE_CTAS 256
#define TRACE_FIELDS 12
__device__ u64 sg_trace_buf[TRACE_ROLES][TRACE_CTAS][TRACE_FIELDS];

// Low 32 bits of the SM clock and of the global nanosecond timer.
SG_DEVICE u32 sm_clock() {
    u32 t;
    asm volatile("mov.u32 %0, %%clock;" : "=r"(t));
    return t;
}
SG_DEVICE u32 global_ns() {
    u32 t;
    asm volatile("mov.u32 %0, %%globaltimer_lo;" : "=r"(t));
    return t;
}

extern "C" __global__ void sg_trace_dump() {
    for (u32 r = 0; r < TRACE_ROLES; ++r)
        for (u32 c = 0; c < TRACE_CTAS; ++c) {
            const u64* f = sg_trace_buf[r][c];
            if (f[11])
                printf("SGT role=%u cta=%u units=%llu kblocks=%llu cycles=%llu ns=%llu wait_first=%llu "
                       "wait_rest=%llu epi=%llu part0=%llu part1=%llu part2=%llu\n",
                       r, c, f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9]);
        }
}
#endif

struct Trace {
#ifdef SG_TRACE
    // 32-bit: differences stay right across a wrap (a launch is far below 2^32 cycles).
    u32 t_begin = 0, ns_begin = 0, wait_first = 0, wait_rest = 0, epi = 0, kloop_end = 0, units = 0, kblocks = 0;
    u32 part[3] = {0, 0, 0}, last = 0;
#endif
    SG_DEVICE void begin() {
#ifdef SG_TRACE
        t_begin = sm_clock();
        ns_begin = global_ns();
#endif
    }
    // A unit of `num_kb` k-blocks starts (closes the previous unit's epilogue).
    SG_DEVICE void unit(u32 num_kb) {
#ifdef SG_TRACE
        if (kloop_end) epi += sm_clock() - kloop_end;
        kloop_end = 0;
        ++units;
        kblocks += num_kb;
#endif
    }
    // The unit's k-loop is done (its epilogue begins).
    SG_DEVICE void kloop_done() {
#ifdef SG_TRACE
        kloop_end = last = sm_clock();
#endif
    }
    // Adds the cycles since the last mark (or the k-loop's end) to part `i` (< 3) of the
    // epilogue.
    SG_DEVICE void mark(u32 i) {
#ifdef SG_TRACE
        const u32 t = sm_clock();
        part[i] += t - last;
        last = t;
#else
        (void)i;
#endif
    }
    SG_DEVICE void wait(u64* bar, u32 parity, bool first) {
#ifdef SG_TRACE
        const u32 t = sm_clock();
        mbar_wait(bar, parity);
        (first ? wait_first : wait_rest) += sm_clock() - t;
#else
        (void)first;
        mbar_wait(bar, parity);
#endif
    }
    // Stores this role's counts for the dump.
    SG_DEVICE void end(u32 role) {
#ifdef SG_TRACE
        unit(0);
        --units;
        const u32 cycles = sm_clock() - t_begin, ns = global_ns() - ns_begin;
        if (blockIdx.x < TRACE_CTAS) {
            u64* f = sg_trace_buf[role][blockIdx.x];
            f[0] = units, f[1] = kblocks, f[2] = cycles, f[3] = ns, f[4] = wait_first, f[5] = wait_rest, f[6] = epi;
            f[7] = part[0], f[8] = part[1], f[9] = part[2], f[11] = 1;
        }
#else
        (void)role;
#endif
    }
};
