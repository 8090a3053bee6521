# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Every Python example in README.md and docs/*.md runs as written.

The Markdown files are read with a CommonMark parser (markdown-it-py), so a block is what a reader sees rendered.
Convention for the Python blocks, by the info string after the opening fence:

* ```` ```python ```` — runnable. The test runs the block on its own in a fresh Python process (`sys.executable`, an
  empty temporary folder as the working directory, `HF_HUB_OFFLINE=1`): it must be self-contained (its own imports
  and data) and need nothing but this package, its tiny presets and files it writes itself.
* ```` ```python no-run ```` — not runnable offline: it needs released 7B weights, a GPU, the hub, a judge server or
  the reader's own files, or it is a signature / fragment. The test only compiles it (valid Python syntax).

Any other word after `python` (or a `py` / `python3` fence) fails the test, so a typo cannot silently turn an example
off. Tests name a block `file:line`, the line of its opening fence. A few examples get extra assertions (`CHECKS`),
run after the block in the same process, so that the example itself reads as a user would write it.

Every fence in these files must be closed: an unclosed fence swallows the rest of the document, which then renders as
code. And every `PIXELREFER_*` environment variable is listed, once, in README.md's "Environment variables" table.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
NO_RUN = "no-run"
MARKDOWN = MarkdownIt("commonmark")

# Assertions run after an example, in the same process. Keyed by (file name, text of the block) rather than by line,
# and each key must match exactly one runnable block, so that a check never silently stops running.
CHECKS = {
    ("README.md", 'regions=[[{"mask": mask}], [{"box": [200, 100, 300, 200]}]],'): """
assert len(answers) == 2 and all(isinstance(answer, str) for answer in answers)
assert output.shape[1] > inputs["input_ids"].shape[1]
import os.path
assert os.path.exists("pixelrefer-tiny/config.json")
""",
    ("README.md", "inputs = lite_processor(text=prompt, videos=video, regions=[track])"): """
text = lite_processor.tokenizer.decode(inputs["input_ids"][0])
assert "[Time 0.0:" + "<REGION>" * 32 + ",Time 1.0:" + "<REGION>" * 32 + "]" in text, text
assert "pixel_values" not in inputs and "pixel_values" not in lite_images
""",
    ("presets.md", 'load_preset("pixelrefer-7b").text_config["hidden_size"]'): """
assert load_preset("pixelrefer-7b").text_config["hidden_size"] == 3584
""",
    ("llava.md", "answer = tokenizer.decode("): """
assert isinstance(answer, str)
""",
    ("data-format.md", "loss = model(**batch).loss"): """
import math
assert math.isfinite(loss.item())
""",
}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    flags: tuple[str, ...]
    code: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def runnable(self) -> bool:
        return NO_RUN not in self.flags


def fences(text: str):
    return [token for token in MARKDOWN.parse(text) if token.type == "fence"]


def python_blocks(path: Path) -> list[Block]:
    blocks = []
    for token in fences(path.read_text()):
        language, *flags = token.info.split() or [""]
        if language.lower() in ("python", "py", "python3"):
            blocks.append(Block(path, token.map[0] + 1, (language, *flags), token.content))
    return blocks


BLOCKS = [block for path in DOCS for block in python_blocks(path)]
RUNNABLE = [block for block in BLOCKS if block.runnable]
NOT_RUNNABLE = [block for block in BLOCKS if not block.runnable]


def _fence_marker(line: str) -> str:
    """The line without its container prefixes (indentation, blockquote `>`)."""
    return re.sub(r"^[ \t>]*", "", line)


def fence_problems(text: str) -> list[str]:
    """Fences that are not closed. markdown-it lets an unclosed fence run to the end of its container (the document,
    a list item, a blockquote), so each fence's last line must be a closing marker: the fence's character, at least
    as many times as it opened, nothing after it. A line inside a fence that opens a fence of the same kind with an
    info string (```` ```bash ````) is reported too: the usual sign of a fence that was meant to close above it."""
    lines = text.splitlines()
    problems = []
    for token in fences(text):
        start, end = token.map  # lines [start, end), 0-based; a closed fence's last line is its closing marker
        char, size = re.escape(token.markup[0]), len(token.markup)
        last = _fence_marker(lines[end - 1]) if end - 1 > start else ""
        if not re.fullmatch(rf"{char}{{{size},}}[ \t]*", last):
            problems.append(f"line {start + 1}: the {token.markup}{token.info} fence is never closed")
        for number in range(start + 2, end):
            if re.match(rf"{char}{{{size},}}[ \t]*[^ \t`~]", _fence_marker(lines[number - 1])):
                problems.append(
                    f"line {number}: a fence opens inside the {token.markup}{token.info} fence of line {start + 1}; "
                    "is that one closed?"
                )
    return problems


def test_readme_opens_with_the_two_commands():
    first_block = next(token for token in fences(README.read_text()) if token.info == "bash").content
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make demo", "make test"]


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_fence_is_closed(path):
    assert fence_problems(path.read_text()) == [], path


BROKEN = {
    "unclosed at the end": "# Title\n\n```python\nprint(1)\n",
    "unclosed, trailing blank line": "Text.\n\n```python\nprint(1)\n\n",
    "closed by a shorter marker": "````python\nprint(1)\n```\n",
    "next block's fence closes it": "```python\nx = 1\n\n## Command line\n\n```bash\nls\n```\n\nText.\n",
    "unclosed in a blockquote": "> ```python\n> x = 1\n\nText.\n",
    "unclosed in a list item": "1. Step:\n\n   ```bash\n   ls\n\nText.\n",
}
CORRECT = (
    "# Title\n\n```python\nprint(1)\n```\n\n1. Step:\n\n   ```bash\n   ls\n   ```\n\n> ~~~\n> quoted\n> ~~~\n\n"
    "````markdown\n```python\nx = 1\n```\n````\n\n```\n```\n"
)


@pytest.mark.parametrize("sample", BROKEN)
def test_fence_check_finds_unclosed_fences(sample, tmp_path):
    path = tmp_path / "broken.md"
    path.write_text(BROKEN[sample])
    assert fence_problems(path.read_text())


def test_fence_check_accepts_closed_fences(tmp_path):
    path = tmp_path / "correct.md"
    path.write_text(CORRECT)
    assert fence_problems(path.read_text()) == []


def test_python_blocks_use_the_convention():
    assert len(RUNNABLE) >= 2 and sum(block.path == README for block in RUNNABLE) >= 2
    for block in BLOCKS:
        assert block.flags[0] == "python" and set(block.flags[1:]) <= {NO_RUN}, (
            f"{block.name}: ```{' '.join(block.flags)}: write ```python or ```python {NO_RUN}"
        )


def check_for(block: Block) -> str:
    return "".join(check for (name, text), check in CHECKS.items() if block.path.name == name and text in block.code)


def test_checks_find_their_example():
    for name, text in CHECKS:
        found = [block.name for block in RUNNABLE if block.path.name == name and text in block.code]
        assert len(found) == 1, f"the check for {name} keyed by {text!r} matches the runnable blocks {found}"


@pytest.mark.parametrize("block", NOT_RUNNABLE, ids=lambda block: block.name)
def test_not_runnable_example_compiles(block):
    compile(block.code, block.name, "exec")


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda block: block.name)
def test_python_example_runs(block, tmp_path):
    # Blank lines first, so that a traceback's line numbers are the Markdown file's.
    script = tmp_path / f"{block.path.name}.py"
    script.write_text("\n" * block.line + block.code + check_for(block))
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=workdir, env=env, capture_output=True, text=True, timeout=540
    )
    assert result.returncode == 0, f"{block.name} failed (exit {result.returncode}):\n{result.stderr[-4000:]}"


def environment_variables() -> set[str]:
    """The `PIXELREFER_*` environment variables the package, its tests and its Makefile read or set."""
    sources = [*(ROOT / "pixelrefer_plugin").rglob("*.py"), *(ROOT / "tests").glob("*.py")]
    names = {name for path in sources for name in re.findall(r"[\"']PIXELREFER_([A-Z0-9_]+)[\"']", path.read_text())}
    names |= set(re.findall(r"\bPIXELREFER_([A-Z0-9_]+)=", (ROOT / "Makefile").read_text()))
    return {f"PIXELREFER_{name}" for name in names}


def test_environment_variables_are_documented_once():
    tokens = MARKDOWN.parse(README.read_text())
    start = next(
        i + 2
        for i, token in enumerate(tokens)
        if token.type == "heading_open" and tokens[i + 1].content == "Environment variables"
    )
    end = next((i for i in range(start, len(tokens)) if tokens[i].type == "heading_open"), len(tokens))
    documented = [
        child.content
        for token in tokens[start:end]
        for child in token.children or []
        if child.type == "code_inline" and child.content.startswith("PIXELREFER_")
    ]
    variables = environment_variables()
    assert len(variables) >= 10
    assert sorted(set(documented)) == sorted(variables), "README.md's environment variable table"
    assert sorted(documented) == sorted(set(documented)), "a variable is listed twice"
