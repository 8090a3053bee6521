# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Offline fixture data for the `<task>_fixture` lmms-eval tasks: synthetic scenes and clips generated in code, written
as region documents (docs/evaluation.md) so they exercise the same task and metric code as the real benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ...prompts import LVIS, VG, videorefer_bench_q_prompt
from ...runtime import REGION_PLACEHOLDER
from ...synthetic import (
    COLOURS,
    HELD_OUT_DOCUMENTS,
    HELD_OUT_SEED,
    SHAPES,
    encode_rle,
    held_out_samples,
    make_scene,
    shape_mask,
    write_clip,
)
from .protocols import dlc_recognition_question, ferret_lite_question

NUM_DOCS = 8
LETTERS = "ABCD"


def _write_jsonl(path: Path, docs: list[dict]) -> None:
    path.write_text("".join(json.dumps(doc) + "\n" for doc in docs))


def _image_docs(folder: Path, name: str, seed: int) -> list[tuple[str, list]]:
    rng = np.random.default_rng(seed)
    out = []
    for index in range(NUM_DOCS):
        image, objects = make_scene(rng, size=(128, 160), num_objects=2)
        path = folder / f"{name}_{index}.png"
        Image.fromarray(image).save(path)
        out.append((str(path), objects))
    return out


def write_category_fixture(folder: Path) -> Path:
    """LVIS-style documents: the category (shape) of one object, answered in one word."""
    docs = []
    for index, (path, objects) in enumerate(_image_docs(folder, "category", seed=11)):
        target = objects[index % len(objects)]
        docs.append(
            {
                "id": f"category-{index}",
                "image": path,
                "video": None,
                "regions": json.dumps([{"rle": encode_rle(target.mask)}]),
                "prompt": {"full": LVIS.full, "lite": LVIS.for_variant("lite")},
                "answer": target.shape,
                "options": [],
            }
        )
    _write_jsonl(folder / "category.jsonl", docs)
    return folder / "category.jsonl"


def write_caption_fixture(folder: Path) -> Path:
    """VG-style documents: a short caption of a box region, with two references each."""
    docs = []
    for index, (path, objects) in enumerate(_image_docs(folder, "caption", seed=12)):
        target = objects[index % len(objects)]
        x0, y0, x1, y1 = target.box
        docs.append(
            {
                "id": f"caption-{index}",
                "image": path,
                "video": None,
                "regions": json.dumps([{"box": [x0, y0, x1 - x0, y1 - y0], "box_format": "xywh"}]),
                "prompt": {"full": VG.full, "lite": VG.for_variant("lite")},
                "answer": [f"a {target.colour} {target.shape}", f"{target.colour} {target.shape}"],
                "options": [],
            }
        )
    _write_jsonl(folder / "caption.jsonl", docs)
    return folder / "caption.jsonl"


MOTION_DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


def _motion_clips(folder: Path, name: str, seed: int) -> list[tuple[str, list[np.ndarray], str, str]]:
    """`NUM_DOCS` clips of a coloured square moving left, right, up, down (clip i: direction i % 4):
    `(path, masks per frame, colour, direction)`."""
    rng = np.random.default_rng(seed)
    out = []
    for index in range(NUM_DOCS):
        direction = list(MOTION_DIRECTIONS)[index % 4]
        dx, dy = MOTION_DIRECTIONS[direction]
        colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
        frames, masks = [], []
        for t in range(8):
            mask = shape_mask("square", (96, 128), (64 + dx * 6 * t, 48 + dy * 4 * t), 10)
            frame = np.full((96, 128, 3), 235, dtype=np.uint8)
            frame[mask] = COLOURS[colour]
            frames.append(frame)
            masks.append(mask)
        path = folder / f"{name}_{index}.mp4"
        write_clip(path, frames, fps=4)
        out.append((str(path), masks, colour, direction))
    return out


def write_video_choice_fixture(folder: Path) -> Path:
    """VideoRefer-Bench-Q-style documents: which way does the marked object move? Four options, one correct."""
    docs = []
    for index, (path, masks, _, direction) in enumerate(_motion_clips(folder, "clip", seed=13)):
        options = [f"({letter}) It moves {name}." for letter, name in zip(LETTERS, MOTION_DIRECTIONS, strict=True)]
        question = videorefer_bench_q_prompt("In which direction does <region> move?", options)
        docs.append(
            {
                "id": f"motion-{index}",
                "image": None,
                "video": path,
                "regions": json.dumps([{"rle": encode_rle(masks[4]), "frame": 4}]),
                "prompt": {"full": "<video>\n" + question, "lite": question},
                "answer": list(MOTION_DIRECTIONS).index(direction),
                "options": options,
            }
        )
    _write_jsonl(folder / "video_choice.jsonl", docs)
    return folder / "video_choice.jsonl"


def write_fixtures(folder: str | Path) -> Path:
    """Write every fixture data set into `folder`; returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_category_fixture(folder)
    write_caption_fixture(folder)
    write_video_choice_fixture(folder)
    write_ferret_fixture(folder)
    write_videorefer_d_fixture(folder)
    write_hc_stvg_fixture(folder)
    write_dlc_bench_fixture(folder)
    write_held_out_documents(folder)  # the demo's held-out task, pixelrefer_synthetic
    return folder


def write_held_out_documents(folder: str | Path, count: int = HELD_OUT_DOCUMENTS, seed: int = HELD_OUT_SEED) -> Path:
    """Write the demo's held-out task documents (`synthetic.jsonl`, docs/evaluation.md schema) and their PNG / MP4
    files into `folder`; returns the JSONL path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    docs = []
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
        docs.append(doc)
    _write_jsonl(folder / "synthetic.jsonl", docs)
    return folder / "synthetic.jsonl"


# --- judged and video tasks (docs/evaluation.md, "Judged tasks") ----------------------------------------------------
FERRET_FIXTURE_QUESTION = "What colour and shape is the object <region>?"


def _normalised_box(mask: np.ndarray) -> str:
    """The mask's bounding box as ml-ferret's questions write a region: `[x1, y1, x2, y2]`, 0..1, 3 decimals."""
    ys, xs = np.nonzero(mask)
    height, width = mask.shape
    corners = (xs.min() / width, ys.min() / height, (xs.max() + 1) / width, (ys.max() + 1) / height)
    return "[" + ", ".join(f"{value:.3f}" for value in corners) + "]"


def write_ferret_fixture(folder: Path) -> Path:
    """Ferret-Bench-style documents: a question about one masked object (Lite wording as PixelRefer-Lite's), a
    reference answer ("The object is a red square."), the judge's `context` and `judge_question` (the region as box
    coordinates). Document i's target is `SHAPES[i % 3]` (square, circle, triangle, ...) so tests can fix the judge's
    replies per shape."""
    docs = []
    colours = list(COLOURS)
    for index in range(NUM_DOCS):
        shape, colour = SHAPES[index % len(SHAPES)], colours[index % len(colours)]
        other_shape, other_colour = SHAPES[(index + 1) % len(SHAPES)], colours[(index + 2) % len(colours)]
        image = np.full((128, 160, 3), 245, dtype=np.uint8)
        target = shape_mask(shape, (128, 160), (48, 64), 20)
        other = shape_mask(other_shape, (128, 160), (118, 64), 16)
        image[target] = COLOURS[colour]
        image[other] = COLOURS[other_colour]
        path = folder / f"ferret_{index}.png"
        Image.fromarray(image).save(path)
        docs.append(
            {
                "id": f"ferret-{index}",
                "image": str(path),
                "video": None,
                "regions": json.dumps([{"rle": encode_rle(target)}]),
                "prompt": {
                    "full": FERRET_FIXTURE_QUESTION,
                    "lite": ferret_lite_question(FERRET_FIXTURE_QUESTION, "reason"),
                },
                "answer": f"The object is a {colour} {shape}.",
                "options": [],
                "context": f"Objects:\nObject 0 : {shape} at {_normalised_box(target)}.\n"
                f"Object 1 : {other_shape} at {_normalised_box(other)}.\n\nGlobal Caption:\n"
                f"A {colour} {shape} on the left and a {other_colour} {other_shape} on the right.",
                "judge_question": FERRET_FIXTURE_QUESTION.replace(REGION_PLACEHOLDER, _normalised_box(target)),
            }
        )
    _write_jsonl(folder / "ferret.jsonl", docs)
    return folder / "ferret.jsonl"


def _motion_docs(folder: Path, name: str, seed: int, prompt, references) -> list[dict]:
    docs = []
    for index, (path, masks, colour, direction) in enumerate(_motion_clips(folder, name, seed)):
        docs.append(
            {
                "id": f"{name}-{index}",
                "image": None,
                "video": path,
                "regions": json.dumps([{"rle": encode_rle(masks[4]), "frame": 4}]),
                "prompt": {"full": prompt.full, "lite": prompt.for_variant("lite")},
                "answer": references(colour, direction),
                "options": [],
            }
        )
    return docs


def write_videorefer_d_fixture(folder: Path) -> Path:
    """VideoRefer-Bench-D-style documents: describe the marked square; one reference description each."""
    from ...prompts import VIDEOREFER_BENCH_D

    docs = _motion_docs(
        folder,
        "videorefer_d",
        14,
        VIDEOREFER_BENCH_D,
        lambda colour, direction: f"A {colour} square moves steadily {direction} across a light grey background.",
    )
    _write_jsonl(folder / "videorefer_d.jsonl", docs)
    return folder / "videorefer_d.jsonl"


def write_hc_stvg_fixture(folder: Path) -> Path:
    """HC-STVG-style documents: a one-sentence caption of the marked square; two references each."""
    from ...prompts import HC_STVG

    docs = _motion_docs(
        folder,
        "hc_stvg",
        15,
        HC_STVG,
        lambda colour, direction: [f"a {colour} square moving {direction}", f"the {colour} square moves {direction}"],
    )
    _write_jsonl(folder / "hc_stvg.jsonl", docs)
    return folder / "hc_stvg.jsonl"


# --- DLC-Bench (docs/evaluation.md, "DLC-Bench") --------------------------------------------------------------------
def dlc_fixture_questions(shape: str, colour: str, side: str) -> list[dict]:
    """The `dlc_questions` of one fixture object in `qa.json`'s layout (`{"question", "choices": [[text, value],
    ...], "type"}`), after the public scorer's recognition question: two positive questions (colour, side), one
    negative (a pattern the flat shapes never have)."""
    other = "right" if side == "left" else "left"
    return [
        dlc_recognition_question(shape, plural=False, with_article=f"a {shape}"),
        {
            "question": f"How does the description describe the colour of the {shape}?",
            "choices": [
                [f"The {shape} is not mentioned.", 0],
                [f"The colour of the {shape} is not mentioned, but the {shape} is mentioned.", 0.5],
                [f"The colour of the {shape} is mentioned in the description but is not {colour}.", -1],
                [f"The colour of the {shape} is mentioned in the description and is {colour}.", 1],
            ],
            "type": "positive",
        },
        {
            "question": f"Where does the description place the {shape}?",
            "choices": [
                [f"The position of the {shape} is not mentioned.", 0],
                [f"The {shape} is said to be on the {other} side.", -1],
                [f"The {shape} is said to be on the {side} side.", 1],
            ],
            "type": "positive",
        },
        {
            "question": f"Does the description say that the {shape} is patterned?",
            "choices": [
                ["A pattern or texture is not mentioned.", 1],
                [f"The {shape} is said to be striped, dotted or patterned.", -1],
            ],
            "type": "negative",
        },
    ]


def write_dlc_bench_fixture(folder: Path) -> Path:
    """DLC-Bench-style documents: describe one masked shape in detail; judge questions in `dlc_questions` (JSON
    text, `qa.json` layout, recognition first). Document i's target is a `SHAPES[i % 3]` (square, circle, triangle,
    ...) drawn by `make_scene`, so tests can fix the judge's replies per shape."""
    from ...prompts import DLC_BENCH

    rng = np.random.default_rng(16)
    size = (128, 160)
    docs = []
    for index in range(NUM_DOCS):
        shape = SHAPES[index % len(SHAPES)]
        while True:
            image, objects = make_scene(rng, size=size, num_objects=2)
            targets = [obj for obj in objects if obj.shape == shape]
            if targets:
                break
        target = targets[0]
        x0, _, x1, _ = target.box
        side = "left" if (x0 + x1) / 2 < size[1] / 2 else "right"
        path = folder / f"dlc_bench_{index}.png"
        Image.fromarray(image).save(path)
        docs.append(
            {
                "id": f"dlc-{index}",
                "image": str(path),
                "video": None,
                "regions": json.dumps([{"rle": encode_rle(target.mask)}]),
                "prompt": {"full": DLC_BENCH.full, "lite": DLC_BENCH.for_variant("lite")},
                "answer": f"A {target.colour} {shape} on the {side} side of the image.",
                "options": [],
                "dlc_questions": json.dumps(dlc_fixture_questions(shape, target.colour, side)),
            }
        )
    _write_jsonl(folder / "dlc_bench.jsonl", docs)
    return folder / "dlc_bench.jsonl"
