# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Tiny random checkpoints whose greedy answers are not blank, for tests that compare answers."""

from pathlib import Path

import torch


def build_checkpoint(preset: str, out: Path) -> Path:
    """A tiny random checkpoint whose greedy answers depend on the image, regions and prompt.

    Freshly initialised tiny presets (small weights, tied embeddings) echo the last prompt token ("\\n" after
    `<|im_start|>assistant`), so every answer would strip to "". Re-drawing the matrices with std 2 / sqrt(fan_in)
    makes the answers differ between documents, which the batching and CLI checks need.
    """
    from pixelrefer_plugin import PixelReferForConditionalGeneration
    from pixelrefer_plugin.presets import build_preset

    build_preset(preset, out)
    model = PixelReferForConditionalGeneration.from_pretrained(out)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim >= 2:
                noise = torch.randn(parameter.shape, generator=generator) * (2.0 / parameter.shape[-1] ** 0.5)
                parameter.copy_(noise)
    model.save_pretrained(out)
    return out
