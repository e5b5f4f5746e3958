"""The Gradio web app: one tab per task. It calls ``diffir.restore`` and never touches tensors;
each model loads once per process (``preload_models``)."""

from .handlers import preload_models
from .layout import build_demo, launch_kwargs, queue, share_setting

__all__ = ["build_demo", "launch_kwargs", "preload_models", "queue", "share_setting"]
