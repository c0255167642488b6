#!/usr/bin/env bash
# One-shot check on a machine with an NVIDIA GPU (torch with CUDA, cmake, ninja, pybind11 and
# scikit-build-core installed; no internet needed): build innout with its CUDA backend, run the CUDA
# tests, benchmark the kernels against the reference, print a short table last.
#   bash scripts/gpu_check.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu_check_out}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
arch=$(python3 -c "import torch; m, n = torch.cuda.get_device_capability(); print(f'{m}{n}')")

echo "== build (INNOUT_CUDA=ON, sm_${arch})"
INNOUT_CUDA=ON INNOUT_CUDA_ARCHITECTURES="${arch}" \
  python3 -m pip install --no-build-isolation --no-deps -e . 2>&1 | tail -n 3
python3 -m innout.cli info | tee "$out/info.txt"

echo "== CUDA tests"
python3 -m pytest tests -q -m cuda -p no:cacheprovider 2>&1 | tee "$out/tests.txt" | tail -n 5

echo "== kernel benchmarks"
python3 -m innout.cli bench kernels --device cuda --workload tiny --json "$out/bench_tiny.json" > "$out/bench_tiny.txt"
python3 -m innout.cli bench kernels --device cuda --workload eg3d --json "$out/bench_eg3d.json" | tee "$out/bench_eg3d.txt"
python3 -m innout.cli bench generator --device cuda --json "$out/bench_generator.json" | tee "$out/bench_generator.txt"
echo "== summary"
tail -n 5 "$out/tests.txt" | grep -E "passed|failed" || true
cat "$out/bench_eg3d.txt" "$out/bench_generator.txt"
