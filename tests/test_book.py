"""The book builds without warnings, and every chapter page opens in Colab at the right notebook."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import CHAPTERS, ROOT


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    result = subprocess.run([str(jupyter_book), "build", str(ROOT), "--path-output", str(out),
                             "-W", "--keep-going"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return out / "_build" / "html"


def test_front_pages(html):
    # index.html forwards to the intro
    assert 'url=book/intro.html' in (html / "index.html").read_text()
    intro = (html / "book" / "intro.html").read_text()
    # bibliography rendered
    assert "LLMs from Scratch" in intro and "The map" in intro and "Vaswani" in intro
    assert (html / "book" / "setup.html").exists()


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_page_has_outputs_and_colab_button(html, path):
    page = (html / "chapters" / f"{path.stem}.html").read_text()
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]["url"].removeprefix("https://github.com/")
    branch = config["repository"]["branch"]
    assert (f"https://colab.research.google.com/github/{repo}/blob/{branch}/"
            f"chapters/{path.name}") in page
    assert re.search(r"run mode (cpu|gpu)", page), \
        "the page must show the setup cell's record of the run"
    # _static/course.css widens the article so that 100-column code does not scroll sideways
    assert "_static/course.css" in page


CELL_CODE = re.compile(r'<div class="cell_input[^"]*">.*?<pre>(.*?)</pre>', re.S)
TAG = re.compile(r"<[^>]+>")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_pages_hide_build_markers_and_need_no_cdn(html, path):
    """`#| export` lines are for tools/export.py, not the reader (_ext/course_book.py hides them);
    every script a page loads comes with the book, so it reads offline."""
    page = (html / "chapters" / f"{path.stem}.html").read_text()
    for code in CELL_CODE.findall(page):
        lines = [line.strip() for line in TAG.sub("", code).splitlines()]
        assert not any(line.startswith("#|") for line in lines), code[:200]
    remote = re.findall(r'<script[^>]*src="(https?://[^"]+)"', page)
    assert not remote, f"{path.stem} loads scripts from the network: {remote}"


def test_setup_page_shows_every_chapters_time(html):
    setup = TAG.sub("", (html / "book" / "setup.html").read_text())
    for path in CHAPTERS:
        number, _, name = path.stem.partition("_")
        row = f"{number.lstrip('0') or '0'} {name.replace('_', ' ')}"
        assert row in setup, f"book/timings.md has no row for {path.stem}"
