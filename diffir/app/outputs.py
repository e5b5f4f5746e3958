"""Files the app writes: one folder per request (swept after an hour), 8-bit previews for the
before/after slider, and the lossless full-resolution PNG named after the user's file."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from ..files import write_atomic
from ..inference.imageio import resize_alpha, resize_rgb, to_integer
from ..inference.pipeline import Restored

PREVIEW_MAX_SIDE = 2560
OUTPUT_ROOT = Path(tempfile.gettempdir()) / "diffir-outputs"
OUTPUT_TTL_S = 3600


def request_dir() -> Path:
    """A fresh folder for one request's outputs; folders older than an hour are swept."""
    OUTPUT_ROOT.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in OUTPUT_ROOT.iterdir():
        try:
            if now - old.stat().st_mtime > OUTPUT_TTL_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    d = OUTPUT_ROOT / uuid.uuid4().hex
    d.mkdir()
    return d


def _preview(rgb: np.ndarray, alpha: np.ndarray | None, size: tuple[int, int] | None = None) -> Image.Image:
    """8-bit preview for the before/after slider (the download keeps full depth and size)."""
    h, w = rgb.shape[:2]
    if size is None:
        s = min(1.0, PREVIEW_MAX_SIDE / max(h, w))
        size = (max(1, round(w * s)), max(1, round(h * s)))
    if size != (w, h):
        rgb = resize_rgb(rgb, size)
        if alpha is not None:
            alpha = resize_alpha(alpha, size)
    chans = [rgb] + ([alpha[..., None]] if alpha is not None else [])
    arr = to_integer(np.concatenate(chans, axis=2), 8)
    return Image.fromarray(arr, "RGBA" if alpha is not None else "RGB")


def save_outputs(result: Restored, name: str) -> tuple[tuple[str, str], str]:
    """Write the before/after previews and the lossless full-resolution PNG into a request folder."""
    d = request_dir()
    out = result.picture
    after = _preview(out.rgb, out.alpha)
    src = result.source
    before = _preview(src.rgb, src.alpha, after.size)  # SR: the input resized to the output size
    before_path, after_path = d / "before.png", d / "after.png"
    before.save(before_path)
    after.save(after_path)
    stem = Path(name).stem or "image"
    full = write_atomic(d / f"{stem}_{result.task}_seed{result.seed}.png", result.png())
    return (str(before_path), str(after_path)), str(full)
