"""The batch CLI over a folder of mixed files, as a new user would run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

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
    int8 = tmp_path / "int8.png"  # the CPU's reduced-precision path is reachable from the CLI
    assert main(["restore", "--task", "sr", "-i", str(src), "-o", str(int8), "--weights", str(weights), "-q",
                 "--precision", "int8", "--seed", "1"]) == 0  # fmt: skip
    assert Image.open(int8).size == (96, 64)


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
    src = tmp_path / "y.png"
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(src)
    args = ["restore", "-i", str(src), "-o", str(tmp_path / "o2"), "--weights", str(weights), "--style", "sharp"]
    assert main([*args, "--task", "deblur"]) == 2
    assert "Motion deblurring has no style 'sharp'; choose one of faithful" in capsys.readouterr().err
    assert main([*args, "--task", "sr"]) == 2  # this weights folder has no sr_sharp/
    assert "no DiffIR weights for sr_sharp" in capsys.readouterr().err


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


# --------------------------------------------------------------------------------------------------
# Never lose or skip a file silently (issue 14)
# --------------------------------------------------------------------------------------------------


def _restore_args(task, src, out, weights, *extra):
    return ["restore", "--task", task, "-i", str(src), "-o", str(out), "--weights", str(weights), "-q", *extra]


def _noise(h, w, seed, channels=3):
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)


def test_inputs_sharing_a_stem_each_get_their_own_output(tmp_path, weights, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    Image.fromarray(_noise(24, 32, 1)).save(src / "photo.jpg", quality=95)
    Image.fromarray(_noise(24, 32, 2)).save(src / "photo.png")
    Image.fromarray(_noise(24, 32, 3)).save(src / "photo.webp", lossless=True)
    Image.fromarray(_noise(24, 32, 4)).save(src / "other.png")
    args = _restore_args("deblur", src, out, weights, "--seed", "3")
    assert main(args) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["other.png", "photo.jpg.png", "photo.png.png", "photo.webp.png"]
    assert "4 input(s): 4 restored, 0 skipped" in capsys.readouterr().err
    outputs = {n: np.asarray(Image.open(out / n)) for n in names}
    assert len({a.tobytes() for a in outputs.values()}) == 4  # four different results, none overwritten
    assert main([*args, "--overwrite"]) == 0
    assert "4 input(s): 4 restored, 0 skipped" in capsys.readouterr().err
    for n in names:  # same seed: each input gives back its own output again
        np.testing.assert_array_equal(np.asarray(Image.open(out / n)), outputs[n])


def test_mask_names_are_only_special_for_inpainting(tmp_path, weights, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    Image.fromarray(_noise(32, 32, 5)).save(src / "scan_mask.png")  # a photo whose name contains "_mask"
    Image.fromarray(_noise(32, 32, 6)).save(src / "p.png")
    assert main(_restore_args("deblur", src, out, weights)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["p.png", "scan_mask.png"]
    assert "2 input(s): 2 restored" in capsys.readouterr().err

    inp, out2 = tmp_path / "inp", tmp_path / "out2"
    inp.mkdir()
    Image.fromarray(_noise(32, 32, 7)).save(inp / "p.png")
    m = np.zeros((32, 32), np.uint8)
    m[4:12, 4:12] = 255
    Image.fromarray(m).save(inp / "p_mask.png")
    Image.fromarray(m).save(inp / "ghost_mask.png")  # pairs with no image
    assert main(_restore_args("inpaint", inp, out2, weights)) == 0
    err = capsys.readouterr().err
    assert "1 input(s): 1 restored" in err
    assert "1 mask(s) matched no image" in err and "ghost_mask.png" in err
    assert sorted(p.name for p in out2.iterdir()) == ["p.png"]


def test_an_input_is_never_overwritten(tmp_path, weights, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_noise(24, 24, 8)).save(src / "a.png")
    Image.fromarray(_noise(24, 24, 9)).save(src / "b.jpg")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    assert main(_restore_args("deblur", src, src, weights, "--overwrite")) == 2
    assert "is the input folder" in capsys.readouterr().err
    assert main(_restore_args("deblur", src / "a.png", src / "a.png", weights, "--overwrite")) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert main(_restore_args("deblur", src / "a.png", src, weights, "--overwrite")) == 2  # src/a.png again
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before


def test_output_is_checked_before_any_model_work(tmp_path, capsys):
    src = tmp_path / "x.png"
    Image.fromarray(_noise(16, 16, 10)).save(src)
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    missing_weights = tmp_path / "no-weights"
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(_noise(16, 16, 11)).save(folder / "y.png")
    assert main(_restore_args("deblur", folder, blocker, missing_weights)) == 2
    err = capsys.readouterr().err
    assert "notes.txt is an existing file" in err and "weights" not in err
    assert main(_restore_args("deblur", src, blocker / "sub", missing_weights)) == 2
    err = capsys.readouterr().err
    assert "cannot write to the output folder" in err and "weights" not in err


def test_masks_with_glob_characters_and_unreadable_masks(tmp_path, weights, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    img = _noise(32, 32, 12)
    Image.fromarray(img).save(src / "photo [1].png")
    Image.fromarray(img).save(src / "photo 1.png")  # what the glob '[1]' would have matched
    m = np.zeros((32, 32), np.uint8)
    m[8:16, 8:16] = 255
    Image.fromarray(m).save(src / "photo [1]_mask.png")
    (src / "photo 1_mask.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert main(_restore_args("inpaint", src, out, weights)) == 1
    err = capsys.readouterr().err
    assert (out / "photo [1].png").is_file()
    assert "photo 1.png: mask photo 1_mask.png: this is not an image file" in err
    res = np.asarray(Image.open(out / "photo [1].png"))
    np.testing.assert_array_equal(res[m == 0], img[m == 0])


def test_stale_partial_files_of_our_pattern_are_cleaned(tmp_path, weights, capsys):
    src, out = tmp_path / "x.png", tmp_path / "out"
    Image.fromarray(_noise(16, 16, 13)).save(src)
    out.mkdir()
    stale, fresh, theirs = out / ".x.png.ab12cd34.part", out / ".y.png.zz99yy88.part", out / ".x.png.part"
    for p in (stale, fresh, theirs):
        p.write_bytes(b"half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(theirs, (old, old))
    assert main(_restore_args("deblur", src, out, weights)) == 0
    assert "removed 1 partial file" in capsys.readouterr().err
    assert not stale.exists() and fresh.exists() and theirs.exists()  # only old files of our own pattern


_OOM_RUN = """
import os, resource, sys
from diffir.cli import main
from diffir.inference.pipeline import get_model, restore, Options
restore("deblur", sys.argv[2], model=get_model("deblur", sys.argv[1]), options=Options(seed=0))  # warm up first
vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + 400 * 2**20, resource.RLIM_INFINITY))
sys.exit(main(sys.argv[3:]))
"""


def test_out_of_memory_on_one_file_does_not_abort_the_batch(tmp_path, weights):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    Image.fromarray(_noise(32, 32, 14)).save(src / "a.png")
    Image.fromarray(_noise(2000, 2000, 15)).save(src / "b_big.png")  # whole image at once: ~GBs of activations
    Image.fromarray(_noise(32, 32, 16)).save(src / "c.png")
    args = _restore_args("deblur", src, out, weights, "--tile", "0")
    cmd = [sys.executable, "-c", _OOM_RUN, str(weights / "deblur"), str(src / "a.png"), *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert "3 input(s): 2 restored, 0 skipped (already done; --overwrite to redo), 1 failed" in res.stderr
    assert "b_big.png: out of memory" in res.stderr and "--tile" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]


@pytest.mark.parametrize(
    ("sig", "code", "why"), [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted by Ctrl-C")]
)
def test_interrupted_batch_prints_its_summary_and_leaves_no_partial_file(tmp_path, weights, sig, code, why):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(40):
        Image.fromarray(_noise(192, 192, 100 + i)).save(src / f"im{i:02d}.png")
    cmd = [sys.executable, "-m", "diffir", *_restore_args("deblur", src, out, weights)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (out.is_dir() and any(p.suffix == ".png" for p in out.iterdir())) and time.time() - t0 < 120:
        time.sleep(0.02)
    proc.send_signal(sig)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == code, err[-2000:]
    assert "Traceback" not in err
    done = len(list(out.glob("*.png")))
    assert 1 <= done < 40
    assert f"40 input(s): {done} restored" in err and f"not started ({why})" in err
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no hidden partial file
