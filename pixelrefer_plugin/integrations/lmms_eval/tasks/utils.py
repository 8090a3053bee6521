# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Shared hooks of the PixelRefer region tasks (documents as in docs/evaluation.md).

`--model pixelrefer` reads the regions from the documents and gets real masks. Any other model gets the image (or a
copy of the video) with each region outlined and numbered, and the prompt with every `<region>` replaced by the mark
it should look at.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from pixelrefer_plugin.integrations.lmms_eval import metrics
from pixelrefer_plugin.integrations.lmms_eval.documents import strip_scene_tags
from pixelrefer_plugin.runtime import REGION_PLACEHOLDER
from pixelrefer_plugin.visualize import COLOURS, describe_marks, draw_regions

logger = logging.getLogger(__name__)

# Overlay copies of the task videos, written once next to this module (the materialised task folder).
VIDEO_OVERLAY_CACHE = Path(__file__).resolve().parent / "cache" / "video_overlays"
_OVERLAY_VERSION = 1  # part of the cache key: bump when the drawing or the encoding changes

CAPTION_METRICS = ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


def load_regions(doc: dict) -> list[dict]:
    """The document's regions (stored as JSON text, since Arrow cannot hold rows with different region kinds)."""
    regions = doc["regions"]
    return json.loads(regions) if isinstance(regions, str) else list(regions)


def doc_to_visual(doc: dict) -> list:
    """Any-model visual prompt: the image with the regions drawn on it; for videos, the path of a copy of the video
    whose annotated frames have the regions drawn on them ([`video_overlay`])."""
    if doc.get("image"):
        return [draw_regions(doc["image"], [r for r in load_regions(doc) if "frame" not in r]).convert("RGB")]
    return [video_overlay(doc["video"], load_regions(doc))]


def regions_by_frame(regions: list[dict]) -> dict[int, list[tuple[int, dict]]]:
    """Frame number -> `[(region index, region on that frame), ...]` for video regions: `{"frame": N, ...}` (full)
    and `{"frames": {N: {...}, ...}}` (Lite, JSON keys as text). Regions with neither lie on no frame."""
    placed: dict[int, list[tuple[int, dict]]] = {}
    for index, region in enumerate(regions):
        if "frames" in region:
            for frame, on_frame in region["frames"].items():
                placed.setdefault(int(frame), []).append((index, dict(on_frame)))
        elif "frame" in region:
            shape = {key: value for key, value in region.items() if key not in ("frame", "video")}
            placed.setdefault(int(region["frame"]), []).append((index, shape))
    return placed


def _draw_on_frame(frame: np.ndarray, placed: list[tuple[int, dict]]) -> np.ndarray:
    """`frame` with each `(index, region)` outlined and numbered by `draw_regions` in region `index`'s colour and
    number, also when the frame lacks lower-numbered regions (Lite regions lie on frames of their own)."""
    indices = [index for index, _ in placed]
    drawn = draw_regions(
        frame,
        [region for _, region in placed],
        labels=[str(index + 1) for index in indices],
        colours=[COLOURS[index % len(COLOURS)] for index in indices],
    )
    return np.asarray(drawn.convert("RGB"))


def video_overlay(video: str, regions: list[dict], cache: str | Path | None = None) -> str:
    """Path of a copy of `video` with each region outlined (and numbered) on the frame(s) it lies on.

    Every frame is kept, in order and at the source's frame rate, so frame numbers mean the same in the copy; frames
    without a region are re-encoded unchanged (H.264, 4:4:4 chroma, CRF 18, so thin outlines keep their colour). The
    copy is written once under `cache` (default `cache/video_overlays/` in the task folder), named by a hash of the
    video's path, size and modification time and of the regions. A video with no frame-placed region is returned
    as it is.
    """
    import av

    placed = regions_by_frame(regions)
    if not placed:
        return video
    source = Path(video).resolve()
    stat = source.stat()
    key = json.dumps(
        [_OVERLAY_VERSION, str(source), stat.st_size, stat.st_mtime_ns, regions], sort_keys=True, default=str
    )
    folder = Path(cache) if cache is not None else VIDEO_OVERLAY_CACHE
    target = folder / f"{source.stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.mp4"
    if target.is_file():
        return str(target)
    folder.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.stem}.{os.getpid()}.partial.mp4")
    drawn_frames = set()
    with av.open(str(source)) as reader, av.open(str(partial), "w") as writer:
        if not reader.streams.video:
            raise ValueError(f"video file {video!r} has no video stream")
        stream = reader.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 25
        out = writer.add_stream("libx264", rate=rate)
        out.height, out.width = stream.codec_context.height, stream.codec_context.width
        out.pix_fmt = "yuv444p"
        out.options = {"crf": "18"}
        for number, frame in enumerate(reader.decode(stream)):
            if number in placed:
                pixels = _draw_on_frame(frame.to_ndarray(format="rgb24"), placed[number])
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
                drawn_frames.add(number)
            else:
                frame = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
            for packet in out.encode(frame):
                writer.mux(packet)
        for packet in out.encode():
            writer.mux(packet)
    missing = sorted(set(placed) - drawn_frames)
    if missing:
        partial.unlink(missing_ok=True)
        raise ValueError(f"video file {video!r} has no frame(s) {missing}, which the document's regions lie on")
    partial.replace(target)
    logger.info("wrote the region overlay of %s to %s", video, target)
    return str(target)


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """The question. For `pixelrefer` (kwargs `region_style: tokens`) with `<region>` placeholders; for other models
    each `<region>` becomes "region i (outlined in colour)" and scene tags are removed (the visual comes separately)."""
    kwargs = lmms_eval_specific_kwargs or {}
    prompt = doc["prompt"]["lite" if kwargs.get("variant") == "lite" else "full"]
    if kwargs.get("region_style") == "tokens":
        return prompt
    text = strip_scene_tags(prompt)
    for mark in describe_marks(text.count(REGION_PLACEHOLDER)):
        text = text.replace(REGION_PLACEHOLDER, mark, 1)
    return kwargs.get("pre_prompt", "") + text + kwargs.get("post_prompt", "")


def doc_to_messages(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> list[dict]:
    """Chat-model form of the same visual and text."""
    visual = doc_to_visual(doc)[0]
    item = {"type": "image", "url": visual} if doc.get("image") else {"type": "video", "url": visual}
    text = {"type": "text", "text": doc_to_text(doc, lmms_eval_specific_kwargs)}
    return [{"role": "user", "content": [item, text]}]


def mean_percent(values: list[float]) -> float:
    return metrics.mean_percent(values)


# --- category recognition (LVIS / PACO): SSim and SIoU --------------------------------------------------------------
def category_process_results(doc: dict, results: list[str]) -> dict:
    scores = metrics.category_scores(results[0], doc["answer"])
    return {"ssim": scores["ssim"], "siou": scores["siou"]}


# --- region captioning (VG, RefCOCOg, HC-STVG): COCO caption metrics --------------------------------------------------
def caption_process_results(doc: dict, results: list[str]) -> dict:
    """One entry for the corpus-level caption metrics, and the document's `boxes_clipped` (0 without boxes)."""
    references = doc["answer"] if isinstance(doc["answer"], list) else [doc["answer"]]
    entry = {"id": str(doc["id"]), "prediction": results[0], "references": references}
    return {**dict.fromkeys(CAPTION_METRICS, entry), "boxes_clipped": float(doc.get("boxes_clipped") or 0)}


def total(values: list[float]) -> float:
    """Sum of per-document counts (e.g. `boxes_clipped`: boxes cut to their image)."""
    return float(sum(values))


@lru_cache(maxsize=8)
def _caption_scores(key: tuple) -> dict[str, float]:
    predictions = {entry_id: prediction for entry_id, prediction, _ in key}
    references = {entry_id: list(refs) for entry_id, _, refs in key}
    return metrics.caption_scores(predictions, references, max_words=100)


def _caption_metric(entries: list[dict], name: str) -> float:
    key = tuple((e["id"], e["prediction"], tuple(e["references"])) for e in entries)
    return _caption_scores(key)[name]


def caption_bleu4(entries: list[dict]) -> float:
    return _caption_metric(entries, "Bleu_4")


def caption_meteor(entries: list[dict]) -> float:
    return _caption_metric(entries, "METEOR")


def caption_rouge(entries: list[dict]) -> float:
    return _caption_metric(entries, "ROUGE_L")


def caption_cider(entries: list[dict]) -> float:
    return _caption_metric(entries, "CIDEr")


# --- multiple choice (VideoRefer-Bench-Q): the public letter rule, unparsed answers counted ---------------------------
def choice_process_results(doc: dict, results: list[str]) -> dict:
    """`accuracy` by `eval_videorefer_q_bench.py`'s rule ([`metrics.parse_choice`]); `unparsed` marks answers with no
    `(X)` / `X)`, judged by their first character as the public script does."""
    choice = metrics.parse_choice(results[0])
    if not choice.parsed:
        logger.warning("document %s: no option letter in %r; its first character is taken", doc["id"], results[0])
    correct = choice.letter is not None and choice.letter == metrics.option_letter(doc["answer"])
    return {"accuracy": float(correct), "unparsed": float(not choice.parsed)}


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
