# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer merge ADAPTER_DIR --out DIR`: a LoRA adapter merged into a standalone trust_remote_code checkpoint."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..checkpoint_folders import check_destination, checkpoint_folder

logger = logging.getLogger(__name__)


def merge_adapter(
    adapter_dir: str | Path, out: str | Path, base: str | Path | None = None, overwrite: bool = False
) -> Path:
    """Merge a trained adapter (LoRA, fully trained modules, the `<REGION>` row) into its base model and save it.

    Args:
        adapter_dir: folder with `adapter_config.json` (the training output or one of its checkpoints).
        out: where the standalone checkpoint goes.
        base: the base checkpoint; default: `base_model_name_or_path` of the adapter config.
        overwrite: replace a non-empty `out` (never the adapter's or the base's folder).
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    adapter_dir = Path(adapter_dir)
    config_path = adapter_dir / "adapter_config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{adapter_dir} has no adapter_config.json; expected a LoRA adapter folder")
    base = Path(base or json.loads(config_path.read_text())["base_model_name_or_path"])
    if not (base / "config.json").is_file():
        raise FileNotFoundError(f"base model {base} not found; pass it with --base")
    out = Path(out)
    check_destination(out, overwrite, sources=[adapter_dir, base])
    logger.info("merging %s into its base model %s", adapter_dir, base)
    model = AutoModelForImageTextToText.from_pretrained(base, trust_remote_code=True, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    logger.info("writing the merged model to %s", out)
    processor_source = adapter_dir if (adapter_dir / "processor_config.json").exists() else base
    with checkpoint_folder(out, overwrite, sources=[adapter_dir, base]) as partial:
        merged.save_pretrained(partial)
        AutoProcessor.from_pretrained(processor_source, trust_remote_code=True).save_pretrained(partial)
    return out
