# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Named model presets (the YAML files of `registry/`) and building checkpoints from them."""

from .builder import build_model_and_processor, build_preset
from .registry import Preset, list_presets, load_preset
from .tiny_tokenizer import build_tiny_tokenizer

__all__ = [
    "Preset",
    "build_model_and_processor",
    "build_preset",
    "build_tiny_tokenizer",
    "list_presets",
    "load_preset",
]
