"""Speed and memory benchmark: ``python -m diffir.bench [--out bench_results/core.json]``.

Each case runs in a fresh subprocess so that its peak RSS (``ru_maxrss``) is its own: the S2
forward of the full official networks (random weights), under ``torch.inference_mode()``, one
warm-up then ``--repeat`` timed runs; the median is reported. The official implementation on this
machine class (DIFFIR_FACTS.md §9) is printed beside our numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m diffir.bench", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench_results/core.json"))
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    p.add_argument("--_child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        print(json.dumps(run_case(args._child, args.repeat, args.threads)))
        return 0
    results = []
    print(f"{'case':<13}{'median s':>10}{'official s':>12}{'speed-up':>10}{'peak MiB':>10}{'official':>10}")
    for name in args.cases:
        cmd = [
            sys.executable,
            "-m",
            "diffir.bench",
            "--_child",
            name,
            "--repeat",
            str(args.repeat),
            "--threads",
            str(args.threads),
        ]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        ref_s, ref_mib = OFFICIAL[name]
        r.update(official_median_s=ref_s, official_peak_rss_mib=ref_mib)
        results.append(r)
        print(
            f"{name:<13}{r['median_s']:>10.2f}{ref_s:>12.2f}{ref_s / r['median_s']:>9.2f}x{r['peak_rss_mib']:>10.0f}{ref_mib:>10.0f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": torch.get_num_threads(),
    }
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
