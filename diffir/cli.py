"""Command line: ``python -m diffir convert`` and ``python -m diffir restore``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .weights import CheckpointError, convert


def _convert(args: argparse.Namespace) -> int:
    try:
        out = convert(args.checkpoint, args.out_dir)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'config.json'} and {out / 'model.safetensors'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diffir", description="DiffIR image restoration.")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="official checkpoint -> config.json + model.safetensors")
    c.add_argument("checkpoint", type=Path, help="official .pth (BasicSR) or .ckpt (inpainting, Lightning)")
    c.add_argument("out_dir", type=Path)
    c.set_defaults(func=_convert)
    args = parser.parse_args(argv)
    return int(args.func(args))
