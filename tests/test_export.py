# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Registration with the Auto classes and self-contained trust_remote_code checkpoints."""

import ast
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import REMOTE_SCRIPT
from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

import pixelrefer_plugin
from pixelrefer_plugin import (
    PixelReferConfig,
    PixelReferForConditionalGeneration,
    PixelReferModel,
    PixelReferProcessor,
)
from pixelrefer_plugin.presets import build_model_and_processor

ALLOWED_IMPORTS = {
    "__future__",
    "torch",
    "numpy",
    "transformers",
    "PIL",
    "pycocotools",
    "logging",
    "re",
    "math",
    "dataclasses",
    "inspect",
    "packaging",
    "cv2",
    "collections",
    "typing",
    "pathlib",
    "os",
}


def test_import_registers_auto_classes():
    config = AutoConfig.for_model("pixelrefer")
    assert isinstance(config, PixelReferConfig)
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING, MODEL_MAPPING
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    assert MODEL_MAPPING[PixelReferConfig] is PixelReferModel
    assert MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING[PixelReferConfig] is PixelReferForConditionalGeneration
    assert PROCESSOR_MAPPING[PixelReferConfig] is PixelReferProcessor
    assert pixelrefer_plugin.__version__


def test_saved_checkpoint_is_self_contained(tiny, tmp_path):
    model, processor = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "pixelrefer"
    assert (
        config["auto_map"]["AutoModelForImageTextToText"] == "modeling_pixelrefer.PixelReferForConditionalGeneration"
    )
    # remote code: AutoModel is the generating model (the installed package keeps AutoModel -> PixelReferModel)
    assert config["auto_map"]["AutoModel"] == "modeling_pixelrefer.PixelReferForConditionalGeneration"
    processor_config = json.loads((tmp_path / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_pixelrefer.PixelReferProcessor"
    for name in (
        "configuration_pixelrefer",
        "modeling_pixelrefer",
        "processing_pixelrefer",
        "object_tokenizer",
        "region_geometry",
        "region_settings",
        "region_masks",
        "image_loading",
        "errors",
    ):
        tree = ast.parse((tmp_path / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                # only single-dot relative imports of sibling files, or third-party absolute imports
                assert node.level in (0, 1), (name, node.module)
                assert node.level == 1 or node.module.split(".")[0] in ALLOWED_IMPORTS, (name, node.module)
            elif isinstance(node, ast.Import):
                assert all(alias.name.split(".")[0] in ALLOWED_IMPORTS for alias in node.names), name
    assert (tmp_path / "chat_template.jinja").exists()


def test_in_process_reload_gives_identical_logits(tiny, tmp_path, scenes):
    model, processor = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path)
    reprocessor = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(reloaded, PixelReferForConditionalGeneration) and isinstance(reprocessor, PixelReferProcessor)
    image, objects = scenes[0]
    inputs = processor(text="<image><region>", images=image, regions=[{"mask": objects[0].mask}])
    again = reprocessor(text="<image><region>", images=image, regions=[{"mask": objects[0].mask}])
    assert all(torch.equal(inputs[k], again[k]) for k in inputs)
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, reloaded(**inputs).logits)
    assert isinstance(AutoModel.from_pretrained(tmp_path), PixelReferModel)


@pytest.mark.parametrize("preset", ["pixelrefer-tiny", "pixelrefer-lite-tiny"])
def test_trust_remote_code_round_trip_without_the_plugin(preset, tmp_path):
    model, processor = build_model_and_processor(preset)
    checkpoint = tmp_path / "checkpoint"
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    for name in ("object_infusion", "video_decoding", "region_inputs"):
        assert (checkpoint / f"{name}.py").exists(), name
    image = np.random.default_rng(0).integers(0, 255, (140, 180, 3), dtype=np.uint8)
    np.save(tmp_path / "image.npy", image)
    script = tmp_path / "remote.py"
    script.write_text(REMOTE_SCRIPT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, str(script), str(checkpoint), str(tmp_path / "image.npy"), str(tmp_path / "out.pt")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["model"].startswith("transformers_modules.")  # code came from the checkpoint, not the plugin
    assert loaded["processor"].startswith("transformers_modules.")
    assert loaded["base"] == "PixelReferForConditionalGeneration"
    assert loaded["variant"] == model.config.variant

    remote = torch.load(tmp_path / "out.pt")
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is <region>?"}]}],
        add_generation_prompt=True,
    )
    inputs = processor(text=prompt, images=image, regions=[{"box": [20, 30, 90, 100]}])
    assert torch.equal(inputs["input_ids"], remote["input_ids"])
    with torch.no_grad():
        # Two processes: the same code and weights, but float sums may round apart in the last bit now and then (seen
        # under heavy load, ~1 run in 10), so the logits are compared to float precision, not bit for bit.
        torch.testing.assert_close(model(**inputs).logits, remote["logits"], rtol=1e-5, atol=1e-6)
    generated = model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert torch.equal(generated, remote["generated"])
    assert torch.equal(generated, remote["auto_generated"])
