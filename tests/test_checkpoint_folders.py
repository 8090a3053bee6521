# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Checkpoint writers (convert, build, merge) never delete or overwrite what they were not told to, and leave a
folder that is complete or absent."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pixelrefer_plugin.checkpoint_folders import OutputFolderError, checkpoint_folder
from pixelrefer_plugin.presets import build_model_and_processor, build_preset
from pixelrefer_plugin.testing.released_layout import write_released_checkpoint


def digest(folder: Path) -> dict[str, str]:
    """`{relative path: sha1}` of every file below `folder`."""
    return {
        str(path.relative_to(folder)): hashlib.sha1(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def pixelrefer(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "pixelrefer_plugin.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A released-layout tiny checkpoint, written once; tests copy it where they need it."""
    model, processor = build_model_and_processor("pixelrefer-tiny", seed=1)
    model.config.position_axis_swap = True
    model.model.object_tokenizer.position_axis_swap = True
    folder = tmp_path_factory.mktemp("released") / "released"
    return write_released_checkpoint(model, processor.tokenizer, folder, "nested", "safetensors")


def copy_of(folder: Path, destination: Path) -> Path:
    import shutil

    shutil.copytree(folder, destination)
    return destination


@pytest.mark.parametrize(
    "out",
    ["{source}", "{source}/..", "{source}/converted"],
    ids=["out-is-the-source", "out-contains-the-source", "out-inside-the-source"],
)
def test_convert_overwrite_never_deletes_its_source(released, tmp_path, out):
    source = copy_of(released, tmp_path / "work" / "released")
    before = digest(source)
    result = pixelrefer("convert", str(source), "--out", out.format(source=source), "--overwrite", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "overlaps the folder it is read from" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert digest(source) == before


def test_build_refuses_a_non_empty_folder_unless_told_to_overwrite(tmp_path):
    checkpoint = build_preset("pixelrefer-tiny", tmp_path / "fine-tuned", seed=3)
    before = digest(checkpoint)
    result = pixelrefer("build", "pixelrefer-tiny", "--out", str(checkpoint), cwd=tmp_path)
    assert result.returncode == 2 and "exists and is not empty; pass --overwrite" in result.stderr, result.stderr
    assert digest(checkpoint) == before
    result = pixelrefer("build", "pixelrefer-tiny", "--out", str(checkpoint), "--overwrite", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert digest(checkpoint) != before and (checkpoint / "config.json").is_file()
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def test_build_refuses_a_file_as_output(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    with pytest.raises(OutputFolderError, match="is a file"):
        build_preset("pixelrefer-tiny", target)
    assert target.read_text() == "keep me"


def test_an_interrupted_write_leaves_no_folder(tmp_path):
    with pytest.raises(KeyboardInterrupt), checkpoint_folder(tmp_path / "checkpoint") as partial:
        (partial / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_overwrite_keeps_the_old_checkpoint(tmp_path):
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    with pytest.raises(RuntimeError), checkpoint_folder(checkpoint, overwrite=True) as partial:
        (partial / "config.json").write_text('{"new": 1}')
        raise RuntimeError("stopped")
    assert digest(checkpoint) == {"config.json": hashlib.sha1(b"{}").hexdigest()}
    assert [path.name for path in tmp_path.iterdir()] == ["checkpoint"]


def test_merge_refuses_to_write_into_its_adapter_or_base(tmp_path):
    adapter = tmp_path / "adapter"
    base = build_preset("pixelrefer-tiny", tmp_path / "base")
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(f'{{"base_model_name_or_path": "{base}"}}')
    for out in (adapter, base):
        before = digest(out)
        result = pixelrefer("merge", str(adapter), "--out", str(out), "--overwrite", cwd=tmp_path)
        assert result.returncode == 2 and "overlaps the folder it is read from" in result.stderr, result.stderr
        assert digest(out) == before


def test_final_save_moves_the_files_that_make_a_folder_load_last(tmp_path):
    """An interrupted move leaves the config files out: the folder does not load as if it were complete."""
    from pixelrefer_plugin.checkpoint_folders import move_files_into

    partial, destination = tmp_path / "partial", tmp_path / "run"
    partial.mkdir()
    destination.mkdir()
    (partial / "adapter_config.json").write_text("{}")
    (partial / "adapter_model.safetensors").write_text("weights")
    (partial / "processor").mkdir()
    (destination / "processor").write_text("a file where the move puts a folder: os.replace fails")
    with pytest.raises(OSError):
        move_files_into(partial, destination, last=("adapter_config.json",))
    assert not (destination / "adapter_config.json").exists()

    (destination / "processor").unlink()
    move_files_into(partial, destination, last=("adapter_config.json",))
    assert sorted(path.name for path in destination.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "processor",
    ]
    assert not partial.exists()
