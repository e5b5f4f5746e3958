"""The tuned allocator (``diffir/allocator.py``): freed tensor memory is reused, not faulted in anew."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from diffir.allocator import _glibc

pytestmark = pytest.mark.skipif(_glibc() is None, reason="glibc only")

# What one network layer after another does: a large output allocated, written, freed (the peak
# stays one block); each process counts its own minor page faults once the heap has settled.
CHILD = """
import json, resource, torch
from diffir.allocator import tune_allocator, release_memory
tuned = tune_allocator()
torch.set_num_threads(1)
for i in range(20):
    if i == 10:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.empty(16 << 20)  # 64 MiB, above glibc's largest mmap threshold
    x.fill_(1.0)
    del x
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
release_memory()
print(json.dumps({"tuned": tuned, "faults": faults}))
"""


def _child(malloc: str) -> dict:
    env = {**os.environ, "DIFFIR_MALLOC": malloc}
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_tuned_allocator_reuses_freed_blocks():
    tuned, system = _child("tuned"), _child("system")
    assert tuned["tuned"] and not system["tuned"]  # DIFFIR_MALLOC=system keeps glibc's defaults
    pages = 10 * (64 << 20) // 4096
    assert system["faults"] > 0.8 * pages  # every block faulted in again
    assert tuned["faults"] < 0.1 * pages  # reused


def test_malloc_setting_is_checked(monkeypatch):
    from diffir.settings import settings

    monkeypatch.setenv("DIFFIR_MALLOC", "jemalloc")
    with pytest.raises(SystemExit, match="DIFFIR_MALLOC"):
        settings()
