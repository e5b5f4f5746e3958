"""Evaluation on whole images with seeded degradations, against classical baselines.

    python -m diffir.evaluate --task sr [--data DIR] [--weights W] [--s1 W1] [--out DIR]
    python -m diffir.evaluate --task sr --curve runs/sr_s1 runs/sr_s2   # validation PSNR vs hours

* SR ×4: Y-PSNR / SSIM (border 4) on bicubic-down-sampled inputs against bicubic and Lanczos
  up-sampling and Real-ESRGAN x4plus, with NIQE (``pip install -e ".[eval]"``: ``peers.py``);
  the same on moderate real-world (second-order) degradations.
* Deblur: PSNR / SSIM on random camera-trajectory blur (8-20 px, σ 0.01 noise) against the blurred
  input and Wiener deconvolution *given the true kernel* (noise-to-signal ratio tuned on the set).
* Inpainting: hole-region PSNR (and whole-image PSNR / SSIM) on LaMa "medium" masks against OpenCV's
  Telea and Navier-Stokes and biharmonic inpainting.

Our network is reported as stage 2 with all diffusion steps, with one step, with CPEN_S2's output
used directly as the IPR (no diffusion: the paper's ablation), stage 1 (GT-informed IPR: the upper
bound stage 2 learns to approach) and, for SR, the S2-GAN "sharp" model. Writes ``results.json``,
``table.md`` and ``crops.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw

from ..checkpoints import WEIGHTS_DIR, load_network
from ..inference.forward import forward_padded
from ..nets.model import DiffIRS1, DiffIRS2
from ..tasks import SHARP, get_task, image_tensor, tensor_image
from . import peers
from .data import validation_images

WIENER_NSR = (1e-3, 3e-3, 1e-2, 2e-2, 3e-2, 5e-2, 1e-1)


# --------------------------------------------------------------------------------------------------
# Data: (input, GT, extra) per image, seeded by the image's index
# --------------------------------------------------------------------------------------------------


def load_set(data: Path | None, long_side: int) -> dict[str, np.ndarray]:
    if data is None:
        return {k: v.astype(np.float32) / 255 for k, v in validation_images(None, long_side).items()}
    out = {}
    for p in sorted(
        q for q in data.iterdir() if q.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
    ):
        im = Image.open(p).convert("RGB")
        if long_side:
            s = long_side / max(im.size)
            im = im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.LANCZOS)
        im = im.crop((0, 0, im.width // 16 * 16, im.height // 16 * 16))
        out[p.stem] = np.asarray(im).astype(np.float32) / 255
    if not out:
        raise SystemExit(f"no images in {data}")
    return out


# --------------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------------


def upsample(lq: np.ndarray, size: tuple[int, int], method: str) -> np.ndarray:
    interp = {"bicubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}[method]
    return np.clip(cv2.resize(lq, (size[1], size[0]), interpolation=interp), 0, 1)


def wiener(blurred: np.ndarray, kernel: np.ndarray, nsr: float) -> np.ndarray:
    """Frequency-domain Wiener deconvolution with the true kernel (reflect-padded to limit ringing)."""
    pad = kernel.shape[0]
    out = []
    for c in range(blurred.shape[2]):
        x = np.pad(blurred[..., c].astype(np.float64), pad, mode="reflect")
        psf = np.zeros_like(x)
        kh, kw = kernel.shape
        psf[:kh, :kw] = kernel
        psf = np.roll(psf, (-(kh // 2), -(kw // 2)), axis=(0, 1))  # centre the kernel at the origin
        h = np.fft.fft2(psf)
        y = np.conj(h) / (np.abs(h) ** 2 + nsr) * np.fft.fft2(x)
        out.append(np.real(np.fft.ifft2(y))[pad:-pad, pad:-pad])
    return np.clip(np.stack(out, axis=2), 0, 1).astype(np.float32)


def inpaint_opencv(img: np.ndarray, mask: np.ndarray, method: str) -> np.ndarray:
    flag = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}[method]
    u8 = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    out = cv2.inpaint(u8, mask.astype(np.uint8), 5, flag).astype(np.float32) / 255
    return np.where(mask[..., None], out, img)


def inpaint_biharmonic(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    from skimage.restoration import inpaint_biharmonic as bh

    out = bh(np.where(mask[..., None], 0, img), mask, channel_axis=-1).astype(np.float32)
    return np.where(mask[..., None], np.clip(out, 0, 1), img)


# --------------------------------------------------------------------------------------------------
# Our networks
# --------------------------------------------------------------------------------------------------


def run_model(
    model: DiffIRS1 | DiffIRS2, task: str, lq: np.ndarray, gt: np.ndarray, extra: dict, mode: str, seed: int
) -> np.ndarray:
    """mode: 's2' (all steps), 's2_int8' (all steps, ``--precision int8``), 's2_1step', 's2_cpen' (CPEN_S2
    output as the IPR), 's1' (GT-informed IPR)."""
    ipr_mode = {"s2": "diffusion", "s2_int8": "diffusion", "s2_1step": "diffusion", "s2_cpen": "cpen", "s1": "s1"}
    y = forward_padded(
        model,
        image_tensor(lq),
        mode=ipr_mode[mode],  # type: ignore[arg-type]
        gt=image_tensor(gt),
        steps=1 if mode == "s2_1step" else None,
        seed=seed,
        precision="int8" if mode == "s2_int8" else "fp32",
    )
    out = tensor_image(y)
    if task == "inpaint":
        out = np.where(extra["mask"][..., None], out, gt)
    return (out * 255).round() / 255  # what the app writes: 8-bit


# --------------------------------------------------------------------------------------------------
# Scoring and reporting
# --------------------------------------------------------------------------------------------------


def score(task: str, out: np.ndarray, gt: np.ndarray, extra: dict) -> dict[str, float]:
    """The task's full metrics; for SR also NIQE (naturalness, lower is better) when the peers are installed."""
    result = get_task(task).score(out, gt, extra, full=True)
    if task == "sr" and peers.available():  # NaN where the image is too small to measure
        result["niqe"] = peers.niqe(out) if min(out.shape[:2]) > 2 * peers.NIQE_PATCH else float("nan")
    return result


def _crop(img: np.ndarray, box: tuple[int, int, int], scale: int = 1) -> np.ndarray:
    y, x, s = box
    if img.shape[0] != 0 and scale > 1:
        img = cv2.resize(img, (img.shape[1] * scale, img.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    return img[y : y + s, x : x + s]


def crops_png(rows: list[tuple[str, list[tuple[str, np.ndarray]]]], path: Path, cell: int = 192) -> None:
    """One row per image: labelled crops side by side (nearest-neighbour up-scaled to ``cell``)."""
    cols = max(len(r[1]) for r in rows)
    sheet = Image.new("RGB", (cols * (cell + 6) + 6, len(rows) * (cell + 24) + 6), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (_, panels) in enumerate(rows):
        for c, (label, img) in enumerate(panels):
            im = Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8)).resize(
                (cell, cell), Image.Resampling.NEAREST
            )
            x0, y0 = 6 + c * (cell + 6), 6 + r * (cell + 24)
            sheet.paste(im, (x0, y0 + 18))
            draw.text((x0, y0 + 2), label, fill="black")
    sheet.save(path)


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


INT8_ROW = "DiffIR S2 (4 steps, --precision int8)"
Method = Callable[[np.ndarray, np.ndarray, dict, int], np.ndarray]


def methods_for(
    task: str, s2: DiffIRS2 | None, s1: DiffIRS1 | None, sharp: DiffIRS2 | None = None, int8: bool = False
) -> dict[str, Method]:
    """The classical baselines of a task, then our network's rows (the paper's ablations included)."""
    methods: dict[str, Method] = {}
    if task == "sr":
        methods["bicubic"] = lambda lq, gt, ex, i: upsample(lq, gt.shape[:2], "bicubic")
        methods["lanczos"] = lambda lq, gt, ex, i: upsample(lq, gt.shape[:2], "lanczos")
        if peers.available():
            esrgan = peers.RealESRGAN(torch.get_num_threads())
            methods["Real-ESRGAN x4plus"] = lambda lq, gt, ex, i: esrgan(lq)
    elif task == "deblur":
        methods["blurred input"] = lambda lq, gt, ex, i: lq
    else:
        methods["telea"] = lambda lq, gt, ex, i: inpaint_opencv(gt, ex["mask"], "telea")
        methods["navier-stokes"] = lambda lq, gt, ex, i: inpaint_opencv(gt, ex["mask"], "ns")
        methods["biharmonic"] = lambda lq, gt, ex, i: inpaint_biharmonic(gt, ex["mask"])
    rows = {
        "DiffIR S2 (4 steps)": "s2",
        "DiffIR S2 (1 step)": "s2_1step",
        "S2, CPEN_S2 as IPR (no diffusion)": "s2_cpen",
        **({INT8_ROW: "s2_int8"} if int8 else {}),
    }
    for label, mode in rows.items() if s2 is not None else ():
        methods[label] = lambda lq, gt, ex, i, mode=mode: run_model(s2, task, lq, gt, ex, mode, i)
    if sharp is not None:
        methods["DiffIR S2-GAN (sharp)"] = lambda lq, gt, ex, i: run_model(sharp, task, lq, gt, ex, "s2", i)
    if s1 is not None:
        methods["DiffIR S1 (GT-informed IPR)"] = lambda lq, gt, ex, i: run_model(s1, task, lq, gt, ex, "s1", i)
    return methods


def _crop_box(task: str, gt: np.ndarray, extra: dict) -> tuple[int, int, int]:
    h, w = gt.shape[:2]
    if task != "inpaint":
        return (h // 2 - 48, w // 2 - 48, 96)
    ys, xs = np.nonzero(extra["mask"])  # centre the crop on the hole
    cy, cx = int(np.median(ys)), int(np.median(xs))
    return (int(np.clip(cy - 48, 0, h - 96)), int(np.clip(cx - 48, 0, w - 96)), 96)


def _add_wiener(task: str, runs: dict[float, list], per: dict, seconds: dict, crops: list) -> None:
    """The oracle Wiener baseline: the true kernel and the best noise-to-signal ratio on the set."""
    best = max(WIENER_NSR, key=lambda n: np.mean([score(task, o, g, e)["psnr"] for o, g, e in runs[n]]))
    key = f"Wiener, true kernel (NSR {best:g})"
    per[key] = [score(task, o, g, e) for o, g, e in runs[best]]
    for (_, panels), (o, _, _) in zip(crops, runs[best]):
        h, w = o.shape[:2]
        panels.insert(-1, ("Wiener (true kernel)", _crop(o, (h // 2 - 48, w // 2 - 48, 96))))
    seconds[key] = 0.0


def _suffix(variant: str) -> str:
    return "_" + variant.replace("=", "") if variant else ""


def _report(task: str, images: dict, per: dict, seconds: dict, crops: list, out_dir: Path, variant: str) -> dict:
    summary = {m: _mean(v) for m, v in per.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"task": task, "variant": variant or "default", "images": list(images),
              "size": [list(v.shape[:2]) for v in images.values()], "mean": summary, "per_image": per,
              "seconds_total": seconds}  # fmt: skip
    suffix = _suffix(variant)
    (out_dir / f"results{suffix}.json").write_text(json.dumps(result, indent=2) + "\n")
    keys = list(next(iter(summary.values())))
    lines = [f"| method | {' | '.join(keys)} |", "|---|" + "---|" * len(keys)]
    for m, v in summary.items():
        lines.append(f"| {m} | " + " | ".join(f"{v[k]:.4f}" if "ssim" in k else f"{v[k]:.2f}" for k in keys) + " |")
    (out_dir / f"table{suffix}.md").write_text("\n".join(lines) + "\n")
    crops_png(crops[:4], out_dir / f"crops{suffix}.png")
    return result


def evaluate(
    task: str,
    images: dict[str, np.ndarray],
    s2: DiffIRS2 | None,
    s1: DiffIRS1 | None,
    out_dir: Path,
    variant: str = "",
    sharp: DiffIRS2 | None = None,
    int8: bool = False,
) -> dict:
    """Every method on every image (seeded degradations): results JSON, markdown table, crops PNG."""
    methods = methods_for(task, s2, s1, sharp, int8)
    per: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    seconds: dict[str, float] = dict.fromkeys(methods, 0.0)
    crops = []
    wiener_runs: dict[float, list[tuple[np.ndarray, np.ndarray, dict]]] = {}
    for i, (name, gt) in enumerate(images.items()):
        lq, extra = get_task(task).eval_pair(gt, i, variant)
        box = _crop_box(task, gt, extra)
        panels = []
        if task == "inpaint":
            panels.append(("masked input", _crop(np.where(extra["mask"][..., None], 1.0, gt), box)))
        elif task == "sr":
            panels.append(("LQ (nearest)", _crop(lq, box, 4)))
        for m, fn in methods.items():
            t = time.perf_counter()
            out = fn(lq, gt, extra, i)
            seconds[m] += time.perf_counter() - t
            per[m].append(score(task, out, gt, extra))
            if not m.startswith("DiffIR S2 (1") and "no diffusion" not in m and m != INT8_ROW:
                panels.append((m, _crop(out, box)))
        if task == "deblur":
            for nsr in WIENER_NSR:
                wiener_runs.setdefault(nsr, []).append((wiener(lq, extra["kernel"], nsr), gt, extra))
        panels.append(("ground truth", _crop(gt, box)))
        crops.append((name, panels))
    if task == "deblur":
        _add_wiener(task, wiener_runs, per, seconds, crops)
    return _report(task, images, per, seconds, crops, out_dir, variant)


def summary_table(task: str, results: list[dict]) -> str:
    """The task's metric, one column per evaluation variant (e.g. deblurring per trajectory length)."""
    metric = get_task(task).metric
    names = [r["variant"] for r in results]
    lines = [f"| method ({metric}) | {' | '.join(names)} |", "|---|" + "---|" * len(names)]
    for m in results[0]["mean"]:
        lines.append(f"| {m} | " + " | ".join(f"{r['mean'][m][metric]:.2f}" for r in results) + " |")
    return "\n".join(lines) + "\n"


def training_curve(run_dirs: list[Path]) -> list[dict[str, float]]:
    """Validation score against cumulative training hours across the runs of one model (stage 1,
    then stage 2). Logs record the seconds spent (older ones the seconds per iteration); a resumed
    run re-logs the steps after its last checkpoint, and the latest entry for a step wins. Where the
    logs have wall-clock times, the runs are laid out as they ran (a stage 2 trained between two
    stretches of stage 1 sits between them on the axis); without them, one after the other."""
    rows = {run.name: _run_rows(run) for run in run_dirs}
    timed = all(r["time"] is not None for rs in rows.values() for r in rs)
    points, offset = [], 0.0
    for name, rs in rows.items():
        for r in rs:
            if r["val"] is None:
                continue
            before = sum(_hours_at(q, r["time"]) for n, q in rows.items() if n != name) if timed else offset
            points.append(
                {"run": name, "step": r["step"], "hours": round(before + r["hours"], 3), "val_psnr": r["val"]}
            )
        offset += rs[-1]["hours"] if rs else 0.0
    return sorted(points, key=lambda p: p["hours"]) if timed else points


def _run_rows(run: Path) -> list[dict[str, Any]]:
    """One run's log, a row per step: hours spent by then, wall-clock time (if logged), validation score."""
    steps: dict[int, dict] = {}
    vals: dict[int, dict] = {}
    for line in (run / "log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "val_psnr" in rec:
            vals[rec["step"]] = rec
        elif "seconds" in rec or "s_per_it" in rec:
            steps[rec["step"]] = rec
    rows, hours, last = [], 0.0, 0
    for step in sorted(set(steps) | set(vals)):
        rec = steps.get(step)
        if rec is not None:
            hours = rec["seconds"] / 3600 if "seconds" in rec else hours + rec["s_per_it"] * (step - last) / 3600
            last = step
        val = vals.get(step)
        time_ = (rec or val or {}).get("time")
        rows.append({"step": step, "hours": hours, "time": time_, "val": val["val_psnr"] if val else None})
    return rows


def _hours_at(rows: list[dict[str, Any]], when: float) -> float:
    """A run's training hours at a wall-clock time (rows in step order, so in time order)."""
    hours = 0.0
    for r in rows:
        if r["time"] <= when:
            hours = r["hours"]
    return hours


def _segments(points: list[dict[str, float]], run: str) -> tuple[list[float], list[float]]:
    """One run's points, broken (NaN) where another run trained in between: no line across a gap."""
    others = [p["hours"] for p in points if p["run"] != run]
    xs: list[float] = []
    ys: list[float] = []
    for p in (p for p in points if p["run"] == run):
        if xs and any(xs[-1] < h < p["hours"] for h in others):
            xs.append(float("nan"))
            ys.append(float("nan"))
        xs.append(p["hours"])
        ys.append(p["val_psnr"])
    return xs, ys


def plot_curve(
    points: list[dict[str, float]],
    path: Path,
    title: str,
    xlabel: str = "training hours on this machine (2 shared CPU cores)",
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for run in dict.fromkeys(p["run"] for p in points):
        xs, ys = _segments(points, run)
        ax.plot(xs, ys, marker="o", ms=3, label=run)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation PSNR (dB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m diffir.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True, choices=["sr", "deblur", "inpaint"])
    p.add_argument("--data", type=Path, help="folder of ground-truth images (default: the pool's validation photos)")
    p.add_argument("--long-side", type=int, default=512, help="resize images to this long side (0: keep)")
    p.add_argument("--weights", help="stage-2 weights (default: weights/<task>/)")
    p.add_argument("--s1", help="stage-1 weights, for the S1-vs-S2 row")
    p.add_argument("--sharp", help="SR: the S2-GAN (sharp) weights (default: weights/sr_sharp/ if there)")
    p.add_argument("--out", type=Path, help="output folder (default: bench_results/eval_<task>)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--int8", action="store_true", help="add a row: the shipped model with --precision int8")
    p.add_argument("--variant", action="append", metavar="NAME",
                   help="evaluation degradations instead of the task's own (SR: '' and 'real'; deblur: "
                        "'length=N' for N px trajectories); with several, summary.md puts them side by side")  # fmt: skip
    p.add_argument("--curve", nargs="+", type=Path, metavar="RUN_DIR", help="only plot validation PSNR vs hours")
    args = p.parse_args(argv)
    if args.curve:
        out = args.out or Path("bench_results") / f"curve_{args.task}.png"
        points = training_curve(args.curve)
        out.parent.mkdir(parents=True, exist_ok=True)
        plot_curve(points, out, f"DiffIR {args.task}: quality against training time")
        out.with_suffix(".json").write_text(json.dumps(points, indent=1) + "\n")
        print(
            "\n".join(
                f"{p['run']:>12} step {p['step']:5d}  {p['hours']:6.2f} h  {p['val_psnr']:.2f} dB" for p in points
            )
        )
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    images = load_set(args.data, args.long_side)
    weights = args.weights or (WEIGHTS_DIR / args.task if (WEIGHTS_DIR / args.task).is_dir() else None)
    s2 = load_network(weights) if weights else None
    s1 = load_network(args.s1) if args.s1 else None
    sharp_dir = WEIGHTS_DIR / SHARP.folder
    sharp_weights = args.sharp or (sharp_dir if args.task == "sr" and sharp_dir.is_dir() else None)
    sharp = load_network(sharp_weights) if sharp_weights else None
    out = args.out or Path("bench_results") / f"eval_{args.task}"
    variants = args.variant or (["", "real"] if args.task == "sr" else [""])
    if args.task == "sr" and not peers.available():
        print('Real-ESRGAN and NIQE left out: pip install -e ".[eval]" adds them')
    results = []
    for variant in variants:
        results.append(evaluate(args.task, images, s2, s1, out, variant, sharp, args.int8))
        print(f"{args.task}{' (' + variant + ')' if variant else ''}: {len(images)} images")
        print((out / f"table{_suffix(variant)}.md").read_text())
    if len(results) > 1:
        (out / "summary.md").write_text(summary_table(args.task, results))
        print((out / "summary.md").read_text())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
