# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Prompt building: chat template, placeholder expansion, labels, batching conventions and input errors."""

import numpy as np
import pytest
import torch
from helpers import user_prompt

from pixelrefer_plugin import PixelReferInputError, RegionInputError
from pixelrefer_plugin.region_geometry import plan_region_crop, region_grid_mask
from pixelrefer_plugin.region_masks import region_to_mask


def test_chat_template_is_qwen_format_without_system_prompt(tiny_processor):
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": "What is "},
                {"type": "region"},
                {"type": "text", "text": "?"},
            ],
        },
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "And <region>?"},
    ]
    rendered = tiny_processor.apply_chat_template(messages, add_generation_prompt=True)
    assert rendered == (
        "<|im_start|>user\n<image>\nWhat is <region>?<|im_end|>\n"
        "<|im_start|>assistant\nA cat.<|im_end|>\n"
        "<|im_start|>user\nAnd <region>?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def region_spans(processor, input_ids):
    """Number of <REGION> tokens inside each [ ... ] group of one row, in order."""
    tokens = processor.tokenizer.convert_ids_to_tokens(input_ids)
    spans, current = [], None
    for token in tokens:
        if token == "<REGION>":
            current = (current or 0) + 1
        elif current is not None:
            spans.append(current)
            current = None
    return spans


def test_region_placeholders_expand_to_the_grid_mask_token_counts(tiny_processor, scenes):
    image, objects = scenes[0]
    regions = [{"mask": objects[0].mask}, {"box": objects[1].box}, {"point": [5, 5]}]
    prompt = user_prompt(tiny_processor, "Compare <region>, <region> and <region>.")
    inputs = tiny_processor(text=prompt, images=image, regions=regions)

    expected = []
    for index, region in enumerate(regions):
        mask = region_to_mask(region, image.shape[:2], 0, index, tiny_processor.point_size)
        min_pixels, max_pixels = tiny_processor.crop_pixel_budget
        plan = plan_region_crop(
            mask,
            patch_size=14,
            context_patches=2,
            min_patches=32,
            max_patches=100,
            min_pixels=min_pixels,
            max_pixels=max_pixels,
        )
        expected.append(min(32, int(region_grid_mask(mask, plan, tiny_processor.region_grid_rounding).sum())))
    assert region_spans(tiny_processor, inputs["input_ids"][0]) == expected

    cells = torch.split(inputs["region_grid_mask"], inputs["region_grid_thw"].prod(dim=1).tolist())
    assert [min(32, int(c.sum())) for c in cells] == expected
    num_image_tokens = int((inputs["input_ids"] == tiny_processor.image_token_id).sum())
    assert num_image_tokens == int(inputs["image_grid_thw"].prod())
    assert inputs["region_pixel_values"].shape == (int(inputs["region_grid_thw"].prod(dim=1).sum()), 3 * 14 * 14)


def test_small_region_gets_fewer_tokens_than_mask_num(tiny_processor):
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    # a one-pixel-high line covers few grid cells even after upscaling
    inputs = tiny_processor(text="<image>\n<region>", images=image, regions=[{"box": [10, 50, 30, 51]}])
    (count,) = region_spans(tiny_processor, inputs["input_ids"][0])
    assert 0 < count < 32


def test_batch_is_left_padded_and_keeps_regions_in_sample_order(tiny_processor, scenes):
    (image_a, objects_a), (image_b, objects_b) = scenes[0], scenes[1]
    prompts = [
        user_prompt(tiny_processor, "<region>"),
        user_prompt(tiny_processor, "Long question about <region> and <region>?"),
    ]
    regions = [[{"mask": objects_a[0].mask}], [{"mask": objects_b[0].mask}, {"box": objects_b[1].box}]]
    batch = tiny_processor(text=prompts, images=[image_a, image_b], regions=regions)
    mask = batch["attention_mask"]
    assert (mask == 0).any() and mask[:, -1].all()
    assert (mask.diff(dim=1) >= 0).all()  # padding only on the left
    assert batch["region_grid_thw"].shape[0] == 3
    single = tiny_processor(text=prompts[1], images=image_b, regions=regions[1])
    assert torch.equal(batch["region_grid_thw"][1:], single["region_grid_thw"])
    assert torch.equal(batch["region_boxes"][1:], single["region_boxes"])


def test_labels_supervise_only_assistant_answers(tiny_processor, scenes):
    image, objects = scenes[0]
    conversation = tiny_processor.apply_chat_template(
        [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Colour of <region>?"}]},
            {"role": "assistant", "content": "red"},
            {"role": "user", "content": "Shape?"},
            {"role": "assistant", "content": "circle"},
        ]
    )
    inputs = tiny_processor(
        text=[conversation, user_prompt(tiny_processor, "hi", image=False)],
        images=[image, None],
        regions=[[{"mask": objects[0].mask}], None],
        return_labels=True,
    )
    labels = inputs["labels"][0]
    supervised = labels[labels != -100]
    assert tiny_processor.tokenizer.decode(supervised) == "red<|im_end|>circle<|im_end|>"
    assert torch.equal(supervised, inputs["input_ids"][0][labels != -100])
    assert (inputs["labels"][1] == -100).all()  # a prompt with no answer yet is not supervised


def test_single_prompt_shorthands(tiny_processor, scenes):
    image, objects = scenes[1]
    prompt = "<image>\n<region> <region>"
    regions = [{"mask": objects[0].mask}, {"box": objects[1].box}]
    reference = tiny_processor(text=[prompt], images=[[image]], regions=[regions])
    for images, region_arg in ((image, regions), ([image], regions), (image, [regions])):
        other = tiny_processor(text=prompt, images=images, regions=region_arg)
        assert torch.equal(other["input_ids"], reference["input_ids"])


def test_region_can_lie_on_the_second_image(tiny_processor, scenes):
    (image_a, _), (image_b, objects_b) = scenes[0], scenes[1]
    inputs = tiny_processor(
        text="<image> <image> <region>", images=[[image_a, image_b]], regions=[[{"box": objects_b[0].box, "image": 1}]]
    )
    assert inputs["region_image_sizes"].tolist() == [list(image_b.shape[:2])]


PROMPT_ERRORS = [
    ("<image>\n<region> <region>", [{"box": [0, 0, 10, 10]}], "2 <region> placeholder"),
    ("<image>\nno placeholder", [{"box": [0, 0, 10, 10]}], "0 <region> placeholder"),
    ("<image>\n<region>", [], "1 <region> placeholder"),
    ("no image tag <region>", [{"box": [0, 0, 10, 10]}], "0 <image> placeholder"),
]


@pytest.mark.parametrize("prompt, regions, reason", PROMPT_ERRORS)
def test_placeholder_count_mismatch_is_refused(tiny_processor, prompt, regions, reason):
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    with pytest.raises(PixelReferInputError, match=reason) as error:
        tiny_processor(
            text=["<image>\n<region>", prompt], images=[image, image], regions=[[{"box": [1, 1, 9, 9]}], regions]
        )
    assert str(error.value).startswith("text[sample 1]: ")


def test_batch_structure_errors(tiny_processor):
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    with pytest.raises(PixelReferInputError, match=r"regions: got 1 entries for 2 prompts"):
        tiny_processor(text=["<image><region>", "<image>"], images=[image, image], regions=[[{"box": [1, 1, 9, 9]}]])
    with pytest.raises(PixelReferInputError, match=r"images: got 3 entries for 2 prompts"):
        tiny_processor(text=["<image>", "<image>"], images=[image, image, image])
    with pytest.raises(PixelReferInputError, match="^text: "):
        tiny_processor(text=42)
    with pytest.raises(RegionInputError, match=r"regions\[sample 0\]\[region 0\]: the sample has no image"):
        tiny_processor(text="<region>", regions=[{"box": [1, 1, 9, 9]}])
    with pytest.raises(RegionInputError, match=r"regions\[sample 0\]\[region 0\]: image index 1 is out of range"):
        tiny_processor(text="<image><region>", images=image, regions=[{"box": [1, 1, 9, 9], "image": 1}])


def test_bad_region_in_a_batch_names_its_sample_and_index(tiny_processor):
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    regions = [[{"box": [1, 1, 9, 9]}], [{"box": [1, 1, 9, 9]}, {"point": [70, 3]}]]
    with pytest.raises(RegionInputError, match=r"^regions\[sample 1\]\[region 1\]: point \[70, 3\] lies outside"):
        tiny_processor(text=["<image><region>", "<image><region><region>"], images=[image, image], regions=regions)


def test_unreadable_image_names_its_sample(tiny_processor, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"garbage")
    with pytest.raises(PixelReferInputError, match=r"^images\[sample 1\]\[image 0\]: cannot read image file"):
        tiny_processor(text=["<image>", "<image>"], images=[np.zeros((32, 32, 3), np.uint8), str(broken)])
