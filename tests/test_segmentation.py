# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The SAM 2 segmenter: clicks / boxes -> masks (batched, deterministic), video tracks, and its input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import user_prompt
from tiny_sam2 import TINY_IMAGE_SIZE, tiny_sam2_folder

from pixelrefer_plugin.errors import RegionInputError
from pixelrefer_plugin.presets import build_model_and_processor
from pixelrefer_plugin.presets.hub import HubUnavailableError
from pixelrefer_plugin.segmentation import EmptySegmentError, RegionSegmenter
from pixelrefer_plugin.segmentation.preprocessing import (
    mask_prompt,
    preprocess_images,
    scale_points,
    upsample_mask_logits,
)


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    return RegionSegmenter.from_pretrained(tiny_sam2_folder(tmp_path_factory.mktemp("sam")), device="cpu")


@pytest.fixture(scope="module")
def pictures():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), rng.integers(0, 256, (90, 70, 3), dtype=np.uint8)


def test_preprocessing_follows_the_sam2_processor_formulas(pictures):
    image = pictures[0]
    pixels = preprocess_images([image], 64)
    # Sam2ImageProcessor: torchvision resize (uint8, bilinear, antialias) then (x / 255 - mean) / std
    as_tensor = torch.from_numpy(image).permute(2, 0, 1)[None]
    if "AVX2" in torch.backends.cpu.get_cpu_capability():
        resized = F.interpolate(as_tensor, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
    else:
        resized = F.interpolate(as_tensor.float(), (64, 64), mode="bilinear", antialias=True).round().byte()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(pixels, (resized.float() / 255 - mean) / std, rtol=0, atol=1e-5)
    assert pixels.shape == (1, 3, 64, 64)


def test_coordinates_scale_as_sam2_processor_normalizes_them():
    from transformers.models.sam2.processing_sam2 import Sam2Processor

    points = torch.tensor([[10.0, 20.0], [159.0, 0.5]])
    expected = Sam2Processor._normalize_coordinates(None, 1024, points, (120, 160))  # does not use `self`
    torch.testing.assert_close(scale_points(points, (120, 160), 1024), expected)
    torch.testing.assert_close(expected[0], torch.tensor([10 * 1024 / 160, 20 * 1024 / 120]))


def test_masks_are_upsampled_and_mask_prompts_resized_as_the_processors_do():
    logits = torch.randn(2, 32, 32)
    expected = F.interpolate(logits[:, None], (120, 160), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(upsample_mask_logits(logits, (120, 160)), expected)
    mask = np.zeros((120, 160), dtype=bool)
    mask[30:90, 40:100] = True
    prompt = mask_prompt(mask, 64)
    resized = F.interpolate(torch.from_numpy(mask).float()[None, None], (64, 64), mode="bilinear", antialias=True)
    assert torch.equal(prompt, (resized >= 0.5).float())


def test_point_becomes_a_mask_region_with_its_score(segmenter, pictures):
    image = pictures[0]
    (region,) = segmenter.to_masks([{"point": [40, 30]}], images=[image])
    assert set(region) == {"mask", "score"}
    assert region["mask"].shape == image.shape[:2] and region["mask"].dtype == bool and region["mask"].any()
    assert 0.0 < region["score"] < 2.0
    other = segmenter.to_masks([{"point": [150, 110]}], images=[image])[0]
    assert not np.array_equal(other["mask"], region["mask"])  # the mask depends on the click


def test_point_to_mask_to_object_tokens_end_to_end(segmenter, pictures):
    model, processor = build_model_and_processor("pixelrefer-tiny", seed=0)
    image = pictures[0]
    regions = segmenter.to_masks([{"point": [40, 30], "negative_points": [[150, 100]]}], images=[image])
    inputs = processor(text=user_prompt(processor, "What is <region>?"), images=image, regions=regions)
    with torch.no_grad():
        output = model(**inputs)
    assert output.object_tokens_per_region.tolist()[0] > 0
    assert torch.isfinite(output.logits).all()


def test_batched_equals_one_by_one_and_is_deterministic(segmenter, pictures):
    regions = [
        [{"point": [10, 20]}, {"box": [5, 5, 100, 80]}, {"points": [[30, 30], [50, 60]], "negative_points": [[1, 1]]}],
        [{"box": [0, 0, 30, 40], "box_format": "xywh"}, {"point": [60, 80]}],
    ]
    images = [[pictures[0]], [pictures[1]]]
    batched = segmenter.to_masks(regions, images=images)
    again = segmenter.to_masks(regions, images=images)
    for sample, image in enumerate(pictures):
        for index, region in enumerate(regions[sample]):
            (alone,) = segmenter.to_masks([region], images=[image])
            assert np.array_equal(batched[sample][index]["mask"], alone["mask"])
            assert batched[sample][index]["score"] == pytest.approx(alone["score"], abs=1e-5)
            assert np.array_equal(batched[sample][index]["mask"], again[sample][index]["mask"])
            assert batched[sample][index]["score"] == again[sample][index]["score"]


def test_masks_and_other_kinds_pass_through_untouched(segmenter, pictures):
    mask_region = {"mask": np.ones((120, 160), dtype=bool)}
    rle_region = {"rle": {"size": [120, 160], "counts": [0, 120 * 160]}}
    out = segmenter.to_masks([mask_region, {"point": [5, 5]}, rle_region], images=[pictures[0]])
    assert out[0] is mask_region and out[2] is rle_region
    assert "mask" in out[1]


def test_point_outside_the_image_names_the_region(segmenter, pictures):
    with pytest.raises(RegionInputError, match=r"regions\[sample 1\]\[region 0\]: point \[70.0, 5.0\] lies outside"):
        segmenter.to_masks([[{"point": [1, 1]}], [{"point": [70, 5]}]], images=[[pictures[0]], [pictures[1]]])
    with pytest.raises(RegionInputError, match=r"negative_points\[0\]"):
        segmenter.to_masks([{"point": [1, 1], "negative_points": [[500, 1]]}], images=[pictures[0]])


def test_an_empty_segment_is_an_error_naming_the_region(tmp_path, pictures):
    segmenter = RegionSegmenter.from_pretrained(tiny_sam2_folder(tmp_path), device="cpu")
    with torch.no_grad():  # a decoder whose mask logits are all 0: no pixel is > 0
        for mlp in segmenter.model.mask_decoder.output_hypernetworks_mlps:
            mlp.proj_out.weight.zero_()
            mlp.proj_out.bias.zero_()
    with pytest.raises(EmptySegmentError, match=r"regions\[sample 0\]\[region 1\]: the segmenter found no object at"):
        segmenter.to_masks([{"mask": np.ones((120, 160), bool)}, {"box": [0, 0, 50, 50]}], images=[pictures[0]])


def test_video_propagation_gives_a_lite_track_the_processor_accepts(segmenter, pictures):
    frames = np.stack([np.roll(pictures[0], shift, axis=1) for shift in range(0, 48, 6)])  # 8 frames
    video = {"frames": frames, "timestamps": [i * 0.5 for i in range(8)]}
    track = segmenter.propagate(video, {"point": [40, 30], "frame": 3}, frames=[0, 2, 4, 6, 7], max_frames=4)
    assert track["video"] == 0
    assert sorted(track["frames"]) == [0, 3, 4, 7]  # thinned to 4, the key frame kept
    for part in track["frames"].values():
        assert part["mask"].shape == (120, 160) and part["mask"].any()
    _, processor = build_model_and_processor("pixelrefer-lite-tiny", seed=0)
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What is <region> doing?"}]}],
        add_generation_prompt=True,
    )
    inputs = processor(text=prompt, videos=video, regions=[track])
    assert inputs["region_frame_index"].numel() == 4  # one unit per tracked frame


def test_video_propagation_from_a_mask_and_a_frame_prompt_in_to_masks(segmenter, pictures):
    frames = np.stack([pictures[0]] * 4)
    video = {"frames": frames, "timestamps": [0.0, 1.0, 2.0, 3.0]}
    mask = np.zeros((120, 160), dtype=bool)
    mask[20:60, 30:90] = True
    track = segmenter.propagate(video, {"mask": mask, "frame": 1})
    assert sorted(track["frames"]) == [0, 1, 2, 3]
    (on_frame,) = segmenter.to_masks([{"box": [30, 20, 90, 60], "frame": 2}], videos=[video])
    assert on_frame["frame"] == 2 and on_frame["mask"].shape == (120, 160)


def test_segmenter_preset_offline_prints_the_download_command(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(HubUnavailableError) as caught:
        RegionSegmenter.from_pretrained("sam2.1-hiera-tiny")
    message = str(caught.value)
    assert "hf download facebook/sam2.1-hiera-tiny --local-dir sam2.1-hiera-tiny" in message


def test_a_checkpoint_that_is_not_sam2_is_refused(tmp_path):
    from transformers import Qwen2Config

    from pixelrefer_plugin.errors import PixelReferInputError

    Qwen2Config(hidden_size=8, num_hidden_layers=1, num_attention_heads=1).save_pretrained(tmp_path)
    with pytest.raises(PixelReferInputError, match=r"segmenter: .* is a 'qwen2' checkpoint; expected a SAM 2"):
        RegionSegmenter.from_pretrained(tmp_path)


def test_tiny_checkpoint_input_size(segmenter):
    assert segmenter.image_size == TINY_IMAGE_SIZE
