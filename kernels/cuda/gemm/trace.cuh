// Where the FP8 GEMM's roles wait: an experiment probe, compiled in only with SG_TRACE
// (through SCALEGEMM_KERNEL_DEFINES, never in production). Each role's lead thread counts
// SM cycles (%clock) spent in its ring waits (the math warpgroups on full barriers, the
// producers on empty ones), split into a unit's first k-block and the rest, and, for the
// math warpgroups, the cycles from a unit's k-loop end to the next unit (epilogue, split-K
// reduction, scheduler), with the TMA-store epilogue's parts marked (`mark`: up to the
// previous store's wait, the barrier, the staging and store). Each CTA below TRACE_CTAS
// writes its counts into the module's `sg_trace_buf`; `Device::print_traces` copies the
// buffer to the host, prints one "SGT ..." line per role and CTA and zeroes it (device
// printf in the GEMM would serialise its wgmma, C7510, and its output is not ordered with the
// host's). scripts/trace-summary.py summarises the lines (benches/README.md, "Tracing the
// ring"). The traced kernels spill a few registers (the 128×128 pipelined one 12/44 bytes)
// and run 2–4 % slower. Without SG_TRACE every member is a no-op and `wait` is mbar_wait.
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
// Per role and CTA: units, k-blocks, cycles, ns, wait_first, wait_rest, epi, the three
// parts, (unused), written (1). Read by `Device::print_traces` (runtime/mod.rs, TRACE_*).
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

#endif

struct Trace {
#ifdef SG_TRACE
    // 32-bit: differences stay right across a wrap (a launch is far below 2^32 cycles).
    u32 t_begin = 0, ns_begin = 0, wait_first = 0, wait_rest = 0, epi = 0, kloop_end = 0, units = 0, kblocks = 0;
    u32 part[3] = {0, 0, 0}, last = 0;
    bool in_epi = false;
#endif
    SG_DEVICE void begin() {
#ifdef SG_TRACE
        t_begin = sm_clock();
        ns_begin = global_ns();
#endif
    }
#ifdef SG_TRACE
    // Ends the epilogue under way, if any.
    SG_DEVICE void close_epi() {
        if (in_epi) epi += sm_clock() - kloop_end;
        in_epi = false;
    }
#endif
    // A unit of `num_kb` k-blocks starts (closes the previous unit's epilogue).
    SG_DEVICE void unit(u32 num_kb) {
#ifdef SG_TRACE
        close_epi();
        ++units;
        kblocks += num_kb;
#endif
    }
    // The unit's k-loop is done (its epilogue begins).
    SG_DEVICE void kloop_done() {
#ifdef SG_TRACE
        kloop_end = last = sm_clock();
        in_epi = true;
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
        close_epi();
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
