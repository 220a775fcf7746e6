# Source this file: installs NVRTC, cuobjdump and nvdisasm from PyPI wheels (no GPU, no
# CUDA toolkit needed) into ${SCALEGEMM_WHEELS_DIR:-.pip-cache/cuda} and puts them on
# LD_LIBRARY_PATH / PATH, so the offline compile gate (kernels/tests/compile_gate.rs) runs.
# nvidia-cuda-nvrtc 13.0.88 is the NVRTC of the H200's CUDA 13.0 toolkit.
_sg_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_sg_dir="${SCALEGEMM_WHEELS_DIR:-$_sg_root/.pip-cache/cuda}"
if [ ! -e "$_sg_dir/nvidia/cu13/lib/libnvrtc.so.13" ] || [ ! -x "$_sg_dir/nvidia/cu13/bin/cuobjdump" ]; then
    python3 -m pip install --quiet --disable-pip-version-check --target "$_sg_dir" \
        "nvidia-cuda-nvrtc==13.0.88" "nvidia-cuda-cuobjdump" "nvidia-cuda-nvdisasm" \
        || echo "cuda-wheels.sh: pip install failed; the compile gate will show as ignored" >&2
fi
if [ -e "$_sg_dir/nvidia/cu13/lib/libnvrtc.so.13" ]; then
    export LD_LIBRARY_PATH="$_sg_dir/nvidia/cu13/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export PATH="$_sg_dir/nvidia/cu13/bin:$PATH"
fi
unset _sg_root _sg_dir
