"""Image I/O that loses nothing: modes, bit depth, alpha, EXIF orientation and ICC profiles.

``read_image`` turns any file Pillow can open into a ``Picture``: float32 RGB in [0, 1] to restore,
plus what must come back unchanged (alpha, grey mode, 16-bit depth, ICC profile). ``encode_png``
writes a restored ``Picture`` as a PNG in the input's own mode and depth.

Pillow decodes 48/64-bit RGB(A) PNG and TIFF files as 8-bit RGB (the low byte is lost), so those
are decoded with OpenCV, which reads and writes 16-bit colour at full depth.
"""

from __future__ import annotations

import io
import os
import re
import struct
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from ..errors import ImageError

DEFAULT_MAX_PIXELS = 40_000_000
MIN_SIDE = 8
MAX_ASPECT = 50.0
READABLE = "PNG, JPEG, WebP, TIFF, BMP or GIF"


@dataclass(frozen=True)
class Picture:
    """An image split into what DiffIR restores and what must be kept as it was.

    ``rgb``: H×W×3 float32 in [0, 1] (grey images are replicated to three channels);
    ``alpha``: H×W float32 in [0, 1] or None; ``depth``: 8 or 16 bits per channel;
    ``grey``: write back as L / LA; ``icc``: the ICC profile to embed in the output.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    depth: int = 8
    grey: bool = False
    icc: bytes | None = None
    source_mode: str = "RGB"
    source_format: str = "PNG"

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.rgb.shape[1], self.rgb.shape[0]

    @property
    def mode(self) -> str:
        """Output mode as a short description, e.g. 'RGBA 16-bit'."""
        base = ("LA" if self.alpha is not None else "L") if self.grey else ("RGBA" if self.alpha is not None else "RGB")
        return f"{base} {self.depth}-bit"

    def describe(self) -> str:
        w, h = self.size
        src = f"{self.source_format} {self.source_mode}"
        return f"{w}×{h} {src}" + (" (16-bit)" if self.depth == 16 and "16" not in self.source_mode else "")


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


def _png_bit_depth(data: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG header, or None if not a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 26:
        return None
    return data[24], data[25]


def _is_deep_colour(im: Image.Image, data: bytes) -> bool:
    """True when Pillow would truncate a 16-bit-per-channel colour image to 8 bits."""
    if im.format == "PNG":
        info = _png_bit_depth(data)
        return info is not None and info[0] == 16 and info[1] in (2, 4, 6)  # RGB, LA, RGBA at 16 bit
    if im.format == "TIFF":
        bits = im.tag_v2.get(258)
        return isinstance(bits, tuple) and len(bits) >= 3 and bits[0] == 16
    return False


def _decode_deep(data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3:
        raise ImageError("could not decode the 16-bit colour image")
    rgb = arr[..., 2::-1].astype(np.float32) / 65535
    alpha = arr[..., 3].astype(np.float32) / 65535 if arr.shape[2] == 4 else None
    return rgb, alpha


def _exif_orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:
        return 1


_ORIENT = {  # EXIF orientation -> numpy transform that makes the image upright
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 1)[::-1],
    8: lambda a: np.rot90(a, 1),
}


def _check_size(width: int, height: int, max_pixels: int, scale: int = 1) -> None:
    """The pixel limit (on the result: ×``scale``² for super-resolution), minimum side and aspect."""
    pixels = width * height
    if pixels * scale * scale > max_pixels:
        if scale == 1:
            raise ImageError(
                f"the image is {pixels / 1e6:.1f} Mpx ({width}×{height}); the limit is {max_pixels / 1e6:g} Mpx. "
                "Downscale it first, or raise the limit (--max-pixels / DIFFIR_MAX_PIXELS)."
            )
        raise ImageError(
            f"the image is {pixels / 1e6:.3g} Mpx ({width}×{height}), so the ×{scale} result would be "
            f"{pixels * scale * scale / 1e6:.3g} Mpx; the limit is {max_pixels / 1e6:g} Mpx for the result. "
            f"Downscale it to at most {max_pixels / scale / scale / 1e6:.2g} Mpx first, or raise the limit "
            "(--max-pixels / DIFFIR_MAX_PIXELS)."
        )
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"the image is {width}×{height}; each side must be at least {MIN_SIDE} px.")
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ImageError(
            f"the image is {width}×{height}, an aspect ratio over {MAX_ASPECT:.0f}:1; crop it to a normal shape first."
        )


def _cmyk_to_rgb(im: Image.Image) -> tuple[Image.Image, bytes | None]:
    """CMYK through its ICC profile to sRGB where it has one (PNG cannot hold CMYK)."""
    icc = im.info.get("icc_profile")
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            return ImageCms.profileToProfile(im, src, dst, outputMode="RGB"), _srgb_icc()
        except (ImageCms.PyCMSError, OSError):
            pass
    return im.convert("RGB"), None


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _source_bytes(source: str | os.PathLike[str] | bytes | Image.Image) -> bytes:
    """The encoded file: a path's bytes, the bytes themselves, or a PIL image as PNG."""
    if isinstance(source, Image.Image):
        buf = io.BytesIO()
        source.save(buf, format="PNG")
        return buf.getvalue()
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{path.name}: no such file")
        data = path.read_bytes()
    if not data:
        raise ImageError("the file is empty (0 bytes); upload the image again.")
    return data


def _open(data: bytes, max_pixels: int, scale: int) -> Image.Image:
    """Open and decode the first frame, checking the declared size before decoding anything."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            _check_size(im.width, im.height, max_pixels, scale)
            im.seek(0)
            im.load()
        return im
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        declared = f"a {int(found[1]) / 1e6:.1f} Mpx" if found else "an enormous"
        raise ImageError(
            f"the file declares {declared} image, beyond the decoder's safety limit "
            f"({2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} Mpx; a decompression bomb?), so it is not decoded."
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"this is not an image file that can be read; use {READABLE}.") from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as e:
        raise ImageError(f"the image file is damaged or truncated ({e}); re-export or re-upload it.") from None


def _to_8bit_modes(im: Image.Image) -> tuple[Image.Image, bytes | None]:
    """Any other 8-bit mode as RGB, RGBA, L or LA (CMYK through its profile); returns (image, ICC)."""
    icc = im.info.get("icc_profile") or None
    if im.mode == "CMYK":
        return _cmyk_to_rgb(im)
    if im.mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB"), icc
    if im.mode == "1":
        return im.convert("L"), icc
    if im.mode == "PA":
        return im.convert("RGBA"), icc
    if im.mode not in ("RGB", "RGBA", "L", "LA"):
        return im.convert("RGBA" if "A" in im.mode else "RGB"), icc
    return im, icc


def _decode_8bit(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None, bool, bytes | None]:
    """(rgb, alpha, grey, icc) of an 8-bit image."""
    im, icc = _to_8bit_modes(im)
    arr = np.asarray(im).astype(np.float32) / 255
    if im.mode in ("L", "LA"):
        g = arr if arr.ndim == 2 else arr[..., 0]
        return np.repeat(g[..., None], 3, axis=2), (arr[..., 1] if im.mode == "LA" else None), True, icc
    return arr[..., :3], (arr[..., 3] if im.mode == "RGBA" else None), False, icc


def _decode_grey_deep(im: Image.Image) -> tuple[np.ndarray, int]:
    """(rgb, depth) of a 16/32-bit integer or float grey image."""
    if im.mode == "F":
        g = np.clip(np.asarray(im, np.float32), 0, 1)
        return np.repeat(g[..., None], 3, axis=2), 16
    arr = np.asarray(im).astype(np.float64)
    hi = 65535.0 if im.mode != "I" or arr.max() > 255 else 255.0
    g = np.clip(arr / hi, 0, 1).astype(np.float32)
    return np.repeat(g[..., None], 3, axis=2), 16 if hi > 255 else 8


def picture_from_array(arr: np.ndarray, *, max_pixels: int = DEFAULT_MAX_PIXELS, scale: int = 1) -> Picture:
    """A ``Picture`` of an H×W (grey), H×W×3 (RGB) or H×W×4 (RGBA) array: uint8, uint16 (16-bit
    output) or floats in [0, 1]; what ``numpy``, OpenCV (after BGR → RGB) and PIL users hold."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(f"an image array must be H×W, H×W×3 or H×W×4; this one is {'×'.join(map(str, arr.shape))}.")
    _check_size(arr.shape[1], arr.shape[0], max_pixels, scale)
    if arr.dtype in (np.uint8, np.uint16):
        depth, x = (16, arr / 65535.0) if arr.dtype == np.uint16 else (8, arr / 255.0)
    elif np.issubdtype(arr.dtype, np.floating):
        depth, x = 8, arr.astype(np.float32)
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise ImageError("a float image array must hold values in [0, 1] (no NaN); scale it first.")
    else:
        raise ImageError(f"an image array must be uint8, uint16 or float in [0, 1], not {arr.dtype}.")
    x = np.asarray(x, np.float32)
    grey = x.ndim == 2
    rgb = np.repeat(x[..., None], 3, axis=2) if grey else x[..., :3]
    alpha = x[..., 3] if x.ndim == 3 and x.shape[2] == 4 else None
    mode = ("L" if grey else "RGBA" if alpha is not None else "RGB") + (";16" if depth == 16 else "")
    return Picture(np.ascontiguousarray(rgb), alpha, depth, grey, None, mode, "array")


def read_image(
    source: str | os.PathLike[str] | bytes | Image.Image | np.ndarray,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    scale: int = 1,
) -> Picture:
    """Decode any image Pillow reads (first frame of animations), upright per EXIF, as a ``Picture``;
    or take an array as it is (``picture_from_array``).

    ``scale``: the result will be this many times larger per side (SR), and ``max_pixels`` limits
    the result, so an oversized input is refused from its header, before it is decoded."""
    if isinstance(source, np.ndarray):
        return picture_from_array(source, max_pixels=max_pixels, scale=scale)
    data = _source_bytes(source)
    im = _open(data, max_pixels, scale)
    fmt = im.format or "PNG"
    source_mode = im.mode
    orientation = _exif_orientation(im)
    icc = im.info.get("icc_profile") or None
    alpha, depth, grey = None, 8, False
    if _is_deep_colour(im, data):
        rgb, alpha = _decode_deep(data)
        depth, grey = 16, _png_bit_depth(data) == (16, 4)
        source_mode = ("LA" if grey else "RGBA" if alpha is not None else "RGB") + ";16"
    elif im.mode in ("I;16", "I;16B", "I;16L", "I", "I;16N", "F"):
        (rgb, depth), grey = _decode_grey_deep(im), True
    else:
        rgb, alpha, grey, icc = _decode_8bit(im)
    if orientation in _ORIENT:
        rgb = np.ascontiguousarray(_ORIENT[orientation](rgb))
        alpha = np.ascontiguousarray(_ORIENT[orientation](alpha)) if alpha is not None else None
    if alpha is not None and float(alpha.min()) >= 1.0:
        alpha = None if source_mode in ("P",) else alpha  # an opaque palette image is plain RGB
    return Picture(np.ascontiguousarray(rgb, np.float32), alpha, depth, grey, icc, source_mode, fmt)


def mask_from_image(
    source: str | os.PathLike[str] | bytes | Image.Image | np.ndarray,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str = "the mask",
) -> np.ndarray:
    """Binary hole mask (H×W bool, True = fill) from any image: its alpha where it has a partly
    transparent alpha (painted strokes), else its brightness > 50% (white-on-black masks).

    A mask that cannot be read raises the same ``ImageError`` as an image, prefixed by ``name`` so
    the user knows it is the mask (not the photo) that is wrong."""
    if isinstance(source, np.ndarray):
        arr = source.astype(np.float32)
        if arr.ndim == 3:
            arr = arr[..., 3] if arr.shape[2] == 4 else arr[..., :3].mean(axis=2)
        return arr > (0.5 if arr.max() <= 1.0 else 127.5)
    try:
        pic = read_image(source, max_pixels=max_pixels)
    except ImageError as e:
        raise ImageError(f"{name}: {e}") from None
    if pic.alpha is not None and float(pic.alpha.min()) < 1.0:
        return pic.alpha > 0
    return pic.rgb.mean(axis=2) > 0.5


def mask_layer(
    source: str | os.PathLike[str] | bytes, size: tuple[int, int], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """A painted layer of the app's editor as a hole mask, at the image's ``size`` (width, height).

    Read like any image (a corrupt file or a decompression bomb gets the same clear ``ImageError``,
    never a server path), then checked to fit the image."""
    mask = mask_from_image(source, max_pixels=max_pixels, name="the mask layer")
    if mask.shape != (size[1], size[0]):
        raise ImageError(
            f"the mask layer is {mask.shape[1]}×{mask.shape[0]} but the image is {size[0]}×{size[1]}; "
            "upload the image again."
        )
    return mask


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def to_integer(x: np.ndarray, depth: int) -> np.ndarray:
    """[0, 1] floats to uint8/uint16, clamped and rounded (as BasicSR's tensor2img)."""
    top = 65535 if depth == 16 else 255
    return np.rint(np.clip(x, 0, 1) * top).astype(np.uint16 if depth == 16 else np.uint8)


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma, as Pillow's RGB → L."""
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def picture_to_array(pic: Picture) -> np.ndarray:
    """The integer array the PNG will hold: H×W (L), H×W×2 (LA), H×W×3 or H×W×4."""
    colour = to_grey(pic.rgb)[..., None] if pic.grey else pic.rgb
    chans = [colour] + ([pic.alpha[..., None]] if pic.alpha is not None else [])
    arr = to_integer(np.concatenate(chans, axis=2), pic.depth)
    return arr[..., 0] if arr.shape[2] == 1 else arr


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _with_icc(png: bytes, icc: bytes) -> bytes:
    """Insert an iCCP chunk right after IHDR (OpenCV's PNG writer has no ICC option)."""
    chunk = _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    ihdr_end = 8 + 4 + 4 + 13 + 4
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def _encode_la16(arr: np.ndarray, icc: bytes | None) -> bytes:
    """Minimal PNG writer for 16-bit grey + alpha (colour type 4), rows unfiltered."""
    h, w = arr.shape[:2]
    rows = np.ascontiguousarray(arr.astype(">u2")).view(np.uint8).reshape(h, w * 4)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()
    png = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0))
    png += _png_chunk(b"IDAT", zlib.compress(raw, 6)) + _png_chunk(b"IEND", b"")
    return _with_icc(png, icc) if icc else png


PNG_LEVEL = 3
"""zlib level of colour PNGs, written by libpng (OpenCV): a 1024² photo in 0.27 s, 9 % larger than
Pillow's level 6, which takes 0.57 s (the SR output is encoded on every request)."""


def encode_array_png(arr: np.ndarray, depth: int, icc: bytes | None = None) -> bytes:
    """PNG bytes of an integer array from ``picture_to_array``."""
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        bgr = arr[..., [2, 1, 0, 3][: arr.shape[2]]]
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(bgr), [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
        if not ok:
            raise ImageError(f"could not encode the {depth}-bit PNG")
        data = buf.tobytes()
        return _with_icc(data, icc) if icc else data
    if depth == 16 and arr.ndim == 3:  # 16-bit LA: valid PNG that neither Pillow nor OpenCV writes
        return _encode_la16(arr, icc)
    if depth == 16:
        im = Image.fromarray(arr.astype(np.uint16))  # mode I;16
    else:
        mode = "L" if arr.ndim == 2 else "LA"
        im = Image.fromarray(arr, mode=mode)
    buf = io.BytesIO()
    im.save(buf, format="PNG", icc_profile=icc, compress_level=6)
    return buf.getvalue()


def encode_png(pic: Picture) -> bytes:
    return encode_array_png(picture_to_array(pic), pic.depth, pic.icc)


def with_rgb(pic: Picture, rgb: np.ndarray, alpha: np.ndarray | None = None) -> Picture:
    """The same picture (mode, depth, profile) with new colour and, if given, new alpha."""
    return replace(pic, rgb=rgb.astype(np.float32), alpha=alpha if alpha is not None else pic.alpha)


def resize_alpha(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Alpha for an up-scaled image: Lanczos (sharp edges, no blocky steps), clamped to [0, 1]."""
    w, h = size
    return np.clip(cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LANCZOS4), 0, 1)


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-free preview resize (bicubic) used for before/after comparisons."""
    w, h = size
    return np.clip(cv2.resize(rgb, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)
