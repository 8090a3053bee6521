# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Helpers shared by the tests (fixtures live in `conftest.py`; what tests import lives here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

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


def user_prompt(processor: Any, text: str, image: bool = True) -> str:
    """One user turn (an image, when `image`, then `text`) in the processor's chat template, ready for generation."""
    content = ([{"type": "image"}] if image else []) + [{"type": "text", "text": text}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)


def load_task_module(task_dir: Path, name: str) -> ModuleType:
    """The hook file `name.py` of a materialised lmms-eval task folder, loaded by file path as lmms-eval loads it
    (a fresh module on every call)."""
    spec = importlib.util.spec_from_file_location(f"pixelrefer_task_{name}", task_dir / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
