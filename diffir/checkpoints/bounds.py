"""A config is checked before the network is built: building allocates every weight, so a
``config.json`` that says ``dim: 1000000`` must be refused here, not after gigabytes and minutes.

Two checks: every value within sane bounds (generous: the official networks are far inside them),
and the config agrees with the tensors actually present (so the network built is exactly as big as
the file that describes it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import CheckpointError
from ..nets.model import DiffIRConfig
from .detect import detect_config

INT_BOUNDS: dict[str, tuple[int, int]] = {
    "dim": (1, 1024),
    "num_refinement_blocks": (0, 64),
    "n_encoder_res": (0, 64),
    "n_denoise_res": (0, 64),
    "timesteps": (1, 1000),
}
PER_LEVEL_BOUNDS: dict[str, tuple[int, int]] = {"num_blocks": (0, 64), "heads": (1, 64)}
FFN_BOUNDS = (0.0, 16.0)  # exclusive low, inclusive high
FFN_MULTIPLIERS = (1, 2, 4, 8)  # channels of each level, in units of dim


def _whole(name: str, value: Any, low: int, high: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} must be a whole number, got {value!r}"
    if not low <= value <= high:
        return f"{name} must be between {low} and {high}, got {value}"
    return None


def _problems(cfg: DiffIRConfig) -> list[str]:
    """Every value out of bounds, as messages."""
    found = [_whole(k, getattr(cfg, k), *b) for k, b in INT_BOUNDS.items()]
    for key, (low, high) in PER_LEVEL_BOUNDS.items():
        values = getattr(cfg, key)
        if len(values) != 4:
            found.append(f"{key} must list 4 levels, got {len(values)}")
        found += [_whole(f"{key}[{i}]", v, low, high) for i, v in enumerate(values)]
    f = cfg.ffn_expansion_factor
    if isinstance(f, bool) or not isinstance(f, int | float) or not math.isfinite(f) or not 0 < f <= FFN_BOUNDS[1]:
        found.append(f"ffn_expansion_factor must be a number in (0, {FFN_BOUNDS[1]:g}], got {f!r}")
    a, b = cfg.linear_start, cfg.linear_end
    if not all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in (a, b)):
        found.append(f"linear_start and linear_end must be finite numbers, got {a!r} and {b!r}")
    elif not 0 < a <= b < 1:
        found.append(f"the schedule needs 0 < linear_start <= linear_end < 1, got {a} and {b}")
    if cfg.norm_type not in ("WithBias", "BiasFree"):
        found.append(f"norm_type must be 'WithBias' or 'BiasFree', got {cfg.norm_type!r}")
    if not isinstance(cfg.bias, bool):
        found.append(f"bias must be true or false, got {cfg.bias!r}")
    return [p for p in found if p]


def _hidden(cfg: DiffIRConfig) -> list[int]:
    """DGFN hidden channels per level: what ``ffn_expansion_factor`` decides in the weights."""
    return [int(cfg.dim * m * cfg.ffn_expansion_factor) for m in (*FFN_MULTIPLIERS, 2)]


def _disagreements(cfg: DiffIRConfig, found: DiffIRConfig) -> list[str]:
    """Fields where the config and the tensors' shapes disagree."""
    fields = ["task", "stage", "scale", "dim", "num_blocks", "num_refinement_blocks", "bias", "norm_type"]
    fields += ["n_encoder_res"] + (["n_denoise_res"] if cfg.stage == "s2" else [])
    out = [
        f"{k} {getattr(cfg, k)!r} (weights: {getattr(found, k)!r})"
        for k in fields
        if getattr(cfg, k) != getattr(found, k)
    ]
    levels = [i for i, n in enumerate(cfg.num_blocks) if n > 0]
    if [cfg.heads[i] for i in levels] != [found.heads[i] for i in levels]:
        out.append(f"heads {list(cfg.heads)} (weights: {list(found.heads)})")
    if cfg.dim == found.dim and _hidden(cfg) != _hidden(found):
        out.append(f"ffn_expansion_factor {cfg.ffn_expansion_factor} (weights: {found.ffn_expansion_factor})")
    return out


def check_config(cfg: DiffIRConfig, sd: Mapping[str, torch.Tensor] | None = None, name: str = "config") -> None:
    """A ``CheckpointError`` unless every value is within bounds and, given the state dict, agrees
    with its tensors' shapes. Cheap: nothing is allocated."""
    problems = _problems(cfg)
    if problems:
        raise CheckpointError(f"{name}: config values out of bounds: {'; '.join(problems)}")
    if sd is None:
        return
    found = detect_config(sd, name)
    wrong = _disagreements(cfg, found)
    if wrong:
        raise CheckpointError(
            f"{name}: config.json does not match the weights: {'; '.join(wrong)}. "
            "Fix the config (or re-save the model with save_pretrained)."
        )
