"""Inpainting at the scale the model knows: wide holes are filled downscaled, pasted back into the
hole only (bit-identical outside, same size), thin ones run at full scale."""

from __future__ import annotations

import numpy as np
import pytest

from diffir import Options, Picture, restore
from diffir.inference.inpaint import fill_at_scale, hole_width, working_scale

from .helpers import photo, random_model


def test_hole_width_and_scale():
    hole = np.zeros((200, 300), bool)
    hole[90:110, 20:280] = True  # a 20 px stroke
    assert hole_width(hole) == pytest.approx(20, abs=2)
    assert working_scale(hole, 32) == 1.0
    hole[40:160, 100:220] = True  # a 120 px blob
    assert hole_width(hole) == pytest.approx(120, abs=3)
    assert working_scale(hole, 30) == pytest.approx(0.25, abs=0.02)
    assert working_scale(np.zeros((8, 8), bool), 30) == 1.0


def test_fill_at_scale_runs_small_and_returns_full_size():
    rgb = photo(120, 160)
    hole = np.zeros((120, 160), bool)
    hole[30:90, 40:120] = True
    seen = []

    def fill(r: np.ndarray, h: np.ndarray) -> np.ndarray:
        seen.append(h.shape)
        assert h.sum() >= hole.sum() * 0.25 * 0.9  # the downscaled hole never shrinks
        return np.full_like(r, 0.5)

    out = fill_at_scale(fill, rgb, hole, 0.5)
    assert seen == [(60, 80)] and out.shape == rgb.shape
    assert np.allclose(out[50:70, 60:100], 0.5, atol=1e-3)  # deep inside: the (upscaled) fill itself


def test_restore_fills_wide_holes_downscaled_and_keeps_everything_else():
    model = random_model("inpaint")
    img = photo(96, 128, seed=3).astype(np.float32)
    mask = np.zeros((96, 128), bool)
    mask[24:72, 32:96] = True  # 48 px wide
    wide = restore("inpaint", Picture(img), mask=mask, model=model, options=Options(seed=1, hole_width=16))
    full = restore("inpaint", Picture(img), mask=mask, model=model, options=Options(seed=1, hole_width=0))
    for r in (wide, full):
        assert r.picture.rgb.shape == img.shape
        assert np.array_equal(r.picture.rgb[~mask], img[~mask])  # bit-identical outside
    assert wide.extra["hole filled at"] == "33% scale" and "hole filled at" not in full.extra
    assert not np.allclose(wide.picture.rgb[mask], full.picture.rgb[mask])
