# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Asking a PixelRefer checkpoint about one region of an image or a video frame (`pixelrefer describe`).

```python
from transformers import TextStreamer

from pixelrefer_plugin.describe import describe, load_model, load_processor

processor = load_processor("pixelrefer-7b")
model = load_model("pixelrefer-7b")
streamer = TextStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
answer = describe(model, processor, "cat.jpg", {"box": [120, 80, 420, 360]}, streamer=streamer)
answer = describe(model, processor, "clip.mp4", {"point": [200, 150], "frame": 12}, "What is <region> doing?")
```

A region with a `frame` (or, for PixelRefer-Lite, `frames`) key lies on a video; any other region on an image.
`load_model` / `load_processor` wrap [`pixelrefer_plugin.loading`]'s; the device and dtype follow
[`pixelrefer_plugin.runtime`]'s policy (an unavailable `device` is an error). Errors are [`PixelReferInputError`]s
whose `argument` says which input is wrong: `"model"`, `"device"`, `"dtype"`, `"question"`, or the processor's
`"images"`, `"videos"`, `"regions"`, `"text"`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from transformers.feature_extraction_utils import BatchFeature

from . import loading
from .errors import PixelReferInputError
from .prompts import DLC_BENCH, VIDEOREFER_BENCH_D
from .region_masks import TRACK_KEY
from .runtime import REGION_PLACEHOLDER, resolve_device, resolve_dtype


def default_question(variant: str, on_video: bool) -> str:
    """The published prompt for describing one region: DLC-Bench's on an image, VideoRefer-Bench-D's on a video."""
    return (VIDEOREFER_BENCH_D if on_video else DLC_BENCH).for_variant(variant)


def check_question(question: str) -> str:
    """`question` if it holds exactly one `<region>` (where the region's object tokens go)."""
    found = question.count(REGION_PLACEHOLDER)
    if found != 1:
        raise PixelReferInputError(
            "question",
            f"{question!r} holds {found} {REGION_PLACEHOLDER} placeholder(s); expected exactly one, where the region "
            f"goes, e.g. 'What is {REGION_PLACEHOLDER} doing?'",
        )
    return question


def load_processor(path: str | Path) -> Any:
    """[`loading.load_processor`]; every failure a [`PixelReferInputError`] (argument `model`)."""
    with _model_errors():
        return loading.load_processor(path)


def load_model(path: str | Path, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None):
    """[`loading.load_model`] in eval mode on `device` (default: the best available) in `dtype`; every failure a
    [`PixelReferInputError`] (argument `model`, `device` or `dtype`)."""
    with _model_errors():
        return loading.load_model(path, device, dtype)


@contextmanager
def _model_errors() -> Iterator[None]:
    """A preset's released weights that cannot be reached offline are a `model` input error here (the message gives
    the download and convert commands)."""
    from .presets.hub import HubUnavailableError

    try:
        yield
    except HubUnavailableError as error:
        raise PixelReferInputError("model", str(error)) from None


def region_on_video(region: Mapping[str, Any]) -> bool:
    """Whether a region dict lies on a video (it names a `frame`, or `frames` for a multi-frame Lite region)."""
    return isinstance(region, Mapping) and ("frame" in region or TRACK_KEY in region)


def describe_prompt(processor: Any, question: str, on_video: bool) -> str:
    """The chat prompt of one user turn: the image or video (unless `question` holds its placeholder) and `question`.

    The Lite chat template renders the image / video item as nothing (Lite reads object tokens only).
    """
    placeholder = processor.video_placeholder if on_video else processor.image_token
    content: list[dict[str, str]] = []
    if placeholder not in question:
        content.append({"type": "video" if on_video else "image"})
    content.append({"type": "text", "text": question})
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)


def describe_inputs(
    processor: Any, image_or_video: Any, region: Mapping[str, Any], question: str | None = None
) -> BatchFeature:
    """Processor inputs (batch of one) for asking `question` about `region` of `image_or_video`.

    Args:
        processor: a [`PixelReferProcessor`].
        image_or_video: an image (PIL image, path, array) or, when `region` has a `frame` / `frames` key, a video
            (file path or dict of frames and timestamps).
        region: one region dict (`mask`, `rle`, `polygon`, `box` or `point`; `frame` on a video).
        question: text with exactly one `<region>`; default: [`default_question`] for the processor's variant.
    """
    on_video = region_on_video(region)
    question = check_question(question if question is not None else default_question(processor.variant, on_video))
    prompt = describe_prompt(processor, question, on_video)
    media = {"videos": image_or_video} if on_video else {"images": image_or_video}
    return processor(text=prompt, regions=[dict(region)], **media)


def generate_answer(
    model: Any, processor: Any, inputs: BatchFeature, max_new_tokens: int = 128, streamer: Any = None
) -> str:
    """Greedy answer of `model` to processor `inputs` (batch of one); `streamer` (e.g. `TextStreamer`) sees each token."""
    inputs = inputs.to(model.device)
    with torch.inference_mode():
        output = model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, streamer=streamer
        )
    return processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def describe(
    model: Any,
    processor: Any,
    image_or_video: Any,
    region: Mapping[str, Any],
    question: str | None = None,
    max_new_tokens: int = 128,
    streamer: Any = None,
) -> str:
    """Ask `model` about one region with greedy decoding and return the answer.

    Args:
        model, processor: a PixelRefer model and its processor (see [`load_model`], [`load_processor`]).
        image_or_video: the image, or the video when `region` names a `frame` (see [`describe_inputs`]).
        region: one region dict as the processor takes it.
        question: text with exactly one `<region>`; default: the published single-region description prompt
            (DLC-Bench on an image, VideoRefer-Bench-D on a video, in the model variant's wording).
        max_new_tokens: most tokens generated.
        streamer: passed to `generate`, e.g. `TextStreamer(processor.tokenizer, skip_prompt=True)`.
    """
    inputs = describe_inputs(processor, image_or_video, region, question)
    return generate_answer(model, processor, inputs, max_new_tokens, streamer)


__all__ = [
    "check_question",
    "default_question",
    "describe",
    "describe_inputs",
    "describe_prompt",
    "generate_answer",
    "load_model",
    "load_processor",
    "region_on_video",
    "resolve_device",
    "resolve_dtype",
]
