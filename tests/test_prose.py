"""The prose agrees with the page: every number glued into a chapter's markdown comes from that
chapter's committed outputs, every chapter shows the same chapter map, and the book's helpers
(llmlib.book) fail loudly on bad input."""

import re

import matplotlib
import pytest

import chapter_map
from conftest import CHAPTERS, read_notebook
from llmlib.book import GLUE_PREFIX, Box, diagram, glue

matplotlib.use("Agg")
GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`]+)`")
# the literal markup shown in a code span to explain glue (``{glue:text}`name` ``) is not a use
CODE_SPAN = re.compile(r"``.*?``", re.S)


def glued_values(nb: dict) -> dict[str, str]:
    values = {}
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name is not None:
                values[name] = output["data"][GLUE_PREFIX + "text/plain"]
    return values


def glue_uses(nb: dict) -> list[str]:
    keys = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            text = CODE_SPAN.sub("", "".join(cell["source"]))
            keys += [key.rsplit(":", 1)[0] if ":" in key else key
                     for key in GLUE_ROLE.findall(text)]
    return keys


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_glued_number_in_the_prose_is_in_the_outputs(path):
    nb = read_notebook(path)
    values = glued_values(nb)
    missing = sorted(set(glue_uses(nb)) - set(values))
    assert not missing, (f"{path.name} quotes glue keys {missing} that no committed output holds; "
                         f"re-run the chapter (make notebooks NB=chapters/{path.name})")
    assert all(v.strip("'\"") for v in values.values()), f"{path.name} glued an empty value"


def test_the_glue_checker_finds_a_missing_key():
    source = "speed-up {glue:text}`speedup`×, not ``{glue:text}`example` ``"
    nb = {"cells": [{"cell_type": "markdown", "source": [source]}]}
    assert glue_uses(nb) == ["speedup"] and glued_values(nb) == {}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_shows_the_whole_chapter_map(path):
    nb = read_notebook(path)
    assert chapter_map.current_map(nb) == chapter_map.chapter_map(path.name), (
        f"{path.name}: the chapter map differs from tools/chapter_map.py's "
        "(run `python tools/chapter_map.py`)")


def test_glue_records_text_invisibly(capsys):
    shown = []
    import IPython.display
    original = IPython.display.display
    IPython.display.display = lambda data, **kw: shown.append((data, kw))
    try:
        assert glue("speed_up", 3.5) == "3.5"
    finally:
        IPython.display.display = original
    data, kw = shown[0]
    assert data == {GLUE_PREFIX + "text/plain": "'3.5'"}
    assert kw["metadata"]["scrapbook"] == {"name": "speed_up", "mime_prefix": GLUE_PREFIX}
    with pytest.raises(ValueError, match="glue name"):
        glue("not a name", 1)


def test_diagram_draws_boxes_and_refuses_unknown_names():
    boxes = [Box("a", 1, 1, "a", "(B, T)"), Box("b", 4, 1, "b", kind="op")]
    fig = diagram(boxes, [("a", "b", "label")], size=(5, 2), title="t")
    assert len(fig.axes[0].patches) == 2 and fig.axes[0].get_title() == "t"
    with pytest.raises(ValueError, match="unknown box 'c'"):
        diagram(boxes, [("a", "c")], size=(5, 2))
    with pytest.raises(ValueError, match="kind must be one of"):
        diagram([Box("a", 1, 1, "a", kind="tensor")], [], size=(5, 2))
    with pytest.raises(ValueError, match="share a name"):
        diagram([boxes[0], boxes[0]], [], size=(5, 2))


def test_the_book_serves_its_own_mathjax(root):
    """Formulas must render offline: MathJax comes from the repository, not a CDN."""
    import yaml
    config = yaml.safe_load((root / "_config.yml").read_text())["sphinx"]["config"]
    assert "://" not in config["mathjax_path"]
    extra = [root / p for p in config["html_extra_path"]]
    # mathjax_path is relative to the built _static/; html_extra_path lands in the site's root
    target = config["mathjax_path"].removeprefix("../")
    assert any((folder / target).is_file() for folder in extra), target
    assert any((folder / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
               for folder in extra)
