"""Shared test helpers. The README's test command runs these unit tests and every
chapter (nbval)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# tools/export.py and tools/setup_cell.py are importable in tests
sys.path.insert(0, str(ROOT / "tools"))

# the numbered chapters (NN_topic.ipynb), then the appendices (A_topic.ipynb, ...), as the book
CHAPTERS = (sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
            + sorted((ROOT / "chapters").glob("[A-Z]_*.ipynb")))


def read_notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture
def root() -> Path:
    return ROOT
