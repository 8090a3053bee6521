# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The LLM-judged and video fixture tasks, run in-process through lmms-eval with the tiny PixelRefer checkpoint.

A paid LLM judge cannot run here, so the judge is FAKED: a real OpenAI-compatible HTTP server on 127.0.0.1 (in a
thread) returns canned replies chosen from the reference answer in each judge prompt. The tests therefore check the
plumbing (judge configuration, request contents, reply parsing, aggregation, recorded judge settings), never a real
judged score; the expected metric values below are computed by hand from the canned replies.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_judge import FakeJudgeServer

from pixelrefer_plugin.integrations.lmms_eval.judge import JudgeNotConfiguredError

pytestmark = pytest.mark.timeout(300)

JUDGE_VARS = (
    "PIXELREFER_JUDGE_BASE_URL",
    "PIXELREFER_JUDGE_MODEL",
    "PIXELREFER_JUDGE_API_KEY",
    "PIXELREFER_JUDGE_TEMPERATURE",
    "OPENAI_API_KEY",
)
JUDGE_MODEL = "fake-judge-model"
JUDGE_TEMPERATURE = 0.3

# Ferret: keyed by the shape in the reference answer (Assistant 2; the model's answer is Assistant 1, as in PixelRefer's
# script). Fixture documents 0..3 are square, circle, triangle, square, so the parsed (model, reference) pairs are
# (6, 8), (9, 10), (6, 8) and one reply is unparsable ("9, 10 " has the trailing space the public parser fails on):
# relative = mean(6, 9, 6) / mean(8, 10, 8) x 100 = 7 / (26 / 3) x 100 = 2100 / 26.
FERRET_REPLIES = {"square": "6 8\nAssistant 1 is vaguer.", "circle": "9, 10 \nClose.", "triangle": "I cannot rate."}
# VideoRefer-D, in the public system prompt's reply format, keyed by the direction in the reference; fixture
# documents 0..3 move left, right, up, down. "up" lacks TD, "down" is JSON (not read by the public parser).
D_REPLIES = {
    "left": "1. Subject Correspondence: 4\nExplanation: same.\n2. Appearance Description: 3\nExplanation: ok.\n"
    "3. Temporal Description: 2\nExplanation: ok.\n4. Hallucination Detection: 5\nExplanation: none.",
    "right": "1. Subject Correspondence: 5\n2. Appearance Description: 5\n3. Temporal Description: 4\n"
    "4. Hallucination Detection: 3",
    "up": "1. Subject Correspondence: 3\n2. Appearance Description: 1\n4. Hallucination Detection: 4",
    "down": '{"SC": 3, "AD": 1, "TD": 0, "HD": 4}',
}
EXPECTED = {
    "pixelrefer_ferret_fixture": {
        "relative_score,none": 2100 / 26,
        "judge_temperature,none": JUDGE_TEMPERATURE,
        "judge_unparsed,none": 0.25,
    },
    # each dimension over the replies holding it: SC (4+5+3)/3, AD (3+5+1)/3, TD (2+4)/2, HD (5+3+4)/3;
    # average (4+3+3+4)/4; "up" and "down" lack a dimension
    "pixelrefer_videorefer_d_fixture": {
        "SC,none": 4.0,
        "AD,none": 3.0,
        "TD,none": 3.0,
        "HD,none": 4.0,
        "average,none": 3.5,
        "judge_temperature,none": JUDGE_TEMPERATURE,
        "judge_unparsed,none": 0.5,
    },
}


def canned_reply(user: str) -> str:
    """The fake judge's answer to one judge prompt."""
    ferret = re.search(r"\[Assistant 2\]\n(.*?)\n\n\[End of Assistant 2\]", user, re.S)
    if ferret is not None:
        return next(reply for shape, reply in FERRET_REPLIES.items() if shape in ferret.group(1))
    reference = re.search(r"##Correct answer: (.*?)\n", user)
    if reference is not None:
        return next(reply for direction, reply in D_REPLIES.items() if f" {direction} " in reference.group(1))
    return "unexpected prompt"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint (each run gets its own wrapper: lmms-eval's clean() releases the model after a run)."""
    from pixelrefer_plugin.presets import build_preset

    return Path(build_preset("pixelrefer-tiny", tmp_path_factory.mktemp("tiny") / "ckpt"))


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


def evaluate(task_dir: Path, checkpoint: Path, task: str, limit: int = 4) -> dict:
    from lmms_eval import evaluator
    from lmms_eval.tasks import TaskManager

    from pixelrefer_plugin.integrations.lmms_eval.model import PixelReferChat

    model = PixelReferChat(pretrained=str(checkpoint), device="cpu", batch_size=4)
    manager = TaskManager("WARNING", include_path=str(task_dir), include_defaults=False, model_name="pixelrefer")
    return evaluator.simple_evaluate(model=model, tasks=[task], task_manager=manager, limit=limit, log_samples=True)


def documents(task_dir: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (task_dir / "fixtures" / f"{name}.jsonl").read_text().splitlines()]


def test_fixture_documents(task_dir: Path) -> None:
    ferret = documents(task_dir, "ferret")
    assert [doc["answer"].rstrip(".").split()[-1] for doc in ferret[:4]] == ["square", "circle", "triangle", "square"]
    assert (
        ferret[0]["prompt"]["lite"] == "There is 1 region in the image: <region> What colour and shape is the object ?"
    )
    for name in ("videorefer_d", "hc_stvg"):
        docs = documents(task_dir, name)
        assert len(docs) == 8 and all(Path(doc["video"]).exists() and doc["image"] is None for doc in docs)
        assert all(json.loads(doc["regions"])[0]["frame"] == 4 for doc in docs)
    assert [doc["answer"].split()[5] for doc in documents(task_dir, "videorefer_d")[:4]] == [
        "left",
        "right",
        "up",
        "down",
    ]


@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_judged_fixture_task(task_dir: Path, model: Path, judge_server: FakeJudgeServer, task: str) -> None:
    results = evaluate(task_dir, model, task)
    metrics = results["results"][task]
    for key, expected in EXPECTED[task].items():
        assert isinstance(metrics[key], float) and math.isclose(metrics[key], expected, rel_tol=1e-9), (key, metrics)
    assert len(judge_server.requests) == 4
    assert {r["model"] for r in judge_server.requests} == {JUDGE_MODEL}
    assert {r["temperature"] for r in judge_server.requests} == {JUDGE_TEMPERATURE}
    samples = results["samples"][task]
    record = samples[0][next(iter(EXPECTED[task])).split(",")[0]]["judge"]
    assert record == {
        "judge_model": JUDGE_MODEL,
        "judge_temperature": JUDGE_TEMPERATURE,
        "judge_base_url": judge_server.base_url,
    }
    prompt = judge_server.requests[0]["messages"][-1]["content"]
    if task == "pixelrefer_ferret_fixture":
        head = "[Context]\\{context}\n\n[Question]\n{judge_question}\n\n"
        doc = next(d for d in documents(task_dir, "ferret") if prompt.startswith(head.format(**d)))
        assert re.fullmatch(
            r"What colour and shape is the object \[(0\.\d{3}, ){3}0\.\d{3}\]\?", doc["judge_question"]
        )
        assert f"[Assistant 2]\n{doc['answer']}\n\n[End of Assistant 2]" in prompt
        assert "spatial correspondence, helpfulness" in prompt  # ml-ferret's refer_reason rule
    else:
        assert prompt.startswith("##Correct answer: A ") and "\n##Predicted answer: " in prompt
        assert judge_server.requests[0]["messages"][0]["content"].startswith("You are an advanced intelligent")
    assert "<region>" not in prompt


def test_judged_task_without_judge_fails_naming_the_variables(
    task_dir: Path, model: Path, clean_env: pytest.MonkeyPatch
) -> None:
    """Hooks raise JudgeNotConfiguredError; through lmms-eval the judged tasks fail at load (before inference), wrapped
    by lmms-eval's tenacity retry (5 attempts, 2 s apart) in a RetryError caused by it."""
    import importlib.util

    import tenacity

    spec = importlib.util.spec_from_file_location("pixelrefer_judged_utils", task_dir / "judged_utils.py")
    judged_utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(judged_utils)
    doc = documents(task_dir, "ferret")[0]
    for hook in (judged_utils.ferret_process_results, judged_utils.videorefer_d_process_results):
        with pytest.raises(JudgeNotConfiguredError) as info:
            hook(doc, ["a red square"])
        for name in ("PIXELREFER_JUDGE_MODEL", "PIXELREFER_JUDGE_BASE_URL", "PIXELREFER_JUDGE_API_KEY"):
            assert name in str(info.value)
    with pytest.raises((JudgeNotConfiguredError, tenacity.RetryError)) as info:
        evaluate(task_dir, model, "pixelrefer_ferret_fixture", limit=1)
    error = info.value if isinstance(info.value, JudgeNotConfiguredError) else info.value.last_attempt.exception()
    assert isinstance(error, JudgeNotConfiguredError) and "PIXELREFER_JUDGE_MODEL" in str(error)


def test_hc_stvg_fixture_task(task_dir: Path, model: Path, judge_server: FakeJudgeServer) -> None:
    task = "pixelrefer_hc_stvg_fixture"
    results = evaluate(task_dir, model, task)
    for key in ("Bleu_4,none", "METEOR,none", "ROUGE_L,none", "CIDEr,none"):
        assert isinstance(results["results"][task][key], float), key
    assert judge_server.requests == []  # caption metrics only, no judge
