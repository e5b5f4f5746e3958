"""Two-stage DiffIR training: time-boxed, resumable, one process or data-parallel under ``torchrun``.

Stage 1 trains CPEN_S1 + DIRformer with the GT-informed IPR (pixel L1). Stage 2 starts its
DIRformer from stage 1, keeps the stage-1 network frozen as the teacher, first fits CPEN_S2 + the
IPR denoiser to the teacher's IPR (IPR L1 only), then optimises everything jointly (pixel L1 +
IPR L1), as the official BasicSR recipe.

    python -m diffir.train --task sr --stage s1 --run-dir runs/sr_s1 --minutes 60
    python -m diffir.train --task sr --stage s2 --run-dir runs/sr_s2 --teacher runs/sr_s1/best --minutes 30
    torchrun --nproc_per_node 2 -m diffir.train --task deblur --stage s1 --run-dir runs/deblur_s1

With ``--minutes`` the learning-rate schedule (warm-up, cosine) runs on the fraction of the time
budget spent, so a run ends on a decayed learning rate whenever its time is up. A run folder holds
``config.json``, ``log.jsonl``, ``last.pt`` (model, EMA, optimiser, step, seconds spent; written
atomically every few minutes: starting the same command again resumes) and ``best/`` (the EMA
weights with the best validation score, in our load format).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..allocator import tune_allocator
from ..checkpoints import load_network, save_pretrained
from ..nets.model import DiffIRS1, DiffIRS2, build_model
from .bank import BankSampler, as_batch, start_writer
from .config import PRESETS, TrainConfig, cache_dir, load_or_create_config
from .gan import Adversary
from .objective import Objective, validate, validation_set
from .pairs import PairMaker

__all__ = ["PRESETS", "TrainConfig", "Trainer", "lr_at", "main", "train"]


def lr_at(fraction: float, base: float, min_lr: float, warmup: float) -> float:
    """Linear warm-up over the first ``warmup`` of a phase, then cosine decay to ``min_lr``."""
    if fraction < warmup:
        return base * max(fraction / warmup, 0.01)
    t = min(1.0, (fraction - warmup) / max(1e-9, 1 - warmup))
    return min_lr + 0.5 * (base - min_lr) * (1 + math.cos(math.pi * t))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1 - decay)


def init_matching(model: nn.Module, path: str) -> list[str]:
    """Copy every tensor of ``path`` whose name and shape match ``model``'s; returns the names copied.

    A stage-1 run started from a shipped stage-2 model gets its DIRformer and all of CPEN but the
    first convolution (CPEN_S1 also sees the GT), so a campaign never starts from scratch."""
    source = load_network(path).state_dict()
    own = model.state_dict()
    same = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(same, strict=False)
    return sorted(same)


def init_stage2(model: DiffIRS2, teacher_path: str, keep_dirformer: bool = False) -> DiffIRS1:
    """Stage 2 starts its DIRformer from stage 1 (official ``pretrain_network_g``, strict=False),
    unless it fine-tunes a finished stage 2 (S2-GAN: ``keep_dirformer``, the ``init`` weights')."""
    teacher = load_network(teacher_path)
    if not isinstance(teacher, DiffIRS1):
        raise ValueError(f"{teacher_path}: the teacher must be a stage-1 network")
    if not keep_dirformer:
        model.dirformer.load_state_dict(teacher.dirformer.state_dict())
    return teacher.requires_grad_(False).eval()


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def _pick_device(cfg: TrainConfig, distributed: bool) -> torch.device:
    if cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for but no CUDA GPU is available")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) if distributed else 0)


class Trainer:
    """One run: ``setup`` (networks, data), ``resume``, then ``step`` until the budget is spent,
    with ``validate_and_save`` and ``checkpoint`` on their schedules."""

    def __init__(self, cfg: TrainConfig, run: Path) -> None:
        self.cfg, self.run = cfg, run
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed:
            dist.init_process_group("nccl" if torch.cuda.is_available() and cfg.device != "cpu" else "gloo")
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        self.main = self.rank == 0
        self.device = _pick_device(cfg, self.distributed)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.step_no, self.best, self.seconds = 0, -math.inf, 0.0
        self.phase, self.opt, self.objective = "", None, None
        self.core: Objective | None = None  # the objective unwrapped (DDP, compile)
        self._opt_state: dict | None = None
        self.writer = None
        self.setup()

    # -- set-up and resume ---------------------------------------------------------------------------

    def setup(self) -> None:
        cfg, run = self.cfg, self.run
        run.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model_config())
        if cfg.init and not (run / "last.pt").is_file():
            copied = init_matching(self.model, cfg.init)
            self.say(f"initialised {len(copied)}/{len(self.model.state_dict())} tensors from {cfg.init}")
        fine_tune = cfg.gan_weight > 0 and bool(cfg.init)
        self.teacher = init_stage2(self.model, cfg.teacher, fine_tune) if cfg.stage == "s2" else None  # type: ignore[arg-type]
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.adversary = None
        if cfg.gan_weight > 0:
            if cfg.stage != "s2":
                raise SystemExit("the GAN terms (gan_weight) belong to stage 2 (S2-GAN)")
            self.adversary = Adversary(cfg.gan_weight, cfg.feature_weight, cfg.lr_disc, cfg.disc_feat, self.device)
        self.resume()
        self.model.to(self.device, memory_format=torch.channels_last).train()
        self.ema.to(self.device).eval()
        if self.teacher is not None:
            self.teacher.to(self.device)
        self.batches = self.make_data()
        self.val = validation_set(cfg.task, cache_dir(cfg)) if self.main else []
        self.log = (run / "log.jsonl").open("a") if self.main else None

    def resume(self) -> None:
        ckpt = self.run / "last.pt"
        if not ckpt.is_file():
            return
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.step_no, self.best, self._opt_state = state["step"], state["best"], state["optimizer"]
        self.seconds = float(state.get("seconds", 0.0))
        if self.adversary is not None and "adversary" in state:
            self.adversary.load_state_dict(state["adversary"])
        self.say(
            f"resuming {self.run} at step {self.step_no}, {self.seconds / 60:.1f} min spent (best {self.best:.3f})"
        )

    def make_data(self) -> Any:
        """Batches of (lq, gt) float tensors: the patch bank (its writer started here), DataLoader
        workers (GPU runs), or pairs made in the loop (the old recipe, for the benchmark)."""
        cfg = self.cfg
        pool = cache_dir(cfg) / "pool" / "train"
        seed = cfg.seed * 1000 + self.rank + 17 * self.step_no
        d = cfg.degradation()
        if cfg.data == "online":
            maker = PairMaker(pool, d, tuple(cfg.image_scales), seed)
            return lambda: tuple(as_batch(x) for x in maker.many(cfg.batch))
        if cfg.workers:
            from .gpu import loader_batches

            return loader_batches(pool, d, tuple(cfg.image_scales), seed, cfg.batch, cfg.workers)
        bank = cache_dir(cfg) / "banks" / f"{cfg.bank_name()}-r{self.rank}"
        self.writer = start_writer(bank, pool, d, tuple(cfg.image_scales), seed, cfg.bank_shard, cfg.bank_keep)
        return BankSampler(bank, cfg.batch, seed)

    # -- the schedule --------------------------------------------------------------------------------

    def fraction(self) -> float:
        """How much of the run is done: of the time budget, or of the iterations."""
        if self.cfg.minutes > 0:
            return self.seconds / (60 * self.cfg.minutes)
        return self.step_no / self.cfg.iters

    def cycle_fraction(self) -> float:
        """How much of the schedule's current cycle is done. A campaign that extends a run starts a
        new cycle (warm-up, cosine) over its own minutes instead of continuing the old cosine's tail."""
        cfg = self.cfg
        if cfg.minutes > 0 and 0 < cfg.cycle_from < cfg.minutes:
            return max(0.0, self.seconds / 60 - cfg.cycle_from) / (cfg.minutes - cfg.cycle_from)
        return self.fraction()

    def phase_at(self, f: float) -> tuple[str, float]:
        """(phase, fraction of that phase done)."""
        cfg = self.cfg
        if cfg.stage == "s1":
            return "s1", f
        split = cfg.encoder_frac if cfg.minutes > 0 else cfg.encoder_iters / cfg.iters
        if f < split:
            return "encoder", f / split
        return "joint", (f - split) / max(1e-9, 1 - split)

    def enter_phase(self, phase: str) -> None:
        cfg = self.cfg
        self.phase = phase
        for name, p in self.model.named_parameters():
            p.requires_grad_(phase != "encoder" or not name.startswith("dirformer."))
        params = [p for p in self.model.parameters() if p.requires_grad]
        adversary = self.adversary if phase == "joint" else None
        self.core = Objective(self.model, self.teacher, phase, cfg.hole_weight, cfg.fft_weight, adversary, cfg.usm_gt)
        objective: nn.Module = self.core
        if self.distributed:
            objective = DistributedDataParallel(objective)
        self.objective = torch.compile(objective) if cfg.compile else objective
        self.opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.99))
        if self._opt_state is not None and self._opt_state.get("phase") == phase:
            self.opt.load_state_dict(self._opt_state["state"])
        self._opt_state = None

    # -- one step ------------------------------------------------------------------------------------

    def step(self) -> dict[str, float]:
        cfg = self.cfg
        phase, pf = self.phase_at(self.cycle_fraction())
        if phase != self.phase:
            self.enter_phase(phase)
        assert self.opt is not None and self.objective is not None
        lr = lr_at(pf, cfg.lr_encoder if phase == "encoder" else cfg.lr, cfg.min_lr, cfg.warmup)
        for g in self.opt.param_groups:
            g["lr"] = lr
        lq, gt = (t.to(self.device, non_blocking=True) for t in self.batches())
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            loss, parts = self.objective(lq, gt)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]], cfg.grad_clip)
        self.opt.step()
        adversary, out = self.core.adversary, self.core.last_out  # type: ignore[union-attr]
        if adversary is not None and out is not None:
            parts.update(adversary.update(out, gt))
        ema_update(self.ema, self.model, min(cfg.ema, (1 + self.step_no) / (10 + self.step_no)))
        self.step_no += 1
        return {"lr": lr, **parts}

    # -- validation and checkpoints ---------------------------------------------------------------------

    def validate_and_save(self) -> float:
        score = validate(self.ema, self.val)
        improved = score > self.best or self.adversary is not None  # S2-GAN: the latest (PSNR is not its aim)
        if improved:
            self.best = score
            save_pretrained(self.ema, self.run / "best", step=self.step_no, val_psnr=f"{score:.3f}")
        if self.adversary is not None:  # a GAN's best point is chosen afterwards (NIQE, fidelity): keep each
            snapshot = self.run / "snapshots" / f"step_{self.step_no:06d}"
            save_pretrained(self.ema, snapshot, dtype=torch.float16, step=self.step_no, val_psnr=f"{score:.3f}")
        self.write({"step": self.step_no, "val_psnr": score, "best": self.best, "seconds": round(self.seconds, 1)})
        self.say(f"step={self.step_no} val={score:.3f} best={self.best:.3f}{' *' if improved else ''}")
        return score

    def checkpoint(self) -> None:
        assert self.opt is not None
        _atomic_save(
            {"model": self.model.state_dict(), "ema": self.ema.state_dict(), "step": self.step_no, "best": self.best,
             "seconds": self.seconds, "optimizer": {"phase": self.phase, "state": self.opt.state_dict()},
             **({"adversary": self.adversary.state_dict()} if self.adversary is not None else {})},
            self.run / "last.pt",
        )  # fmt: skip

    def say(self, msg: str) -> None:
        if self.rank == 0:
            print(msg, flush=True)

    def write(self, rec: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.write(json.dumps({**rec, "time": time.time()}) + "\n")
            self.log.flush()

    def log_step(self, parts: dict[str, float], rate: float) -> None:
        self.write({"step": self.step_no, "phase": self.phase, "s_per_it": round(rate, 3), **parts,
                    "seconds": round(self.seconds, 1), "threads": torch.get_num_threads(), "world": self.world,
                    "device": self.device.type})  # fmt: skip
        self.say(
            f"step={self.step_no} {self.phase} {rate:.3f}s/it " + " ".join(f"{k}={v:.4g}" for k, v in parts.items())
        )

    # -- the loop ------------------------------------------------------------------------------------

    def due(self, every_steps: int, every_min: float, last: float) -> bool:
        if self.cfg.minutes > 0:
            return self.seconds - last >= 60 * every_min
        return self.step_no % every_steps == 0

    def fit(self) -> None:
        cfg = self.cfg
        if self.fraction() >= 1:  # a resumed run whose budget is spent (a campaign resumed in stage 2)
            self.say(f"{self.run} has finished its {cfg.minutes:g} minutes (step {self.step_no})")
            self.close()
            return
        self.say(f"training {cfg.task} {cfg.stage} on {self.world} x {self.device}, step {self.step_no}")
        last_val = last_ckpt = self.seconds
        t_log, n_log = time.perf_counter(), 0
        while self.fraction() < 1:
            t0 = time.perf_counter()
            parts = self.step()
            self.seconds += time.perf_counter() - t0
            n_log += 1
            if self.main and self.step_no % cfg.log_every == 0:
                self.log_step(parts, (time.perf_counter() - t_log) / n_log)
                t_log, n_log = time.perf_counter(), 0
            if self.main and self.due(cfg.val_every, cfg.val_minutes, last_val):
                self.validate_and_save()
                last_val = self.seconds
            if self.main and self.due(cfg.ckpt_every, cfg.ckpt_minutes, last_ckpt):
                self.checkpoint()
                last_ckpt = self.seconds
        if self.main:
            if n_log:  # the compute total is read from the log: its last record is the run's end
                self.log_step(parts, (time.perf_counter() - t_log) / n_log)
            if last_val != self.seconds:
                self.validate_and_save()
            self.checkpoint()
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.terminate()
            self.writer.join(timeout=10)
        if self.distributed:
            dist.barrier()
            dist.destroy_process_group()


def train(cfg: TrainConfig, run: Path) -> Trainer:
    tune_allocator()  # a few % on small training tensors (allocator.py)
    trainer = Trainer(cfg, run)
    trainer.fit()
    return trainer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m diffir.train", description="Train DiffIR (stage 1 or 2).")
    p.add_argument("--run-dir", dest="run", required=True, help="run folder (created, or resumed if it exists)")
    p.add_argument("--task", choices=list(PRESETS))
    p.add_argument("--stage", choices=["s1", "s2"])
    p.add_argument("--config", help="JSON file overriding the task preset (new runs only)")
    p.add_argument("--teacher", help="stage-1 weights (stage 2)")
    p.add_argument("--init", help="start a new run from these weights (tensors whose name and shape match)")
    p.add_argument("--minutes", type=float, help="time budget: plan the schedule for it and stop when it is spent")
    p.add_argument("--iters", type=int, help="total iterations, without a time budget (extend a finished run)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: auto")
    p.add_argument("--set", action="append", metavar="KEY=JSON", help="override one config field")
    args = p.parse_args(argv)
    cfg = load_or_create_config(args)
    train(cfg, Path(args.run))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
