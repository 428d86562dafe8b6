"""Chapter 7: sampling filters against transformers' warpers, the KV cache against the full
forward pass, batches against single prompts, beam search against `generate(num_beams=k)`, and
the `llmlib generate` command with its errors."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.generation.logits_process import (
    MinPLogitsWarper,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from llmlib import cli
from llmlib.generate import Decoder, beam_search, generate, stream, stream_text
from llmlib.gpt import GPT, GPTConfig
from llmlib.gpt2 import config_from_hf, load_gpt2
from llmlib.kvcache import KVCache, decode_head, forward_cached, forward_static, positions_of
from llmlib.sampling import (
    Sampling,
    distinct_n,
    entropy_bits,
    min_p_filter,
    sample_perplexity,
    top_k_filter,
    top_p_filter,
)
from llmlib.tokenizers import CharTokenizer

SMOKE = GPTConfig(vocab_size=50, context_length=32, n_layer=2, n_head=2, n_embd=32)


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    m = GPT(SMOKE).eval()
    with torch.no_grad():  # larger weights: sharper, less uniform predictions
        for p in m.parameters():
            p.mul_(4.0)
    return m


@pytest.fixture(scope="module")
def hf_pair() -> tuple[GPT2LMHeadModel, GPT]:
    torch.manual_seed(0)
    cfg = dict(vocab_size=101, n_positions=64, n_embd=48, n_layer=3, n_head=4, resid_pdrop=0.0,
               embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    hf = GPT2LMHeadModel(GPT2Config(**cfg)).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return hf, load_gpt2(hf.state_dict(), config_from_hf(hf.config))


# ---------------------------------------------------------------- from logits to a choice


@pytest.mark.parametrize("case", [
    (TemperatureLogitsWarper(0.7), lambda x: x / 0.7),
    (TopKLogitsWarper(1), lambda x: top_k_filter(x, 1)),
    (TopKLogitsWarper(7), lambda x: top_k_filter(x, 7)),
    (TopKLogitsWarper(500), lambda x: top_k_filter(x, 500)),
    (TopPLogitsWarper(0.05), lambda x: top_p_filter(x, 0.05)),
    (TopPLogitsWarper(0.5), lambda x: top_p_filter(x, 0.5)),
    (TopPLogitsWarper(0.9), lambda x: top_p_filter(x, 0.9)),
    (TopPLogitsWarper(0.99), lambda x: top_p_filter(x, 0.99)),
    (MinPLogitsWarper(0.05), lambda x: min_p_filter(x, 0.05)),
    (MinPLogitsWarper(0.3), lambda x: min_p_filter(x, 0.3)),
])
def test_filters_keep_what_transformers_keeps(case):
    theirs, ours = case
    torch.manual_seed(1)
    for scale in (0.5, 3.0, 10.0):
        logits = torch.randn(64, 101) * scale
        expected = theirs(torch.zeros(64, 1, dtype=torch.long), logits.clone())
        got = ours(logits.clone())
        assert torch.equal(torch.isinf(got), torch.isinf(expected))
        torch.testing.assert_close(got.softmax(-1), expected.softmax(-1), atol=1e-7, rtol=0)


def test_top_p_of_one_keeps_every_token():
    # transformers' generate skips top_p=1.0 (its warper alone may drop underflowed tokens)
    logits = torch.randn(8, 101) * 10
    assert torch.equal(top_p_filter(logits, 1.0), logits)


def test_sampling_chains_filters_in_transformers_order():
    torch.manual_seed(2)
    logits = torch.randn(16, 101) * 3
    expected = logits.clone()
    for warper in (TemperatureLogitsWarper(0.8), TopKLogitsWarper(20), TopPLogitsWarper(0.9),
                   MinPLogitsWarper(0.05)):
        expected = warper(None, expected)
    got = Sampling(0.8, top_k=20, top_p=0.9, min_p=0.05).filtered(logits)
    assert torch.equal(torch.isinf(got), torch.isinf(expected))
    torch.testing.assert_close(got.softmax(-1), expected.softmax(-1), atol=1e-7, rtol=0)


def test_draws_follow_the_filtered_distribution_and_a_generator():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -9.0]])
    sampling = Sampling(1.0, top_k=3)
    draws = torch.stack([sampling.choose(logits, torch.Generator().manual_seed(s))
                         for s in range(3000)]).flatten()
    counts = torch.bincount(draws, minlength=5).float() / len(draws)
    expected = top_k_filter(logits, 3).softmax(-1)[0]
    assert counts[3:].sum() == 0 and (counts - expected).abs().max() < 0.03
    again = [int(sampling.choose(logits, torch.Generator().manual_seed(s))) for s in range(50)]
    assert again == draws[:50].tolist()
    assert int(Sampling(0).choose(logits)) == 0


@pytest.mark.parametrize("settings, message", [
    (dict(temperature=-0.1), "temperature must be"),
    (dict(temperature=float("nan")), "temperature must be"),
    (dict(temperature=float("inf")), "temperature must be"),
    (dict(top_k=0), "top_k"),
    (dict(top_k=2.5), "top_k"),
    (dict(top_p=0.0), "top_p must be in"),
    (dict(top_p=1.5), "top_p must be in"),
    (dict(min_p=-0.1), "min_p must be in"),
    (dict(temperature=0, top_k=5), "temperature 0 is greedy"),
    (dict(temperature=0, top_p=0.9), "temperature 0 is greedy"),
])
def test_bad_sampling_settings_are_clear_errors(settings, message):
    with pytest.raises(ValueError, match=message):
        Sampling(**settings)


def test_entropy_perplexity_and_distinct_n(model):
    assert math.isclose(float(entropy_bits(torch.zeros(8))), 3.0, rel_tol=1e-6)
    two = top_k_filter(torch.tensor([[1.0, 1, 0, 0, 0]]), 2)
    assert math.isclose(float(entropy_bits(two)), 1.0, rel_tol=1e-6)
    ids = [3, 4, 5, 6, 7, 8]
    with torch.no_grad():
        logits, _ = model(torch.tensor([ids[:-1]]))
    nll = -torch.log_softmax(logits[0], -1)[torch.arange(2, 5), torch.tensor(ids[3:])].mean()
    assert math.isclose(sample_perplexity(model, ids[:3], ids[3:]), math.exp(float(nll)),
                        rel_tol=1e-5)
    assert distinct_n([[1, 2, 3, 4]], 2) == 1.0
    assert distinct_n([[1, 1, 1, 1, 1]], 2) == 0.25
    assert distinct_n([[1, 2], [1, 2]], 2) == 0.5


# ---------------------------------------------------------------- the KV cache


def test_prefill_and_every_decode_step_match_the_full_forward(model):
    torch.manual_seed(3)
    ids = torch.randint(0, 50, (2, 20))
    cache = KVCache(model, 2, 32)
    logits = forward_cached(model, ids[:, :5], cache, torch.arange(5).expand(2, 5))
    torch.testing.assert_close(logits, model(ids[:, :5])[0], atol=1e-5, rtol=0)
    head = decode_head(model)
    for t in range(5, 20):
        step = forward_cached(model, ids[:, t:t + 1], cache, torch.full((2, 1), t), head=head)
        full = model(ids[:, :t + 1])[0][:, -1]
        assert (step[:, -1] - full).abs().max() < 1e-5
    assert cache.length == 20


def test_cache_memory_is_the_formula():
    cfg = GPTConfig(vocab_size=10, context_length=64, n_layer=3, n_head=4, n_embd=32)
    cache = KVCache(GPT(cfg), batch_size=5, capacity=64)
    assert cache.nbytes == 2 * 3 * 5 * 64 * 32 * 4
    assert cache.k.shape == (3, 5, 4, 64, 8)


def test_padded_batch_logits_match_each_prompt_alone(model):
    torch.manual_seed(4)
    rows = [torch.randint(0, 50, (n,)).tolist() for n in (3, 11, 7)]
    decoder = Decoder(model, rows, use_cache=True)
    logits = decoder.first()
    for b, row in enumerate(rows):
        assert (logits[b] - model(torch.tensor([row]))[0][0, -1]).abs().max() < 1e-5
    new = torch.tensor([1, 2, 3])
    logits = decoder.next(new)
    for b, row in enumerate(rows):
        alone = model(torch.tensor([row + [int(new[b])]]))[0][0, -1]
        assert (logits[b] - alone).abs().max() < 1e-5
    assert positions_of(decoder.mask)[0].tolist()[-5:] == [0, 0, 1, 2, 3]  # 3 real + 1 new
    assert positions_of(torch.tensor([[False, False, True, True]])).tolist() == [[0, 0, 0, 1]]


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_batch_equals_each_prompt_alone_and_chapter_5(model, use_cache):
    torch.manual_seed(5)
    rows = [torch.randint(0, 50, (n,)).tolist() for n in (2, 9, 5, 9)]
    batch = generate(model, rows, 15, temperature=0, use_cache=use_cache)
    alone = [generate(model, row, 15, temperature=0, use_cache=use_cache) for row in rows]
    assert batch == alone
    assert alone == [model.generate(row, 15, temperature=0) for row in rows]


def test_cache_and_recompute_draw_the_same_samples(model):
    prompt = [1, 2, 3, 4]
    options = dict(temperature=0.9, top_k=20, top_p=0.95)
    a = generate(model, prompt, 20, generator=torch.Generator().manual_seed(7), **options)
    b = generate(model, prompt, 20, generator=torch.Generator().manual_seed(7),
                 use_cache=False, **options)
    c = generate(model, prompt, 20, generator=torch.Generator().manual_seed(8), **options)
    assert a == b and a != c


def test_past_the_context_the_cache_slides_and_matches_its_window(model):
    torch.manual_seed(6)
    T = model.config.context_length
    decoder = Decoder(model, [torch.randint(0, 50, (10,)).tolist()], use_cache=True)
    decoder.first()
    lengths = []
    for token in torch.randint(0, 50, (3 * T,)).tolist():
        logits = decoder.next(torch.tensor([token]))
        held = decoder.cache.length
        lengths.append(held)
        window = decoder.ids[:, -held:]  # what the cache holds: the model sees exactly this
        assert (logits[0] - model(window)[0][0, -1]).abs().max() < 1e-5
    assert max(lengths) == T and min(lengths[T:]) == T // 2  # it filled, then slid by half
    assert lengths[:T - 10] == list(range(11, T + 1))


def test_chapter_5s_reference_samples_what_chapter_7_samples(model):
    """GPT.generate is the uncached reference: with the same generator, its temperature and top-k
    draws are chapter 7's (top_k_filter's semantics, in float32)."""
    for prompt, options in (([1, 2, 3], dict(temperature=0.8, top_k=5)),
                            (torch.tensor([[4, 5], [6, 7]]), dict(temperature=1.3))):
        ours = model.generate(prompt, 12, generator=torch.Generator().manual_seed(3), **options)
        chapter_7 = generate(model, prompt, 12, generator=torch.Generator().manual_seed(3),
                             use_cache=False, **options)
        assert ours == chapter_7 if isinstance(ours, list) else torch.equal(ours, chapter_7)


def test_the_prompt_is_read_once_per_call_and_stream_checks_at_once(model, monkeypatch):
    import llmlib.generate as generate_module
    from llmlib.checks import prompt_rows

    calls = []
    monkeypatch.setattr(generate_module, "prompt_rows",
                        lambda *args: calls.append(args) or prompt_rows(*args))
    generate(model, [[1, 2], [3]], 4, temperature=0)
    assert len(calls) == 1
    list(stream(model, [1, 2], 4, temperature=0))
    assert len(calls) == 2
    with pytest.raises(ValueError, match="must lie in"):
        stream(model, [1, 99], 3)  # raised by the call, before any step is asked for


def test_generation_restores_the_mode_even_after_an_error(model):
    model.train()
    try:
        steps = stream(model, [1, 2], 5, temperature=0)
        next(steps)
        assert not model.training  # eval mode while decoding
        steps.close()
        assert model.training
        class Failing(Sampling):
            def choose(self, logits, generator=None):
                raise RuntimeError("a failing sampler")

        with pytest.raises(RuntimeError, match="a failing sampler"):
            generate(model, [1, 2], 3, Failing())
        assert model.training
    finally:
        model.eval()


def test_the_recompute_path_crops_like_chapter_5(model):
    prompt = [5, 6, 7]
    assert (generate(model, prompt, 80, temperature=0, use_cache=False)
            == model.generate(prompt, 80, temperature=0))


def test_a_long_prompt_is_cropped_with_a_warning(model):
    prompt = list(range(40)) + [1]
    with pytest.warns(UserWarning, match="longer than the context"):
        out = generate(model, prompt, 3, temperature=0)
    assert out[:41] == prompt and len(out) == 44


# ---------------------------------------------------------------- stopping and streaming


def test_stop_tokens_end_a_row_and_the_rest_keep_going(model):
    rows = [[1, 2, 3], [4, 5, 6, 7]]
    free = generate(model, rows, 12, temperature=0)
    stop = free[0][5]  # the third generated token of the first row
    out = generate(model, rows, 12, temperature=0, stop_tokens=[stop])
    first = free[0][:free[0].index(stop, 3) + 1]
    assert out[0] == first
    tail = free[1][4:]
    expected = free[1][:4 + tail.index(stop) + 1] if stop in tail else free[1]
    assert out[1] == expected
    tensor = generate(model, torch.tensor([rows[1]]), 12, temperature=0, stop_tokens=[stop])
    assert tensor[0].tolist()[:len(expected)] == expected


def test_stop_strings_and_stream_text():
    tokenizer = CharTokenizer.from_text("abcdefgh \n")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=16, n_layer=1,
                          n_head=1, n_embd=16)).eval()
    ids = tokenizer.encode("abc")
    free = tokenizer.decode(generate(model, ids, 30, temperature=0)[3:])
    stop = free[4:6]
    out = tokenizer.decode(generate(model, ids, 30, temperature=0, stop_strings=[stop],
                                    tokenizer=tokenizer)[3:])
    assert out == free[:free.index(stop) + len(stop)]
    pieces = list(stream_text(model, tokenizer, "abc", 30, temperature=0))
    assert "".join(pieces) == free and len(pieces) == 30
    with pytest.raises(ValueError, match="need the tokenizer"):
        generate(model, ids, 3, stop_strings=["a"])


def test_stream_yields_what_generate_returns(model):
    steps = list(stream(model, [1, 2], 10, temperature=0))
    assert [int(s[0]) for s in steps] == generate(model, [1, 2], 10, temperature=0)[2:]


@pytest.mark.parametrize("prompt, kind, message", [
    ([], TypeError, "non-empty list"),
    ([1.5, 2], TypeError, "int token ids"),
    ([1, 99], ValueError, "must lie in"),
    ([[1, 2], []], ValueError, "no tokens"),
    (torch.tensor([1.0, 2.0]), (TypeError, ValueError), "int"),
])
def test_bad_prompts_are_clear_errors(model, prompt, kind, message):
    with pytest.raises(kind, match=message):
        generate(model, prompt, 3, temperature=0)


def test_bad_lengths_and_mixed_settings_are_errors(model):
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, [1], -1)
    with pytest.raises(ValueError, match="either sampling"):
        generate(model, [1], 2, Sampling(0.5), temperature=0.5)
    with pytest.raises(ValueError, match="stop_tokens"):
        generate(model, [1], 2, stop_tokens=[50])


# ---------------------------------------------------------------- beam search


@pytest.mark.parametrize("num_beams", [1, 2, 3, 5])
@pytest.mark.parametrize("length_penalty", [1.0, 0.0, 2.0])
def test_beam_search_equals_transformers(hf_pair, num_beams, length_penalty):
    hf, ours = hf_pair
    for prompt in ([11, 42, 3, 99, 1], [77]):
        plain, _ = beam_search(ours, prompt, 12, num_beams, length_penalty=length_penalty)
        for eos in (None, plain[len(prompt) + 3]):  # an end token the beams will meet
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs = hf.generate(torch.tensor([prompt]), max_new_tokens=12,
                                     num_beams=num_beams, do_sample=False,
                                     length_penalty=length_penalty, eos_token_id=eos,
                                     pad_token_id=0 if eos is None else eos)[0].tolist()
            ours_ids, score = beam_search(ours, prompt, 12, num_beams,
                                          length_penalty=length_penalty, eos_token_id=eos)
            new = theirs[len(prompt):]
            if eos is not None and eos in new:
                theirs = theirs[:len(prompt) + new.index(eos) + 1]
            assert ours_ids == theirs, (prompt, num_beams, eos)
            assert math.isfinite(score)


def test_one_beam_is_greedy(hf_pair):
    _, ours = hf_pair
    assert beam_search(ours, [3, 4], 10, 1)[0] == generate(ours, [3, 4], 10, temperature=0)


def test_beam_search_errors(hf_pair):
    _, ours = hf_pair
    with pytest.raises(ValueError, match="num_beams"):
        beam_search(ours, [1], 5, 0)
    with pytest.raises(ValueError, match="context_length"):
        beam_search(ours, [1] * 60, 10, 2)
    with pytest.raises(TypeError, match="one prompt"):
        beam_search(ours, [[1], [2]], 5, 2)


# ---------------------------------------------------------------- llmlib generate


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple:
    tokenizer = CharTokenizer.from_text("abcdefgh \n", ["<|endoftext|>"])
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=32, n_layer=1,
                          n_head=2, n_embd=16)).eval()
    folder = tmp_path_factory.mktemp("model")
    model.save(folder, tokenizer=tokenizer)
    return folder, model, tokenizer


def test_cli_generates_what_the_api_does(saved, capsys):
    folder, model, tokenizer = saved
    assert cli.main(["generate", "--model", str(folder), "--prompt", "abc",
                     "--max-new-tokens", "12", "--temperature", "0"]) == 0
    expected = tokenizer.decode(generate(model, tokenizer.encode("abc"), 12, temperature=0,
                                         stop_tokens=[tokenizer.special_tokens["<|endoftext|>"]]))
    assert capsys.readouterr().out == expected.replace("<|endoftext|>", "") + "\n"
    assert cli.main(["generate", "--model", str(folder), "--prompt", "abc", "--stream",
                     "--max-new-tokens", "12", "--temperature", "0"]) == 0
    assert capsys.readouterr().out == expected.replace("<|endoftext|>", "") + "\n"


def test_cli_sampling_is_seeded_and_beams_run(saved, capsys):
    folder, _, _ = saved
    args = ["generate", "--model", str(folder), "--prompt", "ab", "--max-new-tokens", "20"]
    outputs = []
    for seed in ("1", "1", "2"):
        cli.main(args + ["--seed", seed, "--top-k", "5", "--top-p", "0.9"])
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] != outputs[2]
    assert cli.main(args + ["--beams", "3"]) == 0
    assert capsys.readouterr().out.startswith("ab")


def test_cli_reads_prompts_from_standard_input(saved, capsys, monkeypatch):
    import io

    folder, _, _ = saved
    monkeypatch.setattr("sys.stdin", io.StringIO("abc\n\nhg\n"))
    assert cli.main(["generate", "--model", str(folder), "--max-new-tokens", "4",
                     "--temperature", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line[:2] for line in lines if line[:2] in ("ab", "hg")] == ["ab", "hg"]


@pytest.mark.parametrize("flags, message", [
    (["--prompt", ""], "prompt is empty"),
    (["--prompt", "xyz"], "cannot encode"),
    (["--prompt", "ab", "--temperature", "-1"], "temperature must be"),
    (["--prompt", "ab", "--temperature", "0", "--top-k", "3"], "temperature 0 is greedy"),
    (["--prompt", "ab", "--top-p", "1.5"], "top_p must be in"),
    (["--prompt", "ab", "--top-k", "0"], "top_k"),
    (["--prompt", "ab", "--beams", "0"], "--beams"),
    (["--prompt", "ab", "--beams", "2", "--top-k", "3"], "does not sample"),
    (["--prompt", "ab", "--max-new-tokens", "-5"], "--max-new-tokens"),
    (["--prompt", "ab", "--beams", "2", "--max-new-tokens", "40"], "context_length"),
])
def test_cli_bad_input_is_one_clear_line(saved, capsys, flags, message):
    folder, _, _ = saved
    assert cli.main(["generate", "--model", str(folder), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmlib: error:") and message in err and err.count("\n") == 1


def test_cli_missing_or_damaged_model(saved, tmp_path, capsys):
    folder, _, _ = saved
    assert cli.main(["generate", "--model", str(tmp_path / "nope"), "--prompt", "a"]) == 2
    assert "no tokenizer.json" in capsys.readouterr().err
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (damaged / name).write_bytes((folder / name).read_bytes())
    (damaged / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:50])
    assert cli.main(["generate", "--model", str(damaged), "--prompt", "a"]) == 2
    assert "truncated" in capsys.readouterr().err


def test_cli_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit):
        cli.main(["generate", "--help"])
    out = capsys.readouterr().out
    for flag in ("--model", "--prompt", "--max-new-tokens", "--temperature", "--top-k", "--top-p",
                 "--min-p", "--beams", "--length-penalty", "--stop", "--seed", "--stream",
                 "--device", "--cuda-graph"):
        assert flag in out


# ---------------------------------------------------------------- the static step (CUDA graphs)


def test_the_static_step_equals_the_dynamic_one_past_the_context(model):
    torch.manual_seed(8)
    rows = [torch.randint(0, 50, (n,)).tolist() for n in (3, 12)]
    runs = []
    for static in (False, True):
        decoder = Decoder(model, rows, static=static)
        logits, tokens = decoder.first(), []
        for _ in range(3 * model.config.context_length):
            tokens.append(logits.argmax(-1))
            logits = decoder.next(tokens[-1])
        runs.append((torch.stack(tokens, 1), logits))
    assert torch.equal(runs[0][0], runs[1][0])
    assert (runs[0][1] - runs[1][1]).abs().max() < 1e-5


def test_forward_static_matches_forward_cached_step(model):
    torch.manual_seed(9)
    ids = torch.randint(0, 50, (2, 8))
    dynamic, static = KVCache(model, 2, 32), KVCache(model, 2, 32, zeroed=True)
    forward_cached(model, ids[:, :7], dynamic, torch.arange(7).expand(2, 7))
    forward_cached(model, ids[:, :7], static, torch.arange(7).expand(2, 7))
    valid = torch.zeros(2, 32, dtype=torch.bool)
    valid[:, :8] = True
    expected = forward_cached(model, ids[:, 7:], dynamic, torch.full((2, 1), 7))[:, -1]
    got = forward_static(model, ids[:, 7:], torch.full((2, 1), 7), torch.tensor([7]), valid,
                         static)
    assert (got - expected).abs().max() < 1e-5
    torch.testing.assert_close(static.k[:, :, :, :8], dynamic.k[:, :, :, :8], atol=1e-5, rtol=0)


def test_cuda_graph_needs_cuda(model, saved, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="CUDA device"):
        generate(model, [1, 2], 3, temperature=0, cuda_graph=True)
    folder, _, _ = saved
    assert cli.main(["generate", "--model", str(folder), "--prompt", "ab", "--cuda-graph"]) == 2
    assert "CUDA device" in capsys.readouterr().err
