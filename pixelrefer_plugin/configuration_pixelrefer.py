# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Configuration of PixelRefer: a VideoLLaMA3 base (vision encoder + Qwen2 LLM) plus the object tokenizer."""

from __future__ import annotations

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

from .region_geometry import CROP_RULES, GRID_ROUNDING_MODES  # noqa: E402

VARIANTS = ("full", "lite")


class PixelReferConfig(PreTrainedConfig):
    r"""
    Configuration of [`PixelReferForConditionalGeneration`].

    The base model is transformers' VideoLLaMA3 (`vision_config` for the SigLIP-NaViT encoder, `text_config` for the
    Qwen2 language model). The remaining fields are the constants of the Scale-Adaptive Object Tokenizer (SAOT), with the
    published defaults.

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
        mask_num (`int`, *optional*, defaults to 32):
            Maximum number of object tokens per region (k-means target).
        region_context_patches (`int`, *optional*, defaults to 2):
            Context kept around a region's tight box when cropping, in patches (2 patches = 28 px).
        region_min_patches (`int`, *optional*, defaults to 32):
            Regions smaller than this many patches' worth of pixels are enlarged by an integer factor.
        region_max_patches (`int`, *optional*, defaults to 100):
            Regions larger than this many patches' worth of pixels are shrunk to about this size.
        region_grid_rounding (`str`, *optional*, defaults to `"separable"`):
            How the region mask is resampled to the crop grid: `"separable"` rounds after the row and the column pass
            of the bilinear resample (the released models' uint8 behaviour), `"bilinear"` keeps cells with 2-D
            bilinear coverage >= 0.5. See `region_geometry.region_grid_mask`.
        kmeans_iters (`int`, *optional*, defaults to 5):
            Lloyd iterations used to reduce a region's features to `mask_num` tokens.
        kmeans_tol (`float`, *optional*, defaults to 1e-6):
            A region's k-means stops early once no centroid moves by more than this.
        region_crop_rule (`str`, *optional*, defaults to `"full"`):
            Crop conventions of the released variant to follow (`"full"` or `"lite"`, see
            `region_geometry.expanded_crop_box`).
        position_axis_swap (`bool`, *optional*, defaults to `True`):
            Reproduce the released checkpoints' position encoding, which reads the rows-first crop box as if it were
            `(x0, y0, x1, y1)`. Set `False` for the geometrically consistent encoding when training from scratch.
        lite_local_size (`int`, *optional*, defaults to 224):
            Side of the square each region's expanded crop is resized to as local context (Lite).
        lite_global_size (`int`, *optional*, defaults to 336):
            Side of the square each frame is resized to as global context (Lite).
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
    mask_num: int = 32
    region_context_patches: int = 2
    region_min_patches: int = 32
    region_max_patches: int = 100
    region_grid_rounding: str = "separable"
    kmeans_iters: int = 5
    kmeans_tol: float = 1e-6
    region_crop_rule: str = "full"
    position_axis_swap: bool = True
    lite_local_size: int = 224
    lite_global_size: int = 336
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
        super().__post_init__(**kwargs)
        if not self.tie_word_embeddings and getattr(self.text_config, "tie_word_embeddings", False):
            self.tie_word_embeddings = True
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        for name in ("mask_num", "region_min_patches", "region_max_patches", "kmeans_iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.region_crop_rule not in CROP_RULES:
            raise ValueError(f"region_crop_rule must be one of {CROP_RULES}, got {self.region_crop_rule!r}")
        if self.variant == "lite" and self.vision_config.hidden_size % self.oci_num_heads:
            raise ValueError(
                f"oci_num_heads ({self.oci_num_heads}) must divide the vision width ({self.vision_config.hidden_size})"
            )
        for name in ("lite_local_size", "lite_global_size"):
            if getattr(self, name) % self.vision_config.patch_size:
                raise ValueError(f"{name} must be a multiple of the patch size, got {getattr(self, name)}")
        if self.region_context_patches < 0:
            raise ValueError(f"region_context_patches must be >= 0, got {self.region_context_patches}")
        if self.region_grid_rounding not in GRID_ROUNDING_MODES:
            raise ValueError(
                f"region_grid_rounding must be one of {GRID_ROUNDING_MODES}, got {self.region_grid_rounding!r}"
            )

    @property
    def patch_size(self) -> int:
        return self.vision_config.patch_size


__all__ = ["PixelReferConfig"]
