"""One tab's components: its input (the inpainting editor or a photo), controls, Restore/Cancel,
the before/after result (and for ×4 a close-up), chaining buttons and examples."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from ..tasks import CONTROLS, TASKS, Style
from . import examples

# No brush before the picture is there: while the editor waits for its new image (Gradio's
# loading overlay is up), strokes would land on a canvas that is about to be replaced.
CSS = """
#diffir-header h1 { margin-bottom: 0.1em; }
#diffir-header p { margin-top: 0.2em; color: var(--body-text-color-subdued); }
.diffir-status p { font-size: 0.9em; }
.diffir-info { cursor: help; color: var(--body-text-color-subdued); }
.diffir-missing { border-left: 4px solid #e11d48; padding-left: 0.8em; }
#inpaint-editor:has(.wrap.full:not(.hide)) { pointer-events: none; }
#inpaint-editor:has(.wrap.full:not(.hide)) canvas { opacity: 0.4; }
.diffir-chain button { min-width: 0; }
@media (max-width: 640px) {
  #inpaint-editor { height: calc(75vw + 80px) !important; }
  .tab-wrapper button[role="tab"] { padding-left: 0.6em; padding-right: 0.6em; }
}
footer { opacity: 0.8; }
"""
DISMISS_TOASTS = "() => { document.querySelectorAll('.toast-close').forEach((b) => b.click()); return []; }"


@dataclass
class TabUI:
    """The components other tabs (chaining) and the event wiring need."""

    task: str
    input: Any
    run: gr.Button
    cancel: gr.Button
    slider: gr.ImageSlider
    download: gr.File
    status: gr.Markdown
    controls: dict[str, Any]
    chain_row: gr.Row
    chain: dict[str, gr.Button] = field(default_factory=dict)
    original: gr.State | None = None
    marked: gr.State | None = None  # an example's area to fill (inputs.marked_value)
    source_info: gr.Markdown | None = None
    upload: gr.UploadButton | None = None
    closeup: gr.ImageSlider | None = None
    dataset: gr.Dataset | None = None
    shown: list[examples.Example] = field(default_factory=list)


def controls(task: str, styles: tuple[Style, ...]) -> dict[str, Any]:
    """The look (where several of the task's models are there to choose), steps, tile, seed;
    overlap (and for inpainting the mask growth) under Advanced."""
    c: dict[str, Any] = {}
    k = CONTROLS
    if len(styles) > 1:  # one tab, several trained models (SR: faithful / sharp)
        c["style"] = gr.Radio(
            [(s.label, s.name) for s in styles],
            value=styles[0].name,
            label="Look",
            info=" · ".join(f"{s.label}: {s.info}" for s in styles),
            elem_id=f"{task}-style",
        )
    with gr.Row():
        c["steps"] = gr.Slider(
            k.steps_range.low,
            k.steps_range.high,
            value=k.steps,
            step=1,
            label="Quality steps",
            info="More steps refine the result a little more; 4 is what the model was trained for",
        )
        c["tile"] = gr.Slider(
            k.tile_range.special[0],
            k.tile_range.high,
            value=k.tile,
            step=k.tile_range.step,
            label="Tile size (px)",
            info="Big photos are done piece by piece; 0 = all at once",
            elem_id=f"{task}-tile",
        )
    with gr.Row():
        c["seed"] = gr.Number(
            value=0,
            precision=0,
            label="Seed",
            minimum=k.seed_range.low,
            maximum=k.seed_range.high,
            info="The same seed and settings give the same result",
            elem_id=f"{task}-seed",
        )
        c["randomize"] = gr.Checkbox(
            value=True, label="Random seed", info="The seed used is shown after each run", elem_id=f"{task}-random"
        )
    with gr.Accordion("Advanced", open=False):
        c["overlap"] = gr.Slider(
            k.overlap_range.low,
            k.overlap_range.high,
            value=k.overlap,
            step=k.overlap_range.step,
            label="Tile overlap (px)",
            info="How much neighbouring pieces share, to hide seams",
            elem_id=f"{task}-overlap",
        )
        if task == "inpaint":
            c["dilate"] = gr.Slider(
                k.dilate_range.low,
                k.dilate_range.high,
                value=k.dilate,
                step=1,
                label="Grow the painted area (px)",
                info="Covers soft edges around what you painted",
            )
    return c  # fmt: skip


def _input(task: str, ui: dict[str, Any]) -> Any:
    if task == "inpaint":
        ui["upload"] = gr.UploadButton(
            "Upload image", file_types=["image"], type="filepath", variant="secondary", elem_id="inpaint-upload"
        )
        gr.Markdown("**Paint over what to remove**", elem_id="inpaint-hint")
        editor = gr.ImageEditor(
            label="Paint over what to remove",
            show_label=False,  # on phones the toolbar covered it; the hint above says it
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
        ui["original"] = gr.State(None)
        ui["marked"] = gr.State(None)
        ui["source_info"] = gr.Markdown("", elem_classes="diffir-status", elem_id="inpaint-source")
        return editor
    return gr.Image(
        label="Your photo", type="filepath", image_mode=None, format="png", sources=["upload", "clipboard", "webcam"],
        height=420, elem_id=f"{task}-input",
    )  # fmt: skip


def _outputs(task: str, ui: dict[str, Any]) -> None:
    ui["slider"] = gr.ImageSlider(
        label="Before / after", type="filepath", format="png", image_mode=None, elem_id=f"{task}-slider", max_height=640
    )
    if TASKS[task].scale > 1:
        ui["closeup"] = gr.ImageSlider(
            label="Close-up at 100 % (click your photo to choose where)",
            type="filepath", format="png", image_mode=None, elem_id=f"{task}-closeup", max_height=420,
        )  # fmt: skip
    ui["status"] = gr.Markdown("", elem_id=f"{task}-status", elem_classes="diffir-status")
    ui["download"] = gr.File(
        label="Download (full-resolution PNG, keeps transparency, 16 bits and colour profile)",
        elem_id=f"{task}-download",
    )
    with gr.Row(visible=False, elem_id=f"{task}-chain", elem_classes="diffir-chain") as row:
        gr.Markdown("Use the result as the next input:")
        ui["chain"] = {t: gr.Button(TASKS[t].short, size="sm", elem_id=f"{task}-to-{t}") for t in TASKS}
    ui["chain_row"] = row


def build_tab(task: str, blurb: str, styles: tuple[Style, ...] | None = None) -> TabUI:
    """The tab's components (events are wired by ``layout``)."""
    ui: dict[str, Any] = {}
    gr.Markdown(blurb)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            ui["input"] = _input(task, ui)
            ui["controls"] = controls(task, TASKS[task].styles if styles is None else styles)
            with gr.Row():
                ui["run"] = gr.Button("Restore", variant="primary", elem_id=f"{task}-run", scale=3)
                ui["cancel"] = gr.Button("Cancel", variant="stop", visible=False, elem_id=f"{task}-cancel", scale=1)
        with gr.Column(scale=1):
            _outputs(task, ui)
    shown = list_with_thumbnails(task)
    if shown:
        ui["dataset"] = gr.Dataset(
            components=[gr.Image(visible=False, type="filepath")],
            samples=[[thumb] for _, thumb in shown],
            type="index",
            label=examples.LABELS[task],
            elem_id=f"{task}-examples",
            samples_per_page=6,
        )
        ui["shown"] = [e for e, _ in shown]
    return TabUI(task=task, **ui)


def list_with_thumbnails(task: str) -> list[tuple[examples.Example, str]]:
    """Examples and what their button shows (inpainting: the photo with its painted area)."""
    return [(e, str(examples.thumbnail(e))) for e in examples.list_examples(task)]
