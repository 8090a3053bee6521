# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The offline demo: synthetic region questions, the held-out task's scoring, and a reduced training run that must
beat its zeroed-object-token control."""

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelrefer_plugin.demo.trained import COMPLETE, ROWS, DemoResult, band_table, train_demo_model
from pixelrefer_plugin.integrations.lmms_eval.fixtures import write_held_out_documents
from pixelrefer_plugin.integrations.lmms_eval.tasks.synthetic_utils import first_word, process_results
from pixelrefer_plugin.synthetic import COLOURS, HELD_OUT_SEED, generate_samples, held_out_samples, make_clip
from pixelrefer_plugin.synthetic.questions import MIN_AREA_RATIO
from pixelrefer_plugin.training.data import RegionConversationDataset
from pixelrefer_plugin.training.synthetic import write_synthetic_dataset


def _pixels_digest(frames):
    return hashlib.sha1(b"".join(frame.tobytes() for frame in frames)).hexdigest()


def test_answers_follow_the_referred_region():
    """Colour answers are the colour of the masked pixels, shape answers the mask's shape family, larger answers the
    bigger of the two masks; and scenes hold other objects, so the answer depends on the region."""
    seen_other_answer = False
    for sample in generate_samples(60, seed=5, kinds=("colour", "shape", "larger"), video_fraction=0.3):
        frame = sample.frames[sample.frame]
        if sample.kind == "colour":
            (mask,) = sample.masks
            assert (frame[mask] == COLOURS[sample.answer]).all()
            other = frame[~mask & (frame != 245).any(-1)]
            seen_other_answer |= bool(len(other)) and not (other == COLOURS[sample.answer]).all()
        elif sample.kind == "shape":
            (mask,) = sample.masks
            rows, cols = np.nonzero(mask)
            fill = mask.sum() / ((np.ptp(rows) + 1) * (np.ptp(cols) + 1))
            expected = {"square": (0.95, 1.01), "circle": (0.7, 0.85), "triangle": (0.4, 0.65)}[sample.answer]
            assert expected[0] <= fill <= expected[1], (sample.answer, fill)
        else:
            first, second = (int(mask.sum()) for mask in sample.masks)
            larger, smaller = (first, second) if sample.answer == "first" else (second, first)
            assert larger >= MIN_AREA_RATIO * smaller
    assert seen_other_answer


def test_clips_move_without_overlap():
    frames, objects = make_clip(np.random.default_rng(3), num_objects=2, num_frames=4)
    assert len(frames) == len(objects) == 4
    first_centres = [np.argwhere(obj.mask).mean(0) for obj in objects[0]]
    last_centres = [np.argwhere(obj.mask).mean(0) for obj in objects[-1]]
    assert not np.allclose(first_centres, last_centres)
    for frame, per_frame in zip(frames, objects, strict=True):
        assert not (per_frame[0].mask & per_frame[1].mask).any()
        for obj in per_frame:
            assert (frame[obj.mask] == COLOURS[obj.colour]).all()


def test_held_out_scenes_are_not_training_scenes():
    training = {_pixels_digest(s.frames) for s in generate_samples(300, seed=0, kinds=("colour", "shape", "larger"))}
    held_out = {_pixels_digest(s.frames) for s in held_out_samples()}
    assert not training & held_out
    assert HELD_OUT_SEED != 0


def test_generator_rejects_bad_settings():
    with pytest.raises(ValueError, match="kinds="):
        next(generate_samples(1, 0, kinds=("size",)))
    with pytest.raises(ValueError, match="video_fraction"):
        next(generate_samples(1, 0, video_fraction=1.5))


def test_synthetic_dataset_loads_as_training_data(tmp_path):
    """Image and clip records in the published layout pass the training-data validator."""
    path = write_synthetic_dataset(tmp_path, 12, seed=1, kinds=("colour", "shape", "larger"), video_fraction=0.5)
    records = json.loads(path.read_text())
    assert any("video" in r for r in records) and any("image" in r for r in records)
    assert {r["kind"] for r in records} == {"colour", "shape", "larger"}
    assert all(r["conversations"][0]["value"].count("<region>") == len(r["masks"]) for r in records)
    dataset = RegionConversationDataset(path, tmp_path)
    assert len(dataset) == 12


def test_held_out_documents_match_the_samples(tmp_path):
    path = write_held_out_documents(tmp_path, count=12)
    docs = [json.loads(line) for line in path.read_text().splitlines()]
    samples = held_out_samples(12)
    for doc, sample in zip(docs, samples, strict=True):
        assert doc["answer"] == sample.answer and doc["kind"] == sample.kind
        regions = json.loads(doc["regions"])
        assert len(regions) == doc["prompt"]["full"].count("<region>") == len(sample.masks)
        if doc["image"]:
            assert np.array_equal(np.asarray(Image.open(doc["image"])), sample.frames[0])
        else:
            assert doc["prompt"]["full"].startswith("<video>\n") and regions[0]["frame"] == sample.frame


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Red.", "red"),
        ("  second one", "second"),
        ("", ""),
        (None, ""),
        ("3 circles", "circles"),
        ("Yellow!", "yellow"),
    ],
)
def test_first_word(answer, expected):
    assert first_word(answer) == expected


def test_process_results_scores_by_kind():
    assert process_results({"kind": "shape", "answer": "circle", "video": None}, ["Circle."]) == {
        "shape": 1.0,
        "overall": 1.0,
    }
    assert process_results({"kind": "colour", "answer": "red", "video": "a.mp4"}, ["a red one"]) == {
        "video": 0.0,
        "overall": 0.0,
    }
    assert process_results({"kind": "larger", "answer": "first", "video": None}, []) == {"larger": 0.0, "overall": 0.0}


@pytest.mark.timeout(600)
def test_reduced_demo_beats_the_zeroed_object_token_control(tmp_path, monkeypatch):
    """A short training run through the real recipe, trainer and lmms-eval task: the trained model answers colour
    questions about the referred region far better than the same model with its object tokens zeroed; a second run
    reuses the cached model; the picture is written."""
    from pixelrefer_plugin.demo.trained import run_demo

    monkeypatch.setenv("PIXELREFER_TASKS_DIR", str(tmp_path / "tasks"))
    overrides = {
        "training.max_steps": 300,
        "data.synthetic": {"num_records": 2400, "seed": 0, "kinds": ["colour", "shape", "larger"]},
    }
    picture = tmp_path / "demo.png"
    result = run_demo(overrides, picture=picture, limit=48, root=tmp_path / "demo")
    trained, control = result.scores["trained"], result.scores["control"]
    assert trained["colour"] >= control["colour"] + 40, result.table()
    assert trained["overall"] > control["overall"], result.table()
    assert result.train_seconds is not None
    assert Image.open(picture).size[0] > 300

    again = run_demo(overrides, picture=None, limit=8, root=tmp_path / "demo")
    assert again.train_seconds is None and again.model_dir == result.model_dir

    (result.model_dir / COMPLETE).unlink()  # as if stopped after training, before writing the marker
    assert train_demo_model(overrides, tmp_path / "demo") == (result.model_dir, None)
    assert (result.model_dir / COMPLETE).exists()


REPO = Path(__file__).resolve().parents[1]
DOCS_WITH_THE_TABLE = [REPO / "README.md", REPO / "docs" / "demo.md"]
MEASURED_CONDITIONS = REPO / "benchmarks" / "results" / "demo-conditions.json"


def documented_table(doc: Path) -> str:
    """The demo table a doc shows: the lines after `$ make demo` in its code block."""
    block = doc.read_text().split("$ make demo", 1)[1].split("```", 1)[0]
    return "\n".join(block.splitlines()[1:]).strip("\n")


def table_scores(table: str) -> dict[str, dict[str, float]]:
    """`{"trained" | "control" | "chance": {metric: percent}}` read back from a table."""
    metric_of = {title: metric for metric, title in ROWS.items()}
    scores = {"trained": {}, "control": {}, "chance": {}}
    for line in table.splitlines()[2:]:
        title, cells = line[:42].strip(), re.findall(r"(\d+\.\d)%", line[42:])
        for name, cell in zip(scores, cells, strict=True):
            scores[name][metric_of[title]] = float(cell)
    return scores


def render(scores: dict[str, dict[str, float]]) -> str:
    return DemoResult(scores=scores, model_dir=Path("."), picture=None, train_seconds=None).table()


@pytest.mark.parametrize("doc", DOCS_WITH_THE_TABLE, ids=lambda doc: doc.name)
def test_documented_demo_table_is_in_the_demo_output_format(doc):
    table = documented_table(doc)
    assert render(table_scores(table)) == table
    assert table == documented_table(DOCS_WITH_THE_TABLE[0])


def documented_band(doc: Path) -> str:
    """The band table a doc shows: the lines after `$ benchmarks/demo_conditions.py` in its code block."""
    block = doc.read_text().split("$ benchmarks/demo_conditions.py", 1)[1].split("```", 1)[0]
    return "\n".join(block.splitlines()[1:]).strip("\n")


@pytest.fixture(scope="module")
def measured_conditions() -> list[dict]:
    """The conditions `benchmarks/demo_conditions.py --json` measured (committed with the docs that quote them)."""
    return json.loads(MEASURED_CONDITIONS.read_text())


@pytest.mark.parametrize("doc", DOCS_WITH_THE_TABLE, ids=lambda doc: doc.name)
def test_documented_band_is_the_band_of_the_measured_conditions(doc, measured_conditions):
    """The docs show the range over every measured condition, and their one-run table is one of those runs."""
    assert documented_band(doc) == band_table([condition["scores"] for condition in measured_conditions])
    documented = documented_table(doc)
    assert documented in [render(condition["scores"]) for condition in measured_conditions]


def test_the_band_covers_threads_and_kernel_families(measured_conditions):
    """The band is measured as another machine would run the demo: at least 6 conditions, 1 and 2 torch threads, at
    least two CPU kernel families, each condition with every score of the table."""
    assert len(measured_conditions) >= 6
    assert {condition["threads"] for condition in measured_conditions} >= {1, 2}
    assert len({condition["kernels"] for condition in measured_conditions}) >= 2
    for condition in measured_conditions:
        assert set(condition["scores"]["trained"]) == set(condition["scores"]["control"]) == set(ROWS), condition


def test_tests_use_their_own_caches():
    """conftest.py points every cache into a temporary folder before anything is imported: the demo's, the task
    folder's and the hub client's caches are there, never in the home folder of the person running the tests."""
    import huggingface_hub.constants

    from pixelrefer_plugin.demo.trained import demo_root
    from pixelrefer_plugin.runtime import cache_dir

    own = Path(os.environ["XDG_CACHE_HOME"])
    assert own != Path.home() / ".cache" and own.name.startswith("pixelrefer-test-cache-")
    for folder in (
        demo_root(),
        cache_dir("lmms_eval_tasks", "PIXELREFER_TASKS_DIR"),
        Path(huggingface_hub.constants.HF_HUB_CACHE),
    ):
        assert folder.is_relative_to(own), folder


def test_no_test_reads_the_home_folder():
    """No test module names the home folder or the user's cache (a test that needs a cache uses a temporary one)."""
    pattern = re.compile(r"Path\.home\(|expanduser\(|~/\.cache|demo_root\(\)")
    for module in sorted((REPO / "tests").glob("*.py")):
        if module.name in ("conftest.py", Path(__file__).name):
            continue
        assert not pattern.search(module.read_text()), module.name
