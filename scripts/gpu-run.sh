#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, what scripts/gpu-bundle.sh collected.
# Logs go to $OUT (the device tool's output folder) or ./gpu-logs.
#   bash .gpu/gpu-run.sh tests     the GPU suite, twice (the second run must hit the JIT cache)
#   bash .gpu/gpu-run.sh memcheck  compute-sanitizer memcheck + racecheck on the smaller cases
#   bash .gpu/gpu-run.sh bench     GPU benchmarks (bench_fp8_gemm)
#   bash .gpu/gpu-run.sh report    scalegemm-verify report --out $OUT/report
#   bash .gpu/gpu-run.sh all       all of the above
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
        for filter in proptest configuration "ldd=" "K=" errors; do
            compute-sanitizer --tool "$tool" --error-exitcode 9 "$BIN/gpu_fp8_gemm" --test-threads 1 "$filter" \
                > "$OUT/$tool-${filter//[^a-z]/_}.log" 2>&1
            echo "$tool '$filter': rc=$? $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test result" "$OUT/$tool-${filter//[^a-z]/_}.log" | tr '\n' ' ')"
        done
    done
}

run_bench() {
    if [ -x "$BIN/bench_fp8_gemm" ]; then
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

case "${1:-all}" in
    tests) run_tests ;;
    memcheck) run_memcheck ;;
    bench) run_bench ;;
    report) run_report ;;
    all) run_tests; run_bench; run_memcheck; run_report ;;
    *) echo "usage: gpu-run.sh [tests|memcheck|bench|report|all]"; exit 2 ;;
esac
