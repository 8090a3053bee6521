# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`--model pixelrefer` for lmms-eval (entry point group `lmms_eval.models`).

lmms-eval imports this module on every start, so it imports neither torch nor transformers: the classes are named by
path and imported only when the model is used. `--model pixelrefer` runs the chat class, `--force_simple` the simple
one (needed for `multiple_choice` / `loglikelihood` tasks, which lmms-eval builds only for simple models).
"""

import sys

from lmms_eval.models.registry_v2 import ModelManifest

MODEL_MODULE = "pixelrefer_plugin.integrations.lmms_eval.model"

MANIFESTS = [
    ModelManifest(
        model_id="pixelrefer",
        chat_class_path=f"{MODEL_MODULE}.PixelReferChat",
        simple_class_path=f"{MODEL_MODULE}.PixelReferSimple",
        aliases=("pixelrefer_chat",),
    )
]


def _register_if_missed() -> None:
    """Register MANIFESTS when lmms-eval built its registry while this module was half-imported.

    Importing this module before `lmms_eval.models` makes the import above build lmms-eval's registry, which loads
    this entry point before `MANIFESTS` exists and leaves `pixelrefer` out. When lmms-eval imports this module itself
    (the usual case), its registry is not assigned yet and nothing happens here.
    """
    registry = getattr(sys.modules.get("lmms_eval.models"), "MODEL_REGISTRY_V2", None)
    if registry is not None and "pixelrefer" not in registry.list_model_names():
        for manifest in MANIFESTS:
            registry.register_manifest(manifest, overwrite=True)


_register_if_missed()

__all__ = ["MANIFESTS"]
