# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`RegionSegmenter.to_masks`: 16 click / box regions in one call vs one call per region.

Batched, each image is encoded once and the mask decoder runs once per number of clicks; one by one, every region
encodes its image again. Both give the same masks (checked; exit 1 if not).
"""

from __future__ import annotations

import argparse
import sys
import tempfile

import numpy as np
import torch
from common import add_common_arguments, median_seconds

from pixelrefer_plugin.segmentation import RegionSegmenter
from pixelrefer_plugin.segmentation.tiny import build_tiny_sam2


def make_regions(rng: np.random.Generator, count: int, size: tuple[int, int]) -> list[dict]:
    """`count` prompts cycling through one click, two clicks + a negative one, and a box."""
    height, width = size
    regions = []
    for index in range(count):
        x, y = float(rng.integers(0, width - 40)), float(rng.integers(0, height - 40))
        if index % 3 == 0:
            regions.append({"point": [x, y]})
        elif index % 3 == 1:
            regions.append({"points": [[x, y], [x + 10, y + 10]], "negative_points": [[x + 30, y + 30]]})
        else:
            regions.append({"box": [x, y, x + 40, y + 40]})
    return regions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser, "mode")
    parser.add_argument("--segmenter", help="SAM 2 folder, hub id or preset (default: the tiny random SAM 2)")
    parser.add_argument("--regions", type=int, default=16)
    parser.add_argument("--images", type=int, default=2, help="the regions are spread over this many images")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as folder:
        source = args.segmenter or build_tiny_sam2(folder, seed=args.seed)
        segmenter = RegionSegmenter.from_pretrained(source, device=args.device)
        images = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(args.images)]
        regions = make_regions(rng, args.regions, (480, 640))
        on_image = [index % args.images for index in range(args.regions)]
        placed = [{**region, "image": image} for region, image in zip(regions, on_image, strict=True)]

        def batched():
            return segmenter.to_masks(placed, images=images)

        def one_by_one():
            return [segmenter.to_masks([r], images=[images[i]])[0] for r, i in zip(regions, on_image, strict=True)]

        together, alone = batched(), one_by_one()
        same = all(np.array_equal(a["mask"], b["mask"]) for a, b in zip(together, alone, strict=True))
        seconds_batched, seconds_alone = median_seconds(
            [batched, one_by_one], torch.device(args.device), args.warmup, args.repeats
        )
    print(f"segmenter: {args.segmenter or 'tiny random SAM 2 (128x128 input)'} on {args.device}")
    print(f"{args.regions} regions on {args.images} images of 640x480 (point / 2 points + negative / box)")
    print(f"one by one: {seconds_alone * 1000:.1f} ms   batched: {seconds_batched * 1000:.1f} ms")
    print(f"speed-up (one by one / batched): {seconds_alone / seconds_batched:.2f}x")
    print(f"batched masks == one-by-one masks: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
