# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The published LLM-judge protocols of the region benchmarks: judge prompts, reply parsing and averaging.

Each protocol follows one public scoring script, quirks included, so that a score can sit next to the published
numbers (docs/evaluation.md lists every remaining deviation):

* Ferret-Bench referring reasoning: `alibaba-damo-academy/PixelRefer: PixelRefer/evaluation/ferret_bench/
  2.eval_ferret.py` with apple/ml-ferret's `rule.json` (`refer_reason`) and `context.jsonl`.
* VideoRefer-Bench-D: `PixelRefer/evaluation/videorefer_bench_d/{1.eval_gpt.py, 2.extract_re.py, 3.analyze_score.py,
  system.txt}`.
* DLC-Bench: `NVlabs/describe-anything: evaluation/eval_model_outputs.py` (PixelRefer's `evaluation/dam/eval.py` is
  the same scorer with another judge).

The judge itself (any OpenAI-compatible endpoint) is `judge.py`; the lmms-eval hooks are `tasks/judged_utils.py` and
`tasks/dlc_utils.py`.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ...runtime import REGION_PLACEHOLDER

logger = logging.getLogger(__name__)

__all__ = [
    "DLC_PROMPT",
    "FERRET_REFER_REASON_RULE",
    "FERRET_SYSTEM",
    "VIDEOREFER_D_DIMENSIONS",
    "VIDEOREFER_D_SYSTEM",
    "dlc_judge_prompt",
    "dlc_means",
    "dlc_parse_answer",
    "dlc_recognition_question",
    "dlc_score_object",
    "ferret_judge_prompt",
    "ferret_lite_question",
    "strip_box_coordinates",
    "videorefer_d_dimension_means",
    "videorefer_d_judge_message",
    "videorefer_d_parse_reply",
]

# --------------------------------------------------------------------------------------------------------------------
# Ferret-Bench referring reasoning
# --------------------------------------------------------------------------------------------------------------------

FERRET_SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
"""System message of `2.eval_ferret.py`."""

FERRET_ROLE = "Assistant"
FERRET_REFER_REASON_RULE = (
    "We would like to request your feedback on the performance of two AI assistants in response to the user question "
    "displayed above. The user asks the question about specific region of an image. For your reference, the visual "
    "content in the image is represented with five descriptive sentences describing the same image. In addition, "
    "specific object locations within the image are given, along with detailed coordinates. These coordinates are in "
    "the form of bounding boxes, represented as (x1, y1, x2, y2) with floating numbers ranging from 0 to 1. These "
    "values correspond to the top left x, top left y, bottom right x, and bottom right y. Also, the relationships "
    "between pairs of objects are provided, in the format of object -> relationship -> subject, where the "
    "object/subject are indexed by object id from previous object lists as well as the object names. Also, several "
    "region description are given, each describing a box region of image, with detailed coordinates. \nPlease rate "
    "the spatial correspondence, helpfulness, relevance, accuracy, level of details of their responses. Each "
    "assistant receives an overall score on a scale of 1 to 10, where a higher score indicates better overall "
    "performance.\nPlease first output a single line containing only two values indicating the scores for Assistant "
    "1 and 2, respectively. The two scores are separated by a space.\nIn the subsequent line, please provide a "
    "comprehensive explanation of your evaluation, avoiding any potential bias and ensuring that the order in which "
    "the responses were presented does not affect your judgment."
)
"""The `refer_reason` prompt of apple/ml-ferret's `ferret/eval/ferret_gpt4_data/rule.json`, verbatim."""

FERRET_LITE_PREFIX = "There is 1 region in the image: <region> "
_BRACKETED = re.compile(r"\[.*?\]")


def ferret_lite_question(text: str, category: str) -> str:
    """PixelRefer-Lite's question (`pixelrefer_lite/infer_ferret.py`): for `reason` records the region comes first,
    `'There is 1 region in the image: <region> '`, and the question's own `<region>` is removed (the full model gets
    the question as it is)."""
    return FERRET_LITE_PREFIX + text.replace(REGION_PLACEHOLDER, "") if category == "reason" else text


def strip_box_coordinates(answer: str) -> str:
    """`postprocess_answer(answer, "refer_reason")` of the public script: every `" [..]"` (a space, then bracketed
    box coordinates) is removed from the GPT-4 reference answer; brackets without a space before them stay."""
    for match in _BRACKETED.findall(answer):
        answer = answer.replace(" " + match, "")
    return answer


def ferret_judge_prompt(context: str, question: str, prediction: str, reference: str) -> str:
    """The judge's user message, as `2.eval_ferret.py` builds it.

    Args:
        context: the image's `text` in ml-ferret's `context.jsonl` (objects, relationships, region descriptions and
            captions, boxes as normalised `[x1, y1, x2, y2]`).
        question: the question of ml-ferret's `question.jsonl`, the region given by its box coordinates.
        prediction: the model's answer: Assistant 1 (the model comes first in PixelRefer's script).
        reference: ml-ferret's GPT-4 answer: Assistant 2, after [`strip_box_coordinates`].

    The script writes `[Context]\\{...}` in an f-string, so a backslash (not a newline) follows `[Context]`.
    """
    return (
        f"[Context]\\{context}\n\n"
        f"[Question]\n{question}\n\n"
        f"[{FERRET_ROLE} 1]\n{prediction}\n\n[End of {FERRET_ROLE} 1]\n\n"
        f"[{FERRET_ROLE} 2]\n{strip_box_coordinates(reference)}\n\n[End of {FERRET_ROLE} 2]\n\n"
        f"[System]\n{FERRET_REFER_REASON_RULE}\n\n"
    )


# --------------------------------------------------------------------------------------------------------------------
# VideoRefer-Bench-D
# --------------------------------------------------------------------------------------------------------------------

VIDEOREFER_D_SYSTEM = (
    "You are an advanced intelligent chatbot specialized in evaluating the factual accuracy of generative outputs "
    "related to object-based video descriptions.\nYour primary task is to meticulously compare the predicted answer "
    "with the correct answer and assess their factual consistency. To accomplish this, you will evaluate the "
    "descriptions across four key dimensions:\n1. Subject Correspondence: Assess whether the subject of the input "
    "description accurately matches the subject indicated in the ground truth description.\n2. Appearance "
    "Description: Evaluate the accuracy of the appearance details, including color, shape, size, texture, and any "
    "other relevant visual attributes.\n3. Temporal Description: Analyze whether the depiction of the object's motion "
    "aligns with the actual movements described in the correct answer.\n4. Hallucination Detection: Identify any "
    "discrepancies by determining if the description includes facts, actions, or elements that do not exist in "
    "reality, such as imaginative interpretations or incorrect inferences.\nPlease assign a score for each of these "
    "four dimensions, using an integer from 0 to 5, where 5 indicates a perfect match and 0 signifies no relevance at "
    "all. Accompany your assessments with brief explanations to clarify your scoring rationale.\n### OUTPUT "
    "FORMAT(EXAMPLE)\n1. Subject Correspondence: 5\\nExplanation:\xa0xxx\n2. Appearance Description: "
    "4\\nExplanation:\xa0xxx\n3. Temporal Description: 5\\nExplanation:\xa0xxx\n4. Hallucination Detection: "
    "3\\nExplanation:\xa0xxx"
)
"""`videorefer_bench_d/system.txt`, verbatim (its literal `\\n` and no-break spaces included, no final newline)."""

VIDEOREFER_D_DIMENSIONS: dict[str, str] = {
    "SC": "Subject Correspondence",
    "AD": "Appearance Description",
    "TD": "Temporal Description",
    "HD": "Hallucination Detection",
}
"""Metric name -> the dimension's name in the judge's reply (the keys `3.analyze_score.py` averages)."""

_D_SCORE_LINE = re.compile(r"\d+\.\s+(.*?):\s+([\d.]+)")


def videorefer_d_judge_message(reference: str, prediction: str) -> str:
    """The user message of `1.eval_gpt.py`: `##Correct answer: ...` and `##Predicted answer: ...` lines."""
    return "##Correct answer: " + reference + "\n" + "##Predicted answer: " + prediction + "\n"


def videorefer_d_parse_reply(reply: str | None) -> dict[str, float]:
    """The dimensions found in one judge reply, as `2.extract_re.py` reads them: `{"SC": 4.0, ...}`.

    Every `N. <name>: <number>` match counts (a later one of the same name wins); only the four dimension names,
    spelled exactly, are kept. A number that does not parse (e.g. `"."`) makes the script drop the whole reply, as
    here (`{}`). Missing dimensions are simply absent: each dimension is averaged over the replies that hold it.
    """
    if not reply:
        return {}
    try:
        found = {name: float(score) for name, score in _D_SCORE_LINE.findall(reply)}
    except ValueError:
        logger.warning("VideoRefer-Bench-D judge reply with an unreadable score; no dimension read: %r", reply[:200])
        return {}
    return {key: found[name] for key, name in VIDEOREFER_D_DIMENSIONS.items() if name in found}


def videorefer_d_dimension_means(replies: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Per dimension, the mean over the replies that hold it (`3.analyze_score.py`), plus `average`: the mean of the
    four dimension means. A dimension no reply holds is NaN (the script divides by zero)."""
    replies = list(replies)
    means: dict[str, float] = {}
    for key in VIDEOREFER_D_DIMENSIONS:
        values = [reply[key] for reply in replies if key in reply]
        means[key] = sum(values) / len(values) if values else math.nan
    means["average"] = sum(means[key] for key in VIDEOREFER_D_DIMENSIONS) / len(VIDEOREFER_D_DIMENSIONS)
    return means


# --------------------------------------------------------------------------------------------------------------------
# DLC-Bench
# --------------------------------------------------------------------------------------------------------------------

DLC_PROMPT = """Answer the multiple-choice question based on the text description of an object in an image. You need to follow these rules:
1. Do not output any reasoning. Do not perform correction. Please output exactly one answer from the choices for each question. Do not repeat the question.
2. There is no need for exact matching. Please choose the closest option based on the description.

The description is:
{pred_caption}

From the description above, please answer the following question with one of the choices:
{question_text_str}
"""  # noqa: E501 - verbatim `prompt_eval` of eval_model_outputs.py
"""The judge's only (user) message in `eval_model_outputs.py` (no system message; temperature 0, max_tokens 300)."""

DLC_MAX_TOKENS = 300
_DLC_LETTERS = "abcde"


def dlc_recognition_question(class_name: str, plural: bool, with_article: str) -> dict[str, Any]:
    """The recognition question `eval_model_outputs.py` puts first for an object of class `class_name`.

    Args:
        class_name: the object's entry in `class_names.json`.
        plural: whether `inflect` reads `class_name` as a plural (`"bus"` is singular).
        with_article: `inflect`'s `engine().a(class_name)` ("a wild bird", "an apple").
    """
    if plural:
        text = (
            f"Is it likely that the objects in the description are {class_name} or objects of a similar type? "
            "Again, It does not have to be an exact match."
        )
    else:
        text = (
            f"Is it likely that the object in the description is {with_article} or an object of a similar type? "
            "Again, It does not have to be an exact match."
        )
    return {"question": text, "choices": [["Yes", "correct"], ["No", "incorrect"]], "type": "recognition"}


def dlc_judge_prompt(description: str, question: Mapping[str, Any]) -> str:
    """The judge prompt for one question: the description, the question and its lettered choices (`A. ...`)."""
    lines = f"{question['question']}\n"
    for index, (choice, _) in enumerate(question["choices"]):
        lines += f"{'ABCDE'[index]}. {choice}\n"
    return DLC_PROMPT.format(pred_caption=description, question_text_str=lines.strip())


def dlc_parse_answer(reply: str, choices: Sequence[str]) -> int | None:
    """The chosen choice's index in a judge reply (`parse_pred` of `eval_model_outputs.py`), or None.

    In order: the reply equals a choice, `"<letter>. <choice>"` or the letter; exactly one choice occurs in the
    reply; the reply starts with `"<letter>."`; several choices occur (the one starting last, then the longest); the
    reply occurs in choices (the longest); the reply is one letter (or a letter and a newline). Everything is
    compared in lower case after stripping. Replies on which the script would raise (an empty reply, a one-letter
    reply that names no choice) give None here, as a reply that matches nothing does there.
    """
    pred = reply.strip().lower()
    if not pred:
        return None
    lowered = [choice.strip().lower() for choice in choices]
    substrings = []
    for index, choice in enumerate(lowered):
        if choice == pred or pred == f"{_DLC_LETTERS[index]}. {choice}" or pred == _DLC_LETTERS[index]:
            return index
        if choice in pred:
            substrings.append((index, pred.index(choice), len(choice)))
    if len(substrings) == 1:
        return substrings[0][0]
    if len(pred) > 1 and pred[0] in _DLC_LETTERS and pred[1] == ".":
        return _DLC_LETTERS.index(pred[0])
    if substrings:
        last = max(position for _, position, _ in substrings)
        return max((item for item in substrings if item[1] == last), key=lambda item: item[2])[0]
    containing = [(index, len(choice)) for index, choice in enumerate(lowered) if pred in choice]
    if containing:
        return max(containing, key=lambda item: item[1])[0]
    if pred[0] in _DLC_LETTERS and (len(pred) == 1 or pred[1] == "\n"):
        return _DLC_LETTERS.index(pred[0])
    return None


def dlc_score_object(questions: Sequence[Mapping[str, Any]], replies: Sequence[str]) -> dict[str, Any]:
    """Score one object from the judge's replies to all of its questions (recognition first), as `evaluate()` does.

    A choice's value is the question's score for it; a reply that names no choice scores 0 ("no mention"). After a
    wrong recognition answer every positive and negative value becomes `min(0, value)`: penalties stay, credit goes.
    An unreadable recognition reply (the script raises) is taken as a wrong recognition and flagged.

    Returns:
        `{"pos": mean positive value or None, "neg": mean negative value or None (no negative question),
        "recognition": bool, "answers": [{"type", "choice", "value"}, ...], "unparsed": count of replies naming no
        choice}`.
    """
    if len(questions) != len(replies):
        raise ValueError(f"{len(questions)} questions but {len(replies)} judge replies")
    if not questions or questions[0]["type"] != "recognition":
        raise ValueError("the first question of a DLC-Bench object must be its recognition question")
    recognised = True
    positives: list[float] = []
    negatives: list[float] = []
    answers = []
    for question, reply in zip(questions, replies, strict=True):
        choice = dlc_parse_answer(reply, [text for text, _ in question["choices"]])
        value = question["choices"][choice][1] if choice is not None else 0
        kind = question["type"]
        if kind == "recognition":
            recognised = value == "correct"
        elif kind in ("positive", "negative"):
            value = float(value) if recognised else min(0.0, float(value))
            (positives if kind == "positive" else negatives).append(value)
        else:
            raise ValueError(f"unknown DLC-Bench question type {kind!r}; expected recognition, positive or negative")
        answers.append({"type": kind, "choice": choice, "value": value})
    return {
        "pos": sum(positives) / len(positives) if positives else None,
        "neg": sum(negatives) / len(negatives) if negatives else None,
        "recognition": recognised,
        "answers": answers,
        "unparsed": sum(answer["choice"] is None for answer in answers),
    }


def dlc_means(objects: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Pos, Neg and Avg × 100 over objects (the script's averaging): Pos = mean of the objects' positive means, Neg =
    mean over the objects that have negative questions, Avg = (Pos + Neg) / 2. NaN where no object counts."""
    objects = list(objects)

    def mean(values: list[float]) -> float:
        return 100.0 * sum(values) / len(values) if values else math.nan

    pos = mean([obj["pos"] for obj in objects if obj["pos"] is not None])
    neg = mean([obj["neg"] for obj in objects if obj["neg"] is not None])
    return {"Pos": pos, "Neg": neg, "Avg": (pos + neg) / 2}
