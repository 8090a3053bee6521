# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_opens_with_the_two_commands():
    first_block = README.read_text().split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make demo", "make test"]


def test_readme_python_example_runs(tmp_path, monkeypatch):
    (example,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)[:1]
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme_example"}
    exec(compile(example, str(README), "exec"), namespace)
    answers = namespace["answers"]
    assert len(answers) == 2 and all(isinstance(answer, str) for answer in answers)
    assert namespace["output"].shape[1] > namespace["inputs"]["input_ids"].shape[1]
    assert (tmp_path / "pixelrefer-tiny" / "config.json").exists()
