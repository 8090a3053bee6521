# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Synthetic videos for the video and Lite tests: a coloured square moving over a plain background."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

BACKGROUND = 240
RED = (220, 40, 40)


@dataclass(frozen=True)
class MovingSquare:
    """Frames `(T, H, W, 3)` uint8 and the square's `[x0, y0, x1, y1]` box (exclusive ends) in each frame."""

    frames: np.ndarray
    boxes: list[list[int]]

    def mask(self, index: int) -> np.ndarray:
        x0, y0, x1, y1 = self.boxes[index]
        mask = np.zeros(self.frames.shape[1:3], dtype=bool)
        mask[y0:y1, x0:x1] = True
        return mask


def moving_square(
    num_frames: int,
    size: tuple[int, int] = (96, 128),
    side: int = 16,
    step: int = 8,
    top: int = 40,
    colour: tuple[int, int, int] = RED,
) -> MovingSquare:
    """A square of `side` pixels that moves `step` pixels to the right per frame (`step=0`: a static video)."""
    height, width = size
    assert 4 + step * (num_frames - 1) + side <= width, "the square would leave the frame"
    frames = np.full((num_frames, height, width, 3), BACKGROUND, dtype=np.uint8)
    boxes = []
    for index in range(num_frames):
        x0 = 4 + step * index
        frames[index, top : top + side, x0 : x0 + side] = colour
        boxes.append([x0, top, x0 + side, top + side])
    return MovingSquare(frames=frames, boxes=boxes)


def write_video(path: str | Path, frames: np.ndarray, fps: int) -> Path:
    """Encode `(T, H, W, 3)` uint8 frames (even H and W) as H.264 with PyAV."""
    import av

    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=fps)
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = "yuv420p"
    for frame in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return Path(path)


def read_all_frames(path: str | Path) -> list[np.ndarray]:
    """Every frame of a video file, decoded with PyAV (independently of the library's reader)."""
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def video_prompt(processor, text: str, num_videos: int = 1) -> str:
    """A user turn with `num_videos` video items and `text`, plus the generation prompt."""
    content = [{"type": "video"}] * num_videos + [{"type": "text", "text": text}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
