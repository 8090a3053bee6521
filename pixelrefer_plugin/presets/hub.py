# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Preset names as checkpoints: a preset with released weights resolves to its hub repository, and what to download
when the hub cannot be reached. (Downloading and converting the weights: `conversion/download.py`.)"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .registry import Preset, list_presets, load_preset

logger = logging.getLogger(__name__)


class HubUnavailableError(OSError):
    """The hub could not be reached; the message says what to download and how to convert it."""


def download_instructions(preset: Preset, out: str | Path, reason: str) -> str:
    """The message of a `HubUnavailableError`: why the hub failed and the commands that download and convert the
    released checkpoint of `preset` into `out` by hand."""
    released = f"{preset.name}-released"
    return (
        f"could not download {preset.hub_id} ({reason}).\n"
        f"On a machine that reaches the Hugging Face hub, download the released checkpoint:\n"
        f"    hf download {preset.hub_id} --local-dir {released}\n"
        f"bring the folder here (it loads as it is with pixelrefer-plugin installed), or convert it into a "
        f"self-contained trust_remote_code folder:\n"
        f"    pixelrefer convert {released} --out {out}\n"
        f"(For a random-init model of this size instead: pixelrefer build {preset.name} --out {out} --random-init "
        f"--tokenizer DIR_WITH_TOKENIZER_FILES)"
    )


def resolve_pretrained(name: str | os.PathLike, **kwargs: Any) -> str | os.PathLike:
    """The checkpoint `from_pretrained` should read for `name`: a preset name with released weights
    (`"pixelrefer-7b"`) becomes its hub id, unless a folder of that name exists here; anything else is returned as
    it is. Offline, the hub id must be in the local hub cache.

    Args:
        name: preset name, folder or hub id.
        kwargs: `from_pretrained`'s keyword arguments; `local_files_only` and `cache_dir` are read.

    Raises:
        HubUnavailableError: `name` is a preset, no folder of that name exists, `HF_HUB_OFFLINE` is set (or
            `local_files_only=True`) and the hub cache holds no copy; the message gives the download and convert
            commands. Decided from the environment and the cache alone, before any network call.
    """
    if not isinstance(name, str) or name not in list_presets() or os.path.isdir(name):
        return name
    preset = load_preset(name)
    if preset.hub_id is None:
        return name
    from huggingface_hub import constants, try_to_load_from_cache

    offline = bool(constants.HF_HUB_OFFLINE or kwargs.get("local_files_only"))
    cached = try_to_load_from_cache(preset.hub_id, "config.json", cache_dir=kwargs.get("cache_dir"))
    if offline and not isinstance(cached, str):
        reason = "HF_HUB_OFFLINE or local_files_only is set and no copy is cached"
        raise HubUnavailableError(
            f"{name!r} is a preset name with no folder of that name here; "
            + download_instructions(preset, name, reason)
        )
    logger.info("preset %s: loading %s", name, preset.hub_id)
    return preset.hub_id
