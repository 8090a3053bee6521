# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The same-image cache: preprocessed patches and vision features of scene images and region crops, by content hash.

Two levels share one [`FeatureCache`] (one LRU, one byte bound):

* `CachedImageProcessor` wraps the processor's image processor (on a copy of the processor: no change to the
  processor code). Each image of a call is looked up by a hash of its pixels and the call's options; only the images
  not seen before are resized, normalised and cut into patches, in one call. A batch of questions about one image
  prepares it once.
* `CachedVisionEncoder` wraps `PixelReferModel.encode_packed` on one model instance (no change to the model code): it
  splits every group of the packed pass into its images (scene images, video frames, region crops, Lite context
  images), looks each up by a hash of its patches, grid and merge size, and runs the vision encoder once, packed, on
  the images it has not seen. Many questions about one image therefore encode the image once; a question about a
  region asked before encodes nothing. The features are those the encoder gives each image in a packed pass (its
  attention is per image), so cached and fresh features are the same numbers.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature

Group = tuple[torch.Tensor, torch.LongTensor, torch.LongTensor]
Entry = torch.Tensor | tuple[torch.Tensor, ...]


@dataclass
class CacheStats:
    """Counters of the cache and of the work behind it (what `GET /health` reports).

    `hits` / `misses` count vision-feature lookups, `patch_hits` / `patch_misses` lookups of preprocessed images,
    `prefix_hits` / `prefix_misses` lookups of shared prompt prefixes (`serving/prefix.py`).
    """

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    encoder_calls: int = 0  # vision encoder forward passes
    encoded_images: int = 0  # images (scene, frame, crop, context) those passes encoded
    encoded_patches: int = 0
    patch_hits: int = 0
    patch_misses: int = 0
    preprocess_calls: int = 0  # image processor calls
    preprocessed_images: int = 0  # images those calls resized and cut into patches
    prefix_hits: int = 0  # batches whose shared prompt prefix came from the cache
    prefix_misses: int = 0  # batches whose shared prompt prefix was run through the model
    prefix_tokens: int = 0  # tokens of the prefixes run


def _nbytes(value: Entry) -> int:
    tensors = value if isinstance(value, tuple) else (value,)
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


class FeatureCache:
    """An LRU map from content hash to a tensor (or a tuple of tensors), bounded by the bytes of its tensors (0
    disables it). Lookups are counted by the caller, which knows what it looked up."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def get(self, key: bytes) -> Entry | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: bytes, value: Entry) -> None:
        size = _nbytes(value)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = value
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.bytes -= _nbytes(evicted)
                self.stats.evictions += 1

    def lookup(self, items: Iterable[tuple[bytes, Any]], counter: str) -> tuple[dict[bytes, Entry], dict[bytes, Any]]:
        """Split `(key, item)` pairs into the entries found `{key: entry}` and the items to compute `{key: item}`
        (each key once), counting the lookups in `stats.<counter>hits` / `stats.<counter>misses`."""
        found: dict[bytes, Entry] = {}
        missing: dict[bytes, Any] = {}
        for key, item in items:
            if key in found or key in missing:
                continue
            cached = self.get(key)
            if cached is None:
                missing[key] = item
            else:
                found[key] = cached
        hits, misses = f"{counter}hits", f"{counter}misses"
        setattr(self.stats, hits, getattr(self.stats, hits) + len(found))
        setattr(self.stats, misses, getattr(self.stats, misses) + len(missing))
        return found, missing


def content_key(kind: str, data: np.ndarray | torch.Tensor, *details: Any) -> bytes:
    """Content hash of an array (its dtype, shape and bytes, hashed in place) and of `details`, under `kind`."""
    if isinstance(data, torch.Tensor):
        data = data.detach().contiguous().cpu().view(torch.uint8).numpy()  # any dtype, bfloat16 included
    data = np.ascontiguousarray(data)
    digest = hashlib.sha256()
    digest.update(repr((kind, str(data.dtype), data.shape, details)).encode())
    digest.update(data.reshape(-1).view(np.uint8))
    return digest.digest()


def image_key(pixels: torch.Tensor, grid: torch.Tensor, merge: torch.Tensor) -> bytes:
    """Content hash of one image's patches `(t*h*w, P)`, its grid `(3,)` and merge size."""
    return content_key("features", pixels, grid.tolist(), int(merge))


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
        keyed = _Keys()
        items: list[list[tuple[bytes, Group]]] = []
        for pixels, grids, merges in groups:
            rows = grids.prod(dim=1).tolist()
            items.append(
                [
                    (keyed(p, g, m), (p, g[None], m[None]))
                    for p, g, m in zip(pixels.split(rows), grids, merges, strict=True)
                ]
            )
        found, missing = self.cache.lookup((item for group in items for item in group), counter="")
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


class _Keys:
    """`image_key` for the images of one packed pass, hashing each distinct image once: an image equal to one hashed
    before in the pass (the same scene in every row of a batch) reuses its key after an exact comparison."""

    def __init__(self):
        self._seen: dict[tuple, list[tuple[torch.Tensor, bytes]]] = {}

    def __call__(self, pixels: torch.Tensor, grid: torch.Tensor, merge: torch.Tensor) -> bytes:
        shape = (pixels.dtype, tuple(pixels.shape), tuple(grid.tolist()), int(merge))
        candidates = self._seen.setdefault(shape, [])
        for other, key in candidates:
            if torch.equal(pixels, other):
                return key
        key = image_key(pixels, grid, merge)
        candidates.append((pixels, key))
        return key


class CachedImageProcessor:
    """An image processor with a [`FeatureCache`] in front (see the module docstring).

    A call whose images are all uint8 arrays and which asks for `pt` tensors is answered image by image: each image is
    looked up by a hash of its pixels and the call's options, the ones not found are processed in one call of the
    wrapped image processor, and the patches, grids and merge sizes are put together in the order of `images`, as the
    wrapped processor returns them (it treats each image on its own). Other calls go to the wrapped processor as they
    are. Every other attribute is the wrapped processor's.

    Args:
        image_processor: the processor's image processor (VideoLLaMA3's).
        cache: where the patches of each image are kept.
    """

    OUTPUTS = ("pixel_values", "image_grid_thw", "image_merge_sizes")

    def __init__(self, image_processor: Any, cache: FeatureCache):
        self.image_processor = image_processor
        self.cache = cache

    def __getattr__(self, name: str) -> Any:
        return getattr(self.image_processor, name)

    @classmethod
    def install(cls, processor: Any, cache: FeatureCache) -> Any:
        """A shallow copy of `processor` whose image processor has the cache in front (`processor` is unchanged)."""
        served = copy.copy(processor)
        served.image_processor = cls(processor.image_processor, cache)
        return served

    def __call__(self, images: Sequence[Any], **kwargs: Any) -> BatchFeature:
        if kwargs.get("return_tensors") != "pt" or not all(_is_uint8_image(image) for image in images):
            return self._process(list(images), **kwargs)
        options = sorted(kwargs.items())
        keys = [content_key("patches", image, options) for image in images]
        found, missing = self.cache.lookup(zip(keys, images, strict=True), counter="patch_")
        if missing:
            processed = self._process(list(missing.values()), **kwargs)
            if set(processed) != set(self.OUTPUTS):  # not the outputs this cache knows how to split
                return self._process(list(images), **kwargs)
            found.update(self._split(list(missing), processed))
        parts = [found[key] for key in keys]
        data = {name: torch.cat([part[index] for part in parts]) for index, name in enumerate(self.OUTPUTS)}
        return BatchFeature(data=data, tensor_type="pt")

    def _process(self, images: list[Any], **kwargs: Any) -> BatchFeature:
        stats = self.cache.stats
        stats.preprocess_calls += 1
        stats.preprocessed_images += len(images)
        return self.image_processor(images=images, **kwargs)

    def _split(self, keys: list[bytes], processed: BatchFeature) -> dict[bytes, tuple[torch.Tensor, ...]]:
        """The wrapped processor's output for `keys`' images, one `(patches, grid (1, 3), merge (1,))` per image,
        cached."""
        pixels, grids, merges = (processed[name] for name in self.OUTPUTS)
        split = zip(pixels.split(grids.prod(dim=1).tolist()), grids.split(1), merges.split(1), strict=True)
        entries = {key: tuple(tensor.clone() for tensor in part) for key, part in zip(keys, split, strict=True)}
        for key, entry in entries.items():
            self.cache.put(key, entry)
        return entries


def _is_uint8_image(image: Any) -> bool:
    return isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3


__all__ = [
    "CacheStats",
    "CachedImageProcessor",
    "CachedVisionEncoder",
    "FeatureCache",
    "content_key",
    "image_key",
]
