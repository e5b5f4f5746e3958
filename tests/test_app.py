"""The web app end to end: ``python app.py`` on 127.0.0.1, driven by gradio_client and by Chromium."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffir import save_pretrained
from diffir.inference.pipeline import Options, restore

from .conftest import random_model

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = Path(os.environ.get("DIFFIR_SCREENSHOTS", ROOT / "tests" / "screenshots"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
MAX_PIXELS = 1_500_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(env_extra: dict[str, str], tmp: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "DIFFIR_MAX_PIXELS": str(MAX_PIXELS),
        "GRADIO_TEMP_DIR": str(tmp / "gradio"),
        **env_extra,
    }
    log = tmp / "app.log"
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=tmp / "app", env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}/"
    t0 = time.time()
    while time.time() - t0 < 120:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited: {log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"app did not start in 120 s: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_weights")
    for task in ("inpaint", "sr", "deblur"):
        save_pretrained(random_model(task), root / task)
    return root


def _app_copy(tmp: Path) -> None:
    """Run from a copy of the repository's app (cached examples and outputs stay out of the tree)."""
    (tmp / "app").mkdir()
    for name in ("app.py", "diffir", "examples", "weights"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp / "app" / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy(src, tmp / "app" / name)


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_weights):
    """The app with tiny random weights: fast, and outputs are checked against diffir.restore."""
    tmp = tmp_path_factory.mktemp("app")
    _app_copy(tmp)
    proc, url = _start({"DIFFIR_WEIGHTS": str(tiny_weights)}, tmp)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


def _png(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(arr, mode=mode).save(path)
    return path


def _img(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / 40
    base = np.stack([np.sin(3 * xx + seed), np.cos(2 * yy), np.sin(xx + yy)], axis=2) * 90 + 128
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def _expected(task: str, path: Path, tiny_weights: Path, seed: int, mask=None) -> np.ndarray:
    from diffir import load_network

    model = load_network(tiny_weights / task)
    r = restore(
        task,
        path,
        mask=mask,
        model=model,
        options=Options(seed=seed, tile=512, overlap=32, dilate=4 if task == "inpaint" else 0),
    )
    return np.asarray(Image.open(io.BytesIO(r.png())))


def test_endpoints(client, tmp_path, tiny_weights):
    from gradio_client import handle_file

    src = _png(tmp_path / "in.png", _img(1))
    slider, full, status, seed = client.predict(handle_file(str(src)), 4, 512, 32, 7, False, api_name="/super_resolve")
    out = np.asarray(Image.open(full))
    assert out.shape == (192, 256, 3) and seed == 7
    assert "seed 7" in status and "output 256×192" in status
    np.testing.assert_array_equal(out, _expected("sr", src, tiny_weights, 7))
    before, after = slider
    assert Image.open(before).size == Image.open(after).size == (256, 192)

    _, full, status, _ = client.predict(handle_file(str(src)), 2, 0, 32, 3, False, api_name="/deblur")
    assert np.asarray(Image.open(full)).shape == (48, 64, 3) and "2 steps" in status

    mask = np.zeros((48, 64, 4), np.uint8)
    mask[20:28, 10:50] = (255, 46, 99, 255)
    mpath = _png(tmp_path / "mask.png", mask, "RGBA")
    editor = {"background": handle_file(str(src)), "layers": [handle_file(str(mpath))], "composite": None}
    _, full, status, _ = client.predict(editor, 4, 512, 32, 5, False, 4, api_name="/inpaint")
    out = np.asarray(Image.open(full))
    img = _img(1)
    grown = np.zeros((48, 64), bool)
    grown[16:32, 6:54] = True
    np.testing.assert_array_equal(out[~grown], img[~grown])
    np.testing.assert_array_equal(out, _expected("inpaint", src, tiny_weights, 5, mask=mask[..., 3] > 0))


def test_random_seed_is_reported(client, tmp_path):
    from gradio_client import handle_file

    src = _png(tmp_path / "in.png", _img(2))
    _, full1, status, seed = client.predict(handle_file(str(src)), 4, 512, 32, 0, True, api_name="/deblur")
    assert f"seed {int(seed)}" in status
    _, full2, _, seed2 = client.predict(handle_file(str(src)), 4, 512, 32, seed, False, api_name="/deblur")
    assert seed2 == seed and Path(full1).read_bytes() == Path(full2).read_bytes()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("none", "Upload an image first"),
        ("text", "not an image file"),
        ("empty", "the file is empty"),
        ("truncated", "damaged or truncated"),
        ("too_big", "the limit is 1.5 Mpx"),
    ],
)
def test_bad_inputs_give_their_message(client, tmp_path, case, message):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    path = None
    if case == "text":
        path = tmp_path / "notes.png"
        path.write_text("not an image")
    elif case == "empty":
        path = tmp_path / "empty.png"
        path.write_bytes(b"")
    elif case == "truncated":
        good = _png(tmp_path / "good.png", _img(3)).read_bytes()
        path = tmp_path / "cut.png"
        path.write_bytes(good[: len(good) // 3])
    elif case == "too_big":
        path = _png(tmp_path / "big.png", np.zeros((1000, 1600, 3), np.uint8))
    arg = handle_file(str(path)) if path else None
    with pytest.raises(AppError, match=message):
        client.predict(arg, 4, 512, 32, 0, False, api_name="/super_resolve")


def test_inpainting_bad_masks(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    src = _png(tmp_path / "in.png", _img(4))
    empty = _png(tmp_path / "m0.png", np.zeros((48, 64, 4), np.uint8), "RGBA")
    with pytest.raises(AppError, match="mask is empty"):
        client.predict(
            {"background": handle_file(str(src)), "layers": [handle_file(str(empty))], "composite": None},
            4,
            512,
            32,
            0,
            False,
            0,
            api_name="/inpaint",
        )
    small = _png(tmp_path / "m1.png", np.full((10, 10, 4), 255, np.uint8), "RGBA")
    with pytest.raises(AppError, match=r"mask layer is 10×10 but the image is 64×48"):
        client.predict(
            {"background": handle_file(str(src)), "layers": [handle_file(str(small))], "composite": None},
            4,
            512,
            32,
            0,
            False,
            0,
            api_name="/inpaint",
        )
    with pytest.raises(AppError, match="Upload an image first"):
        client.predict(
            {"background": None, "layers": [], "composite": None}, 4, 512, 32, 0, False, 0, api_name="/inpaint"
        )


def test_four_concurrent_clients(server, tmp_path, tiny_weights):
    from gradio_client import Client, handle_file

    def job(i: int) -> tuple[int, np.ndarray, Path]:
        src = _png(tmp_path / f"c{i}.png", _img(10 + i, 40 + 8 * i, 56))
        c = Client(server, verbose=False)
        _, full, _, _ = c.predict(handle_file(str(src)), 4, 512, 32, 100 + i, False, api_name="/super_resolve")
        return i, np.asarray(Image.open(full)), src

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(job, range(4)))
    for i, out, src in results:
        np.testing.assert_array_equal(out, _expected("sr", src, tiny_weights, 100 + i))


def test_startup_time_and_api_info(server, client):
    info = client.view_api(return_format="dict", print_info=False)
    names = set(info["named_endpoints"])
    assert {"/inpaint", "/super_resolve", "/deblur"} <= names


# --------------------------------------------------------------------------------------------------
# The browser
# --------------------------------------------------------------------------------------------------


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("DIFFIR_REQUIRE_BROWSER"):
            raise
        pytest.skip("playwright is not installed")
    if not Path(CHROMIUM).exists():
        if os.environ.get("DIFFIR_REQUIRE_BROWSER"):
            pytest.fail(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    return sync_playwright


@pytest.fixture(scope="module")
def shipped_server(tmp_path_factory, tiny_weights):
    """The app as a user starts it: shipped weights (tiny ones only where none are shipped)."""
    tmp = tmp_path_factory.mktemp("app_shipped")
    _app_copy(tmp)
    extra = {}
    if not all((ROOT / "weights" / t / "model.safetensors").is_file() for t in ("inpaint", "sr", "deblur")):
        extra["DIFFIR_WEIGHTS"] = str(tiny_weights)
    proc, url = _start(extra, tmp)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.browser
def test_browser_inpainting_and_tabs(shipped_server, tmp_path):
    sync_playwright = _browser_or_skip()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    photo = ROOT / "examples" / "inpaint" / "flowers.png"
    original = np.asarray(Image.open(photo).convert("RGB"))
    h, w = original.shape[:2]
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--enable-unsafe-swiftshader",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(shipped_server)
        page.wait_for_selector("#inpaint-editor", timeout=60_000)
        with page.expect_file_chooser() as fc:
            page.click("#inpaint-upload")
        fc.value.set_files(str(photo))
        page.wait_for_selector("#inpaint-source p", timeout=30_000)
        page.wait_for_timeout(1500)
        canvas = page.locator("#inpaint-editor canvas").first
        box = canvas.bounding_box()
        assert box is not None
        # a horizontal stroke through the middle of the picture (the canvas centres it)
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + box["width"] * 0.35, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.65, y, steps=12)
        page.mouse.up()
        page.wait_for_timeout(500)
        page.click("#inpaint-run")
        page.wait_for_selector("#inpaint-download a", timeout=180_000)
        assert "flowers_inpaint_seed" in page.locator("#inpaint-download").inner_text()  # the exact upload was used
        page.wait_for_timeout(1000)
        page.screenshot(path=str(SCREENSHOTS / "inpaint.png"), full_page=True)
        href = page.locator("#inpaint-download a").first.get_attribute("href")
        status = page.locator("#inpaint-status").inner_text()
        assert "output" in status and "seed" in status
        url = href if href.startswith("http") else shipped_server.rstrip("/") + "/" + href.lstrip("/")
        out = np.asarray(Image.open(io.BytesIO(urllib.request.urlopen(url).read())).convert("RGB"))
        assert out.shape == original.shape
        changed = (out != original).any(axis=2)
        assert changed.any()
        rows = np.nonzero(changed.any(axis=1))[0]
        cols = np.nonzero(changed.any(axis=0))[0]
        # only a band around the stroke changed; everything else is the upload's own pixels
        assert rows.min() > 0.25 * h and rows.max() < 0.75 * h, (rows.min(), rows.max())
        assert cols.min() > 0.15 * w and cols.max() < 0.85 * w, (cols.min(), cols.max())
        band = np.zeros((h, w), bool)
        band[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
        np.testing.assert_array_equal(out[~band], original[~band])

        for tab, example in (("sr", "castle-maintenon.png"), ("deblur", "bridge.png")):
            page.click(f"#tab-{tab}-button")
            page.wait_for_selector(f"#{tab}-input", timeout=30_000)
            page.locator(f"#{tab}-input input[type=file]").set_input_files(str(ROOT / "examples" / tab / example))
            page.wait_for_timeout(1000)
            page.click(f"#{tab}-run")
            page.wait_for_selector(f"#{tab}-download a", timeout=180_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(SCREENSHOTS / f"{tab}.png"), full_page=True)
            assert "seed" in page.locator(f"#{tab}-status").inner_text()
        browser.close()
