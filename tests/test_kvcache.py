"""Chapter 7's KV cache runs the model's own forward (chapter 3's attention hook): for every model
option the cached, padded and static decoding steps give the full forward's logits. And chapter
2's id check: a training step never waits for the device to read the ids."""

from __future__ import annotations

import itertools

import pytest
import torch

from llmlib import embedding
from llmlib.generate import Decoder
from llmlib.gpt import GPT, GPTConfig
from llmlib.kvcache import (KVCache, StaticStep, decode_head, forward_cached, forward_static,
                            step_mask)

V, T_MAX = 40, 24
OPTIONS = list(itertools.product([True, False], ["learned", "sinusoidal"], [True, False],
                                 [0.0, 0.3]))


def _model(pre_norm: bool, position: str, bias: bool, dropout: float) -> GPT:
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=V, context_length=T_MAX, n_layer=2, n_head=2, n_embd=16,
                       dropout=dropout, bias=bias, position=position)
    model = GPT(config)
    for block in model.transformer.h:  # post-norm is a block option (chapter 4)
        block.pre_norm = pre_norm
    with torch.no_grad():  # make LayerNorms and biases non-trivial, so that every option matters
        for name, p in model.named_parameters():
            if "ln_" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def _close(got: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pre_norm, position, bias, dropout", OPTIONS)
def test_cached_decoding_equals_the_full_forward(pre_norm, position, bias, dropout):
    model = _model(pre_norm, position, bias, dropout)
    ids = torch.randint(0, V, (2, 12), generator=torch.Generator().manual_seed(1))
    full = model(ids)[0]  # (2, 12, V)
    with torch.no_grad():
        # the hook itself: model(idx, positions=..., kv_cache=...), prefill then one token a step
        cache = KVCache(model, 2, T_MAX)
        _close(model(ids[:, :5], kv_cache=cache)[0], full[:, :5])
        for t in range(5, 12):
            step = model(ids[:, t:t + 1], positions=torch.full((2, 1), t), kv_cache=cache)[0]
            _close(step[:, 0], full[:, t])
        assert cache.length == 12
        # two new tokens at once after a prefill need the offset causal mask
        cache = KVCache(model, 2, T_MAX)
        forward_cached(model, ids[:, :6], cache, torch.arange(6).expand(2, 6))
        two = forward_cached(model, ids[:, 6:8], cache, torch.arange(6, 8).expand(2, 2),
                             head=decode_head(model))
        _close(two, full[:, 6:8])


@pytest.mark.parametrize("pre_norm, position, bias, dropout", OPTIONS)
def test_padded_and_static_decoding_equal_each_prompt_alone(pre_norm, position, bias, dropout):
    model = _model(pre_norm, position, bias, dropout)
    gen = torch.Generator().manual_seed(2)
    rows = [torch.randint(0, V, (n,), generator=gen).tolist() for n in (3, 9, 6)]
    new = torch.randint(0, V, (3, 4), generator=gen)
    with torch.no_grad():
        for static in (False, True):
            decoder = Decoder(model, rows, use_cache=True, static=static)
            logits = [decoder.first()] + [decoder.next(new[:, i]) for i in range(4)]
            for b, row in enumerate(rows):
                alone = model(torch.tensor([row + new[b].tolist()]))[0][0]  # (len + 4, V)
                for i, step in enumerate(logits):
                    _close(step[b], alone[len(row) - 1 + i])


def test_forward_static_writes_its_slot_and_reads_the_whole_buffer():
    model = _model(False, "sinusoidal", True, 0.0)
    ids = torch.randint(0, V, (2, 8), generator=torch.Generator().manual_seed(3))
    cache = KVCache(model, 2, T_MAX, zeroed=True)
    with torch.no_grad():
        forward_cached(model, ids[:, :7], cache, torch.arange(7).expand(2, 7))
        valid = torch.zeros(2, T_MAX, dtype=torch.bool)
        valid[:, :8] = True
        got = forward_static(model, ids[:, 7:], torch.full((2, 1), 7), torch.tensor([7]), valid,
                             cache)
    assert cache.length == 7  # the static step leaves advancing to its caller
    assert cache.k[:, :, :, 8:].abs().sum() == 0 and cache.k[:, :, :, 7].abs().sum() > 0
    _close(got, model(ids)[0][:, -1])
    step = StaticStep(cache, torch.tensor([0]), valid)
    keys, values, mask = step.update(0, *(torch.zeros(2, 2, 1, 8) for _ in range(2)))
    assert keys.shape == (2, 2, T_MAX, 8) and mask.shape == (2, 1, 1, T_MAX)


def test_any_object_with_update_is_a_cache():
    """Chapter 3's protocol on its own: a cache that grows by concatenation (chapter 7's first)."""

    class Concat:
        def __init__(self) -> None:
            self.kv: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

        def update(self, layer, k, v):
            if layer in self.kv:
                k = torch.cat([self.kv[layer][0], k], dim=2)
                v = torch.cat([self.kv[layer][1], v], dim=2)
            self.kv[layer] = (k, v)
            return k, v, None  # a prompt into an empty cache, then one token at a time

    model = _model(True, "learned", True, 0.0)
    ids = torch.randint(0, V, (1, 10), generator=torch.Generator().manual_seed(4))
    cache = Concat()
    with torch.no_grad():
        model(ids[:, :6], kv_cache=cache)
        last = model(ids[:, 6:7], positions=torch.tensor([[6]]), kv_cache=cache)[0]
    _close(last[:, 0], model(ids[:, :7])[0][:, -1])


def test_cache_refuses_to_overflow():
    model = _model(True, "learned", True, 0.0)
    cache = KVCache(model, 1, 4)
    with pytest.raises(ValueError, match="holds 4 positions; 5 needed"):
        model(torch.zeros(1, 5, dtype=torch.long), kv_cache=cache)


def test_step_mask_is_causal_and_hides_the_pads():
    # no mask where none is needed: one new token, or a prompt into an empty cache
    assert step_mask(None, 5, 1, torch.device("cpu")) is None
    assert step_mask(None, 0, 4, torch.device("cpu")) is None
    # 2 new queries after 3 cached keys: each sees the past and itself, not what follows
    causal = step_mask(None, 3, 2, torch.device("cpu"))
    assert causal.tolist() == [[True, True, True, True, False], [True] * 5]
    # with padding: a (B, 1, t, past + t) mask that also hides the pads of each row
    keys = torch.tensor([[False, True, True, True], [True, True, True, True]])
    mask = step_mask(keys, 3, 1, torch.device("cpu"))
    assert mask.shape == (2, 1, 1, 4)
    assert mask[:, 0, 0].tolist() == keys.tolist()


def test_a_training_step_never_reads_the_ids_on_the_device(monkeypatch):
    """The id range check reads ids on the CPU only: a batch on a device is not synchronized.
    The meta device stands in for a GPU: reading one of its values is an error, so any host sync
    (`.item()`, `int()`, `aminmax` then `int`) fails this step."""
    calls, aminmax = [], torch.aminmax
    monkeypatch.setattr(torch, "aminmax", lambda *a, **k: calls.append(a) or aminmax(*a, **k))
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=V, context_length=T_MAX, n_layer=2, n_head=2, n_embd=16,
                       dropout=0.1)
    model = GPT(config).to("meta").train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=False)
    x = torch.randint(0, V, (4, T_MAX)).to("meta")
    _, loss = model(x, x)
    loss.backward()
    optimizer.step()
    assert loss.device.type == "meta" and calls == []
    model = GPT(config)
    model(torch.zeros(4, T_MAX, dtype=torch.long))
    assert len(calls) == 1  # the count sees the check when it does run
    # the clear message stays for ids on the CPU, and at the doors that ask for it (sync=True)
    with pytest.raises(ValueError, match=r"must lie in 0\.\.39"):
        model(torch.tensor([[1, V]]))
    with pytest.raises(ValueError, match="must lie in"):
        embedding.token_ids(torch.tensor([[V]]), V, sync=True)
