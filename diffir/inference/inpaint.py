"""Inpainting at the scale the model knows.

A hole painted on a 512-2000 px photo is far wider than any hole in the training patches, and a
network asked to fill far outside what it has seen leaves a grey smudge. So the region around the
hole is restored *downscaled* until its widest stroke is no wider than ``max_hole_width`` (measured:
``python -m diffir.bench --inpaint-scale``), and the fill is upscaled and pasted back into the hole
only: every pixel outside the mask stays bit-identical. Near the hole's edge the upscaled fill is
blended with the known pixels' own continuation (OpenCV's Telea fill at full resolution, a few
pixels deep), so the seam keeps full-resolution detail.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

MAX_HOLE_WIDTH = 96
"""The widest hole (px, twice the largest distance to the hole's edge) run at full scale: the width
of a training patch. Measured (``bench --inpaint-scale``, 8 validation photos at 512 px, painted
strokes whose widest part is 30-84 px, averaging 68): the model of 2026-12-08 02:36 scores 20.09 dB
hole PSNR at full scale (and with 96 or 128 px, which leave these holes at full scale), 20.00 /
19.90 / 19.84 / 19.71 / 19.60 dB with 64 / 48 / 32 / 24 / 16 px, and with a crop (64 px
of context) 19.96; OpenCV's Telea 19.16. The models of 2026-12-07 gave the same picture
(22:27: 20.08 at full scale, 20.01 with the crop; 17:43: 19.71, 19.70 with the crop at 96 px
against 19.35 at 32); the first pull-push model
was best at 32 px (19.60, full scale 19.47), the zero-fill model before it at 16 px: each model
that starts from a better fill copes with wider holes."""
EDGE_BLEND = 3  # px inside the hole where the full-resolution continuation fades into the fill


def hole_width(hole: np.ndarray) -> float:
    """Twice the largest distance of a hole pixel to the nearest known pixel (a stroke's width)."""
    if not hole.any():
        return 0.0
    dist = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 5)
    return 2.0 * float(dist.max())


def working_scale(hole: np.ndarray, max_width: float = MAX_HOLE_WIDTH, min_scale: float = 0.125) -> float:
    """The downscale factor (≤ 1) that brings the widest stroke to ``max_width`` px."""
    w = hole_width(hole)
    return 1.0 if w <= max_width else max(min_scale, max_width / w)


def _edge_blend(rgb: np.ndarray, hole: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """The fill, with its outer ``EDGE_BLEND`` px mixed with a full-resolution Telea continuation."""
    u8 = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
    telea = cv2.inpaint(u8, hole.astype(np.uint8), 3, cv2.INPAINT_TELEA).astype(np.float32) / 255
    depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
    w = np.clip(1.0 - (depth - 1.0) / EDGE_BLEND, 0.0, 1.0)[..., None]  # 1 at the edge → 0 inside
    return w * telea + (1 - w) * fill


def fill_at_scale(
    fill: Callable[[np.ndarray, np.ndarray], np.ndarray], rgb: np.ndarray, hole: np.ndarray, scale: float
) -> np.ndarray:
    """``fill(rgb, hole) → H×W×3`` run at ``scale``; returns a full-size fill (valid inside the hole)."""
    if scale >= 1.0:
        return fill(rgb, hole)
    h, w = hole.shape
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    small_rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    small_hole = cv2.resize(hole.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0  # never shrinks
    small = fill(small_rgb, small_hole)
    up = np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)
    return _edge_blend(rgb, hole, up)
