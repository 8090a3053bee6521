# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""PixelRefer region-level multimodal LLMs as a transformers plugin.

Importing the package registers the model and processor with transformers' Auto classes:

    import pixelrefer_plugin
    from transformers import AutoModelForImageTextToText, AutoProcessor

The import is light: the classes below are imported on first use (PEP 562), and the registration runs when
transformers' Auto classes are imported (see `auto_registration`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .auto_registration import register_when_transformers_is_ready

__version__ = "0.1.0"

_LAZY_ATTRIBUTES = {
    "PixelReferConfig": "configuration_pixelrefer",
    "PixelReferForConditionalGeneration": "modeling_pixelrefer",
    "PixelReferModel": "modeling_pixelrefer",
    "PixelReferPreTrainedModel": "modeling_pixelrefer",
    "PixelReferProcessor": "processing_pixelrefer",
    "ImageInputError": "errors",
    "PixelReferInputError": "errors",
    "RegionInputError": "errors",
}

if TYPE_CHECKING:
    from .configuration_pixelrefer import PixelReferConfig
    from .errors import ImageInputError, PixelReferInputError, RegionInputError
    from .modeling_pixelrefer import PixelReferForConditionalGeneration, PixelReferModel, PixelReferPreTrainedModel
    from .processing_pixelrefer import PixelReferProcessor


def __getattr__(name: str) -> Any:
    if name not in _LAZY_ATTRIBUTES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY_ATTRIBUTES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY_ATTRIBUTES))


register_when_transformers_is_ready()

__all__ = [
    "ImageInputError",
    "PixelReferConfig",
    "PixelReferForConditionalGeneration",
    "PixelReferInputError",
    "PixelReferModel",
    "PixelReferPreTrainedModel",
    "PixelReferProcessor",
    "RegionInputError",
]
