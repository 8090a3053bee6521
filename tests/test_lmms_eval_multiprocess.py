# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`--model pixelrefer` in several lmms-eval processes (accelerate, gloo on the CPU): the documents are shared out and
the per-document answers equal a single-process run's."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from random_checkpoints import build_checkpoint

pytest.importorskip("lmms_eval")

TASK = "pixelrefer_lvis_fixture"
LIMIT = 8


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A fresh tiny preset answers "" to every document, which would make the comparison empty: use one with its
    matrices redrawn."""
    return build_checkpoint("pixelrefer-tiny", tmp_path_factory.mktemp("ckpt") / "tiny")


def run_lmms_eval(
    launcher: list[str], checkpoint: Path, task_dir: Path, out: Path, env: dict
) -> tuple[dict, dict, str]:
    """Run the CLI; return the task's results and doc_id -> filtered answer (read from the files it wrote), and the log.

    lmms-eval's CLI exits 0 on failures unless `--verbosity DEBUG`, so both the exit status and the files are checked.
    It runs outside the repository: a stale egg-info in the working directory would hide the entry points.
    """
    command = [*launcher, "-m", "lmms_eval", "--model", "pixelrefer", "--model_args", f"pretrained={checkpoint}"]
    command += ["--tasks", TASK, "--include_path", str(task_dir), "--limit", str(LIMIT)]
    command += ["--verbosity", "DEBUG", "--output_path", str(out), "--log_samples"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **env}
    completed = subprocess.run(command, cwd=out.parent, env=env, capture_output=True, text=True, timeout=280)
    log = completed.stdout + completed.stderr
    assert completed.returncode == 0, log[-4000:]
    (results_file,) = out.glob("**/*_results.json")
    (samples_file,) = out.glob(f"**/*_samples_{TASK}.jsonl")
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    answers = {sample["doc_id"]: sample["filtered_resps"] for sample in samples}
    assert len(answers) == len(samples) == LIMIT, log[-4000:]
    return json.loads(results_file.read_text())["results"][TASK], answers, log


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.timeout(300)
def test_two_processes_share_the_documents_and_give_the_single_process_answers(checkpoint, task_dir, tmp_path):
    single, single_answers, _ = run_lmms_eval([sys.executable], checkpoint, task_dir, tmp_path / "single", {})
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
        launcher, checkpoint, task_dir, tmp_path / "double", {"ACCELERATE_USE_CPU": "1"}
    )
    assert "Running on rank 1" in log and log.count("number of requests on this rank: 4") == 2, log[-4000:]
    assert double_answers == single_answers
    assert len({json.dumps(answer) for answer in single_answers.values()}) > 1 and all(
        answer[0] for answer in single_answers.values()
    )
    for metric in ("ssim,none", "siou,none"):
        assert double[metric] == pytest.approx(single[metric])


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
