# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Every region kind becomes the right mask; every bad region raises a clear, located error."""

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from pixelrefer_plugin import ImageInputError, PixelReferInputError, RegionInputError
from pixelrefer_plugin.image_loading import load_image
from pixelrefer_plugin.region_masks import region_to_mask

SIZE = (60, 80)  # H, W


def blob():
    mask = np.zeros(SIZE, dtype=bool)
    mask[10:30, 20:50] = True
    mask[25:40, 40:45] = True
    return mask


def to_mask(region, size=SIZE):
    return region_to_mask(region, size, sample_index=0, region_index=0)


def test_mask_kinds_bool_uint8_float_tensor_pil():
    expected = blob()
    for value in (
        expected,
        expected.astype(np.uint8),
        expected.astype(np.uint8) * 255,
        expected.astype(np.float32),
        torch.from_numpy(expected),
        Image.fromarray(expected.astype(np.uint8) * 255),
    ):
        np.testing.assert_array_equal(to_mask({"mask": value}), expected)


def test_rle_compressed_and_uncompressed():
    expected = blob()
    compressed = mask_utils.encode(np.asfortranarray(expected.astype(np.uint8)))
    np.testing.assert_array_equal(to_mask({"rle": compressed}), expected)
    np.testing.assert_array_equal(to_mask({"rle": {**compressed, "counts": compressed["counts"].decode()}}), expected)
    # uncompressed COCO RLE: column-major run lengths, starting with zeros
    flat = expected.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])))
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    np.testing.assert_array_equal(to_mask({"rle": {"size": list(SIZE), "counts": counts}}), expected)


def test_compressed_counts_decoder_agrees_with_pycocotools():
    from pixelrefer_plugin.region_masks import compressed_rle_counts

    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = rng.random((37, 53)) < rng.random()
        encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        runs = compressed_rle_counts(encoded["counts"])
        assert sum(runs) == mask.size
        flat = mask.flatten(order="F")
        assert sum(runs[1::2]) == int(flat.sum())


def test_polygon_flat_and_nested():
    square = [20, 10, 50, 10, 50, 30, 20, 30]  # x, y pairs
    nested = to_mask({"polygon": [square]})
    flat = to_mask({"polygon": square})
    np.testing.assert_array_equal(nested, flat)
    assert nested[15:25, 25:45].all() and not nested[40:, :].any()


def test_box_xyxy_and_xywh():
    xyxy = to_mask({"box": [20, 10, 50, 30]})
    xywh = to_mask({"box": [20, 10, 30, 20], "box_format": "xywh"})
    expected = np.zeros(SIZE, dtype=bool)
    expected[10:30, 20:50] = True
    np.testing.assert_array_equal(xyxy, expected)
    np.testing.assert_array_equal(xywh, expected)
    fractional = to_mask({"box": [20.5, 10.2, 49.5, 29.9]})
    np.testing.assert_array_equal(fractional, expected)  # every pixel the box touches


def test_point_is_a_square_of_point_size_clipped_to_the_image():
    mask = region_to_mask({"point": [40, 30]}, SIZE, 0, 0, point_size=10)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (25, 34, 35, 44)
    corner = region_to_mask({"point": [0, 0]}, SIZE, 0, 0, point_size=10)
    assert corner.sum() == 25 and corner[0, 0]


BAD_REGIONS = [
    ({"mask": np.zeros(SIZE, dtype=bool)}, "no pixel"),
    ({"mask": np.ones((SIZE[0], SIZE[1] + 1), dtype=bool)}, "shape"),
    ({"mask": "not an array"}, "numpy array"),
    ({"box": [10, 10, 10, 20]}, "x1 > x0"),
    ({"box": [30, 10, 20, 20]}, "x1 > x0"),
    ({"box": [10, 10, 90, 20]}, "outside"),
    ({"box": [-1, 10, 20, 20]}, "outside"),
    ({"box": [1, 2, 3]}, "4 numbers"),
    ({"box": [1, 2, 3, float("nan")]}, "finite"),
    ({"box": [1, 2, 30, 20], "box_format": "cxcywh"}, "box_format"),
    ({"point": [80, 10]}, "outside"),
    ({"point": [10, -0.5]}, "outside"),
    ({"rle": {"counts": "abc"}}, "COCO RLE"),
    ({"rle": {"size": [10, 10], "counts": "PPYo1"}}, "rle size"),
    ({"rle": {"size": list(SIZE), "counts": [5, 3]}}, "malformed rle"),
    ({"rle": {"size": list(SIZE), "counts": 12}}, "malformed rle"),
    ({"rle": {"size": list(SIZE), "counts": "zzzzzzzzzz"}}, "malformed rle"),  # pycocotools would decode garbage
    ({"rle": {"size": list(SIZE), "counts": ""}}, "malformed rle"),
    ({"rle": {"size": list(SIZE), "counts": "!!!"}}, "malformed rle"),
    ({"polygon": [[1, 2, 3, 4]]}, "at least 6"),
    ({"polygon": [[1, 2, 3, 4, 5, 6, 7]]}, "even count"),
    ({"polygon": []}, "non-empty"),
    ({"polygon": [["a", 2, 3, 4, 5, 6]]}, "only numbers"),
    ({}, "none of them"),
    ({"box": [1, 2, 30, 20], "mask": blob()}, "2 of them"),
    ({"bbox": [1, 2, 30, 20]}, "unknown key"),
    ([1, 2, 3, 4], "expected a dict"),
]


@pytest.mark.parametrize("region, reason", BAD_REGIONS)
def test_bad_region_raises_located_error(region, reason):
    with pytest.raises(RegionInputError, match=reason) as error:
        region_to_mask(region, SIZE, sample_index=2, region_index=5)
    assert isinstance(error.value, ValueError)
    assert str(error.value).startswith("regions[sample 2][region 5]: ")
    assert (error.value.sample_index, error.value.item_index) == (2, 5)


def test_load_image_kinds(tmp_path):
    array = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    path = tmp_path / "image.png"
    Image.fromarray(array).save(path)
    for value in (
        array,
        Image.fromarray(array),
        str(path),
        path,
        torch.from_numpy(array),
        torch.from_numpy(array).permute(2, 0, 1),
    ):
        np.testing.assert_array_equal(load_image(value), array)
    assert load_image(array[..., 0]).shape == (20, 30, 3)


def test_unreadable_image_raises_located_error(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    for value, reason in (
        (broken, "cannot read"),
        (tmp_path / "missing.png", "cannot read"),
        (42, "expected a PIL"),
        (np.zeros((4, 5, 7), dtype=np.uint8), "shape"),
    ):
        with pytest.raises(ImageInputError, match=reason) as error:
            load_image(value, sample_index=1, image_index=0)
        assert str(error.value).startswith("images[sample 1][image 0]: ")
        assert isinstance(error.value, PixelReferInputError)


def test_16_bit_images_are_scaled_to_8_bits_not_clipped(tmp_path):
    """uint16 arrays and 16-bit PNGs map 0..65535 onto 0..255 (v / 257, rounded): mid-grey stays mid-grey."""
    levels = np.array([0, 257, 32768, 40000, 65535], dtype=np.uint16)
    grey = np.tile(levels, (4, 1))  # (4, 5)
    expected = np.array([0, 1, 128, 156, 255], dtype=np.uint8)  # round(v / 257), worked out by hand
    path = tmp_path / "grey16.png"
    Image.fromarray(grey).save(path)
    assert Image.open(path).mode.startswith("I;16")  # the file really is 16-bit
    for value in (grey, np.repeat(grey[..., None], 3, axis=-1), path, Image.open(path)):
        image = load_image(value)
        assert image.dtype == np.uint8 and image.shape == (4, 5, 3)
        np.testing.assert_array_equal(image[0, :, 0], expected)
        np.testing.assert_array_equal(image[..., 0], image[..., 2])


def test_float_and_integer_images_are_refused_rather_than_clipped():
    for value, reason in (
        (np.full((4, 5, 3), np.nan), "NaN or infinite"),
        (np.full((4, 5, 3), np.inf), "NaN or infinite"),
        (np.full((4, 5, 3), 256.0), r"span \[256, 256\]"),
        (np.full((4, 5, 3), -0.5), r"span \[-0.5, -0.5\]"),
        (np.full((4, 5, 3), 1000, dtype=np.int32), "integers in 0..255"),
        (np.ones((4, 5, 3), dtype=bool), "dtype bool"),
    ):
        with pytest.raises(ImageInputError, match=reason) as error:
            load_image(value, sample_index=0, image_index=2)
        assert error.value.argument == "images" and error.value.item_index == 2
    # in range: floats in [0, 1] are scaled, floats in [0, 255] and small integers kept
    np.testing.assert_array_equal(load_image(np.full((2, 2, 3), 0.5))[0, 0], [128, 128, 128])
    np.testing.assert_array_equal(load_image(np.full((2, 2, 3), 200.0))[0, 0], [200, 200, 200])
    np.testing.assert_array_equal(load_image(np.full((2, 2, 3), 7, dtype=np.int64))[0, 0], [7, 7, 7])


def test_nan_in_a_float_mask_is_refused():
    mask = blob().astype(np.float32)
    mask[0, 0] = np.nan
    with pytest.raises(RegionInputError, match=r"1 NaN or infinite value\(s\)") as error:
        to_mask({"mask": mask})
    assert error.value.expected.startswith("the mask holds 1 NaN")
