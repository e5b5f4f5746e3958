"""The app's layout: a header, one tab per task (a few lines each), bounded queue and launch options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..settings import ROOT, settings
from ..tasks import CONTROLS, TASKS
from .handlers import _LOAD_ERRORS, DEVICE, _forget_original, deblur, inpaint, load_for_painting, super_resolve

EXAMPLES = ROOT / "examples"
CONCURRENCY = "diffir-model"


@dataclass(frozen=True)
class Tab:
    task: str
    blurb: str

    @property
    def title(self) -> str:
        return TASKS[self.task].title

    @property
    def api_name(self) -> str:
        return TASKS[self.task].api_name


TABS = (
    Tab("inpaint", "Remove objects, scratches or text: paint over them and DiffIR fills the hole."),
    Tab("sr", "Four times the width and height, for real-world photos: blur, noise and JPEG are cleaned up too."),
    Tab("deblur", "Undo camera shake and motion blur."),
)


CSS = """
#diffir-header h1 { margin-bottom: 0.1em; }
#diffir-header p { margin-top: 0.2em; color: var(--body-text-color-subdued); }
.diffir-status p { font-size: 0.9em; }
.diffir-missing { border-left: 4px solid #e11d48; padding-left: 0.8em; }
footer { opacity: 0.8; }
"""


def _controls(task: str) -> dict[str, gr.components.Component]:
    c: dict[str, gr.components.Component] = {}
    k = CONTROLS
    with gr.Row():
        c["steps"] = gr.Slider(
            k.steps_range.low,
            k.steps_range.high,
            value=k.steps,
            step=1,
            label="Diffusion steps",
            info="Reverse steps on the image prior; 4 as trained",
        )
        c["tile"] = gr.Slider(
            k.tile_range.special[0],
            k.tile_range.high,
            value=k.tile,
            step=k.tile_range.step,
            label="Tile size (px)",
            info="0 = whole image at once; smaller uses less memory",
        )
    with gr.Row():
        c["seed"] = gr.Number(value=0, precision=0, label="Seed", minimum=k.seed_range.low, maximum=k.seed_range.high)
        c["randomize"] = gr.Checkbox(value=True, label="Random seed", info="The seed used is shown after each run")
    with gr.Accordion("Advanced", open=False):
        c["overlap"] = gr.Slider(
            k.overlap_range.low,
            k.overlap_range.high,
            value=k.overlap,
            step=k.overlap_range.step,
            label="Tile overlap (px)",
            info="Blended overlap between tiles",
        )
        if task == "inpaint":
            c["dilate"] = gr.Slider(
                k.dilate_range.low,
                k.dilate_range.high,
                value=k.dilate,
                step=1,
                label="Grow mask (px)",
                info="Covers soft edges around what you painted",
            )
    return c  # fmt: skip


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
    k = CONTROLS
    if task == "inpaint":
        return lambda editor, progress=gr.Progress(): inpaint(
            editor, None, k.steps, k.tile, k.overlap, 0, False, k.dilate, progress
        )
    fn = super_resolve if task == "sr" else deblur
    return lambda image, progress=gr.Progress(): fn(image, k.steps, k.tile, k.overlap, 0, False, progress)


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
        "max_file_size": settings().max_file_size,
        "theme": gr.themes.Soft(primary_hue="rose", neutral_hue="slate"),
        "css": CSS,
        "show_error": True,
    }


def queue(demo: gr.Blocks) -> gr.Blocks:
    """Bounded queue; the model's pool lets one restoration run at a time (CPU) or a few (GPU)."""
    return demo.queue(max_size=settings().queue_size, default_concurrency_limit=1)


__all__ = ["build_demo", "launch_kwargs", "queue"]
