"""The paper's networks: DIRformer (DMTA + DGFN blocks), CPEN, the IPR denoiser and diffusion, and
the stage-1 / stage-2 models that combine them. Nothing here knows about files or images."""

from .model import VARIANTS, DiffIRConfig, DiffIRS1, DiffIRS2, build_model

__all__ = ["VARIANTS", "DiffIRConfig", "DiffIRS1", "DiffIRS2", "build_model"]
