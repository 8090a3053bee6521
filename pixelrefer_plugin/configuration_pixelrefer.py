# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Configuration of PixelRefer: a VideoLLaMA3 base (vision encoder + Qwen2 LLM) plus the object tokenizer."""

from __future__ import annotations

from dataclasses import fields
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

from transformers import AutoConfig, PreTrainedConfig  # noqa: E402
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
                "AutoModel": "modeling_pixelrefer.PixelReferModel",
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


__all__ = ["PixelReferConfig"]
