"""Two-stage DiffIR training, resumable, single process or data-parallel under ``torchrun``.

Stage 1 trains CPEN_S1 + DIRformer with the GT-informed IPR (pixel L1). Stage 2 starts its
DIRformer from stage 1, keeps the stage-1 network frozen as the teacher, first fits CPEN_S2 + the
IPR denoiser to the teacher's IPR (``encoder_iters``, IPR L1 only), then optimises everything
jointly (pixel L1 + IPR L1), as the official BasicSR recipe.

    python -m diffir.train --task sr --stage s1 --run-dir runs/sr_s1
    python -m diffir.train --task sr --stage s2 --run-dir runs/sr_s2 --teacher runs/sr_s1/best
    torchrun --nproc_per_node 2 -m diffir.train --task deblur --stage s1 --run-dir runs/deblur_s1

A run folder holds ``config.json`` (the ``TrainConfig``), ``log.jsonl``, ``last.pt`` (model, EMA,
optimiser, step: written atomically every ``ckpt_every`` steps; starting the same command again
resumes) and ``best/`` (the EMA weights with the best validation PSNR, in our load format).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..checkpoints import load_network, save_pretrained
from ..inference.forward import forward_padded
from ..nets.model import DiffIRConfig, DiffIRS1, DiffIRS2, build_model
from ..settings import settings
from ..tasks import get_task, image_tensor, tensor_image
from . import degradations as D
from .data import PatchSampler, load_images, validation_images


@dataclass
class TrainConfig:
    """One training run. ``model`` holds ``DiffIRConfig`` fields other than task and stage."""

    task: str
    stage: str
    model: dict[str, Any]
    patch: int = 64  # network-input patch (LQ for SR)
    batch: int = 8  # per process
    iters: int = 10000
    lr: float = 1e-3
    min_lr: float = 1e-6
    warmup: int = 100
    encoder_iters: int = 0  # stage 2: IPR-only phase
    lr_encoder: float = 1e-3
    ema: float = 0.999  # reached gradually: min(ema, (1 + step) / (10 + step)), so short runs are not stale
    grad_clip: float = 0.0
    image_scales: tuple[float, ...] = (1.0, 0.5, 0.25)
    sr_bicubic_prob: float = 0.4  # rest: moderate Real-ESRGAN degradation
    mask_scale: float = 0.5  # LaMa 256 presets scaled to the patch
    hole_weight: float = 1.0  # inpainting: L1 = hole L1 · w + known L1 · 0.1
    fft_weight: float = 0.0  # + w · L1 of the 2-D spectra (MIMO-UNet's frequency loss; speeds up deblurring)
    motion_length: tuple[float, float] = (3, 25)  # deblur: trajectory length range, px
    val_every: int = 250
    ckpt_every: int = 200
    log_every: int = 20
    seed: int = 0
    threads: int = 0
    teacher: str = ""  # stage 2: the stage-1 weights
    init: str = ""  # start from these weights: every tensor whose name and shape match (e.g. the shipped model)
    cache: str = ""  # default: $DIFFIR_CACHE or cache/
    notes: dict[str, Any] = field(default_factory=dict)

    def model_config(self) -> DiffIRConfig:
        return DiffIRConfig(task=self.task, stage=self.stage, **self.model)


def cache_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.cache) if cfg.cache else settings().cache


# Small configs sized for 2 CPU cores (see the data README's step times); full official configs
# are VARIANTS in model.py and train with the same script on GPUs.
PRESETS: dict[str, dict[str, Any]] = {
    "sr": dict(
        model=dict(scale=4, dim=32, num_blocks=(2, 2, 2, 2), num_refinement_blocks=1, ffn_expansion_factor=2.2,
                   norm_type="BiasFree", n_encoder_res=1),
        patch=32, batch=8,
    ),
    "deblur": dict(
        model=dict(dim=32, num_blocks=(1, 2, 2, 2), num_refinement_blocks=1, ffn_expansion_factor=2.0,
                   norm_type="WithBias", n_encoder_res=2),
        patch=64, batch=8, fft_weight=0.2,
    ),
    "inpaint": dict(
        model=dict(dim=32, num_blocks=(1, 1, 2, 4), num_refinement_blocks=0, ffn_expansion_factor=1.8,
                   norm_type="WithBias", n_encoder_res=2),
        patch=96, batch=6, image_scales=(0.5, 0.25, 0.15),
    ),
}  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def _to_tensor(batch: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).contiguous().float()


def degrade(task: str, gt: np.ndarray, rng: np.random.Generator, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(network input, target) for one float32 GT patch."""
    if task == "sr":
        scale = cfg.model.get("scale", 4)
        if rng.random() < cfg.sr_bicubic_prob:
            return D.bicubic_downsample(gt, scale), gt
        return D.realesrgan_degrade(gt, scale, rng, D.MODERATE), gt
    if task == "deblur":
        return D.random_motion_blur(gt, rng, D.MotionParams(length=tuple(cfg.motion_length)))[0], gt
    mask = D.random_mask(gt.shape[:2], D.MASK_PRESETS["train"].scaled(cfg.mask_scale), rng)
    m = mask[..., None].astype(np.float32)
    return np.concatenate([gt * (1 - m), m], axis=2), gt


class Batches:
    def __init__(self, cfg: TrainConfig, rng: np.random.Generator) -> None:
        self.cfg, self.rng = cfg, rng
        scale = cfg.model.get("scale", 4) if cfg.task == "sr" else 1
        images = load_images(cache_dir(cfg) / "pool" / "train")
        if not images:
            raise FileNotFoundError(
                f"no training images in {cfg.cache}/pool/train: run python -m diffir.training.data collect"
            )
        scaled = []
        for s in cfg.image_scales:
            for im in images:
                scaled.append(im if s == 1 else D.resize(im, (round(im.shape[0] * s), round(im.shape[1] * s)), "area"))
        self.sampler = PatchSampler(scaled, cfg.patch * scale, rng)

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [
            degrade(self.cfg.task, self.sampler().astype(np.float32) / 255, self.rng, self.cfg)
            for _ in range(self.cfg.batch)
        ]
        return _to_tensor([p[0] for p in pairs]), _to_tensor([p[1] for p in pairs])


# --------------------------------------------------------------------------------------------------
# Objective (one module, so DistributedDataParallel can wrap it)
# --------------------------------------------------------------------------------------------------


def pixel_loss(
    task: str, out: torch.Tensor, gt: torch.Tensor, lq: torch.Tensor, hole_weight: float, fft_weight: float = 0.0
) -> torch.Tensor:
    if task != "inpaint":
        loss = F.l1_loss(out, gt)
        if fft_weight:
            spec = [torch.view_as_real(torch.fft.rfft2(t, norm="ortho")) for t in (out, gt)]
            loss = loss + fft_weight * F.l1_loss(*spec)
        return loss
    m = lq[:, 3:4]
    err = (out - gt).abs()
    hole = (err * m).sum() / (3 * m.sum()).clamp_min(1)
    known = (err * (1 - m)).sum() / (3 * (1 - m).sum()).clamp_min(1)
    return hole_weight * hole + 0.1 * known


class Objective(nn.Module):
    def __init__(self, model: DiffIRS1 | DiffIRS2, teacher: DiffIRS1 | None, phase: str, cfg: TrainConfig) -> None:
        super().__init__()
        self.model, self.phase = model, phase
        self.hole_weight, self.fft_weight = cfg.hole_weight, cfg.fft_weight
        self.teacher = [teacher]  # not a submodule: frozen, never synchronised

    def forward(self, lq: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        task = self.model.config.task
        if self.phase == "s1":
            out, _ = self.model(lq, gt)
            loss = pixel_loss(task, out, gt, lq, self.hole_weight, self.fft_weight)
            return loss, {"l_pix": float(loss.detach())}
        teacher = self.teacher[0]
        assert teacher is not None and isinstance(self.model, DiffIRS2)
        with torch.no_grad():
            ipr_s1 = teacher.cpen(lq, gt)
        if self.phase == "encoder":
            ipr, _ = self.model.training_prior(lq, ipr_s1)
            l_ipr = F.l1_loss(ipr, ipr_s1)
            return l_ipr, {"l_ipr": float(l_ipr.detach())}
        out, iprs = self.model(lq, ipr_s1)
        l_pix = pixel_loss(task, out, gt, lq, self.hole_weight, self.fft_weight)
        l_ipr = F.l1_loss(iprs[-1], ipr_s1)
        return l_pix + l_ipr, {"l_pix": float(l_pix.detach()), "l_ipr": float(l_ipr.detach())}


# --------------------------------------------------------------------------------------------------
# Validation (whole validation photos, seeded degradations)
# --------------------------------------------------------------------------------------------------


def validation_set(cfg: TrainConfig, long_side: int = 256) -> list[tuple[np.ndarray, dict, np.ndarray]]:
    """Fixed (input, GT, extra) triples from the validation photos (the evaluation protocol, small
    so that it runs in seconds)."""
    task = get_task(cfg.task)
    images = validation_images(cache_dir(cfg), long_side).values()
    return [(*task.eval_pair(gt, i), gt) for i, gt in enumerate(im.astype(np.float32) / 255 for im in images)]


def validate(model: DiffIRS1 | DiffIRS2, triples: list[tuple[np.ndarray, dict, np.ndarray]]) -> float:
    """Mean of the task's metric over the validation set (S2: seeded diffusion; S1: GT-informed IPR)."""
    model.eval()
    task = get_task(model.config.task)
    scores = []
    for i, (lq, extra, gt) in enumerate(triples):
        s1 = isinstance(model, DiffIRS1)
        y = forward_padded(model, image_tensor(lq), mode="s1" if s1 else "diffusion", gt=image_tensor(gt), seed=i)
        scores.append(task.score(tensor_image(y), gt, extra)[task.metric])
    model.train()
    return float(np.mean(scores))


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------


def lr_at(step: int, start: int, end: int, base: float, min_lr: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to ``min_lr`` over [start, end)."""
    i = step - start
    if i < warmup:
        return base * (i + 1) / warmup
    t = min(1.0, (i - warmup) / max(1, end - start - warmup))
    return min_lr + 0.5 * (base - min_lr) * (1 + math.cos(math.pi * t))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1 - decay)


def _phase(cfg: TrainConfig, step: int) -> str:
    if cfg.stage == "s1":
        return "s1"
    return "encoder" if step < cfg.encoder_iters else "joint"


def _trainable(model: nn.Module, phase: str) -> list[nn.Parameter]:
    for name, p in model.named_parameters():
        p.requires_grad_(phase != "encoder" or not name.startswith("dirformer."))
    return [p for p in model.parameters() if p.requires_grad]


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def init_matching(model: nn.Module, path: str) -> list[str]:
    """Copy every tensor of ``path`` whose name and shape match ``model``'s; returns the names copied.

    A stage-1 run started from a shipped stage-2 model gets its DIRformer and all of CPEN but the
    first convolution (CPEN_S1 also sees the GT), so a campaign never starts from scratch."""
    source = load_network(path).state_dict()
    own = model.state_dict()
    same = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(same, strict=False)
    return sorted(same)


def init_stage2(model: DiffIRS2, teacher_path: str) -> DiffIRS1:
    """Stage 2 starts its DIRformer from stage 1 (official ``pretrain_network_g``, strict=False)."""
    teacher = load_network(teacher_path)
    if not isinstance(teacher, DiffIRS1):
        raise ValueError(f"{teacher_path}: the teacher must be a stage-1 network")
    model.dirformer.load_state_dict(teacher.dirformer.state_dict())
    return teacher.requires_grad_(False).eval()


def train(cfg: TrainConfig, run: Path) -> None:
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = 0
    device = torch.device("cpu")
    if distributed:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        rank = dist.get_rank()
        if backend == "nccl":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    main = rank == 0
    run.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model_config())
    if cfg.init and not (run / "last.pt").is_file():
        copied = init_matching(model, cfg.init)
        if main:
            print(f"initialised {len(copied)}/{len(model.state_dict())} tensors from {cfg.init}", flush=True)
    teacher = init_stage2(model, cfg.teacher) if cfg.stage == "s2" else None  # type: ignore[arg-type]
    ema = copy.deepcopy(model).requires_grad_(False)
    step, best = 0, -math.inf
    ckpt = run / "last.pt"
    opt_state = None
    if ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        step, best, opt_state = state["step"], state["best"], state["optimizer"]
        if main:
            print(f"resuming {run} at step {step} (best val {best:.3f} dB)", flush=True)
    model.to(device).train()
    ema.to(device).eval()
    if teacher is not None:
        teacher.to(device)

    if main:
        world = dist.get_world_size() if distributed else 1
        print(
            f"training {cfg.task} {cfg.stage} on {world} process{'es' if world > 1 else ''} ({device}), step {step}/{cfg.iters}",
            flush=True,
        )
    rng = np.random.default_rng([cfg.seed, rank, step])
    batches = Batches(cfg, rng)
    val_pairs = validation_set(cfg) if main else []
    log = (run / "log.jsonl").open("a") if main else None

    phase, opt, wrapped = "", None, None
    t0, seen = time.time(), 0
    while step < cfg.iters:
        if _phase(cfg, step) != phase:
            phase = _phase(cfg, step)
            params = _trainable(model, phase)
            objective = Objective(model, teacher, phase, cfg)
            wrapped = DistributedDataParallel(objective) if distributed else objective
            opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.99))
            if opt_state is not None and opt_state.get("phase") == phase:
                opt.load_state_dict(opt_state["state"])
            opt_state = None
        assert opt is not None and wrapped is not None
        if phase == "encoder":
            lr = lr_at(step, 0, cfg.encoder_iters, cfg.lr_encoder, cfg.min_lr, cfg.warmup)
        else:
            lr = lr_at(step, cfg.encoder_iters, cfg.iters, cfg.lr, cfg.min_lr, cfg.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        lq, gt = (t.to(device) for t in batches())
        loss, parts = wrapped(lq, gt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg.grad_clip)
        opt.step()
        ema_update(ema, model, min(cfg.ema, (1 + step) / (10 + step)))
        step += 1
        seen += 1
        if main and (step % cfg.log_every == 0 or step == cfg.iters):
            rate = (time.time() - t0) / seen
            rec = {"step": step, "phase": phase, "lr": lr, "s_per_it": round(rate, 3), **parts, "time": time.time()}
            assert log is not None
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(
                " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items() if k != "time"),
                flush=True,
            )
        if main and (step % cfg.val_every == 0 or step == cfg.iters):
            score = validate(ema, val_pairs)
            improved = score > best
            if improved:
                best = score
                save_pretrained(ema, run / "best", step=step, val_psnr=f"{score:.3f}")
            assert log is not None
            log.write(json.dumps({"step": step, "val_psnr": score, "best": best, "time": time.time()}) + "\n")
            log.flush()
            print(f"step={step} val_psnr={score:.3f} best={best:.3f}{' *' if improved else ''}", flush=True)
        if main and (step % cfg.ckpt_every == 0 or step == cfg.iters):
            _atomic_save(
                {"model": model.state_dict(), "ema": ema.state_dict(), "step": step, "best": best,
                 "optimizer": {"phase": phase, "state": opt.state_dict()}},
                ckpt,
            )  # fmt: skip
    if distributed:
        dist.barrier()
        dist.destroy_process_group()


def load_or_create_config(args: argparse.Namespace) -> TrainConfig:
    run = Path(args.run)
    path = run / "config.json"
    if path.is_file():
        d = json.loads(path.read_text())
    else:
        if not args.task or not args.stage:
            raise SystemExit("a new run needs --task and --stage")
        d = {"task": args.task, "stage": args.stage, **copy.deepcopy(PRESETS[args.task])}
        if args.config:
            d.update(json.loads(Path(args.config).read_text()))
    for item in args.set or []:
        key, _, value = item.partition("=")
        d[key] = json.loads(value)
    if args.iters:
        d["iters"] = args.iters
    if args.teacher:
        d["teacher"] = args.teacher
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(d) - names
    if unknown:
        raise SystemExit(f"unknown TrainConfig fields: {', '.join(sorted(unknown))}")
    cfg = TrainConfig(**d)
    if cfg.stage == "s2" and not cfg.teacher:
        raise SystemExit("stage 2 needs --teacher (stage-1 weights)")
    if int(os.environ.get("RANK", "0")) == 0:
        run.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    return cfg


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m diffir.train", description="Train DiffIR (stage 1 or 2).")
    p.add_argument("--run-dir", dest="run", required=True, help="run folder (created, or resumed if it exists)")
    p.add_argument("--task", choices=["sr", "deblur", "inpaint"])
    p.add_argument("--stage", choices=["s1", "s2"])
    p.add_argument("--config", help="JSON file overriding the task preset (new runs only)")
    p.add_argument("--teacher", help="stage-1 weights (stage 2)")
    p.add_argument("--iters", type=int, help="total iterations (extend a finished run)")
    p.add_argument("--set", action="append", metavar="KEY=JSON", help="override one config field")
    args = p.parse_args(argv)
    cfg = load_or_create_config(args)
    train(cfg, Path(args.run))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
