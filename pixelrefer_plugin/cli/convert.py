# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer convert SRC --out DST`: a released PixelRefer / PixelRefer-Lite checkpoint -> plugin checkpoint."""

from __future__ import annotations

import argparse


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "convert",
        help="convert a released PixelRefer / PixelRefer-Lite checkpoint directory",
        description="Convert a released checkpoint directory (config.json, .bin or safetensors shards, tokenizer "
        "files) into a checkpoint that loads with trust_remote_code=True.",
    )
    parser.add_argument("source", help="released checkpoint directory")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--no-position-axis-swap",
        action="store_true",
        help="use the geometrically consistent position encoding instead of the released one (only for retraining)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..conversion import convert_released_checkpoint
    from .output import show

    out = convert_released_checkpoint(
        args.source, args.out, position_axis_swap=not args.no_position_axis_swap, overwrite=args.overwrite
    )
    show(f"converted {args.source} to {out}")
    return 0
