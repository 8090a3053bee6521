# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Hooks of the LLM-judged PixelRefer tasks (Ferret-Bench, DLC-Bench, VideoRefer-Bench-D; docs/evaluation.md).

The judge is any OpenAI-compatible chat endpoint configured by the `PIXELREFER_JUDGE_*` environment variables
(`pixelrefer_plugin.integrations.lmms_eval.judge`). `process_results` raises `JudgeNotConfiguredError` (naming the
variables) when they are missing. lmms-eval loads every `!function` hook into a fresh module, so nothing is shared
between `process_results` and the aggregations: each per-document entry carries its judge record (model, temperature,
base URL), the aggregations log it with `logging.info`, and every task also reports it as the float metric
`judge_temperature` (plus `judge_unparsed`, the fraction of judge replies that could not be parsed, counted as
failures and left out of the score rather than replaced by a default).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading

from pixelrefer_plugin.integrations.lmms_eval import metrics
from pixelrefer_plugin.integrations.lmms_eval.judge import Judge, JudgeConfig

logger = logging.getLogger(__name__)

_JUDGES: dict[JudgeConfig, Judge] = {}
_JUDGES_LOCK = threading.Lock()


def get_judge() -> Judge:
    """The judge configured by the environment (one per configuration); raises `JudgeNotConfiguredError`."""
    config = JudgeConfig.from_env()
    with _JUDGES_LOCK:
        if config not in _JUDGES:
            _JUDGES[config] = Judge(config)
        return _JUDGES[config]


def _question(doc: dict) -> str:
    """The question as the judge reads it: no image / video tags, `<region>` as "the marked region"."""
    text = doc["prompt"]["full"]
    for tag in ("<video>\n", "<image>\n", "<video>", "<image>"):
        text = text.replace(tag, "")
    return text.replace("<region>", "the marked region")


def _records(entries: list[dict]) -> list[dict]:
    records = {json.dumps(entry["judge"], sort_keys=True) for entry in entries}
    return [json.loads(record) for record in sorted(records)]


def _log_judge(task: str, entries: list[dict]) -> None:
    unparsed = sum(entry["scores"] is None for entry in entries)
    logger.info(
        "%s judged by %s over %d documents (%d unparsed replies)", task, _records(entries), len(entries), unparsed
    )


def judge_temperature(entries: list[dict]) -> float:
    """The judge's sampling temperature (the judge model is logged, and stored in every logged sample)."""
    records = _records(entries)
    if len(records) != 1:
        raise ValueError(f"documents were judged with different judge settings: {records}")
    logger.info("judge record: %s", records[0])
    return float(records[0]["judge_temperature"])


def judge_unparsed(entries: list[dict]) -> float:
    """Fraction of documents whose judge reply could not be parsed (left out of the judged score)."""
    return sum(entry["scores"] is None for entry in entries) / len(entries) if entries else 0.0


def _entry(doc: dict, prediction: str, judge: Judge, reply: str, scores: object) -> dict:
    if scores is None:
        logger.warning("document %s: unparsable judge reply %r; left out of the score", doc["id"], reply[:200])
    return {"id": str(doc["id"]), "prediction": prediction, "reply": reply, "scores": scores, "judge": judge.record()}


# --- Ferret-Bench referring reasoning: relative score --------------------------------------------------------------
FERRET_SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
FERRET_INSTRUCTION = (
    "We would like to request your feedback on the performance of two AI assistants in response to the user question "
    "displayed above. The user asks the question about a marked region of an image. For your reference, the visual "
    "content is given as a short context. Please rate the helpfulness, relevance, accuracy and level of detail of "
    "their responses. Each assistant receives an overall score on a scale of 1 to 10, where a higher score indicates "
    "better overall performance.\nPlease first output a single line containing only two values indicating the scores "
    "for Assistant 1 and 2, respectively. The two scores are separated by a space.\nIn the subsequent line, please "
    "provide a comprehensive explanation of your evaluation, avoiding any potential bias and ensuring that the order "
    "in which the responses were presented does not affect your judgment."
)


def ferret_judge_prompt(doc: dict, prediction: str) -> str:
    """LLaVA-Bench / Ferret-Bench style: context, question, reference (Assistant 1) and model (Assistant 2)."""
    return (
        f"[Context]\n{doc.get('context') or ''}\n\n[Question]\n{_question(doc)}\n\n"
        f"[Assistant 1]\n{doc['answer']}\n\n[End of Assistant 1]\n\n"
        f"[Assistant 2]\n{prediction}\n\n[End of Assistant 2]\n\n[System]\n{FERRET_INSTRUCTION}\n\n"
    )


def ferret_process_results(doc: dict, results: list[str]) -> dict:
    """Ask the judge for (reference, model) scores; the same entry feeds every Ferret metric."""
    judge = get_judge()
    reply = judge.ask(FERRET_SYSTEM, ferret_judge_prompt(doc, results[0]), max_tokens=512)
    pair = metrics.parse_pair_scores(reply)
    scores = None if pair is None else {"reference": pair[0], "model": pair[1]}
    entry = _entry(doc, results[0], judge, reply, scores)
    return {"relative_score": entry, "judge_temperature": entry, "judge_unparsed": entry}


def ferret_relative_score(entries: list[dict]) -> float:
    """mean(model) / mean(reference) × 100 over the parsed replies (NaN, logged, when none parsed)."""
    _log_judge("Ferret-Bench", entries)
    judged = [entry["scores"] for entry in entries if entry["scores"] is not None]
    if not judged:
        logger.error("Ferret-Bench: no judge reply could be parsed; relative score is NaN")
        return math.nan
    return metrics.ferret_relative_score([s["model"] for s in judged], [s["reference"] for s in judged])


FERRET_ANSWERS_VARIABLE = "PIXELREFER_FERRET_ANSWERS"


def ferret_process_docs(dataset):
    """Osprey `box_refer_reason.json` records (`question_id`, `image`, `text` with `<region>`, `annotation` with
    `segmentation` polygons and `bbox`) → region documents. The Osprey file has no reference answers: they are read
    from `$PIXELREFER_FERRET_ANSWERS` (JSON list or JSONL of `{"question_id", "text"}`, Ferret-Bench's GPT-4 answers).
    Unverified against the real files (written offline from their documented fields)."""
    JudgeConfig.from_env()  # fail before any inference when no judge is configured
    root = os.environ.get("PIXELREFER_COCO_ROOT")
    answers_path = os.environ.get(FERRET_ANSWERS_VARIABLE)
    if not root or not answers_path:
        raise RuntimeError(
            "set PIXELREFER_COCO_ROOT (COCO val2017 images) and PIXELREFER_FERRET_ANSWERS (Ferret-Bench reference "
            "answers, JSON or JSONL of {question_id, text}) to run pixelrefer_ferret"
        )
    with open(answers_path) as handle:
        text = handle.read().strip()
    records = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines() if line]
    answers = {int(record["question_id"]): record["text"] for record in records}

    def convert(row: dict) -> dict:
        segmentation = row["annotation"]["segmentation"]
        region = {"polygon": segmentation} if isinstance(segmentation, list) else {"rle": segmentation}
        prompt = row["text"]
        return {
            "id": str(row["question_id"]),
            "image": os.path.join(root, row["image"]),
            "video": None,
            "regions": json.dumps([region]),
            "prompt": {"full": prompt, "lite": prompt},
            "answer": answers[int(row["question_id"])],
            "options": [],
            "context": f"The marked region is the box [x, y, w, h] = {row['annotation']['bbox']}.",
        }

    return dataset.map(convert, remove_columns=dataset.column_names)


# --- VideoRefer-Bench-D: SC / AD / TD / HD (0..5) ------------------------------------------------------------------
VIDEOREFER_D_SYSTEM = (
    "You are an expert judge of video object descriptions. You compare a predicted description of one marked object "
    "in a video with a reference description and rate it from 0 to 5 on four dimensions: Subject Correspondence (is "
    "it the same object), Appearance Description (colour, shape, clothing, details), Temporal Description (motion and "
    "actions over time) and Hallucination Detection (5 = nothing invented, 0 = mostly invented)."
)


def videorefer_d_judge_prompt(doc: dict, prediction: str) -> str:
    """Reference and predicted descriptions, then the JSON format instruction the parser expects."""
    reference = doc["answer"][0] if isinstance(doc["answer"], list) else doc["answer"]
    return (
        f"Reference description:\n{reference}\n\nPredicted description:\n{prediction}\n\n"
        f"{metrics.VIDEOREFER_D_FORMAT_INSTRUCTION}"
    )


def videorefer_d_process_results(doc: dict, results: list[str]) -> dict:
    """Ask the judge for the four scores; the same entry feeds every VideoRefer-D metric."""
    judge = get_judge()
    reply = judge.ask(VIDEOREFER_D_SYSTEM, videorefer_d_judge_prompt(doc, results[0]), max_tokens=256)
    entry = _entry(doc, results[0], judge, reply, metrics.parse_videorefer_d_scores(reply))
    names = (*metrics.VIDEOREFER_D_KEYS, "average", "judge_temperature", "judge_unparsed")
    return dict.fromkeys(names, entry)


def _d_mean(entries: list[dict], key: str) -> float:
    judged = [entry["scores"][key] for entry in entries if entry["scores"] is not None]
    return sum(judged) / len(judged) if judged else math.nan


def videorefer_d_sc(entries: list[dict]) -> float:
    return _d_mean(entries, "SC")


def videorefer_d_ad(entries: list[dict]) -> float:
    return _d_mean(entries, "AD")


def videorefer_d_td(entries: list[dict]) -> float:
    return _d_mean(entries, "TD")


def videorefer_d_hd(entries: list[dict]) -> float:
    return _d_mean(entries, "HD")


def videorefer_d_average(entries: list[dict]) -> float:
    """Mean of the four dimension means (0..5) over the parsed replies."""
    _log_judge("VideoRefer-Bench-D", entries)
    return sum(_d_mean(entries, key) for key in metrics.VIDEOREFER_D_KEYS) / len(metrics.VIDEOREFER_D_KEYS)


def require_judge(dataset):
    """`process_docs` of the judged fixture tasks: fail at task load, before any inference, when no judge is set
    (lmms-eval retries `process_results` 5 times, 2 s apart, and wraps its error in `tenacity.RetryError`)."""
    JudgeConfig.from_env()
    return dataset
