"""Execute chapters in place so that the committed notebooks carry the outputs of a real run.

    python tools/run_notebooks.py chapters/00_setup.ipynb [more.ipynb ...]

Run it without LLMLIB_SMOKE (a `cpu` or `gpu` run: the setup cell's output records which). Each
notebook runs from its own folder, as in Jupyter; widget state is stored so the book can show it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def run(path: Path, timeout: int = 3600) -> float:
    if os.environ.get("LLMLIB_SMOKE") == "1":
        raise SystemExit("unset LLMLIB_SMOKE: committed outputs come from a cpu or gpu run")
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for i, cell in enumerate(nb.cells):  # stable ids keep git diffs readable
        cell["id"] = f"c{i:03d}"
    widget_state = nb.metadata.get("widgets", {}).get(
        "application/vnd.jupyter.widget-state+json", {})
    if not widget_state.get("state"):  # an empty widget record breaks the book build
        nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    return time.perf_counter() - start


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"{arg}: {run(Path(arg)):.0f} s")
