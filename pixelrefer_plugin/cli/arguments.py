# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Arguments several commands share, declared once."""

from __future__ import annotations

import argparse

# the names `runtime.resolve_dtype` takes; spelled out so that building the parser never imports torch
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """`--device` and `--dtype`, read by `runtime.resolve_device` / `resolve_dtype` (one policy for every command)."""
    parser.add_argument(
        "--device", metavar="D", help="cuda, cuda:1, cpu, ... (default: CUDA if available, else the CPU)"
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=DTYPE_CHOICES,
        help="auto (default): bfloat16 on a GPU that supports it, else float32",
    )
