"""The shared argument checks of chapter 0, used at every public entry point of llmlib."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmlib.checks import dropout_rate, head_size, positive_int
from llmlib.embedding import token_ids


def test_positive_int():
    assert positive_int("n", 3) == 3 and positive_int("n", np.int64(4)) == 4
    for bad in (0, -1, 2.0, True, "3", None):
        with pytest.raises(ValueError, match="n must be a positive int"):
            positive_int("n", bad)


def test_dropout_rate():
    assert dropout_rate("p", 0) == 0.0 and dropout_rate("p", 0.5) == 0.5
    for bad in (1.0, -0.1, True, "0.1"):
        with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
            dropout_rate("p", bad)


def test_head_size_suggests_a_divisor():
    assert head_size(768, 12) == 64
    with pytest.raises(ValueError, match="n_embd=384 is not divisible by n_head=5.*n_head=4"):
        head_size(384, 5)
    with pytest.raises(ValueError, match="n_head must be a positive int"):
        head_size(64, 0)


def test_token_ids():
    idx = torch.tensor([[0, 4, 9]])
    assert token_ids(idx, vocab_size=10, context_length=3) is idx
    assert token_ids(idx.int(), vocab_size=10) is not None
    for bad, match in [(torch.tensor([[0, 10]]), "0..9"),
                       (torch.tensor([[-3, 1]]), "from -3 to 1")]:
        with pytest.raises(ValueError, match=match):
            token_ids(bad, vocab_size=10)
    with pytest.raises(ValueError, match="longer than the context"):
        token_ids(idx, context_length=2)
    with pytest.raises(ValueError, match="uint8"):
        token_ids(idx.to(torch.uint8))
    with pytest.raises(TypeError, match="got ndarray"):
        token_ids(np.zeros((1, 2), dtype=np.int64))


def test_prompt_rows_reads_every_form_without_torch():
    from llmlib.checks import EmptyPromptError, prompt_rows

    class Array:  # anything with NumPy's or torch's array protocol, read through .tolist()
        ndim, shape, dtype = 2, (2, 2), "torch.int32"

        def tolist(self):
            return [[1, 2], [3, 4]]

    assert prompt_rows(Array(), 5).rows == [[1, 2], [3, 4]]
    one = prompt_rows(np.array([1, 2]), 5)
    assert (one.rows, one.batched, one.array) == ([[1, 2]], False, True)
    assert one.like_input([[1, 2, 3]], np.array).tolist() == [1, 2, 3]
    ragged = prompt_rows([[1], (2, np.int64(3))], 5)
    assert ragged.rows == [[1], [2, 3]] and ragged.batched and not ragged.array
    assert ragged.like_input([[1, 4], [2, 3, 4]], np.array) == [[1, 4], [2, 3, 4]]
    as_array = prompt_rows(torch.tensor([[1], [2]]), 5)
    padded = as_array.like_input([[1, 4], [2, 4, 4]], torch.tensor)  # a stopped row repeats
    assert padded.tolist() == [[1, 4, 4], [2, 4, 4]]
    with pytest.raises(TypeError, match="non-empty"):
        prompt_rows([], 5)
    with pytest.raises(ValueError, match=r"holds no tokens \(T = 0\)"):
        prompt_rows(np.zeros((1, 0), dtype=np.int64), 5)
    assert issubclass(EmptyPromptError, TypeError) and issubclass(EmptyPromptError, ValueError)
    with pytest.raises(ValueError, match=r"astype\(np.int64\)"):
        prompt_rows(np.array([1.0]), 5)
    with pytest.raises(ValueError, match=r"0\.\.4 \(vocab_size=5\), found ids from -1 to 2"):
        prompt_rows([[2], [-1]], 5)


def test_read_json_names_the_file_the_place_and_the_fix(tmp_path):
    from llmlib.files import read_json, write_json
    path = tmp_path / "x.json"
    with pytest.raises(FileNotFoundError, match="x.json not found: make one"):
        read_json(path, "make one")
    path.write_text('{\n  "a": }')
    with pytest.raises(ValueError, match=r"x.json is not valid JSON \(line 2, column 8\): "
                                         r"Expecting value; make one"):
        read_json(path, "make one")
    path.write_bytes(b"\xff{}")
    with pytest.raises(ValueError, match=r"not valid JSON \(byte 0 is not UTF-8 text\); make one"):
        read_json(path, "make one")
    write_json(path, [1, "é"])
    assert path.read_text(encoding="utf-8") == '[\n  1,\n  "é"\n]\n'
    assert read_json(path, "make one", list) == [1, "é"]
    with pytest.raises(ValueError, match="must hold a JSON object, not list; make one"):
        read_json(path, "make one", dict)
    with pytest.raises(ValueError, match="must hold a JSON object of settings, not list"):
        read_json(path, "make one", dict, "a JSON object of settings")
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temporary file left


def test_files_checks_and_checkpoint_import_without_torch():
    """The NumPy appendix's path into llmlib: nothing on it imports torch at import time."""
    import subprocess
    import sys
    script = ("import sys\n"
              "sys.modules['torch'] = None  # `import torch` now raises ImportError\n"
              "import llmlib.files, llmlib.checks, llmlib.checkpoint, llmlib.tokenizers\n"
              "import llmlib.numpy_gpt\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
