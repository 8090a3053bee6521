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

The checks are pure functions of `record_parsing.py`. With a segmenter, objects may also be clicks or boxes
(`{"point": [x, y]}`, `{"box": [x0, y0, x1, y1]}`, ...): `prompt_masks.py` turns them into masks once and caches them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import torch

from ..runtime import check_variant
from .prompt_masks import MaskCacheStats, PromptMasks
from .record_parsing import FileInfo, ParsedRecord, ParseOptions, parse_record

if TYPE_CHECKING:
    from ..segmentation import RegionSegmenter

logger = logging.getLogger(__name__)

MAX_LISTED_PROBLEMS = 20
# Checking records logs its progress every this many records (about 2 s of work on image records).
PROGRESS_EVERY = 1000

# A `RegionSegmenter`, or the folder / hub id / preset name to load one from.
Segmenter = Union["RegionSegmenter", str, os.PathLike]


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
        regions: the plugin's region dicts (see `pixelrefer_plugin/region_masks.py`), in `<region>` order.
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


def _parse_records(
    records: Sequence[Any],
    root: str | Path,
    variant: str,
    check_files: bool,
    masks: PromptMasks | None = None,
    first_index: int = 0,
) -> list[tuple[ParsedRecord, list[RecordProblem]]]:
    """Every record parsed (each file read once) with its problems, numbered from `first_index`; point / box prompts
    made into masks by `masks`.

    Logs progress every `PROGRESS_EVERY` records on long data files.
    """
    check_variant(variant)
    options = ParseOptions(Path(root), variant, check_files, FileInfo(), prompts=masks is not None)
    parsed = []
    for position, record in enumerate(records):
        value, problems = parse_record(record, options)
        parsed.append((value, _problems(first_index + position, problems)))
        if len(records) > 1 and (position + 1) % PROGRESS_EVERY == 0:
            logger.info("checked %d / %d records", position + 1, len(records))
    if masks is None:
        return parsed
    usable = [position for position, (_, problems) in enumerate(parsed) if not problems]
    resolved, found = masks.resolve([parsed[position][0] for position in usable])
    for position, value, problems in zip(usable, resolved, found, strict=True):
        parsed[position] = (value, _problems(first_index + position, problems))
    return parsed


def _problems(index: int, problems: Sequence[tuple[str, str]]) -> list[RecordProblem]:
    return [RecordProblem(index, field_name, reason) for field_name, reason in problems]


def _prompt_masks(segmenter: Segmenter | None, mask_cache: str | Path | None) -> PromptMasks | None:
    return None if segmenter is None else PromptMasks(segmenter, mask_cache)


def record_problems(
    record: dict,
    index: int,
    root: str | Path,
    variant: str = "full",
    *,
    segmenter: Segmenter | None = None,
    mask_cache: str | Path | None = None,
) -> list[RecordProblem]:
    """Every problem of one record (empty when the record is usable), reading files' headers and first frames only.

    Args:
        record: one record of the data file.
        index: its position in the file (used in the messages).
        root: folder the record's paths are relative to.
        variant: `"full"` or `"lite"` (PixelRefer-Lite: objects may span several video frames).
        segmenter: a `RegionSegmenter` (or its folder, hub id or preset name) that turns point / box annotations into
            masks; without one they are problems.
        mask_cache: the folder of masks made from point / box annotations (see `prompt_masks.py`).
    """
    masks = _prompt_masks(segmenter, mask_cache)
    ((_, problems),) = _parse_records([record], root, variant, True, masks, first_index=index)
    return problems


def validate_records(
    records: Sequence[dict],
    root: str | Path,
    variant: str = "full",
    *,
    segmenter: Segmenter | None = None,
    mask_cache: str | Path | None = None,
) -> list[RecordProblem]:
    """Every problem of every record, in record order (each file is read once however many records use it).

    With a `segmenter`, the masks of point / box annotations are made (or read from `mask_cache`) too: an empty one
    is a problem, and training reuses them from the cache.
    """
    parsed = _parse_records(records, root, variant, True, _prompt_masks(segmenter, mask_cache))
    return [problem for _, problems in parsed for problem in problems]


def _sample(index: int, parsed: ParsedRecord, problems: list[RecordProblem]) -> RegionSample:
    if problems:
        first = problems[0]
        raise DataRecordError(first.index, first.field, first.reason, problems)
    if parsed.added_tag is not None:
        logger.debug("record %d: added %s to the first human turn", index, parsed.added_tag)
    return RegionSample(
        messages=parsed.messages, images=list(parsed.images), videos=list(parsed.videos), regions=list(parsed.regions)
    )


def record_to_sample(
    record: dict,
    index: int,
    root: str | Path,
    variant: str = "full",
    *,
    check_files: bool = True,
    segmenter: Segmenter | None = None,
    mask_cache: str | Path | None = None,
) -> RegionSample:
    """Turn one record into a [`RegionSample`].

    Full variant: a record with an image (video) but no `<image>` (`<video>`) placeholder gets one per image (video) at
    the start of its first human turn, as the published code does. Lite: `<image>` / `<video>` placeholders are removed
    (Lite reads object tokens only).

    Args:
        check_files: also check the files and masks (as [`record_problems`] does); `False` checks only the record's
            structure (the `<region>` / mask count among it), for records already validated.
        segmenter, mask_cache: as for [`record_problems`]; point / box annotations become `{"rle": ..., "score": ...}`.

    Raises:
        [`DataRecordError`] for the record's first problem (`.problems` holds all of them).
    """
    masks = _prompt_masks(segmenter, mask_cache)
    ((parsed, problems),) = _parse_records([record], root, variant, check_files, masks, first_index=index)
    return _sample(index, parsed, problems)


class RegionConversationDataset(torch.utils.data.Dataset):
    """Region conversations from a data file (or a list of records), every record validated up front.

    Args:
        path_or_records: a `.json` / `.jsonl` data file, or the records themselves.
        root: folder the records' paths are relative to.
        variant: `"full"` or `"lite"`, as the processor (`processor.variant`).
        skip_invalid: drop invalid records (each problem is logged as a warning) instead of raising
            [`DataValidationError`] listing every problem.
        segmenter: a `RegionSegmenter` (or its folder, hub id or preset name) that turns point / box annotations
            into masks, once: they are cached in `mask_cache` and read from there on the next run. Without one, point
            / box annotations are problems.
        mask_cache: the cache folder (default `~/.cache/pixelrefer/segmenter-masks`).

    Attributes:
        skipped: the problems of the dropped records.
        record_indices: for each sample, the index of its record in the file.
        mask_stats: how many point / box annotations got their mask from the cache and how many were made.
    """

    def __init__(
        self,
        path_or_records: str | Path | Sequence[dict],
        root: str | Path,
        variant: str = "full",
        skip_invalid: bool = False,
        segmenter: Segmenter | None = None,
        mask_cache: str | Path | None = None,
    ):
        check_variant(variant)
        if isinstance(path_or_records, (str, Path)):
            source = str(path_or_records)
            records = load_records(path_or_records)
        else:
            source = "records"
            records = list(path_or_records)
        self.root = Path(root)
        self.variant = variant
        masks = _prompt_masks(segmenter, mask_cache)
        parsed = _parse_records(records, root, variant, True, masks)
        self.skipped: list[RecordProblem] = [problem for _, problems in parsed for problem in problems]
        good = _usable_records(parsed, source, skip_invalid)
        self.mask_stats = masks.stats if masks is not None else MaskCacheStats()
        self.samples = [_sample(index, value, []) for index, value in good]
        self.record_indices = [index for index, _ in good]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> RegionSample:
        return self.samples[index]


def _usable_records(
    parsed: list[tuple[ParsedRecord, list[RecordProblem]]], source: str, skip_invalid: bool
) -> list[tuple[int, ParsedRecord]]:
    """`(index, record)` of the records without a problem; the problems raised, or logged with `skip_invalid`.

    Raises:
        DataValidationError: a problem without `skip_invalid`, or no usable record.
        DataFileError: no record at all.
    """
    problems = [problem for _, found in parsed for problem in found]
    if problems and not skip_invalid:
        raise DataValidationError(problems, len(parsed), source)
    for problem in problems:
        logger.warning("skipping %s", problem)
    good = [(index, value) for index, (value, found) in enumerate(parsed) if not found]
    if problems:
        logger.warning(
            "%s: skipped %d of %d record(s) with %d problem(s)",
            source,
            len(parsed) - len(good),
            len(parsed),
            len(problems),
        )
    if not parsed:
        raise DataFileError(source, "holds no record; expected at least one")
    if not good:
        raise DataValidationError(problems, len(parsed), source)
    added = sum(value.added_tag is not None for _, value in good)
    if added:
        logger.info(
            "%s: added <image> / <video> to the first human turn of %d record(s) that had none (as published)",
            source,
            added,
        )
    return good


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
