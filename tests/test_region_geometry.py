# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Crop, scale, grid mask and position grid against the worked examples of the algorithm reference."""

import cv2
import numpy as np
import pytest
import torch

from pixelrefer_plugin.region_geometry import (
    CropPlan,
    expanded_crop_box,
    fit_pixel_budget,
    plan_region_crop,
    position_grids,
    region_grid_mask,
    region_scale,
)

PUBLISHED = dict(
    patch_size=14, context_patches=2, min_patches=32, max_patches=100, min_pixels=3136, max_pixels=1605632
)


def rectangle(height, width, top, left, rows, cols):
    mask = np.zeros((height, width), dtype=bool)
    mask[top : top + rows, left : left + cols] = True
    return mask


@pytest.mark.parametrize(
    "rows, cols, scale, crop, resized, cells",
    [
        (20, 20, 4.0, (75, 75), (308, 308), 36),  # small object: upscaled x4, 6x6 mask cells
        (100, 100, 1.0, (155, 155), (168, 168), 64),  # medium: native scale, 8x8 cells
        (250, 400, 1 / np.sqrt(100000 / 196 / 100), (305, 455), (140, 210), 104),  # large: shrunk to ~100 patches
    ],
)
def test_worked_examples_640x480(rows, cols, scale, crop, resized, cells):
    mask = rectangle(480, 640, 100, 120, rows, cols)
    plan = plan_region_crop(mask, **PUBLISHED)
    top, left, bottom, right = plan.box
    assert (bottom - top, right - left) == crop
    assert plan.scale == pytest.approx(scale)
    assert plan.resized_size == resized
    assert plan.grid_size == (resized[0] // 14, resized[1] // 14)
    for rounding in ("separable", "bilinear"):  # filled rectangles: both rules agree
        grid = region_grid_mask(mask, plan, rounding)
        assert grid.shape == plan.grid_size
        assert int(grid.sum()) == cells


def test_scale_thresholds():
    # ceil(sqrt(6272 / A)): enlarged below 32 patches' worth of pixels, native up to 100 patches, shrunk above.
    assert region_scale(400, 14, 32, 100) == 4
    assert region_scale(6272, 14, 32, 100) == 1
    assert region_scale(19600, 14, 32, 100) == 1
    assert region_scale(19601, 14, 32, 100) < 1
    assert region_scale(1, 14, 32, 100) == 80


def test_crop_box_is_clipped_and_never_includes_last_row_or_column():
    box = expanded_crop_box((0, 0, 479, 639), (480, 640), 28)
    assert box == (0, 0, 479, 639)  # bottom/right are exclusive, clipped to size - 1
    assert expanded_crop_box((100, 120, 119, 139), (480, 640), 28) == (72, 92, 147, 167)


def random_ellipse_masks(count, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        height, width = rng.integers(60, 200, size=2)
        ys, xs = np.mgrid[0:height, 0:width]
        cy, cx = rng.integers(20, height - 20), rng.integers(20, width - 20)
        ry, rx = rng.integers(5, 40, size=2)
        yield ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1


def test_separable_grid_mask_equals_torch_uint8_bilinear_of_the_released_models():
    """The released models resample uint8 masks with torch's uint8 bilinear kernel: ours must give the same cells."""
    checked = 0
    for mask in random_ellipse_masks(60):
        plan = plan_region_crop(mask, **PUBLISHED)
        top, left, bottom, right = plan.box
        crop = torch.from_numpy(mask[top:bottom, left:right].astype(np.uint8))[None, None]
        released = torch.nn.functional.interpolate(crop, size=plan.grid_size, mode="bilinear", align_corners=False)
        expected = released[0, 0].numpy() > 0
        if expected.any():
            np.testing.assert_array_equal(region_grid_mask(mask, plan, "separable"), expected)
            checked += 1
    assert checked > 50


def test_bilinear_grid_mask_keeps_cells_with_half_coverage():
    for mask in random_ellipse_masks(20, seed=1):
        plan = plan_region_crop(mask, **PUBLISHED)
        top, left, bottom, right = plan.box
        crop = torch.from_numpy(mask[top:bottom, left:right].astype(np.float32))[None, None]
        coverage = torch.nn.functional.interpolate(crop, size=plan.grid_size, mode="bilinear", align_corners=False)
        expected = coverage[0, 0].numpy() >= 0.5
        if expected.any():
            np.testing.assert_array_equal(region_grid_mask(mask, plan, "bilinear"), expected)


def test_unknown_grid_rounding_is_refused():
    mask = rectangle(100, 100, 10, 10, 20, 20)
    with pytest.raises(ValueError, match="rounding"):
        region_grid_mask(mask, plan_region_crop(mask, **PUBLISHED), "nearest")


def test_thin_region_keeps_one_cell():
    mask = np.zeros((200, 300), dtype=bool)
    mask[100, 20:280] = True  # one pixel high: no cell reaches 50 % coverage
    plan = plan_region_crop(mask, **PUBLISHED)
    for rounding in ("separable", "bilinear", "uint8"):
        assert int(region_grid_mask(mask, plan, rounding).sum()) == 1


def whole_crop_plan(mask, grid_size):
    """A plan whose crop is the whole of `mask`, resampled to a `grid_size` grid of 14-pixel patches."""
    height, width = mask.shape
    resized = (grid_size[0] * 14, grid_size[1] * 14)
    return CropPlan((0, 0, height, width), 1.0, resized, resized, (height, width), int(mask.sum()), 14)


def released_full_grid(mask, grid_size):
    """The public full code: torch's uint8 bilinear `F.interpolate` of the uint8 mask, then `> 0`."""
    crop = torch.from_numpy(mask.astype(np.uint8))[None, None]
    resized = torch.nn.functional.interpolate(crop, size=grid_size, mode="bilinear", align_corners=False)
    return resized[0, 0].numpy() > 0


def released_lite_grid(mask, grid_size):
    """The public Lite code: OpenCV's float32 `INTER_LINEAR` resize of the mask, then `> 0`."""
    small = cv2.resize(mask.astype(np.uint8).astype(np.float32), grid_size[::-1], interpolation=cv2.INTER_LINEAR)
    return small.reshape(grid_size) > 0


def test_uint8_grid_is_torch_uint8_bilinear_at_an_exact_half_pixel():
    # 2 rows -> 7 rows: row 3 samples exactly half-way between the two pixels (3.5 * 2 / 7 - 0.5 = 0.5). Float
    # bilinear gives 0.49999994, so "separable" rounds it out; torch's fixed-point uint8 kernel rounds it in.
    # Found by a search over small rectangles.
    mask = np.array([[True], [False]])
    plan = whole_crop_plan(mask, (7, 1))
    expected = released_full_grid(mask, (7, 1))
    assert expected[:, 0].tolist() == [True] * 4 + [False] * 3
    np.testing.assert_array_equal(region_grid_mask(mask, plan, "uint8"), expected)
    assert region_grid_mask(mask, plan, "separable")[:, 0].tolist() == [True] * 3 + [False] * 4


@pytest.mark.parametrize(
    "rounding, rule, reference, seed",
    [("uint8", "full", released_full_grid, 2), ("opencv_any", "lite", released_lite_grid, 3)],
    ids=["uint8", "opencv_any"],
)
def test_exact_grids_equal_the_library_calls_on_random_regions(rounding, rule, reference, seed):
    checked = 0
    for mask in random_ellipse_masks(60, seed=seed):
        plan = plan_region_crop(mask, **PUBLISHED, rule=rule)
        top, left, bottom, right = plan.box
        expected = reference(mask[top:bottom, left:right], plan.grid_size)
        if expected.any():
            np.testing.assert_array_equal(region_grid_mask(mask, plan, rounding), expected)
            checked += 1
    assert checked > 50


def test_opencv_any_grid_counts_opencv_float_residues():
    # Rows 15..22 of column 1, 29 rows -> 7: row 3 samples exactly pixel row 14 (3.5 * 29 / 7 - 0.5 = 14), where
    # OpenCV's double-precision source position lands just past 14 and leaves 8.9e-16 of row 15; torch's float
    # bilinear gives exactly 0 there, so "any" leaves the cell out. Found by a search over small rectangles.
    mask = np.zeros((29, 2), dtype=bool)
    mask[15:23, 1] = True
    plan = whole_crop_plan(mask, (7, 1))
    expected = released_lite_grid(mask, (7, 1))
    assert expected[:, 0].tolist() == [False] * 3 + [True] * 3 + [False]
    np.testing.assert_array_equal(region_grid_mask(mask, plan, "opencv_any"), expected)
    assert region_grid_mask(mask, plan, "any")[:, 0].tolist() == [False] * 4 + [True] * 2 + [False]


def test_exact_grids_keep_the_best_covered_cell_when_the_released_grid_is_empty():
    # One pixel between the sample rows (4.5, 14.5, 24.5) of a 30 -> 3 resample: the released grids are empty (the
    # released code gives the region no token); every rule keeps the same single cell instead.
    mask = np.zeros((30, 2), dtype=bool)
    mask[10, :] = True
    plan = whole_crop_plan(mask, (3, 1))
    assert not released_full_grid(mask, (3, 1)).any() and not released_lite_grid(mask, (3, 1)).any()
    fallback = region_grid_mask(mask, plan, "bilinear")
    assert int(fallback.sum()) == 1
    for rounding in ("uint8", "opencv_any", "separable", "any"):
        np.testing.assert_array_equal(region_grid_mask(mask, plan, rounding), fallback)


def test_pixel_budget_shrinks_only_out_of_budget_sizes():
    assert fit_pixel_budget((308, 308), 14, 3136, 1605632) == (308, 308)
    height, width = fit_pixel_budget((308, 308), 14, 3136, 14 * 14 * 100)
    assert height * width <= 14 * 14 * 100 and height % 14 == 0 and width % 14 == 0
    assert fit_pixel_budget((14, 28), 14, 3136, 1605632)[0] * fit_pixel_budget((14, 28), 14, 3136, 1605632)[1] >= 3136


def test_position_grid_with_and_without_axis_swap():
    grid_sizes = torch.tensor([[2, 4]])
    boxes = torch.tensor([[10, 20, 50, 100]])  # top, left, bottom, right
    image_sizes = torch.tensor([[101, 201]])  # H, W -> normalisers 100 and 200
    fixed = position_grids(grid_sizes, boxes, image_sizes, axis_swap=False).reshape(2, 4, 2)
    swapped = position_grids(grid_sizes, boxes, image_sizes, axis_swap=True).reshape(2, 4, 2)
    # cell (row 1, col 3): u = 3/4, v = 1/2
    assert fixed[1, 3].tolist() == pytest.approx([(0.75 * 80 + 20) / 200, (0.5 * 40 + 10) / 100])
    assert swapped[1, 3].tolist() == pytest.approx([(0.75 * 40 + 10) / 200, (0.5 * 80 + 20) / 100])
    # channel 0 varies along columns only, channel 1 along rows only, in both modes
    for grid in (fixed, swapped):
        assert torch.allclose(grid[0, :, 0], grid[1, :, 0]) and torch.allclose(grid[:, 0, 1], grid[:, 3, 1])
    assert fixed[0, 0].tolist() == pytest.approx([20 / 200, 10 / 100])


def test_position_grids_concatenate_crops_in_order():
    grid_sizes = torch.tensor([[2, 3], [1, 2]])
    boxes = torch.tensor([[0, 0, 28, 42], [5, 6, 19, 34]])
    image_sizes = torch.tensor([[50, 60], [40, 30]])
    both = position_grids(grid_sizes, boxes, image_sizes, axis_swap=False)
    first = position_grids(grid_sizes[:1], boxes[:1], image_sizes[:1], axis_swap=False)
    second = position_grids(grid_sizes[1:], boxes[1:], image_sizes[1:], axis_swap=False)
    assert torch.equal(both, torch.cat([first, second]))
