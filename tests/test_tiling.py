"""Tiling: exact tiled CPEN, full coverage, feathered seams, padding modes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from diffir.inference.tiling import cpen_pooled_tiled, feather, run_tiled, tile_grid
from diffir.tasks import pad_to_multiple, symmetric_pad

from .helpers import random_model


@pytest.mark.parametrize("task", ["deblur", "sr", "inpaint"])
def test_tiled_cpen_equals_whole_image_ipr(task):
    model = random_model(task)
    x = torch.rand(1, 4 if task == "inpaint" else 3, 136, 200)
    packed = model.cpen.pack(x)
    with torch.no_grad():
        whole = model.cpen.features(packed).double().mean(dim=(2, 3))
        for tile in (7, 16, 33):
            tiled = cpen_pooled_tiled(model.cpen.features, packed, tile, model.cpen.receptive_radius)
            torch.testing.assert_close(tiled.double(), whole, rtol=1e-5, atol=1e-5)
        # too small a halo breaks exactness: the test can fail
        wrong = cpen_pooled_tiled(model.cpen.features, packed, 16, 1)
    assert not torch.allclose(wrong.double(), whole, rtol=1e-5, atol=1e-5)


def test_tile_grid_covers_and_respects_multiple():
    for h, w, tile, overlap, m in [
        (96, 200, 64, 16, 8),
        (40, 40, 64, 8, 8),
        (512, 520, 256, 32, 8),
        (64, 64, 32, 0, 16),
    ]:
        tiles = tile_grid(h, w, tile, overlap, m)
        cover = np.zeros((h, w), int)
        for t in tiles:
            assert t.y0 % m == 0 and t.x0 % m == 0 and (t.y1 - t.y0) % m == 0 and (t.x1 - t.x0) % m == 0
            assert t.y1 - t.y0 <= max(tile, m) + overlap and t.x1 - t.x0 <= max(tile, m) + overlap
            cover[t.y0 : t.y1, t.x0 : t.x1] += 1
        assert cover.min() >= 1
        ys = sorted({(t.y0, t.y1) for t in tiles})
        for (_, a1), (b0, _) in itertools.pairwise(ys):
            assert a1 - b0 >= min(overlap, tile // 2) - m  # neighbours share about ``overlap`` px
    assert len(tile_grid(100, 100, 0, 16, 8)) == 1


def test_tile_grid_spends_no_window_on_a_sliver():
    """1024 px at tile 512 is 2 × 2 windows of 528 px (was 3 × 3 of 512: 2.25× the pixels)."""
    tiles = tile_grid(1024, 1024, 512, 32, 8)
    assert len(tiles) == 4 and {t.y1 - t.y0 for t in tiles} == {528}
    assert len(tile_grid(536, 544, 512, 32, 8)) == 1  # one tile plus the overlap: one window
    assert len(tile_grid(4000, 3000, 512, 32, 8)) == 8 * 6
    area = sum((t.y1 - t.y0) * (t.x1 - t.x0) for t in tile_grid(3000, 2000, 256, 32, 8))
    assert area < 1.3 * 3000 * 2000


def test_feather_weights():
    w = feather(64, 16, True, True)
    assert w.min() > 0 and w[16:-16].min() == 1 and np.all(np.diff(w[:16]) > 0)
    assert feather(10, 4, False, False).min() == 1


def test_symmetric_pad_matches_numpy():
    x = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(1, 2, 3, 5)
    for ph, pw in [(1, 2), (3, 5), (7, 11)]:
        ours = symmetric_pad(x, ph, pw).numpy()
        ref = np.pad(x.numpy(), ((0, 0), (0, 0), (0, ph), (0, pw)), mode="symmetric")
        np.testing.assert_array_equal(ours, ref)
    padded, ph, pw = pad_to_multiple(torch.rand(1, 3, 5, 6), 8)  # reflect impossible: falls back
    assert padded.shape[-2:] == (8, 8) and (ph, pw) == (3, 2)


def _border_step(img: np.ndarray, cols: list[int]) -> float:
    """Mean |difference| between neighbouring columns at the given x positions."""
    return float(np.mean([np.abs(img[..., c] - img[..., c - 1]).mean() for c in cols]))


def test_feathered_tiles_show_no_step_but_hard_cuts_do():
    """A DIRformer's attention is global per tile, so tiles disagree slightly; feathering hides it."""
    model = random_model("deblur")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.3)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 192), indexing="ij")
    x = torch.stack([torch.sin(6 * xx), torch.cos(5 * yy), torch.sin(4 * (xx + yy))])[None] * 0.3 + 0.5
    ipr = torch.randn(1, 256)
    with torch.no_grad():
        fn = lambda t: model.dirformer(t, ipr)  # noqa: E731
        whole = fn(x)[0].numpy()
        tiled = run_tiled(x, fn, tile=64, overlap=16, scale=1, multiple=8)[0].numpy()
        hard = run_tiled(x, fn, tile=64, overlap=0, scale=1, multiple=8)[0].numpy()
    seams = [64, 128]  # where the hard-cut tiles meet
    interior = [32, 96, 160]
    ref = _border_step(whole, seams)
    assert _border_step(tiled, seams) < 1.2 * ref + 1e-4
    assert _border_step(hard, seams) > 1.2 * ref  # the check can fail
    assert abs(_border_step(tiled, interior) - _border_step(whole, interior)) < 0.2 * ref + 1e-4


def test_needed_pixels_select_tiles_and_the_input_shows_elsewhere():
    x = torch.rand(1, 4, 96, 192)
    calls = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        calls.append(t.shape[-2:])
        return t[:, :3] * 2

    needed = np.zeros((96, 192), bool)
    needed[90, 5] = True  # bottom-left corner only
    out = run_tiled(x, fn, tile=64, overlap=16, scale=1, multiple=8, needed=needed)
    assert len(calls) == 1 and len(tile_grid(96, 192, 64, 16, 8)) == 6
    np.testing.assert_allclose(out[..., 90, 5], 2 * x[:, :3, 90, 5])
    np.testing.assert_array_equal(out[..., :, 150:], x[:, :3, :, 150:])  # no window ran there
    everything = run_tiled(x, fn, tile=64, overlap=16, scale=1, multiple=8)
    np.testing.assert_array_equal(out[0].numpy()[:, needed], everything[0].numpy()[:, needed])
