# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`process_docs` converters of the real-data region tasks: upstream benchmark records → region documents.

Each converter follows the fields read by the matching PixelRefer evaluation script
(`alibaba-damo-academy/PixelRefer: PixelRefer/evaluation/pixelrefer{,_lite}/infer_*.py`) and writes the documents of
docs/evaluation.md. Media are resolved under a folder named by an environment variable (lmms-eval YAMLs cannot read
the environment); a missing variable raises `RuntimeError` naming it. Written from the upstream scripts, not run
against the real files.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pixelrefer_plugin.integrations.lmms_eval.judge import JudgeConfig
from pixelrefer_plugin.prompts import HC_STVG, VG, VIDEOREFER_BENCH_D, videorefer_bench_q_prompt
from pixelrefer_plugin.regions import compressed_rle_counts

logger = logging.getLogger(__name__)

VG_ROOT_VARIABLE = "PIXELREFER_VG_ROOT"
VIDEOREFER_ROOT_VARIABLE = "PIXELREFER_VIDEOREFER_ROOT"
HC_STVG_ROOT_VARIABLE = "PIXELREFER_HC_STVG_ROOT"
VIDEOREFER_D_SUBFOLDER = "Panda-70M-part"
_SOURCE_PREFIX = "source__"
_ANSWER_LETTER = re.compile(r"^\s*\(?([A-Z])\)")


def media_root(variable: str, what: str, task: str) -> str:
    """The folder named by `variable`; a clear `RuntimeError` when it is unset or empty."""
    root = os.environ.get(variable)
    if not root:
        raise RuntimeError(f"set {variable} to the folder holding {what} to run {task}")
    return os.path.abspath(root)


def _first(value: Any) -> Any:
    """Upstream files store some single values as one-element lists (`image`, `boxes`, Lite `video`)."""
    return value[0] if isinstance(value, (list, tuple)) else value


def _doc_id(row: Mapping[str, Any], index: int, prefix: str) -> str:
    """The record's own `id` when it has one, else `<prefix>-<row index>`."""
    return str(row["id"]) if row.get("id") is not None else f"{prefix}-{index}"


def _rle_is_empty(rle: Mapping[str, Any]) -> bool:
    """Whether a COCO RLE covers no pixel (its runs alternate background / foreground, background first)."""
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        counts = compressed_rle_counts(counts.encode() if isinstance(counts, str) else counts)
    return not any(int(run) for run in list(counts)[1::2])


def _segmentation_region(segmentation: Any) -> dict:
    """A COCO segmentation (RLE dict or polygon list) as a PixelRefer region dict."""
    if isinstance(segmentation, Mapping):
        return {"rle": {"size": list(segmentation["size"]), "counts": segmentation["counts"]}}
    return {"polygon": segmentation}


def _track(frames: Mapping[str, Any], key: str | None) -> dict:
    """Lite multi-frame region `{"frames": {N: {...}}}` from `{frame: segmentation}` (or `{frame: {key: ...}}`).

    Frames `datasets` filled with `None` (keys of other records) and empty masks are skipped, as upstream does."""
    track = {}
    for frame, value in frames.items():
        segmentation = value.get(key) if key is not None and isinstance(value, Mapping) else value
        if segmentation is None:
            continue
        region = _segmentation_region(segmentation)
        if "rle" in region and _rle_is_empty(region["rle"]):
            continue
        track[str(int(frame))] = region
    if not track:
        raise ValueError("object has no non-empty mask on any frame")
    return {"frames": dict(sorted(track.items(), key=lambda item: int(item[0])))}


def _convert(dataset, convert: Callable[[dict, int], dict]):
    """Map every record to one document and keep only the document columns. Source columns are renamed first, so a
    document key never inherits the type of a source column of the same name (`id` int, `image` list ...)."""
    source = dataset.rename_columns({name: _SOURCE_PREFIX + name for name in dataset.column_names})

    def convert_row(row: dict, index: int) -> dict:
        return convert({name[len(_SOURCE_PREFIX) :]: value for name, value in row.items()}, index)

    return source.map(convert_row, with_indices=True, remove_columns=source.column_names)


def _answer_index(answer: str, options: list[str]) -> int:
    """`"(B) a dog"` / `"B) a dog"` / an option's full text → its option index."""
    match = _ANSWER_LETTER.match(answer)
    if match:
        return ord(match.group(1)) - ord("A")
    stripped = [option.strip() for option in options]
    if answer.strip() in stripped:
        return stripped.index(answer.strip())
    raise ValueError(f"cannot read an option letter from the answer {answer!r}")


# --- VG region caption (`vg_val_5000.json`, infer_vg.py) ------------------------------------------------------------
def vg_process_docs(dataset):
    """`vg_val_5000.json` records (`image`: [file], `height`, `width`, `caption`, `mask`, `boxes`: [[x, y, w, h]]) →
    one box region per record; images from `$PIXELREFER_VG_ROOT/<image>`. Like upstream the box is the region (the
    script fills the rectangle and ignores `mask`)."""
    root = media_root(VG_ROOT_VARIABLE, "the Visual Genome images named by vg_val_5000.json", "pixelrefer_vg")

    def convert(row: dict, index: int) -> dict:
        image = _first(row["image"])
        x, y, w, h = (int(v) for v in _first(row["boxes"]))
        return {
            "id": f"{image}#{index}",
            "image": os.path.join(root, image),
            "video": None,
            "regions": json.dumps([{"box": [x, y, w, h], "box_format": "xywh"}]),
            "prompt": {"full": VG.full, "lite": VG.for_variant("lite")},
            "answer": row["caption"],
            "options": [],
        }

    return _convert(dataset, convert)


# --- VideoRefer-Bench-Q (VideoRefer-Bench-Q.json / -allframe.json, infer_videorefer_q.py) -------------------------
def _videorefer_q(dataset, all_frames: bool, task: str):
    root = media_root(
        VIDEOREFER_ROOT_VARIABLE,
        "the VideoRefer-Bench-Q videos (MeViS, A2D, Ref-YouTube-VOS) as named in the JSON",
        task,
    )

    def convert(row: dict, index: int) -> dict:
        if all_frames:
            regions = [_track(annotation, "segmentation") for annotation in row["annotation"]]
        else:
            frame = str(row["frame_idx"])
            regions = []
            for annotation in row["annotation"]:
                entry = annotation.get(frame)
                if entry is None or entry.get("segmentation") is None:
                    raise ValueError(f"{task} record {index}: an object has no mask on key frame {frame}")
                regions.append({**_segmentation_region(entry["segmentation"]), "frame": int(frame)})
        options = list(row["options"])
        question = videorefer_bench_q_prompt(row["Question"], options)
        return {
            "id": _doc_id(row, index, "videorefer-q"),
            "image": None,
            "video": os.path.join(root, row["video"]),
            "regions": json.dumps(regions),
            "prompt": {"full": "<video>\n" + question, "lite": question},
            "answer": _answer_index(row["Answer"], options),
            "options": options,
            "type": row.get("type") or "",
        }

    return _convert(dataset, convert)


def videorefer_q_process_docs(dataset):
    """`VideoRefer-Bench-Q.json` (`video`, `Question`, `options`, `Answer` "(X) ...", `type`, `frame_idx`,
    `annotation`: one `{frame: {"segmentation": RLE}}` per object) → one mask per object on the key frame `frame_idx`
    (the full model's protocol); videos from `$PIXELREFER_VIDEOREFER_ROOT/<video>`."""
    return _videorefer_q(dataset, all_frames=False, task="pixelrefer_videorefer_q")


def videorefer_q_allframe_process_docs(dataset):
    """`VideoRefer-Bench-Q-allframe.json` (same fields; masks on every annotated frame) → one Lite multi-frame
    region per object (PixelRefer-Lite protocol; the full variant rejects multi-frame regions)."""
    return _videorefer_q(dataset, all_frames=True, task="pixelrefer_videorefer_q_allframe")


# --- VideoRefer-Bench-D (VideoRefer-Bench-D.json, infer_videorefer_d.py) -------------------------------------------
def videorefer_d_process_docs(dataset):
    """`VideoRefer-Bench-D.json` (`video`, `caption`, `frame_idx`, `annotation`: `{frame: {"segmentation": RLE}}` per
    object) → the key-frame mask and the reference description; videos from
    `$PIXELREFER_VIDEOREFER_ROOT/Panda-70M-part/<video>`. Fails first when no judge is configured."""
    JudgeConfig.from_env()  # fail before any inference when no judge is configured
    root = media_root(
        VIDEOREFER_ROOT_VARIABLE,
        f"VideoRefer-Bench (D clips under {VIDEOREFER_D_SUBFOLDER}/)",
        "pixelrefer_videorefer_d",
    )

    def convert(row: dict, index: int) -> dict:
        frame = str(row["frame_idx"])
        regions = []
        for annotation in row["annotation"]:
            entry = annotation.get(frame)
            if entry is None or entry.get("segmentation") is None:
                raise ValueError(f"pixelrefer_videorefer_d record {index}: an object has no mask on frame {frame}")
            regions.append({**_segmentation_region(entry["segmentation"]), "frame": int(frame)})
        return {
            "id": _doc_id(row, index, "videorefer-d"),
            "image": None,
            "video": os.path.join(root, VIDEOREFER_D_SUBFOLDER, row["video"]),
            "regions": json.dumps(regions),
            "prompt": {"full": VIDEOREFER_BENCH_D.full, "lite": VIDEOREFER_BENCH_D.for_variant("lite")},
            "answer": row["caption"],
            "options": [],
        }

    return _convert(dataset, convert)


# --- HC-STVG (hc_stvg_val.json / hc-stvg-val-allframe.json, infer_hc_stvg.py) -------------------------------------
def hc_stvg_process_docs(dataset):
    """`hc_stvg_val.json` (`video`, `frame_idx`, `mask`: RLE on that frame, `caption`) → one key-frame mask (full
    protocol); videos from `$PIXELREFER_HC_STVG_ROOT/<video>`."""
    root = media_root(HC_STVG_ROOT_VARIABLE, "the HC-STVG videos named by the JSON", "pixelrefer_hc_stvg")

    def convert(row: dict, index: int) -> dict:
        region = {**_segmentation_region(row["mask"]), "frame": int(row["frame_idx"])}
        return {
            "id": _doc_id(row, index, "hc-stvg"),
            "image": None,
            "video": os.path.join(root, _first(row["video"])),
            "regions": json.dumps([region]),
            "prompt": {"full": HC_STVG.full, "lite": HC_STVG.for_variant("lite")},
            "answer": row["caption"],
            "options": [],
        }

    return _convert(dataset, convert)


def hc_stvg_allframe_process_docs(dataset):
    """`hc-stvg-val-allframe.json` (`video`: [file], `masks`: one `{frame: RLE}` per object, `conversations[1].value`
    the reference) → Lite multi-frame regions; videos from `$PIXELREFER_HC_STVG_ROOT/<video>`."""
    root = media_root(HC_STVG_ROOT_VARIABLE, "the HC-STVG videos named by the JSON", "pixelrefer_hc_stvg_allframe")

    def convert(row: dict, index: int) -> dict:
        return {
            "id": _doc_id(row, index, "hc-stvg"),
            "image": None,
            "video": os.path.join(root, _first(row["video"])),
            "regions": json.dumps([_track(masks, None) for masks in row["masks"]]),
            "prompt": {"full": HC_STVG.full, "lite": HC_STVG.for_variant("lite")},
            "answer": row["conversations"][1]["value"],
            "options": [],
        }

    return _convert(dataset, convert)


# --- RefCOCOg region caption (lmms-lab/RefCOCOg, the docs of lmms-eval's own refcocog tasks) -----------------------
IMAGE_CACHE = Path(__file__).resolve().parent / "cache"


def _cached_image(image: Mapping[str, Any], name: str, folder: Path) -> str:
    """Path of an undecoded `datasets` image (`{"bytes", "path"}`): its own file when it exists, else its bytes
    written once (unchanged) to `folder/<name>`."""
    path = image.get("path")
    if path and os.path.isfile(path):
        return os.path.abspath(path)
    data = image.get("bytes")
    if not data:
        raise ValueError(f"image {name!r} has neither an existing path nor bytes")
    target = folder / name
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(data)
        partial.replace(target)
    return str(target)


def refcocog_process_docs(dataset):
    """lmms-lab/RefCOCOg rows (`question_id`, `image` (a `datasets` image), `answer`: captions, `segmentation`: one
    flat COCO polygon, `bbox`: [x, y, w, h], `file_name`) → the polygon as the region (the box when the polygon is
    empty). Images are written once per `file_name` to `cache/refcocog/` next to this module (the materialised task
    folder) unless the row's image already has a file path. Prompt: VG's published brief-caption prompt."""
    from datasets import Image as ImageFeature

    folder = IMAGE_CACHE / "refcocog"
    if "image" in dataset.column_names:
        dataset = dataset.cast_column("image", ImageFeature(decode=False))

    def convert(row: dict, index: int) -> dict:
        name = os.path.basename(row.get("file_name") or f"{row['question_id']}.jpg")
        polygon = [float(v) for v in (row.get("segmentation") or [])]
        if len(polygon) >= 6:
            region = {"polygon": polygon}
        else:
            region = {"box": [float(v) for v in row["bbox"]], "box_format": "xywh"}
        answer = row["answer"]
        return {
            "id": str(row["question_id"]),
            "image": _cached_image(row["image"], name, folder),
            "video": None,
            "regions": json.dumps([region]),
            "prompt": {"full": VG.full, "lite": VG.for_variant("lite")},
            "answer": list(answer) if isinstance(answer, (list, tuple)) else [answer],
            "options": [],
        }

    return _convert(dataset, convert)
