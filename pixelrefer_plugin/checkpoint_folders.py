# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Writing a checkpoint folder so that it is either complete or absent, and never over what it was not told to replace.

`convert`, `build` and `merge` write into a temporary sibling of the destination and rename it into place at the end:
an interrupted run leaves no folder that loads as if it were complete. Training's final save, which shares its folder
with the run's checkpoints, writes into a temporary folder and moves the files in with their config files last
([`move_files_into`]), so its folder never holds a config beside weights that are not all there. A non-empty destination is only replaced with
`overwrite`, and never when it is, contains or lies inside a folder the checkpoint is read from. `.bin` weights are
only read with `torch.load(weights_only=True)` ([`load_weights_safely`]).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


class OutputFolderError(ValueError):
    """The destination of a checkpoint cannot be written; `folder` is the destination and `reason` says why."""

    def __init__(self, folder: Path, reason: str):
        super().__init__(f"--out {folder}: {reason}")
        self.folder = folder
        self.reason = reason


class UnsafeWeightsError(ValueError):
    """A `.bin` weights file that `torch.load(weights_only=True)` refuses (it holds pickled objects other than tensors,
    or is not a torch file); `file` is the file and `reason` what the unpickler refused."""

    def __init__(self, file: Path, reason: str):
        super().__init__(
            f"{file} is not loadable safely: torch.load with weights_only=True refused it ({reason}); expected a file "
            "of tensors only, as torch.save(state_dict) writes it"
        )
        self.file = file
        self.reason = reason

    def __reduce__(self):
        return type(self), (self.file, self.reason)


def load_weights_safely(file: Path) -> Any:
    """The tensors of a `.bin` file, read with `weights_only=True` (memory-mapped when it is the zip format
    `torch.save` writes; a legacy raw pickle is read whole). No pickled code runs.

    Raises:
        UnsafeWeightsError: naming the file and what the unpickler refused.
    """
    import torch

    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing; the error says it all
            warnings.simplefilter("ignore")
            return torch.load(file, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(file))
    except Exception as error:  # the unpickler raises several types (UnpicklingError, RuntimeError, EOFError, ...)
        raise UnsafeWeightsError(file, _refusal(error)) from None


def _refusal(error: BaseException) -> str:
    """The one line of a `torch.load` error that says what was refused (its messages span many lines)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0].split(". ")[0] if lines else type(error).__name__


def check_destination(destination: Path, overwrite: bool, sources: Sequence[Path] = ()) -> None:
    """Refuse a destination that is a file, a non-empty folder (unless `overwrite`), or one that overlaps `sources`.

    Raises:
        OutputFolderError: naming the destination and the reason.
    """
    target = destination.resolve()
    for source in sources:
        source = Path(source).resolve()
        if target == source or source.is_relative_to(target) or target.is_relative_to(source):
            raise OutputFolderError(
                destination, f"overlaps the folder it is read from ({source}); choose another output folder"
            )
    if destination.exists() and not destination.is_dir():
        raise OutputFolderError(destination, "is a file; expected a folder")
    if destination.is_dir() and any(destination.iterdir()) and not overwrite:
        raise OutputFolderError(
            destination, "exists and is not empty; pass --overwrite (overwrite=True) to replace it"
        )


@contextlib.contextmanager
def checkpoint_folder(
    destination: str | Path, overwrite: bool = False, sources: Sequence[Path] = ()
) -> Iterator[Path]:
    """Yield a temporary folder beside `destination` to write into; it becomes `destination` when the block ends
    without an exception and is removed otherwise.

    Args:
        destination: the checkpoint folder to create (or replace, with `overwrite`).
        overwrite: replace a non-empty `destination`.
        sources: folders the checkpoint is read from; `destination` may not be, contain or lie inside any of them.
    """
    destination = Path(destination)
    check_destination(destination, overwrite, sources)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.parent / f".{destination.name}.partial-{uuid.uuid4().hex[:8]}"
    partial.mkdir()
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    replaced = None
    if destination.exists():
        replaced = destination.parent / f".{destination.name}.replaced-{uuid.uuid4().hex[:8]}"
        os.replace(destination, replaced)
    os.replace(partial, destination)
    if replaced is not None:
        shutil.rmtree(replaced)


def move_files_into(partial: Path, destination: Path, last: Sequence[str] = ()) -> None:
    """Move every entry of `partial` into `destination` (replacing entries of the same name), the names in `last`
    at the end, then remove `partial`. Each move is a rename on the same file system: an interruption leaves some
    files moved, but none of the `last` ones (the files that make a folder load) before all the others are in place.
    """
    entries = sorted(partial.iterdir(), key=lambda entry: (entry.name in last, entry.name))
    for entry in entries:
        target = destination / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(entry, target)
    partial.rmdir()
