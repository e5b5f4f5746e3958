"""What the app says, in a user's words: sizes and "colour / 16 bits / transparent" instead of the
image library's modes (``PNG I;16``), which stay one hover away in an info tooltip."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ..inference.imageio import Picture
from ..inference.pipeline import Restored

# names that browsers and Gradio give files that have none of their own (clipboard, editor layers)
_ANONYMOUS = {"background", "image", "composite", "blob", "layer", "clipboard", "tmp", "upload"}


def picture(p: Picture) -> str:
    """'512×384 colour photo (16 bits per channel, transparent background)'."""
    w, h = p.size
    extras = [
        x for x in ("16 bits per channel" if p.depth == 16 else "", "transparency" if p.alpha is not None else "") if x
    ]
    kind = "black-and-white" if p.grey else "colour"
    return f"{w}×{h} {kind}" + (f" ({', '.join(extras)})" if extras else "")


def tooltip(detail: str) -> str:
    """An ⓘ that shows the technical detail on hover (Markdown keeps the title attribute)."""
    return f' <span class="diffir-info" title="{html.escape(detail, quote=True)}">ⓘ</span>'


def stem(name: str | None) -> str:
    """The user's file name without extension, for downloads; 'photo' where the browser made one up."""
    s = Path(name or "").stem
    base = s.split("-")[0].split("_")[0].lower()
    return "photo" if not s or base in _ANONYMOUS or s.lower().startswith("layer") else s


def done(result: Restored, head: str = "**Done**") -> str:
    """The status line after a run: sizes, seed and time in words; image modes in the tooltip."""
    tiles = f" · {result.tiles} tiles" if result.tiles > 1 else ""
    return (
        f"{head} in {result.seconds:.1f} s · input {picture(result.source)} → output {picture(result.picture)}"
        f" · seed {result.seed} · {result.steps} step{'s' if result.steps != 1 else ''}{tiles}"
        + tooltip(result.summary())
    )


def uploaded(name: str, p: Picture) -> str:
    """The line under the inpainting editor after an upload."""
    return f"**{html.escape(name)}** · {picture(p)} · kept exactly as uploaded" + tooltip(
        f"{p.describe()}; alpha, 16-bit, EXIF and colour profile are kept"
    )


def problem(name: str | None, message: Any) -> str:
    """An error message that names the file it is about."""
    text = str(message)
    if name and name not in text:
        text = f"{name}: {text}"
    return text
