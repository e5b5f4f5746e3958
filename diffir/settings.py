"""All ``DIFFIR_*`` environment variables, read in one place, when asked for (not at import time).

==========================  ===========================================================  =============
variable                    meaning                                                      default
==========================  ===========================================================  =============
``DIFFIR_WEIGHTS``          a model folder/file, or a folder with ``inpaint/ sr/ deblur/``  (none)
``DIFFIR_HUB_REPO``         Hub repo with ``<task>/config.json`` + ``model.safetensors``  (none)
``DIFFIR_CACHE``            where the training pool and patch banks live                  ``cache/``
``DIFFIR_MAX_PIXELS``       the app's pixel limit (input and output)                     16 000 000
``DIFFIR_MAX_FILE_SIZE``    the app's upload limit                                       ``50mb``
``DIFFIR_QUEUE_SIZE``       the app's queue length                                       32
``DIFFIR_TEMP_TTL``         seconds the app keeps uploads and results (swept on a timer)  3600
``DIFFIR_THREADS``          threads the app's model may use (leave cores to other work)   all cores
``DIFFIR_MALLOC``           ``system``: keep glibc's allocator defaults (``allocator.py``)  ``tuned``
==========================  ===========================================================  =============
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The repository (``weights/``, ``examples/``, ``cache/`` live here)."""


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw.replace("_", ""))
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a whole number") from None


def _choice(name: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (the first is the default)."""
    raw = os.environ.get(name, "").strip().lower() or choices[0]
    if raw not in choices:
        raise SystemExit(f"{name}={raw!r}: use one of {', '.join(choices)}")
    return raw


@dataclass(frozen=True)
class Settings:
    weights: str | None
    hub_repo: str | None
    cache: Path
    max_pixels: int
    max_file_size: str
    queue_size: int
    temp_ttl: int
    threads: int  # 0: torch's default (every core)
    malloc: str  # "tuned" (allocator.py) or "system"


def settings() -> Settings:
    """The current settings (read on every call, so tests and launchers can change the environment)."""
    env = os.environ
    return Settings(
        weights=env.get("DIFFIR_WEIGHTS") or None,
        hub_repo=env.get("DIFFIR_HUB_REPO") or None,
        cache=Path(env.get("DIFFIR_CACHE") or ROOT / "cache"),
        max_pixels=_int("DIFFIR_MAX_PIXELS", 16_000_000),
        max_file_size=env.get("DIFFIR_MAX_FILE_SIZE") or "50mb",
        queue_size=_int("DIFFIR_QUEUE_SIZE", 32),
        temp_ttl=max(1, _int("DIFFIR_TEMP_TTL", 3600)),
        threads=max(0, _int("DIFFIR_THREADS", 0)),
        malloc=_choice("DIFFIR_MALLOC", ("tuned", "system")),
    )
