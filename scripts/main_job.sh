#!/usr/bin/env bash
# The main job on the embedded defaults (CPU, ManiSkill3): expert demonstrations into a Zarr
# store, STARE stage annotation, and a stage report with a timeline picture.
#
#   scripts/main_job.sh [TASK] [NUM] [OUT]       (make demo runs it after set-up)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${STARE_VENV:-$root/.venv}/bin"
task="${1:-PushCube-v1}"
num="${2:-10}"
out="${3:-data/$task.zarr}"

echo "== 1/3 demonstrations: $num x $task -> $out"
"$bin/stare-robot" demos --task "$task" --num "$num" --seed 0 --out "$out"
echo "== 2/3 stage annotation"
"$bin/stare-robot" stages annotate "$out"
echo "== 3/3 stage report"
"$bin/stare-robot" stages show "$out" --episodes 0 1
"$bin/stare-robot" store info "$out"
