# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Conversion of the released PixelRefer / PixelRefer-Lite checkpoints to this plugin's format.

The released checkpoints (`model_type` `pixelrefer_qwen2` / `pixelreferlite_qwen2`) use the public code's layout:
a flat Qwen2 config with multimodal fields, `.bin` or safetensors shards, and key names such as
`model.vision_encoder.vision_encoder.*`, `model.mm_projector.*`, `model.region_encoder.*`. Conversion maps keys and config,
keeps the tokenizer, and sets the compatibility flags that reproduce the released semantics. The model is never
instantiated in memory (a meta-device model provides the expected names and shapes), so a 7B checkpoint converts in
about its own size of RAM.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, PreTrainedConfig, PreTrainedTokenizerBase, Qwen2Config
from transformers.dynamic_module_utils import custom_object_save
from transformers.models.video_llama_3.configuration_video_llama_3 import VideoLlama3VisionConfig

from ..checkpoint_folders import check_destination, checkpoint_folder
from ..configuration_pixelrefer import PixelReferConfig
from ..modeling_pixelrefer import PixelReferForConditionalGeneration
from ..presets.builder import IMAGE_TOKEN, REGION_TOKEN, VIDEO_TOKEN, build_processor, generation_config_for
from ..region_settings import RegionSettings

logger = logging.getLogger(__name__)

RELEASED_MODEL_TYPES = {"pixelrefer_qwen2": "full", "pixelreferlite_qwen2": "lite"}

# Model settings that reproduce the released semantics beyond the variant's region settings, which
# `RegionSettings.for_variant` gives (see docs/model.md, "Compatibility"): among them the exact grid-mask rules,
# `region_grid_rounding="uint8"` (full) and `"opencv_any"` (Lite), rather than our float emulations.
COMPAT_FLAGS = {"full": {}, "lite": {"oci_num_heads": 8}}

# The vision encoder the released models use (VL3-SigLIP-NaViT), when config.json carries no `vision_encoder_config`.
DEFAULT_VISION_CONFIG = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "patch_size": 14,
    "hidden_act": "gelu_pytorch_tanh",
    "layer_norm_eps": 1e-6,
}

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


def text_config_from_released(released: dict[str, Any]) -> dict[str, Any]:
    """The Qwen2 part of a released config (its flat Qwen2 keys)."""
    names = {field.name for field in fields(Qwen2Config)} - {"architectures", "transformers_version", "dtype"}
    text = {key: value for key, value in released.items() if key in names}
    for legacy in ("rope_theta", "rope_scaling"):
        if legacy in released:
            text[legacy] = released[legacy]
    text["model_type"] = "qwen2"
    return text


def vision_config_from_released(released: dict[str, Any]) -> dict[str, Any]:
    """The vision encoder config: the checkpoint's own `vision_encoder_config` when present, else the released
    encoder's sizes (with `mm_hidden_size` as width). Never downloads anything."""
    vision = dict(DEFAULT_VISION_CONFIG)
    names = {field.name for field in fields(VideoLlama3VisionConfig)}
    own = released.get("vision_encoder_config") or {}
    vision.update({key: value for key, value in own.items() if key in names and key != "model_type"})
    if "vision_encoder_config" not in released and "mm_hidden_size" in released:
        vision["hidden_size"] = released["mm_hidden_size"]
    return vision


def load_released_state_dict(source: Path) -> dict[str, torch.Tensor]:
    """All tensors of a released checkpoint: `.bin` shards (read with `weights_only=True`, no pickled code runs) or
    safetensors shards, single file or indexed."""
    safetensors_files = sorted(source.glob("*.safetensors"))
    bin_files = sorted(source.glob("pytorch_model*.bin"))
    if safetensors_files:
        from safetensors.torch import load_file

        logger.info("reading %d safetensors file(s) from %s", len(safetensors_files), source)
        state_dict = {}
        for file in safetensors_files:
            state_dict.update(load_file(file))
        return state_dict
    if bin_files:
        logger.info("reading %d .bin file(s) from %s", len(bin_files), source)
        state_dict = {}
        for file in bin_files:
            try:
                shard = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
            except Exception as error:  # an unpickler refusal names the offending global
                raise ConversionError(f"cannot load {file.name} safely with weights_only=True ({error})") from None
            state_dict.update(shard)
        return state_dict
    raise ConversionError(f"{source} holds no weights (expected *.safetensors or pytorch_model*.bin files)")


def load_released_tokenizer(source: Path, released: dict[str, Any] | None = None) -> PreTrainedTokenizerBase:
    """The checkpoint's tokenizer, with `<image>`, `<REGION>` and `<|video_pad|>` looked up (added when missing)."""
    # Left alone, AutoTokenizer reads config.json, finds a model type transformers does not know and warns that it
    # falls back to a generic config ("You are using a model of type `pixelrefer_qwen2` to instantiate a model of
    # type ``"). Harmless (the tokenizer class comes from tokenizer_config.json): hand it that generic config.
    config = PreTrainedConfig.from_dict(released if released is not None else read_released_config(source))
    tokenizer = AutoTokenizer.from_pretrained(str(source), config=config, local_files_only=True, padding_side="left")
    missing = [token for token in (IMAGE_TOKEN, REGION_TOKEN, VIDEO_TOKEN) if token not in tokenizer.get_vocab()]
    if missing:
        logger.info("adding %s to the tokenizer", missing)
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    return tokenizer


def convert_released_config(
    released: dict[str, Any], tokenizer: PreTrainedTokenizerBase, position_axis_swap: bool = True
) -> PixelReferConfig:
    """Plugin config of a released checkpoint, with the compatibility flags of its variant."""
    variant = RELEASED_MODEL_TYPES[released["model_type"]]
    text = text_config_from_released(released)
    text["vocab_size"] = max(int(text.get("vocab_size", 0)), len(tokenizer))
    dtype = released.get("torch_dtype") or released.get("dtype")
    return PixelReferConfig(
        text_config=text,
        vision_config=vision_config_from_released(released),
        variant=variant,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        video_token_id=tokenizer.convert_tokens_to_ids(VIDEO_TOKEN),
        region_token_id=tokenizer.convert_tokens_to_ids(REGION_TOKEN),
        region_token=REGION_TOKEN,
        region_settings=RegionSettings.for_variant(variant, mask_num=int(released.get("mask_num", 32))),
        video_merge_size=int(released.get("spatial_merge_size", 2)),
        position_axis_swap=position_axis_swap,
        dtype=dtype,
        **COMPAT_FLAGS[variant],
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
