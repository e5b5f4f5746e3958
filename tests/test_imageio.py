"""Image I/O loses nothing: every mode round-trips pixel-exactly; bad files give one clear message."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from diffir.inference.imageio import ImageError, encode_png, mask_from_image, read_image

from .helpers import png_bytes

RNG = np.random.default_rng(0)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def decode_reference(data: bytes) -> np.ndarray:
    """Independent decoder for checking outputs: OpenCV for 16-bit colour, Pillow otherwise."""
    if data[24] == 16 and data[25] in (2, 6):
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        return arr[..., [2, 1, 0, 3][: arr.shape[2]]]
    if data[24] == 16 and data[25] == 4:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        return arr[..., [0, 3]]
    return np.asarray(Image.open(io.BytesIO(data)))


def deep_png(arr: np.ndarray) -> bytes:
    """16-bit RGB/RGBA PNG via OpenCV (RGB order in, BGR on disk)."""
    ok, buf = cv2.imencode(".png", arr[..., [2, 1, 0, 3][: arr.shape[2]]])
    assert ok
    return buf.tobytes()


def la16_png(arr: np.ndarray) -> bytes:
    h, w = arr.shape[:2]

    def chunk(k: bytes, b: bytes) -> bytes:
        return struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


CASES = {
    "L": lambda: RNG.integers(0, 256, (13, 17), dtype=np.uint8),
    "LA": lambda: RNG.integers(0, 256, (13, 17, 2), dtype=np.uint8),
    "RGB": lambda: RNG.integers(0, 256, (13, 17, 3), dtype=np.uint8),
    "RGBA": lambda: RNG.integers(0, 256, (13, 17, 4), dtype=np.uint8),
    "I;16": lambda: RNG.integers(0, 65536, (13, 17), dtype=np.uint16),
    "RGB;16": lambda: RNG.integers(0, 65536, (13, 17, 3), dtype=np.uint16),
    "RGBA;16": lambda: RNG.integers(0, 65536, (13, 17, 4), dtype=np.uint16),
    "LA;16": lambda: RNG.integers(0, 65536, (13, 17, 2), dtype=np.uint16),
}


def encode_case(mode: str, arr: np.ndarray) -> bytes:
    if mode in ("RGB;16", "RGBA;16"):
        return deep_png(arr)
    if mode == "LA;16":
        return la16_png(arr)
    return png_bytes(Image.fromarray(arr, mode=mode))


@pytest.mark.parametrize("mode", list(CASES))
def test_modes_round_trip_pixel_exact(mode):
    arr = CASES[mode]()
    pic = read_image(encode_case(mode, arr))
    assert pic.depth == (16 if "16" in mode else 8)
    assert pic.grey == mode.startswith("L") or (mode == "I;16" and pic.grey)
    assert (pic.alpha is not None) == ("A" in mode)
    out = encode_png(pic)
    np.testing.assert_array_equal(decode_reference(out), arr)


def test_pillow_truncates_48_bit_png_but_we_do_not():
    arr = CASES["RGB;16"]()
    data = deep_png(arr)
    assert np.asarray(Image.open(io.BytesIO(data))).dtype == np.uint8  # what Pillow alone would give
    pic = read_image(data)
    np.testing.assert_array_equal(np.rint(pic.rgb * 65535).astype(np.uint16), arr)


def test_palette_images_become_rgb_or_rgba():
    p = Image.fromarray(CASES["RGB"]()).quantize(16)
    pic = read_image(png_bytes(p))
    assert pic.alpha is None and not pic.grey
    np.testing.assert_array_equal(decode_reference(encode_png(pic)), np.asarray(p.convert("RGB")))
    p.info["transparency"] = 3
    pic = read_image(png_bytes(p, transparency=3))
    assert pic.alpha is not None
    np.testing.assert_array_equal(decode_reference(encode_png(pic)), np.asarray(p.convert("RGBA")))


def test_icc_profile_is_kept_8_and_16_bit():
    rgb = Image.fromarray(CASES["RGB"]())
    pic = read_image(png_bytes(rgb, icc_profile=SRGB))
    assert Image.open(io.BytesIO(encode_png(pic))).info["icc_profile"] == SRGB
    from diffir.inference.imageio import _with_icc

    data = _with_icc(deep_png(CASES["RGB;16"]()), SRGB)
    pic = read_image(data)
    assert pic.depth == 16 and pic.icc == SRGB
    out = encode_png(pic)
    assert Image.open(io.BytesIO(out)).info["icc_profile"] == SRGB
    np.testing.assert_array_equal(decode_reference(out), decode_reference(data))


def test_exif_orientation_applied_once():
    arr = CASES["RGB"]()
    im = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    pic = read_image(png_bytes(im, exif=exif))
    np.testing.assert_array_equal(decode_reference(encode_png(pic)), np.rot90(arr, -1))
    assert pic.size == (13, 17)


def test_cmyk_converted_to_rgb(monkeypatch):
    cmyk = Image.fromarray(RNG.integers(0, 256, (9, 11, 4), dtype=np.uint8), mode="CMYK")
    buf = io.BytesIO()
    cmyk.save(buf, format="TIFF")
    pic = read_image(buf.getvalue())
    np.testing.assert_array_equal(decode_reference(encode_png(pic)), np.asarray(cmyk.convert("RGB")))
    # with an embedded profile the ICC transform is used (and a broken profile falls back)
    seen = {}

    def fake(im, src, dst, outputMode):
        seen["src"] = src
        return im.convert("RGB")

    monkeypatch.setattr(ImageCms, "profileToProfile", fake)
    buf = io.BytesIO()
    cmyk.save(buf, format="TIFF", icc_profile=SRGB)
    pic = read_image(buf.getvalue())
    assert "src" in seen and pic.icc is not None


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "TIFF", "BMP"])
def test_common_formats(fmt):
    arr = CASES["RGB"]()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    pic = read_image(buf.getvalue())
    assert pic.size == (17, 13) and pic.source_format == fmt
    if fmt != "JPEG":
        np.testing.assert_array_equal(decode_reference(encode_png(pic)), arr)


def test_gif_first_frame():
    frames = [Image.fromarray(np.full((10, 12, 3), v, np.uint8)) for v in (10, 200)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    pic = read_image(buf.getvalue())
    assert abs(float(pic.rgb.mean()) * 255 - 10) < 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, not an image", "not an image file"),
        (png_bytes(Image.fromarray(CASES["RGB"]()))[:60], "damaged or truncated"),
    ],
)
def test_bad_files(data, message):
    with pytest.raises(ImageError, match=message):
        read_image(data)


def test_size_limits_and_bombs():
    with pytest.raises(ImageError, match=r"0.0 Mpx \(17×13\); the limit"):
        read_image(png_bytes(Image.fromarray(CASES["RGB"]())), max_pixels=100)
    bomb = png_bytes(Image.new("1", (20000, 20000)))
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageError, match="400.0 Mpx"):
        read_image(bomb)
    with pytest.raises(ImageError, match="declares a 400.0 Mpx image, beyond the decoder's safety limit"):
        read_image(bomb, max_pixels=10**10)
    with pytest.raises(ImageError, match="aspect ratio"):
        read_image(png_bytes(Image.new("RGB", (2000, 10))))
    with pytest.raises(ImageError, match="at least 8 px"):
        read_image(png_bytes(Image.new("RGB", (4, 4))))


def test_mask_from_alpha_or_brightness():
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[2:5, 3:6] = (255, 0, 0, 255)
    m = mask_from_image(png_bytes(Image.fromarray(rgba, "RGBA")))
    assert m.sum() == 9 and m[2:5, 3:6].all()
    grey = np.zeros((10, 10), np.uint8)
    grey[:, :4] = 255
    grey[:, 4] = 100  # below half: known
    assert mask_from_image(png_bytes(Image.fromarray(grey))).sum() == 40


def test_written_files_get_the_usual_permissions(tmp_path):
    from diffir.files import UMASK, write_atomic

    out = write_atomic(tmp_path / "out.png", b"data")
    assert out.read_bytes() == b"data" and (out.stat().st_mode & 0o777) == 0o666 & ~UMASK
    assert not list(tmp_path.glob("*.part"))
