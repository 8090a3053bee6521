# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`RegionSettings`: validation, serialisation, variant defaults, and loading of checkpoints saved with flat keys."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from helpers import TINY_TEXT_CONFIG
from transformers import AutoConfig, AutoProcessor

from pixelrefer_plugin import PixelReferConfig, PixelReferProcessor
from pixelrefer_plugin.presets import build_model_and_processor
from pixelrefer_plugin.region_settings import REGION_SETTING_NAMES, RegionSettings

# The region keys a checkpoint saved before the settings were grouped holds, with the released values per variant.
FLAT_KEYS = {
    "full": {
        "mask_num": 32,
        "region_context_patches": 2,
        "region_min_patches": 32,
        "region_max_patches": 100,
        "region_grid_rounding": "uint8",
        "region_crop_rule": "full",
        "kmeans_iters": 5,
        "kmeans_tol": 1e-6,
        "lite_local_size": 224,
        "lite_global_size": 336,
    },
    "lite": {
        "mask_num": 32,
        "region_context_patches": 2,
        "region_min_patches": 32,
        "region_max_patches": 50,
        "region_grid_rounding": "opencv_any",
        "region_crop_rule": "lite",
        "kmeans_iters": 3,
        "kmeans_tol": 1e-6,
        "lite_local_size": 224,
        "lite_global_size": 336,
    },
}

TINY_VISION = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "patch_size": 14}


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("mask_num", 0, "mask_num must be an integer >= 1"),
        ("mask_num", 2.5, "mask_num must be an integer"),
        ("region_context_patches", -1, "region_context_patches must be an integer >= 0"),
        ("region_min_patches", 0, "region_min_patches"),
        ("region_max_patches", True, "region_max_patches"),
        ("region_max_pixels", 0, "region_max_pixels"),
        ("point_size", 0, "point_size"),
        ("lite_local_size", "224", "lite_local_size"),
        ("kmeans_iters", 0, "kmeans_iters"),
        ("kmeans_tol", -1.0, "kmeans_tol"),
        (
            "region_grid_rounding",
            "nearest",
            r"region_grid_rounding must be one of \('separable', 'bilinear', 'any', 'uint8', 'opencv_any'\)",
        ),
        ("region_crop_rule", "mid", r"region_crop_rule must be one of \('full', 'lite'\)"),
    ],
)
def test_invalid_values_are_refused_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        RegionSettings(**{field: value})
    with pytest.raises(ValueError, match=message):
        PixelReferConfig(vision_config=TINY_VISION, text_config=TINY_TEXT_CONFIG, **{field: value})


def test_unknown_variant_and_unknown_keys_are_refused():
    with pytest.raises(ValueError, match=r"variant must be one of \('full', 'lite'\)"):
        RegionSettings.for_variant("medium")
    with pytest.raises(TypeError, match="region_max_patch"):
        RegionSettings.from_dict({"region_max_patch": 50})


def test_settings_are_frozen():
    settings = RegionSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.mask_num = 8
    assert settings.replace(mask_num=8).mask_num == 8 and settings.mask_num == 32
    with pytest.raises(ValueError, match="mask_num"):
        settings.replace(mask_num=0)


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_variant_defaults_are_the_released_values(variant):
    settings = RegionSettings.for_variant(variant)
    assert {name: getattr(settings, name) for name in FLAT_KEYS[variant]} == FLAT_KEYS[variant]
    assert settings.region_max_pixels is None and settings.point_size == 28
    assert RegionSettings.for_variant(variant, mask_num=16) == dataclasses.replace(settings, mask_num=16)


def test_full_variant_defaults_are_the_dataclass_defaults():
    assert RegionSettings.for_variant("full") == RegionSettings()


@pytest.mark.parametrize(
    "settings",
    [RegionSettings(), RegionSettings.for_variant("lite", region_max_pixels=1605632, point_size=10, kmeans_tol=0.0)],
)
def test_to_dict_from_dict_round_trip(settings):
    data = settings.to_dict()
    assert tuple(data) == REGION_SETTING_NAMES
    assert json.loads(json.dumps(data)) == data
    for variant in ("full", "lite"):  # every key is given, so the variant's defaults play no part
        assert RegionSettings.from_dict(data, variant=variant) == settings


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_variant_alone_implies_its_region_settings(variant):
    config = PixelReferConfig(vision_config=TINY_VISION, text_config=TINY_TEXT_CONFIG, variant=variant)
    assert config.region_settings == RegionSettings.for_variant(variant)


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_old_flat_config_keys_load_into_the_same_settings(variant, tmp_path):
    config = PixelReferConfig(vision_config=TINY_VISION, text_config=TINY_TEXT_CONFIG, variant=variant)
    saved = json.loads(config.to_json_string())
    for name in set(REGION_SETTING_NAMES) - set(FLAT_KEYS[variant]):
        saved.pop(name)  # keys the config did not write before
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert loaded.region_settings == RegionSettings.for_variant(variant)
    assert {name: getattr(loaded, name) for name in FLAT_KEYS[variant]} == FLAT_KEYS[variant]


def test_flat_keys_override_the_variant_defaults_and_are_saved_flat():
    config = PixelReferConfig(
        vision_config=TINY_VISION, text_config=TINY_TEXT_CONFIG, variant="lite", region_max_patches=100, mask_num=16
    )
    assert config.region_settings == RegionSettings.for_variant("lite", region_max_patches=100, mask_num=16)
    saved = config.to_dict()
    assert "region_settings" not in saved
    assert {name: saved[name] for name in REGION_SETTING_NAMES} == config.region_settings.to_dict()
    assert PixelReferConfig(**{**saved, "variant": "full"}).region_settings == config.region_settings


def test_flat_attributes_read_and_write_the_settings():
    config = PixelReferConfig(vision_config=TINY_VISION, text_config=TINY_TEXT_CONFIG)
    assert config.region_max_patches == config.region_settings.region_max_patches == 100
    config.mask_num = 8
    assert config.region_settings.mask_num == 8 and "mask_num" not in vars(config)
    with pytest.raises(ValueError, match="mask_num"):
        config.mask_num = 0
    assert config != PixelReferConfig(vision_config=TINY_VISION, text_config=TINY_TEXT_CONFIG)
    with pytest.raises(AttributeError, match="no_such_setting"):
        config.no_such_setting  # noqa: B018


@pytest.mark.parametrize("preset", ["pixelrefer-tiny", "pixelrefer-lite-tiny"])
def test_processor_saved_with_flat_keys_only_loads_unchanged(preset, tmp_path, scenes):
    _, processor = build_model_and_processor(preset)
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert "region_settings" not in saved
    assert {name: saved[name] for name in REGION_SETTING_NAMES} == processor.region_settings.to_dict()
    for name in ("kmeans_iters", "kmeans_tol"):
        saved.pop(name)  # keys the processor did not write before
    (tmp_path / "processor_config.json").write_text(json.dumps(saved))
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(reloaded, PixelReferProcessor)
    assert reloaded.region_settings == processor.region_settings
    image, objects = scenes[0]
    text = "<region>" if processor.variant == "lite" else "<image><region>"
    regions = [{"mask": objects[0].mask}, {"point": [5, 5]}]
    text = text + "<region>"
    inputs = processor(text=text, images=image, regions=regions)
    again = reloaded(text=text, images=image, regions=regions)
    assert inputs.keys() == again.keys() and all(torch.equal(inputs[k], again[k]) for k in inputs)


def test_processor_takes_settings_whole_or_as_flat_keywords(tmp_path):
    _, processor = build_model_and_processor("pixelrefer-lite-tiny")
    settings = processor.region_settings
    whole = PixelReferProcessor(
        processor.image_processor, processor.tokenizer, variant="lite", region_settings=settings
    )
    flat = PixelReferProcessor(processor.image_processor, processor.tokenizer, variant="lite", **settings.to_dict())
    assert whole.region_settings == flat.region_settings == settings
    default = PixelReferProcessor(processor.image_processor, processor.tokenizer, variant="lite")
    assert default.region_settings == RegionSettings.for_variant("lite")
    processor.save_pretrained(tmp_path)
    overridden = AutoProcessor.from_pretrained(tmp_path, region_max_patches=70)
    assert overridden.region_settings == settings.replace(region_max_patches=70)
    overridden.point_size = 10
    assert overridden.region_settings.point_size == 10


def test_object_tokenizer_reads_the_config_settings():
    from pixelrefer_plugin.object_tokenizer import PixelReferObjectTokenizer

    config = PixelReferConfig(vision_config=TINY_VISION, text_config=TINY_TEXT_CONFIG, variant="lite", mask_num=16)
    module = PixelReferObjectTokenizer(config)
    assert (module.mask_num, module.kmeans_iters, module.kmeans_tol) == (16, 3, 1e-6)
    assert np.isclose(config.kmeans_tol, 1e-6)


def test_differences_from_the_released_behaviour():
    assert RegionSettings.for_variant("lite", region_max_pixels=1000).differences_from_released("lite") == {}
    own = RegionSettings.for_variant("lite", lite_local_context="region", region_budget_shared=False)
    assert own.differences_from_released("lite") == {"region_budget_shared": False, "lite_local_context": "region"}
    # the Lite defaults measured against the full model's released behaviour
    assert set(RegionSettings.for_variant("lite").differences_from_released("full")) == {
        "region_max_patches",
        "region_grid_rounding",
        "region_crop_rule",
        "kmeans_iters",
    }
