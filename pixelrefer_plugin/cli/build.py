# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer build NAME --out DIR`: a loadable checkpoint from a registry preset."""

from __future__ import annotations

import argparse


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "build",
        help="write a random-init checkpoint of a registry preset",
        description="Write a self-contained checkpoint of a registry preset (random init) that loads with "
        "AutoModelForImageTextToText.from_pretrained(DIR, trust_remote_code=True).",
    )
    parser.add_argument("name", help="preset name, see `pixelrefer presets`")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--tokenizer", help="local folder with the preset's tokenizer files (non-tiny presets)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..presets import build_preset

    out = build_preset(args.name, args.out, tokenizer_path=args.tokenizer, seed=args.seed)
    print(f"wrote {args.name} to {out}")
    return 0
