"""``python -m diffir.bench --e2e``: the shipped models end to end through ``diffir.restore`` (PNG
bytes in, PNG bytes out, default options, 2 threads), the current code against the previous one.

Cases (issue 15's goals): a 1024×1024 deblur, a 256×256 → 1024×1024 super-resolution, a 1024×1024
inpainting with a 10 % stroke mask. Each measurement is its own process (its peak RSS is its own),
old and new alternate. "old" puts back what this round changed: glibc's allocator defaults
(``allocator.py``), the tile grid that added a window for a sliver (3 × 3 tiles of 512 px for
1024 px) and the blocks that modulate in separate passes.
"""

from __future__ import annotations

import io
import math
import time

import numpy as np
import torch

from ..allocator import tune_allocator

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


def _case_input(name: str) -> tuple[str, bytes, np.ndarray | None]:
    """(task, the test photo as PNG bytes, the inpainting mask) of an end-to-end case."""
    from PIL import Image

    from .cases import _test_image

    task, side = E2E[name]
    buf = io.BytesIO()
    Image.fromarray((_test_image(side, side) * 255).round().astype(np.uint8)).save(buf, "PNG")
    return task, buf.getvalue(), stroke_mask(side) if task == "inpaint" else None


def e2e_case(name: str, code: str, threads: int) -> dict:
    from ..inference.pipeline import Options, get_model, restore
    from .cases import _rss_mib

    torch.set_num_threads(threads)
    if code == "old":
        _use_old_code()
    else:
        tune_allocator()
    task, png_in, mask = _case_input(name)
    model = get_model(task)
    base = _rss_mib()
    t = time.perf_counter()
    result = restore(task, png_in, mask=mask, model=model, options=Options(seed=0))
    png = result.png()
    seconds = time.perf_counter() - t
    return {"case": name, "code": code, "seconds": seconds, "tiles": result.tiles, "peak_rss_mib": _rss_mib(),
            "model_rss_mib": base, "out_bytes": len(png), "mask_fraction": float(mask.mean()) if mask is not None else 0}  # fmt: skip


def profile_case(name: str, threads: int, top: int = 12) -> dict:
    """Where the time of one end-to-end case goes: wall seconds per part of the network (forward
    hooks: each DIRformer level, CPEN, the IPR denoiser; the rest is decoding, tiling, blending and
    encoding) and the torch operators with the most self time (``torch.profiler``)."""
    from torch.profiler import ProfilerActivity, profile

    from ..inference.pipeline import Options, get_model, restore

    torch.set_num_threads(threads)
    tune_allocator()
    task, png_in, mask = _case_input(name)
    model = get_model(task)
    parts = {f"DIRformer.{n}": m for n, m in model.dirformer.named_children() if any(True for _ in m.parameters())}
    parts["IPR denoiser"] = model.denoiser
    spent = dict.fromkeys([*parts, "CPEN_S2"], 0.0)

    def cpen_features(x: torch.Tensor) -> torch.Tensor:  # the pipeline calls CPEN's parts, not CPEN
        t = time.perf_counter()
        out = type(model.cpen).features(model.cpen, x)
        spent["CPEN_S2"] += time.perf_counter() - t
        return out

    model.cpen.features = cpen_features  # type: ignore[method-assign]
    started: dict[str, float] = {}
    hooks = []
    for part, module in parts.items():
        hooks.append(module.register_forward_pre_hook(lambda *_, p=part: started.__setitem__(p, time.perf_counter())))
        hooks.append(module.register_forward_hook(lambda *_, p=part: spent.__setitem__(p, spent[p] + time.perf_counter() - started[p])))  # fmt: skip
    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        restore(task, png_in, mask=mask, model=model, options=Options(seed=0)).png()
    seconds = time.perf_counter() - t
    for h in hooks:
        h.remove()
    del model.cpen.features
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    return {"case": name, "seconds": seconds, "parts": {k: round(v, 3) for k, v in spent.items() if v > 0},
            "ops": {e.key: round(e.self_cpu_time_total / 1e6, 3) for e in ops[:top]}}  # fmt: skip
