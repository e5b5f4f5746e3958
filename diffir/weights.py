"""Loading and saving DiffIR networks: official checkpoints, bare state dicts and our own format.

* Our format (the ``save_pretrained`` / ``from_pretrained`` convention): a folder with ``config.json``
  (the ``DiffIRConfig``) and ``model.safetensors`` (each tensor once, our module names).
* Official BasicSR ``.pth`` (``params_ema`` preferred, else ``params``) and official inpainting
  Lightning ``.ckpt`` (``state_dict`` with ``generator.`` keys) are mapped onto our names by
  ``checkpoint_filter_fn``; hyper-parameters are detected from key names and shapes (``detect_config``).

Loading is strict and never unpickles arbitrary objects: ``torch.load(weights_only=True)`` or
safetensors only. Anything that is not exactly a DiffIR network raises ``CheckpointError``.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from .diffusion import make_betas, official_buffers
from .dirformer import SR_UNSHUFFLE
from .imageio import write_atomic
from .model import DiffIRConfig, DiffIRS1, DiffIRS2, build_model

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_TYPE = "diffir"
StateDict = dict[str, torch.Tensor]


class CheckpointError(ValueError):
    """A file or state dict that is not (exactly) a DiffIR network."""


def _keys(keys: Any, n: int = 5) -> str:
    keys = list(keys)
    more = f", … ({len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


# --------------------------------------------------------------------------------------------------
# Official names → our names (one small filter, as timm's checkpoint_filter_fn)
# --------------------------------------------------------------------------------------------------

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


def checkpoint_filter_fn(state_dict: Mapping[str, torch.Tensor], name: str = "state dict") -> StateDict:
    """Map an official DiffIRS1/DiffIRS2 state dict onto our names.

    The duplicated ``diffusion.model.*`` / ``diffusion.condition.*`` entries must equal their twins and
    the 12 ``diffusion.*`` schedule buffers must equal the schedule they imply; both are then dropped
    (ours are derived from the config). The schedule is returned under the pseudo-key
    ``__schedule__`` = tensor([linear_start, linear_end, timesteps]) for ``detect_config``.
    """
    out: StateDict = {}
    diffusion = {k[len("diffusion.") :]: v for k, v in state_dict.items() if k.startswith("diffusion.")}
    for key, value in state_dict.items():
        if not key.startswith("diffusion."):
            out[official_to_ours(key)] = value
    if diffusion:
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
                k
                for k in state_dict
                if k.startswith(twin_prefix) and dup_prefix + k[len(twin_prefix) :] not in diffusion
            ]
            if missing:
                raise CheckpointError(
                    f"{name}: missing duplicated entries for {_keys('diffusion.' + dup_prefix + k[len(twin_prefix) :] for k in missing)}"
                )
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
                f"(missing: {_keys('diffusion.' + k for k in missing) or '-'}; "
                f"unexpected: {_keys('diffusion.' + k for k in unexpected) or '-'})"
            )
        bad = [k for k, v in expected.items() if not torch.allclose(buffers[k].float(), v, rtol=1e-6, atol=1e-7)]
        if bad:
            raise CheckpointError(
                f"{name}: schedule buffers do not match the schedule: {_keys('diffusion.' + k for k in bad)}"
            )
        out["__schedule__"] = torch.tensor([start, end, float(steps)], dtype=torch.float64)
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


# --------------------------------------------------------------------------------------------------
# Hyper-parameters from key names and shapes (as spandrel does)
# --------------------------------------------------------------------------------------------------


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
            f"first keys: {_keys(k for k in sd if not k.startswith('__'))}"
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


# --------------------------------------------------------------------------------------------------
# Reading files safely
# --------------------------------------------------------------------------------------------------


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
        raise CheckpointError(f"{name}: entries that are not tensors: {_keys(bad)}")
    if raw and all(k.startswith("module.") for k in raw):  # saved from DistributedDataParallel
        raw = {k[len("module.") :]: v for k, v in raw.items()}
    return dict(raw)


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def load_state_dict_strict(model: nn.Module, sd: Mapping[str, torch.Tensor], name: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            f"{name}: keys do not match a {model.config.task} {model.config.stage} DiffIR network "
            f"(missing: {_keys(missing) or '-'}; unexpected: {_keys(unexpected) or '-'})"
        )
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if sd[k].shape != v.shape]
    if wrong:
        raise CheckpointError(f"{name}: shape mismatch (checkpoint vs network): {_keys(wrong, 3)}")
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


def save_pretrained(model: DiffIRS1 | DiffIRS2, directory: str | os.PathLike[str], **card: Any) -> Path:
    """Write ``config.json`` + ``model.safetensors``, each atomically (``imageio.write_atomic``)."""
    directory = Path(directory)
    cfg = {"model_type": MODEL_TYPE, **model.config.to_dict()}
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    meta = {"config": json.dumps(cfg), "format": "pt", **{k: str(v) for k, v in card.items()}}
    write_atomic(directory / WEIGHTS_NAME, safetensors_bytes(tensors, metadata=meta))
    write_atomic(directory / CONFIG_NAME, (json.dumps(cfg, indent=2) + "\n").encode())
    return directory


def convert(official_file: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Official checkpoint → our folder format."""
    return save_pretrained(load_network(official_file), out_dir)


# --------------------------------------------------------------------------------------------------
# Where the weights for a task come from
# --------------------------------------------------------------------------------------------------

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
OFFICIAL_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")


class WeightsNotFound(FileNotFoundError):
    """No weights for a task anywhere we look; the message lists the places."""


def _in_folder(folder: Path) -> Path | None:
    """An official checkpoint dropped into the folder wins over our shipped model (the user put it
    there on purpose); otherwise our ``config.json`` + ``model.safetensors``."""
    if not folder.is_dir():
        return None
    official = sorted(p for p in folder.iterdir() if p.suffix in OFFICIAL_SUFFIXES and p.name != WEIGHTS_NAME)
    if official:
        return official[0]
    return folder if (folder / WEIGHTS_NAME).is_file() else None


def resolve_weights(task: str, explicit: str | os.PathLike[str] | None = None) -> Path:
    """Weights for ``task``, first found of:

    1. ``explicit`` (``--weights``) or ``$DIFFIR_WEIGHTS``: a model folder or file, or a folder with
       one sub-folder per task (``sr/``, ``deblur/``, ``inpaint/``);
    2. ``weights/<task>/`` in this repository (our shipped model, or an official checkpoint put there);
    3. ``$DIFFIR_HUB_REPO`` on the Hugging Face Hub (``<task>/config.json`` + ``model.safetensors``),
       through the local cache; ``HF_HUB_OFFLINE=1`` is respected.
    """
    tried = []
    given = explicit or os.environ.get("DIFFIR_WEIGHTS")
    if given:
        p = Path(given).expanduser()
        found = _in_folder(p / task) or (p if p.is_file() else _in_folder(p))
        if found is None:
            raise WeightsNotFound(f"no DiffIR weights for {task} at {p} (expected a model folder or file)")
        return found
    local = _in_folder(WEIGHTS_DIR / task)
    if local is not None:
        return local
    tried.append(str(WEIGHTS_DIR / task))
    repo = os.environ.get("DIFFIR_HUB_REPO")
    if repo:
        from huggingface_hub import hf_hub_download

        try:
            hf_hub_download(repo, f"{task}/{CONFIG_NAME}")
            return Path(hf_hub_download(repo, f"{task}/{WEIGHTS_NAME}")).parent
        except Exception as e:
            tried.append(f"hub repo {repo} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
    else:
        tried.append("no DIFFIR_HUB_REPO set")
    raise WeightsNotFound(
        f"no DiffIR weights for {task}: looked in {'; '.join(tried)}. Put a model folder or an official "
        f"checkpoint in weights/{task}/, pass --weights, or set DIFFIR_WEIGHTS / DIFFIR_HUB_REPO."
    )
