#!/usr/bin/env bash
# Builds, here (no GPU needed), the release binaries the H200 runs, and collects them with
# scripts/gpu-run.sh into the git-ignored .gpu/ (must stay under the 64 MiB carry limit):
#   .gpu/bin/gpu_fp8_gemm      GPU test suite (verify/tests/gpu_fp8_gemm.rs)
#   .gpu/bin/scalegemm-verify  the report CLI (when it exists)
#   .gpu/bin/bench_*           GPU benchmark binaries (benches/src/bin)
# `gpu-bundle.sh --with-data` also copies ../shared/data/minilm-l6-linear.safetensors (30 MB)
# for `report --weights` there; carry it only when a run needs it.
# Then, with the device tool: run(command="bash .gpu/gpu-run.sh all", carry=[".gpu"]).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu
mkdir -p .gpu/bin
cargo test --release --no-run --message-format=json -p scalegemm-verify --test gpu_fp8_gemm \
    | python3 -c 'import sys, json
for line in sys.stdin:
    try: m = json.loads(line)
    except ValueError: continue
    if m.get("executable") and m.get("profile", {}).get("test"): print(m["target"]["name"], m["executable"])' \
    | while read -r name exe; do cp "$exe" ".gpu/bin/$name"; done
if cargo build --release -q -p scalegemm-verify --bin scalegemm-verify 2>/dev/null; then
    cp "${CARGO_TARGET_DIR:-target}/release/scalegemm-verify" .gpu/bin/
fi
if [ -d benches/src/bin ]; then
    cargo build --release -q -p scalegemm-bench --bins
    for f in benches/src/bin/*.rs; do cp "${CARGO_TARGET_DIR:-target}/release/$(basename "$f" .rs)" .gpu/bin/; done
fi
strip .gpu/bin/*
if [ "${1:-}" = "--with-data" ]; then
    mkdir -p .gpu/data
    cp "${SCALEGEMM_DATA_DIR:-../shared/data}/minilm-l6-linear.safetensors" .gpu/data/
fi
cp scripts/gpu-run.sh .gpu/
du -sh .gpu
ls -la .gpu/bin
