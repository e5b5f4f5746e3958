"""The S2-GAN stage: the discriminator, Real-ESRGAN's unsharp mask, and a fine-tuning run that starts
from a finished stage 2, trains both players and resumes."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from safetensors import safe_open

from diffir import load_network
from diffir.training.gan import UNetDiscriminatorSN, export, usm_sharp
from diffir.training.loop import train

from .helpers import photo
from .test_train import _cfg


def _usm_reference(img: np.ndarray, weight: float = 0.5, radius: int = 50, threshold: int = 10) -> np.ndarray:
    """Real-ESRGAN's ``basicsr.utils.img_process_util.usm_sharp`` (numpy + OpenCV), as published."""
    if radius % 2 == 0:
        radius += 1
    blur = cv2.GaussianBlur(img, (radius, radius), 0)
    residual = img - blur
    mask = (np.abs(residual) * 255 > threshold).astype("float32")
    soft_mask = cv2.GaussianBlur(mask, (radius, radius), 0)
    sharp = np.clip(img + weight * residual, 0, 1)
    return soft_mask * sharp + (1 - soft_mask) * img


def test_usm_matches_real_esrgan():
    img = photo(96, 120, seed=3)
    ours = usm_sharp(torch.from_numpy(img).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    ref = _usm_reference(img)
    assert np.abs(ours - ref).max() < 1e-4
    assert np.abs(ours - img).max() > 0.02  # it does sharpen


def test_discriminator_judges_every_pixel():
    d = UNetDiscriminatorSN(3, 8)
    logits, feats = d(torch.rand(2, 3, 48, 64))
    assert logits.shape == (2, 1, 48, 64)
    assert [f.shape[1] for f in feats] == [16, 32, 64, 32, 16, 8]


def test_s2_gan_fine_tunes_a_finished_stage_2(tmp_path, cache):
    s1, s2, gan = tmp_path / "s1", tmp_path / "s2", tmp_path / "gan"
    train(_cfg(cache, "sr", "s1", iters=2), s1)
    train(_cfg(cache, "sr", "s2", teacher=str(s1 / "best"), encoder_iters=1, iters=2), s2)
    cfg = _cfg(cache, "sr", "s2", teacher=str(s1 / "best"), init=str(s2 / "best"), gan_weight=0.1, usm_gt=True,
               disc_feat=8, iters=3, lr=0.0, min_lr=0.0, ema=0.0)  # fmt: skip
    train(cfg, gan)
    log = [json.loads(line) for line in (gan / "log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "phase" in r]
    assert all(r["phase"] == "joint" for r in steps)  # no encoder phase: CPEN_S2 is trained already
    assert all(np.isfinite(r[k]) for r in steps for k in ("l_pix", "l_ipr", "l_gan", "l_fm", "l_d"))
    # with the generator's learning rate at 0 its DIRformer is still the finished stage 2's, not stage 1's
    state = torch.load(gan / "last.pt", weights_only=True)
    start, teacher = load_network(s2 / "best").dirformer.state_dict(), load_network(s1 / "best").dirformer.state_dict()
    assert all(torch.equal(state["model"][f"dirformer.{k}"], v) for k, v in start.items())
    assert not all(torch.equal(start[k], teacher[k]) for k in start)
    # the discriminator learnt, was saved, and carries on when the run is extended
    disc = state["adversary"]["disc"]
    assert state["adversary"]["opt"]["state"]
    cfg.iters, cfg.lr_disc = 4, 5e-4  # a resumed run may be given another discriminator rate
    train(cfg, gan)
    after = torch.load(gan / "last.pt", weights_only=True)
    assert after["adversary"]["opt"]["param_groups"][0]["lr"] == 5e-4
    assert after["step"] == 4 and not torch.equal(after["adversary"]["disc"]["conv0.weight"], disc["conv0.weight"])
    assert sorted(p.name for p in (gan / "snapshots").iterdir()) == ["step_000002", "step_000003", "step_000004"]
    # exported as a shipped style: float16 weights, and the compute on top of the model it started from
    info = export(gan, tmp_path / "sr_sharp", base_core_hours=1.5, faithful=s2 / "best", alpha=1.0)
    assert (
        info["total"]["core_hours"] == pytest.approx(1.5 + info["s2_gan"]["core_hours"])
        and info["s2_gan"]["core_hours"] > 0
    )
    assert json.loads((tmp_path / "sr_sharp" / "training.json").read_text()) == info
    with safe_open(tmp_path / "sr_sharp" / "model.safetensors", "pt") as f:
        names = list(f.keys())
        assert names and all(f.get_tensor(k).dtype == torch.float16 for k in names)
    assert load_network(tmp_path / "sr_sharp").config.task == "sr"


def test_a_finished_run_resumes_without_training(tmp_path, cache):
    """A campaign resumed after its stage 1 had finished reopens that run: nothing to do, no error."""
    run = tmp_path / "done"
    cfg = _cfg(cache, "deblur", "s1", iters=2)
    train(cfg, run)
    before = (run / "last.pt").read_bytes()
    trainer = train(cfg, run)
    assert trainer.step_no == 2 and (run / "last.pt").read_bytes() == before


def test_network_interpolation_blends_every_weight(tmp_path):
    from diffir.training.gan import interpolate

    from .helpers import random_model

    a, b = random_model("sr", seed=1), random_model("sr", seed=2)
    half = interpolate(a, b, 0.25).state_dict()
    for k, v in a.state_dict().items():
        if v.is_floating_point():
            assert torch.allclose(half[k], 0.75 * v + 0.25 * b.state_dict()[k], atol=1e-6), k
    assert torch.equal(
        interpolate(a, b, 0.0).state_dict()["dirformer.patch_embed.weight"],
        a.state_dict()["dirformer.patch_embed.weight"],
    )
