# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""A tiny random SAM 2 built from a config in code (no download), for tests, docs examples and benchmarks.

The checkpoint has the layout of the hub's SAM 2.1 checkpoints (`model_type="sam2_video"`: one folder that loads as
`Sam2VideoModel` for videos and as `Sam2Model` for images) at a 128-pixel input size, with 2-stage-wide Hiera blocks
8..64 channels wide: ~0.32 M parameters, 1.3 MB. Its masks are meaningless but deterministic.
"""

from __future__ import annotations

from pathlib import Path

import torch

TINY_IMAGE_SIZE = 128
OBJECT_SCORE_BIAS = 4.0


def tiny_sam2_config():
    """The `Sam2VideoConfig` of the tiny SAM 2 (input 128 x 128, embeddings 8 x 8, low-resolution masks 32 x 32).

    As in the released checkpoints, the memories are 64 channels wide (transformers' memory attention reads 64
    whatever the config says) and narrower than the 128-wide features, so that object pointers are split into
    memory-sized tokens (with equal widths `Sam2VideoModel` stacks them with one dimension too many).
    """
    from transformers import Sam2VideoConfig

    size = TINY_IMAGE_SIZE
    backbone = {
        "model_type": "sam2_hiera_det_model",
        "hidden_size": 8,
        "num_attention_heads": 1,
        "image_size": [size, size],
        "blocks_per_stage": [1, 1, 2, 1],
        "embed_dim_per_stage": [8, 16, 32, 64],
        "num_attention_heads_per_stage": [1, 1, 2, 2],
        "window_size_per_stage": [4, 4, 4, 4],
        "global_attention_blocks": [3],
        "window_positional_embedding_background_size": [4, 4],
    }
    vision = {
        "model_type": "sam2_vision_model",
        "backbone_config": backbone,
        "backbone_channel_list": [64, 32, 16, 8],
        "backbone_feature_sizes": [[size // 4] * 2, [size // 8] * 2, [size // 16] * 2],
        "fpn_hidden_size": 128,
    }
    return Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config={"hidden_size": 128, "image_size": size, "patch_size": 16, "mask_input_channels": 4},
        mask_decoder_config={"hidden_size": 128, "mlp_dim": 64, "num_attention_heads": 2, "iou_head_hidden_dim": 32},
        image_size=size,
        num_maskmem=3,
        memory_attention_hidden_size=128,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64,
        memory_attention_rope_feat_sizes=[size // 16, size // 16],
        memory_encoder_hidden_size=128,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=128,
        memory_fuser_embed_dim=128,
        memory_fuser_intermediate_dim=64,
        max_object_pointers_in_encoder=4,
    )


def build_tiny_sam2(out: str | Path, seed: int = 0) -> Path:
    """Save a tiny random SAM 2 (`Sam2VideoModel` weights, which also load as `Sam2Model`) to `out`; returns it.

    Weights are redrawn with std 2 / sqrt(fan_in) (as the PixelRefer test checkpoints are), so that masks depend on
    the prompt and cover part of the image instead of being uniformly empty, and the object-score head is biased
    towards "object present" (else the video model blanks the masks of a random model).
    """
    from transformers import Sam2VideoModel

    out = Path(out)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = Sam2VideoModel(tiny_sam2_config()).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.ndim >= 2 and "embed" not in name:
                fan_in = parameter[0].numel()
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
        # the video model blanks a frame's mask when its object score is negative; say "object present"
        model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(OBJECT_SCORE_BIAS)
    model.save_pretrained(out)
    return out


__all__ = ["TINY_IMAGE_SIZE", "build_tiny_sam2", "tiny_sam2_config"]
