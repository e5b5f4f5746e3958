"""Examples whose results are ready at once.

Each tab's examples (``examples/<task>/``) come with their result made in advance with the default
controls and ``SEED``: shipped in ``examples/<task>/results/`` when they were made with the weights
the app runs (``examples/results.json`` records a hash of them), else made here in a background
thread at start-up and kept under the temp folder, keyed by the weights' hash, for later starts.
``python -m diffir.app.examples`` remakes the shipped ones after the weights change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from ..checkpoints import resolve_weights
from ..errors import UserError
from ..files import write_atomic
from ..inference.pipeline import Options, get_model, restore
from ..settings import ROOT
from ..tasks import CONTROLS, TASKS

log = logging.getLogger("diffir.app")
EXAMPLES = ROOT / "examples"
MANIFEST = EXAMPLES / "results.json"
LOCAL = Path(tempfile.gettempdir()) / "diffir-examples"
SEED = 2023
WEIGHT_SUFFIXES = {".safetensors", ".pth", ".pt", ".ckpt", ".bin"}
LABELS = {
    "inpaint": "Try an example: a photo with something already painted over (its result is ready)",
    "sr": "Try an example: small photos to enlarge (results are ready)",
    "deblur": "Try an example: photos blurred by a moving camera (results are ready)",
}


@dataclass(frozen=True)
class Example:
    task: str
    photo: Path
    mask: Path | None = None

    @property
    def stem(self) -> str:
        return self.photo.stem

    @property
    def caption(self) -> str:
        """'castle-maintenon' → 'Castle maintenon'."""
        return self.stem.replace("-", " ").replace("_", " ").capitalize()


def list_examples(task: str) -> list[Example]:
    """The task's example photos (inpainting: those with a ``<name>_mask.png``)."""
    folder = EXAMPLES / task
    photos = sorted(p for p in folder.glob("*.png") if not p.stem.endswith("_mask")) if folder.is_dir() else []
    if task != "inpaint":
        return [Example(task, p) for p in photos]
    pairs = [(p, p.with_name(f"{p.stem}_mask.png")) for p in photos]
    return [Example(task, p, m) for p, m in pairs if m.is_file()]


def weights_id(task: str) -> str:
    """A short hash of the weights the app would load for ``task``: its weight files and ``config.json``.

    Not the card's ``README.md`` or ``training.json``, which every campaign updates, even one that
    keeps the weights: the shipped example results stay valid then.
    """
    path = resolve_weights(task)
    files = (
        sorted(f for f in path.iterdir() if f.suffix in WEIGHT_SUFFIXES or f.name == "config.json")
        if path.is_dir()
        else [path]
    )
    h = hashlib.sha256()
    for f in files:
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()[:16]


def options(device: str = "cpu") -> Options:
    """The controls examples are made with: the defaults, and ``SEED``."""
    k = CONTROLS
    return Options(steps=k.steps, seed=SEED, tile=k.tile, overlap=k.overlap, dilate=k.dilate, device=device)


def make(example: Example, out: Path, device: str = "cpu") -> None:
    """Restore one example exactly as the app's Restore would with the default controls."""
    from PIL import Image

    from .inputs import mask_from_layers  # the editor's own rule for a mask layer

    mask = None
    if example.mask is not None:
        with Image.open(example.photo) as im:
            mask = mask_from_layers({"layers": [str(example.mask)]}, im.size)
    model = get_model(example.task, device=device)
    opts = options(device)
    if example.task != "inpaint":
        opts = dataclasses.replace(opts, dilate=0)
    result = restore(example.task, example.photo, mask=mask, model=model, options=opts)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, result.png())


def thumbnail(example: Example) -> Path:
    """The example's button picture: the photo, with the area to fill shown in red for inpainting."""
    if example.mask is None:
        return example.photo
    from PIL import Image

    out = LOCAL / "thumbs" / f"{example.stem}.png"
    if not out.is_file():
        with Image.open(example.photo) as photo, Image.open(example.mask) as mask:
            red = Image.new("RGBA", photo.size, (255, 46, 99, 255))
            shown = Image.composite(red, photo.convert("RGBA"), mask.convert("RGBA").getchannel("A"))
        out.parent.mkdir(parents=True, exist_ok=True)
        shown.convert("RGB").save(out)
    return out


class Results:
    """Where each example's result is, and the background thread that makes missing ones."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.folders: dict[str, Path] = {}
        self.ready = threading.Event()

    def start(self) -> Results:
        """Find each task's results (shipped or made earlier); make the rest in the background."""
        shipped = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}
        todo: list[tuple[Example, Path]] = []
        for task in TASKS:
            try:
                wid = weights_id(task)
            except (UserError, OSError):
                continue  # the app says the model is missing
            same = shipped.get(task, {}).get("weights") == wid and shipped[task].get("seed") == SEED
            folder = EXAMPLES / task / "results" if same else LOCAL / wid / task
            self.folders[task] = folder
            todo += [
                (e, folder / f"{e.stem}.png") for e in list_examples(task) if not (folder / f"{e.stem}.png").is_file()
            ]
        if not todo:
            self.ready.set()
            return self
        log.info("making %d example result(s) in the background", len(todo))
        threading.Thread(target=self._make_all, args=(todo,), name="diffir-examples", daemon=True).start()
        return self

    def _make_all(self, todo: list[tuple[Example, Path]]) -> None:
        for example, out in todo:
            try:
                make(example, out, self.device)
            except Exception:  # an example that cannot be made is simply not ready
                log.exception("example %s/%s", example.task, example.stem)
        self.ready.set()
        log.info("example results ready")

    def get(self, example: Example) -> Path | None:
        """The example's result, or None while it is still being made."""
        folder = self.folders.get(example.task)
        path = folder / f"{example.stem}.png" if folder else None
        return path if path is not None and path.is_file() else None


def ship() -> None:
    """Remake ``examples/<task>/results/`` and the manifest with the weights the app loads now."""
    manifest = {}
    for task in TASKS:
        for example in list_examples(task):
            make(example, EXAMPLES / task / "results" / f"{example.stem}.png")
            print(f"{task}/{example.stem}")
        manifest[task] = {"weights": weights_id(task), "seed": SEED}
    write_atomic(MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())


if __name__ == "__main__":
    ship()
