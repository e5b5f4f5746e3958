"""``python -m diffir.bench --train``: training throughput (patches per hour), old recipe against new,
per preset, measured in one run on this machine.

* old: one process with two threads, pairs degraded inside the loop (the recipe of the first weights);
* new: two one-thread processes side by side (two runs of a campaign, or two DDP workers), pairs read
  from the patch bank while its writer refills it at low priority.

Each recipe trains the preset's stage 1 for the same wall-clock time; rounds alternate old and new so
that a busy machine slows both alike. The figure is patches per hour summed over the processes.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..settings import settings


def train_child(task: str, data: str, threads: int, seconds: float, bank_seed: int) -> dict:
    """One process: the preset's stage 1 for ``seconds`` of training; returns its patch count."""
    from ..training.bank import fill
    from ..training.config import PRESETS, TrainConfig
    from ..training.loop import Trainer
    from ..training.pairs import PairMaker

    d = {"task": task, "stage": "s1", **copy.deepcopy(PRESETS[task])}
    cfg = TrainConfig(**d, minutes=seconds / 60, threads=threads, data=data, val_minutes=1e9, ckpt_minutes=1e9,
                      seed=bank_seed, log_every=10**9)  # fmt: skip
    if data == "bank":  # a campaign's bank persists between runs: fill it before the clock starts
        bank = settings().cache / "banks" / f"{cfg.bank_name()}-r0"
        if len(list(bank.glob("*.npz"))) < 4:
            maker = PairMaker(settings().cache / "pool" / "train", cfg.degradation(), tuple(cfg.image_scales), 0)
            fill(bank, maker, cfg.bank_shard, cfg.bank_keep, stop_after=4)
    with tempfile.TemporaryDirectory() as run:
        trainer = Trainer(cfg, Path(run))
        t0 = time.perf_counter()
        while trainer.seconds < seconds:
            t = time.perf_counter()
            trainer.step()
            trainer.seconds += time.perf_counter() - t
        wall = time.perf_counter() - t0
        trainer.close()
    return {"patches": trainer.step_no * cfg.batch, "steps": trainer.step_no, "wall_s": wall, "batch": cfg.batch}


def _spawn(task: str, data: str, threads: int, seconds: float, seed: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "diffir.bench", "--_child", "train", task, data, str(threads), str(seconds), str(seed)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def _collect(procs: list[subprocess.Popen]) -> list[dict]:
    out = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"a training benchmark process failed (exit {p.returncode})")
        out.append(json.loads(stdout.splitlines()[-1]))
    return out


def run(tasks: list[str], seconds: float, rounds: int) -> list[dict]:
    """Alternating rounds of old (1 process × 2 threads, online pairs) and new (2 × 1 thread, bank)."""
    rows = []
    for task in tasks:
        per = {"old": [], "new": []}
        for r in range(rounds):
            old = _collect([_spawn(task, "online", 2, seconds, r)])
            new = _collect([_spawn(task, "bank", 1, seconds, 100 + r), _spawn(task, "bank", 1, seconds, 200 + r)])
            per["old"].append(sum(x["patches"] for x in old) / max(x["wall_s"] for x in old) * 3600)
            per["new"].append(sum(x["patches"] for x in new) / max(x["wall_s"] for x in new) * 3600)
        row = {"task": task, "seconds": seconds, "rounds": rounds,
               "old_patches_per_hour": sum(per["old"]) / rounds, "new_patches_per_hour": sum(per["new"]) / rounds,
               "per_round": per}  # fmt: skip
        row["ratio"] = row["new_patches_per_hour"] / row["old_patches_per_hour"]
        rows.append(row)
        print(f"{task:<8} old {row['old_patches_per_hour']:>9.0f}  new {row['new_patches_per_hour']:>9.0f} "
              f"patches/h  x{row['ratio']:.2f}", flush=True)  # fmt: skip
    return rows
