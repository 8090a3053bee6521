# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Video inputs: decoding files (PyAV or decord), sampling frames, and frame lookup for regions.

A video reaches the processor as a file path, or as a dict of already-decoded frames:
`{"frames": (T, H, W, 3) array or list of frames, "timestamps": [seconds, ...], "frame_indices": [...] (optional)}`.
Region frame numbers always refer to the video's own frame numbering (`frame_indices`, default `0..T-1`).

Files are decoded by the backend named in the `PIXELREFER_VIDEO_BACKEND` environment variable: `auto` (default:
decord when it can be imported, else PyAV), `pyav` or `decord`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import VideoInputError
from .image_loading import load_image


@dataclass
class VideoClip:
    """A video's sampled frames (the scene, full variant) and the frames its regions lie on, at full resolution.

    Attributes:
        frames: `(T, H, W, 3)` uint8 sampled frames, or None when no scene is needed (Lite).
        timestamps: `(T,)` seconds of the sampled frames.
        frame_indices: `(T,)` frame numbers of the sampled frames.
        region_frames: frame number -> `(H, W, 3)` uint8 frame, for every frame a region lies on.
        region_timestamps: frame number -> seconds, for the same frames.
    """

    frames: np.ndarray | None
    timestamps: list[float]
    frame_indices: list[int]
    region_frames: dict[int, np.ndarray] = field(default_factory=dict)
    region_timestamps: dict[int, float] = field(default_factory=dict)


def _short_list(values: Sequence[int], limit: int = 20) -> str:
    values = list(values)
    return (
        str(values) if len(values) <= limit else f"[{', '.join(map(str, values[:limit]))}, ...] ({len(values)} frames)"
    )


def sample_frame_indices(num_frames: int, video_fps: float, fps: float, max_frames: int) -> list[int]:
    """Frame numbers sampled at `fps` frames per second, at most `max_frames` (then uniform over the video)."""
    step = video_fps / fps if fps > 0 else 1.0
    indices = [int(round(i * step)) for i in range(max(1, math.ceil(num_frames / step)))]
    indices = sorted({min(i, num_frames - 1) for i in indices})
    if len(indices) > max_frames:
        indices = np.linspace(0, num_frames - 1, max_frames).round().astype(int).tolist()
    return indices


VIDEO_BACKEND_ENV = "PIXELREFER_VIDEO_BACKEND"
VIDEO_BACKENDS = ("auto", "pyav", "decord")


def video_backend() -> str:
    """The decoder that reads video files, `"pyav"` or `"decord"`, as chosen by `PIXELREFER_VIDEO_BACKEND`.

    Raises:
        VideoInputError: the variable holds an unknown value, or asks for decord when it cannot be imported.
    """
    raw = os.environ.get(VIDEO_BACKEND_ENV, "auto")
    value = raw.strip().lower() or "auto"
    if value not in VIDEO_BACKENDS:
        raise VideoInputError(
            f"{VIDEO_BACKEND_ENV}={raw!r} is not a video backend; expected one of {', '.join(VIDEO_BACKENDS)}"
        )
    if value == "pyav":
        return "pyav"
    try:
        import decord  # noqa: F401
    except ImportError as error:
        if value == "decord":
            raise VideoInputError(
                f"{VIDEO_BACKEND_ENV}={raw!r} asks for decord, which cannot be imported ({error}); install decord, "
                "or set the variable to 'auto' or 'pyav'"
            ) from None
        return "pyav"
    return "decord"


def _decode_with_decord(path: str, indices: list[int]) -> tuple[dict[int, np.ndarray], float, int]:
    import decord

    reader = decord.VideoReader(path, num_threads=1)
    total = len(reader)
    fps = float(reader.get_avg_fps())
    wanted = [i for i in indices if 0 <= i < total]
    frames = reader.get_batch(wanted).asnumpy() if wanted else np.zeros((0, 1, 1, 3), np.uint8)
    return {i: f for i, f in zip(wanted, frames, strict=True)}, fps, total


def _decode_with_pyav(path: str, indices: list[int] | None) -> tuple[dict[int, np.ndarray], float, int]:
    """Decode the frames numbered `indices` (all when None) in one sequential pass."""
    import av

    wanted = None if indices is None else set(indices)
    frames: dict[int, np.ndarray] = {}
    with av.open(path) as container:
        if not container.streams.video:
            raise ValueError("the file has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        total = 0
        for total, frame in enumerate(container.decode(stream), start=1):
            number = total - 1
            if wanted is None or number in wanted:
                frames[number] = frame.to_ndarray(format="rgb24")
    return frames, fps, total


def probe_video(path: str) -> tuple[float, int]:
    """`(fps, number of frames)` of a video file, from its container, read by the [`video_backend`]."""
    if video_backend() == "decord":
        import decord

        reader = decord.VideoReader(path, num_threads=1)
        return float(reader.get_avg_fps()), len(reader)
    import av

    with av.open(path) as container:
        if not container.streams.video:
            raise ValueError("the file has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        total = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
        return (float(rate) if rate else 0.0), int(total)


def read_video_file(
    path: str | Path,
    region_frames: Sequence[int],
    sample_scene: bool,
    fps: float,
    max_frames: int,
    sample_index: int | None = None,
    video_index: int | None = None,
) -> VideoClip:
    """Read a video file: the frames sampled for the scene (when `sample_scene`) and the frames regions lie on."""
    path = str(path)
    if Path(path).is_dir():
        raise VideoInputError(f"{path!r} is a folder; expected a video file", sample_index, video_index)
    if not Path(path).is_file():
        raise VideoInputError(f"video file {path!r} does not exist", sample_index, video_index)
    try:
        backend = video_backend()
        video_fps, total = probe_video(path)
        if total == 0:
            raise VideoInputError(f"video file {path!r} holds no frame", sample_index, video_index)
        if video_fps <= 0:
            raise VideoInputError(f"video file {path!r} has no frame rate", sample_index, video_index)
        sampled = sample_frame_indices(total, video_fps, fps, max_frames) if sample_scene else []
        for number in region_frames:
            if not 0 <= number < total:
                raise VideoInputError(
                    f"frame {number} is out of range; the video has {total} frames (0..{total - 1})",
                    sample_index,
                    video_index,
                )
        wanted = sorted(set(sampled) | set(region_frames))
        decode = _decode_with_decord if backend == "decord" else _decode_with_pyav
        frames, _, _ = decode(path, wanted)
    except VideoInputError:
        raise
    except Exception as error:  # PyAV / decord raise many types for unreadable files
        raise VideoInputError(f"cannot read video file {path!r} ({error})", sample_index, video_index) from None
    missing = [n for n in wanted if n not in frames]
    if missing:
        raise VideoInputError(
            f"video file {path!r} could not decode frames {_short_list(missing)}", sample_index, video_index
        )
    scene = np.stack([frames[n] for n in sampled]) if sampled else None
    return VideoClip(
        frames=scene,
        timestamps=[n / video_fps for n in sampled],
        frame_indices=sampled,
        region_frames={n: frames[n] for n in region_frames},
        region_timestamps={n: n / video_fps for n in region_frames},
    )


def video_from_frames(
    video: Mapping[str, Any], sample_index: int | None = None, video_index: int | None = None
) -> VideoClip:
    """A clip from already-decoded frames: `{"frames": ..., "timestamps": [...], "frame_indices": [...]}`."""
    unknown = sorted(set(video) - {"frames", "timestamps", "frame_indices"})
    if unknown or "frames" not in video or "timestamps" not in video:
        raise VideoInputError(
            'expected a path or a dict {"frames": ..., "timestamps": [...], "frame_indices": [...] (optional)}'
            + (f"; unknown key(s) {unknown}" if unknown else ""),
            sample_index,
            video_index,
        )
    frames = [load_image(frame, sample_index, i) for i, frame in enumerate(video["frames"])]
    if not frames:
        raise VideoInputError("the video holds no frame", sample_index, video_index)
    if len({frame.shape for frame in frames}) != 1:
        raise VideoInputError("all frames of a video must have the same size", sample_index, video_index)
    try:
        timestamps = [float(t) for t in video["timestamps"]]
        indices = [int(i) for i in video.get("frame_indices", range(len(frames)))]
    except (TypeError, ValueError):
        raise VideoInputError(
            "timestamps must be a list of numbers (seconds) and frame_indices a list of integers",
            sample_index,
            video_index,
        ) from None
    if not all(math.isfinite(t) for t in timestamps):
        raise VideoInputError(f"timestamps must be finite numbers, got {timestamps}", sample_index, video_index)
    if len(timestamps) != len(frames) or len(indices) != len(frames):
        raise VideoInputError(
            f"got {len(frames)} frames, {len(timestamps)} timestamps and {len(indices)} frame indices; expected one "
            "of each per frame",
            sample_index,
            video_index,
        )
    if any(b <= a for a, b in zip(timestamps, timestamps[1:], strict=False)):
        raise VideoInputError(f"timestamps must be strictly increasing, got {timestamps}", sample_index, video_index)
    if any(b <= a for a, b in zip(indices, indices[1:], strict=False)):
        raise VideoInputError(f"frame_indices must be strictly increasing, got {indices}", sample_index, video_index)
    return VideoClip(
        frames=np.stack(frames),
        timestamps=timestamps,
        frame_indices=indices,
        region_frames=dict(zip(indices, frames, strict=True)),
        region_timestamps=dict(zip(indices, timestamps, strict=True)),
    )


def load_video(
    video: Any,
    region_frames: Sequence[int],
    sample_scene: bool,
    fps: float,
    max_frames: int,
    sample_index: int | None = None,
    video_index: int | None = None,
) -> VideoClip:
    """Normalise a video input (path or dict of frames) to a [`VideoClip`]."""
    if isinstance(video, (str, Path)):
        return read_video_file(video, region_frames, sample_scene, fps, max_frames, sample_index, video_index)
    if isinstance(video, Mapping):
        clip = video_from_frames(video, sample_index, video_index)
        for number in region_frames:
            if number not in clip.region_frames:
                raise VideoInputError(
                    f"frame {number} was not sampled; the video holds frames {_short_list(clip.frame_indices)}",
                    sample_index,
                    video_index,
                )
        return clip
    raise VideoInputError(
        f"expected a video file path or a dict of frames and timestamps, got {type(video).__name__}",
        sample_index,
        video_index,
    )


def compression_mask(
    pixel_values: torch.Tensor, grid_thw: Sequence[int], merge_size: int, threshold: float, min_tokens: int = 1
) -> torch.Tensor:
    """VideoLLaMA3's frame-difference token compression for one video (torch tensors in, bool tensor out).

    A merged token of frame t > 0 is kept when the mean absolute difference of its `merge_size²` patches' normalised
    pixel values to the same token of frame t - 1, times 255, exceeds `threshold`; frame 0 is kept whole and every
    frame keeps at least `min_tokens` tokens.

    Args:
        pixel_values: `(T * h * w, P)` patches of one video in merge-block order.
        grid_thw: `(T, h, w)`.

    Returns:
        `(T * h * w / merge_size²,)` bool keep-mask.
    """
    frames, height, width = (int(v) for v in grid_thw)
    tokens = pixel_values.reshape(frames, (height // merge_size) * (width // merge_size), -1)
    difference = (tokens[1:] - tokens[:-1]).abs().mean(dim=-1) * 255
    keep = torch.cat([torch.ones_like(difference[:1], dtype=torch.bool), difference > threshold])
    starved = keep.sum(dim=1) < min_tokens
    keep[starved, :min_tokens] = True
    return keep.flatten()
