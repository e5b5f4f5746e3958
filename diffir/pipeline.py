"""``diffir.restore``: any image in, a faithful restored image out. Shared by the web app and the CLI.

The flow for one image:

1. decode (``imageio.read_image``): colour to restore, plus alpha / grey / 16-bit / ICC kept aside;
2. pad to the network's multiple (reflect; LaMa's edge-inclusive mirror for inpainting);
3. the IPR, once per image: CPEN (tiled exactly on large images) → the seeded reverse diffusion;
4. DIRformer over overlapping tiles under that one IPR, feather-blended on the CPU;
5. crop, put alpha back (Lanczos-resized for SR), composite inpainting holes, encode.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from .diffusion import initial_noise
from .imageio import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    Picture,
    encode_png,
    mask_from_image,
    read_image,
    resize_alpha,
    with_rgb,
)
from .model import DiffIRS2
from .tiling import cpen_pooled_tiled, pad_to_multiple, run_tiled, tile_grid
from .weights import load_network, resolve_weights

TASKS = ("inpaint", "sr", "deblur")
Progress = Callable[[float, str], None]
CPEN_TILE = 256  # CPEN window (at CPEN input resolution) when tiling


@dataclass(frozen=True)
class Options:
    """Controls of one restoration. ``seed=None`` draws a random seed (always recorded)."""

    steps: int | None = None  # reverse diffusion steps, 1..T (None: all T)
    seed: int | None = None
    tile: int = 512  # DIRformer tile in input pixels; 0 = whole image at once
    overlap: int = 32
    device: str = "cpu"  # cpu, cuda, mps
    precision: str = "fp32"  # fp16 / bf16 on a GPU (falls back to fp32 on NaN)
    dilate: int = 0  # inpainting: grow the mask by this many pixels
    max_pixels: int = DEFAULT_MAX_PIXELS
    crop_trigger: int = 1024  # inpainting: images larger than this (px, long side) are cropped around the mask
    crop_margin: int = 128


@dataclass
class Restored:
    """The output picture and everything needed to reproduce it."""

    task: str
    picture: Picture
    source: Picture
    seed: int
    steps: int
    tiles: int
    seconds: float
    device: str
    precision: str
    extra: dict[str, Any] = field(default_factory=dict)

    def png(self) -> bytes:
        return encode_png(self.picture)

    def summary(self) -> str:
        (w, h), (ow, oh) = self.source.size, self.picture.size
        parts = [
            f"input {w}×{h} {self.source.source_format} {self.source.source_mode}",
            f"output {ow}×{oh} {self.picture.mode}",
            f"{self.steps} step{'s' if self.steps != 1 else ''}",
            f"seed {self.seed}",
            f"{self.tiles} tile{'s' if self.tiles != 1 else ''}",
            f"{self.seconds:.1f} s on {self.device}" + (f" ({self.precision})" if self.precision != "fp32" else ""),
        ]
        parts += [f"{k} {v}" for k, v in self.extra.items()]
        return " · ".join(parts)


# --------------------------------------------------------------------------------------------------
# Models: loaded once per process
# --------------------------------------------------------------------------------------------------

_MODELS: dict[tuple[str, str, str], DiffIRS2] = {}
_MODELS_LOCK = threading.Lock()


def get_model(task: str, weights: str | Path | None = None, device: str = "cpu") -> DiffIRS2:
    """The stage-2 network for ``task`` (resolved as ``weights.resolve_weights``), cached."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    path = resolve_weights(task, weights)
    key = (task, str(path), device)
    with _MODELS_LOCK:
        if key not in _MODELS:
            model = load_network(path, device=device)
            if model.config.task != task:
                raise ImageError(f"{path} is a {model.config.task} network, not {task}")
            if not isinstance(model, DiffIRS2):
                raise ImageError(f"{path} is a stage-1 network (it needs the ground truth); use a stage-2 model")
            _MODELS[key] = model.requires_grad_(False)
        return _MODELS[key]


def check_device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise ImageError("device 'cuda' was requested but no CUDA GPU is available; use --device cpu")
    if device == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ImageError("device 'mps' was requested but Apple's Metal backend is not available; use --device cpu")
    if device not in ("cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise ImageError(f"unknown device {device!r}; use cpu, cuda or mps")
    return torch.device(device)


# --------------------------------------------------------------------------------------------------
# The network on one padded tensor
# --------------------------------------------------------------------------------------------------


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    if precision == "fp32" or device.type == "cpu":
        return contextlib.nullcontext()
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    if dtype is None:
        raise ImageError(f"unknown precision {precision!r}; use fp32, fp16 or bf16")
    return torch.autocast(device.type, dtype=dtype)


def count_tiles(model: DiffIRS2, h: int, w: int, opts: Options) -> int:
    """How many DIRformer tiles an h×w input takes (after padding)."""
    m = model.config.multiple
    return len(tile_grid(-(-h // m) * m, -(-w // m) * m, opts.tile, opts.overlap, m))


def run_network(
    model: DiffIRS2,
    x: torch.Tensor,
    *,
    seed: int,
    opts: Options,
    precision: str,
    progress: Progress | None = None,
) -> torch.Tensor:
    """1×C×H×W float32 CPU input (unpadded) → 1×3×(sH)×(sW) float32 CPU output (unclamped)."""
    cfg = model.config
    device = next(model.parameters()).device
    h, w = x.shape[-2:]
    xp, _, _ = pad_to_multiple(x, cfg.multiple, "symmetric" if cfg.task == "inpaint" else "reflect")
    noise = initial_noise(1, generator=torch.Generator().manual_seed(seed))  # on the CPU: same on every device
    with torch.inference_mode(), _autocast(device, precision):
        if progress:
            progress(0.0, "computing the image prior (IPR)")
        packed = model.cpen.pack(xp)
        if opts.tile > 0 and max(packed.shape[-2:]) > CPEN_TILE:
            pooled = cpen_pooled_tiled(
                lambda t: model.cpen.features(t.to(device)), packed, CPEN_TILE, model.cpen.receptive_radius
            )
        else:
            pooled = model.cpen.features(packed.to(device)).float().mean(dim=(2, 3))
        c = model.cpen.head(pooled.to(device))
        ipr = model.prior(xp, steps=opts.steps, noise=noise.to(device), c=c)

        def report(done: int, total: int) -> None:
            if progress:
                progress(0.05 + 0.95 * done / total, f"restoring tile {done}/{total}")

        out = run_tiled(
            xp,
            lambda t: model.dirformer(t.to(device), ipr),
            tile=opts.tile,
            overlap=opts.overlap,
            scale=cfg.out_scale,
            multiple=cfg.multiple,
            progress=report,
        )
    return out[..., : h * cfg.out_scale, : w * cfg.out_scale]


def _infer(
    model: DiffIRS2, x: torch.Tensor, seed: int, opts: Options, progress: Progress | None
) -> tuple[np.ndarray, str]:
    """Run, retrying in fp32 when reduced precision overflows; returns (H×W×3 float, precision used)."""
    precision = opts.precision
    out = run_network(model, x, seed=seed, opts=opts, precision=precision, progress=progress)
    if precision != "fp32" and not torch.isfinite(out).all():
        precision = f"fp32 ({opts.precision} gave NaN/inf)"
        out = run_network(model, x, seed=seed, opts=opts, precision="fp32", progress=progress)
    return out[0].clamp(0, 1).permute(1, 2, 0).numpy(), precision


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()


# --------------------------------------------------------------------------------------------------
# Inpainting helpers
# --------------------------------------------------------------------------------------------------


def prepare_mask(mask: np.ndarray, size: tuple[int, int], dilate: int) -> np.ndarray:
    """Validate (size, non-empty) and dilate a boolean hole mask (True = fill)."""
    w, h = size
    if mask.shape != (h, w):
        raise ImageError(
            f"the mask is {mask.shape[1]}×{mask.shape[0]} but the image is {w}×{h}; they must be the same size."
        )
    if dilate > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1))
        mask = cv2.dilate(mask.astype(np.uint8), k) > 0
    if not mask.any():
        raise ImageError("the mask is empty: paint over the area you want to fill (white = fill).")
    return mask


def crop_box(mask: np.ndarray, trigger: int, margin: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) to process: the whole image, or the mask's box plus a margin on big images
    (IOPaint's "Crop" strategy: the network sees the hole at its native scale, quickly)."""
    h, w = mask.shape
    if max(h, w) <= trigger:
        return 0, h, 0, w
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    my = max(margin, (y1 - y0) // 2)
    mx = max(margin, (x1 - x0) // 2)
    return max(0, y0 - my), min(h, y1 + my), max(0, x0 - mx), min(w, x1 + mx)


# --------------------------------------------------------------------------------------------------
# The public entry point
# --------------------------------------------------------------------------------------------------


def restore(
    task: str,
    image: str | Path | bytes | Picture | Any,
    *,
    mask: Any = None,
    model: DiffIRS2 | None = None,
    weights: str | Path | None = None,
    options: Options | None = None,
    progress: Progress | None = None,
) -> Restored:
    """Restore one image. ``image``/``mask``: a path, bytes, a PIL image, a ``Picture`` or an array.

    Raises ``ImageError`` (a message meant for the user) for anything wrong with the input.
    """
    opts = options or Options()
    if task not in TASKS:
        raise ImageError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    device = check_device(opts.device)
    t0 = time.perf_counter()
    source = image if isinstance(image, Picture) else read_image(image, max_pixels=opts.max_pixels)
    if model is None:
        model = get_model(task, weights, str(device))
    elif model.config.task != task:
        raise ImageError(f"this is a {model.config.task} network, not {task}")
    if opts.steps is not None and not 1 <= opts.steps <= model.config.timesteps:
        raise ImageError(f"steps must be between 1 and {model.config.timesteps}, got {opts.steps}")
    if opts.tile < 0 or opts.overlap < 0:
        raise ImageError("tile size and overlap must not be negative")
    seed = secrets.randbelow(2**31) if opts.seed is None else int(opts.seed)
    steps = opts.steps or model.config.timesteps
    w, h = source.size
    extra: dict[str, Any] = {}

    if task == "inpaint":
        if mask is None:
            raise ImageError("inpainting needs a mask: paint over the area to fill.")
        m = (
            mask
            if isinstance(mask, np.ndarray) and mask.dtype == bool
            else mask_from_image(mask, max_pixels=opts.max_pixels)
        )
        m = prepare_mask(m, source.size, opts.dilate)
        y0, y1, x0, x1 = crop_box(m, opts.crop_trigger, opts.crop_margin)
        rgb, hole = source.rgb[y0:y1, x0:x1], m[y0:y1, x0:x1]
        hf = hole[..., None].astype(np.float32)
        x = _tensor(np.concatenate([rgb * (1 - hf), hf], axis=2))
        tiles = count_tiles(model, y1 - y0, x1 - x0, opts)
        pred, precision = _infer(model, x, seed, opts, progress)
        out_rgb = source.rgb.copy()
        out_rgb[y0:y1, x0:x1][hole] = pred[hole]  # every pixel outside the mask stays the input's own
        picture = with_rgb(source, out_rgb)
        extra["mask"] = f"{100 * m.mean():.1f}%"
        if (y1 - y0, x1 - x0) != (h, w):
            extra["crop"] = f"{x1 - x0}×{y1 - y0}"
    else:
        x = _tensor(source.rgb)
        tiles = count_tiles(model, h, w, opts)
        out_rgb, precision = _infer(model, x, seed, opts, progress)
        alpha = source.alpha
        if alpha is not None and model.config.out_scale != 1:
            alpha = resize_alpha(alpha, (out_rgb.shape[1], out_rgb.shape[0]))
        picture = dataclasses.replace(source, rgb=out_rgb.astype(np.float32), alpha=alpha)
    if progress:
        progress(1.0, "done")
    return Restored(
        task=task,
        picture=picture,
        source=source,
        seed=seed,
        steps=steps,
        tiles=tiles,
        seconds=time.perf_counter() - t0,
        device=str(device),
        precision=precision,
        extra=extra,
    )
