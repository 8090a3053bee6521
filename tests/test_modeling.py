# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The model: batched == one-by-one, loss on assistant tokens, generation with the KV cache, backends and dtypes."""

import copy

import numpy as np
import pytest
import torch
from helpers import user_prompt


@pytest.fixture(scope="module")
def mixed_batch(tiny_processor, scenes):
    """Three samples with 0, 1 and 3 regions of mixed kinds (mask, box, point, rle, polygon)."""
    from pycocotools import mask as mask_utils

    (image_a, _), (image_b, objects_b), (image_c, objects_c) = scenes
    rle = mask_utils.encode(np.asfortranarray(objects_c[1].mask.astype(np.uint8)))
    ys, xs = np.nonzero(objects_c[2].mask)
    polygon = [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.min()), float(xs.max()), float(ys.max())]
    prompts = [
        user_prompt(tiny_processor, "Describe the image."),
        user_prompt(tiny_processor, "What colour is <region>?"),
        user_prompt(tiny_processor, "Compare <region>, <region> and <region>."),
    ]
    images = [image_a, image_b, image_c]
    regions = [
        [],
        [{"mask": objects_b[0].mask}],
        [{"point": [10.0, 12.0]}, {"rle": rle}, {"polygon": [polygon]}],
    ]
    return prompts, images, regions


def run_forward(model, inputs):
    with torch.no_grad():
        return model(**inputs)


def test_batched_logits_equal_one_by_one(tiny_model, tiny_processor, mixed_batch):
    prompts, images, regions = mixed_batch
    batch = tiny_processor(text=prompts, images=images, regions=regions)
    batched = run_forward(tiny_model, batch)
    assert batched.object_tokens_per_region.shape == (4,)
    for index in range(3):
        single = tiny_processor(text=prompts[index], images=images[index], regions=regions[index])
        alone = run_forward(tiny_model, single)
        length = single["input_ids"].shape[1]
        torch.testing.assert_close(batched.logits[index, -length:], alone.logits[0], rtol=1e-4, atol=1e-4)


def test_batched_greedy_generation_equals_one_by_one(tiny_model, tiny_processor, mixed_batch):
    prompts, images, regions = mixed_batch
    batch = tiny_processor(text=prompts, images=images, regions=regions)
    generated = tiny_model.generate(**batch, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    new_tokens = generated[:, batch["input_ids"].shape[1] :]
    for index in range(3):
        single = tiny_processor(text=prompts[index], images=images[index], regions=regions[index])
        alone = tiny_model.generate(**single, max_new_tokens=6, min_new_tokens=6, do_sample=False)
        assert new_tokens[index].tolist() == alone[0, single["input_ids"].shape[1] :].tolist()


def test_generation_with_kv_cache_equals_without(tiny_model, tiny_processor, mixed_batch):
    prompts, images, regions = mixed_batch
    batch = tiny_processor(text=prompts[1:], images=images[1:], regions=regions[1:])
    cached = tiny_model.generate(**batch, max_new_tokens=5, min_new_tokens=5, do_sample=False, use_cache=True)
    uncached = tiny_model.generate(**batch, max_new_tokens=5, min_new_tokens=5, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)


def test_object_tokens_change_the_output(tiny_model, tiny_processor, scenes):
    """Pointing at a different object changes the logits: the region really reaches the LLM."""
    image, objects = scenes[0]
    prompt = user_prompt(tiny_processor, "What colour is <region>?")
    first = run_forward(tiny_model, tiny_processor(text=prompt, images=image, regions=[{"mask": objects[0].mask}]))
    second = run_forward(tiny_model, tiny_processor(text=prompt, images=image, regions=[{"mask": objects[1].mask}]))
    assert not torch.allclose(first.logits[0, -1], second.logits[0, -1])


def test_forward_is_deterministic(tiny_model, tiny_processor, mixed_batch):
    prompts, images, regions = mixed_batch
    batch = tiny_processor(text=prompts, images=images, regions=regions)
    assert torch.equal(run_forward(tiny_model, batch).logits, run_forward(tiny_model, batch).logits)


def test_loss_is_causal_lm_cross_entropy_on_assistant_tokens(tiny_model, tiny_processor, scenes):
    image, objects = scenes[1]
    conversation = tiny_processor.apply_chat_template(
        [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is <region>?"}]},
            {"role": "assistant", "content": objects[0].colour},
        ]
    )
    inputs = tiny_processor(text=conversation, images=image, regions=[{"mask": objects[0].mask}], return_labels=True)
    output = run_forward(tiny_model, inputs)
    labels = inputs["labels"][0, 1:]
    logits = output.logits[0, :-1]
    expected = torch.nn.functional.cross_entropy(logits[labels != -100], labels[labels != -100])
    torch.testing.assert_close(output.loss, expected)


def test_training_step_reaches_object_tokenizer_and_lowers_loss(tiny_model, tiny_processor, scenes):
    model = copy.deepcopy(tiny_model).train()
    image, objects = scenes[1]
    conversation = tiny_processor.apply_chat_template(
        [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Colour of <region>?"}]},
            {"role": "assistant", "content": objects[0].colour},
        ]
    )
    inputs = tiny_processor(text=conversation, images=image, regions=[{"mask": objects[0].mask}], return_labels=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(4):
        loss = model(**inputs).loss
        optimizer.zero_grad()
        loss.backward()
        if not losses:
            for name in ("pos_linear", "feat_linear"):
                grads = [p.grad for n, p in model.model.object_tokenizer.named_parameters() if n.startswith(name)]
                assert all(g is not None and g.abs().sum() > 0 for g in grads), name
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_eager_and_sdpa_attention_agree(tiny_model, tiny_processor, mixed_batch, monkeypatch):
    """Both attention kernels give the same vision features and logits. The logits are compared with the object tokens
    of the sdpa run in both: k-means turns float noise in the crop features (~5e-7) into a different cluster
    assignment now and then, which is a property of k-means, not of the attention kernels."""
    prompts, images, regions = mixed_batch
    batch = tiny_processor(text=prompts, images=images, regions=regions)
    model = copy.deepcopy(tiny_model)
    assert model.config._attn_implementation == "sdpa"
    crops = [(batch["region_pixel_values"], batch["region_grid_thw"], torch.ones_like(batch["region_grid_thw"][:, 0]))]
    object_tokens, recorded = model.model.object_tokens, []

    def object_tokens_of_the_first_run(*args, **kwargs):
        if not recorded:
            recorded.append(object_tokens(*args, **kwargs))
        return recorded[0]

    monkeypatch.setattr(model.model, "object_tokens", object_tokens_of_the_first_run)
    with torch.no_grad():
        sdpa_crops = model.model.encode_packed(crops)[0]
    sdpa = run_forward(model, batch).logits
    model.set_attn_implementation("eager")
    with torch.no_grad():
        eager_crops = model.model.encode_packed(crops)[0]
    eager = run_forward(model, batch).logits
    torch.testing.assert_close(sdpa_crops, eager_crops, rtol=1e-5, atol=1e-5)
    mask = batch["attention_mask"].bool()
    torch.testing.assert_close(sdpa[mask], eager[mask], rtol=1e-4, atol=1e-4)


def test_flash_attention_2_is_refused_clearly_when_not_installed(tiny_model):
    from transformers.utils import is_flash_attn_2_available

    if is_flash_attn_2_available():
        pytest.skip("flash-attn is installed: covered by the GPU checks")
    with pytest.raises(ImportError, match="FlashAttention2"):
        copy.deepcopy(tiny_model).set_attn_implementation("flash_attention_2")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_forward_and_generate(tiny_model, tiny_processor, mixed_batch, dtype):
    prompts, images, regions = mixed_batch
    model = copy.deepcopy(tiny_model).to(dtype)
    batch = tiny_processor(text=prompts, images=images, regions=regions)
    reference = run_forward(tiny_model, batch).logits
    output = run_forward(model, batch).logits
    assert output.dtype == dtype and torch.isfinite(output).all()
    mask = batch["attention_mask"].bool()
    assert (output.float()[mask] - reference[mask]).abs().max() < 0.1
    generated = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert generated.shape[0] == 3


def test_region_tokens_without_region_inputs_are_refused(tiny_model, tiny_processor, scenes):
    image, objects = scenes[0]
    inputs = tiny_processor(text="<image><region>", images=image, regions=[{"mask": objects[0].mask}])
    for name in [k for k in inputs if k.startswith("region_")]:
        del inputs[name]
    with pytest.raises(ValueError, match="no region inputs"):
        run_forward(tiny_model, inputs)


def test_processor_and_model_disagreeing_on_mask_num_is_refused(tiny_model, tiny_processor, scenes):
    image, objects = scenes[0]
    processor = copy.deepcopy(tiny_processor)
    processor.mask_num = 8
    inputs = processor(text="<image><region>", images=image, regions=[{"mask": objects[0].mask}])
    with pytest.raises(ValueError, match="mask_num"):
        run_forward(tiny_model, inputs)


def test_text_only_prompt_and_missing_image_tag(tiny_model, tiny_processor, scenes):
    text_only = tiny_processor(text=user_prompt(tiny_processor, "hello", image=False))
    assert run_forward(tiny_model, text_only).logits.shape[0] == 1
    image, objects = scenes[0]
    # the full variant shows the image as scene tokens: an image without its <image> tag is refused, not dropped
    with pytest.raises(ValueError, match="0 <image> placeholder"):
        tiny_processor(text="<region>", images=image, regions=[{"mask": objects[0].mask}])


def test_preferred_runtime_on_cpu():
    from pixelrefer_plugin.runtime import preferred_attn_implementation, preferred_dtype

    assert preferred_attn_implementation("cpu") == "sdpa"
    assert preferred_dtype("cpu") == torch.float32
