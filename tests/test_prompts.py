# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Published evaluation prompts: usable as they are with both processors."""

import numpy as np
import pytest

from pixelrefer_plugin.presets import build_model_and_processor
from pixelrefer_plugin.prompts import (
    HC_STVG,
    LVIS,
    PROMPTS,
    VIDEOREFER_BENCH_D,
    mvbench_prompt,
    videorefer_bench_q_prompt,
)


def test_every_prompt_refers_to_one_region_and_lite_prompts_have_no_scene_tags():
    assert len(PROMPTS) == 8
    for prompt in PROMPTS.values():
        for variant in ("full", "lite"):
            text = prompt.for_variant(variant)
            assert text.count("<region>") == 1, (prompt.benchmark, variant)
            if variant == "lite":
                assert "<video>" not in text and "<image>" not in text
    assert VIDEOREFER_BENCH_D.for_variant("lite") != VIDEOREFER_BENCH_D.full
    assert LVIS.for_variant("lite") == LVIS.full
    with pytest.raises(ValueError, match="variant"):
        HC_STVG.for_variant("tiny")


def test_multiple_choice_prompts_follow_the_published_layout():
    question = videorefer_bench_q_prompt("What does <region> do?", ["(A) runs", "(B) sits"])
    assert (
        question
        == "What does <region> do? (A) runs (B) sits. Answer with the option's letter from the given choices directly."
    )
    assert mvbench_prompt("Which?", ["red", "blue"]).splitlines() == [
        "Question: Which?",
        "Options:",
        "(A) red",
        "(B) blue",
        "Answer with the option's letter from the given choices directly and only give the best option.",
    ]


@pytest.mark.parametrize("preset", ["pixelrefer-tiny", "pixelrefer-lite-tiny"])
def test_image_prompts_go_through_the_processor(preset):
    _, processor = build_model_and_processor(preset)
    variant = "lite" if "lite" in preset else "full"
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    for name in ("DLC-Bench", "LVIS", "PACO", "VG", "Ref-L4 short", "Ref-L4 detail"):
        content = [{"type": "image"}, {"type": "text", "text": PROMPTS[name].for_variant(variant)}]
        text = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
        inputs = processor(text=text, images=image, regions=[{"box": [8, 8, 40, 40]}])
        assert int((inputs["input_ids"] == processor.region_token_id).sum()) > 0
