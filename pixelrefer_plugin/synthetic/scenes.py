# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Synthetic scenes: coloured shapes on a plain background, with one exact mask per object."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 210, 40),
    "purple": (140, 60, 180),
}
SHAPES = ("square", "circle", "triangle")


@dataclass(frozen=True)
class SceneObject:
    """One shape of a scene: its `shape` (`SHAPES`), `colour` (a key of `COLOURS`) and `(H, W)` bool `mask`."""

    shape: str
    colour: str
    mask: np.ndarray  # (H, W) bool

    @property
    def area(self) -> int:
        """Number of pixels of the mask."""
        return int(self.mask.sum())

    @property
    def box(self) -> list[int]:
        """Tight `[x0, y0, x1, y1]` box (x1, y1 exclusive)."""
        rows, cols = np.flatnonzero(self.mask.any(1)), np.flatnonzero(self.mask.any(0))
        return [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]


def shape_mask(shape: str, size: tuple[int, int], centre: tuple[int, int], radius: int) -> np.ndarray:
    """Boolean mask of a square, circle or upward triangle of half-size `radius` around `centre = (x, y)`."""
    height, width = size
    ys, xs = np.mgrid[0:height, 0:width]
    cx, cy = centre
    if shape == "square":
        return (np.abs(xs - cx) <= radius) & (np.abs(ys - cy) <= radius)
    if shape == "circle":
        return (xs - cx) ** 2 + (ys - cy) ** 2 <= radius**2
    if shape == "triangle":
        inside_rows = (ys >= cy - radius) & (ys <= cy + radius)
        half_width = (ys - (cy - radius)) / 2.0
        return inside_rows & (np.abs(xs - cx) <= half_width)
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def make_scene(
    rng: np.random.Generator, size: tuple[int, int] = (160, 224), num_objects: int = 3
) -> tuple[np.ndarray, list[SceneObject]]:
    """An `(H, W, 3)` uint8 image with `num_objects` non-overlapping shapes, and the objects with their masks."""
    height, width = size
    image = np.full((height, width, 3), 245, dtype=np.uint8)
    objects: list[SceneObject] = []
    occupied = np.zeros(size, dtype=bool)
    while len(objects) < num_objects:
        radius = int(rng.integers(12, 30))
        centre = (int(rng.integers(radius, width - radius)), int(rng.integers(radius, height - radius)))
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
        mask = shape_mask(shape, size, centre, radius)
        if (mask & occupied).any() or not mask.any():
            continue
        occupied |= mask
        image[mask] = COLOURS[colour]
        objects.append(SceneObject(shape=shape, colour=colour, mask=mask))
    return image, objects
