#!/usr/bin/env bash
# Issue 12's curriculum question, measured: does training on short blurs first help deblurring?
# Two stage-1 runs of the deblur preset from scratch, the same seed and the same number of steps:
#   short_first: the first half on 3-10 px trajectories, the second on the full 3-25 px range;
#   control:     all steps on 3-25 px.
# Both stop at half-time and resume, so both get the same learning-rate schedule; only the data differs.
# Both loops validate every 100 steps on the same 256 px validation set (the task's own seeded 3-25 px
# blurs, whatever the run trains on); at the end both best models are scored per blur length.
# Usage: tools/curriculum.sh [steps] [root]; the curves: grep val_psnr <root>/*/log.jsonl
set -euo pipefail
steps=${1:-600}
root=${2:-runs/curriculum}
half=$((steps / 2))
common=(--set val_every=100 --set threads=1)
python -m diffir.train --run-dir "$root/short_first" --task deblur --stage s1 --iters "$half" "${common[@]}" --set 'motion_length=[3,10]'
python -m diffir.train --run-dir "$root/short_first" --iters "$steps" "${common[@]}" --set 'motion_length=[3,25]'
python -m diffir.train --run-dir "$root/control" --task deblur --stage s1 --iters "$half" "${common[@]}"
python -m diffir.train --run-dir "$root/control" --iters "$steps" "${common[@]}"
python - "$root" <<'PY'
import json, sys
from pathlib import Path
import numpy as np
from diffir.checkpoints import load_network
from diffir.training.data import validation_images
from diffir.training.objective import validate
from diffir.tasks import get_task

root = Path(sys.argv[1])
task = get_task("deblur")
images = [im.astype(np.float32) / 255 for im in validation_images(None, 256).values()]
table = {}
for run in ("short_first", "control"):
    model = load_network(root / run / "best")
    table[run] = {f"length={n}": validate(model, [(*task.eval_pair(gt, i, f"length={n}"), gt) for i, gt in enumerate(images)])
                  for n in (5, 10, 15, 25)}
    print(run, {k: round(v, 3) for k, v in table[run].items()}, flush=True)
(root / "lengths.json").write_text(json.dumps(table, indent=1) + "\n")
PY
