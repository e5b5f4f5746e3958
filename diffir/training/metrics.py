"""Image-quality metrics shared by training validation and ``diffir.evaluate``.

Images are float arrays in [0, 1], H×W×3 (or H×W). PSNR on the Y channel uses the ITU-R BT.601
studio-swing luma that SR papers report (as BasicSR ``calculate_psnr(test_y_channel=True)``).
"""

from __future__ import annotations

import numpy as np


def to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma in [16/255, 235/255] (MATLAB ``rgb2ycbcr``)."""
    return (16.0 + img[..., 0] * 65.481 + img[..., 1] * 128.553 + img[..., 2] * 24.966) / 255.0


def _crop(img: np.ndarray, border: int) -> np.ndarray:
    return img[border:-border, border:-border] if border else img


def psnr(a: np.ndarray, b: np.ndarray, border: int = 0, mask: np.ndarray | None = None) -> float:
    """PSNR in dB over all pixels, or only where ``mask`` (H×W, nonzero) is set."""
    a = _crop(np.asarray(a, np.float64), border)
    b = _crop(np.asarray(b, np.float64), border)
    err = (a - b) ** 2
    if mask is not None:
        m = _crop(np.asarray(mask, bool), border)
        err = err[m]
    mse = float(err.mean()) if err.size else 0.0
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def psnr_y(a: np.ndarray, b: np.ndarray, border: int = 0) -> float:
    return psnr(to_y(np.asarray(a, np.float64)), to_y(np.asarray(b, np.float64)), border)


def ssim(a: np.ndarray, b: np.ndarray, border: int = 0, y: bool = False) -> float:
    """SSIM (Gaussian window σ 1.5, as Wang et al.) on RGB channels or on Y."""
    from skimage.metrics import structural_similarity  # only SSIM needs scikit-image (GPU machines lack it)

    a = _crop(np.asarray(a, np.float64), border)
    b = _crop(np.asarray(b, np.float64), border)
    if y:
        a, b = to_y(a), to_y(b)
    channel_axis = None if a.ndim == 2 else 2
    return float(
        structural_similarity(
            a,
            b,
            data_range=1.0,
            channel_axis=channel_axis,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )
