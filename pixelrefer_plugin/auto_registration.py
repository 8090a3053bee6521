# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Registration of the PixelRefer config, models and processor with transformers' Auto classes.

`import pixelrefer_plugin` must stay light (the CLI's `--help` and lmms-eval's entry point import it on every start),
so it imports neither torch nor transformers. The registration then runs as soon as transformers' Auto classes exist:
at once when `transformers.models.auto` is already imported, otherwise right after the import that brings it in has
finished. "Finished" matters: that import may start inside another module's import (transformers' VideoLLaMA3
modeling imports the Auto classes, and PixelRefer's modeling imports VideoLLaMA3), and registering from there would
import half-initialised modules. A meta-path finder counts the nested imports of `transformers` and `pixelrefer_plugin`
modules while the registration is pending, and registers when the outermost one returns.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from types import ModuleType

AUTO_MODULE = "transformers.models.auto"
_WATCHED_PREFIXES = ("transformers.", "pixelrefer_plugin.")
_lock = threading.RLock()
_registered = False


def register_auto_classes() -> None:
    """Register `PixelReferConfig`, the two models and the processor with transformers' Auto classes, and the released
    model types (`pixelrefer_qwen2`, `pixelreferlite_qwen2`) with their config translation and load-time key renaming,
    so released checkpoints load as they are (idempotent). Also lets `from_pretrained` of these classes take preset
    names (`"pixelrefer-7b"`).

    The convention is transformers' own: `AutoModel` gives the base model `PixelReferModel`. Exported checkpoints map
    `AutoModel` to the generating model in their `auto_map` instead (see `PixelReferConfig`).
    """
    global _registered
    with _lock:
        if _registered:
            return
        _registered = True
        _PendingRegistration.disarm()
        from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor
        from transformers.conversion_mapping import register_checkpoint_conversion_mapping
        from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING, MODEL_MAPPING

        from .configuration_pixelrefer import LOADING_HOOKS, RELEASED_CONFIG_CLASSES, PixelReferConfig
        from .conversion.released import released_processor, released_weight_renamings
        from .modeling_pixelrefer import PixelReferForConditionalGeneration, PixelReferModel
        from .presets.hub import resolve_pretrained
        from .processing_pixelrefer import PixelReferProcessor

        AutoConfig.register(PixelReferConfig.model_type, PixelReferConfig, exist_ok=True)
        AutoModel.register(PixelReferConfig, PixelReferModel, exist_ok=True)
        AutoModelForImageTextToText.register(PixelReferConfig, PixelReferForConditionalGeneration, exist_ok=True)
        AutoProcessor.register(PixelReferConfig, PixelReferProcessor, exist_ok=True)
        for model_type, config_class in RELEASED_CONFIG_CLASSES.items():
            AutoConfig.register(model_type, config_class, exist_ok=True)
            # The models' `config_class` is `PixelReferConfig`, of which the released configs are subclasses; the
            # Auto classes' `register` insists on the same class name, so the mappings are extended directly.
            MODEL_MAPPING.register(config_class, PixelReferModel, exist_ok=True)
            MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING.register(
                config_class, PixelReferForConditionalGeneration, exist_ok=True
            )
            AutoProcessor.register(config_class, PixelReferProcessor, exist_ok=True)
            register_checkpoint_conversion_mapping(model_type, released_weight_renamings(), overwrite=True)
        LOADING_HOOKS.resolve_name = resolve_pretrained
        LOADING_HOOKS.released_processor = released_processor


def register_when_transformers_is_ready() -> None:
    """Register now if transformers' Auto classes are imported, else right after the import that brings them in."""
    with _lock:
        if _registered:
            return
        if AUTO_MODULE in sys.modules:
            register_auto_classes()
        else:
            _PendingRegistration.arm()


class _PendingRegistration(importlib.abc.MetaPathFinder):
    """Wraps the loaders of `transformers.*` / `pixelrefer_plugin.*` modules to see when the outermost import ends."""

    _instance: _PendingRegistration | None = None
    _depth = 0

    @classmethod
    def arm(cls) -> None:
        if cls._instance is None:
            cls._instance = cls()
            sys.meta_path.insert(0, cls._instance)

    @classmethod
    def disarm(cls) -> None:
        if cls._instance is not None:
            sys.meta_path.remove(cls._instance)
            cls._instance = None

    def find_spec(self, fullname: str, path, target: ModuleType | None = None):
        if not fullname.startswith(_WATCHED_PREFIXES) or path is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_module_then_register(module: ModuleType) -> None:
            cls = type(self)
            cls._depth += 1
            try:
                exec_module(module)
            finally:
                cls._depth -= 1
            if cls._depth == 0 and AUTO_MODULE in sys.modules:
                register_auto_classes()

        spec.loader.exec_module = exec_module_then_register
        return spec
