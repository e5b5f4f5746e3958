"""The one-call GPU campaign script runs end to end on the CPU (tiny model, tiny budget), so that a
lent GPU machine is spent on training, not on debugging; what it leaves in $OUT fits what comes back."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .helpers import tiny_model_fields

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_campaign_script_on_cpu(tmp_path, cache):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "WORK": str(tmp_path / "work"), "DEVICE": "cpu",
           "DIFFIR_CACHE": str(cache), "EXTRA": json.dumps({"model": tiny_model_fields("deblur")}), "OMP_NUM_THREADS": "1", "LONG_SIDE": "64"}  # fmt: skip
    res = subprocess.run(
        ["bash", "tools/gpu_campaign.sh", "deblur", "0.1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and all(p.stat().st_size < 16 * 2**20 for p in files), files
    record = json.loads((out / "campaign.json").read_text())["campaigns"][-1]
    assert record["compute"]["core_hours"] > 0 and "candidate" in record
    assert (out / "weights" / "deblur" / "training.json").is_file()
    assert "training deblur s2" in (out / "campaign_deblur.log").read_text()
