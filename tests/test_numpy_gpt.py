"""Appendix A's NumPy GPT (llmlib.numpy_gpt, numpy_generate, numpy_grad) equals llmlib's: logits
(float32 and float64, causal and padded), every gradient against torch autograd, AdamW steps
against chapter 6's optimizer, sampling against chapter 7's, counts against chapter 5's; and bad
input is refused with a message that says why."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llmlib.generate import generate as generate_torch
from llmlib.gpt import GPT, GPTConfig, count_parameters, training_memory
from llmlib.kvcache import KVCache, forward_cached
from llmlib.numpy_generate import draw, filter_logits
from llmlib.numpy_generate import generate as generate_numpy
from llmlib.numpy_gpt import (NumpyGPT, NumpyGPTConfig, forward_tape, layer_norm, parameter_shapes,
                              positions_of, sinusoidal_table, softmax)
from llmlib.numpy_grad import (AdamW, clip_grad_norm, gelu_backward, layer_norm_backward,
                               loss_and_grads, softmax_backward, tape_nbytes, train_step)
from llmlib.sampling import Sampling
from llmlib.train import TrainConfig, make_optimizer

V = 23


def make_gpt(seed: int = 0, dtype: torch.dtype = torch.float32, **shape) -> GPT:
    """A small GPT whose biases and LayerNorm gains are moved off their initial 0 and 1."""
    shape = dict(dict(vocab_size=V, context_length=16, n_layer=2, n_head=2, n_embd=16), **shape)
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**shape))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model.to(dtype).eval()


def padded_batch(B: int = 3, T: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = np.array([T] + [max(1, T - 4 * b) for b in range(1, B)])
    mask = np.arange(T) >= T - lengths[:, None]
    return np.where(mask, rng.integers(0, V, (B, T)), 0), mask


def torch_loss(model: GPT, idx: np.ndarray, targets: np.ndarray,
               mask: np.ndarray | None = None) -> torch.Tensor:
    """llmlib's GPT with the padding mask passed to every block (chapter 3's attention masks)."""
    body = model.transformer
    ids = torch.from_numpy(idx)
    if mask is None:
        return model(ids, torch.from_numpy(targets))[1]
    x = body.wte(ids) + body.wpe(torch.from_numpy(positions_of(mask)))
    for block in body.h:
        x = block(x, padding_mask=torch.from_numpy(mask))
    logits = model.lm_head(body.ln_f(x))
    return F.cross_entropy(logits.flatten(0, 1), torch.from_numpy(targets).flatten(),
                           ignore_index=-100)


# --- forward -------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("bias", [True, False])
def test_logits_equal_llmlib_gpt(dtype, tol, bias):
    model = make_gpt(dtype=dtype, bias=bias)
    ours = NumpyGPT.from_gpt(model, np.float64 if dtype == torch.float64 else np.float32)
    idx = np.random.default_rng(1).integers(0, V, (3, 16))
    with torch.no_grad():
        ref = model(torch.from_numpy(idx))[0].numpy()
    assert ours.forward(idx).dtype == ours.dtype
    assert np.abs(ours.forward(idx) - ref).max() < tol
    assert np.array_equal(ours(idx), ours.forward(idx))


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_padded_logits_equal_forward_cached_and_rows_alone(dtype, tol):
    model = make_gpt(dtype=dtype)
    ours = NumpyGPT.from_gpt(model, np.float64 if dtype == torch.float64 else np.float32)
    idx, mask = padded_batch()
    B, T = idx.shape
    logits = ours.forward(idx, mask)
    with torch.no_grad():
        cached = forward_cached(model, torch.from_numpy(idx), KVCache(model, B, T),
                                torch.from_numpy(positions_of(mask)),
                                torch.from_numpy(mask)).numpy()
        for b in range(B):
            alone = model(torch.from_numpy(idx[b:b + 1, mask[b]]))[0][0].numpy()
            assert np.abs(logits[b, mask[b]] - alone).max() < tol
    assert np.abs(logits - cached).max() < tol  # pads included: attention output 0 on both sides


def test_an_all_true_mask_is_the_causal_forward():
    model = NumpyGPT.from_gpt(make_gpt(), np.float64)
    idx = np.random.default_rng(2).integers(0, V, (2, 9))
    assert np.abs(model.forward(idx, np.ones(idx.shape, dtype=bool)) - model.forward(idx)).max() \
        < 1e-12


def test_load_reads_gpt_save_files(tmp_path):
    model = make_gpt()
    loaded = NumpyGPT.load(model.save(tmp_path / "m"))
    copied = NumpyGPT.from_gpt(model)
    assert list(loaded.params) == list(copied.params) == list(parameter_shapes(loaded.config))
    assert all(np.array_equal(loaded.params[k], copied.params[k]) for k in copied.params)
    with pytest.raises(FileNotFoundError, match="GPT.save"):
        NumpyGPT.load(tmp_path / "nothing")


# Run in a new interpreter where `import torch` fails, as on a machine without torch.
NO_TORCH_LOAD = """
import sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")

sys.meta_path.insert(0, NoTorch())
import numpy as np
from llmlib.numpy_gpt import NumpyGPT

model = NumpyGPT.load(sys.argv[1])
idx = np.arange(12).reshape(2, 6) % model.config.vocab_size
np.save(sys.argv[2], model(idx))
print(sorted(m for m in sys.modules if m.split(".")[0] == "torch"))
"""


def test_load_works_where_torch_cannot_be_imported(tmp_path):
    """NumpyGPT.load reads GPT.save's folder in an interpreter that cannot import torch."""
    import subprocess
    import sys
    model = make_gpt()
    folder = model.save(tmp_path / "m")
    result = subprocess.run([sys.executable, "-c", NO_TORCH_LOAD, str(folder),
                             str(tmp_path / "logits.npy")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    idx = torch.arange(12).reshape(2, 6) % model.config.vocab_size
    with torch.no_grad():
        expected = model(idx)[0].numpy()
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), expected, rtol=1e-4, atol=1e-5)


def test_from_gpt_copies_instead_of_sharing_torch_memory():
    model = make_gpt(dtype=torch.float64)
    ours = NumpyGPT.from_gpt(model, np.float64)
    ours.params["transformer.wte.weight"] += 1.0
    assert not np.array_equal(ours.params["transformer.wte.weight"],
                              model.transformer.wte.weight.detach().numpy())


def test_sinusoidal_positions_equal_chapter_2_and_a_gpt_holding_the_table():
    from llmlib.data import sinusoidal_encoding

    model = make_gpt(dtype=torch.float64)
    assert np.abs(sinusoidal_table(16, 16).astype(np.float32)
                  - sinusoidal_encoding(16, 16).numpy()).max() < 1e-6
    ours = NumpyGPT.from_gpt(model, np.float64)
    sin = NumpyGPT(replace(ours.config, position="sinusoidal"),
                   {k: v for k, v in ours.params.items() if k != "transformer.wpe.weight"},
                   np.float64)
    with torch.no_grad():
        model.transformer.wpe.weight.copy_(sinusoidal_encoding(16, 16).double())
    idx = np.random.default_rng(3).integers(0, V, (2, 16))
    with torch.no_grad():
        ref = model(torch.from_numpy(idx))[0].numpy()
    assert np.abs(sin.forward(idx) - ref).max() < 1e-10
    assert sin.num_parameters() == ours.num_parameters() - 16 * 16


def test_init_params_follow_gpt2_initialization():
    config = NumpyGPTConfig(vocab_size=V, context_length=16, n_layer=4, n_head=2, n_embd=64)
    params = NumpyGPT(config, seed=1).params
    assert params["transformer.h.0.ln_1.weight"].tolist() == [1.0] * 64
    assert not params["transformer.h.0.attn.c_attn.bias"].any()
    assert abs(params["transformer.wte.weight"].std() - 0.02) < 2e-3
    assert abs(params["transformer.h.3.mlp.c_proj.weight"].std() - 0.02 / np.sqrt(8)) < 1e-3
    from llmlib.numpy_gpt import init_params  # the module's function, also NumpyGPT.init_params

    drawn, again = init_params(config, seed=1), NumpyGPT.init_params(config, seed=1)
    assert all(np.array_equal(drawn[k], again[k])
               and np.array_equal(drawn[k].astype(np.float32), params[k]) for k in params)


def test_the_input_checks_can_be_called_alone():
    """The checks that NumpyGPT folds away are functions of their own, with the same messages."""
    from llmlib.numpy_gpt import check_dtype, check_portable, check_weights

    config = NumpyGPTConfig(vocab_size=V, context_length=8, n_layer=1, n_head=2, n_embd=8)
    shapes = parameter_shapes(config)
    assert check_dtype("float64") == np.float64
    with pytest.raises(ValueError, match="float32 or float64"):
        check_dtype(np.float16)
    with pytest.raises(ValueError, match="missing"):
        check_weights(shapes, {})
    with pytest.raises(TypeError, match="llmlib.gpt.GPT"):
        check_portable(torch.nn.Linear(2, 2))
    check_portable(make_gpt())  # a GPT the port supports passes


# --- counts --------------------------------------------------------------------------------------

@pytest.mark.parametrize("bias", [True, False])
def test_counts_equal_chapter_5s(bias):
    config = GPTConfig(vocab_size=V, context_length=16, n_layer=3, n_head=2, n_embd=16, bias=bias)
    ours = NumpyGPT(NumpyGPTConfig.from_dict(config.to_dict()))
    assert ours.num_parameters() == count_parameters(config) == count_parameters(GPT(config))
    assert ours.nbytes() == training_memory(config)["weights"]
    _, tape = forward_tape(ours, np.zeros((2, 8), dtype=np.int64))
    attention_weights = 3 * 2 * 2 * 8 * 8 * 4  # layers x B x H x T x T x bytes
    assert tape_nbytes(tape) > attention_weights


# --- the backward pass ---------------------------------------------------------------------------

def test_layer_backwards_equal_autograd():
    rng = np.random.default_rng(4)
    x, dy, w, b = rng.normal(size=(3, 5, 8)), rng.normal(size=(3, 5, 8)), rng.normal(size=8), \
        rng.normal(size=8)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    upstream = torch.from_numpy(dy)
    (gx,) = torch.autograd.grad(F.gelu(tx, approximate="tanh"), tx, upstream)
    assert np.abs(gelu_backward(dy, x) - gx.numpy()).max() < 1e-12
    grads = torch.autograd.grad(F.layer_norm(tx, (8,), tw, tb, 1e-5), (tx, tw, tb), upstream)
    ours = layer_norm_backward(dy, layer_norm(x, w, b, 1e-5)[1])
    assert max(np.abs(o - t.numpy()).max() for o, t in zip(ours, grads)) < 1e-12
    (gs,) = torch.autograd.grad(tx.softmax(-1), tx, upstream)
    assert np.abs(softmax_backward(dy, softmax(x)) - gs.numpy()).max() < 1e-12


@pytest.mark.parametrize("padded", [False, True], ids=["causal", "padded"])
@pytest.mark.parametrize("bias", [True, False])
def test_every_gradient_equals_autograd_in_float64(padded, bias):
    model = make_gpt(dtype=torch.float64, bias=bias).train()
    ours = NumpyGPT.from_gpt(model, np.float64)
    idx, mask = padded_batch()
    rng = np.random.default_rng(5)
    targets = rng.integers(0, V, idx.shape)
    if padded:
        targets[~mask] = -100
    else:
        mask = None
    loss = torch_loss(model, idx, targets, mask)
    loss.backward()
    np_loss, grads = loss_and_grads(ours, idx, targets, mask)
    assert abs(np_loss - loss.item()) < 1e-12
    assert set(grads) == {n for n, _ in model.named_parameters()}
    for name, p in model.named_parameters():
        assert np.abs(grads[name] - p.grad.numpy()).max() < 1e-6, name
        assert grads[name].shape == tuple(p.shape)
    assert max(np.abs(grads[n] - p.grad.numpy()).max() for n, p in model.named_parameters()) \
        < 1e-12  # in float64 the two differ by rounding only


def test_sinusoidal_gradients_equal_autograd():
    from llmlib.data import sinusoidal_encoding

    model = make_gpt(dtype=torch.float64)
    with torch.no_grad():
        model.transformer.wpe.weight.copy_(sinusoidal_encoding(16, 16).double())
    model.transformer.wpe.weight.requires_grad_(False)
    base = NumpyGPT.from_gpt(model, np.float64)
    ours = NumpyGPT(replace(base.config, position="sinusoidal"),
                    {k: v for k, v in base.params.items() if k != "transformer.wpe.weight"},
                    np.float64)
    idx = np.random.default_rng(6).integers(0, V, (2, 10))
    torch_loss(model, idx, np.roll(idx, -1, 1)).backward()
    _, grads = loss_and_grads(ours, idx, np.roll(idx, -1, 1))
    assert "transformer.wpe.weight" not in grads
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert np.abs(grads[name] - p.grad.numpy()).max() < 1e-12, name


def test_clip_grad_norm_equals_torch():
    rng = np.random.default_rng(7)
    grads = {"a": rng.normal(size=(4, 3)), "b": rng.normal(size=5)}
    tensors = [torch.tensor(g, requires_grad=True) for g in grads.values()]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.tensor(g.copy())
    norm = torch.nn.utils.clip_grad_norm_(tensors, 0.5).item()
    assert abs(clip_grad_norm(grads, 0.5) - norm) < 1e-12
    assert all(np.abs(g - t.grad.numpy()).max() < 1e-15 for g, t in zip(grads.values(), tensors))


@pytest.mark.parametrize("grad_clip", [1.0, 0.0])
def test_training_steps_equal_chapter_6s_loop(grad_clip):
    cfg = TrainConfig(lr=3e-3, min_lr=3e-4, warmup_steps=2, max_steps=6, grad_clip=grad_clip)
    model = make_gpt(dtype=torch.float64).train()
    ours = NumpyGPT.from_gpt(model, np.float64)
    opt, np_opt = make_optimizer(model, cfg), AdamW.from_config(cfg)
    rng = np.random.default_rng(8)
    losses = []
    data = rng.integers(0, V, (4, 13))  # one batch, again and again: the loss must fall
    x, y = data[:, :-1], data[:, 1:]
    for step in range(cfg.max_steps):
        for group in opt.param_groups:
            group["lr"] = cfg.lr_at(step)
        loss = model(torch.from_numpy(x), torch.from_numpy(y))[1]
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        np_loss = train_step(ours, np_opt, x, y, step, cfg)
        assert abs(np_loss - loss.item()) < 1e-10
        losses.append(np_loss)
    assert losses[-1] < losses[0]
    for name, p in model.named_parameters():
        assert np.abs(ours.params[name] - p.detach().numpy()).max() < 1e-10, name
    assert np_opt.nbytes() == 2 * ours.nbytes()


def test_adamw_decays_matrices_only():
    params = {"w": np.ones((2, 2)), "b": np.ones(2)}
    AdamW(weight_decay=0.5).step(params, {"w": np.zeros((2, 2)), "b": np.zeros(2)}, lr=0.1)
    assert np.allclose(params["w"], 0.95) and np.allclose(params["b"], 1.0)
    with pytest.raises(ValueError, match="names"):
        AdamW().step(params, {"w": np.zeros((2, 2))}, lr=0.1)


# --- sampling and generation ---------------------------------------------------------------------

SAMPLINGS = [Sampling(1.0), Sampling(0.6), Sampling(1.0, top_k=1), Sampling(0.8, top_k=5),
             Sampling(1.0, top_p=0.5), Sampling(1.0, top_p=1.0), Sampling(1.0, min_p=0.1),
             Sampling(1.3, top_k=10, top_p=0.9, min_p=0.02)]


@pytest.mark.parametrize("sampling", SAMPLINGS, ids=repr)
def test_filters_and_draws_equal_chapter_7s_sampler(sampling):
    logits = (np.random.default_rng(9).normal(size=(500, V)) * 3).astype(np.float32)
    theirs = sampling.filtered(torch.from_numpy(logits))
    ours = filter_logits(logits, sampling)
    assert np.array_equal(np.isinf(ours), torch.isinf(theirs).numpy())
    assert np.abs(softmax(ours) - theirs.softmax(-1).numpy()).max() < 1e-6
    chosen = sampling.choose(torch.from_numpy(logits), torch.Generator().manual_seed(3)).numpy()
    noise = torch.empty(logits.shape).exponential_(generator=torch.Generator().manual_seed(3))
    assert np.array_equal(draw(softmax(ours), noise.numpy()), chosen)


def test_draw_follows_the_distribution_and_never_picks_a_dropped_token():
    probs = np.array([[0.5, 0.0, 0.3, 0.2]])
    noise = np.random.default_rng(10).standard_exponential((20000, 4))
    counts = np.bincount(draw(np.repeat(probs, 20000, 0), noise), minlength=4) / 20000
    assert counts[1] == 0 and np.abs(counts - probs[0]).max() < 0.015


def test_greedy_generation_equals_chapter_7s_for_a_padded_batch():
    model = make_gpt(context_length=32)
    ours = NumpyGPT.from_gpt(model)
    prompts = [[1, 2, 3, 4, 5], [6], [7, 8, 9]]
    for batch, n in ((prompts, 10), (prompts[0], 4)):
        assert generate_numpy(ours, batch, n, temperature=0) == generate_torch(model, batch, n,
                                                                               temperature=0)
    array = generate_numpy(ours, np.array([[1, 2], [3, 4]]), 3, temperature=0)
    assert array.shape == (2, 5) and array[:, :2].tolist() == [[1, 2], [3, 4]]


def test_sampled_generation_is_reproducible_and_uses_kept_tokens():
    model = make_gpt(context_length=32)
    ours = NumpyGPT.from_gpt(model)
    sampling = Sampling(0.9, top_k=3)
    a = generate_numpy(ours, [[1, 2], [3]], 8, sampling, rng=5)
    assert a == generate_numpy(ours, [[1, 2], [3]], 8, sampling, rng=5)
    for prompt, row in zip([[1, 2], [3]], a):
        with torch.no_grad():
            logits = model(torch.tensor([row[:-1]]))[0][0, len(prompt) - 1:]
        kept = torch.isfinite(sampling.filtered(logits)).numpy()
        assert all(kept[t, tok] for t, tok in enumerate(row[len(prompt):]))


def test_generation_crops_to_the_context_and_stops_at_stop_tokens():
    model = NumpyGPT.from_gpt(make_gpt(context_length=8))
    out = generate_numpy(model, [1, 2, 3], 12, temperature=0)
    assert len(out) == 15  # past the context: the model sees its last 8 tokens
    greedy = generate_numpy(model, [[1, 2, 3], [4]], 6, temperature=0)
    stop = greedy[0][3]
    stopped = generate_numpy(model, [[1, 2, 3], [4]], 6, temperature=0, stop_tokens=[stop])
    assert stopped[0][3] == stop and set(stopped[0][3:]) == {stop}


# --- bad input -----------------------------------------------------------------------------------

TINY = NumpyGPT(NumpyGPTConfig(vocab_size=10, context_length=8, n_layer=1, n_head=2, n_embd=8))
IDS = np.zeros((2, 4), dtype=np.int64)


@pytest.mark.parametrize("call, error, match", [
    (lambda: TINY.forward([[1, 2]]), TypeError, "NumPy array"),
    (lambda: TINY.forward(IDS.astype(np.float32)), ValueError, r"astype\(np.int64\)"),
    (lambda: TINY.forward(IDS[0]), ValueError, "batch axis"),
    (lambda: TINY.forward(np.zeros((1, 0), dtype=np.int64)), ValueError, "T >= 1"),
    (lambda: TINY.forward(IDS - 1), ValueError, "0..9"),
    (lambda: TINY.forward(IDS + 10), ValueError, "0..9"),
    (lambda: TINY.forward(np.zeros((1, 9), dtype=np.int64)), ValueError, "crop"),
    (lambda: TINY.forward(IDS, np.ones((2, 4))), ValueError, "bool array of shape"),
    (lambda: TINY.forward(IDS, np.ones((2, 3), dtype=bool)), ValueError, r"\(2, 4\)"),
    (lambda: TINY.forward(IDS, np.array([[1, 1, 1, 1], [0, 0, 0, 0]], dtype=bool)), ValueError,
     r"rows \[1\] have no real token"),
    (lambda: TINY.loss(IDS, IDS[:, :3]), ValueError, "targets must be"),
    (lambda: TINY.loss(IDS, IDS - 100), ValueError, "every target is -100"),
    (lambda: TINY.loss(IDS, IDS + 10), ValueError, "0..9 or -100"),
    (lambda: NumpyGPT(TINY.config, {}), ValueError, "missing"),
    (lambda: NumpyGPT(TINY.config, dtype=np.float16), ValueError, "float32 or float64"),
    (lambda: NumpyGPTConfig(n_embd=10, n_head=3), ValueError, "divisible"),
    (lambda: NumpyGPTConfig(position="rotary"), ValueError, "position"),
    (lambda: NumpyGPTConfig.from_dict({"rope": True}), ValueError, "unknown"),
    (lambda: generate_numpy(TINY, [], 3), TypeError, "non-empty"),
    (lambda: generate_numpy(TINY, [1, 99], 3), ValueError, "0..9"),
    (lambda: generate_numpy(TINY, [1], -1), ValueError, "max_new_tokens"),
    (lambda: generate_numpy(TINY, [1], 3, temperature=-1), ValueError, "temperature"),
    (lambda: generate_numpy(TINY, [1], 3, Sampling(0.5), top_k=3), ValueError, "not both"),
])
def test_bad_input_is_refused_with_a_fix(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_unported_models_are_refused():
    from llmlib.lora import add_lora

    model = make_gpt()
    untied = copy.deepcopy(model)
    untied.lm_head.weight = torch.nn.Parameter(untied.lm_head.weight.detach().clone())
    with pytest.raises(ValueError, match="ties the LM head"):
        NumpyGPT.from_gpt(untied)
    adapted = copy.deepcopy(model)
    add_lora(adapted, rank=2)
    with pytest.raises(ValueError, match="merge_lora"):
        NumpyGPT.from_gpt(adapted)
    post = copy.deepcopy(model)
    post.transformer.h[1].pre_norm = False
    with pytest.raises(ValueError, match="block 1"):
        NumpyGPT.from_gpt(post)
    with pytest.raises(TypeError, match="llmlib.gpt.GPT"):
        NumpyGPT.from_gpt(model.transformer)


def test_params_are_copied_so_training_never_touches_the_callers_arrays():
    config = NumpyGPTConfig(vocab_size=V, context_length=8, n_layer=1, n_head=2, n_embd=8)
    mine = NumpyGPT.init_params(config)
    model = NumpyGPT(config, mine, np.float64)
    before = {k: v.copy() for k, v in mine.items()}
    idx = np.zeros((1, 4), dtype=np.int64)
    train_step(model, AdamW(), idx, idx, 0, TrainConfig(max_steps=2, warmup_steps=0))
    assert all(np.array_equal(mine[k], before[k]) for k in mine)
    name = "transformer.wte.weight"
    assert not np.array_equal(model.params[name], mine[name])


def test_exercise_2_solution_a_numpy_kv_cache_equals_generate():
    """The appendix's solution to exercise 2 (a KV cache in NumPy), run as the page prints it."""
    import json
    import re
    import textwrap
    from pathlib import Path

    from llmlib.numpy_gpt import gelu, linear

    nb = json.loads((Path(__file__).parents[1] / "chapters" / "A_numpy_gpt.ipynb").read_text())
    solution = next("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"
                    and "<summary>Solution</summary>" in "".join(c["source"]))
    code = textwrap.dedent(re.findall(r"```python\n(.*?)```", solution, re.S)[1])
    code = code.split("\n\nsmall = ")[0]  # the functions; the timing needs the notebook's models
    scope = dict(np=np, layer_norm=layer_norm, linear=linear, gelu=gelu, softmax=softmax)
    exec(code, scope)
    model = NumpyGPT.from_gpt(make_gpt(context_length=32))
    prompt = [3, 1, 4, 1, 5]
    assert scope["generate_cached"](model, prompt, 20) == generate_numpy(model, prompt, 20,
                                                                         temperature=0)


def test_the_old_generate_method_says_what_replaced_it():
    with pytest.raises(NotImplementedError, match=r"llmlib\.numpy_generate\.generate\(model"):
        TINY.generate([1], 3)


def test_numpy_gpt_does_not_import_numpy_generate():
    """The appendix's modules import downward only: generation uses the model, not the reverse."""
    import ast
    from pathlib import Path

    import llmlib.numpy_gpt

    tree = ast.parse(Path(llmlib.numpy_gpt.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for a in node.names}
    assert "llmlib.numpy_generate" not in imported
