# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Training recipes: one YAML file says what to train, on which data, how (see recipes/ and docs/fine-tuning.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RECIPE_KEYS = ("model", "data", "lora", "learning_rates", "training")


@dataclass
class Recipe:
    """A parsed recipe.

    Attributes:
        model: a registry preset name (built with random weights, e.g. `pixelrefer-tiny`) or a checkpoint directory.
        data: `train` (JSON / JSONL file), `root` (folder the record paths are relative to), `skip_invalid`; or
            `synthetic` (`num_records`, `seed`, `size`, `objects`, `kinds`, `video_fraction`) to generate a small
            dataset of coloured shapes in the output folder.
        lora: `r`, `alpha`, `dropout`; `enabled: false` trains every language-model weight instead (only sensible for a
            random-init preset; `train_vision_encoder: true` trains the vision encoder too); `modules_to_save`
            overrides the fully trained modules.
        learning_rates: `default` (LoRA / language model) and per module (`object_tokenizer`, `object_infusion`,
            `projector`, `region_token`).
        training: `transformers.TrainingArguments` fields (`output_dir` required); `bf16: auto` means bf16 on a GPU
            that supports it; `resume: auto` resumes from the last checkpoint in `output_dir`.
        path: the recipe file; relative paths in it are resolved against its folder.
    """

    model: str
    data: dict[str, Any]
    lora: dict[str, Any] = field(default_factory=dict)
    learning_rates: dict[str, float] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def resolve(self, value: str | Path) -> Path:
        """A path from the recipe: absolute as is, relative to the recipe's folder otherwise."""
        value = Path(value).expanduser()
        if value.is_absolute() or self.path is None:
            return value
        return (self.path.parent / value).resolve()

    @property
    def output_dir(self) -> Path:
        return self.resolve(self.training["output_dir"])


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read a recipe YAML; `overrides` maps dotted keys to values (`{"training.max_steps": 2}`)."""
    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(data) - set(RECIPE_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown recipe key(s) {unknown}; expected {list(RECIPE_KEYS)}")
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        if section not in RECIPE_KEYS or (section != "model" and not key):
            raise ValueError(f"override {dotted!r}: expected '<section>.<key>' with section in {list(RECIPE_KEYS)}")
        if section == "model":
            data["model"] = value
        else:
            data.setdefault(section, {})[key] = value
    for required in ("model", "data", "training"):
        if required not in data:
            raise ValueError(f"{path}: the recipe needs a '{required}' section")
    if "output_dir" not in data["training"]:
        raise ValueError(f"{path}: training.output_dir is required")
    data_section = data["data"]
    if "train" not in data_section and "synthetic" not in data_section:
        raise ValueError(f"{path}: data needs 'train' (a JSON / JSONL file) or 'synthetic'")
    return Recipe(
        model=str(data["model"]),
        data=dict(data_section),
        lora=dict(data.get("lora") or {}),
        learning_rates={k: float(v) for k, v in (data.get("learning_rates") or {}).items()},
        training=dict(data["training"]),
        path=path.resolve(),
    )


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`["training.max_steps=2", "lora.r=4"]` -> `{"training.max_steps": 2, "lora.r": 4}` (values parsed as YAML)."""
    overrides = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator:
            raise ValueError(f"override {pair!r}: expected KEY=VALUE")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides
