"""A training run's configuration (``TrainConfig``) and the small presets sized for 2 CPU cores.

The full official networks are ``diffir.VARIANTS`` and train with the same loop on GPUs.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import write_atomic
from ..nets.model import DiffIRConfig
from ..settings import settings
from .pairs import Degradation


@dataclass
class TrainConfig:
    """One training run. ``model`` holds ``DiffIRConfig`` fields other than task and stage."""

    task: str
    stage: str
    model: dict[str, Any]
    patch: int = 64  # network-input patch (LQ for SR)
    batch: int = 8  # per process
    iters: int = 10000  # used when no time budget is given
    minutes: float = 0.0  # time budget of this run (wall clock); the schedule is planned for it
    cycle_from: float = 0.0  # minutes spent when the schedule's current cycle began (warm restart)
    encoder_frac: float = 0.3  # stage 2 with a time budget: share of the time for the IPR-only phase
    lr: float = 1e-3
    min_lr: float = 1e-6
    warmup: float = 0.03  # share of each phase spent warming the learning rate up
    encoder_iters: int = 0  # stage 2: IPR-only phase
    lr_encoder: float = 1e-3
    ema: float = 0.999  # reached gradually: min(ema, (1 + step) / (10 + step)), so short runs are not stale
    grad_clip: float = 0.0
    image_scales: tuple[float, ...] = (1.0, 0.5, 0.25)
    sr_bicubic_prob: float = 0.4  # rest: moderate Real-ESRGAN degradation
    mask_scale: float = 0.5  # LaMa 256 presets scaled to the patch
    hole_weight: float = 1.0  # inpainting: L1 = hole L1 · w + known L1 · 0.1
    fft_weight: float = 0.0  # + w · L1 of the 2-D spectra (MIMO-UNet's frequency loss; speeds up deblurring)
    gan_weight: float = 0.0  # S2-GAN ("sharp"): + w · vanilla GAN loss of a U-Net discriminator (0 = off)
    feature_weight: float = 1.0  # S2-GAN: + w · L1 of the discriminator's features (replaces VGG perceptual)
    usm_gt: bool = False  # S2-GAN: pixel L1 against the unsharp-masked GT (Real-ESRGAN / DiffIR V2)
    lr_disc: float = 1e-4  # S2-GAN: the discriminator's Adam learning rate (constant)
    disc_feat: int = 16  # S2-GAN: the discriminator's width (Real-ESRGAN: 64; 16 costs about the generator on a CPU)
    motion_length: tuple[float, float] = (3, 25)  # deblur: trajectory length range, px
    val_every: int = 250  # steps (without a time budget) ...
    val_minutes: float = 10.0  # ... or minutes (with one)
    ckpt_every: int = 200
    ckpt_minutes: float = 3.0
    log_every: int = 20
    seed: int = 0
    threads: int = 1  # per process: two 1-thread runs beat one 2-thread run on 2 cores (bench --train)
    data: str = "bank"  # "bank" (made ahead by a background writer) or "online" (made in the loop)
    bank_shard: int = 128  # pairs per bank shard
    bank_keep: int = 24  # shards kept (the oldest are replaced)
    workers: int = 0  # GPU runs: DataLoader worker processes making pairs (0 = the bank)
    device: str = "auto"  # auto, cpu, cuda
    compile: bool = False  # torch.compile the objective (measure with bench --train)
    teacher: str = ""  # stage 2: the stage-1 weights
    init: str = ""  # start from these weights: every tensor whose name and shape match (e.g. the shipped model)
    cache: str = ""  # default: $DIFFIR_CACHE or cache/
    notes: dict[str, Any] = field(default_factory=dict)

    def model_config(self) -> DiffIRConfig:
        return DiffIRConfig(task=self.task, stage=self.stage, **self.model)

    def bank_name(self) -> str:
        """A patch bank is shared by the runs whose degradation is the same (stage 1 and 2 of a campaign)."""
        d = self.degradation()
        return f"{self.task}-p{d.patch}-{hashlib.sha1(repr(d).encode()).hexdigest()[:8]}"

    def degradation(self) -> Degradation:
        return Degradation(
            task=self.task,
            patch=self.patch,
            scale=self.model.get("scale", 4) if self.task == "sr" else 1,
            sr_bicubic_prob=self.sr_bicubic_prob,
            motion_length=tuple(self.motion_length),
            mask_scale=self.mask_scale,
        )


def cache_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.cache) if cfg.cache else settings().cache


# Small configs sized for 2 CPU cores, chosen with ``python -m diffir.training.sizes`` (the weights
# README's table): at equal CPU time these learn at least as fast as the previous ("medium") sizes
# and run 1.6-2× faster for users. Full official configs are VARIANTS in model.py and train with the
# same script on GPUs.
PRESETS: dict[str, dict[str, Any]] = {
    "sr": dict(
        model=dict(scale=4, dim=24, num_blocks=(1, 1, 2, 2), num_refinement_blocks=1, ffn_expansion_factor=2.2,
                   norm_type="BiasFree", n_encoder_res=1),
        patch=32, batch=8,
    ),
    "deblur": dict(
        model=dict(dim=24, num_blocks=(1, 1, 2, 2), num_refinement_blocks=0, ffn_expansion_factor=2.0,
                   norm_type="WithBias", n_encoder_res=2),
        patch=64, batch=8, fft_weight=0.2,
    ),
    "inpaint": dict(
        model=dict(dim=24, num_blocks=(1, 1, 1, 2), num_refinement_blocks=0, ffn_expansion_factor=1.8,
                   norm_type="WithBias", n_encoder_res=2, prefill=True),  # prefill: the inpaint card's A/B
        patch=96, batch=6, image_scales=(0.5, 0.25, 0.15),
    ),
}  # fmt: skip


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``--set KEY=JSON`` options (train, campaign, sizes) as config fields."""
    return {key: json.loads(value) for key, _, value in (item.partition("=") for item in items or [])}


def run_config(run: Path, overrides: dict[str, Any], task: str = "", stage: str = "") -> TrainConfig:
    """A run's config: its saved ``config.json`` (continued) or the task's preset (new), then ``overrides``.

    A continued run keeps its network (``model``): the other fields may change between sessions
    (patch size, learning rate, time budget), as the official recipes' progressive patches do.
    The result is saved back as the run's ``config.json`` (by the first process of a multi-GPU run).
    """
    path = run / "config.json"
    if path.is_file():
        d = json.loads(path.read_text())
        if "model" in overrides and json.loads(json.dumps(overrides["model"])) != d["model"]:
            print(f"{run} continues with its own network {d['model']}; a new size needs a new run folder", flush=True)
        d.update({k: v for k, v in overrides.items() if k != "model"})
    elif task and stage:
        d = {"task": task, "stage": stage, **copy.deepcopy(PRESETS[task]), **overrides}
    else:
        raise SystemExit("a new run needs --task and --stage")
    unknown = set(d) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise SystemExit(f"unknown TrainConfig fields: {', '.join(sorted(unknown))}")
    cfg = TrainConfig(**d)
    if cfg.stage == "s2" and not cfg.teacher:
        raise SystemExit("stage 2 needs --teacher (stage-1 weights)")
    if int(os.environ.get("RANK", "0")) == 0:
        run.mkdir(parents=True, exist_ok=True)
        write_atomic(path, (json.dumps(dataclasses.asdict(cfg), indent=2) + "\n").encode())
    return cfg


def load_or_create_config(args: argparse.Namespace) -> TrainConfig:
    """``python -m diffir.train``'s options: ``--config`` file, then ``--set``, then the named options."""
    overrides = json.loads(Path(args.config).read_text()) if args.config else {}
    overrides.update(parse_sets(args.set))
    overrides.update(
        {k: getattr(args, k) for k in ("iters", "minutes", "teacher", "init", "device") if getattr(args, k, None)}
    )
    return run_config(Path(args.run), overrides, args.task or "", args.stage or "")
