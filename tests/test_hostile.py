"""Hostile inputs and faults (the reliability audit, ../shared/reviews/reliability.md): each bad
input gets one clear line, before anything is allocated or written, and no file of the user's
or no finished checkpoint is lost."""

from __future__ import annotations

import errno
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmlib.command import Command, dispatch
from llmlib.files import check_writable
from llmlib.finetune import FinetuneConfig
from llmlib.gpt import GPT, GPTConfig
from llmlib.lora import add_lora
from llmlib.tokenizers import CharTokenizer
from llmlib.speed import check_fits, memory_needed
from llmlib.train import Corpus, TrainConfig, save_checkpoint

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
TINY = ["--preset", "smoke", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
        "--context-length", "16", "--batch-size", "2", "--eval-batches", "1",
        "--eval-interval", "3", "--warmup-steps", "1", "--device", "cpu"]


def llmlib(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmlib", *args], env=ENV,
                          capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------- settings that are not numbers
@pytest.mark.parametrize("field", ["lr", "grad_clip", "weight_decay", "min_lr"])
@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_train_settings_must_be_finite(field, value):
    with pytest.raises(ValueError, match=f"{field} must be a finite number"):
        TrainConfig(**{field: value})


def test_betas_and_finetune_lr_are_checked():
    with pytest.raises(ValueError, match="beta1 and beta2 must be in"):
        TrainConfig(beta1=5.0)
    with pytest.raises(ValueError, match="lr must be a finite number"):
        FinetuneConfig(lr=math.inf)


def test_cli_refuses_nan_grad_clip_before_writing(tmp_path):
    done = llmlib("pretrain", *TINY, "--max-steps", "3", "--grad-clip", "nan",
                  "--out", str(tmp_path / "run"))
    assert done.returncode == 2 and "grad_clip must be a finite number" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "run").exists()


# ---------------------------------------------------------------- where the output goes
def test_an_out_folder_under_a_file_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_writable(tmp_path / "notes.txt" / "run")
    done = llmlib("pretrain", *TINY, "--max-steps", "3", "--out",
                  str(tmp_path / "notes.txt" / "run"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_read_only_place_is_refused_and_nothing_is_created(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as a read-only mount answers
    with pytest.raises(ValueError, match="cannot be written"):
        check_writable(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()


def test_os_errors_are_one_line_and_exit_2(capsys):
    def full_disk(args):
        raise OSError(errno.ENOSPC, "No space left on device", "/runs/x/last")

    def nested(args):
        raise RecursionError

    for run, message in ((full_disk, "/runs/x/last: No space left on device"),
                         (nested, "nested too deeply")):
        command = Command("boom", "fails", lambda parser: None, run)
        assert dispatch([command], ["boom"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err


def test_a_full_disk_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    tokenizer = CharTokenizer("abc")
    model = GPT(GPTConfig(vocab_size=3, context_length=8, n_layer=1, n_head=1, n_embd=8))
    folder = save_checkpoint(tmp_path / "last", model, tokenizer, {"step": 1})
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(OSError, match="previous one is intact"):
        save_checkpoint(tmp_path / "last", model, tokenizer, {"step": 2})
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not (tmp_path / ".last.partial").exists()


# ---------------------------------------------------------------- sizes, checked before allocating
@pytest.fixture(scope="module")
def small_corpus() -> Corpus:
    text = "To be, or not to be, that is the question.\n" * 60
    tokenizer = CharTokenizer.from_text(text)
    ids = torch.tensor(tokenizer.encode(text))
    return Corpus(tokenizer, ids[:2000], ids[2000:], len(text[2000:].encode()))


def test_a_context_longer_than_the_text_is_refused(small_corpus):
    config = GPTConfig(vocab_size=small_corpus.tokenizer.vocab_size, context_length=1000,
                       n_layer=1, n_head=1, n_embd=8)
    with pytest.raises(ValueError, match="longer than the validation text"):
        check_fits(config, TrainConfig(), small_corpus, torch.device("cpu"))


@pytest.mark.parametrize("change", [dict(model=dict(n_embd=10**6)),
                                    dict(train=dict(eval_batches=10**9)),
                                    dict(train=dict(batch_size=10**7))])
def test_a_run_larger_than_the_memory_is_refused_with_the_estimate(small_corpus, change):
    config = GPTConfig(vocab_size=small_corpus.tokenizer.vocab_size, context_length=16,
                       n_layer=1, n_head=1, n_embd=8) if "model" not in change else GPTConfig(
        vocab_size=small_corpus.tokenizer.vocab_size, context_length=16, n_layer=1, n_head=1,
        **change["model"])
    cfg = TrainConfig(**change.get("train", {}))
    with pytest.raises(ValueError, match=r"needs about [\d,.]+ GiB .* GiB free"):
        check_fits(config, cfg, small_corpus, torch.device("cpu"))


def test_the_memory_estimate_counts_parameters_and_activations():
    config = GPTConfig(vocab_size=85, context_length=64, n_layer=2, n_head=2, n_embd=32)
    need = memory_needed(config, TrainConfig(batch_size=4, eval_batches=5))
    n = sum(p.numel() for p in GPT(config).parameters())
    assert need["weights, gradients and AdamW"] == 16 * n
    bigger = memory_needed(config, TrainConfig(batch_size=8, eval_batches=5))
    assert bigger["activations"] == 2 * need["activations"]


def test_a_lora_rank_above_the_layer_is_refused_and_nothing_is_frozen():
    model = GPT(GPTConfig(vocab_size=20, context_length=8, n_layer=1, n_head=2, n_embd=16))
    with pytest.raises(ValueError, match="use at most 16"):
        add_lora(model, rank=10**6)
    with pytest.raises(ValueError, match="alpha"):
        add_lora(model, rank=2, alpha=-1.0)
    assert all(p.requires_grad for p in model.parameters())


# ---------------------------------------------------------------- generation and resume
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny run of 8 steps with a learning rate that is not the default."""
    out = tmp_path_factory.mktemp("hostile") / "run"
    done = llmlib("pretrain", *TINY, "--max-steps", "8", "--lr", "0.002", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_resume_needs_only_the_run_folder(run_dir):
    """Continuing takes the checkpoint's settings: `--resume --out DIR` (and a longer
    max_steps) works without the run's other flags typed again."""
    done = llmlib("pretrain", "--resume", "--max-steps", "10", "--device", "cpu",
                  "--out", str(run_dir))
    assert done.returncode == 0, done.stderr
    state = torch.load(run_dir / "last" / "train_state.pt", weights_only=True)
    assert state["train_config"]["lr"] == 0.002 and state["train_config"]["max_steps"] == 10


def test_an_empty_stop_string_is_refused(run_dir):
    done = llmlib("generate", "--model", str(run_dir / "best"), "--prompt", "To be",
                  "--stop", "", "--max-new-tokens", "5")
    assert done.returncode == 2 and "--stop ''" in done.stderr


def test_a_tokenizer_larger_than_the_model_is_refused(run_dir, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((run_dir / "best" / name).read_bytes())
    spec = json.loads((run_dir / "best" / "tokenizer.json").read_text())
    spec["chars"] = "".join(sorted(set(spec["chars"] + "éüß")))
    n = len(spec["chars"])
    spec["special_tokens"] = {k: n + i for i, k in enumerate(spec["special_tokens"])}
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    done = llmlib("generate", "--model", str(folder), "--prompt", "To be", "--max-new-tokens", "5")
    assert done.returncode == 2 and "come from different models" in done.stderr


def test_ctrl_c_during_finetuning_keeps_the_best_weights():
    """A KeyboardInterrupt mid-training ends the loop with `interrupted` set and the weights of
    the best evaluation so far in place, ready to be saved (as pretrain saves on Ctrl-C)."""
    from llmlib.finetune import train_loop

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    data = [torch.randn(4) for _ in range(16)]
    calls = {"n": 0}

    def loss_of(batch):
        calls["n"] += 1
        if calls["n"] == 12:
            raise KeyboardInterrupt
        return model(batch).pow(2).mean()

    result = train_loop(model, loss_of, data, data[:4], torch.stack,
                        FinetuneConfig(epochs=5, batch_size=4, evals_per_epoch=1),
                        progress=False)
    assert result.interrupted and not result.stopped_early
    assert result.evals["step"] and result.best_val < math.inf
