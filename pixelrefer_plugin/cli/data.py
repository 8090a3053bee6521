# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer data validate FILE --root DIR`: check a training data file before training (see docs/data-format.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "data",
        help="check region training data",
        description="Tools for region training data in the published PixelRefer layout (docs/data-format.md).",
    )
    actions = parser.add_subparsers(dest="data_command", metavar="{validate}", required=True)
    validate = actions.add_parser(
        "validate",
        help="check every record of a JSON / JSONL data file",
        description="Check every record of a data file: files exist and are readable, masks decode, fit their image "
        "or frame and are non-empty, frame numbers exist, one <region> per mask, an assistant turn. Prints one line "
        "per problem; exits 0 when every record is usable, 1 when one is not, 2 when the file cannot be read as a "
        "non-empty list of records.",
    )
    validate.add_argument("file", help="data file: a JSON list of records or a JSONL file with one record per line")
    validate.add_argument("--root", required=True, help="folder the records' image and video paths are relative to")
    validate.add_argument(
        "--variant",
        choices=("full", "lite"),
        default="full",
        help="the model the data is for (lite: objects may span several video frames)",
    )
    validate.add_argument(
        "--segmenter",
        metavar="DIR_OR_ID",
        help="SAM 2 folder, hub id or preset (sam2.1-hiera-tiny ...) that turns point / box annotations into masks, "
        "as data.segmenter in a recipe; the masks are made once and cached for training",
    )
    validate.add_argument(
        "--mask-cache",
        metavar="DIR",
        help="folder of the masks made from point / box annotations (default ~/.cache/pixelrefer/segmenter-masks)",
    )
    validate.add_argument(
        "--skip-invalid",
        action="store_true",
        help="exit 0 when at least one record is usable, as training with skip_invalid: true would (it drops the "
        "records listed)",
    )
    validate.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..training.data import DataFileError, load_records, validate_records
    from .errors import FlagError

    if not Path(args.root).is_dir():
        raise FlagError("--root", args.root, "no such folder; expected the folder the records' paths are relative to")
    if args.mask_cache is not None and args.segmenter is None:
        raise FlagError("--mask-cache", args.mask_cache, "goes with --segmenter (the segmenter whose masks it caches)")
    records = load_records(args.file)
    if not records:
        raise DataFileError(args.file, "holds no record; expected at least one")
    problems = validate_records(
        records, args.root, variant=args.variant, segmenter=args.segmenter, mask_cache=args.mask_cache
    )
    for problem in problems:
        print(problem)
    bad = len({problem.index for problem in problems})
    if not problems:
        print(f"{args.file}: {len(records)} record(s), all valid ({args.variant} variant)", file=sys.stderr)
        return 0
    print(
        f"{args.file}: {len(problems)} problem(s) in {bad} of {len(records)} record(s) ({args.variant} variant)",
        file=sys.stderr,
    )
    return 0 if args.skip_invalid and bad < len(records) else 1
