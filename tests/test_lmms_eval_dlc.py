# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The DLC-Bench fixture task, run in-process through lmms-eval with the tiny PixelRefer checkpoint.

The paid LLM judge is FAKED: a real OpenAI-compatible HTTP server on 127.0.0.1 (tests/fake_judge.py) returns canned
replies chosen from the question text in each judge prompt. The tests check the plumbing (judge configuration,
text-only requests, choice parsing, the penalties kept after a wrong recognition, per-object averaging, unparsed
replies, recorded judge settings), never a real judged score; the expected values are computed by hand from the
canned replies.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from fake_judge import FakeJudgeServer
from helpers import load_task_module

from pixelrefer_plugin.integrations.lmms_eval.judge import JudgeNotConfiguredError

pytestmark = pytest.mark.timeout(300)

TASK = "pixelrefer_dlc_bench_fixture"
JUDGE_VARS = (
    "PIXELREFER_JUDGE_BASE_URL",
    "PIXELREFER_JUDGE_MODEL",
    "PIXELREFER_JUDGE_API_KEY",
    "PIXELREFER_JUDGE_TEMPERATURE",
    "OPENAI_API_KEY",
)
JUDGE_MODEL = "fake-dlc-judge"
JUDGE_TEMPERATURE = 0.2

# Canned (fake) judge replies, keyed by (question kind, target shape). Fixture documents 0..3 target a square, circle,
# triangle and square. Choice values (fixtures.dlc_fixture_questions): colour A/B/C/D = 0/0.5/-1/1, side A/B/C =
# 0/-1/1, pattern A/B = 1/-1. Every question is asked, also after a wrong recognition.
REPLIES = {
    ("recognition", "square"): "A. Yes",
    ("recognition", "circle"): "Yes",
    ("recognition", "triangle"): "B. No",  # wrong recognition: the triangle's values become min(0, value)
    ("colour", "square"): "D",  # 1
    ("colour", "circle"): "B",  # 0.5
    ("colour", "triangle"): "C",  # -1 (kept)
    ("side", "square"): "B",  # -1
    ("side", "circle"): "I cannot tell.",  # names no choice: 0, counted in judge_unparsed
    ("side", "triangle"): "C",  # 1 -> 0
    ("pattern", "square"): "A",  # 1
    ("pattern", "circle"): "B",  # -1
    ("pattern", "triangle"): "A",  # 1 -> 0
}
# Per object (as published): square pos (1 - 1)/2 = 0, neg 1 (x2 documents); circle pos (0.5 + 0)/2 = 0.25, neg -1;
# triangle pos (-1 + 0)/2 = -0.5, neg 0. Pos = (0 + 0.25 - 0.5 + 0)/4, Neg = (1 - 1 + 0 + 1)/4.
POS = 100 * -0.25 / 4
NEG = 100 * 1 / 4
EXPECTED = {
    "Pos,none": POS,
    "Neg,none": NEG,
    "Avg,none": (POS + NEG) / 2,
    "recognition,none": 75.0,  # 3 of 4 recognised
    "judge_temperature,none": JUDGE_TEMPERATURE,
    "judge_unparsed,none": 1 / 16,  # 4 questions x 4 documents, one reply names no choice
}
KINDS = {
    "Is it likely that the object": "recognition",
    "colour of": "colour",
    "place the": "side",
    "patterned": "pattern",
}


def canned_reply(user: str) -> str:
    """The fake judge's answer to one judge prompt, chosen from its question."""
    match = re.search(r"with one of the choices:\n(.*?)\n", user)
    if match is None:
        return "unexpected prompt"
    question = match.group(1)
    kind = next(kind for key, kind in KINDS.items() if key in question)
    shape = next(shape for shape in ("square", "circle", "triangle") if shape in question)
    return REPLIES[kind, shape]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint (each run gets its own wrapper: lmms-eval's clean() releases the model after a run)."""
    from pixelrefer_plugin.presets import build_preset

    return Path(build_preset("pixelrefer-tiny", tmp_path_factory.mktemp("tiny") / "ckpt"))


@pytest.fixture(scope="module")
def dlc_utils(task_dir: Path) -> ModuleType:
    """The materialised hook module, loaded by file path as lmms-eval does."""
    return load_task_module(task_dir, "dlc_utils")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in JUDGE_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return monkeypatch


@pytest.fixture
def judge_server(clean_env: pytest.MonkeyPatch) -> Iterator[FakeJudgeServer]:
    clean_env.setenv("NO_PROXY", "127.0.0.1,localhost")
    clean_env.setenv("no_proxy", "127.0.0.1,localhost")
    with FakeJudgeServer(canned_reply).running() as server:
        clean_env.setenv("PIXELREFER_JUDGE_BASE_URL", server.base_url)
        clean_env.setenv("PIXELREFER_JUDGE_MODEL", JUDGE_MODEL)
        clean_env.setenv("PIXELREFER_JUDGE_TEMPERATURE", str(JUDGE_TEMPERATURE))
        clean_env.setenv("PIXELREFER_JUDGE_TIMEOUT", "10")
        yield server


def evaluate(task_dir: Path, checkpoint: Path, limit: int = 4) -> dict:
    from lmms_eval import evaluator
    from lmms_eval.tasks import TaskManager

    from pixelrefer_plugin.integrations.lmms_eval.model import PixelReferChat

    model = PixelReferChat(pretrained=str(checkpoint), device="cpu", batch_size=4)
    manager = TaskManager("WARNING", include_path=str(task_dir), include_defaults=False, model_name="pixelrefer")
    return evaluator.simple_evaluate(model=model, tasks=[TASK], task_manager=manager, limit=limit, log_samples=True)


def documents(task_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (task_dir / "fixtures" / "dlc_bench.jsonl").read_text().splitlines()]


def test_fixture_documents(task_dir: Path) -> None:
    docs = documents(task_dir)
    assert len(docs) == 8
    assert [doc["answer"].split()[2] for doc in docs[:4]] == ["square", "circle", "triangle", "square"]
    for doc in docs:
        assert Path(doc["image"]).exists() and doc["video"] is None and "<region>" in doc["prompt"]["full"]
        questions = json.loads(doc["dlc_questions"])
        assert [q["type"] for q in questions] == ["recognition", "positive", "positive", "negative"]
        assert questions[0]["choices"] == [["Yes", "correct"], ["No", "incorrect"]]
        assert [[value for _, value in q["choices"]] for q in questions[1:]] == [[0, 0.5, -1, 1], [0, -1, 1], [1, -1]]


def test_dlc_fixture_task(task_dir: Path, model: Path, judge_server: FakeJudgeServer) -> None:
    results = evaluate(task_dir, model)
    metrics = results["results"][TASK]
    for key, expected in EXPECTED.items():
        assert isinstance(metrics[key], float) and math.isclose(metrics[key], expected, rel_tol=1e-9), (key, metrics)
    assert len(judge_server.requests) == 16  # every question asked, also after a wrong recognition
    assert {r["model"] for r in judge_server.requests} == {JUDGE_MODEL}
    assert {r["temperature"] for r in judge_server.requests} == {JUDGE_TEMPERATURE}
    for request in judge_server.requests:  # text-only judge: one user message, no image, no region tag
        assert [message["role"] for message in request["messages"]] == ["user"]
        assert isinstance(request["messages"][0]["content"], str) and request["max_tokens"] == 300
        assert "<region>" not in request["messages"][0]["content"]
    samples = sorted(results["samples"][TASK], key=lambda sample: sample["doc_id"])
    entries = [sample["Pos"] for sample in samples]
    assert entries[0]["judge"] == {
        "judge_model": JUDGE_MODEL,
        "judge_temperature": JUDGE_TEMPERATURE,
        "judge_base_url": judge_server.base_url,
    }
    predictions = {entry["prediction"] for entry in entries}
    description = re.compile(r"The description is:\n(.*?)\n\nFrom the description", re.S)
    for request in judge_server.requests:  # the judge reads the model's description, and nothing about the image
        match = description.search(request["messages"][0]["content"])
        assert match is not None and match.group(1) in predictions
    triangle = entries[2]
    assert [a["value"] for a in triangle["answers"]] == ["incorrect", -1.0, 0.0, 0.0]
    assert (triangle["pos"], triangle["neg"], triangle["recognition"]) == (-0.5, 0.0, False)
    circle = entries[1]
    assert circle["answers"][2]["choice"] is None and circle["unparsed"] == 1
    assert circle["replies"][2] == REPLIES["side", "circle"]


def test_dlc_without_judge_fails_naming_the_variables(
    task_dir: Path, model: Path, dlc_utils: ModuleType, clean_env: pytest.MonkeyPatch
) -> None:
    """The hook raises JudgeNotConfiguredError; through lmms-eval the task fails at load (before inference), wrapped
    by lmms-eval's tenacity retry in a RetryError whose last attempt raised it."""
    import tenacity

    doc = documents(task_dir)[0]
    with pytest.raises(JudgeNotConfiguredError) as info:
        dlc_utils.dlc_process_results(doc, ["a yellow square"])
    for name in ("PIXELREFER_JUDGE_MODEL", "PIXELREFER_JUDGE_BASE_URL", "PIXELREFER_JUDGE_API_KEY"):
        assert name in str(info.value)
    with pytest.raises((JudgeNotConfiguredError, tenacity.RetryError)) as info:
        evaluate(task_dir, model, limit=1)
    error = info.value if isinstance(info.value, JudgeNotConfiguredError) else info.value.last_attempt.exception()
    assert isinstance(error, JudgeNotConfiguredError) and "PIXELREFER_JUDGE_MODEL" in str(error)
