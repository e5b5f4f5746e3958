"""The app's layout: a header, one tab per task (``tabs.build_tab``), the events between them,
a bounded queue and the launch options (including ``--share``)."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import gradio as gr

from ..settings import settings
from ..tasks import TASKS
from . import examples, views
from .handlers import _LOAD_ERRORS, DEVICE, deblur, inpaint, super_resolve
from .inputs import CLEARED, chain_to, check_upload, forget_original, load_for_painting
from .outputs import bound_temp_files
from .tabs import CSS, DISMISS_TOASTS, TabUI, build_tab

log = logging.getLogger("diffir.app")
CONCURRENCY = "diffir-model"
BLURBS = {
    "inpaint": "Remove objects, scratches or text: paint over them and DiffIR fills the hole.",
    "sr": "Four times the width and height, for real-world photos: blur, noise and JPEG are cleaned up too.",
    "deblur": "Undo camera shake and motion blur.",
}
HANDLERS = {"inpaint": inpaint, "sr": super_resolve, "deblur": deblur}


def _wire_run(ui: TabUI) -> None:
    """Restore: clear and arm (instant), restore (the queued API endpoint), then tidy up."""
    c = ui.controls
    controls = [c["steps"], c["tile"], c["overlap"], c["seed"], c["randomize"]] + [
        c[k] for k in ("dilate", "style") if k in c
    ]
    inputs = [ui.input] + ([ui.original, ui.marked] if ui.task == "inpaint" else []) + controls
    outputs = [ui.slider, ui.download, ui.status, c["seed"]]
    cleared = [ui.slider, ui.download, ui.status, ui.cancel, ui.chain_row]
    # the instant steps before and after show no progress of their own: one display per run
    work = ui.run.click(
        views.begin, None, cleared, js=DISMISS_TOASTS, queue=False, show_progress="hidden", api_visibility="private"
    ).then(
        HANDLERS[ui.task],
        inputs=inputs,
        outputs=outputs,
        api_name=TASKS[ui.task].api_name,
        concurrency_id=CONCURRENCY,
        concurrency_limit=1,
        preprocess=False,  # raw uploads: diffir.imageio decodes (and explains) every file itself
        show_progress_on=[ui.slider],  # one progress display per run
        scroll_to_output=True,
    )
    if ui.closeup is not None:
        work.then(views.finish_sr, [ui.download, ui.input], [ui.cancel, ui.chain_row, ui.closeup],
                  preprocess=False, queue=False, show_progress="hidden", api_visibility="private")  # fmt: skip
        ui.input.select(views.closeup_at, [ui.download, ui.input], ui.closeup, preprocess=False,
                         api_visibility="private")  # fmt: skip
    else:
        work.then(views.finish, ui.download, [ui.cancel, ui.chain_row], preprocess=False, queue=False,
                  show_progress="hidden", api_visibility="private")  # fmt: skip
    ui.cancel.click(views.cancel, None, ui.cancel, queue=False, api_visibility="private")


def _wire_inputs(ui: TabUI) -> None:
    """Uploads are checked (and the last result cleared) as they arrive."""
    cleared = [ui.slider, ui.download, ui.status, ui.chain_row]
    if ui.task == "inpaint":
        assert ui.upload is not None and ui.original is not None and ui.source_info is not None
        ui.upload.upload(load_for_painting, ui.upload, [ui.input, ui.original, ui.marked, ui.source_info,
                         *cleared],
                         preprocess=False, api_visibility="private")  # fmt: skip
        # (the editor fires "upload" for programmatic values too, so direct uploads are caught by
        # comparing contents in inputs.original_or_background instead)
        ui.input.clear(forget_original("editor cleared"), outputs=[ui.original, ui.marked, ui.source_info],
                       api_visibility="private")  # fmt: skip
    else:
        ui.input.upload(check_upload(TASKS[ui.task].scale), ui.input, [ui.input, *cleared], preprocess=False,
                        api_visibility="private")  # fmt: skip
        ui.input.clear(lambda: CLEARED, outputs=cleared, api_visibility="private")


def _wire_examples(ui: TabUI, results: examples.Results) -> None:
    if ui.dataset is None:
        return
    c = ui.controls
    ins = [ui.input] + ([ui.original, ui.marked, ui.source_info] if ui.task == "inpaint" else [])
    outs = [*ins, ui.slider, ui.download, ui.status, c["seed"], c["randomize"], ui.chain_row]
    if ui.closeup is not None:
        outs.append(ui.closeup)
    if "style" in c:
        outs.append(c["style"])
    ui.dataset.click(views.example_click(ui.task, ui.shown, results, "style" in c), ui.dataset, outs, queue=False,
                     api_visibility="private")  # fmt: skip


def _wire_chains(tabs: gr.Tabs, uis: dict[str, TabUI]) -> None:
    """Each result's 'use as the next input' buttons fill the chosen tab's input and show it."""
    for ui in uis.values():
        for target, button in ui.chain.items():
            t = uis[target]
            outs = [tabs, t.input] + ([t.original, t.marked, t.source_info] if target == "inpaint" else [])
            button.click(chain_to(target), ui.download, [*outs, t.slider, t.download, t.status, t.chain_row],
                         preprocess=False,
                         api_visibility="private")  # fmt: skip


def build_demo(results: examples.Results | None = None) -> gr.Blocks:
    """The whole app; ``results`` says where the examples' ready results are."""
    results = results or examples.Results(DEVICE).start()
    missing = dict(_LOAD_ERRORS)
    with gr.Blocks(title="DiffIR image restoration") as demo:
        with gr.Column(elem_id="diffir-header"):
            gr.Markdown(
                "# DiffIR image restoration\n"
                "Fill in what you paint over, enlarge photos 4×, undo camera shake, with **DiffIR** "
                "([Xia et al., ICCV 2023](https://arxiv.org/abs/2303.09472)). "
                f"Running on **{DEVICE.upper()}**; results are lossless PNG."
            )
        # a missing default model is said at the top; a missing extra style is just not offered
        gone = {t: missing[f] for t in TASKS if (f := TASKS[t].style().folder) in missing}
        if gone:
            gr.Markdown("\n".join(f"**{t}**: {msg}" for t, msg in gone.items()), elem_classes="diffir-missing")
        uis: dict[str, TabUI] = {}
        with gr.Tabs(elem_id="diffir-tabs") as tabs:
            for task in TASKS:
                with gr.Tab(TASKS[task].short, id=task, elem_id=f"tab-{task}"):
                    styles = tuple(s for s in TASKS[task].styles if s.folder not in missing)
                    uis[task] = ui = build_tab(task, BLURBS[task], styles)
                _wire_run(ui)
                _wire_inputs(ui)
                _wire_examples(ui, results)
        _wire_chains(tabs, uis)
        demo.unload(views.leave)
        gr.Markdown(
            "The shipped weights are small models trained on this project's CPUs from 60 licensed photographs: "
            "modest quality, measured in `weights/*/README.md`. Official DiffIR checkpoints dropped into "
            "`weights/<task>/` are used instead. "
            "[Code](https://github.com/Zj-BinXia/DiffIR) of the paper."
        )
    return demo


def _share_server() -> tuple[str, int]:
    """Where Gradio would open its tunnel (``GRADIO_SHARE_SERVER_ADDRESS`` or its own API host)."""
    address = os.environ.get("GRADIO_SHARE_SERVER_ADDRESS", "")
    host, _, port = address.rpartition(":")
    return (host, int(port)) if host and port.isdigit() else ("api.gradio.app", 443)


def share_setting(wanted: bool) -> tuple[bool, str | None]:
    """(share?, why not in one line). Asked for by ``--share`` or ``GRADIO_SHARE``; a quick check
    that the share server answers first, so an offline start is local at once and says why."""
    wanted = wanted or os.environ.get("GRADIO_SHARE", "").strip().lower() in ("1", "true", "yes")
    if not wanted:
        return False, None
    if os.environ.get("SPACE_ID"):
        return False, "no public link: this is a Hugging Face Space, whose own page is the link"
    host, port = _share_server()
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as e:
        return (
            False,
            f"no public link: the share server {host}:{port} cannot be reached ({e.strerror or e}); serving locally only",
        )
    return True, None


def launch_kwargs(share: bool = False) -> dict[str, Any]:
    """Arguments for ``demo.launch``: server name/port come from GRADIO_SERVER_NAME/PORT."""
    return {
        "max_file_size": settings().max_file_size,
        "theme": gr.themes.Soft(primary_hue="rose", neutral_hue="slate"),
        "css": CSS,
        "show_error": True,
        "share": share,
    }


def queue(demo: gr.Blocks) -> gr.Blocks:
    """Bounded queue; the model's pool lets one restoration run at a time (CPU) or a few (GPU)."""
    return bound_temp_files(demo).queue(max_size=settings().queue_size, default_concurrency_limit=1)


__all__ = ["build_demo", "launch_kwargs", "queue", "share_setting"]
