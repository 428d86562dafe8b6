"""The standard setup cell: the first code cell of every chapter, word for word.

tests/test_hygiene.py checks each chapter against SETUP_CELL, and tests/test_colab.py runs
its Colab branch against a local clone. To change it, change it here and in every chapter
(`python tools/setup_cell.py` rewrites the chapters' first code cell and its tags).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# must equal _config.yml's repository.url
REPO_URL = "https://github.com/llm-course/llms-from-scratch"

SETUP_CELL = f'''\
# Setup, the same in every chapter. In Colab it fetches the course (for data/) and installs
# llmlib without touching Colab's own torch and ipywidgets; everywhere it prints where we run.
import os, subprocess, sys
REPO_URL = os.environ.get("LLMLIB_REPO_URL", "{REPO_URL}")
if "google.colab" in sys.modules and not os.path.isdir("../llmlib"):
    if not os.path.isdir("llms-from-scratch"):
        subprocess.run(["git", "clone", "--quiet", "--depth=1", REPO_URL, "llms-from-scratch"],
                       check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", "llms-from-scratch"],
                   check=True)
    os.chdir("llms-from-scratch/chapters")
if os.path.isdir("../llmlib"):  # in a checkout, use its llmlib (installed or not)
    sys.path.insert(0, os.path.abspath(".."))
from llmlib.device import environment_summary, get_device, run_mode, seed_everything
DEVICE, MODE = get_device(), run_mode()
print(environment_summary())'''


# Chapter 0 explains the setup cell; later chapters fold its code in the book (its output stays
# visible).
HIDDEN_TAG = "hide-input"


def first_code_cell(notebook: dict) -> dict | None:
    return next((c for c in notebook["cells"] if c["cell_type"] == "code"), None)


def expected_tags(notebook_name: str) -> list[str]:
    return [] if notebook_name.startswith("00_") else [HIDDEN_TAG]


if __name__ == "__main__":
    from export import notebooks  # chapters, then appendices

    for path in notebooks(ROOT / "chapters"):
        nb = json.loads(path.read_text(encoding="utf-8"))
        cell = first_code_cell(nb)
        tags = expected_tags(path.name)
        if cell is None or ("".join(cell["source"]) == SETUP_CELL
                            and cell["metadata"].get("tags", []) == tags):
            continue
        cell["source"] = SETUP_CELL.splitlines(keepends=True)
        if tags:
            cell["metadata"]["tags"] = tags
        else:
            cell["metadata"].pop("tags", None)
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"updated {path.name}", file=sys.stderr)
