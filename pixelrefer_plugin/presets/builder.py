# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Random-init PixelRefer checkpoints from registry presets."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, GenerationConfig, PreTrainedTokenizerBase
from transformers.models.video_llama_3.image_processing_pil_video_llama_3 import VideoLlama3ImageProcessorPil

from ..checkpoint_folders import check_destination, checkpoint_folder
from ..configuration_pixelrefer import PixelReferConfig
from ..modeling_pixelrefer import PixelReferForConditionalGeneration
from ..processing_pixelrefer import PixelReferProcessor
from ..runtime import IMAGE_PLACEHOLDER, REGION_TOKEN, VIDEO_TOKEN
from .registry import Preset, load_preset
from .tiny_tokenizer import build_tiny_tokenizer

logger = logging.getLogger(__name__)


def load_preset_tokenizer(preset: Preset, tokenizer_path: str | Path | None = None) -> PreTrainedTokenizerBase:
    """The preset's tokenizer: built in code for tiny presets, else read from `tokenizer_path` (local files only)."""
    if tokenizer_path is None:
        if preset.builds_tokenizer_offline:
            return build_tiny_tokenizer()
        raise FileNotFoundError(
            f"preset {preset.name!r} uses the tokenizer of {preset.tokenizer}; download that repository's tokenizer "
            "files (tokenizer.json, tokenizer_config.json, ...) and pass their folder as tokenizer_path / --tokenizer"
        )
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_path), local_files_only=True, padding_side="left")
    missing = [t for t in (IMAGE_PLACEHOLDER, REGION_TOKEN, VIDEO_TOKEN) if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    return tokenizer


def preset_config(preset: Preset, tokenizer: PreTrainedTokenizerBase) -> PixelReferConfig:
    """Model config of a preset, with vocabulary size and special-token ids taken from its tokenizer."""
    text_config = dict(preset.text_config)
    text_config["vocab_size"] = max(len(tokenizer), text_config.get("vocab_size", 0))
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    text_config.update(bos_token_id=None, eos_token_id=eos_id, pad_token_id=pad_id)
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER)
    return PixelReferConfig(
        text_config=text_config,
        vision_config=dict(preset.vision_config),
        variant=preset.variant,
        image_token_id=image_id,
        video_token_id=tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
        region_token_id=tokenizer.convert_tokens_to_ids(REGION_TOKEN),
        region_token=REGION_TOKEN,
        **preset.object_tokenizer,
    )


def build_processor(
    config: PixelReferConfig, tokenizer: PreTrainedTokenizerBase, image_settings: dict[str, Any]
) -> PixelReferProcessor:
    """The processor matching a model config.

    Args:
        config: supplies variant, `video_merge_size` and the region settings the processor shares with the model.
        tokenizer: with `<image>`, `<REGION>` (and `<|video_pad|>` for the full variant).
        image_settings: `min_pixels`, `max_pixels` (scene images), optional `region_max_pixels` (crops, replaces the
            config's), `image_mean`, `image_std`, and `video` (`fps`, `max_frames`, `max_pixels`,
            `compression_threshold`).
    """
    settings = dict(image_settings)
    region_max_pixels = settings.pop("region_max_pixels", config.region_settings.region_max_pixels)
    video = {f"video_{key}": value for key, value in settings.pop("video", {}).items()}
    image_processor = VideoLlama3ImageProcessorPil(
        min_pixels=settings.pop("min_pixels"), max_pixels=settings.pop("max_pixels"), merge_size=1, **settings
    )
    return PixelReferProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        variant=config.variant,
        region_settings=config.region_settings.replace(region_max_pixels=region_max_pixels),
        video_merge_size=config.video_merge_size,
        **video,
    )


def generation_config_for(tokenizer: PreTrainedTokenizerBase) -> GenerationConfig:
    """Greedy decoding that stops at `<|im_end|>`, as the released models are run."""
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    return GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id, do_sample=False, max_new_tokens=128)


def build_model_and_processor(
    name: str, tokenizer_path: str | Path | None = None, seed: int = 0, dtype: torch.dtype | None = None
) -> tuple[PixelReferForConditionalGeneration, PixelReferProcessor]:
    """Random-init model and matching processor for a registry preset (in memory)."""
    preset = load_preset(name)
    tokenizer = load_preset_tokenizer(preset, tokenizer_path)
    config = preset_config(preset, tokenizer)
    dtype = dtype if dtype is not None else getattr(torch, preset.dtype)
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        model = PixelReferForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    model.generation_config = generation_config_for(tokenizer)
    return model.eval(), build_processor(config, tokenizer, preset.image_processor)


def build_preset(
    name: str, out: str | Path, tokenizer_path: str | Path | None = None, seed: int = 0, overwrite: bool = False
) -> Path:
    """Write a self-contained random-init checkpoint of a preset to `out` (loads with `trust_remote_code=True`).

    Raises:
        OutputFolderError: `out` is not empty and `overwrite` is not set.
    """
    out = Path(out)
    check_destination(out, overwrite)
    model, processor = build_model_and_processor(name, tokenizer_path, seed)
    logger.info("writing %s (%d parameters, random init, seed %d) to %s", name, model.num_parameters(), seed, out)
    with checkpoint_folder(out, overwrite) as partial:
        model.save_pretrained(partial)
        processor.save_pretrained(partial)
    return out
