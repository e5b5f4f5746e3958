"""The network on one image tensor: the one ``forward_padded`` that inference, validation during
training and evaluation all use, so that they cannot drift apart.

1. pad bottom/right to the network's multiple, in the task's pad mode (registry);
2. the IPR, once per image: CPEN (tiled exactly on large inputs) → the seeded reverse diffusion;
   or CPEN_S2's output directly (the paper's no-diffusion ablation); or CPEN_S1 given the GT;
3. DIRformer over overlapping tiles under that one IPR (``tiling.run_tiled``);
4. crop the padding away (times the scale).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np
import torch

from ..errors import OptionsError
from ..nets.diffusion import initial_noise
from ..nets.model import DiffIRS1, DiffIRS2
from ..nets.pointwise import int8_pointwise
from ..tasks import get_task
from .limits import PRECISIONS
from .tiling import cpen_pooled_tiled, needed_tiles, run_tiled, tile_grid

Progress = Callable[[float, str], None]
IprMode = Literal["diffusion", "cpen", "s1"]
CPEN_TILE = 256  # CPEN window (at CPEN input resolution) when tiling
IPR_SHARE = 0.1  # the progress fraction given to reading the whole image (CPEN + diffusion)


def _quiet(fraction: float, message: str) -> None:
    """No progress wanted."""


def check_device(device: str) -> torch.device:
    """A usable torch device, or an ``OptionsError`` that says what to use instead."""
    if device == "cuda" and not torch.cuda.is_available():
        raise OptionsError("device 'cuda' was requested but no CUDA GPU is available; use --device cpu")
    if device == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise OptionsError("device 'mps' was requested but Apple's Metal backend is not available; use --device cpu")
    if device not in ("cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise OptionsError(f"unknown device {device!r}; use cpu, cuda or mps")
    return torch.device(device)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """fp16 / bf16 on GPUs, int8 1×1 convolutions on the CPU (``nets/pointwise.py``); fp32 otherwise.

    The CPU's default stays float32 (the official vectors hold); fp16 / bf16 asked of the CPU run in fp32."""
    if precision not in PRECISIONS:
        raise OptionsError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    if precision == "int8":
        if device.type != "cpu":
            raise OptionsError(f"precision 'int8' is a CPU path; on {device.type} use fp16 or bf16")
        return int8_pointwise()
    if precision == "fp32" or device.type == "cpu":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if precision == "fp16" else torch.bfloat16)


def _padded_needed(needed: np.ndarray | None, h: int, w: int) -> np.ndarray | None:
    """``needed`` (unpadded) grown to the padded h×w; padding is never needed."""
    if needed is None:
        return None
    out = np.zeros((h, w), bool)
    out[: needed.shape[0], : needed.shape[1]] = needed
    return out


def count_tiles(
    model: DiffIRS1 | DiffIRS2, h: int, w: int, tile: int, overlap: int, needed: np.ndarray | None = None
) -> int:
    """How many DIRformer tiles an h×w input takes (after padding); with ``needed`` (h×w bool),
    only the tiles holding a needed pixel (``tiling.needed_tiles``)."""
    m = model.config.multiple
    hp, wp = -(-h // m) * m, -(-w // m) * m
    return len(needed_tiles(tile_grid(hp, wp, tile, overlap, m), _padded_needed(needed, hp, wp)))


def compute_ipr(
    model: DiffIRS1 | DiffIRS2,
    xp: torch.Tensor,
    *,
    mode: IprMode = "diffusion",
    gt: torch.Tensor | None = None,
    steps: int | None = None,
    seed: int = 0,
    cpen_tile: int = 0,
) -> torch.Tensor:
    """The IPR of a padded input (B×256). ``cpen_tile`` > 0 computes CPEN's pooling window by window."""
    device = next(model.parameters()).device
    if mode == "s1":
        if not isinstance(model, DiffIRS1) or gt is None:
            raise OptionsError("the stage-1 IPR needs a stage-1 network and the ground truth")
        return model.cpen(xp.to(device), gt.to(device))
    if not isinstance(model, DiffIRS2):
        raise OptionsError("this is a stage-1 network (it needs the ground truth); use a stage-2 model")
    packed = model.cpen.pack(xp)
    if cpen_tile > 0 and max(packed.shape[-2:]) > cpen_tile:
        pooled = cpen_pooled_tiled(
            lambda t: model.cpen.features(t.to(device)), packed, cpen_tile, model.cpen.receptive_radius
        )
    else:
        pooled = model.cpen.features(packed.to(device)).float().mean(dim=(2, 3))
    c = model.cpen.head(pooled.to(device))
    if mode == "cpen":
        return c
    noise = initial_noise(xp.shape[0], generator=torch.Generator().manual_seed(seed))  # CPU: same on every device
    return model.prior(xp, steps=steps, noise=noise.to(device), c=c)


@contextlib.contextmanager
def stage_reports(net: torch.nn.Module, report: Callable[[float], None]) -> Iterator[None]:
    """Call ``report(fraction of one pass done)`` after each top-level stage of ``net``, so progress
    moves (and a cancel can land) inside a single-tile run. A stage's cost is taken as its
    parameters times the pixels at its U-Net level (level k works on 1/4^(k-1) of them)."""
    owner = threading.get_ident()
    stages = [(n, m) for n, m in net.named_children() if any(True for _ in m.parameters())]
    levels = [3 if "latent" in n else int(d.group(1)) - 1 if (d := re.search(r"(\d)", n)) else 0 for n, _ in stages]
    costs = [sum(p.numel() for p in m.parameters()) / 4.0**lv for (_, m), lv in zip(stages, levels)]
    total, done, handles = sum(costs) or 1.0, 0.0, []
    for (_, m), c in zip(stages, costs):
        done += c

        def hook(*_: Any, f: float = done / total) -> None:
            if threading.get_ident() == owner:  # another thread's run on the same model is not ours
                report(f)

        handles.append(m.register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


class _TileReporter:
    """Progress words and fractions for the DIRformer pass: per stage inside a tile, per tile, and
    the time left once a tile has been timed."""

    def __init__(self, tiles: int, progress: Progress) -> None:
        self.tiles, self.done, self.progress, self.t0 = tiles, 0, progress, time.perf_counter()

    def message(self, fraction: float) -> str:
        if self.tiles == 1:
            return "restoring the image"
        msg = f"restoring tile {min(self.done + 1, self.tiles)}/{self.tiles}"
        done = self.done + fraction
        if self.done > 0 and done < self.tiles:  # timed on whole tiles, counting down within one
            left = (time.perf_counter() - self.t0) / done * (self.tiles - done)
            msg += f", about {left:.0f} s left" if left < 90 else f", about {left / 60:.0f} min left"
        return msg

    def stage(self, fraction: float) -> None:
        self.progress(IPR_SHARE + (1 - IPR_SHARE) * (self.done + fraction) / self.tiles, self.message(fraction))

    def tile(self, done: int, total: int) -> None:
        self.done = done
        self.stage(0.0)


def forward_padded(
    model: DiffIRS1 | DiffIRS2,
    x: torch.Tensor,
    *,
    mode: IprMode = "diffusion",
    gt: torch.Tensor | None = None,
    steps: int | None = None,
    seed: int = 0,
    tile: int = 0,
    overlap: int = 0,
    precision: str = "fp32",
    progress: Progress | None = None,
    needed: np.ndarray | None = None,
) -> torch.Tensor:
    """B×C×H×W float32 input (unpadded, any size) → B×3×(sH)×(sW) float32 CPU output (unclamped).

    ``needed`` (H×W bool, inpainting's hole): DIRformer runs only on the tiles that hold a needed
    pixel; elsewhere the output is the input's first three channels."""
    cfg = model.config
    task = get_task(cfg.task)
    device = next(model.parameters()).device
    h, w = x.shape[-2:]
    xp = task.pad(x, cfg.multiple)
    gp = task.pad(gt, cfg.multiple * cfg.out_scale) if gt is not None else None
    with torch.inference_mode(), autocast(device, precision):
        if progress:
            progress(0.0, "reading the whole image")
        cpen_tile = CPEN_TILE if tile > 0 else 0
        ipr = compute_ipr(model, xp, mode=mode, gt=gp, steps=steps, seed=seed, cpen_tile=cpen_tile)
        reporter = _TileReporter(count_tiles(model, h, w, tile, overlap, needed), progress or _quiet)
        if progress:
            reporter.stage(0.0)
        with stage_reports(model.dirformer, reporter.stage) if progress else contextlib.nullcontext():
            out = run_tiled(
                xp,
                lambda t: model.dirformer(t.to(device), ipr),
                tile=tile,
                overlap=overlap,
                scale=cfg.out_scale,
                multiple=cfg.multiple,
                progress=reporter.tile if progress else None,
                needed=_padded_needed(needed, *xp.shape[-2:]),
            )
    return out[..., : h * cfg.out_scale, : w * cfg.out_scale]
