"""Runs a person can stop. Restorations run in a worker thread that Gradio cannot interrupt, so a
Cancel (or the tab being closed) sets the session's flag and the progress callback raises
``Cancelled`` at the next report: between tiles, and between network stages inside one tile."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import gradio as gr

_LOCK = threading.Lock()
_ARMED: dict[str, threading.Event] = {}  # a run asked for from the UI, maybe still queued
_ACTIVE: dict[str, threading.Event] = {}  # the run working now, per browser session


class Cancelled(Exception):
    """The person pressed Cancel or left: stop the work, change nothing."""


def _session(request: gr.Request | None) -> str:
    return str(getattr(request, "session_hash", None) or "")


def arm(request: gr.Request) -> None:
    """A new run from the UI: a fresh flag, so an earlier Cancel does not stop it; a Cancel pressed
    while the run still waits in the queue stops it as soon as it starts."""
    with _LOCK:
        _ARMED[_session(request)] = threading.Event()


def cancel(request: gr.Request) -> None:
    """Stop this session's run (queued or working) at its next progress report."""
    s = _session(request)
    with _LOCK:
        for runs in (_ARMED, _ACTIVE):
            if s in runs:
                runs[s].set()


@contextmanager
def running(request: gr.Request | None) -> Iterator[threading.Event]:
    """The stop flag of the run about to start (API calls, which are never armed, get their own)."""
    s = _session(request)
    with _LOCK:
        stop = _ARMED.pop(s, None) or threading.Event()
        _ACTIVE[s] = stop
    try:
        yield stop
    finally:
        with _LOCK:
            if _ACTIVE.get(s) is stop:
                del _ACTIVE[s]


PROGRESS_EVERY = 0.25
"""Seconds between progress updates sent to the page: a run in 80 small tiles reports hundreds of
stages, and a browser redrawing its progress bar for each has no time left to take a click."""


def progress_callback(
    progress: Any, stop: threading.Event, every: float = PROGRESS_EVERY
) -> Callable[[float, str], None]:
    """``diffir.restore``'s progress callback: checks the stop flag at every report, and passes a
    report on to the page at most every ``every`` seconds (the first and the last always)."""
    last = [-float("inf")]

    def report(fraction: float, message: str) -> None:
        if stop.is_set():
            raise Cancelled
        now = time.monotonic()
        if now - last[0] >= every or fraction >= 1:
            last[0] = now
            progress(fraction, desc=message)

    return report


def is_active(request: gr.Request) -> bool:
    """Is a run of this session working now (tests and the Cancel button's feedback use it)."""
    with _LOCK:
        return _session(request) in _ACTIVE
