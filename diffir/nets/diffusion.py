"""The DDPM that runs on the 256-d IPR only, written out as short pure functions.

Official facts (x0-parameterised, T = 4, "linear" schedule in sqrt space, posterior-mean sampling):

* betas      β_t = linspace(√β_start, √β_end, T)_t², ᾱ_t = Π_{s≤t} (1 − β_s), ᾱ_{−1} = 1;
* denoiser   x̂0 = ε_θ(x_t, t, c): an MLP on cat[c, t / (10 T), x_t];
* step       x_{t−1} = c1_t · x̂0 + c2_t · x_t with c1_t = β_t √ᾱ_{t−1} / (1 − ᾱ_t) and
             c2_t = (1 − ᾱ_{t−1}) √α_t / (1 − ᾱ_t). No noise is added (the official loop draws it and
             discards it) and nothing is clamped; since c1_0 = 1 and c2_0 = 0 the IPR is x̂0 at t = 0.

**Fewer steps (respacing).** For ``n < T`` steps we keep the "trailing" subsequence
``τ_k = round((k + 1) T / n) − 1`` (k = 0..n−1), which always contains t = T − 1 (the chain starts
from pure noise, ᾱ_{T−1} ≈ 0.0026) and ends on the smallest kept t. The respaced chain is the DDPM
whose cumulative products are ᾱ_{τ_k}: with ᾱ'_prev = ᾱ_{τ_{k−1}} (1 for k = 0),
α'_k = ᾱ_{τ_k} / ᾱ'_prev and β'_k = 1 − α'_k, the same posterior formulas give c1'_k and c2'_k. The
denoiser is still told the original t = τ_k. For n = T this is exactly the official schedule; for
n = 1 it is c1' = 1, c2' = 0, i.e. one x̂0 prediction at t = T − 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .blocks import IPR_DIM


def make_betas(linear_start: float, linear_end: float, timesteps: int) -> np.ndarray:
    """The official "linear" schedule: linear in sqrt(beta), computed in float64."""
    sqrt_betas = torch.linspace(linear_start**0.5, linear_end**0.5, timesteps, dtype=torch.float64)
    return (sqrt_betas**2).numpy()


def official_buffers(betas: np.ndarray) -> dict[str, torch.Tensor]:
    """The 12 schedule buffers an official S2 checkpoint stores, computed as the official code does."""
    alphas = 1.0 - betas
    ac = np.cumprod(alphas, axis=0)
    ac_prev = np.append(1.0, ac[:-1])
    post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
    values = {
        "betas": betas,
        "alphas_cumprod": ac,
        "alphas_cumprod_prev": ac_prev,
        "sqrt_alphas_cumprod": np.sqrt(ac),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - ac),
        "log_one_minus_alphas_cumprod": np.log(1.0 - ac),
        "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / ac),
        "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / ac - 1),
        "posterior_variance": post_var,
        "posterior_log_variance_clipped": np.log(np.maximum(post_var, 1e-20)),
        "posterior_mean_coef1": betas * np.sqrt(ac_prev) / (1.0 - ac),
        "posterior_mean_coef2": (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac),
    }
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in values.items()}


@dataclass(frozen=True)
class Schedule:
    """A (possibly respaced) sampling chain: the kept timesteps, high to low, and their coefficients."""

    timesteps: tuple[int, ...]
    coef1: tuple[float, ...]
    coef2: tuple[float, ...]
    num_train_timesteps: int


def trailing_timesteps(num_train_timesteps: int, steps: int) -> list[int]:
    """Kept timesteps, ascending: round((k + 1) T / n) − 1 for k = 0..n−1."""
    if not 1 <= steps <= num_train_timesteps:
        raise ValueError(f"steps must be in 1..{num_train_timesteps}, got {steps}")
    return [round((k + 1) * num_train_timesteps / steps) - 1 for k in range(steps)]


def make_schedule(betas: np.ndarray, steps: int | None = None) -> Schedule:
    """Posterior-mean coefficients for ``steps`` reverse steps (default: all T, the official chain)."""
    t_total = len(betas)
    kept = trailing_timesteps(t_total, t_total if steps is None else steps)
    ac = np.cumprod(1.0 - betas)
    ac_kept = ac[kept]
    ac_prev = np.append(1.0, ac_kept[:-1])
    alphas = ac_kept / ac_prev
    betas_kept = 1.0 - alphas
    # Same expressions and evaluation order as the official buffers, so n = T is bit-identical.
    coef1 = np.float32(betas_kept * np.sqrt(ac_prev) / (1.0 - ac_kept))
    coef2 = np.float32((1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac_kept))
    if len(kept) == t_total:  # use the betas themselves: 1 - (1 - b) is not always b in floating point
        off = official_buffers(betas)
        coef1 = off["posterior_mean_coef1"].numpy()
        coef2 = off["posterior_mean_coef2"].numpy()
    order = list(reversed(range(len(kept))))
    return Schedule(
        timesteps=tuple(kept[i] for i in order),
        coef1=tuple(float(coef1[i]) for i in order),
        coef2=tuple(float(coef2[i]) for i in order),
        num_train_timesteps=t_total,
    )


class IPRDenoiser(nn.Module):
    """x0-predicting MLP on cat[c, t/(10 T), x_t]: Linear 513→256 + LReLU, then n × (Linear + LReLU).

    There is no time embedding and, despite the official name "ResMLP", no residual connection.
    """

    def __init__(self, n_denoise_res: int, timesteps: int) -> None:
        super().__init__()
        self.max_period = 10 * timesteps
        self.input = nn.Sequential(nn.Linear(2 * IPR_DIM + 1, IPR_DIM), nn.LeakyReLU(0.1, inplace=True))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(IPR_DIM, IPR_DIM), nn.LeakyReLU(0.1, inplace=True)) for _ in range(n_denoise_res)
        )

    def forward(self, x: torch.Tensor, t: int, c: torch.Tensor) -> torch.Tensor:
        time = torch.full((x.shape[0], 1), t / self.max_period, dtype=x.dtype, device=x.device)
        h = self.input(torch.cat([c, time, x], dim=1))
        for block in self.blocks:
            h = block(h)
        return h


def initial_noise(
    batch: int, *, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """x_T ~ N(0, I): the only random draw of DiffIR inference (the official code draws it first)."""
    return torch.randn(batch, IPR_DIM, generator=generator, device=device)


def sample_ipr(
    denoiser: IPRDenoiser, c: torch.Tensor, schedule: Schedule, x_t: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run the reverse chain from ``x_t`` under condition ``c``; returns the IPR and every x̂0."""
    predictions = []
    for t, c1, c2 in zip(schedule.timesteps, schedule.coef1, schedule.coef2):
        x0 = denoiser(x_t, t, c)
        predictions.append(x0)
        x_t = c1 * x0 + c2 * x_t
    return x_t, predictions


def noised_start(ipr_s1: torch.Tensor, betas: np.ndarray, noise: torch.Tensor) -> torch.Tensor:
    """Training start point x_{T−1} = √ᾱ_{T−1} · IPR_S1 + √(1 − ᾱ_{T−1}) · ε (the official q_sample)."""
    ac_last = float(np.cumprod(1.0 - betas)[-1])
    return np.float32(np.sqrt(ac_last)) * ipr_s1 + np.float32(np.sqrt(1.0 - ac_last)) * noise
