# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Region settings: how a region becomes crop patches and object tokens, shared by the model config and the processor.

`RegionSettings` is the one place these settings are declared, validated, defaulted per variant and serialised.
Checkpoints store them as flat keys of `config.json` and `processor_config.json` (`mask_num`,
`region_context_patches`, ...), the field names of `RegionSettings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal, get_args

from .region_geometry import CROP_RULES, GRID_ROUNDING_MODES, CropRule, GridRounding

Variant = Literal["full", "lite"]
VARIANTS: tuple[str, ...] = get_args(Variant)
LiteLocalContext = Literal["first_region", "region"]
LITE_LOCAL_CONTEXTS: tuple[str, ...] = get_args(LiteLocalContext)

# The released Lite conventions; every other setting has the same default in both variants.
_LITE_DEFAULTS: dict[str, Any] = {
    "region_max_patches": 50,
    "region_grid_rounding": "opencv_any",
    "region_crop_rule": "lite",
    "kmeans_iters": 3,
}


@dataclass(frozen=True)
class RegionSettings:
    """Settings of the Scale-Adaptive Object Tokenizer's region handling.

    The defaults (and `for_variant`) are the released models' behaviour, which converted released checkpoints keep;
    the plugin's own presets opt into the improvements named here (see docs/model.md, "Released behaviour and
    settings").

    Attributes:
        mask_num: maximum number of object tokens per region (Lite: exactly this many).
        region_context_patches: context kept around a region's tight box when cropping, in patches.
        region_min_patches: regions smaller than this many patches' worth of pixels are enlarged by an integer factor.
        region_max_patches: regions larger than this many patches' worth of pixels are shrunk to about this size.
        region_grid_rounding: how the region mask is resampled to the crop grid (see
            `region_geometry.region_grid_mask`); the released rules are `"uint8"` (full) and `"opencv_any"` (Lite).
        region_crop_rule: released crop conventions to follow (see `region_geometry.expanded_crop_box`).
        region_max_pixels: pixel budget of one region crop; `None`: the image processor's `size["longest_edge"]`.
        region_budget_shared: divide the crop pixel budget (Lite: also the context images' budget) by the number of
            region crops in the prompt, as the released inference does; `False` gives every crop the whole budget.
        region_keep_best_cell: a region whose grid mask keeps no cell keeps its best-covered cell (one object token);
            `False` gives it none, as the released code does.
        point_size: side in pixels of the square a `point` region stands for.
        lite_local_size: side of the square each region's expanded crop is resized to as local context (Lite).
        lite_global_size: side of the square each frame is resized to as global context (Lite).
        lite_local_context: `"first_region"` (released): every region on a frame gets the local context of the
            frame's first region; `"region"`: each region gets its own expanded crop.
        kmeans_iters: Lloyd iterations that reduce a region's features to `mask_num` tokens.
        kmeans_tol: a region's k-means stops early once no centroid moves by more than this.
    """

    mask_num: int = 32
    region_context_patches: int = 2
    region_min_patches: int = 32
    region_max_patches: int = 100
    region_grid_rounding: GridRounding = "uint8"
    region_crop_rule: CropRule = "full"
    region_max_pixels: int | None = None
    region_budget_shared: bool = True
    region_keep_best_cell: bool = True
    point_size: int = 28
    lite_local_size: int = 224
    lite_global_size: int = 336
    lite_local_context: LiteLocalContext = "first_region"
    kmeans_iters: int = 5
    kmeans_tol: float = 1e-6

    def __post_init__(self) -> None:
        for name, minimum in (
            ("mask_num", 1),
            ("region_context_patches", 0),
            ("region_min_patches", 1),
            ("region_max_patches", 1),
            ("point_size", 1),
            ("lite_local_size", 1),
            ("lite_global_size", 1),
            ("kmeans_iters", 1),
        ):
            _check_int(name, getattr(self, name), minimum)
        if self.region_max_pixels is not None:
            _check_int("region_max_pixels", self.region_max_pixels, 1)
        _check_choice("region_grid_rounding", self.region_grid_rounding, GRID_ROUNDING_MODES)
        _check_choice("region_crop_rule", self.region_crop_rule, CROP_RULES)
        _check_choice("lite_local_context", self.lite_local_context, LITE_LOCAL_CONTEXTS)
        for name in ("region_budget_shared", "region_keep_best_cell"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if isinstance(self.kmeans_tol, bool) or not isinstance(self.kmeans_tol, (int, float)) or self.kmeans_tol < 0:
            raise ValueError(f"kmeans_tol must be a number >= 0, got {self.kmeans_tol!r}")

    @classmethod
    def for_variant(cls, variant: Variant, **changes: Any) -> RegionSettings:
        """The released defaults of `variant` (`"full"` or `"lite"`), with `changes` applied."""
        _check_choice("variant", variant, VARIANTS)
        return cls(**{**(_LITE_DEFAULTS if variant == "lite" else {}), **changes})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], variant: Variant = "full") -> RegionSettings:
        """Settings from flat keys (as in `config.json`); keys not given take the defaults of `variant`.

        Raises:
            TypeError: naming the keys that are not region settings.
        """
        unknown = sorted(set(data) - set(REGION_SETTING_NAMES))
        if unknown:
            raise TypeError(f"not region settings: {unknown}; known: {list(REGION_SETTING_NAMES)}")
        return cls.for_variant(variant, **data)

    @classmethod
    def from_arguments(
        cls, settings: RegionSettings | Mapping[str, Any] | None, variant: Variant, kwargs: dict[str, Any]
    ) -> RegionSettings:
        """Settings of a config or processor: `settings` (or the defaults of `variant`) with the flat region-setting
        keywords of `kwargs` applied on top; those keywords are popped from `kwargs`."""
        flat = pop_region_settings(kwargs)
        if isinstance(settings, RegionSettings):
            return settings.replace(**flat)
        return cls.from_dict({**(settings or {}), **flat}, variant=variant)

    def to_dict(self) -> dict[str, Any]:
        """Flat `{name: value}` of every setting, as written to `config.json` and `processor_config.json`."""
        return asdict(self)

    def replace(self, **changes: Any) -> RegionSettings:
        """A copy with `changes` applied (validated)."""
        return replace(self, **changes)

    def differences_from_released(self, variant: Variant) -> dict[str, Any]:
        """`{name: value}` of the settings in which these differ from the released behaviour of `variant`
        (the pixel budget, a size rather than a rule, is left out)."""
        released = RegionSettings.for_variant(variant, region_max_pixels=self.region_max_pixels)
        return {name: value for name, value in self.to_dict().items() if value != getattr(released, name)}


REGION_SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in fields(RegionSettings))


def pop_region_settings(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pops the flat region-setting keys (`mask_num`, ...) out of `kwargs` and returns them."""
    return {name: kwargs.pop(name) for name in REGION_SETTING_NAMES if name in kwargs}


class RegionSettingAttributes:
    """Makes every region setting an attribute of its owner, read from and written to `self.region_settings`.

    `config.mask_num` reads `config.region_settings.mask_num`; `config.mask_num = 8` replaces `region_settings` by a
    validated copy. Code written against the flat attributes keeps working.
    """

    region_settings: RegionSettings

    def __getattr__(self, name: str) -> Any:
        settings = self.__dict__.get("region_settings")
        if settings is not None and name in REGION_SETTING_NAMES:
            return getattr(settings, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in REGION_SETTING_NAMES:
            name, value = "region_settings", self.region_settings.replace(**{name: value})
        super().__setattr__(name, value)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not hasattr(value, "__index__") or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


__all__ = [
    "REGION_SETTING_NAMES",
    "VARIANTS",
    "RegionSettingAttributes",
    "RegionSettings",
    "Variant",
    "pop_region_settings",
]
