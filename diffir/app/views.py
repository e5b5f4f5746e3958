"""Showing results: an example's ready result (with the seed it was made with), the ×4 close-up
at 100 %, and the small steps around a run (clear the last result, show Cancel, then tidy up)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from ..errors import UserError
from ..inference.imageio import read_image, to_integer
from ..inference.pipeline import Restored
from ..settings import settings
from ..tasks import CONTROLS, TASKS
from . import examples, jobs, words
from .handlers import DEVICE
from .inputs import file_of, marked_value
from .outputs import request_dir, save_outputs

CLOSEUP = 320  # output pixels per side of the close-up


def begin(request: gr.Request) -> tuple[Any, ...]:
    """Before a run: arm its Cancel, clear the last result and status, show the Cancel button."""
    jobs.arm(request)
    return None, None, "", gr.update(visible=True, value="Cancel", interactive=True), gr.update(visible=False)


def finish(download: Any) -> tuple[Any, ...]:
    """After a run (done, failed or cancelled): hide Cancel; offer chaining when there is a result."""
    return gr.update(visible=False), gr.update(visible=bool(file_of(download)))


def cancel(request: gr.Request) -> Any:
    """The Cancel button: the run stops at its next progress report. The button itself says so
    (the status line is the run's: a reply racing the run's own "Cancelled." must not overwrite it)."""
    jobs.cancel(request)
    return gr.update(value="Cancelling…", interactive=False)


def leave(request: gr.Request) -> None:
    """The tab was closed: stop its work rather than finish it for nobody."""
    jobs.cancel(request)


def example_click(
    task: str, shown: list[examples.Example], results: examples.Results, look: bool = False
) -> Callable[..., tuple]:
    """Clicking an example: its input, its ready result, and the seed it was made with (random
    seed off), so Restore with the default settings makes the same picture again; with ``look``
    (the tab offers several styles) also the default style the results were made with."""
    style = (TASKS[task].style().name,) if look else ()

    def click(index: int) -> tuple[Any, ...]:
        e = shown[int(index)]
        extra: tuple[Any, ...] = ()
        if task == "inpaint":
            value, info, marked = marked_value(str(e.photo), str(e.mask))
            inputs: tuple[Any, ...] = (value, str(e.photo), marked, info)
        else:
            inputs = (str(e.photo),)
        done = results.get(e)
        if done is None:
            extra = (None,) if TASKS[task].scale > 1 else ()
            status = "This example's result is still being made; press **Restore** to run it now."
            return (*inputs, None, None, status, examples.SEED, False, gr.update(visible=False), *extra, *style)
        r = Restored(
            task=task,
            picture=read_image(done),
            source=read_image(e.photo),
            seed=examples.SEED,
            steps=CONTROLS.steps,
            tiles=1,
            seconds=0.0,
            device=DEVICE,
            precision="fp32",
        )
        slider, full = save_outputs(r, e.photo.name)
        status = (
            f"**Example**, made in advance with seed {examples.SEED}"
            + (f" and the {TASKS[task].style().label} look" if look else "")
            + " (set above: *Restore* makes it again)"
            f" · input {words.picture(r.source)} → output {words.picture(r.picture)}" + words.tooltip(r.summary())
        )
        if TASKS[task].scale > 1:
            extra = (closeup(full, str(e.photo)),)
        return (*inputs, slider, full, status, examples.SEED, False, gr.update(visible=True), *extra, *style)

    return click


def _where(index: Any, size: tuple[int, int]) -> tuple[float, float]:
    """A click on the photo (its pixels) as a fraction of the picture."""
    w, h = size
    try:
        x, y = float(index[0]), float(index[1])
        return min(1.0, max(0.0, x / w)), min(1.0, max(0.0, y / h))
    except (TypeError, ValueError, IndexError):
        return 0.5, 0.5


def closeup(download: Any, image: Any, where: tuple[float, float] | None = None) -> tuple[str, str] | None:
    """Before (your pixels, each shown 4×4) and after, ``CLOSEUP`` px square at 100 %, around ``where``."""
    result, source = file_of(download), file_of(image)
    if not result or not source:
        return None
    try:
        after, before = read_image(result, max_pixels=settings().max_pixels), read_image(source)
    except UserError:
        return None
    scale = TASKS["sr"].scale
    (w, h), c = after.size, CLOSEUP
    fx, fy = where or (0.5, 0.5)
    x0 = int(min(max(0, fx * w - c / 2), max(0, w - c))) // scale * scale
    y0 = int(min(max(0, fy * h - c / 2), max(0, h - c))) // scale * scale
    a = to_integer(after.rgb[y0 : y0 + c, x0 : x0 + c], 8)
    b = to_integer(before.rgb[y0 // scale : (y0 + c) // scale, x0 // scale : (x0 + c) // scale], 8)
    b = np.repeat(np.repeat(b, scale, axis=0), scale, axis=1)[: a.shape[0], : a.shape[1]]
    d = request_dir()
    Image.fromarray(b).save(d / "closeup_before.png")
    Image.fromarray(a).save(d / "closeup_after.png")
    return str(d / "closeup_before.png"), str(d / "closeup_after.png")


def closeup_at(download: Any, image: Any, evt: gr.SelectData) -> tuple[str, str] | None:
    """A click on the photo moves the close-up there."""
    path = file_of(image)
    if not path or not file_of(download):
        return None
    with Image.open(path) as im:
        size = im.size
    return closeup(download, image, _where(evt.index, size))


def finish_sr(download: Any, image: Any) -> tuple[Any, ...]:
    """``finish`` plus the close-up, centred, for a new ×4 result."""
    return (*finish(download), closeup(download, image))
