# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Released weights of a preset: preset names as checkpoints, downloading from the hub (when reachable), converting."""

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


def build_released(preset: Preset, out: str | Path, overwrite: bool = False) -> Path:
    """Download `preset.hub_id` (or use the local hub cache) and convert it into `out` (replacing a non-empty `out`
    only with `overwrite`).

    Raises:
        HubUnavailableError: offline (`HF_HUB_OFFLINE=1`) without a cached copy, or the hub cannot be reached.
    """
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    from ..checkpoint_folders import check_destination
    from ..conversion import convert_released_checkpoint

    if preset.hub_id is None:
        raise ValueError(f"preset {preset.name!r} has no released weights; build it with random init")
    check_destination(Path(out), overwrite)  # before a download of several GB
    offline = bool(constants.HF_HUB_OFFLINE)
    try:
        source = snapshot_download(preset.hub_id, local_files_only=offline)
    except LocalEntryNotFoundError:
        reason = "HF_HUB_OFFLINE is set and no copy is cached" if offline else "the hub is not reachable"
        raise HubUnavailableError(download_instructions(preset, out, reason)) from None
    except OSError as error:  # connection errors
        raise HubUnavailableError(download_instructions(preset, out, f"{type(error).__name__}: {error}")) from None
    logger.info("using %s from %s", preset.hub_id, source)
    return convert_released_checkpoint(source, out, overwrite=overwrite)


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
