#!/usr/bin/env python3
"""Summarises the ring-wait probe of the FP8 GEMM (kernels/cuda/gemm/trace.cuh).

Usage, on the GPU machine:
    SCALEGEMM_KERNEL_DEFINES=SG_TRACE bench_fp8_gemm --only-ours 4096,4096,7168 > trace.txt
    python3 scripts/trace-summary.py trace.txt

The bench prints, after each shape's plain timing, every loaded kernel's "SGT kernel <label>"
line and one "SGT role=... cta=... ..." line per role and CTA that ran since the previous
dump (`Device::print_traces`); the last nonempty dump of each kernel is kept. Per role the mean over CTAs is printed: the SM clock (cycles over
global-timer ns), the share of cycles spent waiting on the ring (a unit's first k-block,
the rest) and, for the math warpgroups, in the epilogue (from a unit's k-loop end to the next
unit, split into the parts the kernel marks), and cycles per k-block. All cycles are the
SM's (%clock); a wait of the math warpgroups overlaps the tensor cores' work on the block
before it, so it is an upper bound on their idle time, not the idle time.
"""
import statistics
import sys

ROLES = {0: "math0", 1: "math1", 2: "tma", 3: "sfb warp", 4: "b thread"}


def parse(path):
    kernels, order, current, fresh = {}, [], None, False
    for line in open(path, errors="replace"):
        if line.startswith("SGT kernel "):
            current = line[len("SGT kernel "):].strip()
            if current not in kernels:
                order.append(current)
                kernels[current] = {}
            fresh = True
        elif line.startswith("SGT role=") and current is not None:
            if fresh:  # a nonempty dump replaces the kernel's earlier one
                kernels[current] = {}
                fresh = False
            fields = {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
            kernels[current].setdefault(fields["role"], []).append(fields)
    return order, kernels


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: trace-summary.py TRACE_OUTPUT")
    order, kernels = parse(sys.argv[1])
    for label in order:
        print(f"== {label}")
        for role, rows in sorted(kernels[label].items()):
            mean = lambda key: statistics.mean(r[key] for r in rows)
            cycles, units = mean("cycles"), max(mean("units"), 1e-9)
            clocks = [r["cycles"] / r["ns"] * 1e3 for r in rows if r["ns"]]
            mhz = statistics.mean(clocks) if clocks else float("nan")
            pct = lambda key: 100 * mean(key) / cycles
            print(
                f"{ROLES.get(role, role):9} CTAs {len(rows)}, units {mean('units'):.1f}, "
                f"k-blocks {mean('kblocks'):.0f}, {cycles:.0f} cycles at {mhz:.0f} MHz: "
                f"waits {pct('wait_first'):.1f} % (first k-block) + {pct('wait_rest'):.1f} %, "
                f"epilogue {pct('epi'):.1f} % ({mean('epi') / units:.0f} per unit: "
                f"{mean('part0') / units:.0f} / {mean('part1') / units:.0f} / "
                f"{mean('part2') / units:.0f}), {cycles / max(mean('kblocks'), 1):.0f} cycles "
                f"per k-block"
            )


if __name__ == "__main__":
    main()
