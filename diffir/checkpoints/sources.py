"""Where the weights for a task come from: ``--weights`` / ``DIFFIR_WEIGHTS``, ``weights/<task>/``,
then a Hub repository through its local cache."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import WeightsNotFound
from ..settings import ROOT, settings
from .containers import CONFIG_NAME, WEIGHTS_NAME

WEIGHTS_DIR = ROOT / "weights"
OFFICIAL_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")


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
    """Weights for ``task`` (a weights folder name: the task's, or a style's such as ``sr_sharp``),
    first found of:

    1. ``explicit`` (``--weights``) or ``$DIFFIR_WEIGHTS``: a model folder or file, or a folder with
       one sub-folder per task (``sr/``, ``deblur/``, ``inpaint/``);
    2. ``weights/<task>/`` in this repository (our shipped model, or an official checkpoint put there);
    3. ``$DIFFIR_HUB_REPO`` on the Hugging Face Hub (``<task>/config.json`` + ``model.safetensors``),
       through the local cache; ``HF_HUB_OFFLINE=1`` is respected.
    """
    tried = []
    given = explicit or settings().weights
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
    repo = settings().hub_repo
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
