"""The IPR diffusion: schedule, respacing maths, seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffir.nets.diffusion import make_betas, make_schedule, official_buffers, trailing_timesteps

from .helpers import random_model


def test_schedule_matches_official_table():
    b = official_buffers(make_betas(0.1, 0.99, 4))
    np.testing.assert_allclose(b["betas"], [0.1, 0.29428563, 0.59095228, 0.99], rtol=1e-6)
    np.testing.assert_allclose(b["alphas_cumprod"], [0.9, 0.63514292, 0.25980377, 0.0025980377], rtol=1e-6)
    np.testing.assert_allclose(b["posterior_mean_coef1"], [1.0, 0.76518691, 0.63626975, 0.50592679], rtol=1e-6)
    np.testing.assert_allclose(
        b["posterior_mean_coef2"], [0.0, 0.23024580, 0.31525564, 0.07421243], rtol=1e-6, atol=1e-8
    )


def test_full_schedule_is_the_official_chain():
    betas = make_betas(0.1, 0.99, 4)
    s = make_schedule(betas)
    b = official_buffers(betas)
    assert s.timesteps == (3, 2, 1, 0)
    assert s.coef1 == tuple(float(x) for x in b["posterior_mean_coef1"].flip(0))
    assert s.coef2 == tuple(float(x) for x in b["posterior_mean_coef2"].flip(0))


def test_respacing():
    assert trailing_timesteps(4, 1) == [3]
    assert trailing_timesteps(4, 2) == [1, 3]
    assert trailing_timesteps(4, 3) == [0, 2, 3]
    assert trailing_timesteps(4, 4) == [0, 1, 2, 3]
    betas = make_betas(0.1, 0.99, 4)
    one = make_schedule(betas, 1)
    assert one.timesteps == (3,) and one.coef1 == pytest.approx((1.0,)) and one.coef2 == pytest.approx((0.0,))
    two = make_schedule(betas, 2)
    ac = np.cumprod(1 - betas)
    # second step of the respaced chain goes from t=3 to t=1: ᾱ' = [ᾱ_1, ᾱ_3]
    alpha = ac[3] / ac[1]
    c1 = (1 - alpha) * np.sqrt(ac[1]) / (1 - ac[3])
    c2 = (1 - ac[1]) * np.sqrt(alpha) / (1 - ac[3])
    assert two.timesteps == (3, 1)
    assert two.coef1[0] == pytest.approx(c1, rel=1e-6) and two.coef2[0] == pytest.approx(c2, rel=1e-6)
    assert two.coef1[1] == pytest.approx(1.0) and two.coef2[1] == pytest.approx(0.0)
    for bad in (0, 5):
        with pytest.raises(ValueError, match="steps must be in 1..4"):
            make_schedule(betas, bad)


def test_prior_is_seeded_and_steps_change_it():
    model = random_model("deblur")
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        a = model.prior(x, generator=torch.Generator().manual_seed(7))
        b = model.prior(x, generator=torch.Generator().manual_seed(7))
        c = model.prior(x, generator=torch.Generator().manual_seed(8))
        one = model.prior(x, steps=1, generator=torch.Generator().manual_seed(7))
        noise = torch.randn(1, 256)
        direct = model.denoiser(noise, 3, model.cpen(x))
        one_n = model.prior(x, steps=1, noise=noise)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a, one)
    torch.testing.assert_close(one_n, direct)  # one step = one x0 prediction at t = T-1


def test_training_chain_starts_from_noised_teacher_ipr():
    model = random_model("sr").train()
    x = torch.rand(2, 3, 16, 16)
    ipr_s1 = torch.randn(2, 256)
    noise = torch.randn(2, 256)
    ipr, x0s = model.training_prior(x, ipr_s1, noise)  # the same loop as sampling: IPR and every x̂0
    assert len(x0s) == 4 and torch.equal(x0s[-1], ipr)  # the last step's coefficients are (1, 0)
    ac = float(np.cumprod(1 - model.betas)[-1])
    x_t = np.float32(np.sqrt(ac)) * ipr_s1 + np.float32(np.sqrt(1 - ac)) * noise
    c = model.cpen(x)
    first_x0 = model.denoiser(x_t, 3, c)
    torch.testing.assert_close(x0s[0], first_x0, rtol=1e-5, atol=1e-5)
    x_t = 0.50592679 * first_x0 + 0.07421243 * x_t  # the first posterior-mean step
    torch.testing.assert_close(x0s[1], model.denoiser(x_t, 2, c), rtol=1e-5, atol=1e-5)
    ipr.sum().backward()
    assert model.cpen.body[0].weight.grad is not None and model.denoiser.input[0].weight.grad is not None
