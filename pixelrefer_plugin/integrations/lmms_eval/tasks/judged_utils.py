# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Hooks of the LLM-judged PixelRefer tasks (Ferret-Bench, VideoRefer-Bench-D; DLC-Bench in `dlc_utils.py`).

The judge is any OpenAI-compatible chat endpoint configured by the `PIXELREFER_JUDGE_*` environment variables
(`pixelrefer_plugin.integrations.lmms_eval.judge`); the judge prompts, reply parsing and averaging are the public
scripts' (`pixelrefer_plugin.integrations.lmms_eval.protocols`, docs/evaluation.md). `process_results` raises
`JudgeNotConfiguredError` (naming the variables) when they are missing. lmms-eval loads every `!function` hook into a
fresh module, so nothing is shared between `process_results` and the aggregations: each per-document entry carries
its judge record (model, temperature, base URL), its count of judge replies and of unparsed ones; the aggregations
log the record with `logging.info`, and every judged task reports the float metrics `judge_temperature` and
`judge_unparsed` (these two aggregations serve the DLC-Bench tasks too).
"""

from __future__ import annotations

import json
import logging
import math

from pixelrefer_plugin.integrations.lmms_eval import metrics, protocols
from pixelrefer_plugin.integrations.lmms_eval.judge import Judge, JudgeConfig, shared_judge

logger = logging.getLogger(__name__)


def _records(entries: list[dict]) -> list[dict]:
    records = {json.dumps(entry["judge"], sort_keys=True) for entry in entries}
    return [json.loads(record) for record in sorted(records)]


def _log_judge(task: str, entries: list[dict]) -> None:
    logger.info(
        "%s judged by %s over %d documents (%d of %d judge replies unparsed)",
        task,
        _records(entries),
        len(entries),
        sum(entry["unparsed"] for entry in entries),
        sum(entry["judge_replies"] for entry in entries),
    )


def judge_temperature(entries: list[dict]) -> float:
    """The judge's sampling temperature (the judge model is logged, and stored in every logged sample)."""
    records = _records(entries)
    if len(records) != 1:
        raise ValueError(f"documents were judged with different judge settings: {records}")
    logger.info("judge record: %s", records[0])
    return float(records[0]["judge_temperature"])


def judge_unparsed(entries: list[dict]) -> float:
    """Fraction of judge replies the protocol could not fully read (see each task's hooks for what that means)."""
    replies = sum(entry["judge_replies"] for entry in entries)
    return sum(entry["unparsed"] for entry in entries) / replies if replies else 0.0


def _entry(doc: dict, prediction: str, judge: Judge, reply: str, scores: object, unparsed: bool) -> dict:
    if unparsed:
        logger.warning("document %s: judge reply not fully readable: %r", doc["id"], reply[:200])
    return {
        "id": str(doc["id"]),
        "prediction": prediction,
        "reply": reply,
        "scores": scores,
        "judge": judge.record(),
        "judge_replies": 1,
        "unparsed": int(unparsed),
    }


# --- Ferret-Bench referring reasoning: relative score --------------------------------------------------------------
def ferret_process_results(doc: dict, results: list[str]) -> dict:
    """Ask the judge for (model, reference) scores (`2.eval_ferret.py`); the same entry feeds every Ferret metric.

    The document gives the judge's `context` and `judge_question` (the question with the region as box coordinates)
    and the reference `answer`. The reply's first line is read by `metrics.parse_pair_scores`; an unreadable reply
    is left out of the score and counted in `judge_unparsed`."""
    judge = shared_judge()
    prompt = protocols.ferret_judge_prompt(doc["context"], doc["judge_question"], results[0], doc["answer"])
    reply = judge.ask(protocols.FERRET_SYSTEM, prompt)
    pair = metrics.parse_pair_scores(reply)
    scores = None if pair is None else {"model": pair[0], "reference": pair[1]}
    entry = _entry(doc, results[0], judge, reply, scores, unparsed=pair is None)
    return {"relative_score": entry, "judge_temperature": entry, "judge_unparsed": entry}


def ferret_relative_score(entries: list[dict]) -> float:
    """mean(model) / mean(reference) × 100 over the parsed replies (NaN, logged, when none parsed)."""
    _log_judge("Ferret-Bench", entries)
    judged = [entry["scores"] for entry in entries if entry["scores"] is not None]
    if not judged:
        logger.error("Ferret-Bench: no judge reply could be parsed; relative score is NaN")
        return math.nan
    return metrics.ferret_relative_score([s["model"] for s in judged], [s["reference"] for s in judged])


# --- VideoRefer-Bench-D: SC / AD / TD / HD (0..5) ------------------------------------------------------------------
def videorefer_d_process_results(doc: dict, results: list[str]) -> dict:
    """Ask the judge with the benchmark's `system.txt` and `##Correct answer` / `##Predicted answer` message; the
    dimensions the reply holds feed each metric (a reply missing one counts in `judge_unparsed`)."""
    judge = shared_judge()
    reference = doc["answer"][0] if isinstance(doc["answer"], list) else doc["answer"]
    reply = judge.ask(protocols.VIDEOREFER_D_SYSTEM, protocols.videorefer_d_judge_message(reference, results[0]))
    scores = protocols.videorefer_d_parse_reply(reply)
    entry = _entry(
        doc, results[0], judge, reply, scores, unparsed=len(scores) < len(protocols.VIDEOREFER_D_DIMENSIONS)
    )
    names = (*protocols.VIDEOREFER_D_DIMENSIONS, "average", "judge_temperature", "judge_unparsed")
    return dict.fromkeys(names, entry)


def _d_means(entries: list[dict]) -> dict[str, float]:
    return protocols.videorefer_d_dimension_means(entry["scores"] for entry in entries)


def videorefer_d_sc(entries: list[dict]) -> float:
    """Subject Correspondence, mean over the replies that hold it."""
    return _d_means(entries)["SC"]


def videorefer_d_ad(entries: list[dict]) -> float:
    """Appearance Description, mean over the replies that hold it."""
    return _d_means(entries)["AD"]


def videorefer_d_td(entries: list[dict]) -> float:
    """Temporal Description, mean over the replies that hold it."""
    return _d_means(entries)["TD"]


def videorefer_d_hd(entries: list[dict]) -> float:
    """Hallucination Detection, mean over the replies that hold it."""
    return _d_means(entries)["HD"]


def videorefer_d_average(entries: list[dict]) -> float:
    """Mean of the four dimension means (0..5)."""
    _log_judge("VideoRefer-Bench-D", entries)
    return _d_means(entries)["average"]


def require_judge(dataset):
    """`process_docs` of the judged fixture tasks: fail at task load, before any inference, when no judge is set
    (lmms-eval retries `process_results` 5 times, 2 s apart, and wraps its error in `tenacity.RetryError`)."""
    JudgeConfig.from_env()
    return dataset
