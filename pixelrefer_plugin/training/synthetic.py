# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Synthetic region data in the published training format: coloured shapes, one RLE mask per object, and questions
whose answer depends on which region is referred to."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..demo.scenes import make_scene

QUESTIONS = (("What colour is <region>? Answer with one word.", "colour"), ("What shape is <region>?", "shape"))


def encode_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE of a boolean mask, JSON-ready."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()}


def write_synthetic_dataset(
    out: str | Path, num_records: int, seed: int = 0, size: tuple[int, int] = (128, 160), objects: int = 3
) -> Path:
    """Write `num_records` image records (PNG + `train.json` in the published layout) under `out`; returns the JSON.

    Each record asks about one object of its scene, by colour or by shape; the scene also holds other objects, so the
    answer depends on which region is referred to.
    """
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records = []
    for index in range(num_records):
        image, scene_objects = make_scene(rng, size=size, num_objects=objects)
        name = f"images/scene_{index:05d}.png"
        Image.fromarray(image).save(out / name)
        target = scene_objects[int(rng.integers(len(scene_objects)))]
        question, attribute = QUESTIONS[index % len(QUESTIONS)]
        records.append(
            {
                "image": name,
                "height": size[0],
                "width": size[1],
                "masks": [encode_rle(target.mask)],
                "conversations": [
                    {"from": "human", "value": "<image>\n" + question},
                    {"from": "gpt", "value": getattr(target, attribute)},
                ],
            }
        )
    path = out / "train.json"
    path.write_text(json.dumps(records))
    return path
