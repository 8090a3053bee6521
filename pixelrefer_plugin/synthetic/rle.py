# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""COCO run-length encoding of boolean masks, the form region documents and training records store masks in."""

from __future__ import annotations

import numpy as np


def encode_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE of an `(H, W)` boolean mask, JSON-ready: `{"size": [H, W], "counts": str}`."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()}
