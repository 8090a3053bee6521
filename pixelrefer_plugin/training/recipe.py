# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Training recipes: one YAML file says what to train, on which data, how (see recipes/ and docs/fine-tuning.md)."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RECIPE_KEYS = ("model", "data", "lora", "learning_rates", "training")
DATA_KEYS = ("train", "root", "skip_invalid", "synthetic", "segmenter", "mask_cache")
LORA_KEYS = ("enabled", "r", "alpha", "dropout", "target_modules", "modules_to_save", "train_vision_encoder")
LEARNING_RATE_KEYS = ("default", "object_tokenizer", "object_infusion", "projector", "region_token")
# Keys of `training` that are not `TrainingArguments` fields.
TRAINING_EXTRA_KEYS = ("resume",)


class RecipeError(ValueError):
    """A recipe that cannot be used: `{path}: {key}: {expected}`.

    Attributes:
        path: the recipe file.
        key: the recipe key at fault, dotted (`training.learning_rate`, `lora.dropout`), or None for the whole file.
        expected: what is wrong and what was expected.
    """

    def __init__(self, path: str | Path | None, key: str | None, expected: str):
        self.path = None if path is None else str(path)
        self.key = key
        self.expected = expected
        location = ": ".join(part for part in (self.path, key) if part)
        super().__init__(f"{location}: {expected}" if location else expected)

    def __reduce__(self):
        return type(self), (self.path, self.key, self.expected)


@dataclass
class Recipe:
    """A parsed recipe.

    Attributes:
        model: a registry preset name (built with random weights, e.g. `pixelrefer-tiny`) or a checkpoint directory.
        data: `train` (JSON / JSONL file), `root` (folder the record paths are relative to), `skip_invalid`,
            `segmenter` (SAM 2 folder, hub id or preset that turns point / box annotations into masks) and
            `mask_cache` (where those masks are cached); or `synthetic` (`num_records`, `seed`, `size`, `objects`,
            `kinds`, `video_fraction`) to generate a small dataset of coloured shapes in the output folder.
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
    """Read and validate a recipe YAML; `overrides` maps dotted keys to values (`{"training.max_steps": 2}`).

    Raises:
        RecipeError: naming the file and the key: unreadable or malformed YAML, unknown keys (with the closest known
            one), missing sections, values of the wrong type or out of range (see [`validate_recipe`]).
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError(path, None, "is a folder; expected a recipe YAML file" if path.is_dir() else "no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise RecipeError(path, None, f"malformed YAML ({problem}{where})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RecipeError(path, None, f"cannot read the file ({error})") from None
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise RecipeError(path, None, f"expected a mapping of sections {list(RECIPE_KEYS)}, got {type(data).__name__}")
    data = dict(data)
    _check_keys(path, None, data, RECIPE_KEYS)
    for section in RECIPE_KEYS[1:]:
        if data.get(section) is not None and not isinstance(data[section], Mapping):
            raise RecipeError(path, section, f"expected a mapping of keys, got {data[section]!r:.60}")
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        if section not in RECIPE_KEYS or (section != "model" and not key):
            raise RecipeError(
                None, f"override {dotted!r}", f"expected '<section>.<key>' with section in {list(RECIPE_KEYS)}"
            )
        if section == "model":
            data["model"] = value
        else:
            data[section] = {**(data.get(section) or {}), key: value}
    for required in ("model", "data", "training"):
        if data.get(required) is None:
            raise RecipeError(
                path, required, "is missing; the recipe needs a 'model', a 'data' and a 'training' section"
            )
    recipe = Recipe(
        model=str(data["model"]),
        data=dict(data["data"]),
        lora=dict(data.get("lora") or {}),
        learning_rates=dict(data.get("learning_rates") or {}),
        training=dict(data["training"]),
        path=path.resolve(),
    )
    validate_recipe(recipe)
    return recipe


def validate_recipe(recipe: Recipe) -> None:
    """Check every section of a recipe: known keys (a typo gets the closest known key), types and ranges.

    Learning rates (`training.learning_rate` and every `learning_rates` entry) must be positive finite numbers: the
    optimizer's own check is bypassed by the per-module groups.

    Raises:
        RecipeError: naming the key, the value and what was expected.
    """
    path = recipe.path
    _validate_data(path, recipe.data)
    _validate_lora(path, recipe.lora)
    _check_keys(path, "learning_rates", recipe.learning_rates, LEARNING_RATE_KEYS)
    _check_values(path, "learning_rates", recipe.learning_rates, dict.fromkeys(LEARNING_RATE_KEYS, _positive))
    recipe.learning_rates = {key: float(value) for key, value in recipe.learning_rates.items()}
    _validate_training(path, recipe.training)


def _validate_lora(path: Path | None, lora: dict[str, Any]) -> None:
    """The `lora` section: known keys and the types and ranges of the values."""
    _check_keys(path, "lora", lora, LORA_KEYS)
    checks = {
        "enabled": _boolean,
        "train_vision_encoder": _boolean,
        "r": _integer_at_least(1),
        "alpha": _positive,
        "dropout": _fraction_below_one,
        "modules_to_save": _names,
        "target_modules": _pattern_or_names,
    }
    _check_values(path, "lora", lora, checks)


def _validate_training(path: Path | None, training: dict[str, Any]) -> None:
    """The `training` section: `TrainingArguments` fields (and the recipe's own keys), typed; ranges where a wrong
    value would train silently."""
    from transformers import TrainingArguments

    known = {item.name: item.type for item in _training_fields(TrainingArguments)}
    _check_keys(path, "training", training, (*known, *TRAINING_EXTRA_KEYS))
    if training.get("output_dir") in (None, ""):
        raise RecipeError(path, "training.output_dir", "is missing; expected the folder the run writes to")
    checks: dict[str, Callable[[Any], str | None]] = {
        name: TYPE_CHECKS[kind] for name, kind in known.items() if kind in TYPE_CHECKS
    }
    checks.update(
        {
            "output_dir": _path,
            "learning_rate": _positive,
            "num_train_epochs": _positive,
            "per_device_train_batch_size": _integer_at_least(1),
            "gradient_accumulation_steps": _integer_at_least(1),
            "weight_decay": _non_negative,
            "max_grad_norm": _non_negative,
            "warmup_ratio": _fraction,
            "warmup_steps": _non_negative,
            "logging_steps": _positive,
            "save_steps": _positive,
            "bf16": _boolean_or_auto,
            "resume": _resume,
        }
    )
    _check_values(path, "training", training, checks)
    max_steps = training.get("max_steps", -1)
    if max_steps == 0 or max_steps < -1:
        raise RecipeError(
            path, "training.max_steps", f"got {max_steps!r}; expected a positive number of steps (or -1)"
        )


def _validate_data(path: Path | None, data: dict[str, Any]) -> None:
    """The `data` section: known keys, a data file or synthetic data, and the types of the values."""
    _check_keys(path, "data", data, DATA_KEYS)
    if "train" not in data and "synthetic" not in data:
        raise RecipeError(path, "data", "needs 'train' (a JSON / JSONL file) or 'synthetic'")
    checks = {"train": _path, "root": _path, "skip_invalid": _boolean, "segmenter": _segmenter, "mask_cache": _path}
    _check_values(path, "data", data, checks)
    if data.get("synthetic") is not None and not isinstance(data["synthetic"], Mapping):
        raise RecipeError(path, "data.synthetic", f"expected a mapping of options, got {data['synthetic']!r:.60}")
    if data.get("mask_cache") is not None and data.get("segmenter") is None:
        raise RecipeError(path, "data.mask_cache", "is set without data.segmenter; expected the segmenter it caches")


def segmenter_arguments(recipe: Recipe) -> dict[str, Any]:
    """`segmenter` and `mask_cache` for `RegionConversationDataset` from the `data` section (folders resolved against
    the recipe's folder; a segmenter that is not a folder there is a hub id or a preset name)."""
    data = recipe.data
    if data.get("segmenter") is None:
        return {}
    folder = recipe.resolve(data["segmenter"])
    cache = data.get("mask_cache")
    return {
        "segmenter": str(folder) if folder.is_dir() else data["segmenter"],
        "mask_cache": None if cache is None else recipe.resolve(cache),
    }


def _training_fields(arguments: type) -> list[Any]:
    import dataclasses

    return [item for item in dataclasses.fields(arguments) if item.init and not item.name.startswith("_")]


def _check_keys(
    path: Path | str | None, section: str | None, values: Mapping[str, Any], known: tuple[str, ...]
) -> None:
    """Refuse a key not in `known`, naming the closest known key when there is one."""
    for key in values:
        if key in known:
            continue
        dotted = f"{section}.{key}" if section else str(key)
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        what = f"key of '{section}'" if section else "recipe key"
        shown = known if len(known) <= 12 else "the TrainingArguments fields and 'resume'"
        raise RecipeError(path, dotted, f"unknown {what}; {hint}expected one of {shown}")


def _check_values(
    path: Path | str | None,
    section: str,
    values: Mapping[str, Any],
    checks: Mapping[str, Callable[[Any], str | None]],
) -> None:
    for key, value in list(values.items()):
        check = checks.get(key)
        if check in NUMBER_CHECKS and isinstance(value, str):
            value = values[key] = _yaml_number(value)
        problem = check(value) if check is not None else None
        if problem is not None:
            raise RecipeError(path, f"{section}.{key}", f"got {value!r:.60}; expected {problem}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _yaml_number(text: str) -> float | str:
    """`"1e-3"` as 0.001: YAML 1.1 (PyYAML) reads exponents without a dot as strings. Other text stays as it is."""
    try:
        return float(text)
    except ValueError:
        return text


def _positive(value: Any) -> str | None:
    return None if _is_number(value) and value > 0 else "a positive finite number"


def _non_negative(value: Any) -> str | None:
    return None if _is_number(value) and value >= 0 else "a finite number >= 0"


def _fraction(value: Any) -> str | None:
    return None if _is_number(value) and 0 <= value <= 1 else "a number in [0, 1]"


def _fraction_below_one(value: Any) -> str | None:
    return None if _is_number(value) and 0 <= value < 1 else "a number in [0, 1)"


def _integer_at_least(minimum: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
        return None if ok else f"an integer >= {minimum}"

    return check


def _integer(value: Any) -> str | None:
    return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"


def _number(value: Any) -> str | None:
    return None if _is_number(value) else "a finite number"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def _boolean_or_auto(value: Any) -> str | None:
    return None if isinstance(value, bool) or value == "auto" else "true, false or auto"


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else "a string"


def _path(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "a path (a non-empty string)"


def _segmenter(value: Any) -> str | None:
    ok = isinstance(value, str) and bool(value)
    return None if ok else "a SAM 2 checkpoint folder, hub id or segmenter preset name (a non-empty string)"


def _names(value: Any) -> str | None:
    ok = isinstance(value, list) and all(isinstance(item, str) and item for item in value)
    return None if ok else "a list of module names"


def _pattern_or_names(value: Any) -> str | None:
    return (
        None if isinstance(value, str) or _names(value) is None else "a regular expression or a list of module names"
    )


def _resume(value: Any) -> str | None:
    return None if isinstance(value, (bool, str)) and value != "" else "auto, false or a checkpoint folder"


# Checks that take numbers (a numeric string such as "1e-3" is read as a number first).
NUMBER_CHECKS = (_positive, _non_negative, _fraction, _fraction_below_one, _number)
# Checks of `TrainingArguments` fields by their declared type (fields of union types are left to TrainingArguments).
TYPE_CHECKS: dict[Any, Callable[[Any], str | None]] = {bool: _boolean, int: _integer, float: _number, str: _text}


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`["training.max_steps=2", "lora.r=4"]` -> `{"training.max_steps": 2, "lora.r": 4}` (values parsed as YAML)."""
    overrides = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator:
            raise RecipeError(None, f"--set {pair!r}", "expected KEY=VALUE")
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise RecipeError(None, f"--set {pair!r}", "the value is not valid YAML") from None
    return overrides
