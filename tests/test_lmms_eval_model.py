# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`--model pixelrefer` in lmms-eval: region documents -> processor inputs, in-process and CLI evaluation, batching,
log-likelihood (multiple choice) and multi-round generation, on tiny random checkpoints and a fixture task folder."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from random_checkpoints import build_checkpoint
from video_fixtures import moving_square, write_video

from pixelrefer_plugin.errors import PixelReferInputError
from pixelrefer_plugin.integrations.lmms_eval.documents import (
    DocumentError,
    document_inputs,
    prompt_content,
    scene_prompt,
)
from pixelrefer_plugin.synthetic import make_scene

lmms_eval = pytest.importorskip("lmms_eval")

from lmms_eval.api.instance import Instance  # noqa: E402

from pixelrefer_plugin.integrations.lmms_eval.model import (  # noqa: E402
    PixelReferChat,
    PixelReferSimple,
    truncate_at_stop,
)

GEN_TASK = "pr_fixture_region_gen"
MC_TASK = "pr_fixture_region_mc"
MR_TASK = "pr_fixture_region_rounds"
OPTIONS = ["circle", "square", "triangle"]

TASK_UTILS = """
from PIL import Image


def doc_to_visual(doc):
    return [Image.open(doc["image"]).convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return doc["prompt"]["full"].replace("<image>\\n", "").replace("<region>", "the marked region")


def process_results(doc, results):
    return {"region_em": float(results[0].strip().lower() == doc["answer"].lower())}


def doc_to_choice(doc):
    return doc["options"]


def rounds_doc_to_text(doc, lmms_eval_specific_kwargs=None, previous_output=None, round_idx=None,
                       previous_round_info=None):
    if round_idx is None:
        return doc_to_text(doc)
    if round_idx == 1:  # refers to the regions again: one turn with the regions
        return None, "Describe " + " and ".join(["<region>"] * len(doc["regions"])) + " again.", False, previous_output, 1
    if round_idx == 2:  # no <region>: the first exchange is kept as history
        return None, "What colour is it?", False, previous_output, 2
    return None, None, True, previous_output, None


def rounds_process_results(doc, results):
    rounds = results[0] if results and isinstance(results[0], list) else results
    return {"num_rounds": float(len(rounds))}
"""


def task_yaml(task: str, data: Path, cache: Path, body: str) -> str:
    head = f"""\
        task: {task}
        dataset_path: json
        dataset_kwargs:
          data_files: {{test: {data}}}
          cache_dir: {cache}
        test_split: test
        metadata: {{version: 0.0}}
    """
    return textwrap.dedent(head) + textwrap.dedent(body)


def region_of(obj, kind: str) -> dict:
    """A JSON region dict of kind `kind` for a scene object (floats everywhere, as a JSON task file holds them)."""
    ys, xs = np.nonzero(obj.mask)
    x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
    if kind == "box_xywh":
        return {"box": [x0, y0, x1 - x0, y1 - y0], "box_format": "xywh"}
    if kind == "box":
        return {"box": [x0, y0, x1, y1]}
    if kind == "point":
        return {"point": [float(xs.mean()), float(ys.mean())]}
    if kind == "polygon":
        return {"polygon": [[x0, y0, x1, y0, x1, y1, x0, y1]]}
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(obj.mask.astype(np.uint8)))
    return {"rle": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode()}}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("lmms_eval_checkpoints")
    return {
        "full": build_checkpoint("pixelrefer-tiny", root / "full"),
        "lite": build_checkpoint("pixelrefer-lite-tiny", root / "lite"),
    }


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    """Three PNG scenes and their objects."""
    root = tmp_path_factory.mktemp("lmms_eval_images")
    files = []
    for seed, size in ((1, (160, 224)), (2, (128, 128)), (3, (200, 150))):
        image, objects = make_scene(np.random.default_rng(seed), size=size, num_objects=3)
        path = root / f"scene{seed}.png"
        Image.fromarray(image).save(path)
        files.append((str(path), objects))
    return files


@pytest.fixture(scope="module")
def documents(scene_files):
    """Region documents (docs/evaluation.md schema): 4 open-ended ones and 4 multiple-choice ones."""
    (img0, obj0), (img1, obj1), (img2, obj2) = scene_files
    gen = [
        ("g0", img0, [region_of(obj0[0], "box_xywh")], "<image>\nWhat is <region>?", "What is <region>?"),
        ("g1", img1, [region_of(obj1[1], "polygon")], "What colour is <region>?", "What colour is <region>?"),
        ("g2", img2, [region_of(obj2[0], "point"), region_of(obj2[2], "rle")], "Compare <region> and <region>.", None),
        ("g3", img0, [region_of(obj0[1], "box")], "<image>\nName <region> in one word.", "Name <region>."),
    ]
    gen_docs = [
        {
            "id": doc_id,
            "image": image,
            "video": None,
            "regions": regions,
            "prompt": {"full": full, "lite": lite if lite is not None else full},
            "answer": "circle",
        }
        for doc_id, image, regions, full, lite in gen
    ]
    mc_docs = [
        {
            "id": f"m{index}",
            "image": image,
            "video": None,
            "regions": [region_of(objects[index % 3], "box")],
            "prompt": {"full": "<image>\nWhich shape is <region>?", "lite": "Which shape is <region>?"},
            "answer": index % 3,
            "options": OPTIONS,
        }
        for index, (image, objects) in enumerate([scene_files[0], scene_files[1], scene_files[2], scene_files[0]])
    ]
    return {"gen": gen_docs, "mc": mc_docs}


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory, documents):
    """A task folder for `--include_path`: generate_until, multiple_choice and multi-round tasks on local JSONL."""
    root = tmp_path_factory.mktemp("lmms_eval_tasks")
    cache = root / "hf_datasets_cache"
    for name, docs in documents.items():
        (root / f"{name}.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    (root / "utils.py").write_text(TASK_UTILS)
    gen_body = """\
        output_type: generate_until
        doc_to_visual: !function utils.doc_to_visual
        doc_to_text: !function utils.doc_to_text
        doc_to_target: answer
        generation_kwargs: {max_new_tokens: 5, temperature: 0, until: ["\\n\\n"]}
        process_results: !function utils.process_results
        metric_list:
          - metric: region_em
            aggregation: mean
            higher_is_better: true
    """
    mc_body = """\
        output_type: multiple_choice
        doc_to_visual: !function utils.doc_to_visual
        doc_to_text: !function utils.doc_to_text
        doc_to_choice: !function utils.doc_to_choice
        doc_to_target: answer
        metric_list:
          - metric: acc
            aggregation: mean
            higher_is_better: true
    """
    rounds_body = """\
        output_type: generate_until_multi_round
        doc_to_visual: !function utils.doc_to_visual
        doc_to_text: !function utils.rounds_doc_to_text
        doc_to_target: answer
        generation_kwargs: {max_new_tokens: 3, temperature: 0}
        process_results: !function utils.rounds_process_results
        metric_list:
          - metric: num_rounds
            aggregation: mean
            higher_is_better: true
    """
    (root / "gen.yaml").write_text(task_yaml(GEN_TASK, root / "gen.jsonl", cache, gen_body))
    (root / "mc.yaml").write_text(task_yaml(MC_TASK, root / "mc.jsonl", cache, mc_body))
    (root / "rounds.yaml").write_text(task_yaml(MR_TASK, root / "gen.jsonl", cache, rounds_body))
    return root


def evaluate(model, tasks, task_dir):
    from lmms_eval import evaluator
    from lmms_eval.tasks import TaskManager

    task_manager = TaskManager("WARNING", include_path=str(task_dir), include_defaults=False)
    return evaluator.simple_evaluate(model=model, tasks=tasks, task_manager=task_manager, limit=4, log_samples=True)


def per_document(result, task):
    """doc id -> (resps, filtered_resps) from log_samples."""
    return {sample["doc"]["id"]: (sample["resps"], sample["filtered_resps"]) for sample in result["samples"][task]}


def instance(request_type, args, task="t", doc_id=0):
    return Instance(
        request_type=request_type, arguments=args, idx=0, metadata={"task": task, "doc_id": doc_id, "repeats": 1}
    )


# --- documents -> processor inputs -------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["full", "lite"])
def test_document_inputs_reach_the_processor_with_one_region_span_per_region(checkpoints, documents, variant):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(checkpoints[variant], trust_remote_code=True)
    for doc in documents["gen"]:
        prompt, images, videos, regions = document_inputs(doc, variant)
        assert images == [doc["image"]] and videos == [] and len(regions) == len(doc["regions"])
        if variant == "full":  # one scene tag: kept when published, added when not
            assert prompt.count("<image>") == 1 and prompt.startswith("<image>\n")
        else:
            assert "<image>" not in prompt
        inputs = processor(text=prompt, images=images, regions=regions)
        ids = inputs["input_ids"][0].tolist()
        spans = _region_spans(ids, processor.region_token_id)
        assert len(spans) == len(doc["regions"])
        if variant == "lite":
            assert spans == [processor.mask_num] * len(regions)
        assert (processor.image_token_id in ids) == (variant == "full")


def _region_spans(ids, region_id):
    spans, current = [], 0
    for token in [*ids, -1]:
        if token == region_id:
            current += 1
        elif current:
            spans, current = [*spans, current], 0
    return spans


def test_document_inputs_cleans_datasets_artifacts_and_video_tags(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    doc = {
        "id": "v0",
        "image": None,
        "video": str(video),
        # datasets fills keys other documents have with None; JSON object keys are strings
        "regions": [{"box": None, "frames": {"3": {"box": [1, 2, 9, 9], "point": None}, "7": None}, "video": None}],
        "prompt": {"full": "<video>\nWhat does <region> do?", "lite": "What does <region> do?"},
    }
    prompt, images, videos, regions = document_inputs(doc, "full")
    assert prompt == "<video>\nWhat does <region> do?" and images == [] and videos == [str(video)]
    assert regions == [{"frames": {3: {"box": [1, 2, 9, 9]}}}]
    doc["prompt"]["full"] = "What does <region> do?"
    assert document_inputs(doc, "full").prompt == "<video>\nWhat does <region> do?"
    doc["prompt"]["lite"] = "<video>\nWhat does <region> do?"
    assert document_inputs(doc, "lite").prompt == "What does <region> do?"
    assert scene_prompt("<image>\nA <region>", "lite", True, False) == "A <region>"
    assert prompt_content("<image>\nWhat is <region>?") == [
        {"type": "image"},
        {"type": "text", "text": "What is <region>?"},
    ]


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda doc: doc.pop("regions"), "regions"),
        (lambda doc: doc.update(regions={"box": [0, 0, 4, 4]}), "regions"),
        (lambda doc: doc["regions"].append({"point": [3.0, 3.0]}), "prompt.full"),
        (lambda doc: doc.update(image="/nonexistent/scene.png"), "image"),
        (lambda doc: doc.update(image=None), "image/video"),
        (lambda doc: doc.update(prompt={"lite": "What is <region>?"}), "prompt.full"),
        (lambda doc: doc.update(prompt="What is <region>?"), "prompt"),
        (lambda doc: doc["regions"].__setitem__(0, "box"), "regions[0]"),
    ],
    ids=[
        "no-regions",
        "regions-not-list",
        "region-count",
        "missing-image",
        "no-media",
        "no-variant",
        "prompt-str",
        "bad-region",
    ],
)
def test_malformed_documents_raise_naming_id_and_key(documents, change, key):
    doc = json.loads(json.dumps(documents["gen"][1]))
    change(doc)
    with pytest.raises(DocumentError, match=re.escape(f"region document 'g1': {key}:")) as error:
        document_inputs(doc, "full")
    assert isinstance(error.value, ValueError)


# --- the wrapper ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wrappers(checkpoints):
    return {variant: PixelReferSimple(pretrained=str(path), device="cpu") for variant, path in checkpoints.items()}


def test_wrapper_arguments_and_defaults(checkpoints, wrappers):
    model = wrappers["full"]
    assert model.variant == "full" and wrappers["lite"].variant == "lite"
    assert model.device == torch.device("cpu") and model.model.dtype == torch.float32 and model.batch_size == 1
    assert model.rank == 0 and model.world_size == 1
    # --model_args values arrive as strings / numbers; None entries (unset CLI options) are ignored
    parsed = PixelReferChat.create_from_arg_string(
        f"pretrained={checkpoints['full']},device=cpu,dtype=float32,attn_implementation=eager,max_new_tokens=7",
        {"batch_size": "2", "max_batch_size": None, "device": None},
    )
    assert (
        parsed.batch_size == 2 and parsed.max_new_tokens == 7 and parsed.model.config._attn_implementation == "eager"
    )
    with pytest.raises(ValueError, match="dtype"):
        PixelReferSimple(pretrained=str(checkpoints["full"]), device="cpu", dtype="int8")


@pytest.mark.parametrize("typo", ["max_new_token", "devise"])
def test_unknown_model_arguments_are_refused_with_the_known_ones(checkpoints, typo):
    with pytest.raises(ValueError, match=rf"unknown argument\(s\) \['{typo}'\]; known: \['pretrained', 'device'"):
        PixelReferSimple.create_from_arg_string(f"pretrained={checkpoints['full']},{typo}=3")


@pytest.mark.parametrize("pretrained", ["/nonexistent", "./missing-folder", "~/missing/folder", "a/b/c"])
def test_a_missing_checkpoint_folder_is_named(pretrained):
    with pytest.raises(FileNotFoundError, match=f"pretrained={pretrained}: no such checkpoint folder"):
        PixelReferSimple(pretrained=pretrained, device="cpu")


def test_manifest_resolves_chat_and_simple_classes():
    from lmms_eval.models.registry_v2 import ModelRegistryV2

    from pixelrefer_plugin.integrations.lmms_eval.manifest import manifests

    registry = ModelRegistryV2()
    for manifest in manifests():
        registry.register_manifest(manifest)
    assert registry.get_model_class("pixelrefer") is PixelReferChat
    assert registry.get_model_class("pixelrefer_chat") is PixelReferChat
    assert registry.get_model_class("pixelrefer", force_simple=True) is PixelReferSimple


@pytest.mark.parametrize("manifest_first", [True, False], ids=["manifest-imported-first", "lmms-eval-first"])
def test_entry_point_registers_without_circular_import_warning(tmp_path, manifest_first):
    """lmms-eval finds `pixelrefer` through the entry point, whichever is imported first, and logs no warning."""
    code = textwrap.dedent(
        f"""
        if {manifest_first}:
            import pixelrefer_plugin.integrations.lmms_eval.manifest
        from lmms_eval.models import get_model
        assert get_model("pixelrefer").__name__ == "PixelReferChat"
        assert get_model("pixelrefer", force_simple=True).__name__ == "PixelReferSimple"
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    output = completed.stdout + completed.stderr
    assert "WARNING" not in output and "circular import" not in output, output[-2000:]


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_region_reaches_the_model(wrappers, documents, variant):
    """Two documents that differ only in the region give different log-likelihoods of the same answer."""
    model = wrappers[variant]
    doc = documents["mc"][0]
    other = {**doc, "id": "m0-other", "regions": [{"box": [0.0, 0.0, 12.0, 12.0]}]}
    model.task_dict = {"t": {"test": [doc, other]}}
    requests = [instance("loglikelihood", ("", " circle", None, i, "t", "test"), doc_id=i) for i in range(2)]
    (first, _), (second, _) = model.loglikelihood(requests)
    assert first != pytest.approx(second, abs=1e-6)


def test_generation_honours_gen_kwargs_and_names_bad_documents(wrappers, documents):
    model = wrappers["full"]
    docs = documents["gen"]
    model.task_dict = {"t": {"test": docs}}
    requests = [
        instance("generate_until", ("ctx", {"max_new_tokens": 3, "temperature": 0}, None, i, "t", "test"), doc_id=i)
        for i in range(3)
    ]
    results = model.generate_until(requests)
    assert all(0 < result.token_counts.output_tokens <= 3 for result in results)
    assert all(result.text == result.text.strip() for result in results)
    assert truncate_at_stop("a cat.\n\nQ: next", ["\n\n", "Q:"]) == "a cat."

    broken = {**docs[0], "id": "broken", "regions": []}
    model.task_dict = {"t": {"test": [broken]}}
    with pytest.raises(ValueError, match="region document 'broken': prompt.full: holds 1 <region>"):
        model.generate_until([instance("generate_until", ("ctx", {}, None, 0, "t", "test"))])


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_video_documents_through_the_wrapper(wrappers, tmp_path, variant):
    clip = moving_square(8)
    path = write_video(tmp_path / "clip.mp4", clip.frames, fps=4)
    box = {"box": [float(v) for v in clip.boxes[2]]}
    # as VideoRefer-D publishes it, the full prompt already starts with "<video>\n"; JSON frame keys are strings
    region = {"frame": 2, **box} if variant == "full" else {"frames": {"2": box, "5": {"box": clip.boxes[5]}}}
    doc = {
        "id": "v0",
        "image": None,
        "video": str(path),
        "regions": [region],
        "prompt": {"full": "<video>\nWhat does <region> do?", "lite": "What does <region> do?"},
    }
    model = wrappers[variant]
    sample = document_inputs(doc, variant)
    inputs = model._encode([model._chat_text([("user", sample.prompt)])], [sample], ["v0"])
    ids = inputs["input_ids"][0].tolist()
    video_token = model.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert (video_token in ids) == (variant == "full")
    assert ("pixel_values_videos" in inputs) == (variant == "full")
    assert len(_region_spans(ids, model.processor.region_token_id)) == (1 if variant == "full" else 2)
    model.task_dict = {"t": {"test": [doc]}}
    (result,) = model.generate_until(
        [instance("generate_until", ("ctx", {"max_new_tokens": 2}, None, 0, "t", "test"))]
    )
    assert isinstance(result.text, str)


def test_later_rounds_keep_the_regions(wrappers, documents):
    from pixelrefer_plugin.integrations.lmms_eval.model import _last_user_text

    model, doc = wrappers["full"], documents["gen"][2]
    turns, sample = model._round_turns(doc, 2, "And now: <region> or <region>?", "first answer")
    assert turns == [("user", "<image>\nAnd now: <region> or <region>?")] and len(sample.regions) == 2
    turns, sample = model._round_turns(doc, 2, "<image>\nWhich is larger?", "a <region> circle")
    assert turns == [
        ("user", "<image>\nCompare <region> and <region>."),
        ("assistant", "a  circle"),
        ("user", "Which is larger?"),
    ]
    with pytest.raises(DocumentError, match="holds 1 <region>"):
        model._round_turns(doc, 2, "Only <region>?", "")
    messages = [{"role": "user", "content": [{"type": "image", "url": None}, {"type": "text", "text": "Q2"}]}]
    assert _last_user_text(messages) == "Q2"


# --- lmms-eval end to end ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model_class", [PixelReferChat, PixelReferSimple], ids=["chat", "simple"])
def test_simple_evaluate_returns_metrics(checkpoints, task_dir, model_class):
    # lmms-eval's evaluator releases the model (lm.clean()) after a run, so every evaluation gets a new wrapper
    result = evaluate(model_class(pretrained=str(checkpoints["full"]), device="cpu"), [GEN_TASK], task_dir)
    metrics = result["results"][GEN_TASK]
    assert 0.0 <= metrics["region_em,none"] <= 1.0
    assert len(result["samples"][GEN_TASK]) == 4
    kind = "simple" if model_class.is_simple else "chat"
    assert result["config"]["model_backend"].endswith(f"{model_class.__name__} ({kind})")


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_batched_evaluation_equals_one_by_one(checkpoints, task_dir, variant):
    outputs = {}
    for batch_size in (1, 3):
        model = PixelReferChat(pretrained=str(checkpoints[variant]), device="cpu", batch_size=batch_size)
        outputs[batch_size] = per_document(evaluate(model, [GEN_TASK], task_dir), GEN_TASK)
    assert sorted(outputs[1]) == ["g0", "g1", "g2", "g3"]
    assert outputs[3] == outputs[1]
    answers = [filtered for _, filtered in outputs[1].values()]
    assert len({json.dumps(answer) for answer in answers}) > 1 and all(answer[0] for answer in answers)


def test_multiple_choice_loglikelihood_accuracy(checkpoints, task_dir):
    model = PixelReferSimple(pretrained=str(checkpoints["full"]), device="cpu", batch_size=2)
    result = evaluate(model, [MC_TASK], task_dir)
    assert 0.0 <= result["results"][MC_TASK]["acc,none"] <= 1.0
    for sample in result["samples"][MC_TASK]:
        assert len(sample["resps"]) == len(OPTIONS)
        assert all(isinstance(logprob, float) and logprob < 0 for ((logprob, _greedy),) in sample["resps"])


def test_batched_loglikelihood_equals_one_by_one(wrappers, documents):
    model = wrappers["full"]
    model.task_dict = {"t": {"test": documents["mc"]}}
    requests = [
        instance("loglikelihood", ("", f" {option}", None, i, "t", "test"), doc_id=i)
        for i in range(4)
        for option in OPTIONS
    ]
    alone = model.loglikelihood(requests)
    model.batch_size_per_gpu = 5
    try:
        batched = model.loglikelihood(requests)
    finally:
        model.batch_size_per_gpu = 1
    for (a, greedy_a), (b, greedy_b) in zip(alone, batched, strict=True):
        assert a == pytest.approx(b, abs=1e-4) and greedy_a == greedy_b


@pytest.mark.parametrize("model_class", [PixelReferSimple, PixelReferChat], ids=["simple", "chat"])
def test_multi_round_generation(checkpoints, task_dir, model_class):
    model = model_class(pretrained=str(checkpoints["full"]), device="cpu", batch_size=2)
    result = evaluate(model, [MR_TASK], task_dir)
    assert result["results"][MR_TASK]["num_rounds,none"] == 3.0
    for sample in result["samples"][MR_TASK]:
        rounds = sample["resps"][0][0]  # one request per document, one repeat: the list of round answers
        assert isinstance(rounds, list) and len(rounds) == 3 and all(isinstance(text, str) for text in rounds)


def test_cli_writes_results(checkpoints, task_dir, tmp_path):
    """`lmms-eval --model pixelrefer` through the entry point; the CLI exits 0 on failures unless --verbosity DEBUG,
    so the results JSON is checked too."""
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    script = Path(sys.executable).with_name("lmms-eval")  # the console script works without torchvision
    command = [str(script)] if script.exists() else [sys.executable, "-m", "lmms_eval"]
    command += ["--model", "pixelrefer"]
    command += ["--model_args", f"pretrained={checkpoints['full']},device=cpu", "--tasks", GEN_TASK]
    command += ["--include_path", str(task_dir), "--limit", "4", "--verbosity", "DEBUG", "--output_path", str(out)]
    # run outside the repository: a stale pixelrefer_plugin.egg-info left in the repository root by an old build
    # would shadow the installed entry points when the working directory is on sys.path (`python -m ...`)
    completed = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    result_files = sorted(out.glob("**/*_results.json"))
    assert result_files, completed.stdout[-3000:] + completed.stderr[-3000:]
    results = json.loads(result_files[-1].read_text())
    assert "region_em,none" in results["results"][GEN_TASK]


# --- segmenter=: point / box regions become SAM 2 masks --------------------------------------------------------------
@pytest.fixture(scope="module")
def sam2_folder(tmp_path_factory):
    from tiny_sam2 import tiny_sam2_folder

    return tiny_sam2_folder(tmp_path_factory.mktemp("lmms_eval_sam2"))


def _rle_region(region):
    """A SAM 2 mask region as a mask-annotated benchmark stores it: RLE in JSON."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(region["mask"].astype(np.uint8)))
    return {"rle": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode()}}


def test_segmenter_turns_boxes_and_points_into_sam2_masks(checkpoints, wrappers, documents, sam2_folder):
    from pixelrefer_plugin.segmentation import RegionSegmenter

    segmenting = PixelReferSimple(pretrained=str(checkpoints["full"]), device="cpu", segmenter=str(sam2_folder))
    # the box-only multiple-choice documents and a point + RLE one
    docs = [*documents["mc"], documents["gen"][2]]
    requests = [
        instance("loglikelihood", ("", f" {option}", None, i, "t", "test"), doc_id=i)
        for i in range(len(docs))
        for option in OPTIONS
    ]
    segmenting.task_dict = {"t": {"test": docs}}
    scores = [logprob for logprob, _ in segmenting.loglikelihood(requests)]

    # reference: the same segmenter run on its own, its masks written into the documents as RLE
    segmenter = RegionSegmenter.from_pretrained(str(sam2_folder), device="cpu")
    masked_docs, made = [], 0
    for doc in docs:
        regions = segmenter.to_masks([document_inputs(doc, "full").regions], images=[[doc["image"]]])[0]
        made += sum("mask" in region for region in regions)
        masked_docs.append({**doc, "regions": [_rle_region(r) if "mask" in r else r for r in regions]})
    assert made == len(documents["mc"]) + 1  # every box and the point; the RLE region passes through
    plain = wrappers["full"]
    plain.task_dict = {"t": {"test": masked_docs}}
    expected = [logprob for logprob, _ in plain.loglikelihood(requests)]
    plain.task_dict = {"t": {"test": docs}}
    unsegmented = [logprob for logprob, _ in plain.loglikelihood(requests)]

    assert scores == pytest.approx(expected, abs=1e-4)
    assert max(abs(a - b) for a, b in zip(scores, unsegmented, strict=True)) > 1e-3  # boxes are not their masks


def test_segmenter_runs_through_simple_evaluate_and_names_a_missing_checkpoint(checkpoints, task_dir, sam2_folder):
    model = PixelReferSimple(pretrained=str(checkpoints["full"]), device="cpu", segmenter=str(sam2_folder))
    result = evaluate(model, [MC_TASK], task_dir)
    assert 0.0 <= result["results"][MC_TASK]["acc,none"] <= 1.0
    assert all(len(sample["resps"]) == len(OPTIONS) for sample in result["samples"][MC_TASK])
    with pytest.raises(PixelReferInputError, match=r"^segmenter: "):
        PixelReferSimple(pretrained=str(checkpoints["full"]), device="cpu", segmenter=str(task_dir / "no-sam2"))
