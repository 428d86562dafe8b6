"""Style is part of the test command: ruff (line length 100) over llmlib/, tests/, benchmarks/,
tools/ and the chapters' code cells, and no code in the book that scrolls sideways."""

from __future__ import annotations

import re
import subprocess
import textwrap
import sys

import pytest

from conftest import CHAPTERS, ROOT, read_notebook

LINE_LENGTH = 100


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_ruff_covers_the_notebooks_and_the_line_length():
    import tomllib

    ruff = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]
    assert ruff["line-length"] == LINE_LENGTH
    assert {"llmlib/**/*.py", "tests/**/*.py", "benchmarks/**/*.py", "tools/**/*.py",
            "chapters/*.ipynb"} <= set(ruff["include"])


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_code_in_markdown_does_not_scroll_sideways(path):
    """Fenced code in the prose (exercise solutions) obeys the same line length as code cells."""
    too_long = []
    for index, cell in enumerate(read_notebook(path)["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        for block in re.findall(r"```[^\n]*\n(.*?)```", "".join(cell["source"]), re.S):
            # a block inside a list item is indented; the book shows it without that indentation
            too_long += [f"cell {index}: {line.strip()[:60]}..."
                         for line in textwrap.dedent(block).splitlines() if len(line) > LINE_LENGTH]
    assert not too_long, f"{path.name}: code lines over {LINE_LENGTH} characters: {too_long}"
