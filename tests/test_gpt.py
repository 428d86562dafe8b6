"""Tests for llmlib.gpt and llmlib.gpt2 (chapter 5): configs, counts, the model's properties, the
checked API, save and load, and exact equality with Hugging Face's GPT2LMHeadModel (built from
small random configs; nothing is downloaded)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from llmlib.gpt import (
    PRESETS,
    GPT,
    GPTConfig,
    count_parameters,
    measured_training_memory,
    parameter_breakdown,
    training_memory,
)
from llmlib.gpt2 import (
    config_from_hf,
    gpt2_config_from_state_dict,
    gpt2_to_llmlib,
    load_gpt2,
    load_state_dict_file,
)

transformers = pytest.importorskip("transformers")
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

transformers.logging.set_verbosity_error()

TINY = GPTConfig(vocab_size=101, context_length=24, n_layer=2, n_head=4, n_embd=32)


def hf_tiny(attn_implementation: str = "sdpa", **overrides) -> GPT2LMHeadModel:
    """A random GPT-2 whose every parameter (biases and LayerNorms included) is perturbed,
    in eval mode."""
    torch.manual_seed(0)
    cfg = dict(vocab_size=101, n_positions=24, n_embd=48, n_layer=3, n_head=4, resid_pdrop=0.0,
               embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    cfg.update(overrides)
    model = GPT2LMHeadModel(GPT2Config(**cfg, attn_implementation=attn_implementation)).eval()
    assert model.config._attn_implementation == attn_implementation
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


# ---------------------------------------------------------------- configuration


def test_presets_shapes():
    assert set(PRESETS) >= {"smoke", "small", "gpt2"}
    small = GPTConfig.preset("small", vocab_size=65)
    assert (small.n_layer, small.n_head, small.n_embd, small.context_length) == (6, 6, 384, 256)
    assert small.vocab_size == 65
    gpt2 = GPTConfig.preset("gpt2")
    assert ((gpt2.n_layer, gpt2.n_head, gpt2.n_embd, gpt2.context_length, gpt2.vocab_size)
            == (12, 12, 768, 1024, 50257))
    assert gpt2 == GPTConfig()  # the defaults are GPT-2's
    with pytest.raises(ValueError, match="unknown preset"):
        GPTConfig.preset("gpt5")


def test_parameter_counts():
    assert count_parameters(GPTConfig.preset("gpt2")) == 124_439_808
    assert count_parameters(GPTConfig.preset("gpt2-medium")) == 354_823_168
    assert count_parameters(GPTConfig.preset("gpt2-large")) == 774_030_080
    assert count_parameters(GPTConfig.preset("gpt2-xl")) == 1_557_611_200
    assert 10e6 <= count_parameters(GPTConfig.preset("small", vocab_size=128)) <= 11e6
    with torch.device("meta"):  # the real module, without allocating 124 M floats
        model = GPT(GPTConfig.preset("gpt2"))
    assert sum(p.numel() for p in model.parameters()) == 124_439_808
    assert parameter_breakdown(model) == parameter_breakdown(GPTConfig.preset("gpt2"))


@pytest.mark.parametrize("bias", [True, False])
def test_breakdown_formula_matches_tensors(bias):
    cfg = GPTConfig(vocab_size=37, context_length=9, n_layer=3, n_head=2, n_embd=16, bias=bias)
    assert parameter_breakdown(GPT(cfg)) == parameter_breakdown(cfg)
    ours = GPT(cfg)
    assert count_parameters(ours) == sum(p.numel() for p in ours.parameters())


def test_hf_parameter_count_equals_ours():
    hf = hf_tiny()
    ours = load_gpt2(hf.state_dict(), config_from_hf(hf.config))
    assert count_parameters(ours) == sum(p.numel() for p in hf.parameters())


def test_config_json_round_trip():
    cfg = GPTConfig(vocab_size=77, context_length=33, n_layer=3, n_head=5, n_embd=40, dropout=0.25,
                    bias=False, layer_norm_epsilon=1e-6)
    text = json.dumps(cfg.to_dict())
    assert GPTConfig.from_dict(json.loads(text)) == cfg
    assert json.loads(text)["n_head"] == 5
    with pytest.raises(ValueError, match="unknown GPTConfig field"):
        GPTConfig.from_dict({"n_layers": 3})


def test_preset_takes_the_tokenizers_vocabulary():
    from llmlib.tokenizers import CharTokenizer

    tok = CharTokenizer.from_text("to be or not to be", special_tokens=["<|endoftext|>"])
    cfg = GPTConfig.preset("small", tokenizer=tok)
    assert cfg.vocab_size == tok.vocab_size == 8
    assert GPTConfig.preset("gpt2", tokenizer=tok).vocab_size == 8
    with pytest.raises(ValueError, match="no vocabulary of its own.*tokenizer=tok"):
        GPTConfig.preset("small")
    with pytest.raises(ValueError, match="disagrees with the tokenizer's 8"):
        GPTConfig.preset("smoke", tokenizer=tok, vocab_size=128)


@pytest.mark.parametrize("bad, match", [
    (dict(n_embd=100, n_head=12), "not divisible by n_head=12.*choose e.g. n_head=10"),
    (dict(n_layer=0), "n_layer must be a positive int"),
    (dict(vocab_size=10.5), "vocab_size must be a positive int"),
    (dict(dropout=1.0), "dropout must be in"),
])
def test_bad_configs(bad, match):
    with pytest.raises(ValueError, match=match):
        GPTConfig(**bad)


def test_from_hf_config():
    hf_cfg = GPT2Config(vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=4,
                        resid_pdrop=0.1)
    cfg = config_from_hf(hf_cfg)
    assert ((cfg.vocab_size, cfg.context_length, cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.dropout)
            == (50, 16, 2, 4, 32, 0.1))
    with pytest.raises(ValueError, match="GELU"):
        config_from_hf(dict(hf_cfg.to_dict(), activation_function="relu"))


# ---------------------------------------------------------------- the model


def test_tied_head_is_one_tensor():
    model = GPT(TINY)
    assert model.lm_head.weight is model.transformer.wte.weight
    idx = torch.randint(TINY.vocab_size, (2, 8))
    _, loss = model(idx, idx)
    loss.backward()
    assert model.lm_head.weight.grad is model.transformer.wte.weight.grad
    assert "lm_head.weight" not in dict(model.named_parameters())  # counted once


def test_gpt2_initialization():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=500, context_length=64, n_layer=8, n_head=4, n_embd=128)
    params = dict(GPT(cfg).named_parameters())
    residual = 0.02 / math.sqrt(2 * cfg.n_layer)
    for name, p in params.items():
        if name.endswith("c_proj.weight"):
            assert abs(p.std().item() - residual) < 0.05 * residual, name
        elif name.endswith("weight") and ("ln_" in name):
            assert torch.equal(p, torch.ones_like(p)), name
        elif name.endswith("weight"):
            assert abs(p.std().item() - 0.02) < 0.05 * 0.02, name
        else:
            assert torch.equal(p, torch.zeros_like(p)), name


def test_forward_shapes_and_untrained_loss():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=1000, context_length=32, n_layer=2, n_head=2, n_embd=64)
    model = GPT(cfg).eval()
    idx = torch.randint(cfg.vocab_size, (4, 32))
    logits, loss = model(idx)
    assert logits.shape == (4, 32, 1000) and loss is None
    logits, loss = model(idx, torch.randint(cfg.vocab_size, (4, 32)))
    assert abs(loss.item() - math.log(cfg.vocab_size)) < 0.05
    # the loss is the mean cross-entropy; -100 targets are ignored
    targets = torch.randint(cfg.vocab_size, (4, 32))
    targets[:, :10] = -100
    _, loss = model(idx, targets)
    expected = F.cross_entropy(logits[:, 10:].reshape(-1, 1000), targets[:, 10:].reshape(-1))
    assert torch.allclose(loss, expected, atol=1e-6)


def test_causal():
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    idx = torch.randint(TINY.vocab_size, (2, TINY.context_length))
    with torch.no_grad():
        base, _ = model(idx)
        for t in (0, 7, TINY.context_length - 1):
            changed = idx.clone()
            changed[:, t] = (changed[:, t] + 1) % TINY.vocab_size
            out, _ = model(changed)
            assert torch.equal(out[:, :t], base[:, :t]), f"position < {t} saw token {t}"
            assert (out[:, t] - base[:, t]).abs().max() > 1e-4


def test_causal_by_gradient():
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    x = model.transformer.wte(torch.randint(TINY.vocab_size, (1, 10))).detach().requires_grad_(True)
    h = x + model.transformer.wpe(torch.arange(10))
    for block in model.transformer.h:
        h = block(h)
    h[0, 4].sum().backward()
    assert torch.all(x.grad[0, 5:] == 0) and torch.all(x.grad[0, :5].abs().sum(-1) > 0)


def test_bad_inputs():
    model = GPT(TINY)
    with pytest.raises(ValueError, match="longer than the context"):
        model(torch.zeros(1, TINY.context_length + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="integer token ids"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="integer token ids.*1 dims"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="shape of idx"):
        model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 5, dtype=torch.long))


def test_dropout_only_in_training():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, context_length=16, n_layer=2, n_head=2, n_embd=32,
                          dropout=0.5))
    idx = torch.randint(50, (2, 16))
    model.train()
    assert not torch.equal(model(idx)[0], model(idx)[0])
    model.eval()
    assert torch.equal(model(idx)[0], model(idx)[0])


# ---------------------------------------------------------------- memory


def test_training_memory_matches_tensors():
    for dtype, size in ((torch.float32, 4), (torch.bfloat16, 2)):
        torch.manual_seed(0)
        model = GPT(TINY).to(dtype)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        idx = torch.randint(TINY.vocab_size, (2, 8))
        model(idx, idx)[1].backward()
        optimizer.step()
        n = count_parameters(TINY)
        assert training_memory(TINY, dtype) == {"weights": n * size, "gradients": n * size,
                                                "adamw state": 2 * n * size, "total": 4 * n * size}
        assert measured_training_memory(model, optimizer) == training_memory(TINY, dtype)
    assert training_memory(GPTConfig.preset("gpt2"))["total"] == 16 * 124_439_808


# ---------------------------------------------------------------- generate and attention weights


def test_generate_greedy_equals_argmax_loop():
    torch.manual_seed(0)
    model = GPT(TINY)
    model.train()  # generate must switch to eval mode itself, and restore the mode
    prompt = torch.randint(TINY.vocab_size, (2, 5))
    out = model.generate(prompt, 30, temperature=0)
    assert model.training
    assert out.shape == (2, 35) and torch.equal(out[:, :5], prompt)
    model.eval()
    idx = prompt
    with torch.no_grad():
        for _ in range(30):  # longer than the context: the loop must crop
            logits, _ = model(idx[:, -TINY.context_length:])
            idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, idx)
    assert torch.equal(model.generate(prompt, 10, temperature=1.0, top_k=1), out[:, :15])


def test_generate_sampling():
    torch.manual_seed(0)
    model = GPT(TINY)
    prompt = torch.zeros(3, 1, dtype=torch.long)
    a = model.generate(prompt, 20, temperature=1.0, generator=torch.Generator().manual_seed(1))
    b = model.generate(prompt, 20, temperature=1.0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (3, 21)
    assert a.min() >= 0 and a.max() < TINY.vocab_size
    # top_k=3 only ever picks one of the 3 most likely tokens
    with torch.no_grad():
        allowed = model(prompt)[0][:, -1].topk(3).indices
    firsts = torch.stack([model.generate(prompt, 1, temperature=2.0, top_k=3)[:, 1]
                          for _ in range(20)], 1)
    assert all(set(firsts[i].tolist()) <= set(allowed[i].tolist()) for i in range(3))
    with pytest.raises(ValueError, match="top_k"):
        model.generate(prompt, 1, top_k=0)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(prompt, 1, temperature=-1.0)


def test_attention_weights_match_transformers():
    hf = hf_tiny(attn_implementation="eager")
    ours = load_gpt2(hf.state_dict(), config_from_hf(hf.config))
    idx = torch.randint(101, (2, 13))
    weights = ours.attention_weights(idx)
    assert weights.shape == (3, 2, 4, 13, 13)  # (L, B, H, T, T)
    with torch.no_grad():
        expected = torch.stack(hf(idx, output_attentions=True).attentions)
    assert (weights - expected).abs().max().item() <= 1e-5
    assert torch.allclose(weights.sum(-1), torch.ones(()), atol=1e-5)
    assert torch.all(weights.triu(diagonal=1) == 0)


# ---------------------------------------------------------------- GPT-2 weights


def test_logits_equal_transformers():
    hf = hf_tiny()
    ours = load_gpt2(hf.state_dict(), config_from_hf(hf.config))
    assert not ours.training
    idx = torch.randint(101, (3, 24))
    with torch.no_grad():
        expected = hf(idx).logits
        got, loss = ours(idx, idx)
    assert (got - expected).abs().max().item() <= 1e-5
    assert abs(loss.item()
               - F.cross_entropy(expected.reshape(-1, 101), idx.reshape(-1)).item()) <= 1e-5
    assert ours.lm_head.weight is ours.transformer.wte.weight


def test_gradients_equal_transformers():
    hf = hf_tiny()
    ours = load_gpt2(hf.state_dict(), config_from_hf(hf.config))
    idx = torch.randint(101, (2, 24))
    F.cross_entropy(hf(idx).logits.reshape(-1, 101), idx.reshape(-1)).backward()
    ours(idx, idx)[1].backward()
    hf_grads = {k: p.grad for k, p in hf.named_parameters()}
    for name, p in ours.named_parameters():
        g = hf_grads[name]
        if name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
            g = g.t()
        assert (p.grad - g).abs().max().item() <= 1e-5, name


def test_from_safetensors_file_and_folder(tmp_path):
    hf = hf_tiny()
    hf.save_pretrained(tmp_path)  # model.safetensors + config.json, as on the hub
    idx = torch.randint(101, (2, 24))
    with torch.no_grad():
        expected = hf(idx).logits
        for source in (tmp_path, tmp_path / "model.safetensors",
                       str(tmp_path / "model.safetensors")):
            ours = load_gpt2(source)  # config from config.json: n_head=4 is not n_embd // 64
            assert ours.config.n_head == 4
            assert (ours(idx)[0] - expected).abs().max().item() <= 1e-5


def test_hub_layout_without_prefix_and_with_mask_buffers(tmp_path):
    """The original hub file has no `transformer.` prefix and carries h.N.attn.bias /
    masked_bias buffers."""
    from safetensors.torch import save_file

    # 64 channels per head: the config can be inferred from shapes
    hf = hf_tiny(n_embd=64, n_head=1)
    sd = {k.removeprefix("transformer."): v.clone() for k, v in hf.state_dict().items()
          if k != "lm_head.weight"}
    for i in range(hf.config.n_layer):
        sd[f"h.{i}.attn.bias"] = torch.ones(1, 1, 24, 24).tril()
        sd[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(sd, str(tmp_path / "gpt2.safetensors"))
    ours = load_gpt2(tmp_path / "gpt2.safetensors")  # no config.json: inferred
    assert ours.config == GPTConfig(vocab_size=101, context_length=24, n_layer=3, n_head=1,
                                    n_embd=64)
    assert gpt2_config_from_state_dict(sd) == ours.config
    idx = torch.randint(101, (2, 24))
    with torch.no_grad():
        assert (ours(idx)[0] - hf(idx).logits).abs().max().item() <= 1e-5
    assert set(load_state_dict_file(tmp_path / "gpt2.safetensors")) == set(sd)


def test_loader_errors(tmp_path):
    hf = hf_tiny()
    cfg = config_from_hf(hf.config)
    sd = dict(hf.state_dict())
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_gpt2(tmp_path / "nope.safetensors")
    missing = {k: v for k, v in sd.items() if k != "transformer.h.2.mlp.c_fc.bias"}
    with pytest.raises(ValueError, match=r"missing keys \['transformer.h.2.mlp.c_fc.bias'\]"):
        load_gpt2(missing, cfg)
    with pytest.raises(ValueError,
                       match=r"unexpected keys \['transformer.h.0.attn.q_proj.weight'\]"):
        load_gpt2({**sd, "transformer.h.0.attn.q_proj.weight": torch.zeros(3)}, cfg)
    bad = {**sd, "transformer.h.1.mlp.c_fc.weight": sd["transformer.h.1.mlp.c_fc.weight"][:, :5]}
    with pytest.raises(ValueError, match="shape mismatches.*h.1.mlp.c_fc.weight"):
        load_gpt2(bad, cfg)
    # a config that does not fit the tensors
    with pytest.raises(ValueError, match="shape mismatches.*wte"):
        load_gpt2(sd, config_from_hf(dict(hf.config.to_dict(), vocab_size=100)))
    with pytest.raises(ValueError, match="untied head"):
        load_gpt2({**sd, "lm_head.weight": sd["lm_head.weight"] + 1}, cfg)
    with pytest.raises(ValueError, match="not a GPT-2 state dict"):
        gpt2_config_from_state_dict({"foo": torch.zeros(1)})
    with pytest.raises(ValueError, match="head count cannot be guessed"):
        load_gpt2(sd)  # n_embd=48 is not a multiple of 64 and there is no config


def test_conversion_is_exact_and_transposes():
    hf = hf_tiny()
    cfg = config_from_hf(hf.config)
    converted = gpt2_to_llmlib(hf.state_dict(), cfg)
    sd = hf.state_dict()
    assert set(converted) == set(GPT(cfg).state_dict())
    assert torch.equal(converted["transformer.h.0.attn.c_proj.weight"],
                       sd["transformer.h.0.attn.c_proj.weight"].t())
    assert torch.equal(converted["transformer.h.2.ln_2.bias"], sd["transformer.h.2.ln_2.bias"])
    assert converted["lm_head.weight"] is converted["transformer.wte.weight"]


def test_attention_weights_ignore_dropout_and_keep_the_mode():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, context_length=16, n_layer=2, n_head=2, n_embd=32,
                          dropout=0.5)).train()
    idx = torch.randint(50, (1, 9))
    a, b = model.attention_weights(idx), model.attention_weights(idx)
    assert model.training and torch.equal(a, b)
    assert torch.allclose(a.sum(-1), torch.ones(()), atol=1e-5)
    with pytest.raises(ValueError, match="longer than the context"):
        model.attention_weights(torch.zeros(1, 17, dtype=torch.long))


def test_corrupt_checkpoints_are_clear_errors(tmp_path):
    from safetensors.torch import save_file

    sd = {k: v.contiguous() for k, v in hf_tiny().state_dict().items()
          if not k.endswith("attn.bias")}
    save_file({k: v.clone() for k, v in sd.items() if k != "lm_head.weight"},
              str(tmp_path / "good.safetensors"))
    data = (tmp_path / "good.safetensors").read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.safetensors is not a readable checkpoint"):
        load_gpt2(tmp_path / "truncated.safetensors")
    torch.save(sd, tmp_path / "good.bin")
    (tmp_path / "truncated.bin").write_bytes((tmp_path / "good.bin").read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated.bin is not a readable checkpoint"):
        load_state_dict_file(tmp_path / "truncated.bin")
    torch.save([1, 2, 3], tmp_path / "list.bin")
    with pytest.raises(ValueError, match="holds a list, not a state dict"):
        load_state_dict_file(tmp_path / "list.bin")


def test_eval_mode_restores_the_mode_even_after_an_error():
    from llmlib.gpt import eval_mode

    model = GPT(TINY).train()
    with pytest.raises(KeyError):
        with eval_mode(model) as inside:
            assert inside is model and not model.training
            assert not any(m.training for m in model.modules())
            raise KeyError("in the body")
    assert all(m.training for m in model.modules())
    model.eval()
    with eval_mode(model):
        pass
    assert not model.training
