"""Tests for llmlib.viz (chapter 3): the HTML view is deterministic, self-contained, carries
every head's data, and its script works (run under Node.js against a small DOM stub); the widget
explorer builds."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from llmlib.viz import (attention_explorer, attention_html, attention_stack,
                        decode_attention_html_data, show_attention, view_script)

HARNESS = Path(__file__).with_name("attention_view_harness.js")
TOKENS = ["to", " be", "</script>", "\n", "é", "<b>x</b>"]


def _weights(L=2, H=3, T=len(TOKENS), seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(L, H, T, T, generator=g)
    return torch.softmax(
        scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")), dim=-1)


def _payload(html: str) -> dict:
    data = re.search(r'<script type="application/json" id="([^"]+)-data">(.*?)</script>',
                     html, re.S)
    assert data is not None
    return json.loads(data.group(2))


def test_html_is_deterministic_and_ids_follow_content():
    w = _weights()
    a, b = attention_html(w, TOKENS, title="t"), attention_html(w.clone(), list(TOKENS), title="t")
    assert a == b
    ids = re.findall(r'<div id="([^"]+)"', a)
    assert len(ids) == 1 and ids[0].startswith("llmlib-attn-")
    other = attention_html(_weights(seed=1), TOKENS, title="t")
    assert re.findall(r'<div id="([^"]+)"', other)[0] != ids[0]
    given = attention_html(w, TOKENS, element_id="my-view")
    assert '<div id="my-view"' in given and 'id="my-view-data"' in given and '"my-view"' in given
    with pytest.raises(ValueError, match="element_id"):
        attention_html(w, TOKENS, element_id='x" onload="alert(1)')


def test_html_carries_every_head_of_every_layer():
    w = _weights(L=3, H=4)
    payload = _payload(attention_html(w, TOKENS, title="three layers"))
    assert (payload["layers"], payload["heads"], payload["title"]) == (3, 4, "three layers")
    assert payload["tokens"] == ["to", "·be", "</script>", "↵", "é", "<b>x</b>"]
    decoded = decode_attention_html_data(payload)
    assert decoded.shape == (3, 4, 6, 6)
    assert np.abs(decoded - w.numpy()).max() <= 0.5 / 255 + 1e-6  # every head, to 1/255


def test_html_is_self_contained_and_escapes_tokens():
    html = attention_html(_weights(), TOKENS)
    assert ("http://" not in html and "https://" not in html and "require(" not in html
            and "define(" not in html)
    # the data block and the code: a token cannot close a script early
    assert html.count("</script>") == 2
    # the token travels only inside JSON (as <\/b>) and is set via textContent
    assert "<b>x</b>" not in html


def test_inputs_list_tensor_and_errors():
    w = _weights()
    as_list = [w[0], w[1]]
    assert (attention_html(as_list, TOKENS) == attention_html(w, TOKENS)
            == attention_html(w.numpy(), TOKENS))
    assert attention_stack(w[0], TOKENS).shape == (1, 3, 6, 6)  # a single layer (H, T, T)
    with pytest.raises(ValueError, match="6 positions but 5 tokens"):
        attention_html(w, TOKENS[:5])
    with pytest.raises(ValueError, match="batch already selected"):
        attention_html(w[None], TOKENS)
    with pytest.raises(ValueError, match="finite"):
        attention_html(w * float("nan"), TOKENS)
    with pytest.raises(ValueError, match="same"):
        attention_html([w[0], w[1, :2]], TOKENS)
    with pytest.raises(ValueError, match="empty"):
        attention_html([], TOKENS)
    assert "<div id=" in show_attention(w, TOKENS).data


NO_NODE = "Node.js is not installed: the view's JavaScript is checked only where `node` runs"


@pytest.mark.skipif(shutil.which("node") is None, reason=NO_NODE)
def test_the_shipped_script_is_valid_javascript():
    """The view's code is a package file, llmlib/static/attention_view.js, inlined in a view."""
    from importlib import resources

    path = resources.files("llmlib") / "static" / "attention_view.js"
    assert path.is_file() and view_script() == path.read_text(encoding="utf-8")
    assert "</" not in view_script()  # it is inlined in a <script> element: nothing may close it
    subprocess.run(["node", "--check", str(path)], check=True, timeout=60)
    assert view_script() in attention_html(_weights(L=1, H=1), TOKENS)


def test_the_script_ships_with_the_package():
    import tomllib

    from conftest import ROOT

    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "static/*.js" in data["tool"]["setuptools"]["package-data"]["llmlib"]


@pytest.mark.skipif(shutil.which("node") is None, reason=NO_NODE)
def test_script_is_valid_and_interactive_under_node(tmp_path):
    w = _weights(L=2, H=3)
    html = attention_html(w, TOKENS, title="node")
    script = re.search(r"<script>\n(.*?)\n</script>", html, re.S).group(1)
    (tmp_path / "view.js").write_text(script, encoding="utf-8")
    subprocess.run(["node", "--check", str(tmp_path / "view.js")], check=True)
    (tmp_path / "view.html").write_text(html, encoding="utf-8")
    run = subprocess.run(["node", str(HARNESS), str(tmp_path / "view.html")], capture_output=True,
                         text=True, check=True, timeout=60)
    out = json.loads(run.stdout)
    levels = decode_attention_html_data(_payload(html))
    # rendered once, not twice
    assert out["tokens"] == ["to", "·be", "</script>", "↵", "é", "<b>x</b>"]
    assert out["options"] == [["0", "1"], ["0", "1", "2", "-1"]]
    # last token, layer 0, head 0
    np.testing.assert_allclose(out["initial"]["bg"], levels[0, 0, 5], atol=1e-3)
    assert out["initial"]["fills"] == 36  # the heatmap drew T × T cells
    np.testing.assert_allclose(out["hover1"]["bg"], levels[0, 0, 1], atol=1e-3)
    assert out["hover1"]["info"].startswith("query 1")
    # hover ignored once locked
    np.testing.assert_allclose(out["locked2"]["bg"], levels[0, 0, 2], atol=1e-3)
    assert out["locked2"]["info"].startswith("locked: query 2")
    np.testing.assert_allclose(out["lastLayerMean2"]["bg"], levels[1, :, 2].mean(0), atol=1e-3)
    np.testing.assert_allclose(out["canvasLast"]["bg"], levels[1, :, 5].mean(0), atol=1e-3)


def test_explorer_builds_with_shared_widget_api():
    widgets = pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    box = attention_explorer(_weights(), TOKENS)
    assert isinstance(box, widgets.VBox)
    controls, output = box.children
    assert isinstance(output, widgets.Output)
    layer, head, query = controls.children
    assert [o[1] for o in layer.options] == [0, 1]
    assert [o[1] for o in head.options] == [0, 1, 2, -1]
    assert [o[1] for o in query.options] == list(range(6)) and query.value == 5
    layer.value, head.value, query.value = 1, -1, 2  # redraws without error
