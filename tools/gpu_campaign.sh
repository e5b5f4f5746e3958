#!/usr/bin/env bash
# One task's training campaign inside one command on a lent GPU machine (no internet, no pip):
#
#   tools/gpu_campaign.sh TASK MINUTES        # e.g. tools/gpu_campaign.sh deblur 8
#
# Needs, in the checkout it runs in: the data pack (python -m diffir.training.pack --out pack) and
# the task's shipped weights (weights/TASK, float16). Writes under $OUT (at most 8 files, each under
# 16 MiB): weights/TASK/{model.safetensors,config.json,README.md,training.json}, and the logs.
# Tested on CPU with DEVICE=cpu and a tiny model (EXTRA='{"model": {...}}'): tests/test_gpu_script.py.
set -euo pipefail
cd "$(dirname "$0")/.."
TASK=${1:?task: sr, deblur or inpaint}
MINUTES=${2:-8}
OUT=${OUT:-out}
DEVICE=${DEVICE:-cuda}
WORK=${WORK:-$(mktemp -d)}
export DIFFIR_CACHE=${DIFFIR_CACHE:-pack}
mkdir -p "$OUT/weights"
# the shipped weights are the start point and the bar to beat: copy them where the result will go
if [ -d "weights/$TASK" ]; then
  mkdir -p "$OUT/weights/$TASK"
  cp "weights/$TASK"/README.md "weights/$TASK"/training.json "$OUT/weights/$TASK/" 2>/dev/null || true
  # float16 on the way (what comes back must stay under 16 MiB a file)
  python -c "import sys, torch, diffir; diffir.save_pretrained(diffir.load_network(sys.argv[1]), sys.argv[2], dtype=torch.float16)" \
    "weights/$TASK" "$OUT/weights/$TASK"
fi

# GPU recipe: large batches and patches, DataLoader workers on the CPU cores, bf16 autocast.
case "$TASK" in
  sr)      RECIPE='{"batch": 32, "patch": 64, "workers": 12, "lr": 4e-4}' ;;
  deblur)  RECIPE='{"batch": 16, "patch": 192, "workers": 12, "lr": 4e-4}' ;;
  inpaint) RECIPE='{"batch": 24, "patch": 192, "workers": 12, "lr": 4e-4, "image_scales": [0.5, 0.25]}' ;;
esac
if [ "$DEVICE" = cpu ]; then RECIPE=$(python -c "import json,sys; r=json.loads(sys.argv[1]); r.update(batch=2, patch=16, workers=2); print(json.dumps(r))" "$RECIPE"); fi
SETS=$(python - "$RECIPE" "${EXTRA:-{\}}" "$DEVICE" <<'PY'
import json, sys
recipe = {**json.loads(sys.argv[1]), **json.loads(sys.argv[2]), "device": sys.argv[3], "data": "online" if sys.argv[3] == "cpu" else "bank", "val_minutes": 2.0, "ckpt_minutes": 2.0}
print(" ".join(f"--set {k}={json.dumps(v, separators=(',', ':'))}" for k, v in recipe.items()))
PY
)
# shellcheck disable=SC2086
python -m diffir.campaign --task "$TASK" --minutes "$MINUTES" --runs "$WORK/runs" --weights "$OUT/weights" --long-side "${LONG_SIDE:-512}" $SETS 2>&1 | tee "$OUT/campaign_$TASK.log"
cp "$WORK/runs/$TASK/campaign.json" "$OUT/"
ls -la "$OUT" "$OUT/weights/$TASK"
