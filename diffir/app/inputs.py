"""What comes in: uploads checked as they arrive (every tab refuses a non-image at once, naming the
file), the inpainting editor's exact-original bookkeeping and its mask layers, and chaining a
result into the next tab's input."""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from ..errors import UserError
from ..inference.imageio import Picture, mask_layer, read_image, to_integer
from ..settings import settings
from . import words
from .outputs import _preview, request_dir

log = logging.getLogger("diffir.app")
# before/after, download, status, "use the result as the next input": a new input clears the last result
CLEARED = (None, None, "", gr.update(visible=False))


def file_of(value: Any) -> str | None:
    """A server path from a path or a Gradio file payload ({"path": …, "orig_name": …})."""
    if isinstance(value, dict):
        return value.get("path")
    return value or None


def name_of(value: Any) -> str:
    """The user's file name (Gradio keeps it as ``orig_name``, or as the upload's basename)."""
    if isinstance(value, dict) and value.get("orig_name"):
        return str(value["orig_name"])
    path = file_of(value)
    return Path(path).name if path else "image.png"


def check_image(value: Any, what: str = "an image", scale: int = 1) -> Picture:
    """The decoded upload, or a ``gr.Error`` that names the file and says what is wrong."""
    path = file_of(value)
    if not path:
        raise gr.Error(f"Upload {what} first.", title="No image")
    try:
        return read_image(path, max_pixels=settings().max_pixels, scale=scale)
    except UserError as e:
        raise gr.Error(words.problem(name_of(value), e), title="Cannot read the image") from None


def check_upload(scale: int):
    """The photo tabs' upload check: a file that is not a usable image is refused at once (the
    input is emptied and the message names the file); any upload clears the previous result."""

    def check(image: Any) -> tuple[Any, ...]:
        if not file_of(image):
            return (gr.update(), *CLEARED)
        try:
            pic = check_image(image, scale=scale)
        except gr.Error as e:
            gr.Warning(str(e.message), title="Cannot use this file")
            return (None, None, None, f"**Not used:** {e.message}", CLEARED[3])
        return (gr.update(), *CLEARED[:2], f"**{html.escape(name_of(image))}** · {words.picture(pic)}", CLEARED[3])

    return check


def mask_from_layers(editor: dict | None, size: tuple[int, int], given: np.ndarray | None = None) -> np.ndarray:
    """Union of the painted layers' alpha (True = fill) and ``given`` (an example's area); layers
    must be at the image's pixel size."""
    layers = (editor or {}).get("layers") or []
    mask = np.zeros((size[1], size[0]), bool) if given is None else given.copy()
    for layer in layers:
        if file_of(layer) is None:
            continue
        try:  # read like any image: a corrupt file or a bomb gets a clear message, never a server path
            mask |= mask_layer(file_of(layer), size, max_pixels=settings().max_pixels)
        except UserError as e:
            raise gr.Error(str(e), title="Cannot use the mask") from None
    if not mask.any():
        raise gr.Error("The mask is empty: paint over the area you want to fill.", title="Nothing to fill")
    return mask


def _same_picture(original: Picture, shown: Picture) -> bool:
    """Is the editor still showing the kept upload (as its 8-bit copy), or something put there since?"""
    if original.size != shown.size:
        return False
    diff = np.abs(to_integer(original.rgb, 8).astype(np.int16) - to_integer(shown.rgb, 8).astype(np.int16))
    return float(diff.mean()) < 2.0 and float(np.percentile(diff, 99)) <= 8


def example_area(editor: dict | None, marked: dict | None) -> np.ndarray | None:
    """An example's area to fill while the editor still shows that example (its photo with the
    area in red, ``marked_value``); None once something else was put there."""
    background = file_of((editor or {}).get("background"))
    if not marked or not background:
        return None
    try:
        shown, kept = read_image(background), read_image(marked["shown"])
        if not _same_picture(kept, shown):
            return None
        return mask_layer(marked["mask"], shown.size, max_pixels=settings().max_pixels)
    except (UserError, KeyError, OSError):
        return None


def original_or_background(editor: dict | None, original: str | None) -> tuple[Picture, Any]:
    """The exact original upload when it is what the editor shows, else the editor's background
    (the browser re-encodes that one to 8-bit RGBA, so the original is preferred)."""
    background = file_of((editor or {}).get("background"))
    if not background:
        raise gr.Error("Upload an image first, then paint over what to remove.", title="No image")
    shown = check_image(background)
    if original:
        try:
            pic = read_image(original, max_pixels=settings().max_pixels)
            if _same_picture(pic, shown):
                return pic, original
        except UserError:
            pass
    if shown.alpha is not None and float(shown.alpha.min()) >= 1.0:
        shown = Picture(shown.rgb, None, 8, shown.grey, shown.icc, "RGB", shown.source_format)  # opaque: plain RGB
    return shown, (editor or {}).get("background")


def forget_original(why: str):
    """The editor was cleared: the kept upload no longer applies."""

    def forget() -> tuple[None, None, str]:
        log.info("inpaint: original upload forgotten (%s)", why)
        return None, None, ""

    return forget


def painting_value(path: str) -> tuple[dict[str, Any], str]:
    """The editor's value for a file: an 8-bit upright copy to paint on (the exact file is kept
    aside); and the line that describes the file."""
    pic = check_image(path)
    shown = request_dir() / "background.png"
    _preview(pic.rgb, pic.alpha, pic.size).save(shown)
    value = {"background": str(shown), "layers": [], "composite": str(shown)}
    return value, words.uploaded(name_of(path), pic)


def marked_value(photo: str, mask: str) -> tuple[dict[str, Any], str, dict[str, str]]:
    """An example in the editor: its photo with the area to fill painted red into the picture (the
    editor places mask layers sent to it off the picture), the file's line, and what ``example_area``
    needs to find that area again (kept in the session, not in the editor)."""
    pic = check_image(photo)
    area = mask_layer(mask, pic.size, max_pixels=settings().max_pixels)
    shown = np.array(_preview(pic.rgb, pic.alpha, pic.size).convert("RGB"))
    shown[area] = (255, 46, 99)  # the brush's colour
    path = request_dir() / "example.png"
    Image.fromarray(shown).save(path)
    value = {"background": str(path), "layers": [], "composite": str(path)}
    return value, words.uploaded(name_of(photo), pic), {"shown": str(path), "mask": str(mask)}


def load_for_painting(upload: Any):
    """The 'Upload image' button: keep the exact file, show an 8-bit upright copy in the editor,
    clear the previous result. A file that is not an image is refused here, by name."""
    path = file_of(upload)
    if not path:
        return gr.update(), None, None, "", *CLEARED
    value, info = painting_value(path)
    return value, path, None, info, *CLEARED


def chain_to(target: str):
    """'Use this result as the next input': the full-resolution result becomes ``target``'s input
    (the exact PNG, with its alpha and 16 bits), the target tab is shown and its old result cleared."""

    def chain(download: Any) -> tuple[Any, ...]:
        path = file_of(download)
        if not path:
            raise gr.Error("There is no result to use yet: press Restore first.", title="No result")
        tabs = gr.Tabs(selected=target)
        if target == "inpaint":
            value, info = painting_value(path)
            return (tabs, value, path, None, info, *CLEARED)
        return (tabs, path, *CLEARED)

    return chain
