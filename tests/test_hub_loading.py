# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Released checkpoints load as they are (load-time key renaming), and preset names resolve to their checkpoints."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
from transformers.core_model_loading import apply_renamings

from pixelrefer_plugin import PixelReferConfig, PixelReferForConditionalGeneration, PixelReferProcessor
from pixelrefer_plugin.configuration_pixelrefer import PixelReferLiteReleasedConfig, PixelReferReleasedConfig
from pixelrefer_plugin.conversion import convert_released_checkpoint, map_released_key
from pixelrefer_plugin.conversion.released import ConversionError, released_weight_renamings
from pixelrefer_plugin.presets import build_model_and_processor
from pixelrefer_plugin.presets.hub import resolve_pretrained
from pixelrefer_plugin.testing.released_layout import released_state_dict, write_released_checkpoint

PRESETS = {"full": "pixelrefer-tiny", "lite": "pixelrefer-lite-tiny"}


@pytest.fixture(scope="module")
def models():
    """Tiny full and Lite models with the position-axis swap of the released weights."""
    built = {}
    for variant, name in PRESETS.items():
        model, processor = build_model_and_processor(name, seed=3)
        model.config.position_axis_swap = True
        model.model.object_tokenizer.position_axis_swap = True
        built[variant] = (model, processor)
    return built


def region_inputs(processor, variant):
    image = np.random.default_rng(5).integers(0, 255, (150, 190, 3), dtype=np.uint8)
    content = [{"type": "text", "text": "What is <region>? And <region>?"}]
    if variant == "full":
        content.insert(0, {"type": "image"})
    prompt = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    mask = np.zeros((150, 190), dtype=bool)
    mask[40:90, 60:150] = True
    return processor(text=prompt, images=image, regions=[{"box": [20, 30, 90, 100]}, {"mask": mask}])


@pytest.mark.parametrize("variant", ["full", "lite"])
@pytest.mark.parametrize("weights, shards", [("bin", 1), ("safetensors", 1), ("bin", 3), ("safetensors", 2)])
def test_released_checkpoint_loads_directly_as_its_conversion(models, tmp_path, variant, weights, shards):
    model, processor = models[variant]
    source = write_released_checkpoint(model, processor.tokenizer, tmp_path / "released", "nested", weights, shards)
    converted_dir = convert_released_checkpoint(source, tmp_path / "converted")

    native = AutoModelForImageTextToText.from_pretrained(source)
    native_processor = AutoProcessor.from_pretrained(source)
    converted = AutoModelForImageTextToText.from_pretrained(converted_dir)
    converted_processor = AutoProcessor.from_pretrained(converted_dir)

    released_class = PixelReferReleasedConfig if variant == "full" else PixelReferLiteReleasedConfig
    assert type(native.config) is released_class and isinstance(native_processor, PixelReferProcessor)
    # the released settings, as `convert` writes them
    assert native.config.region_settings == converted.config.region_settings
    assert native.config.region_grid_rounding == ("uint8" if variant == "full" else "opencv_any")
    assert native.config.position_axis_swap is True
    assert native_processor.region_settings == converted_processor.region_settings
    assert native_processor.image_processor.size == converted_processor.image_processor.size
    assert native_processor.image_processor.size["longest_edge"] == 8192 * 14 * 14
    # every weight came from the checkpoint, none stayed at its initialisation
    expected = model.state_dict()
    for name, tensor in native.state_dict().items():
        assert torch.equal(tensor, expected[name]), name

    inputs = region_inputs(native_processor, variant)
    again = region_inputs(converted_processor, variant)
    assert inputs.keys() == again.keys() and all(torch.equal(inputs[k], again[k]) for k in inputs)
    with torch.no_grad():
        assert torch.equal(native(**inputs).logits, converted(**again).logits)


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_both_vision_layouts_and_a_saved_copy_load(models, tmp_path, variant):
    """The flat vision layout (VideoLLaMA3 conversions) loads too, and `save_pretrained` of a loaded released model
    writes the released names back (transformers' `save_original_format`), which load again."""
    model, processor = models[variant]
    source = write_released_checkpoint(model, processor.tokenizer, tmp_path / "released", "flat", "safetensors")
    native = PixelReferForConditionalGeneration.from_pretrained(source)
    inputs = region_inputs(PixelReferProcessor.from_pretrained(source), variant)
    native.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["model_type"] == native.config.model_type
    saved_keys = set(load_file(tmp_path / "saved" / "model.safetensors"))
    assert "model.region_encoder.pos_linear.weight" in saved_keys and "model.layers.0.mlp.up_proj.weight" in saved_keys
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path / "saved")
    with torch.no_grad():
        assert torch.equal(native(**inputs).logits, reloaded(**inputs).logits)
        assert torch.equal(model(**inputs).logits, native(**inputs).logits)


def test_one_table_of_renames_for_convert_and_for_loading(models):
    """`convert` and `from_pretrained` rename every released key to the same name."""
    for variant, (model, _) in models.items():
        renamings = released_weight_renamings()
        for key in released_state_dict(model, "nested").keys() | released_state_dict(model, "flat").keys():
            converted = map_released_key(key)
            if converted is not None:
                assert apply_renamings(key, renamings) == converted, (variant, key)
                assert converted in model.state_dict(), key
    # plugin-layout keys are left alone, so converted checkpoints and models built here are unaffected
    for key in models["lite"][0].state_dict():
        assert apply_renamings(key, released_weight_renamings()) == key


def test_released_config_translation(models, tmp_path):
    model, processor = models["lite"]
    source = write_released_checkpoint(model, processor.tokenizer, tmp_path / "released")
    config = AutoConfig.from_pretrained(source)
    assert isinstance(config, PixelReferLiteReleasedConfig) and isinstance(config, PixelReferConfig)
    assert (config.variant, config.oci_num_heads, config.kmeans_iters, config.region_max_patches) == ("lite", 8, 3, 50)
    assert config.text_config.hidden_size == model.config.text_config.hidden_size
    assert config.vision_config.num_hidden_layers == model.config.vision_config.num_hidden_layers
    assert config.region_token_id == processor.tokenizer.convert_tokens_to_ids("<REGION>")
    # the plugin's own config class reads a released config.json the same way
    assert PixelReferConfig.from_pretrained(source) == config


def test_released_processor_refuses_a_tokenizer_that_disagrees_with_the_config(models, tmp_path):
    model, processor = models["full"]
    source = write_released_checkpoint(model, processor.tokenizer, tmp_path / "released")
    config = json.loads((source / "config.json").read_text())
    config["region_token_index"] = 5
    (source / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ConversionError, match=r"<REGION> is 6 in the tokenizer but 5 in config.json.*pixelrefer convert"
    ):
        AutoProcessor.from_pretrained(source)


def test_resolve_pretrained_leaves_folders_and_hub_ids_alone(tmp_path, monkeypatch):
    assert resolve_pretrained("org/some-model") == "org/some-model"
    assert resolve_pretrained(tmp_path) == tmp_path
    assert resolve_pretrained("pixelrefer-tiny") == "pixelrefer-tiny"  # a preset without released weights
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pixelrefer-7b").mkdir()
    assert resolve_pretrained("pixelrefer-7b") == "pixelrefer-7b"  # a folder of that name wins
    with pytest.raises(OSError, match="hf download Alibaba-DAMO-Academy/PixelRefer-2B"):
        resolve_pretrained("pixelrefer-2b", local_files_only=True, cache_dir=tmp_path / "empty-cache")


# Runs with HF_HUB_OFFLINE=1 and a hub cache holding a released Lite-2B layout (tiny): preset names load from the cache,
# a preset that is not cached fails at once with the commands to run.
SHORT_NAMES_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import torch
    from pixelrefer_plugin import PixelReferForConditionalGeneration, PixelReferProcessor
    from pixelrefer_plugin.integrations.llava.builder import load_pretrained_model

    results = {}
    model = PixelReferForConditionalGeneration.from_pretrained("pixelrefer-lite-2b")
    processor = PixelReferProcessor.from_pretrained("pixelrefer-lite-2b")
    results["cached"] = [type(model.config).__name__, processor.region_grid_rounding]
    _, built, _, _ = load_pretrained_model("pixelrefer-lite-2b", None, None, device="cpu", torch_dtype="float32")
    results["builder_equal"] = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                                      built.state_dict().values()))
    loaders = {
        "model": lambda: PixelReferForConditionalGeneration.from_pretrained("pixelrefer-7b"),
        "processor": lambda: PixelReferProcessor.from_pretrained("pixelrefer-7b"),
        "builder": lambda: load_pretrained_model("pixelrefer-7b", None, None),
    }
    for name, load in loaders.items():
        start = time.perf_counter()
        try:
            load()
        except OSError as error:
            results[name] = [type(error).__name__, str(error), time.perf_counter() - start]
    print(json.dumps(results))
    """
)


def test_preset_names_load_from_the_hub_cache_and_fail_fast_offline(models, tmp_path):
    model, processor = models["lite"]
    hf_home = tmp_path / "hf_home"
    repo = hf_home / "hub" / "models--Alibaba-DAMO-Academy--PixelRefer-Lite-2B"
    commit = "1" * 40
    write_released_checkpoint(model, processor.tokenizer, repo / "snapshots" / commit, "nested", "bin", 2)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (tmp_path / "script.py").write_text(SHORT_NAMES_SCRIPT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home)}
    result = subprocess.run(
        [sys.executable, "script.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    assert results["cached"] == ["PixelReferLiteReleasedConfig", "opencv_any"]
    assert results["builder_equal"]
    for name in ("model", "processor", "builder"):
        kind, message, seconds = results[name]
        assert kind == "HubUnavailableError" and seconds < 1.0, (name, seconds)
        assert "hf download Alibaba-DAMO-Academy/PixelRefer-7B --local-dir pixelrefer-7b-released" in message
        assert "pixelrefer convert pixelrefer-7b-released --out pixelrefer-7b" in message
