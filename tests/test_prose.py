"""The prose agrees with the page: every number glued into a chapter's markdown comes from that
chapter's committed outputs, every chapter shows the same chapter map, and the book's helpers
(llmlib.book) fail loudly on bad input."""

import json
import re

import matplotlib
import pytest

import chapter_map
import run_notebooks
from conftest import CHAPTERS, ROOT, read_notebook
from llmlib.book import GLUE_PREFIX, Box, diagram, glue
from typed_numbers import typed_numbers

matplotlib.use("Agg")
GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`]+)`")
# the literal markup shown in a code span to explain glue (``{glue:text}`name` ``) is not a use
CODE_SPAN = re.compile(r"``.*?``", re.S)
# an exercise's hidden solution may state the result to expect (the exercise is the reader's run)
SOLUTION = re.compile(r"<details>.*?</details>", re.S)
# Numbers with units in a chapter's prose that are not measured by its run: constants, datasheet
# and file sizes, arithmetic the prose itself does. Anything else is glued from the run.
NOT_MEASURED = {
    "00_setup": {"60 s": "the smoke budget", "8,000 GFLOP/s": "the T4's datasheet peak"},
    "01_tokenizers": {"5 MB": "the corpus's size", "1.5 MB": "the size of GPT-2's shipped files",
                      "548 MB": "GPT-2's weights file"},
    "02_data": {"90 %": "nanoGPT's split", "10 %": "nanoGPT's split",
                "100 %": "every token is a target", "20 GB": "10 B tokens of uint16",
                "8 GB": "a laptop's RAM", "2 ×": "a 2 × 2 rotation"},
    "03_attention": {"3 GiB": "12 · 8,192² · 4 bytes", "3 MB": "12 · 12 · 128² bytes"},
    "04_transformer_block": {"4×": "GPT-2's feed-forward width"},
    "05_gpt": {"2 nats": "σ²/2 nats", "4 ×": "four copies of the weights",
               "4×": "GPT-2's feed-forward width", "1.85 GiB": "GPT-2's AdamW state, by formula",
               "23 GiB": "GPT-2 XL's AdamW state, by formula", "548 MB": "GPT-2's weights file",
               "16 GiB": "a GPU's memory", "1×": "the threshold a ratio is compared with"},
    "07_generation": {"548 MB": "GPT-2's weights file"},
    "A_numpy_gpt": {"410 GB": "8 · 12 · 1024³ numbers × 4 bytes"},
    "08_finetuning": {"95 %": "the confidence intervals' level", "40 GB": "GPT-2's WebText",
                      "1%": "1,179,648 of GPT-2's 124 M parameters, by arithmetic"},
}


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


def typed_in(nb: dict) -> list[str]:
    """Measured-looking numbers in the markdown outside glue, code, math and exercise solutions."""
    return [hit for cell in nb["cells"] if cell["cell_type"] == "markdown"
            for hit in typed_numbers(SOLUTION.sub(" ", "".join(cell["source"])))]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_measured_number_is_typed_into_the_prose(path):
    allowed = NOT_MEASURED.get(path.stem, {})
    typed = sorted(set(typed_in(read_notebook(path))) - set(allowed))
    assert not typed, (f"{path.name} types {typed} into its prose: glue them from the cell "
                       "that measures them (llmlib.book.glue), or, for a constant, add it with "
                       "the reason to NOT_MEASURED in tests/test_prose.py")


def test_a_planted_typed_number_is_found():
    prose = ("One step took 12.5 ms ({glue:text}`step_ms` ms in this run), 3.2× faster, 87 % of "
             "the peak; `2 s` in code, $4 \\times$ in math and <details>about 9 s</details> pass.")
    nb = {"cells": [{"cell_type": "markdown", "source": [prose]}]}
    assert typed_in(nb) == ["12.5 ms", "3.2×", "87 %"]


def test_the_timings_table_is_the_recorded_one():
    """book/setup.md includes book/timings.md: one run's times, every chapter, both modes."""
    timings = json.loads((ROOT / "book" / "timings.json").read_text())
    assert (ROOT / "book" / "timings.md").read_text() == run_notebooks.table(timings)
    assert "{include} timings.md" in (ROOT / "book" / "setup.md").read_text()
    for path in CHAPTERS:
        assert set(timings.get(path.stem, {})) >= {"cpu", "smoke"}, (
            f"{path.stem}: no recorded cpu and smoke time; run tools/run_notebooks.py on it "
            "(and with --smoke)")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_glue_shows_no_stray_output(path):
    """glue() returns text a notebook does not display: a cell ending in glue shows no box."""
    for index, cell in enumerate(read_notebook(path)["cells"]):
        if cell["cell_type"] == "code" and "glue(" in "".join(cell["source"]):
            results = [o for o in cell.get("outputs", []) if o["output_type"] == "execute_result"]
            shown = [o["data"].get("text/plain", "") for o in results]
            assert not any(re.fullmatch(r"'[^'\n]*'", "".join(t)) for t in shown), (
                f"{path.name} cell {index} displays a glued value {shown}: re-run the chapter")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_cell_scatters_its_output(path):
    """The book joins a cell's stream outputs with line breaks: a cell that printed piece by piece
    (a streaming demo) would render one piece per line."""
    for index, cell in enumerate(read_notebook(path)["cells"]):
        n_outputs = len(cell.get("outputs", []))
        assert n_outputs <= 30, (f"{path.name} cell {index} stored {n_outputs} outputs; print "
                                 "whole lines (or collect the pieces) so the page shows one block")


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
        result = glue("speed_up", 3.5)
        assert result == "3.5" and isinstance(result, str)
        assert result._ipython_display_() is None  # a cell ending in glue(...) shows nothing
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
