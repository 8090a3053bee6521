# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer demo`: the processor -> model -> generate path on an embedded synthetic scene."""

from __future__ import annotations

import argparse


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("demo", help="run the offline demo on the tiny preset")
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..demo.quickstart import run_quickstart

    run_quickstart(max_new_tokens=args.max_new_tokens)
    return 0
