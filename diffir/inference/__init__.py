"""Inference: lossless image I/O, padding and tiling, the network on a tensor (``forward_padded``)
and ``restore``, the one entry point of the app, the CLI and the Python API."""

from .forward import forward_padded
from .imageio import Picture, read_image
from .pipeline import Options, Restored, get_model, restore

__all__ = ["Options", "Picture", "Restored", "forward_padded", "get_model", "read_image", "restore"]
