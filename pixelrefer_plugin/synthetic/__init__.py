# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Synthetic region data generated in code: scenes and clips of coloured shapes with exact masks, questions about
them, and the RLE encoding their masks are stored in.

It feeds the demo (`demo/`), the demo's training data (`training/synthetic.py`) and the offline lmms-eval fixtures
(`integrations/lmms_eval/fixtures.py`), and imports nothing else of the package.
"""

from __future__ import annotations

from pathlib import Path

from .clips import make_clip, write_clip
from .questions import (
    ANSWERS,
    HELD_OUT_DOCUMENTS,
    HELD_OUT_SEED,
    QUESTION_KINDS,
    QUESTIONS,
    SyntheticSample,
    chance_accuracy,
    generate_samples,
    held_out_samples,
)
from .rle import encode_rle
from .scenes import COLOURS, SHAPES, SceneObject, make_scene, shape_mask

GENERATOR_SOURCES: tuple[Path, ...] = tuple(sorted(Path(__file__).parent.glob("*.py")))
"""The source files of this package. The data it generates is a function of their code, so caches of generated data
(the demo's trained model, the lmms-eval fixture folder) include them in their keys."""

__all__ = [
    "ANSWERS",
    "COLOURS",
    "GENERATOR_SOURCES",
    "HELD_OUT_DOCUMENTS",
    "HELD_OUT_SEED",
    "QUESTIONS",
    "QUESTION_KINDS",
    "SHAPES",
    "SceneObject",
    "SyntheticSample",
    "chance_accuracy",
    "encode_rle",
    "generate_samples",
    "held_out_samples",
    "make_clip",
    "make_scene",
    "shape_mask",
    "write_clip",
]
