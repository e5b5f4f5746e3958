"""DiffIR: efficient diffusion model for image restoration (Xia et al., ICCV 2023)."""

from .model import VARIANTS, DiffIRConfig, DiffIRS1, DiffIRS2, build_model
from .weights import CheckpointError, convert, detect_config, load_network, save_pretrained

__all__ = [
    "VARIANTS",
    "CheckpointError",
    "DiffIRConfig",
    "DiffIRS1",
    "DiffIRS2",
    "build_model",
    "convert",
    "detect_config",
    "load_network",
    "save_pretrained",
]
