# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer train RECIPE.yaml`: fine-tune with a recipe (single process, torchrun, accelerate or deepspeed)."""

from __future__ import annotations

import argparse


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "train",
        help="fine-tune with a recipe (LoRA on region data)",
        description="Fine-tune as a recipe says. Runs as it is (one process, DeepSpeed recipes included), or under "
        "`torchrun -m pixelrefer_plugin.cli train`, `accelerate launch -m pixelrefer_plugin.cli train` or "
        "`deepspeed --module pixelrefer_plugin.cli train` (see docs/fine-tuning.md, 'From one GPU to many').",
    )
    parser.add_argument("recipe", help="recipe YAML (see recipes/)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a recipe value"
    )
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip bad training records (each is logged and counted) instead of stopping; same as data.skip_invalid",
    )
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)  # deepspeed
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..training.recipe import load_recipe, parse_overrides
    from ..training.trainer import RunAlreadyComplete, run_training
    from .output import show

    overrides = parse_overrides(args.overrides)
    if args.skip_invalid:
        overrides["data.skip_invalid"] = True
    try:
        result = run_training(load_recipe(args.recipe, overrides))
    except RunAlreadyComplete as done:
        show(str(done))
        return 0
    loss = result.metrics.get("train_loss")
    loss_text = f", train_loss {loss:.4g}" if isinstance(loss, (int, float)) else ""
    show(f"trained {args.recipe} to step {result.global_step}{loss_text}; saved to {result.output_dir}")
    return 0
