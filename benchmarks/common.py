# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Command-line options shared by the benchmark scripts."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch


def add_common_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """`--device`, `--repeats`, `--warmup`, `--threads`, `--seed`; `what` names the things timed (for the help)."""
    parser.add_argument("--device", default="cpu", help="torch device (cpu or cuda); default cpu")
    parser.add_argument("--repeats", type=int, default=10, help=f"timed runs per {what} (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs before timing")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(
    functions: list[Callable[[], object]], device: torch.device, warmup: int, repeats: int
) -> list[float]:
    """Median wall time of each function over `repeats` runs after `warmup` untimed runs.

    The functions are run in turn within each repeat (interleaved), so a change of machine load affects all alike.
    """
    for _ in range(warmup):
        for function in functions:
            function()
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for function, samples in zip(functions, times, strict=True):
            synchronize(device)
            start = time.perf_counter()
            function()
            synchronize(device)
            samples.append(time.perf_counter() - start)
    return [statistics.median(samples) for samples in times]
