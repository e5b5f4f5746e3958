"""The app's handlers: the same functions serve the UI and the named API endpoints.

Inputs are checked before any model work and every problem reaches the user as a one-line
``gr.Error``; the UI never touches tensors (it calls ``diffir.restore``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import spaces
import torch
from PIL import Image

from ..errors import UserError
from ..inference.imageio import Picture, read_image, to_integer
from ..inference.pipeline import Options, get_model, restore
from ..settings import settings
from ..tasks import TASKS
from .outputs import _preview, request_dir, save_outputs

log = logging.getLogger("diffir.app")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
_LOAD_ERRORS: dict[str, str] = {}


def preload_models(device: str = DEVICE) -> dict[str, str]:
    """Load (and on a GPU machine move) every task's model once; returns {task: problem} for those
    that could not be loaded, so the app still starts and says what is missing."""
    for task in TASKS:
        try:
            get_model(task, device=device)
            _LOAD_ERRORS.pop(task, None)
        except UserError as e:
            _LOAD_ERRORS[task] = str(e)
    return dict(_LOAD_ERRORS)


def _gpu_seconds(pixels: float, steps: int, tiles: int) -> int:
    """A ZeroGPU reservation from the work: ~6 s/Mpx through DIRformer, per-tile overhead, steps."""
    return int(min(300, 15 + 6 * pixels / 1e6 + 0.5 * tiles + 0.5 * steps))


def _estimate(task: str, image: Any, steps: Any, tile: Any) -> int:
    try:
        path = _file(image.get("background")) if isinstance(image, dict) and "background" in image else _file(image)
        with Image.open(path) as im:
            w, h = im.size
    except Exception:
        return 60
    scale = 4 if task == "sr" else 1
    t = max(64, int(tile or 0)) if tile else max(w, h)
    tiles = max(1, (w // t + 1) * (h // t + 1))
    return _gpu_seconds(w * h * scale * scale, int(steps or 4), tiles)


def _options(steps: Any, tile: Any, overlap: Any, seed: Any, randomize: bool, dilate: Any = 0) -> Options:
    seed_value = None if randomize or seed is None or seed == "" else int(seed)
    return Options(
        steps=int(steps) if steps else None,
        seed=seed_value,
        tile=int(tile or 0),
        overlap=int(overlap or 0),
        device=DEVICE,
        dilate=int(dilate or 0),
        max_pixels=settings().max_pixels,
    )


def _check_image(path: str | None, what: str = "an image") -> Picture:
    if not path:
        raise gr.Error(f"Upload {what} first.", title="No image")
    try:
        return read_image(path, max_pixels=settings().max_pixels)
    except UserError as e:
        raise gr.Error(str(e), title="Cannot read the image") from None


def _model(task: str):
    if task in _LOAD_ERRORS:
        raise gr.Error(_LOAD_ERRORS[task], title="Model not available")
    try:
        return get_model(task, device=DEVICE)
    except UserError as e:
        raise gr.Error(str(e), title="Model not available") from None


def _progress_cb(progress: gr.Progress) -> Callable[[float, str], None]:
    def cb(fraction: float, message: str) -> None:
        progress(fraction, desc=message)

    return cb


def _run(task: str, picture: Picture, name: str, mask: np.ndarray | None, opts: Options, progress: gr.Progress):
    model = _model(task)
    try:
        result = restore(task, picture, mask=mask, model=model, options=opts, progress=_progress_cb(progress))
    except UserError as e:
        raise gr.Error(str(e), title="Cannot restore this image") from None
    except Exception as e:  # never a traceback in the UI: log it, say it in one line
        log.exception("restoration failed")
        raise gr.Error(
            f"The restoration failed ({type(e).__name__}: {e}). Try a smaller tile size.", title="Error"
        ) from None
    slider, full = save_outputs(result, name)
    return slider, full, f"**Done.** {result.summary()}", result.seed


def _file(value: Any) -> str | None:
    """A server path from a path or a Gradio file payload ({"path": …, "orig_name": …})."""
    if isinstance(value, dict):
        return value.get("path")
    return value or None


def _name(value: Any) -> str:
    if isinstance(value, dict) and value.get("orig_name"):
        return str(value["orig_name"])
    path = _file(value)
    return Path(path).name if path else "image.png"


def _photo_handler(task: str, doc: str) -> Callable[..., Any]:
    """The handler of a photo tab (SR, deblurring); Gradio reads its signature for the API."""

    def handler(
        image: str | None,
        steps: float,
        tile: float,
        overlap: float,
        seed: float,
        randomize: bool,
        progress: gr.Progress = gr.Progress(),
    ):
        picture = _check_image(_file(image))
        return _run(task, picture, _name(image), None, _options(steps, tile, overlap, seed, randomize), progress)

    handler.__name__ = handler.__qualname__ = TASKS[task].api_name
    handler.__doc__ = doc
    return spaces.GPU(duration=lambda image, steps, tile, *a, **k: _estimate(task, image, steps, tile))(handler)


super_resolve = _photo_handler(
    "sr",
    "Upscale a photo 4× (real-world SR). Returns (before, after), the full-resolution PNG, a status line and the seed used.",
)
deblur = _photo_handler(
    "deblur", "Remove motion blur. Returns (before, after), the full-resolution PNG, a status line and the seed used."
)


def mask_from_layers(editor: dict | None, size: tuple[int, int]) -> np.ndarray:
    """Union of the painted layers' alpha (True = fill); layers must be at the image's pixel size."""
    layers = (editor or {}).get("layers") or []
    mask = np.zeros((size[1], size[0]), bool)
    for layer in layers:
        if _file(layer) is None:
            continue
        with Image.open(_file(layer)) as im:
            if im.size != size:
                raise gr.Error(
                    f"the mask layer is {im.width}×{im.height} but the image is {size[0]}×{size[1]}; upload the image again.",
                    title="Mask does not fit",
                )
            arr = np.asarray(im.convert("RGBA"))
        painted = arr[..., 3] > 0 if arr[..., 3].min() < 255 else arr[..., :3].mean(axis=2) > 127
        mask |= painted
    if not mask.any():
        raise gr.Error("The mask is empty: paint over the area you want to fill.", title="Nothing to fill")
    return mask


def _same_picture(original: Picture, shown: Picture) -> bool:
    """Is the editor still showing the kept upload (as its 8-bit copy), or something put there since?"""
    if original.size != shown.size:
        return False
    diff = np.abs(to_integer(original.rgb, 8).astype(np.int16) - to_integer(shown.rgb, 8).astype(np.int16))
    return float(diff.mean()) < 2.0 and float(np.percentile(diff, 99)) <= 8


def _original_or_background(editor: dict | None, original: str | None) -> tuple[Picture, Any]:
    """The exact original upload when it is what the editor shows, else the editor's background
    (the browser re-encodes that one to 8-bit RGBA, so the original is preferred)."""
    background = _file((editor or {}).get("background"))
    if not background:
        raise gr.Error("Upload an image first, then paint over what to remove.", title="No image")
    shown = _check_image(background)
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


@spaces.GPU(duration=lambda editor, original, steps, tile, *a, **k: _estimate("inpaint", editor, steps, tile))
def inpaint(
    editor: dict | None,
    original: str | None,
    steps: float,
    tile: float,
    overlap: float,
    seed: float,
    randomize: bool,
    dilate: float,
    progress: gr.Progress = gr.Progress(),
):
    """Fill the painted region. ``editor``: {"background": image, "layers": [mask layers], "composite": …}
    (a layer's alpha, or white-on-black brightness, marks the hole). ``original``: the exact upload
    (optional). Returns (before, after), the full-resolution PNG, a status line and the seed used."""
    picture, source = _original_or_background(editor, original)
    mask = mask_from_layers(editor, picture.size)
    opts = _options(steps, tile, overlap, seed, randomize, dilate)
    return _run("inpaint", picture, _name(source), mask, opts, progress)


def _forget_original(why: str) -> Callable[[], tuple[None, str]]:
    def forget() -> tuple[None, str]:
        log.info("inpaint: original upload forgotten (%s)", why)
        return None, ""

    return forget


def load_for_painting(path: str | None):
    """The 'Upload image' button: keep the exact file, show an 8-bit upright copy in the editor."""
    if not path:
        return gr.update(), None, ""
    pic = _check_image(path)
    d = request_dir()
    shown = d / "background.png"
    _preview(pic.rgb, pic.alpha, pic.size).save(shown)
    info = f"{Path(path).name} · {pic.describe()} · kept as uploaded (alpha, 16-bit, EXIF, ICC)"
    return {"background": str(shown), "layers": [], "composite": str(shown)}, path, info
