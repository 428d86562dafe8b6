"""The shared argument checks of chapter 0, used at every public entry point of llmlib."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmlib.checks import dropout_rate, head_size, positive_int, token_ids


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
