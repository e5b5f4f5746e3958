"""A data pack: the training pool cut down to what a GPU run carries (at most ~25 MiB).

    python -m diffir.training.pack --out pack            # then DIFFIR_CACHE=pack on the GPU machine

A lent GPU machine receives only the checkout (under 64 MiB with what it carries) and has no
internet, so it cannot collect the pool itself. The pack keeps, of every training photo, its most
textured square crops at full and half scale (PNG, lossless), and the validation photos at the
validation size, in the pool's own layout (``pool/train``, ``pool/val``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from ..settings import settings
from .data import VAL_LONG_SIDE, collect


def _energy(a: np.ndarray) -> float:
    g = a.astype(np.float32).mean(axis=2)
    return float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())


def best_crops(im: Image.Image, size: int, count: int) -> list[Image.Image]:
    """The ``count`` most textured non-overlapping ``size`` crops on a coarse grid."""
    a = np.asarray(im)
    h, w = a.shape[:2]
    if min(h, w) < size:
        return []
    boxes = [(y, x) for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)]
    boxes.sort(key=lambda b: -_energy(a[b[0] : b[0] + size, b[1] : b[1] + size]))
    return [im.crop((x, y, x + size, y + size)) for y, x in boxes[:count]]


def make_pack(out: Path, cache: Path | None = None, size: int = 384, per_photo: int = 2, max_mib: float = 25) -> Path:
    """Write the pack; crops are dropped (least textured first) until it fits ``max_mib``."""
    pool = collect(cache or settings().cache)
    (out / "pool" / "train").mkdir(parents=True, exist_ok=True)
    (out / "pool" / "val").mkdir(parents=True, exist_ok=True)
    for p in sorted((pool / "val").glob("*.png")):
        im = Image.open(p).convert("RGB")
        s = VAL_LONG_SIDE * 1.5 / max(im.size)  # validation reads 512 px (and 256): keep a little more
        im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.LANCZOS).save(out / "pool/val" / p.name)
    crops = []
    for p in sorted((pool / "train").glob("*.png")):
        im = Image.open(p).convert("RGB")
        half = im.resize((im.width // 2, im.height // 2), Image.Resampling.BOX)
        for scale, src in (("1", im), ("h", half)):
            for i, c in enumerate(best_crops(src, size, per_photo)):
                crops.append((_energy(np.asarray(c)), f"{p.stem}_{scale}{i}.png", c))
    crops.sort(key=lambda t: -t[0])
    total = sum(f.stat().st_size for f in (out / "pool" / "val").glob("*.png"))
    for _, name, c in crops:
        path = out / "pool" / "train" / name
        c.save(path, optimize=True)
        total += path.stat().st_size
        if total > max_mib * 2**20:
            path.unlink()
            break
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m diffir.training.pack", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("pack"))
    p.add_argument("--size", type=int, default=384, help="crop side (px)")
    p.add_argument("--per-photo", type=int, default=2, help="crops per photo and scale")
    p.add_argument("--max-mib", type=float, default=25)
    args = p.parse_args(argv)
    out = make_pack(args.out, size=args.size, per_photo=args.per_photo, max_mib=args.max_mib)
    files = list(out.rglob("*.png"))
    print(f"{out}: {len(files)} images, {sum(f.stat().st_size for f in files) / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
