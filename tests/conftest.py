# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
import numpy as np
import pytest
import torch

from pixelrefer_plugin.demo.scenes import make_scene
from pixelrefer_plugin.presets import build_model_and_processor


@pytest.fixture(scope="session")
def tiny():
    """(model, processor) of the tiny preset, random init, eval mode, float32."""
    model, processor = build_model_and_processor("pixelrefer-tiny", seed=0)
    return model, processor


@pytest.fixture(scope="session")
def tiny_model(tiny):
    return tiny[0]


@pytest.fixture(scope="session")
def tiny_processor(tiny):
    return tiny[1]


@pytest.fixture(scope="session")
def scenes():
    """Three synthetic scenes `(image, objects)` of different sizes."""
    return [
        make_scene(np.random.default_rng(1), size=(160, 224), num_objects=3),
        make_scene(np.random.default_rng(2), size=(128, 128), num_objects=3),
        make_scene(np.random.default_rng(3), size=(200, 150), num_objects=3),
    ]


def user_prompt(processor, text: str, image: bool = True) -> str:
    content = ([{"type": "image"}] if image else []) + [{"type": "text", "text": text}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
