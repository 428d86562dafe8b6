"""Chapter 9's modern block (llmlib.modern): each component against PyTorch or transformers,
Hugging Face's Llama and Qwen 3 folders loaded exactly (logits and greedy tokens), and the
model inside chapters 5-8's machinery: pretrain and resume, load_model, the cached decoder with
grouped key/value heads, LoRA, and a folder's round trip with an untied head."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM
from transformers.models.llama.modeling_llama import (LlamaMLP, LlamaRotaryEmbedding,
                                                      apply_rotary_pos_emb)

from llmlib.generate import generate
from llmlib.gpt import load_model
from llmlib.kvcache import KVCache
from llmlib.lora import add_lora, merge_lora
from llmlib.modern import (ModernConfig, ModernGPT, RMSNorm, SwiGLU, apply_rope, config_from_hf,
                           load_hf_llama, rope_cos_sin, swiglu_hidden)
from llmlib.pretrain import pretrain
from llmlib.tokenizers import CharTokenizer
from llmlib.train import Corpus, TrainConfig

TINY = dict(vocab_size=120, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
            rms_norm_eps=1e-6)


def test_rmsnorm_matches_torch():
    ours, theirs = RMSNorm(48, eps=1e-6), torch.nn.RMSNorm(48, eps=1e-6)
    with torch.no_grad():
        ours.weight.normal_()
        theirs.weight.copy_(ours.weight)
    x = torch.randn(3, 5, 48) * 4
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-6, rtol=0)
    half = RMSNorm(48).bfloat16()  # computed in float32 inside, returned in the model's dtype
    assert half(x.bfloat16()).dtype == torch.bfloat16


def test_swiglu_matches_llama_mlp_and_keeps_gpt2s_parameters():
    C = 120
    ours = SwiGLU(C, swiglu_hidden(C))
    theirs = LlamaMLP(LlamaConfig(hidden_size=C, intermediate_size=swiglu_hidden(C),
                                num_attention_heads=4))
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 4, C)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-6, rtol=0)
    assert abs(3 * C * swiglu_hidden(C) - 8 * C * C) <= 3 * C * 8  # 8C/3, rounded up to 8


@pytest.mark.parametrize("theta", [10000.0, 500000.0])
def test_rope_matches_transformers_with_padded_positions(theta):
    B, H, T, D = 2, 3, 7, 16
    positions = torch.tensor([list(range(T)), [0, 0, 0, 1, 2, 3, 4]])
    q = torch.randn(B, H, T, D)
    config = LlamaConfig(hidden_size=H * D, num_attention_heads=H, head_dim=D,
                         rope_parameters={"rope_theta": theta, "rope_type": "default"})
    cos, sin = LlamaRotaryEmbedding(config)(q, positions)
    expected, _ = apply_rotary_pos_emb(q, q, cos, sin)
    torch.testing.assert_close(apply_rope(q, *rope_cos_sin(positions, D, theta)), expected,
                               atol=1e-5, rtol=0)


def test_rope_scores_depend_on_relative_position_only():
    q, k = torch.randn(1, 1, 1, 32), torch.randn(1, 1, 1, 32)

    def score(m, n):
        return (apply_rope(q, *rope_cos_sin(torch.tensor([[m]]), 32, 1e4))
                * apply_rope(k, *rope_cos_sin(torch.tensor([[n]]), 32, 1e4))).sum()

    torch.testing.assert_close(score(9, 4), score(209, 204), atol=1e-4, rtol=0)
    assert abs(score(9, 4) - score(9, 5)) > 1e-3


def hf_model(cls, config, tmp_path):
    torch.manual_seed(0)
    model = cls(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.2)
    model.save_pretrained(tmp_path)
    return model


@pytest.mark.parametrize("kind", ["llama-untied", "llama-tied", "qwen3"])
def test_hf_folders_load_exactly(kind, tmp_path):
    """Logits equal to 1e-5 and 40 greedy tokens identical to transformers' generate."""
    if kind == "qwen3":
        cls, config = Qwen3ForCausalLM, Qwen3Config(**TINY, head_dim=24,
                                                   tie_word_embeddings=False)
    else:
        cls, config = LlamaForCausalLM, LlamaConfig(**TINY,
                                                   tie_word_embeddings=kind == "llama-tied")
    theirs = hf_model(cls, config, tmp_path)
    ours = load_hf_llama(tmp_path)
    assert ours.config.qk_norm == (kind == "qwen3")
    ids = torch.randint(0, 120, (2, 30))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids)[0], theirs(ids).logits, atol=1e-5, rtol=0)
        expected = theirs.generate(ids[:1, :5], max_new_tokens=40, do_sample=False,
                                   pad_token_id=0)[0, 5:].tolist()
    assert generate(ours, ids[0, :5].tolist(), 40, temperature=0)[5:] == expected


def test_hf_configs_the_block_cannot_run_are_refused():
    base = LlamaConfig(**TINY).to_dict()
    with pytest.raises(ValueError, match="hidden_act='gelu'"):
        config_from_hf(base | {"hidden_act": "gelu"})
    with pytest.raises(ValueError, match="rope_type='llama3'"):
        config_from_hf(base | {"rope_parameters": {"rope_theta": 5e5, "rope_type": "llama3"}})
    with pytest.raises(ValueError, match="model_type 'gpt2'"):
        config_from_hf(base | {"model_type": "gpt2"})


def test_config_checks_say_what_is_wrong():
    with pytest.raises(ValueError, match="multiple of n_kv_head"):
        ModernConfig(n_head=4, n_kv_head=3)
    with pytest.raises(ValueError, match="unknown ModernConfig fields"):
        ModernConfig.from_dict({"arch": "modern", "n_heads": 4})


@pytest.fixture(scope="module")
def small_model() -> ModernGPT:
    torch.manual_seed(0)
    return ModernGPT(ModernConfig(vocab_size=30, context_length=16, n_layer=2, n_head=4,
                                  n_kv_head=2, n_embd=32, qk_norm=True,
                                  tie_embeddings=False)).eval()


def test_cached_decoding_with_grouped_heads_equals_recomputing(small_model):
    cache = KVCache(small_model, 2, 16)
    assert cache.k.shape == (2, 2, 2, 16, 8)  # (L, B, G, capacity, D): G = 2, not H = 4
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8]]  # left padding in one batch, within the context
    cached = generate(small_model, prompts, 10, temperature=0)
    assert cached == generate(small_model, prompts, 10, temperature=0, use_cache=False)
    assert len(generate(small_model, [1, 2, 3], 40, temperature=0)) == 43  # slides past 16


def test_folder_round_trip_with_an_untied_head(small_model, tmp_path):
    tokenizer = CharTokenizer("abcdefghijklmnopqrstuvwxyz .,\n")
    small_model.save(tmp_path, tokenizer)
    loaded, _, _ = load_model(tmp_path)
    assert isinstance(loaded, ModernGPT) and loaded.config == small_model.config
    assert loaded.lm_head.weight is not loaded.transformer.wte.weight
    ids = torch.randint(0, 30, (1, 10))
    torch.testing.assert_close(loaded(ids)[0], small_model(ids)[0], atol=0, rtol=0)


def test_lora_on_the_projections_merges_back(small_model):
    copy = ModernGPT(small_model.config)
    copy.load_state_dict(small_model.state_dict())
    names = add_lora(copy, rank=2, targets=("attn.q_proj", "attn.v_proj", "mlp.down_proj"))
    assert len(names) == 6
    with torch.no_grad():
        for name, p in copy.named_parameters():
            if "lora_B" in name:
                p.normal_()
    ids = torch.randint(0, 30, (1, 12))
    with torch.no_grad():
        before = copy(ids)[0]
        merged = merge_lora(copy)
        torch.testing.assert_close(merged(ids)[0], before, atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def tiny_corpus() -> Corpus:
    """A few thousand characters, encoded, split 80/20: enough for a handful of steps."""
    text = "ROMEO: But soft, what light through yonder window breaks?\n" * 80
    tokenizer = CharTokenizer.from_text(text)
    ids = torch.tensor(tokenizer.encode(text))
    cut = int(len(ids) * 0.8)
    return Corpus(tokenizer, ids[:cut], ids[cut:], len(text[cut:].encode()))


def test_pretrain_trains_and_resumes_a_modern_model(tmp_path, tiny_corpus):
    config = ModernConfig(vocab_size=tiny_corpus.tokenizer.vocab_size, context_length=16,
                          n_layer=1, n_head=2, n_kv_head=1, n_embd=16)
    cfg = TrainConfig(max_steps=6, batch_size=2, eval_interval=3, eval_batches=1, warmup_steps=1)
    first = pretrain(config, cfg, tmp_path / "run", corpus=tiny_corpus, progress=False,
                     stop_at=3)
    assert first.stopped_early
    done = pretrain(None, cfg, tmp_path / "run", resume=True, corpus=tiny_corpus,
                    progress=False)
    assert done.history["step"][-1] == 5
    model, _, _ = load_model(tmp_path / "run" / "best")
    assert isinstance(model, ModernGPT) and model.config == config
