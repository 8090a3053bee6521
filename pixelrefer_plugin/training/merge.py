# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer merge ADAPTER_DIR --out DIR`: a LoRA adapter merged into a standalone trust_remote_code checkpoint."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..checkpoint_folders import check_destination, checkpoint_folder, load_weights_safely

logger = logging.getLogger(__name__)


class AdapterError(ValueError):
    """An adapter (or its base model) that cannot be merged: `{argument} {folder}: {reason}`.

    Attributes:
        argument: `adapter` or `--base`.
        folder: the folder at fault.
        reason: what is wrong and what was expected.
    """

    def __init__(self, argument: str, folder: str | Path, reason: str):
        self.argument = argument
        self.folder = str(folder)
        self.reason = reason
        super().__init__(f"{argument} {self.folder}: {reason}")

    def __reduce__(self):
        return type(self), (self.argument, self.folder, self.reason)


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
        raise AdapterError("adapter", adapter_dir, "has no adapter_config.json; expected a LoRA adapter folder")
    base = Path(base) if base is not None else _recorded_base(config_path)
    if not (base / "config.json").is_file():
        raise AdapterError("--base", base, "has no config.json; expected the base checkpoint (pass it with --base)")
    out = Path(out)
    check_destination(out, overwrite, sources=[adapter_dir, base])
    _check_adapter_weights(adapter_dir)
    logger.info("merging %s into its base model %s", adapter_dir, base)
    model = AutoModelForImageTextToText.from_pretrained(base, trust_remote_code=True, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    logger.info("writing the merged model to %s", out)
    processor_source = adapter_dir if (adapter_dir / "processor_config.json").exists() else base
    with checkpoint_folder(out, overwrite, sources=[adapter_dir, base]) as partial:
        merged.save_pretrained(partial)
        AutoProcessor.from_pretrained(processor_source, trust_remote_code=True).save_pretrained(partial)
    return out


def _check_adapter_weights(adapter_dir: Path) -> None:
    """Refuse an adapter without weights, or whose `.bin` weights `torch.load(weights_only=True)` refuses, before the
    base model is loaded."""
    if (adapter_dir / "adapter_model.safetensors").is_file():
        return
    legacy = adapter_dir / "adapter_model.bin"
    if not legacy.is_file():
        raise AdapterError("adapter", adapter_dir, "has no adapter_model.safetensors (or adapter_model.bin)")
    load_weights_safely(legacy)


def _recorded_base(config_path: Path) -> Path:
    """The base checkpoint an adapter config records (`base_model_name_or_path`)."""
    try:
        recorded = json.loads(config_path.read_text()).get("base_model_name_or_path")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as error:
        raise AdapterError("adapter", config_path.parent, f"adapter_config.json cannot be read ({error})") from None
    if not recorded:
        raise AdapterError(
            "adapter", config_path.parent, "adapter_config.json records no base_model_name_or_path; pass --base"
        )
    return Path(recorded)
