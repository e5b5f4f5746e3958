"""Hostile input (issue 14): every value an API client can send is bounded, the pixel limit holds for
the output, bad mask layers get clear errors, temporary files are swept without new requests, and
nonsense configs are refused before anything is allocated."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import signal
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import diffir
from diffir import CheckpointError, ImageError, OptionsError, load_network, save_pretrained
from diffir.app import outputs
from diffir.inference.pipeline import Options, restore

from .conftest import random_model
from .test_app import _app_copy, _img, _png, _start


@pytest.fixture(scope="module")
def models():
    return {t: random_model(t) for t in ("sr", "deblur", "inpaint")}


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def declared_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width×height but holds almost no data (a cheap huge-image probe)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------------------------------
# 7. Every control is bounded, in one place
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("steps", 0, "steps must be between 1 and 4"),
        ("steps", 2.7, "steps must be a whole number"),
        ("steps", "4", "steps must be a whole number"),
        ("seed", -1, "seed must be between 0 and 2147483647"),
        ("seed", 2**70, "seed must be between 0 and 2147483647"),
        ("seed", math.nan, "seed must be a whole number"),
        ("tile", 8, "tile must be between 64 and 2048 or 0"),
        ("tile", 10**6, "tile must be between 64 and 2048 or 0"),
        ("overlap", -1, "overlap must be between 0 and 128"),
        ("dilate", 20_000, "dilate must be between 0 and 64"),
        ("dilate", True, "dilate must be a whole number"),
        ("max_pixels", 0, "max_pixels must be between 1"),
        ("precision", "fp8", "unknown precision 'fp8'"),
    ],
)
def test_every_control_is_checked_against_the_ui_ranges(field, value, message):
    with pytest.raises(OptionsError, match=message):
        Options(**{field: value})


def test_whole_floats_are_accepted_and_overlap_must_fit_the_tile():
    o = Options(steps=2.0, seed=7.0, tile=128.0, overlap=16.0, dilate=4.0)
    assert (o.steps, o.seed, o.tile, o.overlap, o.dilate) == (2, 7, 128, 16, 4)
    assert all(type(v) is int for v in (o.steps, o.seed, o.tile, o.overlap, o.dilate))
    with pytest.raises(
        OptionsError, match="overlap 128 is more than half the tile size 64; use an overlap of at most 32"
    ):
        Options(tile=64, overlap=128)


def test_the_work_of_one_request_is_bounded(models):
    big = png(np.full((2100, 2100, 3), 120, np.uint8))
    t0 = time.perf_counter()
    with pytest.raises(
        OptionsError, match=r"tile 64 would cut this 2100×2100 image into 1089 tiles \(the limit is 1024\)"
    ):
        restore("deblur", big, model=models["deblur"], options=Options(seed=0, tile=64, overlap=32))
    wide = png(np.full((64, 2100, 3), 120, np.uint8))
    with pytest.raises(OptionsError, match="tile 0 .* up to 2048 px a side; this one is 2100×64"):
        restore("deblur", wide, model=models["deblur"], options=Options(seed=0, tile=0))
    assert time.perf_counter() - t0 < 10  # refused before any model work
    small = png(np.full((128, 128, 3), 120, np.uint8))
    assert restore("deblur", small, model=models["deblur"], options=Options(tile=64, overlap=0)).tiles == 4


# --------------------------------------------------------------------------------------------------
# 8. The pixel limit holds for the output
# --------------------------------------------------------------------------------------------------


def test_the_pixel_limit_applies_to_the_sr_output(models):
    t0 = time.perf_counter()
    with pytest.raises(ImageError, match=r"the ×4 result would be 576 Mpx; the limit is 40 Mpx"):
        restore("sr", declared_png(6000, 6000), model=models["sr"])  # 36 Mpx in: refused from the header
    assert time.perf_counter() - t0 < 5
    small = Options(seed=0, max_pixels=100_000)
    with pytest.raises(ImageError, match=r"result would be 0.16 Mpx"):
        restore("sr", png(np.zeros((100, 100, 3), np.uint8)), model=models["sr"], options=small)
    picture = diffir.read_image(png(np.zeros((100, 100, 3), np.uint8)))  # already decoded: checked all the same
    with pytest.raises(ImageError, match=r"result would be 0.16 Mpx"):
        restore("sr", picture, model=models["sr"], options=small)
    r = restore("sr", png(np.zeros((64, 64, 3), np.uint8)), model=models["sr"], options=small)
    assert r.picture.size == (256, 256)
    with pytest.raises(ImageError, match="the limit is 0.1 Mpx"):  # deblur: same size out, limit on the input
        restore("deblur", png(np.zeros((400, 400, 3), np.uint8)), model=models["deblur"], options=small)


# --------------------------------------------------------------------------------------------------
# 9. Bad mask layers
# --------------------------------------------------------------------------------------------------


def test_bad_mask_layers_get_the_image_errors_without_paths(tmp_path):
    from diffir.inference.imageio import mask_layer

    cases = {
        "corrupt": (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "the mask layer: this is not an image file"),
        "truncated": (png(np.full((48, 64, 4), 255, np.uint8))[:60], "the mask layer: the image file is damaged"),
        "bomb": (declared_png(40_000, 40_000), "the mask layer: the file declares a 1600.0 Mpx image"),
        "empty": (b"", "the mask layer: the file is empty"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / f"{name}.png"
        path.write_bytes(data)
        with pytest.raises(ImageError, match=message) as e:
            mask_layer(str(path), (64, 48), max_pixels=16_000_000)
        assert str(tmp_path) not in str(e.value)
    layer = np.zeros((48, 64, 4), np.uint8)
    layer[10:20, 5:30] = (255, 46, 99, 255)
    (tmp_path / "ok.png").write_bytes(png(layer))
    m = mask_layer(str(tmp_path / "ok.png"), (64, 48))
    assert m.sum() == 250 and m[10:20, 5:30].all()
    with pytest.raises(ImageError, match=r"the mask layer is 64×48 but the image is 60×48"):
        mask_layer(str(tmp_path / "ok.png"), (60, 48))


# --------------------------------------------------------------------------------------------------
# 10. Temporary files are swept on a timer and at shutdown
# --------------------------------------------------------------------------------------------------


def test_request_folders_are_swept_by_a_timer(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs, "OUTPUT_ROOT", tmp_path / "outs")
    monkeypatch.setenv("DIFFIR_TEMP_TTL", "1")
    old, new = outputs.request_dir(), outputs.request_dir()
    (old / "after.png").write_bytes(b"x")
    past = time.time() - 5
    os.utime(old, (past, past))
    assert outputs.sweep() == 1 and not old.exists() and new.exists()
    outputs.remove_mine()
    assert not new.exists()

    class Demo:
        delete_cache = None

    demo = Demo()
    monkeypatch.setattr(outputs, "_SWEEPER", [])
    monkeypatch.setattr(outputs.signal, "signal", lambda *a: None)  # leave pytest's own SIGTERM alone
    outputs.bound_temp_files(demo, every=0.2)
    assert demo.delete_cache == (1, 1)  # Gradio's cache: swept every second, files older than the TTL
    d = outputs.request_dir()
    t0 = time.time()
    while d.exists() and time.time() - t0 < 10:  # no request arrives: the timer alone removes it
        time.sleep(0.1)
    assert not d.exists()


def _files(*roots: Path) -> set[Path]:
    """Every file under the roots; os.walk skips a folder the app's sweeper removes meanwhile."""
    return {Path(d) / f for r in roots for d, _, files in os.walk(r) for f in files}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("weights")
    for task in ("inpaint", "sr", "deblur"):
        save_pretrained(random_model(task), root / task)
    return root


@pytest.fixture(scope="module")
def app(tmp_path_factory, weights):
    """The app with tiny weights, its own temp folders, and temporary files kept 15 s."""
    tmp = tmp_path_factory.mktemp("rel_app")
    _app_copy(tmp)
    (tmp / "tmp").mkdir()
    env = {"DIFFIR_WEIGHTS": str(weights), "DIFFIR_TEMP_TTL": "15", "TMPDIR": str(tmp / "tmp")}
    proc, url = _start(env, tmp)
    yield proc, url, tmp
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


def _client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False)


def test_api_clients_get_the_ui_ranges_and_clear_mask_errors(app, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    _, url, _ = app
    client = _client(url)
    src = handle_file(str(_png(tmp_path / "in.png", _img(1))))
    for args, message in [
        ((4, 8, 0, 0, False), "tile must be between 64 and 2048 or 0"),
        ((0, 512, 32, 0, False), "steps must be between 1 and 4"),
        ((2.7, 512, 32, 0, False), "steps must be a whole number"),
        ((4, 512, 32, -1, False), "seed must be between 0 and 2147483647"),
        ((4, 512, 32, 2**70, False), "seed must be between 0 and 2147483647"),
        ((4, 64, 128, 0, False), "overlap 128 is more than half the tile size 64"),
    ]:
        with pytest.raises(AppError, match=message):
            client.predict(src, *args, api_name="/deblur")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(declared_png(40_000, 40_000))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    mask = np.zeros((48, 64, 4), np.uint8)
    mask[20:28, 10:50] = 255
    good = _png(tmp_path / "mask.png", mask, "RGBA")
    for layer, args, message in [
        (bomb, (4, 512, 32, 0, False, 4), "the mask layer: the file declares a 1600.0 Mpx image"),
        (corrupt, (4, 512, 32, 0, False, 4), "the mask layer: this is not an image file"),
        (good, (4, 512, 32, 0, False, 20_000), "dilate must be between 0 and 64"),
    ]:
        editor = {"background": src, "layers": [handle_file(str(layer))], "composite": None}
        with pytest.raises(AppError, match=message) as e:
            client.predict(editor, *args, api_name="/inpaint")
        assert "/tmp" not in str(e.value) and "gradio" not in str(e.value)


def test_eight_clients_normal_and_hostile_at_once(app, tmp_path):
    """8 clients at once, half of them hostile: every normal request is exact, every hostile one is
    refused with its message, and the hostile ones do not hold up the rest."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    _, url, _ = app
    hostile = [
        ((4, 8, 0, 0, False), "tile must be between"),
        ((4, 512, 32, 2**70, False), "seed must be between"),
        ((2.7, 512, 32, 0, False), "steps must be a whole number"),
        ((4, 64, 200, 0, False), "overlap must be between 0 and 128"),
    ]
    big = tmp_path / "big.png"
    big.write_bytes(declared_png(6000, 6000))

    def job(i: int):
        c = _client(url)
        t0 = time.perf_counter()
        if i % 2:
            args, message = hostile[i // 2]
            src = _png(tmp_path / f"h{i}.png", _img(i))
            with pytest.raises(AppError, match=message):
                c.predict(handle_file(str(src)), *args, api_name="/super_resolve")
            with pytest.raises(AppError, match="result would be 576 Mpx|the limit is 1.5 Mpx"):
                c.predict(handle_file(str(big)), 4, 512, 32, 0, False, api_name="/super_resolve")
            return i, "refused", time.perf_counter() - t0
        src = tmp_path / f"n{i}.png"
        _, full, _, _ = c.predict(handle_file(str(src)), 4, 512, 32, 100 + i, False, api_name="/super_resolve")
        np.testing.assert_array_equal(np.asarray(Image.open(full)), expected[i])
        return i, "exact", time.perf_counter() - t0

    # the expected outputs are made by the same app, one request at a time: another process (this one)
    # may run with another thread count, and float sums split differently can move a pixel by a level
    expected = {}
    serial = _client(url)
    for i in range(0, 8, 2):
        src = _png(tmp_path / f"n{i}.png", _img(i, 40 + 4 * i, 56))
        _, full, _, _ = serial.predict(handle_file(str(src)), 4, 512, 32, 100 + i, False, api_name="/super_resolve")
        expected[i] = np.asarray(Image.open(full))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(job, range(8)))
    assert [r[1] for r in results] == ["exact", "refused"] * 4


def test_temporary_files_are_swept_without_new_requests_and_at_shutdown(app, tmp_path):
    """Every file a request leaves (uploads, Gradio's copies of the results, our request folders) is
    gone one TTL later with no further request, and at SIGTERM. Runs last in this module: it stops
    the app. (Gradio's copies of the example photos are made once at start-up and kept.)"""
    from gradio_client import handle_file

    proc, url, tmp = app
    roots = (tmp / "gradio", tmp / "tmp" / "diffir-outputs")
    client = _client(url)

    def requests(prefix: str, n: int) -> set[Path]:
        before = _files(*roots)
        for i in range(n):
            src = _png(tmp_path / f"{prefix}{i}.png", _img(50 + i))
            client.predict(handle_file(str(src)), 4, 512, 32, i, False, api_name="/deblur")
        return _files(*roots) - before

    made = requests("t", 6)
    assert len(made) >= 6 * 5  # per request: the upload, 3 outputs of ours and Gradio's copies of them
    t0 = time.time()
    while made & _files(*roots) and time.time() - t0 < 60:  # TTL 15 s; no request arrives meanwhile
        time.sleep(1)
    assert not made & _files(*roots)
    made = requests("u", 3)
    assert made
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert not made & _files(*roots) and not _files(roots[1])  # shutdown removes them all


# --------------------------------------------------------------------------------------------------
# 11. Nonsense configs are refused before anything is allocated
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cfg") / "base"
    save_pretrained(random_model("deblur"), d)
    return d


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("dim", 10**6, "dim must be between 1 and 1024, got 1000000"),
        ("num_blocks", [10**6, 1, 1, 1], r"num_blocks\[0\] must be between 0 and 64"),
        ("ffn_expansion_factor", 1e6, "ffn_expansion_factor must be a number in"),
        ("n_encoder_res", 10**6, "n_encoder_res must be between 0 and 64"),
        ("dim", 0, "dim must be between 1 and 1024, got 0"),
        ("num_refinement_blocks", -3, "num_refinement_blocks must be between 0 and 64"),
        ("linear_start", math.nan, "linear_start and linear_end must be finite"),
        ("linear_end", 1.0, "the schedule needs 0 < linear_start <= linear_end < 1"),
        ("timesteps", 0, "timesteps must be between 1 and 1000"),
        ("dim", 16, r"config.json does not match the weights: dim 16 \(weights: 8\)"),
        ("n_encoder_res", 5, r"n_encoder_res 5 \(weights: 1\)"),
        ("heads", [1, 2, 4, 4], r"heads \[1, 2, 4, 4\] \(weights: \[1, 2, 4, 8\]\)"),
        ("ffn_expansion_factor", 3.0, r"ffn_expansion_factor 3.0 \(weights: 2.0\)"),
    ],
)
def test_absurd_configs_are_refused_before_building(saved, tmp_path, key, value, message):
    d = tmp_path / "m"
    shutil.copytree(saved, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg[key] = value
    (d / "config.json").write_text(json.dumps(cfg))
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match=message):
        load_network(d)
    assert time.perf_counter() - t0 < 5
