# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""PixelRefer region-level multimodal LLMs as a transformers plugin.

Importing the package registers the model and processor with transformers' Auto classes:

    import pixelrefer_plugin
    from transformers import AutoModelForImageTextToText, AutoProcessor
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

from .configuration_pixelrefer import PixelReferConfig
from .modeling_pixelrefer import PixelReferForConditionalGeneration, PixelReferModel, PixelReferPreTrainedModel
from .processing_pixelrefer import PixelReferProcessor
from .regions import ImageInputError, PixelReferInputError, RegionInputError

__version__ = "0.1.0"

AutoConfig.register(PixelReferConfig.model_type, PixelReferConfig, exist_ok=True)
AutoModel.register(PixelReferConfig, PixelReferModel, exist_ok=True)
AutoModelForImageTextToText.register(PixelReferConfig, PixelReferForConditionalGeneration, exist_ok=True)
AutoProcessor.register(PixelReferConfig, PixelReferProcessor, exist_ok=True)

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
