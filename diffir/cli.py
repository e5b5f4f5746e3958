"""Command line.

    python -m diffir restore --task {inpaint,sr,deblur} -i FILE_OR_DIR [-m MASK_FILE_OR_DIR] -o OUT
                             [--weights W] [--steps N] [--seed S] [--tile T] [--overlap O] [--device D]
    python -m diffir convert OFFICIAL_CHECKPOINT OUT_DIR

``restore`` works over one file or a folder: a progress bar, outputs that already exist are
skipped (``--overwrite`` redoes them), a bad file is reported and the batch goes on, a summary
comes at the end, and the exit status is 1 when any file failed (2 for unusable arguments).
Outputs are PNG (``OUT/<name>.png``), written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from .checkpoints import convert
from .errors import ImageError, UserError
from .files import write_atomic
from .inference.imageio import DEFAULT_MAX_PIXELS
from .tasks import CONTROLS, TASK_NAMES

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"}


def _convert(args: argparse.Namespace) -> int:
    try:
        out = convert(args.checkpoint, args.out_dir)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'config.json'} and {out / 'model.safetensors'}")
    return 0


def _is_mask_name(p: Path) -> bool:
    return "_mask" in p.stem


def list_inputs(path: Path) -> list[Path]:
    """Files to process: the file itself, or every file of a folder (not recursing, masks skipped).
    Non-image files in a folder are listed too, so that they are reported rather than ignored."""
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and not _is_mask_name(p))
    raise FileNotFoundError(f"{path}: no such file or folder")


def find_mask(image: Path, masks: Path | None) -> Path | None:
    """The mask for ``image``: ``-m`` itself if it is a file; else in the ``-m`` folder (or beside
    the image) a file named like the image, or ``<name>_mask*`` (LaMa's convention)."""
    if masks is not None and masks.is_file():
        return masks
    folder = masks if masks is not None else image.parent
    candidates = [p for p in sorted(folder.glob(f"{image.stem}*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    named = [p for p in candidates if p.stem.startswith(f"{image.stem}_mask")]
    same = [p for p in candidates if p.stem == image.stem and p != image]
    return (named or same or [None])[0]


def output_path(image: Path, out: Path, single: bool) -> Path:
    if single and out.suffix.lower() == ".png":
        return out
    return out / f"{image.stem}.png"


def _restore(args: argparse.Namespace) -> int:
    from .inference.pipeline import Options, get_model, restore

    try:
        inputs = list_inputs(args.input)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not inputs:
        print(f"error: {args.input} holds no files", file=sys.stderr)
        return 2
    if args.mask is not None and not args.mask.exists():
        print(f"error: {args.mask}: no such mask file or folder", file=sys.stderr)
        return 2
    single = args.input.is_file()
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
    try:
        model = get_model(args.task, args.weights, args.device)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    done, skipped, failed = 0, 0, []
    bar = tqdm(inputs, unit="image", disable=args.quiet or None, file=sys.stderr)
    for image in bar:
        bar.set_postfix_str(image.name)
        target = output_path(image, args.output, single)
        if target.exists() and not args.overwrite:
            skipped += 1
            continue
        try:
            mask = None
            if args.task == "inpaint":
                mask = find_mask(image, args.mask)
                if mask is None:
                    raise ImageError(f"no mask found for {image.name} (expected {image.stem}_mask.png)")
            result = restore(args.task, image, mask=mask, model=model, options=opts)
            write_atomic(target, result.png())
            done += 1
            tqdm.write(f"{image.name} -> {target}: {result.summary()}", file=sys.stderr)
        except (UserError, OSError) as e:
            failed.append((image, str(e)))
            tqdm.write(f"FAILED {image.name}: {e}", file=sys.stderr)
    print(
        f"{done} restored, {skipped} skipped (already done; --overwrite to redo), {len(failed)} failed", file=sys.stderr
    )
    for image, why in failed:
        print(f"  {image}: {why}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diffir", description="DiffIR image restoration.")
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser("restore", help="restore one image or a folder of images")
    r.add_argument("--task", required=True, choices=TASK_NAMES)
    r.add_argument("-i", "--input", required=True, type=Path, help="an image file or a folder")
    r.add_argument("-m", "--mask", type=Path, help="inpainting: a mask file, or a folder of masks (<name>_mask.png)")
    r.add_argument("-o", "--output", required=True, type=Path, help="output folder (or a .png file for one input)")
    r.add_argument("--weights", help="model folder or checkpoint (default: weights/<task>/, $DIFFIR_WEIGHTS)")
    r.add_argument("--steps", type=int, help="reverse diffusion steps, 1..T (default: all)")
    r.add_argument("--seed", type=int, help="seed of the initial noise (default: random, printed)")
    r.add_argument(
        "--tile",
        type=int,
        default=CONTROLS.tile,
        help=f"tile size in input pixels, 0 = whole image (default {CONTROLS.tile})",
    )
    r.add_argument(
        "--overlap",
        type=int,
        default=CONTROLS.overlap,
        help=f"tile overlap in input pixels (default {CONTROLS.overlap})",
    )
    r.add_argument("--device", default="cpu", help="cpu, cuda or mps (default cpu)")
    r.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"], help="GPU precision")
    r.add_argument("--dilate", type=int, default=0, help="inpainting: grow the mask by N pixels")
    r.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger images")
    r.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_restore)

    c = sub.add_parser("convert", help="official checkpoint -> config.json + model.safetensors")
    c.add_argument("checkpoint", type=Path, help="official .pth (BasicSR) or .ckpt (inpainting, Lightning)")
    c.add_argument("out_dir", type=Path)
    c.set_defaults(func=_convert)

    args = parser.parse_args(argv)
    return int(args.func(args))
