"""A time-boxed campaign for one task: stage 1, stage 2, validation, and export of the weights only
when they beat the shipped ones.

    python -m diffir.campaign --task sr --minutes 120

1. Stage 1 (``runs/<task>/s1``) gets ``s1_share`` of the time. A new campaign starts it from the
   shipped weights, at the shipped network's size unless ``model`` is given (every tensor whose name
   and shape match: all but CPEN_S1's first convolution), so no campaign starts from scratch;
   a later campaign extends the same run with a new schedule cycle (warm-up, then cosine over its
   own minutes: a warm restart, not the old cosine's tail).
2. Stage 2 (``runs/<task>/s2_<n>``, new each campaign) starts its DIRformer from stage 1's best
   and its CPEN_S2 and denoiser from the previous stage 2 (or the shipped model).
3. Validation on the 512 px validation photos (the registry's metric, and for SR both the bicubic
   and the real-world degradation): the candidate replaces ``weights/<task>/`` (float16, loaded
   as float32) only if it scores higher; the card's campaign table, the curve and ``training.json``
   (compute spent, in core-hours and GPU minutes, and the curve's points) are updated either way.

The same command resumes an interrupted campaign (``runs/<task>/campaign.json`` says where it was);
a campaign whose ``runs/`` folder is gone starts again from the shipped weights.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoints import CONFIG_NAME, WEIGHTS_DIR, config_from_json, load_network, save_pretrained
from ..files import write_atomic
from ..nets.model import DiffIRS1, DiffIRS2
from ..tasks import get_task
from .config import PRESETS, parse_sets, run_config
from .data import validation_images
from .evaluate import plot_curve, run_model, training_curve
from .loop import train

VARIANTS = {"sr": ("", "real")}
"""Evaluation variants per task (the registry's ``eval_pair``); the score is their mean."""


def validation_score(model: DiffIRS1 | DiffIRS2, long_side: int = 512, cache: Path | None = None) -> dict[str, float]:
    """The task's metric on the validation photos (S2, all steps, seeded), per variant and their mean."""
    task = get_task(model.config.task)
    images = [im.astype(np.float32) / 255 for im in validation_images(cache, long_side).values()]
    out: dict[str, float] = {}
    for variant in VARIANTS.get(task.name, ("",)):
        scores = []
        for i, gt in enumerate(images):
            lq, extra = task.eval_pair(gt, i, variant)
            pred = run_model(model, task.name, lq, gt, extra, "s2" if isinstance(model, DiffIRS2) else "s1", i)
            scores.append(task.score(pred, gt, extra)[task.metric])
        out[variant or "default"] = float(np.mean(scores))
    out["mean"] = float(np.mean(list(out.values())))
    return out


def _state(root: Path) -> dict[str, Any]:
    path = root / "campaign.json"
    return json.loads(path.read_text()) if path.is_file() else {"campaigns": []}


def _save_state(root: Path, state: dict[str, Any]) -> None:
    write_atomic(root / "campaign.json", (json.dumps(state, indent=1) + "\n").encode())


def _spent_minutes(run: Path) -> float:
    last = run / "last.pt"
    return (
        float(torch.load(last, map_location="cpu", weights_only=True).get("seconds", 0)) / 60 if last.is_file() else 0.0
    )


def compute_spent(root: Path, runs: str = "*/") -> dict[str, float]:
    """Core-hours (CPU runs) and GPU minutes of every run of a task (``runs``: which folders under
    ``root``; "" for ``root`` itself), from the runs' logs: their last step record."""
    core_h, gpu_min = 0.0, 0.0
    for log in root.glob(f"{runs}log.jsonl"):
        last: dict[str, Any] = {}
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            if "threads" in rec:
                last = rec
        if last:
            secs = float(last["seconds"]) * int(last.get("world", 1))
            if last.get("device", "cpu") == "cuda":
                gpu_min += secs / 60
            else:
                core_h += secs * int(last["threads"]) / 3600
    return {"core_hours": round(core_h, 4), "gpu_minutes": round(gpu_min, 2)}


def shipped_network(folder: Path) -> dict[str, Any]:
    """The shipped model's size: its ``DiffIRConfig`` fields other than task and stage (a new stage 1
    takes it, not the preset's, which may have changed since, so that every tensor carries over)."""
    fields = config_from_json(json.loads((folder / CONFIG_NAME).read_text()), str(folder)).to_dict()
    return {k: v for k, v in fields.items() if k not in ("task", "stage")}


def run_campaign(
    task: str,
    minutes: float,
    *,
    runs: Path = Path("runs"),
    weights: Path = WEIGHTS_DIR,
    overrides: dict[str, Any] | None = None,
    s1_share: float = 0.6,
    long_side: int = 512,
) -> dict[str, Any]:
    """Stage 1, stage 2, validation, export if better. Returns this campaign's record."""
    overrides = overrides or {}
    root = runs / task
    root.mkdir(parents=True, exist_ok=True)
    state = _state(root)
    current = state.get("current")
    if current is None:  # a new campaign: stage 1 gets more time, stage 2 is a new run
        spent = _spent_minutes(root / "s1")
        current = {"minutes": minutes, "s1_from": spent, "s1_target": spent + s1_share * minutes,
                   "s2": f"s2_{len(state['campaigns'])}", "started": time.time()}  # fmt: skip
        state["current"] = current
        _save_state(root, state)
    shipped = weights / task if (weights / task / "model.safetensors").is_file() else None

    s1 = root / "s1"
    init1 = str(shipped) if shipped else ""
    if shipped and "model" not in overrides and not (s1 / "config.json").is_file():
        overrides = {**overrides, "model": shipped_network(shipped)}
    s1_from = current.get("s1_from", current["s1_target"] - s1_share * current["minutes"])  # a new cycle
    cfg1 = run_config(
        s1, {**overrides, "minutes": current["s1_target"], "cycle_from": s1_from, "init": init1}, task, "s1"
    )
    train(cfg1, s1)
    overrides = {**overrides, "model": cfg1.model}  # stage 2 is the stage-1 network's size, whatever the preset

    s2 = root / current["s2"]
    previous = sorted(p for p in root.glob("s2_*/best") if p.parent.name != current["s2"])
    init2 = str(previous[-1]) if previous else init1
    s2_minutes = (1 - s1_share) * current["minutes"]
    cfg2 = run_config(s2, {**overrides, "minutes": s2_minutes, "teacher": str(s1 / "best"), "init": init2}, task, "s2")
    train(cfg2, s2)

    record = finish(task, root, s2 / "best", shipped, weights / task, long_side)
    record.update(minutes=current["minutes"], s2=current["s2"])
    state["campaigns"].append(record)
    state.pop("current")
    _save_state(root, state)
    return record


def finish(task: str, root: Path, candidate: Path, shipped: Path | None, out: Path, long_side: int) -> dict[str, Any]:
    """Validate the candidate against the shipped model; export it (float16) if it is better."""
    model = load_network(candidate)
    new = validation_score(model, long_side)
    old = validation_score(load_network(shipped), long_side) if shipped else {"mean": -np.inf}
    record: dict[str, Any] = {"candidate": new, "shipped": old, "replaced": new["mean"] > old["mean"],
                              "compute": compute_spent(root), "date": time.strftime("%Y-%m-%d %H:%M")}  # fmt: skip
    print(f"{task}: candidate {new['mean']:.3f} vs shipped {old['mean']:.3f}", flush=True)
    if record["replaced"]:
        save_pretrained(model, out, dtype=torch.float16, val_psnr=f"{new['mean']:.3f}")
        half = validation_score(load_network(out), long_side)
        record["float16_change_db"] = round(half["mean"] - new["mean"], 4)
        print(f"{task}: exported to {out} (float16 changes the score by {record['float16_change_db']:+.4f} dB)")
    update_card(task, root, out, record)
    return record


def _lineage(root: Path, record: dict[str, Any]) -> str:
    """When this ``runs/`` folder's first campaign ended: the name its curve keeps in ``training.json``."""
    done = _state(root)["campaigns"]
    return done[0]["date"] if done else record["date"]


def keep_curve(info: dict[str, Any], lineage: str, points: list[dict[str, float]]) -> None:
    """Store this lineage's validation curve in ``training.json``, which is in git, so the card's curve
    outlives ``runs/`` (lost once with a machine); x starts at the compute the model had before it."""
    if not points:  # nothing logged (yet): what is stored stays
        return
    curves = [c for c in info.get("curves", []) if c["lineage"] != lineage]
    before = info["before_campaigns"]["core_hours"]
    info["curves"] = [*curves, {"lineage": lineage, "before_core_hours": before, "points": points}]


def curve_points(info: dict[str, Any]) -> list[dict[str, float]]:
    """Every stored curve on one axis (core-hours of the model); runs named by lineage when there are several."""
    curves = info.get("curves", [])
    return [{**p, "hours": round(c["before_core_hours"] + p["hours"], 3),
             "run": p["run"] if len(curves) == 1 else f"{p['run']} ({c['lineage'][:10]})"}
            for c in curves for p in c["points"]]  # fmt: skip


def update_card(task: str, root: Path, out: Path, record: dict[str, Any]) -> None:
    """``training.json`` (every campaign and the compute total), the curve, and the card's table."""
    out.mkdir(parents=True, exist_ok=True)
    info_path = out / "training.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {"before_campaigns": {"core_hours": 1.0}}
    info.setdefault("campaigns", []).append(record)
    total = info["before_campaigns"]["core_hours"] + record["compute"]["core_hours"]
    info["total"] = {"core_hours": round(total, 4), "gpu_minutes": record["compute"]["gpu_minutes"]}
    runs = [root / "s1", *sorted(root.glob("s2_*"))]
    keep_curve(info, _lineage(root, record), training_curve([r for r in runs if (r / "log.jsonl").is_file()]))
    write_atomic(info_path, (json.dumps(info, indent=1) + "\n").encode())
    points = curve_points(info)
    if points:
        with contextlib.suppress(ImportError):  # a GPU machine has no matplotlib: drawn when the weights come home
            plot_curve(points, out / "curve.png", f"DiffIR {task}: validation score against training time",
                       xlabel="core-hours of training of this model (1 thread; earlier ones not on record)")  # fmt: skip
    rows = ["| date | candidate | shipped before | replaced | compute so far |", "|---|---|---|---|---|"]
    for c in info["campaigns"]:
        fmt = ", ".join(f"{k} {v:.2f}" for k, v in c["candidate"].items())
        old = ", ".join(f"{k} {v:.2f}" for k, v in c["shipped"].items())
        rows.append(f"| {c['date']} | {fmt} | {old} | {'yes' if c['replaced'] else 'no'} | "
                    f"{c['compute']['core_hours']:.1f} core-h, {c['compute']['gpu_minutes']:.0f} GPU min |")  # fmt: skip
    block = "\n".join(["<!-- campaigns:start -->", "## Campaigns", "",
                       f"Compute in total: **{info['total']['core_hours']:.1f} core-hours** of CPU (threads × wall-clock "
                       "seconds of training steps; on a shared machine the process gets less) and "
                       f"{info['total']['gpu_minutes']:.0f} GPU minutes. Validation: the task's metric on the 8 "
                       "validation photos at 512 px (dB; SR: bicubic and real-world inputs).", "", *rows,
                       "<!-- campaigns:end -->"])  # fmt: skip
    card = out / "README.md"
    text = card.read_text() if card.is_file() else f"# DiffIR {task}\n"
    if "<!-- campaigns:start -->" in text:
        head, rest = text.split("<!-- campaigns:start -->", 1)
        text = head + block + rest.split("<!-- campaigns:end -->", 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    write_atomic(card, text.encode())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m diffir.campaign", description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True, choices=list(PRESETS))
    p.add_argument("--minutes", type=float, required=True, help="wall-clock budget of the campaign")
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--weights", type=Path, default=WEIGHTS_DIR, help="where the shipped weights live")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=JSON",
        help="override a TrainConfig field (a continued run keeps its network)",
    )
    p.add_argument("--s1-share", type=float, default=0.6)
    p.add_argument("--long-side", type=int, default=512, help="validation photo size (px)")
    args = p.parse_args(argv)
    overrides = parse_sets(args.set)
    record = run_campaign(
        args.task,
        args.minutes,
        runs=args.runs,
        weights=args.weights,
        overrides=overrides,
        s1_share=args.s1_share,
        long_side=args.long_side,
    )
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
