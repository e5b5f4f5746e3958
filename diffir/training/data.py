"""The training pool: 68 licensed photographs unpacked from Debian packages, and patch sampling.

``python -m diffir.training.data collect [--cache DIR]`` downloads the packages listed in ``pool.tsv`` with
``apt-get download``, checks every member against its SHA-256, and writes RGB PNGs to
``DIR/pool/{train,val}/NAME.png`` (images wider than 2500 px halved with a box filter: many 4K
wallpapers are soft or noisy at full size). The validation split is fixed: whole images, never
patches of training images.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..settings import ROOT, settings

POOL_LIST = Path(__file__).with_name("pool.tsv")
MAX_WIDTH = 2500
VAL_LONG_SIDE = 512


@dataclass(frozen=True)
class PoolEntry:
    name: str
    split: str
    package: str
    version: str
    member: str
    kind: str
    licence: str
    sha256: str


def read_pool(path: Path = POOL_LIST) -> list[PoolEntry]:
    rows = [line.split("\t") for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return [PoolEntry(*row) for row in rows]


def _largest_jpeg(blob: bytes) -> Image.Image:
    """EET (.edj) containers hold the same JPEG at several sizes: decode the largest."""
    best: Image.Image | None = None
    start = blob.find(b"\xff\xd8\xff")
    while start != -1:
        try:
            im = Image.open(io.BytesIO(blob[start:]))
            im.load()
            if best is None or im.width * im.height > best.width * best.height:
                best = im
        except OSError:
            pass
        start = blob.find(b"\xff\xd8\xff", start + 3)
    if best is None:
        raise ValueError("no JPEG stream found")
    return best


def _download(packages: dict[str, str], deb_dir: Path) -> None:
    deb_dir.mkdir(parents=True, exist_ok=True)
    want = [f"{p}={v}" for p, v in packages.items() if not list(deb_dir.glob(f"{p}_*.deb"))]
    if not want:
        return
    cmd = ["apt-get", "download", *want]
    if subprocess.run(cmd, cwd=deb_dir).returncode != 0:
        subprocess.run(["apt-get", "update"], check=True)
        subprocess.run(cmd, cwd=deb_dir, check=True)


def collect(cache: Path | None = None) -> Path:
    """Build ``cache/pool/{train,val}/*.png`` from the Debian packages; returns the pool folder."""
    cache = cache or settings().cache
    entries = read_pool()
    pool = cache / "pool"
    todo = [e for e in entries if not (pool / e.split / f"{e.name}.png").is_file()]
    if not todo:
        return pool
    deb_dir, extract = cache / "debs", cache / "extract"
    _download({e.package: e.version for e in todo}, deb_dir)
    for pkg in sorted({e.package for e in todo}):
        (deb,) = deb_dir.glob(f"{pkg}_*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(extract)], check=True)
    for e in todo:
        blob = (extract / e.member).read_bytes()
        digest = hashlib.sha256(blob).hexdigest()
        if digest != e.sha256:
            raise RuntimeError(f"{e.member}: checksum {digest} does not match pool.tsv ({e.sha256})")
        im = _largest_jpeg(blob) if e.kind == "edj" else Image.open(io.BytesIO(blob))
        im = im.convert("RGB")
        if im.width > MAX_WIDTH:
            im = im.reduce(2)
        out = pool / e.split / f"{e.name}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        im.save(out.with_suffix(".tmp.png"))
        out.with_suffix(".tmp.png").replace(out)
        print(f"{e.name}: {im.width}x{im.height} ({e.split}, {e.licence})", file=sys.stderr)
    return pool


def load_images(folder: Path) -> list[np.ndarray]:
    """All PNGs of a folder as H×W×3 uint8 arrays, sorted by name."""
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))]


def validation_images(cache: Path | None = None, long_side: int = VAL_LONG_SIDE) -> dict[str, np.ndarray]:
    """The fixed validation photos, downscaled (Lanczos) to ``long_side`` and cropped to a multiple
    of 16, so every task and scale sees whole images of one size."""
    cache = cache or settings().cache
    out = {}
    for p in sorted((cache / "pool" / "val").glob("*.png")):
        im = Image.open(p).convert("RGB")
        s = long_side / max(im.size)
        im = im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.LANCZOS)
        w, h = im.width // 16 * 16, im.height // 16 * 16
        out[p.stem] = np.asarray(im.crop((0, 0, w, h)))
    if not out:
        raise FileNotFoundError(
            f"no validation images in {cache / 'pool' / 'val'}: run python -m diffir.training.data collect"
        )
    return out


class PatchSampler:
    """Random square patches from whole images, weighted towards texture.

    Flat patches (sky, fog, bokeh) dominate this pool; a patch is kept with probability
    min(1, energy / ``energy_ref``) where energy is its mean absolute gradient, so flat regions
    are still seen, just less often. Random flips and 90° rotations.
    """

    def __init__(self, images: list[np.ndarray], size: int, rng: np.random.Generator, energy_ref: float = 12.0):
        if not images:
            raise ValueError("no training images")
        self.images = [im for im in images if min(im.shape[:2]) >= size]
        weights = np.array([im.shape[0] * im.shape[1] for im in self.images], dtype=np.float64)
        self.p = weights / weights.sum()
        self.size, self.rng, self.energy_ref = size, rng, energy_ref

    def __call__(self) -> np.ndarray:
        s, rng = self.size, self.rng
        for _ in range(20):
            im = self.images[rng.choice(len(self.images), p=self.p)]
            y = rng.integers(0, im.shape[0] - s + 1)
            x = rng.integers(0, im.shape[1] - s + 1)
            patch = im[y : y + s, x : x + s]
            g = patch.astype(np.float32).mean(axis=2)
            energy = (np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean()) / 2
            if rng.random() < energy / self.energy_ref:
                break
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        patch = np.rot90(patch, k=int(rng.integers(4)))
        return np.ascontiguousarray(patch)


EXAMPLES = ROOT / "examples"
BRUSH = (255, 46, 99)  # the app's brush colour, so example masks look painted


def make_examples(cache: Path | None = None, out: Path = EXAMPLES) -> list[Path]:
    """Small example inputs for the app from the validation photos, degraded with our own
    degradations (seeded, so the files are reproducible). Writes a README with sources and licences."""
    from . import degradations as D
    from . import masks as M

    cache = cache or settings().cache
    entries = {e.name: e for e in read_pool()}
    plan = [  # (task, photo, (size, zoom, relative crop position), kind)
        ("sr", "palapeli_castle-maintenon", ((768, 576), 1.3, (0.5, 0.3)), "bicubic"),
        ("sr", "lomiri_Wine", ((768, 576), 1.6, (0.5, 0.5)), "realistic"),
        ("sr", "mate_LadyBird", ((768, 576), 1.5, (0.5, 0.5)), "realistic"),
        ("deblur", "lomiri_Bridge", ((512, 384), 1.4, (0.5, 0.5)), "motion"),
        ("deblur", "e_Sea-of-Lanterns", ((512, 384), 1.8, (0.4, 0.5)), "motion"),
        ("deblur", "plasma_Path", ((512, 384), 1.5, (0.5, 0.6)), "motion"),
        ("inpaint", "lxqt_flowers", ((512, 384), 1.2, (0.5, 0.5)), "strokes"),
        ("inpaint", "mate_YellowFlower", ((512, 384), 1.2, (0.5, 0.5)), "strokes"),
        ("inpaint", "palapeli_castle-maintenon", ((512, 384), 1.1, (0.5, 0.4)), "boxes"),
    ]
    lines = [
        "# Example inputs",
        "",
        "Made by `python -m diffir.training.data examples` from the fixed validation photos of the training pool",
        "(never seen in training), resized and cropped, then degraded with `diffir.degradations`",
        "(seeded). Sources are Debian packages; each file keeps its photo's licence:",
        "",
        "| file | photo | package | licence | degradation |",
        "|---|---|---|---|---|",
    ]
    written = []
    for i, (task, name, ((w, h), zoom, (fx, fy)), kind) in enumerate(plan):
        e = entries[name]
        im = Image.open(cache / "pool" / "val" / f"{name}.png").convert("RGB")
        s = max(w / im.width, h / im.height) * zoom  # the crop shows 1/zoom of the photo's short side
        im = im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.LANCZOS)
        x, y = round(fx * (im.width - w)), round(fy * (im.height - h))
        im = im.crop((x, y, x + w, y + h))
        gt = np.asarray(im).astype(np.float32) / 255
        rng = np.random.default_rng(1000 + i)
        folder = out / task
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{name.split('_', 1)[1].lower()}"
        if task == "sr":
            lq = D.bicubic_downsample(gt, 4) if kind == "bicubic" else D.realesrgan_degrade(gt, 4, rng, D.MODERATE)
            desc = (
                "×4 bicubic down-sampling"
                if kind == "bicubic"
                else "×4 Real-ESRGAN-style second-order degradation (moderate)"
            )
            arrays = {stem: lq}
        elif task == "deblur":
            k = D.motion_kernel(rng, rng.uniform(15, 25), 1.0)
            arrays = {stem: D.motion_blur(gt, k, 0.01, rng)}
            desc = "random camera-trajectory motion blur, σ 0.01 noise"
        else:
            preset = M.MASK_PRESETS["thick" if kind == "boxes" else "medium"].scaled(2)
            if kind == "boxes":
                preset = D.replace(preset, box_proba=1e9)
            mask = M.random_mask((h, w), preset, rng)
            layer = np.zeros((h, w, 4), np.uint8)
            layer[mask > 0] = (*BRUSH, 255)
            arrays = {stem: gt}
            Image.fromarray(layer, "RGBA").save(folder / f"{stem}_mask.png")
            desc = f"clean photo + LaMa-style {'box' if kind == 'boxes' else 'medium stroke'} mask (`{stem}_mask.png`)"
        for s, arr in arrays.items():
            path = folder / f"{s}.png"
            Image.fromarray((np.clip(arr, 0, 1) * 255).round().astype(np.uint8)).save(path)
            written.append(path)
            lines.append(f"| `{task}/{s}.png` | {e.name} | {e.package} {e.version} | {e.licence} | {desc} |")
    lines += ["", "Licence texts: `/usr/share/doc/<package>/copyright` in each Debian package.", ""]
    (out / "README.md").write_text("\n".join(lines))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diffir.data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="download and unpack the training pool")
    c.add_argument("--cache", type=Path, default=None, help="default: $DIFFIR_CACHE or cache/")
    x = sub.add_parser("examples", help="(re)make the app's example inputs from the validation photos")
    x.add_argument("--cache", type=Path, default=None)
    x.add_argument("--out", type=Path, default=EXAMPLES)
    args = parser.parse_args(argv)
    if args.cmd == "examples":
        collect(args.cache)
        for p in make_examples(args.cache, args.out):
            print(p)
        return 0
    pool = collect(args.cache)
    n = {s: len(list((pool / s).glob("*.png"))) for s in ("train", "val")}
    print(f"pool ready in {pool}: {n['train']} training and {n['val']} validation photos")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
