# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""What the `pixelrefer` command prints: each result once on stdout, progress logged on stderr, no third-party noise,
one line per run under torchrun, and a help text for every subcommand."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pixelrefer_plugin
from pixelrefer_plugin.cli import COMMANDS
from pixelrefer_plugin.cli.output import quiet_deepspeed

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "recipes" / "smoke-tiny.yaml"
BIN = Path(sys.executable).parent
DEEPSPEED_NOISE = "Setting accelerator to CPU"


def run_cli(*args, cwd, env=None, command=None, timeout=300):
    """`python -m pixelrefer_plugin.cli ARGS` (or `command ARGS`) in `cwd`, offline, without a rank or a DeepSpeed
    accelerator in the environment."""
    unset = ("RANK", "LOCAL_RANK", "DS_ACCELERATOR")
    environment = {key: value for key, value in os.environ.items() if key not in unset}
    environment.update({"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})
    environment.update(env or {})
    command = command or [sys.executable, "-m", "pixelrefer_plugin.cli"]
    result = subprocess.run(
        [*command, *map(str, args)], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
    )
    return result


def lines(text: str) -> list[str]:
    """The lines of an output, without progress bars (each redraw is a line: text mode reads carriage returns as
    newlines)."""
    return [line for line in text.splitlines() if line.strip() and "it/s]" not in line]


def train_args(output_dir: Path, steps: int = 2) -> list[str]:
    return ["train", SMOKE, "--set", f"training.max_steps={steps}", "--set", f"training.output_dir={output_dir}"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The smoke recipe for two steps, through the command line: (output folder, completed process)."""
    folder = tmp_path_factory.mktemp("trained")
    result = run_cli(*train_args(folder / "run"), cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "run", result


def test_build_prints_its_result_once_and_logs_progress(tmp_path):
    result = run_cli("build", "pixelrefer-tiny", "--out", "tiny", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert lines(result.stdout) == [
        "wrote pixelrefer-tiny (random init) to tiny",
        "region settings other than the released behaviour: region_grid_rounding='separable', "
        "region_budget_shared=False (docs/model.md)",
    ]
    assert "wrote pixelrefer-tiny" not in result.stderr
    assert "writing pixelrefer-tiny (153632 parameters, random init, seed 0) to tiny" in result.stderr
    assert DEEPSPEED_NOISE not in result.stdout + result.stderr


def test_convert_prints_its_result_once_logs_each_stage_and_no_transformers_warning(tiny, tmp_path):
    from pixelrefer_plugin.testing.released_layout import write_released_checkpoint

    model, processor = tiny
    write_released_checkpoint(model, processor.tokenizer, tmp_path / "released", weights="safetensors")
    result = run_cli("convert", "released", "--out", "converted", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert lines(result.stdout) == ["converted released to converted"]
    assert lines(result.stderr) == [
        "converting released (pixelrefer_qwen2, full variant)",
        "reading 1 safetensors file(s) from released",
        "writing 56 tensors, config, code and processor to converted",
    ]
    assert (tmp_path / "converted" / "config.json").is_file()


def test_build_of_released_weights_prints_its_result_once(tmp_path):
    """The released-weights path of `build` (hub cache -> conversion) shows one result line, one log line per stage."""
    from pixelrefer_plugin.presets import build_model_and_processor
    from pixelrefer_plugin.testing.released_layout import write_released_checkpoint

    model, processor = build_model_and_processor("pixelrefer-lite-tiny")
    repo = tmp_path / "hf_home" / "hub" / "models--Alibaba-DAMO-Academy--PixelRefer-Lite-2B"
    snapshot = repo / "snapshots" / ("0" * 40)
    write_released_checkpoint(model, processor.tokenizer, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    result = run_cli("build", "pixelrefer-lite-2b", "--out", "lite2b", cwd=tmp_path, env={"HF_HOME": "hf_home"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert lines(result.stdout) == [
        "wrote pixelrefer-lite-2b (released weights of Alibaba-DAMO-Academy/PixelRefer-Lite-2B) to lite2b"
    ]
    logged = lines(result.stderr)
    assert [line.split(" ")[0] for line in logged] == ["using", "converting", "reading", "writing"], logged
    assert "You are using a model of type" not in result.stderr


def test_train_prints_one_result_line_without_the_metrics_table(trained):
    output_dir, result = trained
    loss = json.loads((output_dir / "trainer_state.json").read_text())["log_history"][-1]["train_loss"]
    assert [line for line in lines(result.stdout) if line.startswith("trained ")] == [
        f"trained {SMOKE} to step 2, train_loss {loss:.4g}; saved to {output_dir}"
    ]
    assert "***** train metrics *****" not in result.stdout
    assert "optimizer group default" in result.stderr  # the project's own progress, at INFO
    assert "NumExpr" not in result.stderr  # other libraries' INFO messages are hidden
    assert DEEPSPEED_NOISE not in result.stdout + result.stderr


def test_rerunning_a_finished_run_says_so_and_writes_nothing(trained):
    output_dir, _ = trained
    adapter = output_dir / "adapter_model.safetensors"
    before = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in output_dir.glob("*") if path.is_file()}
    result = run_cli(*train_args(output_dir), cwd=output_dir.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert lines(result.stdout) == [
        f"{output_dir} already holds a finished run (step 2 of 2); to train again, set a new training.output_dir "
        f"or remove {output_dir}"
    ]
    assert "train_loss" not in result.stdout + result.stderr
    after = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in output_dir.glob("*") if path.is_file()}
    assert after == before and adapter in after


def test_merge_prints_its_result_once(trained, tmp_path):
    output_dir, _ = trained
    result = run_cli("merge", output_dir, "--out", "merged", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert lines(result.stdout) == [f"merged {output_dir} into merged"]
    assert f"merged {output_dir}" not in result.stderr
    assert f"merging {output_dir} into its base model {output_dir / 'base-model'}" in result.stderr
    assert "writing the merged model to merged" in result.stderr
    assert (tmp_path / "merged" / "config.json").is_file()


LOG_EVERY_LEVEL = """
import logging, sys
from pixelrefer_plugin.cli import main
main(sys.argv[1:])
for name in ("pixelrefer_plugin.training", "some_library"):
    for level in ("debug", "info", "warning"):
        getattr(logging.getLogger(name), level)(f"{name} {level}")
"""


@pytest.mark.parametrize(
    "flags, env, shown",
    [
        ([], {}, ["pixelrefer_plugin.training info", "pixelrefer_plugin.training warning", "some_library warning"]),
        (["-v"], {}, ["pixelrefer_plugin.training debug", "pixelrefer_plugin.training info"]),
        ([], {"RANK": "1", "LOCAL_RANK": "1"}, ["pixelrefer_plugin.training warning", "some_library warning"]),
    ],
    ids=["default", "verbose", "other-process"],
)
def test_log_levels_of_the_project_and_of_other_libraries(flags, env, shown, tmp_path):
    result = run_cli("-c", LOG_EVERY_LEVEL, *flags, "tasks-path", cwd=tmp_path, env=env, command=[sys.executable])
    assert result.returncode == 0, result.stderr[-2000:]
    if flags:  # verbose: everything from everyone
        shown = shown + ["pixelrefer_plugin.training warning", "some_library info", "some_library warning"]
    assert sorted(lines(result.stderr)) == sorted(shown)
    assert bool(result.stdout.strip()) == ("RANK" not in env)  # the result line: main process only


@pytest.mark.skipif(sys.platform == "win32", reason="torchrun")
def test_torchrun_shows_results_and_info_logs_from_the_main_process_only(tmp_path):
    command = [str(BIN / "torchrun"), "--nproc_per_node", "2", "-m", "pixelrefer_plugin.cli"]
    result = run_cli(*train_args(tmp_path / "run", steps=1), cwd=tmp_path, command=command, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sum(line.startswith("trained ") for line in result.stdout.splitlines()) == 1
    assert result.stderr.count("optimizer group default") == 1
    assert result.stderr.count("LoRA r=8 on the language model") == 1
    assert len(re.findall(r"Loading weights:\s+0%", result.stderr)) == 1  # one progress bar, not one per process


def test_data_validate_logs_progress_on_long_files(tmp_path):
    from pixelrefer_plugin.training.data import PROGRESS_EVERY
    from pixelrefer_plugin.training.synthetic import write_synthetic_dataset

    path = write_synthetic_dataset(tmp_path, num_records=2)
    records = json.loads(path.read_text())
    many = tmp_path / "many.json"
    many.write_text(json.dumps([records[index % 2] for index in range(PROGRESS_EVERY + 1)]))
    result = run_cli("data", "validate", many, "--root", tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert lines(result.stderr) == [
        f"checked {PROGRESS_EVERY} / {PROGRESS_EVERY + 1} records",
        f"{many}: {PROGRESS_EVERY + 1} record(s), all valid (full variant)",
    ]


def test_version_prints_the_package_version_without_torch(tmp_path):
    result = run_cli("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout == f"pixelrefer {pixelrefer_plugin.__version__}\n"
    code = (
        "import sys\nfrom pixelrefer_plugin.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n"
        "    pass\nprint(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')))"
    )
    result = run_cli("-c", code, cwd=tmp_path, command=[sys.executable])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == [f"pixelrefer {pixelrefer_plugin.__version__}", "[]"]


@pytest.mark.parametrize("command", [[name] for name in COMMANDS] + [["data", "validate"]], ids=" ".join)
def test_every_subcommand_help_has_a_description_and_plain_usage(command, tmp_path):
    result = run_cli(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    usage, description = result.stdout.split("\n\n")[:2]
    assert usage.startswith(f"usage: pixelrefer {' '.join(command)}")
    assert not description.startswith(("positional arguments:", "options:")), f"no description:\n{result.stdout}"
    assert "_command" not in result.stdout


def test_a_missing_data_action_is_named_as_in_the_usage(tmp_path):
    result = run_cli("data", cwd=tmp_path)
    assert result.returncode == 2
    assert "required: {validate}" in result.stderr and "data_command" not in result.stderr


def test_deepspeed_accelerator_is_named_only_when_the_user_did_not(monkeypatch):
    monkeypatch.setenv("DS_ACCELERATOR", "cuda")
    quiet_deepspeed()
    assert os.environ["DS_ACCELERATOR"] == "cuda"
    monkeypatch.delenv("DS_ACCELERATOR")
    quiet_deepspeed()
    installed = importlib.util.find_spec("deepspeed") is not None
    if installed and not torch.cuda.is_available():
        assert os.environ["DS_ACCELERATOR"] == "cpu"
    elif torch.cuda.is_available():
        assert "DS_ACCELERATOR" not in os.environ
