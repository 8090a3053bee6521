# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Collects the model inputs of all regions of a batch: crops, grid masks, boxes, and Lite's context images."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .region_geometry import (
    crop_and_resize_image,
    fit_image_to_size,
    fit_pixel_budget,
    plan_region_crop,
    region_grid_mask,
    resize_context,
)
from .region_settings import RegionSettings


@dataclass
class RegionInputCollector:
    """Turns (mask, frame) pairs into crop patches and bookkeeping, one "unit" per region and masked frame.

    With `lite=True` each unit also gets its local context (an expanded crop resized to `lite_local_size²`) and the
    frame it lies on is resized to `lite_global_size²` once, however many units share it.

    Attributes:
        settings: crop geometry, grid rounding, budgets, token count and Lite context rules.
        patch_size: patch side of the vision encoder.
        min_pixels, max_pixels: pixel budget of one region crop.
        lite: collect the Lite context images and give every unit `mask_num` tokens.
    """

    settings: RegionSettings
    patch_size: int
    min_pixels: int
    max_pixels: int
    lite: bool = False
    crops: list[np.ndarray] = field(default_factory=list)
    grid_masks: list[np.ndarray] = field(default_factory=list)
    mask_sizes: list[tuple[int, int]] = field(default_factory=list)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    image_sizes: list[tuple[int, int]] = field(default_factory=list)
    local_images: list[np.ndarray] = field(default_factory=list)
    frame_images: list[np.ndarray] = field(default_factory=list)
    frame_keys: dict[Hashable, int] = field(default_factory=dict)
    frame_index: list[int] = field(default_factory=list)
    first_local_images: dict[Hashable, np.ndarray] = field(default_factory=dict)

    def crop_budget(self, crops_in_prompt: int) -> int:
        """Pixel budget of one crop (and, Lite, of one context image) of a prompt holding `crops_in_prompt` crops."""
        if self.settings.region_budget_shared:
            return self.max_pixels // max(crops_in_prompt, 1)
        return self.max_pixels

    def add(self, mask: np.ndarray, image: np.ndarray, frame_key: Hashable, crops_in_prompt: int = 1) -> int:
        """Add one region on one frame; returns its number of object tokens.

        Args:
            mask: `(H, W)` bool, non-empty.
            image: `(H, W, 3)` uint8 frame the mask lies on.
            frame_key: identifies the frame within the batch (units on the same frame share its global context).
            crops_in_prompt: number of units of the prompt this one belongs to (see `crop_budget`).
        """
        settings = self.settings
        max_pixels = self.crop_budget(crops_in_prompt)
        plan = plan_region_crop(
            mask,
            patch_size=self.patch_size,
            context_patches=settings.region_context_patches,
            min_patches=settings.region_min_patches,
            max_patches=settings.region_max_patches,
            min_pixels=self.min_pixels,
            max_pixels=max_pixels,
            rule=settings.region_crop_rule,
        )
        grid = region_grid_mask(mask, plan, settings.region_grid_rounding, settings.region_keep_best_cell)
        self.crops.append(crop_and_resize_image(image, plan))
        self.grid_masks.append(grid.reshape(-1))
        self.mask_sizes.append(plan.grid_size)
        self.boxes.append(plan.position_box)
        self.image_sizes.append(plan.image_size)
        if not self.lite:
            return min(settings.mask_num, int(grid.sum()))
        top, left, bottom, right = plan.box
        local = self.first_local_images.get(frame_key) if settings.lite_local_context == "first_region" else None
        if local is None:
            local = self._context_image(image[top:bottom, left:right], settings.lite_local_size, max_pixels)
            self.first_local_images.setdefault(frame_key, local)
        self.local_images.append(local)
        if frame_key not in self.frame_keys:
            self.frame_keys[frame_key] = len(self.frame_images)
            self.frame_images.append(self._context_image(image, settings.lite_global_size, max_pixels))
        self.frame_index.append(self.frame_keys[frame_key])
        return settings.mask_num

    def _context_image(self, image: np.ndarray, side: int, max_pixels: int) -> np.ndarray:
        """A Lite context image: `image` at `side x side` (`resize_context`), fitted into the pixel budget."""
        size = fit_pixel_budget((side, side), self.patch_size, self.min_pixels, max_pixels)
        return fit_image_to_size(resize_context(image, side), size)

    def features(self, image_processor: Any) -> dict[str, torch.Tensor]:
        """Model inputs of the collected units (empty dict when there are none).

        `region_mask_sizes` is given only when some crop was encoded at another grid than its grid mask's (a crop
        refitted into the pixel budget).
        """
        if not self.crops:
            return {}

        def patches(images: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
            out = image_processor(
                images=images, do_resize=False, merge_size=1, input_data_format="channels_last", return_tensors="pt"
            )
            return out["pixel_values"], out["image_grid_thw"]

        data: dict[str, torch.Tensor] = {}
        data["region_pixel_values"], data["region_grid_thw"] = patches(self.crops)
        data["region_grid_mask"] = torch.from_numpy(np.concatenate(self.grid_masks))
        mask_sizes = torch.tensor(self.mask_sizes, dtype=torch.long)
        if not torch.equal(mask_sizes, data["region_grid_thw"][:, 1:]):
            data["region_mask_sizes"] = mask_sizes
        data["region_boxes"] = torch.tensor(self.boxes, dtype=torch.long)
        data["region_image_sizes"] = torch.tensor(self.image_sizes, dtype=torch.long)
        if self.lite:
            data["region_local_pixel_values"], data["region_local_grid_thw"] = patches(self.local_images)
            data["frame_pixel_values"], data["frame_grid_thw"] = patches(self.frame_images)
            data["region_frame_index"] = torch.tensor(self.frame_index, dtype=torch.long)
        return data
