# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`--model pixelrefer` for lmms-eval (entry point group `lmms_eval.models`).

lmms-eval loads this entry point on every start, so the module imports nothing: the entry point is `manifests`, a
callable payload that lmms-eval calls while it builds its model registry (importing `lmms_eval.models` from this
module's top level would be a circular import when this module is imported first). The model classes are named by
path and imported only when the model is used. `--model pixelrefer` runs the chat class, `--force_simple` the simple
one (needed for `multiple_choice` / `loglikelihood` tasks, which lmms-eval builds only for simple models).
"""

from __future__ import annotations

MODEL_MODULE = "pixelrefer_plugin.integrations.lmms_eval.model"


def manifests() -> list:
    """lmms-eval's `ModelManifest`s of the `pixelrefer` model (chat and simple classes, alias `pixelrefer_chat`)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [
        ModelManifest(
            model_id="pixelrefer",
            chat_class_path=f"{MODEL_MODULE}.PixelReferChat",
            simple_class_path=f"{MODEL_MODULE}.PixelReferSimple",
            aliases=("pixelrefer_chat",),
        )
    ]


__all__ = ["manifests"]
