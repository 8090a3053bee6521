# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The prompts of the published PixelRefer evaluation scripts, one named constant per benchmark and variant.

`<region>` marks where each region's object tokens go. Full-variant prompts take the image or video through the chat
template (an image item / `<video>`); Lite prompts contain no `<image>` / `<video>` at all. Texts are kept exactly as
published, typos included (`sentense`), because model outputs were tuned on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .runtime import check_variant


@dataclass(frozen=True)
class BenchmarkPrompt:
    """A published evaluation prompt. `full` for PixelRefer; `lite` for PixelRefer-Lite (same text when not given)."""

    benchmark: str
    full: str
    lite: str | None = None

    def for_variant(self, variant: str) -> str:
        """The prompt's text for `variant` (`"full"` or `"lite"`)."""
        check_variant(variant)
        return self.lite if variant == "lite" and self.lite is not None else self.full


DLC_BENCH = BenchmarkPrompt(
    "DLC-Bench", "Please describe the region <region> in the image in detail. Do not describe anything else."
)
LVIS = BenchmarkPrompt("LVIS", "What is the category of <region>? Using only one word or phrase.")
PACO = BenchmarkPrompt(
    "PACO",
    "What is the category of <region>? It maybe a subpart of an object. If it is a subpart, output in the format of "
    "'category:subcategory', else just output the category.",
)
VG = BenchmarkPrompt("VG", "Please describe <region> briefly.")
REF_L4_SHORT = BenchmarkPrompt("Ref-L4 short", "Please describe <region> in brief.")
REF_L4_DETAIL = BenchmarkPrompt("Ref-L4 detail", "Please describe <region> in detail.")
VIDEOREFER_BENCH_D = BenchmarkPrompt(
    "VideoRefer-Bench-D",
    "<video>\nPlease describe in detail the marked object <region> in the video.",
    "There is one object in the video: <region>.\nPlease describe in detail the marked object in the video.",
)
HC_STVG = BenchmarkPrompt(
    "HC-STVG",
    "Please describe the object <region> in brief in the video.",
    "There is one object in the video: <region>.\nPlease give a description of the highlighted object in the video. "
    "Using only one sentense.",
)
MULTIPLE_CHOICE_SUFFIX = ". Answer with the option's letter from the given choices directly."
MVBENCH_SUFFIX = "\nAnswer with the option's letter from the given choices directly and only give the best option."

PROMPTS = {
    prompt.benchmark: prompt
    for prompt in (DLC_BENCH, LVIS, PACO, VG, REF_L4_SHORT, REF_L4_DETAIL, VIDEOREFER_BENCH_D, HC_STVG)
}


def videorefer_bench_q_prompt(question: str, options: list[str]) -> str:
    """VideoRefer-Bench-Q: the question, a space, the options joined by spaces, then the answer instruction."""
    return question + " " + " ".join(options) + MULTIPLE_CHOICE_SUFFIX


def mvbench_prompt(question: str, options: list[str]) -> str:
    """MVBench: `Question: ...`, then `Options:` with `(A) ...` lines, then the answer instruction."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    lines = [f"({letters[i]}) {option}" for i, option in enumerate(options)]
    return f"Question: {question}\nOptions:\n" + "\n".join(lines) + MVBENCH_SUFFIX


__all__ = [
    "BenchmarkPrompt",
    "DLC_BENCH",
    "HC_STVG",
    "LVIS",
    "MULTIPLE_CHOICE_SUFFIX",
    "MVBENCH_SUFFIX",
    "PACO",
    "PROMPTS",
    "REF_L4_DETAIL",
    "REF_L4_SHORT",
    "VG",
    "VIDEOREFER_BENCH_D",
    "mvbench_prompt",
    "videorefer_bench_q_prompt",
]
