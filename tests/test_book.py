"""The book builds without warnings, and every chapter page opens in Colab at the right notebook."""

import contextlib
import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
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


# ---------------------------------------------------------------- the playground, in a browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PLAYGROUND_TOKENS, ATTENTION_LAYER, ATTENTION_HEAD, QUERY = 200, 3, 1, 40
VIEW_ROUNDING = 0.0006  # a token's tooltip shows its weight to 3 decimals (toFixed(3))
# Every page of the built book raises this (Jupyter Book 1 loads sphinx-thebe's settings script
# twice); it comes before the playground's scripts and is not theirs.
THEME_ERROR = "Identifier 'THEBE_JS_URL' has already been declared"


@contextlib.contextmanager
def offline_browser():
    """Headless Chromium (the Debian package; .ci/run installs it) whose pages may load file://
    and 127.0.0.1 only: every other request is aborted and recorded in `blocked`."""
    if CHROMIUM is None:
        pytest.fail("the playground's browser test needs Chromium: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []

    def route(request_route):
        url = request_route.request.url
        if url.startswith(("file://", "http://127.0.0.1:")):
            request_route.continue_()
        else:
            blocked.append(url)
            request_route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context()
        context.route("**/*", route)
        try:
            yield context.new_page(), blocked
        finally:
            browser.close()


def drive_playground(page, url: str) -> dict:
    """Open the playground, generate PLAYGROUND_TOKENS tokens with a seed, then read what the
    attention view shows for one layer, head and query: the weights in the tokens' tooltips
    (their colours carry them too, but a browser keeps a colour's alpha in 8 bits)."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)) if str(e) != THEME_ERROR else None)
    page.goto(url)
    page.wait_for_selector("#llmlib-playground[data-state=ready]", timeout=30_000)
    fields = page.locator("#llmlib-playground input")
    fields.nth(0).fill(str(PLAYGROUND_TOKENS))
    fields.nth(4).fill("7")  # the seed
    page.get_by_role("button", name="Generate").click()
    page.wait_for_selector("#llmlib-playground[data-state=done]", timeout=60_000)
    view = page.locator("#llmlib-playground-attention")
    view.locator("select").nth(0).select_option(str(ATTENTION_LAYER))
    view.locator("select").nth(1).select_option(str(ATTENTION_HEAD))
    view.locator(".llmlib-attn-tok").nth(QUERY).hover()
    tips = view.locator(".llmlib-attn-tok").evaluate_all("spans => spans.map(s => s.title)")
    return {"errors": errors, "status": page.locator(".pg-status").inner_text(),
            "output": page.locator(".pg-output").inner_text(),
            "prompt": page.locator("#llmlib-playground textarea").input_value(),
            "ids": page.evaluate("llmlibPlayground.attentionIds"),
            "weights": [float(t.split("weight ")[1].split()[0]) for t in tips]}


def numpy_attention_row(ids: list[int]) -> np.ndarray:
    """What NumPy's GPT (appendix A) gives for the view's layer, head and query."""
    from llmlib.checkpoint import model_folder
    from llmlib.numpy_gpt import NumpyGPT, forward_tape

    _, tape = forward_tape(NumpyGPT.load(model_folder("course")), np.array([ids]))
    return tape["blocks"][ATTENTION_LAYER]["att"][4][0, ATTENTION_HEAD, QUERY]


@contextlib.contextmanager
def served(folder: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.mark.parametrize("origin", ["file", "http"])
def test_the_playground_writes_offline_and_shows_numpys_attention(html, origin):
    """The book's playground page, opened from disk and from a local static server with every
    other request blocked, generates 200 tokens and shows the model's speed; its attention view
    shows NumPy's weights (to the view's 3 decimals)."""
    from llmlib.checkpoint import model_folder, read_tokenizer

    with contextlib.ExitStack() as stack:
        page, blocked = stack.enter_context(offline_browser())
        if origin == "file":
            url = (html / "book" / "playground.html").as_uri()
        else:
            url = stack.enter_context(served(html)) + "/book/playground.html"
        got = drive_playground(page, url)
    assert got["errors"] == [] and blocked == []
    assert f"{PLAYGROUND_TOKENS} tokens in" in got["status"] and "tokens/s" in got["status"]
    text = got["output"].replace("\r\n", "\n")
    assert text.startswith(got["prompt"]) and len(text) == len(got["prompt"]) + PLAYGROUND_TOKENS
    tokenizer = read_tokenizer(model_folder("course"))
    assert tokenizer.decode(got["ids"]) == text[-64:]  # the view reads the text's last characters
    expected = numpy_attention_row(got["ids"])
    assert np.abs(np.array(got["weights"]) - expected).max() <= VIEW_ROUNDING


def test_the_browser_test_catches_a_planted_bug(tmp_path):
    """The same check on write_playground's own page, with gpt.js's GELU constant wrong: the
    attention view no longer shows NumPy's weights."""
    from llmlib.playground import write_playground

    written = write_playground(tmp_path)
    source = written["gpt.js"].read_text()
    written["gpt.js"].write_text(source.replace("0.044715 * x", "0.04715 * x"))
    with offline_browser() as (page, blocked):
        got = drive_playground(page, written["playground.html"].as_uri())
    assert got["errors"] == [] and blocked == []
    assert np.abs(np.array(got["weights"]) - numpy_attention_row(got["ids"])).max() > VIEW_ROUNDING


def test_the_playground_refuses_bad_settings_and_unknown_characters(tmp_path):
    """A bad setting or a character outside the model's alphabet gets one clear line, in red,
    and nothing is generated."""
    from llmlib.playground import write_playground

    written = write_playground(tmp_path)
    cases = [({0: "0"}, "Tokens must be a whole number"), ({1: "-1"}, "Temperature must be"),
             ({3: "1.5"}, "Top-p must be in (0, 1]"), ({2: "2.5"}, "Top-k must be a whole"),
             ({1: "0"}, "Temperature 0 is greedy"), ({}, "does not know \"é\"")]
    with offline_browser() as (page, blocked):
        page.goto(written["playground.html"].as_uri())
        page.wait_for_selector("#llmlib-playground[data-state=ready]", timeout=30_000)
        fields = page.locator("#llmlib-playground input")
        defaults = [fields.nth(i).input_value() for i in range(5)]
        for changes, message in cases:
            for i, value in enumerate(defaults):
                fields.nth(i).fill(changes.get(i, value))
            page.locator("#llmlib-playground textarea").fill("ROMEO: é" if not changes
                                                             else "ROMEO:")
            page.get_by_role("button", name="Generate").click()
            status = page.locator(".pg-status")
            assert message in status.inner_text() and "pg-error" in status.get_attribute("class")
            assert page.locator(".pg-output").inner_text() == ""
    assert blocked == []
