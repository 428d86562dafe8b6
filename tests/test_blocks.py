"""Tests for llmlib.blocks (chapter 4): LayerNorm, GELU, FeedForward and TransformerBlock
against references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlib.blocks import (GELU, FeedForward, LayerNorm, TransformerBlock, gelu_naive,
                           layer_norm_naive)


def _randomize(module: nn.Module, std: float = 0.2, seed: int = 0) -> nn.Module:
    """Non-default values everywhere (ones/zeros would hide a swapped weight and bias)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std)
    return module


# ----------------------------------------------------------------------------- LayerNorm

@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("impl", ["naive", "module"])
def test_layer_norm_matches_torch_forward_and_gradients(dtype, tol, impl):
    torch.manual_seed(0)
    C = 48
    ref = nn.LayerNorm(C, eps=1e-5).to(dtype)
    ours = LayerNorm(C, eps=1e-5).to(dtype)
    with torch.no_grad():
        ref.weight.normal_()
        ref.bias.normal_()
        ours.weight.copy_(ref.weight)
        ours.bias.copy_(ref.bias)
    x = (4 * torch.randn(3, 7, C, dtype=dtype) - 1).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    out = layer_norm_naive(x, ours.weight, ours.bias, 1e-5) if impl == "naive" else ours(x)
    out_ref = ref(x_ref)
    upstream = torch.randn_like(out)
    (out * upstream).sum().backward()
    (out_ref * upstream).sum().backward()
    assert (out - out_ref).abs().max().item() < tol
    assert (x.grad - x_ref.grad).abs().max().item() < tol
    assert (ours.weight.grad - ref.weight.grad).abs().max().item() < tol * 10
    assert (ours.bias.grad - ref.bias.grad).abs().max().item() < tol * 10


def test_layer_norm_gradcheck():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: layer_norm_naive(x, w, b), (x, w, b))


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=0, max_size=2), C=st.integers(2, 33),
       scale=st.floats(1e-2, 1e3), shift=st.floats(-1e3, 1e3),
       eps=st.sampled_from([1e-5, 1e-6, 0.1]))
def test_layer_norm_any_shape_and_scale(shape, C, scale, shift, eps):
    x = torch.randn(*shape, C, dtype=torch.float64) * scale + shift
    ours, ref = LayerNorm(C, eps=eps).double(), nn.LayerNorm(C, eps=eps).double()
    torch.testing.assert_close(ours(x), ref(x), atol=1e-10, rtol=0)
    torch.testing.assert_close(layer_norm_naive(x, eps=eps), F.layer_norm(x, (C,), eps=eps),
                               atol=1e-10, rtol=0)


def test_layer_norm_without_bias_and_eps():
    ours, ref = LayerNorm(16, eps=1e-3, bias=False), nn.LayerNorm(16, eps=1e-3, bias=False)
    assert [n for n, _ in ours.named_parameters()] == ["weight"]
    assert list(ours.state_dict()) == ["weight"]
    with torch.no_grad():
        ours.weight.normal_()
        ref.weight.copy_(ours.weight)
    x = torch.randn(5, 16) * 0.01  # small variance: eps matters
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=0)
    assert not torch.allclose(ours(x), LayerNorm(16, eps=1e-5, bias=False).to(x)(x) * ours.weight,
                              atol=1e-3)


def test_layer_norm_normalizes_and_has_gpt2_names():
    ln = LayerNorm(32)
    assert list(ln.state_dict()) == ["weight", "bias"]
    y = ln(torch.randn(4, 9, 32) * 10 + 3)
    assert y.mean(-1).abs().max() < 1e-5
    assert (y.var(-1, unbiased=False) - 1).abs().max() < 1e-3
    assert "32, eps=1e-05, bias=True" in repr(ln)


def test_layer_norm_errors():
    with pytest.raises(ValueError, match="n_embd must be a positive int"):
        LayerNorm(0)
    with pytest.raises(ValueError, match="n_embd must be a positive int"):
        LayerNorm(3.0)
    with pytest.raises(ValueError, match="eps must be > 0"):
        LayerNorm(8, eps=0.0)
    with pytest.raises(ValueError, match=r"expects input of shape \(\.\.\., 8\), got \(2, 7\)"):
        LayerNorm(8)(torch.randn(2, 7))
    with pytest.raises(ValueError, match="expects input of shape"):
        LayerNorm(8)(torch.tensor(1.0))


# ----------------------------------------------------------------------------- GELU

@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch(approximate):
    x = torch.linspace(-10, 10, 20_001, dtype=torch.float64)
    ref = nn.GELU(approximate=approximate)(x)
    torch.testing.assert_close(gelu_naive(x, approximate), ref, atol=1e-13, rtol=0)
    torch.testing.assert_close(GELU(approximate)(x), ref, atol=0, rtol=0)
    x32 = x.float().requires_grad_()
    x_ref = x.float().requires_grad_()
    gelu_naive(x32, approximate).sum().backward()
    F.gelu(x_ref, approximate=approximate).sum().backward()
    torch.testing.assert_close(x32.grad, x_ref.grad, atol=1e-5, rtol=0)


def test_gelu_default_is_gpt2_tanh_form():
    from transformers.activations import NewGELUActivation  # GPT-2's "gelu_new"

    assert GELU().approximate == "tanh"
    x = torch.randn(10_000, dtype=torch.float64) * 4
    torch.testing.assert_close(GELU()(x), NewGELUActivation()(x), atol=1e-12, rtol=0)
    gap = (GELU("tanh")(x) - GELU("none")(x)).abs().max().item()
    assert 1e-5 < gap < 1e-3  # close, but the two forms are not the same function


def test_gelu_known_values():
    x = torch.tensor([0.0, 1.0, -1.0, 3.0], dtype=torch.float64)
    phi = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
    torch.testing.assert_close(GELU("none")(x), x * phi, atol=1e-15, rtol=0)
    assert GELU("none")(torch.tensor(1.0)).item() == pytest.approx(0.8413447460685429, abs=1e-6)


def test_gelu_errors():
    with pytest.raises(ValueError, match="approximate must be one of"):
        GELU("erf")
    with pytest.raises(ValueError, match="approximate must be one of"):
        gelu_naive(torch.zeros(2), "fast")


# ----------------------------------------------------------------------------- FeedForward

def test_feed_forward_shapes_names_and_count():
    C = 24
    mlp = FeedForward(C)
    assert list(mlp.state_dict()) == ["c_fc.weight", "c_fc.bias", "c_proj.weight", "c_proj.bias"]
    assert mlp.c_fc.weight.shape == (4 * C, C) and mlp.c_proj.weight.shape == (C, 4 * C)
    assert sum(p.numel() for p in mlp.parameters()) == 8 * C * C + 5 * C
    assert sum(p.numel() for p in FeedForward(C, bias=False).parameters()) == 8 * C * C
    assert mlp.gelu.approximate == "tanh"
    assert mlp(torch.randn(2, 5, C)).shape == (2, 5, C)


def test_feed_forward_is_position_wise_and_matches_formula():
    torch.manual_seed(0)
    mlp = FeedForward(16).eval()
    x = torch.randn(3, 8, 16)
    y = mlp(x)
    per_position = torch.stack([mlp(x[:, t]) for t in range(8)], dim=1)
    torch.testing.assert_close(y, per_position, atol=1e-6, rtol=0)
    h = F.gelu(x @ mlp.c_fc.weight.T + mlp.c_fc.bias, approximate="tanh")
    torch.testing.assert_close(y, h @ mlp.c_proj.weight.T + mlp.c_proj.bias, atol=1e-5, rtol=0)


def test_feed_forward_matches_transformers_gpt2_mlp():
    from transformers import GPT2Config
    from transformers.models.gpt2.modeling_gpt2 import GPT2MLP

    C = 32
    config = GPT2Config(n_embd=C, n_head=4, resid_pdrop=0.0, activation_function="gelu_new")
    hf = _randomize(GPT2MLP(4 * C, config)).eval()
    ours = FeedForward(C).eval()
    # Conv1D is (in, out)
    ours.load_state_dict({k: v.T if v.ndim == 2 else v for k, v in hf.state_dict().items()})
    x = torch.randn(2, 6, C)
    torch.testing.assert_close(ours(x), hf(x), atol=1e-5, rtol=0)


def test_feed_forward_dropout_and_errors():
    torch.manual_seed(0)
    mlp = FeedForward(16, dropout=0.5)
    x = torch.randn(4, 16)
    mlp.train()
    assert not torch.equal(mlp(x), mlp(x))
    mlp.eval()
    assert torch.equal(mlp(x), mlp(x))
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        FeedForward(16, dropout=1.0)
    with pytest.raises(ValueError, match="n_embd must be a positive int"):
        FeedForward(-4)


# ----------------------------------------------------------------------------- TransformerBlock

def _block(C=32, H=4, **kwargs) -> TransformerBlock:
    torch.manual_seed(0)
    block = TransformerBlock(C, H, **kwargs).eval()
    with torch.no_grad():
        for ln in (block.ln_1, block.ln_2):
            ln.weight.normal_()
            ln.bias.normal_()
    return block


def test_block_names_match_gpt2_and_count():
    C = 32
    block = TransformerBlock(C, 4)
    names = [n for n, _ in block.named_parameters()]
    assert names == ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                     "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                     "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"]
    assert sum(p.numel() for p in block.parameters()) == 12 * C * C + 13 * C
    assert (sum(p.numel() for p in TransformerBlock(C, 4, bias=False).parameters())
            == 12 * C * C + 2 * C)
    assert block.ln_1.eps == 1e-5 and TransformerBlock(C, 4, eps=1e-6).ln_2.eps == 1e-6


@pytest.mark.parametrize("pre_norm", [True, False])
def test_block_matches_formula(pre_norm):
    block = _block(pre_norm=pre_norm)
    x = torch.randn(2, 9, 32)
    with torch.no_grad():
        mlp = lambda h: block.mlp.c_proj(  # noqa: E731
            F.gelu(block.mlp.c_fc(h), approximate="tanh"))
        if pre_norm:
            h = x + block.attn(block.ln_1(x))
            expected = h + mlp(block.ln_2(h))
        else:
            h = block.ln_1(x + block.attn(x))
            expected = block.ln_2(h + mlp(h))
        torch.testing.assert_close(block(x), expected, atol=1e-6, rtol=0)
        # and the two structures really differ
        other = TransformerBlock(32, 4, pre_norm=not pre_norm).eval()
        other.load_state_dict(block.state_dict())
        assert (other(x) - block(x)).abs().max() > 1e-2


def test_block_matches_transformers_gpt2_block():
    from transformers import GPT2Config
    from transformers.models.gpt2.modeling_gpt2 import GPT2Block

    C, H, T = 32, 4, 7
    config = GPT2Config(n_embd=C, n_head=H, n_layer=1, n_positions=16, resid_pdrop=0.0,
                        attn_pdrop=0.0, embd_pdrop=0.0, layer_norm_epsilon=1e-5)
    config._attn_implementation = "eager"
    hf = _randomize(GPT2Block(config)).eval()
    ours = TransformerBlock(C, H).eval()
    ours.load_state_dict({k: v.T if v.ndim == 2 else v for k, v in hf.state_dict().items()},
                         strict=True)
    x = torch.randn(2, T, C)
    # a standalone GPT2Block needs its mask
    causal = torch.full((T, T), float("-inf")).triu(1)[None, None]
    with torch.no_grad():
        expected = hf(x, attention_mask=causal)
        expected = expected[0] if isinstance(expected, tuple) else expected
        torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=0)


def test_block_is_causal_and_returns_weights():
    block = _block()
    x = torch.randn(2, 10, 32)
    with torch.no_grad():
        y, w = block(x, need_weights=True)
        assert y.shape == x.shape and w.shape == (2, 4, 10, 10)
        torch.testing.assert_close(y, block(x), atol=1e-6, rtol=0)  # weights path == fused path
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 10), atol=1e-5, rtol=0)
        assert (w.triu(1) == 0).all()
        x2 = x.clone()
        x2[:, 6:] = torch.randn(2, 4, 32)
        y2 = block(x2)
    torch.testing.assert_close(y2[:, :6], y[:, :6], atol=1e-6, rtol=0)
    assert (y2[:, 6:] - y[:, 6:]).abs().max() > 1e-3


def test_block_padding_mask_hides_left_padding():
    block = _block()
    real = torch.randn(1, 6, 32)
    padded = torch.cat([torch.randn(1, 3, 32) * 5, real], dim=1)  # 3 pad positions on the left
    mask = torch.tensor([[False] * 3 + [True] * 6])
    with torch.no_grad():
        expected = block(real)
        torch.testing.assert_close(block(padded, padding_mask=mask)[:, 3:], expected,
                                   atol=1e-5, rtol=0)
        y, w = block(padded, padding_mask=mask, need_weights=True)
        torch.testing.assert_close(y[:, 3:], expected, atol=1e-5, rtol=0)
        assert (w[:, :, 3:, :3] == 0).all()  # real tokens give no weight to pads
        # without the mask, pads leak in
        assert (block(padded)[:, 3:] - expected).abs().max() > 1e-3


def test_block_gradients_reach_every_parameter():
    block = TransformerBlock(16, 2)
    x = torch.randn(2, 5, 16, requires_grad=True)
    block(x).pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_block_dropout_train_vs_eval():
    torch.manual_seed(0)
    block = TransformerBlock(16, 2, dropout=0.3)
    x = torch.randn(2, 5, 16)
    block.train()
    assert not torch.equal(block(x), block(x))
    block.eval()
    assert torch.equal(block(x), block(x))


def test_block_errors():
    with pytest.raises(ValueError, match="n_embd=30 is not divisible by n_head=4.*n_head=3"):
        TransformerBlock(30, 4)
    with pytest.raises(ValueError, match="n_head must be a positive int"):
        TransformerBlock(32, 0)
    block = TransformerBlock(16, 2)
    with pytest.raises(ValueError, match=r"expects x of shape \(B, T, 16\), got \(5, 16\)"):
        block(torch.randn(5, 16))
    with pytest.raises(ValueError, match=r"expects x of shape \(B, T, 16\), got \(1, 5, 8\)"):
        block(torch.randn(1, 5, 8))
