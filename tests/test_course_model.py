"""The course model (issue 21): shipped models load by name, float16 weights load into float32
models, tools/ship_model.py writes a complete folder, and the shipped `course` model (when it is
in data/models/) loads in a fresh process, matches its recorded check value and generates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from llmlib.checkpoint import (CONFIG_FILE, WEIGHTS_FILE, model_folder, read_weights,
                               shipped_models, write_weights)
from llmlib.gpt import GPT, GPTConfig, load_model
from llmlib.numpy_gpt import NumpyGPT
from llmlib.tokenizers import CharTokenizer

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "data" / "models" / "course"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
ENV.pop("LLMLIB_DATA", None)  # the checkout's data/, whatever the caller's environment says


def small_model(tmp_path: Path, name: str = "m") -> Path:
    torch.manual_seed(0)
    tokenizer = CharTokenizer.from_text("abcdefgh ROMEO:", ["<|endoftext|>"])
    config = GPTConfig(vocab_size=tokenizer.vocab_size, context_length=16, n_layer=2, n_head=2,
                       n_embd=32)
    return GPT(config).save(tmp_path / name, tokenizer=tokenizer)


def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder of its own (find_data_dir wants shakespeare/metadata.json to be there)."""
    data = tmp_path / "data"
    (data / "shakespeare").mkdir(parents=True)
    (data / "shakespeare" / "metadata.json").write_text("{}")
    monkeypatch.setenv("LLMLIB_DATA", str(data))
    return data


# ---------------------------------------------------------------- name resolution


def test_an_existing_folder_wins(tmp_path, monkeypatch):
    folder = small_model(tmp_path)
    assert model_folder(folder) == folder and model_folder(str(folder)) == folder
    monkeypatch.chdir(tmp_path)
    assert model_folder("m") == Path("m")  # a folder here, not a shipped name
    assert load_model("m")[0].config.n_layer == 2


def test_a_bare_name_finds_a_shipped_model(tmp_path, monkeypatch):
    data = data_dir(tmp_path, monkeypatch)
    small_model(data / "models", "tiny")
    (data / "models" / "notes").mkdir()  # no config.json: not a model
    assert shipped_models() == {"tiny": data / "models" / "tiny"}
    assert model_folder("tiny") == data / "models" / "tiny"
    model, tokenizer, meta = load_model("tiny")
    assert model.config.n_embd == 32 and tokenizer.decode(tokenizer.encode("ROMEO:")) == "ROMEO:"
    assert meta == {}


def test_an_unknown_name_lists_the_shipped_models(tmp_path, monkeypatch):
    data = data_dir(tmp_path, monkeypatch)
    for name in ("course", "tiny"):
        small_model(data / "models", name)
    listed = r"shipped models: course \(.*course\), tiny \(.*tiny\)"
    with pytest.raises(FileNotFoundError, match="'nope' is neither a model folder nor a shipped"):
        load_model("nope")
    with pytest.raises(FileNotFoundError, match=listed):
        load_model("nope")
    (data / "models" / "course" / CONFIG_FILE).unlink()
    (data / "models" / "tiny" / CONFIG_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="shipped models: none found.*LLMLIB_DATA"):
        model_folder("course")


def test_a_missing_path_still_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no tokenizer.json"):
        load_model(tmp_path / "nope")


# ---------------------------------------------------------------- float16 weights


def test_float16_weights_load_into_float32_models(tmp_path):
    folder = small_model(tmp_path)
    model = GPT.load(folder)
    weights = read_weights(folder / WEIGHTS_FILE)
    write_weights(folder / WEIGHTS_FILE, {k: v.half() for k, v in weights.items()})
    assert read_weights(folder / WEIGHTS_FILE)["transformer.wte.weight"].dtype == torch.float16
    x = torch.randint(0, model.config.vocab_size, (2, 16))
    for again in (GPT.load(folder), load_model(folder)[0]):
        assert {p.dtype for p in again.parameters()} == {torch.float32}
        assert again.lm_head.weight is again.transformer.wte.weight  # still tied
        torch.testing.assert_close(again(x)[0], model(x)[0], atol=2e-3, rtol=0)
    numpy_model = NumpyGPT.load(folder)
    assert {p.dtype for p in numpy_model.params.values()} == {np.dtype(np.float32)}
    np.testing.assert_allclose(numpy_model.forward(x.numpy()), model(x)[0].detach().numpy(),
                               atol=2e-3)


def test_integer_weights_are_refused(tmp_path):
    folder = small_model(tmp_path)
    weights = read_weights(folder / WEIGHTS_FILE)
    weights["transformer.ln_f.bias"] = weights["transformer.ln_f.bias"].long()
    write_weights(folder / WEIGHTS_FILE, weights)
    with pytest.raises(ValueError, match="transformer.ln_f.bias: int64 where a float type"):
        GPT.load(folder)


# ---------------------------------------------------------------- tools/ship_model.py


def test_log_lines_drop_the_progress_bars():
    from ship_model import log_lines

    capture = ("\rpretrain:   0%|          | 0/50 [00:00<?, ?it/s]\r          \r"
               "step 0/50 | val 4.412 | train 4.414\n\rpretrain:  40%|####      | 20/50 "
               "[00:41<4:13:10,  2.03s/it, loss=3.454]\r                \r"
               "step 25/50 | loss 2.100 | val 2.200 | train 2.150 | 4,006 tok/s | MFU 3.2%\n"
               "\rpretrain: 100%|##########| 50/50 [01:00<00:00]\n")
    assert log_lines(capture) == [
        "step 0/50 | val 4.412 | train 4.414",
        "step 25/50 | loss 2.100 | val 2.200 | train 2.150 | 4,006 tok/s | MFU 3.2%"]


def test_ship_model_writes_a_complete_folder(tmp_path, capsys):
    from ship_model import check_loss, main

    from llmlib.pretrain import pretrain
    from llmlib.train import TrainConfig, load_corpus

    cfg = TrainConfig(split="book", batch_size=4, max_steps=6, warmup_steps=1, eval_interval=3,
                      eval_batches=2, checkpoint_interval=3, lr=1e-2)
    corpus = load_corpus(cfg)
    config = GPTConfig(vocab_size=corpus.tokenizer.vocab_size, context_length=16, n_layer=2,
                       n_head=2, n_embd=32)
    torch.manual_seed(0)
    result = pretrain(config, cfg, tmp_path / "run", corpus=corpus, device="cpu")
    captured = capsys.readouterr()
    (tmp_path / "train.log").write_text(captured.err + captured.out)
    (tmp_path / "config.json").write_text(json.dumps({"n_layer": 2, "max_steps": 6}))
    out = tmp_path / "models" / "tiny"
    args = [str(tmp_path / "run"), "tiny", "--log", str(tmp_path / "train.log"),
            "--config", str(tmp_path / "config.json"), "--command", "pretrain(...)",
            "--commit", "abc1234", "--machine", "a test", "--minutes", "0.1", "--out", str(out)]
    assert main(args) == 0
    files = {"model.safetensors", "config.json", "tokenizer.json", "train_log.txt",
             "provenance.json", "README.md"}
    assert {p.name for p in out.iterdir()} == files
    assert {t.dtype for t in read_weights(out / WEIGHTS_FILE).values()} == {torch.float16}
    log = (out / "train_log.txt").read_text().splitlines()
    assert [line.split(" |")[0] for line in log] == ["step 0/6", "step 3/6", "step 6/6"]
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["val_loss"] == round(min(result.evals["val"]), 4)
    assert provenance["commit"] == "abc1234" and provenance["config"]["n_layer"] == 2
    assert provenance["parameters"] == sum(p.numel() for p in result.model.parameters())
    assert provenance["size_bytes"] > (out / WEIGHTS_FILE).stat().st_size
    model = load_model(out)[0]
    assert check_loss(model, corpus.val_ids) == pytest.approx(provenance["check"]["loss"],
                                                              abs=1e-6)
    assert "load_model(\"tiny\")" in (out / "README.md").read_text()
    with pytest.raises(FileExistsError, match="--force"):
        main(args)


# ---------------------------------------------------------------- the shipped course model

NOT_SHIPPED = "data/models/course is not shipped yet: tools/ship_model.py writes it"
needs_course = pytest.mark.skipif(not (COURSE / WEIGHTS_FILE).is_file(), reason=NOT_SHIPPED)


@needs_course
def test_the_course_model_matches_its_recorded_check_value():
    """In a fresh process, through the public API only: load by name, recompute the check."""
    script = """
import json, sys, torch
from llmlib.gpt import load_model
from llmlib.train import TrainConfig, load_corpus
model, tokenizer, meta = load_model("course")
assert meta == {} and {p.dtype for p in model.parameters()} == {torch.float32}
ids = load_corpus(TrainConfig(split="book"), tokenizer).val_ids
T = model.config.context_length
rows = ids[: 8 * (T + 1)].view(8, T + 1)
with torch.no_grad():
    print(json.dumps(float(model(rows[:, :-1], rows[:, 1:])[1])))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=ENV, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    provenance = json.loads((COURSE / "provenance.json").read_text())
    assert provenance["check"]["windows"] == 8
    assert abs(json.loads(done.stdout) - provenance["check"]["loss"]) < 1e-4
    assert provenance["val_loss"] <= 1.50
    for name in ("config.json", "tokenizer.json", "train_log.txt", "README.md"):
        assert (COURSE / name).is_file()


@needs_course
def test_generate_with_the_course_model_by_name(tmp_path):
    done = subprocess.run([sys.executable, "-m", "llmlib", "generate", "--model", "course",
                           "--prompt", "ROMEO:", "--max-new-tokens", "40", "--device", "cpu"],
                          capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ROMEO:") and len(done.stdout.strip()) > len("ROMEO:") + 20
