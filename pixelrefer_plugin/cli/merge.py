# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer merge ADAPTER_DIR --out DIR`."""

from __future__ import annotations

import argparse


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "merge",
        help="merge a trained LoRA adapter into a standalone checkpoint",
        description="Merge a LoRA adapter written by `pixelrefer train` (LoRA weights, fully trained modules, the "
        "<REGION> embedding row) into its base model and write a standalone checkpoint that loads with "
        "AutoModelForImageTextToText.from_pretrained(DIR, trust_remote_code=True), without peft.",
    )
    parser.add_argument("adapter", help="adapter folder (training output_dir or a checkpoint-* folder)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--base", help="base checkpoint (default: the one recorded in adapter_config.json)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..training.merge import merge_adapter
    from .output import show

    out = merge_adapter(args.adapter, args.out, args.base, overwrite=args.overwrite)
    show(f"merged {args.adapter} into {out}")
    return 0
