# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Region documents (the schema of `docs/evaluation.md`) turned into [`PixelReferProcessor`] arguments.

A region document holds `id`, `image` or `video` (absolute paths), `regions` (PixelRefer region dicts in `<region>`
order), `prompt` (`{"full": str, "lite": str}`), `answer` and, for multiple-choice tasks, `options`. A document whose
Lite protocol gives the regions differently (VideoRefer-Bench-D: masks on every annotated frame) also holds
`lite_regions`. The model wrapper reads the document itself, so the regions reach the model as real masks.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from ...runtime import IMAGE_PLACEHOLDER, REGION_PLACEHOLDER, VIDEO_PLACEHOLDER, check_variant

# A scene tag and the newline the chat template puts after it.
_SCENE_TAG = re.compile(r"(<image>|<video>)\n?")


class DocumentError(ValueError):
    """A region document that does not follow the schema; the message names the document id and the key."""

    def __init__(self, doc_id: Any, key: str, problem: str):
        self.doc_id = doc_id
        self.key = key
        super().__init__(f"region document {doc_id!r}: {key}: {problem}")


class DocumentInputs(NamedTuple):
    """Processor arguments of one document: `processor(text=..., images=[images], videos=[videos], regions=[regions])`.

    `prompt` is the user text with `<region>` placeholders (and, for the full variant, the `<image>\\n` or
    `<video>\\n` scene tag the chat template would render for an image / video content item).
    """

    prompt: str
    images: list[str]
    videos: list[str]
    regions: list[dict[str, Any]]


def document_id(doc: Mapping[str, Any], fallback: Any = None) -> Any:
    """The document's `id`, or `fallback` (e.g. lmms-eval's doc index) when it has none."""
    if isinstance(doc, Mapping) and doc.get("id") is not None:
        return doc["id"]
    return fallback


def document_prompt(doc: Mapping[str, Any], variant: str, doc_id: Any = None) -> str:
    """The published question of `variant` (`doc["prompt"][variant]`), with its `<region>` placeholders."""
    doc_id = document_id(doc, doc_id)
    check_variant(variant)
    prompt = doc.get("prompt")
    if not isinstance(prompt, Mapping):
        raise DocumentError(doc_id, "prompt", f"expected a dict {{'full': str, 'lite': str}}, got {_kind(prompt)}")
    text = prompt.get(variant)
    if not isinstance(text, str) or not text.strip():
        raise DocumentError(
            doc_id, f"prompt.{variant}", f"expected the {variant} question as a string, got {_kind(text)}"
        )
    return text


def document_inputs(
    doc: Mapping[str, Any], variant: str, prompt: str | None = None, doc_id: Any = None
) -> DocumentInputs:
    """Turn a region document into the prompt, images, videos and regions of one processor sample.

    Args:
        doc: the region document (a dict as loaded by `datasets`; missing keys of heterogeneous region dicts that
            `datasets` fills with `None` are dropped). The Lite variant reads `lite_regions` when the document has
            them, else `regions`.
        variant: `"full"` (the scene is read: image docs get `<image>\\n`, video docs `<video>\\n` unless the prompt
            already holds that tag) or `"lite"` (object tokens only: scene tags are removed, the image / video is
            still passed because the regions lie on it).
        prompt: user text to use instead of `doc["prompt"][variant]` (e.g. a later round of a multi-round task).
        doc_id: id to name in errors when the document has no `id`.

    Returns:
        [`DocumentInputs`] `(prompt, images, videos, regions)`.

    Raises:
        DocumentError (a `ValueError`): the document misses a key, its `<region>` count differs from its regions, or
            an image / video file does not exist.
    """
    check_variant(variant)
    if not isinstance(doc, Mapping):
        raise DocumentError(doc_id, "document", f"expected a dict, got {_kind(doc)}")
    doc_id = document_id(doc, doc_id)
    text = document_prompt(doc, variant, doc_id) if prompt is None else prompt
    images = _media(doc, "image", doc_id)
    videos = _media(doc, "video", doc_id)
    if not images and not videos:
        raise DocumentError(
            doc_id, "image/video", "expected the path of an image or a video for the regions to lie on"
        )

    regions_key = "lite_regions" if variant == "lite" and doc.get("lite_regions") is not None else "regions"
    if doc.get(regions_key) is None:
        raise DocumentError(doc_id, regions_key, "missing; expected a list of region dicts in <region> order")
    raw_regions = doc[regions_key]
    if isinstance(raw_regions, str):  # tasks store regions as JSON text: Arrow cannot hold mixed region dicts
        try:
            raw_regions = json.loads(raw_regions)
        except json.JSONDecodeError as error:
            raise DocumentError(doc_id, regions_key, f"not valid JSON ({error})") from None
    if isinstance(raw_regions, (str, Mapping)) or not isinstance(raw_regions, Sequence):
        raise DocumentError(doc_id, regions_key, f"expected a list of region dicts, got {_kind(raw_regions)}")
    regions = [_clean_region(region, doc_id, index, regions_key) for index, region in enumerate(raw_regions)]

    key = "prompt" if prompt is not None else f"prompt.{variant}"
    found = text.count(REGION_PLACEHOLDER)
    if found != len(regions):
        raise DocumentError(
            doc_id,
            key,
            f"holds {found} {REGION_PLACEHOLDER} placeholder(s) but the document has {len(regions)} region(s)",
        )
    return DocumentInputs(scene_prompt(text, variant, bool(images), bool(videos)), images, videos, regions)


def scene_prompt(text: str, variant: str, has_image: bool, has_video: bool) -> str:
    """Put the scene tag the variant needs in front of `text` (full), or remove scene tags (Lite).

    The full variant reads the scene: `<image>\\n` (image) / `<video>\\n` (video) is prepended, as the chat template
    renders an image / video content item, unless the text already holds that tag (VideoRefer-D prompts start with
    `<video>\\n`). PixelRefer-Lite reads no scene tokens, so its prompt holds no tag.
    """
    check_variant(variant)
    if variant == "lite":
        return _SCENE_TAG.sub("", text)
    tags = ""
    if has_image and IMAGE_PLACEHOLDER not in text:
        tags += IMAGE_PLACEHOLDER + "\n"
    if has_video and VIDEO_PLACEHOLDER not in text:
        tags += VIDEO_PLACEHOLDER + "\n"
    return tags + text


def prompt_content(prompt: str) -> list[dict[str, str]]:
    """Chat-message content of a user prompt: leading `<image>\\n` / `<video>\\n` tags become image / video items
    (rendered back as the same tags by PixelRefer's chat template), the rest a text item."""
    content = []
    while True:
        match = _SCENE_TAG.match(prompt)
        if match is None or not match.group(0).endswith("\n"):
            break
        content.append({"type": "image" if match.group(1) == IMAGE_PLACEHOLDER else "video"})
        prompt = prompt[match.end() :]
    if prompt:
        content.append({"type": "text", "text": prompt})
    return content


def strip_scene_tags(text: str) -> str:
    """`text` without `<image>` / `<video>` tags (for follow-up turns: the scene is read once, in the first turn)."""
    return _SCENE_TAG.sub("", text)


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r:.60}"


def _media(doc: Mapping[str, Any], key: str, doc_id: Any) -> list[str]:
    path = doc.get(key)
    if path is None or path == "":
        return []
    if not isinstance(path, (str, os.PathLike)):
        raise DocumentError(doc_id, key, f"expected an absolute file path or null, got {_kind(path)}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DocumentError(doc_id, key, f"file {path!r} does not exist")
    return [path]


def _clean_region(region: Any, doc_id: Any, index: int, key: str = "regions") -> dict[str, Any]:
    """Copy of a region dict without `None` values; Lite `frames` keys (strings in JSON) become frame numbers."""
    if not isinstance(region, Mapping):
        raise DocumentError(doc_id, f"{key}[{index}]", f"expected a region dict, got {_kind(region)}")
    cleaned = {key: value for key, value in region.items() if value is not None}
    if "frames" in cleaned:
        frames = cleaned["frames"]
        if not isinstance(frames, Mapping):
            raise DocumentError(
                doc_id,
                f"{key}[{index}].frames",
                f"expected a dict {{frame number: region dict}}, got {_kind(frames)}",
            )
        track = {}
        for frame, part in frames.items():
            if part is None:
                continue  # a frame key other documents have (datasets unifies the keys of all documents)
            number = _frame_number(frame, doc_id, f"{key}[{index}].frames")
            if not isinstance(part, Mapping):
                raise DocumentError(
                    doc_id, f"{key}[{index}].frames[{frame}]", f"expected a region dict, got {_kind(part)}"
                )
            track[number] = {key: value for key, value in part.items() if value is not None}
        cleaned["frames"] = track
    if "frame" in cleaned:
        cleaned["frame"] = _frame_number(cleaned["frame"], doc_id, f"{key}[{index}].frame")
    if not cleaned:
        raise DocumentError(doc_id, f"{key}[{index}]", "empty region dict")
    return cleaned


def _frame_number(value: Any, doc_id: Any, key: str) -> int:
    if isinstance(value, bool):
        raise DocumentError(doc_id, key, f"expected a frame number, got {value!r}")
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if (isinstance(value, int) or (isinstance(value, float) and value.is_integer())) and value >= 0:
        return int(value)
    raise DocumentError(doc_id, key, f"expected a non-negative frame number, got {value!r}")


__all__ = [
    "DocumentError",
    "DocumentInputs",
    "document_id",
    "document_inputs",
    "document_prompt",
    "prompt_content",
    "scene_prompt",
    "strip_scene_tags",
]
