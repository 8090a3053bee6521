# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Region training data in the published PixelRefer layout: loading, validation, samples and batches.

A data file is a JSON list of records or a JSONL file with one record per line (the layout of the public PixelRefer
code's `LazySupervisedDataset._convert_normal`, see docs/data-format.md):

```json
{"image": "coco/000000123.jpg", "height": 480, "width": 640,
 "masks": [{"size": [480, 640], "counts": "..."}, [[10, 10, 50, 10, 50, 60]]],
 "conversations": [{"from": "human", "value": "<image>\\nWhat is <region> next to <region>?"},
                   {"from": "gpt", "value": "A cat next to a dog."}]}
```

Every record is checked before training ([`record_problems`], [`validate_records`], `pixelrefer data validate`):
files exist and are readable, masks decode, fit their image or frame and are non-empty, frame numbers exist, and the
conversation has one `<region>` per mask and an assistant turn. [`record_to_sample`] turns a record into a
[`RegionSample`] (chat messages, resolved paths and the plugin's region dicts) and [`RegionDataCollator`] batches
samples through the processor with `return_labels=True`.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..regions import format_size

logger = logging.getLogger(__name__)

VARIANTS = ("full", "lite")
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
IMAGE_TAG = "<image>"
VIDEO_TAG = "<video>"
REGION_TAG = "<region>"
MAX_LISTED_PROBLEMS = 20
# Checking records logs its progress every this many records (about 2 s of work on image records).
PROGRESS_EVERY = 1000

_SCENE_TAG_PATTERN = re.compile(r"(?:<image>|<video>)\n?")


class DataFileError(ValueError):
    """A data file that cannot be read as a list of records: `{path}[, line N]: {reason}`.

    Attributes:
        path: the data file.
        reason: what is wrong and what was expected.
        line: the line of a JSON syntax error, else None.
    """

    def __init__(self, path: str | Path, reason: str, line: int | None = None):
        self.path = str(path)
        self.reason = reason
        self.line = line
        super().__init__(f"{path}{'' if line is None else f', line {line}'}: {reason}")

    def __reduce__(self):
        return type(self), (self.path, self.reason, self.line)


class DataRecordError(ValueError):
    """A record that cannot be used: `record {index}, field {field}: {reason}`.

    Attributes:
        index: position of the record in its file (0-based).
        field: the record field at fault, as a JSON path (`masks[1]`, `conversations[0].from`, ...).
        reason: what is wrong and what was expected.
        problems: every problem found in the record (the first one is the message).
    """

    def __init__(self, index: int, field: str, reason: str, problems: Sequence[RecordProblem] | None = None):
        self.index = index
        self.field = field
        self.reason = reason
        self.problems = list(problems) if problems else [RecordProblem(index, field, reason)]
        super().__init__(f"record {index}, field {field}: {reason}")

    def __reduce__(self):
        return type(self), (self.index, self.field, self.reason, self.problems)


class DataValidationError(ValueError):
    """A data set with invalid records; the message lists every problem, one per line.

    Attributes:
        problems: every [`RecordProblem`] found.
    """

    def __init__(self, problems: Sequence[RecordProblem], num_records: int, source: str = "data"):
        self.problems = list(problems)
        self.num_records = num_records
        self.source = source
        bad = len({problem.index for problem in self.problems})
        lines = [str(problem) for problem in self.problems[:MAX_LISTED_PROBLEMS]]
        if len(self.problems) > MAX_LISTED_PROBLEMS:
            lines.append(f"... and {len(self.problems) - MAX_LISTED_PROBLEMS} more")
        super().__init__(
            f"{source}: {len(self.problems)} problem(s) in {bad} of {num_records} record(s) (fix them, or pass "
            "skip_invalid=True to drop those records):\n" + "\n".join(lines)
        )

    def __reduce__(self):
        return type(self), (self.problems, self.num_records, self.source)


@dataclass(frozen=True)
class RecordProblem:
    """One problem of one record: where (`index`, `field`) and what (`reason`)."""

    index: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"record {self.index}, field {self.field}: {self.reason}"


@dataclass
class RegionSample:
    """One record, ready for the processor.

    Attributes:
        messages: chat messages `{"role": "user" | "assistant" | "system", "content": str}`.
        images: resolved image paths.
        videos: resolved video file paths, or `{"frames": [paths], "timestamps": [seconds]}` dicts.
        regions: the plugin's region dicts (see `pixelrefer_plugin/regions.py`), in `<region>` order.
    """

    messages: list[dict]
    images: list = field(default_factory=list)
    videos: list = field(default_factory=list)
    regions: list[dict] = field(default_factory=list)


def load_records(path: str | Path) -> list[dict]:
    """Read a `.json` file holding a list of records, or a `.jsonl` file with one record per line.

    Raises:
        DataFileError: naming the file (and line): it does not exist, is a folder, is not UTF-8 text, holds malformed
            JSON, or a `.json` file that does not hold a list.
    """
    path = Path(path)
    if path.is_dir():
        raise DataFileError(path, "is a folder; expected a .json or .jsonl data file")
    if not path.is_file():
        raise DataFileError(path, "no such file; expected a .json or .jsonl data file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataFileError(path, f"cannot read the file ({error}); expected UTF-8 JSON text") from None
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        records = []
        for line_number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise DataFileError(
                    path,
                    f"invalid JSON ({error.msg} at column {error.colno}); expected one JSON record per line",
                    line_number,
                ) from None
        return records
    try:
        records = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataFileError(
            path,
            f"invalid JSON ({error.msg} at column {error.colno}); expected a JSON list of records (or a .jsonl file "
            "with one record per line)",
            error.lineno,
        ) from None
    if not isinstance(records, list):
        raise DataFileError(path, f"expected a JSON list of records, got a JSON {type(records).__name__}")
    return records


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


class _FileInfo:
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
            self._videos[path] = self._read_video_info(path)
        return self._videos[path]

    @staticmethod
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


class _RecordReader:
    """Walks one record: collects its problems and, when there are none, the pieces of its [`RegionSample`]."""

    def __init__(self, record: Any, index: int, root: str | Path, variant: str, check_files: bool, files: _FileInfo):
        self.record = record
        self.index = index
        self.root = Path(root)
        self.variant = variant
        self.check_files = check_files
        self.files = files
        self.problems: list[RecordProblem] = []
        self.images: list[str] = []
        self.videos: list[Any] = []
        self.regions: list[dict] = []
        self.messages: list[dict] = []
        self.added_tag: str | None = None
        self.size: tuple[int | None, int | None] = (None, None)  # the record's height / width, when valid
        self.frame_size: tuple[int, int] | None = None  # (H, W) of a video's frames, when known

    def problem(self, field_name: str, reason: str) -> None:
        self.problems.append(RecordProblem(self.index, field_name, reason))

    def resolve(self, value: str) -> str:
        return str(self.root / value)

    # ------------------------------------------------------------------ record

    def read(self) -> None:
        record = self.record
        if not isinstance(record, Mapping):
            self.problem("record", f"expected a JSON object (dict), got {type(record).__name__}")
            return
        has_image = record.get("image") is not None
        has_video = record.get("video") is not None
        self.size = size = self.read_size()
        if has_image and has_video:
            self.problem("video", "a record holds an image or a video, not both")
            self.read_conversations(num_images=0, num_videos=0)
            return
        if has_image:
            sizes = self.read_images(size)
            self.read_image_masks(sizes, size)
        elif has_video:
            frames = self.read_video(size)
            self.read_video_masks(frames)
        else:
            masks = record.get("masks")
            if masks:
                self.problem("masks", "masks need an image or a video; the record has neither ('image' / 'video')")
        self.read_conversations(num_images=len(self.images), num_videos=1 if has_video else 0)

    def read_size(self) -> tuple[int | None, int | None]:
        values = []
        for key in ("height", "width"):
            value = self.record.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                self.problem(key, f"expected a positive integer (pixels), got {value!r}")
                value = None
            values.append(value)
        return values[0], values[1]

    def check_record_size(self, actual: tuple[int, int], what: str, size: tuple[int | None, int | None]) -> None:
        for key, given, real in (("height", size[0], actual[0]), ("width", size[1], actual[1])):
            if given is not None and given != real:
                self.problem(
                    key,
                    f"the record says {key} {given} but {what} is {format_size(actual)}; expected {key} {real}",
                )

    # ------------------------------------------------------------------ images

    def read_images(self, size: tuple[int | None, int | None]) -> list[tuple[int, int] | None]:
        """Resolve the record's images; returns each image's `(H, W)` (None when unknown)."""
        value = self.record["image"]
        paths, names = self.path_list(value, "image")
        self.images = [self.resolve(p) for p in paths]
        sizes: list[tuple[int, int] | None] = []
        for path, name in zip(self.images, names, strict=True):
            sizes.append(None)
            if not self.check_files:
                continue
            if not Path(path).is_file():
                self.problem(name, f"image file {path!r} does not exist")
                continue
            image_size = self.files.image_size(path)
            if isinstance(image_size, str):
                self.problem(name, image_size)
                continue
            sizes[-1] = image_size
            if len(sizes) == 1:  # height / width describe the first image
                self.check_record_size(image_size, f"image {path!r}", size)
        return sizes

    def path_list(self, value: Any, key: str) -> tuple[list[str], list[str]]:
        """A path or a non-empty list of paths -> (paths, field names); problems for anything else."""
        if isinstance(value, str) and value:
            return [value], [key]
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            if len(value) == 1:
                return value, [key]
            return value, [f"{key}[{i}]" for i in range(len(value))]
        self.problem(
            key, f"expected a path or a non-empty list of paths (relative to the data root), got {value!r:.80}"
        )
        return [], []

    def read_image_masks(self, sizes: list[tuple[int, int] | None], size: tuple[int | None, int | None]) -> None:
        masks = self.mask_list()
        for object_index, annotation in enumerate(masks):
            name = f"masks[{object_index}]"
            image_index = 0
            if isinstance(annotation, Mapping) and ("rle" in annotation or "polygon" in annotation):
                # the plugin's own form, needed to put an object on another image than the first
                unknown = sorted(set(annotation) - {"rle", "polygon", "image"})
                image_index = annotation.get("image", 0)
                if unknown or ("rle" in annotation) == ("polygon" in annotation):
                    self.problem(name, 'expected {"rle": ANN} or {"polygon": ANN} with an optional "image": index')
                    continue
                if isinstance(image_index, bool) or not isinstance(image_index, int) or image_index < 0:
                    self.problem(name, f"image must be a non-negative image index, got {image_index!r}")
                    continue
                kind = "rle" if "rle" in annotation else "polygon"
                annotation = annotation[kind]
            else:
                kind = self.annotation_kind(annotation, name)
                if kind is None:
                    continue
            if self.images and image_index >= len(self.images):
                self.problem(
                    name, f"image index {image_index} is out of range; the record has {len(self.images)} image(s)"
                )
                continue
            region: dict[str, Any] = {kind: annotation}
            if len(self.images) > 1:
                region["image"] = image_index
            self.regions.append(region)
            if self.check_files:
                image_size = sizes[image_index] if image_index < len(sizes) else None
                self.check_annotation(kind, annotation, image_size, size, name, "its image")

    def mask_list(self) -> list:
        masks = self.record.get("masks")
        if masks is None:
            return []
        if not isinstance(masks, list):
            self.problem("masks", f"expected a list with one annotation per object, got {type(masks).__name__}")
            return []
        return masks

    def annotation_kind(self, annotation: Any, name: str) -> str | None:
        """`"rle"` for a COCO RLE dict, `"polygon"` for a list of rings; a problem (and None) for anything else."""
        if isinstance(annotation, Mapping) and "counts" in annotation and "size" in annotation:
            return "rle"
        if isinstance(annotation, list) and annotation:
            return "polygon"
        self.problem(
            name,
            'expected a COCO RLE dict {"size": [H, W], "counts": ...} or a COCO polygon [[x0, y0, x1, y1, ...], ...], '
            f"got {json.dumps(annotation, default=str)[:80]}",
        )
        return None

    def check_annotation(
        self,
        kind: str,
        annotation: Any,
        image_size: tuple[int, int] | None,
        size: tuple[int | None, int | None],
        name: str,
        what: str,
    ) -> None:
        """Decode an annotation at its image's size (or the best size known) and report why it is unusable."""
        from ..regions import RegionInputError, region_to_mask

        if image_size is None:
            # the image is missing or unreadable (already reported): check what can be checked without it
            if kind == "rle" and isinstance(annotation, Mapping):
                rle_size = annotation.get("size")
                if (
                    isinstance(rle_size, list)
                    and len(rle_size) == 2
                    and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in rle_size)
                ):
                    image_size = (rle_size[0], rle_size[1])
            elif size[0] is not None and size[1] is not None:
                image_size = (size[0], size[1])
            if image_size is None:
                return
        try:
            region_to_mask({kind: annotation}, image_size, 0, 0)
        except RegionInputError as error:
            self.problem(name, error.expected.replace("its image", what))
        except Exception as error:  # pycocotools raises many types on malformed input
            self.problem(name, f"cannot decode the {kind} ({type(error).__name__}: {error})")

    # ------------------------------------------------------------------ videos

    def read_video(self, size: tuple[int | None, int | None]) -> int | None:
        """Resolve the record's video (a file, or a list of frame files with timestamps); returns its frame count
        (None when unknown)."""
        value = self.record["video"]
        timestamps = self.record.get("timestamps")
        is_frames = isinstance(value, list) and (len(value) > 1 or timestamps is not None)
        paths, names = self.path_list(value, "video")
        if not paths:
            return None
        if not is_frames:
            if timestamps is not None:
                self.problem("timestamps", "timestamps go with a list of frame files, not with a video file")
            path = self.resolve(paths[0])
            self.videos = [path]
            if not self.check_files:
                return None
            if not Path(path).is_file():
                self.problem("video", f"video file {path!r} does not exist")
                return None
            info = self.files.video_info(path)
            if isinstance(info, str):
                self.problem("video", info)
                return None
            total, self.frame_size = info
            self.check_record_size(self.frame_size, f"the first frame of video {path!r}", size)
            return total
        frames = [self.resolve(p) for p in paths]
        self.videos = [{"frames": frames, "timestamps": timestamps}]
        if self.check_timestamps(timestamps, len(frames)):
            self.videos[0]["timestamps"] = [float(t) for t in timestamps]
        if self.check_files:
            frame_sizes = set()
            for path, name in zip(frames, names, strict=True):
                if not Path(path).is_file():
                    self.problem(name, f"frame image file {path!r} does not exist")
                    continue
                frame_size = self.files.image_size(path)
                if isinstance(frame_size, str):
                    self.problem(name, frame_size)
                    continue
                if frame_sizes and frame_size not in frame_sizes:
                    first = next(iter(frame_sizes))
                    self.problem(
                        name,
                        f"frame is {format_size(frame_size)} but the first frame is {format_size(first)}; "
                        "expected every frame of a video to have the same size",
                    )
                    continue
                if not frame_sizes:
                    self.check_record_size(frame_size, f"frame {path!r}", size)
                frame_sizes.add(frame_size)
            self.frame_size = next(iter(frame_sizes)) if len(frame_sizes) == 1 else None
        return len(frames)

    def check_timestamps(self, timestamps: Any, num_frames: int) -> bool:
        if timestamps is None:
            self.problem(
                "timestamps", f"a list of {num_frames} frame files needs 'timestamps' (seconds, one per frame)"
            )
            return False
        numbers = isinstance(timestamps, list) and all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) for t in timestamps
        )
        if not numbers:
            self.problem("timestamps", f"expected a list of numbers (seconds), got {timestamps!r:.80}")
            return False
        if len(timestamps) != num_frames:
            self.problem(
                "timestamps", f"got {len(timestamps)} timestamps for {num_frames} frame files; expected one per frame"
            )
            return False
        if any(b <= a for a, b in zip(timestamps, timestamps[1:], strict=False)):
            self.problem("timestamps", f"timestamps must be strictly increasing, got {timestamps!r:.80}")
            return False
        return True

    def read_video_masks(self, num_frames: int | None) -> None:
        for object_index, track in enumerate(self.mask_list()):
            name = f"masks[{object_index}]"
            if not isinstance(track, Mapping) or not track:
                self.problem(
                    name,
                    'expected a non-empty dict {"frame_index": annotation} for an object of a video, got '
                    f"{json.dumps(track, default=str)[:80]}",
                )
                continue
            if "counts" in track or "size" in track:
                self.problem(
                    name,
                    "an object of a video is a dict {frame_index: annotation}; got an annotation without its frame "
                    'index (write {"12": annotation} for frame 12)',
                )
                continue
            parts: dict[int, dict] = {}
            for key, annotation in track.items():
                part_name = f'{name}["{key}"]'
                frame = _frame_number(key)
                if frame is None:
                    self.problem(part_name, f"frame index must be a non-negative integer, got {key!r}")
                    continue
                if num_frames is not None and frame >= num_frames:
                    self.problem(
                        part_name,
                        f"frame {frame} is out of range; the video has {num_frames} frames (0..{num_frames - 1})",
                    )
                    continue
                kind = self.annotation_kind(annotation, part_name)
                if kind is None:
                    continue
                if frame in parts:
                    self.problem(part_name, f"frame {frame} is given twice")
                    continue
                parts[frame] = {kind: annotation}
                if self.check_files:
                    self.check_annotation(kind, annotation, self.frame_size, self.size, part_name, "its frame")
            if self.variant == "full" and len(track) > 1:
                self.problem(
                    name,
                    f"the full variant takes one frame per object, got {len(track)} frames "
                    f"({', '.join(map(str, track))}); objects on several frames are for PixelRefer-Lite "
                    "(variant='lite')",
                )
                continue
            if len(parts) != len(track):
                continue
            if self.variant == "full":
                ((frame, part),) = parts.items()
                self.regions.append({**part, "frame": frame})
            else:
                self.regions.append({"frames": dict(sorted(parts.items()))})

    # ------------------------------------------------------------------ conversations

    def read_conversations(self, num_images: int, num_videos: int) -> None:
        turns = self.record.get("conversations")
        if not isinstance(turns, list) or not turns:
            self.problem(
                "conversations",
                'expected a non-empty list of turns {"from": "human" | "gpt" | "system", "value": str}, got '
                f"{json.dumps(turns, default=str)[:80]}",
            )
            return
        messages = []
        for turn_index, turn in enumerate(turns):
            name = f"conversations[{turn_index}]"
            if not isinstance(turn, Mapping) or "from" not in turn or "value" not in turn:
                self.problem(name, 'expected a dict {"from": "human" | "gpt" | "system", "value": str}')
                continue
            role = ROLES.get(turn["from"]) if isinstance(turn["from"], str) else None
            if role is None:
                self.problem(f"{name}.from", f"unknown role {turn['from']!r}; expected 'human', 'gpt' or 'system'")
                continue
            if not isinstance(turn["value"], str):
                self.problem(f"{name}.value", f"expected a string, got {type(turn['value']).__name__}")
                continue
            if role == "assistant" and self.variant == "full":
                for tag in (IMAGE_TAG, VIDEO_TAG):
                    if tag in turn["value"]:
                        self.problem(
                            f"{name}.value", f"an answer (gpt turn) cannot hold {tag}; put it in a human turn"
                        )
            messages.append({"role": role, "content": turn["value"]})
        if len(messages) != len(turns):
            return
        roles = [message["role"] for message in messages]
        if "assistant" not in roles:
            self.problem("conversations", "no gpt (assistant) turn: nothing to learn from")
        if "user" not in roles:
            self.problem("conversations", "no human (user) turn")
        text = "".join(message["content"] for message in messages)
        num_regions = text.count(REGION_TAG)
        num_masks = len(self.mask_list()) if isinstance(self.record.get("masks"), list) else 0
        if num_regions != num_masks:
            self.problem(
                "masks",
                f"{num_masks} mask(s) for {num_regions} {REGION_TAG} placeholder(s) in the conversation; expected "
                f"one mask per {REGION_TAG} (the n-th {REGION_TAG} is masks[n-1])",
            )
        if self.variant == "lite":
            for message in messages:
                message["content"] = _SCENE_TAG_PATTERN.sub("", message["content"])
        else:
            for tag, expected, other in ((IMAGE_TAG, num_images, "image"), (VIDEO_TAG, num_videos, "video")):
                found = text.count(tag)
                if found == 0 and expected > 0 and "user" in roles:
                    first_user = messages[roles.index("user")]
                    first_user["content"] = f"{tag}\n" * expected + first_user["content"]
                    self.added_tag = tag
                elif found != expected:
                    self.problem(
                        "conversations",
                        f"the conversation holds {found} {tag} placeholder(s) but the record has {expected} "
                        f"{other}(s); expected one per {other} (or none, then they are added to the first human turn)",
                    )
        self.messages = messages


def _frame_number(key: Any) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key if key >= 0 else None
    if isinstance(key, str) and key.strip().isdigit():
        return int(key)
    return None


def _read_record(
    record: Any, index: int, root: str | Path, variant: str, check_files: bool, files: _FileInfo | None = None
) -> _RecordReader:
    _check_variant(variant)
    reader = _RecordReader(record, index, root, variant, check_files, files or _FileInfo())
    reader.read()
    return reader


def record_problems(record: dict, index: int, root: str | Path, variant: str = "full") -> list[RecordProblem]:
    """Every problem of one record (empty when the record is usable), reading files' headers and first frames only.

    Args:
        record: one record of the data file.
        index: its position in the file (used in the messages).
        root: folder the record's paths are relative to.
        variant: `"full"` or `"lite"` (PixelRefer-Lite: objects may span several video frames).
    """
    return _read_record(record, index, root, variant, check_files=True).problems


def _read_all_records(records: Sequence[dict], root: str | Path, variant: str) -> list[_RecordReader]:
    """Every record read and checked with its files (each file read once), logging progress on long data files."""
    files = _FileInfo()
    readers = []
    for index, record in enumerate(records):
        readers.append(_read_record(record, index, root, variant, check_files=True, files=files))
        if (index + 1) % PROGRESS_EVERY == 0:
            logger.info("checked %d / %d records", index + 1, len(records))
    return readers


def validate_records(records: Sequence[dict], root: str | Path, variant: str = "full") -> list[RecordProblem]:
    """Every problem of every record, in record order (each file is read once however many records use it)."""
    return [problem for reader in _read_all_records(records, root, variant) for problem in reader.problems]


def _sample(reader: _RecordReader) -> RegionSample:
    if reader.problems:
        first = reader.problems[0]
        raise DataRecordError(first.index, first.field, first.reason, reader.problems)
    if reader.added_tag is not None:
        logger.debug("record %d: added %s to the first human turn", reader.index, reader.added_tag)
    return RegionSample(
        messages=reader.messages, images=list(reader.images), videos=list(reader.videos), regions=list(reader.regions)
    )


def record_to_sample(
    record: dict, index: int, root: str | Path, variant: str = "full", *, check_files: bool = True
) -> RegionSample:
    """Turn one record into a [`RegionSample`].

    Full variant: a record with an image (video) but no `<image>` (`<video>`) placeholder gets one per image (video) at
    the start of its first human turn, as the published code does. Lite: `<image>` / `<video>` placeholders are removed
    (Lite reads object tokens only).

    Args:
        check_files: also check the files and masks (as [`record_problems`] does); `False` checks only the record's
            structure (the `<region>` / mask count among it), for records already validated.

    Raises:
        [`DataRecordError`] for the record's first problem (`.problems` holds all of them).
    """
    return _sample(_read_record(record, index, root, variant, check_files=check_files))


class RegionConversationDataset(torch.utils.data.Dataset):
    """Region conversations from a data file (or a list of records), every record validated up front.

    Args:
        path_or_records: a `.json` / `.jsonl` data file, or the records themselves.
        root: folder the records' paths are relative to.
        variant: `"full"` or `"lite"`, as the processor (`processor.variant`).
        skip_invalid: drop invalid records (each problem is logged as a warning) instead of raising
            [`DataValidationError`] listing every problem.

    Attributes:
        skipped: the problems of the dropped records.
        record_indices: for each sample, the index of its record in the file.
    """

    def __init__(
        self,
        path_or_records: str | Path | Sequence[dict],
        root: str | Path,
        variant: str = "full",
        skip_invalid: bool = False,
    ):
        _check_variant(variant)
        if isinstance(path_or_records, (str, Path)):
            source = str(path_or_records)
            records = load_records(path_or_records)
        else:
            source = "records"
            records = list(path_or_records)
        self.root = Path(root)
        self.variant = variant
        readers = _read_all_records(records, root, variant)
        problems = [problem for reader in readers for problem in reader.problems]
        if problems and not skip_invalid:
            raise DataValidationError(problems, len(records), source)
        self.skipped: list[RecordProblem] = problems
        for problem in problems:
            logger.warning("skipping %s", problem)
        good = [reader for reader in readers if not reader.problems]
        if problems:
            logger.warning(
                "%s: skipped %d of %d record(s) with %d problem(s)",
                source,
                len(records) - len(good),
                len(records),
                len(problems),
            )
        if not records:
            raise DataFileError(source, "holds no record; expected at least one")
        if not good:
            raise DataValidationError(problems, len(records), source)
        added = sum(reader.added_tag is not None for reader in good)
        if added:
            logger.info(
                "%s: added <image> / <video> to the first human turn of %d record(s) that had none (as published)",
                source,
                added,
            )
        self.samples = [_sample(reader) for reader in good]
        self.record_indices = [reader.index for reader in good]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> RegionSample:
        return self.samples[index]


class RegionDataCollator:
    """Batches [`RegionSample`]s through the processor: chat template, images / videos, regions and labels.

    Args:
        processor: a `PixelReferProcessor`; its `variant` must match the data set's.
    """

    def __init__(self, processor: Any):
        self.processor = processor

    def __call__(self, samples: Sequence[RegionSample]):
        processor = self.processor
        return processor(
            text=[processor.apply_chat_template(sample.messages) for sample in samples],
            images=[list(sample.images) or None for sample in samples],
            videos=[list(sample.videos) or None for sample in samples],
            regions=[list(sample.regions) for sample in samples],
            return_labels=True,
        )


__all__ = [
    "DataFileError",
    "DataRecordError",
    "DataValidationError",
    "RecordProblem",
    "RegionConversationDataset",
    "RegionDataCollator",
    "RegionSample",
    "load_records",
    "record_problems",
    "record_to_sample",
    "validate_records",
]
