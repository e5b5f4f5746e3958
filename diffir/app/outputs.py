"""Files the app writes: one folder per request, 8-bit previews for the before/after slider, and the
lossless full-resolution PNG named after the user's file.

Temporary files stay bounded without waiting for the next request: Gradio copies every returned
file into its own cache, so our request folders are swept after ``OUTPUT_TTL_S`` by a timer thread,
Gradio's cache (uploads and those copies) is swept by its ``delete_cache`` after
``DIFFIR_TEMP_TTL``, and both are emptied at shutdown, SIGTERM included (``bound_temp_files``).
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..files import write_atomic
from ..inference.imageio import encode_array_png, resize_alpha, resize_rgb, to_integer
from ..inference.pipeline import Restored
from ..settings import settings

log = logging.getLogger("diffir.app")
PREVIEW_MAX_SIDE = 2560
OUTPUT_ROOT = Path(tempfile.gettempdir()) / "diffir-outputs"
OUTPUT_TTL_S = 600  # Gradio has copied a result into its cache long before this
SWEEP_EVERY_S = 60
_MINE: set[Path] = set()  # this process's folders, removed at shutdown
_LOCK = threading.Lock()
_SWEEPER: list[threading.Thread] = []


def request_dir() -> Path:
    """A fresh folder for one request's outputs."""
    OUTPUT_ROOT.mkdir(parents=True, exist_ok=True)
    d = OUTPUT_ROOT / uuid.uuid4().hex
    d.mkdir()
    with _LOCK:
        _MINE.add(d)
    return d


def sweep(ttl: float | None = None) -> int:
    """Remove request folders older than ``ttl`` seconds (default ``OUTPUT_TTL_S``); returns how many."""
    ttl = min(OUTPUT_TTL_S, settings().temp_ttl) if ttl is None else ttl
    if not OUTPUT_ROOT.is_dir():
        return 0
    now, removed = time.time(), 0
    for old in OUTPUT_ROOT.iterdir():
        try:
            if now - old.stat().st_mtime > ttl:
                shutil.rmtree(old, ignore_errors=True)
                removed += 1
        except OSError:
            pass
    with _LOCK:
        _MINE.difference_update([d for d in _MINE if not d.exists()])
    return removed


def remove_mine(demo: Any = None) -> None:
    """Remove every folder this process made, and ``demo``'s files in Gradio's cache (at shutdown:
    Gradio's own shutdown sweep is skipped when its server does not stop within its 5 s join)."""
    with _LOCK:
        mine = list(_MINE)
        _MINE.clear()
    for d in mine:
        shutil.rmtree(d, ignore_errors=True)
    if demo is not None and hasattr(demo, "temp_file_sets"):
        from gradio.route_utils import delete_files_created_by_app

        delete_files_created_by_app(demo, age=None)


def _sweep_forever(every: float) -> None:
    while True:
        time.sleep(every)
        try:
            sweep()
        except Exception:  # a sweep must never stop the sweeper
            log.exception("sweeping %s failed", OUTPUT_ROOT)


def _on_sigterm(demo: Any) -> Callable[[int, Any], None]:
    """SIGTERM (a container or service manager stopping the app): clean up, then exit 143 at once.
    Python's default skips every cleanup; a graceful close can wait on open connections and then
    abort in the interpreter's teardown, so the files go first and the exit is immediate."""

    def handler(signum: int, frame: Any) -> None:
        log.info("SIGTERM: removing temporary files and exiting")
        remove_mine(demo)
        logging.shutdown()
        os._exit(128 + signum)

    return handler


def bound_temp_files(demo: Any, every: float | None = None) -> Any:
    """Keep the app's temporary files bounded: Gradio's ``delete_cache`` for its cache, a timer for
    our folders, and both emptied at exit and on SIGTERM (Python's default would skip the cleanup)."""
    ttl = settings().temp_ttl
    period = max(1, min(SWEEP_EVERY_S, ttl // 4))
    every = period if every is None else every
    if getattr(demo, "delete_cache", None) is None:
        demo.delete_cache = (period, ttl)
    if not _SWEEPER:
        _SWEEPER.append(threading.Thread(target=_sweep_forever, args=(every,), name="diffir-sweeper", daemon=True))
        _SWEEPER[0].start()
        atexit.register(remove_mine, demo)
        main = threading.current_thread() is threading.main_thread()
        if main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm(demo))
    return demo


def _preview(rgb: np.ndarray, alpha: np.ndarray | None, size: tuple[int, int] | None = None) -> Image.Image:
    """8-bit preview for the before/after slider (the download keeps full depth and size)."""
    h, w = rgb.shape[:2]
    if size is None:
        s = min(1.0, PREVIEW_MAX_SIDE / max(h, w))
        size = (max(1, round(w * s)), max(1, round(h * s)))
    if size != (w, h):
        rgb = resize_rgb(rgb, size)
        if alpha is not None:
            alpha = resize_alpha(alpha, size)
    chans = [rgb] + ([alpha[..., None]] if alpha is not None else [])
    arr = to_integer(np.concatenate(chans, axis=2), 8)
    return Image.fromarray(arr, "RGBA" if alpha is not None else "RGB")


def save_outputs(result: Restored, name: str) -> tuple[tuple[str, str], str]:
    """Write the before/after previews and the lossless full-resolution PNG into a request folder."""
    d = request_dir()
    out = result.picture
    after = _preview(out.rgb, out.alpha)
    src = result.source
    before = _preview(src.rgb, src.alpha, after.size)  # SR: the input resized to the output size
    before_path, after_path = d / "before.png", d / "after.png"
    for path, im in ((before_path, before), (after_path, after)):
        path.write_bytes(encode_array_png(np.asarray(im), 8))  # libpng: twice Pillow's speed
    stem = Path(name).stem or "image"
    full = write_atomic(d / f"{stem}_{result.task}_seed{result.seed}.png", result.png())
    return (str(before_path), str(after_path)), str(full)
