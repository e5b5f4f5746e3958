"""Speed and memory benchmarks. Every measurement runs in a fresh subprocess so that its peak RSS
(``ru_maxrss``) is its own.

    python -m diffir.bench            # core: S2 forward of the full official networks (random
                                      # weights), ours against the official-style reference
                                      # (reference.py) in one process, alternating, outputs
                                      # compared; the fact sheet's official-code times beside
    python -m diffir.bench --sweep    # diffir.restore() with the shipped weights: seconds and peak
                                      # memory vs image size (0.25-12 Mpx) and tile size, per task;
                                      # JSON + PNG plot
    python -m diffir.bench --tiling   # tiled vs whole-image output on a natural photo: PSNR and the
                                      # step at tile borders
    python -m diffir.bench --big      # a 4000x3000 deblur with 256 px tiles (full official config)
    python -m diffir.bench --inpaint-scale  # inpainting hole PSNR against the working scale (vs Telea)
    python -m diffir.bench --train    # training throughput per preset: old recipe against new (patches/h)
    python -m diffir.bench --e2e      # shipped models through diffir.restore, PNG to PNG: 1024² deblur,
                                      # 256→1024 SR, 1024² inpainting (10 % strokes); this code
                                      # against the previous round's, alternating processes
    python -m diffir.bench --app      # `python app.py` to its first HTTP answer, then the first
                                      # request of each tab at 512x512 through gradio_client
    python -m diffir.bench --backends # the shipped DIRformers on ONNX Runtime / OpenVINO (if
                                      # installed) and with int8 1x1 convolutions against our
                                      # torch path, one tile, alternating
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

import torch

from .cases import CASES, OFFICIAL, SWEEP_MPX, SWEEP_TILES, app_case, big_case, run_case, sweep_case, tiling_case


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
    mode.add_argument("--e2e", action="store_true", help="shipped models end to end, this code against the last")
    mode.add_argument("--app", action="store_true", help="app startup and first-request latency per tab")
    mode.add_argument("--train", action="store_true", help="training throughput, old recipe against new")
    mode.add_argument("--inpaint-scale", action="store_true", help="inpainting hole PSNR against the working scale")
    mode.add_argument("--profile", action="store_true", help="where the end-to-end time goes: network parts, operators")
    mode.add_argument("--backends", action="store_true", help="ONNX Runtime / OpenVINO / int8 against the torch path")
    p.add_argument("--train-seconds", type=float, default=60, help="train: seconds per recipe and round")
    p.add_argument("--train-rounds", type=int, default=2)
    p.add_argument("--tasks", nargs="*", default=["sr", "deblur", "inpaint"], help="train: presets to measure")
    p.add_argument("--e2e-rounds", type=int, default=2, help="e2e: alternating rounds of old and new")
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
        elif kind == "e2e":
            from .e2e import e2e_case

            r = e2e_case(rest[0], rest[1], args.threads)
        elif kind == "profile":
            from .e2e import profile_case

            r = profile_case(rest[0], args.threads)
        elif kind == "backends":
            from .backends import backends_case

            r = backends_case(rest[0], args.threads, args.repeat)
        elif kind == "train":
            from .training import train_child

            r = train_child(rest[0], rest[1], int(rest[2]), float(rest[3]), int(rest[4]))
        else:
            r = big_case(args.threads, rest[0], int(rest[1]))
        print(json.dumps(r))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    args.meta = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": args.threads,
    }
    args.common = ["--threads", str(args.threads), "--repeat", str(args.repeat)]
    for mode in ("sweep", "tiling", "app", "big", "train", "inpaint_scale", "e2e", "profile", "backends"):
        if getattr(args, mode):
            return REPORTS[mode](args)
    return report_core(args)


def report_sweep(args: argparse.Namespace) -> int:
    common, meta = args.common, args.meta
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


def report_tiling(args: argparse.Namespace) -> int:
    common, meta = args.common, args.meta
    r = _child([*common, "--_child", "tiling"])
    for task, v in r.items():
        print(
            f"{task:<8} {v['size'][0]}x{v['size'][1]} tile {v['tile']} ({v['tiles']} tiles): tiled vs whole PSNR {v['psnr_tiled_vs_whole_db']:.2f} dB, mean |diff| {v['mean_abs_diff_8bit']:.3f}/255, max {v['max_abs_diff_8bit']:.1f}/255, seam step ratio {v['seam_step_ratio']:.3f}"
        )
    (args.out / "tiling.json").write_text(json.dumps({"meta": meta, "results": r}, indent=2) + "\n")
    return 0


def report_app(args: argparse.Namespace) -> int:
    common, meta = args.common, args.meta
    r = _child([*common, "--_child", "app"])
    print(f"python app.py: first HTTP answer after {r['startup_s']:.1f} s")
    for api, v in r["first_request"].items():
        print(f"  first /{api} at {r['side']}x{r['side']}: {v['seconds']:.1f} s   ({v['status']})")
    (args.out / "app.json").write_text(json.dumps({"meta": meta, "results": r}, indent=2) + "\n")
    return 0


def report_big(args: argparse.Namespace) -> int:
    common, meta = args.common, args.meta
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


def report_core(args: argparse.Namespace) -> int:
    common, meta = args.common, args.meta
    results = []
    print(f"{'case':<13}{'ours s':>9}{'reference s':>13}{'speed-up':>10}{'max |diff|':>12}{'peak MiB':>10}"
          f"{'official code s (fact sheet)':>30}")  # fmt: skip
    for name in args.cases:
        r = _child([*common, "--_child", "core", name])
        ref_s, ref_mib = OFFICIAL[name]
        r.update(official_median_s=ref_s, official_peak_rss_mib=ref_mib)
        results.append(r)
        print(f"{name:<13}{r['median_s']:>9.2f}{r['reference_median_s']:>13.2f}{r['speedup']:>9.2f}x"
              f"{r['max_abs_diff']:>12.1e}{r['peak_rss_mib']:>10.0f}{ref_s:>30.2f}", flush=True)  # fmt: skip
    (args.out / "core.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"wrote {args.out / 'core.json'}")
    return 0


def report_train(args: argparse.Namespace) -> int:
    from .training import run

    rows = run(args.tasks, args.train_seconds, args.train_rounds)
    (args.out / "train.json").write_text(json.dumps({"meta": args.meta, "results": rows}, indent=2) + "\n")
    print(f"wrote {args.out / 'train.json'}")
    return 0


def report_inpaint_scale(args: argparse.Namespace) -> int:
    from .inpaint_scale import run

    rows = run()
    (args.out / "inpaint_scale.json").write_text(json.dumps({"meta": args.meta, "results": rows}, indent=2) + "\n")
    print(f"wrote {args.out / 'inpaint_scale.json'}")
    return 0


def report_e2e(args: argparse.Namespace) -> int:
    import statistics

    from .e2e import E2E

    rows = []
    print(f"{'case':<16}{'new s':>8}{'old s':>8}{'speed-up':>10}{'new MiB':>9}{'old MiB':>9}{'tiles':>7}"
          f"{'int8 s':>8}{'int8 vs new':>12}{'int8 MiB':>9}")  # fmt: skip
    for name in E2E:
        runs: dict[str, list[dict]] = {"new": [], "old": [], "int8": []}
        for _ in range(args.e2e_rounds):
            for code in runs:
                runs[code].append(_child([*args.common, "--_child", "e2e", name, code]))
        med = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
        peak = {k: max(r["peak_rss_mib"] for r in v) for k, v in runs.items()}
        row = {"case": name, "new_s": med["new"], "old_s": med["old"], "speedup": med["old"] / med["new"],
               "new_peak_mib": peak["new"], "old_peak_mib": peak["old"], "int8_s": med["int8"],
               "int8_speedup": med["new"] / med["int8"], "int8_peak_mib": peak["int8"], "runs": runs}  # fmt: skip
        rows.append(row)
        print(f"{name:<16}{med['new']:>8.1f}{med['old']:>8.1f}{row['speedup']:>9.2f}x{peak['new']:>9.0f}"
              f"{peak['old']:>9.0f}{runs['new'][0]['tiles']:>4}/{runs['old'][0]['tiles']}"
              f"{med['int8']:>8.1f}{row['int8_speedup']:>11.2f}x{peak['int8']:>9.0f}", flush=True)  # fmt: skip
    (args.out / "e2e.json").write_text(json.dumps({"meta": args.meta, "results": rows}, indent=2) + "\n")
    print(f"wrote {args.out / 'e2e.json'}")
    return 0


def report_profile(args: argparse.Namespace) -> int:
    """The end-to-end cases profiled (each in its own process): network parts and top operators."""
    from .e2e import E2E

    rows = [_child([*args.common, "--_child", "profile", name]) for name in E2E]
    lines = []
    for r in rows:
        total = r["seconds"]
        lines += [f"### {r['case']}: {total:.1f} s end to end (profiled)", "", "| part | s | share |", "|---|---|---|"]
        lines += [
            f"| {k} | {v:.2f} | {100 * v / total:.0f} % |" for k, v in sorted(r["parts"].items(), key=lambda kv: -kv[1])
        ]
        rest = max(0.0, total - sum(r["parts"].values()))  # the parts are disjoint modules
        lines += [f"| the rest (decode, tiling, blending, encode) | {rest:.2f} | {100 * rest / total:.0f} % |", ""]
        lines += ["| operator (self time) | s | share |", "|---|---|---|"]
        lines += [f"| `{k}` | {v:.2f} | {100 * v / total:.0f} % |" for k, v in r["ops"].items()] + [""]
    text = "\n".join(lines)
    (args.out / "profile.md").write_text(text)
    (args.out / "profile.json").write_text(json.dumps({"meta": args.meta, "results": rows}, indent=2) + "\n")
    print(text)
    print(f"wrote {args.out / 'profile.md'}")
    return 0


def report_backends(args: argparse.Namespace) -> int:
    from .backends import SIDES

    rows = [_child([*args.common, "--_child", "backends", task]) for task in SIDES]
    print(
        f"{'task':<9}{'backend':<22}{'wall s':>8}{'cpu s':>8}{'speed vs torch (wall, cpu)':>28}{'max |diff|':>12}"
        f"{'PSNR vs torch':>15}"
    )
    for r in rows:
        ours = r["backends"]["torch"]
        for name, v in r["backends"].items():
            ratios = f"{ours['wall_s'] / v['wall_s']:.2f}x, {ours['cpu_s'] / v['cpu_s']:.2f}x"
            print(
                f"{r['task']:<9}{name:<22}{v['wall_s']:>8.2f}{v['cpu_s']:>8.2f}{ratios:>28}{v['max_abs_diff']:>12.1e}"
                f"{v['psnr_vs_torch']:>12.1f} dB"
            )
    (args.out / "backends.json").write_text(json.dumps({"meta": args.meta, "results": rows}, indent=2) + "\n")
    print(f"wrote {args.out / 'backends.json'}")
    return 0


REPORTS = {"e2e": report_e2e, "sweep": report_sweep, "tiling": report_tiling, "app": report_app, "big": report_big,
           "train": report_train, "inpaint_scale": report_inpaint_scale, "profile": report_profile,
           "backends": report_backends}  # fmt: skip

if __name__ == "__main__":
    raise SystemExit(main())
