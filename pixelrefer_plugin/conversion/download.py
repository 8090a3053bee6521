# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Released weights of a preset downloaded from the hub (when reachable) and converted to the plugin format."""

from __future__ import annotations

import logging
from pathlib import Path

from ..checkpoint_folders import check_destination
from ..presets.hub import HubUnavailableError, download_instructions
from ..presets.registry import Preset
from .released import convert_released_checkpoint

logger = logging.getLogger(__name__)


def build_released(preset: Preset, out: str | Path, overwrite: bool = False) -> Path:
    """Download `preset.hub_id` (or use the local hub cache) and convert it into `out` (replacing a non-empty `out`
    only with `overwrite`).

    Raises:
        HubUnavailableError: offline (`HF_HUB_OFFLINE=1`) without a cached copy, or the hub cannot be reached.
    """
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

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
