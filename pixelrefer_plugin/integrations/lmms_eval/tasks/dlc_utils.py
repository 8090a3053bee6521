# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Hooks of the DLC-Bench tasks (Describe Anything, arXiv 2504.16072; docs/evaluation.md, "DLC-Bench").

The model writes a detailed description of the region. A TEXT-ONLY judge LLM (the `PIXELREFER_JUDGE_*` endpoint,
`pixelrefer_plugin.integrations.lmms_eval.judge`) then answers, from the description alone, each object's
multiple-choice questions (document field `dlc_questions`, JSON text):

    {"recognition": Q, "positive": [Q, ...], "negative": [Q, ...]}
    Q = {"question": str, "options": [str, ...], "score_index": {"<value>": option index, ...}}

`score_index` names, for each score value, the option that earns it (recognition: "1" correct, "0" wrong;
positive: "1" / "0.5" / "0" / "-1" = the description mentions the attribute correctly / partly / not at all /
wrongly; negative: "1" / "0" / "-1" = it does not claim the absent attribute (silent, or says it is absent) /
only vaguely suggests it / claims it, i.e. hallucinates). An option missing from `score_index` scores 0.

Scoring (per object, in order): the recognition question first. If its chosen option scores <= 0 (wrong
recognition), the object's positive and negative questions are NOT sent to the judge and each scores 0 (the cap).
Otherwise every positive and negative question is asked. A reply without a usable option letter is unparsed: it is
logged, counted in `judge_unparsed` and left out of the means (never replaced by a default); an unparsed
recognition reply leaves the whole object out of Pos / Neg (its later questions are not asked).

Metrics (×100): `Pos` = sum of positive-question scores / number of counted positive questions (question-weighted,
over all objects, capped questions included as 0), `Neg` likewise over the negative questions, `Avg` = (Pos + Neg)/2,
`recognition` = correct / parsed recognition answers; `judge_temperature` and `judge_unparsed` (unparsed replies /
judge replies) as in `judged_utils.py`. lmms-eval loads every hook into a fresh module, so each per-document entry
carries everything its aggregations need, including the judge record.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading

from pixelrefer_plugin.integrations.lmms_eval.judge import Judge, JudgeConfig

logger = logging.getLogger(__name__)

_JUDGES: dict[JudgeConfig, Judge] = {}
_JUDGES_LOCK = threading.Lock()
LETTERS = "ABCDEFGHIJ"

DLC_SYSTEM = "You answer multiple-choice questions about a text description of one object in an image."
DLC_INSTRUCTION = (
    "Answer the multiple-choice question based only on the text description of an object in an image below. Do not "
    "use any other knowledge, do not guess what the image shows beyond the text, and do not correct the "
    "description. Output only the letter of exactly one option, with no explanation."
)


def get_judge() -> Judge:
    """The judge configured by the environment (one per configuration); raises `JudgeNotConfiguredError`."""
    config = JudgeConfig.from_env()
    with _JUDGES_LOCK:
        if config not in _JUDGES:
            _JUDGES[config] = Judge(config)
        return _JUDGES[config]


def require_judge(dataset):
    """`process_docs`: fail at task load, before any inference, when no judge is configured."""
    JudgeConfig.from_env()
    return dataset


def option_scores(question: dict) -> list[float]:
    """The score of each option of one question (options missing from `score_index` score 0)."""
    scores = [0.0] * len(question["options"])
    for value, index in question["score_index"].items():
        if not 0 <= int(index) < len(scores):
            raise ValueError(f"score_index {value!r} -> {index} is out of range for {question['question']!r}")
        scores[int(index)] = float(value)
    return scores


def judge_prompt(description: str, question: dict) -> str:
    """Instruction, the model's description, the question and its lettered options."""
    options = "\n".join(f"{LETTERS[i]}. {option}" for i, option in enumerate(question["options"]))
    return (
        f"{DLC_INSTRUCTION}\n\nDescription:\n{description}\n\nQuestion:\n{question['question']}\n\n"
        f"Options:\n{options}\n\nAnswer:"
    )


_LEADING = re.compile(r"^\s*[(\[]?([A-J])[)\].:]?(?=\s|$)")
_ANSWER_IS = re.compile(r"(?i:answer)\s*(?:(?i:is)\s*)?:?\s*[(\[]?([A-J])\b")


def parse_choice(reply: str, num_options: int) -> int | None:
    """The option index in a judge reply ("B", "(B)", "B. ...", "Answer: B"); None when there is none in range."""
    match = _LEADING.match(reply) or _ANSWER_IS.search(reply)
    if match is None:
        return None
    index = LETTERS.index(match.group(1))
    return index if index < num_options else None


def _ask(judge: Judge, doc_id: str, kind: str, description: str, question: dict) -> dict:
    reply = judge.ask(DLC_SYSTEM, judge_prompt(description, question), max_tokens=16)
    choice = parse_choice(reply, len(question["options"]))
    score = None if choice is None else option_scores(question)[choice]
    if choice is None:
        logger.warning("document %s (%s): unparsable judge reply %r; left out of the score", doc_id, kind, reply[:200])
    return {"kind": kind, "question": question["question"], "asked": True, "reply": reply, "choice": choice,
            "score": score}  # fmt: skip


def dlc_process_results(doc: dict, results: list[str]) -> dict:
    """Ask the recognition question, then (unless it was answered wrongly or unparsably) every attribute question."""
    judge = get_judge()
    questions = json.loads(doc["dlc_questions"])
    description = results[0]
    doc_id = str(doc["id"])
    answers = [_ask(judge, doc_id, "recognition", description, questions["recognition"])]
    recognition = answers[0]["score"]
    for kind in ("positive", "negative"):
        for question in questions[kind]:
            if recognition is not None and recognition > 0:
                answers.append(_ask(judge, doc_id, kind, description, question))
            else:  # wrong recognition: capped at 0; unparsed recognition: object left out (score None)
                answers.append({"kind": kind, "question": question["question"], "asked": False, "reply": None,
                                "choice": None, "score": None if recognition is None else 0.0})  # fmt: skip
    entry = {"id": doc_id, "prediction": description, "answers": answers, "judge": judge.record()}
    names = ("Pos", "Neg", "Avg", "recognition", "judge_temperature", "judge_unparsed")
    return dict.fromkeys(names, entry)


def _scores(entries: list[dict], kind: str) -> list[float]:
    return [a["score"] for e in entries for a in e["answers"] if a["kind"] == kind and a["score"] is not None]


def _mean_percent(values: list[float], name: str) -> float:
    if not values:
        logger.error("DLC-Bench %s: no judged answer; NaN", name)
        return math.nan
    return 100.0 * sum(values) / len(values)


def _records(entries: list[dict]) -> list[dict]:
    records = {json.dumps(entry["judge"], sort_keys=True) for entry in entries}
    return [json.loads(record) for record in sorted(records)]


def dlc_pos(entries: list[dict]) -> float:
    """Mean positive-question score ×100 (1 / 0.5 / 0 / -1 per question; capped questions count 0)."""
    return _mean_percent(_scores(entries, "positive"), "Pos")


def dlc_neg(entries: list[dict]) -> float:
    """Mean negative-question score ×100 (1 / 0 / -1 per question; capped questions count 0)."""
    return _mean_percent(_scores(entries, "negative"), "Neg")


def dlc_avg(entries: list[dict]) -> float:
    """(Pos + Neg) / 2; logs the judge record and the unparsed count."""
    replies = [a for e in entries for a in e["answers"] if a["asked"]]
    unparsed = sum(a["choice"] is None for a in replies)
    logger.info(
        "DLC-Bench judged by %s over %d objects, %d judge replies (%d unparsed)",
        _records(entries),
        len(entries),
        len(replies),
        unparsed,
    )
    return (dlc_pos(entries) + dlc_neg(entries)) / 2


def dlc_recognition(entries: list[dict]) -> float:
    """Correct recognition answers / parsed recognition answers ×100."""
    return _mean_percent([float(score > 0) for score in _scores(entries, "recognition")], "recognition")


def judge_temperature(entries: list[dict]) -> float:
    """The judge's sampling temperature (the judge model is logged, and stored in every logged sample)."""
    records = _records(entries)
    if len(records) != 1:
        raise ValueError(f"documents were judged with different judge settings: {records}")
    logger.info("judge record: %s", records[0])
    return float(records[0]["judge_temperature"])


def judge_unparsed(entries: list[dict]) -> float:
    """Fraction of judge replies (questions actually asked) whose option could not be parsed."""
    replies = [a for e in entries for a in e["answers"] if a["asked"]]
    return sum(a["choice"] is None for a in replies) / len(replies) if replies else 0.0
