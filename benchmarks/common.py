# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Command-line options shared by the benchmark scripts."""

from __future__ import annotations

import argparse


def add_common_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """`--device`, `--repeats`, `--warmup`, `--threads`, `--seed`; `what` names the things timed (for the help)."""
    parser.add_argument("--device", default="cpu", help="torch device (cpu or cuda); default cpu")
    parser.add_argument("--repeats", type=int, default=10, help=f"timed runs per {what} (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs before timing")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
