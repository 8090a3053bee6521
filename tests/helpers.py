# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Helpers shared by the tests (fixtures live in `conftest.py`; what tests import lives here)."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

# A one-layer Qwen2 text config small enough to build configs and object tokenizers in milliseconds.
TINY_TEXT_CONFIG = {
    "model_type": "qwen2",
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "intermediate_size": 64,
    "vocab_size": 100,
}


def user_prompt(processor: Any, text: str, image: bool = True) -> str:
    """One user turn (an image, when `image`, then `text`) in the processor's chat template, ready for generation."""
    content = ([{"type": "image"}] if image else []) + [{"type": "text", "text": text}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)


def load_task_module(task_dir: Path, name: str) -> ModuleType:
    """The hook file `name.py` of a materialised lmms-eval task folder, loaded by file path as lmms-eval loads it
    (a fresh module on every call)."""
    spec = importlib.util.spec_from_file_location(f"pixelrefer_task_{name}", task_dir / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_checkpoint(name: str, out: str | Path) -> str:
    """A tiny random checkpoint whose LLM linear layers are re-drawn with unit gain.

    At the presets' small init the tied-embedding tiny LLM only echoes the prompt's last token ("\\n" after
    `assistant\\n`), so every answer would be blank; with unit-gain weights answers are deterministic noise that
    depends on the region, which is what streaming must reproduce.
    """
    import torch

    from pixelrefer_plugin import PixelReferForConditionalGeneration
    from pixelrefer_plugin.presets import build_preset

    build_preset(name, out)
    model = PixelReferForConditionalGeneration.from_pretrained(out)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for key, weight in model.model.language_model.named_parameters():
            if weight.ndim == 2 and "embed" not in key:
                weight.copy_(torch.randn(weight.shape, generator=generator) * 2.0 / weight.shape[1] ** 0.5)
    model.save_pretrained(out)
    return str(out)


def run_describe(capsys: Any, *args: Any) -> tuple[int, str, str]:
    """`pixelrefer describe ARGS` in this process: (exit code, stdout, stderr)."""
    from pixelrefer_plugin.cli import main

    capsys.readouterr()
    code = main(["describe", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


# Run with (checkpoint, image.npy, out.json) in a process where pixelrefer_plugin cannot be imported: loads an exported
# checkpoint through trust_remote_code only and writes what it computed.
REMOTE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys
    class BlockPlugin(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] == "pixelrefer_plugin":
                raise ImportError("pixelrefer_plugin is blocked in this process")
    sys.meta_path.insert(0, BlockPlugin())
    try:
        import pixelrefer_plugin
    except ImportError:
        pass
    else:
        raise SystemExit("the plugin should not be importable here")

    import numpy as np, torch
    from transformers import AutoModel, AutoModelForImageTextToText, AutoProcessor
    checkpoint, image_path, out_path = sys.argv[1:4]
    model = AutoModelForImageTextToText.from_pretrained(checkpoint, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(checkpoint, trust_remote_code=True)
    base = AutoModel.from_pretrained(checkpoint, trust_remote_code=True)
    image = np.load(image_path)
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is <region>?"}]}],
        add_generation_prompt=True,
    )
    inputs = processor(text=prompt, images=image, regions=[{"box": [20, 30, 90, 100]}])
    with torch.no_grad():
        logits = model(**inputs).logits
    generated = model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    # the one-liner: AutoModel gives the model that generates
    auto_generated = base.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    torch.save({"logits": logits, "generated": generated, "auto_generated": auto_generated,
                "input_ids": inputs["input_ids"]}, out_path)
    print(json.dumps({"model": type(model).__module__, "base": type(base).__name__,
                      "processor": type(processor).__module__, "variant": model.config.variant}))
    """
)
