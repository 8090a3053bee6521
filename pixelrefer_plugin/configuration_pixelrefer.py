# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Configuration of PixelRefer: a VideoLLaMA3 base (vision encoder + Qwen2 LLM) plus the object tokenizer."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import transformers
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from transformers.utils import logging

# The transformers versions this code was tested with: pyproject.toml's range, written into every exported checkpoint
# with this file. Checked before anything else of transformers is imported, since older releases lack what follows.
TESTED_TRANSFORMERS = ">=5.23,<5.25"


def check_transformers_version(installed: str = transformers.__version__) -> None:
    """Refuse a transformers older than `TESTED_TRANSFORMERS` (one-line `ImportError`); warn once about a newer one."""
    tested = SpecifierSet(TESTED_TRANSFORMERS)
    if Version(installed) in tested:
        return
    fix = f'pip install "transformers{TESTED_TRANSFORMERS}"'
    if all(Version(installed) < Version(spec.version) for spec in tested if spec.operator.startswith(">")):
        raise ImportError(
            f"PixelRefer needs transformers{TESTED_TRANSFORMERS}, but transformers {installed} is installed; run: {fix}"
        )
    logging.get_logger(__name__).warning_once(
        f"PixelRefer was tested with transformers{TESTED_TRANSFORMERS}; transformers {installed} is installed and "
        f"may behave differently ({fix} installs a tested version)"
    )


check_transformers_version()

from transformers import AutoConfig, PreTrainedConfig, Qwen2Config  # noqa: E402
from transformers.configuration_utils import SubConfigSpec  # noqa: E402
from transformers.models.video_llama_3.configuration_video_llama_3 import VideoLlama3VisionConfig  # noqa: E402

from .region_settings import VARIANTS, RegionSettingAttributes, RegionSettings  # noqa: E402


class PixelReferConfig(RegionSettingAttributes, PreTrainedConfig):
    r"""
    Configuration of [`PixelReferForConditionalGeneration`].

    The base model is transformers' VideoLLaMA3 (`vision_config` for the SigLIP-NaViT encoder, `text_config` for the
    Qwen2 language model). The remaining fields are the constants of the Scale-Adaptive Object Tokenizer (SAOT), with the
    published defaults; its region settings are grouped in `region_settings`.

    Args:
        text_config (`dict` or `PreTrainedConfig`, *optional*):
            Language model config (default: Qwen2).
        vision_config (`dict` or `VideoLlama3VisionConfig`, *optional*):
            Vision encoder config.
        variant (`str`, *optional*, defaults to `"full"`):
            `"full"`: scene tokens and object tokens reach the LLM. `"lite"` (PixelRefer-Lite): only object tokens,
            exactly `mask_num` per region, enriched by Object-Centric Infusion.
        image_token_id (`int`, *optional*, defaults to 151665):
            Id of the `<image>` token that scene features replace.
        video_token_id (`int`, *optional*, defaults to 151656):
            Id of the token that video frame features replace (`<|video_pad|>`).
        region_token_id (`int`, *optional*, defaults to 151668):
            Id of the `<REGION>` token that object tokens replace.
        region_token (`str`, *optional*, defaults to `"<REGION>"`):
            The object-token placeholder string in the vocabulary.
        region_settings ([`RegionSettings`] or `dict`, *optional*):
            How regions become crops and object tokens (`mask_num`, `region_context_patches`, `region_min_patches`,
            `region_max_patches`, `region_grid_rounding`, `region_crop_rule`, `region_max_pixels`, `point_size`,
            `lite_local_size`, `lite_global_size`, `kmeans_iters`, `kmeans_tol`; see `region_settings.py`). Default:
            `RegionSettings.for_variant(variant)`. Each setting may also be given, and is saved, as a flat keyword of
            the same name (`mask_num=16`), which overrides `region_settings`; `config.mask_num` reads it.
        position_axis_swap (`bool`, *optional*, defaults to `True`):
            Reproduce the released checkpoints' position encoding, which reads the rows-first crop box as if it were
            `(x0, y0, x1, y1)`. Set `False` for the geometrically consistent encoding when training from scratch.
        oci_num_heads (`int`, *optional*, defaults to 8):
            Attention heads of the Object-Centric Infusion cross-attentions (Lite).
        video_merge_size (`int`, *optional*, defaults to 2):
            Spatial merge of video frame features (2 x 2 average) before they reach the LLM (full variant).
        tie_word_embeddings (`bool`, *optional*, defaults to `False`):
            Tie `lm_head` to the input embeddings (taken from `text_config` when it says so).
    """

    model_type = "pixelrefer"
    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="qwen2"),
        "vision_config": VideoLlama3VisionConfig,
    }
    keys_to_ignore_at_inference = ["past_key_values", "cache"]
    _auto_class = "AutoConfig"

    text_config: dict | PreTrainedConfig | None = None
    vision_config: dict | PreTrainedConfig | None = None
    variant: str = "full"
    image_token_id: int = 151665
    video_token_id: int = 151656
    region_token_id: int = 151668
    region_token: str = "<REGION>"
    position_axis_swap: bool = True
    oci_num_heads: int = 8
    video_merge_size: int = 2
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        kwargs.setdefault(
            "auto_map",
            {
                "AutoConfig": "configuration_pixelrefer.PixelReferConfig",
                # the line people type, `AutoModel.from_pretrained(folder, trust_remote_code=True)`, gives the model
                # that generates (as remote-code region models do); `import pixelrefer_plugin` keeps transformers'
                # own convention, AutoModel -> PixelReferModel
                "AutoModel": "modeling_pixelrefer.PixelReferForConditionalGeneration",
                "AutoModelForImageTextToText": "modeling_pixelrefer.PixelReferForConditionalGeneration",
            },
        )
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        self.region_settings = RegionSettings.from_arguments(kwargs.pop("region_settings", None), self.variant, kwargs)
        super().__post_init__(**kwargs)
        if not self.tie_word_embeddings and getattr(self.text_config, "tie_word_embeddings", False):
            self.tie_word_embeddings = True
        if self.variant == "lite" and self.vision_config.hidden_size % self.oci_num_heads:
            raise ValueError(
                f"oci_num_heads ({self.oci_num_heads}) must divide the vision width ({self.vision_config.hidden_size})"
            )
        for name in ("lite_local_size", "lite_global_size"):
            size = getattr(self.region_settings, name)
            if size % self.vision_config.patch_size:
                raise ValueError(f"{name} must be a multiple of the patch size, got {size}")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> PreTrainedConfig:
        """As `PreTrainedConfig.from_pretrained`; a released checkpoint's `config.json` loads as its released config
        class ([`PixelReferReleasedConfig`], [`PixelReferLiteReleasedConfig`]), translated from the flat layout."""
        config_dict, _ = cls.get_config_dict(pretrained_model_name_or_path, **dict(kwargs))
        released = RELEASED_CONFIG_CLASSES.get(config_dict.get("model_type"))
        if released is not None and not issubclass(cls, released):
            return released.from_pretrained(pretrained_model_name_or_path, **kwargs)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @property
    def patch_size(self) -> int:
        return self.vision_config.patch_size

    def to_dict(self) -> dict[str, Any]:
        """Serialises like `PreTrainedConfig.to_dict`, with the region settings as flat keys (`mask_num`, ...)."""
        output = super().to_dict()
        output.update(output.pop("region_settings").to_dict())
        return output

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        same_fields = all(getattr(self, f.name) == getattr(other, f.name) for f in fields(self))
        return same_fields and self.region_settings == other.region_settings

    __hash__ = None


# The released checkpoints (the public code's layout): `model_type` -> variant.
RELEASED_MODEL_TYPES = {"pixelrefer_qwen2": "full", "pixelreferlite_qwen2": "lite"}

# The vision encoder the released models use (VL3-SigLIP-NaViT), when config.json carries no `vision_encoder_config`.
RELEASED_VISION_CONFIG = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "patch_size": 14,
    "hidden_act": "gelu_pytorch_tanh",
    "layer_norm_eps": 1e-6,
}

# Model settings that reproduce the released semantics beyond the variant's region settings, which
# `RegionSettings.for_variant` gives (among them the exact grid-mask rules, `region_grid_rounding="uint8"` (full) and
# `"opencv_any"` (Lite)); see docs/model.md, "Released behaviour and settings".
RELEASED_FLAGS: dict[str, dict[str, Any]] = {"full": {}, "lite": {"oci_num_heads": 8}}


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
    vision = dict(RELEASED_VISION_CONFIG)
    names = {field.name for field in fields(VideoLlama3VisionConfig)}
    own = released.get("vision_encoder_config") or {}
    vision.update({key: value for key, value in own.items() if key in names and key != "model_type"})
    if "vision_encoder_config" not in released and "mm_hidden_size" in released:
        vision["hidden_size"] = released["mm_hidden_size"]
    return vision


def released_config_arguments(released: dict[str, Any]) -> dict[str, Any]:
    """[`PixelReferConfig`] arguments of a released checkpoint's flat `config.json`, with the released settings of its
    variant. Token ids are the ones the checkpoint records (`image_token_index`, `region_token_index`).

    Raises:
        ValueError: `released["model_type"]` is not a released model type.
    """
    model_type = released.get("model_type")
    if model_type not in RELEASED_MODEL_TYPES:
        raise ValueError(f"model_type must be one of {sorted(RELEASED_MODEL_TYPES)}, got {model_type!r}")
    variant = RELEASED_MODEL_TYPES[model_type]
    return {
        "text_config": text_config_from_released(released),
        "vision_config": vision_config_from_released(released),
        "variant": variant,
        "image_token_id": int(released.get("image_token_index", PixelReferConfig.image_token_id)),
        "region_token_id": int(released.get("region_token_index", PixelReferConfig.region_token_id)),
        "region_settings": RegionSettings.for_variant(variant, mask_num=int(released.get("mask_num", 32))),
        "video_merge_size": int(released.get("spatial_merge_size", 2)),
        "position_axis_swap": True,
        "dtype": released.get("torch_dtype") or released.get("dtype"),
        **RELEASED_FLAGS[variant],
    }


class PixelReferReleasedConfig(PixelReferConfig):
    r"""
    Configuration of a released PixelRefer checkpoint (`model_type` `"pixelrefer_qwen2"`, the public code's layout).

    Its flat `config.json` (Qwen2 keys plus multimodal fields) is translated into a [`PixelReferConfig`] with the
    released settings (see `released_config_arguments`). With `pixelrefer_plugin` installed, the released weights'
    names are renamed at load time, so `AutoModelForImageTextToText.from_pretrained` loads the checkpoint as it is.
    """

    model_type = "pixelrefer_qwen2"

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> PixelReferReleasedConfig:
        if "text_config" not in config_dict:  # the released flat layout (a re-saved config is nested already)
            config_dict = released_config_arguments({**config_dict, "model_type": cls.model_type})
        return super().from_dict(config_dict, **kwargs)


class PixelReferLiteReleasedConfig(PixelReferReleasedConfig):
    r"""Configuration of a released PixelRefer-Lite checkpoint (`model_type` `"pixelreferlite_qwen2"`); see
    [`PixelReferReleasedConfig`]."""

    model_type = "pixelreferlite_qwen2"


RELEASED_CONFIG_CLASSES: dict[str, type[PixelReferReleasedConfig]] = {
    config.model_type: config for config in (PixelReferReleasedConfig, PixelReferLiteReleasedConfig)
}


@dataclass
class LoadingHooks:
    """What the installed `pixelrefer_plugin` adds to `from_pretrained` of the PixelRefer classes; it sets them when it
    registers its Auto classes. A checkpoint's own copy of this file (`trust_remote_code`) keeps them unset.

    Attributes:
        resolve_name: `(name, **from_pretrained_kwargs) -> folder or hub id`; turns a preset name into its checkpoint.
        released_processor: `(name, **from_pretrained_kwargs) -> processor or None`; the processor of a released
            checkpoint, None for any other checkpoint.
    """

    resolve_name: Callable[..., str | os.PathLike] | None = None
    released_processor: Callable[..., Any] | None = None


LOADING_HOOKS = LoadingHooks()


def resolve_pretrained_name(name: str | os.PathLike, **kwargs: Any) -> str | os.PathLike:
    """What `from_pretrained` reads for `name`: a preset's checkpoint when the package resolves it, else `name`."""
    return name if LOADING_HOOKS.resolve_name is None else LOADING_HOOKS.resolve_name(name, **kwargs)


__all__ = ["PixelReferConfig", "PixelReferLiteReleasedConfig", "PixelReferReleasedConfig"]
