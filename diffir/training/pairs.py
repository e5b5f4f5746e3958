"""Training pairs: random patches of the photo pool, degraded with the task's random training
degradation (the evaluation degradation is the registry's, seeded and fixed).

Pairs are uint8 (what a real low-quality photo is) and H×W×C; ``PairMaker`` makes them one at a
time and is what the patch bank's background writer and the GPU DataLoader workers call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import degradations as D
from . import masks as M
from .data import PatchSampler, load_images


@dataclass(frozen=True)
class Degradation:
    """The random training degradation of a task (and the patch sizes it works on)."""

    task: str
    patch: int  # network-input patch (LQ side for SR)
    scale: int = 1
    sr_bicubic_prob: float = 0.4  # SR: the rest get the moderate Real-ESRGAN degradation
    motion_length: tuple[float, float] = (3.0, 25.0)  # deblur: trajectory length range, px
    mask_preset: str = "train"  # inpainting: LaMa's training mix ...
    painted_prob: float = 0.5  # ... or, with this probability, strokes like people paint in the app
    mask_scale: float = 0.5  # mask presets are for 256 px: scaled to the patch

    @property
    def gt_patch(self) -> int:
        return self.patch * self.scale


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def degrade(gt: np.ndarray, rng: np.random.Generator, d: Degradation) -> np.ndarray:
    """The network input (uint8, H×W×C; inpainting: masked RGB and the mask ×255) for a uint8 GT patch."""
    g = gt.astype(np.float32) / 255
    if d.task == "sr":
        if rng.random() < d.sr_bicubic_prob:
            return _u8(D.bicubic_downsample(g, d.scale))
        return _u8(D.realesrgan_degrade(g, d.scale, rng, D.MODERATE))
    if d.task == "deblur":
        return _u8(D.random_motion_blur(g, rng, D.MotionParams(length=tuple(d.motion_length)))[0])
    preset = "painted" if rng.random() < d.painted_prob else d.mask_preset
    mask = M.random_mask(gt.shape[:2], M.MASK_PRESETS[preset].scaled(d.mask_scale), rng).astype(bool)
    lq = np.where(mask[..., None], 0, gt).astype(np.uint8)
    return np.concatenate([lq, mask[..., None].astype(np.uint8) * 255], axis=2)


class PairMaker:
    """Random (LQ, GT) uint8 pairs from the training photos at several scales."""

    def __init__(self, pool: Path, d: Degradation, image_scales: tuple[float, ...], seed: int) -> None:
        images = load_images(pool)
        if not images:
            raise FileNotFoundError(f"no training images in {pool}: run python -m diffir.training.data collect")
        scaled = []
        for s in image_scales:
            for im in images:
                scaled.append(im if s == 1 else D.resize(im, (round(im.shape[0] * s), round(im.shape[1] * s)), "area"))
        self.rng = np.random.default_rng(seed)
        self.sampler = PatchSampler(scaled, d.gt_patch, self.rng)
        self.d = d

    def __call__(self) -> tuple[np.ndarray, np.ndarray]:
        gt = self.sampler()
        return degrade(gt, self.rng, self.d), gt

    def many(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self() for _ in range(n)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
