# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Writing a checkpoint folder so that it is either complete or absent, and never over what it was not told to replace.

`convert`, `build` and `merge` write into a temporary sibling of the destination and rename it into place at the end:
an interrupted run leaves no folder that loads as if it were complete. A non-empty destination is only replaced with
`overwrite`, and never when it is, contains or lies inside a folder the checkpoint is read from.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path


class OutputFolderError(ValueError):
    """The destination of a checkpoint cannot be written; `folder` is the destination and `reason` says why."""

    def __init__(self, folder: Path, reason: str):
        super().__init__(f"--out {folder}: {reason}")
        self.folder = folder
        self.reason = reason


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
