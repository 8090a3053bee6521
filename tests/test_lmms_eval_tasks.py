# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The packaged region tasks: materialised folder, fixture documents, any-model hooks, metric hooks."""

import json

import numpy as np
import pytest

from pixelrefer_plugin.cli import main as cli_main
from pixelrefer_plugin.image_loading import load_image
from pixelrefer_plugin.integrations.lmms_eval.task_dir import tasks_path
from pixelrefer_plugin.presets import build_model_and_processor

FIXTURE_TASKS = ("pixelrefer_lvis_fixture", "pixelrefer_vg_fixture", "pixelrefer_videorefer_q_fixture")


def documents(task_dir, name):
    return [json.loads(line) for line in (task_dir / "fixtures" / f"{name}.jsonl").read_text().splitlines()]


def test_tasks_path_materialises_yaml_and_fixtures_once(task_dir, capsys, monkeypatch):
    for task in FIXTURE_TASKS:
        text = (task_dir / f"{task}.yaml").read_text()
        assert f"task: {task}" in text and "__PIXELREFER_FIXTURES__" not in text
        assert str(task_dir / "fixtures") in text
    marker = task_dir / ".complete"
    stamp = marker.stat().st_mtime_ns
    assert tasks_path() == task_dir and marker.stat().st_mtime_ns == stamp  # reused, not rewritten
    monkeypatch.setenv("PIXELREFER_TASKS_DIR", str(task_dir.parent))
    assert cli_main(["tasks-path"]) == 0
    assert capsys.readouterr().out.strip() == str(task_dir)


@pytest.mark.parametrize("name", ["category", "caption", "video_choice"])
def test_fixture_documents_follow_the_schema_and_reach_the_processor(task_dir, task_utils, name):
    _, processor = build_model_and_processor("pixelrefer-tiny")
    docs = documents(task_dir, name)
    assert len(docs) == 8 and len({doc["id"] for doc in docs}) == 8
    for doc in docs:
        regions = task_utils.load_regions(doc)
        prompt = doc["prompt"]["full"]
        assert prompt.count("<region>") == len(regions) == 1
        if doc["image"]:
            inputs = processor(text="<image>\n" + prompt, images=doc["image"], regions=regions)
        else:
            inputs = processor(text=prompt, videos=doc["video"], regions=regions)
        assert int((inputs["input_ids"] == processor.region_token_id).sum()) > 0
        assert "<video>" not in doc["prompt"]["lite"] and "<image>" not in doc["prompt"]["lite"]
    if name == "video_choice":
        assert sorted({doc["answer"] for doc in docs}) == [0, 1, 2, 3]


def test_any_model_hooks_draw_the_region_and_name_it(task_dir, task_utils):
    doc = documents(task_dir, "category")[0]
    (overlay,) = task_utils.doc_to_visual(doc)
    original = load_image(doc["image"])
    drawn = np.asarray(overlay)
    assert drawn.shape == original.shape and (drawn != original).any()
    assert "<region>" not in task_utils.doc_to_text(doc) and "region 1 (outlined in red)" in task_utils.doc_to_text(
        doc
    )
    assert task_utils.doc_to_text(doc, {"region_style": "tokens"}) == doc["prompt"]["full"]
    messages = task_utils.doc_to_messages(doc)
    assert [item["type"] for item in messages[0]["content"]] == ["image", "text"]
    video_doc = documents(task_dir, "video_choice")[0]
    (video_overlay,) = task_utils.doc_to_visual(video_doc)  # an outlined copy (tests/test_lmms_eval_any_model.py)
    assert video_overlay != video_doc["video"] and video_overlay.endswith(".mp4")
    assert "<video>" not in task_utils.doc_to_text(video_doc)


def test_metric_hooks(task_dir, task_utils, caplog):
    category = documents(task_dir, "category")[0]
    exact = task_utils.category_process_results(category, [category["answer"]])
    assert exact["ssim"] == pytest.approx(1.0, abs=1e-4) and exact["siou"] == 1.0
    wrong = task_utils.category_process_results(category, ["a completely different thing"])
    assert wrong["ssim"] < 0.9 and wrong["siou"] == 0.0

    captions = documents(task_dir, "caption")[:2]
    entries = [task_utils.caption_process_results(doc, [doc["answer"][0]])["CIDEr"] for doc in captions]
    assert task_utils.caption_rouge(entries) == pytest.approx(1.0, abs=1e-6)  # exact captions (too short for BLEU-4)
    wrong = [{**entry, "prediction": "nothing alike"} for entry in entries]
    assert task_utils.caption_rouge(wrong) == 0.0

    choice = documents(task_dir, "video_choice")[1]
    assert choice["answer"] == 1  # option B
    assert task_utils.choice_process_results(choice, ["(B) it moves"]) == {"accuracy": 1.0, "unparsed": 0.0}
    assert task_utils.choice_process_results(choice, ["(C) or (B)"]) == {"accuracy": 0.0, "unparsed": 0.0}
    with caplog.at_level("WARNING"):  # no "(X)" / "X)": the first character decides, as the public script does
        assert task_utils.choice_process_results(choice, ["But it moves"]) == {"accuracy": 1.0, "unparsed": 1.0}
        assert task_utils.choice_process_results(choice, ["I cannot tell"]) == {"accuracy": 0.0, "unparsed": 1.0}
    assert "first character is taken" in caplog.text

    caption = documents(task_dir, "caption")[0]
    assert task_utils.caption_process_results(caption, ["a red circle"])["boxes_clipped"] == 0.0
    assert task_utils.total([0.0, 1.0, 1.0]) == 2.0


def test_task_yamls_share_their_family_template(task_dir):
    """Fixture and real-data variants of a benchmark include one template; the materialised folder has them all."""
    from lmms_eval.utils import load_yaml_config

    families = {
        "_pixelrefer_caption.yaml": ["pixelrefer_vg", "pixelrefer_vg_fixture", "pixelrefer_hc_stvg_fixture"],
        "_pixelrefer_category.yaml": ["pixelrefer_lvis", "pixelrefer_paco", "pixelrefer_lvis_fixture"],
        "_pixelrefer_choice.yaml": ["pixelrefer_videorefer_q", "pixelrefer_videorefer_q_fixture"],
        "_pixelrefer_ferret.yaml": ["pixelrefer_ferret", "pixelrefer_ferret_fixture"],
        "_pixelrefer_videorefer_d.yaml": ["pixelrefer_videorefer_d", "pixelrefer_videorefer_d_fixture"],
        "_pixelrefer_dlc_bench.yaml": ["pixelrefer_dlc_bench", "pixelrefer_dlc_bench_fixture"],
    }
    for template, tasks in families.items():
        metrics = None
        for task in tasks:
            text = (task_dir / f"{task}.yaml").read_text()
            assert f"include: {template}" in text and "metric_list" not in text
            config = load_yaml_config(yaml_path=str(task_dir / f"{task}.yaml"))
            assert config["task"] == task and config["lmms_eval_specific_kwargs"]["pixelrefer"]["region_style"]
            names = [metric["metric"] for metric in config["metric_list"]]
            assert metrics in (None, names)
            metrics = names


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from pixelrefer_plugin.presets import build_preset

    return build_preset("pixelrefer-tiny", tmp_path_factory.mktemp("tiny") / "ckpt")


EXPECTED_METRICS = {
    "pixelrefer_lvis_fixture": ("ssim,none", "siou,none"),
    "pixelrefer_vg_fixture": ("Bleu_4,none", "METEOR,none", "ROUGE_L,none", "CIDEr,none"),
    "pixelrefer_videorefer_q_fixture": ("accuracy,none", "unparsed,none"),
}


@pytest.mark.parametrize("task", FIXTURE_TASKS)
def test_fixture_task_runs_in_process_with_pixelrefer(task_dir, tiny_checkpoint, task):
    from lmms_eval import evaluator
    from lmms_eval.tasks import TaskManager

    from pixelrefer_plugin.integrations.lmms_eval.model import PixelReferChat

    manager = TaskManager("WARNING", include_path=str(task_dir), include_defaults=False, model_name="pixelrefer")
    model = PixelReferChat(pretrained=str(tiny_checkpoint), device="cpu", batch_size=4)
    results = evaluator.simple_evaluate(model=model, tasks=[task], task_manager=manager, limit=4, log_samples=True)
    metrics = results["results"][task]
    for key in EXPECTED_METRICS[task]:
        assert isinstance(metrics[key], float), key
    samples = results["samples"][task]
    assert len(samples) == 4 and all(isinstance(sample["resps"][0][0], str) for sample in samples)


def test_lmms_eval_cli_runs_a_packaged_task(task_dir, tiny_checkpoint, tmp_path):
    """`lmms-eval --model pixelrefer ... --include_path "$(pixelrefer tasks-path)"`; the CLI exits 0 on failures
    unless --verbosity DEBUG, so the results JSON is what is checked."""
    import os
    import subprocess
    import sys

    out = tmp_path / "results"
    command = [sys.executable, "-m", "lmms_eval", "--model", "pixelrefer"]
    command += ["--model_args", f"pretrained={tiny_checkpoint},device=cpu", "--batch_size", "2"]
    command += ["--tasks", "pixelrefer_lvis_fixture", "--include_path", str(task_dir), "--limit", "4"]
    command += ["--verbosity", "DEBUG", "--output_path", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PIXELREFER_TASKS_DIR": str(task_dir.parent)}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (results_file,) = out.glob("**/*_results.json")
    results = json.loads(results_file.read_text())["results"]["pixelrefer_lvis_fixture"]
    assert "ssim,none" in results and "siou,none" in results
