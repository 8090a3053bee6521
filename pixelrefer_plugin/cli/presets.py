# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer presets`: list the registry."""

from __future__ import annotations

import argparse


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "presets",
        help="list the named model presets",
        description="List the named model presets of the registry, one per line with its description: the names "
        "`pixelrefer build NAME --out DIR` and training recipes (`model:`) accept.",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..presets import list_presets, load_preset
    from .output import show

    for name in list_presets():
        show(f"{name:<24} {load_preset(name).description}")
    return 0
