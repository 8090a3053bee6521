# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Synthetic region data in the published training format: coloured shapes (and short clips of moving shapes), one
RLE mask per referred object, and questions whose answer depends on which region is referred to."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from ..synthetic import encode_rle, generate_samples, write_clip

logger = logging.getLogger(__name__)


def write_synthetic_dataset(
    out: str | Path,
    num_records: int,
    seed: int = 0,
    size: tuple[int, int] = (128, 160),
    objects: int = 3,
    kinds: Sequence[str] = ("colour", "shape"),
    video_fraction: float = 0.0,
) -> Path:
    """Write `num_records` records (PNG / MP4 files + `train.json` in the published layout) under `out`; returns the
    JSON path.

    Records cycle through the question `kinds` (`colour`, `shape`, `larger`; see `synthetic/questions.py`); about
    `video_fraction` of the colour / shape records are clips with the region on a middle frame. Every scene holds
    several objects, so the answer depends on which region is referred to.
    """
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    records = []
    samples = generate_samples(
        num_records, seed, kinds=kinds, video_fraction=video_fraction, image_size=tuple(size), num_objects=objects
    )
    for index, sample in enumerate(samples):
        height, width = sample.frames[0].shape[:2]
        tag = "<video>" if sample.is_video else "<image>"
        record = {
            "height": height,
            "width": width,
            "kind": sample.kind,
            "conversations": [
                {"from": "human", "value": f"{tag}\n{sample.question}"},
                {"from": "gpt", "value": sample.answer},
            ],
        }
        if sample.is_video:
            name = f"images/clip_{index:05d}.mp4"
            write_clip(out / name, sample.frames)
            record["video"] = [name]
            record["masks"] = [{str(sample.frame): encode_rle(mask)} for mask in sample.masks]
        else:
            name = f"images/scene_{index:05d}.png"
            Image.fromarray(sample.frames[0]).save(out / name)
            record["image"] = name
            record["masks"] = [encode_rle(mask) for mask in sample.masks]
        records.append(record)
        if (index + 1) % 1000 == 0:
            logger.info("wrote %d / %d synthetic records", index + 1, num_records)
    path = out / "train.json"
    path.write_text(json.dumps(records))
    return path
