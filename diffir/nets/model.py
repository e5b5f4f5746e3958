"""DiffIR models: stage 1 (CPEN_S1 + DIRformer) and stage 2 (CPEN_S2 + IPR diffusion + DIRformer).

A model is its ``DiffIRConfig`` plus a state dict. ``forward`` follows the official calling convention
(S2 ``net(x)``, S1 ``net(x, gt)``, inpainting returns a tuple); the pipeline uses the explicit pieces
instead (``prior`` → IPR, ``dirformer(x, ipr)``), which is what lets it share one IPR across tiles.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from .blocks import NormType
from .cpen import CPEN
from .diffusion import (
    IPRDenoiser,
    Schedule,
    initial_noise,
    make_betas,
    make_schedule,
    noised_start,
    sample_ipr,
)
from .dirformer import SR_UNSHUFFLE, DIRformer, Task, input_multiple

Stage = Literal["s1", "s2"]


@dataclass(frozen=True)
class DiffIRConfig:
    """Constructor arguments of a DiffIR network (the official hyper-parameters, with clean names)."""

    task: Task
    stage: Stage = "s2"
    scale: int = 1
    dim: int = 48
    num_blocks: tuple[int, int, int, int] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: tuple[int, int, int, int] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.66
    bias: bool = False
    norm_type: NormType = "WithBias"
    n_encoder_res: int = 6
    n_denoise_res: int = 1
    linear_start: float = 0.1
    linear_end: float = 0.99
    timesteps: int = 4
    prefill: bool = False  # inpainting: pull-push fill of the hole before DIRformer (ours; official: zeros)

    def __post_init__(self) -> None:
        if self.task not in ("deblur", "sr", "inpaint"):
            raise ValueError(f"task must be 'deblur', 'sr' or 'inpaint', got {self.task!r}")
        if self.stage not in ("s1", "s2"):
            raise ValueError(f"stage must be 's1' or 's2', got {self.stage!r}")
        if self.task == "sr" and self.scale not in SR_UNSHUFFLE:
            raise ValueError(f"SR scale must be 1, 2 or 4, got {self.scale}")
        if self.task != "sr" and self.scale != 1:
            raise ValueError(f"{self.task} works at scale 1, got scale={self.scale}")
        if self.prefill and self.task != "inpaint":
            raise ValueError("prefill (filling the hole before DIRformer) is for inpainting only")
        for level, (d, h) in enumerate(zip((1, 2, 4, 8), self.heads)):
            if (self.dim * d) % h:
                raise ValueError(f"level {level + 1}: {self.dim * d} channels do not split into {h} heads")
        object.__setattr__(self, "num_blocks", tuple(self.num_blocks))
        object.__setattr__(self, "heads", tuple(self.heads))

    @property
    def multiple(self) -> int:
        """Input height and width must be a multiple of this."""
        return input_multiple(self.task, self.scale)

    @property
    def out_scale(self) -> int:
        return self.scale if self.task == "sr" else 1

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["num_blocks"] = list(self.num_blocks)
        d["heads"] = list(self.heads)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DiffIRConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown DiffIR config fields: {', '.join(unknown)}")
        return cls(**d)


def _dirformer(cfg: DiffIRConfig) -> DIRformer:
    return DIRformer(
        task=cfg.task,
        scale=cfg.scale,
        dim=cfg.dim,
        num_blocks=cfg.num_blocks,
        num_refinement_blocks=cfg.num_refinement_blocks,
        heads=cfg.heads,
        ffn_expansion_factor=cfg.ffn_expansion_factor,
        bias=cfg.bias,
        norm_type=cfg.norm_type,
        prefill=cfg.prefill,
    )


def _cpen(cfg: DiffIRConfig, with_gt: bool) -> CPEN:
    lq_channels = 4 if cfg.task == "inpaint" else 3
    lq_unshuffle = SR_UNSHUFFLE[cfg.scale] if cfg.task == "sr" else 4
    return CPEN(lq_channels, lq_unshuffle, cfg.n_encoder_res, with_gt=with_gt)


class DiffIRS1(nn.Module):
    """Stage 1: CPEN_S1 sees LQ and GT, DIRformer restores under that GT-informed IPR."""

    def __init__(self, config: DiffIRConfig) -> None:
        super().__init__()
        if config.stage != "s1":
            config = dataclasses.replace(config, stage="s1")
        self.config = config
        self.dirformer = _dirformer(config)
        self.cpen = _cpen(config, with_gt=True)

    def forward(self, x: torch.Tensor, gt: torch.Tensor) -> Any:
        """Official convention: eval deblur/SR → output; inpainting or training → (output, [ipr])."""
        ipr = self.cpen(x, gt)
        out = self.dirformer(x, ipr)
        if self.training or self.config.task == "inpaint":
            return out, [ipr]
        return out


class DiffIRS2(nn.Module):
    """Stage 2: CPEN_S2 sees LQ only; a 4-step DDPM over the IPR recovers stage 1's prior."""

    def __init__(self, config: DiffIRConfig) -> None:
        super().__init__()
        if config.stage != "s2":
            config = dataclasses.replace(config, stage="s2")
        self.config = config
        self.dirformer = _dirformer(config)
        self.cpen = _cpen(config, with_gt=False)
        self.denoiser = IPRDenoiser(config.n_denoise_res, config.timesteps)
        self.betas = make_betas(config.linear_start, config.linear_end, config.timesteps)

    def schedule(self, steps: int | None = None) -> Schedule:
        return make_schedule(self.betas, steps)

    def prior(
        self,
        x: torch.Tensor,
        *,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        c: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The IPR for ``x``: x_T (from ``noise`` or drawn first, as the official code), then CPEN, then
        the reverse chain. ``c`` lets a caller pass a CPEN output it computed itself (e.g. tiled)."""
        if noise is None:
            noise = initial_noise(x.shape[0], generator=generator, device=x.device)
        if c is None:
            c = self.cpen(x)
        ipr, _ = sample_ipr(self.denoiser, c, self.schedule(steps), noise.to(c.dtype))
        return ipr

    def training_prior(
        self, x: torch.Tensor, ipr_s1: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Official S2 training chain: noise IPR_S1 to t = T−1, then the same reverse loop as sampling
        (``sample_ipr``), with gradients. Returns the IPR and the x̂0 of every step."""
        if noise is None:
            noise = torch.randn_like(ipr_s1)
        x_t = noised_start(ipr_s1, self.betas, noise)
        return sample_ipr(self.denoiser, self.cpen(x), self.schedule(), x_t)

    def forward(self, x: torch.Tensor, ipr_s1: torch.Tensor | None = None) -> Any:
        """Official convention: eval → output ((output, None) for inpainting);
        training (with ``ipr_s1``) → (output, the x̂0 of each reverse step; the last is the IPR used)."""
        if self.training:
            if ipr_s1 is None:
                raise ValueError("stage-2 training needs the stage-1 IPR")
            ipr, iprs = self.training_prior(x, ipr_s1)
            return self.dirformer(x, ipr), iprs
        out = self.dirformer(x, self.prior(x))
        return (out, None) if self.config.task == "inpaint" else out


def build_model(config: DiffIRConfig) -> DiffIRS1 | DiffIRS2:
    return DiffIRS1(config) if config.stage == "s1" else DiffIRS2(config)


# Official released networks (stage 2). Stage-1 twins: dataclasses.replace(cfg, stage="s1").
VARIANTS: dict[str, DiffIRConfig] = {
    "deblur": DiffIRConfig(
        task="deblur", dim=48, num_blocks=(3, 5, 6, 6), num_refinement_blocks=4,
        ffn_expansion_factor=2.0, norm_type="WithBias", n_encoder_res=5,
    ),
    **{
        f"sr_x{s}": DiffIRConfig(
            task="sr", scale=s, dim=64, num_blocks=(13, 1, 1, 1), num_refinement_blocks=13,
            ffn_expansion_factor=2.2, norm_type="BiasFree", n_encoder_res=9,
        )
        for s in (4, 2, 1)
    },
    "inpaint": DiffIRConfig(
        task="inpaint", dim=52, num_blocks=(1, 1, 1, 9), num_refinement_blocks=0,
        ffn_expansion_factor=1.8, norm_type="WithBias", n_encoder_res=5,
    ),
    "inpaint_big": DiffIRConfig(
        task="inpaint", dim=52, num_blocks=(1, 1, 1, 20), num_refinement_blocks=0,
        ffn_expansion_factor=1.8, norm_type="WithBias", n_encoder_res=8,
    ),
}  # fmt: skip
