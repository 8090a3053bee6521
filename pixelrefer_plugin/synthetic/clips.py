# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Synthetic clips: shapes moving in straight lines, one exact mask per object and frame, written as MP4 files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .scenes import COLOURS, SHAPES, SceneObject, shape_mask


def make_clip(
    rng: np.random.Generator, size: tuple[int, int] = (96, 128), num_objects: int = 2, num_frames: int = 4
) -> tuple[list[np.ndarray], list[list[SceneObject]]]:
    """A clip of `num_objects` shapes moving in straight lines without touching.

    Returns the `(H, W, 3)` uint8 frames and, per frame, the objects with their masks on that frame.
    """
    height, width = size
    while True:
        paths = []
        for _ in range(num_objects):
            radius = int(rng.integers(10, 22))
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
            start = np.array([rng.integers(radius, width - radius), rng.integers(radius, height - radius)], float)
            velocity = rng.uniform(-6, 6, size=2)
            paths.append((shape, colour, radius, start, velocity))
        per_frame = []
        for t in range(num_frames):
            objects, occupied = [], np.zeros(size, dtype=bool)
            for shape, colour, radius, start, velocity in paths:
                x, y = start + t * velocity
                x, y = int(np.clip(x, radius, width - 1 - radius)), int(np.clip(y, radius, height - 1 - radius))
                mask = shape_mask(shape, size, (x, y), radius)
                if (mask & occupied).any():
                    break
                occupied |= mask
                objects.append(SceneObject(shape=shape, colour=colour, mask=mask))
            else:
                per_frame.append(objects)
                continue
            break
        if len(per_frame) == num_frames:
            break
    frames = []
    for objects in per_frame:
        frame = np.full((height, width, 3), 245, dtype=np.uint8)
        for obj in objects:
            frame[obj.mask] = COLOURS[obj.colour]
        frames.append(frame)
    return frames, per_frame


def write_clip(path: str | Path, frames: Sequence[np.ndarray], fps: int = 2) -> None:
    """Write `(H, W, 3)` uint8 frames as an H.264 MP4 with PyAV (lossy: masks are given on the source frames)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
