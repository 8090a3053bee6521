# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer demo`: train the tiny preset on synthetic region questions, evaluate it through lmms-eval against a
zeroed-object-token control, print the table and draw the held-out scenes (offline, CPU, a few minutes; cached)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..demo import DEMO_TORCH_THREADS
from .errors import FlagError


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "demo",
        help="offline demo: train the tiny preset on synthetic regions, evaluate, draw",
        description="Train the random-init tiny preset with recipes/demo-tiny.yaml on generated scenes of coloured "
        "shapes, evaluate it and the same model with its object tokens zeroed on the held-out lmms-eval task "
        "pixelrefer_synthetic, print the table and write a picture. The trained model is cached "
        "($PIXELREFER_DEMO_DIR, default ~/.cache/pixelrefer/demo): a second run only evaluates.",
    )
    parser.add_argument("--picture", default="pixelrefer-demo.png", help="PNG of held-out scenes with the answers")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N held-out questions")
    parser.add_argument("--cache-dir", type=Path, default=None, help="demo cache folder")
    parser.add_argument(
        "--threads",
        type=int,
        default=DEMO_TORCH_THREADS,
        help=f"torch threads for training and evaluation (default {DEMO_TORCH_THREADS} on every machine; another "
        "number rounds sums differently and trains another model, cached apart)",
    )
    parser.add_argument(
        "--quickstart",
        action="store_true",
        help="only run regions -> object tokens -> batched generation on the random tiny preset (seconds, no training)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.quickstart:
        from ..demo.quickstart import run_quickstart

        run_quickstart()
        return 0
    from ..demo.trained import run_demo

    if args.threads < 1:
        raise FlagError("--threads", str(args.threads), "expected a number >= 1")
    overrides = {"training.max_steps": args.steps} if args.steps else {}
    result = run_demo(overrides, picture=args.picture, limit=args.limit, root=args.cache_dir, threads=args.threads)
    trained = "reused from the cache" if result.train_seconds is None else f"trained in {result.train_seconds:.0f} s"
    print(f"\npixelrefer-tiny on held-out synthetic scenes ({trained}; model in {result.model_dir})\n")
    print(result.table())
    if result.picture:
        print(f"\npicture of held-out scenes with the answers: {result.picture}")
    print(
        "ask it yourself: pixelrefer describe --model "
        f"{result.model_dir} --image IMAGE --box x0,y0,x1,y1 --question 'What colour is <region>?'"
    )
    return 0
