# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The shared prompt prefix: the key-value cache of the tokens every row of a batch starts with, computed once.

Questions about one image share their prompt up to the question: the chat template's opening and the scene image's
tokens (181 of ~226 tokens for the tiny preset); the prefix ends with the last image token, so that it is the same
whatever the question. `SharedPrefix.generate_inputs` finds that prefix in a batch built by
the processor (left-padded), runs it once through the model (or takes its key-value cache from the [`FeatureCache`],
by a hash of its tokens and image patches), and lays the rows out as `[prefix | padding | rest of the row]`, the cache
repeated over the rows. `generate()` then reads only the rest of each row: it derives positions from the attention
mask (the padding in the middle is skipped, so every token keeps the position it has in the row alone) and takes the
region inputs at its first step. Answers equal those of the plain batch; the prefix of an image asked about before is
not computed again.

A batch qualifies when every row holds the same scene images (equal patches) whose tokens all lie in the shared
prefix, before any region token, and has no video; otherwise (Lite, videos, different images) the plain batch runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from ..modeling_pixelrefer import CACHE_ARGUMENT
from .cache import FeatureCache, content_key

SCENE_INPUTS = ("pixel_values", "image_grid_thw", "image_merge_sizes")


@dataclass
class PrefixLayout:
    """A batch's shared prefix and its rows laid out after it.

    Attributes:
        length: tokens of the shared prefix `P`.
        prefix_ids: `(1, P)` its token ids.
        input_ids, attention_mask: `(B, P + S)` the rows as `[prefix | padding | rest]`, `S` the longest rest.
        scene: the scene inputs of one row (the prefix's images).
    """

    length: int
    prefix_ids: torch.LongTensor
    input_ids: torch.LongTensor
    attention_mask: torch.LongTensor
    scene: dict[str, torch.Tensor]


def shared_prefix_layout(
    inputs: Any, image_token_id: int, region_token_id: int, pad_token_id: int
) -> PrefixLayout | None:
    """The layout of a left-padded batch around its shared prefix, or None when the batch does not qualify (see the
    module docstring)."""
    if inputs.get("pixel_values") is None or inputs.get("pixel_values_videos") is not None:
        return None
    ids, mask = inputs["input_ids"], inputs["attention_mask"].bool()
    batch = ids.shape[0]
    scene = _row_scene(inputs, batch)
    if scene is None:
        return None
    rows = [row[keep] for row, keep in zip(ids, mask, strict=True)]
    shortest = min(len(row) for row in rows)
    stacked = torch.stack([row[:shortest] for row in rows])
    differs = (stacked != stacked[:1]).any(dim=0) | (stacked[0] == region_token_id)
    length = int(differs.nonzero()[0, 0]) if differs.any() else shortest
    length = min(length, shortest - 1)  # every row keeps a token to read
    image_positions = (rows[0][:length] == image_token_id).nonzero()
    image_tokens = len(image_positions)
    if image_tokens == 0 or not bool(((ids == image_token_id).sum(dim=1) == image_tokens).all()):
        return None
    length = int(image_positions[-1]) + 1  # up to the last image token: the same prefix whatever the question
    prefix = rows[0][:length]
    rest = max(len(row) for row in rows) - length
    input_ids = torch.full((batch, length + rest), pad_token_id, dtype=ids.dtype, device=ids.device)
    attention_mask = torch.zeros_like(input_ids, dtype=inputs["attention_mask"].dtype)
    input_ids[:, :length] = prefix
    attention_mask[:, :length] = 1
    for index, row in enumerate(rows):
        size = len(row) - length
        input_ids[index, length + rest - size :] = row[length:]
        attention_mask[index, length + rest - size :] = 1
    return PrefixLayout(length, prefix[None], input_ids, attention_mask, scene)


def _row_scene(inputs: Any, batch: int) -> dict[str, torch.Tensor] | None:
    """The scene inputs of row 0 when every row holds the same images (grids and patches equal), else None."""
    grids = inputs["image_grid_thw"]
    if len(grids) % batch:
        return None
    per_row = len(grids) // batch
    if not torch.equal(grids.view(batch, per_row, 3), grids[:per_row].expand(batch, per_row, 3)):
        return None
    patches = int(grids[:per_row].prod(dim=1).sum())
    pixels = inputs["pixel_values"]
    first = pixels[:patches]
    if not all(torch.equal(first, block) for block in pixels.split(patches)[1:]):
        return None
    return {
        "pixel_values": first,
        "image_grid_thw": grids[:per_row],
        "image_merge_sizes": inputs["image_merge_sizes"][:per_row],
    }


class SharedPrefix:
    """Runs the shared prefix of a batch once and keeps its key-value cache in a [`FeatureCache`].

    Args:
        model: the served `PixelReferForConditionalGeneration`.
        cache: where prefix key-value caches are kept (with the other same-image entries).
        pad_token_id: the tokenizer's padding id.
    """

    def __init__(self, model: Any, cache: FeatureCache, pad_token_id: int):
        self.model = model
        self.cache = cache
        self.pad_token_id = pad_token_id

    def generate_inputs(self, inputs: Any) -> dict[str, Any]:
        """`generate()` keyword arguments for the batch `inputs` (on the model's device): the shared-prefix layout with
        its key-value cache when the batch qualifies, else `inputs` as they are."""
        config = self.model.config
        layout = shared_prefix_layout(inputs, config.image_token_id, config.region_token_id, self.pad_token_id)
        if layout is None:
            return dict(inputs)
        batch = layout.input_ids.shape[0]
        kv = self._prefix_kv(layout)
        cache = DynamicCache()
        for layer, (keys, values) in enumerate(zip(kv[0::2], kv[1::2], strict=True)):
            cache.update(
                keys.expand(batch, -1, -1, -1).contiguous(), values.expand(batch, -1, -1, -1).contiguous(), layer
            )
        rest = {name: value for name, value in inputs.items() if name not in SCENE_INPUTS}
        rest.update(input_ids=layout.input_ids, attention_mask=layout.attention_mask)
        return {**rest, CACHE_ARGUMENT: cache}

    def _prefix_kv(self, layout: PrefixLayout) -> tuple[torch.Tensor, ...]:
        """Keys and values `(1, heads, P, head_dim)` of every layer (k0, v0, k1, v1, ...), from the cache or from one
        forward pass of the prefix."""
        key = content_key(
            "prefix",
            layout.scene["pixel_values"],
            layout.prefix_ids.tolist(),
            layout.scene["image_grid_thw"].tolist(),
            layout.scene["image_merge_sizes"].tolist(),
        )
        stats = self.cache.stats
        cached = self.cache.get(key)
        if cached is not None:
            stats.prefix_hits += 1
            return cached
        stats.prefix_misses += 1
        stats.prefix_tokens += layout.length
        with torch.inference_mode():
            output = self.model(
                input_ids=layout.prefix_ids,
                attention_mask=torch.ones_like(layout.prefix_ids),
                use_cache=True,
                logits_to_keep=1,
                **layout.scene,
            )
        kv = tuple(tensor for layer in getattr(output, CACHE_ARGUMENT).layers for tensor in (layer.keys, layer.values))
        self.cache.put(key, kv)
        return kv


__all__ = ["PrefixLayout", "SharedPrefix", "shared_prefix_layout"]
