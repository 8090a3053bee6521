# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""A corpus of bad inputs, as a harsh user types them, across every surface: processor, model, video, recipe loader,
data validator, converter, merge, lmms-eval model arguments and the command line.

Each case asserts the error's type and that the message names the argument at fault (and, for the typed errors, the
attribute that carries it: nothing parses a message). The command-line cases also assert one line on stderr, no
traceback, the exit status, and that no file the command was not told to write was touched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import user_prompt
from video_fixtures import moving_square, video_prompt, write_video

from pixelrefer_plugin.checkpoint_folders import OutputFolderError, UnsafeWeightsError
from pixelrefer_plugin.cli import main
from pixelrefer_plugin.conversion.released import ConversionError, convert_released_checkpoint
from pixelrefer_plugin.errors import (
    ImageInputError,
    ModelInputError,
    PixelReferInputError,
    RegionInputError,
    VideoInputError,
)
from pixelrefer_plugin.presets import build_preset
from pixelrefer_plugin.testing.released_layout import write_released_checkpoint
from pixelrefer_plugin.training.data import (
    DataFileError,
    DataValidationError,
    RegionConversationDataset,
    load_records,
)
from pixelrefer_plugin.training.merge import AdapterError, merge_adapter
from pixelrefer_plugin.training.recipe import RecipeError, load_recipe, parse_overrides

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "recipes" / "smoke-tiny.yaml"
SIZE = (96, 128)  # (H, W) of the image most cases use


@dataclass
class Case:
    """One bad input: `call(world)` must raise `error` whose message contains `names`; `attribute=value` (when set)
    is the typed field that carries the argument."""

    id: str
    call: Callable[[Any], Any]
    error: type[BaseException]
    names: str
    attribute: tuple[str, Any] | None = None


class World:
    """Everything the cases use, built once: the tiny processor and model, files on disk, a released checkpoint."""

    def __init__(self, model, processor, folder: Path):
        self.model = model
        self.processor = processor
        self.folder = folder
        rng = np.random.default_rng(0)
        self.image = rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)
        self.prompt = user_prompt(processor, "What is <region>?")
        self.video = write_video(folder / "clip.mp4", moving_square(4).frames, fps=2)
        self.video_prompt = video_prompt(processor, "What is <region>?")
        (folder / "not-a-video.mp4").write_text("plain text")
        (folder / "a-folder").mkdir()

    def process(self, text=None, images=None, regions=None, videos=None):
        return self.processor(text=text, images=images, regions=regions, videos=videos)

    def with_region(self, region: dict, images: Any = "default") -> Any:
        return self.process(self.prompt, self.image if images == "default" else images, [region])

    def with_image(self, image: Any) -> Any:
        return self.process(self.prompt, image, [{"box": [10, 10, 50, 50]}])

    def with_video(self, video: Any, frame: int = 0) -> Any:
        return self.process(self.video_prompt, videos=video, regions=[{"box": [4, 40, 20, 56], "frame": frame}])

    def inputs(self) -> dict[str, torch.Tensor]:
        return dict(self.with_region({"box": [10, 10, 50, 50]}))

    def forward(self, drop: tuple[str, ...] = (), **changes) -> Any:
        inputs = {key: value for key, value in self.inputs().items() if key not in drop}
        inputs.update(changes)
        with torch.no_grad():
            return self.model(**inputs)


def frames_video(**changes) -> dict:
    video = {"frames": list(moving_square(3).frames), "timestamps": [0.0, 0.5, 1.0]}
    video.update(changes)
    return video


PROCESSOR_CASES = [
    Case("text-none", lambda w: w.process(None, w.image, [{"box": [1, 1, 9, 9]}]), PixelReferInputError, "text"),
    Case("text-empty-no-media", lambda w: w.process(""), PixelReferInputError, "text"),
    Case("text-blank-in-batch", lambda w: w.process(["What?", "   "]), PixelReferInputError, "text[sample 1]"),
    Case(
        "typed-region-token",
        lambda w: w.process(w.prompt.replace("<region>", "<REGION>"), w.image),
        PixelReferInputError,
        "text[sample 0]",
    ),
    Case(
        "typed-video-pad",
        lambda w: w.process(w.prompt + "<|video_pad|>", w.image, [{"box": [1, 1, 9, 9]}]),
        PixelReferInputError,
        "text[sample 0]",
    ),
    Case("more-placeholders-than-regions", lambda w: w.process(w.prompt, w.image, []), PixelReferInputError, "text"),
    Case(
        "fewer-placeholders-than-regions",
        lambda w: w.process(w.prompt, w.image, [{"box": [1, 1, 9, 9]}, {"box": [2, 2, 9, 9]}]),
        PixelReferInputError,
        "text",
    ),
    Case(
        "image-placeholder-without-image",
        lambda w: w.process(user_prompt(w.processor, "What?")),
        PixelReferInputError,
        "text",
    ),
    Case(
        "images-not-one-per-prompt",
        lambda w: w.process(["<image>a", "<image>b"], [w.image, w.image, w.image]),
        PixelReferInputError,
        "images",
    ),
    Case("box-empty", lambda w: w.with_region({"box": [50, 50, 10, 10]}), RegionInputError, "regions[sample 0]"),
    Case("box-outside", lambda w: w.with_region({"box": [0, 0, 500, 50]}), RegionInputError, "regions[sample 0]"),
    Case("box-three-numbers", lambda w: w.with_region({"box": [0, 0, 5]}), RegionInputError, "regions"),
    Case("box-nan", lambda w: w.with_region({"box": [0, 0, float("nan"), 5]}), RegionInputError, "regions"),
    Case(
        "box-format-unknown",
        lambda w: w.with_region({"box": [0, 0, 5, 5], "box_format": "cxcywh"}),
        RegionInputError,
        "regions",
    ),
    Case("point-outside", lambda w: w.with_region({"point": [-3, 10]}), RegionInputError, "regions"),
    Case("mask-wrong-shape", lambda w: w.with_region({"mask": np.ones((10, 10), bool)}), RegionInputError, "regions"),
    Case("mask-empty", lambda w: w.with_region({"mask": np.zeros(SIZE, bool)}), RegionInputError, "regions"),
    Case(
        "float-mask-with-nan",
        lambda w: w.with_region({"mask": np.where(np.eye(*SIZE) > 0, np.nan, 1.0)}),
        RegionInputError,
        "regions[sample 0][region 0]",
    ),
    Case("mask-a-string", lambda w: w.with_region({"mask": "mask.png"}), RegionInputError, "regions"),
    Case("region-unknown-key", lambda w: w.with_region({"bbox": [0, 0, 5, 5]}), RegionInputError, "regions"),
    Case(
        "region-two-kinds",
        lambda w: w.with_region({"box": [0, 0, 5, 5], "point": [1, 1]}),
        RegionInputError,
        "regions",
    ),
    Case(
        "rle-bad-counts",
        lambda w: w.with_region({"rle": {"size": list(SIZE), "counts": "!!"}}),
        RegionInputError,
        "regions",
    ),
    Case(
        "rle-other-size",
        lambda w: w.with_region({"rle": {"size": [4, 4], "counts": [16]}}),
        RegionInputError,
        "regions",
    ),
    Case("polygon-two-points", lambda w: w.with_region({"polygon": [[1, 1, 5, 5]]}), RegionInputError, "regions"),
    Case(
        "image-index-out-of-range",
        lambda w: w.with_region({"box": [0, 0, 5, 5], "image": 2}),
        RegionInputError,
        "regions",
    ),
    Case(
        "region-without-image",
        lambda w: w.process(user_prompt(w.processor, "<region>?", image=False), None, [{"box": [0, 0, 5, 5]}]),
        RegionInputError,
        "regions",
    ),
    Case(
        "region-negative-frame",
        lambda w: w.with_region({"box": [0, 0, 5, 5], "frame": -1}),
        RegionInputError,
        "regions",
    ),
    Case("image-missing-file", lambda w: w.with_image(w.folder / "missing.png"), ImageInputError, "images[sample 0]"),
    Case("image-a-folder", lambda w: w.with_image(w.folder / "a-folder"), ImageInputError, "images[sample 0]"),
    Case(
        "float-image-with-nan",
        lambda w: w.with_image(np.where(np.eye(*SIZE)[..., None] > 0, np.nan, 0.5).repeat(3, -1)),
        ImageInputError,
        "images[sample 0][image 0]",
    ),
    Case("float-image-above-255", lambda w: w.with_image(np.full((*SIZE, 3), 300.0)), ImageInputError, "images"),
    Case("int-image-above-255", lambda w: w.with_image(np.full((*SIZE, 3), 300, np.int32)), ImageInputError, "images"),
    Case("image-negative", lambda w: w.with_image(np.full((*SIZE, 3), -1.0)), ImageInputError, "images"),
    Case("image-five-channels", lambda w: w.with_image(np.zeros((*SIZE, 5), np.uint8)), ImageInputError, "images"),
    Case("image-bool", lambda w: w.with_image(np.ones((*SIZE, 3), bool)), ImageInputError, "images"),
]

VIDEO_CASES = [
    Case("video-missing-file", lambda w: w.with_video(w.folder / "missing.mp4"), VideoInputError, "videos[sample 0]"),
    Case("video-a-folder", lambda w: w.with_video(w.folder / "a-folder"), VideoInputError, "is a folder"),
    Case("video-not-a-video", lambda w: w.with_video(w.folder / "not-a-video.mp4"), VideoInputError, "videos"),
    Case("video-frame-out-of-range", lambda w: w.with_video(w.video, frame=40), VideoInputError, "videos"),
    Case(
        "video-nan-timestamp",
        lambda w: w.with_video(frames_video(timestamps=[0.0, float("nan"), 1.0])),
        VideoInputError,
        "videos",
    ),
    Case(
        "video-timestamps-not-numbers",
        lambda w: w.with_video(frames_video(timestamps=["a", "b", "c"])),
        VideoInputError,
        "videos",
    ),
    Case(
        "video-dict-without-timestamps",
        lambda w: w.with_video({"frames": frames_video()["frames"]}),
        VideoInputError,
        "videos",
    ),
    Case("video-frame-not-held", lambda w: w.with_video(frames_video(), frame=7), VideoInputError, "videos"),
    Case(
        "video-index-out-of-range",
        lambda w: w.process(
            w.video_prompt, videos=w.video, regions=[{"box": [4, 40, 20, 56], "frame": 0, "video": 3}]
        ),
        RegionInputError,
        "regions",
    ),
]

MODEL_CASES = [
    Case(
        "no-input-ids",
        lambda w: w.forward(drop=("input_ids",)),
        ModelInputError,
        "input_ids",
        ("argument", "input_ids"),
    ),
    Case(
        "attention-mask-other-batch",
        lambda w: w.forward(attention_mask=torch.ones(2, w.inputs()["input_ids"].shape[1], dtype=torch.long)),
        ModelInputError,
        "attention_mask",
        ("argument", "attention_mask"),
    ),
    Case(
        "attention-mask-other-length",
        lambda w: w.forward(attention_mask=torch.ones(1, 3, dtype=torch.long)),
        ModelInputError,
        "attention_mask",
        ("argument", "attention_mask"),
    ),
    Case(
        "image-tokens-without-pixels",
        lambda w: w.forward(drop=("pixel_values", "image_grid_thw", "image_merge_sizes")),
        ModelInputError,
        "pixel_values",
        ("argument", "pixel_values"),
    ),
    Case(
        "generate-image-tokens-without-pixels",
        lambda w: w.model.generate(
            **{
                k: v for k, v in w.inputs().items() if k not in ("pixel_values", "image_grid_thw", "image_merge_sizes")
            },
            max_new_tokens=2,
        ),
        ModelInputError,
        "pixel_values",
        ("argument", "pixel_values"),
    ),
    Case(
        "video-tokens-without-pixels",
        lambda w: w.model(input_ids=torch.tensor([[1, w.model.config.video_token_id, 2]])),
        ModelInputError,
        "pixel_values_videos",
        ("argument", "pixel_values_videos"),
    ),
    Case(
        "region-tokens-without-region-inputs",
        lambda w: w.forward(drop=tuple(k for k in w.inputs() if k.startswith("region_"))),
        ModelInputError,
        "region_pixel_values",
        ("argument", "region_pixel_values"),
    ),
    Case(
        "partial-region-inputs",
        lambda w: w.forward(drop=("region_boxes",)),
        ModelInputError,
        "region_boxes",
        ("argument", "region_boxes"),
    ),
    Case(
        "partial-image-inputs",
        lambda w: w.forward(drop=("image_grid_thw",)),
        ModelInputError,
        "image_grid_thw",
        ("argument", "image_grid_thw"),
    ),
]


def recipe_with(world: World, text: str, name: str = "recipe.yaml") -> Path:
    path = world.folder / name
    path.write_text("model: pixelrefer-tiny\ndata: {train: data.json}\n" + text)
    return path


def training_recipe(world: World, extra: str) -> Any:
    return load_recipe(recipe_with(world, f"training:\n  output_dir: out\n{extra}"))


RECIPE_CASES = [
    Case(
        "lr-negative",
        lambda w: training_recipe(w, "  learning_rate: -1.0e-4"),
        RecipeError,
        "training.learning_rate",
        ("key", "training.learning_rate"),
    ),
    Case(
        "lr-zero",
        lambda w: training_recipe(w, "  learning_rate: 0"),
        RecipeError,
        "training.learning_rate",
        ("key", "training.learning_rate"),
    ),
    Case(
        "lr-nan",
        lambda w: training_recipe(w, "  learning_rate: .nan"),
        RecipeError,
        "training.learning_rate",
        ("key", "training.learning_rate"),
    ),
    Case(
        "module-lr-negative",
        lambda w: load_recipe(recipe_with(w, "learning_rates: {object_tokenizer: -1}\ntraining: {output_dir: out}")),
        RecipeError,
        "learning_rates.object_tokenizer",
        ("key", "learning_rates.object_tokenizer"),
    ),
    Case(
        "lora-typo-with-did-you-mean",
        lambda w: load_recipe(recipe_with(w, "lora: {dropuot: 0.3}\ntraining: {output_dir: out}")),
        RecipeError,
        "did you mean 'dropout'",
        ("key", "lora.dropuot"),
    ),
    Case(
        "training-typo-with-did-you-mean",
        lambda w: training_recipe(w, "  learning_rat: 1.0e-4"),
        RecipeError,
        "did you mean 'learning_rate'",
        ("key", "training.learning_rat"),
    ),
    Case(
        "lora-r-zero",
        lambda w: load_recipe(recipe_with(w, "lora: {r: 0}\ntraining: {output_dir: out}")),
        RecipeError,
        "lora.r",
        ("key", "lora.r"),
    ),
    Case(
        "lora-dropout-above-one",
        lambda w: load_recipe(recipe_with(w, "lora: {dropout: 1.5}\ntraining: {output_dir: out}")),
        RecipeError,
        "lora.dropout",
        ("key", "lora.dropout"),
    ),
    Case(
        "max-steps-text",
        lambda w: training_recipe(w, "  max_steps: many"),
        RecipeError,
        "training.max_steps",
        ("key", "training.max_steps"),
    ),
    Case(
        "batch-size-zero",
        lambda w: training_recipe(w, "  per_device_train_batch_size: 0"),
        RecipeError,
        "per_device_train_batch_size",
        ("key", "training.per_device_train_batch_size"),
    ),
    Case(
        "bf16-text",
        lambda w: training_recipe(w, "  bf16: sometimes"),
        RecipeError,
        "training.bf16",
        ("key", "training.bf16"),
    ),
    Case(
        "no-output-dir",
        lambda w: load_recipe(recipe_with(w, "training: {max_steps: 2}")),
        RecipeError,
        "training.output_dir",
        ("key", "training.output_dir"),
    ),
    Case("data-typo", lambda w: load_recipe(recipe_with(w, "data2: 1\n")), RecipeError, "data2", ("key", "data2")),
    Case(
        "data-key-typo",
        lambda w: load_recipe(
            write_file(w, "typo.yaml", "model: m\ndata: {trian: x.json}\ntraining: {output_dir: o}\n")
        ),
        RecipeError,
        "did you mean 'train'",
        ("key", "data.trian"),
    ),
    Case(
        "malformed-yaml",
        lambda w: load_recipe(recipe_with(w, "training: {output_dir: [out\n")),
        RecipeError,
        "malformed YAML",
        ("key", None),
    ),
    Case("recipe-a-folder", lambda w: load_recipe(w.folder / "a-folder"), RecipeError, "is a folder", ("key", None)),
    Case(
        "override-without-value",
        lambda w: parse_overrides(["training.max_steps"]),
        RecipeError,
        "--set",
        ("key", "--set 'training.max_steps'"),
    ),
    Case(
        "override-negative-lr",
        lambda w: load_recipe(SMOKE, parse_overrides(["training.learning_rate=-3"])),
        RecipeError,
        "training.learning_rate",
        ("key", "training.learning_rate"),
    ),
]


def write_file(world: World, name: str, text: str) -> Path:
    path = world.folder / name
    path.write_text(text)
    return path


DATA_CASES = [
    Case(
        "data-file-a-folder",
        lambda w: load_records(w.folder / "a-folder"),
        DataFileError,
        "is a folder",
        ("reason", "is a folder; expected a .json or .jsonl data file"),
    ),
    Case("data-file-missing", lambda w: load_records(w.folder / "missing.json"), DataFileError, "missing.json"),
    Case(
        "data-file-malformed",
        lambda w: load_records(write_file(w, "bad.jsonl", '{"a": 1}\n{')),
        DataFileError,
        "line 2",
        ("line", 2),
    ),
    Case(
        "data-file-not-a-list",
        lambda w: load_records(write_file(w, "dict.json", "{}")),
        DataFileError,
        "expected a JSON list",
    ),
    Case("data-empty-list", lambda w: RegionConversationDataset([], w.folder), DataFileError, "holds no record"),
    Case(
        "data-record-bad-mask",
        lambda w: RegionConversationDataset(
            [
                {
                    "image": "missing.png",
                    "masks": [[[1, 1, 5]]],
                    "conversations": [{"from": "human", "value": "<region>"}],
                }
            ],
            w.folder,
        ),
        DataValidationError,
        "record 0, field image",
    ),
]


@pytest.fixture(scope="module")
def world(tiny, tmp_path_factory):
    model, processor = tiny
    return World(model, processor, tmp_path_factory.mktemp("bad-inputs"))


@pytest.fixture(scope="module")
def released(tiny, tmp_path_factory):
    model, processor = tiny
    folder = tmp_path_factory.mktemp("released") / "released"
    return write_released_checkpoint(model, processor.tokenizer, folder, "nested", "safetensors")


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory):
    return build_preset("pixelrefer-tiny", tmp_path_factory.mktemp("base") / "base")


def truncated_copy(released: Path, destination: Path) -> Path:
    shutil.copytree(released, destination)
    for file in destination.glob("*.safetensors"):
        data = file.read_bytes()
        file.write_bytes(data[: len(data) // 2])
    return destination


def raw_pickle_copy(released: Path, destination: Path) -> Path:
    shutil.copytree(released, destination)
    for file in [*destination.glob("*.safetensors"), *destination.glob("*.safetensors.index.json")]:
        file.unlink()
    (destination / "pytorch_model.bin").write_bytes(pickle.dumps({"weight": argparse.Namespace(code="not a tensor")}))
    return destination


def unsafe_adapter(base: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "peft_type": "LORA",
        "base_model_name_or_path": str(base),
        "r": 2,
        "lora_alpha": 4,
        "target_modules": ["q_proj"],
    }
    (folder / "adapter_config.json").write_text(json.dumps(config))
    torch.save({"weight": argparse.Namespace(code="not a tensor")}, folder / "adapter_model.bin")
    return folder


CONVERTER_CASES = [
    Case(
        "convert-truncated-safetensors",
        lambda w: convert_released_checkpoint(truncated_copy(w.released, w.folder / "trunc"), w.folder / "out-trunc"),
        ConversionError,
        "truncated",
    ),
    Case(
        "convert-raw-pickle-bin",
        lambda w: convert_released_checkpoint(
            raw_pickle_copy(w.released, w.folder / "pickled"), w.folder / "out-pickled"
        ),
        ConversionError,
        "pytorch_model.bin is not loadable safely",
    ),
    Case(
        "convert-out-is-source",
        lambda w: convert_released_checkpoint(w.released, w.released, overwrite=True),
        OutputFolderError,
        "--out",
        ("reason", "overlaps the folder it is read from ({source}); choose another output folder"),
    ),
    Case(
        "convert-no-config",
        lambda w: convert_released_checkpoint(w.folder / "a-folder", w.folder / "o"),
        ConversionError,
        "config.json",
    ),
    Case(
        "merge-unsafe-bin",
        lambda w: merge_adapter(unsafe_adapter(w.base, w.folder / "unsafe"), w.folder / "merged"),
        UnsafeWeightsError,
        "adapter_model.bin is not loadable safely",
        ("reason", "Unsupported global: GLOBAL argparse.Namespace was not an allowed global by default"),
    ),
    Case(
        "merge-no-adapter",
        lambda w: merge_adapter(w.folder / "a-folder", w.folder / "merged2"),
        AdapterError,
        "adapter_config.json",
        ("argument", "adapter"),
    ),
]


def lmms_model(**arguments) -> Any:
    from pixelrefer_plugin.integrations.lmms_eval.model import PixelReferSimple

    return PixelReferSimple(**arguments)


LMMS_EVAL_CASES = [
    Case(
        "lmms-unknown-argument",
        lambda w: lmms_model(pretrained=str(w.base), max_new_token=3),
        ValueError,
        "max_new_token",
    ),
    Case("lmms-unknown-device-typo", lambda w: lmms_model(pretrained=str(w.base), devise="cpu"), ValueError, "devise"),
    Case(
        "lmms-missing-folder",
        lambda w: lmms_model(pretrained="/nonexistent/ckpt"),
        FileNotFoundError,
        "pretrained=/nonexistent/ckpt",
    ),
    Case("lmms-bad-dtype", lambda w: lmms_model(pretrained=str(w.base), dtype="int8"), ValueError, "dtype"),
    Case("lmms-zero-batch", lambda w: lmms_model(pretrained=str(w.base), batch_size=0), ValueError, "batch_size"),
]

LIBRARY_CASES = (
    PROCESSOR_CASES + VIDEO_CASES + MODEL_CASES + RECIPE_CASES + DATA_CASES + CONVERTER_CASES + LMMS_EVAL_CASES
)


@pytest.mark.parametrize("case", LIBRARY_CASES, ids=lambda case: case.id)
def test_library_bad_input(case, world, released, base_checkpoint):
    world.released, world.base = released, base_checkpoint
    with pytest.raises(case.error) as raised:
        case.call(world)
    message = str(raised.value)
    assert case.names in message, message
    assert "\n" not in message or isinstance(raised.value, DataValidationError), message
    if isinstance(raised.value, PixelReferInputError):
        # the typed fields rebuild the message: nothing needs to parse it
        assert message.endswith(f": {raised.value.expected}") and message.startswith(raised.value.argument)
    if case.attribute is not None:
        name, value = case.attribute
        value = value.format(source=released.resolve()) if isinstance(value, str) else value
        assert getattr(raised.value, name) == value


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


@dataclass
class CommandCase:
    """A command line that must fail with `pixelrefer <command>: error: ...` on one line naming `names`."""

    id: str
    argv: Callable[[Any], list[str]]
    command: str
    names: str
    status: int = 2


CLI_CASES = [
    CommandCase(
        "convert-truncated",
        lambda w: [
            "convert",
            str(truncated_copy(w.released, w.folder / "cli-trunc")),
            "--out",
            str(w.folder / "cli-o1"),
        ],
        "convert",
        "truncated",
    ),
    CommandCase(
        "convert-overwrite-parent-of-source",
        lambda w: ["convert", str(w.released), "--out", str(w.released.parent), "--overwrite"],
        "convert",
        "--out",
    ),
    CommandCase(
        "build-over-a-checkpoint", lambda w: ["build", "pixelrefer-tiny", "--out", str(w.base)], "build", "--out"
    ),
    CommandCase(
        "train-malformed-yaml",
        lambda w: ["train", str(recipe_with(w, "training: [\n", "cli1.yaml"))],
        "train",
        "malformed YAML",
    ),
    CommandCase(
        "train-training-typo",
        lambda w: ["train", str(recipe_with(w, "training: {output_dir: o, learning_rat: 1}", "cli2.yaml"))],
        "train",
        "training.learning_rat",
    ),
    CommandCase(
        "train-negative-lr",
        lambda w: ["train", str(SMOKE), "--set", "training.learning_rate=-0.1"],
        "train",
        "training.learning_rate",
    ),
    CommandCase("train-set-without-value", lambda w: ["train", str(SMOKE), "--set", "lora.r"], "train", "--set"),
    CommandCase("train-missing-recipe", lambda w: ["train", str(w.folder / "nope.yaml")], "train", "nope.yaml"),
    CommandCase(
        "data-validate-a-folder",
        lambda w: ["data", "validate", str(w.folder / "a-folder"), "--root", str(w.folder)],
        "data validate",
        "is a folder",
    ),
    CommandCase(
        "data-validate-empty-list",
        lambda w: ["data", "validate", str(write_file(w, "empty.json", "[]")), "--root", str(w.folder)],
        "data validate",
        "holds no record",
    ),
    CommandCase(
        "data-validate-missing-root",
        lambda w: ["data", "validate", str(write_file(w, "one.json", "[{}]")), "--root", str(w.folder / "no-root")],
        "data validate",
        "--root",
    ),
    CommandCase(
        "merge-unsafe-bin",
        lambda w: [
            "merge",
            str(unsafe_adapter(w.base, w.folder / "cli-unsafe")),
            "--out",
            str(w.folder / "cli-merged"),
        ],
        "merge",
        "not loadable safely",
    ),
    CommandCase(
        "describe-image-a-folder",
        lambda w: ["describe", "--model", str(w.base), "--image", str(w.folder / "a-folder"), "--box", "1,1,5,5"],
        "describe",
        "--image",
    ),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda case: case.id)
def test_command_line_bad_input(case, world, released, base_checkpoint, capsys):
    world.released, world.base = released, base_checkpoint
    argv = case.argv(world)
    before = {folder: digest(folder) for folder in (released, base_checkpoint)}
    assert main(argv) == case.status
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"pixelrefer {case.command}: error: ") and case.names in err, err
    assert {folder: digest(folder) for folder in before} == before  # nothing it was not told to write changed


def test_debug_flag_shows_the_traceback(world):
    with pytest.raises(RecipeError, match="training.learning_rate"):
        main(["--debug", "train", str(SMOKE), "--set", "training.learning_rate=-0.1"])
