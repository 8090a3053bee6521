# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""LLaVA-style surface for PixelRefer: `load_pretrained_model` and `conv_templates`, without depending on `llava`.

    from pixelrefer_plugin.integrations.llava import conv_templates, load_pretrained_model

    tokenizer, model, processor, context_len = load_pretrained_model(path, None, "pixelrefer")

Importing this module also adds the PixelRefer templates to `llava.conversation.conv_templates` when a `llava`
package is importable (see `register_with_llava`).
"""

from .builder import load_pretrained_model
from .conversation import (
    DEFAULT_IMAGE_TOKEN,
    DEFAULT_REGION_TOKEN,
    DEFAULT_VIDEO_TOKEN,
    Conversation,
    SeparatorStyle,
    conv_pixelrefer_lite_qwen2,
    conv_pixelrefer_qwen2,
    conv_templates,
    default_conversation,
    pixelrefer_conv_templates,
    register_with_llava,
)

LLAVA_REGISTERED = register_with_llava()

__all__ = [
    "DEFAULT_IMAGE_TOKEN",
    "DEFAULT_REGION_TOKEN",
    "DEFAULT_VIDEO_TOKEN",
    "LLAVA_REGISTERED",
    "Conversation",
    "SeparatorStyle",
    "conv_pixelrefer_lite_qwen2",
    "conv_pixelrefer_qwen2",
    "conv_templates",
    "default_conversation",
    "load_pretrained_model",
    "pixelrefer_conv_templates",
    "register_with_llava",
]
