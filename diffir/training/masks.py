"""Free-form inpainting masks (LaMa's strokes and boxes; DiffIR reuses LaMa) and their presets."""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

Rng = np.random.Generator


@dataclass(frozen=True)
class StrokeParams:
    min_times: int
    max_times: int
    max_width: int
    max_len: int
    max_angle: int = 4


@dataclass(frozen=True)
class BoxParams:
    min_times: int
    max_times: int
    min_size: int
    max_size: int
    margin: int


@dataclass(frozen=True)
class MaskPreset:
    strokes: StrokeParams
    boxes: BoxParams | None = None
    box_proba: float = 0.0
    max_area: float = 0.5

    def scaled(self, factor: float) -> MaskPreset:
        """The same preset for an image ``factor`` times larger (LaMa's 512 presets ≈ 2×)."""
        s = self.strokes
        strokes = replace(s, max_width=round(s.max_width * factor), max_len=round(s.max_len * factor))
        boxes = None
        if self.boxes is not None:
            b = self.boxes
            boxes = replace(
                b,
                min_size=round(b.min_size * factor),
                max_size=round(b.max_size * factor),
                margin=round(b.margin * factor),
            )
        return replace(self, strokes=strokes, boxes=boxes)


MASK_PRESETS: dict[str, MaskPreset] = {
    "thin": MaskPreset(StrokeParams(4, 50, 10, 40)),
    "medium": MaskPreset(StrokeParams(4, 5, 50, 100), BoxParams(1, 5, 10, 50, 0), box_proba=0.3),
    "thick": MaskPreset(StrokeParams(1, 5, 100, 200), BoxParams(1, 3, 30, 150, 10), box_proba=0.3),
    "train": MaskPreset(StrokeParams(1, 5, 100, 200), BoxParams(1, 4, 30, 150, 10), box_proba=1.0),
    "painted": MaskPreset(StrokeParams(2, 6, 25, 80), BoxParams(1, 2, 12, 60, 10), box_proba=0.25, max_area=0.3),
}
"""LaMa presets for 256×256 images; ``train`` is DiffIR's training mix (strokes or boxes, 50/50);
``painted`` is what people paint in the app (strokes 5-30 px wide at 256, i.e. 10-60 at 512, a few blobs)."""


def stroke_mask(shape: tuple[int, int], p: StrokeParams, rng: Rng) -> np.ndarray:
    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    for i in range(int(rng.integers(p.min_times, p.max_times + 1))):
        x, y = int(rng.integers(w)), int(rng.integers(h))
        for _ in range(1 + int(rng.integers(5))):
            angle = 0.01 + int(rng.integers(p.max_angle))
            if i % 2 == 0:
                angle = 2 * np.pi - angle
            length = 10 + int(rng.integers(p.max_len))
            width = 5 + int(rng.integers(p.max_width))
            x2 = int(np.clip(x + length * np.sin(angle), 0, w))
            y2 = int(np.clip(y + length * np.cos(angle), 0, h))
            cv2.line(mask, (x, y), (x2, y2), 1, width)
            x, y = x2, y2
    return mask


def box_mask(shape: tuple[int, int], p: BoxParams, rng: Rng) -> np.ndarray:
    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    max_size = min(p.max_size, h - 2 * p.margin, w - 2 * p.margin)
    for _ in range(int(rng.integers(p.min_times, p.max_times + 1))):
        bw = int(rng.integers(p.min_size, max(p.min_size, max_size) + 1))
        bh = int(rng.integers(p.min_size, max(p.min_size, max_size) + 1))
        x = int(rng.integers(p.margin, max(p.margin, w - p.margin - bw) + 1))
        y = int(rng.integers(p.margin, max(p.margin, h - p.margin - bh) + 1))
        mask[y : y + bh, x : x + bw] = 1
    return mask


def random_mask(shape: tuple[int, int], preset: MaskPreset, rng: Rng, attempts: int = 20) -> np.ndarray:
    """One mask of the preset's mix (strokes or boxes, LaMa's MixedMaskGenerator); masks covering
    more than ``max_area`` or nothing at all are redrawn."""
    mask = np.zeros(shape, np.uint8)
    for _ in range(attempts):
        use_boxes = preset.boxes is not None and rng.random() < preset.box_proba / (1 + preset.box_proba)
        mask = box_mask(shape, preset.boxes, rng) if use_boxes else stroke_mask(shape, preset.strokes, rng)
        if 0 < mask.mean() <= preset.max_area:
            return mask
    return mask
