# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The `pixelrefer` command line.

One error path for every command: a command raises a typed error (an input error: a `ValueError` such as
`PixelReferInputError`, `OutputFolderError`, `RecipeError`, `DataFileError`; a missing file; or a runtime failure:
`RuntimeError` / `OSError`), and `main` prints it as one line, `pixelrefer <command>: error: <message>`, and exits 2
for input errors (as argparse does for bad arguments) or 1 for runtime failures. `--debug` shows the traceback
instead.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from . import build, convert, data, demo, describe, merge, presets, serve, tasks_path, train
from .output import quiet_deepspeed, setup_logging

# Exit status 2: the user's input is wrong (as argparse's usage errors). Checked before RUNTIME_ERRORS, whose OSError
# is a base class of FileNotFoundError.
INPUT_ERRORS = (ValueError, LookupError, FileNotFoundError, NotADirectoryError, IsADirectoryError)
# Exit status 1: the input is fine but running the command failed (disk full, no network, a failed training step).
RUNTIME_ERRORS = (RuntimeError, OSError)

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
    "serve": serve,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pixelrefer", description="PixelRefer region-level multimodal LLMs.")
    parser.add_argument("--version", action="version", version=f"pixelrefer {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log debug messages (and other libraries' info messages)"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of an error instead of its one-line message"
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
    except (*INPUT_ERRORS, *RUNTIME_ERRORS) as error:
        if args.debug:
            raise
        print(f"pixelrefer {command_name(args)}: error: {one_line(error)}", file=sys.stderr)
        return 2 if isinstance(error, INPUT_ERRORS) else 1


def command_name(args: argparse.Namespace) -> str:
    """`train`, `data validate`, ...: the command as the user typed it."""
    action = getattr(args, "data_command", None)
    return f"{args.command} {action}" if action else args.command


def one_line(error: BaseException) -> str:
    """The message of `error` on one line: a `KeyError`'s own text (not its repr), several lines joined by "; "."""
    message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
