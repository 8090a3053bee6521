# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Synthetic region questions about scenes and clips of coloured shapes, whose answer depends on which object a
`<region>` refers to.

One generator feeds the demo's training data (`training/synthetic.py`, published JSON layout) and its held-out
lmms-eval task (`pixelrefer_synthetic`, `integrations/lmms_eval/fixtures.py`); the two use different seeds, so
evaluation scenes are never trained on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .clips import make_clip
from .scenes import COLOURS, SHAPES, SceneObject, make_scene

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
# The number of documents of the held-out task.
HELD_OUT_DOCUMENTS = 96


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


def held_out_samples(count: int = HELD_OUT_DOCUMENTS, seed: int = HELD_OUT_SEED) -> list[SyntheticSample]:
    """The held-out task's samples, in document order: all three question kinds, about a quarter of the colour /
    shape ones on clips."""
    return list(generate_samples(count, seed, kinds=QUESTION_KINDS, video_fraction=0.25))
