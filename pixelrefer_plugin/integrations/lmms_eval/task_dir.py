# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The folder to pass to `lmms-eval --include_path`: the packaged task files plus generated fixture data."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

PACKAGED_TASKS = Path(__file__).parent / "tasks"
FIXTURE_PLACEHOLDER = "__PIXELREFER_FIXTURES__"


def _digest() -> str:
    from ... import __version__

    digest = hashlib.sha256(__version__.encode())
    for path in sorted(PACKAGED_TASKS.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def tasks_path(refresh: bool = False) -> Path:
    """Materialise the task folder once per package version (`$PIXELREFER_TASKS_DIR`, default
    `~/.cache/pixelrefer/lmms_eval_tasks/<hash>`): task YAMLs and `utils.py` copied from the package, fixture data
    generated next to them with absolute paths filled in. Returns the folder."""
    from .fixtures import write_fixtures

    root = Path(os.environ.get("PIXELREFER_TASKS_DIR", Path.home() / ".cache" / "pixelrefer" / "lmms_eval_tasks"))
    destination = root / _digest()
    if (destination / ".complete").exists() and not refresh:
        return destination
    staging = root / f".{destination.name}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    fixtures = destination / "fixtures"
    for path in PACKAGED_TASKS.iterdir():
        if path.suffix == ".yaml":
            (staging / path.name).write_text(path.read_text().replace(FIXTURE_PLACEHOLDER, str(fixtures)))
        elif path.suffix == ".py":
            shutil.copy(path, staging / path.name)
    staged_fixtures = write_fixtures(staging / "fixtures")
    # the fixture documents name their files by absolute path: point them at the final folder
    for jsonl in staged_fixtures.glob("*.jsonl"):
        jsonl.write_text(jsonl.read_text().replace(str(staged_fixtures), str(fixtures)))
    (staging / ".complete").write_text("")
    shutil.rmtree(destination, ignore_errors=True)
    staging.rename(destination)
    return destination
