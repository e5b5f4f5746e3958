"""The batch CLI over a folder of mixed files, as a new user would run it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from diffir import save_pretrained
from diffir.cli import main

from .conftest import random_model


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    for task in ("deblur", "inpaint", "sr"):
        save_pretrained(random_model(task), root / task)
    return root


def _folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(src / "a.png")
    Image.fromarray(rng.integers(0, 256, (33, 41, 3), dtype=np.uint8)).save(src / "b.jpg", quality=90)
    Image.fromarray(rng.integers(0, 256, (20, 30, 4), dtype=np.uint8), "RGBA").save(src / "c.webp", lossless=True)
    (src / "notes.txt").write_text("not an image")
    (src / "empty.png").write_bytes(b"")
    good = (src / "a.png").read_bytes()
    (src / "cut.png").write_bytes(good[: len(good) // 3])
    return src


def test_folder_batch(tmp_path, weights, capsys):
    src, out = _folder(tmp_path), tmp_path / "out"
    args = [
        "restore",
        "--task",
        "deblur",
        "-i",
        str(src),
        "-o",
        str(out),
        "--weights",
        str(weights),
        "--seed",
        "1",
        "-q",
    ]
    assert main(args) == 1  # some files failed
    err = capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]
    assert "3 restored, 0 skipped" in err and "3 failed" in err
    assert "notes.txt: this is not an image file" in err and "empty.png: the file is empty" in err
    assert "cut.png: the image file is damaged or truncated" in err
    assert not list(out.glob("*.part"))  # nothing half-written
    assert Image.open(out / "c.png").mode == "RGBA"
    before = (out / "a.png").stat().st_mtime_ns
    assert main(args) == 1
    assert "0 restored, 3 skipped" in capsys.readouterr().err
    assert (out / "a.png").stat().st_mtime_ns == before
    assert main([*args, "--overwrite"]) == 1
    assert "3 restored, 0 skipped" in capsys.readouterr().err


def test_only_good_files_exit_zero_and_single_file_output(tmp_path, weights, capsys):
    src = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 24, 3), np.uint8)).save(src)
    out = tmp_path / "result.png"
    assert main(["restore", "--task", "sr", "-i", str(src), "-o", str(out), "--weights", str(weights), "-q"]) == 0
    assert Image.open(out).size == (96, 64)
    assert "1 restored" in capsys.readouterr().err


def test_inpainting_masks_by_name(tmp_path, weights, capsys):
    src, masks, out = tmp_path / "img", tmp_path / "masks", tmp_path / "out"
    src.mkdir()
    masks.mkdir()
    img = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(img).save(src / "p1.png")
    Image.fromarray(img).save(src / "p2.png")
    m = np.zeros((32, 32), np.uint8)
    m[8:16, 8:20] = 255
    Image.fromarray(m).save(masks / "p1_mask001.png")
    code = main(
        [
            "restore",
            "--task",
            "inpaint",
            "-i",
            str(src),
            "-m",
            str(masks),
            "-o",
            str(out),
            "--weights",
            str(weights),
            "-q",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "no mask found for p2.png" in err
    res = np.asarray(Image.open(out / "p1.png"))
    np.testing.assert_array_equal(res[m == 0], img[m == 0])


def test_argument_errors(tmp_path, weights, capsys):
    assert (
        main(["restore", "--task", "sr", "-i", str(tmp_path / "nope"), "-o", str(tmp_path), "--weights", str(weights)])
        == 2
    )
    assert "no such file or folder" in capsys.readouterr().err
    empty = tmp_path / "w"
    empty.mkdir()
    (tmp_path / "x.png").write_bytes(b"")
    assert (
        main(
            [
                "restore",
                "--task",
                "sr",
                "-i",
                str(tmp_path / "x.png"),
                "-o",
                str(tmp_path / "o"),
                "--weights",
                str(empty),
            ]
        )
        == 2
    )
    assert "no DiffIR weights for sr" in capsys.readouterr().err


def test_module_entry_point(tmp_path, weights):
    src = tmp_path / "x.png"
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(src)
    cmd = [
        sys.executable,
        "-m",
        "diffir",
        "restore",
        "--task",
        "deblur",
        "-i",
        str(src),
        "-o",
        str(tmp_path / "o"),
        "--weights",
        str(weights),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "o" / "x.png").is_file() and "seed" in res.stderr
