"""Reading checkpoint files safely: ``.pth`` / ``.ckpt`` through ``torch.load(weights_only=True)``
(foreign objects become inert stubs, never code), safetensors, and the containers official
releases wrap their state dicts in (BasicSR ``params_ema``/``params``, Lightning ``state_dict``)."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ..errors import CheckpointError
from .official import StateDict, short_list

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class _Inert:
    """Stand-in for any non-tensor object in a checkpoint (configs, callbacks): accepts and ignores."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)``; foreign classes (e.g. a Lightning checkpoint's OmegaConf
    hyper-parameters) are replaced by an inert stub instead of being imported or executed."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    try:
        with torch.serialization.safe_globals([(_Inert, n) for n in names]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: holds objects that are not weights ({', '.join(names[:3]) or 'unknown'}); "
            "DiffIR only loads tensors and never runs code from a checkpoint. Re-save just its state dict "
            "from a trusted environment, or convert it to safetensors."
        ) from None


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[Any, dict[str, Any] | None]:
    """Read a file or our folder; returns (raw object, our config dict or None)."""
    path = Path(path)
    name = str(path)
    if path.is_dir():
        weights = path / WEIGHTS_NAME
        if not weights.is_file():
            raise CheckpointError(f"{name}: folder has no {WEIGHTS_NAME}")
        path = weights
    if not path.is_file():
        raise CheckpointError(f"{name}: no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{name}: file is empty (0 bytes)")
    config = None
    cfg_path = path.with_name(CONFIG_NAME)
    try:
        if path.suffix == ".safetensors":
            raw: Any = load_file(path)
            if cfg_path.is_file():
                config = json.loads(cfg_path.read_text())
            else:
                from safetensors import safe_open

                with safe_open(path, "pt") as f:
                    meta = f.metadata() or {}
                if "config" in meta:
                    config = json.loads(meta["config"])
        else:
            raw = _torch_load(path)
    except CheckpointError:
        raise
    except Exception as e:  # any parse failure of a damaged file: one clear message, never a traceback
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{name}: cannot read the checkpoint (truncated, corrupt or not a PyTorch/safetensors file): {msg}"
        ) from None
    return raw, config


def unwrap_state_dict(raw: Any, name: str = "state dict") -> StateDict:
    """Find the network's state dict inside an official container (or take a bare one)."""
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{name}: expected a dict of tensors, found {type(raw).__name__}")
    if "params_ema" in raw or "params" in raw:  # BasicSR
        raw = raw["params_ema"] if "params_ema" in raw else raw["params"]
    elif "state_dict" in raw and isinstance(raw["state_dict"], Mapping):  # Lightning (LaMa code base)
        sd = raw["state_dict"]
        gen = {k[len("generator.") :]: v for k, v in sd.items() if k.startswith("generator.")}
        raw = gen if gen else sd
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{name}: expected a dict of tensors, found {type(raw).__name__}")
    bad = [k for k, v in raw.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{name}: entries that are not tensors: {short_list(bad)}")
    if raw and all(k.startswith("module.") for k in raw):  # saved from DistributedDataParallel
        raw = {k[len("module.") :]: v for k, v in raw.items()}
    return dict(raw)
