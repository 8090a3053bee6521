# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Training data with point / box annotations: a SAM 2 segmenter makes their masks once, cached on disk by the image
file's content and the prompt; without a segmenter such records are refused as before."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from pycocotools import mask as mask_utils
from tiny_sam2 import tiny_sam2_folder
from video_fixtures import moving_square, write_video

from pixelrefer_plugin.cli import main
from pixelrefer_plugin.errors import PixelReferInputError
from pixelrefer_plugin.presets import build_model_and_processor
from pixelrefer_plugin.segmentation import RegionSegmenter
from pixelrefer_plugin.training.data import (
    DataRecordError,
    DataValidationError,
    RegionConversationDataset,
    RegionDataCollator,
    record_problems,
    record_to_sample,
    validate_records,
)
from pixelrefer_plugin.training.recipe import RecipeError, load_recipe
from pixelrefer_plugin.training.trainer import build_dataset

SIZE = (96, 128)  # (H, W) of the images and video frames
PROMPTS = [
    {"point": [30, 40]},
    {"box": [60, 10, 120, 70]},
    {"points": [[20, 20], [25, 30]], "negative_points": [[100, 80]]},
]


@pytest.fixture(scope="module")
def sam_folder(tmp_path_factory):
    return tiny_sam2_folder(tmp_path_factory.mktemp("sam"))


@pytest.fixture(scope="module")
def segmenter(sam_folder):
    return RegionSegmenter.from_pretrained(sam_folder, device="cpu")


@pytest.fixture
def root(tmp_path):
    """A data root with two images, a video file and the same video as frame files."""
    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 255, (*SIZE, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    square = moving_square(3)
    write_video(folder / "clip.mp4", square.frames, fps=1)
    for index, frame in enumerate(square.frames):
        Image.fromarray(frame).save(folder / f"frame{index}.png")
    return folder


def conversation(num_regions: int) -> list[dict]:
    return [
        {"from": "human", "value": " and ".join(["<region>"] * num_regions) + "?"},
        {"from": "gpt", "value": "Shapes."},
    ]


def prompt_records() -> list[dict]:
    """Record 0: three prompts on one image; record 1: a polygon on image 0 and a box on image 1."""
    return [
        {"image": "a.png", "masks": copy.deepcopy(PROMPTS), "conversations": conversation(3)},
        {
            "image": ["a.png", "b.png"],
            "masks": [[[5, 5, 40, 5, 40, 40]], {"box": [10, 10, 50, 60], "image": 1}],
            "conversations": conversation(2),
        },
    ]


def decode(region: dict) -> np.ndarray:
    return mask_utils.decode(region["rle"]).astype(bool)


def cache_files(cache) -> dict[str, int]:
    return {str(path): path.stat().st_mtime_ns for path in cache.rglob("*.json")}


# ---------------------------------------------------------------- images, the cache


def test_point_and_box_annotations_become_the_segmenters_masks(root, tmp_path, sam_folder, segmenter):
    cache = tmp_path / "masks"
    records = [*prompt_records(), prompt_records()[0]]  # the same prompts twice: segmented once
    dataset = RegionConversationDataset(records, root, segmenter=sam_folder, mask_cache=cache)

    image_a, image_b = (np.array(Image.open(root / name).convert("RGB")) for name in ("a.png", "b.png"))
    expected = segmenter.to_masks(PROMPTS, images=[image_a])
    regions = dataset[0].regions
    assert [sorted(region) for region in regions] == [["rle", "score"]] * 3
    for region, reference in zip(regions, expected, strict=True):
        assert np.array_equal(decode(region), reference["mask"]) and decode(region).any()
        assert region["score"] == pytest.approx(reference["score"])
    polygon, box = dataset[1].regions
    assert polygon == {"polygon": [[5, 5, 40, 5, 40, 40]], "image": 0}  # masks pass through untouched
    (reference,) = segmenter.to_masks([{"box": [10, 10, 50, 60]}], images=[image_b])
    assert box["image"] == 1 and np.array_equal(decode(box), reference["mask"])
    assert dataset[2].regions == regions
    assert (dataset.mask_stats.made, dataset.mask_stats.cached) == (4, 0)
    assert len(cache_files(cache)) == 4  # one file per prompt, in the segmenter's own subfolder
    assert len({path.parent.parent for path in cache.rglob("*.json")}) == 1


def test_the_next_run_reads_the_masks_from_the_cache_keyed_by_file_content(root, tmp_path, sam_folder):
    cache = tmp_path / "masks"
    first = RegionConversationDataset(prompt_records(), root, segmenter=sam_folder, mask_cache=cache)
    written = cache_files(cache)

    again = RegionConversationDataset(prompt_records(), root, segmenter=str(sam_folder), mask_cache=cache)
    assert (again.mask_stats.made, again.mask_stats.cached) == (0, 4)
    assert cache_files(cache) == written  # nothing rewritten
    for old, new in zip(first.samples, again.samples, strict=True):
        assert [region.get("rle") for region in old.regions] == [region.get("rle") for region in new.regions]

    # the key is the file's content, not its name: new pixels at the same path are segmented again
    Image.fromarray(np.zeros((*SIZE, 3), np.uint8) + 90).save(root / "b.png")
    changed = RegionConversationDataset(prompt_records(), root, segmenter=sam_folder, mask_cache=cache)
    assert (changed.mask_stats.made, changed.mask_stats.cached) == (1, 3)
    # the same prompt written with floats is the same prompt
    records = prompt_records()
    records[0]["masks"][0] = {"point": [30.0, 40.0]}
    floats = RegionConversationDataset(records, root, segmenter=sam_folder, mask_cache=cache)
    assert floats.mask_stats.made == 0


def test_cache_writes_leave_no_partial_file(root, tmp_path, sam_folder):
    cache = tmp_path / "masks"
    validate_records(prompt_records(), root, segmenter=sam_folder, mask_cache=cache)
    files = list(cache.rglob("*"))
    assert not [path for path in files if path.suffix == ".partial"]
    for path in cache.rglob("*.json"):
        entry = json.loads(path.read_text())
        assert sorted(entry) == ["rle", "score"] and entry["rle"]["size"] == list(SIZE)


# ---------------------------------------------------------------- without a segmenter, bad prompts


def test_without_a_segmenter_point_and_box_annotations_are_refused(root):
    problems = record_problems(prompt_records()[0], 7, root)
    assert [(p.index, p.field) for p in problems] == [(7, "masks[0]"), (7, "masks[1]"), (7, "masks[2]")]
    assert problems[0].reason.startswith("a point / box annotation needs a segmenter to become a mask (data.segmenter")
    assert "expected a COCO RLE dict" in problems[0].reason
    with pytest.raises(DataValidationError, match=r"record 0, field masks\[0\]: a point / box annotation needs"):
        RegionConversationDataset(prompt_records(), root)


def test_bad_prompts_are_problems_naming_the_record_and_field(root, tmp_path, sam_folder):
    records = prompt_records()
    records[0]["masks"][0] = {"point": [500, 5]}
    records[0]["masks"][1] = {"box": [1, 1, 5, 5], "point": [2, 2]}
    records[1]["masks"][1] = {"box": [10, 10, 50, 60], "image": 2}
    records[1]["masks"][0] = {"point": [1, 1], "label": "cat"}
    problems = validate_records(records, root, segmenter=sam_folder, mask_cache=tmp_path / "masks")
    assert [(p.index, p.field) for p in problems] == [
        (0, "masks[0]"),
        (0, "masks[1]"),
        (1, "masks[0]"),
        (1, "masks[1]"),
    ]
    reasons = [p.reason for p in problems]
    assert reasons[0] == (
        "point [500.0, 5.0] lies outside the 128x96 (width x height) image; expected 0 <= x < 128 and 0 <= y < 96"
    )
    assert "expected exactly one of ('point', 'points', 'box')" in reasons[1] and "2 of them" in reasons[1]
    assert "unknown key(s) ['label']" in reasons[2]
    assert reasons[3] == "image index 2 is out of range; the record has 2 image(s)"
    assert not list((tmp_path / "masks").rglob("*.json"))  # nothing segmented for invalid records


def test_an_unreadable_file_of_an_unchecked_record_is_its_problem(root, tmp_path, segmenter):
    record = {**prompt_records()[0], "image": "missing.png"}
    with pytest.raises(DataRecordError, match=r"^record 4, field image: cannot read '.*missing.png' \(No such file"):
        record_to_sample(record, 4, root, check_files=False, segmenter=segmenter, mask_cache=tmp_path / "masks")


def test_an_empty_mask_is_a_problem_of_its_record_and_is_cached(root, tmp_path, sam_folder):
    blind = RegionSegmenter.from_pretrained(sam_folder, device="cpu")
    with torch.no_grad():  # a decoder whose mask logits are all 0: no pixel is > 0
        for mlp in blind.model.mask_decoder.output_hypernetworks_mlps:
            mlp.proj_out.weight.zero_()
            mlp.proj_out.bias.zero_()
    cache = tmp_path / "masks"
    records = [
        *prompt_records(),
        {"image": "a.png", "masks": [[[5, 5, 40, 5, 40, 40]]], "conversations": conversation(1)},
    ]
    dataset = RegionConversationDataset(records, root, skip_invalid=True, segmenter=blind, mask_cache=cache)
    assert dataset.record_indices == [2]
    fields = [(p.index, p.field) for p in dataset.skipped]
    assert fields == [(0, "masks[0]"), (0, "masks[1]"), (0, "masks[2]"), (1, "masks[1]")]
    assert dataset.skipped[0].reason.startswith("the segmenter found no object at the point [30, 40]")
    assert dataset.mask_stats.made == 0 and len(cache_files(cache)) == 4

    again = validate_records(records, root, segmenter=blind, mask_cache=cache)
    assert again == dataset.skipped


# ---------------------------------------------------------------- videos, the processor


def test_video_prompts_become_masks_on_their_frames_and_batch(root, tmp_path, sam_folder, segmenter):
    cache = tmp_path / "masks"
    full = {"video": "clip.mp4", "masks": [{"1": {"point": [60, 45]}}], "conversations": conversation(1)}
    sample = record_to_sample(full, 0, root, segmenter=segmenter, mask_cache=cache)
    (region,) = sample.regions
    assert region["frame"] == 1 and sorted(region) == ["frame", "rle", "score"]
    (reference,) = segmenter.to_masks([{"point": [60, 45], "frame": 1}], videos=[str(root / "clip.mp4")])
    assert np.array_equal(decode(region), reference["mask"])

    lite = {
        "video": ["frame0.png", "frame1.png", "frame2.png"],
        "timestamps": [0, 1, 2],
        "masks": [{"0": {"box": [10, 30, 70, 70]}, "2": [[5, 5, 40, 5, 40, 40]]}],
        "conversations": conversation(1),
    }
    lite_sample = record_to_sample(lite, 1, root, variant="lite", segmenter=segmenter, mask_cache=cache)
    (track,) = lite_sample.regions
    assert sorted(track["frames"]) == [0, 2] and track["frames"][2] == {"polygon": [[5, 5, 40, 5, 40, 40]]}
    frame0 = np.array(Image.open(root / "frame0.png").convert("RGB"))
    (reference,) = segmenter.to_masks([{"box": [10, 30, 70, 70]}], images=[frame0])
    assert np.array_equal(decode(track["frames"][0]), reference["mask"])

    _, processor = build_model_and_processor("pixelrefer-lite-tiny", seed=0)
    batch = RegionDataCollator(processor)([lite_sample, lite_sample])
    assert (batch["labels"] != -100).any() and len(batch["region_boxes"]) > 0


# ---------------------------------------------------------------- recipe and command line


def write_recipe(tmp_path, data: dict):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"model": "pixelrefer-tiny", "data": data, "training": {"output_dir": "out"}}))
    return path


def test_recipe_segmenter_key_is_validated_and_used_by_the_trainer(root, tmp_path, sam_folder):
    (root / "train.json").write_text(json.dumps(prompt_records()))
    data = {"train": "data/train.json", "root": "data", "segmenter": str(sam_folder), "mask_cache": "masks"}
    recipe = load_recipe(write_recipe(tmp_path, data))
    dataset = build_dataset(recipe, "full", recipe.output_dir, is_main_process=True)
    assert dataset.mask_stats.made == 4 and len(cache_files(tmp_path / "masks")) == 4  # relative to the recipe

    with pytest.raises(RecipeError, match=r"recipe.yaml: data.segmenter: got 3; expected a SAM 2 checkpoint folder"):
        load_recipe(write_recipe(tmp_path, {**data, "segmenter": 3}))
    with pytest.raises(RecipeError, match=r"data.mask_cache: is set without data.segmenter"):
        load_recipe(write_recipe(tmp_path, {"train": "data/train.json", "mask_cache": "masks"}))
    with pytest.raises(RecipeError, match=r"data.segmentr: unknown key of 'data'; did you mean 'segmenter'"):
        load_recipe(write_recipe(tmp_path, {"train": "data/train.json", "segmentr": "x"}))


def test_cli_validate_with_a_segmenter_fills_the_cache(root, tmp_path, sam_folder, capsys):
    path = tmp_path / "train.json"
    path.write_text(json.dumps(prompt_records()))
    cache = tmp_path / "masks"
    assert main(["data", "validate", str(path), "--root", str(root)]) == 1
    assert "record 0, field masks[0]: a point / box annotation needs a segmenter" in capsys.readouterr().out

    arguments = ["data", "validate", str(path), "--root", str(root), "--segmenter", str(sam_folder)]
    assert main([*arguments, "--mask-cache", str(cache)]) == 0
    assert "2 record(s), all valid" in capsys.readouterr().err and len(cache_files(cache)) == 4

    assert main(["data", "validate", str(path), "--root", str(root), "--mask-cache", str(cache)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pixelrefer data validate: error: --mask-cache") and len(err.splitlines()) == 1
    assert main(["data", "validate", str(path), "--root", str(root), "--segmenter", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "segmenter: " in err and "no such folder" in err and len(err.splitlines()) == 1


def test_an_unknown_segmenter_is_an_input_error(root):
    with pytest.raises(PixelReferInputError, match=r"^segmenter: '/no/such/sam': no such folder"):
        validate_records(prompt_records(), root, segmenter="/no/such/sam")
