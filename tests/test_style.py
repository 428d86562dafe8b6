"""Style is part of the test command: ruff (line length 100) over llmlib/, tests/, benchmarks/,
tools/ and the chapters' code cells, no code in the book that scrolls sideways, and no string that
a line wrap broke into pieces."""

from __future__ import annotations

import io
import re
import subprocess
import textwrap
import sys
import tokenize

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
    # ISC and UP keep out what an automatic rewrap once left behind (f-strings without
    # placeholders, strings glued on one line or with +)
    assert {"E", "F", "W", "ISC", "UP"} <= set(ruff["lint"]["select"])


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


# Chapters 6-8 and the appendix show the short version of each mechanism and fold the production
# code (their second edition); chapters 0-5 chose their folds before this rule and keep them.
FOLDED_CHAPTERS = ("06_", "07_", "08_", "A_")
LONG_CELL = 60


@pytest.mark.parametrize("path", [p for p in CHAPTERS if p.name.startswith(FOLDED_CHAPTERS)],
                         ids=lambda p: p.stem)
def test_long_code_cells_are_folded(path):
    """A code cell over LONG_CELL lines is plumbing the reader opens on demand (`hide-input`)."""
    unfolded = [(index, len("".join(cell["source"]).splitlines()))
                for index, cell in enumerate(read_notebook(path)["cells"])
                if cell["cell_type"] == "code"
                and len("".join(cell["source"]).splitlines()) > LONG_CELL
                and "hide-input" not in cell.get("metadata", {}).get("tags", [])]
    assert not unfolded, (f"{path.name}: code cells (index, lines) over {LONG_CELL} lines "
                          f"without the hide-input tag: {unfolded}")


# A string piece: its prefix letters, its quotes, its text. Prefixes are at most 3 letters (rb, Rf).
_PIECE = re.compile(r"([a-zA-Z]{0,3})('\'\'|\"\"\"|'|\")(.*)\2", re.S)
SHORT_PIECE = 8  # characters of text: a piece this short is the tail of a phrase cut by a wrap


def string_groups(source: str) -> list[list[tuple[int, str]]]:
    """The implicitly concatenated strings of `source` (two pieces or more), each as a list of
    (line, piece source). Comments and line breaks may sit between the pieces. From Python 3.12
    an f-string is several tokens (FSTRING_START ... FSTRING_END); it is read back as one piece."""
    lines = source.splitlines(keepends=True)
    fstring_start = getattr(tokenize, "FSTRING_START", None)
    fstring_end = getattr(tokenize, "FSTRING_END", None)
    groups, group, depth, opened = [], [], 0, None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if fstring_start is not None and tok.type == fstring_start:
            depth += 1
            opened = opened or tok.start
            continue
        if depth:
            if tok.type == fstring_end:
                depth -= 1
                if not depth:
                    (row, col), (end_row, end_col) = opened, tok.end
                    text = "".join(lines[row - 1:end_row])
                    text = text[col:len(text) - len(lines[end_row - 1]) + end_col]
                    group.append((row, text))
                    opened = None
            continue
        if tok.type == tokenize.STRING:
            group.append((tok.start[0], tok.string))
        elif tok.type not in (tokenize.NL, tokenize.COMMENT) or not group:
            if len(group) > 1:
                groups.append(group)
            group = []
    return groups


def broken_string_pieces(source: str) -> list[str]:
    """Pieces of implicitly concatenated strings that a line wrap left behind: an f-string without
    a placeholder, or a piece of at most SHORT_PIECE characters of text (`f"for")`)."""
    found = []
    for group in string_groups(source):
        for line, piece in group:
            prefix, _, text = _PIECE.fullmatch(piece).groups()
            if "f" in prefix.lower() and "{" not in text.replace("{{", ""):
                found.append(f"line {line}: f-string without a placeholder {piece}")
            elif len(text.strip()) <= SHORT_PIECE:
                found.append(f"line {line}: short piece {piece}")
    return found


def test_the_scanner_finds_broken_pieces():
    code = textwrap.dedent('''\
        raise ValueError(f"the text {x!r} is too long " f"for"
                         "the model")
        ok = ("a whole phrase, " f"then {x}, "  # a comment between pieces
              "and the rest of the sentence")
        print("no concatenation here", f"nor {here}")
        ''')
    assert broken_string_pieces(code) == ['line 1: f-string without a placeholder f"for"']
    assert broken_string_pieces('f"abc " f"for"') == [
        'line 1: f-string without a placeholder f"abc "',
        'line 1: f-string without a placeholder f"for"']
    assert broken_string_pieces('"a long enough piece " "the"') == ['line 1: short piece "the"']
    assert [len(g) for g in string_groups(code)] == [3, 3]


PYTHON_FILES = sorted(path for folder in ("llmlib", "tests", "benchmarks", "tools")
                      for path in (ROOT / folder).glob("*.py"))


@pytest.mark.parametrize("path", PYTHON_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_string_broken_by_a_line_wrap(path):
    """A message cut by a line wrap reads as two phrases; write it as whole phrases that fit."""
    found = broken_string_pieces(path.read_text(encoding="utf-8"))
    assert not found, f"{path.relative_to(ROOT)}: rejoin these string pieces: {found}"
