#!/usr/bin/env bash
# The main job on the embedded defaults (CPU, tiny pi0, ManiSkill3): expert demonstrations into a
# Zarr store, STARE stage annotation and report, supervised fine-tuning with StaKe's auxiliary
# heads, and evaluation on held-out seeds with conditional stage success.
#
#   scripts/main_job.sh                      (make demo runs it after set-up)
#   TASK=StackCube-v1 NUM=100 STEPS=2000 EPISODES=100 RUN=runs/stack scripts/main_job.sh
#
# Re-running skips finished steps: demos already in the store count, a finished SFT run is kept
# (an interrupted one resumes from its last checkpoint).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${STARE_VENV:-$root/.venv}/bin"
task="${TASK:-PushCube-v1}"
num="${NUM:-100}"
steps="${STEPS:-2000}"
episodes="${EPISODES:-100}"
run="${RUN:-runs/$task}"
data="$run/demos.zarr"

# episodes already in the store, and the next seed after the largest one they used
read -r have next_seed < <("$bin/python" - "$data" <<'PY'
import sys
from stare_robot.data.store import EpisodeStore, StoreError
try:
    seeds = [int(ep.attrs["seed"]) for ep in EpisodeStore.open(sys.argv[1])]
except StoreError:
    seeds = []
print(len(seeds), max(seeds, default=-1) + 1)
PY
)
echo "== 1/4 demonstrations: $num x $task -> $data ($have already there)"
if [ "$have" -lt "$num" ]; then
  "$bin/stare-robot" demos --task "$task" --num "$((num - have))" --seed "$next_seed" --out "$data"
fi
echo "== 2/4 STARE stages"
"$bin/stare-robot" stages annotate "$data"
"$bin/stare-robot" stages show "$data" --episodes 0 1 --out "$run/stages.png"
echo "== 3/4 supervised fine-tuning ($steps steps) -> $run/sft"
if [ ! -d "$run/sft/final" ]; then
  "$bin/stare-robot" train sft --data "$data" --out "$run/sft" --steps "$steps" --resume
fi
echo "== 4/4 evaluation on $episodes held-out seeds"
"$bin/stare-robot" eval --ckpt "$run/sft/final" --task "$task" --episodes "$episodes" \
  --out "$run/eval" --name "SFT (+StaKe)"
echo "report: $run/eval/results.md  (plot: $run/eval/results.png, stages: $run/stages.png)"
