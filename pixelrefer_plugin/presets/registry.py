# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Reading the preset registry shipped inside the package (`pixelrefer_plugin/registry/*.yaml`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

REQUIRED_KEYS = ("name", "variant", "tokenizer", "vision_config", "text_config", "object_tokenizer", "image_processor")


@dataclass(frozen=True)
class Preset:
    """One named model: sizes, object-tokenizer constants and image-processor settings."""

    name: str
    description: str
    variant: str
    hub_id: str | None
    tokenizer: str
    dtype: str
    vision_config: dict[str, Any]
    text_config: dict[str, Any]
    object_tokenizer: dict[str, Any]
    image_processor: dict[str, Any] = field(default_factory=dict)

    @property
    def builds_tokenizer_offline(self) -> bool:
        return self.tokenizer == "tiny"


def _registry_files() -> dict[str, Any]:
    folder = resources.files("pixelrefer_plugin") / "registry"
    return {entry.name.removesuffix(".yaml"): entry for entry in folder.iterdir() if entry.name.endswith(".yaml")}


def list_presets() -> list[str]:
    """Names of all presets in the registry, sorted."""
    return sorted(_registry_files())


def load_preset(name: str) -> Preset:
    """Load a preset by name (e.g. `"pixelrefer-tiny"`); raises `KeyError` listing the known names."""
    files = _registry_files()
    if name not in files:
        raise KeyError(f"unknown preset {name!r}; known presets: {', '.join(sorted(files))}")
    data = yaml.safe_load(files[name].read_text())
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ValueError(f"registry entry {name!r} lacks the key(s) {missing}")
    if data["name"] != name:
        raise ValueError(f"registry file {name}.yaml names itself {data['name']!r}")
    return Preset(
        name=data["name"],
        description=data.get("description", ""),
        variant=data["variant"],
        hub_id=data.get("hub_id"),
        tokenizer=data["tokenizer"],
        dtype=data.get("dtype", "float32"),
        vision_config=dict(data["vision_config"]),
        text_config=dict(data["text_config"]),
        object_tokenizer=dict(data["object_tokenizer"]),
        image_processor=dict(data["image_processor"]),
    )
