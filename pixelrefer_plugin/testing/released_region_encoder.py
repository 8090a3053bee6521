# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The released region encoders, transcribed statement by statement, as an independent reference for object tokens.

`FullRegionEncoder` follows the public `PixelRefer/pixelrefer/model/region_encoder.py` (`generate_position_tensor`,
`MaskExtractor`, `MaskPooling`, `kmeans_fast`) and `LiteRegionEncoder` the public
`PixelRefer/pixelreferlite/model/region_encoder.py` (same names; alibaba-damo-academy/PixelRefer at 2a18ec7). Both
load the `model.region_encoder.*` weights of a released checkpoint under their released names. Nothing here calls the
plugin's region code; tests compare the plugin against it.

Two departures, both arguments: `kmeans_start` picks the k-means start (the released `torch.randperm(n)[:K]` on the
global random state when `None`), so a test can give both sides the same start; and Lite runs in the dtype of its
inputs and weights, where the released code wraps it in `torch.autocast("cuda", torch.bfloat16)` (a bf16 checkpoint
with bf16 features computes the same).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

KMeansStart = Callable[[int, int], torch.Tensor]
"""`(n, num_clusters) -> (num_clusters,)` indices of the points the centroids start at."""

BoxParam = tuple[tuple[int, int, int, int], int, int]
"""`(box, raw_h, raw_w)`: the crop box as `resize_image_mask` returns it (rows first) and the image size."""


def generate_position_tensor(h, w, box_xy, raw_h, raw_w):
    """`generate_position_tensor` (both variants): `(h, w, 2)`; `box_xy` is the rows-first box, read as x-first."""
    box_x = box_xy[2] - box_xy[0]
    box_y = box_xy[3] - box_xy[1]
    x_tensor = torch.arange(w, dtype=torch.float32) / w
    x_tensor = x_tensor.repeat(h, 1)
    x_tensor = (x_tensor * box_x + box_xy[0]) / (raw_w - 1)

    y_tensor = torch.arange(h, dtype=torch.float32) / h
    y_tensor = y_tensor.unsqueeze(1).repeat(1, w)
    y_tensor = (y_tensor * box_y + box_xy[1]) / (raw_h - 1)

    tensor_3d = torch.stack([x_tensor, y_tensor], dim=2)
    return tensor_3d


def kmeans_fast(tokens, num_clusters=10, num_iterations=5, kmeans_start: KMeansStart | None = None):
    """`kmeans_fast` (full: 5 iterations; Lite: 3). On convergence it returns the centroids *before* the last update,
    and `torch.allclose` compares with its default `rtol=1e-5` besides `atol=1e-6`."""
    n, d = tokens.shape
    start = torch.randperm(n)[:num_clusters] if kmeans_start is None else kmeans_start(n, num_clusters)
    centroids = tokens[start]

    for _ in range(num_iterations):
        tokens_expand = tokens.unsqueeze(1)  # [n, 1, d]
        centroids_expand = centroids.unsqueeze(0)  # [1, num_clusters, d]

        distances = torch.sum((tokens_expand - centroids_expand) ** 2, dim=2)  # [n, num_clusters]

        labels = torch.argmin(distances, dim=1)  # [n]

        new_centroids = torch.stack(
            [
                tokens[labels == i].mean(dim=0) if tokens[labels == i].size(0) > 0 else centroids[i]
                for i in range(num_clusters)
            ]
        )

        if torch.allclose(centroids, new_centroids, atol=1e-6):
            break

        centroids = new_centroids

    return centroids


def full_mask_pooling(x, mask, mask_token_num=10, kmeans_start: KMeansStart | None = None):
    """Full `MaskPooling.forward`: `x` `(1, C, h, w)` float32 features, `mask` `(1, 1, mh, mw)` float32 grid mask."""
    if not x.shape[-2:] == mask.shape[-2:]:
        # reshape mask to x
        x = F.interpolate(x, size=mask.shape[-2:], mode="bilinear", align_corners=False)
    if not x.device == mask.device:
        mask = mask.to(x.device)
    mask = (mask > 0).to(mask.dtype)
    mask = mask.permute(1, 0, 2, 3)

    mask_emb = x * mask
    mask = torch.any(mask_emb != 0, dim=(0, 1))
    mask_emb = mask_emb[:, :, mask]
    mask_embedding = mask_emb[0].permute(1, 0)

    if len(mask_embedding) > mask_token_num:
        mask_embedding = kmeans_fast(mask_embedding, mask_token_num, kmeans_start=kmeans_start)
    return mask_embedding


def lite_mask_pooling(x, mask, mask_token_num=16, kmeans_start: KMeansStart | None = None):
    """Lite `MaskPooling.forward`: `x` `(1, C, h, w)` in the features' dtype, `mask` `(1, 1, mh, mw)` bfloat16."""
    if not x.shape[-2:] == mask.shape[-2:]:
        # reshape mask to x
        x = F.interpolate(x, size=mask.shape[-2:], mode="bilinear", align_corners=False)
    if not x.device == mask.device:
        mask = mask.to(x.device, non_blocking=True)
    b, c, h, w = x.shape
    mask = mask > 0  # [B, Q, H, W]
    valid = mask.any(dim=(0, 1))

    mask_embedding = x[..., valid]
    mask_embedding = mask_embedding.permute(2, 0, 1).reshape(-1, c)  # [N, C]

    if len(mask_embedding) > mask_token_num:
        mask_embedding = kmeans_fast(mask_embedding, mask_token_num, num_iterations=3, kmeans_start=kmeans_start)
    return mask_embedding


class FullRegionEncoder(nn.Module):
    """The full model's `MaskExtractor`: position encoding, mask pooling, k-means, `feat_linear`."""

    def __init__(self, mm_hidden_size: int, hidden_size: int, depth: int = 2):
        super().__init__()
        modules = [nn.Linear(mm_hidden_size, hidden_size)]
        for _ in range(1, depth):
            modules.append(nn.GELU())
            modules.append(nn.Linear(hidden_size, hidden_size))
        self.feat_linear = nn.Sequential(*modules)
        self.pos_linear = nn.Linear(2, mm_hidden_size)

    def forward(
        self,
        feats: Sequence[torch.Tensor],
        masks: Sequence[torch.Tensor],
        box_params: Sequence[BoxParam],
        mask_num: int,
        kmeans_start: KMeansStart | None = None,
    ) -> torch.Tensor:
        """`MaskExtractor.forward` for the masks of one image.

        Args:
            feats: per mask, the crop's `(h, w, C)` vision features (`reshape_images_to_raw_grid`).
            masks: per mask, the `(mh, mw)` grid mask of `resize_image_mask` (uint8 as the released callers pass it).
            box_params: per mask, `(box, raw_h, raw_w)` of `resize_image_mask`.

        Returns:
            `(T, D)` object tokens, masks in order.
        """
        query_feats = []
        for image_idx, (mask, box_param) in enumerate(zip(masks, box_params, strict=True)):
            mask = mask.unsqueeze(0).unsqueeze(0).float()
            box_xy, raw_h, raw_w = box_param
            feat = feats[image_idx].unsqueeze(0)
            pos_emb = (
                generate_position_tensor(feat.shape[1], feat.shape[2], box_xy, raw_h, raw_w).unsqueeze(0).to(feat)
            )
            pos_emb = self.pos_linear(pos_emb)
            feat = feat + pos_emb
            feat = feat.permute(0, 3, 1, 2)
            feat = feat.to(mask.dtype)
            query_feats.append(full_mask_pooling(feat, mask, mask_token_num=mask_num, kmeans_start=kmeans_start))
        mask_feats = torch.cat(query_feats, dim=0)
        mask_feats = mask_feats.to(feats[0].dtype)
        return self.feat_linear(mask_feats)


class LiteRegionEncoder(FullRegionEncoder):
    """Lite's `MaskExtractor`: the full one plus Object-Centric Infusion (`ln_*`, `fusion_attention_*`)."""

    def __init__(self, mm_hidden_size: int, hidden_size: int, depth: int = 2, num_heads: int = 8):
        super().__init__(mm_hidden_size, hidden_size, depth)
        self.mask_embedding = nn.Conv2d(in_channels=1, out_channels=mm_hidden_size, kernel_size=1)
        self.fusion_attention_local = nn.MultiheadAttention(mm_hidden_size, num_heads, batch_first=True)
        self.fusion_attention_global = nn.MultiheadAttention(mm_hidden_size, num_heads, batch_first=True)
        self.ln_local = nn.LayerNorm(mm_hidden_size)
        self.ln_global = nn.LayerNorm(mm_hidden_size)

    def fusion_image_mask_embedding(self, query, key, type):
        value = key
        if type == "local":
            query_norm = self.ln_local(query)
            attn_output = self.fusion_attention_local(query_norm, key, value)[0]
        else:
            query_norm = self.ln_global(query)
            attn_output = self.fusion_attention_global(query_norm, key, value)[0]
        return query + attn_output

    def forward(
        self,
        feats: Sequence[torch.Tensor],
        masks: Sequence[torch.Tensor],
        box_params: Sequence[BoxParam],
        mask_num: int,
        kmeans_start: KMeansStart | None = None,
        feats_raw: Sequence[torch.Tensor] = (),
        local_feats_raw: Sequence[torch.Tensor] = (),
    ) -> torch.Tensor:
        """Lite `MaskExtractor.forward` for the masks of one image; `feats_raw` / `local_feats_raw`: per mask, the
        `(24, 24, C)` global and `(16, 16, C)` local context features; masks are the float grids of Lite's
        `resize_image_mask`. Returns `(len(masks) * mask_num, D)` object tokens."""
        mask_feats, local_feats, global_feats = [], [], []
        for image_idx, (mask, box_param) in enumerate(zip(masks, box_params, strict=True)):
            mask = mask.unsqueeze(0).unsqueeze(0).bfloat16()
            box_xy, raw_h, raw_w = box_param
            feat = feats[image_idx].unsqueeze(0)
            pos_emb = (
                generate_position_tensor(feat.shape[1], feat.shape[2], box_xy, raw_h, raw_w).unsqueeze(0).to(feat)
            )
            pos_emb = self.pos_linear(pos_emb)
            feat = feat + pos_emb
            feat = feat.permute(0, 3, 1, 2)
            mask_feat_raw = lite_mask_pooling(feat, mask, mask_token_num=mask_num, kmeans_start=kmeans_start)
            mask_feat_raw = F.pad(mask_feat_raw, (0, 0, 0, mask_num - len(mask_feat_raw)))

            feat_local = local_feats_raw[image_idx].unsqueeze(0)
            feat_local = feat_local.reshape(feat_local.shape[0], -1, feat_local.shape[-1])
            feat_raw = feats_raw[image_idx].unsqueeze(0)
            feat_raw = feat_raw.reshape(feat_raw.shape[0], -1, feat_raw.shape[-1])

            mask_feats.append(mask_feat_raw.unsqueeze(0))
            local_feats.append(feat_local)
            global_feats.append(feat_raw)

        fused_feature = self.fusion_image_mask_embedding(torch.cat(mask_feats), torch.cat(local_feats), "local")
        fused_feature = self.fusion_image_mask_embedding(fused_feature, torch.cat(global_feats), "global")
        return self.feat_linear(fused_feature.reshape(-1, fused_feature.shape[-1]))


def load_region_encoder(state_dict: dict[str, torch.Tensor], variant: str) -> FullRegionEncoder:
    """The transcribed `MaskExtractor` of `variant` (`"full"` / `"lite"`) with the `model.region_encoder.*` weights of
    a released checkpoint's state dict (strict: every released region-encoder key, nothing else)."""
    prefix = "model.region_encoder."
    weights = {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}
    mm_hidden_size = weights["pos_linear.weight"].shape[0]
    hidden_size = weights["feat_linear.0.weight"].shape[0]
    encoder = (LiteRegionEncoder if variant == "lite" else FullRegionEncoder)(mm_hidden_size, hidden_size)
    encoder.load_state_dict(weights, strict=True)
    return encoder.to(next(iter(weights.values())).dtype).eval()


__all__ = [
    "FullRegionEncoder",
    "LiteRegionEncoder",
    "full_mask_pooling",
    "generate_position_tensor",
    "kmeans_fast",
    "lite_mask_pooling",
    "load_region_encoder",
]
