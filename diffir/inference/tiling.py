"""Padding and tiling: bounded memory for any image size, without seams.

DIRformer is applied tile by tile (feathered blending, CPU-side accumulators) while the IPR is
computed once per image, so all tiles are restored under the same prior. CPEN itself can be tiled
exactly: its pooled features are a sum over valid pixels, and each tile carries a halo as wide as
CPEN's receptive field.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Tile:
    """One tile: the input window [y0:y1, x0:x1] it reads, including its overlap."""

    y0: int
    y1: int
    x0: int
    x1: int


def tile_grid(h: int, w: int, tile: int, overlap: int, multiple: int = 1) -> list[Tile]:
    """As few overlapping windows as cover an h×w image when each restores about ``tile`` px per side.

    A window reads at most ``tile + overlap`` px, so neighbours share ``overlap`` px and no window is
    spent on a sliver: 1024 px with tile 512 and overlap 32 is two windows of 528, not three of 512
    (2.25× the work). Window origins and sizes are multiples of ``multiple``; windows are spread
    evenly, the last one flush with the far edge."""
    if tile <= 0:
        return [Tile(0, h, 0, w)]
    tile = max(multiple, tile // multiple * multiple)
    overlap = min(overlap, tile // 2)

    def spans(n: int) -> list[tuple[int, int]]:
        if n <= tile + overlap:
            return [(0, n)]
        count = math.ceil((n - overlap) / tile)
        size = min(n, math.ceil((n + (count - 1) * overlap) / count / multiple) * multiple)
        last = n - size
        starts = {round(i * last / (count - 1)) // multiple * multiple for i in range(count - 1)} | {last}
        return [(p, p + size) for p in sorted(starts)]

    return [Tile(y0, y1, x0, x1) for y0, y1 in spans(h) for x0, x1 in spans(w)]


def needed_tiles(tiles: list[Tile], needed: np.ndarray | None) -> list[Tile]:
    """The tiles whose window holds at least one needed pixel (all of them when ``needed`` is None).

    Inpainting keeps only the hole's pixels, so a window without any hole pixel does not change the
    result: every hole pixel is blended from exactly the same windows as without skipping."""
    if needed is None:
        return tiles
    return [t for t in tiles if needed[t.y0 : t.y1, t.x0 : t.x1].any()]


def feather(n: int, ramp: int, start: bool, end: bool) -> np.ndarray:
    """1-D blending weights: a raised-cosine ramp of ``ramp`` px on the sides that overlap others."""
    wgt = np.ones(n, np.float32)
    if ramp > 0:
        r = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp, dtype=np.float32) + 0.5) / ramp)
        if start:
            wgt[:ramp] = np.minimum(wgt[:ramp], r)
        if end:
            wgt[-ramp:] = np.minimum(wgt[-ramp:], r[::-1])
    return wgt


def run_tiled(
    x: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    tile: int,
    overlap: int,
    scale: int,
    multiple: int,
    out_channels: int = 3,
    progress: Callable[[int, int], None] | None = None,
    needed: np.ndarray | None = None,
) -> torch.Tensor:
    """Apply ``fn`` (input window → output window ``scale`` times larger) over tiles and blend.

    ``x`` is 1×C×H×W with H, W multiples of ``multiple``; accumulation happens on the CPU in
    float32 whatever device ``fn`` runs on, so only one tile lives on the device at a time.
    ``needed`` (H×W bool, scale 1): only windows holding a needed pixel run (``needed_tiles``);
    pixels no window covered keep the input's first ``out_channels`` channels.
    """
    if needed is not None and scale != 1:
        raise ValueError("needed pixels select tiles of same-size outputs only (scale 1)")
    _, _, h, w = x.shape
    grid = tile_grid(h, w, tile, overlap, multiple)
    tiles = needed_tiles(grid, needed)
    if len(grid) == 1:
        out = fn(x).float().cpu()
        if progress:
            progress(1, 1)
        return out
    acc = torch.zeros(1, out_channels, h * scale, w * scale)
    norm = torch.zeros(1, 1, h * scale, w * scale)
    ramp = overlap * scale
    for i, t in enumerate(tiles):
        y = fn(x[..., t.y0 : t.y1, t.x0 : t.x1]).float().cpu()
        wy = feather(y.shape[-2], ramp, t.y0 > 0, t.y1 < h)
        wx = feather(y.shape[-1], ramp, t.x0 > 0, t.x1 < w)
        wgt = torch.from_numpy(np.outer(wy, wx))[None, None]
        acc[..., t.y0 * scale : t.y1 * scale, t.x0 * scale : t.x1 * scale] += y * wgt
        norm[..., t.y0 * scale : t.y1 * scale, t.x0 * scale : t.x1 * scale] += wgt
        if progress:
            progress(i + 1, len(tiles))
    if len(tiles) < len(grid):  # skipped windows: the input shows through where nothing was computed
        empty = norm == 0
        acc += empty * x[:, :out_channels].float().cpu()
        norm += empty
    return acc / norm


def iter_cpen_windows(h: int, w: int, tile: int, halo: int) -> Iterator[tuple[Tile, Tile]]:
    """Windows for exact tiled CPEN at its input resolution: (window read with halo, valid part
    within that window). Halo is dropped at the image border, where the convolution's own zero
    padding is exactly what the whole-image pass sees."""
    step = max(1, tile)
    for y in range(0, h, step):
        for x in range(0, w, step):
            vy1, vx1 = min(y + step, h), min(x + step, w)
            ry0, rx0 = max(0, y - halo), max(0, x - halo)
            ry1, rx1 = min(h, vy1 + halo), min(w, vx1 + halo)
            yield Tile(ry0, ry1, rx0, rx1), Tile(y - ry0, vy1 - ry0, x - rx0, vx1 - rx0)


def cpen_pooled_tiled(
    features: Callable[[torch.Tensor], torch.Tensor], packed: torch.Tensor, tile: int, halo: int
) -> torch.Tensor:
    """Global average of CPEN's feature map computed window by window (bit-for-bit the same maths
    as the whole-image pass up to float summation order)."""
    _, _, h, w = packed.shape
    total = None
    for read, valid in iter_cpen_windows(h, w, tile, halo):
        f = features(packed[..., read.y0 : read.y1, read.x0 : read.x1])
        s = f[..., valid.y0 : valid.y1, valid.x0 : valid.x1].double().sum(dim=(2, 3))
        total = s if total is None else total + s
    assert total is not None
    return (total / (h * w)).to(packed.dtype)
