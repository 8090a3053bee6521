# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The offline demo: train the tiny preset on synthetic region questions, evaluate it through lmms-eval on held-out
scenes against a control with its object tokens zeroed, and draw what it saw.

Every step caches its result under the demo folder (`$PIXELREFER_DEMO_DIR`, default `~/.cache/pixelrefer/demo`), keyed
by the recipe and the generator code, so a second run only evaluates; an interrupted training resumes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from .synthetic import HELD_OUT_DOCUMENTS, chance_accuracy

logger = logging.getLogger(__name__)

DEMO_RECIPE = "demo-tiny.yaml"
# Training and evaluation use this many torch threads whatever the machine, its load or OMP_NUM_THREADS: sums split
# over another number of threads round differently, and 3000 training steps turn that into other answers.
DEMO_TORCH_THREADS = 2
TASK = "pixelrefer_synthetic"
COMPLETE = "demo-trained.json"
# The scores of the last full evaluation (all held-out questions), beside the trained model.
RESULTS = "demo-results.json"
# Rows of the demo table: the task's metrics, in order, with what they measure.
ROWS = {
    "colour": "What colour is <region>?",
    "shape": "What shape is <region>?",
    "larger": "Which is larger, <region> or <region>?",
    "video": "colour / shape on a video frame",
    "overall": "all held-out questions",
}


@dataclass
class DemoResult:
    """Scores in percent per model (`trained`, `control`, `chance`) and metric (`ROWS`), and where things are."""

    scores: dict[str, dict[str, float]]
    model_dir: Path
    picture: Path | None
    train_seconds: float | None
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def table(self) -> str:
        """The scores as a plain-text table."""
        header = f"{'held-out question':<42}{'trained':>9}{'object tokens zeroed':>22}{'chance':>9}"
        lines = [header, "-" * len(header)]
        for metric, title in ROWS.items():
            cells = [self.scores[name].get(metric, float("nan")) for name in ("trained", "control", "chance")]
            lines.append(f"{title:<42}{cells[0]:>8.1f}%{cells[1]:>21.1f}%{cells[2]:>8.1f}%")
        return "\n".join(lines)


def demo_root() -> Path:
    return Path(os.environ.get("PIXELREFER_DEMO_DIR", Path.home() / ".cache" / "pixelrefer" / "demo"))


def default_demo_dir(root: Path | None = None) -> Path:
    """Where `pixelrefer demo` without options keeps its trained model (and `RESULTS`)."""
    return (root or demo_root()) / _cache_key(demo_recipe_path().read_text(), {})


def demo_recipe_path() -> Path:
    """The packaged demo recipe (`recipes/demo-tiny.yaml`)."""
    return Path(str(resources.files("pixelrefer_plugin") / "recipes" / DEMO_RECIPE))


@contextlib.contextmanager
def torch_threads(count: int):
    """Run the block with `count` torch threads (intra-op), restoring the previous number afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _cache_key(recipe_text: str, overrides: dict[str, Any]) -> str:
    from .. import __version__

    digest = hashlib.sha256(
        __version__.encode()
        + recipe_text.encode()
        + json.dumps(overrides, sort_keys=True).encode()
        + str(DEMO_TORCH_THREADS).encode()
    )
    for module in ("synthetic.py", "scenes.py"):
        digest.update((Path(__file__).parent / module).read_bytes())
    return digest.hexdigest()[:12]


def train_demo_model(overrides: dict[str, Any] | None = None, root: Path | None = None) -> tuple[Path, float | None]:
    """Train the tiny preset with the demo recipe (cached). Returns the model folder and the training time in seconds
    (None when the cached model was reused)."""
    from ..training.recipe import load_recipe
    from ..training.trainer import RunAlreadyComplete, run_training

    overrides = dict(overrides or {})
    recipe_path = demo_recipe_path()
    output_dir = (root or demo_root()) / _cache_key(recipe_path.read_text(), overrides)
    if (output_dir / COMPLETE).exists():
        logger.info("reusing the trained demo model in %s", output_dir)
        return output_dir, None
    recipe = load_recipe(recipe_path, {**overrides, "training.output_dir": str(output_dir)})
    logger.info(
        "training %s on %s synthetic questions for %s steps (all parameters, CPU) into %s",
        recipe.model,
        recipe.data["synthetic"]["num_records"],
        recipe.training["max_steps"],
        output_dir,
    )
    start = time.perf_counter()
    try:
        result = run_training(recipe)
    except RunAlreadyComplete:  # an earlier run was stopped after training, before it wrote COMPLETE
        logger.info("the training in %s had already finished", output_dir)
        (output_dir / COMPLETE).write_text(json.dumps({"seconds": None, "metrics": {}}))
        return output_dir, None
    seconds = time.perf_counter() - start
    (output_dir / COMPLETE).write_text(json.dumps({"seconds": seconds, "metrics": result.metrics}))
    return output_dir, seconds


def write_control_model(model_dir: Path) -> Path:
    """The trained model with its object tokens zeroed (the last projection of the object tokenizer set to 0): it
    still sees the scene and the question, but not which region is meant. Saved once next to the model."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    control = model_dir / "control-zero-object-tokens"
    if (control / "config.json").exists():
        return control
    model = AutoModelForImageTextToText.from_pretrained(model_dir, trust_remote_code=True)
    last = model.model.object_tokenizer.feat_linear[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    model.save_pretrained(control)
    AutoProcessor.from_pretrained(model_dir, trust_remote_code=True).save_pretrained(control)
    return control


def evaluate(model_dir: Path, limit: int | None = None, batch_size: int = 8) -> tuple[dict[str, float], list[dict]]:
    """Run the held-out task through lmms-eval (`--model pixelrefer`); returns the metrics (percent) and the samples."""
    from lmms_eval import evaluator
    from lmms_eval.tasks import TaskManager

    from ..integrations.lmms_eval.model import PixelReferChat
    from ..integrations.lmms_eval.task_dir import tasks_path

    manager = TaskManager("WARNING", include_path=str(tasks_path()), include_defaults=False, model_name="pixelrefer")
    model = PixelReferChat(pretrained=str(model_dir), device="cpu", batch_size=batch_size)
    results = evaluator.simple_evaluate(
        model=model, tasks=[TASK], task_manager=manager, limit=limit, log_samples=True, verbosity="WARNING"
    )
    metrics = {key.split(",")[0]: value for key, value in results["results"][TASK].items() if "stderr" not in key}
    return {metric: float(metrics[metric]) for metric in ROWS if metric in metrics}, results["samples"][TASK]


def chance_scores(limit: int | None = None) -> dict[str, float]:
    """Expected accuracy (percent) of a uniform guess, per metric, over the same documents."""
    from .synthetic import held_out_samples

    per_metric: dict[str, list[float]] = {}
    for sample in list(held_out_samples())[:limit]:
        chance = chance_accuracy(sample.kind)
        per_metric.setdefault("video" if sample.is_video else sample.kind, []).append(chance)
        per_metric.setdefault("overall", []).append(chance)
    return {metric: 100.0 * sum(values) / len(values) for metric, values in per_metric.items()}


def run_demo(
    overrides: dict[str, Any] | None = None,
    picture: str | Path | None = "pixelrefer-demo.png",
    limit: int | None = None,
    root: Path | None = None,
) -> DemoResult:
    """Train (or reuse), evaluate the trained model and its zeroed-object-token control on the held-out task, and
    draw a few held-out scenes with the model's answers.

    Args:
        overrides: recipe overrides (`{"training.max_steps": 200}`), part of the cache key.
        picture: PNG to write, or None.
        limit: evaluate the first `limit` held-out documents only (default all, `HELD_OUT_DOCUMENTS`).
        root: the demo cache folder (default `demo_root()`).
    """
    with torch_threads(DEMO_TORCH_THREADS):
        logger.info("[1/4] training (cached after the first run)")
        model_dir, seconds = train_demo_model(overrides, root)
        logger.info("[2/4] evaluating the trained model on %d held-out questions", limit or HELD_OUT_DOCUMENTS)
        trained, trained_samples = evaluate(model_dir, limit)
        logger.info("[3/4] evaluating the control: the same model with its object tokens zeroed")
        control, control_samples = evaluate(write_control_model(model_dir), limit)
    result = DemoResult(
        scores={"trained": trained, "control": control, "chance": chance_scores(limit)},
        model_dir=model_dir,
        picture=Path(picture) if picture else None,
        train_seconds=seconds,
        samples={"trained": trained_samples, "control": control_samples},
    )
    if limit is None:
        (model_dir / RESULTS).write_text(json.dumps(result.scores, indent=1))
    if picture:
        from .picture import draw_demo_picture

        logger.info("[4/4] drawing held-out scenes with the model's answers")
        draw_demo_picture(result.samples, picture)
    return result


__all__ = ["DemoResult", "run_demo", "train_demo_model", "evaluate", "write_control_model"]
