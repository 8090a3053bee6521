# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Point / box annotations of training records -> masks, made once by a SAM 2 segmenter and cached on disk.

The cache is a folder (default `~/.cache/pixelrefer/segmenter-masks`, `data.mask_cache` in a recipe) with one
subfolder per segmenter checkpoint (a digest of its files, or of its hub id and revision) and one small JSON file per
prompt, named by the SHA-256 of the image (video) file's content, the frame number and the prompt. Files are written
atomically (a temporary file renamed into place), so that concurrent runs and interrupted ones never leave a partial
entry. A prompt whose best mask is empty is cached as such and reported as a problem of its record.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import PixelReferInputError, RegionInputError
from ..region_masks import TRACK_KEY
from ..runtime import cache_dir as runtime_cache_dir
from ..segmentation import SCORE_KEY, EmptySegmentError, RegionSegmenter, is_prompt, resolve_segmenter
from .record_parsing import PROMPT_KEYS, ParsedRecord, Problems

logger = logging.getLogger(__name__)

MASK_CACHE = "segmenter-masks"
"""The cache sub-folder of the masks (`runtime.cache_dir`: `~/.cache/pixelrefer/segmenter-masks`)."""
# Prompts segmented per `RegionSegmenter.to_masks` call (their images are decoded and encoded together).
PROMPTS_PER_CALL = 16
_CHUNK_BYTES = 1 << 20


@dataclass
class MaskCacheStats:
    """How the point / box annotations of a data set got their masks: `cached` (read from the cache) or `made`."""

    cached: int = 0
    made: int = 0


@dataclass(frozen=True)
class _Job:
    """One prompt to segment: `record` / `region` / `frame` (of a Lite track, else None) say where its mask goes."""

    record: int
    region: int
    frame: int | None
    field: str
    prompt: dict
    key: str


class PromptMasks:
    """Replaces the point / box regions of parsed records by the segmenter's masks (COCO RLE), through the cache.

    Args:
        segmenter: a `RegionSegmenter`, or the folder / hub id / preset to load one from (loaded only when a mask is
            not in the cache).
        cache_dir: the cache folder (default `runtime.cache_dir(MASK_CACHE)`, `~/.cache/pixelrefer/segmenter-masks`).

    Attributes:
        folder: this segmenter's cache subfolder.
        stats: masks read from the cache and made since this object was created.
    """

    def __init__(self, segmenter: RegionSegmenter | str | os.PathLike, cache_dir: str | os.PathLike | None = None):
        self._segmenter = segmenter if isinstance(segmenter, RegionSegmenter) else None
        self.source = segmenter.source if isinstance(segmenter, RegionSegmenter) else segmenter
        folder = Path(cache_dir).expanduser() if cache_dir else runtime_cache_dir(MASK_CACHE)
        self.folder = folder / checkpoint_fingerprint(self.source)
        self.stats = MaskCacheStats()
        self._file_hashes: dict[str, str] = {}

    @property
    def segmenter(self) -> RegionSegmenter:
        """The segmenter, loaded on first use."""
        if self._segmenter is None:
            logger.info("loading the segmenter %s to make masks of point / box annotations", self.source)
            self._segmenter = RegionSegmenter.from_pretrained(self.source)
        return self._segmenter

    def resolve(self, records: Sequence[ParsedRecord]) -> tuple[list[ParsedRecord], list[Problems]]:
        """Each record with its prompts replaced by `{"rle": ..., "score": ...}` masks, and each record's problems
        (an empty mask, an unreadable file); records with a problem are returned as they were."""
        problems: list[Problems] = [[] for _ in records]
        jobs = []
        for index, record in enumerate(records):
            try:
                jobs += self._jobs(index, record)
            except OSError as error:  # files are not checked (check_files=False) and one cannot be read
                field = "image" if record.images else "video"
                problems[index].append((field, f"cannot read {error.filename!r} ({error.strerror})"))
        results: dict[str, dict] = {}
        misses: dict[str, _Job] = {}  # one job per distinct prompt
        for job in jobs:
            entry = self._read(job.key)
            if entry is None:
                misses.setdefault(job.key, job)
            else:
                results[job.key] = entry
                self.stats.cached += 1
        if misses:
            logger.info("segmenting %d point / box annotation(s) (%d cached)", len(misses), self.stats.cached)
        pending = list(misses.values())
        for start in range(0, len(pending), PROMPTS_PER_CALL):
            results.update(self._segment(pending[start : start + PROMPTS_PER_CALL], records))
        by_record: dict[int, list[_Job]] = {}
        for job in jobs:
            by_record.setdefault(job.record, []).append(job)
            if results[job.key].get("rle") is None:
                problems[job.record].append((job.field, results[job.key]["problem"]))
        resolved = [
            record if problems[index] or index not in by_record else _with_masks(record, by_record[index], results)
            for index, record in enumerate(records)
        ]
        return resolved, problems

    # ------------------------------------------------------------------------------------------------ jobs and keys

    def _jobs(self, index: int, record: ParsedRecord) -> list[_Job]:
        """The prompts of one record, each with its cache key."""
        jobs = []
        for region_index, region in enumerate(record.regions):
            if TRACK_KEY in region:
                parts = [(int(frame), part) for frame, part in region[TRACK_KEY].items() if is_prompt(part)]
                for frame, part in parts:
                    field = f'masks[{region_index}]["{frame}"]'
                    jobs.append(self._job(index, region_index, frame, field, {**part, "frame": frame}, record))
            elif is_prompt(region):
                field = (
                    f'masks[{region_index}]["{region["frame"]}"]' if "frame" in region else f"masks[{region_index}]"
                )
                jobs.append(self._job(index, region_index, None, field, dict(region), record))
        return jobs

    def _job(self, index: int, region: int, frame: int | None, field: str, prompt: dict, record: ParsedRecord) -> _Job:
        path, frame_number = _source_file(prompt, record)
        canonical = {key: _as_floats(prompt[key]) for key in PROMPT_KEYS if key in prompt}
        content = json.dumps(
            {"file": self._file_hash(path), "frame": frame_number, "prompt": canonical}, sort_keys=True
        )
        return _Job(index, region, frame, field, prompt, hashlib.sha256(content.encode()).hexdigest())

    def _file_hash(self, path: str) -> str:
        if path not in self._file_hashes:
            self._file_hashes[path] = file_digest(path)
        return self._file_hashes[path]

    # ------------------------------------------------------------------------------------------------ the cache

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def _read(self, key: str) -> dict | None:
        try:
            return json.loads(self._path(key).read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def _write(self, key: str, entry: dict) -> None:
        """Write one entry atomically: a temporary file in the same folder, renamed into place."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".partial", delete=False) as temporary:
            json.dump(entry, temporary)
        os.replace(temporary.name, path)

    # ------------------------------------------------------------------------------------------------ segmenting

    def _segment(self, jobs: list[_Job], records: Sequence[ParsedRecord]) -> dict[str, dict]:
        """Entries of `jobs`, made in one `to_masks` call (again without a prompt that fails, until none does)."""
        from ..synthetic import encode_rle

        results: dict[str, dict] = {}
        while jobs:
            samples = list(dict.fromkeys(job.record for job in jobs))
            by_sample = [[job for job in jobs if job.record == sample] for sample in samples]
            try:
                masks = self.segmenter.to_masks(
                    [[job.prompt for job in group] for group in by_sample],
                    images=[records[sample].images for sample in samples],
                    videos=[records[sample].videos for sample in samples],
                )
            except PixelReferInputError as error:
                failed = _failed_jobs(error, by_sample)
                for job in failed:
                    results[job.key] = {"rle": None, "problem": error.expected}
                    if isinstance(error, EmptySegmentError):  # a property of the segmenter: cached
                        self._write(job.key, results[job.key])
                jobs = [job for job in jobs if job not in failed]
                continue
            for group, regions in zip(by_sample, masks, strict=True):
                for job, region in zip(group, regions, strict=True):
                    results[job.key] = {"rle": encode_rle(region["mask"]), SCORE_KEY: region[SCORE_KEY]}
                    self._write(job.key, results[job.key])
                    self.stats.made += 1
            jobs = []
        return results


def _failed_jobs(error: PixelReferInputError, by_sample: list[list[_Job]]) -> list[_Job]:
    """The prompt an input error names (a whole sample for an unreadable image or video)."""
    if error.sample_index is None:
        raise error
    group = by_sample[error.sample_index]
    if isinstance(error, RegionInputError) and error.item_index is not None:
        return [group[error.item_index]]
    return group


def _with_masks(record: ParsedRecord, jobs: list[_Job], results: dict[str, dict]) -> ParsedRecord:
    """The record with each prompt region (or Lite track part) replaced by its cached mask."""
    regions = [dict(region) for region in record.regions]
    for job in jobs:
        mask = {"rle": results[job.key]["rle"], SCORE_KEY: results[job.key][SCORE_KEY]}
        region = regions[job.region]
        if job.frame is not None:
            region[TRACK_KEY] = {**region[TRACK_KEY], job.frame: mask}
        else:
            kept = {key: region[key] for key in ("image", "frame") if key in region}
            regions[job.region] = {**mask, **kept}
    return replace(record, regions=regions)


def _source_file(prompt: dict, record: ParsedRecord) -> tuple[str, int | None]:
    """The file a prompt's pixels come from, and the frame of it (None for an image or a frame image file)."""
    if "frame" not in prompt:
        return record.images[prompt.get("image", 0)], None
    video = record.videos[0]
    if isinstance(video, dict):
        return video["frames"][prompt["frame"]], None
    return video, int(prompt["frame"])


def _as_floats(value: Any) -> Any:
    """Numbers as floats, so that `[120, 80]` and `[120.0, 80.0]` are the same prompt."""
    if isinstance(value, (list, tuple)):
        return [_as_floats(item) for item in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=8)
def _folder_digest(folder: str, signature: tuple[tuple[str, int, int], ...]) -> str:
    """Digest of the named files of a checkpoint folder, computed once per `(name, size, mtime)` signature."""
    lines = (f"{name}:{file_digest(Path(folder) / name)}\n" for name, _, _ in signature)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def checkpoint_fingerprint(source: str | os.PathLike) -> str:
    """16 hex digits naming a segmenter checkpoint: a digest of a folder's config and weight files, or of a hub id
    and the revision in the hub cache (`source` may be a preset name).

    Raises:
        PixelReferInputError: (argument `segmenter`) neither a folder nor a readable hub checkpoint.
        HubUnavailableError: a preset that is not cached, offline.
    """
    resolved = resolve_segmenter(source)
    digest = hashlib.sha256()
    if os.path.isdir(resolved):
        folder = Path(resolved)
        files = sorted([*folder.glob("*.json"), *folder.glob("*.safetensors"), *folder.glob("*.bin")])
        signature = tuple((path.name, path.stat().st_size, path.stat().st_mtime_ns) for path in files)
        digest.update(_folder_digest(str(folder.resolve()), signature).encode())
    else:
        from transformers.utils import cached_file

        try:
            config = cached_file(str(resolved), "config.json")
        except (OSError, ValueError) as error:  # no such repository, offline, or not a repository id
            raise PixelReferInputError(
                "segmenter", f"{str(source)!r}: no such folder, and no hub checkpoint can be read ({error})"
            ) from None
        digest.update(f"{resolved}@{Path(config).parent.name}".encode())
    return digest.hexdigest()[:16]


__all__ = ["MASK_CACHE", "MaskCacheStats", "PromptMasks", "checkpoint_fingerprint", "file_digest"]
