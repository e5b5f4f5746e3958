"""Model sizes compared at equal training time: which network learns most in the hours we have?

    python -m diffir.training.sizes --task sr --minutes 15          # preset against "medium"
    python -m diffir.training.sizes --task all --minutes 15 --sizes preset medium large

Each size trains stage 1 from scratch (``runs/sizes/<task>-<size>``, resumable) for the same
training time, two runs side by side with one thread each (as a campaign runs), validating every
``--minutes``/5 on the 256 px validation set. Whatever else loads the machine slows the runs
unevenly, so the sizes' speed is also measured quietly afterwards (alternating, one thread, fixed
batches) and the curves are drawn against *quiet* training minutes = steps × quiet seconds per step.
The table (scores, steps, parameters, seconds per step) is printed and saved to
``runs/sizes/<task>.json`` with a plot; the campaign presets are chosen from it.
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
    # each entry replaces preset model fields; "preset" is the preset itself (config.PRESETS: the
    # "small" sizes since 2026-11-28), "medium" the preset before, which the shipped models have
    "sr": {
        "medium": dict(dim=32, num_blocks=(2, 2, 2, 2), num_refinement_blocks=1),
        "large": dict(dim=48, num_blocks=(2, 2, 2, 2), num_refinement_blocks=2),
    },
    "deblur": {
        "medium": dict(dim=32, num_blocks=(1, 2, 2, 2), num_refinement_blocks=1),
        "large": dict(dim=48, num_blocks=(2, 2, 2, 4), num_refinement_blocks=2),
    },
    "inpaint": {
        "medium": dict(dim=32, num_blocks=(1, 1, 2, 4)),
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


def quiet_speed(
    task: str, sizes: list[str], seconds: float = 20, rounds: int = 2, overrides: list[str] = ()
) -> dict[str, float]:
    """Seconds per stage-1 training step of each size on fixed batches, one thread, sizes alternating."""
    import time

    import torch

    from ..nets.model import build_model
    from .config import TrainConfig, parse_sets
    from .objective import Objective

    torch.set_num_threads(1)
    steppers = {}
    for size in sizes:
        d = size_config(task, size)
        d.update(parse_sets(overrides))
        cfg = TrainConfig(**d)
        model = build_model(cfg.model_config()).to(memory_format=torch.channels_last).train()
        objective = Objective(model, None, "s1", cfg.hole_weight, cfg.fft_weight)
        scale = cfg.model.get("scale", 4) if task == "sr" else 1
        lq = torch.rand(cfg.batch, 4 if task == "inpaint" else 3, cfg.patch, cfg.patch)
        if task == "inpaint":
            lq[:, 3] = (lq[:, 3] > 0.7).float()
        gt = torch.rand(cfg.batch, 3, cfg.patch * scale, cfg.patch * scale)
        opt = torch.optim.Adam(model.parameters(), 1e-4)

        def step(objective=objective, opt=opt, lq=lq, gt=gt) -> None:
            loss, _ = objective(lq, gt)
            opt.zero_grad()
            loss.backward()
            opt.step()

        step()
        steppers[size] = step
    times: dict[str, list[float]] = {s: [] for s in sizes}
    for _ in range(rounds):
        for size, step in steppers.items():
            t0, n = time.perf_counter(), 0
            while time.perf_counter() - t0 < seconds / rounds:
                step()
                n += 1
            times[size].append((time.perf_counter() - t0) / n)
    return {s: min(v) for s, v in times.items()}


def summarise(task: str, sizes: list[str], root: Path, minutes: float) -> list[dict[str, Any]]:
    """Per size: validation score at each fifth of the training time, steps done, parameters."""
    from ..checkpoints import load_network

    rows = []
    for size in sizes:
        run = root / f"{task}-{size}"
        log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()] if run.is_dir() else []
        vals = [(r["seconds"] / 60, r["val_psnr"]) for r in log if "val_psnr" in r]
        step_curve = [(r["step"], r["val_psnr"]) for r in log if "val_psnr" in r]
        steps = max((r["step"] for r in log), default=0)
        params = sum(p.numel() for p in load_network(run / "best").parameters()) if (run / "best").is_dir() else 0
        rows.append({
            "task": task, "size": size, "model": size_config(task, size)["model"], "params": params,
            "curve": vals, "step_curve": step_curve, "final": vals[-1][1] if vals else None,
            "steps": steps, "s_per_step": 60 * minutes / steps if steps else None,
        })  # fmt: skip
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        if r["quiet_curve"]:
            x, y = zip(*r["quiet_curve"])
            ax.plot(x, y, marker="o", label=f"{r['size']} ({r['params'] / 1e6:.2f} M params, {r['steps']} steps)")
    ax.set_xlabel("training minutes on a quiet core (steps × quiet s/step)")
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
    p.add_argument("--sizes", nargs="+", default=["preset", "medium"], choices=["preset", "medium", "large"])
    p.add_argument("--root", type=Path, default=Path("runs/sizes"))
    p.add_argument("--parallel", type=int, default=2, help="runs side by side (one thread each)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override a field for every size")
    p.add_argument("--speed-seconds", type=float, default=20, help="quiet speed measurement per size")
    p.add_argument("--table-only", action="store_true", help="no training: measure speed and table the runs there are")
    args = p.parse_args(argv)
    tasks = list(PRESETS) if args.task == "all" else [args.task]
    jobs = [(t, s) for s in args.sizes for t in tasks]  # side by side: different tasks, so different banks
    args.root.mkdir(parents=True, exist_ok=True)
    while jobs and not args.table_only:
        batch, jobs = jobs[: args.parallel], jobs[args.parallel :]
        procs = []
        for t, s in batch:
            log = (args.root / f"{t}-{s}.out").open("a")
            procs.append(subprocess.Popen(_command(t, s, args.minutes, args.root, args.set), stdout=log, stderr=log))
        if any(proc.wait() for proc in procs):
            raise SystemExit(f"a run failed: see {args.root}/*.out")
    for t in tasks:
        rows = summarise(t, args.sizes, args.root, args.minutes)
        quiet = quiet_speed(t, args.sizes, args.speed_seconds, overrides=args.set)
        for r in rows:
            r["quiet_s_per_step"] = quiet[r["size"]]
            r["quiet_curve"] = [(step * quiet[r["size"]] / 60, y) for step, y in r.pop("step_curve")]
        (args.root / f"{t}.json").write_text(json.dumps(rows, indent=1) + "\n")
        plot(rows, args.root / f"{t}.png")
        for r in rows:
            print(f"{t:<8} {r['size']:<7} {r['params'] / 1e6:5.2f} M params  {r['steps']:>5} steps  "
                  f"{r['quiet_s_per_step']:.2f} s/step quiet  final {r['final'] or float('nan'):.3f} dB  curve "
                  + " ".join(f"{x:.1f}min:{y:.2f}" for x, y in r["quiet_curve"]), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
