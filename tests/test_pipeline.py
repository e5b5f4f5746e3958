"""``diffir.restore`` with tiny random networks: modes kept, inpainting exactness, seeds, errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import diffir
from diffir.inference.forward import forward_padded
from diffir.inference.imageio import ImageError, read_image
from diffir.inference.pipeline import Options, restore
from diffir.tasks import get_task, image_tensor, tensor_image

from .helpers import photo, png_bytes, random_model, u8
from .test_imageio import CASES, decode_reference, deep_png


@pytest.fixture(scope="module")
def models():
    return {t: random_model(t) for t in ("sr", "deblur", "inpaint")}


def test_sr_keeps_alpha_resized_and_mode(models):
    rgba = np.dstack([u8(photo()), np.full((40, 56), 200, np.uint8)])
    rgba[:10, :10, 3] = 0
    r = restore("sr", png_bytes(Image.fromarray(rgba, "RGBA")), model=models["sr"], options=Options(seed=1))
    out = decode_reference(r.png())
    assert out.shape == (160, 224, 4)
    assert out[5:30, 5:30, 3].max() == 0 and out[60:, 60:, 3].min() >= 199  # alpha up-scaled, edges sharp


def test_deblur_copies_alpha_and_keeps_grey_and_depth(models):
    la = CASES["LA"]()
    r = restore("deblur", png_bytes(Image.fromarray(la, "LA")), model=models["deblur"], options=Options(seed=1))
    out = decode_reference(r.png())
    assert out.shape == la.shape
    np.testing.assert_array_equal(out[..., 1], la[..., 1])
    deep = CASES["RGB;16"]()
    r = restore("deblur", deep_png(deep), model=models["deblur"], options=Options(seed=1))
    assert r.picture.depth == 16 and decode_reference(r.png()).dtype == np.uint16


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "RGB;16", "L"])
def test_inpainting_outside_mask_is_bit_identical(models, mode):
    arr = CASES[mode]()
    data = deep_png(arr) if mode == "RGB;16" else png_bytes(Image.fromarray(arr, mode=mode))
    mask = np.zeros(arr.shape[:2], bool)
    mask[3:8, 4:12] = True
    r = restore("inpaint", data, mask=mask, model=models["inpaint"], options=Options(seed=5))
    out = decode_reference(r.png())
    assert out.shape == arr.shape and out.dtype == arr.dtype
    np.testing.assert_array_equal(out[~mask], arr[~mask])
    assert (out[mask] != arr[mask]).any()


def test_inpainting_dilation_and_crop_strategy(models):
    img = u8(photo(300, 1200))
    mask = np.zeros((300, 1200), bool)
    mask[140:150, 600:620] = True
    r = restore(
        "inpaint",
        png_bytes(Image.fromarray(img)),
        mask=mask,
        model=models["inpaint"],
        options=Options(seed=0, dilate=3),
    )
    out = decode_reference(r.png())
    grown = np.zeros_like(mask)
    grown[137:153, 597:623] = True
    assert "crop" in r.extra  # large image: only the region around the mask went through the network
    np.testing.assert_array_equal(out[~grown], img[~grown])
    assert (out[138:152, 598:622] != img[138:152, 598:622]).any()  # the dilated ring was filled too


def test_inpainting_crops_around_the_mask_unless_told_not_to(models):
    img = u8(photo(200, 240))
    mask = np.zeros((200, 240), bool)
    mask[90:100, 100:120] = True
    whole = restore("inpaint", img, mask=mask, model=models["inpaint"], options=Options(seed=0))
    assert "crop" not in whole.extra  # no larger than the default trigger (512 px): the whole image
    crop = restore("inpaint", img, mask=mask, model=models["inpaint"], options=Options(seed=0, crop_trigger=239))
    assert crop.extra["crop"] == "148×138"  # the hole's box and 64 px around it (the default margin)
    for r in (crop, whole):
        assert np.array_equal(decode_reference(r.png())[~mask], img[~mask]) and r.picture.size == (240, 200)


def test_inpainting_runs_only_the_tiles_that_hold_the_hole(models):
    """Two marks in opposite corners: the tiles between them are skipped, and every hole pixel gets
    exactly what running all the tiles gives it."""
    img = u8(photo(200, 240))
    mask = np.zeros((200, 240), bool)
    mask[5:12, 6:14] = mask[185:193, 220:230] = True
    opts = Options(seed=3, tile=64, overlap=16)
    r = restore("inpaint", img, mask=mask, model=models["inpaint"], options=opts)
    assert "crop" not in r.extra and r.tiles == 2  # of the 3×4 windows, the two corners
    x = image_tensor(get_task("inpaint").network_input(r.source.rgb, mask))
    every_tile = tensor_image(forward_padded(models["inpaint"], x, seed=3, tile=64, overlap=16))
    np.testing.assert_array_equal(r.picture.rgb[mask], every_tile[mask])
    np.testing.assert_array_equal(r.picture.rgb[~mask], r.source.rgb[~mask])


def test_inpainting_mask_errors(models):
    img = png_bytes(Image.fromarray(CASES["RGB"]()))
    with pytest.raises(ImageError, match="mask is empty"):
        restore("inpaint", img, mask=np.zeros((13, 17), bool), model=models["inpaint"])
    with pytest.raises(ImageError, match=r"mask is 10×10 but the image is 17×13"):
        restore("inpaint", img, mask=np.ones((10, 10), bool), model=models["inpaint"])
    with pytest.raises(ImageError, match="needs a mask"):
        restore("inpaint", img, model=models["inpaint"])


def test_seed_is_recorded_and_reproducible(models):
    img = png_bytes(Image.fromarray(u8(photo())))
    a = restore("deblur", img, model=models["deblur"], options=Options(seed=11))
    b = restore("deblur", img, model=models["deblur"], options=Options(seed=11))
    c = restore("deblur", img, model=models["deblur"], options=Options(seed=12))
    r = restore("deblur", img, model=models["deblur"])
    assert a.seed == 11 and isinstance(r.seed, int)
    assert a.png() == b.png() and a.png() != c.png()
    again = restore("deblur", img, model=models["deblur"], options=Options(seed=r.seed))
    assert again.png() == r.png()
    assert "seed 11" in a.summary() and "4 steps" in a.summary()


def test_whole_image_equals_the_official_forward(models):
    """tile=0 and seed s reproduce ``torch.manual_seed(s); net(padded x)`` (cropped, clamped)."""
    model = models["sr"]
    img = photo(21, 30)
    r = restore("sr", png_bytes(Image.fromarray(u8(img))), model=model, options=Options(seed=2023, tile=0))
    x = torch.from_numpy(read_image(png_bytes(Image.fromarray(u8(img)))).rgb).permute(2, 0, 1)[None]
    xp = torch.nn.functional.pad(x, (0, 2, 0, 3), mode="reflect")
    torch.manual_seed(2023)
    with torch.no_grad():
        ref = model(xp)[..., :84, :120].clamp(0, 1)[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(decode_reference(r.png()), np.rint(ref * 255).astype(np.uint8))


def test_steps_and_bad_options(models):
    img = png_bytes(Image.fromarray(u8(photo())))
    one = restore("deblur", img, model=models["deblur"], options=Options(seed=1, steps=1))
    four = restore("deblur", img, model=models["deblur"], options=Options(seed=1, steps=4))
    assert one.steps == 1 and one.png() != four.png()
    with pytest.raises(diffir.OptionsError, match="steps must be between 1 and 4"):
        restore("deblur", img, model=models["deblur"], options=Options(steps=9))
    if not torch.cuda.is_available():
        with pytest.raises(diffir.OptionsError, match="no CUDA GPU"):
            restore("deblur", img, model=models["deblur"], options=Options(device="cuda"))
    with pytest.raises(diffir.OptionsError, match="not sr"):
        restore("sr", img, model=models["deblur"])
    with pytest.raises(ImageError, match="damaged or truncated"):
        restore("deblur", img[:50], model=models["deblur"])


def test_progress_reports_tiles(models):
    seen = []
    restore(
        "deblur",
        png_bytes(Image.fromarray(u8(photo(128, 192)))),
        model=models["deblur"],
        options=Options(seed=0, tile=64, overlap=8),
        progress=lambda f, msg: seen.append((f, msg)),
    )
    assert seen[0][0] == 0.0 and seen[-1] == (1.0, "done")
    assert any("tile 6/6" in m for _, m in seen)  # 2 × 3 windows of up to 72 px
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)


def test_weights_resolution(tmp_path, monkeypatch):
    from diffir import save_pretrained
    from diffir.checkpoints import resolve_weights
    from diffir.errors import WeightsNotFound
    from diffir.inference.pipeline import get_model

    save_pretrained(random_model("deblur"), tmp_path / "deblur")
    monkeypatch.setenv("DIFFIR_WEIGHTS", str(tmp_path))
    assert resolve_weights("deblur") == tmp_path / "deblur"
    with pytest.raises(WeightsNotFound, match="no DiffIR weights for sr"):
        resolve_weights("sr")
    assert get_model("deblur") is get_model("deblur")  # loaded once per process
    # a style is its own weights folder: named when missing, refused where the task has no such style
    with pytest.raises(WeightsNotFound, match="no DiffIR weights for sr_sharp"):
        get_model("sr", style="sharp")
    with pytest.raises(diffir.OptionsError, match="Motion deblurring has no style 'sharp'; choose one of faithful"):
        get_model("deblur", style="sharp")
    save_pretrained(random_model("sr", seed=4), tmp_path / "sr_sharp")
    assert get_model("sr", style="sharp") is not get_model("deblur")
    with pytest.raises(diffir.OptionsError, match="is a deblur network, not sr"):
        get_model("sr", tmp_path / "deblur")
    monkeypatch.delenv("DIFFIR_WEIGHTS")
    # an official checkpoint dropped into a task folder is picked up (and wins over ours)
    import diffir.checkpoints.sources as W
    from diffir.checkpoints import to_official

    monkeypatch.setattr(W, "WEIGHTS_DIR", tmp_path / "w")
    save_pretrained(random_model("sr"), tmp_path / "w" / "sr")
    assert resolve_weights("sr") == tmp_path / "w" / "sr"
    torch.save({"params_ema": to_official(random_model("sr", seed=3))}, tmp_path / "w" / "sr" / "DiffIRS2-GANx4.pth")
    assert resolve_weights("sr").name == "DiffIRS2-GANx4.pth"


def test_hub_repo_is_used_through_the_local_cache(tmp_path, monkeypatch):
    """``DIFFIR_HUB_REPO`` resolves through ``hf_hub_download``; offline it uses the cache only."""
    import diffir.checkpoints.sources as W
    from diffir import save_pretrained

    monkeypatch.setattr(W, "WEIGHTS_DIR", tmp_path / "none")
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DIFFIR_HUB_REPO", "someone/diffir")
    import huggingface_hub.constants as C

    monkeypatch.setattr(C, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(C, "HF_HUB_OFFLINE", True)
    with pytest.raises(diffir.WeightsNotFound, match="hub repo someone/diffir"):
        W.resolve_weights("deblur")
    # populate the cache the way huggingface_hub lays it out, then resolve offline
    snap = cache / "models--someone--diffir" / "snapshots" / ("0" * 40)
    save_pretrained(random_model("deblur"), snap / "deblur")
    (cache / "models--someone--diffir" / "refs").mkdir(parents=True)
    (cache / "models--someone--diffir" / "refs" / "main").write_text("0" * 40)
    assert W.resolve_weights("deblur") == snap / "deblur"


def test_png_is_returned_for_grey_16_bit(models):
    g = CASES["I;16"]()
    r = restore("sr", png_bytes(Image.fromarray(g)), model=models["sr"], options=Options(seed=0))
    im = Image.open(io.BytesIO(r.png()))
    assert im.mode == "I;16" and im.size == (68, 52)


def test_arrays_are_accepted_as_images(models):
    rgb = u8(photo(32, 48, seed=5))
    a = restore("deblur", rgb, model=models["deblur"], options=Options(seed=1))
    b = restore("deblur", png_bytes(Image.fromarray(rgb)), model=models["deblur"], options=Options(seed=1))
    assert np.array_equal(a.picture.rgb, b.picture.rgb) and a.source.source_format == "array"
    floats = restore("deblur", rgb / 255.0, model=models["deblur"], options=Options(seed=1))
    assert np.allclose(floats.picture.rgb, a.picture.rgb, atol=1e-5)
    deep = restore("deblur", rgb.astype(np.uint16) * 257, model=models["deblur"], options=Options(seed=1))
    assert deep.picture.depth == 16 and np.allclose(deep.picture.rgb, a.picture.rgb, atol=1e-5)
    grey = restore("deblur", rgb[..., 0], model=models["deblur"], options=Options(seed=1))
    assert grey.picture.grey and grey.picture.rgb.shape == (32, 48, 3)
    for bad, words in [(rgb[..., :2], "H×W×3"), (rgb * 2.0, r"\[0, 1\]"), (rgb.astype(np.int32), "uint8")]:
        with pytest.raises(ImageError, match=words):
            restore("deblur", bad, model=models["deblur"])


def test_int8_precision_is_close_to_float32_and_stays_in_its_own_thread(models):
    """``--precision int8`` quantises only the blocks' 1×1 convolutions: close to fp32, not equal;
    another thread running meanwhile stays float32 (the switch is a context variable)."""
    import threading

    import torch.nn.functional as F

    from diffir.inference.forward import autocast
    from diffir.nets.pointwise import int8_pointwise, pointwise

    img = photo(40, 48)
    data = png_bytes(Image.fromarray(u8(img)))
    fp32 = restore("deblur", data, model=models["deblur"], options=Options(seed=3))
    int8 = restore("deblur", data, model=models["deblur"], options=Options(seed=3, precision="int8"))
    a, b = decode_reference(fp32.png()).astype(float), decode_reference(int8.png()).astype(float)
    psnr = 10 * np.log10(255**2 / np.mean((a - b) ** 2))
    # random weights amplify the rounding; on the shipped weights int8 is checked within 0.05 dB of fp32
    # on real photos (test_shipped_weights.py)
    assert 15 < psnr < 99 and "(int8)" in int8.summary()

    x = torch.rand(1, 8, 6, 5).contiguous(memory_format=torch.channels_last)
    w, bias = torch.randn(12, 8, 1, 1), torch.randn(12)
    seen = {}
    with int8_pointwise():
        other = threading.Thread(target=lambda: seen.update(out=pointwise(x, w, bias)))
        other.start()
        other.join()
        mine = pointwise(x, w, bias)
    assert torch.equal(seen["out"], F.conv2d(x, w, bias)) and torch.equal(pointwise(x, w, bias), F.conv2d(x, w, bias))
    assert 0 < (mine - F.conv2d(x, w, bias)).abs().max() < 0.05 * F.conv2d(x, w, bias).abs().max()
    with pytest.raises(diffir.OptionsError, match="int8' is a CPU path"):
        autocast(torch.device("cuda"), "int8")
