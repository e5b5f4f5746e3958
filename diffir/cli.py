"""Command line.

    python -m diffir restore --task {inpaint,sr,deblur} -i FILE_OR_DIR [-m MASK_FILE_OR_DIR] -o OUT
                             [--weights W] [--style S] [--steps N] [--seed S] [--tile T] [--overlap O] [--device D]
    python -m diffir convert OFFICIAL_CHECKPOINT OUT_DIR

``restore`` works over one file or a folder and never loses or skips a file silently: every input
gets its own output (``OUT/<name>.png``; inputs whose names differ only in extension keep it,
``photo.jpg.png``), an input is never overwritten, outputs that already exist are skipped
(``--overwrite`` redoes them), a file that fails for any reason is reported and the batch goes on,
and the summary accounts for every input. Exit status: 0 all done, 1 any file failed, 2 unusable
arguments, 130 on Ctrl-C and 143 on SIGTERM (after the summary of what finished). Outputs are
written to a hidden temporary name and renamed; an interrupted write leaves nothing behind.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .allocator import tune_allocator
from .checkpoints import convert
from .errors import ImageError, UserError
from .files import PART_SUFFIX, write_atomic
from .inference.imageio import DEFAULT_MAX_PIXELS, mask_from_image
from .tasks import CONTROLS, TASK_NAMES, TASKS

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
STALE_PART = re.compile(r"^\..+\.[A-Za-z0-9_]{8}" + re.escape(PART_SUFFIX) + "$")  # write_atomic's temp names
STALE_PART_AGE_S = 300  # a partial file this old is not being written by anyone


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that writes clean up and the summary is printed."""


def _convert(args: argparse.Namespace) -> int:
    try:
        out = convert(args.checkpoint, args.out_dir)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'config.json'} and {out / 'model.safetensors'}")
    return 0


# --------------------------------------------------------------------------------------------------
# What to do: inputs, masks, output names
# --------------------------------------------------------------------------------------------------


def is_mask_name(p: Path) -> bool:
    return "_mask" in p.stem


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def list_inputs(path: Path, task: str) -> list[Path]:
    """Files to process: the file itself, or every file of a folder (not recursing). Only inpainting
    sets ``*_mask*`` files aside (they are masks); non-image files are listed, to be reported."""
    if path.is_file():
        return [path]
    if path.is_dir():
        return [p for p in _files(path) if task != "inpaint" or not is_mask_name(p)]
    raise FileNotFoundError(f"{path}: no such file or folder")


def find_mask(image: Path, masks: Path | None) -> Path | None:
    """The mask for ``image``: ``-m`` itself if it is a file; else in the ``-m`` folder (or beside the
    image) ``<name>_mask*`` (LaMa's convention), or in a separate ``-m`` folder a file named as the
    image. Names are compared as text, so ``photo [1].png`` works (no glob patterns)."""
    if masks is not None and masks.is_file():
        return masks
    folder = masks if masks is not None else image.parent
    candidates = [p for p in _files(folder) if p.suffix.lower() in IMAGE_SUFFIXES and p != image]
    named = [p for p in candidates if p.stem.startswith(f"{image.stem}_mask")]
    separate = folder.resolve() != image.parent.resolve()
    same = [p for p in candidates if separate and p.stem == image.stem]
    return (named or same or [None])[0]


def output_names(images: list[Path]) -> dict[Path, str]:
    """One distinct output name per input: ``<stem>.png``, or ``<name>.png`` where stems collide
    (``photo.jpg`` and ``photo.png`` → ``photo.jpg.png``, ``photo.png.png``), then ``-2``, ``-3``…"""
    stems = Counter(p.stem.casefold() for p in images)
    names: dict[Path, str] = {}
    used: set[str] = set()
    for p in images:
        base = p.stem if stems[p.stem.casefold()] == 1 else p.name
        name, n = f"{base}.png", 1
        while name.casefold() in used:
            n += 1
            name = f"{base}-{n}.png"
        used.add(name.casefold())
        names[p] = name
    return names


@dataclass
class Batch:
    images: list[Path]
    targets: dict[Path, Path]
    masks: dict[Path, Path | None] = field(default_factory=dict)
    orphans: list[Path] = field(default_factory=list)  # masks that pair with no image
    notes: list[str] = field(default_factory=list)


def _pair_masks(batch: Batch, args: argparse.Namespace) -> None:
    """Inpainting: each image's mask, and the masks that belong to no image (reported)."""
    batch.masks = {p: find_mask(p, args.mask) for p in batch.images}
    if args.mask is not None and args.mask.is_file():
        return
    folder = args.mask if args.mask is not None else args.input if args.input.is_dir() else None
    if folder is None:
        return
    used = {m.resolve() for m in batch.masks.values() if m is not None}
    separate = args.mask is not None and args.mask.resolve() != args.input.resolve()
    pool = [p for p in _files(folder) if p.suffix.lower() in IMAGE_SUFFIXES and (separate or is_mask_name(p))]
    batch.orphans = [p for p in pool if p.resolve() not in used]


def plan(args: argparse.Namespace) -> Batch:
    """The inputs and their targets; a ``UserError`` for arguments that cannot work (exit 2)."""
    try:
        images = list_inputs(args.input, args.task)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    if not images:
        raise UserError(f"{args.input} holds no files")
    if args.mask is not None and not args.mask.exists():
        raise UserError(f"{args.mask}: no such mask file or folder")
    folder = output_folder(args.output, single=args.input.is_file())
    if args.input.is_file() and args.output.suffix.lower() == ".png" and not args.output.is_dir():
        targets = {images[0]: args.output}
    else:
        targets = {p: folder / name for p, name in output_names(images).items()}
    batch = Batch(images, targets)
    if args.task == "inpaint":
        _pair_masks(batch, args)
    _refuse_overwriting_inputs(batch, folder, args)
    if args.input.is_dir():
        subfolders = sum(p.is_dir() for p in args.input.iterdir())
        if subfolders:
            batch.notes.append(f"{subfolders} subfolder(s) of {args.input} not searched (not recursive)")
    return batch


def _refuse_overwriting_inputs(batch: Batch, folder: Path, args: argparse.Namespace) -> None:
    if args.input.is_dir() and folder.resolve() == args.input.resolve():
        raise UserError(
            f"the output folder {args.output} is the input folder: results would replace or mix with your "
            "originals. Choose another folder with -o."
        )
    protected = {p.resolve() for p in batch.images} | {m.resolve() for m in batch.masks.values() if m is not None}
    clash = [t for t in batch.targets.values() if t.resolve() in protected]
    if clash:
        raise UserError(f"{clash[0]} is one of the inputs; it is never overwritten. Choose another output with -o.")


def output_folder(out: Path, single: bool) -> Path:
    """Create and probe the output folder before any model work; a ``UserError`` if it is unusable."""
    if single and out.suffix.lower() == ".png" and not out.is_dir():
        folder = out.parent
    elif out.exists() and not out.is_dir():
        raise UserError(f"-o {out} is an existing file; give a folder (or a new .png path for a single input).")
    elif single and out.suffix.lower() in IMAGE_SUFFIXES:
        raise UserError(f"-o {out}: outputs are PNG; give a .png file name or a folder.")
    else:
        folder = out
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".diffir-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"cannot write to the output folder {folder}: {e.strerror or e}") from None
    return folder


def clean_stale_parts(folder: Path) -> int:
    """Remove our own partial files (``.<name>.XXXXXXXX.part``) left by a killed run; returns the count."""
    now, removed = time.time(), 0
    for p in folder.iterdir():
        try:
            if STALE_PART.match(p.name) and p.is_file() and now - p.stat().st_mtime > STALE_PART_AGE_S:
                p.unlink()
                removed += 1
        except OSError:
            pass
    return removed


# --------------------------------------------------------------------------------------------------
# Doing it
# --------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    total: int
    done: int = 0
    skipped: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self, interrupted: str = "") -> str:
        left = self.total - self.done - self.skipped - len(self.failed)
        parts = [f"{self.total} input(s): {self.done} restored"]
        parts.append(f"{self.skipped} skipped (already done; --overwrite to redo)")
        parts.append(f"{len(self.failed)} failed")
        if left:
            parts.append(f"{left} not started ({interrupted or 'stopped'})")
        return ", ".join(parts)


def describe_failure(e: BaseException) -> str:
    """One line for the summary: the user's message, or the unexpected error and what to try."""
    if isinstance(e, UserError | OSError):
        return str(e)
    text = f"{type(e).__name__}: {e}".rstrip(": ")
    if isinstance(e, MemoryError) or any(w in str(e).lower() for w in ("out of memory", "allocate memory")):
        return f"out of memory ({text}); try a smaller --tile"
    return f"unexpected error ({text})"


def _restore_one(image: Path, target: Path, batch: Batch, args: argparse.Namespace, model: Any, opts: Any) -> str:
    from .inference.pipeline import restore

    mask = None
    if args.task == "inpaint":
        mask_path = batch.masks.get(image)
        if mask_path is None:
            where = args.mask if args.mask is not None else image.parent
            raise ImageError(f"no mask found for {image.name} (expected {image.stem}_mask.png in {where})")
        mask = mask_from_image(mask_path, max_pixels=opts.max_pixels, name=f"mask {mask_path.name}")
    result = restore(args.task, image, mask=mask, model=model, options=opts)
    write_atomic(target, result.png())
    return result.summary()


def run_batch(batch: Batch, args: argparse.Namespace, model: Any, opts: Any, tally: Tally) -> None:
    bar = tqdm(batch.images, unit="image", disable=args.quiet or None, file=sys.stderr)
    for image in bar:
        bar.set_postfix_str(image.name)
        target = batch.targets[image]
        if target.exists() and not args.overwrite:
            tally.skipped += 1
            continue
        try:
            summary = _restore_one(image, target, batch, args, model, opts)
        except Exception as e:  # one bad file never aborts the batch
            tally.failed.append((image, describe_failure(e)))
            tqdm.write(f"FAILED {image.name}: {tally.failed[-1][1]}", file=sys.stderr)
            continue
        tally.done += 1
        tqdm.write(f"{image.name} -> {target}: {summary}", file=sys.stderr)


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM becomes ``Terminated`` in the main thread while the batch runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _report(tally: Tally, batch: Batch, interrupted: str = "") -> None:
    print(tally.summary(interrupted), file=sys.stderr)
    for image, why in tally.failed:
        print(f"  {image}: {why}", file=sys.stderr)
    if batch.orphans:
        print(f"{len(batch.orphans)} mask(s) matched no image:", file=sys.stderr)
        for p in batch.orphans:
            print(f"  {p}", file=sys.stderr)
    for note in batch.notes:
        print(f"note: {note}", file=sys.stderr)


def _restore(args: argparse.Namespace) -> int:
    from .inference.pipeline import Options, get_model

    try:
        batch = plan(args)
        opts = Options(
            steps=args.steps,
            seed=args.seed,
            tile=args.tile,
            overlap=args.overlap,
            device=args.device,
            precision=args.precision,
            dilate=args.dilate,
            max_pixels=args.max_pixels,
        )
        model = get_model(args.task, args.weights, args.device, args.style)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stale = {t.parent for t in batch.targets.values()}
    if removed := sum(clean_stale_parts(f) for f in stale):
        print(f"removed {removed} partial file(s) left by an interrupted run", file=sys.stderr)
    tally = Tally(len(batch.images))
    with sigterm_raises():
        try:
            run_batch(batch, args, model, opts, tally)
        except KeyboardInterrupt:
            _report(tally, batch, "interrupted by Ctrl-C")
            return 130
        except Terminated:
            _report(tally, batch, "terminated")
            return 143
    _report(tally, batch)
    return 1 if tally.failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diffir", description="DiffIR image restoration.")
    sub = parser.add_subparsers(dest="command", required=True)
    k = CONTROLS

    r = sub.add_parser("restore", help="restore one image or a folder of images")
    r.add_argument("--task", required=True, choices=TASK_NAMES)
    r.add_argument("-i", "--input", required=True, type=Path, help="an image file or a folder")
    r.add_argument("-m", "--mask", type=Path, help="inpainting: a mask file, or a folder of masks (<name>_mask.png)")
    r.add_argument("-o", "--output", required=True, type=Path, help="output folder (or a .png file for one input)")
    r.add_argument("--weights", help="model folder or checkpoint (default: weights/<task>/, $DIFFIR_WEIGHTS)")
    r.add_argument(
        "--style",
        choices=sorted({s.name for t in TASKS.values() for s in t.styles}),
        help="which trained model: faithful (default) or, for --task sr, sharp (GAN-trained: crisper, may invent "
        "detail; its weights in weights/sr_sharp/ or under --weights)",
    )
    r.add_argument("--steps", type=int, help=f"reverse diffusion steps, {k.steps_range.low}..T (default: all)")
    r.add_argument("--seed", type=int, help=f"seed of the initial noise, 0..{k.seed_range.high} (default: random)")
    r.add_argument(
        "--tile", type=int, default=k.tile, help=f"tile size in input pixels, 0 = whole image (default {k.tile})"
    )
    r.add_argument("--overlap", type=int, default=k.overlap, help=f"tile overlap in pixels (default {k.overlap})")
    r.add_argument("--device", default="cpu", help="cpu, cuda or mps (default cpu)")
    r.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "fp16", "bf16", "int8"],
        help="fp16/bf16: GPU; int8: CPU, 1x1 convolutions quantised (not faster on AVX2 CPUs: README, Speed)",
    )
    r.add_argument("--dilate", type=int, default=0, help="inpainting: grow the mask by N pixels")
    r.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger results")
    r.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_restore)

    c = sub.add_parser("convert", help="official checkpoint -> config.json + model.safetensors")
    c.add_argument("checkpoint", type=Path, help="official .pth (BasicSR) or .ckpt (inpainting, Lightning)")
    c.add_argument("out_dir", type=Path)
    c.set_defaults(func=_convert)

    args = parser.parse_args(argv)
    tune_allocator()
    return int(args.func(args))
