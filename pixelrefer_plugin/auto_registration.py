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
    """Register `PixelReferConfig`, the two models and the processor with transformers' Auto classes (idempotent)."""
    global _registered
    with _lock:
        if _registered:
            return
        _registered = True
        _PendingRegistration.disarm()
        from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

        from .configuration_pixelrefer import PixelReferConfig
        from .modeling_pixelrefer import PixelReferForConditionalGeneration, PixelReferModel
        from .processing_pixelrefer import PixelReferProcessor

        AutoConfig.register(PixelReferConfig.model_type, PixelReferConfig, exist_ok=True)
        AutoModel.register(PixelReferConfig, PixelReferModel, exist_ok=True)
        AutoModelForImageTextToText.register(PixelReferConfig, PixelReferForConditionalGeneration, exist_ok=True)
        AutoProcessor.register(PixelReferConfig, PixelReferProcessor, exist_ok=True)


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
