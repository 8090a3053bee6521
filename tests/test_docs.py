# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_opens_with_the_two_commands():
    first_block = README.read_text().split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make demo", "make test"]


def test_readme_python_examples_run(tmp_path, monkeypatch):
    examples = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(examples) >= 2
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme_example"}
    exec(compile(examples[0], str(README), "exec"), namespace)
    answers = namespace["answers"]
    assert len(answers) == 2 and all(isinstance(answer, str) for answer in answers)
    assert namespace["output"].shape[1] > namespace["inputs"]["input_ids"].shape[1]
    assert (tmp_path / "pixelrefer-tiny" / "config.json").exists()

    exec(compile(examples[1], str(README), "exec"), namespace)  # video and Lite, continuing the first example
    lite_processor, inputs = namespace["lite_processor"], namespace["inputs"]
    text = lite_processor.tokenizer.decode(inputs["input_ids"][0])
    assert "[Time 0.0:" + "<REGION>" * 32 + ",Time 1.0:" + "<REGION>" * 32 + "]" in text
    assert "pixel_values" not in inputs and "pixel_values" not in namespace["lite_images"]
