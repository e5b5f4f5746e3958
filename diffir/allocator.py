"""glibc's allocator set for big, short-lived tensors: about 1.9× end to end on CPU, same outputs.

PyTorch's CPU tensors come straight from ``malloc``. With glibc's defaults every block above the
mmap threshold (dynamic, at most 32 MB) is a fresh ``mmap`` that is unmapped again on ``free``, and
the heap's free top is trimmed back to the kernel, so each layer's output is page-faulted in anew,
4 KiB at a time: 16 million page faults for one 1024² deblurring. Keeping freed memory in one heap
(no mmap, a 1 GiB trim threshold, one arena for every thread, Gradio's workers included) lets the
next layer reuse it: 0.5 million faults. The price is memory held between layers: the peak grows
by up to half (deblurring 1024²: 1.4 → 2.1 GB; ``python -m diffir.bench --e2e`` measures both).

``tune_allocator()`` is called by the entry points this project owns (the app, the CLI, training,
the benchmarks) before the first big allocation; a Python program using ``diffir.restore`` may call
it too. ``DIFFIR_MALLOC=system`` keeps glibc's defaults. Other C libraries (macOS, musl) are left
alone. ``release_memory()`` hands the kept memory back, e.g. after a request.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

from .settings import settings

M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8  # glibc's malloc.h
TRIM_THRESHOLD = 1 << 30


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p  # only glibc has it
        libc.gnu_get_libc_version()
    except (OSError, AttributeError):
        return None
    return libc


def tune_allocator() -> bool:
    """Keep freed memory for reuse (see the module's docstring). True when glibc took the settings."""
    libc = _glibc()
    if libc is None or settings().malloc == "system":
        return False
    return all(
        libc.mallopt(k, v) == 1 for k, v in ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_ARENA_MAX, 1))
    )


def release_memory() -> None:
    """Return the heap's free memory to the system (the tuned allocator otherwise keeps up to 1 GiB)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
