# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Registry presets, `pixelrefer build`, the tiny tokenizer, and the YAMLs shipping inside the wheel."""

import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from pixelrefer_plugin import PixelReferForConditionalGeneration
from pixelrefer_plugin.cli import main as cli_main
from pixelrefer_plugin.presets import build_tiny_tokenizer, list_presets, load_preset
from pixelrefer_plugin.presets.builder import preset_config
from pixelrefer_plugin.region_settings import RegionSettings

REPO = Path(__file__).resolve().parents[1]


def test_registry_lists_the_named_models():
    expected = {
        "pixelrefer-2b",
        "pixelrefer-7b",
        "pixelrefer-tiny",
        "pixelrefer-lite-2b",
        "pixelrefer-lite-7b",
        "pixelrefer-lite-tiny",
    }
    assert expected <= set(list_presets())
    with pytest.raises(KeyError, match="known presets"):
        load_preset("pixelrefer-13b")


@pytest.mark.parametrize(
    "name, low, high, vision_width, text_width",
    [
        ("pixelrefer-2b", 1.9e9, 2.4e9, 1152, 1536),
        ("pixelrefer-7b", 7.8e9, 8.6e9, 1152, 3584),
        ("pixelrefer-lite-2b", 1.9e9, 2.4e9, 1152, 1536),
        ("pixelrefer-lite-7b", 7.8e9, 8.6e9, 1152, 3584),
    ],
)
def test_real_presets_have_the_published_sizes(name, low, high, vision_width, text_width):
    """Build the real-size architecture on the meta device (no memory) and count its parameters."""
    preset = load_preset(name)
    tokenizer = build_tiny_tokenizer()
    config = preset_config(preset, tokenizer)
    assert config.text_config.vocab_size == preset.text_config["vocab_size"]  # tokenizer is smaller: kept
    assert config.vision_config.hidden_size == vision_width and config.text_config.hidden_size == text_width
    lite = name.startswith("pixelrefer-lite")
    assert config.mask_num == 32 and config.position_axis_swap
    assert (config.kmeans_iters, config.region_max_patches) == ((3, 50) if lite else (5, 100))
    # random-init builds of the released architectures follow the released region rules, as converted weights do
    assert config.region_settings == RegionSettings.for_variant(preset.variant)
    with torch.device("meta"):
        model = PixelReferForConditionalGeneration(config)
    count = sum(p.numel() for p in model.parameters())
    assert low < count < high
    tokenizer_params = sum(p.numel() for p in model.model.object_tokenizer.parameters())
    pos_linear = 2 * vision_width + vision_width
    feat_linear = vision_width * text_width + text_width + text_width**2 + text_width
    assert tokenizer_params == pos_linear + feat_linear
    if lite:  # two LayerNorms and two 8-head cross-attentions at the vision width
        infusion_params = sum(p.numel() for p in model.model.object_infusion.parameters())
        assert config.oci_num_heads == 8
        assert infusion_params == 2 * (2 * vision_width + 4 * vision_width**2 + 4 * vision_width)
    else:
        assert model.model.object_infusion is None


def test_tiny_preset_forward_is_fast(tiny_model, tiny_processor, scenes):
    image, objects = scenes[0]
    inputs = tiny_processor(text="<image>\n<region>", images=image, regions=[{"mask": objects[0].mask}])
    with torch.no_grad():
        tiny_model(**inputs)  # warm-up
        start = time.perf_counter()
        tiny_model(**inputs)
    assert time.perf_counter() - start < 1.0


def test_tiny_tokenizer_has_special_tokens_and_is_reproducible():
    first, second = build_tiny_tokenizer(), build_tiny_tokenizer()
    assert first.get_vocab() == second.get_vocab()
    text = "<|im_start|>user\n<image>\nWhat colour is [<REGION><REGION>]?<|im_end|>"
    tokens = first.tokenize(text)
    for special in ("<|im_start|>", "<image>", "<REGION>", "<|im_end|>"):
        assert special in tokens
    assert first.decode(first.encode(text)) == text
    assert first.padding_side == "left"


def test_build_command_writes_a_loadable_checkpoint(tmp_path, scenes, capsys):
    out = tmp_path / "tiny"
    assert cli_main(["build", "pixelrefer-tiny", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "region settings other than the released behaviour: region_grid_rounding='separable', " in printed
    assert "region_budget_shared=False" in printed
    model = AutoModelForImageTextToText.from_pretrained(out, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(out, trust_remote_code=True)
    image, objects = scenes[0]
    inputs = processor(text="<image><region>", images=image, regions=[{"mask": objects[0].mask}])
    generated = model.generate(**inputs, max_new_tokens=2, min_new_tokens=2)
    assert generated.shape == (1, inputs["input_ids"].shape[1] + 2)


def test_random_init_of_a_real_preset_without_tokenizer_says_what_to_download(tmp_path, capsys):
    assert cli_main(["build", "pixelrefer-7b", "--out", str(tmp_path / "x"), "--random-init"]) == 2
    error = capsys.readouterr().err
    assert "Alibaba-DAMO-Academy/PixelRefer-7B" in error and "--tokenizer" in error
    assert cli_main(["build", "no-such-model", "--out", str(tmp_path / "y")]) == 2
    assert "known presets" in capsys.readouterr().err


def test_demo_quickstart_runs(caplog):
    import logging

    with caplog.at_level(logging.INFO):
        assert cli_main(["demo", "--quickstart"]) == 0
    assert "LLM input length" in caplog.text


def test_registry_yamls_ship_inside_the_wheel(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("pixelrefer_plugin-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for preset in list_presets():
        assert f"pixelrefer_plugin/registry/{preset}.yaml" in names
    assert "pixelrefer_plugin/modeling_pixelrefer.py" in names
    # the demo trains with a packaged recipe; the other recipes and DeepSpeed configs ship too
    assert "pixelrefer_plugin/recipes/demo-tiny.yaml" in names
    assert "pixelrefer_plugin/recipes/deepspeed/zero2.json" in names
    assert "pixelrefer_plugin/integrations/lmms_eval/tasks/pixelrefer_synthetic.yaml" in names
