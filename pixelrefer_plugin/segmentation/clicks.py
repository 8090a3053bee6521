# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Region prompts a segmenter turns into masks: clicks and boxes, validated against their image.

A prompt region is a region dict (see `pixelrefer_plugin/region_masks.py`) whose kind is

* `point`: `[x, y]`, one positive click;
* `points`: `[[x, y], ...]`, several positive clicks on the same object;
* `box`: `[x0, y0, x1, y1]` (or `[x, y, w, h]` with `box_format="xywh"`);

optionally with `negative_points`: `[[x, y], ...]`, clicks on what is *not* the object. Coordinates are pixels;
every click must lie on the image (`0 <= x < W`, `0 <= y < H`), a box inside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import RegionInputError
from ..image_loading import format_size
from ..region_masks import box_corners, parse_numbers

PROMPT_KINDS = ("point", "points", "box")
NEGATIVE_KEY = "negative_points"
POSITIVE, NEGATIVE, BOX_TOP_LEFT, BOX_BOTTOM_RIGHT = 1, 0, 2, 3


@dataclass(frozen=True)
class Clicks:
    """The prompt of one region as SAM 2 reads it: pixel coordinates and labels (1 positive, 0 negative, 2 / 3 the
    top-left / bottom-right corner of a box)."""

    points: tuple[tuple[float, float], ...]
    labels: tuple[int, ...]


def is_prompt(region: Any) -> bool:
    """Whether a region (or a part of a multi-frame region) is a click / box prompt for the segmenter."""
    return isinstance(region, Mapping) and any(key in region for key in (*PROMPT_KINDS, NEGATIVE_KEY))


def prompt_kind(region: Mapping[str, Any], sample_index: int, region_index: int) -> str:
    """The single prompt kind of a prompt region."""
    kinds = [kind for kind in PROMPT_KINDS if kind in region]
    if len(kinds) != 1 or any(key in region for key in ("mask", "rle", "polygon")):
        found = ", ".join(key for key in region if key in (*PROMPT_KINDS, "mask", "rle", "polygon")) or "none"
        raise RegionInputError(
            f"a segmenter prompt takes exactly one of {PROMPT_KINDS} (with optional {NEGATIVE_KEY!r}), found {found}",
            sample_index,
            region_index,
        )
    return kinds[0]


def parse_clicks(
    region: Mapping[str, Any], image_size: tuple[int, int], sample_index: int, region_index: int
) -> Clicks:
    """The validated clicks of a prompt region on an `image_size = (H, W)` image."""
    kind = prompt_kind(region, sample_index, region_index)
    points: list[tuple[float, float]] = []
    labels: list[int] = []
    if kind == "box":
        x0, y0, x1, y1 = box_corners(region, image_size, sample_index, region_index)
        points += [(x0, y0), (x1, y1)]
        labels += [BOX_TOP_LEFT, BOX_BOTTOM_RIGHT]
    else:
        positive = (
            [region["point"]]
            if kind == "point"
            else _point_list(region["points"], "points", sample_index, region_index)
        )
        for index, point in enumerate(positive):
            what = "point" if kind == "point" else f"points[{index}]"
            points.append(_point(point, what, image_size, sample_index, region_index))
            labels.append(POSITIVE)
    negative = _point_list(region.get(NEGATIVE_KEY, []), NEGATIVE_KEY, sample_index, region_index, allow_empty=True)
    for index, point in enumerate(negative):
        points.append(_point(point, f"{NEGATIVE_KEY}[{index}]", image_size, sample_index, region_index))
        labels.append(NEGATIVE)
    return Clicks(tuple(points), tuple(labels))


def describe_prompt(region: Mapping[str, Any]) -> str:
    """A short text of a prompt for messages: `point [120, 80]`, `box [10, 20, 200, 240]`, `3 points`."""
    for kind in PROMPT_KINDS:
        if kind in region:
            value = region[kind]
            if kind == "points":
                return f"{len(value)} points" if isinstance(value, (list, tuple)) else "points"
            return f"{kind} {list(value) if isinstance(value, (list, tuple)) else value}"
    return "prompt"


def _point_list(value: Any, what: str, sample_index: int, region_index: int, allow_empty: bool = False) -> list[Any]:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or (not value and not allow_empty):
        raise RegionInputError(
            f"{what} must be a {'' if allow_empty else 'non-empty '}list of [x, y] points, got {value!r}",
            sample_index,
            region_index,
        )
    return list(value)


def _point(
    value: Any, what: str, image_size: tuple[int, int], sample_index: int, region_index: int
) -> tuple[float, float]:
    x, y = parse_numbers(value, 2, what, sample_index, region_index)
    height, width = image_size
    if not (0 <= x < width and 0 <= y < height):
        raise RegionInputError(
            f"{what} {[x, y]} lies outside the {format_size(image_size)} image; expected 0 <= x < {width} and "
            f"0 <= y < {height}",
            sample_index,
            region_index,
        )
    return x, y


__all__ = ["NEGATIVE_KEY", "PROMPT_KINDS", "Clicks", "describe_prompt", "is_prompt", "parse_clicks", "prompt_kind"]
