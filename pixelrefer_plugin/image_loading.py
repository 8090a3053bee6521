# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Images as users pass them (PIL images, paths, numpy arrays, torch tensors) read as uint8 `(H, W, 3)` pixels.

This file is part of the exported model code: it imports only numpy, torch, PIL and the package's `errors`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ImageInputError


def format_size(size: tuple[int, int]) -> str:
    """An image size `(height, width)` as user-facing messages write it: `160x128 (width x height)`."""
    height, width = size
    return f"{width}x{height} (width x height)"


def load_image(image: Any, sample_index: int | None = None, image_index: int | None = None) -> np.ndarray:
    """Read a PIL image, path, numpy array `(H, W[, 1|3|4])` or torch tensor `(H, W, 3)` / `(3, H, W)` as uint8
    `(H, W, 3)`.

    Pixel values: uint8 as they are; 16-bit (uint16 arrays, 16-bit PNGs) scaled to 8 bits (`round(v / 257)`, so
    65535 is 255); other integers must lie in 0..255; floats in [0, 1] are scaled by 255, floats in [0, 255] taken as
    they are. NaN, infinite, negative or larger values are refused, never clipped.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, (str, Path)):
        path = Path(image)
        if path.is_dir():
            raise ImageInputError(f"{str(image)!r} is a folder; expected an image file", sample_index, image_index)
        try:
            with Image.open(path) as opened:
                opened.load()
                image = _pil_pixels(opened)
        except (OSError, UnidentifiedImageError) as error:
            raise ImageInputError(
                f"cannot read image file {str(image)!r} ({error})", sample_index, image_index
            ) from None
    if isinstance(image, Image.Image):
        image = _pil_pixels(image)
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3, 4):
            image = image.permute(1, 2, 0)
        image = image.float().numpy() if image.dtype in (torch.bfloat16, torch.float16) else image.numpy()
    if not isinstance(image, np.ndarray):
        raise ImageInputError(
            f"expected a PIL image, a path, a numpy array or a torch tensor, got {type(image).__name__}",
            sample_index,
            image_index,
        )
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageInputError(
            f"expected an array of shape (H, W, 3), got shape {tuple(image.shape)}", sample_index, image_index
        )
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return np.ascontiguousarray(_as_uint8(image[..., :3], sample_index, image_index))


def _pil_pixels(image: Any) -> np.ndarray:
    """The pixels of a PIL image: 16-bit grey images as uint16 `(H, W)`, 32-bit integer / float grey images as they
    are (checked by [`_as_uint8`]), everything else as uint8 `(H, W, 3)`."""
    if image.mode.startswith("I;16"):
        return np.asarray(image).astype(np.uint16)
    if image.mode in ("I", "F"):
        return np.asarray(image)
    return np.array(image.convert("RGB"), dtype=np.uint8)


def _as_uint8(image: np.ndarray, sample_index: int | None, image_index: int | None) -> np.ndarray:
    """8-bit pixels of an `(H, W, 3)` array, as [`load_image`] documents; refuses values it would have to clip."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.rint(image / 257.0).astype(np.uint8)
    if image.dtype == np.bool_ or not (
        np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)
    ):
        raise ImageInputError(
            f"pixels of dtype {image.dtype} are not supported; expected uint8, uint16 or float values",
            sample_index,
            image_index,
        )
    if np.issubdtype(image.dtype, np.floating):
        finite = np.isfinite(image)
        if not finite.all():
            raise ImageInputError(
                f"the image holds {int((~finite).sum())} NaN or infinite value(s); expected finite pixel values",
                sample_index,
                image_index,
            )
    low, high = float(image.min()), float(image.max())
    if low < 0 or high > 255:
        depth = "floats in [0, 1] or [0, 255]" if np.issubdtype(image.dtype, np.floating) else "integers in 0..255"
        raise ImageInputError(
            f"pixel values span [{low:g}, {high:g}]; expected {depth} (or a uint16 array for 16-bit images)",
            sample_index,
            image_index,
        )
    if np.issubdtype(image.dtype, np.floating) and high <= 1.0:
        image = image * 255.0
    return np.rint(image).astype(np.uint8)


__all__ = ["format_size", "load_image"]
