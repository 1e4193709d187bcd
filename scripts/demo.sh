#!/usr/bin/env bash
# The main job on the shipped checkpoint. Grows as subsystems land.
set -euo pipefail
OUT=${OUT:-demo-out}
mkdir -p "$OUT"
FX=../shared/fixtures/official/res10ee_gen1_T5/checkpoint_stripped_fp16.pt
if [ -f "$FX" ]; then
    echo "== Import an official EMS-YOLO checkpoint (restricted unpickler) =="
    emsdeploy convert "$FX" -o "$OUT/res10ee_gen1.pt"
fi
echo "== done: files in $OUT/ =="
