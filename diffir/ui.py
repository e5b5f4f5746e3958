"""The Gradio web app: one tab per task. The UI never touches tensors; it calls ``diffir.restore``.

Each model loads once per process (``preload_models``, at import time of ``app.py``; on ZeroGPU that
is also where it moves to the GPU). All three endpoints share one concurrency pool, so requests
queue for the model instead of competing for it. Inputs are checked before any model work and
every problem reaches the user as a one-line ``gr.Error``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import spaces
import torch
from PIL import Image

from .imageio import DEFAULT_MAX_PIXELS, ImageError, Picture, read_image, resize_rgb, to_integer, write_atomic
from .pipeline import Options, Restored, get_model, restore
from .weights import CheckpointError, WeightsNotFound

log = logging.getLogger("diffir.ui")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
MAX_PIXELS = int(os.environ.get("DIFFIR_MAX_PIXELS", 16_000_000))
MAX_FILE_SIZE = os.environ.get("DIFFIR_MAX_FILE_SIZE", "50mb")
PREVIEW_MAX_SIDE = 2560
OUTPUT_ROOT = Path(tempfile.gettempdir()) / "diffir-outputs"
OUTPUT_TTL_S = 3600
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CONCURRENCY = "diffir-model"


@dataclass(frozen=True)
class Tab:
    task: str
    title: str
    api_name: str
    blurb: str


TABS = (
    Tab(
        "inpaint",
        "Inpainting",
        "inpaint",
        "Remove objects, scratches or text: paint over them and DiffIR fills the hole.",
    ),
    Tab(
        "sr",
        "Super-resolution ×4",
        "super_resolve",
        "Four times the width and height, for real-world photos: blur, noise and JPEG are cleaned up too.",
    ),
    Tab("deblur", "Motion deblurring", "deblur", "Undo camera shake and motion blur."),
)

_LOAD_ERRORS: dict[str, str] = {}


def preload_models(device: str = DEVICE) -> dict[str, str]:
    """Load (and on a GPU machine move) every task's model once; returns {task: problem} for those
    that could not be loaded, so the app still starts and says what is missing."""
    for tab in TABS:
        try:
            get_model(tab.task, device=device)
            _LOAD_ERRORS.pop(tab.task, None)
        except (WeightsNotFound, CheckpointError, ImageError) as e:
            _LOAD_ERRORS[tab.task] = str(e)
    return dict(_LOAD_ERRORS)


# --------------------------------------------------------------------------------------------------
# Files: per-request folders, previews
# --------------------------------------------------------------------------------------------------


def request_dir() -> Path:
    """A fresh folder for one request's outputs; folders older than an hour are swept."""
    OUTPUT_ROOT.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in OUTPUT_ROOT.iterdir():
        try:
            if now - old.stat().st_mtime > OUTPUT_TTL_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    d = OUTPUT_ROOT / uuid.uuid4().hex
    d.mkdir()
    return d


def _preview(rgb: np.ndarray, alpha: np.ndarray | None, size: tuple[int, int] | None = None) -> Image.Image:
    """8-bit preview for the before/after slider (the download keeps full depth and size)."""
    h, w = rgb.shape[:2]
    if size is None:
        s = min(1.0, PREVIEW_MAX_SIDE / max(h, w))
        size = (max(1, round(w * s)), max(1, round(h * s)))
    if size != (w, h):
        rgb = resize_rgb(rgb, size)
        if alpha is not None:
            from .imageio import resize_alpha

            alpha = resize_alpha(alpha, size)
    chans = [rgb] + ([alpha[..., None]] if alpha is not None else [])
    arr = to_integer(np.concatenate(chans, axis=2), 8)
    return Image.fromarray(arr, "RGBA" if alpha is not None else "RGB")


def save_outputs(result: Restored, name: str) -> tuple[tuple[str, str], str]:
    """Write the before/after previews and the lossless full-resolution PNG into a request folder."""
    d = request_dir()
    out = result.picture
    after = _preview(out.rgb, out.alpha)
    src = result.source
    before = _preview(src.rgb, src.alpha, after.size)  # SR: the input resized to the output size
    before_path, after_path = d / "before.png", d / "after.png"
    before.save(before_path)
    after.save(after_path)
    stem = Path(name).stem or "image"
    full = write_atomic(d / f"{stem}_{result.task}_seed{result.seed}.png", result.png())
    return (str(before_path), str(after_path)), str(full)


# --------------------------------------------------------------------------------------------------
# Handlers (the same functions serve the UI and the named API endpoints)
# --------------------------------------------------------------------------------------------------


def _gpu_seconds(pixels: float, steps: int, tiles: int) -> int:
    """A ZeroGPU reservation from the work: ~6 s/Mpx through DIRformer, per-tile overhead, steps."""
    return int(min(300, 15 + 6 * pixels / 1e6 + 0.5 * tiles + 0.5 * steps))


def _estimate(task: str, image: Any, steps: Any, tile: Any) -> int:
    try:
        path = _file(image.get("background")) if isinstance(image, dict) and "background" in image else _file(image)
        with Image.open(path) as im:
            w, h = im.size
    except Exception:
        return 60
    scale = 4 if task == "sr" else 1
    t = max(64, int(tile or 0)) if tile else max(w, h)
    tiles = max(1, (w // t + 1) * (h // t + 1))
    return _gpu_seconds(w * h * scale * scale, int(steps or 4), tiles)


def _options(steps: Any, tile: Any, overlap: Any, seed: Any, randomize: bool, dilate: Any = 0) -> Options:
    seed_value = None if randomize or seed is None or seed == "" else int(seed)
    return Options(
        steps=int(steps) if steps else None,
        seed=seed_value,
        tile=int(tile or 0),
        overlap=int(overlap or 0),
        device=DEVICE,
        dilate=int(dilate or 0),
        max_pixels=MAX_PIXELS,
    )


def _check_image(path: str | None, what: str = "an image") -> Picture:
    if not path:
        raise gr.Error(f"Upload {what} first.", title="No image")
    try:
        return read_image(path, max_pixels=MAX_PIXELS)
    except ImageError as e:
        raise gr.Error(str(e), title="Cannot read the image") from None


def _model(task: str):
    if task in _LOAD_ERRORS:
        raise gr.Error(_LOAD_ERRORS[task], title="Model not available")
    try:
        return get_model(task, device=DEVICE)
    except (WeightsNotFound, CheckpointError, ImageError) as e:
        raise gr.Error(str(e), title="Model not available") from None


def _progress_cb(progress: gr.Progress) -> Callable[[float, str], None]:
    def cb(fraction: float, message: str) -> None:
        progress(fraction, desc=message)

    return cb


def _run(task: str, picture: Picture, name: str, mask: np.ndarray | None, opts: Options, progress: gr.Progress):
    model = _model(task)
    try:
        result = restore(task, picture, mask=mask, model=model, options=opts, progress=_progress_cb(progress))
    except ImageError as e:
        raise gr.Error(str(e), title="Cannot restore this image") from None
    except Exception as e:  # never a traceback in the UI: log it, say it in one line
        log.exception("restoration failed")
        raise gr.Error(
            f"The restoration failed ({type(e).__name__}: {e}). Try a smaller tile size.", title="Error"
        ) from None
    slider, full = save_outputs(result, name)
    return slider, full, f"**Done.** {result.summary()}", result.seed


def _file(value: Any) -> str | None:
    """A server path from a path or a Gradio file payload ({"path": …, "orig_name": …})."""
    if isinstance(value, dict):
        return value.get("path")
    return value or None


def _name(value: Any) -> str:
    if isinstance(value, dict) and value.get("orig_name"):
        return str(value["orig_name"])
    path = _file(value)
    return Path(path).name if path else "image.png"


@spaces.GPU(duration=lambda image, steps, tile, *a, **k: _estimate("sr", image, steps, tile))
def super_resolve(
    image: str | None,
    steps: float,
    tile: float,
    overlap: float,
    seed: float,
    randomize: bool,
    progress: gr.Progress = gr.Progress(),
):
    """Upscale a photo 4× (real-world SR). Returns (before, after), the full-resolution PNG, a status line and the seed used."""
    picture = _check_image(_file(image))
    return _run("sr", picture, _name(image), None, _options(steps, tile, overlap, seed, randomize), progress)


@spaces.GPU(duration=lambda image, steps, tile, *a, **k: _estimate("deblur", image, steps, tile))
def deblur(
    image: str | None,
    steps: float,
    tile: float,
    overlap: float,
    seed: float,
    randomize: bool,
    progress: gr.Progress = gr.Progress(),
):
    """Remove motion blur. Returns (before, after), the full-resolution PNG, a status line and the seed used."""
    picture = _check_image(_file(image))
    return _run("deblur", picture, _name(image), None, _options(steps, tile, overlap, seed, randomize), progress)


def mask_from_layers(editor: dict | None, size: tuple[int, int]) -> np.ndarray:
    """Union of the painted layers' alpha (True = fill); layers must be at the image's pixel size."""
    layers = (editor or {}).get("layers") or []
    mask = np.zeros((size[1], size[0]), bool)
    for layer in layers:
        if _file(layer) is None:
            continue
        with Image.open(_file(layer)) as im:
            if im.size != size:
                raise gr.Error(
                    f"the mask layer is {im.width}×{im.height} but the image is {size[0]}×{size[1]}; upload the image again.",
                    title="Mask does not fit",
                )
            arr = np.asarray(im.convert("RGBA"))
        painted = arr[..., 3] > 0 if arr[..., 3].min() < 255 else arr[..., :3].mean(axis=2) > 127
        mask |= painted
    if not mask.any():
        raise gr.Error("The mask is empty: paint over the area you want to fill.", title="Nothing to fill")
    return mask


def _same_picture(original: Picture, shown: Picture) -> bool:
    """Is the editor still showing the kept upload (as its 8-bit copy), or something put there since?"""
    if original.size != shown.size:
        return False
    diff = np.abs(to_integer(original.rgb, 8).astype(np.int16) - to_integer(shown.rgb, 8).astype(np.int16))
    return float(diff.mean()) < 2.0 and float(np.percentile(diff, 99)) <= 8


def _original_or_background(editor: dict | None, original: str | None) -> tuple[Picture, Any]:
    """The exact original upload when it is what the editor shows, else the editor's background
    (the browser re-encodes that one to 8-bit RGBA, so the original is preferred)."""
    background = _file((editor or {}).get("background"))
    if not background:
        raise gr.Error("Upload an image first, then paint over what to remove.", title="No image")
    shown = _check_image(background)
    if original:
        try:
            pic = read_image(original, max_pixels=MAX_PIXELS)
            if _same_picture(pic, shown):
                return pic, original
        except ImageError:
            pass
    if shown.alpha is not None and float(shown.alpha.min()) >= 1.0:
        shown = Picture(shown.rgb, None, 8, shown.grey, shown.icc, "RGB", shown.source_format)  # opaque: plain RGB
    return shown, (editor or {}).get("background")


@spaces.GPU(duration=lambda editor, original, steps, tile, *a, **k: _estimate("inpaint", editor, steps, tile))
def inpaint(
    editor: dict | None,
    original: str | None,
    steps: float,
    tile: float,
    overlap: float,
    seed: float,
    randomize: bool,
    dilate: float,
    progress: gr.Progress = gr.Progress(),
):
    """Fill the painted region. ``editor``: {"background": image, "layers": [mask layers], "composite": …}
    (a layer's alpha, or white-on-black brightness, marks the hole). ``original``: the exact upload
    (optional). Returns (before, after), the full-resolution PNG, a status line and the seed used."""
    picture, source = _original_or_background(editor, original)
    mask = mask_from_layers(editor, picture.size)
    opts = _options(steps, tile, overlap, seed, randomize, dilate)
    return _run("inpaint", picture, _name(source), mask, opts, progress)


def _forget_original(why: str) -> Callable[[], tuple[None, str]]:
    def forget() -> tuple[None, str]:
        log.info("inpaint: original upload forgotten (%s)", why)
        return None, ""

    return forget


def load_for_painting(path: str | None):
    """The 'Upload image' button: keep the exact file, show an 8-bit upright copy in the editor."""
    if not path:
        return gr.update(), None, ""
    pic = _check_image(path)
    d = request_dir()
    shown = d / "background.png"
    _preview(pic.rgb, pic.alpha, pic.size).save(shown)
    info = f"{Path(path).name} · {pic.describe()} · kept as uploaded (alpha, 16-bit, EXIF, ICC)"
    return {"background": str(shown), "layers": [], "composite": str(shown)}, path, info


# --------------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------------

CSS = """
#diffir-header h1 { margin-bottom: 0.1em; }
#diffir-header p { margin-top: 0.2em; color: var(--body-text-color-subdued); }
.diffir-status p { font-size: 0.9em; }
.diffir-missing { border-left: 4px solid #e11d48; padding-left: 0.8em; }
footer { opacity: 0.8; }
"""


def _controls(task: str) -> dict[str, gr.components.Component]:
    c: dict[str, gr.components.Component] = {}
    with gr.Row():
        c["steps"] = gr.Slider(
            1, 4, value=4, step=1, label="Diffusion steps", info="Reverse steps on the image prior; 4 as trained"
        )
        c["tile"] = gr.Slider(
            0,
            1024,
            value=512,
            step=64,
            label="Tile size (px)",
            info="0 = whole image at once; smaller uses less memory",
        )
    with gr.Row():
        c["seed"] = gr.Number(value=0, precision=0, label="Seed", minimum=0, maximum=2**31 - 1)
        c["randomize"] = gr.Checkbox(value=True, label="Random seed", info="The seed used is shown after each run")
    with gr.Accordion("Advanced", open=False):
        c["overlap"] = gr.Slider(
            0, 128, value=32, step=8, label="Tile overlap (px)", info="Blended overlap between tiles"
        )
        if task == "inpaint":
            c["dilate"] = gr.Slider(
                0, 32, value=4, step=1, label="Grow mask (px)", info="Covers soft edges around what you painted"
            )
    return c


def _outputs(tab: Tab) -> tuple[gr.ImageSlider, gr.File, gr.Markdown]:
    slider = gr.ImageSlider(
        label="Before / after",
        type="filepath",
        format="png",
        image_mode=None,
        elem_id=f"{tab.task}-slider",
        max_height=640,
    )
    download = gr.File(
        label="Full-resolution PNG (lossless: keeps alpha, 16-bit and colour profile)", elem_id=f"{tab.task}-download"
    )
    status = gr.Markdown("", elem_id=f"{tab.task}-status", elem_classes="diffir-status")
    return slider, download, status


def _examples(task: str) -> list[list[Any]]:
    folder = EXAMPLES / task
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.glob("*.png") if "_mask" not in p.stem)
    if task != "inpaint":
        return [[str(p)] for p in files]
    rows = []
    for p in files:
        m = p.with_name(f"{p.stem}_mask.png")
        if m.is_file():
            rows.append([{"background": str(p), "layers": [str(m)], "composite": None}])
    return rows


def _example_fn(task: str) -> Callable[..., Any]:
    """Examples run with the default controls and a fixed seed, so their cached result is reproducible."""
    if task == "inpaint":
        return lambda editor, progress=gr.Progress(): inpaint(editor, None, 4, 512, 32, 0, False, 4, progress)
    fn = super_resolve if task == "sr" else deblur
    return lambda image, progress=gr.Progress(): fn(image, 4, 512, 32, 0, False, progress)


def build_demo() -> gr.Blocks:
    missing = dict(_LOAD_ERRORS)
    with gr.Blocks(title="DiffIR image restoration") as demo:
        with gr.Column(elem_id="diffir-header"):
            gr.Markdown(
                "# DiffIR image restoration\n"
                "Inpainting, 4× super-resolution and motion deblurring with **DiffIR** "
                "([Xia et al., ICCV 2023](https://arxiv.org/abs/2303.09472)): a compact image prior, recovered "
                "by a few diffusion steps, steers a transformer restorer. "
                f"Running on **{DEVICE.upper()}**; outputs are lossless PNG."
            )
        if missing:
            gr.Markdown("\n".join(f"**{t}**: {msg}" for t, msg in missing.items()), elem_classes="diffir-missing")
        with gr.Tabs():
            for tab in TABS:
                with gr.Tab(tab.title, id=tab.task, elem_id=f"tab-{tab.task}"):
                    gr.Markdown(tab.blurb)
                    with gr.Row(equal_height=False):
                        with gr.Column(scale=1):
                            if tab.task == "inpaint":
                                upload = gr.UploadButton(
                                    "Upload image",
                                    file_types=["image"],
                                    type="filepath",
                                    variant="secondary",
                                    elem_id="inpaint-upload",
                                )
                                editor = gr.ImageEditor(
                                    label="Paint over what to remove",
                                    type="filepath",
                                    image_mode="RGBA",
                                    format="png",
                                    sources=("upload", "clipboard"),
                                    brush=gr.Brush(colors=["#ff2e63"], color_mode="fixed", default_size=24),
                                    eraser=gr.Eraser(default_size=24),
                                    layers=False,
                                    transforms=(),
                                    height=520,
                                    elem_id="inpaint-editor",
                                )
                                original = gr.State(None)
                                source_info = gr.Markdown("", elem_classes="diffir-status", elem_id="inpaint-source")
                                inputs = [editor, original]
                            else:
                                image = gr.Image(
                                    label="Photo", type="filepath", image_mode=None, format="png",
                                    sources=["upload", "clipboard", "webcam"], height=420, elem_id=f"{tab.task}-input",
                                )  # fmt: skip
                                inputs = [image]
                            c = _controls(tab.task)
                            button = gr.Button("Restore", variant="primary", elem_id=f"{tab.task}-run")
                        with gr.Column(scale=1):
                            slider, download, status = _outputs(tab)
                    controls = [c["steps"], c["tile"], c["overlap"], c["seed"], c["randomize"]]
                    if tab.task == "inpaint":
                        controls.append(c["dilate"])
                    fn = {"inpaint": inpaint, "sr": super_resolve, "deblur": deblur}[tab.task]
                    outputs = [slider, download, status, c["seed"]]
                    button.click(
                        fn,
                        inputs=inputs + controls,
                        outputs=outputs,
                        api_name=tab.api_name,
                        concurrency_id=CONCURRENCY,
                        concurrency_limit=1,
                        preprocess=False,  # raw uploads: diffir.imageio decodes (and explains) every file itself
                    )
                    if tab.task == "inpaint":
                        upload.upload(
                            load_for_painting,
                            inputs=upload,
                            outputs=[editor, original, source_info],
                            api_visibility="private",
                        )
                        # (the editor fires "upload" for programmatic values too, so direct uploads are caught by
                        # comparing contents in _original_or_background instead)
                        editor.clear(
                            _forget_original("editor cleared"),
                            outputs=[original, source_info],
                            api_visibility="private",
                        )
                    rows = _examples(tab.task)
                    if rows:
                        ex = gr.Examples(
                            rows,
                            inputs=inputs[:1],
                            outputs=outputs,
                            fn=_example_fn(tab.task),
                            cache_examples=True,
                            cache_mode="lazy",
                            label="Examples (validation photos, degraded with our own degradations)",
                            examples_per_page=6,
                        )
                        if tab.task == "inpaint":
                            ex.dataset.click(
                                _forget_original("example"), outputs=[original, source_info], api_visibility="private"
                            )
        gr.Markdown(
            "The shipped weights are small models trained on this project's CPUs from 60 licensed photographs: "
            "modest quality, measured in `weights/*/README.md`. Official DiffIR checkpoints dropped into "
            "`weights/<task>/` are used instead. "
            "[Code](https://github.com/Zj-BinXia/DiffIR) of the paper."
        )
    return demo


def launch_kwargs() -> dict[str, Any]:
    """Arguments for ``demo.launch``: server name/port come from GRADIO_SERVER_NAME/PORT."""
    return {
        "max_file_size": MAX_FILE_SIZE,
        "theme": gr.themes.Soft(primary_hue="rose", neutral_hue="slate"),
        "css": CSS,
        "show_error": True,
    }


def queue(demo: gr.Blocks) -> gr.Blocks:
    """Bounded queue; the model's pool lets one restoration run at a time (CPU) or a few (GPU)."""
    return demo.queue(max_size=int(os.environ.get("DIFFIR_QUEUE_SIZE", 32)), default_concurrency_limit=1)


__all__ = ["DEFAULT_MAX_PIXELS", "build_demo", "launch_kwargs", "preload_models", "queue"]
