# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Training data: loading, validation (one test per kind of bad record), samples, batches and the CLI."""

import copy
import json
import logging
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from video_fixtures import moving_square, write_video

from pixelrefer_plugin.cli import main
from pixelrefer_plugin.presets import build_model_and_processor
from pixelrefer_plugin.training.data import (
    DataFileError,
    DataRecordError,
    DataValidationError,
    RecordProblem,
    RegionConversationDataset,
    RegionDataCollator,
    RegionSample,
    load_records,
    record_problems,
    record_to_sample,
    validate_records,
)

SIZE = (96, 128)  # (H, W) of every image and video frame
NUM_FRAMES = 4


def box_mask(box, size=SIZE) -> np.ndarray:
    x0, y0, x1, y1 = box
    mask = np.zeros(size, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def rle(mask: np.ndarray) -> dict:
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode()}


CAT_BOX = (10, 10, 40, 50)
DOG_POLYGON = [[70.0, 20.0, 110.0, 20.0, 110.0, 60.0, 70.0, 60.0]]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A data root with two images, a video file and a video given as three frame files."""
    folder = tmp_path_factory.mktemp("data")
    (folder / "images").mkdir()
    (folder / "frames").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 255, (*SIZE, 3), dtype=np.uint8)).save(folder / "images" / f"{name}.png")
    square = moving_square(NUM_FRAMES)
    (folder / "clips").mkdir()
    write_video(folder / "clips" / "square.mp4", square.frames, fps=1)
    for index in range(3):
        Image.fromarray(square.frames[index]).save(folder / "frames" / f"{index}.png")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(folder / "images" / "small.png")
    (folder / "images" / "broken.png").write_text("not an image")
    (folder / "clips" / "broken.mp4").write_text("not a video")
    return folder


def image_record() -> dict:
    """Two objects referred to over two turns; no <image> tag (the published loader adds it)."""
    return {
        "image": "images/a.png",
        "height": SIZE[0],
        "width": SIZE[1],
        "source": "an unknown key, ignored",
        "masks": [rle(box_mask(CAT_BOX)), DOG_POLYGON],
        "conversations": [
            {"from": "system", "value": "Answer briefly."},
            {"from": "human", "value": "What is <region>?"},
            {"from": "gpt", "value": "A cat."},
            {"from": "human", "value": "And <region>?"},
            {"from": "gpt", "value": "A dog."},
        ],
    }


def video_record(variant: str = "full") -> dict:
    square = moving_square(NUM_FRAMES)
    track = {"1": rle(square.mask(1))} if variant == "full" else {"3": rle(square.mask(3)), "0": rle(square.mask(0))}
    return {
        "video": ["clips/square.mp4"],
        "masks": [track],
        "conversations": [
            {"from": "human", "value": "<video>\nWhat does <region> do?"},
            {"from": "gpt", "value": "It moves right."},
        ],
    }


def frames_record() -> dict:
    square = moving_square(NUM_FRAMES)
    return {
        "video": ["frames/0.png", "frames/1.png", "frames/2.png"],
        "timestamps": [0.0, 0.5, 1.0],
        "masks": [{"2": rle(square.mask(2))}],
        "conversations": [{"from": "human", "value": "Where is <region>?"}, {"from": "gpt", "value": "On the left."}],
    }


def text_record() -> dict:
    return {"conversations": [{"from": "human", "value": "Hello"}, {"from": "gpt", "value": "Hi."}]}


@pytest.fixture(scope="module")
def lite():
    return build_model_and_processor("pixelrefer-lite-tiny", seed=0)


# ---------------------------------------------------------------- good records


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_image_record_becomes_a_sample(root, variant):
    record = image_record()
    sample = record_to_sample(record, 0, root, variant=variant)

    first_question = "<image>\nWhat is <region>?" if variant == "full" else "What is <region>?"
    assert sample == RegionSample(
        messages=[
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": first_question},
            {"role": "assistant", "content": "A cat."},
            {"role": "user", "content": "And <region>?"},
            {"role": "assistant", "content": "A dog."},
        ],
        images=[str(root / "images" / "a.png")],
        videos=[],
        regions=[{"rle": record["masks"][0]}, {"polygon": DOG_POLYGON}],
    )
    assert record == image_record()  # the record itself is not modified
    assert record_problems(record, 0, root, variant=variant) == []


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_video_record_becomes_a_sample(root, variant):
    record = video_record(variant)
    sample = record_to_sample(record, 0, root, variant=variant)

    square = moving_square(NUM_FRAMES)
    if variant == "full":
        assert sample.regions == [{"rle": rle(square.mask(1)), "frame": 1}]
        assert sample.messages[0] == {"role": "user", "content": "<video>\nWhat does <region> do?"}
    else:  # one object over two frames, in frame order; no scene tag for Lite
        assert sample.regions == [{"frames": {0: {"rle": rle(square.mask(0))}, 3: {"rle": rle(square.mask(3))}}}]
        assert list(sample.regions[0]["frames"]) == [0, 3]
        assert sample.messages[0] == {"role": "user", "content": "What does <region> do?"}
    assert sample.videos == [str(root / "clips" / "square.mp4")] and sample.images == []
    assert sample.messages[1] == {"role": "assistant", "content": "It moves right."}


def test_frame_file_video_and_text_only_records(root):
    sample = record_to_sample(frames_record(), 3, root)
    frames = [str(root / "frames" / f"{i}.png") for i in range(3)]
    assert sample.videos == [{"frames": frames, "timestamps": [0.0, 0.5, 1.0]}]
    assert sample.regions == [{"rle": frames_record()["masks"][0]["2"], "frame": 2}]
    assert sample.messages[0]["content"] == "<video>\nWhere is <region>?"  # added, as published

    text = record_to_sample(text_record(), 4, root)
    assert text == RegionSample(
        messages=[{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi."}]
    )


def test_multi_image_record_places_objects_on_their_image(root):
    record = image_record()
    record.update(
        image=["images/a.png", "images/b.png"], masks=[record["masks"][0], {"image": 1, "rle": rle(box_mask(CAT_BOX))}]
    )
    sample = record_to_sample(record, 0, root)
    assert sample.images == [str(root / "images" / n) for n in ("a.png", "b.png")]
    assert [region.get("image") for region in sample.regions] == [0, 1]
    assert sample.messages[1]["content"].startswith("<image>\n<image>\nWhat is")

    record["image"][1] = "images/small.png"  # height / width describe the first image; objects fit their own image
    record["masks"][1]["rle"] = rle(box_mask((0, 0, 8, 8), size=(40, 40)))
    assert record_problems(record, 0, root) == []
    record["masks"][1]["rle"] = rle(box_mask(CAT_BOX))
    assert [p.reason for p in record_problems(record, 0, root)] == [
        "rle size is 128x96 (width x height) but its image is 40x40 (width x height)"
    ]

    record["masks"][1]["image"] = 2
    assert [(p.field, "out of range" in p.reason) for p in record_problems(record, 0, root)] == [("masks[1]", True)]


# ---------------------------------------------------------------- batches through the processor and the model


def answer_text(processor, batch, row: int) -> str:
    labels = batch["labels"][row]
    return processor.tokenizer.decode(labels[labels != -100])


def test_full_batch_goes_through_the_processor_and_the_model(root, tiny, caplog):
    model, processor = tiny
    with caplog.at_level(logging.INFO, logger="pixelrefer_plugin.training.data"):
        dataset = RegionConversationDataset([image_record(), video_record(), text_record(), frames_record()], root)
    assert "added <image> / <video> to the first human turn of 2 record(s)" in caplog.text
    assert len(dataset) == 4 and dataset.skipped == []

    batch = RegionDataCollator(processor)([dataset[i] for i in range(4)])
    # labels supervise the answers only (up to and including <|im_end|>), nothing of the prompts
    assert answer_text(processor, batch, 0) == "A cat.<|im_end|>A dog.<|im_end|>"
    assert answer_text(processor, batch, 1) == "It moves right.<|im_end|>"
    assert answer_text(processor, batch, 2) == "Hi.<|im_end|>"
    assert answer_text(processor, batch, 3) == "On the left.<|im_end|>"
    # the image, the video file, and the frame-file video: scene inputs for all of them
    assert batch["image_grid_thw"].shape[0] == 1 and batch["video_grid_thw"][:, 0].tolist() == [NUM_FRAMES, 3]
    # <region> n is masks[n]: the cat box comes before the dog polygon, in the order of the turns
    top, left, bottom, right = batch["region_boxes"][:2].T.tolist()
    assert left[0] < CAT_BOX[2] <= left[1] and len(batch["region_boxes"]) == 4

    with torch.no_grad():
        loss = model(**batch).loss
    assert torch.isfinite(loss) and loss > 0


def test_lite_batch_goes_through_the_processor_and_the_model(root, lite):
    model, processor = lite
    dataset = RegionConversationDataset([image_record(), video_record("lite")], root, variant="lite")
    batch = RegionDataCollator(processor)(list(dataset))
    text = processor.tokenizer.decode(batch["input_ids"][1])
    assert "What does [Time 0.0:" in text and ",Time 3.0:" in text  # one object, two frames
    assert "pixel_values" not in batch and "pixel_values_videos" not in batch
    assert answer_text(processor, batch, 0) == "A cat.<|im_end|>A dog.<|im_end|>"
    assert answer_text(processor, batch, 1) == "It moves right.<|im_end|>"
    with torch.no_grad():
        loss = model(**batch).loss
    assert torch.isfinite(loss)


# ---------------------------------------------------------------- one test per kind of bad record


def _missing_image(r):
    r["image"] = "images/nope.png"


def _missing_video(r):
    r["video"] = "clips/nope.mp4"


def _unreadable_image(r):
    r["image"] = "images/broken.png"


def _unreadable_video(r):
    r["video"] = "clips/broken.mp4"


def _frame_file_of_another_size(r):
    r["video"][2] = "images/small.png"


def _missing_frame_file(r):
    r["video"][1] = "frames/nope.png"


def _count_mismatch(r):
    r["conversations"][3]["value"] = "And the other one?"


def _garbage_compressed_rle(r):
    r["masks"][0] = {"size": list(SIZE), "counts": "~~~~"}  # pycocotools decodes this without complaint


def _uncompressed_rle_bad_sum(r):
    r["masks"][0] = {"size": list(SIZE), "counts": [10, 20, 30]}


def _malformed_polygon(r):
    r["masks"][1] = [[10.0, 10.0, 20.0, 20.0]]


def _not_an_annotation(r):
    r["masks"][1] = {"bbox": [1, 2, 3, 4]}


def _rle_size_mismatch(r):
    r["masks"][0] = rle(box_mask((2, 2, 10, 10), size=(48, 64)))


def _record_size_mismatch(r):
    r["height"] = 100


def _record_width_on_video(r):
    r["width"] = 64


def _empty_mask(r):
    r["masks"][0] = rle(np.zeros(SIZE, dtype=bool))


def _polygon_outside(r):
    r["masks"][1] = [[200.0, 200.0, 220.0, 200.0, 220.0, 220.0]]


def _video_rle_size_mismatch(r):
    r["masks"][0] = {"1": rle(box_mask((2, 2, 10, 10), size=(48, 64)))}


def _several_frames_full(r):
    square = moving_square(NUM_FRAMES)
    r["masks"][0] = {"0": rle(square.mask(0)), "2": rle(square.mask(2))}


def _video_object_without_frame(r):
    r["masks"][0] = r["masks"][0]["1"]


def _frame_out_of_range(r):
    r["masks"][0] = {"9": r["masks"][0]["1"]}


def _bad_frame_key(r):
    r["masks"][0] = {"first": r["masks"][0]["1"]}


def _frame_list_out_of_range(r):
    r["masks"][0] = {"3": r["masks"][0]["2"]}


def _frames_without_timestamps(r):
    del r["timestamps"]


def _conversations_not_a_list(r):
    r["conversations"] = "What is <region>?"


def _bad_role(r):
    r["conversations"][2]["from"] = "bot"


def _no_assistant_turn(r):
    r["conversations"] = [turn for turn in r["conversations"] if turn["from"] != "gpt"]


def _value_not_a_string(r):
    r["conversations"][2]["value"] = ["A cat."]


def _image_tag_in_answer(r):
    r["conversations"][2]["value"] = "<image>\nA cat."


def _too_many_image_tags(r):
    r["conversations"][1]["value"] = "<image>\n<image>\nWhat is <region>?"


def _image_and_video(r):
    r["video"] = "clips/square.mp4"


def _text_only_with_masks(r):
    r["masks"] = [rle(box_mask(CAT_BOX))]


def _masks_not_a_list(r):
    r["masks"] = rle(box_mask(CAT_BOX))


BAD_RECORDS = {
    # name: (record factory, change, field, reason substring)
    "missing image file": (image_record, _missing_image, "image", "images/nope.png' does not exist"),
    "missing video file": (video_record, _missing_video, "video", "clips/nope.mp4' does not exist"),
    "unreadable image": (image_record, _unreadable_image, "image", "cannot read image file"),
    "unreadable video": (video_record, _unreadable_video, "video", "cannot read video file"),
    "frame files of two sizes": (
        frames_record,
        _frame_file_of_another_size,
        "video[2]",
        "frame is 40x40 (width x height) but the first",
    ),
    "missing frame file": (frames_record, _missing_frame_file, "video[1]", "frames/nope.png' does not exist"),
    "region count": (image_record, _count_mismatch, "masks", "2 mask(s) for 1 <region> placeholder(s)"),
    "garbage compressed rle": (image_record, _garbage_compressed_rle, "masks[0]", "malformed rle"),
    "uncompressed rle": (image_record, _uncompressed_rle_bad_sum, "masks[0]", "malformed rle"),
    "malformed polygon": (image_record, _malformed_polygon, "masks[1]", "polygon ring 0 has 4 numbers"),
    "not an annotation": (image_record, _not_an_annotation, "masks[1]", "expected a COCO RLE dict"),
    "rle size": (
        image_record,
        _rle_size_mismatch,
        "masks[0]",
        "rle size is 64x48 (width x height) but its image is 128x96 (width x height)",
    ),
    "record height": (image_record, _record_size_mismatch, "height", "says height 100 but image"),
    "record width on video": (video_record, _record_width_on_video, "width", "first frame of video"),
    "empty mask": (image_record, _empty_mask, "masks[0]", "covers no pixel"),
    "polygon outside": (image_record, _polygon_outside, "masks[1]", "covers no pixel"),
    "video rle size": (
        video_record,
        _video_rle_size_mismatch,
        'masks[0]["1"]',
        "but its frame is 128x96 (width x height)",
    ),
    "several frames (full)": (video_record, _several_frames_full, "masks[0]", "one frame per object, got 2"),
    "video object without frame": (video_record, _video_object_without_frame, "masks[0]", "without its frame index"),
    "frame out of range": (video_record, _frame_out_of_range, 'masks[0]["9"]', "the video has 4 frames (0..3)"),
    "bad frame key": (video_record, _bad_frame_key, 'masks[0]["first"]', "non-negative integer"),
    "frame file out of range": (frames_record, _frame_list_out_of_range, 'masks[0]["3"]', "has 3 frames"),
    "no timestamps": (frames_record, _frames_without_timestamps, "timestamps", "3 frame files needs 'timestamps'"),
    "conversations not a list": (image_record, _conversations_not_a_list, "conversations", "non-empty list"),
    "bad role": (image_record, _bad_role, "conversations[2].from", "unknown role 'bot'"),
    "no assistant turn": (image_record, _no_assistant_turn, "conversations", "no gpt (assistant) turn"),
    "value not a string": (image_record, _value_not_a_string, "conversations[2].value", "expected a string"),
    "image tag in an answer": (image_record, _image_tag_in_answer, "conversations[2].value", "cannot hold <image>"),
    "image tag count": (image_record, _too_many_image_tags, "conversations", "2 <image> placeholder(s)"),
    "image and video": (image_record, _image_and_video, "video", "an image or a video, not both"),
    "text only with masks": (text_record, _text_only_with_masks, "masks", "need an image or a video"),
    "masks not a list": (image_record, _masks_not_a_list, "masks", "expected a list"),
}


@pytest.mark.parametrize("name", list(BAD_RECORDS))
def test_bad_record_is_reported(root, name):
    factory, change, field, reason = BAD_RECORDS[name]
    good = factory()
    assert record_problems(good, 7, root) == []
    bad = copy.deepcopy(good)
    change(bad)

    problems = record_problems(bad, 7, root)
    matching = [p for p in problems if p.field == field and reason in p.reason]
    assert matching, f"no problem on {field!r} with {reason!r}; got {[str(p) for p in problems]}"
    assert all(p.index == 7 for p in problems)
    assert str(matching[0]) == f"record 7, field {field}: {matching[0].reason}"
    with pytest.raises(DataRecordError) as raised:
        record_to_sample(bad, 7, root)
    assert raised.value.index == 7 and matching[0] in raised.value.problems


def test_several_frames_are_fine_for_lite(root):
    record = video_record()
    _several_frames_full(record)
    assert record_problems(record, 0, root, variant="lite") == []
    assert [p.field for p in record_problems(record, 0, root, variant="full")] == ["masks[0]"]


def test_region_count_mismatch_never_reaches_the_model(root):
    record = image_record()
    record["masks"].append(rle(box_mask((50, 50, 60, 60))))
    with pytest.raises(DataRecordError, match=r"^record 5, field masks: 3 mask\(s\) for 2 <region>") as raised:
        record_to_sample(record, 5, root, check_files=False)  # even without reading any file
    assert (raised.value.index, raised.value.field) == (5, "masks")
    assert raised.value.reason.startswith("3 mask(s) for 2 <region>")
    copied = pickle.loads(pickle.dumps(raised.value))  # crosses DataLoader worker processes intact
    assert (str(copied), copied.problems) == (str(raised.value), raised.value.problems)
    with pytest.raises(DataValidationError, match="record 0, field masks"):
        RegionConversationDataset([record], root)


# ---------------------------------------------------------------- files, the data set, the CLI


def test_json_and_jsonl_give_the_same_records(tmp_path, root):
    records = [image_record(), video_record(), text_record()]
    (tmp_path / "data.json").write_text(json.dumps(records, indent=2))
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    assert load_records(tmp_path / "data.json") == load_records(tmp_path / "data.jsonl") == records
    assert len(RegionConversationDataset(tmp_path / "data.jsonl", root)) == 3

    (tmp_path / "bad.jsonl").write_text(json.dumps(text_record()) + "\n" + '{"image": "a.png",\n')
    with pytest.raises(ValueError, match=r"bad.jsonl, line 2: invalid JSON"):
        load_records(tmp_path / "bad.jsonl")
    (tmp_path / "bad.json").write_text('[\n{"image": "a.png"},\n{"image" "b.png"}\n]')
    with pytest.raises(ValueError, match=r"bad.json, line 3: invalid JSON"):
        load_records(tmp_path / "bad.json")
    (tmp_path / "object.json").write_text(json.dumps(text_record()))
    with pytest.raises(ValueError, match="expected a JSON list of records"):
        load_records(tmp_path / "object.json")


def bad_records() -> list:
    missing = image_record()
    _missing_image(missing)
    several = video_record()
    _several_frames_full(several)
    return [image_record(), missing, text_record(), several, "not a record"]


def test_skip_invalid_drops_counts_and_logs(root, caplog):
    with caplog.at_level(logging.WARNING, logger="pixelrefer_plugin.training.data"):
        dataset = RegionConversationDataset(bad_records(), root, skip_invalid=True)

    assert len(dataset) == 2 and dataset.record_indices == [0, 2]
    assert dataset[1] == record_to_sample(text_record(), 2, root)
    assert sorted({p.index for p in dataset.skipped}) == [1, 3, 4]
    assert all(isinstance(p, RecordProblem) for p in dataset.skipped)
    for problem in dataset.skipped:
        assert f"skipping {problem}" in caplog.text
    assert f"skipped 3 of 5 record(s) with {len(dataset.skipped)} problem(s)" in caplog.text


def test_without_skip_invalid_the_dataset_lists_every_problem(root):
    records = bad_records()
    with pytest.raises(DataValidationError) as raised:
        RegionConversationDataset(records, root)
    problems = validate_records(records, root)
    assert raised.value.problems == problems and len(problems) >= 3
    lines = str(raised.value).splitlines()
    assert lines[1:] == [str(p) for p in problems]
    assert f"{len(problems)} problem(s) in 3 of 5 record(s)" in lines[0]

    many = [image_record() for _ in range(25)]
    for record in many:
        record["conversations"][2]["from"] = "bot"
    with pytest.raises(DataValidationError) as raised:
        RegionConversationDataset(many, root)
    lines = str(raised.value).splitlines()
    assert len(lines) == 22 and lines[-1] == "... and 5 more" and lines[20].startswith("record 19,")


def test_cli_validate(tmp_path, root, capsys):
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps(r) for r in (image_record(), video_record(), frames_record())))
    assert main(["data", "validate", str(good), "--root", str(root)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "3 record(s), all valid" in err

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(bad_records()))
    assert main(["data", "validate", str(bad), "--root", str(root)]) == 1
    out, err = capsys.readouterr()
    expected = [str(p) for p in validate_records(bad_records(), root)]
    assert out.splitlines() == expected and "record 3, field masks[0]: the full variant" in out
    assert "in 3 of 5 record(s)" in err
    assert main(["data", "validate", str(bad), "--root", str(root), "--skip-invalid"]) == 0

    lite = tmp_path / "lite.json"
    lite.write_text(json.dumps([bad_records()[3]]))
    assert main(["data", "validate", str(lite), "--root", str(root)]) == 1
    assert main(["data", "validate", str(lite), "--root", str(root), "--variant", "lite"]) == 0

    broken = tmp_path / "broken.jsonl"
    broken.write_text("{\n")
    capsys.readouterr()
    assert main(["data", "validate", str(broken), "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pixelrefer data validate: error: ") and "broken.jsonl, line 1: invalid JSON" in err


def test_cli_validate_refuses_an_empty_list_and_a_folder_in_one_line(tmp_path, root, capsys):
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    assert main(["data", "validate", str(empty), "--root", str(root)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "all valid" not in err
    assert err == f"pixelrefer data validate: error: {empty}: holds no record; expected at least one\n"
    assert main(["data", "validate", str(tmp_path), "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err == f"pixelrefer data validate: error: {tmp_path}: is a folder; expected a .json or .jsonl data file\n"


def test_dataset_of_no_record_is_a_data_file_error(root):
    with pytest.raises(DataFileError, match="holds no record") as raised:
        RegionConversationDataset([], root)
    assert raised.value.path == "records" and raised.value.reason == "holds no record; expected at least one"
