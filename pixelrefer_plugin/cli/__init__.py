# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The `pixelrefer` command line."""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from . import build, convert, data, demo, describe, merge, presets, tasks_path, train
from .output import quiet_deepspeed, setup_logging

COMMANDS = {
    "build": build,
    "convert": convert,
    "presets": presets,
    "train": train,
    "data": data,
    "merge": merge,
    "tasks-path": tasks_path,
    "demo": demo,
    "describe": describe,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pixelrefer", description="PixelRefer region-level multimodal LLMs.")
    parser.add_argument("--version", action="version", version=f"pixelrefer {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log debug messages (and other libraries' info messages)"
    )
    # the deepspeed launcher passes --local_rank=N before the subcommand (the rank is also in the environment)
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    subcommands = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS.values():
        module.add_parser(subcommands)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if getattr(args, "uses_torch", True):  # after parsing: --help and --version never import torch
        quiet_deepspeed()
    try:
        return int(args.run(args) or 0)
    except (FileNotFoundError, KeyError, ValueError, RuntimeError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"pixelrefer {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
