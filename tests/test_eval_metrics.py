"""Evaluation metrics and the LLM judge (``pixelrefer_plugin.integrations.lmms_eval.{metrics,judge}``).

Expected values are computed by hand in the comments. The LLM judge is exercised against a real HTTP server on
127.0.0.1 that speaks the OpenAI chat-completions protocol, but its *answers* are canned: a paid LLM judge cannot
run here, so these tests check the plumbing (request contents, retries, recorded settings, reply parsing), never a
judged score.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import pytest
from fake_judge import FakeJudgeServer

from pixelrefer_plugin.integrations.lmms_eval.judge import Judge, JudgeConfig, JudgeError, JudgeNotConfiguredError
from pixelrefer_plugin.integrations.lmms_eval.metrics import (
    CAPTION_METRICS,
    SentenceEmbedder,
    caption_scores,
    category_scores,
    ferret_relative_score,
    mean_percent,
    normalize_category,
    option_letter,
    parse_choice,
    parse_pair_scores,
    semantic_iou,
    semantic_similarity,
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


# ------------------------------------------------------------------------------------------------------------------
# LVIS / PACO: normalisation, SIoU, SSim
# ------------------------------------------------------------------------------------------------------------------


def test_normalize_category() -> None:
    assert normalize_category("Dining_Table:Leg (front).") == "dining table leg front"
    assert normalize_category("  Teddy   bear,  ") == "teddy bear"
    assert normalize_category("") == ""


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("red car", "car", 1 / 2),  # {red, car} vs {car}
        ("The Dog.", "dog, the", 1.0),  # normalisation, word order and case do not matter
        ("chair:leg", "chair_leg", 1.0),  # PACO "category:subcategory" vs LVIS-style underscores
        ("a b c", "c d", 1 / 4),  # {c} / {a, b, c, d}
        ("dog dog", "dog", 1.0),  # sets, not multisets
        ("", "dog", 0.0),
        ("", "", 0.0),  # documented convention: no words, no credit
    ],
)
def test_semantic_iou(prediction: str, reference: str, expected: float) -> None:
    assert semantic_iou(prediction, reference) == pytest.approx(expected)


def test_semantic_similarity_minilm() -> None:
    sims = semantic_similarity(
        ["a red cat on the left", "cat", "cat", "Dog.", "teddy_bear"],
        ["a dog", "kitten", "airplane", "dog", "teddy bear"],
    )
    # ecosystem.md §9: cosine("a red cat on the left", "a dog") = 0.36 with all-MiniLM-L6-v2.
    assert sims[0] == pytest.approx(0.36, abs=0.02)
    assert sims[1] > sims[2] + 0.2  # synonym (0.79) well above an unrelated pair (0.34)
    assert sims[3] == pytest.approx(1.0, abs=1e-5)  # identical after normalisation
    assert sims[4] == pytest.approx(1.0, abs=1e-5)
    assert all(-1.0 <= s <= 1.0 for s in sims)
    # The model is loaded once per process and shared.
    assert SentenceEmbedder().model is SentenceEmbedder().model
    assert semantic_similarity([], []) == []
    with pytest.raises(ValueError):
        semantic_similarity(["a"], [])


def test_category_scores_and_mean_percent() -> None:
    scores = category_scores("red car", "car")
    assert set(scores) == {"ssim", "siou"}
    assert scores["siou"] == pytest.approx(0.5)
    assert 0.5 < scores["ssim"] < 1.0
    assert category_scores("Traffic_light", "traffic light")["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert mean_percent([0.5, 1.0]) == pytest.approx(75.0)
    assert mean_percent([True, False, False, False]) == pytest.approx(25.0)
    assert math.isnan(mean_percent([]))


# ------------------------------------------------------------------------------------------------------------------
# Caption metrics (pycocoevalcap; Java)
# ------------------------------------------------------------------------------------------------------------------

REFERENCE = "a man riding a red horse on the beach"  # 9 words


def test_caption_scores_identical_corpus() -> None:
    # Two items, each prediction identical to its single reference, no shared words between the items.
    # BLEU-n: every n-gram matches and lengths are equal -> 1 (up to pycocoevalcap's 1e-9 smoothing).
    # CIDEr: idf(g) = log(N_items) - log(df(g)) = log 2 - log 1 for every n-gram (each occurs in one item), the
    # candidate and reference TF-IDF vectors are identical -> cosine 1 for n = 1..4, no length penalty -> 10 x mean = 10.
    scores = caption_scores(
        {"a": "A man riding a brown horse.", "b": "two dogs play in snow"},
        {"a": ["a man riding a brown horse"], "b": ["Two dogs play in snow."]},
    )
    assert list(scores) == list(CAPTION_METRICS)
    for n in range(1, 5):
        assert scores[f"Bleu_{n}"] == pytest.approx(1.0, abs=1e-6)
    assert scores["METEOR"] == pytest.approx(1.0)
    assert scores["ROUGE_L"] == pytest.approx(1.0)
    assert scores["CIDEr"] == pytest.approx(10.0)


def test_caption_scores_partial_overlap() -> None:
    # Prediction (6 tokens after PTB lowercasing / punctuation removal): a man riding a brown horse.
    # Clipped unigram matches: a x2, man, riding, horse = 5 -> precision 5/6.
    # Brevity penalty: reference 9 > candidate 6 -> exp(1 - 9/6) = exp(-0.5).
    scores = caption_scores({"x": "A man riding a brown horse."}, {"x": [REFERENCE]})
    assert scores["Bleu_1"] == pytest.approx(5 / 6 * math.exp(-0.5), rel=1e-6)
    # Bigrams: "a man", "man riding", "riding a" match out of 5 -> BLEU-2 = sqrt(5/6 * 3/5) * BP.
    assert scores["Bleu_2"] == pytest.approx(math.sqrt(5 / 6 * 3 / 5) * math.exp(-0.5), rel=1e-6)
    # A one-item corpus: every n-gram has df = 1 = N, so idf = log 1 - log 1 = 0 and CIDEr is 0.
    assert scores["CIDEr"] == 0.0
    assert 0.0 < scores["METEOR"] < 1.0


def test_caption_scores_max_words() -> None:
    prediction = "a man riding a horse near some trees"  # 8 words, 5 matching unigrams
    full = caption_scores({"x": prediction}, {"x": [REFERENCE]})
    cut = caption_scores({"x": prediction}, {"x": [REFERENCE]}, max_words=5)  # -> "a man riding a horse"
    assert full["Bleu_1"] == pytest.approx(5 / 8 * math.exp(1 - 9 / 8), rel=1e-6)
    assert cut["Bleu_1"] == pytest.approx(5 / 5 * math.exp(1 - 9 / 5), rel=1e-6)
    assert caption_scores({"x": prediction}, {"x": [REFERENCE]}, max_words=100)["Bleu_1"] == full["Bleu_1"]


def test_caption_scores_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="ids differ"):
        caption_scores({"a": "x"}, {"b": ["x"]})
    with pytest.raises(ValueError, match="non-empty"):
        caption_scores({"a": "x"}, {"a": "x"})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        caption_scores({}, {})


def test_caption_scores_without_java_says_what_to_install(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no `java`
    with pytest.raises(RuntimeError, match=r"no `java` is on PATH: install a Java runtime .*default-jre-headless"):
        caption_scores({"x": "a horse"}, {"x": [REFERENCE]})


# ------------------------------------------------------------------------------------------------------------------
# Multiple choice
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "letter", "parsed"),
    [
        ("(B) because the car turns left", "B", True),  # "(X)" anywhere, first one
        ("The answer is (C).", "C", True),
        ("(E) is not an option, so (B)", "E", True),  # the first "(X)" counts, named option or not
        ("B) yes", "B", True),  # then "X)"
        ("A", "A", False),  # else the first character
        ("B. The red car", "B", False),
        ("Cat", "C", False),  # "Cat" reads as C, as the public script compares lower-cased first characters
        ("b.", "B", False),
        ("...d", "D", False),  # dots are removed before the first character is taken
        ("The answer is C", "T", False),
        (" B", " ", False),  # no strip: a leading space is the first character
        ("", None, False),
        (None, None, False),
    ],
)
def test_parse_choice_follows_the_public_rule(text: str | None, letter: str | None, parsed: bool) -> None:
    assert parse_choice(text) == (letter, parsed)


def test_option_letter() -> None:
    assert [option_letter(i) for i in (0, 2, 25)] == ["A", "C", "Z"]
    with pytest.raises(ValueError, match="option index"):
        option_letter(26)


# ------------------------------------------------------------------------------------------------------------------
# Judge-reply parsers
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8 9\nAssistant 1 gave a precise answer...", (8.0, 9.0)),
        ("8, 9", (8.0, 9.0)),
        ("7.5 9\n", (7.5, 9.0)),
        ("8 9 \nThe public parser fails on this trailing space.", (8.0, 9.0)),
        ("\n\n**6 10**\nExplanation", (6.0, 10.0)),
        ("Assistant 1: 8\nAssistant 2: 9", None),  # first line is not a pair
        ("8 9 10", None),
        ("11 9", None),  # outside 0..10
        ("", None),
        (None, None),
    ],
)
def test_parse_pair_scores(text: str | None, expected: tuple[float, float] | None) -> None:
    assert parse_pair_scores(text) == expected


def test_ferret_relative_score() -> None:
    # mean(model) = 7, mean(reference) = 10 -> 70.
    assert ferret_relative_score([8, 6], [10, 10]) == pytest.approx(70.0)
    assert ferret_relative_score([9.0], [6.0]) == pytest.approx(150.0)
    with pytest.raises(ValueError):
        ferret_relative_score([8], [10, 9])
    with pytest.raises(ValueError):
        ferret_relative_score([], [])
    with pytest.raises(ValueError):
        ferret_relative_score([1], [0])


# ------------------------------------------------------------------------------------------------------------------
# LLM judge
# ------------------------------------------------------------------------------------------------------------------

JUDGE_VARS = (
    "PIXELREFER_JUDGE_BASE_URL",
    "PIXELREFER_JUDGE_MODEL",
    "PIXELREFER_JUDGE_API_KEY",
    "OPENAI_API_KEY",
    "PIXELREFER_JUDGE_TEMPERATURE",
    "PIXELREFER_JUDGE_TIMEOUT",
    "PIXELREFER_JUDGE_MAX_RETRIES",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in JUDGE_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_judge_not_configured_names_variables(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(JudgeNotConfiguredError) as info:
        JudgeConfig.from_env()
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    for name in ("PIXELREFER_JUDGE_MODEL", "PIXELREFER_JUDGE_BASE_URL", "PIXELREFER_JUDGE_API_KEY", "OPENAI_API_KEY"):
        assert name in message
    with pytest.raises(JudgeNotConfiguredError):
        Judge()

    clean_env.setenv("PIXELREFER_JUDGE_MODEL", "gpt-4o-2024-08-06")  # model but no endpoint / key
    message = str(pytest.raises(JudgeNotConfiguredError, JudgeConfig.from_env).value)
    assert "PIXELREFER_JUDGE_BASE_URL" in message and "PIXELREFER_JUDGE_API_KEY" in message
    assert "PIXELREFER_JUDGE_MODEL" not in message

    clean_env.delenv("PIXELREFER_JUDGE_MODEL")
    clean_env.setenv("PIXELREFER_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")  # endpoint but no model
    message = str(pytest.raises(JudgeNotConfiguredError, JudgeConfig.from_env).value)
    assert "PIXELREFER_JUDGE_MODEL" in message
    assert "PIXELREFER_JUDGE_BASE_URL" not in message


def test_judge_config_from_env(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PIXELREFER_JUDGE_MODEL", "gpt-4o-2024-08-06")
    clean_env.setenv("OPENAI_API_KEY", "sk-fallback")  # fallback key, default endpoint
    config = JudgeConfig.from_env()
    assert (config.model, config.api_key, config.base_url, config.temperature) == (
        "gpt-4o-2024-08-06",
        "sk-fallback",
        None,
        0.0,
    )
    judge = Judge(config)
    assert judge._client is None  # nothing is contacted before the first ask()
    assert judge.record() == {
        "judge_model": "gpt-4o-2024-08-06",
        "judge_temperature": 0.0,
        "judge_base_url": "https://api.openai.com/v1",
    }
    assert "sk-fallback" not in json.dumps(judge.record())

    clean_env.setenv("PIXELREFER_JUDGE_API_KEY", "sk-own")
    clean_env.setenv("PIXELREFER_JUDGE_TEMPERATURE", "0.2")
    config = JudgeConfig.from_env()
    assert (config.api_key, config.temperature) == ("sk-own", 0.2)
    clean_env.setenv("PIXELREFER_JUDGE_TEMPERATURE", "warm")
    with pytest.raises(ValueError, match="PIXELREFER_JUDGE_TEMPERATURE"):
        JudgeConfig.from_env()


CANNED_REPLY = '{"SC": 4, "AD": 3, "TD": 3, "HD": 4}'


@pytest.fixture
def openai_server(clean_env: pytest.MonkeyPatch) -> Iterator[FakeJudgeServer]:
    clean_env.setenv("NO_PROXY", "127.0.0.1,localhost")
    clean_env.setenv("no_proxy", "127.0.0.1,localhost")
    with FakeJudgeServer(lambda user: CANNED_REPLY).running() as server:
        yield server


def test_judge_asks_local_openai_compatible_server(
    openai_server: FakeJudgeServer, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("PIXELREFER_JUDGE_BASE_URL", openai_server.base_url)
    clean_env.setenv("PIXELREFER_JUDGE_MODEL", "judge-model-x")
    clean_env.setenv("PIXELREFER_JUDGE_API_KEY", "test-key")
    clean_env.setenv("PIXELREFER_JUDGE_TEMPERATURE", "0.3")
    clean_env.setenv("PIXELREFER_JUDGE_TIMEOUT", "10")
    judge = Judge.from_env()

    reply = judge.ask("You are a strict grader.", "##Correct answer: a cat\n##Predicted answer: a cat")
    assert reply == CANNED_REPLY  # canned by the test server, see the module docstring

    (request,) = openai_server.calls
    assert request["path"] == "/v1/chat/completions"
    assert request["authorization"] == "Bearer test-key"
    assert request["body"]["model"] == "judge-model-x"
    assert request["body"]["temperature"] == 0.3
    assert request["body"]["messages"] == [
        {"role": "system", "content": "You are a strict grader."},
        {"role": "user", "content": "##Correct answer: a cat\n##Predicted answer: a cat"},
    ]
    assert judge.record() == {
        "judge_model": "judge-model-x",
        "judge_temperature": 0.3,
        "judge_base_url": openai_server.base_url,
    }


def test_judge_retries_are_bounded(openai_server: FakeJudgeServer) -> None:
    config = JudgeConfig(model="m", base_url=openai_server.base_url, timeout=10, max_retries=1, retry_backoff=0.01)

    openai_server.statuses = [500]  # one server error, then success
    assert Judge(config).ask("", "hi") == CANNED_REPLY
    assert len(openai_server.calls) == 2
    assert openai_server.calls[0]["authorization"] == "Bearer EMPTY"  # no key: placeholder for local servers
    assert [m["role"] for m in openai_server.calls[0]["body"]["messages"]] == ["user"]

    openai_server.calls.clear()
    openai_server.statuses = [503, 503, 503]
    with pytest.raises(JudgeError, match="2 attempt"):
        Judge(config).ask("sys", "hi")
    assert len(openai_server.calls) == 2  # 1 + max_retries

    openai_server.calls.clear()
    openai_server.statuses = [400]  # not retryable
    with pytest.raises(JudgeError, match="1 attempt"):
        Judge(config).ask("sys", "hi")
    assert len(openai_server.calls) == 1
