# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Offline quick start: build the tiny preset, refer to objects of a synthetic scene by mask, box and point, and
generate answers for the whole batch at once.

The tiny preset is randomly initialised, so its answers are noise; what this shows is the full data path (region
inputs -> crops -> object tokens -> batched generation) running on a CPU with no download.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from ..presets import build_model_and_processor
from ..synthetic import make_scene

logger = logging.getLogger(__name__)


def run_quickstart(max_new_tokens: int = 12, seed: int = 0) -> list[str]:
    """Run the quick start and log what happens; returns the generated answers."""
    start = time.perf_counter()
    model, processor = build_model_and_processor("pixelrefer-tiny", seed=seed)
    logger.info("built pixelrefer-tiny (%d parameters, random init)", model.num_parameters())

    image, objects = make_scene(np.random.default_rng(seed))
    first, second, third = objects[:3]
    x0, y0, x1, y1 = third.box
    regions = [
        [{"mask": first.mask}],
        [{"box": second.box}, {"point": [(x0 + x1) / 2, (y0 + y1) / 2]}],
    ]
    questions = ["What colour is <region>?", "Which is larger, <region> or <region>?"]
    prompts = [
        processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}],
            add_generation_prompt=True,
        )
        for question in questions
    ]
    inputs = processor(text=prompts, images=[image, image], regions=regions)
    logger.info(
        "batch of %d prompts: %d scene tokens per image, %d region crops, LLM input length %d",
        len(prompts),
        int(inputs["image_grid_thw"][0].prod()),
        len(inputs["region_grid_thw"]),
        inputs["input_ids"].shape[1],
    )
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    answers = processor.batch_decode(generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    truth = [f"{first.colour}", f"{second.shape} vs {third.shape}"]
    for question, answer, expected in zip(questions, answers, truth, strict=True):
        logger.info("Q: %s\n   A (random weights): %r   [scene truth: %s]", question, answer, expected)
    logger.info("done in %.1f s", time.perf_counter() - start)
    return answers
