# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The demo's picture: held-out scenes with each referred region outlined, the question, and the answers of the
trained model and of its zeroed-object-token control."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..synthetic import QUESTION_KINDS, held_out_samples

PANEL_SCALE = 2
# Outline colours that no synthetic object has (the objects are red, green, blue, yellow, purple).
OUTLINE_COLOURS = ((0, 0, 0), (255, 120, 0))
TEXT_LINES = 3
LINE_HEIGHT = 14


def pick_documents(samples: list[dict[str, Any]], per_kind: int = 2) -> list[int]:
    """Document ids to show: the first `per_kind` image questions of each kind, then one video question."""
    kinds = {int(s["doc_id"]): (s["doc"].get("video") and "video") or s["doc"]["kind"] for s in samples}
    chosen = []
    for kind in (*QUESTION_KINDS, "video"):
        matching = sorted(doc_id for doc_id, doc_kind in kinds.items() if doc_kind == kind)
        chosen.extend(matching[: per_kind if kind != "video" else 1])
    return chosen


def draw_demo_picture(samples: dict[str, list[dict[str, Any]]], path: str | Path, columns: int = 4) -> Path:
    """Write a PNG grid of held-out questions. `samples` are lmms-eval's logged samples of the `trained` and
    `control` runs (`doc_id`, `doc`, `resps`); returns the path."""
    from PIL import Image, ImageDraw

    from ..integrations.lmms_eval.tasks.synthetic_utils import first_word
    from ..visualize import draw_regions

    by_id = {name: {int(s["doc_id"]): s for s in logged} for name, logged in samples.items()}
    doc_ids = pick_documents(samples["trained"])
    held_out = held_out_samples(max(doc_ids) + 1) if doc_ids else []
    panels = []
    for doc_id in doc_ids:
        sample = held_out[doc_id]
        frame = sample.frames[sample.frame]
        labels = ["1", "2"][: len(sample.masks)]
        scene = draw_regions(
            frame,
            [{"mask": m} for m in sample.masks],
            labels=labels if len(labels) > 1 else [""],
            colours=OUTLINE_COLOURS,
        )
        scene = scene.resize((scene.width * PANEL_SCALE, scene.height * PANEL_SCALE), Image.NEAREST)
        question = sample.question.split("?")[0] + "?"
        if len(sample.masks) > 1:
            question = question.replace("<region>", "[1]", 1).replace("<region>", "[2]", 1)
        else:
            question = question.replace("<region>", "[outlined]")
        if sample.is_video:
            question = f"(clip, frame {sample.frame}) {question}"
        answers = []
        for name, title in (("trained", "model"), ("control", "zeroed")):
            logged = by_id.get(name, {}).get(doc_id)
            if logged is None:
                continue
            answer = first_word(logged["resps"][0][0] if logged["resps"] else "")
            answers.append(f"{title}: {answer or '?'} {'OK' if answer == sample.answer else 'x'}")
        lines = [question, "  ".join(answers), f"truth: {sample.answer}"]
        panels.append((scene, lines))
    if not panels:
        raise ValueError("draw_demo_picture: no held-out samples to draw")
    cell_w = max(p.width for p, _ in panels) + 8
    cell_h = max(p.height for p, _ in panels) + TEXT_LINES * LINE_HEIGHT + 12
    rows = -(-len(panels) // columns)
    canvas = Image.new("RGB", (cell_w * min(columns, len(panels)), cell_h * rows), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for index, (scene, lines) in enumerate(panels):
        x, y = (index % columns) * cell_w + 4, (index // columns) * cell_h + 4
        canvas.paste(scene, (x, y))
        for line_number, line in enumerate(lines):
            draw.text((x, y + scene.height + 4 + line_number * LINE_HEIGHT), line, fill=(0, 0, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
