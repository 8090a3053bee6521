# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`POST /v1/chat/completions` bodies: the schema (pydantic) and their translation into processor inputs.

A request is one sample: the conversation's image and video parts, in order, are the sample's images and videos;
its regions are the alpha channels of RGBA images (DAM's convention), in image order, then the body's `regions`; the
text holds one `<region>` placeholder per region, in that order.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import RequestError
from .media import MediaLimits, decode_image, decode_mask, video_file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MediaURL(_Strict):
    url: str
    detail: str | None = None  # accepted for OpenAI compatibility; images are read at the processor's resolution


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: MediaURL


class VideoURLPart(_Strict):
    """A video, as `transformers serve` writes it."""

    type: Literal["video_url"]
    video_url: MediaURL


class VideoPart(_Strict):
    type: Literal["video"]
    video: MediaURL


ContentPart = Annotated[TextPart | ImagePart | VideoURLPart | VideoPart, Field(discriminator="type")]


class Message(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str | list[ContentPart]


class StreamOptions(_Strict):
    include_usage: bool = False


class ChatCompletionRequest(_Strict):
    """The fields the server takes (the OpenAI ones it implements, plus `regions`)."""

    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    regions: list[dict[str, Any]] = Field(default_factory=list)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    user: str | None = None


@dataclass(frozen=True)
class GenerationOptions:
    """How one request is decoded. `temperature` 0 (the default) is greedy decoding."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class ChatRequest:
    """One parsed request: the processor's inputs for one sample and how to decode it.

    Attributes:
        prompt: the chat prompt, `<image>` / `<video>` / `<region>` placeholders included.
        images: `(H, W, 3)` uint8 images; videos: files; regions: region dicts as the processor takes them.
        region_fields: the request field each region came from (for error messages).
        folder: temporary folder of the request's video files (removed by `close`).
    """

    prompt: str
    images: list[np.ndarray]
    videos: list[Path]
    regions: list[dict[str, Any]]
    region_fields: list[str]
    options: GenerationOptions
    stream: bool = False
    include_usage: bool = False
    folder: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    def close(self) -> None:
        if self.folder is not None:
            self.folder.cleanup()
            self.folder = None


@dataclass(frozen=True)
class RequestLimits:
    """Server-side bounds of a request (see `pixelrefer serve --help`)."""

    media: MediaLimits = MediaLimits()
    default_max_tokens: int = 128
    max_tokens_limit: int = 1024


def validate_body(body: Any) -> ChatCompletionRequest:
    """The request schema: 400 for unknown top-level fields, 422 for fields of the wrong shape."""
    if not isinstance(body, dict):
        raise RequestError(422, f"expected a JSON object, got {type(body).__name__}", None, "invalid_schema")
    unknown = sorted(set(body) - set(ChatCompletionRequest.model_fields))
    if unknown:
        known = ", ".join(ChatCompletionRequest.model_fields)
        raise RequestError(
            400, f"{unknown[0]}: unknown field(s) {unknown}; the server takes {known}", unknown[0], "unknown_field"
        )
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as error:
        # a union reports one error per member; the deepest one names the field at fault
        first = max(error.errors(), key=lambda item: len(_fields(item["loc"])))
        location = _location(_fields(first["loc"]))
        raise RequestError(422, f"{location}: {first['msg']}", location, "invalid_schema") from None


def _fields(loc: tuple[Any, ...]) -> list[Any]:
    """The field names and list indices of a pydantic error location (without union member names such as `str`)."""
    return [part for part in loc if isinstance(part, int) or (part.isidentifier() and part not in _TYPE_NAMES)]


_TYPE_NAMES = {"str", "int", "float", "bool", "list", "dict", "function-after", "function-before"}


def _location(loc: list[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def generation_options(request: ChatCompletionRequest, limits: RequestLimits) -> GenerationOptions:
    max_tokens = request.max_completion_tokens or request.max_tokens or limits.default_max_tokens
    if max_tokens > limits.max_tokens_limit:
        field_name = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
        raise RequestError(
            400,
            f"{field_name}: {max_tokens} is more than the server's limit of {limits.max_tokens_limit}",
            field_name,
            "max_tokens_too_large",
        )
    stop = (request.stop,) if isinstance(request.stop, str) else tuple(request.stop or ())
    if len(stop) > 4 or not all(stop):
        raise RequestError(400, "stop: expected up to 4 non-empty strings", "stop", "bad_stop")
    return GenerationOptions(
        max_tokens=max_tokens,
        temperature=request.temperature or 0.0,
        top_p=request.top_p if request.top_p is not None else 1.0,
        seed=request.seed,
        stop=stop,
    )


def parse_request(body: Any, processor: Any, limits: RequestLimits) -> ChatRequest:
    """A request body as processor inputs (images decoded, regions read), or a `RequestError`."""
    request = validate_body(body)
    options = generation_options(request, limits)
    folder: tempfile.TemporaryDirectory | None = None
    images: list[np.ndarray] = []
    videos: list[Path] = []
    regions: list[dict[str, Any]] = []
    region_fields: list[str] = []
    conversation = []
    try:
        for m, message in enumerate(request.messages):
            if isinstance(message.content, str):
                conversation.append({"role": message.role, "content": message.content})
                continue
            content = []
            for p, part in enumerate(message.content):
                where = f"messages[{m}].content[{p}]"
                if isinstance(part, TextPart):
                    content.append({"type": "text", "text": part.text})
                elif isinstance(part, ImagePart):
                    pixels, alpha = decode_image(part.image_url.url, f"{where}.image_url", limits.media)
                    if alpha is not None:
                        regions.append({"mask": alpha, "image": len(images)})
                        region_fields.append(f"{where}.image_url")
                    images.append(pixels)
                    content.append({"type": "image"})
                else:
                    url = part.video_url.url if isinstance(part, VideoURLPart) else part.video.url
                    folder = folder or tempfile.TemporaryDirectory(prefix="pixelrefer-serve-")
                    videos.append(video_file(url, f"{where}.{part.type}", limits.media, Path(folder.name)))
                    content.append({"type": "video"})
            conversation.append({"role": message.role, "content": content})
        for r, region in enumerate(request.regions):
            regions.append(_region(region, f"regions[{r}]", videos, limits))
            region_fields.append(f"regions[{r}]")
        prompt = processor.apply_chat_template(conversation, add_generation_prompt=True)
    except BaseException:
        if folder is not None:
            folder.cleanup()
        raise
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    return ChatRequest(prompt, images, videos, regions, region_fields, options, request.stream, include_usage, folder)


def _region(region: dict[str, Any], where: str, videos: list[Path], limits: RequestLimits) -> dict[str, Any]:
    """A body region as the processor takes it: a mask data URL / nested list decoded; on a video, `time` (seconds)
    turned into the decoded frame number."""
    region = dict(region)
    if "mask" in region:
        region["mask"] = decode_mask(region["mask"], f"{where}.mask", limits.media)
    if "time" in region:
        region["frame"] = _frame_at(region.pop("time"), region.get("video", 0), videos, where)
    return region


def _frame_at(time: Any, video: Any, videos: list[Path], where: str) -> int:
    from ..video_decoding import probe_video

    if isinstance(time, bool) or not isinstance(time, (int, float)) or time < 0:
        raise RequestError(400, f"{where}.time: expected seconds >= 0, got {time!r}", f"{where}.time", "bad_time")
    if not isinstance(video, int) or not 0 <= video < len(videos):
        raise RequestError(
            400, f"{where}.video: {video!r} names none of the request's {len(videos)} video(s)", where, "bad_video"
        )
    try:
        fps, total = probe_video(str(videos[video]))
    except Exception as error:  # PyAV / decord raise many types for unreadable files
        raise RequestError(400, f"{where}: cannot read video {video} ({error})", where, "bad_video") from None
    return min(round(float(time) * fps), total - 1)


__all__ = [
    "ChatCompletionRequest",
    "ChatRequest",
    "GenerationOptions",
    "RequestLimits",
    "generation_options",
    "parse_request",
    "validate_body",
]
