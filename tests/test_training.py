# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""LoRA fine-tuning: the smoke recipe in-process, reload, merge, torchrun (gloo), DeepSpeed ZeRO-2 on CPU, resume."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText

from pixelrefer_plugin.presets import build_model_and_processor
from pixelrefer_plugin.training.lora import apply_lora, parameter_groups
from pixelrefer_plugin.training.merge import AdapterError, merge_adapter
from pixelrefer_plugin.training.recipe import RecipeError, load_recipe, parse_overrides, validate_recipe
from pixelrefer_plugin.training.trainer import FINAL_SAVE_DIR, run_training, training_arguments

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "recipes" / "smoke-tiny.yaml"
BIN = Path(sys.executable).parent
# What a launcher sets; a one-process start is tested without them.
LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def losses(output_dir: Path) -> list[float]:
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def probe_inputs(processor):
    rng = np.random.default_rng(5)
    image = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is <region>?"}]}],
        add_generation_prompt=True,
    )
    return processor(text=prompt, images=image, regions=[{"box": [20, 20, 70, 60]}])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The smoke recipe, run in-process (the same code `pixelrefer train` runs)."""
    output_dir = tmp_path_factory.mktemp("smoke")
    recipe = load_recipe(SMOKE, {"training.output_dir": str(output_dir)})
    return run_training(recipe)


def test_smoke_recipe_lowers_the_loss_and_saves_adapter_and_object_tokenizer(trained):
    history = losses(trained.output_dir)
    assert len(history) >= 4 and history[-1] < history[0]
    assert (trained.output_dir / "adapter_config.json").is_file()
    assert (trained.output_dir / "processor_config.json").is_file()
    assert not (trained.output_dir / FINAL_SAVE_DIR).exists()  # written there, then moved into output_dir
    saved = load_file(trained.output_dir / "adapter_model.safetensors")
    assert any("lora_A" in key and "language_model.layers" in key for key in saved)
    assert any(key.startswith("base_model.model.model.object_tokenizer.feat_linear") for key in saved)
    assert any(key.startswith("base_model.model.model.projector") for key in saved)
    assert any("trainable_tokens" in key for key in saved)  # the <REGION> embedding row
    assert not any("vision_model" in key for key in saved)
    # the object tokenizer really changed during training
    base = AutoModelForImageTextToText.from_pretrained(trained.base_model, trust_remote_code=True)
    key = "base_model.model.model.object_tokenizer.feat_linear.0.weight"  # modules_to_save are stored unwrapped
    assert not torch.allclose(saved[key], base.model.object_tokenizer.feat_linear[0].weight)


def test_reloaded_adapter_gives_identical_logits_and_merge_matches(trained, tmp_path):
    inputs = probe_inputs(trained.processor)
    trained.model.eval()
    with torch.no_grad():
        expected = trained.model(**inputs).logits
    base = AutoModelForImageTextToText.from_pretrained(trained.base_model, trust_remote_code=True)
    reloaded = PeftModel.from_pretrained(base, trained.output_dir).eval()
    with torch.no_grad():
        assert torch.equal(reloaded(**inputs).logits, expected)

    merged_dir = merge_adapter(trained.output_dir, tmp_path / "merged")
    assert (merged_dir / "modeling_pixelrefer.py").is_file()
    merged = AutoModelForImageTextToText.from_pretrained(merged_dir, trust_remote_code=True).eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs).logits, expected, rtol=1e-4, atol=1e-4)


def test_merge_refuses_a_folder_without_adapter(tmp_path):
    with pytest.raises(AdapterError, match="adapter_config.json"):
        merge_adapter(tmp_path, tmp_path / "out")


@pytest.mark.parametrize("preset", ["pixelrefer-tiny", "pixelrefer-lite-tiny"])
def test_lora_never_touches_the_vision_encoder(preset):
    model, _ = build_model_and_processor(preset)
    peft_model = apply_lora(model, {"r": 4, "alpha": 8})
    trainable = [name for name, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and not [name for name in trainable if "vision_model" in name]
    lora = [name for name in trainable if "lora_" in name]
    assert lora and all(".language_model.layers." in name for name in lora)
    fully_trained = {
        name.split(".modules_to_save")[0].rsplit(".", 1)[-1] for name in trainable if "modules_to_save" in name
    }
    assert fully_trained == (
        {"object_tokenizer", "object_infusion"} if "lite" in preset else {"object_tokenizer", "projector"}
    )
    # every vision-encoder weight stays frozen even without LoRA
    model, _ = build_model_and_processor(preset)
    full = apply_lora(model, {"enabled": False})
    assert all(not p.requires_grad for n, p in full.named_parameters() if n.startswith("model.vision_model."))
    assert all(p.requires_grad for n, p in full.named_parameters() if n.startswith("model.language_model."))


def test_parameter_groups_carry_the_per_module_learning_rates():
    model, _ = build_model_and_processor("pixelrefer-tiny")
    peft_model = apply_lora(model, {"r": 4, "alpha": 8})
    groups = parameter_groups(peft_model, {"object_tokenizer": 1e-3, "projector": 1e-5}, 2e-4, 0.1)
    by_name = {group["name"]: group for group in groups}
    assert by_name["object_tokenizer"]["lr"] == 1e-3 and by_name["projector"]["lr"] == 1e-5
    assert by_name["default"]["lr"] == 2e-4 and by_name["object_tokenizer_no_decay"]["weight_decay"] == 0.0
    grouped = sum(len(group["params"]) for group in groups)
    assert grouped == sum(1 for p in peft_model.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="unknown module"):
        parameter_groups(peft_model, {"vision_model": 1.0}, 2e-4, 0.0)


def test_recipe_overrides_and_errors(tmp_path):
    recipe = load_recipe(SMOKE, parse_overrides(["training.max_steps=3", "lora.r=2"]))
    assert recipe.training["max_steps"] == 3 and recipe.lora["r"] == 2
    assert recipe.output_dir == (REPO / "out" / "smoke-tiny").resolve()
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: pixelrefer-tiny\ndata: {train: x.json}\ntraining: {output_dir: out}\noptimiser: {}\n")
    with pytest.raises(RecipeError, match="unknown recipe key") as raised:
        load_recipe(bad)
    assert raised.value.key == "optimiser" and raised.value.path == str(bad)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["training.max_steps"])


@pytest.mark.parametrize("recipe_path", sorted((REPO / "recipes").glob("*.yaml")), ids=lambda path: path.stem)
def test_every_shipped_recipe_builds_its_training_arguments(recipe_path, tmp_path):
    """Each `training:` key of a shipped recipe is a TrainingArguments field of the installed transformers (the
    DeepSpeed config is left out here: it would set up a process group in the test process; the recipes start with it
    in `test_every_lora_recipe_trains_two_steps_on_the_tiny_preset`)."""
    recipe = load_recipe(recipe_path, {"training.output_dir": str(tmp_path)})
    recipe.training.pop("deepspeed", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # no deprecated TrainingArguments name
        arguments = training_arguments(recipe)
    assert arguments.output_dir == str(tmp_path)
    assert arguments.learning_rate == recipe.training["learning_rate"]


@pytest.fixture(scope="module")
def recipe_data(tmp_path_factory):
    """Eight image and video records in the published layout, for the shipped recipes."""
    from pixelrefer_plugin.training.synthetic import write_synthetic_dataset

    folder = tmp_path_factory.mktemp("recipe-data")
    return write_synthetic_dataset(folder, num_records=8, video_fraction=0.5), folder


@pytest.mark.parametrize("recipe_path", sorted((REPO / "recipes").glob("lora-*.yaml")), ids=lambda path: path.stem)
def test_every_lora_recipe_trains_two_steps_on_the_tiny_preset(recipe_path, recipe_data, tmp_path):
    """Each shipped LoRA recipe starts as one process, as a user first tries it (no launcher, DeepSpeed included: the
    -8gpu recipes set up a one-process distributed environment), and trains on the tiny preset of its variant and a
    small data set, as written except for the model, the data and the number of steps."""
    train_json, root = recipe_data
    preset = "pixelrefer-lite-tiny" if "-lite-" in recipe_path.name else "pixelrefer-tiny"
    settings = [f"model={preset}", f"data.train={train_json}", f"data.root={root}", "training.max_steps=2"]
    settings += [
        "training.gradient_accumulation_steps=1",
        "training.dataloader_num_workers=0",
        "training.save_steps=2",
    ]
    command = [sys.executable, "-m", "pixelrefer_plugin.cli", "train", str(recipe_path)]
    env = {name: value for name, value in os.environ.items() if name not in LAUNCHER_VARIABLES}
    result = run_command(command + [part for setting in settings for part in ("--set", setting)], tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert json.loads((tmp_path / "trainer_state.json").read_text())["global_step"] == 2
    assert (tmp_path / "adapter_model.safetensors").exists()
    args = torch.load(tmp_path / "training_args.bin", weights_only=False)
    assert bool(args.deepspeed) == ("8gpu" in recipe_path.name)
    if args.deepspeed:
        assert "no launcher set the distributed environment: running DeepSpeed as one process" in result.stderr
    assert (tmp_path / "checkpoint-2" / "global_step2").is_dir() == bool(args.deepspeed)  # DeepSpeed's checkpoint


def run_command(command, output_dir, timeout=400, env=None, **kwargs):
    env = {**(os.environ if env is None else env), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [*command, "--set", f"training.output_dir={output_dir}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def test_smoke_recipe_under_torchrun_with_two_processes(tmp_path):
    command = [str(BIN / "torchrun"), "--nproc_per_node", "2", "-m", "pixelrefer_plugin.cli", "train", str(SMOKE)]
    result = run_command([*command, "--set", "training.max_steps=6", "--set", "training.save_steps=3"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    args = torch.load(tmp_path / "training_args.bin", weights_only=False)
    assert args.world_size == 2
    assert (tmp_path / "adapter_model.safetensors").is_file()


def test_smoke_recipe_with_deepspeed_zero2_on_cpu(tmp_path):
    """Launched as DeepSpeed expects (its own launcher, which passes --local_rank before the subcommand)."""
    command = [str(BIN / "deepspeed"), "--num_gpus", "1", "--module", "pixelrefer_plugin.cli", "train", str(SMOKE)]
    settings = ["--set", "training.max_steps=4", "--set", "training.save_steps=2"]
    result = run_command([*command, *settings, "--set", "training.deepspeed=deepspeed/zero2.json"], tmp_path, 600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    checkpoint = tmp_path / "checkpoint-4"
    assert (checkpoint / "global_step4").is_dir()  # a DeepSpeed ZeRO checkpoint, not a plain Trainer one
    zero_state = next((checkpoint / "global_step4").glob("*optim_states.pt"))
    assert zero_state.stat().st_size > 0
    assert (tmp_path / "adapter_model.safetensors").is_file()
    assert json.loads((tmp_path / "trainer_state.json").read_text())["global_step"] == 4


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    command = [str(BIN / "pixelrefer"), "train", str(SMOKE), "--set", "training.max_steps=120"]
    command += ["--set", "training.save_steps=5", "--set", "training.save_total_limit=3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [*command, "--set", f"training.output_dir={tmp_path}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not (tmp_path / "checkpoint-10" / "trainer_state.json").exists():
        assert process.poll() is None, "the run ended before writing checkpoint-10"
        assert time.time() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "trainer_state.json").exists()  # the first run never finished
    killed_at = max(int(p.name.split("-")[1]) for p in tmp_path.glob("checkpoint-*"))
    assert killed_at < 120

    result = run_command(command, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from" in result.stderr
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    assert state["global_step"] == 120
    steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert steps == sorted(steps) and steps[0] == 5  # the log history continues the first run's


def test_smoke_recipe_under_accelerate_with_activation_checkpointing(tmp_path):
    # `python -m accelerate.commands.launch` is the `accelerate launch` console script; the script itself cannot start
    # where timm is installed without torchvision (CPU machines), see docs/fine-tuning.md.
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu"]
    command += ["-m", "pixelrefer_plugin.cli", "train", str(SMOKE), "--skip-invalid"]
    settings = ["--set", "training.max_steps=3", "--set", "training.activation_checkpointing=true"]
    result = run_command([*command, *settings], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    args = torch.load(tmp_path / "training_args.bin", weights_only=False)
    assert args.activation_checkpointing
    assert json.loads((tmp_path / "trainer_state.json").read_text())["global_step"] == 3


@pytest.mark.parametrize("learning_rate", [-1e-4, 0.0, float("nan")], ids=["negative", "zero", "nan"])
def test_training_refuses_a_learning_rate_that_is_not_positive(learning_rate, tmp_path):
    """The per-module optimizer groups bypass the optimizer's own check: the recipe is checked before anything runs,
    also when it is built in Python."""
    recipe = load_recipe(SMOKE, {"training.output_dir": str(tmp_path / "out")})
    recipe.training["learning_rate"] = learning_rate
    with pytest.raises(RecipeError, match="expected a positive finite number") as raised:
        run_training(recipe)
    assert raised.value.key == "training.learning_rate"
    assert not (tmp_path / "out").exists()
    recipe.training["learning_rate"] = 1e-4
    recipe.learning_rates["projector"] = learning_rate
    with pytest.raises(RecipeError) as raised:
        validate_recipe(recipe)
    assert raised.value.key == "learning_rates.projector"


def test_recipe_typos_are_refused_with_the_closest_key(tmp_path):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text(
        "model: pixelrefer-tiny\ndata: {train: x.json}\nlora: {r: 4, dropuot: 0.3}\ntraining: {output_dir: out}\n"
    )
    with pytest.raises(RecipeError, match="did you mean 'dropout'") as raised:
        load_recipe(recipe)
    assert raised.value.key == "lora.dropuot"


def test_without_a_launcher_a_deepspeed_run_gets_a_one_process_environment():
    from pixelrefer_plugin.training.distributed import set_up_single_process

    bare = {name: value for name, value in os.environ.items() if name not in LAUNCHER_VARIABLES}
    with mock.patch.dict(os.environ, bare, clear=True):
        assert set_up_single_process()
        assert [os.environ[name] for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE")] == ["0", "0", "1"]
        assert os.environ["MASTER_ADDR"] == "127.0.0.1" and int(os.environ["MASTER_PORT"]) > 0
    launched = {**bare, "RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "MASTER_PORT": "29511"}
    with mock.patch.dict(os.environ, launched, clear=True):
        assert not set_up_single_process()  # a launcher's environment is left as it is
        assert os.environ["WORLD_SIZE"] == "2" and os.environ["MASTER_PORT"] == "29511"


def test_deepspeed_that_cannot_run_is_refused_in_one_line_before_anything_runs(tmp_path):
    from pixelrefer_plugin.training.distributed import check_deepspeed

    recipe = load_recipe(SMOKE, {"training.output_dir": str(tmp_path / "out"), "training.deepspeed": "missing.json"})
    with pytest.raises(RecipeError, match=r"missing\.json does not exist; expected a DeepSpeed JSON config") as raised:
        run_training(recipe)
    assert raised.value.key == "training.deepspeed" and "\n" not in str(raised.value)
    assert not (tmp_path / "out").exists()
    config = REPO / "recipes" / "deepspeed" / "zero3.json"
    with pytest.raises(RecipeError, match=r"DeepSpeed ZeRO does not run on 'mps' devices.*training.deepspeed=null"):
        check_deepspeed(config, torch.device("mps"))
    if not torch.cuda.is_available():
        with pytest.raises(RecipeError, match=r"DeepSpeed's accelerator is 'cpu' but training runs on 'cuda'"):
            check_deepspeed(config, torch.device("cuda"))


def test_zero3_refuses_batches_that_would_run_different_modules_on_different_processes():
    """The full model projects a batch's images and videos in separate projector calls; ZeRO-3 gathers weights with
    a collective per call, so mixed data on several processes is refused before the first step (it would hang)."""
    from pixelrefer_plugin.training.data import RegionSample
    from pixelrefer_plugin.training.distributed import check_zero3_batches

    mixed = [RegionSample(messages=[], images=["a.png"]), RegionSample(messages=[], videos=["b.mp4"])]
    with pytest.raises(RecipeError, match="mixes 1 image and 1 video records") as raised:
        check_zero3_batches(mixed, "full", world_size=2)
    assert raised.value.key == "training.deepspeed"
    check_zero3_batches(mixed, "full", world_size=1)  # one process: nothing to agree with
    check_zero3_batches(mixed, "lite", world_size=2)  # Lite has no scene projector
    check_zero3_batches(mixed[1:], "full", world_size=2)
