"""Fixtures: the official reference vectors and a synthetic photo pool (helpers live in helpers.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from .helpers import TINY, photo_pool, random_model  # noqa: F401  (re-exported for older imports)

REFERENCE = Path(__file__).parent / "reference"
VECTORS = sorted(REFERENCE.glob("vector_*_small.pt"))
LAYOUTS = sorted(REFERENCE.glob("layout_*.json"))


def load_vector(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def official_state_dict(d: dict) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in d["state_dict"].items()}


def layout(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def vectors() -> dict[str, dict]:
    return {p.stem: load_vector(p) for p in VECTORS}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A synthetic photo pool (``pool/train``, ``pool/val``) for training, campaign and pack tests."""
    return photo_pool(tmp_path_factory.mktemp("cache"))
