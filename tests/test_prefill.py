"""Inpainting's pull-push prefill: the hole is filled from the known pixels before DIRformer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from diffir import DiffIRConfig, build_model, load_network, save_pretrained
from diffir.nets.dirformer import pull_push_fill

from .helpers import TINY, photo, random_model


def _hole(h: int, w: int) -> torch.Tensor:
    hole = torch.zeros(1, 1, h, w)
    hole[..., 10:30, 12:40] = 1
    hole[..., 33:37, :] = 1  # a stroke across the whole width
    return hole


def test_pull_push_keeps_known_pixels_and_fills_within_their_range():
    rgb = torch.from_numpy(photo(48, 64, seed=3)).permute(2, 0, 1)[None].float()
    hole = _hole(48, 64)
    filled = pull_push_fill(rgb * (1 - hole), hole)
    known = hole[0, 0] == 0
    assert torch.equal(filled[..., known], rgb[..., known])
    inside = filled[..., ~known]
    assert torch.isfinite(inside).all()
    lo, hi = rgb[..., known].amin(dim=-1), rgb[..., known].amax(dim=-1)  # a fill averages known colours
    assert (inside >= lo[..., None] - 1e-6).all() and (inside <= hi[..., None] + 1e-6).all()


def test_pull_push_continues_smooth_images():
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    ramp = torch.stack([xx, yy, 0.5 * (xx + yy)])[None]
    hole = _hole(64, 64)
    filled = pull_push_fill(ramp * (1 - hole), hole)
    assert (filled - ramp).abs().max() < 0.08  # a zero fill is off by up to 1.0 here
    flat = torch.full((1, 3, 64, 64), 0.3)
    assert torch.allclose(pull_push_fill(flat * (1 - hole), hole), flat, atol=1e-6)


def test_prefilled_network_never_sees_what_is_under_the_hole():
    model = random_model("inpaint")
    prefilled = build_model(dataclasses.replace(TINY["inpaint"], prefill=True)).eval()
    prefilled.load_state_dict(model.state_dict())  # the prefill adds no parameters
    rgb = torch.from_numpy(photo(32, 48, seed=1)).permute(2, 0, 1)[None].float()
    hole = _hole(32, 48)[..., :32, :48]
    zeros = torch.cat([rgb * (1 - hole), hole], dim=1)
    noise = torch.cat([torch.where(hole > 0, torch.rand_like(rgb), rgb), hole], dim=1)
    ipr = torch.randn(1, 256)
    with torch.no_grad():
        assert torch.equal(prefilled.dirformer(zeros, ipr), prefilled.dirformer(noise, ipr))
        assert not torch.allclose(model.dirformer(zeros, ipr), model.dirformer(noise, ipr))


def test_prefill_is_saved_and_checked(tmp_path):
    with pytest.raises(ValueError, match="inpainting only"):
        DiffIRConfig(task="deblur", prefill=True)
    model = build_model(dataclasses.replace(TINY["inpaint"], prefill=True))
    save_pretrained(model, tmp_path / "m")
    loaded = load_network(tmp_path / "m")
    assert loaded.config.prefill and loaded.dirformer.prefill
    old = TINY["inpaint"].to_dict()
    old.pop("prefill")  # a config.json written before the field existed: the official zero fill
    assert DiffIRConfig.from_dict(old).prefill is False
    x = np.zeros((1, 4, 16, 16), np.float32)
    with torch.no_grad():
        assert loaded.dirformer(torch.from_numpy(x), torch.zeros(1, 256)).shape == (1, 3, 16, 16)
