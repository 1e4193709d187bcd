#!/usr/bin/env bash
# `make demo`: the main job on the shipped checkpoint, end to end, in a few minutes on 2 cores.
set -euo pipefail
OUT=${OUT:-demo-out}
CKPT=${CKPT:-models/checkpoints/emsyolo-tiny-synth.pt}
if [ ! -f "$CKPT" ]; then echo "demo: checkpoint $CKPT not found" >&2; exit 2; fi
rm -rf "$OUT"
mkdir -p "$OUT"

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s== %s ==%s\n' "$bold" "$*" "$plain"; }

step "1/7  The model: $CKPT traced into the spiking graph IR"
emsdeploy inspect "$CKPT" > "$OUT/inspect.txt"
grep -A3 '^totals' "$OUT/inspect.txt"
echo "(the per-layer table is in $OUT/inspect.txt)"
emsdeploy trace "$CKPT" -o "$OUT/model.emsir"

step "2/7  Export to stepwise ONNX graphs (one time step, state in and out): float, and Loihi-exact integer"
emsdeploy export "$CKPT" --target onnx --spikes -o "$OUT/model.onnx"
emsdeploy export "$CKPT" --target onnx --arithmetic fixed -o "$OUT/fixed.onnx"

step "3/7  Export to Lava: Loihi fixed point, lava-nc processes, mapping report"
emsdeploy export "$CKPT" --target lava -o "$OUT/lava"

step "4/7  Verify: PyTorch -> ref-float -> ONNX, ref-fixed -> Lava (lava-nc CPU simulator) and the integer ONNX"
emsdeploy verify "$CKPT" --targets ref,onnx,lava,onnx-fixed --onnx "$OUT/model.onnx" --lava "$OUT/lava" \
    --save-json "$OUT/verify.json"

step "5/7  Energy: exact synaptic operations, beside the papers' formula and the same-shape ANN"
emsdeploy energy "$CKPT" --plot "$OUT/energy.png" --save-json "$OUT/energy.json"

step "6/7  Detect objects in a synthetic validation image with the ONNX model"
emsdeploy data shapes --split val --limit 4 -o "$OUT/images" > /dev/null
emsdeploy run "$OUT/model.onnx" --input "$OUT/images/000002.png" -o "$OUT/detections.png"

step "7/7  Export to NIR (interop; ops NIR 1.0 cannot express are cut to the host and listed)"
emsdeploy export "$CKPT" --target nir -o "$OUT/model.nir" | tail -n 4

step "Done. Files in $OUT/"
cat <<SUMMARY
  inspect.txt          per-layer table of the IR (op, shapes, kind, parameters, fan-in, chip/custom/host)
  model.emsir          the IR itself (HDF5); 'emsdeploy inspect $OUT/model.emsir' reads it back
  model.onnx           stepwise ONNX graph; 'emsdeploy run $OUT/model.onnx --input IMAGE' runs it
  fixed.onnx           the same network in Loihi's integer arithmetic, bit-exact with Lava (runs the same way)
  lava/                Lava network (network.lava.h5), quantized IR, mapping.txt, quantization.txt
  verify.json          the spike-equivalence report above, as JSON
  energy.json/.png     per-layer synaptic operations and energy, and the plot
  images/, detections.png   synthetic validation images and the detections drawn on one
  model.nir            NIR graph for other neuromorphic tools
SUMMARY
