# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""One runtime policy for every entry point: devices, dtypes, variants and placeholders (`pixelrefer_plugin.runtime`),
and one loading path (`pixelrefer_plugin.loading`)."""

import inspect
import subprocess
import sys

import pytest
import torch
from random_checkpoints import build_checkpoint

from pixelrefer_plugin import PixelReferProcessor
from pixelrefer_plugin.describe import load_model
from pixelrefer_plugin.errors import PixelReferInputError
from pixelrefer_plugin.integrations.llava import load_pretrained_model
from pixelrefer_plugin.loading import context_length, load_pretrained
from pixelrefer_plugin.prompts import DLC_BENCH
from pixelrefer_plugin.runtime import (
    DTYPES,
    IMAGE_PLACEHOLDER,
    REGION_PLACEHOLDER,
    REGION_TOKEN,
    VIDEO_PLACEHOLDER,
    VIDEO_TOKEN,
    check_variant,
    resolve_attn_implementation,
    resolve_device,
    resolve_dtype,
)

NO_CUDA = not torch.cuda.is_available()
# requests this machine cannot serve: every CUDA device without CUDA, a GPU index past the last one with it
UNAVAILABLE = ["cuda", "cuda:7"] if NO_CUDA else [f"cuda:{torch.cuda.device_count() + 6}"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_checkpoint("pixelrefer-tiny", tmp_path_factory.mktemp("runtime_policy") / "tiny")


def _lmms_model(checkpoint, device):
    pytest.importorskip("lmms_eval")
    from pixelrefer_plugin.integrations.lmms_eval.model import PixelReferSimple

    return PixelReferSimple(pretrained=str(checkpoint), device=device)


ENTRY_POINTS = {
    "describe": lambda checkpoint, device: load_model(checkpoint, device),
    "llava": lambda checkpoint, device: load_pretrained_model(checkpoint, None, "pixelrefer", device=device),
    "llava-device-map": lambda checkpoint, device: load_pretrained_model(
        checkpoint, None, "pixelrefer", device_map={"": device}
    ),
    "lmms-eval": _lmms_model,
}


@pytest.mark.parametrize("device", UNAVAILABLE)
def test_an_unavailable_device_is_the_same_error_everywhere(checkpoint, device):
    errors = {}
    for name, load in ENTRY_POINTS.items():
        with pytest.raises(PixelReferInputError) as raised:
            load(checkpoint, device)
        errors[name] = raised.value
    expected = errors["describe"]
    assert expected.argument == "device" and str(expected).startswith(f"device: {device!r} asks for ")
    for name, error in errors.items():
        assert (type(error), str(error)) == (type(expected), str(expected)), name


@pytest.mark.parametrize("device", UNAVAILABLE)
def test_describe_cli_names_the_device_flag_in_one_line(checkpoint, tmp_path, device):
    import numpy as np
    from PIL import Image

    Image.fromarray(np.zeros((32, 48, 3), dtype=np.uint8)).save(tmp_path / "black.png")
    args = ["--model", str(checkpoint), "--image", str(tmp_path / "black.png"), "--box", "1,1,20,20"]
    done = subprocess.run(
        [sys.executable, "-m", "pixelrefer_plugin.cli", "describe", *args, "--device", device],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"pixelrefer describe: error: --device {device!r}: asks ")


def test_auto_picks_the_best_available_device():
    best = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == resolve_device("auto") == best
    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_a_gpu_index_past_the_last_gpu_is_refused(monkeypatch):
    # a machine with one GPU, seen through the two calls the policy asks; no CUDA call is made
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(PixelReferInputError, match=r"^device: 'cuda:7' asks for GPU 7; there are 1 GPU\(s\)$"):
        resolve_device("cuda:7")


@pytest.mark.parametrize(
    ("device", "expected"), [("gpu", "is not a device name"), ("cuda:x", "is not a device name"), ("meta", None)]
)
def test_device_names(device, expected):
    if expected is None:
        assert resolve_device(device) == torch.device(device)
        return
    with pytest.raises(PixelReferInputError, match=f"^device: {str(device)!r} {expected}"):
        resolve_device(device)


def test_dtype_policy():
    assert resolve_dtype(None, "cpu") == resolve_dtype("auto", "cpu") == torch.float32
    for name in ("bf16", "bfloat16"):
        assert resolve_dtype(name, "cpu") == torch.bfloat16
    for name in ("fp16", "half", "float16"):
        assert resolve_dtype(name, "cpu") == torch.float16
    assert resolve_dtype(torch.float64, "cpu") == torch.float64
    assert set(DTYPES.values()) == {torch.float32, torch.bfloat16, torch.float16}
    with pytest.raises(PixelReferInputError, match=r"^dtype: 'int8'; expected one of 'auto', 'float32'"):
        resolve_dtype("int8", "cpu")


def test_flash_attention_falls_back_to_the_devices_kernel_off_cuda():
    assert resolve_attn_implementation(None, "cpu") == resolve_attn_implementation("auto", "cpu") == "sdpa"
    assert resolve_attn_implementation("flash_attention_2", "cpu") == "sdpa"
    assert resolve_attn_implementation("eager", "cpu") == "eager"


def test_variants_are_checked_once():
    assert check_variant("full") == "full" and check_variant("lite") == "lite"
    for check in (check_variant, DLC_BENCH.for_variant):
        with pytest.raises(ValueError, match=r"variant must be one of \('full', 'lite'\), got 'large'"):
            check("large")


def test_placeholders_are_the_processors_defaults():
    """The exported processor spells its defaults out (it cannot import the package); they must agree."""
    defaults = {name: p.default for name, p in inspect.signature(PixelReferProcessor.__init__).parameters.items()}
    assert defaults["region_placeholder"] == REGION_PLACEHOLDER
    assert defaults["image_token"] == IMAGE_PLACEHOLDER
    assert defaults["video_placeholder"] == VIDEO_PLACEHOLDER
    assert defaults["region_token"] == REGION_TOKEN
    assert defaults["video_token"] == VIDEO_TOKEN


def test_load_pretrained_gives_the_model_and_processor_by_the_policy(checkpoint):
    model, processor = load_pretrained(checkpoint, device="auto", dtype="bf16", attn_implementation="eager")
    assert model.device.type == resolve_device(None).type and model.dtype == torch.bfloat16
    assert model.config._attn_implementation == "eager" and not model.training
    assert processor.variant == model.config.variant == "full"
    assert context_length(model.config) == model.config.get_text_config().max_position_embeddings
    model.config.max_sequence_length = 4096
    assert context_length(model.config) == 4096
