# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The multi-GPU recipes on 2 processes (CPU: gloo and DeepSpeed's CPU accelerator): each shipped DeepSpeed config
(ZeRO-2, ZeRO-3, ZeRO-3 with CPU offload) and plain DDP give the adapter of 1 process of the same recipe with the
same global batch and seed; a killed ZeRO-3 run resumes to the adapter of an uninterrupted one; a ZeRO-3 adapter
merges.

Slow, the slowest tests of the suite: 8.5 min for this file measured on 2 cores shared with other jobs (6.2
CPU-minutes). Each configuration is 2 training runs of 12-35 s; in each test session DeepSpeed also compiles its
shared-memory op on the first DeepSpeed run (~30-90 s, shared with tests/test_training.py) and its CPU Adam on the
first offload run (~1.5-2.5 min), into the session's temporary cache.

Device: the CPU unless `--device cuda` (an option of the suite's conftest) names GPUs; 2 processes need 2 GPUs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from helpers import build_checkpoint, user_prompt
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
BIN = Path(sys.executable).parent
STEPS = 4
PER_DEVICE_BATCH = 2
# The launchers' variables: a one-process run must start without them, as a user's shell would.
LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
# Largest |2-process - 1-process| of any adapter tensor after STEPS steps. The runs see the same micro-batches in the
# same order with the same seed, so only the order of the gradient sums differs: 1 process accumulates its
# micro-batches in turn; 2 processes each accumulate their half, then the all-reduce (DDP) or ZeRO's reduce-scatter
# averages them and the gradient norm for clipping is summed over partitions; with offload, DeepSpeed's CPU Adam
# updates partitions of other lengths. Measured on the CPU: DDP 0, ZeRO-2 7e-9, ZeRO-3 1.5e-8, ZeRO-3 offload
# 5.6e-7 (float32 rounding, enlarged by Adam where a gradient element is near its eps). A wrong reduction is larger:
# DDP with the loss averaged per process instead of over both processes' tokens (average_tokens_across_devices=false)
# moves the adapter by 3e-3. 1e-5 sits 18x above the largest rounding difference and 300x below that.
TOLERANCE = 1e-5


@dataclass(frozen=True)
class Config:
    """One configuration: the recipe as shipped (plus `extra` settings), its preset and data, how 2 processes are
    launched, and the gradient accumulation of the 2-process run (the 1-process run accumulates twice as many
    micro-batches: the same global batch)."""

    recipe: str
    preset: str
    data: str
    launcher: str
    accumulation: int
    extra: tuple[str, ...] = ()


CONFIGS = {
    # lora-image-8gpu as shipped: ZeRO-2, full variant, under DeepSpeed's own launcher
    "zero2": Config("lora-image-8gpu.yaml", "pixelrefer-tiny", "image", "deepspeed", 2),
    # lora-video-8gpu as shipped: ZeRO-3, full variant on video records (ZeRO-3 needs one kind of scene per batch)
    "zero3": Config("lora-video-8gpu.yaml", "pixelrefer-tiny", "video", "torchrun", 2),
    # the Lite recipe with the offload config: ZeRO-3, optimizer and parameters on the CPU, Lite's OCI partitioned
    "zero3_offload": Config(
        "lora-lite-8gpu.yaml",
        "pixelrefer-lite-tiny",
        "mixed",
        "torchrun",
        2,
        ("training.deepspeed=deepspeed/zero3_offload.json",),
    ),
    # a one-GPU recipe under accelerate launch: plain DDP
    "ddp": Config("lora-image-1gpu.yaml", "pixelrefer-tiny", "mixed", "accelerate", 1),
}


def device_under_test(config: pytest.Config) -> str:
    """`--device` (declared by the suite's conftest), else the CPU."""
    return config.getoption("device", default=None) or "cpu"


def process_environment(device: str) -> dict[str, str]:
    """The training processes' environment: no launcher variables of the test's own; on the CPU, no GPU seen and
    ACCELERATE_USE_CPU=1 (what `accelerate launch --cpu` sets; the DDP run needs it for gloo, and the DeepSpeed runs
    must stay DeepSpeed runs with it)."""
    env = {name: value for name, value in os.environ.items() if name not in LAUNCHER_VARIABLES}
    env.update({"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"})
    if device == "cpu":
        env.update({"CUDA_VISIBLE_DEVICES": "", "DS_ACCELERATOR": "cpu", "ACCELERATE_USE_CPU": "1"})
    return env


def launch(launcher: str, processes: int) -> list[str]:
    """The command that starts `pixelrefer train` on `processes` processes (1: no launcher, as a user would)."""
    if processes == 1:
        return [sys.executable, "-m", "pixelrefer_plugin.cli"]
    if launcher == "torchrun":
        return [str(BIN / "torchrun"), "--nproc_per_node", str(processes), "-m", "pixelrefer_plugin.cli"]
    if launcher == "deepspeed":
        deepspeed = [str(BIN / "deepspeed"), "--num_gpus", str(processes), "--master_port", str(free_port())]
        return [*deepspeed, "--module", "pixelrefer_plugin.cli"]
    # `accelerate launch --cpu --num_processes 2` starts one process (its CPU multi-process path is mpirun); torchrun-
    # style processes are `--multi_gpu` (with ACCELERATE_USE_CPU=1 on a CPU)
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes)]
    accelerate += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return [*accelerate, "--main_process_port", "0", "-m", "pixelrefer_plugin.cli"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_command(config: Config, processes: int, base: Path, data: Path, output_dir: Path) -> list[str]:
    """The recipe as shipped except: the tiny base, the data, STEPS steps, the global batch, no LoRA dropout (its
    random masks are drawn per process) and float32 (bf16 rounding would hide the comparison)."""
    accumulation = config.accumulation * (2 // processes)
    settings = [
        f"model={base}",
        f"data.train={data / 'train.json'}",
        f"data.root={data}",
        f"training.output_dir={output_dir}",
        f"training.max_steps={STEPS}",
        f"training.per_device_train_batch_size={PER_DEVICE_BATCH}",
        f"training.gradient_accumulation_steps={accumulation}",
        "training.save_steps=2",
        "training.logging_steps=1",
        "training.dataloader_num_workers=0",
        "training.bf16=false",
        "lora.dropout=0.0",
        *config.extra,
    ]
    command = [*launch(config.launcher, processes), "train", str(RECIPES / config.recipe)]
    return command + [part for setting in settings for part in ("--set", setting)]


def run(command: list[str], env: dict[str, str], timeout: int = 500) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result


@pytest.fixture(scope="module")
def device(request) -> str:
    device = device_under_test(request.config)
    if device == "cuda" and torch.cuda.device_count() < 2:
        pytest.skip("2 processes on CUDA need 2 GPUs")
    return device


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("multiprocess")


@pytest.fixture(scope="module")
def bases(workspace) -> dict[str, Path]:
    """Tiny bases of both variants whose greedy answers are not blank (a fresh tiny preset echoes the prompt)."""
    return {
        preset: Path(build_checkpoint(preset, workspace / preset))
        for preset in ("pixelrefer-tiny", "pixelrefer-lite-tiny")
    }


@pytest.fixture(scope="module")
def datasets(workspace) -> dict[str, Path]:
    """16 generated records in the published layout: images, videos (4-frame clips), or both."""
    from pixelrefer_plugin.training.synthetic import write_synthetic_dataset

    fractions = {"image": 0.0, "video": 1.0, "mixed": 0.5}
    folders = {}
    for name, fraction in fractions.items():
        folders[name] = workspace / f"data-{name}"
        write_synthetic_dataset(folders[name], num_records=16, seed=3, video_fraction=fraction)
    return folders


@dataclass
class Runs:
    """A configuration trained on 1 and on 2 processes, and the seconds each run took."""

    config: Config
    base: Path
    data: Path
    single: Path
    double: Path
    env: dict[str, str]
    seconds: dict[int, float]


@pytest.fixture(scope="module")
def trained(device, workspace, bases, datasets):
    """`trained(name)`: the configuration `name` trained on 1 and 2 processes, once per module."""
    done: dict[str, Runs] = {}

    def train(name: str) -> Runs:
        if name not in done:
            config = CONFIGS[name]
            base, data = bases[config.preset], datasets[config.data]
            env = process_environment(device)
            outputs, seconds = {}, {}
            for processes in (1, 2):
                outputs[processes] = workspace / f"{name}-{processes}"
                started = time.monotonic()
                run(train_command(config, processes, base, data, outputs[processes]), env)
                seconds[processes] = round(time.monotonic() - started, 1)
            done[name] = Runs(config, base, data, outputs[1], outputs[2], env, seconds)
        return done[name]

    return train


@pytest.fixture(scope="module", params=list(CONFIGS))
def runs(request, trained) -> Runs:
    return trained(request.param)


def adapter(output_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(output_dir / "adapter_model.safetensors")


def largest_difference(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> float:
    assert first.keys() == second.keys()
    for key in first:
        assert first[key].shape == second[key].shape, key
    return max(float((first[key] - second[key]).abs().max()) for key in first)


def test_two_processes_train_the_adapter_of_one_process(runs):
    """Same micro-batches, same order, same seed: the adapters (LoRA, object tokenizer, OCI / projector, the
    <REGION> row) agree within float32 reduction-order rounding (see TOLERANCE)."""
    state = json.loads((runs.double / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS
    args = torch.load(runs.double / "training_args.bin", weights_only=False)
    assert args.world_size == 2
    single, double = adapter(runs.single), adapter(runs.double)
    difference = largest_difference(single, double)
    print(f"\n{runs.config.recipe}: largest |2 - 1 process| {difference:.3g}; seconds {runs.seconds}")
    assert difference <= TOLERANCE
    # the comparison is not vacuous: training moved the fully trained modules far more than the tolerance
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(runs.base, trust_remote_code=True).state_dict()
    prefix = "base_model.model."
    moved = [
        float((value - base[key[len(prefix) :]]).abs().max())
        for key, value in single.items()
        if "object_tokenizer" in key and key[len(prefix) :] in base
    ]
    assert moved and min(moved) > 0 and max(moved) > 50 * TOLERANCE


def test_the_two_process_adapter_lowers_the_loss_and_generates(runs):
    """The adapter a multi-process run saved loads with peft (every tensor whole, the object tokenizer included),
    has a lower loss on the training records than the base, and answers as the 1-process adapter does."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from pixelrefer_plugin.training.data import RegionConversationDataset, RegionDataCollator

    processor = AutoProcessor.from_pretrained(runs.double, trust_remote_code=True)
    variant = "lite" if "lite" in runs.config.preset else "full"
    samples = RegionConversationDataset(runs.data / "train.json", runs.data, variant=variant)
    batch = RegionDataCollator(processor)([samples[index] for index in range(8)])
    probe = processor(
        text=user_prompt(processor, "What colour is <region>?"),
        images=torch.randint(
            0, 255, (96, 128, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
        ).numpy(),
        regions=[{"box": [20, 20, 70, 60]}],
    )

    def loss_and_answer(adapter_dir: Path | None) -> tuple[float, list[int]]:
        model = AutoModelForImageTextToText.from_pretrained(runs.base, trust_remote_code=True)
        if adapter_dir is not None:
            model = PeftModel.from_pretrained(model, adapter_dir)
        model.eval()
        with torch.no_grad():
            loss = float(model(**batch).loss)
            answer = model.generate(**probe, max_new_tokens=6, do_sample=False)[0, probe["input_ids"].shape[1] :]
        return loss, answer.tolist()

    base_loss, _ = loss_and_answer(None)
    single_loss, single_answer = loss_and_answer(runs.single)
    double_loss, double_answer = loss_and_answer(runs.double)
    assert double_loss < base_loss
    assert double_loss == pytest.approx(single_loss, abs=1e-4)
    assert len(double_answer) > 0 and double_answer == single_answer
    saved = adapter(runs.double)
    assert any(".object_tokenizer." in key for key in saved)
    assert all(tensor.numel() > 0 for tensor in saved.values())  # ZeRO-3: gathered, not the empty partitions


def kill_with_children(process: subprocess.Popen) -> None:
    """SIGKILL a launcher and the training processes it started (torchrun starts them in sessions of their own)."""
    import psutil

    children = psutil.Process(process.pid).children(recursive=True)
    process.kill()
    for child in children:
        child.kill()
    psutil.wait_procs(children, timeout=30)
    process.wait()


@pytest.fixture(scope="module")
def zero3(trained) -> Runs:
    return trained("zero3")


def test_a_killed_zero3_run_resumes_to_the_adapter_of_an_uninterrupted_one(zero3, tmp_path):
    """Killed (SIGKILL, both processes and torchrun) after its checkpoint at step 2, then started again with the same
    command (`resume: auto`): it continues from the DeepSpeed checkpoint (partitioned optimizer state, scheduler,
    data order) and ends with the uninterrupted run's adapter."""
    command = train_command(zero3.config, 2, zero3.base, zero3.data, tmp_path)
    process = subprocess.Popen(command, cwd=REPO, env=zero3.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "checkpoint-2"
    deadline = time.monotonic() + 400
    try:
        # trainer_state.json is written last, after every process wrote its ZeRO shard and RNG state
        while not all((checkpoint / name).is_file() for name in ("trainer_state.json", "rng_state_1.pth")):
            assert process.poll() is None, "the run ended before writing checkpoint-2"
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        kill_with_children(process)
    assert not (tmp_path / "trainer_state.json").exists(), "the first run finished before it was killed"
    assert not (tmp_path / f"checkpoint-{STEPS}").exists()

    result = run(command, zero3.env)
    assert f"resuming from {checkpoint}" in result.stdout + result.stderr  # torchrun may join the two
    assert json.loads((tmp_path / "trainer_state.json").read_text())["global_step"] == STEPS
    resumed, uninterrupted = adapter(tmp_path), adapter(zero3.double)
    difference = largest_difference(resumed, uninterrupted)
    print(f"\nresumed vs uninterrupted ZeRO-3: largest difference {difference:.3g}")
    assert difference <= TOLERANCE


def test_merge_of_a_zero3_adapter_gives_the_logits_of_the_adapter(zero3, tmp_path):
    """`pixelrefer merge` of what a 2-process ZeRO-3 run saved: the standalone checkpoint's logits are those of the
    adapter applied in memory with peft."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    merged_dir = tmp_path / "merged"
    run(
        [sys.executable, "-m", "pixelrefer_plugin.cli", "merge", str(zero3.double), "--out", str(merged_dir)],
        zero3.env,
    )
    processor = AutoProcessor.from_pretrained(merged_dir, trust_remote_code=True)
    inputs = processor(
        text=user_prompt(processor, "What is <region> doing?"),
        images=torch.randint(
            0, 255, (80, 112, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2)
        ).numpy(),
        regions=[{"box": [10, 12, 60, 50]}],
    )
    base = AutoModelForImageTextToText.from_pretrained(zero3.base, trust_remote_code=True)
    in_memory = PeftModel.from_pretrained(base, zero3.double).eval()
    merged = AutoModelForImageTextToText.from_pretrained(merged_dir, trust_remote_code=True).eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    with torch.no_grad():
        expected = in_memory(**inputs).logits
        torch.testing.assert_close(merged(**inputs).logits, expected, rtol=1e-4, atol=1e-4)
