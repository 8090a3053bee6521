# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`--model pixelrefer` in several lmms-eval processes (accelerate, gloo on the CPU): the documents are shared out and
the per-document answers, and the results merged from both processes, equal a single-process run's: for a task scored
from generated category names (SSim / SIoU) and for an LLM-judged task (Ferret-Bench's relative score, with a FAKE
judge: a local OpenAI-compatible server whose canned scores depend on the answer it is sent)."""

import json
import os
import re
import socket
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch
from fake_judge import FakeJudgeServer
from random_checkpoints import build_checkpoint

pytest.importorskip("lmms_eval")

GENERATED = "pixelrefer_lvis_fixture"
JUDGED = "pixelrefer_ferret_fixture"
TASKS = (GENERATED, JUDGED)
LIMIT = 8


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A fresh tiny preset answers "" to every document, which would make the comparison empty: use one with its
    matrices redrawn."""
    return build_checkpoint("pixelrefer-tiny", tmp_path_factory.mktemp("ckpt") / "tiny")


def judge_reply(user: str) -> str:
    """The fake judge's "model reference" scores: the model's score is drawn from its answer's text, so the merged
    relative score depends on every answer and on each being judged once."""
    answer = re.search(r"\[Assistant 1\]\n(.*?)\n\n\[End of Assistant 1\]", user, re.S).group(1)
    return f"{1 + zlib.crc32(answer.encode()) % 9} 8\nCanned by the test."


@pytest.fixture(scope="module")
def judge() -> FakeJudgeServer:
    with FakeJudgeServer(judge_reply).running() as server:
        yield server


def run_lmms_eval(
    launcher: list[str], checkpoint: Path, task_dir: Path, out: Path, env: dict
) -> tuple[dict, dict, str]:
    """Run the CLI on both tasks; return each task's results and doc_id -> filtered answer (read from the files it
    wrote), and the log.

    lmms-eval's CLI exits 0 on failures unless `--verbosity DEBUG`, so both the exit status and the files are checked.
    It runs outside the repository: a stale egg-info in the working directory would hide the entry points.
    """
    command = [*launcher, "-m", "lmms_eval", "--model", "pixelrefer", "--model_args", f"pretrained={checkpoint}"]
    command += ["--tasks", ",".join(TASKS), "--include_path", str(task_dir), "--limit", str(LIMIT)]
    command += ["--verbosity", "DEBUG", "--output_path", str(out), "--log_samples"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **env}
    completed = subprocess.run(command, cwd=out.parent, env=env, capture_output=True, text=True, timeout=400)
    log = completed.stdout + completed.stderr
    assert completed.returncode == 0, log[-4000:]
    (results_file,) = out.glob("**/*_results.json")
    results, answers = json.loads(results_file.read_text())["results"], {}
    for task in TASKS:
        (samples_file,) = out.glob(f"**/*_samples_{task}.jsonl")
        samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
        answers[task] = {sample["doc_id"]: sample["filtered_resps"] for sample in samples}
        assert len(answers[task]) == len(samples) == LIMIT, log[-4000:]
    return results, answers, log


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.timeout(600)
def test_two_processes_share_the_documents_and_give_the_single_process_results(checkpoint, task_dir, judge, tmp_path):
    judge_env = {
        "PIXELREFER_JUDGE_BASE_URL": judge.base_url,
        "PIXELREFER_JUDGE_MODEL": "fake-judge-model",
        "PIXELREFER_JUDGE_API_KEY": "fake",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    single, single_answers, _ = run_lmms_eval([sys.executable], checkpoint, task_dir, tmp_path / "single", judge_env)
    single_judged = len(judge.requests)
    # `accelerate launch --cpu --num_processes 2` starts ONE process (accelerate's CPU multi-process path is mpirun);
    # torchrun-style processes with gloo on the CPU are `--multi_gpu` plus ACCELERATE_USE_CPU=1
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launcher += [
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "0",
    ]
    double, double_answers, log = run_lmms_eval(
        launcher, checkpoint, task_dir, tmp_path / "double", {"ACCELERATE_USE_CPU": "1", **judge_env}
    )
    shared_out = log.count("number of requests on this rank: 4") == 2 * len(TASKS)  # 4 + 4 documents per task
    assert "Running on rank 1" in log and shared_out, log[-4000:]
    # every document judged once in each run, by whichever process generated its answer
    assert single_judged == LIMIT and len(judge.requests) == 2 * LIMIT
    assert double_answers == single_answers
    for task in TASKS:
        answers = single_answers[task].values()
        assert len({json.dumps(answer) for answer in answers}) > 1 and all(answer[0] for answer in answers), task
    for metric in ("ssim,none", "siou,none"):
        assert double[GENERATED][metric] == pytest.approx(single[GENERATED][metric])
    # the merged judged score: mean(model) / mean(reference) x 100 over the 8 documents of both processes
    assert 0 < single[JUDGED]["relative_score,none"] <= 9 / 8 * 100 and single[JUDGED]["judge_unparsed,none"] == 0
    for metric in ("relative_score,none", "judge_unparsed,none", "judge_temperature,none"):
        assert double[JUDGED][metric] == pytest.approx(single[JUDGED][metric])


def test_processes_without_a_process_group_are_refused(checkpoint, monkeypatch):
    """torchrun / `--multi_gpu` without GPUs and without ACCELERATE_USE_CPU: each process would see itself alone and
    evaluate every document."""
    from pixelrefer_plugin.integrations.lmms_eval.model import PixelReferChat

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    if torch.cuda.is_available():
        pytest.skip("with GPUs accelerate sets up the process group")
    with pytest.raises(RuntimeError, match=r"WORLD_SIZE=2 processes, but accelerate set up no process group.*ACCEL"):
        PixelReferChat(pretrained=str(checkpoint), device="cpu")
