"""What the tests share: tiny configs and random networks, synthetic photos, PNG bytes and a
synthetic photo pool. Nothing is downloaded; every image is made here."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from diffir import DiffIRConfig, build_model

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
"""The shipped example photos (real photographs for tests that need natural image statistics)."""

TINY = {
    "deblur": DiffIRConfig(task="deblur", dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1,
                           ffn_expansion_factor=2.0, n_encoder_res=1),
    "sr": DiffIRConfig(task="sr", scale=4, dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1,
                       ffn_expansion_factor=2.2, norm_type="BiasFree", n_encoder_res=1),
    "inpaint": DiffIRConfig(task="inpaint", dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=0,
                            ffn_expansion_factor=1.8, n_encoder_res=1),
}  # fmt: skip


def tiny_model_fields(task: str) -> dict:
    """The tiny network as ``TrainConfig.model`` fields (everything but task and stage)."""
    d = TINY[task].to_dict()
    for k in ("task", "stage", "n_denoise_res", "linear_start", "linear_end", "timesteps"):
        d.pop(k)
    return d


def random_model(task: str, stage: str = "s2", seed: int = 0):
    """A tiny network with random weights (LayerNorm and temperatures randomised too)."""
    torch.manual_seed(seed)
    model = build_model(dataclasses.replace(TINY[task], stage=stage))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * (0.1 if p.ndim > 1 else 0.5) + (1.0 if p.ndim == 1 else 0.0))
    return model.eval()


def photo(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    """A smooth, natural-ish RGB test image in [0, 1] (a little noise, so no two seeds agree)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * xx + 1), np.cos(5 * yy), np.sin(4 * (xx + yy))], axis=2) * 0.35 + 0.5
    return np.clip(base + rng.normal(0, 0.02, base.shape), 0, 1)


def u8(x: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8)


def png_bytes(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", **kw)
    return buf.getvalue()


def photo_pool(root: Path, train: int = 3, val: int = 2, size: tuple[int, int] = (160, 200)) -> Path:
    """A training pool in the real pool's layout (``pool/train``, ``pool/val``) of textured photos."""
    rng = np.random.default_rng(0)
    h, w = size
    for split, n in (("train", train), ("val", val)):
        (root / "pool" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            yy, xx = np.mgrid[0:h, 0:w] / 50
            img = np.stack([np.sin(xx * (i + 1)), np.cos(yy * 2), np.sin(xx + yy)], axis=2) * 90 + 128
            img = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / "pool" / split / f"p{i}.png")
    return root
