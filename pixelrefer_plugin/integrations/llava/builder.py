# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""LLaVA-style `load_pretrained_model` (`llava/model/builder.py`) for PixelRefer checkpoints.

LLaVA's arguments (`device`, `device_map`, `torch_dtype`, `load_8bit`, ...) are translated here; loading itself is
[`pixelrefer_plugin.loading.load_model`], with the device policy of [`pixelrefer_plugin.runtime`].
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any

import torch
from transformers import AutoConfig, BitsAndBytesConfig, PreTrainedConfig

from ...loading import (
    CHECKPOINT_MODEL_TYPES,
    DEFAULT_CONTEXT_LEN,
    check_model_type,
    context_length,
    hub_kwargs_of,
    load_model,
    load_processor,
    resolve_checkpoint,
)
from ...runtime import best_device, preferred_dtype, resolve_device, resolve_dtype

logger = logging.getLogger(__name__)

_AUTO_DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


def _placement(device: str | torch.device | None, device_map: Any) -> tuple[torch.device, Any]:
    """`(target, device_map)`: the device the weights land on (the first one of a map over several), and the map to
    pass to `from_pretrained` (`None`: everything on `target`).

    LLaVA's rules: `device="cuda"` keeps `device_map`, any other `device` places every weight on it; an automatic
    map without CUDA loads on the CPU. Every device named explicitly goes through `resolve_device`.
    """
    if device is not None:
        target = resolve_device(device)
        if target.type == "cpu":
            return target, None
        return target, device_map if str(device) == "cuda" else {"": str(target)}
    if device_map is None:
        return torch.device("cpu"), None
    if isinstance(device_map, str) and device_map in _AUTO_DEVICE_MAPS:
        target = best_device()
        return target, (device_map if target.type == "cuda" else None)
    if isinstance(device_map, dict):
        targets = [torch.device(f"cuda:{d}" if isinstance(d, int) else d) for d in device_map.values()]
        placed = [resolve_device(d) for d in targets if d.type not in ("cpu", "disk", "meta")]
        return (placed or [torch.device("cpu")])[0], device_map
    if isinstance(device_map, int):
        return resolve_device(torch.device("cuda", device_map)), device_map
    return resolve_device(device_map), device_map


def _llava_dtype(torch_dtype: str | torch.dtype | None, load_4bit: bool, target: torch.device) -> torch.dtype:
    """The runtime dtype policy, except LLaVA's float16 default on a CPU target, which loads in the CPU's dtype."""
    if load_4bit:
        return torch.float16
    dtype = resolve_dtype(torch_dtype, target)
    if dtype == torch.float16 and target.type == "cpu":
        logger.warning("float16 on the CPU is slow and partly unsupported; loading in %s", preferred_dtype(target))
        return preferred_dtype(target)
    return dtype


def _quantization_config(load_8bit: bool, load_4bit: bool) -> BitsAndBytesConfig | None:
    if not (load_8bit or load_4bit):
        return None
    if load_8bit and load_4bit:
        raise ValueError("pass at most one of load_8bit and load_4bit")
    if importlib.util.find_spec("bitsandbytes") is None:
        flag = "load_8bit" if load_8bit else "load_4bit"
        raise ImportError(
            f"{flag}=True quantizes the model with bitsandbytes, which is not installed; install it with "
            "`pip install bitsandbytes` (it needs a supported accelerator), or load without quantization"
        )
    if load_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_compute_dtype=torch.float16,
        bnb_4bit_use_double_quant=True,
        bnb_4bit_quant_type="nf4",
    )


def _model_config(
    weights_path: str | os.PathLike,
    customized_config: PreTrainedConfig | None,
    overwrite_config: dict[str, Any] | None,
    hub_kwargs: dict[str, Any],
) -> PreTrainedConfig | None:
    """The config to load the weights into: `customized_config` or the checkpoint's, with `overwrite_config` set;
    `None` when neither is given (the checkpoint's config as it is)."""
    if customized_config is None and not overwrite_config:
        return None
    config = customized_config
    if config is None:
        source = resolve_checkpoint(weights_path, **hub_kwargs)
        config = AutoConfig.from_pretrained(source, trust_remote_code=True, **hub_kwargs)
    check_model_type(getattr(config, "model_type", None), "customized_config")
    for key, value in (overwrite_config or {}).items():
        logger.info("overwriting config.%s = %r", key, value)
        setattr(config, key, value)
    return config


def load_pretrained_model(
    model_path: str | os.PathLike,
    model_base: str | os.PathLike | None,
    model_name: str | None,
    load_8bit: bool = False,
    load_4bit: bool = False,
    device_map: str | dict[str, Any] | None = "auto",
    torch_dtype: str | torch.dtype | None = "float16",
    attn_implementation: str | None = "flash_attention_2",
    customized_config: PreTrainedConfig | None = None,
    overwrite_config: dict[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[Any, torch.nn.Module, Any, int]:
    """Load a PixelRefer checkpoint the way LLaVA(-NeXT)'s `load_pretrained_model` loads a LLaVA one.

    Args:
        model_path: Checkpoint folder, hub id or preset name (see `pixelrefer_plugin.loading`); with `model_base`, a
            LoRA adapter.
        model_base: Base checkpoint the LoRA adapter at `model_path` was trained on (merged into it), or `None`.
        model_name: Accepted for compatibility; LLaVA dispatches on it, any PixelRefer checkpoint loads here.
        load_8bit, load_4bit: Quantize with bitsandbytes (must be installed).
        device_map: As in `from_pretrained`; `"auto"` loads on the CPU when no CUDA device is available.
        torch_dtype: A name of `runtime.DTYPES` (`"float16"`, `"bf16"`, ...), `"auto"` / `None` for the device's
            preferred dtype, or a `torch.dtype`. float16 (LLaVA's CUDA default) on a CPU target loads in the CPU's
            preferred float32 (with a warning).
        attn_implementation: `"flash_attention_2"` falls back to `"sdpa"` (with a warning) without flash-attn or off
            CUDA; `None` picks the device's preferred kernel.
        customized_config: Config to load the weights into instead of the checkpoint's.
        overwrite_config: Config attributes to set before loading (e.g. `{"max_sequence_length": 8192}`).
        kwargs: LLaVA's `device` (e.g. `"cpu"`, `"cuda:1"`: everything on that device) and `use_flash_attn`; the
            rest go to `from_pretrained` (`cache_dir`, `revision`, `token`, ... also reach the processor).

    Returns:
        `(tokenizer, model, processor, context_len)`: the model in eval mode, the full [`PixelReferProcessor`] (LLaVA
        returns an image processor here; ours has `.image_processor` too) and `loading.context_length(model.config)`.

    Raises:
        PixelReferInputError: (argument `device`) a `device` or `device_map` entry this machine lacks.
    """
    target, device_map = _placement(kwargs.pop("device", None), device_map)
    if kwargs.pop("use_flash_attn", False):
        attn_implementation = "flash_attention_2"
    kwargs.pop("multimodal", None)  # LLaVA-NeXT's flag; PixelRefer checkpoints are always multimodal
    torch_dtype = kwargs.pop("dtype", torch_dtype)
    hub_kwargs = hub_kwargs_of(kwargs)
    weights_path, adapter = (model_path, None) if model_base is None else (model_base, model_path)
    kwargs["config"] = _model_config(weights_path, customized_config, overwrite_config, hub_kwargs)
    kwargs["quantization_config"] = _quantization_config(load_8bit, load_4bit)

    logger.info("loading %s (%s)", weights_path, model_name)
    dtype = _llava_dtype(torch_dtype, load_4bit, target)
    model = load_model(weights_path, target, dtype, attn_implementation, adapter, device_map=device_map, **kwargs)
    processor = load_processor(weights_path, **hub_kwargs)
    return processor.tokenizer, model, processor, context_length(model.config)


__all__ = ["DEFAULT_CONTEXT_LEN", "CHECKPOINT_MODEL_TYPES", "load_pretrained_model"]
