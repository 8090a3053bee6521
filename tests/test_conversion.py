# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Released checkpoints -> plugin checkpoints: tensors, semantics, refusals, and `pixelrefer build` from the hub cache."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import REMOTE_SCRIPT
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor

from pixelrefer_plugin.checkpoint_folders import OutputFolderError
from pixelrefer_plugin.cli import main as cli_main
from pixelrefer_plugin.configuration_pixelrefer import vision_config_from_released
from pixelrefer_plugin.conversion import ConversionError, convert_released_checkpoint
from pixelrefer_plugin.presets import build_model_and_processor
from pixelrefer_plugin.region_geometry import position_grids
from pixelrefer_plugin.testing.released_layout import write_released_checkpoint


@pytest.fixture(scope="module")
def models():
    """Tiny full and Lite models with position_axis_swap on, as the released weights were trained."""
    built = {}
    for variant, name in (("full", "pixelrefer-tiny"), ("lite", "pixelrefer-lite-tiny")):
        model, processor = build_model_and_processor(name, seed=1)
        model.config.position_axis_swap = True
        model.model.object_tokenizer.position_axis_swap = True
        built[variant] = (model, processor)
    return built


def converted_tensors(path):
    tensors = {}
    for file in sorted(path.glob("*.safetensors")):
        tensors.update(load_file(file))
    return tensors


@pytest.mark.parametrize("variant", ["full", "lite"])
@pytest.mark.parametrize("vision_layout", ["nested", "flat"])
@pytest.mark.parametrize("weights, shards", [("bin", 1), ("safetensors", 1), ("bin", 3), ("safetensors", 2)])
def test_every_tensor_lands_where_it_should(models, tmp_path, variant, vision_layout, weights, shards):
    model, processor = models[variant]
    source = write_released_checkpoint(
        model, processor.tokenizer, tmp_path / "released", vision_layout, weights, shards
    )
    out = convert_released_checkpoint(source, tmp_path / "converted")
    tensors = converted_tensors(out)
    expected = model.state_dict()
    tied = model.config.tie_word_embeddings
    assert set(tensors) == set(expected) - ({"lm_head.weight"} if tied else set())
    for name, tensor in tensors.items():
        assert torch.equal(tensor, expected[name]), name
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "pixelrefer" and config["variant"] == variant
    assert config["position_axis_swap"] is True
    assert config["region_grid_rounding"] == ("opencv_any" if variant == "lite" else "uint8")
    assert config["kmeans_iters"] == (3 if variant == "lite" else 5)
    assert config["region_crop_rule"] == variant
    assert config["region_token_id"] == processor.tokenizer.convert_tokens_to_ids("<REGION>")


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_converted_checkpoint_uses_the_exact_released_grid_rules(models, tmp_path, variant):
    model, processor = models[variant]
    source = write_released_checkpoint(model, processor.tokenizer, tmp_path / "released")
    out = convert_released_checkpoint(source, tmp_path / "converted")
    exact = "opencv_any" if variant == "lite" else "uint8"
    assert json.loads((out / "config.json").read_text())["region_grid_rounding"] == exact
    assert json.loads((out / "processor_config.json").read_text())["region_grid_rounding"] == exact
    assert AutoProcessor.from_pretrained(out, trust_remote_code=True).region_grid_rounding == exact
    # the presets the released-layout checkpoint was written from keep their float rules
    assert processor.region_grid_rounding == ("any" if variant == "lite" else "separable")


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_converted_checkpoint_loads_without_the_plugin_and_generates(models, tmp_path, variant):
    model, processor = models[variant]
    source = write_released_checkpoint(model, processor.tokenizer, tmp_path / "released", "nested", "bin")
    out = convert_released_checkpoint(source, tmp_path / "converted")
    image = np.random.default_rng(0).integers(0, 255, (140, 180, 3), dtype=np.uint8)
    np.save(tmp_path / "image.npy", image)
    (tmp_path / "remote.py").write_text(REMOTE_SCRIPT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "remote.py", str(out), "image.npy", "out.pt"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    remote = torch.load(tmp_path / "out.pt")
    assert remote["generated"].shape[1] == remote["input_ids"].shape[1] + 4
    # the converted model computes what the source model computes
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is <region>?"}]}],
        add_generation_prompt=True,
    )
    inputs = processor(text=prompt, images=image, regions=[{"box": [20, 30, 90, 100]}])
    with torch.no_grad():
        assert torch.allclose(model(**inputs).logits, remote["logits"], atol=1e-5)


def rectangle_mask(rows, cols, top=100, left=120, size=(480, 640)):
    mask = np.zeros(size, dtype=bool)
    mask[top : top + rows, left : left + cols] = True
    return mask


# Hand-computed from the released rules for filled rectangles at (top 100, left 120) in a 640 x 480 image.
# full: crop box bottom/right = min(size - 1, edge + 28), exclusive; shrink above 100 patches; tokens <= 32.
# lite: crop box one pixel larger (exclusive end = edge + 1 + 28); shrink above 50 patches; always 32 tokens.
RELEASED_GEOMETRY = {
    "full": {
        (20, 20): ((72, 92, 147, 167), (22, 22), 32),
        (100, 100): ((72, 92, 227, 247), (12, 12), 32),
        (250, 400): ((72, 92, 377, 547), (10, 15), 32),
        (6, 6): ((72, 92, 133, 153), (61, 61), 32),  # s = ceil(sqrt(6272 / 36)) = 14: crop 61 -> 854 px
    },
    "lite": {
        (20, 20): ((72, 92, 147, 167), (22, 22), 32),  # position box has inclusive ends: 148 - 1, 168 - 1
        (100, 100): ((72, 92, 227, 247), (12, 12), 32),
        (250, 400): ((72, 92, 377, 547), (7, 11), 32),
        (6, 6): ((72, 92, 133, 153), (62, 62), 32),  # crop 62 (one pixel more) x 14
    },
}


@pytest.mark.parametrize("variant", ["full", "lite"])
@pytest.mark.parametrize("swap", [True, False])
def test_converted_model_follows_the_released_geometry(models, tmp_path, variant, swap):
    model, processor = models[variant]
    source = write_released_checkpoint(model, processor.tokenizer, tmp_path / "released")
    out = convert_released_checkpoint(source, tmp_path / "converted", position_axis_swap=swap)
    converted = AutoModelForImageTextToText.from_pretrained(out, trust_remote_code=True)
    converted_processor = AutoProcessor.from_pretrained(out, trust_remote_code=True)
    assert converted.config.position_axis_swap is swap
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    for (rows, cols), (box, grid, tokens) in RELEASED_GEOMETRY[variant].items():
        prompt = "<region>" if variant == "lite" else "<image><region>"
        inputs = converted_processor(text=prompt, images=image, regions=[{"mask": rectangle_mask(rows, cols)}])
        assert tuple(inputs["region_boxes"][0].tolist()) == box, (rows, cols)
        assert tuple(inputs["region_grid_thw"][0, 1:].tolist()) == grid, (rows, cols)
        with torch.no_grad():
            output = converted(**inputs)
        assert output.object_tokens_per_region.tolist() == [tokens]
        cells = int(inputs["region_grid_mask"].sum())
        assert tokens == (32 if variant == "lite" else min(32, cells))
        # the position grid the model adds follows the flag: channel 0 spans the crop's rows when swapped
        positions = position_grids(
            inputs["region_grid_thw"][:, 1:], inputs["region_boxes"], inputs["region_image_sizes"], swap
        ).reshape(*grid, 2)
        top, left, bottom, right = box
        first = (bottom - top) if swap else (right - left)
        step = first / grid[1] / 639
        assert positions[0, 1, 0] - positions[0, 0, 0] == pytest.approx(step, rel=1e-5)


def test_vision_config_comes_from_the_checkpoint_or_the_released_defaults():
    assert vision_config_from_released({"mm_hidden_size": 1152})["num_hidden_layers"] == 27
    own = vision_config_from_released({"vision_encoder_config": {"hidden_size": 64, "num_hidden_layers": 3}})
    assert (own["hidden_size"], own["num_hidden_layers"], own["patch_size"]) == (64, 3, 14)


def released_copy(models, tmp_path, variant="full", weights="safetensors"):
    model, processor = models[variant]
    return write_released_checkpoint(model, processor.tokenizer, tmp_path / "released", "nested", weights)


def test_refuses_unknown_model_type(models, tmp_path):
    source = released_copy(models, tmp_path)
    config = json.loads((source / "config.json").read_text())
    config["model_type"] = "llava_qwen"
    (source / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match="unknown model_type 'llava_qwen'"):
        convert_released_checkpoint(source, tmp_path / "out")


def test_refuses_missing_keys_and_lists_them(models, tmp_path):
    source = released_copy(models, tmp_path)
    tensors = load_file(source / "model.safetensors")
    del tensors["model.region_encoder.pos_linear.weight"], tensors["model.norm.weight"]
    from safetensors.torch import save_file

    save_file(tensors, source / "model.safetensors")
    with pytest.raises(ConversionError, match="missing") as error:
        convert_released_checkpoint(source, tmp_path / "out")
    assert "model.object_tokenizer.pos_linear.weight" in str(error.value)
    assert "model.language_model.norm.weight" in str(error.value)


def test_refuses_unexpected_keys_and_lists_them(models, tmp_path):
    source = released_copy(models, tmp_path)
    tensors = load_file(source / "model.safetensors")
    tensors["model.mm_projector.extra.weight"] = torch.zeros(2)
    tensors["model.something_else"] = torch.zeros(2)
    from safetensors.torch import save_file

    save_file(tensors, source / "model.safetensors")
    with pytest.raises(ConversionError, match="unexpected keys") as error:
        convert_released_checkpoint(source, tmp_path / "out")
    assert "model.mm_projector.extra.weight" in str(error.value) and "model.something_else" in str(error.value)


def test_refuses_shape_mismatches(models, tmp_path):
    source = released_copy(models, tmp_path)
    tensors = load_file(source / "model.safetensors")
    tensors["model.region_encoder.feat_linear.0.weight"] = torch.zeros(3, 3)
    from safetensors.torch import save_file

    save_file(tensors, source / "model.safetensors")
    with pytest.raises(ConversionError, match=r"shape mismatches: model\.object_tokenizer\.feat_linear\.0\.weight"):
        convert_released_checkpoint(source, tmp_path / "out")


class NotATensor:
    """Pickled into a `.bin` file: loading it must not run or construct it."""


def test_refuses_pickled_code_in_bin_files(models, tmp_path):
    source = released_copy(models, tmp_path, weights="bin")
    state = torch.load(source / "pytorch_model.bin", weights_only=True)
    state["model.norm.weight"] = NotATensor()
    torch.save(state, source / "pytorch_model.bin")
    with pytest.raises(ConversionError, match="weights_only=True"):
        convert_released_checkpoint(source, tmp_path / "out")


def test_refuses_folders_without_config_or_weights_and_non_empty_outputs(models, tmp_path):
    with pytest.raises(ConversionError, match="no config.json"):
        convert_released_checkpoint(tmp_path, tmp_path / "out")
    source = released_copy(models, tmp_path)
    (source / "model.safetensors").unlink()
    with pytest.raises(ConversionError, match="holds no weights"):
        convert_released_checkpoint(source, tmp_path / "out")
    source = released_copy(models, tmp_path)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file").write_text("x")
    with pytest.raises(OutputFolderError, match="not empty"):
        convert_released_checkpoint(source, busy)
    assert convert_released_checkpoint(source, busy, overwrite=True) == busy


def test_convert_command(models, tmp_path, capsys):
    source = released_copy(models, tmp_path)
    assert cli_main(["convert", str(source), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "modeling_pixelrefer.py").exists()
    assert cli_main(["convert", str(tmp_path / "nothing"), "--out", str(tmp_path / "out2")]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_build_downloads_and_converts_released_weights_from_the_hub_cache(models, tmp_path):
    """`pixelrefer build pixelrefer-lite-2b` with the hub offline reads the local hub cache (a real cache layout)."""
    model, processor = models["lite"]
    hf_home = tmp_path / "hf_home"
    repo = hf_home / "hub" / "models--Alibaba-DAMO-Academy--PixelRefer-Lite-2B"
    commit = "0" * 40
    write_released_checkpoint(model, processor.tokenizer, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home)}
    command = [sys.executable, "-m", "pixelrefer_plugin.cli", "build"]
    result = subprocess.run(
        [*command, "pixelrefer-lite-2b", "--out", str(tmp_path / "lite2b")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    converted = converted_tensors(tmp_path / "lite2b")
    assert torch.equal(converted["model.object_infusion.ln_local.weight"], model.model.object_infusion.ln_local.weight)
    # not cached: says exactly what to download and how to convert it
    result = subprocess.run(
        [*command, "pixelrefer-7b", "--out", str(tmp_path / "x")], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1  # the input is fine, the hub is not there
    assert "hf download Alibaba-DAMO-Academy/PixelRefer-7B" in result.stderr
    assert "pixelrefer convert pixelrefer-7b-released --out" in result.stderr
