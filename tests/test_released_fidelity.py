# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Converted released checkpoints prepare regions exactly as the released code does; each deviation is a setting.

References are direct library calls (`cv2.resize`, `F.interpolate`, PIL) on hand-made crops and masks, the released
preprocessing transcribed in `pixelrefer_plugin.testing.released_preprocessing`, or the released region encoders
transcribed in `pixelrefer_plugin.testing.released_region_encoder` (loaded with the released checkpoint's weights);
none of them calls the plugin's region code.
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
from pixelrefer_plugin.testing.released_region_encoder import (
    full_mask_pooling,
    generate_position_tensor,
    load_region_encoder,
)

BUDGET = 1605632  # 8192 tokens of 14 x 14 pixels: the released crop pixel budget


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """`{variant: (model, processor, released region encoder)}`: a released-layout tiny checkpoint converted by the
    plugin and loaded, and the released region encoder (transcribed) with that checkpoint's weights. The region
    encoder's biases are drawn at random first, so that none of them is zero."""
    out = {}
    for variant, preset in (("full", "pixelrefer-tiny"), ("lite", "pixelrefer-lite-tiny")):
        model, processor = build_model_and_processor(preset, seed=0)
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for name, parameter in model.model.named_parameters():
                if name.startswith(("object_tokenizer.", "object_infusion.")) and name.endswith("bias"):
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
        root = tmp_path_factory.mktemp(variant)
        source = write_released_checkpoint(model, processor.tokenizer, root / "released")
        folder = convert_released_checkpoint(source, root / "converted")
        model = type(model).from_pretrained(folder).eval()
        encoder = load_region_encoder(torch.load(source / "pytorch_model.bin", weights_only=True), variant)
        out[variant] = model, PixelReferProcessor.from_pretrained(folder), encoder
    return out


@pytest.fixture(scope="module")
def converted(released):
    """`{variant: (model, processor)}` of the converted released-layout checkpoints."""
    return {variant: (model, processor) for variant, (model, processor, _) in released.items()}


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


@pytest.mark.parametrize(
    "image_size, pixel, crop, features, grid",
    [
        # rows 32..87, cols 52..107: 56 x 56 -> 4480 x 4480 (20 M pixels) -> encoded at 1260 x 1260
        ((200, 150), (60, 80), (32, 88, 52, 108), (90, 90), (320, 320)),
        # rows 0..31 (clipped at the top), cols 472..527: 32 x 56 -> 2562 x 4480 (ceil(2560 / 14) = 183 cells) ->
        # smart_resize to 952 x 1666 (68 x 119 features)
        ((200, 1000), (4, 500), (0, 32, 472, 528), (68, 119), (183, 320)),
    ],
    ids=["square", "clipped"],
)
def test_a_tiny_object_beyond_the_budget_keeps_its_grid_and_the_model_stretches_the_features(
    released, image_size, pixel, crop, features, grid
):
    """One pixel: scale ceil(sqrt(196 * 32)) = 80, so the crop exceeds the pixel budget of 1,605,632. The released
    code grids the mask at the OpenCV crop's size and `MaskPooling` stretches the (refitted) crop's features to it."""
    model, processor, encoder = released["full"]
    image = random_image(np.random.default_rng(3), image_size)
    mask = np.zeros(image_size, dtype=bool)
    mask[pixel] = True
    inputs = processor(text="<image><region>", images=image, regions=[{"mask": mask}])

    top, bottom, left, right = crop
    crop_mask = torch.zeros(bottom - top, right - left, dtype=torch.uint8)
    crop_mask[pixel[0] - top, pixel[1] - left] = 1
    expected_grid = F.interpolate(crop_mask[None, None], size=grid, mode="bilinear", align_corners=False)[0, 0] > 0
    resized = cv2.resize(image[top:bottom, left:right], (grid[1] * 14, grid[0] * 14))
    pixels = Image.fromarray(resized).resize(
        (features[1] * 14, features[0] * 14), resample=Image.Resampling.BICUBIC, reducing_gap=None
    )
    (reference,) = full_regions(image, [mask], 3136, BUDGET)
    assert tuple(reference.grid.shape) == grid and reference.crop.shape[:2] == (features[0] * 14, features[1] * 14)
    assert inputs["region_grid_thw"].tolist() == [[1, *features]]
    assert inputs["region_mask_sizes"].tolist() == [list(grid)]
    assert inputs["region_grid_mask"].shape == (grid[0] * grid[1],)
    assert torch.equal(inputs["region_grid_mask"], expected_grid.flatten())
    assert torch.equal(inputs["region_pixel_values"], patches(processor, [np.asarray(pixels)]))
    assert token_counts(processor, inputs["input_ids"][0]) == [min(32, int(expected_grid.sum()))]

    # the released MaskExtractor / MaskPooling: position-encode the feature grid, cast to float32, stretch to the grid
    # mask, select; k-means from the same start on both sides
    tokenizer = model.model.object_tokenizer
    crop_features = torch.randn(features[0] * features[1], model.config.vision_config.hidden_size)
    with torch.no_grad():
        pooled, counts = tokenizer.pool(
            crop_features,
            torch.tensor([features]),
            expected_grid.flatten(),
            inputs["region_boxes"],
            inputs["region_image_sizes"],
            inputs["region_mask_sizes"],
        )
        feat = crop_features.view(1, *features, -1)
        pos = encoder.pos_linear(released_positions(features, reference.box_param).to(feat))
        expected = full_mask_pooling(
            (feat + pos).permute(0, 3, 1, 2).float(), expected_grid[None, None].float(), 32, strided_start
        )
    assert int(expected_grid.sum()) == 36 and counts.tolist() == [32]
    torch.testing.assert_close(pooled, expected, rtol=0, atol=1e-5)


def strided_start(count: int, num_clusters: int) -> torch.Tensor:
    """The plugin's deterministic k-means start (cluster j at point floor(j * n / K)), given to the released k-means
    in place of its `torch.randperm` so that both sides start alike."""
    return torch.arange(num_clusters) * count // num_clusters


def released_positions(grid: tuple[int, int], box_param) -> torch.Tensor:
    """`(1, h, w, 2)` released position tensor of a crop grid (`generate_position_tensor`)."""
    return generate_position_tensor(*grid, *box_param).unsqueeze(0)


def region_encoder_call(model, inputs, monkeypatch) -> tuple[tuple, dict, tuple[torch.Tensor, torch.Tensor]]:
    """Arguments and result of the model's `object_tokens` call in a forward pass on `inputs`."""
    calls = []
    object_tokens = model.model.object_tokens

    def record(*args, **kwargs):
        calls.append((args, kwargs, object_tokens(*args, **kwargs)))
        return calls[-1][2]

    monkeypatch.setattr(model.model, "object_tokens", record)
    with torch.no_grad():
        model(**inputs)
    monkeypatch.undo()
    (call,) = calls
    return call


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_object_tokens_of_crops_beyond_the_budget_equal_the_released_region_encoder(released, variant, monkeypatch):
    """Object tokens of random masks in prompts of 1, 2, 4 and 8 regions (most crops beyond the pixel budget, shared
    by the regions of a prompt) against the released region encoder, transcribed and loaded with the released
    checkpoint's weights, on the same encoder features and with the same k-means start.

    Stretched features hold points equally far from two k-means centroids, whose ties only the float rounding of the
    released formula breaks; the plugin decides them with that formula, so the tokens agree to float precision."""
    model, processor, encoder = released[variant]
    regions_of = lite_regions if variant == "lite" else full_regions
    rng = np.random.default_rng(14)
    beyond = beyond_with_kmeans = 0
    for count in [1, 2, 4, 8, 1, 2, 4, 8]:
        image = random_image(rng)
        masks = [random_mask(rng) for _ in range(count)]
        reference = regions_of(image, masks, 3136, BUDGET)
        if not all(bool((region.grid > 0).any()) for region in reference):
            continue  # a region the released code gives no token (the keep-best-cell setting differs there)
        prompt = ("" if variant == "lite" else "<image>") + "<region>" * count
        inputs = processor(text=prompt, images=image, regions=[{"mask": m} for m in masks])
        args, kwargs, (tokens, _) = region_encoder_call(model, inputs, monkeypatch)
        crop_features, grid_thw = args[0], args[1].tolist()
        pieces = crop_features.split([h * w for _, h, w in grid_thw])
        feats = [piece.view(h, w, -1) for piece, (_, h, w) in zip(pieces, grid_thw, strict=True)]
        grids = [region.grid for region in reference]
        boxes = [region.box_param for region in reference]
        with torch.no_grad():
            if variant == "full":
                expected = encoder(feats, grids, boxes, 32, kmeans_start=strided_start)
            else:
                local = kwargs["local_features"].split(kwargs["local_grid_thw"].prod(1).tolist())
                frames = kwargs["frame_features"].split(kwargs["frame_grid_thw"].prod(1).tolist())
                frames = [frames[index] for index in kwargs["region_frame_index"].tolist()]
                expected = encoder(
                    feats, grids, boxes, 32, kmeans_start=strided_start, feats_raw=frames, local_feats_raw=local
                )
        assert tokens.shape == expected.shape
        torch.testing.assert_close(tokens, expected, rtol=0, atol=1e-5)
        for region, (_, height, width) in zip(reference, grid_thw, strict=True):
            if tuple(region.grid.shape) != (height, width):
                beyond += 1
                beyond_with_kmeans += int((region.grid > 0).sum()) > 32
    assert beyond >= 12 and beyond_with_kmeans >= 6  # the case this test is about is there


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
