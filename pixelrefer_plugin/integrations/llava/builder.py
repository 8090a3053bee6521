# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""LLaVA-style `load_pretrained_model` (`llava/model/builder.py`) for PixelRefer checkpoints."""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor, BitsAndBytesConfig, PreTrainedConfig

from ...configuration_pixelrefer import RELEASED_MODEL_TYPES, PixelReferConfig
from ...presets.hub import resolve_pretrained
from ...runtime import preferred_attn_implementation, preferred_dtype

logger = logging.getLogger(__name__)

PIXELREFER_MODEL_TYPES = frozenset({PixelReferConfig.model_type, *RELEASED_MODEL_TYPES})
DEFAULT_CONTEXT_LEN = 2048
_AUTO_DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")

# from_pretrained keyword arguments that say where to read files; they apply to the config and processor too.
_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "proxies", "revision", "subfolder", "token")

_DTYPES = {"float16": torch.float16, "fp16": torch.float16, "half": torch.float16, "bfloat16": torch.bfloat16}
_DTYPES.update({"bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32, "float": torch.float32})


def _target_device(device: str | torch.device | None, device_map: Any) -> torch.device:
    """The device the weights end up on (the first one, for a map over several)."""
    if device is not None:
        return torch.device(device)
    if device_map is None:
        return torch.device("cpu")
    if isinstance(device_map, dict):
        targets = [torch.device(f"cuda:{d}" if isinstance(d, int) else d) for d in device_map.values()]
        targets = [d for d in targets if d.type not in ("cpu", "disk", "meta")] or [torch.device("cpu")]
        return targets[0]
    if isinstance(device_map, int):
        return torch.device("cuda", device_map)
    if isinstance(device_map, str) and device_map in _AUTO_DEVICE_MAPS:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device_map)


def _resolve_dtype(torch_dtype: str | torch.dtype | None, target: torch.device) -> str | torch.dtype:
    if torch_dtype is None:
        return preferred_dtype(target)
    if isinstance(torch_dtype, str):
        if torch_dtype == "auto":
            return "auto"
        if torch_dtype not in _DTYPES:
            raise ValueError(
                f"torch_dtype must be one of {sorted(_DTYPES)}, 'auto' or a torch.dtype, got {torch_dtype!r}"
            )
        torch_dtype = _DTYPES[torch_dtype]
    if torch_dtype == torch.float16 and target.type == "cpu":
        logger.warning("float16 on CPU is slow and partly unsupported; loading in %s instead", preferred_dtype(target))
        return preferred_dtype(target)
    return torch_dtype


def _resolve_attn(attn_implementation: str | None, use_flash_attn: bool, target: torch.device) -> str:
    if use_flash_attn:
        attn_implementation = "flash_attention_2"
    if attn_implementation is None:
        return preferred_attn_implementation(target)
    if attn_implementation == "flash_attention_2" and preferred_attn_implementation(target) != "flash_attention_2":
        fallback = preferred_attn_implementation(target)
        logger.warning(
            "flash_attention_2 needs flash-attn and a CUDA device (target: %s); using %s instead", target, fallback
        )
        return fallback
    return attn_implementation


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


def _check_pixelrefer(path: str | os.PathLike, hub_kwargs: dict[str, Any]) -> None:
    config_dict, _ = PreTrainedConfig.get_config_dict(path, **hub_kwargs)
    model_type = config_dict.get("model_type")
    if model_type not in PIXELREFER_MODEL_TYPES:
        raise ValueError(
            f"{path} holds a {model_type!r} checkpoint; this builder only loads PixelRefer checkpoints (model_type "
            f"{sorted(PIXELREFER_MODEL_TYPES)}). Use LLaVA's own builder for LLaVA models."
        )


def _check_adapter(model_path: str | os.PathLike, hub_kwargs: dict[str, Any]) -> None:
    message = (
        f"model_base was given, so {model_path} must be a LoRA adapter (a folder with adapter_config.json, as "
        "written by peft's save_pretrained), but"
    )
    if os.path.isdir(model_path):
        if not os.path.isfile(os.path.join(model_path, "adapter_config.json")):
            raise ValueError(f"{message} it has no adapter_config.json")
        return
    from peft import PeftConfig

    try:
        PeftConfig.from_pretrained(str(model_path), **hub_kwargs)
    except (OSError, ValueError) as error:
        raise ValueError(f"{message} no adapter_config.json could be read: {error}") from error


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
        model_path: Checkpoint folder, Hub id (a released checkpoint loads as it is) or preset name
            (`"pixelrefer-7b"`: a folder of that name, else its hub repository); with `model_base`, a LoRA adapter.
        model_base: Base checkpoint the LoRA adapter at `model_path` was trained on (merged into it), or `None`;
            a preset name too.
        model_name: Accepted for compatibility; LLaVA dispatches on it, any PixelRefer checkpoint loads here.
        load_8bit, load_4bit: Quantize with bitsandbytes (must be installed).
        device_map: As in `from_pretrained`; `"auto"` loads on the CPU when no CUDA device is available.
        torch_dtype: `"float16"`, `"bfloat16"`, `"float32"`, `"auto"`, a `torch.dtype`, or `None` for the device's
            preferred dtype. float16 on a CPU target loads as float32 (with a warning).
        attn_implementation: `"flash_attention_2"` falls back to `"sdpa"` (with a warning) without flash-attn or off
            CUDA; `None` picks the device's preferred kernel.
        customized_config: Config to load the weights into instead of the checkpoint's.
        overwrite_config: Config attributes to set before loading (e.g. `{"max_sequence_length": 8192}`).
        kwargs: LLaVA's `device` (e.g. `"cpu"`, `"cuda:1"`: everything on that device) and `use_flash_attn`; the
            rest go to `from_pretrained` (`cache_dir`, `revision`, `token`, ... also reach the processor).

    Returns:
        `(tokenizer, model, processor, context_len)`: the processor's tokenizer, the model in eval mode, the full
        [`PixelReferProcessor`] (LLaVA returns an image processor here; ours also expands `<region>` placeholders and
        has `.image_processor`), and `model.config.max_sequence_length` if set, else the language model's
        `max_position_embeddings` (LLaVA falls back to 2048, which would understate PixelRefer's context).
    """
    device = kwargs.pop("device", None)
    use_flash_attn = bool(kwargs.pop("use_flash_attn", False))
    kwargs.pop("multimodal", None)  # LLaVA-NeXT's flag; PixelRefer checkpoints are always multimodal
    if "dtype" in kwargs:
        torch_dtype = kwargs.pop("dtype")
    if device is not None:
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            logger.warning("device=%r but no CUDA device is available; loading on the CPU", str(device))
            device = torch.device("cpu")
        if device.type == "cpu":
            device_map = None
        elif str(device) != "cuda":
            device_map = {"": str(device)}  # LLaVA: a device other than "cuda" places every weight on it
    if isinstance(device_map, str) and device_map in _AUTO_DEVICE_MAPS and not torch.cuda.is_available():
        device_map = None

    target = _target_device(device, device_map)
    quantization_config = _quantization_config(load_8bit, load_4bit)
    dtype = torch.float16 if load_4bit else _resolve_dtype(torch_dtype, target)
    attn = _resolve_attn(attn_implementation, use_flash_attn, target)
    hub_kwargs = {key: kwargs[key] for key in _HUB_KWARGS if key in kwargs}
    model_path = resolve_pretrained(model_path, **hub_kwargs)
    model_base = None if model_base is None else resolve_pretrained(model_base, **hub_kwargs)

    weights_path = model_path
    if model_base is not None:
        if importlib.util.find_spec("peft") is None:
            raise ImportError("loading a LoRA adapter (model_base given) needs peft: `pip install peft`")
        _check_adapter(model_path, hub_kwargs)
        weights_path = model_base
    if customized_config is not None:
        if getattr(customized_config, "model_type", None) not in PIXELREFER_MODEL_TYPES:
            raise ValueError(
                "customized_config must be a PixelRefer config; this builder only loads PixelRefer models"
            )
    else:
        _check_pixelrefer(weights_path, hub_kwargs)

    load_kwargs: dict[str, Any] = {"trust_remote_code": True, "dtype": dtype, "attn_implementation": attn, **kwargs}
    if device_map is not None:
        load_kwargs["device_map"] = device_map
    if quantization_config is not None:
        load_kwargs["quantization_config"] = quantization_config
    if customized_config is not None or overwrite_config:
        config = customized_config
        if config is None:
            config = AutoConfig.from_pretrained(weights_path, trust_remote_code=True, **hub_kwargs)
        for key, value in (overwrite_config or {}).items():
            logger.info("overwriting config.%s = %r", key, value)
            setattr(config, key, value)
        load_kwargs["config"] = config

    logger.info("loading %s (%s) with dtype=%s, attn=%s", weights_path, model_name, dtype, attn)
    model = AutoModelForImageTextToText.from_pretrained(weights_path, **load_kwargs)
    if model_base is not None:
        from peft import PeftModel

        logger.info("merging LoRA adapter %s into %s", model_path, model_base)
        model = PeftModel.from_pretrained(model, str(model_path), **hub_kwargs).merge_and_unload()
    model.eval()

    processor = AutoProcessor.from_pretrained(weights_path, trust_remote_code=True, **hub_kwargs)
    context_len = (
        getattr(model.config, "max_sequence_length", None)
        or getattr(model.config.get_text_config(), "max_position_embeddings", None)
        or DEFAULT_CONTEXT_LEN
    )
    return processor.tokenizer, model, processor, int(context_len)
