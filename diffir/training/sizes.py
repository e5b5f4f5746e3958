"""Model sizes compared at equal training time: which network learns most in the hours we have?

    python -m diffir.training.sizes --task sr --minutes 15          # preset against "small"
    python -m diffir.training.sizes --task all --minutes 15 --sizes preset small large

Each size trains stage 1 from scratch (``runs/sizes/<task>-<size>``, resumable) for the same
training time, two runs side by side with one thread each (as a campaign runs), validating every
``--minutes``/5 on the 256 px validation set. The table (score at each fifth of the time, steps,
parameters, seconds per step) is printed and saved to ``runs/sizes/<task>.json`` with a plot; the
preset for the campaigns is chosen from it (``config.PRESETS``, the note says why).
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from .config import PRESETS

SIZES: dict[str, dict[str, dict[str, Any]]] = {
    # each entry replaces preset model fields; "preset" is the preset itself
    "sr": {
        "small": dict(dim=24, num_blocks=(1, 1, 2, 2), num_refinement_blocks=1),
        "large": dict(dim=48, num_blocks=(2, 2, 2, 2), num_refinement_blocks=2),
    },
    "deblur": {
        "small": dict(dim=24, num_blocks=(1, 1, 2, 2), num_refinement_blocks=0),
        "large": dict(dim=48, num_blocks=(2, 2, 2, 4), num_refinement_blocks=2),
    },
    "inpaint": {
        "small": dict(dim=24, num_blocks=(1, 1, 1, 2)),
        "large": dict(dim=48, num_blocks=(1, 1, 2, 6)),
    },
}  # fmt: skip


def size_config(task: str, size: str) -> dict[str, Any]:
    """The preset's TrainConfig fields with the size's model fields swapped in."""
    d = {"task": task, "stage": "s1", **copy.deepcopy(PRESETS[task])}
    if size != "preset":
        d["model"].update(SIZES[task][size])
    return d


def _command(task: str, size: str, minutes: float, root: Path, extra: list[str]) -> list[str]:
    cfg = size_config(task, size)
    sets = [f"model={json.dumps(cfg['model'])}", f"val_minutes={minutes / 5}", "ckpt_minutes=2", *extra]
    cmd = [sys.executable, "-m", "diffir.train", "--run-dir", str(root / f"{task}-{size}"), "--task", task,
           "--stage", "s1", "--minutes", str(minutes)]  # fmt: skip
    for s in sets:
        cmd += ["--set", s]
    return cmd


def summarise(task: str, sizes: list[str], root: Path, minutes: float) -> list[dict[str, Any]]:
    """Per size: validation score at each fifth of the training time, steps done, parameters."""
    from ..checkpoints import load_network

    rows = []
    for size in sizes:
        run = root / f"{task}-{size}"
        log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()] if run.is_dir() else []
        vals = [(r["seconds"] / 60, r["val_psnr"]) for r in log if "val_psnr" in r]
        steps = max((r["step"] for r in log), default=0)
        params = sum(p.numel() for p in load_network(run / "best").parameters()) if (run / "best").is_dir() else 0
        rows.append({
            "task": task, "size": size, "model": size_config(task, size)["model"], "params": params,
            "curve": vals, "final": vals[-1][1] if vals else None,
            "steps": steps, "s_per_step": 60 * minutes / steps if steps else None,
        })  # fmt: skip
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        if r["curve"]:
            x, y = zip(*r["curve"])
            ax.plot(x, y, marker="o", label=f"{r['size']} ({r['params'] / 1e6:.2f} M params, {r['steps']} steps)")
    ax.set_xlabel("training minutes (1 thread)")
    ax.set_ylabel("validation score (dB, stage 1)")
    ax.set_title(f"{rows[0]['task']}: model sizes at equal training time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m diffir.training.sizes", description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True, choices=[*PRESETS, "all"])
    p.add_argument("--minutes", type=float, default=15, help="training minutes per size")
    p.add_argument("--sizes", nargs="+", default=["preset", "small"], choices=["preset", "small", "large"])
    p.add_argument("--root", type=Path, default=Path("runs/sizes"))
    p.add_argument("--parallel", type=int, default=2, help="runs side by side (one thread each)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override a field for every size")
    args = p.parse_args(argv)
    tasks = list(PRESETS) if args.task == "all" else [args.task]
    jobs = [(t, s) for s in args.sizes for t in tasks]  # side by side: different tasks, so different banks
    args.root.mkdir(parents=True, exist_ok=True)
    while jobs:
        batch, jobs = jobs[: args.parallel], jobs[args.parallel :]
        procs = []
        for t, s in batch:
            log = (args.root / f"{t}-{s}.out").open("a")
            procs.append(subprocess.Popen(_command(t, s, args.minutes, args.root, args.set), stdout=log, stderr=log))
        if any(proc.wait() for proc in procs):
            raise SystemExit(f"a run failed: see {args.root}/*.out")
    for t in tasks:
        rows = summarise(t, args.sizes, args.root, args.minutes)
        (args.root / f"{t}.json").write_text(json.dumps(rows, indent=1) + "\n")
        plot(rows, args.root / f"{t}.png")
        for r in rows:
            print(f"{t:<8} {r['size']:<7} {r['params'] / 1e6:5.2f} M params  {r['steps']:>5} steps  "
                  f"final {r['final'] or float('nan'):.3f} dB  curve "
                  + " ".join(f"{y:.2f}" for _, y in r["curve"]), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
