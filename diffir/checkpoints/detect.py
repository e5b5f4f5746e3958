"""Hyper-parameters from key names and tensor shapes (as spandrel does): any DiffIR state dict in
our names is enough to rebuild its network."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import CheckpointError
from ..nets.dirformer import SR_UNSHUFFLE
from ..nets.model import DiffIRConfig
from .official import short_list


def _count(sd: Mapping[str, Any], prefix: str) -> int:
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    idx = {int(m[1]) for k in sd if (m := pat.match(k))}
    return max(idx) + 1 if idx else 0


def _ffn_factor(pairs: list[tuple[int, int]]) -> float:
    """Smallest-decimal factor f with int(d * f) == h for every (channels d, hidden h) pair."""
    lo = max(h / d for d, h in pairs)
    hi = min((h + 1) / d for d, h in pairs)
    for decimals in range(8):
        f = math.ceil(lo * 10**decimals - 1e-9) / 10**decimals
        if f < hi and all(int(d * f) == h for d, h in pairs):
            return f
    return lo


def detect_config(sd: Mapping[str, torch.Tensor], name: str = "state dict") -> DiffIRConfig:
    """Infer the ``DiffIRConfig`` of a state dict in our names (see ``checkpoint_filter_fn``)."""
    key = "dirformer.patch_embed.weight"
    if key not in sd:
        raise CheckpointError(
            f"{name}: not a DiffIR network (no '{key}' or official 'G.patch_embed.proj.weight'); "
            f"first keys: {short_list(k for k in sd if not k.startswith('__'))}"
        )
    dim, in_ch = sd[key].shape[:2]
    stage = "s2" if any(k.startswith("denoiser.") for k in sd) else "s1"
    if "dirformer.tail.1.weight" in sd:
        task, scale = "sr", {3 * u * u: s for s, u in SR_UNSHUFFLE.items()}.get(in_ch)
        if scale is None:
            raise CheckpointError(f"{name}: SR patch_embed takes {in_ch} channels; expected 3, 12 or 48")
    elif "dirformer.output.weight" in sd and in_ch in (3, 4):
        task, scale = ("deblur" if in_ch == 3 else "inpaint"), 1
    else:
        raise CheckpointError(f"{name}: cannot tell the task (patch_embed takes {in_ch} channels, no known head)")

    levels = ["encoder_level1", "encoder_level2", "encoder_level3", "latent"]
    num_blocks = tuple(_count(sd, f"dirformer.{lv}.") for lv in levels)
    refinement = _count(sd, "dirformer.refinement.")
    defaults = (1, 2, 4, 8)
    heads = []
    for i, lv in enumerate(levels):
        t = sd.get(f"dirformer.{lv}.0.dmta.temperature")
        heads.append(int(t.shape[0]) if t is not None else defaults[i])
    pairs = []
    for lv, mult in [*zip(levels, (1, 2, 4, 8)), ("decoder_level1", 2), ("refinement", 2)]:
        for i in range(_count(sd, f"dirformer.{lv}.")):
            pairs.append((dim * mult, int(sd[f"dirformer.{lv}.{i}.dgfn.project_out.weight"].shape[1])))
    if not pairs:
        raise CheckpointError(f"{name}: DIRformer has no transformer blocks")
    first_block = next(k for k in sd if k.endswith(".norm1.weight"))
    norm_type = "WithBias" if first_block.replace(".weight", ".bias") in sd else "BiasFree"
    cfg: dict[str, Any] = dict(
        task=task,
        stage=stage,
        scale=scale,
        dim=int(dim),
        num_blocks=num_blocks,
        num_refinement_blocks=refinement,
        heads=tuple(heads),
        ffn_expansion_factor=_ffn_factor(pairs),
        bias="dirformer.reduce_chan_level3.bias" in sd,
        norm_type=norm_type,
        n_encoder_res=_count(sd, "cpen.body.") - 7 if "cpen.body.0.weight" in sd else 0,
    )
    if stage == "s2":
        cfg["n_denoise_res"] = _count(sd, "denoiser.blocks.")
        if "__schedule__" in sd:
            start, end, steps = sd["__schedule__"].tolist()
            cfg.update(linear_start=start, linear_end=end, timesteps=int(steps))
    try:
        return DiffIRConfig(**cfg)
    except ValueError as e:
        raise CheckpointError(f"{name}: inconsistent hyper-parameters: {e}") from None
