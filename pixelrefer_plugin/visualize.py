# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Drawing regions on images: outlines of masks, boxes and points with numbered labels.

Used to show what the model was pointed at (demo, `pixelrefer describe --save-overlay`) and as the visual prompt for
models that cannot take masks (the lmms-eval tasks' any-model mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Distinct, saturated outline colours; region i uses COLOURS[i % len(COLOURS)].
COLOURS = ((255, 0, 0), (0, 160, 255), (0, 200, 0), (255, 160, 0), (200, 0, 255), (0, 220, 200))
COLOUR_NAMES = ("red", "blue", "green", "orange", "purple", "cyan")


def region_outline(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """Boolean `(H, W)` band of `width` pixels along the inside of a mask's boundary (the image border counts as a
    boundary, so a region cut by the border is outlined there too)."""
    inner = np.pad(mask.astype(bool), 1)
    for _ in range(width):
        shrunk = inner.copy()
        shrunk[1:, :] &= inner[:-1, :]
        shrunk[:-1, :] &= inner[1:, :]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        inner = shrunk
    return mask & ~inner[1:-1, 1:-1]


def draw_regions(
    image: Any,
    regions: Sequence[dict],
    labels: Sequence[str] | None = None,
    width: int = 3,
    point_size: int = 28,
    colours: Sequence[tuple[int, int, int]] = COLOURS,
):
    """Draw each region's outline (and a label) on a copy of `image`; returns a PIL image.

    Args:
        image: PIL image, path, or `(H, W, 3)` array.
        regions: region dicts as the processor takes them (`mask`, `rle`, `polygon`, `box`, `point`).
        labels: text drawn next to each region (default: "1", "2", ...); empty strings draw no label.
        width: outline width in pixels.
        point_size: side in pixels of the square a `point` region covers.
        colours: RGB outline colours; region i uses `colours[i % len(colours)]`.
    """
    from PIL import Image, ImageDraw

    from .image_loading import load_image
    from .region_masks import region_to_mask

    pixels = load_image(image).copy()
    height, width_px = pixels.shape[:2]
    labels = list(labels) if labels is not None else [str(i + 1) for i in range(len(regions))]
    anchors = []
    for index, region in enumerate(regions):
        mask = region_to_mask(region, (height, width_px), 0, index, point_size)
        pixels[region_outline(mask, width)] = colours[index % len(colours)]
        rows, cols = np.nonzero(mask)
        anchors.append((int(cols.min()), int(rows.min())))
    canvas = Image.fromarray(pixels)
    draw = ImageDraw.Draw(canvas)
    for index, ((x, y), label) in enumerate(zip(anchors, labels, strict=True)):
        if not label:
            continue
        left, top, right, bottom = draw.textbbox((0, 0), label)
        x0, y0 = max(0, x), max(0, y - (bottom - top) - 4)
        draw.rectangle((x0, y0, x0 + right - left + 4, y0 + bottom - top + 4), fill=colours[index % len(colours)])
        draw.text((x0 + 2, y0 + 2 - top), label, fill=(255, 255, 255))
    return canvas


def describe_marks(count: int) -> list[str]:
    """How a prompt refers to drawn regions for models that see the overlay: "region 1 (outlined in red)", ..."""
    return [f"region {i + 1} (outlined in {COLOUR_NAMES[i % len(COLOUR_NAMES)]})" for i in range(count)]


def video_frame(video: str, frame: int) -> np.ndarray:
    """Frame number `frame` of a video file (the numbering region dicts use: 0 is the first decoded frame) as an
    `(H, W, 3)` uint8 array, to draw regions on with [`draw_regions`]."""
    from .video_decoding import read_video_file

    clip = read_video_file(video, [frame], sample_scene=False, fps=1.0, max_frames=1)
    return clip.region_frames[frame]
