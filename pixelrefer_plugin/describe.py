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
Errors are [`PixelReferInputError`]s whose `argument` says which input is wrong: `"model"`, `"device"`, `"dtype"`,
`"question"`, or the processor's `"images"`, `"videos"`, `"regions"`, `"text"`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.feature_extraction_utils import BatchFeature

from .configuration_pixelrefer import RELEASED_MODEL_TYPES, PixelReferConfig
from .prompts import DLC_BENCH, VIDEOREFER_BENCH_D
from .regions import TRACK_KEY, PixelReferInputError
from .runtime import preferred_attn_implementation, preferred_dtype

logger = logging.getLogger(__name__)

REGION_PLACEHOLDER = "<region>"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# model_type of the released checkpoints before `pixelrefer convert`


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


def check_checkpoint(path: str | Path) -> str | Path:
    """What `from_pretrained` should read for `path`: a PixelRefer checkpoint folder (converted or released), or the
    hub id of a preset name (`"pixelrefer-7b"`) with no folder of that name; else a [`PixelReferInputError`] that says
    what to do (offline with nothing cached: the download and convert commands)."""
    folder = Path(path)
    if not folder.exists():
        from .presets import list_presets
        from .presets.hub import HubUnavailableError, resolve_pretrained

        if str(path) not in list_presets():
            raise PixelReferInputError("model", "no such folder")
        try:
            resolved = resolve_pretrained(str(path))
        except HubUnavailableError as error:
            raise PixelReferInputError("model", str(error)) from None
        if resolved == str(path):  # a preset without released weights
            hint = f"{str(path)!r} is a preset name: write its checkpoint with `pixelrefer build {path} --out DIR`"
            raise PixelReferInputError("model", f"no such folder; {hint}")
        return resolved
    if not folder.is_dir():
        raise PixelReferInputError("model", "is a file; expected a checkpoint folder")
    config_file = folder / "config.json"
    if not config_file.is_file():
        hint = ""
        if (folder / "adapter_config.json").is_file():
            hint = "; it holds a LoRA adapter: merge it into a checkpoint with `pixelrefer merge ADAPTER --out DIR`"
        raise PixelReferInputError("model", f"has no config.json; expected a PixelRefer checkpoint folder{hint}")
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as error:
        raise PixelReferInputError("model", f"cannot read its config.json ({error})") from None
    if model_type != PixelReferConfig.model_type and model_type not in RELEASED_MODEL_TYPES:
        raise PixelReferInputError(
            "model",
            f"holds a {model_type!r} checkpoint; expected a PixelRefer one (model_type "
            f"{PixelReferConfig.model_type!r}, written by `pixelrefer build`, `convert` or `merge`, or a released "
            f"{' / '.join(sorted(RELEASED_MODEL_TYPES))} checkpoint)",
        )
    return folder


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device`, or CUDA when available and the CPU otherwise."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, ValueError) as error:
        raise PixelReferInputError("device", f"{str(device)!r} is not a device name ({error})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise PixelReferInputError("device", f"{str(device)!r} asks for CUDA, which is not available; use 'cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise PixelReferInputError(
                "device", f"{str(device)!r} asks for GPU {device.index}; there are {torch.cuda.device_count()} GPU(s)"
            )
    return device


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """`"auto"` / None: bfloat16 on a CUDA device that supports it, float32 elsewhere; or the named dtype."""
    if dtype is None or dtype == "auto":
        return preferred_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise PixelReferInputError("dtype", f"{dtype!r}; expected one of 'auto', {', '.join(map(repr, DTYPES))}")
    if dtype == "float16" and device.type == "cpu":
        logger.warning("float16 on the CPU is slow and some operations may not support it; float32 is safer")
    return DTYPES[dtype]


def load_processor(path: str | Path) -> Any:
    """The [`PixelReferProcessor`] of a checkpoint folder or preset name (see `check_checkpoint`)."""
    folder = check_checkpoint(path)
    try:
        return AutoProcessor.from_pretrained(str(folder), trust_remote_code=True)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PixelReferInputError("model", f"cannot load its processor ({error})") from None


def load_model(path: str | Path, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None):
    """The model of a checkpoint folder or preset name, in eval mode on `device` (default: CUDA if available) in
    `dtype`."""
    folder = check_checkpoint(path)
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    attn = preferred_attn_implementation(device)
    logger.info("loading %s on %s (%s, %s)", folder, device, str(dtype).removeprefix("torch."), attn)
    kwargs: dict[str, Any] = {"trust_remote_code": True, "dtype": dtype, "attn_implementation": attn}
    if device.type != "cpu":
        kwargs["device_map"] = {"": str(device)}
    try:
        model = AutoModelForImageTextToText.from_pretrained(str(folder), **kwargs)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PixelReferInputError("model", f"cannot load its weights ({error})") from None
    return model.eval()


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
    "check_checkpoint",
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
