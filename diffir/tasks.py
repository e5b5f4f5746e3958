"""The task registry: every rule that differs between inpainting, super-resolution and deblurring,
written once (in the spirit of spandrel's model descriptors).

A ``Task`` says how big its output is, how its input is padded, how the network input is built from
a photo (and mask), which controls it offers with which defaults and ranges, and how it is scored
(the evaluation degradation and the metric). The pipeline, training, evaluation, the CLI and the app
all read their rules from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from .errors import OptionsError

TaskName = Literal["inpaint", "sr", "deblur"]
PadMode = Literal["reflect", "symmetric"]


@dataclass(frozen=True)
class Range:
    """An inclusive range a control accepts; ``special`` values are allowed outside it (e.g. tile 0)."""

    low: int
    high: int
    step: int = 1
    special: tuple[int, ...] = ()

    def check(self, name: str, value: Any, what: str) -> int:
        """``value`` as an int, or an ``OptionsError`` that names the control and its range."""
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise OptionsError(f"{name} must be a whole number ({what}), got {value!r}")
        if not isinstance(value, int | np.integer) and not (np.isfinite(value) and float(value).is_integer()):
            raise OptionsError(f"{name} must be a whole number ({what}), got {value}")
        v = int(value)
        if v not in self.special and not self.low <= v <= self.high:
            extra = f" or {', '.join(map(str, self.special))}" if self.special else ""
            raise OptionsError(f"{name} must be between {self.low} and {self.high}{extra} ({what}), got {v}")
        return v


@dataclass(frozen=True)
class Controls:
    """Defaults and ranges of the restoration controls: the app's sliders, the CLI and the API
    clients all get exactly these (``diffir.inference.pipeline.Options`` validates against them)."""

    steps: int = 4
    tile: int = 512
    overlap: int = 32
    dilate: int = 4
    steps_range: Range = Range(1, 4)
    tile_range: Range = Range(64, 2048, 64, special=(0,))
    overlap_range: Range = Range(0, 128, 8)
    seed_range: Range = Range(0, 2**31 - 1)
    dilate_range: Range = Range(0, 64)
    max_tiles: int = 1024  # no request may cut an image into more tiles than this


CONTROLS = Controls()


@dataclass(frozen=True)
class Style:
    """One of a task's trained models (a "look"): where its weights live and what it is for."""

    name: str  # what the API, the CLI (--style) and Python code pass
    folder: str  # weights/<folder>/ (also <folder>/ under --weights or in a Hub repository)
    label: str  # what the app's choice shows
    info: str  # one line on when to pick it


def _styles(*extra: Style, task: str) -> tuple[Style, ...]:
    """The faithful model (pixel-trained, in ``weights/<task>/``) first: it is the default."""
    return (Style("faithful", task, "Faithful", "Stays closest to your photo; soft where detail is lost"), *extra)


@dataclass(frozen=True)
class Task:
    """One restoration task."""

    name: TaskName
    title: str  # what a user reads (app tabs, CLI help)
    api_name: str  # the app's endpoint
    scale: int  # output size / input size
    in_channels: int  # network input channels (inpainting adds the mask)
    pad_mode: PadMode  # reflect (BasicSR) or symmetric (LaMa: edge-inclusive mirror)
    metric: str  # the validation metric's key in ``score``
    controls: Controls = field(default=CONTROLS)
    short: str = ""  # the title in a word or two (the app's tabs must all fit a phone's width)
    styles: tuple[Style, ...] = ()  # the trained models to choose from, the default first

    def style(self, name: str | None = None) -> Style:
        """The named style (the default for ``None`` or ""), or an ``OptionsError`` that lists them."""
        for s in self.styles:
            if not name or s.name == name:
                return s
        raise OptionsError(
            f"{self.title} has no style {name!r}; choose one of {', '.join(s.name for s in self.styles)}"
        )

    # ---------------------------------------------------------------------------------------------
    # Network input and output
    # ---------------------------------------------------------------------------------------------

    def network_input(self, rgb: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """H×W×C float32 network input: the photo, or for inpainting cat[RGB·(1−m), m] (1 = hole)."""
        if self.name != "inpaint":
            return np.ascontiguousarray(rgb, np.float32)
        if mask is None:
            raise OptionsError("inpainting needs a mask: paint over the area to fill.")
        m = mask.astype(np.float32)[..., None]
        return np.concatenate([rgb * (1 - m), m], axis=2).astype(np.float32)

    @staticmethod
    def hole(lq: np.ndarray) -> np.ndarray:
        """The boolean hole of an inpainting network input (its 4th channel)."""
        return lq[..., 3] > 0

    def pad(self, x: torch.Tensor, multiple: int) -> torch.Tensor:
        """Pad a B×C×H×W tensor bottom/right to a multiple, in this task's pad mode."""
        return pad_to_multiple(x, multiple, self.pad_mode)[0]

    # ---------------------------------------------------------------------------------------------
    # Evaluation: degradation and score
    # ---------------------------------------------------------------------------------------------

    def eval_pair(self, gt: np.ndarray, index: int, variant: str = "") -> tuple[np.ndarray, dict[str, Any]]:
        """The seeded evaluation degradation of one GT photo: (network input, extra)."""
        return EVAL_DEGRADATIONS[self.name](gt, np.random.default_rng(20_000 + index), variant)

    def score(self, out: np.ndarray, gt: np.ndarray, extra: dict[str, Any], full: bool = False) -> dict[str, float]:
        """This task's metrics (``metric`` first); ``full`` adds SSIM (slower)."""
        from .training.metrics import psnr, psnr_y, ssim

        if self.name == "sr":
            s = {"psnr_y": psnr_y(out, gt, border=self.scale)}
            if full:
                s["ssim_y"] = ssim(out, gt, border=self.scale, y=True)
            return s
        if self.name == "deblur":
            s = {"psnr": psnr(out, gt)}
        else:
            s = {"psnr_hole": psnr(out, gt, mask=extra["mask"]), "psnr": psnr(out, gt)}
        if full:
            s["ssim"] = ssim(out, gt)
        return s


# --------------------------------------------------------------------------------------------------
# Padding
# --------------------------------------------------------------------------------------------------


def symmetric_pad(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """numpy ``mode='symmetric'`` on the bottom/right (mirror including the edge pixel)."""
    while pad_h > 0 or pad_w > 0:  # a single mirror covers at most the image size
        ph, pw = min(pad_h, x.shape[-2]), min(pad_w, x.shape[-1])
        if ph:
            x = torch.cat([x, x[..., -ph:, :].flip(-2)], dim=-2)
        if pw:
            x = torch.cat([x, x[..., :, -pw:].flip(-1)], dim=-1)
        pad_h, pad_w = pad_h - ph, pad_w - pw
    return x


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: PadMode = "reflect") -> tuple[torch.Tensor, int, int]:
    """Pad bottom/right so H and W are multiples of ``multiple``; returns (padded, pad_h, pad_w).

    ``reflect`` falls back to ``symmetric`` where the image is too small to reflect (pad ≥ size).
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, 0, 0
    if mode == "reflect" and ph < h and pw < w:
        return F.pad(x, (0, pw, 0, ph), mode="reflect"), ph, pw
    return symmetric_pad(x, ph, pw), ph, pw


# --------------------------------------------------------------------------------------------------
# Evaluation degradations (the training degradations are random and live in training/)
# --------------------------------------------------------------------------------------------------

DEBLUR_EVAL_LENGTH = (8.0, 20.0)
"""Motion-blur lengths (px) of the evaluation protocol: moderate shake, full exposure."""
DEBLUR_EVAL_NOISE = 0.01


def _eval_sr(gt: np.ndarray, rng: np.random.Generator, variant: str) -> tuple[np.ndarray, dict[str, Any]]:
    from .training import degradations as D

    if variant == "real":
        return D.realesrgan_degrade(gt, 4, rng, D.MODERATE), {}
    return D.bicubic_downsample(gt, 4), {}


def _eval_deblur(gt: np.ndarray, rng: np.random.Generator, variant: str) -> tuple[np.ndarray, dict[str, Any]]:
    from .training import degradations as D

    length = rng.uniform(*DEBLUR_EVAL_LENGTH)  # drawn either way: "length=N" keeps each photo's path, N px long
    if variant.startswith("length="):
        length = float(variant.removeprefix("length="))
    k = D.motion_kernel(rng, length, 1.0)
    return D.motion_blur(gt, k, DEBLUR_EVAL_NOISE, rng), {"kernel": k}


def _eval_inpaint(gt: np.ndarray, rng: np.random.Generator, variant: str) -> tuple[np.ndarray, dict[str, Any]]:
    from .training import masks as M

    preset = M.MASK_PRESETS["painted" if variant == "painted" else "medium"]
    mask = M.random_mask(gt.shape[:2], preset.scaled(max(gt.shape[:2]) / 256), rng) > 0
    return TASKS["inpaint"].network_input(gt, mask), {"mask": mask}


EVAL_DEGRADATIONS: dict[str, Callable[..., tuple[np.ndarray, dict[str, Any]]]] = {
    "sr": _eval_sr,
    "deblur": _eval_deblur,
    "inpaint": _eval_inpaint,
}

SHARP = Style("sharp", "sr_sharp", "Sharp", "Crisper edges and texture (GAN-trained); may invent fine detail")
"""The S2-GAN model (``training/gan.py``), as the official DiffIRS2-GAN beside the L1 model. Not
shipped yet (none trained here beat the faithful model: ``weights/sr/README.md``); offered wherever
``sr_sharp/`` weights are found (``python -m diffir.training.gan --export weights/sr_sharp``)."""

TASKS: dict[str, Task] = {
    "inpaint": Task("inpaint", "Inpainting", "inpaint", 1, 4, "symmetric", "psnr_hole", short="Inpaint",
                    styles=_styles(task="inpaint")),
    "sr": Task("sr", "Super-resolution ×4", "super_resolve", 4, 3, "reflect", "psnr_y", short="Upscale ×4",
               styles=_styles(SHARP, task="sr")),
    "deblur": Task("deblur", "Motion deblurring", "deblur", 1, 3, "reflect", "psnr", short="Deblur",
                   styles=_styles(task="deblur")),
}  # fmt: skip
TASK_NAMES: tuple[str, ...] = tuple(TASKS)


def get_task(name: str) -> Task:
    """The registry entry, or an ``OptionsError`` that lists the tasks."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise OptionsError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None


def image_tensor(arr: np.ndarray) -> torch.Tensor:
    """H×W×C float array → 1×C×H×W float32 tensor (the one image-to-tensor conversion)."""
    return torch.from_numpy(np.ascontiguousarray(arr, np.float32)).permute(2, 0, 1)[None]


def tensor_image(t: torch.Tensor) -> np.ndarray:
    """1×C×H×W tensor → H×W×C float32 array clamped to [0, 1]."""
    return t[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
