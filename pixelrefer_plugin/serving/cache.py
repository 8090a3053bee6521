# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The same-image cache: vision features of scene images and region crops, by content hash.

`CachedVisionEncoder` wraps `PixelReferModel.encode_packed` on one model instance (no change to the model code): it
splits every group of the packed pass into its images (scene images, video frames, region crops, Lite context
images), looks each up by a hash of its patches, grid and merge size, and runs the vision encoder once, packed, on
the images it has not seen. Many questions about one image therefore encode the image once; a question about a region
asked before encodes nothing. The features are those the encoder gives each image in a packed pass (its attention is
per image), so cached and fresh features are the same numbers.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch

Group = tuple[torch.Tensor, torch.LongTensor, torch.LongTensor]


@dataclass
class CacheStats:
    """Counters of the cache and of the vision encoder behind it (what `GET /health` reports)."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    encoder_calls: int = 0  # vision encoder forward passes
    encoded_images: int = 0  # images (scene, frame, crop, context) those passes encoded
    encoded_patches: int = 0


class FeatureCache:
    """An LRU map from content hash to a features tensor, bounded by the bytes of its tensors (0 disables it)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def get(self, key: bytes) -> torch.Tensor | None:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.stats.misses += 1
                return None
            self._entries.move_to_end(key)
            self.stats.hits += 1
            return value

    def put(self, key: bytes, value: torch.Tensor) -> None:
        size = value.numel() * value.element_size()
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = value
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.bytes -= evicted.numel() * evicted.element_size()
                self.stats.evictions += 1


def image_key(pixels: torch.Tensor, grid: torch.Tensor, merge: torch.Tensor) -> bytes:
    """Content hash of one image's patches `(t*h*w, P)`, its grid `(3,)` and merge size."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(str((pixels.dtype, tuple(pixels.shape), grid.tolist(), int(merge))).encode())
    digest.update(pixels.detach().contiguous().cpu().view(torch.uint8).numpy().tobytes())
    return digest.digest()


class CachedVisionEncoder:
    """`encode_packed` with a [`FeatureCache`] in front (see the module docstring).

    Args:
        encode_packed: the model's own `encode_packed` (groups of `(pixels, grid_thw, merge_sizes)` -> features per
            group).
        cache: where the features of each image are kept.
    """

    def __init__(self, encode_packed: Callable[[list[Group]], list[torch.Tensor]], cache: FeatureCache):
        self.encode_packed = encode_packed
        self.cache = cache

    @classmethod
    def install(cls, model: torch.nn.Module, cache: FeatureCache) -> CachedVisionEncoder:
        """Put the cache in front of `model`'s vision encoder (a `PixelReferForConditionalGeneration` or
        `PixelReferModel`), on this instance only."""
        base = model.model if hasattr(model, "model") else model
        encoder = cls(base.encode_packed, cache)
        base.encode_packed = encoder
        return encoder

    def __call__(self, groups: list[Group]) -> list[torch.Tensor]:
        items: list[list[tuple[bytes, Group]]] = []
        for pixels, grids, merges in groups:
            rows = grids.prod(dim=1).tolist()
            items.append(
                [
                    (image_key(p, g, m), (p, g[None], m[None]))
                    for p, g, m in zip(pixels.split(rows), grids, merges, strict=True)
                ]
            )
        found: dict[bytes, torch.Tensor] = {}
        missing: dict[bytes, Group] = {}
        for key, image in (item for group in items for item in group):
            if key in found or key in missing:
                continue
            cached = self.cache.get(key)
            if cached is None:
                missing[key] = image
            else:
                found[key] = cached
        if missing:
            found.update(self._encode(missing))
        return [torch.cat([found[key] for key, _ in group]) for group in items]

    def _encode(self, images: dict[bytes, Group]) -> dict[bytes, torch.Tensor]:
        """Encode `images` in one packed pass; cache and return their features."""
        pixels = torch.cat([p for p, _, _ in images.values()])
        grids = torch.cat([g for _, g, _ in images.values()])
        merges = torch.cat([m for _, _, m in images.values()])
        (features,) = self.encode_packed([(pixels, grids, merges)])
        sizes = (grids.prod(dim=1) // merges**2).tolist()
        stats = self.cache.stats
        stats.encoder_calls += 1
        stats.encoded_images += len(images)
        stats.encoded_patches += int(pixels.shape[0])
        encoded = dict(zip(images, features.split(sizes), strict=True))
        for key, value in encoded.items():
            self.cache.put(key, value.clone())  # not a view: the packed output is freed
        return encoded


__all__ = ["CacheStats", "CachedVisionEncoder", "FeatureCache", "image_key"]
