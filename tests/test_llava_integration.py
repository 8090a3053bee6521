# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The LLaVA-style surface: `load_pretrained_model`, `conv_templates` and the registration into a `llava` package."""

import importlib.util
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModelForImageTextToText, Qwen2Config

from pixelrefer_plugin import PixelReferProcessor
from pixelrefer_plugin.integrations.llava import (
    Conversation,
    SeparatorStyle,
    conv_templates,
    default_conversation,
    load_pretrained_model,
    register_with_llava,
)
from pixelrefer_plugin.presets import build_preset

QUESTION = "<image>\nWhat is <region>?"
LITE_QUESTION = "What is <region>?"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Folders of the full and Lite tiny presets (random init, seed 0)."""
    root = tmp_path_factory.mktemp("llava_checkpoints")
    return {
        "full": build_preset("pixelrefer-tiny", root / "pixelrefer-tiny"),
        "lite": build_preset("pixelrefer-lite-tiny", root / "pixelrefer-lite-tiny"),
    }


@pytest.fixture(scope="module")
def loaded(checkpoints):
    """`load_pretrained_model` output for each variant, called as LLaVA code calls it (defaults only)."""
    return {
        variant: load_pretrained_model(str(path), None, f"pixelrefer-{variant}-tiny")
        for variant, path in checkpoints.items()
    }


def llava_prompt(template: str, question: str) -> str:
    conv = conv_templates[template].copy()
    conv.append_message(conv.roles[0], question)
    conv.append_message(conv.roles[1], None)
    return conv.get_prompt()


@pytest.mark.parametrize(
    ("variant", "template", "question"),
    [("full", "pixelrefer", QUESTION), ("lite", "pixelrefer_lite_qwen2", LITE_QUESTION)],
    ids=["full", "lite"],
)
def test_load_pretrained_model_pieces_work_together(loaded, scenes, variant, template, question):
    tokenizer, model, processor, context_len = loaded[variant]
    assert isinstance(processor, PixelReferProcessor) and processor.variant == variant
    assert tokenizer is processor.tokenizer and processor.image_processor is not None
    assert isinstance(context_len, int) and context_len == model.config.text_config.max_position_embeddings == 8192
    assert not model.training
    if not torch.cuda.is_available():  # the CUDA defaults of LLaVA-NeXT (float16, flash-attn) fall back on CPU
        assert model.dtype == torch.float32 and model.config._attn_implementation == "sdpa"

    image, objects = scenes[0]
    inputs = processor(text=llava_prompt(template, question), images=image, regions=[{"box": objects[0].box}])
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]
    assert isinstance(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :]), str)


def test_context_len_follows_max_sequence_length(checkpoints):
    *_, context_len = load_pretrained_model(
        checkpoints["full"], None, "pixelrefer", device="cpu", overwrite_config={"max_sequence_length": 4096}
    )
    assert context_len == 4096


@pytest.mark.parametrize(("variant", "template"), [("full", "pixelrefer_qwen2"), ("lite", "pixelrefer_lite_qwen2")])
def test_templates_match_the_processor_chat_template(loaded, variant, template):
    processor = loaded[variant][2]
    question = QUESTION if variant == "full" else LITE_QUESTION
    expected = processor.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True)
    assert llava_prompt(template, question) == expected
    assert expected == f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"  # no system block

    turns = [question, "A red square.", "And <region>?"]
    conv = conv_templates[template].copy()
    for i, turn in enumerate(turns):
        conv.append_message(conv.roles[i % 2], turn)
    conv.append_message(conv.roles[1], None)
    messages = [{"role": ("user", "assistant")[i % 2], "content": turn} for i, turn in enumerate(turns)]
    assert conv.get_prompt() == processor.apply_chat_template(messages, add_generation_prompt=True)


def test_pixelrefer_alias_and_default():
    assert conv_templates["pixelrefer"] is conv_templates["pixelrefer_qwen2"] is default_conversation
    assert conv_templates["pixelrefer_qwen2"].sep_style == SeparatorStyle.CHATML
    assert conv_templates["pixelrefer_qwen2"].system == ""
    qwen = llava_prompt("qwen_1_5", "Hi")
    assert qwen == "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n" + (
        "<|im_start|>assistant\n"
    )


def test_conv_templates_extend_and_copy_does_not_share_messages(monkeypatch):
    custom = Conversation(
        system="<|im_start|>system\nDescribe regions briefly.",
        roles=("<|im_start|>user", "<|im_start|>assistant"),
        messages=[],
        offset=0,
        sep_style=SeparatorStyle.CHATML,
        sep="<|im_end|>",
        version="custom",
    )
    monkeypatch.setitem(conv_templates, "pixelrefer_brief", custom)
    from pixelrefer_plugin.integrations.llava import conversation

    assert conversation.conv_templates["pixelrefer_brief"] is custom
    assert llava_prompt("pixelrefer_brief", "Hi").startswith(
        "<|im_start|>system\nDescribe regions briefly.<|im_end|>\n"
    )

    template = conv_templates["pixelrefer"]
    conv = template.copy()
    conv.append_message(conv.roles[0], "What is <region>?")
    assert template.messages == []
    again = conv.copy()
    again.messages[0][1] = "changed"
    again.append_message(again.roles[1], None)
    assert conv.messages == [["<|im_start|>user", "What is <region>?"]]
    assert conv.dict()["messages"] == [["<|im_start|>user", "What is <region>?"]]


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is not None, reason="bitsandbytes is installed")
@pytest.mark.parametrize("flag", ["load_8bit", "load_4bit"])
def test_quantization_without_bitsandbytes_says_what_to_install(checkpoints, flag):
    with pytest.raises(ImportError, match=r"pip install bitsandbytes"):
        load_pretrained_model(checkpoints["full"], None, "pixelrefer", **{flag: True})


def test_non_pixelrefer_checkpoint_is_refused(tmp_path, checkpoints):
    Qwen2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1).save_pretrained(
        tmp_path
    )
    with pytest.raises(ValueError, match=r"model: .* holds a 'qwen2' checkpoint; expected a PixelRefer one"):
        load_pretrained_model(tmp_path, None, "llava-v1.5-7b")
    with pytest.raises(ValueError, match=r"adapter_config\.json"):
        load_pretrained_model(checkpoints["lite"], checkpoints["full"], "pixelrefer-lora")


def test_lora_adapter_is_merged_into_the_base(tmp_path, checkpoints, scenes):
    from peft import LoraConfig, get_peft_model

    base_dir = checkpoints["full"]
    base = AutoModelForImageTextToText.from_pretrained(base_dir, dtype=torch.float32, attn_implementation="sdpa")
    config = LoraConfig(r=2, target_modules=r"^model\.language_model\.layers\.\d+\.self_attn\.(q|v)_proj$")
    peft_model = get_peft_model(base, config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    peft_model.save_pretrained(tmp_path / "adapter")
    peft_model.eval()

    tokenizer, model, processor, _ = load_pretrained_model(
        str(tmp_path / "adapter"), str(base_dir), "pixelrefer-lora", device="cpu"
    )
    assert not any("lora" in name for name, _ in model.named_parameters())
    image, objects = scenes[0]
    inputs = processor(text=llava_prompt("pixelrefer", QUESTION), images=image, regions=[{"box": objects[0].box}])
    with torch.no_grad():
        expected = peft_model(**inputs).logits
        merged = model(**inputs).logits
        with peft_model.disable_adapter():
            plain = peft_model(**inputs).logits
    torch.testing.assert_close(merged, expected, atol=1e-5, rtol=0)
    assert (plain - expected).abs().max() > 1e-2  # the adapter changes the output, so the comparison means something


REGISTRATION_CHECK = textwrap.dedent(
    """
    import importlib, json, sys
    from pathlib import Path

    sys.path.insert(0, sys.argv[1])
    import pixelrefer_plugin.integrations.llava as ours
    import llava.conversation

    registered = {name: llava.conversation.conv_templates[name] is ours.conv_templates[name]
                  for name in ("pixelrefer", "pixelrefer_qwen2", "pixelrefer_lite_qwen2")}
    conv = llava.conversation.conv_templates["pixelrefer"].copy()
    conv.append_message(conv.roles[0], "<image>\\nWhat is <region>?")
    conv.append_message(conv.roles[1], None)

    # A `llava` without a conversation module (like the empty PyPI placeholder): nothing is registered.
    sys.path[0] = sys.argv[2]
    for name in [name for name in sys.modules if name == "llava" or name.startswith("llava.")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    print(json.dumps({"at_import": ours.LLAVA_REGISTERED, "registered": registered, "prompt": conv.get_prompt(),
                      "placeholder": ours.register_with_llava()}))
    """
)


def test_registration_into_an_installed_llava_package(tmp_path):
    with_conversation = tmp_path / "with_conversation" / "llava"
    with_conversation.mkdir(parents=True)
    (with_conversation / "__init__.py").write_text("")
    (with_conversation / "conversation.py").write_text("conv_templates = {}\n")
    placeholder = tmp_path / "placeholder" / "llava"
    placeholder.mkdir(parents=True)
    (placeholder / "__init__.py").write_text("")

    result = subprocess.run(
        [sys.executable, "-c", REGISTRATION_CHECK, str(with_conversation.parent), str(placeholder.parent)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["at_import"] is True
    assert report["registered"] == {"pixelrefer": True, "pixelrefer_qwen2": True, "pixelrefer_lite_qwen2": True}
    assert report["prompt"] == "<|im_start|>user\n<image>\nWhat is <region>?<|im_end|>\n<|im_start|>assistant\n"
    assert report["placeholder"] is False


@pytest.mark.skipif(importlib.util.find_spec("llava") is not None, reason="a llava package is installed")
def test_no_llava_package_registers_nothing():
    assert register_with_llava() is False
