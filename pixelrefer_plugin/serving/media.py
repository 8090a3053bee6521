# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Images, videos and masks of a request: data URLs, allowed local files, DAM's RGBA convention.

A media URL is a `data:` URL (base64) or, when the server was started with a media folder, a local path inside it
(`/abs/path.jpg` or `file:///abs/path.jpg`). Remote URLs are never fetched.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RequestError

DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^,;]*)*),(?P<data>.*)$", re.DOTALL)
ALPHA_INSIDE = 128  # an RGBA pixel belongs to the region where its alpha is at least this (half opaque)


@dataclass(frozen=True)
class MediaLimits:
    """What a request may send.

    Attributes:
        max_image_pixels: most pixels (width x height) of one image or mask (413 above).
        media_root: folder whose files a request may name by path; None: data URLs only.
    """

    max_image_pixels: int = 4096 * 4096
    media_root: Path | None = None


def read_url(url: str, field: str, limits: MediaLimits) -> bytes | Path:
    """The bytes of a data URL, or the path of an allowed local file.

    Raises:
        RequestError: 400 for a remote URL, a path outside the media folder (or any path without one), a missing
            file, or a data URL that is not valid base64.
    """
    match = DATA_URL.match(url)
    if match is not None:
        if ";base64" not in match["params"]:
            raise RequestError(400, f"{field}: expected a base64 data URL (data:<type>;base64,...)", field, "bad_url")
        try:
            return base64.b64decode(match["data"], validate=True)
        except (binascii.Error, ValueError) as error:
            raise RequestError(
                400, f"{field}: the data URL is not valid base64 ({error})", field, "bad_base64"
            ) from None
    if re.match(r"^[a-zA-Z][\w+.-]*://", url) and not url.startswith("file://"):
        raise RequestError(
            400, f"{field}: remote URLs are not fetched; send the file as a data URL", field, "remote_url"
        )
    return _local_path(url.removeprefix("file://"), field, limits)


def _local_path(text: str, field: str, limits: MediaLimits) -> Path:
    if limits.media_root is None:
        raise RequestError(
            400,
            f"{field}: local paths are disabled; send a data URL, or start the server with --media-root DIR",
            field,
            "local_path",
        )
    root = limits.media_root.resolve()
    path = Path(text).resolve()
    if not path.is_relative_to(root):
        raise RequestError(400, f"{field}: {text!r} is outside the media folder {str(root)!r}", field, "local_path")
    if not path.is_file():
        raise RequestError(400, f"{field}: no such file {text!r}", field, "local_path")
    return path


def _open_picture(source: bytes | Path, field: str, limits: MediaLimits) -> Any:
    """The PIL image of `source`, its pixel count checked before decoding."""
    from PIL import Image, UnidentifiedImageError

    try:
        picture = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except Image.DecompressionBombError:
        raise RequestError(
            413, f"{field}: the image is larger than the server's limit", field, "image_too_large"
        ) from None
    except (OSError, UnidentifiedImageError) as error:
        raise RequestError(400, f"{field}: cannot read the image ({error})", field, "bad_image") from None
    width, height = picture.size
    if width * height > limits.max_image_pixels:
        raise RequestError(
            413,
            f"{field}: the image has {width}x{height} pixels; the server takes at most {limits.max_image_pixels}",
            field,
            "image_too_large",
        )
    try:
        picture.load()
    except OSError as error:
        raise RequestError(400, f"{field}: cannot decode the image ({error})", field, "bad_image") from None
    return picture


def decode_image(url: str, field: str, limits: MediaLimits) -> tuple[np.ndarray, np.ndarray | None]:
    """An image URL as `(H, W, 3)` uint8 pixels and, following DAM's convention, the `(H, W)` bool mask of its alpha
    channel when it has one that is not fully opaque (else None)."""
    picture = _open_picture(read_url(url, field, limits), field, limits)
    alpha = None
    if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
        channel = np.asarray(picture.convert("RGBA").getchannel("A"))
        if channel.min() < 255:
            alpha = channel >= ALPHA_INSIDE
            if not alpha.any():
                raise RequestError(
                    400,
                    f"{field}: the alpha channel marks no pixel (expected the region opaque, alpha >= {ALPHA_INSIDE})",
                    field,
                    "empty_alpha",
                )
    return np.array(picture.convert("RGB")), alpha  # writable: torch.from_numpy warns on read-only arrays


def decode_mask(value: Any, field: str, limits: MediaLimits) -> np.ndarray:
    """A mask given as a PNG data URL (grey: non-zero inside; with alpha: alpha >= 128 inside) or as nested lists."""
    if isinstance(value, str):
        picture = _open_picture(read_url(value, field, limits), field, limits)
        if picture.mode in ("RGBA", "LA", "PA"):
            return np.asarray(picture.getchannel("A")) >= ALPHA_INSIDE
        if picture.mode in ("1", "L", "I", "I;16", "F"):
            return np.asarray(picture) != 0
        return np.asarray(picture.convert("RGB")).any(axis=-1)
    try:
        mask = np.asarray(value)
    except ValueError as error:
        raise RequestError(400, f"{field}: the mask is not a rectangular array ({error})", field, "bad_mask") from None
    if mask.ndim != 2 or not (np.issubdtype(mask.dtype, np.number) or mask.dtype == np.bool_):
        raise RequestError(
            400,
            f"{field}: expected a PNG data URL or an (H, W) array of numbers, got shape {mask.shape}",
            field,
            "bad_mask",
        )
    return mask


def video_file(url: str, field: str, limits: MediaLimits, folder: Path) -> Path:
    """A video URL as a file the processor can read: the data URL's bytes written into `folder`, or the allowed
    local path."""
    source = read_url(url, field, limits)
    if isinstance(source, Path):
        return source
    path = folder / f"video{len(list(folder.iterdir()))}.bin"
    path.write_bytes(source)
    return path


__all__ = ["ALPHA_INSIDE", "MediaLimits", "decode_image", "decode_mask", "read_url", "video_file"]
