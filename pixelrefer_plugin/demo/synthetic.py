# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Synthetic region questions: scenes and short clips of coloured shapes, and questions whose answer depends on which
object a `<region>` refers to.

One generator feeds both the demo's training data (`training/synthetic.py`, published JSON layout) and its held-out
lmms-eval task (`pixelrefer_synthetic`); the two use different seeds, so evaluation scenes are never trained on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .scenes import COLOURS, SHAPES, SceneObject, make_scene, shape_mask

QUESTION_KINDS = ("colour", "shape", "larger")
QUESTIONS = {
    "colour": "What colour is <region>? Answer with one word.",
    "shape": "What shape is <region>? Answer with one word.",
    "larger": "Which is larger, <region> or <region>? Answer first or second.",
}
ANSWERS = {"colour": tuple(COLOURS), "shape": SHAPES, "larger": ("first", "second")}
# "larger" questions only pair objects whose areas differ by at least this factor, so the answer is clear to a viewer.
MIN_AREA_RATIO = 1.5
# The seed that starts the held-out scenes; training data uses seeds below it.
HELD_OUT_SEED = 1_000_003


def chance_accuracy(kind: str) -> float:
    """Accuracy of a uniform guess among the answers of a question kind."""
    return 1.0 / len(ANSWERS[kind])


@dataclass
class SyntheticSample:
    """One region question on an image (one frame) or a clip.

    Attributes:
        kind: `"colour"`, `"shape"` or `"larger"`.
        question: the question with one `<region>` per entry of `masks` (no `<image>` / `<video>` tag).
        answer: the one-word answer.
        frames: `(H, W, 3)` uint8 frames: one for an image, several for a clip.
        masks: `(H, W)` bool mask of each referred object, on frame `frame`, in `<region>` order.
        frame: the frame the masks lie on (0 for an image).
    """

    kind: str
    question: str
    answer: str
    frames: list[np.ndarray]
    masks: list[np.ndarray]
    frame: int = 0

    @property
    def is_video(self) -> bool:
        return len(self.frames) > 1


def ask(rng: np.random.Generator, kind: str, objects: Sequence[SceneObject]) -> tuple[str, list[int]] | None:
    """A question of `kind` about `objects`: `(answer, indices of the referred objects)`, or None when the scene has
    no pair of objects of clearly different size for a `"larger"` question."""
    if kind in ("colour", "shape"):
        index = int(rng.integers(len(objects)))
        return getattr(objects[index], kind), [index]
    if kind != "larger":
        raise ValueError(f"unknown question kind {kind!r}; expected one of {QUESTION_KINDS}")
    pairs = [
        (a, b)
        for a in range(len(objects))
        for b in range(len(objects))
        if a != b and objects[a].area >= MIN_AREA_RATIO * objects[b].area
    ]
    if not pairs:
        return None
    larger, smaller = pairs[int(rng.integers(len(pairs)))]
    if rng.random() < 0.5:
        return "first", [larger, smaller]
    return "second", [smaller, larger]


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


def generate_samples(
    count: int,
    seed: int,
    kinds: Sequence[str] = ("colour", "shape"),
    video_fraction: float = 0.0,
    image_size: tuple[int, int] = (128, 160),
    video_size: tuple[int, int] = (96, 128),
    num_objects: int = 3,
    num_frames: int = 4,
) -> Iterator[SyntheticSample]:
    """`count` samples cycling through `kinds`; about `video_fraction` of the colour / shape ones are clips (the region
    on a middle frame), the rest images. Deterministic for a given `seed`."""
    unknown = [kind for kind in kinds if kind not in QUESTION_KINDS]
    if unknown or not kinds:
        raise ValueError(f"kinds={list(kinds)}: expected a non-empty list of {QUESTION_KINDS}")
    if not 0.0 <= video_fraction <= 1.0:
        raise ValueError(f"video_fraction={video_fraction}: expected a number in [0, 1]")
    rng = np.random.default_rng(seed)
    for index in range(count):
        kind = kinds[index % len(kinds)]
        if kind != "larger" and rng.random() < video_fraction:
            frames, objects_per_frame = make_clip(rng, video_size, num_objects=2, num_frames=num_frames)
            frame = num_frames // 2
            answer, referred = ask(rng, kind, objects_per_frame[frame])
            masks = [objects_per_frame[frame][i].mask for i in referred]
            yield SyntheticSample(kind, QUESTIONS[kind], answer, frames, masks, frame)
            continue
        while True:
            image, objects = make_scene(rng, size=image_size, num_objects=num_objects)
            asked = ask(rng, kind, objects)
            if asked is not None:
                break
        answer, referred = asked
        yield SyntheticSample(kind, QUESTIONS[kind], answer, [image], [objects[i].mask for i in referred])


def write_clip(path, frames: Sequence[np.ndarray], fps: int = 2) -> None:
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


HELD_OUT_DOCUMENTS = 96


def held_out_samples(count: int = HELD_OUT_DOCUMENTS, seed: int = HELD_OUT_SEED) -> list[SyntheticSample]:
    """The held-out task's samples, in document order: all three question kinds, about a quarter of the colour /
    shape ones on clips."""
    return list(generate_samples(count, seed, kinds=QUESTION_KINDS, video_fraction=0.25))


def write_held_out_documents(folder, count: int = HELD_OUT_DOCUMENTS, seed: int = HELD_OUT_SEED):
    """Write the held-out task's documents (`synthetic.jsonl`, docs/evaluation.md schema) and their PNG / MP4 files
    into `folder`; returns the JSONL path."""
    import json
    from pathlib import Path

    from PIL import Image

    from ..training.synthetic import encode_rle

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for index, sample in enumerate(held_out_samples(count, seed)):
        doc = {"id": f"synthetic-{index}", "kind": sample.kind, "answer": sample.answer, "options": []}
        if sample.is_video:
            path = folder / f"synthetic_{index}.mp4"
            write_clip(path, sample.frames)
            regions = [{"rle": encode_rle(mask), "frame": sample.frame} for mask in sample.masks]
            doc.update(
                image=None, video=str(path), prompt={"full": "<video>\n" + sample.question, "lite": sample.question}
            )
        else:
            path = folder / f"synthetic_{index}.png"
            Image.fromarray(sample.frames[0]).save(path)
            regions = [{"rle": encode_rle(mask)} for mask in sample.masks]
            doc.update(image=str(path), video=None, prompt={"full": sample.question, "lite": sample.question})
        doc["regions"] = json.dumps(regions)
        lines.append(json.dumps(doc) + "\n")
    path = folder / "synthetic.jsonl"
    path.write_text("".join(lines))
    return path
