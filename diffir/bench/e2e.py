"""``python -m diffir.bench --e2e``: the shipped models end to end through ``diffir.restore`` (PNG
bytes in, PNG bytes out, default options, 2 threads), the current code against the previous one.

Cases (issue 15's goals): a 1024×1024 deblur, a 256×256 → 1024×1024 super-resolution, a 1024×1024
inpainting with a 10 % stroke mask. Each measurement is its own process (its peak RSS is its own),
old and new alternate. "old" puts back what this round changed: glibc's allocator defaults
(``allocator.py``), Pillow's PNG writer, and inpainting's whole-image default (``OLD_OPTIONS``).
"int8" is the new code with ``--precision int8`` (the 1×1 convolutions quantised, off by default).
The round before (tile grid, fused blocks: 70.1 → 29.5 s for the deblur) is in the weights README.
"""

from __future__ import annotations

import io
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


OLD_OPTIONS = {"crop_trigger": 1024, "crop_margin": 128, "hole_width": 16}
"""Last round's inpainting defaults: the whole image up to 1024 px, 128 px of context around a crop,
holes wider than 16 px filled downscaled (now 32: better fills from the pull-push model, more pixels)."""


def _use_old_code() -> None:
    """Last round's code where this round changed it (besides ``OLD_OPTIONS`` and the allocator,
    which "old" leaves at glibc's defaults): colour PNGs written by Pillow at level 6."""
    from PIL import Image

    from ..inference import imageio

    new_encode = imageio.encode_array_png

    def pillow_png(arr: np.ndarray, depth: int, icc: bytes | None = None) -> bytes:
        if depth != 8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
            return new_encode(arr, depth, icc)
        buf = io.BytesIO()
        Image.fromarray(arr, "RGB" if arr.shape[2] == 3 else "RGBA").save(buf, "PNG", icc_profile=icc, compress_level=6)
        return buf.getvalue()

    imageio.encode_array_png = pillow_png  # type: ignore[assignment]


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
    options = {"old": OLD_OPTIONS, "new": {}, "int8": {"precision": "int8"}}[code]
    result = restore(task, png_in, mask=mask, model=model, options=Options(seed=0, **options))
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
