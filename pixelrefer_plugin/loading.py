# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Loading a PixelRefer model and its processor: one path for `describe`, `serve`, the LLaVA builder and lmms-eval.

```python no-run
from pixelrefer_plugin.loading import load_pretrained

model, processor = load_pretrained("pixelrefer-7b", device="auto", dtype="auto")
model, processor = load_pretrained("base-checkpoint", adapter="lora-adapter")  # the adapter merged in
```

A checkpoint is a folder (written by `pixelrefer build`, `convert`, `merge`, or a released one), a hub id
(`org/name`) or a preset name (`"pixelrefer-7b"`: a folder of that name, else its released hub repository). The
device and dtype follow the policy of [`pixelrefer_plugin.runtime`]: an explicitly requested device that this
machine lacks is an error naming `device`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedConfig

from .configuration_pixelrefer import RELEASED_MODEL_TYPES, PixelReferConfig
from .errors import PixelReferInputError
from .runtime import resolve_attn_implementation, resolve_device, resolve_dtype

logger = logging.getLogger(__name__)

CHECKPOINT_MODEL_TYPES = frozenset({PixelReferConfig.model_type, *RELEASED_MODEL_TYPES})
DEFAULT_CONTEXT_LEN = 2048
# from_pretrained keyword arguments that say where to read files; they apply to the config and processor too.
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "proxies", "revision", "subfolder", "token")


def hub_kwargs_of(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The `HUB_KWARGS` among `from_pretrained` keyword arguments."""
    return {key: kwargs[key] for key in HUB_KWARGS if key in kwargs}


def check_model_type(model_type: Any, where: str) -> None:
    """A [`PixelReferInputError`] (argument `model`) unless `model_type` is PixelRefer's or a released one."""
    if model_type not in CHECKPOINT_MODEL_TYPES:
        raise PixelReferInputError(
            "model",
            f"{where} holds a {model_type!r} checkpoint; expected a PixelRefer one (model_type "
            f"{PixelReferConfig.model_type!r}, written by `pixelrefer build`, `convert` or `merge`, or a released "
            f"{' / '.join(sorted(RELEASED_MODEL_TYPES))} checkpoint)",
        )


def resolve_checkpoint(path: str | os.PathLike, **hub_kwargs: Any) -> str | Path:
    """What `from_pretrained` should read for `path`: a PixelRefer checkpoint folder, a hub id, or the hub id of a
    preset name with no folder of that name.

    Raises:
        PixelReferInputError: (argument `model`) what is wrong and what to do.
        HubUnavailableError: a preset name offline with nothing cached (the message gives the download and convert
            commands).
    """
    folder = Path(path).expanduser()
    if folder.exists():
        return _check_folder(folder, str(path))
    if _looks_like_hub_id(str(path)):
        return _check_hub_checkpoint(str(path), hub_kwargs)
    return _resolve_preset(str(path), hub_kwargs)


def _looks_like_hub_id(name: str) -> bool:
    """`org/name`: one slash, not a path (absolute, `./`, `../`, `~`)."""
    return name.count("/") == 1 and not name.startswith(("/", ".", "~")) and "\\" not in name


def _resolve_preset(name: str, hub_kwargs: dict[str, Any]) -> str:
    """The hub id of a preset with released weights; `HubUnavailableError` (an `OSError`, as `from_pretrained` raises
    for a hub it cannot reach) offline without a cached copy."""
    from .presets import list_presets
    from .presets.hub import resolve_pretrained

    if name not in list_presets():
        raise PixelReferInputError(
            "model", f"{name!r} is no folder here; expected a checkpoint folder, a hub id (org/name) or a preset name"
        )
    resolved = resolve_pretrained(name, **hub_kwargs)
    if resolved == name:  # a preset without released weights
        raise PixelReferInputError(
            "model",
            f"{name!r} is a preset name with no folder of that name here: write its checkpoint with "
            f"`pixelrefer build {name} --out DIR`",
        )
    return _check_hub_checkpoint(str(resolved), hub_kwargs)


def _check_hub_checkpoint(hub_id: str, hub_kwargs: dict[str, Any]) -> str:
    try:
        config_dict, _ = PreTrainedConfig.get_config_dict(hub_id, **hub_kwargs)
    except (OSError, ValueError) as error:
        raise PixelReferInputError(
            "model", f"{hub_id!r} is no folder here and no hub checkpoint could be read ({error})"
        ) from None
    check_model_type(config_dict.get("model_type"), repr(hub_id))
    return hub_id


def _check_folder(folder: Path, name: str) -> Path:
    if not folder.is_dir():
        raise PixelReferInputError("model", f"{name!r} is a file; expected a checkpoint folder")
    config_file = folder / "config.json"
    if not config_file.is_file():
        hint = ""
        if (folder / "adapter_config.json").is_file():
            hint = "; it holds a LoRA adapter: merge it into a checkpoint with `pixelrefer merge ADAPTER --out DIR`"
        raise PixelReferInputError(
            "model", f"{name!r} has no config.json; expected a PixelRefer checkpoint folder{hint}"
        )
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as error:
        raise PixelReferInputError("model", f"{name!r} has a config.json that cannot be read ({error})") from None
    check_model_type(model_type, repr(name))
    return folder


def load_processor(path: str | os.PathLike, **hub_kwargs: Any) -> Any:
    """The [`PixelReferProcessor`] of a checkpoint folder, hub id or preset name (see `resolve_checkpoint`)."""
    source = resolve_checkpoint(path, **hub_kwargs)
    try:
        return AutoProcessor.from_pretrained(str(source), trust_remote_code=True, **hub_kwargs)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PixelReferInputError("model", f"{str(path)!r} holds no processor that loads ({error})") from None


def load_model(
    path: str | os.PathLike,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    attn_implementation: str | None = None,
    adapter: str | os.PathLike | None = None,
    device_map: str | dict[str, Any] | None = None,
    **kwargs: Any,
) -> torch.nn.Module:
    """The model of a checkpoint, in eval mode, placed and typed by the runtime policy.

    Args:
        path: checkpoint folder, hub id or preset name (see `resolve_checkpoint`).
        device: `None` / `"auto"` (the best available) or a device this machine has (see `resolve_device`).
        dtype: `None` / `"auto"`, a name of `runtime.DTYPES` or a `torch.dtype` (see `resolve_dtype`).
        attn_implementation: `None` / `"auto"` for the device's preferred kernel (see `resolve_attn_implementation`).
        adapter: a LoRA adapter (folder or hub id, written by peft's `save_pretrained`) trained on `path`; merged
            into the weights.
        device_map: a `from_pretrained` device map (e.g. `"auto"` over several GPUs) instead of placing every
            weight on `device`; `device` still decides the dtype and kernel.
        kwargs: other `from_pretrained` arguments (`config`, `quantization_config`, `revision`, `token`, ...).
    """
    hub_kwargs = hub_kwargs_of(kwargs)
    source = resolve_checkpoint(path, **hub_kwargs)
    if adapter is not None:
        check_adapter(adapter, hub_kwargs)
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    attn = resolve_attn_implementation(attn_implementation, device)
    if device_map is None and device.type != "cpu":
        device_map = {"": str(device)}
    logger.info("loading %s on %s (%s, %s)", source, device, str(dtype).removeprefix("torch."), attn)
    load_kwargs = {"trust_remote_code": True, "dtype": dtype, "attn_implementation": attn, **kwargs}
    if device_map is not None:
        load_kwargs["device_map"] = device_map
    try:
        model = AutoModelForImageTextToText.from_pretrained(str(source), **load_kwargs)
    except (OSError, KeyError, TypeError) as error:
        raise PixelReferInputError("model", f"{str(path)!r} holds weights that do not load ({error})") from None
    if adapter is not None:
        logger.info("merging LoRA adapter %s into %s", adapter, source)
        model = with_adapter_merged(model, adapter, hub_kwargs)
    return model.eval()


def load_pretrained(
    path: str | os.PathLike,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    attn_implementation: str | None = None,
    adapter: str | os.PathLike | None = None,
    **kwargs: Any,
) -> tuple[torch.nn.Module, Any]:
    """`(model, processor)` of a checkpoint: [`load_model`] (same arguments) and [`load_processor`]."""
    processor = load_processor(path, **hub_kwargs_of(kwargs))
    model = load_model(path, device, dtype, attn_implementation, adapter, **kwargs)
    return model, processor


def check_adapter(adapter: str | os.PathLike, hub_kwargs: dict[str, Any]) -> None:
    """A [`PixelReferInputError`] (argument `adapter`) unless `adapter` holds a peft adapter_config.json."""
    if importlib.util.find_spec("peft") is None:
        raise ImportError("loading a LoRA adapter needs peft: `pip install peft`")
    message = f"{str(adapter)!r} must be a LoRA adapter (a folder with adapter_config.json, as peft writes it), but"
    if os.path.isdir(adapter):
        if not os.path.isfile(os.path.join(adapter, "adapter_config.json")):
            raise PixelReferInputError("adapter", f"{message} it has no adapter_config.json")
        return
    from peft import PeftConfig

    try:
        PeftConfig.from_pretrained(str(adapter), **hub_kwargs)
    except (OSError, ValueError) as error:
        raise PixelReferInputError("adapter", f"{message} no adapter_config.json could be read: {error}") from None


def with_adapter_merged(
    model: torch.nn.Module, adapter: str | os.PathLike, hub_kwargs: dict[str, Any]
) -> torch.nn.Module:
    """`model` with the LoRA adapter at `adapter` (see `check_adapter`) merged into its weights (no peft layers
    left)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter), **hub_kwargs).merge_and_unload()


def context_length(config: PreTrainedConfig) -> int:
    """Tokens the model reads: `config.max_sequence_length` if set, else the language model's
    `max_position_embeddings` (else `DEFAULT_CONTEXT_LEN`)."""
    return int(
        getattr(config, "max_sequence_length", None)
        or getattr(config.get_text_config(), "max_position_embeddings", None)
        or DEFAULT_CONTEXT_LEN
    )


__all__ = [
    "HUB_KWARGS",
    "CHECKPOINT_MODEL_TYPES",
    "check_adapter",
    "check_model_type",
    "context_length",
    "load_model",
    "load_pretrained",
    "load_processor",
    "with_adapter_merged",
    "resolve_checkpoint",
]
