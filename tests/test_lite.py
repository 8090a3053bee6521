# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""PixelRefer-Lite: object tokens only, per-region local context, one global frame per frame, Object-Centric Infusion."""

import copy

import numpy as np
import pytest
import torch
from helpers import user_prompt
from video_fixtures import moving_square

from pixelrefer_plugin import PixelReferInputError
from pixelrefer_plugin.presets import build_model_and_processor

FPS = 4


@pytest.fixture(scope="module")
def lite():
    """(model, processor) of the Lite tiny preset, random init, eval mode, float32."""
    return build_model_and_processor("pixelrefer-lite-tiny", seed=0)


def run_forward(model, inputs):
    with torch.no_grad():
        return model(**inputs)


def run_capturing_infusion(model, inputs):
    """Forward pass; also returns the OCI module's input object tokens and its output, both `(R, mask_num, C)`."""
    captured = {}

    def hook(module, args, output):
        captured["pooled"] = args[0].detach().clone()
        captured["infused"] = output.detach().clone()

    handle = model.model.object_infusion.register_forward_hook(hook)
    try:
        output = run_forward(model, inputs)
    finally:
        handle.remove()
    return output, captured


def region_spans(processor, input_ids):
    """Number of <REGION> tokens in each run of consecutive <REGION> tokens of one row, in order."""
    spans, current = [], 0
    for token_id in [*input_ids.tolist(), -1]:
        if token_id == processor.region_token_id:
            current += 1
        elif current:
            spans.append(current)
            current = 0
    return spans


def test_lite_llm_input_holds_object_tokens_only(lite, scenes):
    model, processor = lite
    mask_num = processor.mask_num
    scene_token_ids = {processor.image_token_id, processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")}

    image, objects = scenes[0]
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Compare <region> and <region>."}]}],
        add_generation_prompt=True,
    )
    inputs = processor(text=prompt, images=image, regions=[{"mask": objects[0].mask}, {"box": objects[1].box}])
    square = moving_square(8)
    video = {"frames": square.frames, "timestamps": [n / FPS for n in range(8)]}
    track = {"frames": {1: {"mask": square.mask(1)}, 3: {"box": square.boxes[3]}, 6: {"mask": square.mask(6)}}}
    video_inputs = processor(
        text=user_prompt(processor, "Where does <region> go after <region>?", image=False),
        videos=video,
        regions=[track, {"mask": square.mask(0), "frame": 0}],
    )

    for batch, tokens_per_region in ((inputs, [mask_num] * 2), (video_inputs, [mask_num] * 4)):
        assert not {"pixel_values", "pixel_values_videos", "image_grid_thw", "video_grid_thw"} & set(batch)
        ids = batch["input_ids"][0]
        assert not set(ids.tolist()) & scene_token_ids
        assert region_spans(processor, ids) == tokens_per_region
        assert run_forward(model, batch).object_tokens_per_region.tolist() == tokens_per_region

    span = "<REGION>" * mask_num
    text = processor.tokenizer.decode(video_inputs["input_ids"][0])
    track_text = ",".join(f"Time {round(n / FPS, 1)}:{span}" for n in (1, 3, 6))
    assert f"Where does [{track_text}] go after [Time 0.0:{span}]?" in text

    with pytest.raises(ValueError, match="reads no scene tokens"):
        run_forward(model, dict(inputs, pixel_values=inputs["frame_pixel_values"]))


def test_regions_on_the_same_frame_each_get_their_own_local_context(lite, scenes):
    model, processor = lite
    image, objects = scenes[0]
    first, second = {"mask": objects[0].mask}, {"mask": objects[1].mask}
    both = processor(
        text=user_prompt(processor, "<region> and <region>", image=False), images=image, regions=[first, second]
    )
    alone = processor(text=user_prompt(processor, "<region>", image=False), images=image, regions=[second])

    assert both["region_local_grid_thw"].tolist() == [[1, 16, 16], [1, 16, 16]]
    local = both["region_local_pixel_values"].view(2, 16 * 16, -1)
    assert not torch.equal(local[0], local[1])
    assert torch.equal(local[1], alone["region_local_pixel_values"])
    crops = both["region_pixel_values"].split(both["region_grid_thw"].prod(dim=1).tolist())
    assert torch.equal(crops[1], alone["region_pixel_values"])

    # object tokens of the second region are the same whether or not the first region shares its frame
    output, tokens = run_capturing_infusion(model, both)
    _, tokens_alone = run_capturing_infusion(model, alone)
    torch.testing.assert_close(tokens["infused"][1], tokens_alone["infused"][0], rtol=1e-4, atol=1e-5)

    # giving the second region the first region's local context changes its tokens (and only its tokens)
    swapped = dict(both, region_local_pixel_values=torch.cat([local[0], local[0]]))
    swapped_output, swapped_tokens = run_capturing_infusion(model, swapped)
    torch.testing.assert_close(swapped_tokens["pooled"], tokens["pooled"])
    torch.testing.assert_close(swapped_tokens["infused"][0], tokens["infused"][0])
    assert not torch.allclose(swapped_tokens["infused"][1], tokens["infused"][1], rtol=1e-3, atol=1e-4)
    assert not torch.allclose(swapped_output.logits[0, -1], output.logits[0, -1])


def test_each_frame_is_encoded_once(lite, scenes):
    model, processor = lite
    image, objects = scenes[0]
    inputs = processor(
        text="<region><region>", images=image, regions=[{"mask": objects[0].mask}, {"box": objects[1].box}]
    )
    assert inputs["frame_grid_thw"].tolist() == [[1, 24, 24]]
    assert inputs["frame_pixel_values"].shape[0] == 24 * 24
    assert inputs["region_frame_index"].tolist() == [0, 0]

    grids = []
    handle = model.model.vision_model.register_forward_pre_hook(
        lambda module, args, kwargs: grids.append(kwargs["grid_thw"].clone()), with_kwargs=True
    )
    try:
        run_forward(model, inputs)
    finally:
        handle.remove()
    assert len(grids) == 1  # crops, local contexts and the frame in one packed pass
    assert len(grids[0]) == 2 + 2 + 1

    square = moving_square(8)
    video = {"frames": square.frames, "timestamps": [n / FPS for n in range(8)]}
    regions = [
        {"mask": square.mask(1), "frame": 1},
        {"frames": {1: {"box": [0, 0, 20, 20]}, 5: {"mask": square.mask(5)}}},
        {"box": [60, 0, 90, 30], "frame": 5},
    ]
    video_inputs = processor(text="<region><region><region>", videos=video, regions=regions)
    assert video_inputs["frame_grid_thw"].tolist() == [[1, 24, 24], [1, 24, 24]]
    assert video_inputs["region_frame_index"].tolist() == [0, 0, 1, 1]
    frames = video_inputs["frame_pixel_values"].view(2, 24 * 24, -1)
    for position, number in enumerate((1, 5)):
        as_image = processor(text="<region>", images=square.frames[number], regions=[{"box": [0, 0, 8, 8]}])
        assert torch.equal(frames[position], as_image["frame_pixel_values"])
    assert run_forward(model, video_inputs).object_tokens_per_region.tolist() == [processor.mask_num] * 4


def test_object_centric_infusion_reads_the_global_frame(lite, scenes):
    model, processor = lite
    (image, objects), (other_image, _) = scenes[0], scenes[1]
    prompt = user_prompt(processor, "What is <region>?", image=False)
    inputs = processor(text=prompt, images=image, regions=[{"mask": objects[0].mask}])
    other_frame = processor(text="<region>", images=other_image, regions=[{"box": [0, 0, 8, 8]}])["frame_pixel_values"]
    output, tokens = run_capturing_infusion(model, inputs)
    changed_output, changed_tokens = run_capturing_infusion(model, dict(inputs, frame_pixel_values=other_frame))
    torch.testing.assert_close(changed_tokens["pooled"], tokens["pooled"])
    assert not torch.allclose(changed_tokens["infused"], tokens["infused"], rtol=1e-3, atol=1e-4)
    assert not torch.allclose(changed_output.logits[0, -1], output.logits[0, -1])


def test_small_region_is_zero_padded_to_mask_num_tokens(lite, scenes):
    model, processor = lite
    processor = copy.deepcopy(processor)
    processor.region_min_patches = 4  # enlarge a tiny region to about 4 patches only
    image, _ = scenes[0]
    mask = np.zeros(image.shape[:2], dtype=bool)
    mask[60, 80] = True  # a single pixel: far fewer than mask_num cells of its crop grid
    inputs = processor(
        text=user_prompt(processor, "What is <region>?", image=False), images=image, regions=[{"mask": mask}]
    )
    cells = int(inputs["region_grid_mask"].sum())
    assert 0 < cells < processor.mask_num
    assert region_spans(processor, inputs["input_ids"][0]) == [processor.mask_num]

    output, tokens = run_capturing_infusion(model, inputs)
    assert output.object_tokens_per_region.tolist() == [processor.mask_num]
    assert torch.isfinite(output.logits).all()
    pooled, infused = tokens["pooled"][0], tokens["infused"][0]
    assert (pooled[cells:] == 0).all()
    assert (pooled[:cells].abs().sum(dim=-1) > 0).all()
    # zero queries all infuse the same context: the padding rows agree with each other, not with the real tokens
    torch.testing.assert_close(infused[cells:], infused[cells : cells + 1].expand(processor.mask_num - cells, -1))
    assert not torch.allclose(infused[cells - 1], infused[cells], rtol=1e-3, atol=1e-4)


@pytest.fixture(scope="module")
def lite_batch(lite, scenes):
    """Two image samples with 1 and 3 regions of mixed kinds."""
    _, processor = lite
    (image_b, objects_b), (image_c, objects_c) = scenes[1], scenes[2]
    prompts = [
        user_prompt(processor, "What colour is <region>?", image=False),
        user_prompt(processor, "Compare <region>, <region> and <region>.", image=False),
    ]
    regions = [
        [{"mask": objects_b[0].mask}],
        [{"mask": objects_c[0].mask}, {"box": objects_c[1].box}, {"point": [20.0, 30.0]}],
    ]
    return prompts, [image_b, image_c], regions


def test_lite_batch_equals_one_by_one(lite, lite_batch):
    model, processor = lite
    prompts, images, regions = lite_batch
    batch = processor(text=prompts, images=images, regions=regions)
    assert batch["region_frame_index"].tolist() == [0, 1, 1, 1]
    batched = run_forward(model, batch)
    assert batched.object_tokens_per_region.tolist() == [processor.mask_num] * 4
    generated = model.generate(**batch, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    new_tokens = generated[:, batch["input_ids"].shape[1] :]
    for index in range(2):
        single = processor(text=prompts[index], images=images[index], regions=regions[index])
        length = single["input_ids"].shape[1]
        alone = run_forward(model, single)
        torch.testing.assert_close(batched.logits[index, -length:], alone.logits[0], rtol=1e-4, atol=1e-4)
        generated_alone = model.generate(**single, max_new_tokens=5, min_new_tokens=5, do_sample=False)
        assert new_tokens[index].tolist() == generated_alone[0, length:].tolist()


def test_lite_chat_template_drops_scene_items_and_scene_placeholders_are_refused(lite, tiny_processor, scenes):
    _, processor = lite
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "video"},
                {"type": "text", "text": "What is "},
                {"type": "region"},
                {"type": "text", "text": "?"},
            ],
        }
    ]
    rendered = processor.apply_chat_template(messages, add_generation_prompt=True)
    full = tiny_processor.apply_chat_template(messages, add_generation_prompt=True)
    assert "<image>\n<video>\n" in full
    assert rendered == full.replace("<image>\n", "").replace("<video>\n", "")
    assert rendered == "<|im_start|>user\nWhat is <region>?<|im_end|>\n<|im_start|>assistant\n"

    image, objects = scenes[0]
    region = [{"mask": objects[0].mask}]
    with pytest.raises(
        PixelReferInputError, match=r"^text\[sample 0\]: PixelRefer-Lite reads no scene tokens.*<image>"
    ):
        processor(text="<image>\nWhat is <region>?", images=image, regions=region)
    with pytest.raises(PixelReferInputError, match=r"^text\[sample 1\]: "):
        processor(text=["<region>", "<image><region>"], images=[image, image], regions=[region, region])
    # the same prompt without the placeholder is accepted: the region still sees its image
    assert "frame_pixel_values" in processor(text="What is <region>?", images=image, regions=region)
