"""The benchmark cases, each run in its own subprocess by ``python -m diffir.bench`` (so that its
peak RSS is its own); each returns a JSON-able dict."""

from __future__ import annotations

import contextlib
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..settings import ROOT  # app_case starts app.py there

CASES = {
    "deblur_256": ("deblur", (1, 3, 256, 256)),
    "sr_x4_64": ("sr_x4", (1, 3, 64, 64)),
    "sr_x4_128": ("sr_x4", (1, 3, 128, 128)),
    "inpaint_256": ("inpaint", (1, 4, 256, 256)),
}
OFFICIAL = {  # seconds, peak MiB of the official code itself (fact sheet §9: same machine class, torch 2.13, 2 threads)
    "deblur_256": (6.79, 1177),
    "sr_x4_64": (1.06, 487),
    "sr_x4_128": (7.29, 820),
    "inpaint_256": (1.96, 998),
}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(name: str, repeat: int, threads: int) -> dict:
    """Ours against the official-style reference (``reference.py``) with the same random weights, in
    one process: outputs compared first (same seed), then timed runs alternate ours / reference so
    that a busy machine slows both alike."""
    from ..nets.model import VARIANTS, build_model
    from .reference import reference_from

    torch.set_num_threads(threads)
    variant, shape = CASES[name]
    torch.manual_seed(0)
    model = build_model(VARIANTS[variant]).eval()
    x = torch.rand(shape)
    build_rss = _rss_mib()
    with torch.inference_mode():
        torch.manual_seed(1)
        ours = model(x)
        ours = ours[0] if isinstance(ours, tuple) else ours
        ours_rss = _rss_mib()
        reference = reference_from(model)
        torch.manual_seed(1)
        max_diff = float((reference(x) - ours).abs().max())
        times: dict[str, list[float]] = {"ours": [], "reference": []}
        for _ in range(repeat):
            for key, net in (("ours", model), ("reference", reference)):
                t = time.perf_counter()
                net(x)
                times[key].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "case": name,
        "input": list(shape),
        "median_s": med["ours"],
        "min_s": min(times["ours"]),
        "max_s": max(times["ours"]),
        "reference_median_s": med["reference"],
        "speedup": med["reference"] / med["ours"],
        "max_abs_diff": max_diff,
        "peak_rss_mib": ours_rss,
        "model_rss_mib": build_rss,
        "threads": threads,
    }


SWEEP_MPX = (0.25, 1.0, 4.0, 12.0)
SWEEP_TILES = (0, 256, 512)


def _test_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth image with texture: speed does not depend on content, but keep it photo-like."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([np.sin(xx / 37), np.cos(yy / 53), np.sin((xx + yy) / 71)], axis=2) * 0.3 + 0.5
    return np.clip(base + rng.normal(0, 0.03, base.shape).astype(np.float32), 0, 1)


def _shipped_or_preset(task: str):
    """The shipped weights, or (before any exist) the training preset with random weights."""
    from ..errors import WeightsNotFound
    from ..inference.pipeline import get_model
    from ..training.loop import PRESETS

    try:
        return get_model(task), "shipped"
    except WeightsNotFound:
        from ..nets.model import DiffIRConfig, build_model

        return build_model(DiffIRConfig(task=task, **PRESETS[task]["model"])).eval(), "preset (random weights)"


def sweep_case(task: str, mpx: float, tile: int, threads: int) -> dict:
    from ..inference.imageio import Picture
    from ..inference.pipeline import Options, restore

    torch.set_num_threads(threads)
    model, which = _shipped_or_preset(task)
    scale = model.config.out_scale
    # SR: the size axis is the output size (the input is 1/16 of it)
    pixels = mpx * 1e6 / scale**2
    w = round((pixels * 4 / 3) ** 0.5)
    h = round(w * 3 / 4)
    pic = Picture(_test_image(h, w))
    mask = None
    if task == "inpaint":
        mask = np.zeros((h, w), bool)
        mask[h // 4 : h // 2, w // 4 : w // 2] = True
    base = _rss_mib()
    t = time.perf_counter()
    r = restore(task, pic, mask=mask, model=model, options=Options(seed=0, tile=tile, crop_trigger=10**9))
    seconds = time.perf_counter() - t
    return {
        "task": task,
        "weights": which,
        "out_mpx": mpx,
        "input": [w, h],
        "tile": tile,
        "tiles": r.tiles,
        "seconds": seconds,
        "peak_rss_mib": _rss_mib(),
        "model_rss_mib": base,
    }


def edge_step(img: np.ndarray, rows: list[int], cols: list[int]) -> float:
    """Mean |difference| between neighbouring pixels across the given rows and columns."""
    d = [np.abs(img[:, c] - img[:, c - 1]).mean() for c in cols]
    d += [np.abs(img[r] - img[r - 1]).mean() for r in rows]
    return float(np.mean(d))


def tiling_case(threads: int, tile: int = 256, overlap: int = 32) -> dict:
    """Tiled vs whole-image deblurring of a natural photo (the first validation photo, or a synthetic one)."""
    from ..inference.imageio import Picture, read_image
    from ..inference.pipeline import Options, restore
    from ..inference.tiling import tile_grid
    from ..settings import settings
    from ..training.metrics import psnr

    torch.set_num_threads(threads)
    out = {}
    for task in ("deblur", "sr", "inpaint"):
        model, which = _shipped_or_preset(task)
        val = sorted((settings().cache / "pool" / "val").glob("*.png"))
        if val:
            pic = read_image(val[0])
            import cv2

            side = 768 if task != "sr" else 192
            s = side / max(pic.size)
            rgb = cv2.resize(pic.rgb, (round(pic.size[0] * s), round(pic.size[1] * s)), interpolation=cv2.INTER_AREA)
            pic, source = Picture(rgb), val[0].name
        else:
            pic, source = Picture(_test_image(576, 768)), "synthetic"
        h, w = pic.rgb.shape[:2]
        mask = None
        if task == "inpaint":
            mask = np.zeros((h, w), bool)
            for i in range(0, w, 97):
                mask[:, i : i + 9] = True  # stripes that cross every tile border
        t_opts = Options(seed=0, tile=tile // model.config.out_scale if task == "sr" else tile, overlap=overlap)
        whole = restore(task, pic, mask=mask, model=model, options=Options(seed=0, tile=0))
        tiled = restore(task, pic, mask=mask, model=model, options=t_opts)
        a, b = whole.picture.rgb, tiled.picture.rgb
        diff = np.abs(a - b).mean(axis=2)
        # the seam figure: mean |step| between neighbouring pixels across every tile edge, tiled
        # over whole-image output (1.00 = no visible border; a hard cut shows as a ratio above 1)
        m, sc = model.config.multiple, model.config.out_scale
        grid = tile_grid(-(-h // m) * m, -(-w // m) * m, t_opts.tile, overlap, m)  # on the padded input
        cols = sorted({e * sc for t in grid for e in (t.x0, t.x1) if 0 < e < w})
        rows = sorted({e * sc for t in grid for e in (t.y0, t.y1) if 0 < e < h})
        out[task] = {
            "weights": which,
            "image": source,
            "size": [w, h],
            "tile": t_opts.tile,
            "overlap": overlap,
            "tiles": tiled.tiles,
            "psnr_tiled_vs_whole_db": psnr(b, a, mask=mask) if mask is not None else psnr(b, a),
            "max_abs_diff_8bit": float(np.abs(a - b).max() * 255),
            "mean_abs_diff_8bit": float(diff.mean() * 255),
            "seam_step_ratio": edge_step(b, rows, cols) / edge_step(a, rows, cols),
        }
    return out


class _EnoughTiles(Exception):
    pass


def big_case(threads: int, config: str, max_tiles: int = 0) -> dict:
    """A 4000×3000 deblur with 256 px tiles: the memory bound of tiled inference.

    ``max_tiles`` stops after that many tiles (the full official config needs ~25 min on 2 cores):
    the full-size accumulators and the IPR pass are already allocated by then, and every later tile
    reuses the same working set, so the peak is the whole run's.
    """
    from ..inference.imageio import Picture
    from ..inference.pipeline import Options, restore
    from ..nets.model import VARIANTS, build_model

    torch.set_num_threads(threads)
    if config == "official":
        model, which = build_model(VARIANTS["deblur"]).eval(), "official full config (random weights)"
    else:
        model, which = _shipped_or_preset("deblur")
    pic = Picture(_test_image(3000, 4000))
    base = _rss_mib()
    done = [0, 0]

    def progress(_: float, message: str) -> None:
        m = re.search(r"tile (\d+)/(\d+)", message)
        if m:
            done[:] = [int(m[1]), int(m[2])]
            if max_tiles and done[0] >= max_tiles:
                raise _EnoughTiles

    t = time.perf_counter()
    with contextlib.suppress(_EnoughTiles):
        restore("deblur", pic, model=model, options=Options(seed=0, tile=256, overlap=32), progress=progress)
    seconds = time.perf_counter() - t
    return {
        "model": which,
        "size": [4000, 3000],
        "tile": 256,
        "tiles": done[1],
        "tiles_run": done[0],
        "seconds": seconds,
        "seconds_full_estimate": seconds * done[1] / max(done[0], 1),
        "peak_rss_mib": _rss_mib(),
        "model_rss_mib": base,
    }


def app_case(threads: int, side: int = 512) -> dict:
    """Start ``python app.py`` as a user would and time it to the first HTTP answer, then time the
    first request of each tab (``side``² input; SR gets side/4 so its output is side²)."""
    import os
    import socket
    import tempfile
    import urllib.request

    from gradio_client import Client, handle_file
    from PIL import Image

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tmp = Path(tempfile.mkdtemp(prefix="diffir_bench_app_"))
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "OMP_NUM_THREADS": str(threads),
    }
    log = (tmp / "app.log").open("w")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:
            if proc.poll() is not None or time.perf_counter() - t0 > 300:
                raise RuntimeError(f"app did not start: {(tmp / 'app.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        startup = time.perf_counter() - t0
        client = Client(url, verbose=False)
        photo = _test_image(side, side, seed=1)
        paths = {}
        for name, arr in (("full", photo), ("quarter", photo[::4, ::4])):
            paths[name] = tmp / f"{name}.png"
            Image.fromarray((arr * 255).round().astype(np.uint8)).save(paths[name])
        mask = np.zeros((side, side, 4), np.uint8)
        mask[side // 3 : side // 2, side // 4 : 3 * side // 4] = 255
        Image.fromarray(mask).save(tmp / "mask.png")
        requests = {
            "inpaint": (
                {"background": handle_file(paths["full"]), "layers": [handle_file(tmp / "mask.png")], "composite": None},
                4, 0, 32, 0, False, 0,
            ),
            "super_resolve": (handle_file(paths["quarter"]), 4, 0, 32, 0, False),
            "deblur": (handle_file(paths["full"]), 4, 0, 32, 0, False),
        }  # fmt: skip
        latency = {}
        for api, args in requests.items():
            t = time.perf_counter()
            result = client.predict(*args, api_name=f"/{api}")
            latency[api] = {"seconds": time.perf_counter() - t, "status": result[2]}
        return {"startup_s": startup, "first_request": latency, "side": side}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
