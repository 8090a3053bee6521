# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer describe --segmenter`: clicks and boxes become SAM 2 masks before the model reads them."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import build_checkpoint, run_describe
from PIL import Image
from tiny_sam2 import tiny_sam2_folder

from pixelrefer_plugin.cli import main
from pixelrefer_plugin.describe import describe, load_model, load_processor
from pixelrefer_plugin.segmentation import RegionSegmenter
from pixelrefer_plugin.visualize import draw_regions


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("segment-cli")
    image = np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(image).save(folder / "scene.png")
    return {
        "image": image,
        "scene": folder / "scene.png",
        "model": build_checkpoint("pixelrefer-tiny", folder / "model"),
        "segmenter": tiny_sam2_folder(folder),
        "folder": folder,
    }


def test_describe_with_segmenter_answers_about_the_sam_mask_and_draws_it(capsys, setup):
    overlay = setup["folder"] / "overlay.png"
    code, out, _ = run_describe(
        capsys,
        *("--model", setup["model"], "--image", setup["scene"], "--segmenter", setup["segmenter"]),
        *("--point", "40,30", "--point", "60,50", "--negative-point", "150,110", "--max-new-tokens", 4),
        *("--save-overlay", overlay),
    )
    assert code == 0
    prompt = {"points": [[40, 30], [60, 50]], "negative_points": [[150, 110]]}
    (region,) = RegionSegmenter.from_pretrained(setup["segmenter"], device="cpu").to_masks([prompt], [setup["image"]])
    model, processor = load_model(setup["model"], "cpu", "float32"), load_processor(setup["model"])
    expected = describe(model, processor, setup["image"], {"mask": region["mask"]}, max_new_tokens=4)
    assert out.strip() == expected.strip()
    drawn = np.asarray(Image.open(overlay).convert("RGB"))
    assert np.array_equal(drawn, np.asarray(draw_regions(setup["image"], [region], labels=["1"])))


def test_describe_segmenter_errors_name_the_flag(capsys, setup):
    base = ("--model", setup["model"], "--image", setup["scene"])
    code, _, err = run_describe(capsys, *base, "--segmenter", setup["segmenter"], "--point", "400,30")
    assert code != 0 and "--point '400,30': point [400.0, 30.0] lies outside the 160x120" in err
    assert "Traceback" not in err
    code, _, err = run_describe(capsys, *base, "--point", "4,3", "--point", "5,6")
    assert code != 0 and "several --point need --segmenter" in err
    code, _, err = run_describe(capsys, *base, "--segmenter", setup["segmenter"], "--mask", setup["scene"])
    assert code != 0 and "--segmenter" in err and "not --mask" in err


def test_build_knows_segmenter_presets_and_prints_the_download_offline(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    capsys.readouterr()
    code = main(["build", "sam2.1-hiera-large", "--out", str(tmp_path / "sam")])
    err = capsys.readouterr().err
    assert code == 1
    assert "could not download facebook/sam2.1-hiera-large" in err
    assert "hf download facebook/sam2.1-hiera-large --local-dir sam2.1-hiera-large" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
