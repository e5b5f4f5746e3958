"""The weights shipped in weights/<task>/ load, are small, and restore better than the trivial baseline.

Scored with ``diffir.evaluate`` (same seeded degradations as the model cards) on the clean example photos
in ``examples/inpaint/`` — validation photos that training never saw — at 256 px, so it runs in seconds.
The margins sit below what the shipped models measure here (SR +0.48 dB over bicubic, deblur
+0.13 dB over the input, inpainting 1.0 dB below Telea; model cards: 512 px validation) and far above what a
broken or random network scores, so those fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diffir import DiffIRS2, load_network
from diffir.tasks import TASKS as REGISTRY
from diffir.training.evaluate import INT8_ROW, evaluate, load_set

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("sr", "deblur", "inpaint")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("photos")
    for p in (ROOT / "examples" / "inpaint").glob("*.png"):
        if not p.stem.endswith("_mask"):
            (folder / p.name).write_bytes(p.read_bytes())
    return load_set(folder, 256)


# every task's default look ships; an extra look (weights/sr_sharp/) once one beats the faithful model
FOLDERS = [
    (t, s.folder)
    for t in TASKS
    for s in REGISTRY[t].styles
    if s is REGISTRY[t].style() or (ROOT / "weights" / s.folder).is_dir()
]


@pytest.mark.parametrize(("task", "name"), FOLDERS)
def test_shipped_weights_are_complete(task, name):
    folder = ROOT / "weights" / name
    for file in ("config.json", "model.safetensors", "README.md", "training.json"):
        assert (folder / file).is_file(), f"weights/{name}/{file} is missing"
    assert (folder / "model.safetensors").stat().st_size < 50e6
    config = json.loads((folder / "config.json").read_text())
    assert config["task"] == task and config["stage"] == "s2"
    model = load_network(folder)
    assert isinstance(model, DiffIRS2) and not model.training


# (task, our metric, baseline row, minimum gain in dB over that baseline on these photos)
MARGINS = {
    "sr": ("psnr_y", "bicubic", 0.2),
    "deblur": ("psnr", "blurred input", 0.05),
    "inpaint": ("psnr_hole", "telea", -2.0),
}


@pytest.mark.parametrize("task", TASKS)
def test_shipped_weights_restore(task, photos, tmp_path):
    metric, baseline, gain = MARGINS[task]
    result = evaluate(task, photos, load_network(ROOT / "weights" / task), None, tmp_path, int8=True)
    ours = result["mean"]["DiffIR S2 (4 steps)"][metric]
    base = result["mean"][baseline][metric]
    assert ours > base + gain, f"{task}: {ours:.2f} dB vs {baseline} {base:.2f} dB"
    int8 = result["mean"][INT8_ROW][metric]  # the reduced-precision path's bound (issue 15)
    assert abs(int8 - ours) < 0.05, f"{task}: int8 {int8:.3f} dB vs fp32 {ours:.3f} dB"
    assert (tmp_path / "crops.png").stat().st_size > 0
