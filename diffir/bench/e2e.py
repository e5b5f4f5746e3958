"""``python -m diffir.bench --e2e``: the shipped models end to end through ``diffir.restore`` (PNG
bytes in, PNG bytes out, default options, 2 threads), the current code against the previous one.

Cases (issue 15's goals): a 1024×1024 deblur, a 256×256 → 1024×1024 super-resolution, a 1024×1024
inpainting with a 10 % stroke mask. Each measurement is its own process (its peak RSS is its own),
old and new alternate. "old" puts back what this round changed: the tile grid that added a window
for a sliver (3 × 3 tiles of 512 px for 1024 px) and the blocks that modulate in separate passes.
"""

from __future__ import annotations

import io
import math
import time

import numpy as np
import torch

E2E = {"deblur_1024": ("deblur", 1024), "sr_256_to_1024": ("sr", 256), "inpaint_1024": ("inpaint", 1024)}


def stroke_mask(side: int, fraction: float = 0.10) -> np.ndarray:
    """Horizontal and slanted brush strokes (about 20 px wide at 1024) covering ``fraction`` of the image."""
    yy, xx = np.mgrid[0:side, 0:side]
    mask = np.zeros((side, side), bool)
    width = max(4, side // 50)
    k = 0
    while mask.mean() < fraction:
        y0 = side * (0.08 + 0.83 * ((k * 0.37) % 1))
        slope = ((k % 3) - 1) * 0.25
        mask |= (np.abs(yy - (y0 + slope * (xx - side / 2))) < width / 2) & (xx > side * 0.05) & (xx < side * 0.95)
        k += 1
    return mask


def _old_tile_grid(h: int, w: int, tile: int, overlap: int, multiple: int = 1) -> list:
    """The grid before this round: fixed ``tile`` windows, one more whenever the image is a bit wider."""
    from ..inference.tiling import Tile

    if tile <= 0 or (tile >= h and tile >= w):
        return [Tile(0, h, 0, w)]
    tile = max(multiple, tile // multiple * multiple)
    overlap = min(overlap, tile // 2)

    def starts(n: int) -> list[int]:
        if tile >= n:
            return [0]
        count = math.ceil((n - overlap) / (tile - overlap))
        pos = [round(i * (n - tile) / (count - 1)) // multiple * multiple for i in range(count)]
        pos[-1] = n - tile
        return sorted(set(pos))

    th, tw = min(tile, h), min(tile, w)
    return [Tile(y, y + th, x, x + tw) for y in starts(h) for x in starts(w)]


def _use_old_code() -> None:
    from ..inference import forward, tiling
    from ..nets import blocks

    def unfused(self: blocks.TransformerBlock, x: torch.Tensor, ipr: torch.Tensor) -> torch.Tensor:
        x = x + self.dmta(self.norm1(x), ipr)
        return x + self.dgfn(self.norm2(x), ipr)

    blocks.TransformerBlock.forward = unfused  # type: ignore[method-assign]
    tiling.tile_grid = forward.tile_grid = _old_tile_grid  # type: ignore[assignment]


def e2e_case(name: str, code: str, threads: int) -> dict:
    from PIL import Image

    from ..inference.pipeline import Options, get_model, restore
    from .cases import _rss_mib, _test_image

    torch.set_num_threads(threads)
    if code == "old":
        _use_old_code()
    task, side = E2E[name]
    buf = io.BytesIO()
    Image.fromarray((_test_image(side, side) * 255).round().astype(np.uint8)).save(buf, "PNG")
    mask = stroke_mask(side) if task == "inpaint" else None
    model = get_model(task)
    base = _rss_mib()
    t = time.perf_counter()
    result = restore(task, buf.getvalue(), mask=mask, model=model, options=Options(seed=0))
    png = result.png()
    seconds = time.perf_counter() - t
    return {"case": name, "code": code, "seconds": seconds, "tiles": result.tiles, "peak_rss_mib": _rss_mib(),
            "model_rss_mib": base, "out_bytes": len(png), "mask_fraction": float(mask.mean()) if mask is not None else 0}  # fmt: skip
