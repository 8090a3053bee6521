# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Click or box -> object mask, and one mask -> the whole video: SAM 2 region prompts through transformers.

See docs/segmentation.md. The public API is `RegionSegmenter` (`from_pretrained`, `to_masks`, `propagate`).
"""

from .checkpoints import SEGMENTER_PRESETS, download_segmenter, resolve_segmenter
from .clicks import NEGATIVE_KEY, PROMPT_KINDS, is_prompt
from .segmenter import DEFAULT_TRACK_FRAMES, SCORE_KEY, EmptySegmentError, RegionSegmenter

__all__ = [
    "DEFAULT_TRACK_FRAMES",
    "NEGATIVE_KEY",
    "PROMPT_KINDS",
    "SCORE_KEY",
    "SEGMENTER_PRESETS",
    "EmptySegmentError",
    "RegionSegmenter",
    "download_segmenter",
    "is_prompt",
    "resolve_segmenter",
]
