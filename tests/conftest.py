"""Shared helpers: reference data, tiny configs and random networks (no downloads anywhere)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from diffir import DiffIRConfig, build_model

REFERENCE = Path(__file__).parent / "reference"
VECTORS = sorted(REFERENCE.glob("vector_*_small.pt"))
LAYOUTS = sorted(REFERENCE.glob("layout_*.json"))

TINY = {
    "deblur": DiffIRConfig(task="deblur", dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1,
                           ffn_expansion_factor=2.0, n_encoder_res=1),
    "sr": DiffIRConfig(task="sr", scale=4, dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1,
                       ffn_expansion_factor=2.2, norm_type="BiasFree", n_encoder_res=1),
    "inpaint": DiffIRConfig(task="inpaint", dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=0,
                            ffn_expansion_factor=1.8, n_encoder_res=1),
}  # fmt: skip


def random_model(task: str, stage: str = "s2", seed: int = 0):
    """A tiny network with random weights (LayerNorm and temperatures randomised too)."""
    import dataclasses

    torch.manual_seed(seed)
    model = build_model(dataclasses.replace(TINY[task], stage=stage))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * (0.1 if p.ndim > 1 else 0.5) + (1.0 if p.ndim == 1 else 0.0))
    return model.eval()


def load_vector(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def official_state_dict(d: dict) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in d["state_dict"].items()}


def layout(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def vectors() -> dict[str, dict]:
    return {p.stem: load_vector(p) for p in VECTORS}
