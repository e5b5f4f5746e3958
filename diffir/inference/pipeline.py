"""``diffir.restore``: any image in, a faithful restored image out. Shared by the web app and the CLI.

The flow for one image:

1. decode (``imageio.read_image``): colour to restore, plus alpha / grey / 16-bit / ICC kept aside;
2. pad to the network's multiple (reflect; LaMa's edge-inclusive mirror for inpainting);
3. the IPR, once per image: CPEN (tiled exactly on large images) → the seeded reverse diffusion;
4. DIRformer over overlapping tiles under that one IPR, feather-blended on the CPU;
5. crop, put alpha back (Lanczos-resized for SR), composite inpainting holes, encode.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..checkpoints import load_network, resolve_weights
from ..errors import ImageError, OptionsError
from ..nets.model import DiffIRS2
from ..tasks import CONTROLS, TASK_NAMES, get_task, image_tensor, tensor_image
from .forward import Progress, check_device, count_tiles, forward_padded
from .imageio import DEFAULT_MAX_PIXELS, Picture, encode_png, mask_from_image, read_image, resize_alpha, with_rgb
from .inpaint import MAX_HOLE_WIDTH, fill_at_scale, working_scale
from .limits import check_controls, check_output_size, check_work

TASKS = TASK_NAMES


@dataclass(frozen=True)
class Options:
    """Controls of one restoration. ``seed=None`` draws a random seed (always recorded).

    Every value is checked when the options are built (``limits.check_controls``: the ranges the
    app's sliders show), so an API client, the CLI and Python code all get the same bounds."""

    steps: int | None = None  # reverse diffusion steps, 1..T (None: all T)
    seed: int | None = None
    tile: int = CONTROLS.tile  # DIRformer tile in input pixels; 0 = whole image at once
    overlap: int = CONTROLS.overlap
    device: str = "cpu"  # cpu, cuda, mps
    precision: str = "fp32"  # fp16 / bf16 on a GPU (falls back to fp32 on NaN); int8 1×1 convs on the CPU
    dilate: int = 0  # inpainting: grow the mask by this many pixels
    max_pixels: int = DEFAULT_MAX_PIXELS
    crop_trigger: int = 512  # inpainting: images larger than this (px, long side) are cropped around the mask
    crop_margin: int = 64  # ... with this much context (or half the hole's box, if more): bench --inpaint-scale
    hole_width: int = MAX_HOLE_WIDTH  # inpainting: wider holes are filled downscaled (inpaint.py); 0 = never

    def __post_init__(self) -> None:
        for name, value in check_controls(self).items():
            object.__setattr__(self, name, value)


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


def get_model(task: str, weights: str | Path | None = None, device: str = "cpu", style: str | None = None) -> DiffIRS2:
    """The stage-2 network for ``task`` in ``style`` (the registry's ``Style``: its weights folder,
    resolved as ``resolve_weights``; ``weights`` naming a model file or folder wins), cached."""
    path = resolve_weights(get_task(task).style(style).folder, weights)
    key = (task, str(path), device)
    with _MODELS_LOCK:
        if key not in _MODELS:
            model = load_network(path, device=device)
            if model.config.task != task:
                raise OptionsError(f"{path} is a {model.config.task} network, not {task}")
            if not isinstance(model, DiffIRS2):
                raise OptionsError(f"{path} is a stage-1 network (it needs the ground truth); use a stage-2 model")
            _MODELS[key] = model.requires_grad_(False)
        return _MODELS[key]


def _infer(
    model: DiffIRS2,
    x: torch.Tensor,
    seed: int,
    opts: Options,
    progress: Progress | None,
    needed: np.ndarray | None = None,
) -> tuple[np.ndarray, str]:
    """Run, retrying in fp32 when reduced precision overflows; returns (H×W×3 float, precision used).
    ``needed``: only the tiles holding these pixels run (inpainting's hole)."""
    run = dict(steps=opts.steps, seed=seed, tile=opts.tile, overlap=opts.overlap, progress=progress, needed=needed)
    precision = opts.precision
    out = forward_padded(model, x, precision=precision, **run)
    if precision != "fp32" and not torch.isfinite(out).all():
        precision = f"fp32 ({opts.precision} gave NaN/inf)"
        out = forward_padded(model, x, precision="fp32", **run)
    return tensor_image(out), precision


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
    """(y0, y1, x0, x1) to process: the mask's box plus a margin (IOPaint's "Crop" strategy), or the
    whole image when it is no larger than ``trigger``. The crop is faster and, measured, better: the
    network trained on 96 px patches fills a hole best from its neighbourhood (bench --inpaint-scale)."""
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


def _check(opts: Options, model: DiffIRS2, source: Picture) -> None:
    """What depends on the network and the image: steps within its schedule, output pixels."""
    if opts.steps is not None and not 1 <= opts.steps <= model.config.timesteps:
        raise OptionsError(f"steps must be between 1 and {model.config.timesteps}, got {opts.steps}")
    check_output_size(*source.size, model.config.out_scale, opts.max_pixels)


def _tiles(model: DiffIRS2, h: int, w: int, opts: Options, needed: np.ndarray | None = None) -> int:
    """The DIRformer tiles of an h×w region (those holding a ``needed`` pixel), within the work one
    request may cause."""
    tiles = count_tiles(model, h, w, opts.tile, opts.overlap, needed)
    check_work(opts.tile, w, h, tiles)
    return tiles


def _inpaint(
    model: DiffIRS2, source: Picture, mask: Any, seed: int, opts: Options, progress: Progress | None
) -> tuple[Picture, int, str, dict[str, Any]]:
    """Fill the hole on the crop around it; every pixel outside the mask stays the input's own."""
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
    scale = working_scale(hole, opts.hole_width) if opts.hole_width else 1.0
    run: dict[str, Any] = {}

    def fill(rgb_s: np.ndarray, hole_s: np.ndarray) -> np.ndarray:
        run["tiles"] = _tiles(model, *hole_s.shape, opts, hole_s)
        x = image_tensor(get_task("inpaint").network_input(rgb_s, hole_s))
        pred, run["precision"] = _infer(model, x, seed, opts, progress, needed=hole_s)
        return pred

    pred = fill_at_scale(fill, rgb, hole, scale)
    tiles, precision = run["tiles"], run["precision"]
    out_rgb = source.rgb.copy()
    out_rgb[y0:y1, x0:x1][hole] = pred[hole]
    extra = {"mask": f"{100 * m.mean():.1f}%"}
    if (y1 - y0, x1 - x0) != m.shape:
        extra["crop"] = f"{x1 - x0}×{y1 - y0}"
    if scale < 1:
        extra["hole filled at"] = f"{100 * scale:.0f}% scale"
    return with_rgb(source, out_rgb), tiles, precision, extra


def _photo(
    model: DiffIRS2, source: Picture, seed: int, opts: Options, progress: Progress | None
) -> tuple[Picture, int, str, dict[str, Any]]:
    """Super-resolution or deblurring of the whole photo; alpha is carried (and resized) alongside."""
    w, h = source.size
    tiles = _tiles(model, h, w, opts)
    out_rgb, precision = _infer(model, image_tensor(source.rgb), seed, opts, progress)
    alpha = source.alpha
    if alpha is not None and model.config.out_scale != 1:
        alpha = resize_alpha(alpha, (out_rgb.shape[1], out_rgb.shape[0]))
    return dataclasses.replace(source, rgb=out_rgb.astype(np.float32), alpha=alpha), tiles, precision, {}


def restore(
    task: str,
    image: str | Path | bytes | Picture | Any,
    *,
    mask: Any = None,
    model: DiffIRS2 | None = None,
    weights: str | Path | None = None,
    options: Options | None = None,
    progress: Progress | None = None,
    style: str | None = None,
) -> Restored:
    """Restore one image. ``image``/``mask``: a path, bytes, a PIL image, a ``Picture`` or an array.
    ``style``: one of the task's models (SR: "faithful", "sharp"); ignored when ``model`` is given.

    Raises a ``UserError`` (``ImageError``, ``OptionsError``, …: a message meant for the user) for
    anything wrong with the input, the options or the weights.
    """
    opts = options or Options()
    get_task(task).style(style)
    scale = model.config.out_scale if model is not None else get_task(task).scale
    device = check_device(opts.device)
    t0 = time.perf_counter()
    source = image if isinstance(image, Picture) else read_image(image, max_pixels=opts.max_pixels, scale=scale)
    if model is None:
        model = get_model(task, weights, str(device), style)
    elif model.config.task != task:
        raise OptionsError(f"this is a {model.config.task} network, not {task}")
    _check(opts, model, source)
    seed = secrets.randbelow(2**31) if opts.seed is None else int(opts.seed)
    if task == "inpaint":
        picture, tiles, precision, extra = _inpaint(model, source, mask, seed, opts, progress)
    else:
        picture, tiles, precision, extra = _photo(model, source, seed, opts, progress)
    if progress:
        progress(1.0, "done")
    return Restored(
        task=task,
        picture=picture,
        source=source,
        seed=seed,
        steps=opts.steps or model.config.timesteps,
        tiles=tiles,
        seconds=time.perf_counter() - t0,
        device=str(device),
        precision=precision,
        extra=extra,
    )
