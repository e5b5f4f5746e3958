"""Checkpoints: official containers and names, hyper-parameters from shapes, our folder format,
and where a task's weights are found."""

from .containers import CONFIG_NAME, WEIGHTS_NAME, read_checkpoint, unwrap_state_dict
from .detect import detect_config
from .official import checkpoint_filter_fn, is_official, official_to_ours, ours_to_official, to_official
from .pretrained import config_from_json, convert, load_network, save_pretrained
from .sources import WEIGHTS_DIR, resolve_weights

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_DIR",
    "WEIGHTS_NAME",
    "checkpoint_filter_fn",
    "config_from_json",
    "convert",
    "detect_config",
    "is_official",
    "load_network",
    "official_to_ours",
    "ours_to_official",
    "read_checkpoint",
    "resolve_weights",
    "save_pretrained",
    "to_official",
    "unwrap_state_dict",
]
