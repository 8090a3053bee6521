# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Real-data region tasks: YAMLs load with lmms-eval's loader; converters turn tiny files in the upstream record
layout (PixelRefer `evaluation/pixelrefer{,_lite}/infer_*.py`) into region documents that reach the processor."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from video_fixtures import moving_square, write_video

from pixelrefer_plugin.integrations.lmms_eval import protocols
from pixelrefer_plugin.integrations.lmms_eval.documents import DocumentError, document_inputs
from pixelrefer_plugin.integrations.lmms_eval.judge import JudgeNotConfiguredError
from pixelrefer_plugin.presets import build_model_and_processor
from pixelrefer_plugin.prompts import HC_STVG, LVIS, PACO, VG, VIDEOREFER_BENCH_D, videorefer_bench_q_prompt
from pixelrefer_plugin.synthetic import encode_rle

TASKS = Path(__file__).resolve().parents[1] / "pixelrefer_plugin" / "integrations" / "lmms_eval" / "tasks"
REAL_TASKS = {
    "pixelrefer_vg": ("vg_process_docs", "CircleRadon/referring_evaluation", "vg_val_5000.json"),
    "pixelrefer_videorefer_q": (
        "videorefer_q_process_docs",
        "DAMO-NLP-SG/VideoRefer-Bench",
        "VideoRefer-Bench-Q.json",
    ),
    "pixelrefer_videorefer_q_allframe": (
        "videorefer_q_allframe_process_docs",
        "CircleRadon/referring_evaluation",
        "VideoRefer-Bench-Q-allframe.json",
    ),
    "pixelrefer_videorefer_d": (
        "videorefer_d_process_docs",
        "DAMO-NLP-SG/VideoRefer-Bench",
        "VideoRefer-Bench-D.json",
    ),
    "pixelrefer_hc_stvg": ("hc_stvg_process_docs", "CircleRadon/referring_evaluation", "hc_stvg_val.json"),
    "pixelrefer_refcocog": ("refcocog_process_docs", "lmms-lab/RefCOCOg", None),
    "pixelrefer_hc_stvg_allframe": (
        "hc_stvg_allframe_process_docs",
        "CircleRadon/referring_evaluation",
        "hc-stvg-val-allframe.json",
    ),
    "pixelrefer_ferret": (
        "ferret_process_docs",
        "json",
        "https://raw.githubusercontent.com/CircleRadon/Osprey/main/osprey/eval/ferret-bench/box_refer_reason.json",
    ),
    "pixelrefer_dlc_bench": ("dlc_bench_process_docs", "nvidia/DLC-Bench", "annotations.json"),
}
NUM_FRAMES = 8


def load_config(task: str) -> dict:
    from lmms_eval.utils import load_yaml_config

    return load_yaml_config(yaml_path=str(TASKS / f"{task}.yaml"))


def converter(name: str):
    """The converter as lmms-eval imports it (`!function real_data.<name>` resolved next to the YAMLs)."""
    task = next(task for task, (function, _, _) in REAL_TASKS.items() if function == name)
    return load_config(task)["process_docs"]


def set_judge(monkeypatch) -> None:
    """Judge variables (never called: converters only check that a judge is configured)."""
    monkeypatch.setenv("PIXELREFER_JUDGE_MODEL", "judge")
    monkeypatch.setenv("PIXELREFER_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")


@pytest.fixture(scope="module")
def processors():
    return {
        "full": build_model_and_processor("pixelrefer-tiny")[1],
        "lite": build_model_and_processor("pixelrefer-lite-tiny")[1],
    }


def load_records(tmp_path: Path, name: str, records: list[dict]):
    """Write `records` as the upstream files do (one top-level JSON list) and read them as the YAMLs do."""
    import datasets

    path = tmp_path / name
    path.write_text(json.dumps(records))
    return datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))


def reaches_processor(processor, doc: dict, variant: str) -> None:
    inputs = document_inputs(doc, variant)
    media = {"images": inputs.images[0]} if inputs.images else {"videos": inputs.videos[0]}
    encoded = processor(text=inputs.prompt, regions=inputs.regions, **media)
    assert int((encoded["input_ids"] == processor.region_token_id).sum()) > 0


def write_clip(path: Path):
    square = moving_square(NUM_FRAMES)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, square.frames, fps=4)
    return square


@pytest.mark.parametrize("task", sorted(REAL_TASKS))
def test_yaml_loads_with_lmms_eval_and_names_its_converter(task):
    function, dataset_path, data_file = REAL_TASKS[task]
    config = load_config(task)
    assert config["task"] == task
    assert config["dataset_path"] == dataset_path
    if data_file is None:  # a hub dataset with its own splits
        assert "dataset_kwargs" not in config and config["test_split"] == "val"
    else:
        assert config["dataset_kwargs"]["data_files"] == {"test": data_file}
    assert callable(config["process_docs"]) and config["process_docs"].__name__ == function
    assert callable(config["process_results"]) and config["metric_list"]
    text = (TASKS / f"{task}.yaml").read_text()
    assert "UNVERIFIED" in text and "not run against the real data" in text
    assert max(len(line) for line in text.splitlines()) <= 119


# --- VG -------------------------------------------------------------------------------------------------------------
def test_vg_boxes_become_xywh_box_regions_cut_to_the_image(tmp_path, monkeypatch, processors, caplog):
    root = tmp_path / "vg"
    (root / "VG_100K").mkdir(parents=True)
    records = []
    boxes = [([4, 6, 20, 10], "a red sign"), ([10, 2, 8, 30], "tall grey pole")]
    boxes += [([50, 40, 30, 20], "a wheel"), ([-4, 2, 10, 10], "a door")]  # reaching past the right / left edge
    for index, (box, caption) in enumerate(boxes):
        name = f"VG_100K/{index}.jpg"
        Image.new("RGB", (64, 48), (200, 30 * index, 40)).save(root / name)
        records.append(
            {
                "image": [name],
                "height": 48,
                "width": 64,
                "caption": caption,
                "mask": [[0, 0, 1, 0, 1, 1]],
                "boxes": [box],
            }
        )
    dataset = load_records(tmp_path, "vg_val_5000.json", records)
    process = converter("vg_process_docs")

    monkeypatch.delenv("PIXELREFER_VG_ROOT", raising=False)
    with pytest.raises(RuntimeError, match="PIXELREFER_VG_ROOT"):
        process(dataset)

    monkeypatch.setenv("PIXELREFER_VG_ROOT", str(root))
    with caplog.at_level("WARNING"):
        docs = list(process(dataset))
    assert "pixelrefer_vg: 2 of 4 boxes reach outside their image and were clipped to it" in caplog.text
    # cut to the record's 64 x 48: [50, 40, 30, 20] -> x 50..64, y 40..48; [-4, 2, 10, 10] -> x 0..6, y 2..12
    assert [json.loads(doc["regions"])[0]["box"] for doc in docs[2:]] == [[50, 40, 14, 8], [0, 2, 6, 10]]
    assert [doc["boxes_clipped"] for doc in docs] == [0, 0, 1, 1]
    docs = docs[:2]
    assert [doc["id"] for doc in docs] == ["VG_100K/0.jpg#0", "VG_100K/1.jpg#1"]
    assert docs[1]["image"] == str(root / "VG_100K/1.jpg") and Path(docs[1]["image"]).is_absolute()
    assert json.loads(docs[0]["regions"]) == [{"box": [4, 6, 20, 10], "box_format": "xywh"}]
    assert docs[0]["prompt"] == {"full": VG.full, "lite": VG.for_variant("lite")}
    assert [doc["answer"] for doc in docs] == ["a red sign", "tall grey pole"]
    assert docs[0]["video"] is None and docs[0]["options"] == []
    for doc in docs:
        reaches_processor(processors["full"], doc, "full")
        reaches_processor(processors["lite"], doc, "lite")

    outside = load_records(tmp_path, "outside.json", [{**records[0], "boxes": [[70, 10, 5, 5]]}])
    with pytest.raises(DocumentError, match=r"boxes: box \[70, 10, 5, 5\] has no pixel inside the 64x48 image"):
        process(outside)


# --- VideoRefer-Bench-Q ---------------------------------------------------------------------------------------------
def q_records(square, all_frames: bool) -> list[dict]:
    """Two questions in the upstream layout: one object (key frame 3), two objects (key frame 5)."""

    def annotation(frames):
        return {str(n): {"segmentation": encode_rle(square.mask(n))} for n in frames}

    first = annotation(range(NUM_FRAMES) if all_frames else [0, 3])
    if all_frames:
        first["6"] = {"segmentation": None}  # upstream skips frames without a mask
        first["7"] = {"segmentation": encode_rle(np.zeros((96, 128), dtype=bool))}  # and empty masks
    second = annotation(range(2, NUM_FRAMES) if all_frames else [5])
    return [
        {
            "id": 0,
            "video": "MeViS/clip.mp4",
            "Question": "Which way does <object0><region> move?",
            "type": "Basic Questions",
            "options": ["(A) Left", "(B) Right", "(C) Up", "(D) Down"],
            "Answer": "(B) Right",
            "frame_idx": "3",
            "annotation": [first],
        },
        {
            "id": 1,
            "video": "MeViS/clip.mp4",
            "Question": "Are <object0><region> and <object1><region> the same object?",
            "type": "Relationship Questions",
            "options": ["(A) Yes", "(B) No"],
            "Answer": "(A) Yes",
            "frame_idx": "5",
            "annotation": [annotation(range(NUM_FRAMES) if all_frames else [5]), second],
        },
    ]


def test_videorefer_q_uses_the_key_frame_mask(tmp_path, monkeypatch, processors):
    root = tmp_path / "videorefer"
    square = write_clip(root / "MeViS" / "clip.mp4")
    dataset = load_records(tmp_path, "VideoRefer-Bench-Q.json", q_records(square, all_frames=False))
    process = converter("videorefer_q_process_docs")

    monkeypatch.delenv("PIXELREFER_VIDEOREFER_ROOT", raising=False)
    with pytest.raises(RuntimeError, match="PIXELREFER_VIDEOREFER_ROOT"):
        process(dataset)

    monkeypatch.setenv("PIXELREFER_VIDEOREFER_ROOT", str(root))
    docs = list(process(dataset))
    assert [doc["id"] for doc in docs] == ["0", "1"]
    assert docs[0]["video"] == str(root / "MeViS" / "clip.mp4") and docs[0]["image"] is None
    first = json.loads(docs[0]["regions"])
    assert first == [{"rle": encode_rle(square.mask(3)), "frame": 3}]
    assert [region["frame"] for region in json.loads(docs[1]["regions"])] == [5, 5]
    question = videorefer_bench_q_prompt("Which way does <object0><region> move?", docs[0]["options"])
    assert docs[0]["prompt"] == {"full": "<video>\n" + question, "lite": question}
    assert docs[0]["options"] == ["(A) Left", "(B) Right", "(C) Up", "(D) Down"]
    assert [doc["answer"] for doc in docs] == [1, 0]
    assert docs[1]["type"] == "Relationship Questions"
    for doc in docs:
        reaches_processor(processors["full"], doc, "full")
        reaches_processor(processors["lite"], doc, "lite")


def test_videorefer_q_allframe_gives_lite_tracks(tmp_path, monkeypatch, processors):
    root = tmp_path / "videorefer"
    square = write_clip(root / "MeViS" / "clip.mp4")
    dataset = load_records(tmp_path, "VideoRefer-Bench-Q-allframe.json", q_records(square, all_frames=True))
    monkeypatch.setenv("PIXELREFER_VIDEOREFER_ROOT", str(root))
    docs = list(converter("videorefer_q_allframe_process_docs")(dataset))
    (track,) = json.loads(docs[0]["regions"])
    assert list(track["frames"]) == [str(n) for n in range(6)]  # frame 6 has no mask, frame 7 an empty one
    assert track["frames"]["4"] == {"rle": encode_rle(square.mask(4))}
    second = json.loads(docs[1]["regions"])
    assert [list(region["frames"]) for region in second] == [
        [str(n) for n in range(NUM_FRAMES)],
        [str(n) for n in range(2, NUM_FRAMES)],
    ]
    assert [doc["answer"] for doc in docs] == [1, 0]
    for doc in docs:
        reaches_processor(processors["lite"], doc, "lite")


# --- VideoRefer-Bench-D ---------------------------------------------------------------------------------------------
def test_videorefer_d_reads_panda_clips_and_needs_a_judge(tmp_path, monkeypatch, processors):
    root = tmp_path / "VideoRefer-Bench"
    square = write_clip(root / "Panda-70M-part" / "cub.mp4")
    records = [
        {
            "id": 7,
            "video": "cub.mp4",
            "caption": "A red square slides to the right.",
            "frame_idx": "2",
            "annotation": [
                {
                    **{str(n): {"segmentation": encode_rle(square.mask(n))} for n in (0, 2, 4)},
                    "6": {"segmentation": encode_rle(np.zeros((96, 128), dtype=bool))},
                }
            ],
        }
    ]
    dataset = load_records(tmp_path, "VideoRefer-Bench-D.json", records)
    process = converter("videorefer_d_process_docs")
    for name in ("PIXELREFER_JUDGE_MODEL", "PIXELREFER_JUDGE_BASE_URL", "PIXELREFER_JUDGE_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIXELREFER_VIDEOREFER_ROOT", str(root))
    with pytest.raises(JudgeNotConfiguredError):
        process(dataset)

    monkeypatch.setenv("PIXELREFER_JUDGE_MODEL", "judge")
    monkeypatch.setenv("PIXELREFER_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.delenv("PIXELREFER_VIDEOREFER_ROOT")
    with pytest.raises(RuntimeError, match="PIXELREFER_VIDEOREFER_ROOT"):
        process(dataset)

    monkeypatch.setenv("PIXELREFER_VIDEOREFER_ROOT", str(root))
    (doc,) = list(process(dataset))
    assert doc["id"] == "7" and doc["video"] == str(root / "Panda-70M-part" / "cub.mp4")
    assert json.loads(doc["regions"]) == [{"rle": encode_rle(square.mask(2)), "frame": 2}]
    # Lite: the non-empty masks on every annotated frame (frame 6's mask is empty)
    (track,) = json.loads(doc["lite_regions"])
    assert track == {"frames": {str(n): {"rle": encode_rle(square.mask(n))} for n in (0, 2, 4)}}
    assert document_inputs(doc, "lite").regions == [
        {"frames": {n: {"rle": encode_rle(square.mask(n))} for n in (0, 2, 4)}}
    ]
    assert document_inputs(doc, "full").regions == [{"rle": encode_rle(square.mask(2)), "frame": 2}]
    assert doc["prompt"] == {"full": VIDEOREFER_BENCH_D.full, "lite": VIDEOREFER_BENCH_D.for_variant("lite")}
    assert doc["answer"] == "A red square slides to the right."
    reaches_processor(processors["full"], doc, "full")
    reaches_processor(processors["lite"], doc, "lite")


# --- HC-STVG --------------------------------------------------------------------------------------------------------
def test_hc_stvg_uses_the_key_frame_mask(tmp_path, monkeypatch, processors):
    root = tmp_path / "hcstvg"
    square = write_clip(root / "video_parts" / "v1.mp4")
    records = [
        {"video": "video_parts/v1.mp4", "frame_idx": 3, "mask": encode_rle(square.mask(3)), "caption": "a man walks"},
        {"video": "video_parts/v1.mp4", "frame_idx": 6, "mask": encode_rle(square.mask(6)), "caption": "a man runs"},
    ]
    dataset = load_records(tmp_path, "hc_stvg_val.json", records)
    process = converter("hc_stvg_process_docs")

    monkeypatch.delenv("PIXELREFER_HC_STVG_ROOT", raising=False)
    with pytest.raises(RuntimeError, match="PIXELREFER_HC_STVG_ROOT"):
        process(dataset)

    monkeypatch.setenv("PIXELREFER_HC_STVG_ROOT", str(root))
    docs = list(process(dataset))
    assert [doc["id"] for doc in docs] == ["hc-stvg-0", "hc-stvg-1"]
    assert docs[0]["video"] == str(root / "video_parts" / "v1.mp4")
    assert json.loads(docs[1]["regions"]) == [{"rle": encode_rle(square.mask(6)), "frame": 6}]
    assert docs[0]["prompt"] == {"full": HC_STVG.full, "lite": HC_STVG.for_variant("lite")}
    assert [doc["answer"] for doc in docs] == ["a man walks", "a man runs"]
    for doc in docs:
        reaches_processor(processors["full"], doc, "full")
        reaches_processor(processors["lite"], doc, "lite")


def test_hc_stvg_allframe_gives_lite_tracks(tmp_path, monkeypatch, processors):
    root = tmp_path / "hcstvg"
    square = write_clip(root / "v1.mp4")
    records = [
        {
            "video": ["v1.mp4"],
            "masks": [{str(n): encode_rle(square.mask(n)) for n in range(0, NUM_FRAMES, 2)}],
            "conversations": [{"from": "human", "value": "<region>"}, {"from": "gpt", "value": "a man walks"}],
        }
    ]
    dataset = load_records(tmp_path, "hc-stvg-val-allframe.json", records)
    process = converter("hc_stvg_allframe_process_docs")
    monkeypatch.delenv("PIXELREFER_HC_STVG_ROOT", raising=False)
    with pytest.raises(RuntimeError, match="PIXELREFER_HC_STVG_ROOT"):
        process(dataset)

    monkeypatch.setenv("PIXELREFER_HC_STVG_ROOT", str(root))
    (doc,) = list(process(dataset))
    assert doc["video"] == str(root / "v1.mp4") and doc["answer"] == "a man walks"
    (track,) = json.loads(doc["regions"])
    assert list(track["frames"]) == ["0", "2", "4", "6"]
    assert doc["prompt"]["lite"] == HC_STVG.for_variant("lite")
    reaches_processor(processors["lite"], doc, "lite")


# --- RefCOCOg -------------------------------------------------------------------------------------------------------
def test_refcocog_writes_images_once_and_uses_the_polygon(tmp_path, monkeypatch, processors):
    import datasets

    images = [Image.new("RGB", (64, 48), (200, 40, 40)), Image.new("RGB", (80, 60), (40, 200, 40))]
    rows = {
        "question_id": ["11", "12", "13"],
        "image": [images[0], images[0], images[1]],
        "question": ["Provide a short description for this region."] * 3,
        "answer": [["a red cup", "the cup on the left"], ["red cup"], ["green box"]],
        "segmentation": [[4.0, 4.0, 30.0, 4.0, 30.0, 20.0, 4.0, 20.0], [10.0, 10.0, 20.0, 10.0, 15.0, 30.0], []],
        "bbox": [[4.0, 4.0, 26.0, 16.0], [10.0, 10.0, 10.0, 20.0], [70.0, 50.0, 20.0, 20.0]],  # the last outside 80x60
        "iscrowd": [0, 0, 0],
        "file_name": ["COCO_train2014_000000000001.jpg"] * 2 + ["COCO_train2014_000000000002.jpg"],
    }
    features = datasets.Features(
        {
            "question_id": datasets.Value("string"),
            "image": datasets.Image(),
            "question": datasets.Value("string"),
            "answer": datasets.Sequence(datasets.Value("string")),
            "segmentation": datasets.Sequence(datasets.Value("float32")),
            "bbox": datasets.Sequence(datasets.Value("float32")),
            "iscrowd": datasets.Value("int8"),
            "file_name": datasets.Value("string"),
        }
    )
    parquet = tmp_path / "val-00000.parquet"
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(parquet))
    dataset = datasets.load_dataset("parquet", data_files=str(parquet), split="train", cache_dir=str(tmp_path / "hf"))
    process = converter("refcocog_process_docs")
    monkeypatch.setitem(process.__globals__, "IMAGE_CACHE", tmp_path / "cache")

    docs = list(process(dataset))
    assert [doc["id"] for doc in docs] == ["11", "12", "13"]
    cached = tmp_path / "cache" / "refcocog"
    assert docs[0]["image"] == docs[1]["image"] == str(cached / "COCO_train2014_000000000001.jpg")
    assert sorted(path.name for path in cached.iterdir()) == [
        "COCO_train2014_000000000001.jpg",
        "COCO_train2014_000000000002.jpg",
    ]
    assert np.array_equal(np.asarray(Image.open(docs[2]["image"]).convert("RGB")), np.asarray(images[1]))
    assert json.loads(docs[0]["regions"]) == [{"polygon": rows["segmentation"][0]}]
    assert json.loads(docs[2]["regions"]) == [{"box": [70.0, 50.0, 10.0, 10.0], "box_format": "xywh"}]
    assert [doc["boxes_clipped"] for doc in docs] == [0, 0, 1]
    assert docs[0]["answer"] == ["a red cup", "the cup on the left"] and docs[1]["answer"] == ["red cup"]
    assert docs[0]["prompt"] == {"full": VG.full, "lite": VG.for_variant("lite")}
    for doc in docs:
        reaches_processor(processors["full"], doc, "full")
        reaches_processor(processors["lite"], doc, "lite")

    # rows whose image already has a file keep that path
    source = tmp_path / "own.png"
    images[1].save(source)
    with_path = datasets.Dataset.from_dict(
        {**{key: value[2:] for key, value in rows.items() if key != "image"}, "image": [str(source)]}
    ).cast_column("image", datasets.Image())
    (doc,) = list(process(with_path))
    assert doc["image"] == str(source)


# --- LVIS / PACO: images in the COCO 2017 layout --------------------------------------------------------------------
def test_osprey_category_records_find_images_in_the_coco_layout(tmp_path, monkeypatch, processors):
    """The public scripts read `<root>/train2017/<file>` or `<root>/val2017/<file>`; a flat folder works too."""
    coco = tmp_path / "coco"
    places = {"000000000139.jpg": "train2017", "000000000285.jpg": "val2017", "000000000632.jpg": ""}
    for name, split in places.items():
        (coco / split).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (60, 40), (10, 20, 30)).save(coco / split / name)
    square = [[10.0, 5.0, 30.0, 5.0, 30.0, 20.0, 10.0, 20.0]]
    records = [
        {
            "file_name": name,
            "height": 40,
            "width": 60,
            "categories": [category],
            "annotations": [{"segmentation": square}],
        }
        for name, category in zip(places, ["dog", "dog:leg", "cup"], strict=True)
    ]
    dataset = load_records(tmp_path, "paco_val_1k_category.json", records)
    process = load_config("pixelrefer_paco")["process_docs"]

    monkeypatch.delenv("PIXELREFER_COCO_ROOT", raising=False)
    with pytest.raises(RuntimeError, match="PIXELREFER_COCO_ROOT"):
        process(dataset)
    monkeypatch.setenv("PIXELREFER_COCO_ROOT", str(coco))
    docs = list(process(dataset))
    assert [doc["image"] for doc in docs] == [str(coco / split / name) for name, split in places.items()]
    assert [doc["answer"] for doc in docs] == ["dog", "dog:leg", "cup"]
    assert [doc["id"] for doc in docs] == [f"{name}#0" for name in places]
    assert docs[0]["prompt"]["full"] == PACO.full and json.loads(docs[0]["regions"]) == [{"polygon": square}]
    lvis = list(load_config("pixelrefer_lvis")["process_docs"](dataset))
    assert lvis[0]["prompt"]["full"] == LVIS.full
    reaches_processor(processors["full"], docs[1], "full")

    missing = load_records(tmp_path, "missing.json", [{**records[0], "file_name": "000000000999.jpg"}])
    with pytest.raises(DocumentError, match=r"000000000999.jpg#0.*file_name: no image .*train2017.*val2017"):
        process(missing)


# --- Ferret-Bench (Osprey box_refer_reason.json + ml-ferret ferret_gpt4_data) ---------------------------------------
def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_ferret_documents_carry_the_lite_question_and_the_judge_inputs(tmp_path, monkeypatch, processors):
    coco = tmp_path / "coco"
    (coco / "val2017").mkdir(parents=True)
    Image.new("RGB", (640, 480), (90, 90, 90)).save(coco / "val2017" / "000000130566.jpg")
    question = "What might be the purpose of the object <region> on the train?"
    records = [
        {
            "question_id": 0,
            "image": "000000130566.jpg",
            "category": "reason",
            "text": question,
            "annotation": {
                "bbox": [544.0, 223.32, 30.72, 25.62],
                "segmentation": [[544.0, 223.32, 574.72, 223.32, 574.72, 248.94, 544.0, 248.94]],
            },
        }
    ]
    data = tmp_path / "ferret_gpt4_data"
    box = "[0.850, 0.523, 0.898, 0.583]"
    common = {"question_id": 0, "image": "000000130566.jpg", "category": "refer_reason"}
    write_jsonl(data / "refer_reason" / "question.jsonl", [{**common, "text": question.replace("<region>", box)}])
    write_jsonl(data / "refer_reason" / "answer.jsonl", [{**common, "text": f"The object {box} is a windshield."}])
    write_jsonl(
        data / "refer_reason" / "context.jsonl", [{**common, "text": f"Objects:\nObject 17 : windshield at {box}."}]
    )
    dataset = load_records(tmp_path, "box_refer_reason.json", records)
    process = converter("ferret_process_docs")
    set_judge(monkeypatch)
    monkeypatch.setenv("PIXELREFER_COCO_ROOT", str(coco))
    monkeypatch.delenv("PIXELREFER_FERRET_DATA", raising=False)
    with pytest.raises(RuntimeError, match="PIXELREFER_FERRET_DATA"):
        process(dataset)

    monkeypatch.setenv("PIXELREFER_FERRET_DATA", str(data))
    (doc,) = list(process(dataset))
    assert doc["image"] == str(coco / "val2017" / "000000130566.jpg")
    assert doc["prompt"] == {
        "full": "What might be the purpose of the object <region> on the train?",
        "lite": "There is 1 region in the image: <region> What might be the purpose of the object  on the train?",
    }
    assert doc["judge_question"] == f"What might be the purpose of the object {box} on the train?"
    assert doc["context"] == f"Objects:\nObject 17 : windshield at {box}."
    assert doc["answer"] == f"The object {box} is a windshield."
    prompt = protocols.ferret_judge_prompt(doc["context"], doc["judge_question"], "A windshield.", doc["answer"])
    assert "[Assistant 1]\nA windshield.\n\n" in prompt and "[Assistant 2]\nThe object is a windshield.\n\n" in prompt
    reaches_processor(processors["full"], doc, "full")
    reaches_processor(processors["lite"], doc, "lite")


# --- DLC-Bench (annotations.json, qa.json, class_names.json, images/) -----------------------------------------------
def test_dlc_bench_reads_the_published_layout(tmp_path, monkeypatch, processors):
    pytest.importorskip("inflect", reason="the recognition questions are worded by inflect, as the public scorer does")
    import datasets

    root = tmp_path / "DLC-Bench"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (64, 48), (120, 80, 40)).save(root / "images" / "sa_1.jpg")
    mask = np.zeros((48, 64), dtype=bool)
    mask[10:30, 5:25] = True
    annotation = {"image_id": 1, "segmentation": encode_rle(mask), "area": 400, "bbox": [5, 10, 20, 20]}
    coco = {
        "images": [{"id": 1, "file_name": "sa_1.jpg", "height": 48, "width": 64}],
        "annotations": [{**annotation, "id": 101, "category_id": 1}, {**annotation, "id": 102, "category_id": 1}],
        "categories": [{"id": 1, "name": "object"}],
    }
    qa = {
        "101": [
            {"question": "Which is applicable?", "choices": [["Not mentioned.", 0], ["Grey.", 1]], "type": "positive"},
            {"question": "Which is applicable?", "choices": [["No boats.", 1], ["Boats.", -1]], "type": "negative"},
        ]
    }
    (root / "annotations.json").write_text(json.dumps(coco))
    (root / "qa.json").write_text(json.dumps(qa))
    (root / "class_names.json").write_text(json.dumps({"101": "wild bird", "102": "scissors"}))
    dataset = datasets.load_dataset(
        "json", data_files=str(root / "annotations.json"), field="annotations", split="train", cache_dir=str(tmp_path)
    )
    process = converter("dlc_bench_process_docs")
    set_judge(monkeypatch)
    monkeypatch.setenv("PIXELREFER_DLC_BENCH_ROOT", str(root))
    (doc,) = list(process(dataset))  # 102 has no qa.json entry: not evaluated, as in the public scorer
    assert doc["id"] == "101" and doc["image"] == str(root / "images" / "sa_1.jpg")
    assert json.loads(doc["regions"]) == [{"rle": encode_rle(mask)}]
    questions = json.loads(doc["dlc_questions"])
    assert questions[0] == protocols.dlc_recognition_question("wild bird", plural=False, with_article="a wild bird")
    assert questions[1:] == qa["101"]
    reaches_processor(processors["full"], doc, "full")
