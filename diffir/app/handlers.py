"""The app's handlers: the same functions serve the UI and the named API endpoints.

Inputs are checked before any model work and every problem reaches the user as a one-line
``gr.Error`` that names the file; the UI never touches tensors (it calls ``diffir.restore``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np
import spaces
import torch
from PIL import Image

from ..allocator import release_memory, tune_allocator
from ..errors import UserError
from ..inference.imageio import Picture
from ..inference.pipeline import Options, get_model, restore
from ..settings import settings
from ..tasks import TASKS
from . import jobs, words
from .inputs import check_image, example_area, file_of, mask_from_layers, name_of, original_or_background
from .outputs import save_outputs

log = logging.getLogger("diffir.app")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
_LOAD_ERRORS: dict[str, str] = {}
CANCELLED = "**Cancelled.** Nothing was changed; press *Restore* to start again."


def preload_models(device: str = DEVICE) -> dict[str, str]:
    """Load (and on a GPU machine move) every model once (each task's styles); returns {weights
    folder: problem} for those that could not be loaded, so the app still starts and says what is
    missing. ``DIFFIR_THREADS`` caps the threads the models use (a browser or a training run on the
    same machine keeps a core). Tunes the allocator first (``allocator.py``: about 1.9× faster)."""
    tune_allocator()
    if settings().threads:
        torch.set_num_threads(settings().threads)
    for task in TASKS:
        for style in TASKS[task].styles:
            try:
                get_model(task, device=device, style=style.name)
                _LOAD_ERRORS.pop(style.folder, None)
            except UserError as e:
                _LOAD_ERRORS[style.folder] = str(e)
    return dict(_LOAD_ERRORS)


def _gpu_seconds(pixels: float, steps: int, tiles: int) -> int:
    """A ZeroGPU reservation from the work: ~6 s/Mpx through DIRformer, per-tile overhead, steps."""
    return int(min(300, 15 + 6 * pixels / 1e6 + 0.5 * tiles + 0.5 * steps))


def _estimate(task: str, image: Any, steps: Any, tile: Any) -> int:
    try:
        path = file_of(image.get("background")) if isinstance(image, dict) and "background" in image else file_of(image)
        with Image.open(path) as im:
            w, h = im.size
    except Exception:
        return 60
    scale = TASKS[task].scale
    t = max(64, int(tile or 0)) if tile else max(w, h)
    tiles = max(1, (w // t + 1) * (h // t + 1))
    return _gpu_seconds(w * h * scale * scale, int(steps or 4), tiles)


def options(steps: Any, tile: Any, overlap: Any, seed: Any, randomize: bool, dilate: Any = 0) -> Options:
    """The run's ``Options`` (validated by the inference layer against the registry's ranges)."""
    seed_value = None if randomize or seed is None or seed == "" else seed
    try:
        return Options(
            steps=steps,  # None: all steps; 0 or 2.7 are refused, not changed
            seed=seed_value,
            tile=tile or 0,
            overlap=overlap or 0,
            device=DEVICE,
            dilate=dilate or 0,
            max_pixels=settings().max_pixels,
        )
    except UserError as e:
        raise gr.Error(str(e), title="Check the settings") from None


def _model(task: str, style: str | None = None):
    try:
        folder = TASKS[task].style(style).folder
        if folder in _LOAD_ERRORS:
            raise gr.Error(_LOAD_ERRORS[folder], title="Model not available")
        return get_model(task, device=DEVICE, style=style)
    except UserError as e:
        raise gr.Error(str(e), title="Model not available") from None


def _run(
    task: str,
    picture: Picture,
    name: str,
    mask: np.ndarray | None,
    opts: Options,
    progress: Any,
    request: gr.Request | None,
    style: str | None = None,
):
    model = _model(task, style)
    with jobs.running(request) as stop:
        try:
            result = restore(
                task, picture, mask=mask, model=model, options=opts, progress=jobs.progress_callback(progress, stop)
            )
        except jobs.Cancelled:
            log.info("%s: cancelled", task)
            return None, None, CANCELLED, gr.update()
        except UserError as e:
            raise gr.Error(words.problem(name, e), title="Cannot restore this image") from None
        except Exception as e:  # never a traceback in the UI: log it, say it in one line
            log.exception("restoration failed")
            raise gr.Error(
                f"The restoration of {name} failed ({type(e).__name__}: {e}). Try a smaller tile size.", title="Error"
            ) from None
        finally:
            release_memory()  # the tuned allocator keeps freed memory for the next layer, not the next visitor
    slider, full = save_outputs(result, words.stem(name) + ".png")
    return slider, full, words.done(result), result.seed


def _photo_handler(task: str, doc: str) -> Callable[..., Any]:
    """The handler of a photo tab (SR, deblurring); Gradio reads its signature for the API."""

    def handler(
        image: str | None,
        steps: float,
        tile: float,
        overlap: float,
        seed: float,
        randomize: bool,
        style: str | None = None,  # the task's styles (SR: "faithful", "sharp"); default: the first
        request: gr.Request = None,  # type: ignore[assignment]  (Gradio fills it; API clients never see it)
        progress: gr.Progress = gr.Progress(),
    ):
        opts = options(steps, tile, overlap, seed, randomize)
        picture = check_image(image, scale=TASKS[task].scale)
        return _run(task, picture, name_of(image), None, opts, progress, request, style)

    handler.__name__ = handler.__qualname__ = TASKS[task].api_name
    handler.__doc__ = doc
    return spaces.GPU(duration=lambda image, steps, tile, *a, **k: _estimate(task, image, steps, tile))(handler)


super_resolve = _photo_handler(
    "sr",
    "Upscale a photo 4× (real-world SR); ``style``: faithful (default) or sharp. Returns (before, after), the "
    "full-resolution PNG, a status line and the seed used.",
)
deblur = _photo_handler(
    "deblur", "Remove motion blur. Returns (before, after), the full-resolution PNG, a status line and the seed used."
)


@spaces.GPU(duration=lambda editor, original, marked, steps, tile, *a, **k: _estimate("inpaint", editor, steps, tile))
def inpaint(
    editor: dict | None,
    original: str | None,
    marked: dict | None,
    steps: float,
    tile: float,
    overlap: float,
    seed: float,
    randomize: bool,
    dilate: float,
    request: gr.Request = None,  # type: ignore[assignment]
    progress: gr.Progress = gr.Progress(),
):
    """Fill the painted region. ``editor``: {"background": image, "layers": [mask layers], "composite": …}
    (a layer's alpha, or white-on-black brightness, marks the hole). ``original``: the exact upload
    (optional). ``marked``: an example's area to fill, kept in the session (not an API input).
    Returns (before, after), the full-resolution PNG, a status line and the seed used."""
    opts = options(steps, tile, overlap, seed, randomize, dilate)
    given = example_area(editor, marked)
    if given is not None and original:  # the example, as clicked (maybe with more strokes)
        picture, source = check_image(original), original
    else:
        picture, source = original_or_background(editor, original)
    mask = mask_from_layers(editor, picture.size, given)
    return _run("inpaint", picture, name_of(source), mask, opts, progress, request)
