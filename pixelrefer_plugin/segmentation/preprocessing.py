# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""SAM 2's pre- and post-processing in torch, without torchvision.

transformers' `Sam2ImageProcessor` (and the video processor of `Sam2VideoProcessor`) import torchvision, which the
CPU installs of this project do not have. These functions compute what they compute, step by step:

* image: RGB uint8 `(H, W, 3)` -> resized to `size x size` (the aspect ratio is *not* kept; no padding) with
  bilinear interpolation, `align_corners=False`, antialias on -- torchvision's `resize` on a uint8 tensor runs torch's
  native uint8 kernel on a CPU with AVX2 and otherwise resizes in float32 and rounds back to uint8 -- then
  `(x - 255 * mean) / (255 * std)` in float32 (the processor's rescale and normalisation fused, ImageNet mean / std);
* points and box corners: `x * size / W`, `y * size / H` (`Sam2Processor._normalize_coordinates`);
* masks: the low-resolution mask logits resized bilinearly (`align_corners=False`) to `(H, W)` and thresholded at 0
  (`Sam2ImageProcessor.post_process_masks`);
* mask prompts for the video model: the mask resized to `size x size` (bilinear, antialias), `>= 0.5`
  (`Sam2VideoProcessor.process_new_mask_for_video_frame`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def native_uint8_resize(device: torch.device) -> bool:
    """Whether torchvision resizes a uint8 image with torch's uint8 kernel (CPU with AVX2) rather than in float32."""
    return device.type == "cpu" and "AVX2" in torch.backends.cpu.get_cpu_capability()


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 images `(N, 3, H, W)` to `(N, 3, size, size)` as torchvision's bilinear antialiased resize does."""
    if images.shape[-2:] == (size, size):
        return images
    if native_uint8_resize(images.device):
        return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    resized = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return resized.round_().to(torch.uint8)


def preprocess_images(
    images: Sequence[np.ndarray],
    size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Pixel values `(N, 3, size, size)` float32 of RGB uint8 images `(H, W, 3)` (any sizes), as SAM 2 reads them."""
    device = torch.device(device)
    resized = [
        resize_uint8(torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None], size)
        for image in images
    ]
    pixels = torch.cat(resized).float()
    scaled_mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255.0
    scaled_std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255.0
    return (pixels - scaled_mean) / scaled_std


def scale_points(points: torch.Tensor, image_size: tuple[int, int], size: int) -> torch.Tensor:
    """Pixel coordinates `(..., 2)` (x, y) on an `image_size = (H, W)` image, in the model's `size x size` frame."""
    height, width = image_size
    factors = torch.tensor([size / width, size / height], dtype=torch.float32, device=points.device)
    return points.float() * factors


def upsample_mask_logits(logits: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Mask logits `(N, h, w)` resized bilinearly to `(N, H, W)`; the mask is where they are `> 0`."""
    return F.interpolate(logits[:, None].float(), size=tuple(image_size), mode="bilinear", align_corners=False)[:, 0]


def mask_prompt(mask: np.ndarray, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """A boolean `(H, W)` mask as the video model's mask prompt: `(1, 1, size, size)` float 0 / 1."""
    tensor = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)).to(device)[None, None]
    if tensor.shape[-2:] != (size, size):
        tensor = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        tensor = (tensor >= 0.5).float()
    return tensor


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "mask_prompt",
    "native_uint8_resize",
    "preprocess_images",
    "resize_uint8",
    "scale_points",
    "upsample_mask_logits",
]
