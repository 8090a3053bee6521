# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Object-Centric Infusion (OCI), the context module of PixelRefer-Lite.

Lite feeds the LLM object tokens only. To make up for the missing scene tokens, each region's `mask_num` object tokens
attend, in vision-feature space, first to the region's local context (its expanded crop resized to a fixed square) and
then to the whole frame (resized to a larger square); both are residual cross-attention blocks with a pre-LayerNorm on
the queries and no feed-forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .configuration_pixelrefer import PixelReferConfig


@dataclass(frozen=True)
class PackedContext:
    """Context features of several images, padded to one length.

    Attributes:
        features: `(N, L, C)` features of N images, zero-padded to the longest.
        padding: `(N, L)` bool, True at padded positions; `None` when every image has `L` features.
    """

    features: torch.Tensor
    padding: torch.Tensor | None = None

    @classmethod
    def from_features(cls, features: torch.Tensor, grid_thw: torch.LongTensor) -> PackedContext:
        """From packed vision features `(sum(t*h*w), C)` of images with grids `grid_thw` `(N, 3)`."""
        lengths = grid_thw.prod(dim=1)
        if bool((lengths == lengths[0]).all()):  # the usual case: every context image at the same size
            return cls(features.view(len(lengths), -1, features.shape[-1]))
        pieces = features.split(lengths.tolist())
        padded = nn.utils.rnn.pad_sequence(list(pieces), batch_first=True)
        positions = torch.arange(padded.shape[1], device=features.device)
        return cls(padded, positions[None, :] >= lengths.to(features.device)[:, None])

    def __getitem__(self, index: torch.LongTensor) -> PackedContext:
        return PackedContext(self.features[index], None if self.padding is None else self.padding[index])


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
        local_context: PackedContext,
        global_context: PackedContext,
        region_frame_index: torch.LongTensor,
    ) -> torch.Tensor:
        """
        Args:
            object_tokens: `(R, K, C)` pooled object tokens, zero-padded to K = mask_num.
            local_context: `(R, L, C)` vision features of each region's local context image.
            global_context: `(F, G, C)` vision features of each frame, encoded once per frame.
            region_frame_index: `(R,)` which frame of `global_context` each region lies on.

        Returns:
            `(R, K, C)` context-infused object tokens.
        """
        queries = object_tokens.to(local_context.features.dtype)
        for norm, attention, context in (
            (self.ln_local, self.fusion_attention_local, local_context),
            (self.ln_global, self.fusion_attention_global, global_context[region_frame_index]),
        ):
            keys = context.features
            attended, _ = attention(norm(queries), keys, keys, key_padding_mask=context.padding, need_weights=False)
            queries = queries + attended
        return queries


__all__ = ["PackedContext", "PixelReferObjectInfusion"]
