# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
import importlib.util

import numpy as np
import pytest
import torch

from pixelrefer_plugin.demo.scenes import make_scene
from pixelrefer_plugin.presets import build_model_and_processor

# A one-layer Qwen2 text config small enough to build configs and object tokenizers in milliseconds.
TINY_TEXT_CONFIG = {
    "model_type": "qwen2",
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "intermediate_size": 64,
    "vocab_size": 100,
}


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


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    """The materialised lmms-eval task folder (`pixelrefer tasks-path`), in a temporary `PIXELREFER_TASKS_DIR` that
    stays set for the module."""
    from pixelrefer_plugin.integrations.lmms_eval.task_dir import tasks_path

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIXELREFER_TASKS_DIR", str(tmp_path_factory.mktemp("tasks")))
        yield tasks_path()


@pytest.fixture(scope="module")
def task_utils(task_dir):
    """The task folder's `utils.py`, loaded from there as lmms-eval loads it."""
    spec = importlib.util.spec_from_file_location("pixelrefer_task_utils", task_dir / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
