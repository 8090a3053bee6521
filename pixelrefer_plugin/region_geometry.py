# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Pure geometry of the Scale-Adaptive Object Tokenizer (SAOT).

Everything here is a plain function of numbers and tensors (no `nn.Module`), so it can be checked against the worked
examples of the algorithm: where a region is cropped, how much the crop is rescaled, which cells of the encoder grid
belong to the region, and the normalised image coordinates that the position encoding sees.

Conventions:
* a box is `(top, left, bottom, right)` in pixels, rows first, `bottom`/`right` exclusive;
* `patch_size` is the vision encoder's patch side (14 for the released models);
* a "grid" is the crop's patch grid as the vision encoder sees it: `(crop_height / patch_size, crop_width / patch_size)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F

CropRule = Literal["full", "lite"]
GridRounding = Literal["separable", "bilinear", "any", "uint8", "opencv_any"]
CROP_RULES: tuple[str, ...] = get_args(CropRule)
GRID_ROUNDING_MODES: tuple[str, ...] = get_args(GridRounding)


@dataclass(frozen=True)
class CropPlan:
    """Where and how one region is cropped.

    Attributes:
        box: `(top, left, bottom, right)` of the crop in the original image, bottom/right exclusive.
        scale: factor applied to the crop before encoding (> 1 enlarges small regions, < 1 shrinks large ones).
        resized_size: `(height, width)` of the rescaled crop, multiples of `patch_size`; the grid mask is built at
            this size.
        encoder_size: `(height, width)` the crop is encoded at: `resized_size` fitted into the encoder's pixel budget.
            Where the two differ the crop is resized once more and the model stretches the crop's features to the
            grid mask, as the released models do.
        image_size: `(height, width)` of the original image.
        area: number of foreground pixels of the region.
        patch_size: patch side of the vision encoder the crop is planned for.
        rule: `"full"` or `"lite"`, the released variant whose crop conventions the plan follows.
    """

    box: tuple[int, int, int, int]
    scale: float
    resized_size: tuple[int, int]
    encoder_size: tuple[int, int]
    image_size: tuple[int, int]
    area: int
    patch_size: int
    rule: CropRule = "full"

    @property
    def grid_size(self) -> tuple[int, int]:
        """`(rows, cols)` of the crop's grid mask (the rescaled crop in patches)."""
        return self.resized_size[0] // self.patch_size, self.resized_size[1] // self.patch_size

    @property
    def encoder_grid_size(self) -> tuple[int, int]:
        """`(rows, cols)` of the crop's vision features."""
        return self.encoder_size[0] // self.patch_size, self.encoder_size[1] // self.patch_size

    @property
    def position_box(self) -> tuple[int, int, int, int]:
        """The box the position encoding reads: the crop box for `"full"`, with inclusive bottom/right for `"lite"`."""
        top, left, bottom, right = self.box
        return (top, left, bottom - 1, right - 1) if self.rule == "lite" else self.box


def mask_bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight box `(row0, col0, row1, col1)` of a non-empty 2-D mask, **inclusive** on both ends."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("mask_bounding_box() needs a non-empty mask")
    return int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1])


def expanded_crop_box(
    tight_box: tuple[int, int, int, int], image_size: tuple[int, int], context: int, rule: CropRule = "full"
) -> tuple[int, int, int, int]:
    """Pad a tight inclusive box by `context` pixels and clip it to the image, as the released models do.

    * `"full"`: the clipped bottom/right edge is `min(size - 1, edge + context)`, then used as an exclusive end, so the
      last row/column of the image never enters a crop.
    * `"lite"`: the exclusive end is `min(size, edge + 1 + context)` (one pixel more).

    Returns:
        `(top, left, bottom, right)`, bottom/right exclusive.
    """
    if rule not in CROP_RULES:
        raise ValueError(f"rule must be one of {CROP_RULES}, got {rule!r}")
    row0, col0, row1, col1 = tight_box
    height, width = image_size
    top = max(0, row0 - context)
    left = max(0, col0 - context)
    if rule == "full":
        bottom = min(height - 1, row1 + context)
        right = min(width - 1, col1 + context)
    else:
        bottom = min(height, row1 + 1 + context)
        right = min(width, col1 + 1 + context)
    # A region touching the last row/column of a 1-pixel-high (or wide) image would give an empty crop.
    bottom = max(bottom, top + 1)
    right = max(right, left + 1)
    return top, left, bottom, right


def region_scale(area: int, patch_size: int, min_patches: int, max_patches: int) -> float:
    """Scale factor that makes a region cover about `min_patches`..`max_patches` encoder patches.

    Small regions are enlarged by the integer `ceil(sqrt(P² · min_patches / area))`; regions of more than `max_patches`
    patches' worth of pixels are shrunk to about `max_patches` patches; everything in between keeps its size.
    """
    if area <= 0:
        raise ValueError(f"region_scale() needs a positive area, got {area}")
    patch_area = patch_size * patch_size
    scale: float = math.ceil(math.sqrt(patch_area * min_patches / area))
    if scale == 1 and area / patch_area > max_patches:
        scale = 1.0 / math.sqrt((area / patch_area) / max_patches)
    return float(scale)


def resized_crop_size(crop_size: tuple[int, int], scale: float, patch_size: int) -> tuple[int, int]:
    """`(height, width)` of a crop after scaling, each rounded **up** to a multiple of `patch_size`."""
    height, width = crop_size
    return (
        patch_size * math.ceil(height * scale / patch_size),
        patch_size * math.ceil(width * scale / patch_size),
    )


def fit_pixel_budget(size: tuple[int, int], patch_size: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Keep a patch-aligned size inside the encoder's pixel budget, as the image processor would.

    Sizes already inside `[min_pixels, max_pixels]` are returned unchanged; others go through the VideoLLaMA3
    `smart_resize` rule (same aspect ratio, multiples of `patch_size`). The released image processor runs every crop
    through the same rule; a patch-aligned size inside the budget is a fixed point of it.
    """
    height, width = size
    if min_pixels <= height * width <= max_pixels:
        return height, width
    from transformers.models.video_llama_3.image_processing_pil_video_llama_3 import smart_resize

    return smart_resize(height, width, factor=patch_size, min_pixels=min_pixels, max_pixels=max_pixels)


def plan_region_crop(
    mask: np.ndarray,
    *,
    patch_size: int,
    context_patches: int,
    min_patches: int,
    max_patches: int,
    min_pixels: int,
    max_pixels: int,
    rule: CropRule = "full",
) -> CropPlan:
    """Crop plan of one region given its full-image boolean mask `(H, W)` (must be non-empty).

    Args:
        mask: `(H, W)` bool, non-empty.
        patch_size: patch side of the vision encoder.
        context_patches: context kept around the tight box, in patches (see `expanded_crop_box`).
        min_patches, max_patches: scale thresholds (see `region_scale`).
        min_pixels, max_pixels: pixel budget of the encoded crop (see `fit_pixel_budget`).
        rule: released crop conventions to follow, `"full"` or `"lite"`.
    """
    image_size = (int(mask.shape[0]), int(mask.shape[1]))
    area = int(mask.sum())
    box = expanded_crop_box(mask_bounding_box(mask), image_size, context_patches * patch_size, rule)
    top, left, bottom, right = box
    scale = region_scale(area, patch_size, min_patches, max_patches)
    resized = resized_crop_size((bottom - top, right - left), scale, patch_size)
    return CropPlan(
        box=box,
        scale=scale,
        resized_size=resized,
        encoder_size=fit_pixel_budget(resized, patch_size, min_pixels, max_pixels),
        image_size=image_size,
        area=area,
        patch_size=patch_size,
        rule=rule,
    )


def resize_bilinear(array: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a `(C, H, W)` float tensor, `align_corners=False` and no antialiasing."""
    return F.interpolate(array[None], size=size, mode="bilinear", align_corners=False, antialias=False)[0]


def _opencv():
    try:  # a try block keeps OpenCV out of the exported code's required imports (transformers checks them)
        import cv2
    except ImportError as error:
        raise ImportError("resizing region crops needs OpenCV: pip install opencv-python-headless") from error
    return cv2


def resize_crop(crop: np.ndarray, size: tuple[int, int], rule: CropRule = "full") -> np.ndarray:
    """Resize an `(h, w, 3)` uint8 crop to `size = (height, width)` with OpenCV, as the released models do.

    * `"full"`: `cv2.resize(crop, (width, height))`, bilinear (`INTER_LINEAR`).
    * `"lite"`: bilinear when either side keeps or grows its length, pixel-area averaging (`INTER_AREA`) when both
      shrink.
    """
    cv2 = _opencv()
    height, width = size
    interpolation = cv2.INTER_LINEAR
    if rule == "lite" and height < crop.shape[0] and width < crop.shape[1]:
        interpolation = cv2.INTER_AREA
    return cv2.resize(np.ascontiguousarray(crop), (width, height), interpolation=interpolation)


def resize_context(image: np.ndarray, side: int) -> np.ndarray:
    """Resize an `(h, w, 3)` uint8 image to `side x side` with OpenCV's pixel-area rule (`INTER_AREA`), enlarging or
    not, as the released Lite models make their local and global context images."""
    cv2 = _opencv()
    return cv2.resize(np.ascontiguousarray(image), (side, side), interpolation=cv2.INTER_AREA)


def fit_image_to_size(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an `(h, w, 3)` uint8 image to `size = (height, width)` as the released image processor does when an
    image leaves its pixel budget: PIL bicubic; an image of that size already is returned as it is."""
    if image.shape[:2] == tuple(size):
        return image
    from PIL import Image

    resized = Image.fromarray(np.ascontiguousarray(image)).resize(
        (size[1], size[0]), resample=Image.Resampling.BICUBIC, reducing_gap=None
    )
    return np.asarray(resized)


def crop_and_resize_image(image: np.ndarray, plan: CropPlan) -> np.ndarray:
    """Pixels of one region crop as the encoder sees them: `plan.box` cut out of an `(H, W, 3)` uint8 image, resized to
    `plan.resized_size` (`resize_crop`), then fitted to `plan.encoder_size` (`fit_image_to_size`); uint8 `(h, w, 3)`."""
    top, left, bottom, right = plan.box
    crop = resize_crop(image[top:bottom, left:right], plan.resized_size, plan.rule)
    return fit_image_to_size(crop, plan.encoder_size)


def torch_uint8_grid(crop: np.ndarray, grid_size: tuple[int, int]) -> torch.Tensor:
    """Grid of the released full models: torch's uint8 bilinear kernel on the uint8 crop, a cell is in when `> 0`.

    The public `pixelrefer/mm_utils.py` (`resize_image_mask`) resamples the uint8 crop with
    `F.interpolate(cropping_mask[None, None], size=(resize_h//patch_size, resize_w//patch_size), mode='bilinear',
    align_corners=False)`; the region encoder's `MaskPooling` keeps the cells with `mask > 0`. The call is made here
    unchanged (CPU, as in the public processing), so whatever torch's uint8 kernel rounds, this rounds alike.

    Args:
        crop: `(h, w)` bool or 0/1 mask of the crop.
        grid_size: `(rows, cols)` of the crop grid.

    Returns:
        bool tensor of shape `grid_size`.
    """
    cropping_mask = torch.from_numpy(np.ascontiguousarray(crop, dtype=np.uint8))
    resize_mask = F.interpolate(cropping_mask[None, None], size=grid_size, mode="bilinear", align_corners=False)[0, 0]
    return resize_mask > 0


def opencv_any_grid(crop: np.ndarray, grid_size: tuple[int, int]) -> torch.Tensor:
    """Grid of the released Lite models: OpenCV's float bilinear resize of the crop, a cell is in when `> 0`.

    The public `pixelreferlite/mm_utils.py` (`resize_image_mask`) resamples with
    `cv2.resize(cropping_mask.astype(np.float32), (grid_w, grid_h), interpolation=cv2.INTER_LINEAR)`; the region
    encoder casts the result to bfloat16 and its `MaskPooling` keeps the cells with `mask > 0`. The quirk: OpenCV
    computes sample positions in double precision, so a sample that falls exactly on a pixel next to the region gets
    a weight of about 1e-15 on the region and counts as in (torch's float resample, `"any"`, has such residues at
    other samples instead).

    Args:
        crop: `(h, w)` bool or 0/1 mask of the crop.
        grid_size: `(rows, cols)` of the crop grid.

    Returns:
        bool tensor of shape `grid_size`.
    """
    cv2 = _opencv()
    grid_h, grid_w = grid_size
    cropping_mask = np.ascontiguousarray(crop, dtype=np.uint8)
    mask_small = cv2.resize(cropping_mask.astype(np.float32), (grid_w, grid_h), interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(mask_small.reshape(grid_h, grid_w)).bfloat16() > 0


def region_grid_mask(
    mask: np.ndarray, plan: CropPlan, rounding: GridRounding = "uint8", keep_best_cell: bool = True
) -> np.ndarray:
    """Boolean mask of the crop's encoder grid cells that belong to the region.

    The cropped mask is resampled bilinearly (`align_corners=False`, no antialias) to the crop grid:

    * `"uint8"` (the released full models): torch's uint8 bilinear kernel itself, cells `> 0` (`torch_uint8_grid`).
    * `"opencv_any"` (the released Lite models): OpenCV's float bilinear resize itself, cells `> 0`, its ~1e-15
      residues included (`opencv_any_grid`).
    * `"separable"`: a float emulation of the uint8 kernel: resample the rows, round to 0/1 (half up), then the
      columns, round again. It misses the kernel's fixed-point rounding at exact half-pixel positions (about 0.4 % of
      masks gain or lose a cell against `"uint8"`).
    * `"bilinear"`: one 2-D bilinear resample, a cell is in when its coverage is `>= 0.5`.
    * `"any"`: one 2-D bilinear resample, a cell is in when its coverage is `> 0`. Its float residues fall at other
      samples than OpenCV's (about 1-2 % of masks gain or lose a cell against `"opencv_any"`).

    With `keep_best_cell` (our choice, in every mode) a region too thin to be kept by the rounding keeps the single
    cell of highest 2-D coverage, so every region gets at least one object token; without it such a region keeps no
    cell and gets no token, as in the released code.

    Returns:
        bool array of shape `plan.grid_size`.
    """
    if rounding not in GRID_ROUNDING_MODES:
        raise ValueError(f"rounding must be one of {GRID_ROUNDING_MODES}, got {rounding!r}")
    top, left, bottom, right = plan.box
    cropped = mask[top:bottom, left:right]
    crop = torch.from_numpy(np.ascontiguousarray(cropped, dtype=np.float32))[None]
    grid_height, grid_width = plan.grid_size
    coverage = resize_bilinear(crop, (grid_height, grid_width))[0]
    if rounding == "uint8":
        grid = torch_uint8_grid(cropped, plan.grid_size)
    elif rounding == "opencv_any":
        grid = opencv_any_grid(cropped, plan.grid_size)
    elif rounding == "bilinear":
        grid = coverage >= 0.5
    elif rounding == "any":
        grid = coverage > 0
    else:
        rows = torch.floor(resize_bilinear(crop, (crop.shape[1], grid_width)) + 0.5)
        grid = torch.floor(resize_bilinear(rows, (grid_height, grid_width))[0] + 0.5) >= 1
    if keep_best_cell and not grid.any():
        grid.view(-1)[coverage.argmax()] = True
    return grid.numpy()


def position_grids(
    grid_sizes: torch.Tensor, boxes: torch.Tensor, image_sizes: torch.Tensor, axis_swap: bool
) -> torch.Tensor:
    """Normalised image coordinates of every cell of every crop grid, for the object position encoding.

    Cell `(i, j)` of an `h x w` grid sits at the fractions `u = j / w` (column) and `v = i / h` (row) of its crop box,
    left/top aligned. With `axis_swap=False` the two channels are the cell's x and y in the full image:
    `c0 = (u · (right - left) + left) / (W - 1)`, `c1 = (v · (bottom - top) + top) / (H - 1)`.
    With `axis_swap=True` (the released checkpoints) the box is read as if it were `(x0, y0, x1, y1)`:
    `c0 = (u · (bottom - top) + top) / (W - 1)`, `c1 = (v · (right - left) + left) / (H - 1)`.

    Args:
        grid_sizes: `(R, 2)` long, `(h, w)` of each crop grid.
        boxes: `(R, 4)` `(top, left, bottom, right)` of each crop in its image.
        image_sizes: `(R, 2)` `(H, W)` of each region's image.
        axis_swap: reproduce the released checkpoints' channel mix-up.

    Returns:
        float32 tensor `(sum(h * w), 2)`, crops concatenated in order, cells in raster order.
    """
    device = grid_sizes.device
    heights, widths = grid_sizes[:, 0], grid_sizes[:, 1]
    cells_per_crop = heights * widths
    crop_index = torch.repeat_interleave(torch.arange(len(grid_sizes), device=device), cells_per_crop)
    starts = torch.cumsum(cells_per_crop, 0) - cells_per_crop
    local = torch.arange(int(cells_per_crop.sum()), device=device) - starts[crop_index]
    row = torch.div(local, widths[crop_index], rounding_mode="floor")
    col = local - row * widths[crop_index]

    u = col.float() / widths[crop_index].float()
    v = row.float() / heights[crop_index].float()
    boxes = boxes.float()[crop_index]
    top, left, bottom, right = boxes.unbind(-1)
    image_sizes = image_sizes.float()[crop_index]
    x_norm = (image_sizes[:, 1] - 1).clamp_min(1.0)
    y_norm = (image_sizes[:, 0] - 1).clamp_min(1.0)
    if axis_swap:
        channel0 = (u * (bottom - top) + top) / x_norm
        channel1 = (v * (right - left) + left) / y_norm
    else:
        channel0 = (u * (right - left) + left) / x_norm
        channel1 = (v * (bottom - top) + top) / y_norm
    return torch.stack([channel0, channel1], dim=-1)
