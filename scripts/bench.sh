#!/usr/bin/env bash
# The benchmarks in bench/, one line each, run with the venv's python. Results are written
# under bench/results/ (git-ignored). Keep them short: the machine is shared.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p bench/results

"$PY" bench/onnx_vs_torch.py    # stepwise ONNX vs PyTorch eager: ms/frame and peak memory
"$PY" bench/sop_overhead.py     # exact SOP counting vs a plain ref-float run: overhead per frame
"$PY" bench/lava_vs_ref_fixed.py # ref-fixed vs lava-nc (fast and stock models): ms/step, bit-exact
"$PY" bench/export_memory.py    # trace / ONNX / NIR export of resnet34-cat @640: wall time and peak RSS (budgets)
"$PY" bench/lava_scale.py --check # Lava export at paper sizes (time, RSS, artifact) + full-size bit-exact check
"$PY" bench/distributed.py      # torchrun, 1 vs 2 processes: energy sweep samples/s, training steps/s
"$PY" bench/onnx_fixed.py      # float ONNX vs fixed (Loihi-exact) ONNX vs ref-fixed: ms per inference
"$PY" bench/fit_scale.py       # emsdeploy fit at paper sizes, with traffic: wall time and peak RSS (limits 60 s, 2 GB)

echo "== results in bench/results/ =="
