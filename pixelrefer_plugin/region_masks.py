# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Region dicts as users write them (mask, RLE, polygon, box, point) turned into validated binary masks.

A region is a dict with exactly one of the keys in `REGION_KINDS` plus optional keys in `REGION_OPTIONS`:

* `mask`: bool / integer / float array, torch tensor or PIL image of shape `(H, W)` (the size of its image); a pixel is
  in the region when it is non-zero (bool / integer / PIL) or `>= 0.5` (float).
* `rle`: COCO run-length encoding `{"size": [H, W], "counts": str | bytes | list[int]}`, compressed or not.
* `polygon`: COCO polygon, a list of `[x0, y0, x1, y1, ...]` rings (or one flat ring) in pixels.
* `box`: `[x0, y0, x1, y1]` in pixels (or `[x, y, w, h]` with `box_format="xywh"`), filled as a rectangle of the
  pixels it covers.
* `point`: `[x, y]` in pixels, filled as a square of `point_size` pixels centred on the point and clipped to the
  image (the model sees the neighbourhood of the point, not a segmented object).

`score` is metadata the processor ignores (the segmenter's predicted IoU of a mask it made from a click or a box,
see `pixelrefer_plugin/segmentation`). `image` (default 0) selects which image of the sample the region lies on. On a
video, `frame` gives the frame number the region lies on (and `video`, default 0, which video of the sample).
PixelRefer-Lite also takes an object over several frames: `{"frames": {frame: {"mask": ...}, other_frame: {"box":
...}}, "video": 0}`. Any other key is an error, so a typo such as `bbox` never passes silently.

This file is part of the exported model code: it imports only numpy, torch, pycocotools (inside functions) and its
sibling files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .errors import RegionInputError
from .image_loading import format_size

REGION_KINDS = ("mask", "rle", "polygon", "box", "point")
REGION_OPTIONS = ("box_format", "image", "video", "frame", "score")
TRACK_KEY = "frames"
BOX_FORMATS = ("xyxy", "xywh")


def region_kind(region: Any, sample_index: int, region_index: int, options: tuple[str, ...] = REGION_OPTIONS) -> str:
    """Validate the keys of a region dict and return its kind (one of `REGION_KINDS`)."""
    if not isinstance(region, Mapping):
        raise RegionInputError(
            f"expected a dict with one of the keys {REGION_KINDS}, got {type(region).__name__}",
            sample_index,
            region_index,
        )
    unknown = sorted(set(region) - set(REGION_KINDS) - set(options))
    if unknown:
        raise RegionInputError(
            f"unknown key(s) {unknown}; a region takes one of {REGION_KINDS} and optionally {options}",
            sample_index,
            region_index,
        )
    kinds = [kind for kind in REGION_KINDS if kind in region]
    if len(kinds) != 1:
        found = "none of them" if not kinds else f"{len(kinds)} of them ({', '.join(kinds)})"
        raise RegionInputError(
            f"expected exactly one of the keys {REGION_KINDS}, found {found}", sample_index, region_index
        )
    return kinds[0]


def _frame_number(value: Any, sample_index: int, region_index: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise RegionInputError(f"frame must be a non-negative integer, got {value!r}", sample_index, region_index)
    return int(value)


def _source_index(region: Mapping[str, Any], key: str, sample_index: int, region_index: int) -> int:
    value = region.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise RegionInputError(
            f"{key} must be a non-negative integer index, got {value!r}", sample_index, region_index
        )
    return int(value)


def region_parts(
    region: Any, sample_index: int, region_index: int
) -> tuple[str, int, list[tuple[int | None, Mapping[str, Any]]]]:
    """Where a region lies: `(source, index, parts)`.

    `source` is `"image"` or `"video"`, `index` which image / video of the sample, and `parts` a list of
    `(frame number or None, single-kind region dict)`, one per masked frame, sorted by frame.
    """
    if isinstance(region, Mapping) and TRACK_KEY in region:
        unknown = sorted(set(region) - {TRACK_KEY, "video"})
        if unknown:
            raise RegionInputError(
                f"a multi-frame region takes only 'frames' and 'video', got also {unknown}", sample_index, region_index
            )
        track = region[TRACK_KEY]
        if not isinstance(track, Mapping) or not track:
            raise RegionInputError(
                "frames must be a non-empty dict {frame number: region dict}", sample_index, region_index
            )
        parts = []
        for frame, part in track.items():
            region_kind(part, sample_index, region_index, options=("box_format", "score"))
            parts.append((_frame_number(frame, sample_index, region_index), part))
        return "video", _source_index(region, "video", sample_index, region_index), sorted(parts, key=lambda p: p[0])
    region_kind(region, sample_index, region_index)
    if "frame" in region:
        if "image" in region:
            raise RegionInputError(
                "a region lies on an image ('image') or on a video frame ('frame'), not both",
                sample_index,
                region_index,
            )
        frame = _frame_number(region["frame"], sample_index, region_index)
        return "video", _source_index(region, "video", sample_index, region_index), [(frame, region)]
    if "video" in region:
        raise RegionInputError(
            "a region on a video needs the frame number it lies on ('frame')", sample_index, region_index
        )
    return "image", _source_index(region, "image", sample_index, region_index), [(None, region)]


def region_to_mask(
    region: Mapping[str, Any],
    image_size: tuple[int, int],
    sample_index: int,
    region_index: int,
    point_size: int = 28,
) -> np.ndarray:
    """Turn one region dict into a validated, non-empty boolean mask of shape `image_size = (H, W)`."""
    kind = region_kind(region, sample_index, region_index)
    value = region[kind]
    if kind == "mask":
        mask = _mask_from_array(value, image_size, sample_index, region_index)
    elif kind == "rle":
        mask = _mask_from_rle(value, image_size, sample_index, region_index)
    elif kind == "polygon":
        mask = _mask_from_polygon(value, image_size, sample_index, region_index)
    elif kind == "box":
        mask = _mask_from_box(box_corners(region, image_size, sample_index, region_index), image_size)
    else:
        mask = _mask_from_point(value, image_size, point_size, sample_index, region_index)
    if not mask.any():
        raise RegionInputError(
            f"the {kind} covers no pixel of the {format_size(image_size)} image; expected a non-empty region",
            sample_index,
            region_index,
        )
    return mask


def parse_numbers(value: Any, count: int | None, what: str, sample_index: int, region_index: int) -> list[float]:
    """`value` (a list, tuple, numpy array or tensor) as `count` finite floats (any number when `count` is None);
    a `RegionInputError` naming `what` otherwise."""
    if isinstance(value, (np.ndarray, torch.Tensor)):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or (count is not None and len(value) != count):
        size = f"{count} numbers" if count is not None else "a list of numbers"
        raise RegionInputError(f"{what} must be {size}, got {value!r}", sample_index, region_index)
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        raise RegionInputError(
            f"{what} must contain only numbers, got {value!r}", sample_index, region_index
        ) from None
    if not all(math.isfinite(v) for v in numbers):
        raise RegionInputError(f"{what} must contain finite numbers, got {value!r}", sample_index, region_index)
    return numbers


def _mask_from_array(value: Any, image_size: tuple[int, int], sample_index: int, region_index: int) -> np.ndarray:
    from PIL import Image

    if isinstance(value, Image.Image):
        value = np.asarray(value.convert("L"))
    elif isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise RegionInputError(
            f"mask must be a numpy array, torch tensor or PIL image, got {type(value).__name__}",
            sample_index,
            region_index,
        )
    if value.ndim == 3 and value.shape[0] == 1:
        value = value[0]
    if value.shape != tuple(image_size):
        raise RegionInputError(
            f"mask has shape {tuple(value.shape)} but its image is {format_size(image_size)}; "
            f"expected a mask of shape {tuple(image_size)}",
            sample_index,
            region_index,
        )
    if np.issubdtype(value.dtype, np.floating):
        finite = np.isfinite(value)
        if not finite.all():
            raise RegionInputError(
                f"the mask holds {int((~finite).sum())} NaN or infinite value(s); expected finite values (a float "
                "mask is inside where >= 0.5)",
                sample_index,
                region_index,
            )
        return value >= 0.5
    return value != 0


def _mask_from_rle(value: Any, image_size: tuple[int, int], sample_index: int, region_index: int) -> np.ndarray:
    from pycocotools import mask as mask_utils

    if not isinstance(value, Mapping) or "size" not in value or "counts" not in value:
        raise RegionInputError(
            'rle must be a COCO RLE dict {"size": [H, W], "counts": ...}', sample_index, region_index
        )
    size = parse_numbers(value["size"], 2, "rle size", sample_index, region_index)
    rle_height, rle_width = int(size[0]), int(size[1])
    if (rle_height, rle_width) != tuple(image_size):
        raise RegionInputError(
            f"rle size is {format_size((rle_height, rle_width))} but its image is {format_size(image_size)}",
            sample_index,
            region_index,
        )
    counts = value["counts"]
    try:
        if isinstance(counts, (list, tuple)):
            if sum(int(c) for c in counts) != rle_height * rle_width or any(int(c) < 0 for c in counts):
                raise ValueError(f"uncompressed counts must be non-negative and sum to {rle_height * rle_width}")
            encoded = mask_utils.frPyObjects(
                {"size": [rle_height, rle_width], "counts": list(counts)}, rle_height, rle_width
            )
        elif isinstance(counts, (str, bytes)):
            counts = counts.encode() if isinstance(counts, str) else counts
            runs = compressed_rle_counts(counts)
            if sum(runs) != rle_height * rle_width or any(run < 0 for run in runs):
                raise ValueError(
                    f"compressed counts must decode to non-negative runs summing to {rle_height * rle_width}"
                )
            encoded = {"size": [rle_height, rle_width], "counts": counts}
        else:
            raise ValueError(f"counts must be a string, bytes or a list of integers, got {type(counts).__name__}")
        decoded = mask_utils.decode(encoded)
    except (ValueError, TypeError, OSError) as error:
        raise RegionInputError(f"malformed rle ({error})", sample_index, region_index) from None
    if decoded.shape != tuple(image_size):
        raise RegionInputError(
            f"rle decodes to shape {decoded.shape}, expected {tuple(image_size)}", sample_index, region_index
        )
    return decoded.astype(bool)


def compressed_rle_counts(counts: bytes) -> list[int]:
    """Decode the run lengths of a COCO compressed RLE string (the `rleFrString` format of pycocotools).

    pycocotools decodes malformed strings without complaint (into uninitialised memory), so strings are checked here
    first. Raises `ValueError` on characters outside the format or a truncated string.
    """
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(counts):
                raise ValueError("truncated compressed counts")
            char = counts[position] - 48
            if not 0 <= char < 64:
                raise ValueError(f"invalid character {chr(counts[position])!r} in compressed counts")
            value |= (char & 0x1F) << shift
            more = bool(char & 0x20)
            position += 1
            shift += 5
            if not more and char & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def _mask_from_polygon(value: Any, image_size: tuple[int, int], sample_index: int, region_index: int) -> np.ndarray:
    from pycocotools import mask as mask_utils

    if isinstance(value, (np.ndarray, torch.Tensor)):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not value:
        raise RegionInputError(
            "polygon must be a non-empty list of [x0, y0, x1, y1, ...] rings", sample_index, region_index
        )
    rings = [value] if not isinstance(value[0], (list, tuple, np.ndarray)) else list(value)
    checked = []
    for ring_index, ring in enumerate(rings):
        numbers = parse_numbers(ring, None, f"polygon ring {ring_index}", sample_index, region_index)
        if len(numbers) < 6 or len(numbers) % 2:
            raise RegionInputError(
                f"polygon ring {ring_index} has {len(numbers)} numbers; expected an even count of at least 6 "
                "(three x, y points)",
                sample_index,
                region_index,
            )
        checked.append(numbers)
    height, width = image_size
    rles = mask_utils.frPyObjects(checked, height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def box_corners(
    region: Mapping[str, Any], image_size: tuple[int, int], sample_index: int, region_index: int
) -> tuple[float, float, float, float]:
    """The `(x0, y0, x1, y1)` corners of a box region (`box`, `box_format`), checked to be non-empty and to lie inside
    an `image_size = (H, W)` image."""
    value, box_format = region["box"], region.get("box_format", "xyxy")
    if box_format not in BOX_FORMATS:
        raise RegionInputError(
            f"box_format must be one of {BOX_FORMATS}, got {box_format!r}", sample_index, region_index
        )
    x0, y0, a, b = parse_numbers(value, 4, f"box ({box_format})", sample_index, region_index)
    x1, y1 = (x0 + a, y0 + b) if box_format == "xywh" else (a, b)
    height, width = image_size
    if x1 <= x0 or y1 <= y0:
        raise RegionInputError(
            f"box {list(value)} ({box_format}) is empty; expected x1 > x0 and y1 > y0", sample_index, region_index
        )
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        raise RegionInputError(
            f"box {list(value)} ({box_format}) lies outside the {format_size(image_size)} image; expected "
            f"0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height}",
            sample_index,
            region_index,
        )
    return x0, y0, x1, y1


def _mask_from_box(corners: tuple[float, float, float, float], image_size: tuple[int, int]) -> np.ndarray:
    """The pixels a box covers: every pixel the `(x0, y0, x1, y1)` rectangle touches."""
    x0, y0, x1, y1 = corners
    mask = np.zeros(image_size, dtype=bool)
    mask[int(math.floor(y0)) : int(math.ceil(y1)), int(math.floor(x0)) : int(math.ceil(x1))] = True
    return mask


def _mask_from_point(
    value: Any, image_size: tuple[int, int], point_size: int, sample_index: int, region_index: int
) -> np.ndarray:
    x, y = parse_numbers(value, 2, "point", sample_index, region_index)
    height, width = image_size
    if not (0 <= x < width and 0 <= y < height):
        raise RegionInputError(
            f"point {list(value)} lies outside the {format_size(image_size)} image; expected "
            f"0 <= x < {width} and 0 <= y < {height}",
            sample_index,
            region_index,
        )
    half = point_size / 2
    mask = np.zeros(image_size, dtype=bool)
    top, left = max(0, int(math.floor(y - half))), max(0, int(math.floor(x - half)))
    bottom, right = min(height, int(math.ceil(y + half))), min(width, int(math.ceil(x + half)))
    mask[top:bottom, left:right] = True
    return mask


__all__ = [
    "BOX_FORMATS",
    "REGION_KINDS",
    "REGION_OPTIONS",
    "TRACK_KEY",
    "box_corners",
    "compressed_rle_counts",
    "parse_numbers",
    "region_kind",
    "region_parts",
    "region_to_mask",
]
