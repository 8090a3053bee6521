# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Choosing the attention kernel and dtype for the device a model runs on."""

from __future__ import annotations

import torch
from transformers.utils import is_flash_attn_2_available


def preferred_attn_implementation(device: str | torch.device = "cpu") -> str:
    """`"flash_attention_2"` on a CUDA device when flash-attn is installed, else `"sdpa"` (PyTorch's kernel)."""
    if torch.device(device).type == "cuda" and is_flash_attn_2_available():
        return "flash_attention_2"
    return "sdpa"


def preferred_dtype(device: str | torch.device = "cpu") -> torch.dtype:
    """bfloat16 on a CUDA device that supports it, float32 elsewhere (CPU inference and tests)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32
