"""Synthetic degradations for training and evaluation, written from the published algorithms.

* SR: bicubic down-sampling, and the Real-ESRGAN second-order pipeline (Wang et al. 2021): blur
  (iso/aniso Gaussian, generalised Gaussian, plateau, sinc) → resize → Gaussian/Poisson noise →
  JPEG, twice, ending with a sinc filter before or after the last JPEG and a resize to LR.
* Deblur: random camera-trajectory motion-blur kernels (Boracchi & Foi 2012, as DeblurGAN),
  reflect-padded convolution, Gaussian noise, 8-bit quantisation.
* Inpainting: LaMa's irregular strokes and boxes, with its thin/medium/thick presets.

Everything takes a ``numpy.random.Generator`` so that every sample is reproducible from a seed.
Images are float32 H×W×3 arrays in [0, 1]; masks are uint8 H×W arrays with 1 = hole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np
from scipy import special

Rng = np.random.Generator
_INTERP = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


# --------------------------------------------------------------------------------------------------
# Basic operations
# --------------------------------------------------------------------------------------------------


def resize(img: np.ndarray, size: tuple[int, int], mode: str = "bicubic") -> np.ndarray:
    """Resize to (height, width); bicubic down-sampling is MATLAB-free OpenCV bicubic."""
    h, w = size
    return cv2.resize(img, (max(w, 1), max(h, 1)), interpolation=_INTERP[mode])


def bicubic_downsample(gt: np.ndarray, scale: int) -> np.ndarray:
    """The classic SR input: bicubic down-sampling by ``scale`` (antialiased via INTER_AREA for the
    first factor would change the benchmark, so this is plain bicubic, quantised to 8 bit)."""
    h, w = gt.shape[:2]
    lq = resize(gt, (h // scale, w // scale), "bicubic")
    return quantize(lq)


def filter2d(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolution with reflect padding (the kernel is symmetric or flipped by the caller)."""
    return cv2.filter2D(img, -1, kernel.astype(np.float32), borderType=cv2.BORDER_REFLECT_101)


def quantize(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255).round().astype(np.float32) / 255


def add_gaussian_noise(img: np.ndarray, sigma: float, rng: Rng, gray: bool = False) -> np.ndarray:
    """``sigma`` in [0, 1] units; grey noise is the same in every channel."""
    shape = (*img.shape[:2], 1) if gray else img.shape
    return img + rng.normal(0.0, sigma, size=shape).astype(np.float32)


def add_poisson_noise(img: np.ndarray, scale: float, rng: Rng, gray: bool = False) -> np.ndarray:
    """Shot noise at 8-bit photon counts, scaled by ``scale`` (as Real-ESRGAN)."""
    src = np.clip(img, 0, 1)
    if gray:
        src = cv2.cvtColor(src, cv2.COLOR_RGB2GRAY)[..., None]
    noise = rng.poisson(src * 255.0) / 255.0 - src
    return img + (noise * scale).astype(np.float32)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through an 8-bit JPEG at ``quality`` (RGB in, RGB out)."""
    u8 = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255


# --------------------------------------------------------------------------------------------------
# Blur kernels (Real-ESRGAN)
# --------------------------------------------------------------------------------------------------


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    return np.meshgrid(r, r)


def _inv_cov(sig_x: float, sig_y: float, theta: float) -> np.ndarray:
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    cov = rot @ np.diag([sig_x**2, sig_y**2]) @ rot.T
    return np.linalg.inv(cov)


def _quad(size: int, sig_x: float, sig_y: float, theta: float) -> np.ndarray:
    xx, yy = _grid(size)
    inv = _inv_cov(sig_x, sig_y, theta)
    return inv[0, 0] * xx**2 + (inv[0, 1] + inv[1, 0]) * xx * yy + inv[1, 1] * yy**2


def gaussian_kernel(size: int, sig_x: float, sig_y: float, theta: float) -> np.ndarray:
    k = np.exp(-0.5 * _quad(size, sig_x, sig_y, theta))
    return (k / k.sum()).astype(np.float32)


def generalized_gaussian_kernel(size: int, sig_x: float, sig_y: float, theta: float, beta: float) -> np.ndarray:
    k = np.exp(-0.5 * np.power(_quad(size, sig_x, sig_y, theta), beta))
    return (k / k.sum()).astype(np.float32)


def plateau_kernel(size: int, sig_x: float, sig_y: float, theta: float, beta: float) -> np.ndarray:
    k = 1.0 / (np.power(_quad(size, sig_x, sig_y, theta), beta) + 1)
    return (k / k.sum()).astype(np.float32)


def sinc_kernel(size: int, cutoff: float) -> np.ndarray:
    """2-D circular low-pass ("sinc") kernel: cutoff · J1(cutoff · r) / (2π r); rings like real
    over-sharpened or band-limited images."""
    xx, yy = _grid(size)
    r = np.hypot(xx, yy)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = cutoff * special.j1(cutoff * r) / (2 * np.pi * r)
    k[r == 0] = cutoff**2 / (4 * np.pi)
    return (k / k.sum()).astype(np.float32)


@dataclass(frozen=True)
class BlurParams:
    kernel_range: tuple[int, int] = (7, 21)
    probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)  # iso, aniso, gen iso/aniso, plateau iso/aniso
    sigma: tuple[float, float] = (0.2, 3.0)
    beta_gaussian: tuple[float, float] = (0.5, 4.0)
    beta_plateau: tuple[float, float] = (1.0, 2.0)
    sinc_prob: float = 0.1


def random_blur_kernel(rng: Rng, p: BlurParams) -> np.ndarray:
    size = int(rng.choice(np.arange(p.kernel_range[0], p.kernel_range[1] + 1, 2)))
    if rng.random() < p.sinc_prob:
        cutoff = rng.uniform(np.pi / 3, np.pi) if size < 13 else rng.uniform(np.pi / 5, np.pi)
        return sinc_kernel(size, cutoff)
    kind = rng.choice(6, p=np.asarray(p.probs) / sum(p.probs))
    iso = kind % 2 == 0
    sx = rng.uniform(*p.sigma)
    sy = sx if iso else rng.uniform(*p.sigma)
    theta = 0.0 if iso else rng.uniform(-np.pi, np.pi)
    if kind < 2:
        return gaussian_kernel(size, sx, sy, theta)
    if kind < 4:
        beta = rng.uniform(p.beta_gaussian[0], 1) if rng.random() < 0.5 else rng.uniform(1, p.beta_gaussian[1])
        return generalized_gaussian_kernel(size, sx, sy, theta, beta)
    return plateau_kernel(size, sx, sy, theta, rng.uniform(*p.beta_plateau))


# --------------------------------------------------------------------------------------------------
# Real-ESRGAN second-order degradation
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RealESRGANParams:
    """Defaults are Real-ESRGAN's (and DiffIR's RealSR configs)."""

    blur1: BlurParams = BlurParams()
    resize_prob1: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range1: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob1: float = 0.5
    noise_range1: tuple[float, float] = (1, 30)
    poisson_range1: tuple[float, float] = (0.05, 3)
    gray_noise_prob1: float = 0.4
    jpeg_range1: tuple[int, int] = (30, 95)
    second_blur_prob: float = 0.8
    blur2: BlurParams = BlurParams(sigma=(0.2, 1.5))
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1, 25)
    poisson_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[int, int] = (30, 95)
    final_sinc_prob: float = 0.8


REALESRGAN = RealESRGANParams()
MODERATE = replace(
    REALESRGAN,
    resize_range1=(0.3, 1.3),
    noise_range1=(1, 12),
    poisson_range1=(0.05, 1.0),
    jpeg_range1=(50, 95),
    second_blur_prob=0.5,
    noise_range2=(1, 8),
    poisson_range2=(0.05, 0.8),
    jpeg_range2=(60, 95),
)
"""Milder ranges: the shipped small model is trained to be good at moderate real-world damage."""


def _random_resize(
    img: np.ndarray, rng: Rng, probs: tuple[float, ...], rng_range: tuple[float, float], base: tuple[int, int]
) -> np.ndarray:
    kind = rng.choice(3, p=np.asarray(probs) / sum(probs))
    s = rng.uniform(1, rng_range[1]) if kind == 0 else rng.uniform(rng_range[0], 1) if kind == 1 else 1.0
    mode = str(rng.choice(list(_INTERP)))
    return resize(img, (int(base[0] * s), int(base[1] * s)), mode)


def _random_noise(
    img: np.ndarray, rng: Rng, p_gauss: float, sigma: tuple[float, float], poisson: tuple[float, float], p_gray: float
) -> np.ndarray:
    gray = rng.random() < p_gray
    if rng.random() < p_gauss:
        return add_gaussian_noise(img, rng.uniform(*sigma) / 255, rng, gray)
    return add_poisson_noise(img, rng.uniform(*poisson), rng, gray)


def realesrgan_degrade(gt: np.ndarray, scale: int, rng: Rng, p: RealESRGANParams = REALESRGAN) -> np.ndarray:
    """Second-order real-world degradation of ``gt`` to an 8-bit LQ of size gt/scale."""
    h, w = gt.shape[:2]
    out = filter2d(gt, random_blur_kernel(rng, p.blur1))
    out = _random_resize(out, rng, p.resize_prob1, p.resize_range1, (h, w))
    out = _random_noise(out, rng, p.gaussian_noise_prob1, p.noise_range1, p.poisson_range1, p.gray_noise_prob1)
    out = jpeg(out, int(rng.integers(p.jpeg_range1[0], p.jpeg_range1[1] + 1)))
    if rng.random() < p.second_blur_prob:
        out = filter2d(out, random_blur_kernel(rng, p.blur2))
    out = _random_resize(out, rng, p.resize_prob2, p.resize_range2, (h // scale, w // scale))
    out = _random_noise(out, rng, p.gaussian_noise_prob2, p.noise_range2, p.poisson_range2, p.gray_noise_prob2)
    final_sinc = sinc_kernel(21, rng.uniform(np.pi / 3, np.pi)) if rng.random() < p.final_sinc_prob else None
    q = int(rng.integers(p.jpeg_range2[0], p.jpeg_range2[1] + 1))
    mode = str(rng.choice(list(_INTERP)))
    if rng.random() < 0.5:
        out = resize(out, (h // scale, w // scale), mode)
        out = filter2d(out, final_sinc) if final_sinc is not None else out
        out = jpeg(out, q)
    else:
        out = jpeg(out, q)
        out = resize(out, (h // scale, w // scale), mode)
        out = filter2d(out, final_sinc) if final_sinc is not None else out
    return quantize(out)


# --------------------------------------------------------------------------------------------------
# Motion blur (Boracchi & Foi 2012)
# --------------------------------------------------------------------------------------------------


def motion_trajectory(rng: Rng, max_len: float, n: int = 2000, expl: float | None = None) -> np.ndarray:
    """A random 2-D camera path (complex positions) of total length ``max_len`` px."""
    if expl is None:
        expl = float(rng.choice([0.005, 0.001, 0.00005]))
    centripetal = 0.7 * rng.random()
    prob_big_shake = 0.2 * rng.random()
    gaussian_shake = 10 * rng.random()
    step = max_len / (n - 1)
    angle = 2 * np.pi * rng.random()
    v = complex(math.cos(angle), math.sin(angle)) * step
    x = np.zeros(n, dtype=np.complex128)
    shakes = rng.random(n) < prob_big_shake * expl
    jitter = rng.normal(size=(n, 2))
    turns = rng.random(n) - 0.5
    for t in range(n - 1):
        big = 2 * v * np.exp(1j * (np.pi + turns[t])) if shakes[t] else 0.0
        dv = big + expl * (gaussian_shake * complex(jitter[t, 0], jitter[t, 1]) - centripetal * x[t]) * step
        v = v + dv
        v = v / abs(v) * step
        x[t + 1] = x[t] + v
    return x


def motion_kernel(rng: Rng, max_len: float, exposure: float = 1.0, size: int | None = None) -> np.ndarray:
    """Rasterise (bilinear splatting) the first ``exposure`` fraction of a random trajectory."""
    x = motion_trajectory(rng, max_len)
    x = x[: max(2, round(len(x) * exposure))]
    x = x - (x.real.min() + x.real.max()) / 2 - 1j * (x.imag.min() + x.imag.max()) / 2
    extent = math.ceil(max(np.ptp(x.real), np.ptp(x.imag)))
    size = size or (extent + 3) | 1
    k = np.zeros((size, size), dtype=np.float64)
    px = x.real + (size - 1) / 2
    py = x.imag + (size - 1) / 2
    x0 = np.clip(np.floor(px).astype(int), 0, size - 2)
    y0 = np.clip(np.floor(py).astype(int), 0, size - 2)
    fx, fy = np.clip(px - x0, 0, 1), np.clip(py - y0, 0, 1)
    np.add.at(k, (y0, x0), (1 - fx) * (1 - fy))
    np.add.at(k, (y0, x0 + 1), fx * (1 - fy))
    np.add.at(k, (y0 + 1, x0), (1 - fx) * fy)
    np.add.at(k, (y0 + 1, x0 + 1), fx * fy)
    return (k / k.sum()).astype(np.float32)


@dataclass(frozen=True)
class MotionParams:
    length: tuple[float, float] = (5, 30)
    exposures: tuple[float, ...] = (0.1, 0.5, 1.0, 1.0, 1.0)
    noise: tuple[float, float] = (0.0, 0.01)
    jpeg_prob: float = 0.0


def motion_blur(sharp: np.ndarray, kernel: np.ndarray, noise_sigma: float, rng: Rng) -> np.ndarray:
    """Blur (true convolution: the kernel is flipped for cv2's correlation), add noise, quantise."""
    blurred = filter2d(sharp, kernel[::-1, ::-1])
    return quantize(add_gaussian_noise(blurred, noise_sigma, rng))


def random_motion_blur(sharp: np.ndarray, rng: Rng, p: MotionParams = MotionParams()) -> tuple[np.ndarray, np.ndarray]:
    """Returns (blurred, kernel)."""
    k = motion_kernel(rng, rng.uniform(*p.length), float(rng.choice(p.exposures)))
    out = motion_blur(sharp, k, rng.uniform(*p.noise), rng)
    if rng.random() < p.jpeg_prob:
        out = jpeg(out, int(rng.integers(70, 96)))
    return out, k
