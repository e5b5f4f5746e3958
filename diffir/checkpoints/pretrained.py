"""``load_network`` / ``save_pretrained``: any DiffIR checkpoint in, our ``config.json`` +
``model.safetensors`` folder out (the diffusers convention)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn

from ..errors import CheckpointError
from ..files import write_atomic
from ..nets.model import DiffIRConfig, DiffIRS1, DiffIRS2, build_model
from .bounds import check_config
from .containers import CONFIG_NAME, WEIGHTS_NAME, read_checkpoint, unwrap_state_dict
from .detect import detect_config
from .official import checkpoint_filter_fn, is_official, short_list

MODEL_TYPE = "diffir"


def load_state_dict_strict(model: nn.Module, sd: Mapping[str, torch.Tensor], name: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            f"{name}: keys do not match a {model.config.task} {model.config.stage} DiffIR network "
            f"(missing: {short_list(missing) or '-'}; unexpected: {short_list(unexpected) or '-'})"
        )
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if sd[k].shape != v.shape]
    if wrong:
        raise CheckpointError(f"{name}: shape mismatch (checkpoint vs network): {short_list(wrong, 3)}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()}, strict=True)


def load_network(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    device: str | torch.device = "cpu",
    config: DiffIRConfig | None = None,
) -> DiffIRS1 | DiffIRS2:
    """Build the network a checkpoint describes and load it strictly; returns it in eval mode.

    ``source``: an official BasicSR ``.pth``, an official inpainting Lightning ``.ckpt``, our folder
    (``config.json`` + ``model.safetensors``), a ``.safetensors`` file, or an in-memory state dict (or
    container) in official or our names. Hyper-parameters are detected unless ``config`` is given.
    """
    if isinstance(source, Mapping):
        raw, cfg_dict, name = source, None, "state dict"
    else:
        raw, cfg_dict = read_checkpoint(source)
        name = str(source)
    sd = unwrap_state_dict(raw, name)
    if is_official(sd):
        sd = checkpoint_filter_fn(sd, name)
    if config is None:
        config = config_from_json(cfg_dict, name) if cfg_dict is not None else detect_config(sd, name)
    check_config(config, sd, name)  # before anything is allocated
    sd.pop("__schedule__", None)
    model = build_model(config)
    load_state_dict_strict(model, sd, name)
    return model.eval().to(device)


def config_from_json(d: Mapping[str, Any], name: str = "config") -> DiffIRConfig:
    d = dict(d)
    model_type = d.pop("model_type", MODEL_TYPE)
    if model_type != MODEL_TYPE:
        raise CheckpointError(f"{name}: config is for model_type {model_type!r}, not {MODEL_TYPE!r}")
    for k in [k for k in d if k.startswith("_")]:
        d.pop(k)
    try:
        return DiffIRConfig.from_dict(d)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{name}: bad config: {e}") from None


def save_pretrained(
    model: DiffIRS1 | DiffIRS2,
    directory: str | os.PathLike[str],
    *,
    dtype: torch.dtype = torch.float32,
    **card: Any,
) -> Path:
    """Write ``config.json`` + ``model.safetensors``, each atomically (``files.write_atomic``).

    ``dtype=torch.float16`` halves the file (shipped weights: they load back as float32)."""
    directory = Path(directory)
    cfg = {"model_type": MODEL_TYPE, **model.config.to_dict()}
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    meta = {"config": json.dumps(cfg), "format": "pt", **{k: str(v) for k, v in card.items()}}
    write_atomic(directory / WEIGHTS_NAME, safetensors_bytes(tensors, metadata=meta))
    write_atomic(directory / CONFIG_NAME, (json.dumps(cfg, indent=2) + "\n").encode())
    return directory


def convert(official_file: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Official checkpoint → our folder format."""
    return save_pretrained(load_network(official_file), out_dir)
