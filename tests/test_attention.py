"""Tests for llmlib.attention (chapter 3): masks, no future leakage, no NaN, and
reference equivalences."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llmlib.attention import (MultiHeadAttention, attention_math, attention_sdpa,
                              build_attention_mask, causal_mask)

TOL = 1e-5


def _mha(n_embd=16, n_head=4, seed=0, **kw) -> MultiHeadAttention:
    torch.manual_seed(seed)
    return MultiHeadAttention(n_embd, n_head, **kw).eval()


def _torch_reference(m: MultiHeadAttention) -> torch.nn.MultiheadAttention:
    ref = torch.nn.MultiheadAttention(m.n_embd, m.n_head, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(m.c_attn.weight)
        ref.in_proj_bias.copy_(m.c_attn.bias)
        ref.out_proj.weight.copy_(m.c_proj.weight)
        ref.out_proj.bias.copy_(m.c_proj.bias)
    return ref


def test_causal_mask_is_lower_triangle():
    m = causal_mask(4)
    assert m.dtype == torch.bool and m.shape == (4, 4)
    assert m.tolist() == [[True, False, False, False], [True, True, False, False],
                          [True, True, True, False], [True, True, True, True]]
    with pytest.raises(ValueError, match="positive sequence length"):
        causal_mask(0)


def test_build_attention_mask_shapes_and_content():
    assert build_attention_mask(3, None, causal=False) is None
    assert torch.equal(build_attention_mask(3, None, causal=True), causal_mask(3))
    pad = torch.tensor([[True, True, False], [False, True, True]])
    mask = build_attention_mask(3, pad, causal=True)
    assert mask.shape == (2, 1, 3, 3)
    assert mask[0, 0].tolist() == [[True, False, False], [True, True, False], [True, True, False]]
    assert mask[1, 0].tolist() == [[False, False, False], [False, True, False], [False, True, True]]
    with pytest.raises(ValueError, match="padding_mask must be a bool"):
        build_attention_mask(3, pad.long())


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("padded", [False, True])
def test_math_equals_sdpa_and_torch_sdpa(causal, padded):
    torch.manual_seed(1)
    q, k, v = (torch.randn(2, 3, 6, 8) for _ in range(3))
    pad = torch.tensor([[True] * 6, [True] * 4 + [False] * 2]) if padded else None
    mask = build_attention_mask(6, pad, causal)
    y_math, w = attention_math(q, k, v, mask)
    y_ours = attention_sdpa(q, k, v, mask)
    y_torch = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert (y_math - y_ours).abs().max() < TOL
    assert (y_math - y_torch).abs().max() < TOL
    assert torch.allclose(w.sum(-1), torch.ones(2, 3, 6), atol=1e-6)


def test_fully_masked_rows_give_zero_not_nan_forward_and_backward():
    torch.manual_seed(2)
    m = _mha()
    x = torch.randn(2, 5, 16, requires_grad=True)
    # left padding: rows 0, 1 see nothing
    pad = torch.tensor([[False, False, True, True, True], [True] * 5])
    for need_weights in (False, True):
        out = m(x, pad, need_weights=need_weights)
        y = out[0] if need_weights else out
        assert not torch.isnan(y).any()
        y.sum().backward()
        assert (not torch.isnan(x.grad).any()
                and not any(torch.isnan(p.grad).any() for p in m.parameters()))
        x.grad = None
        m.zero_grad()
    _, w = m(x, pad, need_weights=True)
    assert w[0, :, :2].abs().max() == 0  # the two fully masked query rows attend nowhere
    # their attention output is 0, so y there is just c_proj's bias
    y = m(x, pad)
    assert (y[0, :2] - m.c_proj.bias).abs().max() < TOL


def test_changing_future_tokens_never_changes_earlier_outputs():
    m = _mha()
    torch.manual_seed(3)
    x = torch.randn(2, 8, 16)
    for t in range(8):
        x2 = x.clone()
        x2[:, t:] = torch.randn(2, 8 - t, 16)
        for need_weights in (False, True):
            y1, y2 = (m(inp, need_weights=need_weights) for inp in (x, x2))
            if need_weights:
                y1, y2 = y1[0], y2[0]
            assert torch.equal(y1[:, :t], y2[:, :t]) or (y1[:, :t] - y2[:, :t]).abs().max() < 1e-6
            if t < 7:
                assert (y1[:, t:] - y2[:, t:]).abs().max() > 1e-3  # and the future does change


def test_padding_tokens_never_change_real_outputs():
    m = _mha()
    torch.manual_seed(4)
    x = torch.randn(1, 6, 16)
    pad = torch.tensor([[True] * 4 + [False] * 2])
    x2 = x.clone()
    x2[:, 4:] = 100 * torch.randn(1, 2, 16)
    y1, y2 = m(x, pad, causal=False), m(x2, pad, causal=False)
    assert (y1[:, :4] - y2[:, :4]).abs().max() < TOL
    # and the first 4 positions equal running the unpadded sequence
    assert (y1[:, :4] - m(x[:, :4], causal=False)).abs().max() < TOL


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("padded", [False, True])
def test_matches_torch_multihead_attention_forward_and_grad(causal, padded):
    m = _mha(n_embd=24, n_head=3)
    ref = _torch_reference(m)
    torch.manual_seed(5)
    x = torch.randn(3, 7, 24)
    pad = (torch.tensor([[True] * 7, [True] * 5 + [False] * 2, [True] * 3 + [False] * 4])
           if padded else None)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    for need_weights in (False, True):
        out = m(x1, pad, causal=causal, need_weights=need_weights)
        y = out[0] if need_weights else out
        y_ref, w_ref = ref(x2, x2, x2, key_padding_mask=None if pad is None else ~pad,
                           attn_mask=~causal_mask(7) if causal else None, need_weights=True,
                           average_attn_weights=False)
        assert (y - y_ref).abs().max() < TOL
        if need_weights:
            assert (out[1] - w_ref).abs().max() < TOL
        g = torch.randn_like(y)
        (y * g).sum().backward()
        (y_ref * g).sum().backward()
        assert (x1.grad - x2.grad).abs().max() < 1e-4
        assert (m.c_attn.weight.grad - ref.in_proj_weight.grad).abs().max() < 1e-4
        assert (m.c_proj.weight.grad - ref.out_proj.weight.grad).abs().max() < 1e-4
        for t in (x1, x2):
            t.grad = None
        m.zero_grad()
        ref.zero_grad()


def test_need_weights_gives_same_output_and_weights_shape():
    m = _mha()
    x = torch.randn(2, 5, 16)
    y = m(x)
    y2, w = m(x, need_weights=True)
    assert y.shape == (2, 5, 16) and w.shape == (2, 4, 5, 5)
    assert (y - y2).abs().max() < TOL
    assert torch.equal(w.triu(1), torch.zeros_like(w))  # causal: nothing above the diagonal


def test_gpt2_layout_attributes():
    m = MultiHeadAttention(32, 4, dropout=0.1, bias=False)
    assert (m.n_head, m.head_dim) == (4, 8)
    assert m.c_attn.weight.shape == (96, 32) and m.c_attn.bias is None
    assert m.c_proj.weight.shape == (32, 32) and m.c_proj.bias is None
    assert m.attn_dropout.p == 0.1 and m.resid_dropout.p == 0.1
    assert set(dict(m.named_parameters())) == {"c_attn.weight", "c_proj.weight"}


def test_dropout_only_in_training():
    m = _mha(dropout=0.5)
    x = torch.randn(2, 6, 16)
    m.eval()
    assert torch.equal(m(x), m(x))
    m.train()
    torch.manual_seed(0)
    a = m(x)
    torch.manual_seed(1)
    b = m(x)
    assert (a - b).abs().max() > 1e-3
    _, w = m(x, need_weights=True)
    # dropped weights are 0, kept ones are scaled by 1 / (1 - p): rows no longer sum to 1
    assert (w == 0).any() and not torch.allclose(w.sum(-1), torch.ones(2, 4, 6))


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="divisible by n_head"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="dropout"):
        MultiHeadAttention(8, 2, dropout=1.0)
    m = _mha()
    with pytest.raises(ValueError, match=r"\(B, T, C\)"):
        m(torch.randn(5, 16))
    with pytest.raises(ValueError, match=r"\(B, T, C\)"):
        m(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="padding_mask must be"):
        m(torch.randn(2, 5, 16), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="padding_mask must be a bool"):
        m(torch.randn(2, 5, 16), torch.ones(2, 5))
    with pytest.raises(ValueError, match="q, k, v must be"):
        attention_math(torch.randn(2, 3, 4), torch.randn(2, 3, 5), torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="not both"):
        attention_sdpa(*(torch.randn(1, 3, 4) for _ in range(3)), mask=causal_mask(3),
                       is_causal=True)


try:
    from hypothesis import given, settings, strategies as st
except ImportError:  # hypothesis is a dev dependency; the tests above still run without it
    st = None

if st is not None:
    @settings(max_examples=40, deadline=None)
    @given(B=st.integers(1, 3), H=st.integers(1, 3), T=st.integers(1, 9), D=st.integers(1, 6),
           causal=st.booleans(), seed=st.integers(0, 2**16),
           pad_mode=st.sampled_from(["none", "right", "random"]))
    def test_property_math_sdpa_and_torch_agree(B, H, T, D, causal, seed, pad_mode):
        g = torch.Generator().manual_seed(seed)
        q, k, v = (torch.randn(B, H, T, D, generator=g) for _ in range(3))
        if pad_mode == "none":
            pad = None
        elif pad_mode == "right":
            lengths = torch.randint(1, T + 1, (B,), generator=g)
            pad = torch.arange(T)[None, :] < lengths[:, None]
        else:  # any pattern, including rows with no real token at all
            pad = torch.rand(B, T, generator=g) < 0.6
        mask = build_attention_mask(T, pad, causal)
        y_math, w = attention_math(q, k, v, mask)
        y_sdpa = attention_sdpa(q, k, v, mask) if mask is not None else attention_sdpa(q, k, v)
        assert not torch.isnan(y_math).any() and not torch.isnan(y_sdpa).any()
        assert (y_math - y_sdpa).abs().max() < 1e-5
        if mask is not None:
            visible = mask.expand(B, H, T, T)
            assert torch.equal(w[~visible], torch.zeros_like(w[~visible]))  # no weight where masked
            rows = visible.any(-1)
            assert torch.allclose(w.sum(-1)[rows], torch.ones(int(rows.sum())), atol=1e-5)
            # nothing visible: output 0
            assert torch.equal(y_math[~rows], torch.zeros_like(y_math[~rows]))
            reference = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            if rows.any():
                assert (y_math[rows] - reference[rows]).abs().max() < 1e-5
        else:
            assert (y_math - F.scaled_dot_product_attention(q, k, v)).abs().max() < 1e-5
