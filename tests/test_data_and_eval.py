"""The training pool list, patch sampling, metrics and the evaluation baselines."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from diffir.tasks import get_task
from diffir.training import degradations as D
from diffir.training import peers
from diffir.training.data import PatchSampler, read_pool
from diffir.training.evaluate import (
    _segments,
    evaluate,
    inpaint_opencv,
    main,
    plot_curve,
    training_curve,
    upsample,
    wiener,
)
from diffir.training.metrics import psnr, psnr_y, ssim, to_y

from .helpers import EXAMPLES, random_model


def test_pool_list():
    pool = read_pool()
    assert len(pool) == 68 and sum(e.split == "val" for e in pool) == 8
    assert len({e.name for e in pool}) == 68
    assert all(len(e.sha256) == 64 and e.licence for e in pool)
    assert {e.package for e in pool} == {
        "enlightenment-data", "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04", "plasma-workspace-wallpapers",
        "mate-backgrounds", "lxqt-themes", "palapeli-data",
    }  # fmt: skip


def test_patch_sampler_prefers_texture():
    flat = np.full((256, 256, 3), 120, np.uint8)
    textured = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    sampler = PatchSampler([flat, textured], 32, np.random.default_rng(1))
    patches = [sampler() for _ in range(200)]
    assert all(p.shape == (32, 32, 3) for p in patches)
    share_textured = np.mean([p.std() > 10 for p in patches])
    assert share_textured > 0.8


def test_metrics():
    a = np.random.default_rng(0).random((32, 32, 3))
    assert psnr(a, a) == float("inf")
    assert psnr(a, np.clip(a + 0.1, 0, 1)) < 21
    m = np.zeros((32, 32), bool)
    m[:8] = True
    b = a.copy()
    b[:8] += 0.1
    assert psnr(b, a, mask=m) == pytest.approx(20.0, abs=1e-6)
    assert ssim(a, a) == pytest.approx(1.0)
    assert to_y(np.ones((1, 1, 3)))[0, 0] == pytest.approx(235 / 255)
    assert psnr_y(a, a, border=4) == float("inf")


def test_baselines_do_their_job():
    import cv2

    texture = np.random.default_rng(0).random((96, 96, 3)).astype(np.float32)
    gt = cv2.GaussianBlur(texture, (0, 0), 1.0)  # fine detail that a blur destroys
    k = np.zeros((15, 15), np.float32)  # an asymmetric "L" path: a flipped kernel would be wrong
    k[7, 7:14] = 1
    k[1:7, 13] = 1
    k /= k.sum()
    blurred = D.filter2d(gt, k[::-1, ::-1])
    restored = psnr(wiener(blurred, k, 1e-2), gt, border=15)
    assert restored > psnr(blurred, gt, border=15) + 3
    assert restored > psnr(wiener(blurred, k[::-1, ::-1], 1e-2), gt, border=15) + 3
    yy, xx = np.mgrid[0:96, 0:96] / 96
    smooth = (np.stack([np.sin(8 * xx), np.cos(6 * yy), np.sin(5 * (xx + yy))], axis=2) * 0.4 + 0.5).astype(np.float32)
    lq = D.bicubic_downsample(smooth, 4)
    assert psnr(upsample(lq, smooth.shape[:2], "bicubic"), smooth) > psnr(np.full_like(smooth, 0.5), smooth) + 15
    mask = np.zeros((96, 96), bool)
    mask[40:50, 20:70] = True
    filled = inpaint_opencv(smooth, mask, "telea")
    assert np.array_equal(filled[~mask], smooth[~mask])
    assert psnr(filled, smooth, mask=mask) > psnr(np.where(mask[..., None], 0, smooth), smooth, mask=mask) + 10


@pytest.mark.parametrize("task", ["sr", "deblur", "inpaint"])
def test_evaluate_writes_table_and_crops(tmp_path, task):
    rng = np.random.default_rng(0)
    images = {f"im{i}": rng.random((128, 160, 3)).astype(np.float32) for i in range(2)}
    res = evaluate(task, images, random_model(task), random_model(task, stage="s1"), tmp_path)
    assert (tmp_path / "table.md").is_file() and (tmp_path / "crops.png").is_file()
    rows = res["mean"]
    assert "DiffIR S2 (4 steps)" in rows and "DiffIR S1 (GT-informed IPR)" in rows
    assert "S2, CPEN_S2 as IPR (no diffusion)" in rows
    if task == "deblur":
        assert any(k.startswith("Wiener, true kernel") for k in rows)
    if task == "inpaint":
        assert {"telea", "navier-stokes", "biharmonic"} <= set(rows)
    if task == "sr":  # the peer, and NIQE (not measurable below 193 px: NaN, not a made-up number)
        assert "Real-ESRGAN x4plus" in rows and np.isnan(rows["bicubic"]["niqe"])


def test_deblur_evaluated_per_trajectory_length(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(cv2.GaussianBlur(rng.integers(0, 256, (64, 80, 3), np.uint8), (0, 0), 1.5)).save(
            photos / f"{i}.png"
        )
    gt = np.asarray(Image.open(photos / "0.png")).astype(np.float32) / 255
    task = get_task("deblur")
    extent = [np.ptp(np.nonzero(task.eval_pair(gt, 0, f"length={n}")[1]["kernel"] > 1e-3)).max() for n in (5, 25)]
    assert extent[0] < 8 < 18 < extent[1]
    out = tmp_path / "out"
    args = ["--task", "deblur", "--data", str(photos), "--long-side", "0", "--out", str(out), "--variant", "length=5",
            "--variant", "length=25"]  # fmt: skip
    assert main(args) == 0
    summary = (out / "summary.md").read_text().splitlines()
    assert summary[0] == "| method (psnr) | length=5 | length=25 |" and (out / "table_length25.md").is_file()
    blurred = [float(x) for x in summary[2].split("|")[2:4]]
    assert summary[2].startswith("| blurred input |") and blurred[0] > blurred[1]  # longer blur, lower PSNR


def test_niqe_matches_scikit_video_and_prefers_the_sharp_photo(monkeypatch):
    photo = np.asarray(Image.open(EXAMPLES / "inpaint" / "flowers.png").convert("RGB")).astype(np.float32) / 255
    sharp, blurred = peers.niqe(photo), peers.niqe(cv2.GaussianBlur(photo, (0, 0), 2.5))
    assert 0 < sharp < blurred - 3

    # scikit-video's own driver, given back the two things current numpy and scipy removed
    import scipy.misc
    import skvideo.measure

    def imresize(img: np.ndarray, factor: float, interp: str, mode: str) -> np.ndarray:
        size = (int(img.shape[1] * factor), int(img.shape[0] * factor))
        return np.asarray(Image.fromarray(img, mode="F").resize(size, Image.Resampling.BICUBIC))

    monkeypatch.setattr(np, "int", int, raising=False)
    monkeypatch.setattr(scipy.misc, "imresize", imresize, raising=False)
    assert skvideo.measure.niqe(peers._luma(photo))[0] == pytest.approx(sharp, rel=1e-5)
    with pytest.raises(ValueError, match="larger than 192 px"):
        peers.niqe(photo[:150])


def test_real_esrgan_runs_on_the_cpu_and_sharpens():
    photo = np.asarray(Image.open(EXAMPLES / "inpaint" / "flowers.png").convert("RGB")).astype(np.float32) / 255
    gt = photo[:192, :256]
    lq = D.bicubic_downsample(gt, 4)
    sr, bicubic = peers.RealESRGAN(threads=1)(lq), upsample(lq, gt.shape[:2], "bicubic")
    assert sr.shape == gt.shape and sr.dtype == np.float32
    assert psnr_y(sr, gt, 4) > 29.5  # measured 30.2 dB; with the channels swapped 28.7
    assert cv2.Laplacian(to_y(sr), cv2.CV_32F).var() > 1.5 * cv2.Laplacian(to_y(bicubic), cv2.CV_32F).var()


def test_training_curve_counts_hours_once_across_resumes(tmp_path):
    s1, s2 = tmp_path / "t_s1", tmp_path / "t_s2"
    logs = {
        s1: [
            {"step": 20, "s_per_it": 3.6},
            {"step": 40, "s_per_it": 3.6},
            {"step": 40, "val_psnr": 20.0},
            {"step": 60, "s_per_it": 99.0},  # lost in a crash: re-logged after the resume below
            {"step": 60, "s_per_it": 1.8},
            {"step": 60, "val_psnr": 21.0},
        ],
        s2: [{"step": 20, "s_per_it": 18.0}, {"step": 20, "val_psnr": 21.5}],
    }
    for run, recs in logs.items():
        run.mkdir()
        (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    points = training_curve([s1, s2])
    assert [(p["run"], p["step"], p["val_psnr"]) for p in points] == [
        ("t_s1", 40, 20.0),
        ("t_s1", 60, 21.0),
        ("t_s2", 20, 21.5),
    ]
    assert [p["hours"] for p in points] == pytest.approx([0.04, 0.05, 0.15])
    plot_curve(points, tmp_path / "curve.png", "t")
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_training_curve_lays_runs_out_as_they_ran(tmp_path):
    # stage 1 for an hour, its stage 2 for half an hour, then stage 1 extended by another hour
    s1, s2 = tmp_path / "s1", tmp_path / "s2_0"
    logs = {
        s1: [
            {"step": 10, "seconds": 3600, "time": 3600},
            {"step": 10, "val_psnr": 20.0, "seconds": 3600, "time": 3601},
            {"step": 20, "seconds": 7200, "time": 9000},
            {"step": 20, "val_psnr": 21.0, "seconds": 7200, "time": 9001},
        ],
        s2: [{"step": 5, "seconds": 1800, "time": 5400}, {"step": 5, "val_psnr": 20.5, "time": 5401}],
    }
    for run, recs in logs.items():
        run.mkdir()
        (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    points = training_curve([s1, s2])
    assert [(p["run"], p["hours"]) for p in points] == [("s1", 1.0), ("s2_0", 1.5), ("s1", 2.5)]
    xs, _ = _segments(points, "s1")  # drawn with a gap where stage 2 ran, not a line across it
    assert xs[0] == 1.0 and np.isnan(xs[1]) and xs[2] == 2.5
