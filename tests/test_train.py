"""Training runs, resumes, hands stage 1 to stage 2, and runs data-parallel under torchrun (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from diffir import load_network
from diffir.training.loop import TrainConfig, lr_at, train

from .helpers import tiny_model_fields


def _cfg(cache: Path, task: str, stage: str, **kw) -> TrainConfig:
    model = tiny_model_fields(task)
    base = dict(task=task, stage=stage, model=model, patch=16, batch=2, iters=4, warmup=0.25, val_every=2, ckpt_every=2,
                log_every=1, cache=str(cache), image_scales=(1.0,), threads=1, data="online")  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("task", ["sr", "deblur", "inpaint"])
def test_two_stages_and_resume(tmp_path, cache, task):
    s1 = tmp_path / "s1"
    train(_cfg(cache, task, "s1", data="bank", bank_shard=4, bank_keep=2), s1)  # the patch bank's writer and reader
    bank = next((cache / "banks").glob(f"{task}-p16-*-r0"))
    assert 1 <= len(list(bank.glob("*.npz"))) <= 2
    state = torch.load(s1 / "last.pt", weights_only=True)
    assert state["step"] == 4
    teacher = load_network(s1 / "best")
    assert teacher.config.stage == "s1" and teacher.config.task == task
    log = [json.loads(line) for line in (s1 / "log.jsonl").read_text().splitlines()]
    assert any("val_psnr" in r for r in log) and all(np.isfinite(r.get("l_pix", 0)) for r in log)

    s2 = tmp_path / "s2"
    cfg2 = _cfg(cache, task, "s2", teacher=str(s1 / "best"), encoder_iters=2)
    train(cfg2, s2)
    log2 = [json.loads(line) for line in (s2 / "log.jsonl").read_text().splitlines()]
    phases = [r["phase"] for r in log2 if "phase" in r]
    assert phases[:2] == ["encoder", "encoder"] and phases[-1] == "joint"
    assert "l_ipr" in log2[0] and "l_pix" not in log2[0] and "l_pix" in log2[-2]
    student = load_network(s2 / "best")
    assert student.config.stage == "s2"
    # stage 2 started its DIRformer from stage 1 and, in the encoder phase, left it alone
    state = torch.load(s2 / "last.pt", weights_only=True)
    assert state["step"] == 4

    # resume: extend the run by two steps, continuing from the checkpoint
    cfg2.iters = 6
    train(cfg2, s2)
    assert torch.load(s2 / "last.pt", weights_only=True)["step"] == 6
    log3 = [json.loads(line) for line in (s2 / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log3 if "phase" in r][-2:] == [5, 6]


def test_encoder_phase_freezes_dirformer(tmp_path, cache):
    s1 = tmp_path / "s1"
    train(_cfg(cache, "deblur", "s1", iters=2), s1)
    s2 = tmp_path / "s2"
    train(_cfg(cache, "deblur", "s2", teacher=str(s1 / "best"), encoder_iters=2, iters=2, ema=0.0), s2)
    teacher = load_network(s1 / "best")
    state = torch.load(s2 / "last.pt", weights_only=True)["model"]
    for k, v in teacher.dirformer.state_dict().items():
        assert torch.equal(state[f"dirformer.{k}"], v), k


def test_lr_schedule():
    assert lr_at(0.05, 1e-3, 1e-6, 0.1) == pytest.approx(5e-4)  # warming up
    assert lr_at(0.1, 1e-3, 1e-6, 0.1) == pytest.approx(1e-3)
    assert lr_at(0.55, 1e-3, 1e-6, 0.1) == pytest.approx(0.5 * (1e-3 + 1e-6))  # half-way down the cosine
    assert lr_at(1.0, 1e-3, 1e-6, 0.1) == pytest.approx(1e-6)


def test_time_budget_plans_the_schedule_and_resumes(tmp_path, cache):
    """``minutes``: the learning rate decays over the time spent; the run stops when it is spent and
    the same command with a larger budget carries on from the checkpoint."""
    run = tmp_path / "timed"
    cfg = _cfg(cache, "deblur", "s1", minutes=0.05, val_minutes=1.0, ckpt_minutes=1.0)
    first = train(cfg, run)
    state = torch.load(run / "last.pt", weights_only=True)
    assert 3.0 <= state["seconds"] < 3.0 + 5 and state["step"] == first.step_no > 1
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in log if "lr" in r]
    assert lrs[-1] < 0.2 * max(lrs)  # the cosine reached its tail within the budget
    assert any("val_psnr" in r for r in log)  # validated at the end even though val_minutes was never reached
    cfg.minutes = 0.1
    second = train(cfg, run)
    assert second.step_no > first.step_no and torch.load(run / "last.pt", weights_only=True)["seconds"] >= 6.0
    # a campaign's warm restart: a new cycle over the added minutes climbs back to the full rate
    cfg.cycle_from, cfg.minutes = torch.load(run / "last.pt", weights_only=True)["seconds"] / 60, 0.15
    third = train(cfg, run)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    restarted = [r["lr"] for r in log if "lr" in r and r["step"] > second.step_no]
    assert third.step_no > second.step_no and max(restarted) > 0.5 * cfg.lr > 10 * lrs[-1]


def test_the_log_ends_with_the_run(tmp_path, cache):
    """A campaign's compute total is read from the log's last step record: it must be the run's end,
    even when the run stops between two logging steps."""
    run = tmp_path / "short"
    train(_cfg(cache, "deblur", "s1", iters=3, log_every=100, val_every=100, ckpt_every=100), run)
    state = torch.load(run / "last.pt", weights_only=True)
    ends = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"threads"' in line]
    assert [r["step"] for r in ends] == [3] and ends[0]["seconds"] == round(state["seconds"], 1) > 0


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path, cache):
    cfg = _cfg(cache, "deblur", "s1", iters=3, val_every=3, ckpt_every=3)
    path = tmp_path / "cfg.json"
    d = {k: v for k, v in cfg.__dict__.items() if k not in ("task", "stage")}
    path.write_text(json.dumps(d))
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "diffir.train",
           "--task", "deblur", "--stage", "s1", "--run-dir", str(run), "--config", str(path)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env=env, cwd=Path(__file__).resolve().parent.parent
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "on 2 x cpu" in res.stdout
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 3
    assert load_network(run / "best").config.task == "deblur"


def _gone(pid: int) -> bool:
    """Exited (a zombie waiting for its reaper counts: it runs no more)."""
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return True


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_a_killed_run_leaves_no_bank_writer(tmp_path, cache):
    """The bank writer is a daemon, which ends with a training process that exits but not with one
    that is killed (a campaign stopped with kill): it checks its parent between shards."""
    bank = tmp_path / "bank"
    script = (
        "import sys, time\nfrom pathlib import Path\n"
        "from diffir.training.bank import start_writer\nfrom diffir.training.pairs import Degradation\n"
        f"p = start_writer(Path({str(bank)!r}), Path({str(cache / 'pool' / 'train')!r}), "
        "Degradation(task='deblur', patch=16), (1.0,), 0, 2, 2)\n"
        "print(p.pid, flush=True)\ntime.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    writer = int(proc.stdout.readline())
    deadline = time.time() + 120
    while not list(bank.glob("*.npz")) and time.time() < deadline:
        time.sleep(0.2)
    assert list(bank.glob("*.npz")) and not _gone(writer)
    proc.kill()
    proc.wait()
    while not _gone(writer) and time.time() < deadline:
        time.sleep(0.2)
    assert _gone(writer)
