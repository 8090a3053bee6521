# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer tasks-path`: the folder of PixelRefer's lmms-eval tasks, for `--include_path`."""

from __future__ import annotations

import argparse


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "tasks-path",
        help="print the lmms-eval task folder (for --include_path)",
        description="Print the folder holding PixelRefer's lmms-eval region tasks and their offline fixture data "
        '(written once per package version): lmms-eval --include_path "$(pixelrefer tasks-path)" ...',
    )
    parser.add_argument("--refresh", action="store_true", help="rewrite the folder and its fixture data")
    parser.set_defaults(run=run, uses_torch=False)  # light: `pixelrefer` skips its DeepSpeed check (torch import)


def run(args: argparse.Namespace) -> int:
    from ..integrations.lmms_eval.task_dir import tasks_path
    from .output import show

    show(str(tasks_path(refresh=args.refresh)))
    return 0
