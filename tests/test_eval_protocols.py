# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The published judge protocols (`pixelrefer_plugin.integrations.lmms_eval.protocols`): prompt texts, reply parsing
and averaging, checked against numbers computed by hand in the comments.

The prompt texts are pinned by the SHA-256 of the published files they copy, computed from those files:
apple/ml-ferret `ferret/eval/ferret_gpt4_data/rule.json` (`refer_reason.prompt`), PixelRefer
`evaluation/videorefer_bench_d/system.txt` (the file's bytes) and NVlabs/describe-anything
`evaluation/eval_model_outputs.py` (`prompt_eval`). The replay tests feed recorded-style judge replies (the reply
styles found in the public judges' outputs) through the task hooks, with the paid judge FAKED by the local server of
`tests/fake_judge.py`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_judge import FakeJudgeServer
from helpers import load_task_module

from pixelrefer_plugin.integrations.lmms_eval import protocols

PUBLISHED_SHA256 = {
    "FERRET_REFER_REASON_RULE": "5c26247312beca5cb5f6f418b5b06a7ac687527e03d69ce810418347c933f4ca",
    "VIDEOREFER_D_SYSTEM": "39596092750e8982c35c54f2ac0116772741f116410f99f5e4d7d051b9d3b088",
    "DLC_PROMPT": "611f2a3ee5ce49d153324d6283f282f6fe21bfa9ea5606fa1e5ce96b96d96514",
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_SHA256))
def test_prompt_texts_are_the_published_ones(name: str) -> None:
    assert hashlib.sha256(getattr(protocols, name).encode()).hexdigest() == PUBLISHED_SHA256[name]


# --- Ferret-Bench -------------------------------------------------------------------------------------------------
def test_ferret_lite_question_puts_the_region_first() -> None:
    text = "What might be the purpose of the object <region> on the train?"
    assert protocols.ferret_lite_question(text, "reason") == (
        "There is 1 region in the image: <region> What might be the purpose of the object  on the train?"
    )
    assert protocols.ferret_lite_question(text, "desc") == text  # only `reason` records are rewritten


def test_ferret_judge_prompt_is_model_first_with_context_and_box_question() -> None:
    prompt = protocols.ferret_judge_prompt(
        context="Objects:\nObject 0 : cup at [0.100, 0.200, 0.300, 0.400].",
        question="What is the object [0.100, 0.200, 0.300, 0.400] for?",
        prediction="It holds tea.",
        reference="The cup [0.100, 0.200, 0.300, 0.400] holds tea.[1]",
    )
    assert prompt == (
        "[Context]\\Objects:\nObject 0 : cup at [0.100, 0.200, 0.300, 0.400].\n\n"
        "[Question]\nWhat is the object [0.100, 0.200, 0.300, 0.400] for?\n\n"
        "[Assistant 1]\nIt holds tea.\n\n[End of Assistant 1]\n\n"
        "[Assistant 2]\nThe cup holds tea.[1]\n\n[End of Assistant 2]\n\n"
        f"[System]\n{protocols.FERRET_REFER_REASON_RULE}\n\n"
    )


# --- VideoRefer-Bench-D -------------------------------------------------------------------------------------------
D_REPLIES = [
    "1. Subject Correspondence: 5\nExplanation: the same dog.\n2. Appearance Description: 4\nExplanation: ok.\n"
    "3. Temporal Description: 3\nExplanation: ok.\n4. Hallucination Detection: 4\nExplanation: ok.",
    "1. Subject Correspondence: 4\n2. Appearance Description: 3.5\n3. Temporal Description: 2\n"
    "4. Hallucination Detection: 5",
    # bold name: SC is not read (the script keys on the exact name); the other three are
    "1. **Subject Correspondence**: 5\n2. Appearance Description: 2\n3. Temporal Description: 1\n"
    "4. Hallucination Detection: 3",
    "Subject Correspondence: 3\nAppearance Description: 3",  # no numbered lines: nothing read
    # "." is matched as a score and does not parse: the script drops the whole reply
    "1. Subject Correspondence: 2\n2. Appearance Description: .\n3. Temporal Description: 4\n"
    "4. Hallucination Detection: 1",
    # a later line of the same name wins: SC 3
    "1. Subject Correspondence: 1\n2. Appearance Description: 1\n3. Temporal Description: 1\n"
    "4. Hallucination Detection: 1\nSummary:\n1. Subject Correspondence: 3",
]
# SC (5 + 4 + 3) / 3 = 4; AD (4 + 3.5 + 2 + 1) / 4 = 2.625; TD (3 + 2 + 1 + 1) / 4 = 1.75; HD (4 + 5 + 3 + 1) / 4 = 3.25
D_EXPECTED = {"SC": 4.0, "AD": 2.625, "TD": 1.75, "HD": 3.25, "average": (4.0 + 2.625 + 1.75 + 3.25) / 4}


def test_videorefer_d_message_and_parsing() -> None:
    assert protocols.videorefer_d_judge_message("A dog runs.", "A dog walks.") == (
        "##Correct answer: A dog runs.\n##Predicted answer: A dog walks.\n"
    )
    parsed = [protocols.videorefer_d_parse_reply(reply) for reply in D_REPLIES]
    assert parsed[0] == {"SC": 5.0, "AD": 4.0, "TD": 3.0, "HD": 4.0}
    assert parsed[2] == {"AD": 2.0, "TD": 1.0, "HD": 3.0}
    assert parsed[3] == {} and parsed[4] == {} and parsed[5]["SC"] == 3.0
    assert protocols.videorefer_d_parse_reply("") == {}


def test_videorefer_d_means_use_every_reply_holding_the_dimension() -> None:
    means = protocols.videorefer_d_dimension_means(protocols.videorefer_d_parse_reply(r) for r in D_REPLIES)
    assert means == pytest.approx(D_EXPECTED, rel=1e-12)
    assert math.isnan(protocols.videorefer_d_dimension_means([{"SC": 1.0}])["AD"])


# --- DLC-Bench ----------------------------------------------------------------------------------------------------
def positive(part: str, colour: str) -> dict:
    return {
        "question": "Which of the following is applicable to the description?",
        "choices": [
            [f"The {part} or the bird is not mentioned.", 0],
            [f"The color of the {part} is not mentioned, but the {part} of the bird is mentioned.", 0.5],
            [f"The color of the {part} is mentioned in the description but is not {colour}.", -1],
            [f"The color of the {part} is mentioned in the description and is {colour}.", 1],
        ],
        "type": "positive",
    }


def negative(thing: str) -> dict:
    return {
        "question": "Which of the following is applicable to the description?",
        "choices": [
            [f"The {thing} are not mentioned in the description.", 1],
            [f"The {thing} are mentioned in the description.", -1],
        ],
        "type": "negative",
    }


RECOGNITION = protocols.dlc_recognition_question("wild bird", plural=False, with_article="a wild bird")

# Six objects: (questions after the recognition question, the judge's replies in order, recognition first).
DLC_OBJECTS = [
    # recognised; positives 1, 0.5; negatives 1, -1 -> pos 0.75, neg 0
    (
        [positive("wing", "grey"), positive("tail", "brown"), negative("boats"), negative("chimneys")],
        ["A. Yes", "D. The color of the wing is mentioned in the description and is grey.", "B", "A", "B"],
    ),
    # not recognised: min(0, .) -> positives 0, -1; negatives 0, -1 -> pos -0.5, neg -0.5
    (
        [positive("wing", "grey"), positive("tail", "brown"), negative("boats"), negative("chimneys")],
        ["B. No", "D", "C", "A", "B"],
    ),
    # recognised; "Maybe" names no choice (0) and "A" is "not mentioned" (0); no negatives -> pos 0, neg None
    ([positive("wing", "grey"), positive("tail", "brown")], ["Yes", "Maybe", "A"]),
    # recognised; -> pos 1, neg 1
    ([positive("beak", "red"), negative("boats")], ["A", "d", "A. The boats are not mentioned in the description."]),
    # "Unclear." names no choice: taken as a wrong recognition -> positive min(0, 1) = 0, negative -1
    ([positive("beak", "red"), negative("boats")], ["Unclear.", "D", "B"]),
    # recognised; positives -1, 0.5, 1; negatives 1, 1, 1 -> pos 1/6, neg 1
    (
        [positive("wing", "grey"), positive("tail", "brown"), positive("beak", "red")]
        + [negative("boats"), negative("chimneys"), negative("bridges")],
        ["A", "C. The color of the wing is mentioned in the description but is not grey.", "B", "D", "A", "A", "A"],
    ),
]
# Per object, as published: Pos = (3/4 - 1/2 + 0 + 1 + 0 + 1/6) / 6 = 17/72, Neg over the five objects with negative
# questions = (0 - 1/2 + 1 - 1 + 1) / 5 = 1/10. (Averaging per question instead would give Pos = 1.75 / 13.)
DLC_EXPECTED = {"Pos": 100 * 17 / 72, "Neg": 10.0, "Avg": (100 * 17 / 72 + 10.0) / 2}


def test_dlc_judge_prompt() -> None:
    prompt = protocols.dlc_judge_prompt("A small grey bird.", positive("wing", "grey"))
    assert prompt.startswith("Answer the multiple-choice question based on the text description of an object")
    assert prompt.endswith(
        "The description is:\nA small grey bird.\n\nFrom the description above, please answer the following "
        "question with one of the choices:\nWhich of the following is applicable to the description?\n"
        "A. The wing or the bird is not mentioned.\n"
        "B. The color of the wing is not mentioned, but the wing of the bird is mentioned.\n"
        "C. The color of the wing is mentioned in the description but is not grey.\n"
        "D. The color of the wing is mentioned in the description and is grey.\n"
    )
    assert RECOGNITION["question"] == (
        "Is it likely that the object in the description is a wild bird or an object of a similar type? Again, It "
        "does not have to be an exact match."
    )
    plural = protocols.dlc_recognition_question("scissors", plural=True, with_article="a scissors")
    assert plural["question"].startswith("Is it likely that the objects in the description are scissors or ")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("A", 0), ("b", 1), ("B. No", 1), ("yes", 0), ("  No  ", 1),
        ("I am not sure", 1),  # "no" occurs in "not": one choice occurs in the reply, as the script reads it
        ("The answer is Yes, not no", 1),  # both occur: the one found last wins ("no", first found inside "not")
        ("e", 0),  # the reply occurs in a choice ("yes")
        ("Unclear.", None), ("", None), ("z", None),
    ],
)  # fmt: skip
def test_dlc_parse_answer_recognition(reply: str, expected: int | None) -> None:
    assert protocols.dlc_parse_answer(reply, ["Yes", "No"]) == expected


def test_dlc_score_object_keeps_penalties_after_a_wrong_recognition() -> None:
    questions, replies = DLC_OBJECTS[1]
    scored = protocols.dlc_score_object([RECOGNITION, *questions], replies)
    assert scored["recognition"] is False
    assert [answer["value"] for answer in scored["answers"]] == ["incorrect", 0.0, -1.0, 0.0, -1.0]
    assert (scored["pos"], scored["neg"], scored["unparsed"]) == (-0.5, -0.5, 0)
    with pytest.raises(ValueError, match="recognition question"):
        protocols.dlc_score_object(questions, replies[1:])


def test_dlc_means_average_per_object() -> None:
    scored = [protocols.dlc_score_object([RECOGNITION, *qs], replies) for qs, replies in DLC_OBJECTS]
    assert [s["pos"] for s in scored] == pytest.approx([0.75, -0.5, 0.0, 1.0, 0.0, 1 / 6])
    assert [s["neg"] for s in scored] == [0.0, -0.5, None, 1.0, -1.0, 1.0]
    assert [s["unparsed"] for s in scored] == [0, 0, 1, 0, 1, 0]
    assert protocols.dlc_means(scored) == pytest.approx(DLC_EXPECTED, rel=1e-12)


# --- replay through the task hooks, the judge faked ---------------------------------------------------------------
@pytest.fixture
def replay_judge(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeJudgeServer, dict[str, str]]]:
    """A fake judge answering each prompt from `replies` (prompt -> reply), set up through the environment."""
    replies: dict[str, str] = {}
    for name in ("PIXELREFER_JUDGE_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with FakeJudgeServer(lambda prompt: replies[prompt]).running() as server:
        monkeypatch.setenv("PIXELREFER_JUDGE_BASE_URL", server.base_url)
        monkeypatch.setenv("PIXELREFER_JUDGE_MODEL", "replay-judge")
        monkeypatch.setenv("PIXELREFER_JUDGE_TEMPERATURE", "0")
        monkeypatch.setenv("PIXELREFER_JUDGE_TIMEOUT", "10")
        yield server, replies


def test_dlc_replay_through_the_hooks(task_dir: Path, replay_judge) -> None:
    server, replies = replay_judge
    dlc_utils, judged_utils = load_task_module(task_dir, "dlc_utils"), load_task_module(task_dir, "judged_utils")
    entries = []
    for index, (questions, recorded) in enumerate(DLC_OBJECTS):
        description = f"Description of object {index}."
        questions = [RECOGNITION, *questions]
        replies.update(
            {protocols.dlc_judge_prompt(description, q): r for q, r in zip(questions, recorded, strict=True)}
        )
        doc = {"id": str(index), "dlc_questions": json.dumps(questions)}
        entries.append(dlc_utils.dlc_process_results(doc, [description])["Pos"])
    assert dlc_utils.dlc_pos(entries) == pytest.approx(DLC_EXPECTED["Pos"], rel=1e-12)
    assert dlc_utils.dlc_neg(entries) == pytest.approx(DLC_EXPECTED["Neg"], rel=1e-12)
    assert dlc_utils.dlc_avg(entries) == pytest.approx(DLC_EXPECTED["Avg"], rel=1e-12)
    assert dlc_utils.dlc_recognition(entries) == pytest.approx(100 * 4 / 6)  # objects 1 and 4 not recognised
    assert judged_utils.judge_unparsed(entries) == pytest.approx(2 / 26)  # every question asked: 26 replies
    assert judged_utils.judge_temperature(entries) == 0.0
    assert len(server.requests) == 26
    for request in server.requests:  # one user message, no system message, temperature 0, max_tokens 300
        assert [m["role"] for m in request["messages"]] == ["user"]
        assert (request["temperature"], request["max_tokens"]) == (0.0, 300)


def test_videorefer_d_replay_through_the_hooks(task_dir: Path, replay_judge) -> None:
    server, replies = replay_judge
    judged_utils = load_task_module(task_dir, "judged_utils")
    entries = []
    for index, recorded in enumerate(D_REPLIES):
        doc = {"id": str(index), "answer": f"Reference {index}."}
        replies[protocols.videorefer_d_judge_message(doc["answer"], f"Prediction {index}.")] = recorded
        entries.append(judged_utils.videorefer_d_process_results(doc, [f"Prediction {index}."])["SC"])
    hooks_means = {
        "SC": judged_utils.videorefer_d_sc(entries),
        "AD": judged_utils.videorefer_d_ad(entries),
        "TD": judged_utils.videorefer_d_td(entries),
        "HD": judged_utils.videorefer_d_hd(entries),
        "average": judged_utils.videorefer_d_average(entries),
    }
    assert hooks_means == pytest.approx(D_EXPECTED, rel=1e-12)
    assert judged_utils.judge_unparsed(entries) == pytest.approx(3 / 6)  # replies 2, 3 and 4 lack a dimension
    assert {tuple(m["role"] for m in r["messages"]) for r in server.requests} == {("system", "user")}
    assert {r["messages"][0]["content"] for r in server.requests} == {protocols.VIDEOREFER_D_SYSTEM}
