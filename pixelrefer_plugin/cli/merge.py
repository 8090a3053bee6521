# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer merge ADAPTER_DIR --out DIR`."""

from __future__ import annotations

import argparse


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("merge", help="merge a trained LoRA adapter into a standalone checkpoint")
    parser.add_argument("adapter", help="adapter folder (training output_dir or a checkpoint-* folder)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--base", help="base checkpoint (default: the one recorded in adapter_config.json)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..training.merge import merge_adapter

    out = merge_adapter(args.adapter, args.out, args.base)
    print(f"merged {args.adapter} into {out}")
    return 0
