# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""One training record, parsed: pure `parse_*` / `check_*` functions that return `(value, problems)` or `problems`.

A problem is a `(field, reason)` pair: `field` is a JSON path into the record (`masks[1]`, `conversations[0].from`),
`reason` says what is wrong and what was expected. Nothing here keeps state between calls, apart from [`FileInfo`],
a read-once cache of file headers shared by the records of a data set. [`parse_record`] is the entry point; the
layout is described in docs/data-format.md.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..image_loading import format_size
from ..runtime import IMAGE_PLACEHOLDER, REGION_PLACEHOLDER, VIDEO_PLACEHOLDER
from ..segmentation.clicks import NEGATIVE_KEY, PROMPT_KINDS

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
# Keys of a point / box annotation (turned into a mask by the recipe's segmenter); `image` on image records only.
PROMPT_KEYS = (*PROMPT_KINDS, NEGATIVE_KEY, "box_format")
NEEDS_SEGMENTER = (
    "a point / box annotation needs a segmenter to become a mask (data.segmenter in the recipe, --segmenter for "
    "pixelrefer data validate)"
)

_SCENE_TAG_PATTERN = re.compile(r"(?:<image>|<video>)\n?")

Problems = list[tuple[str, str]]
Size = tuple[int | None, int | None]


class FileInfo:
    """Sizes and frame counts of the files records refer to, read once per file (headers / first frame only)."""

    def __init__(self):
        self._images: dict[str, tuple[int, int] | str] = {}
        self._videos: dict[str, tuple[int, tuple[int, int]] | str] = {}

    def image_size(self, path: str) -> tuple[int, int] | str:
        """`(height, width)` from the image header, or the reason the file cannot be read."""
        if path not in self._images:
            from PIL import Image

            try:
                with Image.open(path) as image:
                    width, height = image.size
                self._images[path] = (height, width)
            except Exception as error:  # PIL raises many types for unreadable files
                self._images[path] = f"cannot read image file {path!r} ({error})"
        return self._images[path]

    def video_info(self, path: str) -> tuple[int, tuple[int, int]] | str:
        """`(number of frames, (height, width) of the first frame)`, or the reason the file cannot be read."""
        if path not in self._videos:
            self._videos[path] = _read_video_info(path)
        return self._videos[path]


def _read_video_info(path: str) -> tuple[int, tuple[int, int]] | str:
    from ..video_decoding import probe_video

    try:
        import av

        fps, total = probe_video(path)
        if total <= 0:
            return f"video file {path!r} holds no frame"
        if fps <= 0:
            return f"video file {path!r} has no frame rate"
        with av.open(path) as container:
            for frame in container.decode(video=0):
                return total, (int(frame.height), int(frame.width))
        return f"video file {path!r} holds no decodable frame"
    except Exception as error:  # PyAV / decord raise many types for unreadable files
        return f"cannot read video file {path!r} ({error})"


@dataclass(frozen=True)
class ParseOptions:
    """How records are read.

    Attributes:
        root: folder the records' paths are relative to.
        variant: `"full"` or `"lite"`.
        check_files: read files' headers and decode masks (else only the record's structure is checked).
        files: the shared read-once file cache.
        prompts: accept point / box annotations (a segmenter is configured to turn them into masks).
    """

    root: Path
    variant: str
    check_files: bool
    files: FileInfo = field(default_factory=FileInfo)
    prompts: bool = False


@dataclass(frozen=True)
class ParsedRecord:
    """What a record holds, as the processor reads it (meaningful only when the record has no problem).

    Attributes:
        images: resolved image paths.
        videos: resolved video paths, or `{"frames": [paths], "timestamps": [seconds]}` dicts.
        regions: region dicts in `<region>` order; point / box prompts stay prompts (the segmenter makes their masks).
        messages: chat messages `{"role", "content"}`.
        added_tag: `<image>` / `<video>` when it was added to the first human turn, else None.
    """

    images: list[str] = field(default_factory=list)
    videos: list[Any] = field(default_factory=list)
    regions: list[dict] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    added_tag: str | None = None


@dataclass(frozen=True)
class VideoInfo:
    """A record's video: `videos` for the processor, its frame count and frame `(H, W)` when known."""

    videos: list[Any]
    num_frames: int | None = None
    frame_size: tuple[int, int] | None = None


# ---------------------------------------------------------------------------------------------------- record


def parse_record(record: Any, options: ParseOptions) -> tuple[ParsedRecord, Problems]:
    """Every part of a record and every problem of it, in field order (size, media, masks, conversations)."""
    if not isinstance(record, Mapping):
        return ParsedRecord(), [("record", f"expected a JSON object (dict), got {type(record).__name__}")]
    size, problems = parse_size(record)
    has_image, has_video = record.get("image") is not None, record.get("video") is not None
    images: list[str] = []
    videos: list[Any] = []
    regions: list[dict] = []
    if has_image and has_video:
        problems.append(("video", "a record holds an image or a video, not both"))
        has_video = False
    elif has_image:
        (images, regions), found = parse_image_record(record, size, options)
        problems += found
    elif has_video:
        (videos, regions), found = parse_video_record(record, size, options)
        problems += found
    elif record.get("masks"):
        problems.append(("masks", "masks need an image or a video; the record has neither ('image' / 'video')"))
    num_masks = len(record["masks"]) if isinstance(record.get("masks"), list) else 0
    (messages, added_tag), found = parse_conversations(
        record.get("conversations"), len(images), int(has_video), num_masks, options.variant
    )
    return ParsedRecord(images, videos, regions, messages, added_tag), problems + found


def parse_size(record: Mapping[str, Any]) -> tuple[Size, Problems]:
    """The record's optional `height` / `width` (None when absent or invalid)."""
    values: list[int | None] = []
    problems: Problems = []
    for key in ("height", "width"):
        value = record.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            problems.append((key, f"expected a positive integer (pixels), got {value!r}"))
            value = None
        values.append(value)
    return (values[0], values[1]), problems


def check_record_size(actual: tuple[int, int], what: str, size: Size) -> Problems:
    """The record's `height` / `width` against the real size of its (first) image or frame."""
    return [
        (key, f"the record says {key} {given} but {what} is {format_size(actual)}; expected {key} {real}")
        for key, given, real in (("height", size[0], actual[0]), ("width", size[1], actual[1]))
        if given is not None and given != real
    ]


def parse_path_list(value: Any, key: str) -> tuple[tuple[list[str], list[str]], Problems]:
    """A path or a non-empty list of paths -> `(paths, field names)`."""
    if isinstance(value, str) and value:
        return ([value], [key]), []
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return (value, [key] if len(value) == 1 else [f"{key}[{i}]" for i in range(len(value))]), []
    reason = f"expected a path or a non-empty list of paths (relative to the data root), got {value!r:.80}"
    return ([], []), [(key, reason)]


def parse_mask_list(record: Mapping[str, Any]) -> tuple[list, Problems]:
    """The record's `masks` list (empty when absent)."""
    masks = record.get("masks")
    if masks is None:
        return [], []
    if not isinstance(masks, list):
        return [], [("masks", f"expected a list with one annotation per object, got {type(masks).__name__}")]
    return masks, []


def read_image_size(path: str, name: str, files: FileInfo, what: str = "image file") -> tuple[Any, Problems]:
    """`(H, W)` of an image file (None with a problem when it is missing or unreadable)."""
    if not Path(path).is_file():
        return None, [(name, f"{what} {path!r} does not exist")]
    image_size = files.image_size(path)
    if isinstance(image_size, str):
        return None, [(name, image_size)]
    return image_size, []


# ---------------------------------------------------------------------------------------------------- annotations


def parse_annotation_kind(annotation: Any, name: str, prompts: bool) -> tuple[str | None, Problems]:
    """`"rle"` (COCO RLE dict), `"polygon"` (list of rings) or `"prompt"` (point / box, with a segmenter)."""
    if isinstance(annotation, Mapping) and "counts" in annotation and "size" in annotation:
        return "rle", []
    if isinstance(annotation, list) and annotation:
        return "polygon", []
    if isinstance(annotation, Mapping) and any(key in annotation for key in PROMPT_KINDS) and prompts:
        return "prompt", []
    reason = (
        'expected a COCO RLE dict {"size": [H, W], "counts": ...} or a COCO polygon [[x0, y0, x1, y1, ...], ...], '
        f"got {json.dumps(annotation, default=str)[:80]}"
    )
    if isinstance(annotation, Mapping) and any(key in annotation for key in PROMPT_KINDS):
        reason = f"{NEEDS_SEGMENTER}; {reason}"
    return None, [(name, reason)]


def parse_prompt(annotation: Mapping[str, Any], name: str, extra_keys: tuple[str, ...]) -> tuple[Any, Problems]:
    """A point / box annotation as a region dict (its keys checked), or None with a problem."""
    unknown = sorted(set(annotation) - {*PROMPT_KEYS, *extra_keys})
    kinds = [kind for kind in PROMPT_KINDS if kind in annotation]
    if unknown or len(kinds) != 1:
        allowed = ", ".join(repr(key) for key in (*PROMPT_KEYS[len(PROMPT_KINDS) :], *extra_keys))
        found = f"unknown key(s) {unknown}" if unknown else f"{len(kinds)} of them"
        return None, [(name, f"expected exactly one of {PROMPT_KINDS} with optional {allowed}; got {found}")]
    return dict(annotation), []


def check_annotation(kind: str, annotation: Any, image_size: Any, size: Size, name: str, what: str) -> Problems:
    """Decode an annotation at its image's size (or the best size known) and say why it is unusable."""
    from ..errors import RegionInputError
    from ..region_masks import region_to_mask

    image_size = image_size or _fallback_size(kind, annotation, size)
    if image_size is None:
        return []  # the image is missing or unreadable (already reported) and nothing else gives its size
    try:
        if kind == "prompt":
            from ..segmentation.clicks import parse_clicks

            parse_clicks(annotation, image_size, 0, 0)
        else:
            region_to_mask({kind: annotation}, image_size, 0, 0)
    except RegionInputError as error:
        return [(name, error.expected.replace("its image", what))]
    except Exception as error:  # pycocotools raises many types on malformed input
        return [(name, f"cannot decode the {kind} ({type(error).__name__}: {error})")]
    return []


def _fallback_size(kind: str, annotation: Any, size: Size) -> tuple[int, int] | None:
    """The size to check an annotation at when its image cannot be read: an RLE's own, else the record's."""
    if kind == "rle" and isinstance(annotation, Mapping):
        rle_size = annotation.get("size")
        valid = (
            isinstance(rle_size, list)
            and len(rle_size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in rle_size)
        )
        return (rle_size[0], rle_size[1]) if valid else None
    if size[0] is not None and size[1] is not None:
        return size[0], size[1]
    return None


# ---------------------------------------------------------------------------------------------------- images


def parse_image_record(
    record: Mapping[str, Any], size: Size, options: ParseOptions
) -> tuple[tuple[list[str], list[dict]], Problems]:
    """`(resolved image paths, regions)` of an image record."""
    (paths, names), problems = parse_path_list(record["image"], "image")
    images = [str(options.root / path) for path in paths]
    sizes, found = check_images(images, names, size, options)
    masks, found_masks = parse_mask_list(record)
    regions, found_regions = parse_image_masks(masks, images, sizes, size, options)
    return (images, regions), problems + found + found_masks + found_regions


def check_images(
    images: list[str], names: list[str], size: Size, options: ParseOptions
) -> tuple[list[tuple[int, int] | None], Problems]:
    """Each image's `(H, W)` (None when unknown or unchecked); `height` / `width` describe the first image."""
    sizes: list[tuple[int, int] | None] = []
    problems: Problems = []
    for position, (path, name) in enumerate(zip(images, names, strict=True)):
        image_size = None
        if options.check_files:
            image_size, found = read_image_size(path, name, options.files)
            problems += found
            if image_size is not None and position == 0:
                problems += check_record_size(image_size, f"image {path!r}", size)
        sizes.append(image_size)
    return sizes, problems


def parse_image_masks(
    masks: list, images: list[str], sizes: list[tuple[int, int] | None], size: Size, options: ParseOptions
) -> tuple[list[dict], Problems]:
    """One region per annotation of an image record, checked against its image when files are checked."""
    regions: list[dict] = []
    problems: Problems = []
    for object_index, annotation in enumerate(masks):
        name = f"masks[{object_index}]"
        (kind, value, image_index), found = parse_image_annotation(annotation, name, options.prompts)
        if not found and images and image_index >= len(images):
            found = [(name, f"image index {image_index} is out of range; the record has {len(images)} image(s)")]
        problems += found
        if found:
            continue
        region = dict(value) if kind == "prompt" else {kind: value}
        if len(images) > 1:
            region["image"] = image_index
        regions.append(region)
        if options.check_files:
            image_size = sizes[image_index] if image_index < len(sizes) else None
            problems += check_annotation(kind, value, image_size, size, name, "its image")
    return regions, problems


def parse_image_annotation(annotation: Any, name: str, prompts: bool) -> tuple[tuple[Any, Any, int], Problems]:
    """`(kind, annotation, image index)` of one object of an image record.

    A bare RLE / polygon lies on image 0; the plugin's form `{"rle" | "polygon": ANN, "image": i}` and point / box
    prompts (`{"point": [x, y], "image": i}`) may name another image.
    """
    nothing = (None, None, 0)
    if isinstance(annotation, Mapping) and ("rle" in annotation or "polygon" in annotation):
        unknown = sorted(set(annotation) - {"rle", "polygon", "image"})
        if unknown or ("rle" in annotation) == ("polygon" in annotation):
            return nothing, [(name, 'expected {"rle": ANN} or {"polygon": ANN} with an optional "image": index')]
        image_index, found = _image_index(annotation.get("image", 0), name)
        kind = "rle" if "rle" in annotation else "polygon"
        return (kind, annotation[kind], image_index), found
    kind, problems = parse_annotation_kind(annotation, name, prompts)
    if kind != "prompt":
        return (kind, annotation, 0), problems
    prompt, problems = parse_prompt(annotation, name, ("image",))
    if problems:
        return nothing, problems
    image_index, found = _image_index(prompt.pop("image", 0), name)
    return ("prompt", prompt, image_index), found


def _image_index(value: Any, name: str) -> tuple[int, Problems]:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0, [(name, f"image must be a non-negative image index, got {value!r}")]
    return value, []


# ---------------------------------------------------------------------------------------------------- videos


def parse_video_record(
    record: Mapping[str, Any], size: Size, options: ParseOptions
) -> tuple[tuple[list[Any], list[dict]], Problems]:
    """`(videos, regions)` of a video record."""
    video, problems = parse_video(record, size, options)
    masks, found = parse_mask_list(record)
    regions, found_regions = parse_video_masks(masks, video, size, options)
    return (video.videos, regions), problems + found + found_regions


def parse_video(record: Mapping[str, Any], size: Size, options: ParseOptions) -> tuple[VideoInfo, Problems]:
    """The record's video: a file, or a list of frame files with `timestamps`."""
    value, timestamps = record["video"], record.get("timestamps")
    is_frames = isinstance(value, list) and (len(value) > 1 or timestamps is not None)
    (paths, names), problems = parse_path_list(value, "video")
    if not paths:
        return VideoInfo([]), problems
    if is_frames:
        video, found = parse_frame_files(
            [str(options.root / path) for path in paths], names, timestamps, size, options
        )
        return video, problems + found
    if timestamps is not None:
        problems.append(("timestamps", "timestamps go with a list of frame files, not with a video file"))
    path = str(options.root / paths[0])
    if not options.check_files:
        return VideoInfo([path]), problems
    if not Path(path).is_file():
        return VideoInfo([path]), [*problems, ("video", f"video file {path!r} does not exist")]
    info = options.files.video_info(path)
    if isinstance(info, str):
        return VideoInfo([path]), [*problems, ("video", info)]
    total, frame_size = info
    problems += check_record_size(frame_size, f"the first frame of video {path!r}", size)
    return VideoInfo([path], total, frame_size), problems


def parse_frame_files(
    frames: list[str], names: list[str], timestamps: Any, size: Size, options: ParseOptions
) -> tuple[VideoInfo, Problems]:
    """A video given as frame image files: timestamps checked, every frame of the first frame's size."""
    seconds, problems = parse_timestamps(timestamps, len(frames))
    video = {"frames": frames, "timestamps": timestamps if seconds is None else seconds}
    if not options.check_files:
        return VideoInfo([video], len(frames)), problems
    first: tuple[int, int] | None = None
    for path, name in zip(frames, names, strict=True):
        frame_size, found = read_image_size(path, name, options.files, what="frame image file")
        problems += found
        if frame_size is None:
            continue
        if first is None:
            first = frame_size
            problems += check_record_size(frame_size, f"frame {path!r}", size)
        elif frame_size != first:
            problems.append(
                (
                    name,
                    f"frame is {format_size(frame_size)} but the first frame is {format_size(first)}; "
                    "expected every frame of a video to have the same size",
                )
            )
    return VideoInfo([video], len(frames), first), problems


def parse_timestamps(timestamps: Any, num_frames: int) -> tuple[list[float] | None, Problems]:
    """The frames' times in seconds: one number per frame file, strictly increasing."""
    if timestamps is None:
        return None, [
            ("timestamps", f"a list of {num_frames} frame files needs 'timestamps' (seconds, one per frame)")
        ]
    numbers = isinstance(timestamps, list) and all(
        isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) for t in timestamps
    )
    if not numbers:
        return None, [("timestamps", f"expected a list of numbers (seconds), got {timestamps!r:.80}")]
    if len(timestamps) != num_frames:
        reason = f"got {len(timestamps)} timestamps for {num_frames} frame files; expected one per frame"
        return None, [("timestamps", reason)]
    if any(b <= a for a, b in zip(timestamps, timestamps[1:], strict=False)):
        return None, [("timestamps", f"timestamps must be strictly increasing, got {timestamps!r:.80}")]
    return [float(t) for t in timestamps], []


def parse_video_masks(masks: list, video: VideoInfo, size: Size, options: ParseOptions) -> tuple[list[dict], Problems]:
    """One region per object of a video record: `{ann kind: ann, "frame": t}` (full) or a track `{"frames": ...}`."""
    regions: list[dict] = []
    problems: Problems = []
    for object_index, track in enumerate(masks):
        name = f"masks[{object_index}]"
        parts, found = parse_track(track, name, video, size, options)
        problems += found
        if parts is None:
            continue
        if options.variant == "full" and len(track) > 1:
            problems.append(
                (
                    name,
                    f"the full variant takes one frame per object, got {len(track)} frames "
                    f"({', '.join(map(str, track))}); objects on several frames are for PixelRefer-Lite "
                    "(variant='lite')",
                )
            )
        elif len(parts) == len(track) and options.variant == "full":
            ((frame, part),) = parts.items()
            regions.append({**part, "frame": frame})
        elif len(parts) == len(track):
            regions.append({"frames": dict(sorted(parts.items()))})
    return regions, problems


def parse_track(
    track: Any, name: str, video: VideoInfo, size: Size, options: ParseOptions
) -> tuple[dict[int, dict] | None, Problems]:
    """The valid parts `{frame: region part}` of one video object `{"frame_index": annotation}` (None if not a dict)."""
    if not isinstance(track, Mapping) or not track:
        reason = 'expected a non-empty dict {"frame_index": annotation} for an object of a video, got '
        return None, [(name, reason + json.dumps(track, default=str)[:80])]
    if "counts" in track or "size" in track:
        reason = (
            "an object of a video is a dict {frame_index: annotation}; got an annotation without its frame index "
            '(write {"12": annotation} for frame 12)'
        )
        return None, [(name, reason)]
    parts: dict[int, dict] = {}
    problems: Problems = []
    for key, annotation in track.items():
        part_name = f'{name}["{key}"]'
        (frame, kind, value), found = parse_track_part(key, annotation, part_name, video, options.prompts)
        if not found and frame in parts:
            found = [(part_name, f"frame {frame} is given twice")]
        problems += found
        if found:
            continue
        parts[frame] = dict(value) if kind == "prompt" else {kind: value}
        if options.check_files:
            problems += check_annotation(kind, value, video.frame_size, size, part_name, "its frame")
    return parts, problems


def parse_track_part(
    key: Any, annotation: Any, name: str, video: VideoInfo, prompts: bool
) -> tuple[tuple[int, str | None, Any], Problems]:
    """`(frame, kind, annotation)` of one `"frame_index": annotation` entry of a video object."""
    frame = frame_number(key)
    if frame is None:
        return (-1, None, None), [(name, f"frame index must be a non-negative integer, got {key!r}")]
    if video.num_frames is not None and frame >= video.num_frames:
        reason = f"frame {frame} is out of range; the video has {video.num_frames} frames (0..{video.num_frames - 1})"
        return (frame, None, None), [(name, reason)]
    kind, problems = parse_annotation_kind(annotation, name, prompts)
    if kind == "prompt":
        annotation, problems = parse_prompt(annotation, name, ())
    return (frame, kind, annotation), problems


def frame_number(key: Any) -> int | None:
    """A frame index from a JSON key (`"12"` or 12); None for anything but a non-negative integer."""
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key if key >= 0 else None
    if isinstance(key, str) and key.strip().isdigit():
        return int(key)
    return None


# ---------------------------------------------------------------------------------------------------- conversations


def parse_conversations(
    turns: Any, num_images: int, num_videos: int, num_masks: int, variant: str
) -> tuple[tuple[list[dict], str | None], Problems]:
    """`(chat messages, added scene tag)`: turns checked, one `<region>` per mask, scene placeholders placed."""
    if not isinstance(turns, list) or not turns:
        reason = (
            'expected a non-empty list of turns {"from": "human" | "gpt" | "system", "value": str}, got '
            f"{json.dumps(turns, default=str)[:80]}"
        )
        return ([], None), [("conversations", reason)]
    messages, problems = parse_turns(turns, variant)
    if len(messages) != len(turns):
        return (messages, None), problems
    text = "".join(message["content"] for message in messages)
    problems += check_conversation(messages, text, num_masks)
    if variant == "lite":
        return ([{**m, "content": _SCENE_TAG_PATTERN.sub("", m["content"])} for m in messages], None), problems
    (messages, added_tag), found = place_scene_tags(messages, text, num_images, num_videos)
    return (messages, added_tag), problems + found


def parse_turns(turns: list, variant: str) -> tuple[list[dict], Problems]:
    """One message `{"role", "content"}` per valid turn."""
    messages: list[dict] = []
    problems: Problems = []
    for turn_index, turn in enumerate(turns):
        name = f"conversations[{turn_index}]"
        if not isinstance(turn, Mapping) or "from" not in turn or "value" not in turn:
            problems.append((name, 'expected a dict {"from": "human" | "gpt" | "system", "value": str}'))
            continue
        role = ROLES.get(turn["from"]) if isinstance(turn["from"], str) else None
        if role is None:
            problems.append((f"{name}.from", f"unknown role {turn['from']!r}; expected 'human', 'gpt' or 'system'"))
            continue
        if not isinstance(turn["value"], str):
            problems.append((f"{name}.value", f"expected a string, got {type(turn['value']).__name__}"))
            continue
        if role == "assistant" and variant == "full":
            problems += [
                (f"{name}.value", f"an answer (gpt turn) cannot hold {tag}; put it in a human turn")
                for tag in (IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER)
                if tag in turn["value"]
            ]
        messages.append({"role": role, "content": turn["value"]})
    return messages, problems


def check_conversation(messages: list[dict], text: str, num_masks: int) -> Problems:
    """An answer to learn from, a prompt, and one `<region>` per mask."""
    roles = [message["role"] for message in messages]
    problems: Problems = []
    if "assistant" not in roles:
        problems.append(("conversations", "no gpt (assistant) turn: nothing to learn from"))
    if "user" not in roles:
        problems.append(("conversations", "no human (user) turn"))
    num_regions = text.count(REGION_PLACEHOLDER)
    if num_regions != num_masks:
        problems.append(
            (
                "masks",
                f"{num_masks} mask(s) for {num_regions} {REGION_PLACEHOLDER} placeholder(s) in the conversation; expected one "
                f"mask per {REGION_PLACEHOLDER} (the n-th {REGION_PLACEHOLDER} is masks[n-1])",
            )
        )
    return problems


def place_scene_tags(
    messages: list[dict], text: str, num_images: int, num_videos: int
) -> tuple[tuple[list[dict], str | None], Problems]:
    """Full variant: one `<image>` / `<video>` per image / video, added to the first human turn when there are none."""
    messages = [dict(message) for message in messages]
    roles = [message["role"] for message in messages]
    added_tag = None
    problems: Problems = []
    for tag, expected, other in ((IMAGE_PLACEHOLDER, num_images, "image"), (VIDEO_PLACEHOLDER, num_videos, "video")):
        found = text.count(tag)
        if found == 0 and expected > 0 and "user" in roles:
            first_user = messages[roles.index("user")]
            first_user["content"] = f"{tag}\n" * expected + first_user["content"]
            added_tag = tag
        elif found != expected:
            problems.append(
                (
                    "conversations",
                    f"the conversation holds {found} {tag} placeholder(s) but the record has {expected} {other}(s); "
                    f"expected one per {other} (or none, then they are added to the first human turn)",
                )
            )
    return (messages, added_tag), problems


__all__ = [
    "FileInfo",
    "ParseOptions",
    "ParsedRecord",
    "VideoInfo",
    "check_annotation",
    "frame_number",
    "parse_conversations",
    "parse_image_record",
    "parse_record",
    "parse_video_record",
]
