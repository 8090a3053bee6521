# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Converted released checkpoints prepare regions exactly as the released code does; each deviation is a setting.

References are direct library calls (`cv2.resize`, `F.interpolate`, PIL) on hand-made crops and masks, or the released
preprocessing transcribed in `pixelrefer_plugin.testing.released_preprocessing`; none of them calls the plugin's region
code.
"""

import copy
import re

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pixelrefer_plugin import PixelReferProcessor
from pixelrefer_plugin.conversion import convert_released_checkpoint
from pixelrefer_plugin.presets import build_model_and_processor
from pixelrefer_plugin.region_geometry import resize_crop
from pixelrefer_plugin.region_settings import RegionSettings
from pixelrefer_plugin.testing.released_layout import write_released_checkpoint
from pixelrefer_plugin.testing.released_preprocessing import full_regions, lite_regions
from pixelrefer_plugin.testing.saot_reference import kmeans_loop

BUDGET = 1605632  # 8192 tokens of 14 x 14 pixels: the released crop pixel budget


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """`{variant: (model, processor)}` loaded from a released-layout tiny checkpoint converted by the plugin."""
    out = {}
    for variant, preset in (("full", "pixelrefer-tiny"), ("lite", "pixelrefer-lite-tiny")):
        model, processor = build_model_and_processor(preset, seed=0)
        root = tmp_path_factory.mktemp(variant)
        source = write_released_checkpoint(model, processor.tokenizer, root / "released")
        folder = convert_released_checkpoint(source, root / "converted")
        model = type(model).from_pretrained(folder).eval()
        out[variant] = model, PixelReferProcessor.from_pretrained(folder)
    return out


def token_counts(processor, input_ids: torch.Tensor) -> list[int]:
    """`<REGION>` tokens of each `[...]` region span of one prompt, in order."""
    text = processor.tokenizer.decode(input_ids)
    return [len(span) // len(processor.region_token) for span in re.findall(r"\[((?:<REGION>)*)\]", text)]


def patches(processor, images: list[np.ndarray]) -> torch.Tensor:
    """Normalised patches of uint8 images encoded at their own size."""
    return processor.image_processor(
        images=images, do_resize=False, merge_size=1, input_data_format="channels_last", return_tensors="pt"
    )["pixel_values"]


def random_image(rng, size=(160, 200)) -> np.ndarray:
    return rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)


def random_mask(rng, size=(160, 200)) -> np.ndarray:
    """One of: a few pixels, a thin line, a blob, a large ellipse (sizes from under 12 px to most of the image)."""
    height, width = size
    mask = np.zeros(size, dtype=bool)
    kind = rng.integers(4)
    row, col = int(rng.integers(height)), int(rng.integers(width))
    if kind == 0:
        mask[row : row + int(rng.integers(1, 4)), col : col + int(rng.integers(1, 4))] = True
    elif kind == 1:
        mask[row, max(0, col - int(rng.integers(5, 60))) : col + 1] = True
    else:
        radius = int(rng.integers(3, 15)) if kind == 2 else int(rng.integers(20, 80))
        rows, cols = np.ogrid[:height, :width]
        mask[((rows - row) / radius) ** 2 + ((cols - col) / (radius * rng.uniform(0.5, 2))) ** 2 <= 1] = True
        mask[row, col] = True
    return mask


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_converted_checkpoint_matches_the_released_preprocessing_on_200_masks(converted, variant):
    """Crop pixels, grid masks and token counts of 200 random masks in prompts of 1, 2, 4 and 8 regions.

    Exact with `region_keep_best_cell` off; with it on (the default) only regions whose released grid is empty differ,
    by the one cell they keep.
    """
    _, processor = converted[variant]
    assert processor.region_settings == RegionSettings.for_variant(variant, region_max_pixels=BUDGET)
    exact = copy.deepcopy(processor)
    exact.region_keep_best_cell = False
    reference_regions = lite_regions if variant == "lite" else full_regions
    rng = np.random.default_rng(7)
    same_tokens = same_crops = same_grids = empty = total = 0
    while total < 200:
        count = min(int(rng.choice([1, 2, 4, 8])), 200 - total)
        image = random_image(rng)
        masks = [random_mask(rng) for _ in range(count)]
        reference = reference_regions(image, masks, 3136, BUDGET)
        prompt = ("" if variant == "lite" else "<image>") + " ".join(["<region>"] * count)
        regions = [{"mask": m} for m in masks]
        inputs = exact(text=prompt, images=image, regions=regions)
        crops = inputs["region_pixel_values"].split(inputs["region_grid_thw"].prod(dim=1).tolist())
        mask_sizes = inputs.get("region_mask_sizes", inputs["region_grid_thw"][:, 1:])
        grids = inputs["region_grid_mask"].split(mask_sizes.prod(dim=1).tolist())
        counts = token_counts(exact, inputs["input_ids"][0])
        default_counts = token_counts(processor, processor(text=prompt, images=image, regions=regions)["input_ids"][0])
        for index, region in enumerate(reference):
            same_tokens += counts[index] == region.num_tokens
            same_crops += torch.equal(crops[index], patches(processor, [region.crop]))
            same_grids += tuple(mask_sizes[index].tolist()) == tuple(region.grid.shape) and torch.equal(
                grids[index], (region.grid > 0).flatten()
            )
            released_empty = not bool((region.grid > 0).any())
            empty += released_empty
            kept = 1 if released_empty and variant == "full" else region.num_tokens
            assert default_counts[index] == kept
            total += 1
        if variant == "lite":
            first = reference[0]
            assert torch.equal(inputs["frame_pixel_values"], patches(processor, [first.global_image]))
            local = patches(processor, [first.local])
            assert torch.equal(inputs["region_local_pixel_values"], local.repeat(count, 1))
    assert (same_tokens, same_crops, same_grids) == (200, 200, 200)
    assert empty < 10  # thin lines only; a test that no longer makes any would not notice the keep-best-cell rule


def test_full_crops_are_resized_with_opencv_bilinear(converted):
    """A 20 x 20 square at (40, 60) of a 120 x 160 image: crop rows 12..87, cols 32..107, scale 4 -> 308 x 308."""
    _, processor = converted["full"]
    image = random_image(np.random.default_rng(0), (120, 160))
    mask = np.zeros((120, 160), dtype=bool)
    mask[40:60, 60:80] = True
    inputs = processor(text="<image><region>", images=image, regions=[{"mask": mask}])
    expected = cv2.resize(image[12:87, 32:107], (308, 308))  # the released call: default INTER_LINEAR
    assert inputs["region_grid_thw"].tolist() == [[1, 22, 22]]
    assert torch.equal(inputs["region_pixel_values"], patches(processor, [expected]))
    torch_resized = (
        F.interpolate(
            torch.from_numpy(image[12:87, 32:107]).permute(2, 0, 1)[None].float(), size=(308, 308), mode="bilinear"
        )[0]
        .round()
        .clamp(0, 255)
        .byte()
        .permute(1, 2, 0)
        .numpy()
    )
    assert not np.array_equal(torch_resized, expected)  # the two libraries round differently: the test can tell


@pytest.mark.parametrize(
    "size, interpolation",
    [((126, 168), cv2.INTER_AREA), ((140, 168), cv2.INTER_LINEAR), ((154, 168), cv2.INTER_LINEAR)],
    ids=["both-shrink", "one-side-equal", "one-side-grows"],
)
def test_lite_crops_shrink_with_pixel_area_only_when_both_sides_shrink(size, interpolation):
    crop = random_image(np.random.default_rng(1), (140, 181))
    expected = cv2.resize(crop, size[::-1], interpolation=interpolation)
    assert np.array_equal(resize_crop(crop, size, "lite"), expected)
    assert np.array_equal(resize_crop(crop, size, "full"), cv2.resize(crop, size[::-1]))


def test_lite_context_images_are_pixel_area_resized_even_when_enlarging(converted):
    _, processor = converted["lite"]
    image = random_image(np.random.default_rng(2), (100, 120))
    mask = np.zeros((100, 120), dtype=bool)
    mask[30:50, 40:70] = True
    inputs = processor(text="<region>", images=image, regions=[{"mask": mask}])
    global_image = cv2.resize(image, (336, 336), interpolation=cv2.INTER_AREA)
    local_image = cv2.resize(image[2:78, 12:98], (224, 224), interpolation=cv2.INTER_AREA)  # box padded by 28 px
    assert torch.equal(inputs["frame_pixel_values"], patches(processor, [global_image]))
    assert torch.equal(inputs["region_local_pixel_values"], patches(processor, [local_image]))


def test_a_tiny_object_beyond_the_budget_keeps_its_grid_and_the_model_stretches_the_features(converted):
    """One pixel: scale ceil(sqrt(196 * 32)) = 80, crop 56 x 56 -> 4480 x 4480 (20 M pixels > 1,605,632), so the
    encoder sees it at 1260 x 1260 (90 x 90 features) while the grid mask stays at 320 x 320."""
    model, processor = converted["full"]
    image = random_image(np.random.default_rng(3), (200, 150))
    mask = np.zeros((200, 150), dtype=bool)
    mask[60, 80] = True
    inputs = processor(text="<image><region>", images=image, regions=[{"mask": mask}])

    crop_mask = torch.zeros(56, 56, dtype=torch.uint8)  # rows 32..87, cols 52..107 of the image
    crop_mask[28, 28] = 1
    grid = F.interpolate(crop_mask[None, None], size=(320, 320), mode="bilinear", align_corners=False)[0, 0] > 0
    pixels = Image.fromarray(cv2.resize(image[32:88, 52:108], (4480, 4480))).resize(
        (1260, 1260), resample=Image.Resampling.BICUBIC, reducing_gap=None
    )
    assert inputs["region_grid_thw"].tolist() == [[1, 90, 90]]
    assert inputs["region_mask_sizes"].tolist() == [[320, 320]]
    assert torch.equal(inputs["region_grid_mask"], grid.flatten())
    assert torch.equal(inputs["region_pixel_values"], patches(processor, [np.asarray(pixels)]))
    assert token_counts(processor, inputs["input_ids"][0]) == [min(32, int(grid.sum()))]

    # the released MaskPooling: position-encode the 90 x 90 features, stretch them to the 320 x 320 grid, select
    tokenizer = model.model.object_tokenizer
    features = torch.randn(90 * 90, model.config.vision_config.hidden_size)
    boxes, image_sizes = torch.tensor([[32, 52, 88, 108]]), torch.tensor([[200, 150]])
    pooled, counts = tokenizer.pool(
        features, torch.tensor([[90, 90]]), grid.flatten(), boxes, image_sizes, torch.tensor([[320, 320]])
    )
    rows, cols = torch.meshgrid(torch.arange(90), torch.arange(90), indexing="ij")
    u, v = cols / 90, rows / 90
    positions = torch.stack([(u * 56 + 32) / 149, (v * 56 + 52) / 199], dim=-1)  # axis-swapped, as released
    encoded = features.view(90, 90, -1) + tokenizer.pos_linear(positions)
    stretched = F.interpolate(encoded.permute(2, 0, 1)[None], size=(320, 320), mode="bilinear", align_corners=False)
    selected = stretched[0][:, grid].t()
    assert len(selected) == 36 and counts.tolist() == [32]
    expected = kmeans_loop(selected, 32, tokenizer.kmeans_iters, tokenizer.kmeans_tol)
    torch.testing.assert_close(pooled, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("count", [4, 8])
def test_the_crop_budget_is_shared_by_the_regions_of_a_prompt(converted, count):
    """6 x 6 objects: scale 14, crops of 61 x 61 -> 854 x 854 = 729,316 pixels, inside the whole budget of 1,605,632 but beyond
    `1,605,632 // count`, so with `count` regions in the prompt every crop is refitted."""
    _, processor = converted["full"]
    rng = np.random.default_rng(count)
    image = random_image(rng, (400, 400))
    masks = []
    for index in range(count):
        mask = np.zeros((400, 400), dtype=bool)
        row, col = 40 + 80 * (index // 4), 40 + 80 * (index % 4)
        mask[row : row + 6, col : col + 6] = True
        masks.append(mask)
    prompt = "<image>" + "<region>" * count
    inputs = processor(text=prompt, images=image, regions=[{"mask": m} for m in masks])
    reference = full_regions(image, masks, 3136, BUDGET)
    crops = inputs["region_pixel_values"].split(inputs["region_grid_thw"].prod(dim=1).tolist())
    for index, region in enumerate(reference):
        assert inputs["region_grid_thw"][index, 1:].tolist() == [s // 14 for s in region.crop.shape[:2]]
        assert torch.equal(crops[index], patches(processor, [region.crop]))
    assert all(int(thw[1] * thw[2]) * 196 <= BUDGET // count for thw in inputs["region_grid_thw"])
    assert inputs["region_mask_sizes"].tolist() == [[61, 61]] * count

    whole = copy.deepcopy(processor)
    whole.region_budget_shared = False
    alone = whole(text=prompt, images=image, regions=[{"mask": m} for m in masks])
    assert alone["region_grid_thw"].tolist() == [[1, 61, 61]] * count and "region_mask_sizes" not in alone

    # batched == one by one: a sample's budget depends on its own regions only
    single = processor(text="<image><region>", images=image, regions=[{"mask": masks[0]}])
    regions = [[{"mask": m} for m in masks], [{"mask": masks[0]}]]
    batch = processor(text=[prompt, "<image><region>"], images=[image, image], regions=regions)
    assert batch["region_grid_thw"].tolist() == inputs["region_grid_thw"].tolist() + single["region_grid_thw"].tolist()


def test_lite_context_budget_shrinks_the_global_frame_past_14_regions(converted):
    """15 regions: 1,605,632 // 15 = 107,042 < 336² pixels, so the frame is encoded at 322 x 322 (23 x 23)."""
    model, processor = converted["lite"]
    image = random_image(np.random.default_rng(4), (150, 150))
    boxes = [{"box": [5 * i, 5 * i, 5 * i + 40, 5 * i + 40]} for i in range(15)]
    many = processor(text="<region>" * 15, images=image, regions=boxes)
    one = processor(text="<region>", images=image, regions=boxes[:1])
    assert many["frame_grid_thw"].tolist() == [[1, 23, 23]]
    assert one["frame_grid_thw"].tolist() == [[1, 24, 24]]

    # a batch mixing both context sizes runs, and each sample gets its one-by-one object tokens
    batch = processor(text=["<region>" * 15, "<region>"], images=[image, image], regions=[boxes, boxes[:1]])
    with torch.no_grad():
        tokens_batch = capture_object_tokens(model, batch)
        tokens_many, tokens_one = capture_object_tokens(model, many), capture_object_tokens(model, one)
    torch.testing.assert_close(tokens_batch, torch.cat([tokens_many, tokens_one]), rtol=1e-4, atol=1e-5)


def capture_object_tokens(model, inputs) -> torch.Tensor:
    captured = []
    handle = model.model.object_infusion.register_forward_hook(lambda module, args, output: captured.append(output))
    try:
        model(**inputs)
    finally:
        handle.remove()
    return captured[0]


def test_lite_regions_on_one_frame_share_the_first_regions_local_context(converted):
    _, processor = converted["lite"]
    image = random_image(np.random.default_rng(5), (120, 160))
    first, second = np.zeros((120, 160), dtype=bool), np.zeros((120, 160), dtype=bool)
    first[10:30, 10:40] = True
    second[70:110, 100:150] = True
    inputs = processor(text="<region><region>", images=image, regions=[{"mask": first}, {"mask": second}])
    first_local = cv2.resize(image[0:58, 0:68], (224, 224), interpolation=cv2.INTER_AREA)
    assert torch.equal(inputs["region_local_pixel_values"], patches(processor, [first_local, first_local]))

    own = copy.deepcopy(processor)
    own.lite_local_context = "region"
    inputs = own(text="<region><region>", images=image, regions=[{"mask": first}, {"mask": second}])
    second_local = cv2.resize(image[42:120, 72:160], (224, 224), interpolation=cv2.INTER_AREA)
    assert torch.equal(inputs["region_local_pixel_values"], patches(processor, [first_local, second_local]))


@pytest.mark.parametrize("keep_best_cell, expected", [(True, 1), (False, 0)])
def test_a_region_whose_grid_keeps_no_cell(converted, keep_best_cell, expected):
    """Single pixels every 7 pixels over 300 x 300: shrunk to a 49 x 49 grid, the released uint8 rounding keeps none."""
    model, processor = converted["full"]
    processor = copy.deepcopy(processor)
    processor.region_keep_best_cell = keep_best_cell
    image = random_image(np.random.default_rng(6), (600, 600))
    mask = np.zeros((600, 600), dtype=bool)
    mask[20:320:7, 20:320:7] = True
    crop = torch.from_numpy(mask[0:343, 0:343].astype(np.uint8))  # the tight box 20..314 padded by 28 pixels
    released = F.interpolate(crop[None, None], size=(49, 49), mode="bilinear", align_corners=False)
    assert not bool((released > 0).any())
    inputs = processor(text="<image>Where is <region>?", images=image, regions=[{"mask": mask}])
    assert token_counts(processor, inputs["input_ids"][0]) == [expected]
    with torch.no_grad():
        output = model(**inputs)
    assert output.logits.isfinite().all()
