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

from pixelrefer_plugin.integrations.lmms_eval import protocols
from pixelrefer_plugin.integrations.lmms_eval.documents import DocumentError
from pixelrefer_plugin.integrations.lmms_eval.judge import JudgeConfig
from pixelrefer_plugin.prompts import DLC_BENCH, HC_STVG, LVIS, PACO, VG, VIDEOREFER_BENCH_D, videorefer_bench_q_prompt
from pixelrefer_plugin.region_masks import compressed_rle_counts

logger = logging.getLogger(__name__)

COCO_ROOT_VARIABLE = "PIXELREFER_COCO_ROOT"
FERRET_DATA_VARIABLE = "PIXELREFER_FERRET_DATA"
DLC_BENCH_ROOT_VARIABLE = "PIXELREFER_DLC_BENCH_ROOT"
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


def coco_image(root: str, file_name: str, doc_id: str) -> str:
    """The image `file_name` under a COCO 2017 root: `train2017/` or `val2017/` (where the public PixelRefer scripts
    look), or the root itself (a flat folder, or a `file_name` that already names its split folder)."""
    candidates = [os.path.join(root, "train2017", file_name), os.path.join(root, "val2017", file_name)]
    candidates.append(os.path.join(root, file_name))
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise DocumentError(
        doc_id,
        "file_name",
        f"no image {file_name!r} in {root}/train2017, {root}/val2017 or {root}; expected COCO 2017",
    )


def clip_box_xywh(box: list[float], width: int, height: int, doc_id: str) -> tuple[list[float], bool]:
    """A `[x, y, w, h]` box cut to the `width` x `height` image, and whether it reached outside.

    The public VG inference fills `mask[y : y + h, x : x + w]`, which numpy cuts at the image's far edges; here the
    near edges are cut at 0 too. A box with no pixel inside the image raises `DocumentError`.
    """
    x0, y0, w, h = box
    left, top = max(x0, 0), max(y0, 0)
    right, bottom = min(x0 + w, width), min(y0 + h, height)
    if right <= left or bottom <= top:
        raise DocumentError(doc_id, "boxes", f"box {list(box)} has no pixel inside the {width}x{height} image")
    clipped = [left, top, right - left, bottom - top]
    return clipped, clipped != list(box)


def _log_clipped(dataset, task: str):
    clipped = sum(dataset["boxes_clipped"])
    if clipped:
        logger.warning(
            "%s: %d of %d boxes reach outside their image and were clipped to it", task, clipped, len(dataset)
        )
    return dataset


# --- VG region caption (`vg_val_5000.json`, infer_vg.py) ------------------------------------------------------------
def vg_process_docs(dataset):
    """`vg_val_5000.json` records (`image`: [file], `height`, `width`, `caption`, `mask`, `boxes`: [[x, y, w, h]]) →
    one box region per record; images from `$PIXELREFER_VG_ROOT/<image>`. Like upstream the box is the region (the
    script fills the rectangle and ignores `mask`), cut to the record's `width` x `height` ([`clip_box_xywh`]);
    `boxes_clipped` counts the boxes that reached outside."""
    root = media_root(VG_ROOT_VARIABLE, "the Visual Genome images named by vg_val_5000.json", "pixelrefer_vg")

    def convert(row: dict, index: int) -> dict:
        image = _first(row["image"])
        doc_id = f"{image}#{index}"
        box = [int(v) for v in _first(row["boxes"])]
        box, clipped = clip_box_xywh(box, int(row["width"]), int(row["height"]), doc_id)
        return {
            "id": doc_id,
            "image": os.path.join(root, image),
            "video": None,
            "regions": json.dumps([{"box": box, "box_format": "xywh"}]),
            "prompt": {"full": VG.full, "lite": VG.for_variant("lite")},
            "answer": row["caption"],
            "options": [],
            "boxes_clipped": int(clipped),
        }

    return _log_clipped(_convert(dataset, convert), "pixelrefer_vg")


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
    object) → the reference description and, per object, the mask on the key frame `frame_idx` (`regions`: the full
    model's protocol) and the non-empty masks on every annotated frame (`lite_regions`: PixelRefer-Lite's protocol,
    `pixelrefer_lite/infer_videorefer_d.py`); videos from `$PIXELREFER_VIDEOREFER_ROOT/Panda-70M-part/<video>`. Fails
    first when no judge is configured."""
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
            "lite_regions": json.dumps([_track(annotation, "segmentation") for annotation in row["annotation"]]),
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
    folder) unless the row's image already has a file path. A box is cut to the image ([`clip_box_xywh`]; counted in
    `boxes_clipped`); polygons are cut by rasterisation. Prompt: VG's published brief-caption prompt."""
    from datasets import Image as ImageFeature

    folder = IMAGE_CACHE / "refcocog"
    if "image" in dataset.column_names:
        dataset = dataset.cast_column("image", ImageFeature(decode=False))

    def convert(row: dict, index: int) -> dict:
        name = os.path.basename(row.get("file_name") or f"{row['question_id']}.jpg")
        doc_id = str(row["question_id"])
        image = _cached_image(row["image"], name, folder)
        polygon = [float(v) for v in (row.get("segmentation") or [])]
        clipped = False
        if len(polygon) >= 6:
            region = {"polygon": polygon}
        else:
            width, height = _image_size(image)
            box, clipped = clip_box_xywh([float(v) for v in row["bbox"]], width, height, doc_id)
            region = {"box": box, "box_format": "xywh"}
        answer = row["answer"]
        return {
            "id": doc_id,
            "image": image,
            "video": None,
            "regions": json.dumps([region]),
            "prompt": {"full": VG.full, "lite": VG.for_variant("lite")},
            "answer": list(answer) if isinstance(answer, (list, tuple)) else [answer],
            "options": [],
            "boxes_clipped": int(clipped),
        }

    return _log_clipped(_convert(dataset, convert), "pixelrefer_refcocog")


def _image_size(path: str) -> tuple[int, int]:
    """`(width, height)` of an image file (only its header is read)."""
    from PIL import Image

    with Image.open(path) as image:
        return image.size


# --- LVIS / PACO (Osprey's category sets, infer_paco_lvis.py) -------------------------------------------------------
def _osprey_category_docs(dataset, prompt, task: str):
    """Flatten Osprey records (one image: `file_name`, `categories[i]`, `annotations[i].segmentation`) into one region
    document per object; images from `$PIXELREFER_COCO_ROOT` ([`coco_image`])."""
    root = media_root(COCO_ROOT_VARIABLE, "the COCO 2017 images (train2017/ and val2017/, or one flat folder)", task)

    def flatten(batch):
        out = {key: [] for key in ("id", "image", "video", "regions", "prompt", "answer", "options")}
        for row, file_name in enumerate(batch["file_name"]):
            objects = zip(batch["categories"][row], batch["annotations"][row], strict=True)
            for index, (category, annotation) in enumerate(objects):
                doc_id = f"{file_name}#{index}"
                out["id"].append(doc_id)
                out["image"].append(coco_image(root, file_name, doc_id))
                out["video"].append(None)
                out["regions"].append(json.dumps([_segmentation_region(annotation["segmentation"])]))
                out["prompt"].append({"full": prompt.full, "lite": prompt.for_variant("lite")})
                out["answer"].append(category)
                out["options"].append([])
        return out

    return dataset.map(flatten, batched=True, remove_columns=dataset.column_names)


def lvis_process_docs(dataset):
    """`lvis_val_1k_category.json` → one document per object (LVIS prompt)."""
    return _osprey_category_docs(dataset, LVIS, "pixelrefer_lvis")


def paco_process_docs(dataset):
    """`paco_val_1k_category.json` → one document per object or part (PACO prompt)."""
    return _osprey_category_docs(dataset, PACO, "pixelrefer_paco")


# --- Ferret-Bench referring reasoning (Osprey box_refer_reason.json + ml-ferret ferret_gpt4_data) -------------------
def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; expected ml-ferret's ferret/eval/ferret_gpt4_data layout")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ferret_process_docs(dataset):
    """Osprey `box_refer_reason.json` records (`question_id`, `image`, `category`, `text` with `<region>`,
    `annotation.segmentation`) → region documents judged as `ferret_bench/2.eval_ferret.py` does.

    From `$PIXELREFER_FERRET_DATA` (ml-ferret's `ferret/eval/ferret_gpt4_data` folder), `refer_reason/`:
    `question.jsonl` gives `judge_question` (the question with the region as box coordinates), `answer.jsonl` the
    GPT-4 reference `answer`, `context.jsonl` the `context` of the image (looked up by image, as the script does).
    Images from `$PIXELREFER_COCO_ROOT` ([`coco_image`]). Fails first when no judge is configured."""
    JudgeConfig.from_env()  # fail before any inference when no judge is configured
    root = media_root(COCO_ROOT_VARIABLE, "the COCO 2017 images (val2017/)", "pixelrefer_ferret")
    folder = Path(media_root(FERRET_DATA_VARIABLE, "ml-ferret's ferret/eval/ferret_gpt4_data", "pixelrefer_ferret"))
    questions = {int(q["question_id"]): q for q in _jsonl(folder / "refer_reason" / "question.jsonl")}
    answers = {int(a["question_id"]): a["text"] for a in _jsonl(folder / "refer_reason" / "answer.jsonl")}
    contexts = {c["image"]: c["text"] for c in _jsonl(folder / "refer_reason" / "context.jsonl")}

    def convert(row: dict, index: int) -> dict:
        doc_id = str(row["question_id"])
        question = questions.get(int(row["question_id"]))
        if question is None or question["image"] != row["image"]:
            raise DocumentError(doc_id, "question_id", f"no question for image {row['image']!r} in question.jsonl")
        if question["image"] not in contexts or int(row["question_id"]) not in answers:
            raise DocumentError(doc_id, "question_id", "missing from answer.jsonl or context.jsonl")
        text = row["text"]
        return {
            "id": doc_id,
            "image": coco_image(root, row["image"], doc_id),
            "video": None,
            "regions": json.dumps([_segmentation_region(row["annotation"]["segmentation"])]),
            "prompt": {"full": text, "lite": protocols.ferret_lite_question(text, row["category"])},
            "answer": answers[int(row["question_id"])],
            "options": [],
            "context": contexts[question["image"]],
            "judge_question": question["text"],
        }

    return _convert(dataset, convert)


# --- DLC-Bench (nvidia/DLC-Bench: annotations.json, qa.json, class_names.json, images/) -----------------------------
DLC_INFLECT = ">=7,<=7.5.0"
"""The `inflect` releases that word all 100 recognition questions as the judge requests behind the published numbers
(`NVlabs/describe-anything: evaluation/model_outputs_cache/dam_3b_v1_eval.json`); 7.6.0 reads "wine glass" as
singular. pyproject.toml's `eval` extra requires the same span (tests/test_install.py checks both)."""


def _inflect_engine():
    """`inflect`'s engine, which the public scorer uses to word its recognition questions; an `ImportError` when
    inflect is missing or outside `DLC_INFLECT` (another release words some questions differently)."""
    fix = f"pip install 'inflect{DLC_INFLECT}'"
    try:
        import inflect
    except ImportError as error:
        raise ImportError(
            f"pixelrefer_dlc_bench words its recognition questions with inflect, as the public DLC-Bench scorer does: {fix}"
        ) from error
    from importlib.metadata import version

    from packaging.specifiers import SpecifierSet

    installed = version("inflect")
    if installed not in SpecifierSet(DLC_INFLECT):
        raise ImportError(
            f"pixelrefer_dlc_bench needs inflect{DLC_INFLECT}, the releases that word the recognition questions as the "
            f"published DLC-Bench judge requests (inflect 7.6 reads 'wine glass' as singular); inflect {installed} is "
            f"installed: {fix}"
        )
    return inflect.engine()


def _recognition_question(class_name: str, engine) -> dict:
    """The public scorer's recognition question for `class_name` ("bus" is singular there, whatever inflect says)."""
    plural = class_name != "bus" and engine.singular_noun(class_name) is not False
    return protocols.dlc_recognition_question(class_name, plural, engine.a(class_name))


def dlc_bench_process_docs(dataset):
    """The COCO annotations of DLC-Bench's `annotations.json` (`id`, `image_id`, `segmentation` RLE) → one document per
    object that `qa.json` asks about (keys: annotation ids), with `dlc_questions` = the recognition question of its
    `class_names.json` entry followed by its `qa.json` questions. Images from `$PIXELREFER_DLC_BENCH_ROOT/images/`
    (file names from that folder's `annotations.json`). Fails first when no judge is configured."""
    JudgeConfig.from_env()  # fail before any inference when no judge is configured
    root = Path(
        media_root(
            DLC_BENCH_ROOT_VARIABLE,
            "the DLC-Bench folder (annotations.json, qa.json, class_names.json, images/)",
            "pixelrefer_dlc_bench",
        )
    )
    engine = _inflect_engine()
    qa = json.loads((root / "qa.json").read_text())
    class_names = json.loads((root / "class_names.json").read_text())
    files = {
        image["id"]: image["file_name"] for image in json.loads((root / "annotations.json").read_text())["images"]
    }
    asked = dataset.filter(lambda row: str(row["id"]) in qa)
    missing = sorted(set(qa) - {str(key) for key in asked["id"]})
    if missing:
        raise DocumentError(missing[0], "id", f"{len(missing)} qa.json object(s) have no annotation: {missing[:5]}")

    def convert(row: dict, index: int) -> dict:
        key = str(row["id"])
        questions = [_recognition_question(class_names[key], engine), *qa[key]]
        return {
            "id": key,
            "image": str(root / "images" / files[row["image_id"]]),
            "video": None,
            "regions": json.dumps([_segmentation_region(row["segmentation"])]),
            "prompt": {"full": DLC_BENCH.full, "lite": DLC_BENCH.for_variant("lite")},
            "answer": class_names[key],
            "options": [],
            "dlc_questions": json.dumps(questions),
        }

    return _convert(asked, convert)
