#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, what scripts/gpu-bundle.sh collected.
# Logs go to $OUT (the device tool's output folder) or ./gpu-logs.
#   bash .gpu/gpu-run.sh tests     the GPU suite, twice (the second run must hit the JIT cache)
#   bash .gpu/gpu-run.sh memcheck  compute-sanitizer memcheck + racecheck on the smaller cases
#   bash .gpu/gpu-run.sh bench     GPU benchmarks (bench_fp8_gemm)
#   bash .gpu/gpu-run.sh report    scalegemm-verify report --out $OUT/report
#   bash .gpu/gpu-run.sh plant     planted kernel bugs: each must make the suite fail
#   bash .gpu/gpu-run.sh all       all of the above but plant
set -uo pipefail
OUT="${OUT:-gpu-logs}"
mkdir -p "$OUT"
BIN="$(cd "$(dirname "$0")" && pwd)/bin"
export SCALEGEMM_CACHE_DIR="${SCALEGEMM_CACHE_DIR:-/tmp/scalegemm-jit-cache}"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > "$OUT/gpu.txt" 2>&1

run_tests() {
    rm -rf "$SCALEGEMM_CACHE_DIR"
    echo "== GPU tests, first process (cold JIT cache)"
    /usr/bin/time -v -o "$OUT/tests-1.time" env SCALEGEMM_JIT_DEBUG=1 "$BIN/gpu_fp8_gemm" --test-threads 4 \
        > "$OUT/tests-1.log" 2>&1
    echo "rc=$?"; tail -n 3 "$OUT/tests-1.log"
    echo "== GPU tests, second process (warm JIT cache)"
    env SCALEGEMM_JIT_DEBUG=1 "$BIN/gpu_fp8_gemm" --test-threads 4 > "$OUT/tests-2.log" 2>&1
    echo "rc=$?"; tail -n 3 "$OUT/tests-2.log"
    echo "compiles: first $(grep -c 'jit\] compiled' "$OUT/tests-1.log"), second $(grep -c 'jit\] compiled' "$OUT/tests-2.log") (cache hits $(grep -c 'cache hit' "$OUT/tests-2.log"))"
}

run_memcheck() {
    for tool in memcheck racecheck; do
        echo "== compute-sanitizer --tool $tool"
        for filter in "proptest #1" "every kernel configuration on one shape" "TMA store = direct stores: 200x328x400" "1d1d f32+C 200x300x200" errors; do
            compute-sanitizer --tool "$tool" --error-exitcode 9 "$BIN/gpu_fp8_gemm" --test-threads 1 "$filter" \
                > "$OUT/$tool-${filter//[^a-z]/_}.log" 2>&1
            echo "$tool '$filter': rc=$? $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" "$OUT/$tool-${filter//[^a-z]/_}.log" | tr '\n' ' ')"
        done
    done
}

run_bench() {
    if [ -x "$BIN/bench_fp8_gemm" ]; then
        echo "== bench_fp8_gemm --check (cuBLASLt's scale layouts vs the reference)"
        "$BIN/bench_fp8_gemm" --check > "$OUT/bench-check.md" 2>&1
        echo "rc=$?"; tail -n 20 "$OUT/bench-check.md"
        echo "== bench_fp8_gemm"
        OUT="$OUT" "$BIN/bench_fp8_gemm" > "$OUT/bench.md" 2>&1
        echo "rc=$?"; cat "$OUT/bench.md"
    fi
}

run_report() {
    if [ -x "$BIN/scalegemm-verify" ]; then
        echo "== scalegemm-verify report"
        "$BIN/scalegemm-verify" report --out "$OUT/report" > "$OUT/report.log" 2>&1
        echo "rc=$?"; tail -n 40 "$OUT/report.log"
    fi
    local data; data="$(dirname "$0")/data/minilm-l6-linear.safetensors"
    if [ -x "$BIN/scalegemm-verify" ] && [ -e "$data" ]; then
        echo "== scalegemm-verify report --weights (real MiniLM weights)"
        "$BIN/scalegemm-verify" report --weights "$data" --out "$OUT/report-weights" > "$OUT/report-weights.log" 2>&1
        echo "rc=$?"; tail -n 12 "$OUT/report-weights.log"
    fi
}

# Planted kernel bugs (issue 6): each is compiled into every kernel through
# SCALEGEMM_KERNEL_DEFINES and must make the GPU suite fail. The filter selects one trial
# that runs 10 configurations (both epilogues, CTA pairs, pipelined) on 200x328x400;
# PLANT_FILTER overrides it.
PLANTS="PLANT_SCALE_ROW PLANT_DROP_LAST_KBLOCK PLANT_SKIP_LAST_N_TILE PLANT_SB_NEIGHBOUR PLANT_B_KBLOCK_OFF_BY_ONE PLANT_WRONG_SWIZZLE PLANT_STORE_NO_SWIZZLE PLANT_SB_BOUNDARY"
run_plant() {
    local filter="${PLANT_FILTER:-TMA store = direct stores: 200x328x400}"
    echo "== planted bugs (filter: $filter)"
    for d in $PLANTS; do
        SCALEGEMM_KERNEL_DEFINES="$d" "$BIN/gpu_fp8_gemm" --test-threads 4 "$filter" > "$OUT/plant-$d.log" 2>&1
        local rc=$?
        echo "$d: rc=$rc $(grep -E '^test result' "$OUT/plant-$d.log") $(grep -m1 -E '^(D\[|padding|two launches|.*bound|.*differ)' "$OUT/plant-$d.log" | cut -c1-120)"
    done
}

case "${1:-all}" in
    tests) run_tests ;;
    memcheck) run_memcheck ;;
    bench) run_bench ;;
    report) run_report ;;
    plant) run_plant ;;
    all) run_tests; run_bench; run_memcheck; run_report ;;
    *) echo "usage: gpu-run.sh [tests|memcheck|bench|report|plant|all]"; exit 2 ;;
esac
