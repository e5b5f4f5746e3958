"""Speed and memory benchmarks. Every measurement runs in a fresh subprocess so that its peak RSS
(``ru_maxrss``) is its own.

    python -m diffir.bench            # core: S2 forward of the full official networks (random
                                      # weights), one warm-up + --repeat runs, median; the official
                                      # code's numbers on this machine class are printed beside
    python -m diffir.bench --sweep    # diffir.restore() with the shipped weights: seconds and peak
                                      # memory vs image size (0.25-12 Mpx) and tile size, per task;
                                      # JSON + PNG plot
    python -m diffir.bench --tiling   # tiled vs whole-image output on a natural photo: PSNR and the
                                      # step at tile borders
    python -m diffir.bench --big      # a 4000x3000 deblur with 256 px tiles (full official config)
    python -m diffir.bench --app      # `python app.py` to its first HTTP answer, then the first
                                      # request of each tab at 512x512 through gradio_client
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

CASES = {
    "deblur_256": ("deblur", (1, 3, 256, 256)),
    "sr_x4_64": ("sr_x4", (1, 3, 64, 64)),
    "sr_x4_128": ("sr_x4", (1, 3, 128, 128)),
    "inpaint_256": ("inpaint", (1, 4, 256, 256)),
}
OFFICIAL = {  # seconds, peak MiB (official code, same machine class, torch 2.13, 2 threads)
    "deblur_256": (6.79, 1177),
    "sr_x4_64": (1.06, 487),
    "sr_x4_128": (7.29, 820),
    "inpaint_256": (1.96, 998),
}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(name: str, repeat: int, threads: int) -> dict:
    from .model import VARIANTS, build_model

    torch.set_num_threads(threads)
    variant, shape = CASES[name]
    torch.manual_seed(0)
    model = build_model(VARIANTS[variant]).eval()
    x = torch.rand(shape)
    build_rss = _rss_mib()
    times = []
    with torch.inference_mode():
        model(x)
        for _ in range(repeat):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return {
        "case": name,
        "input": list(shape),
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "peak_rss_mib": _rss_mib(),
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
    from .pipeline import get_model
    from .train import PRESETS
    from .weights import WeightsNotFound

    try:
        return get_model(task), "shipped"
    except WeightsNotFound:
        from .model import DiffIRConfig, build_model

        return build_model(DiffIRConfig(task=task, **PRESETS[task]["model"])).eval(), "preset (random weights)"


def sweep_case(task: str, mpx: float, tile: int, threads: int) -> dict:
    from .imageio import Picture
    from .pipeline import Options, restore

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
    from .data import DEFAULT_CACHE
    from .imageio import Picture, read_image
    from .metrics import psnr
    from .pipeline import Options, restore
    from .tiling import tile_grid

    torch.set_num_threads(threads)
    out = {}
    for task in ("deblur", "sr", "inpaint"):
        model, which = _shipped_or_preset(task)
        val = sorted((DEFAULT_CACHE / "pool" / "val").glob("*.png"))
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
    from .imageio import Picture
    from .model import VARIANTS, build_model
    from .pipeline import Options, restore

    torch.set_num_threads(threads)
    if config == "official":
        model, which = build_model(VARIANTS["deblur"]).eval(), "official full config (random weights)"
    else:
        model, which = _shipped_or_preset("deblur")
    pic = Picture(_test_image(3000, 4000))
    base = _rss_mib()
    done = [0, 0]

    def progress(_: float, message: str) -> None:
        if message.startswith("restoring tile"):
            done[:] = [int(n) for n in message.split()[-1].split("/")]
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
    root = Path(__file__).resolve().parents[1]
    log = (tmp / "app.log").open("w")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
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


def _child(args: list[str]) -> dict:
    cmd = [sys.executable, "-m", "diffir.bench", *args]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.splitlines()[-1])


def plot_sweep(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for task in ("inpaint", "sr", "deblur"):
        for tile in SWEEP_TILES:
            pts = sorted(
                (r["out_mpx"], r["seconds"], r["peak_rss_mib"])
                for r in results
                if r["task"] == task and r["tile"] == tile
            )
            if not pts:
                continue
            x = [p[0] for p in pts]
            style = {0: "-", 256: "--", 512: ":"}[tile]
            label = f"{task}, {'whole image' if tile == 0 else f'tile {tile}'}"
            ax1.plot(x, [p[1] for p in pts], style, marker="o", label=label)
            ax2.plot(x, [p[2] for p in pts], style, marker="o", label=label)
    for ax, title in ((ax1, "seconds per image"), (ax2, "peak memory (MiB, process RSS)")):
        ax.set_xscale("log")
        ax.set_xticks(SWEEP_MPX, [f"{m:g}" for m in SWEEP_MPX])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("output megapixels")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    ax2.legend(fontsize=7)
    fig.suptitle("diffir.restore on CPU (2 threads), shipped weights")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m diffir.bench", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench_results"))
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--sweep", action="store_true", help="seconds and memory vs image and tile size")
    mode.add_argument("--tiling", action="store_true", help="tiled vs whole-image output")
    mode.add_argument("--big", action="store_true", help="4000x3000 deblur with 256 px tiles")
    mode.add_argument("--app", action="store_true", help="app startup and first-request latency per tab")
    p.add_argument("--big-tiles", type=int, default=12, help="big: tiles to run with the official config")
    p.add_argument("--max-mpx", type=float, default=12.0, help="sweep: largest output size")
    p.add_argument("--_child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        kind, *rest = args._child
        if kind == "core":
            r = run_case(rest[0], args.repeat, args.threads)
        elif kind == "sweep":
            r = sweep_case(rest[0], float(rest[1]), int(rest[2]), args.threads)
        elif kind == "tiling":
            r = tiling_case(args.threads)
        elif kind == "app":
            r = app_case(args.threads)
        else:
            r = big_case(args.threads, rest[0], int(rest[1]))
        print(json.dumps(r))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": args.threads,
    }
    common = ["--threads", str(args.threads), "--repeat", str(args.repeat)]
    if args.sweep:
        results = []
        for task in ("inpaint", "sr", "deblur"):
            for mpx in [m for m in SWEEP_MPX if m <= args.max_mpx]:
                for tile in SWEEP_TILES:
                    if tile == 0 and mpx > 1:
                        continue  # whole-image inference is what tiling exists to avoid
                    r = _child([*common, "--_child", "sweep", task, str(mpx), str(tile)])
                    results.append(r)
                    print(
                        f"{task:<8} {mpx:>5} Mpx  tile {tile:>3}  {r['tiles']:>4} tiles  {r['seconds']:>7.1f} s  {r['peak_rss_mib']:>6.0f} MiB",
                        flush=True,
                    )
        (args.out / "sweep.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
        plot_sweep(results, args.out / "sweep.png")
        print(f"wrote {args.out / 'sweep.json'} and {args.out / 'sweep.png'}")
        return 0
    if args.tiling:
        r = _child([*common, "--_child", "tiling"])
        for task, v in r.items():
            print(
                f"{task:<8} {v['size'][0]}x{v['size'][1]} tile {v['tile']} ({v['tiles']} tiles): tiled vs whole PSNR {v['psnr_tiled_vs_whole_db']:.2f} dB, mean |diff| {v['mean_abs_diff_8bit']:.3f}/255, max {v['max_abs_diff_8bit']:.1f}/255, seam step ratio {v['seam_step_ratio']:.3f}"
            )
        (args.out / "tiling.json").write_text(json.dumps({"meta": meta, "results": r}, indent=2) + "\n")
        return 0
    if args.app:
        r = _child([*common, "--_child", "app"])
        print(f"python app.py: first HTTP answer after {r['startup_s']:.1f} s")
        for api, v in r["first_request"].items():
            print(f"  first /{api} at {r['side']}x{r['side']}: {v['seconds']:.1f} s   ({v['status']})")
        (args.out / "app.json").write_text(json.dumps({"meta": meta, "results": r}, indent=2) + "\n")
        return 0
    if args.big:
        results = [
            _child([*common, "--_child", "big", "shipped", "0"]),
            _child([*common, "--_child", "big", "official", str(args.big_tiles)]),
        ]
        for r in results:
            print(
                f"{r['model']}: 4000x3000 deblur, {r['tiles_run']}/{r['tiles']} tiles of 256 run in {r['seconds']:.0f} s"
                f" (whole image ~{r['seconds_full_estimate']:.0f} s), peak {r['peak_rss_mib']:.0f} MiB"
            )
        (args.out / "big.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
        return 0
    results = []
    print(f"{'case':<13}{'median s':>10}{'official s':>12}{'speed-up':>10}{'peak MiB':>10}{'official':>10}")
    for name in args.cases:
        r = _child([*common, "--_child", "core", name])
        ref_s, ref_mib = OFFICIAL[name]
        r.update(official_median_s=ref_s, official_peak_rss_mib=ref_mib)
        results.append(r)
        print(
            f"{name:<13}{r['median_s']:>10.2f}{ref_s:>12.2f}{ref_s / r['median_s']:>9.2f}x{r['peak_rss_mib']:>10.0f}{ref_mib:>10.0f}"
        )
    (args.out / "core.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"wrote {args.out / 'core.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
