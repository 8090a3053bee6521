# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Object-Centric Infusion (OCI), the context module of PixelRefer-Lite.

Lite feeds the LLM object tokens only. To make up for the missing scene tokens, each region's `mask_num` object tokens
attend, in vision-feature space, first to the region's local context (its expanded crop resized to a fixed square) and
then to the whole frame (resized to a larger square); both are residual cross-attention blocks with a pre-LayerNorm on
the queries and no feed-forward.
"""

from __future__ import annotations

import torch
from torch import nn

from .configuration_pixelrefer import PixelReferConfig


class PixelReferObjectInfusion(nn.Module):
    """Two residual cross-attention blocks: object tokens <- local context, then object tokens <- global frame.

    Parameter names follow the released PixelRefer-Lite checkpoints (`ln_local`, `fusion_attention_local`, `ln_global`,
    `fusion_attention_global`).
    """

    def __init__(self, config: PixelReferConfig):
        super().__init__()
        width = config.vision_config.hidden_size
        self.ln_local = nn.LayerNorm(width)
        self.fusion_attention_local = nn.MultiheadAttention(width, config.oci_num_heads, batch_first=True)
        self.ln_global = nn.LayerNorm(width)
        self.fusion_attention_global = nn.MultiheadAttention(width, config.oci_num_heads, batch_first=True)

    def forward(
        self,
        object_tokens: torch.Tensor,
        local_features: torch.Tensor,
        global_features: torch.Tensor,
        region_frame_index: torch.LongTensor,
    ) -> torch.Tensor:
        """
        Args:
            object_tokens: `(R, K, C)` pooled object tokens, zero-padded to K = mask_num.
            local_features: `(R, L, C)` vision features of each region's own local context.
            global_features: `(F, G, C)` vision features of each frame, encoded once per frame.
            region_frame_index: `(R,)` which frame of `global_features` each region lies on.

        Returns:
            `(R, K, C)` context-infused object tokens.
        """
        queries = object_tokens.to(local_features.dtype)
        attended, _ = self.fusion_attention_local(
            self.ln_local(queries), local_features, local_features, need_weights=False
        )
        queries = queries + attended
        frames = global_features[region_frame_index]
        attended, _ = self.fusion_attention_global(self.ln_global(queries), frames, frames, need_weights=False)
        return queries + attended


__all__ = ["PixelReferObjectInfusion"]
