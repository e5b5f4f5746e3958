"""The bounds of one restoration, checked in one place before any model work.

Every value a caller can send (the app's API clients, the CLI, Python code) goes through
``check_controls`` when an ``Options`` is built, against the ranges the app's sliders show
(``diffir.tasks.CONTROLS``); ``check_work`` then bounds what the request costs on its image (output
pixels, tile count, whole-image size), so no request can hold the worker far longer than a normal one.
"""

from __future__ import annotations

from typing import Any

from ..errors import ImageError, OptionsError
from ..tasks import CONTROLS, Range

PRECISIONS = ("fp32", "fp16", "bf16", "int8")  # int8: CPU only, nets/pointwise.py
_POSITIVE = Range(1, 2**62)


def _optional(rng: Range, name: str, value: Any, what: str) -> int | None:
    return None if value is None else rng.check(name, value, what)


def check_controls(opts: Any) -> dict[str, Any]:
    """The validated, normalised fields of an ``Options`` (whole floats become ints), or an
    ``OptionsError`` naming the control, its range and what was sent."""
    k = CONTROLS
    v: dict[str, Any] = {
        "steps": _optional(k.steps_range, "steps", opts.steps, "reverse diffusion steps; leave empty for all"),
        "seed": _optional(k.seed_range, "seed", opts.seed, "leave empty for a random seed"),
        "tile": k.tile_range.check("tile", opts.tile, "tile size in input pixels, 0 = whole image"),
        "overlap": k.overlap_range.check("overlap", opts.overlap, "tile overlap in pixels"),
        "dilate": k.dilate_range.check("dilate", opts.dilate, "pixels to grow the inpainting mask by"),
        "max_pixels": _POSITIVE.check("max_pixels", opts.max_pixels, "the pixel limit"),
        "crop_trigger": Range(0, 2**31).check("crop_trigger", opts.crop_trigger, "inpainting crop threshold in px"),
        "crop_margin": Range(0, 2**31).check("crop_margin", opts.crop_margin, "inpainting crop margin in px"),
        "hole_width": Range(0, 4096).check("hole_width", opts.hole_width, "widest hole run at full scale, 0 = always"),
    }
    if v["tile"] and v["overlap"] > v["tile"] // 2:
        raise OptionsError(
            f"overlap {v['overlap']} is more than half the tile size {v['tile']}; "
            f"use an overlap of at most {v['tile'] // 2} or a larger tile."
        )
    if not isinstance(opts.device, str):
        raise OptionsError(f"device must be cpu, cuda or mps, got {opts.device!r}")
    if opts.precision not in PRECISIONS:
        raise OptionsError(f"unknown precision {opts.precision!r}; use {', '.join(PRECISIONS)}")
    return v


def check_output_size(width: int, height: int, scale: int, max_pixels: int) -> None:
    """The pixel limit holds for the output too: a ×4 SR result has 16 times the input's pixels."""
    out = width * height * scale * scale
    if out > max_pixels:
        raise ImageError(
            f"the result would be {out / 1e6:.3g} Mpx ({width * scale}×{height * scale}, ×{scale} of a "
            f"{width}×{height} image); the limit is {max_pixels / 1e6:g} Mpx. Downscale the image to at most "
            f"{max_pixels / scale / scale / 1e6:.2g} Mpx first, or raise the limit (--max-pixels / DIFFIR_MAX_PIXELS)."
        )


def check_work(tile: int, width: int, height: int, tiles: int) -> None:
    """One request may cut its image into at most ``CONTROLS.max_tiles`` tiles, and may process it
    whole (tile 0) only up to the largest tile size."""
    top = CONTROLS.tile_range.high
    if tile == 0 and max(width, height) > top:
        raise OptionsError(
            f"tile 0 (the whole image at once) works on images up to {top} px a side; this one is "
            f"{width}×{height}: choose a tile size (e.g. {CONTROLS.tile})."
        )
    if tiles > CONTROLS.max_tiles:
        raise OptionsError(
            f"tile {tile} would cut this {width}×{height} image into {tiles} tiles (the limit is "
            f"{CONTROLS.max_tiles}); use a larger tile size (e.g. {CONTROLS.tile})."
        )
