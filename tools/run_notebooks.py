"""Execute chapters in place so that the committed notebooks carry the outputs of a real run.

    python tools/run_notebooks.py chapters/00_setup.ipynb [more.ipynb ...]
    python tools/run_notebooks.py --smoke chapters/*.ipynb   # time smoke mode; saves nothing

Run it without LLMLIB_SMOKE (a `cpu` or `gpu` run: the setup cell's output records which). Each
notebook runs from its own folder, as in Jupyter; widget state is stored so the book can show it.
Every run records its wall time in `book/timings.json` (per chapter and mode) and rewrites
`book/timings.md`, the table that `book/setup.md` includes: the times a reader is told are the
times of the committed runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMINGS = ROOT / "book" / "timings.json"
TABLE = ROOT / "book" / "timings.md"


def run(path: Path, smoke: bool = False, timeout: int = 3600) -> float:
    """Execute one notebook; save it (with outputs) unless `smoke`. Returns the seconds taken."""
    import nbformat  # here, so that the tests can import `table` without Jupyter's runner
    from nbclient import NotebookClient

    if os.environ.get("LLMLIB_SMOKE") == "1" and not smoke:
        raise SystemExit("unset LLMLIB_SMOKE: committed outputs come from a cpu or gpu run")
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    os.environ["LLMLIB_SMOKE"] = "1" if smoke else "0"  # the kernel inherits it
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        os.environ.pop("LLMLIB_SMOKE")
    seconds = time.perf_counter() - start
    if smoke:
        return seconds
    for i, cell in enumerate(nb.cells):  # stable ids keep git diffs readable
        cell["id"] = f"c{i:03d}"
    widget_state = nb.metadata.get("widgets", {}).get(
        "application/vnd.jupyter.widget-state+json", {})
    if not widget_state.get("state"):  # an empty widget record breaks the book build
        nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    return seconds


def run_mode_of(path: Path) -> str:
    """The mode the committed run used, as its setup cell printed it ('cpu' or 'gpu')."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    text = "".join("".join(o.get("text", "")) for o in cells[1].get("outputs", []))
    return "gpu" if "run mode gpu" in text else "cpu"


def record(path: Path, mode: str, seconds: float) -> None:
    timings = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    entry = timings.setdefault(path.stem, {})
    entry[mode] = round(seconds, 1)
    timings["machine"] = f"{os.cpu_count()}-core {platform.machine()}, {platform.processor() or ''}"
    TIMINGS.write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")
    TABLE.write_text(table(timings))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "not measured"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def table(timings: dict) -> str:
    """The markdown table of `book/timings.md`, from `book/timings.json`."""
    rows = ["| chapter | `cpu` mode (committed run) | `smoke` mode (the tests) |",
            "|---|---|---|"]
    for stem in sorted(k for k in timings if k != "machine"):
        entry = timings[stem]
        number, _, name = stem.partition("_")
        label = f"{number.lstrip('0') or '0'} {name.replace('_', ' ')}"  # "6 pretraining"
        cpu, smoke = _duration(entry.get("cpu")), _duration(entry.get("smoke"))
        rows.append(f"| {label} | {cpu} | {smoke} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--smoke", action="store_true", help="time smoke mode; save nothing")
    args = parser.parse_args()
    for nb_path in args.notebooks:
        took = run(nb_path, smoke=args.smoke)
        mode = "smoke" if args.smoke else run_mode_of(nb_path)
        record(nb_path.resolve(), mode, took)
        print(f"{nb_path} ({mode}): {took:.0f} s", flush=True)
        sys.stdout.flush()
