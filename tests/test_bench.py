"""The benchmark's measurement functions run and report what they claim (timings are not asserted)."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch
from PIL import Image

from diffir.bench import big_case, sweep_case
from diffir.bench.e2e import stroke_mask
from diffir.bench.reference import reference_from
from diffir.inference.tiling import tile_grid
from diffir.nets.model import VARIANTS, build_model


@pytest.fixture(autouse=True)
def _keep_threads():
    """The bench cases set the process's thread count (they run in child processes): put it back,
    so later tests that compare with an app server compute as before."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_sweep_case_reports_size_tiles_and_memory():
    r = sweep_case("deblur", 0.05, 128, threads=1)
    w, h = r["input"]
    assert abs(w * h - 0.05e6) < 0.01e6 and r["tiles"] > 1
    assert r["seconds"] > 0 and r["peak_rss_mib"] >= r["model_rss_mib"] > 0


def test_big_case_can_stop_after_a_few_tiles():
    r = big_case(threads=1, config="shipped", max_tiles=2)
    assert r["size"] == [4000, 3000] and r["tiles_run"] == 2
    assert r["tiles"] == 16 * 12  # 256 px per tile, windows of up to 288 px (32 px overlap)
    assert r["seconds_full_estimate"] > r["seconds"]


@pytest.mark.parametrize("variant", ["deblur", "sr_x4", "sr_x2", "inpaint"])
def test_reference_network_gives_our_output(variant):
    """The speed benchmark's baseline (official op sequence, official names) is the same function."""
    cfg = dataclasses.replace(VARIANTS[variant], dim=16, num_blocks=(1, 1, 1, 2), num_refinement_blocks=1,
                              n_encoder_res=1)  # fmt: skip
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.02)  # wider weights make a random net ill-conditioned (1e-4 apart)
    x = torch.rand(1, 4 if variant == "inpaint" else 3, 32, 32)
    with torch.inference_mode():
        torch.manual_seed(3)
        ours = model(x)
        torch.manual_seed(3)
        ref = reference_from(model)(x)
    ours = ours[0] if isinstance(ours, tuple) else ours
    torch.testing.assert_close(ref, ours, rtol=1e-4, atol=1e-6)
    assert ours.std() > 1e-3  # not a degenerate all-zero comparison


def test_e2e_stroke_mask_and_the_grid():
    mask = stroke_mask(1024)
    assert 0.10 <= mask.mean() < 0.13
    assert mask[:, :40].sum() == 0  # strokes, not a frame
    assert len(tile_grid(1024, 1024, 512, 32, 8)) == 4
    assert np.isclose(sum((t.y1 - t.y0) * (t.x1 - t.x0) for t in tile_grid(1024, 1024, 512, 32, 8)), 4 * 528**2)


def test_e2e_old_code_is_last_rounds(monkeypatch):
    """ "old" writes colour PNGs with Pillow (same pixels as the libpng writer, another file)."""
    from diffir.bench import e2e
    from diffir.inference import imageio

    arr = (np.random.default_rng(0).random((40, 60, 3)) * 255).astype(np.uint8)
    new = imageio.encode_array_png(arr, 8)
    monkeypatch.setattr(imageio, "encode_array_png", imageio.encode_array_png)  # undone after the test
    e2e._use_old_code()
    old = imageio.encode_array_png(arr, 8)
    assert old != new
    for png in (old, new):
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), arr)


def test_profile_splits_the_time_by_network_part(monkeypatch, tmp_path):
    """``bench --profile``: every part of the network is timed (CPEN too, which the pipeline calls by
    its parts), the parts fit in the wall time, and the operators with the most self time are named."""
    from diffir import save_pretrained
    from diffir.bench import e2e

    from .helpers import random_model

    save_pretrained(random_model("sr"), tmp_path / "sr")
    monkeypatch.setenv("DIFFIR_WEIGHTS", str(tmp_path))
    monkeypatch.setitem(e2e.E2E, "tiny", ("sr", 48))
    r = e2e.profile_case("tiny", threads=1)
    assert r["parts"]["CPEN_S2"] > 0 and r["parts"]["DIRformer.encoder_level1"] > 0
    assert sum(r["parts"].values()) <= r["seconds"]
    assert r["ops"] and all(v >= 0 for v in r["ops"].values())
    from diffir.inference.pipeline import get_model

    assert "features" not in vars(get_model("sr").cpen)  # the timing wrapper is gone again


def test_backends_case_runs_the_exported_network_with_the_same_output():
    pytest.importorskip("onnxruntime")
    from diffir.bench.backends import backends_case

    r = backends_case("sr", threads=1, repeat=1, side=32)
    assert r["side"] == 32 and set(r["backends"]) >= {"torch", "torch int8"} and len(r["backends"]) >= 3
    for name, v in r["backends"].items():
        assert v["wall_s"] > 0, name
        if name == "torch int8":  # reduced precision: close, not equal
            assert v["max_abs_diff"] > 1e-4 and v["psnr_vs_torch"] > 35, v
        else:
            assert v["max_abs_diff"] < 1e-4 and v["psnr_vs_torch"] > 80, name


def test_e2e_case_runs_each_code(monkeypatch, tmp_path):
    """``bench --e2e``: the current code, last round's and ``--precision int8`` each restore the case."""
    from diffir import save_pretrained
    from diffir.bench import e2e
    from diffir.inference import imageio

    from .helpers import random_model

    save_pretrained(random_model("deblur"), tmp_path / "deblur")
    monkeypatch.setenv("DIFFIR_WEIGHTS", str(tmp_path))
    monkeypatch.setitem(e2e.E2E, "tiny", ("deblur", 40))
    monkeypatch.setattr(imageio, "encode_array_png", imageio.encode_array_png)  # "old" swaps it; undone after
    threads = torch.get_num_threads()
    rows = {code: e2e.e2e_case("tiny", code, threads=1) for code in ("new", "int8", "old")}
    torch.set_num_threads(threads)
    assert all(r["seconds"] > 0 and r["out_bytes"] > 0 and r["tiles"] == 1 for r in rows.values())
