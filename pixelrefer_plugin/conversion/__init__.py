# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Conversion of released checkpoints to the plugin format."""

from .download import build_released
from .released import ConversionError, convert_released_checkpoint, map_released_key

__all__ = ["ConversionError", "build_released", "convert_released_checkpoint", "map_released_key"]
