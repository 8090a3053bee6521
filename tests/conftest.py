# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Fixtures shared by the tests; helpers the tests import are in `helpers.py`.

The tests never read or write the caches of the person running them: before anything is imported, every cache the
package, transformers and the hub client would use (`$XDG_CACHE_HOME`, default `~/.cache`, and the variables that
move parts of it) points into one temporary folder for the session, removed at its end.
"""

import os
import shutil
import tempfile

TEST_CACHE_HOME = tempfile.mkdtemp(prefix="pixelrefer-test-cache-")
# Compiled kernels are a build cache, not data a result could depend on: DeepSpeed's ops (CPU Adam, shared memory)
# are JIT-built once into torch's extension folder and reused, instead of minutes of compiling in every session.
os.environ.setdefault(
    "TORCH_EXTENSIONS_DIR",
    os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch_extensions"),
)
os.environ["XDG_CACHE_HOME"] = TEST_CACHE_HOME
for _variable in (
    "PIXELREFER_DEMO_DIR",
    "PIXELREFER_TASKS_DIR",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HF_DATASETS_CACHE",
    "TRANSFORMERS_CACHE",
    "TORCH_HOME",
):
    os.environ.pop(_variable, None)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from helpers import load_task_module  # noqa: E402

from pixelrefer_plugin.presets import build_model_and_processor  # noqa: E402
from pixelrefer_plugin.synthetic import make_scene  # noqa: E402


@pytest.fixture(scope="session")
def tiny():
    """(model, processor) of the tiny preset, random init, eval mode, float32."""
    model, processor = build_model_and_processor("pixelrefer-tiny", seed=0)
    return model, processor


@pytest.fixture(scope="session")
def tiny_model(tiny):
    return tiny[0]


@pytest.fixture(scope="session")
def tiny_processor(tiny):
    return tiny[1]


@pytest.fixture(scope="session")
def scenes():
    """Three synthetic scenes `(image, objects)` of different sizes."""
    return [
        make_scene(np.random.default_rng(1), size=(160, 224), num_objects=3),
        make_scene(np.random.default_rng(2), size=(128, 128), num_objects=3),
        make_scene(np.random.default_rng(3), size=(200, 150), num_objects=3),
    ]


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    """The materialised lmms-eval task folder (`pixelrefer tasks-path`), in a temporary `PIXELREFER_TASKS_DIR` that
    stays set for the module."""
    from pixelrefer_plugin.integrations.lmms_eval.task_dir import tasks_path

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIXELREFER_TASKS_DIR", str(tmp_path_factory.mktemp("tasks")))
        yield tasks_path()


@pytest.fixture(scope="module")
def task_utils(task_dir):
    """The task folder's `utils.py`, loaded from there as lmms-eval loads it."""
    return load_task_module(task_dir, "utils")


def pytest_addoption(parser):
    parser.addoption(
        "--device",
        default="cpu",
        choices=("cpu", "cuda"),
        help="device of the multi-process training tests (cuda: 2 processes need 2 GPUs)",
    )


def pytest_unconfigure(config):
    shutil.rmtree(TEST_CACHE_HOME, ignore_errors=True)
