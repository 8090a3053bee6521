# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The released PixelRefer / PixelRefer-Lite checkpoints: loading them as they are, and converting them.

The released checkpoints (`model_type` `pixelrefer_qwen2` / `pixelreferlite_qwen2`) use the public code's layout:
a flat Qwen2 config with multimodal fields, `.bin` or safetensors shards, and key names such as
`model.vision_encoder.vision_encoder.*`, `model.mm_projector.*`, `model.region_encoder.*`. One table of key renames,
`KEY_PREFIXES`, serves both ways in: registered with transformers as load-time renaming of the released model types
(`released_weight_renamings`), so `from_pretrained` reads a released checkpoint directly, and applied by
`convert_released_checkpoint`, which writes a self-contained `trust_remote_code` folder. The config translation is
`configuration_pixelrefer.released_config_arguments`. Conversion never instantiates the model in memory (a
meta-device model provides the expected names and shapes), so a 7B checkpoint converts in about its own size of RAM.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, PreTrainedConfig, PreTrainedTokenizerBase
from transformers.core_model_loading import WeightRenaming
from transformers.dynamic_module_utils import custom_object_save

from ..checkpoint_folders import UnsafeWeightsError, check_destination, checkpoint_folder, load_weights_safely
from ..configuration_pixelrefer import (
    RELEASED_MODEL_TYPES,
    PixelReferConfig,
    released_config_arguments,
)
from ..modeling_pixelrefer import PixelReferForConditionalGeneration
from ..presets.builder import build_processor, generation_config_for
from ..processing_pixelrefer import PixelReferProcessor
from ..runtime import IMAGE_PLACEHOLDER, REGION_TOKEN, VIDEO_TOKEN

logger = logging.getLogger(__name__)

# Released key prefix -> plugin key prefix, tried in order (the longest vision prefix first).
KEY_PREFIXES = (
    ("model.vision_encoder.vision_encoder.", "model.vision_model."),
    ("model.vision_encoder.", "model.vision_model."),
    ("model.mm_projector.", "model.projector."),
    ("model.region_encoder.pos_linear.", "model.object_tokenizer.pos_linear."),
    ("model.region_encoder.feat_linear.", "model.object_tokenizer.feat_linear."),
    ("model.region_encoder.ln_local.", "model.object_infusion.ln_local."),
    ("model.region_encoder.ln_global.", "model.object_infusion.ln_global."),
    ("model.region_encoder.fusion_attention_local.", "model.object_infusion.fusion_attention_local."),
    ("model.region_encoder.fusion_attention_global.", "model.object_infusion.fusion_attention_global."),
    ("model.embed_tokens.", "model.language_model.embed_tokens."),
    ("model.layers.", "model.language_model.layers."),
    ("model.norm.", "model.language_model.norm."),
    ("lm_head.", "lm_head."),
)
# Released keys that carry nothing the plugin uses: Lite's `mask_embedding` is defined but never called upstream, and
# rotary frequencies are recomputed from the config.
DROPPED_KEYS = (re.compile(r"^model\.region_encoder\.mask_embedding\."), re.compile(r"\.rotary_pos_emb\.inv_freq$"))


class ConversionError(ValueError):
    """A checkpoint that cannot be converted; the message says what is wrong and lists the offending keys."""


def _short(items: list[str], limit: int = 12) -> str:
    return ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def released_weight_renamings() -> list[WeightRenaming]:
    """`KEY_PREFIXES` as transformers' load-time renaming (registered for the released model types; reversed by
    `save_pretrained`, which writes the released names back unless `save_original_format=False`)."""
    return [WeightRenaming(rf"^{re.escape(old)}", new) for old, new in KEY_PREFIXES if old != new]


def map_released_key(key: str) -> str | None:
    """Plugin name of a released state-dict key, None for keys that are dropped, or the key itself if unknown."""
    if any(pattern.search(key) for pattern in DROPPED_KEYS):
        return None
    for old, new in KEY_PREFIXES:
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def read_released_config(source: Path) -> dict[str, Any]:
    path = source / "config.json"
    if not path.is_file():
        raise ConversionError(f"{source} has no config.json; expected a released PixelRefer checkpoint directory")
    config = json.loads(path.read_text())
    model_type = config.get("model_type")
    if model_type not in RELEASED_MODEL_TYPES:
        raise ConversionError(
            f"unknown model_type {model_type!r} in {path}; expected one of {sorted(RELEASED_MODEL_TYPES)}"
        )
    return config


def load_released_state_dict(source: Path) -> dict[str, torch.Tensor]:
    """All tensors of a released checkpoint: `.bin` shards (read with `weights_only=True`, no pickled code runs) or
    safetensors shards, single file or indexed.

    Raises:
        ConversionError: naming the safetensors file that is truncated or not safetensors, or the `.bin` file that is
            not loadable safely (pickled objects other than tensors, which `weights_only=True` refuses; its cause is
            the `UnsafeWeightsError`).
    """
    safetensors_files = sorted(source.glob("*.safetensors"))
    bin_files = sorted(source.glob("pytorch_model*.bin"))
    if safetensors_files:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        logger.info("reading %d safetensors file(s) from %s", len(safetensors_files), source)
        state_dict = {}
        for file in safetensors_files:
            try:
                state_dict.update(load_file(file))
            except (SafetensorError, OSError) as error:
                raise ConversionError(
                    f"cannot read {file} ({error}); the file is truncated or not a safetensors file: download it again"
                ) from None
        return state_dict
    if bin_files:
        logger.info("reading %d .bin file(s) from %s", len(bin_files), source)
        state_dict = {}
        for file in bin_files:
            try:
                shard = load_weights_safely(file)
            except UnsafeWeightsError as error:  # a conversion error like the others; the cause keeps file / reason
                raise ConversionError(str(error)) from error
            state_dict.update(shard)
        return state_dict
    raise ConversionError(f"{source} holds no weights (expected *.safetensors or pytorch_model*.bin files)")


def load_released_tokenizer(
    source: str | os.PathLike, released: dict[str, Any] | None = None, **hub_kwargs: Any
) -> PreTrainedTokenizerBase:
    """The tokenizer of a released checkpoint (folder, or hub id with `hub_kwargs`), with `<image>`, `<REGION>` and
    `<|video_pad|>` looked up (added when missing)."""
    if released is None:
        released, _ = PreTrainedConfig.get_config_dict(source, **hub_kwargs)
    # Left alone, AutoTokenizer reads config.json, finds a model type transformers does not know and warns that it
    # falls back to a generic config ("You are using a model of type `pixelrefer_qwen2` to instantiate a model of
    # type ``"). Harmless (the tokenizer class comes from tokenizer_config.json): hand it that generic config.
    config = PreTrainedConfig.from_dict(dict(released))
    hub_kwargs.setdefault("local_files_only", isinstance(source, Path) or os.path.isdir(source))
    tokenizer = AutoTokenizer.from_pretrained(str(source), config=config, padding_side="left", **hub_kwargs)
    missing = [token for token in (IMAGE_PLACEHOLDER, REGION_TOKEN, VIDEO_TOKEN) if token not in tokenizer.get_vocab()]
    if missing:
        logger.info("adding %s to the tokenizer", missing)
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    return tokenizer


def convert_released_config(
    released: dict[str, Any], tokenizer: PreTrainedTokenizerBase, position_axis_swap: bool = True
) -> PixelReferConfig:
    """Plugin config of a released checkpoint: the released settings of its variant, with the vocabulary size and the
    special-token ids taken from `tokenizer` (which may have grown)."""
    arguments = released_config_arguments(released)
    arguments["text_config"]["vocab_size"] = max(int(arguments["text_config"].get("vocab_size", 0)), len(tokenizer))
    return PixelReferConfig(
        **{
            **arguments,
            "image_token_id": tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER),
            "video_token_id": tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
            "region_token_id": tokenizer.convert_tokens_to_ids(REGION_TOKEN),
            "region_token": REGION_TOKEN,
            "position_axis_swap": position_axis_swap,
        }
    )


def convert_state_dict(released: dict[str, torch.Tensor], config: PixelReferConfig) -> dict[str, torch.Tensor]:
    """Rename a released state dict to the plugin's names and check it against the model's.

    Raises:
        ConversionError: listing unexpected keys, missing keys, or keys whose shapes differ.
    """
    with torch.device("meta"):
        expected = PixelReferForConditionalGeneration(config).state_dict()
    converted: dict[str, torch.Tensor] = {}
    unexpected = []
    for key, tensor in released.items():
        new_key = map_released_key(key)
        if new_key is None:
            continue
        if new_key not in expected:
            unexpected.append(key)
            continue
        converted[new_key] = tensor
    if unexpected:
        raise ConversionError(f"unexpected keys in the checkpoint: {_short(sorted(unexpected))}")

    tied = config.tie_word_embeddings or config.text_config.tie_word_embeddings
    vocab_size = config.text_config.vocab_size
    for name in ("model.language_model.embed_tokens.weight", "lm_head.weight"):
        tensor = converted.get(name)
        if tensor is not None and tensor.shape[0] < vocab_size:  # tokens were added: grow the vocabulary rows
            extra = tensor.float().mean(dim=0, keepdim=True).expand(vocab_size - tensor.shape[0], -1)
            converted[name] = torch.cat([tensor, extra.to(tensor.dtype)])
    missing = sorted(set(expected) - set(converted) - ({"lm_head.weight"} if tied else set()))
    if missing:
        raise ConversionError(f"keys missing from the checkpoint: {_short(missing)}")
    mismatched = [
        f"{key} {tuple(converted[key].shape)} vs expected {tuple(expected[key].shape)}"
        for key in sorted(converted)
        if converted[key].shape != expected[key].shape
    ]
    if mismatched:
        raise ConversionError(f"shape mismatches: {_short(mismatched, 6)}")
    if tied:
        converted.pop("lm_head.weight", None)
    return converted


def image_settings_from_released(released: dict[str, Any]) -> dict[str, Any]:
    """Processor pixel budgets of the released models (8192 tokens per image, per video after the 2 x 2 merge)."""
    max_tokens = int(released.get("mm_max_length", 8192))
    patch_area = 14 * 14
    return {
        "min_pixels": 56 * 56,
        "max_pixels": max_tokens * patch_area,
        "region_max_pixels": max_tokens * patch_area,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "video": {
            "fps": 1.0,
            "max_frames": int(released.get("max_frames", 180)),
            "max_pixels": max_tokens * 4 * patch_area,
            "compression_threshold": 0.1 if released.get("use_token_compression", True) else None,
        },
    }


# `from_pretrained` keyword arguments that say where to read a checkpoint's files.
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "proxies", "revision", "subfolder", "token")


def released_processor(source: str | os.PathLike, **kwargs: Any) -> PixelReferProcessor | None:
    """The processor of a released checkpoint (folder or hub id) with the released settings, or None when `source` holds
    any other checkpoint. `kwargs` are `from_pretrained`'s; those that say where to read files are used.

    Raises:
        ConversionError: the tokenizer and `config.json` disagree on the ids of `<image>` / `<REGION>`, or the
            tokenizer has more tokens than the embedding rows (`pixelrefer convert` adds rows for missing tokens).
    """
    hub_kwargs = {key: kwargs[key] for key in HUB_KWARGS if key in kwargs}
    try:
        config_dict, _ = PreTrainedConfig.get_config_dict(source, **hub_kwargs)
    except OSError:  # no config.json (a processor saved on its own): not a released checkpoint
        return None
    if config_dict.get("model_type") not in RELEASED_MODEL_TYPES or "text_config" in config_dict:
        return None
    tokenizer = load_released_tokenizer(source, config_dict, **hub_kwargs)
    recorded = released_config_arguments(config_dict)  # what the model loaded from this checkpoint reads
    problems = [
        f"{token} is {tokenizer.convert_tokens_to_ids(token)} in the tokenizer but {recorded[name]} in config.json"
        for name, token in (("image_token_id", IMAGE_PLACEHOLDER), ("region_token_id", REGION_TOKEN))
        if tokenizer.convert_tokens_to_ids(token) != recorded[name]
    ]
    if len(tokenizer) > recorded["text_config"].get("vocab_size", len(tokenizer)):
        problems.append(f"the tokenizer has {len(tokenizer)} tokens for {recorded['text_config']['vocab_size']} rows")
    if problems:
        raise ConversionError(
            f"{source}: {'; '.join(problems)}; convert it with `pixelrefer convert`, which takes the ids from the "
            "tokenizer and adds embedding rows for missing tokens"
        )
    config = convert_released_config(config_dict, tokenizer)
    return build_processor(config, tokenizer, image_settings_from_released(config_dict))


def convert_released_checkpoint(
    source: str | Path, destination: str | Path, position_axis_swap: bool = True, overwrite: bool = False
) -> Path:
    """Convert a released PixelRefer / PixelRefer-Lite checkpoint directory into a plugin checkpoint.

    The result loads with `AutoModelForImageTextToText.from_pretrained(destination, trust_remote_code=True)` and
    `AutoProcessor.from_pretrained(destination, trust_remote_code=True)`.
    """
    source, destination = Path(source), Path(destination)
    released = read_released_config(source)
    check_destination(destination, overwrite, sources=[source])
    variant = RELEASED_MODEL_TYPES[released["model_type"]]
    logger.info("converting %s (%s, %s variant)", source, released["model_type"], variant)
    tokenizer = load_released_tokenizer(source, released)
    config = convert_released_config(released, tokenizer, position_axis_swap=position_axis_swap)
    state_dict = convert_state_dict(load_released_state_dict(source), config)

    from huggingface_hub import save_torch_state_dict

    logger.info("writing %d tensors, config, code and processor to %s", len(state_dict), destination)
    with checkpoint_folder(destination, overwrite, sources=[source]) as partial:
        save_torch_state_dict(state_dict, partial, max_shard_size="5GB")
        config.architectures = [PixelReferForConditionalGeneration.__name__]
        with torch.device("meta"):  # copies the flat model code files next to the weights
            custom_object_save(PixelReferForConditionalGeneration(config), partial, config=config)
        config.save_pretrained(partial)
        generation_config_for(tokenizer).save_pretrained(partial)
        build_processor(config, tokenizer, image_settings_from_released(released)).save_pretrained(partial)
    return destination
