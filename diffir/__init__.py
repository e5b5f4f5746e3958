"""DiffIR: efficient diffusion model for image restoration (Xia et al., ICCV 2023).

``load_network`` builds and loads any official or own checkpoint; ``restore`` turns an image file
into a restored picture (the engine of the web app and the CLI).

Layers, bottom to top (a layer imports only from layers below it):
``errors``, ``settings``, ``files``, ``tasks`` → ``nets`` → ``checkpoints`` → ``inference`` →
``training`` → ``app``, ``cli``, ``bench``.
"""

from .checkpoints import convert, detect_config, load_network, save_pretrained
from .errors import CheckpointError, ImageError, OptionsError, UserError, WeightsNotFound
from .inference import Options, Picture, Restored, read_image, restore
from .nets import VARIANTS, DiffIRConfig, DiffIRS1, DiffIRS2, build_model
from .tasks import TASKS

__all__ = [
    "TASKS",
    "VARIANTS",
    "CheckpointError",
    "DiffIRConfig",
    "DiffIRS1",
    "DiffIRS2",
    "ImageError",
    "Options",
    "OptionsError",
    "Picture",
    "Restored",
    "UserError",
    "WeightsNotFound",
    "build_model",
    "convert",
    "detect_config",
    "load_network",
    "read_image",
    "restore",
    "save_pretrained",
]
