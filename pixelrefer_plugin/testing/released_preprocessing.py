# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The released region preprocessing, transcribed statement by statement, as an independent reference.

`full_regions` follows the public `pixelrefer/mm_utils.py: resize_image_mask`, `lite_regions` the public
`pixelreferlite/mm_utils.py: resize_image_mask`, and `fit_to_budget` the released image processor's resize of each
crop (`smart_resize` with factor 14 and a budget divided by the number of images of the call, then a PIL bicubic
resize). Nothing here calls the plugin's region code; tests compare the plugin against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


@dataclass
class ReleasedRegion:
    """One region as the released code prepares it.

    Attributes:
        crop: uint8 `(h, w, 3)` crop as the encoder sees it (after `fit_to_budget`).
        grid: `(gh, gw)` grid mask (uint8 values for the full model, float32 for Lite); a cell is in when `> 0`.
        num_tokens: the number of `<REGION>` tokens the prompt gets.
        local: Lite only: the local context image as encoded.
        global_image: Lite only: the frame at the global context size as encoded.
        box_param: `(box, h, w)` as `resize_image_mask` returns it for the region encoder: the crop box rows first
            (full: bottom/right exclusive; Lite: inclusive) and the image size.
    """

    crop: np.ndarray
    grid: torch.Tensor
    num_tokens: int
    local: np.ndarray | None = None
    global_image: np.ndarray | None = None
    box_param: tuple[tuple[int, int, int, int], int, int] | None = None


def released_smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """`smart_resize` of the released image processor (`damovl_encoder/image_processing.py`)."""
    if height < factor or width < factor:
        scale = factor / min(height, width)
        width = round(scale * width)
        height = round(scale * height)
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def fit_to_budget(image: np.ndarray, num_images: int, min_pixels: int, max_pixels: int) -> np.ndarray:
    """The released image processor's resize of one of `num_images` images (`max_pixels // num_images` each)."""
    height, width = image.shape[:2]
    new_height, new_width = released_smart_resize(height, width, 14, min_pixels, int(max_pixels // num_images))
    pil = Image.fromarray(image)
    if pil.size != (new_width, new_height):
        pil = pil.resize((new_width, new_height), resample=Image.Resampling.BICUBIC, reducing_gap=None)
    return np.array(pil)


def full_regions(
    image: np.ndarray, masks: list[np.ndarray], min_pixels: int, max_pixels: int, max_tokens: int = 32
) -> list[ReleasedRegion]:
    """Released full-model preparation of the `masks` (uint8 0/1) of one prompt on one image."""
    patch_size = 14
    out = []
    for mask in masks:
        mask = torch.from_numpy(mask.astype(np.uint8))
        h, w = image.shape[:2]
        rows, cols = np.where(mask.numpy() == 1)
        min_row, max_row = rows.min(), rows.max()
        min_col, max_col = cols.min(), cols.max()
        bbox = (
            max(0, min_row - patch_size * 2),
            max(0, min_col - patch_size * 2),
            min(h - 1, max_row + patch_size * 2),
            min(w - 1, max_col + patch_size * 2),
        )
        mask_h = bbox[2] - bbox[0]
        mask_w = bbox[3] - bbox[1]
        cropping_img = image[bbox[0] : bbox[2], bbox[1] : bbox[3], :]
        cropping_mask = mask[bbox[0] : bbox[2], bbox[1] : bbox[3]]
        scale_rate = math.ceil(math.sqrt(196 * max_tokens / mask.sum()))
        if scale_rate == 1 and (mask.sum() / 196) > 100:
            scale_rate = 1 / math.sqrt((mask.sum() / 196) / 100)
        resize_h = math.ceil((mask_h * scale_rate) / patch_size) * patch_size
        resize_w = math.ceil((mask_w * scale_rate) / patch_size) * patch_size
        resize_img = cv2.resize(cropping_img, (resize_w, resize_h))
        resize_mask = F.interpolate(
            cropping_mask[None, None],
            size=(resize_h // patch_size, resize_w // patch_size),
            mode="bilinear",
            align_corners=False,
        )[0, 0]
        crop = fit_to_budget(resize_img, len(masks), min_pixels, max_pixels)
        num_tokens = min(max_tokens, int(resize_mask.sum()))
        out.append(ReleasedRegion(crop, resize_mask, num_tokens, box_param=(tuple(map(int, bbox)), h, w)))
    return out


def lite_regions(
    image: np.ndarray, masks: list[np.ndarray], min_pixels: int, max_pixels: int, mask_token_num: int = 32
) -> list[ReleasedRegion]:
    """Released Lite preparation of the `masks` (0/1) of one prompt on one image, context images included."""
    patch_size, pad = 14, 28
    prepared = []
    cache = {}
    for mask in masks:
        h, w = image.shape[:2]
        m_u8 = mask.astype(np.uint8)
        x, y, bw, bh = cv2.boundingRect(cv2.findNonZero(m_u8))
        top, left = max(0, y - pad), max(0, x - pad)
        bottom_excl, right_excl = min(h, y + bh + pad), min(w, x + bw + pad)
        mask_h, mask_w = bottom_excl - top, right_excl - left
        cropping_img = image[top:bottom_excl, left:right_excl, :]
        cropping_mask = m_u8[top:bottom_excl, left:right_excl]
        msum = int(mask.sum())
        scale_rate = math.ceil(math.sqrt(196.0 * mask_token_num / max(msum, 1)))
        if scale_rate == 1 and (msum / 196.0) > 50.0:
            scale_rate = 1.0 / math.sqrt((msum / 196.0) / 50.0)
        resize_h = int(math.ceil((mask_h * scale_rate) / patch_size) * patch_size)
        resize_w = int(math.ceil((mask_w * scale_rate) / patch_size) * patch_size)
        interp_img = cv2.INTER_LINEAR if (resize_h >= mask_h or resize_w >= mask_w) else cv2.INTER_AREA
        resize_img = cv2.resize(cropping_img, (resize_w, resize_h), interpolation=interp_img)
        mask_small = cv2.resize(
            cropping_mask.astype(np.float32),
            (resize_w // patch_size, resize_h // patch_size),
            interpolation=cv2.INTER_LINEAR,
        )
        if "image" not in cache:  # the released code caches both context images per image: the first mask's crop
            cache["image"] = (
                cv2.resize(image, (336, 336), interpolation=cv2.INTER_AREA),
                cv2.resize(cropping_img, (224, 224), interpolation=cv2.INTER_AREA),
            )
        raw_336, local_224 = cache["image"]
        grid = torch.from_numpy(mask_small.reshape(resize_h // patch_size, resize_w // patch_size)).bfloat16()
        box = (top, left, min(h - 1, bottom_excl - 1), min(w - 1, right_excl - 1))
        prepared.append((resize_img, grid, local_224, raw_336, (box, h, w)))
    count = len(prepared)
    return [
        ReleasedRegion(
            fit_to_budget(crop, count, min_pixels, max_pixels),
            grid,
            mask_token_num,
            fit_to_budget(local, count, min_pixels, max_pixels),
            fit_to_budget(raw, count, min_pixels, max_pixels),
            box_param,
        )
        for crop, grid, local, raw, box_param in prepared
    ]


__all__ = ["ReleasedRegion", "fit_to_budget", "full_regions", "lite_regions", "released_smart_resize"]
