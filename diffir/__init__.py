"""DiffIR: efficient diffusion model for image restoration (Xia et al., ICCV 2023).

``load_network`` builds and loads any official or own checkpoint; ``restore`` turns an image file
into a restored picture (the engine of the web app and the CLI).
"""

from .imageio import ImageError, Picture, read_image
from .model import VARIANTS, DiffIRConfig, DiffIRS1, DiffIRS2, build_model
from .pipeline import Options, Restored, restore
from .weights import CheckpointError, WeightsNotFound, convert, detect_config, load_network, save_pretrained

__all__ = [
    "VARIANTS",
    "CheckpointError",
    "DiffIRConfig",
    "DiffIRS1",
    "DiffIRS2",
    "ImageError",
    "Options",
    "Picture",
    "Restored",
    "WeightsNotFound",
    "build_model",
    "convert",
    "detect_config",
    "load_network",
    "read_image",
    "restore",
    "save_pretrained",
]
