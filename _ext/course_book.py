"""Sphinx extension for the rendered book: hide the notebooks' build markers, and ship the
playground's scripts and model.

`#| export` and `#| default_exp` lines tell tools/export.py which cells make `llmlib/`; a reader
of the book has no use for them. This removes them from the rendered code cells (the notebooks
keep them) and drops a cell that held nothing else and printed nothing.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes

MARKER = "#|"


def _without_markers(text: str) -> str:
    lines = text.split("\n")
    kept = [line for line in lines if not line.lstrip().startswith(MARKER)]
    return "\n".join(kept).strip("\n")


def hide_build_markers(app: Any, doctree: nodes.document) -> None:
    for block in list(doctree.findall(nodes.literal_block)):
        source = block.parent
        if not (isinstance(source, nodes.container) and "cell_input" in source["classes"]):
            continue
        text = block.astext()
        if MARKER not in text:
            continue
        code = _without_markers(text)
        cell = source.parent
        if code:
            block.children = [nodes.Text(code)]
            block.rawsource = code
        elif len(cell.children) == 1:  # a marker-only cell with no output
            cell.parent.remove(cell)
        else:
            cell.remove(source)


def write_playground_files(app: Any, exception: Exception | None) -> None:
    """The playground page (book/playground.md) loads `_static/playground/`: llmlib's browser
    scripts and the course model as a script, written from the package and the shipped model at
    each build, so that the book never holds a second copy of either."""
    if exception is not None or app.builder.format != "html":
        return
    from pathlib import Path

    from llmlib.playground import write_playground

    write_playground(Path(app.outdir) / "_static" / "playground", model="course", page=False)


def setup(app: Any) -> dict[str, Any]:
    app.connect("doctree-read", hide_build_markers)
    app.connect("build-finished", write_playground_files)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
