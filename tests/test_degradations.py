"""Degradations are seeded and behave as the published algorithms describe."""

from __future__ import annotations

import numpy as np
import pytest

from diffir.training import degradations as D
from diffir.training import masks as M


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_blur_kernels_are_normalised_and_seeded():
    for seed in range(30):
        k = D.random_blur_kernel(rng(seed), D.BlurParams())
        assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1 and 7 <= k.shape[0] <= 21
        assert abs(float(k.sum()) - 1) < 1e-5
    assert np.array_equal(D.random_blur_kernel(rng(3), D.BlurParams()), D.random_blur_kernel(rng(3), D.BlurParams()))
    g = D.gaussian_kernel(21, 2.0, 2.0, 0.0)
    assert np.allclose(g, g.T) and g.argmax() == 21 * 10 + 10  # isotropic, centred
    a = D.gaussian_kernel(21, 3.0, 0.5, 0.0)
    assert a[10].sum() > a[:, 10].sum()  # wide along x
    s = D.sinc_kernel(21, np.pi / 3)
    assert abs(float(s.sum()) - 1) < 1e-5 and s.min() < 0  # ringing lobes


def test_motion_kernels():
    for seed in range(20):
        r = rng(seed)
        length = r.uniform(5, 40)
        k = D.motion_kernel(r, length, float(r.choice([0.01, 0.1, 0.5, 1.0])))
        assert abs(float(k.sum()) - 1) < 1e-5 and k.min() >= 0
        assert k.shape[0] <= length + 6
    full = D.motion_kernel(rng(1), 30.0, 1.0)
    short = D.motion_kernel(rng(1), 30.0, 0.1)
    assert (full > 1e-4).sum() > 3 * (short > 1e-4).sum()  # partial exposure gives a shorter path
    # the kernel's support really spans about max_len px
    ys, xs = np.nonzero(full > 1e-4)
    assert max(np.ptp(ys), np.ptp(xs)) >= 10


def test_motion_blur_is_a_convolution():
    img = np.zeros((41, 41, 3), np.float32)
    img[20, 20] = 1.0
    k = np.zeros((5, 5), np.float32)
    k[1, 3], k[2, 2] = 0.75, 0.25  # asymmetric
    out = D.filter2d(img, k[::-1, ::-1])
    assert out[20 - 1, 20 + 1, 0] == pytest.approx(0.75) and out[20, 20, 0] == pytest.approx(0.25)


def test_realesrgan_output_size_range_and_seed():
    gt = rng(0).random((128, 96, 3)).astype(np.float32)
    lq = D.realesrgan_degrade(gt, 4, rng(5))
    assert lq.shape == (32, 24, 3) and lq.min() >= 0 and lq.max() <= 1
    assert np.allclose(lq * 255, np.round(lq * 255), atol=1e-4)  # 8-bit values
    assert np.array_equal(lq, D.realesrgan_degrade(gt, 4, rng(5)))
    assert not np.array_equal(lq, D.realesrgan_degrade(gt, 4, rng(6)))
    assert D.bicubic_downsample(gt, 4).shape == (32, 24, 3)


def test_noise_and_jpeg():
    img = np.full((64, 64, 3), 0.5, np.float32)
    g = D.add_gaussian_noise(img, 0.05, rng(0))
    assert abs(float((g - img).std()) - 0.05) < 0.005
    grey = D.add_gaussian_noise(img, 0.05, rng(0), gray=True)
    assert np.allclose(grey[..., 0], grey[..., 1])
    p = D.add_poisson_noise(img, 1.0, rng(0))
    assert 0.01 < float((p - img).std()) < 0.1
    j = D.jpeg(rng(1).random((32, 32, 3)).astype(np.float32), 30)
    assert j.shape == (32, 32, 3) and j.dtype == np.float32


@pytest.mark.parametrize("preset", list(M.MASK_PRESETS))
def test_masks_respect_area_bounds(preset):
    p = M.MASK_PRESETS[preset]
    for seed in range(25):
        m = M.random_mask((256, 256), p, rng(seed))
        assert m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1}
        assert 0 < m.mean() <= p.max_area


def test_mask_presets_differ_in_scale():
    import cv2

    def survives_erosion(preset: str) -> float:  # share of the hole deeper than 8 px from its edge
        k = np.ones((17, 17), np.uint8)
        ms = [M.random_mask((256, 256), M.MASK_PRESETS[preset], rng(s)) for s in range(20)]
        return float(np.mean([cv2.erode(m, k).sum() / m.sum() for m in ms]))

    assert survives_erosion("thin") < 0.05 < survives_erosion("thick")
    big = M.MASK_PRESETS["medium"].scaled(2)
    assert big.strokes.max_width == 100 and big.boxes is not None and big.boxes.max_size == 100
    boxes = M.box_mask((100, 100), M.BoxParams(2, 2, 10, 20, 5), rng(0))
    ys, xs = np.nonzero(boxes)
    assert ys.min() >= 5 and xs.min() >= 5 and ys.max() < 95 and xs.max() < 95
