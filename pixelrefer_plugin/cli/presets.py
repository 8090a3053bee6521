# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer presets`: list the registry."""

from __future__ import annotations

import argparse


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("presets", help="list the named model presets")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..presets import list_presets, load_preset

    for name in list_presets():
        preset = load_preset(name)
        print(f"{name:<24} {preset.description}")
    return 0
