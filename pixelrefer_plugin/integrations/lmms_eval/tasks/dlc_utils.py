# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Hooks of the DLC-Bench tasks (Describe Anything, arXiv 2504.16072; docs/evaluation.md, "DLC-Bench").

The model writes a detailed description of the region. A TEXT-ONLY judge LLM (the `PIXELREFER_JUDGE_*` endpoint,
`pixelrefer_plugin.integrations.lmms_eval.judge`) then answers, from the description alone, every question of the
object (document field `dlc_questions`, JSON text: the published `qa.json` entries, recognition question first):

    [{"question": str, "choices": [[choice text, value], ...], "type": "recognition" | "positive" | "negative"}, ...]

Scoring is the public scorer's (`NVlabs/describe-anything: evaluation/eval_model_outputs.py`, in
`protocols.dlc_score_object` / `protocols.dlc_means`): every question is asked; after a wrong recognition answer the
object's values become `min(0, value)`; each object's positive and negative values are averaged, then Pos / Neg are
means over objects and Avg = (Pos + Neg) / 2 (×100). `recognition` is the share of recognised objects (×100);
`judge_temperature` and `judge_unparsed` are those of `judged_utils.py`. lmms-eval loads every hook into a fresh
module, so each per-document entry carries everything its aggregations need, including the judge record.
"""

from __future__ import annotations

import json
import logging

from pixelrefer_plugin.integrations.lmms_eval import protocols
from pixelrefer_plugin.integrations.lmms_eval.judge import shared_judge

logger = logging.getLogger(__name__)


def dlc_process_results(doc: dict, results: list[str]) -> dict:
    """Ask the judge every question of the object (text only, one request per question) and score the replies."""
    judge = shared_judge()
    questions = json.loads(doc["dlc_questions"])
    description = results[0]
    replies = [
        judge.ask("", protocols.dlc_judge_prompt(description, question), max_tokens=protocols.DLC_MAX_TOKENS)
        for question in questions
    ]
    scored = protocols.dlc_score_object(questions, replies)
    if scored["unparsed"]:
        logger.warning("document %s: %d judge replies name no choice; scored 0", doc["id"], scored["unparsed"])
    entry = {
        "id": str(doc["id"]),
        "prediction": description,
        "replies": replies,
        **scored,
        "judge": judge.record(),
        "judge_replies": len(replies),
    }
    names = ("Pos", "Neg", "Avg", "recognition", "judge_temperature", "judge_unparsed")
    return dict.fromkeys(names, entry)


def dlc_pos(entries: list[dict]) -> float:
    """Mean over objects of each object's mean positive value, ×100."""
    return protocols.dlc_means(entries)["Pos"]


def dlc_neg(entries: list[dict]) -> float:
    """Mean over the objects with negative questions of each object's mean negative value, ×100."""
    return protocols.dlc_means(entries)["Neg"]


def dlc_avg(entries: list[dict]) -> float:
    """(Pos + Neg) / 2; logs the judge record and the unparsed count."""
    logger.info(
        "DLC-Bench judged by %s over %d objects, %d judge replies (%d naming no choice)",
        sorted({json.dumps(entry["judge"], sort_keys=True) for entry in entries}),
        len(entries),
        sum(entry["judge_replies"] for entry in entries),
        sum(entry["unparsed"] for entry in entries),
    )
    return protocols.dlc_means(entries)["Avg"]


def dlc_recognition(entries: list[dict]) -> float:
    """Share of objects whose recognition question was answered "Yes", ×100."""
    return 100.0 * sum(entry["recognition"] for entry in entries) / len(entries) if entries else float("nan")
