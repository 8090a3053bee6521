# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The vocabulary and the runtime policy every entry point shares: variants, placeholders, devices and dtypes.

Device policy (`resolve_device`), the same for `describe`, `serve`, the LLaVA builder, the lmms-eval wrapper and the
trainer:

* `None` or `"auto"`: the best device available, CUDA when there is one, else the CPU.
* an explicit device (`"cpu"`, `"cuda"`, `"cuda:1"`, a `torch.device`): used as it is; when it is not available
  (no CUDA, or no GPU of that index) a [`PixelReferInputError`] naming the `device` argument, never a silent
  fallback to another device.

Cache policy (`cache_dir`): everything the package keeps between runs (the demo's trained model, the materialised
lmms-eval task folder, masks made by a segmenter) lives under `$XDG_CACHE_HOME/pixelrefer` (default
`~/.cache/pixelrefer`), each in a sub-folder that its own environment variable can move elsewhere.

Dtype policy (`resolve_dtype`): `None` or `"auto"` is bfloat16 on a CUDA device that supports it and float32
elsewhere; a name of `DTYPES` (`"float16"`, `"bf16"`, ...) or a `torch.dtype` is used as it is.

The placeholders are the processor's defaults. The files exported into checkpoints
(`processing_pixelrefer.py`, `configuration_pixelrefer.py`, `modeling_pixelrefer.py`) cannot import this module and
spell their defaults out; a checkpoint's processor may hold other strings (`processor.region_placeholder`, ...).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from transformers.utils import is_flash_attn_2_available

from .errors import PixelReferInputError
from .region_settings import VARIANTS, Variant

logger = logging.getLogger(__name__)

REGION_PLACEHOLDER = "<region>"
"""Where the user's text puts a region (the processor expands it to the region's object tokens)."""
IMAGE_PLACEHOLDER = "<image>"
"""Where the image's scene tokens go (also the image token the processor expands)."""
VIDEO_PLACEHOLDER = "<video>"
"""Where the video's scene tokens go in the user's text."""
REGION_TOKEN = "<REGION>"
"""The token each object token of a region is written as in `input_ids`."""
VIDEO_TOKEN = "<|video_pad|>"
"""The token each scene token of a video is written as in `input_ids`."""

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}
"""Dtype names the entry points accept (besides `"auto"` and a `torch.dtype`)."""
DTYPE_NAMES: tuple[str, ...] = ("auto", *DTYPES)


def check_variant(variant: str) -> Variant:
    """`variant` if it is one of `VARIANTS` (`"full"`, `"lite"`), else a `ValueError` naming the choices."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    return variant  # type: ignore[return-value]


def cache_dir(name: str, variable: str | None = None) -> Path:
    """The cache folder `name`: `$variable` when that environment variable is set, else
    `$XDG_CACHE_HOME/pixelrefer/<name>` (default `~/.cache/pixelrefer/<name>`). Not created here."""
    if variable and os.environ.get(variable):
        return Path(os.environ[variable]).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home).expanduser() / "pixelrefer" / name


def best_device() -> torch.device:
    """CUDA (the current GPU) when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to run on, following the module's device policy.

    Args:
        device: `None` / `"auto"` (the best available), or a device name or `torch.device`.

    Raises:
        PixelReferInputError: (argument `device`) not a device name, or a device this machine does not have.
    """
    if device is None or device == "auto":
        return best_device()
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as error:
        raise PixelReferInputError("device", f"{str(device)!r} is not a device name ({error})") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise PixelReferInputError(
                "device", f"{str(device)!r} asks for CUDA, which is not available; use 'cpu' or 'auto'"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise PixelReferInputError(
                "device",
                f"{str(device)!r} asks for GPU {resolved.index}; there are {torch.cuda.device_count()} GPU(s)",
            )
    elif resolved.type not in ("cpu", "mps", "xpu", "meta"):
        raise PixelReferInputError("device", f"{str(device)!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return resolved


def preferred_dtype(device: str | torch.device = "cpu") -> torch.dtype:
    """bfloat16 on a CUDA device that supports it, float32 elsewhere (CPU inference and tests)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def resolve_dtype(dtype: str | torch.dtype | None, device: str | torch.device) -> torch.dtype:
    """The dtype to load weights in on `device`, following the module's dtype policy.

    Raises:
        PixelReferInputError: (argument `dtype`) a name that is not `"auto"` or one of `DTYPES`.
    """
    if dtype is None or dtype == "auto":
        return preferred_dtype(device)
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    elif isinstance(dtype, str) and dtype in DTYPES:
        resolved = DTYPES[dtype]
    else:
        raise PixelReferInputError("dtype", f"{dtype!r}; expected one of {', '.join(map(repr, DTYPE_NAMES))}")
    if resolved == torch.float16 and torch.device(device).type == "cpu":
        logger.warning("float16 on the CPU is slow and some operations may not support it; float32 is safer")
    return resolved


def preferred_attn_implementation(device: str | torch.device = "cpu") -> str:
    """`"flash_attention_2"` on a CUDA device when flash-attn is installed, else `"sdpa"` (PyTorch's kernel)."""
    if torch.device(device).type == "cuda" and is_flash_attn_2_available():
        return "flash_attention_2"
    return "sdpa"


def resolve_attn_implementation(attn_implementation: str | None, device: str | torch.device) -> str:
    """The attention kernel: `None` / `"auto"` picks `preferred_attn_implementation(device)`; `"flash_attention_2"`
    without flash-attn or off CUDA becomes that preferred kernel with a warning (a kernel changes speed, not
    answers); any other name is passed to transformers as it is."""
    preferred = preferred_attn_implementation(device)
    if attn_implementation is None or attn_implementation == "auto":
        return preferred
    if attn_implementation == "flash_attention_2" and preferred != "flash_attention_2":
        logger.warning(
            "flash_attention_2 needs flash-attn and a CUDA device (device: %s); using %s", device, preferred
        )
        return preferred
    return attn_implementation


__all__ = [
    "DTYPES",
    "DTYPE_NAMES",
    "IMAGE_PLACEHOLDER",
    "REGION_PLACEHOLDER",
    "REGION_TOKEN",
    "VARIANTS",
    "VIDEO_PLACEHOLDER",
    "VIDEO_TOKEN",
    "Variant",
    "best_device",
    "cache_dir",
    "check_variant",
    "preferred_attn_implementation",
    "preferred_dtype",
    "resolve_attn_implementation",
    "resolve_device",
    "resolve_dtype",
]
