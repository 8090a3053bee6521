# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer build NAME --out DIR`: a loadable checkpoint of a registry preset."""

from __future__ import annotations

import argparse


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "build",
        help="build a named model: released weights (downloaded and converted) or a random-init preset",
        description="Write a checkpoint of a registry preset that loads with "
        "AutoModelForImageTextToText.from_pretrained(DIR, trust_remote_code=True). Presets with released weights "
        "are downloaded from the hub and converted; tiny presets (and --random-init) are randomly initialised.",
    )
    parser.add_argument(
        "name", help="preset name, see `pixelrefer presets`; or a SAM 2 segmenter: sam2.1-hiera-tiny ... -large"
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--random-init", action="store_true", help="random weights instead of the released ones")
    parser.add_argument("--tokenizer", help="local folder with the preset's tokenizer files (with --random-init)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..conversion import build_released
    from ..presets import build_preset, load_preset
    from ..segmentation import SEGMENTER_PRESETS, download_segmenter
    from .output import show

    if args.name in SEGMENTER_PRESETS:
        out = download_segmenter(args.name, args.out)
        show(f"wrote segmenter {args.name} ({SEGMENTER_PRESETS[args.name]}) to {out}; use it with --segmenter {out}")
        return 0
    preset = load_preset(args.name)
    if args.random_init or preset.hub_id is None:
        out = build_preset(
            args.name, args.out, tokenizer_path=args.tokenizer, seed=args.seed, overwrite=args.overwrite
        )
        show(f"wrote {args.name} (random init) to {out}")
        show_region_options(out)
    else:
        out = build_released(preset, args.out, overwrite=args.overwrite)
        show(f"wrote {args.name} (released weights of {preset.hub_id}) to {out}")
    return 0


def show_region_options(folder) -> None:
    """Say in which region settings a checkpoint differs from the released behaviour (docs/model.md)."""
    from ..configuration_pixelrefer import PixelReferConfig
    from .output import show

    config = PixelReferConfig.from_pretrained(folder)
    options = config.region_settings.differences_from_released(config.variant)
    if options:
        listed = ", ".join(f"{name}={value!r}" for name, value in options.items())
        show(f"region settings other than the released behaviour: {listed} (docs/model.md)")
    else:
        show("region settings: the released behaviour")
