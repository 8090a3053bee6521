# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Hooks of `pixelrefer_synthetic`, the demo's held-out task: one-word answers about coloured shapes, scored by exact
match of the answer's first word, per question kind."""

from __future__ import annotations

import re

from pixelrefer_plugin.integrations.lmms_eval import metrics


def first_word(text: str | None) -> str:
    """The answer's first word, lower-cased, punctuation stripped ("" when there is none)."""
    words = re.findall(r"[a-z]+", (text or "").lower())
    return words[0] if words else ""


def process_results(doc: dict, results: list) -> dict[str, float]:
    """1.0 when the first word of the answer is the reference, under the document's kind and under `overall`.

    Image questions count under their kind (`colour`, `shape`, `larger`), clip questions under `video`.
    """
    correct = float(first_word(results[0] if results else None) == doc["answer"])
    kind = "video" if doc.get("video") else doc["kind"]
    return {kind: correct, "overall": correct}


def mean_percent(values: list[float]) -> float:
    return metrics.mean_percent(values)
