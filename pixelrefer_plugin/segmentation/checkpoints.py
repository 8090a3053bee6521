# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Named SAM 2 checkpoints (segmenter presets) and where `RegionSegmenter.from_pretrained` reads a name from."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..presets.hub import HubUnavailableError

logger = logging.getLogger(__name__)

# The SAM 2.1 checkpoints in transformers' format (`model_type="sam2_video"`, loads as Sam2Model and Sam2VideoModel).
SEGMENTER_PRESETS = {
    "sam2.1-hiera-tiny": "facebook/sam2.1-hiera-tiny",
    "sam2.1-hiera-small": "facebook/sam2.1-hiera-small",
    "sam2.1-hiera-base-plus": "facebook/sam2.1-hiera-base-plus",
    "sam2.1-hiera-large": "facebook/sam2.1-hiera-large",
}


def segmenter_download_instructions(name: str, reason: str) -> str:
    """What to run when a segmenter preset cannot be downloaded here: the download and local-folder commands."""
    hub_id = SEGMENTER_PRESETS[name]
    return (
        f"could not download {hub_id} ({reason}).\n"
        f"On a machine that reaches the Hugging Face hub, download the checkpoint:\n"
        f"    hf download {hub_id} --local-dir {name}\n"
        f"bring the folder here and pass it as the segmenter: --segmenter {name} (a folder of that name is read "
        f"before the hub)"
    )


def resolve_segmenter(name: str | os.PathLike, local_files_only: bool = False) -> str | os.PathLike:
    """The folder or hub id to load for `name`: a folder as it is, a preset name (`"sam2.1-hiera-tiny"`) with no
    folder of that name as its hub id, anything else (a hub id) as it is.

    Raises:
        HubUnavailableError: `name` is a preset, offline (`HF_HUB_OFFLINE` or `local_files_only`) and not in the hub
            cache; the message gives the download and local-folder commands.
    """
    if os.path.isdir(name) or str(name) not in SEGMENTER_PRESETS:
        return name
    from huggingface_hub import constants, try_to_load_from_cache

    hub_id = SEGMENTER_PRESETS[str(name)]
    offline = bool(constants.HF_HUB_OFFLINE or local_files_only)
    if offline and not isinstance(try_to_load_from_cache(hub_id, "config.json"), str):
        reason = "HF_HUB_OFFLINE or local_files_only is set and no copy is cached"
        raise HubUnavailableError(segmenter_download_instructions(str(name), reason))
    logger.info("segmenter %s: loading %s", name, hub_id)
    return hub_id


def download_segmenter(name: str, out: str | Path) -> Path:
    """Download a segmenter preset into the folder `out` (`pixelrefer build sam2.1-hiera-tiny --out DIR`).

    Raises:
        HubUnavailableError: offline without a cached copy, or the hub cannot be reached.
    """
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline = bool(constants.HF_HUB_OFFLINE)
    try:
        return Path(snapshot_download(SEGMENTER_PRESETS[name], local_dir=out, local_files_only=offline))
    except LocalEntryNotFoundError:
        reason = "HF_HUB_OFFLINE is set and no copy is cached" if offline else "the hub is not reachable"
        raise HubUnavailableError(segmenter_download_instructions(name, reason)) from None
    except OSError as error:  # connection errors
        raise HubUnavailableError(segmenter_download_instructions(name, f"{type(error).__name__}: {error}")) from None


__all__ = ["SEGMENTER_PRESETS", "download_segmenter", "resolve_segmenter", "segmenter_download_instructions"]
