"""Official checkpoint names ↔ our names, and the checks on an official state dict's duplicated
entries and schedule buffers (one small filter both ways, as timm's ``checkpoint_filter_fn``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..nets.diffusion import make_betas, official_buffers
from ..nets.model import DiffIRS1, DiffIRS2

StateDict = dict[str, torch.Tensor]


def short_list(keys: Any, n: int = 5) -> str:
    """The first ``n`` items, comma-separated, with a count of the rest (for error messages)."""
    keys = list(keys)
    more = f", … ({len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


_RENAMES: list[tuple[str, str]] = [
    (r"^G\.", "dirformer."),
    (r"^(?:condition|E)\.E\.", "cpen.body."),
    (r"^(?:condition|E)\.mlp\.", "cpen.mlp."),
    (r"^denoise\.resmlp\.0\.", "denoiser.input.0."),
    (r"\.patch_embed\.proj\.", ".patch_embed."),
    (r"\.norm([12])\.body\.", r".norm\1."),
    (r"\.attn\.kernel\.0\.", ".dmta.ipr_proj."),
    (r"\.ffn\.kernel\.0\.", ".dgfn.ipr_proj."),
    (r"\.attn\.", ".dmta."),
    (r"\.ffn\.", ".dgfn."),
    (r"\.((?:down|up)\d_\d)\.body\.", r".\1."),
]
_DENOISE_BLOCK = re.compile(r"^denoise\.resmlp\.(\d+)\.resmlp\.0\.")
_OURS_TO_OFFICIAL: list[tuple[str, str]] = [
    (r"^dirformer\.", "G."),
    (r"^denoiser\.input\.0\.", "denoise.resmlp.0."),
    (r"\.patch_embed\.", ".patch_embed.proj."),
    (r"\.norm([12])\.", r".norm\1.body."),
    (r"\.dmta\.ipr_proj\.", ".attn.kernel.0."),
    (r"\.dgfn\.ipr_proj\.", ".ffn.kernel.0."),
    (r"\.dmta\.", ".attn."),
    (r"\.dgfn\.", ".ffn."),
    (r"\.((?:down|up)\d_\d)\.", r".\1.body."),
]


def official_to_ours(key: str) -> str:
    m = _DENOISE_BLOCK.match(key)
    if m:
        return f"denoiser.blocks.{int(m[1]) - 2}.0." + key[m.end() :]
    for pattern, repl in _RENAMES:
        key = re.sub(pattern, repl, key)
    return key


def ours_to_official(key: str, stage: str) -> str:
    m = re.match(r"^denoiser\.blocks\.(\d+)\.0\.", key)
    if m:
        return f"denoise.resmlp.{int(m[1]) + 2}.resmlp.0." + key[m.end() :]
    cpen = "condition." if stage == "s2" else "E."
    key = re.sub(r"^cpen\.body\.", cpen + "E.", key)
    key = re.sub(r"^cpen\.mlp\.", cpen + "mlp.", key)
    for pattern, repl in _OURS_TO_OFFICIAL:
        key = re.sub(pattern, repl, key)
    return key


def is_official(state_dict: Mapping[str, Any]) -> bool:
    return any(k.startswith("G.") for k in state_dict)


def _float_from_f32(x: float) -> float:
    """Shortest decimal that rounds to the same float32 (0.10000000149 → 0.1)."""
    return float(np.format_float_positional(np.float32(x), unique=True))


def _check_twins(state_dict: Mapping[str, torch.Tensor], diffusion: StateDict, name: str) -> None:
    """Each ``diffusion.model.*`` / ``diffusion.condition.*`` entry equals its twin, and none is missing."""
    twins = {"model.": "denoise.", "condition.": "condition."}
    for key, value in diffusion.items():
        prefix = next((p for p in twins if key.startswith(p)), None)
        if prefix is None:
            continue
        twin = twins[prefix] + key[len(prefix) :]
        if twin not in state_dict:
            raise CheckpointError(f"{name}: 'diffusion.{key}' has no twin '{twin}'")
        if state_dict[twin].shape != value.shape or not torch.equal(state_dict[twin], value):
            raise CheckpointError(f"{name}: 'diffusion.{key}' differs from its twin '{twin}'")
    for twin_prefix, dup_prefix in (("denoise.", "model."), ("condition.", "condition.")):
        missing = [
            k for k in state_dict if k.startswith(twin_prefix) and dup_prefix + k[len(twin_prefix) :] not in diffusion
        ]
        if missing:
            dups = short_list("diffusion." + dup_prefix + k[len(twin_prefix) :] for k in missing)
            raise CheckpointError(f"{name}: missing duplicated entries for {dups}")


def _schedule(diffusion: StateDict, name: str) -> torch.Tensor:
    """tensor([linear_start, linear_end, timesteps]) implied by ``diffusion.betas``, after checking that
    the 12 schedule buffers are exactly the official set and match that schedule."""
    buffers = {k: v for k, v in diffusion.items() if "." not in k}
    if "betas" not in buffers:
        raise CheckpointError(f"{name}: missing 'diffusion.betas'")
    betas = buffers["betas"].double()
    start, end, steps = _float_from_f32(betas[0]), _float_from_f32(betas[-1]), betas.numel()
    expected = official_buffers(make_betas(start, end, steps))
    missing = sorted(set(expected) - set(buffers))
    unexpected = sorted(set(buffers) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{name}: schedule buffers differ from the official set "
            f"(missing: {short_list('diffusion.' + k for k in missing) or '-'}; "
            f"unexpected: {short_list('diffusion.' + k for k in unexpected) or '-'})"
        )
    bad = [k for k, v in expected.items() if not torch.allclose(buffers[k].float(), v, rtol=1e-6, atol=1e-7)]
    if bad:
        raise CheckpointError(
            f"{name}: schedule buffers do not match the schedule: {short_list('diffusion.' + k for k in bad)}"
        )
    return torch.tensor([start, end, float(steps)], dtype=torch.float64)


def checkpoint_filter_fn(state_dict: Mapping[str, torch.Tensor], name: str = "state dict") -> StateDict:
    """Map an official DiffIRS1/DiffIRS2 state dict onto our names.

    The duplicated ``diffusion.model.*`` / ``diffusion.condition.*`` entries must equal their twins and
    the 12 ``diffusion.*`` schedule buffers must equal the schedule they imply; both are then dropped
    (ours are derived from the config). The schedule is returned under the pseudo-key
    ``__schedule__`` = tensor([linear_start, linear_end, timesteps]) for ``detect_config``.
    """
    out: StateDict = {official_to_ours(k): v for k, v in state_dict.items() if not k.startswith("diffusion.")}
    diffusion = {k[len("diffusion.") :]: v for k, v in state_dict.items() if k.startswith("diffusion.")}
    if diffusion:
        _check_twins(state_dict, diffusion, name)
        out["__schedule__"] = _schedule(diffusion, name)
    return out


def to_official(model: DiffIRS1 | DiffIRS2) -> StateDict:
    """Our model's weights in the official layout (what the official classes' ``state_dict()`` gives)."""
    stage = model.config.stage
    sd = {ours_to_official(k, stage): v for k, v in model.state_dict().items()}
    if stage == "s2":
        for k, v in official_buffers(model.betas).items():
            sd[f"diffusion.{k}"] = v
        for k in list(sd):
            if k.startswith("denoise."):
                sd["diffusion.model." + k[len("denoise.") :]] = sd[k]
        for k in list(sd):
            if k.startswith("condition."):
                sd["diffusion.condition." + k[len("condition.") :]] = sd[k]
    return sd
