# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""A tiny random SAM 2 checkpoint built from a config in code (no download), as `tiny_llava.py` does for LLaVA.

The builder lives in the package (`pixelrefer_plugin.segmentation.tiny`) so that the docs examples and the benchmark
use the same checkpoint; this module gives the tests a folder per session.
"""

from __future__ import annotations

from pathlib import Path

from pixelrefer_plugin.segmentation.tiny import TINY_IMAGE_SIZE, build_tiny_sam2, tiny_sam2_config

__all__ = ["TINY_IMAGE_SIZE", "build_tiny_sam2", "tiny_sam2_config", "tiny_sam2_folder"]


def tiny_sam2_folder(root: str | Path, seed: int = 0) -> Path:
    """`root/tiny-sam2`, built once."""
    folder = Path(root) / "tiny-sam2"
    if not (folder / "config.json").is_file():
        build_tiny_sam2(folder, seed=seed)
    return folder
