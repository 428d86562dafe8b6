"""`llmlib pretrain` as real processes: a run killed mid-way and resumed continues bit for bit,
two processes under torchrun (gloo, CPU) equal one with the same global batch, and bad settings
fail before anything is written."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from llmlib.gpt import GPT

TINY = ["--preset", "smoke", "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
        "--context-length", "32", "--eval-batches", "2", "--log-interval", "5", "--device", "cpu",
        "--warmup-steps", "2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def pretrain(*args: str, launcher: list[str] | None = None, **popen) -> subprocess.Popen:
    command = (launcher or [sys.executable]) + ["-m", "llmlib", "pretrain", *TINY, *args]
    return subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)


def finish(process: subprocess.Popen, timeout: float = 240) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, out + err
    return out + err


def final_state(run: Path) -> tuple[dict, dict]:
    state = torch.load(run / "last" / "train_state.pt", weights_only=True)
    return state, GPT.load(run / "last").state_dict()


def test_a_killed_run_resumes_bit_for_bit(tmp_path):
    settings = ["--max-steps", "600", "--checkpoint-interval", "50", "--eval-interval", "200",
                "--dropout", "0.1", "--batch-size", "8"]
    reference = pretrain(*settings, "--out", str(tmp_path / "whole"))
    killed = pretrain(*settings, "--out", str(tmp_path / "killed"))
    state_file = tmp_path / "killed" / "last" / "train_state.pt"
    deadline = time.time() + 120
    while not state_file.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)  # no chance to clean up
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    stopped_at = torch.load(state_file, weights_only=True)["step"]
    assert 50 <= stopped_at < 600
    finish(pretrain(*settings, "--out", str(tmp_path / "killed"), "--resume"))
    finish(reference)
    (whole, whole_weights), (resumed, resumed_weights) = (final_state(tmp_path / "whole"),
                                                          final_state(tmp_path / "killed"))
    assert resumed["step"] == whole["step"] == 600
    assert resumed["history"]["loss"] == whole["history"]["loss"]  # every step, bit for bit
    assert all(torch.equal(whole_weights[k], resumed_weights[k]) for k in whole_weights)


def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    common = ["--max-steps", "20", "--checkpoint-interval", "20", "--eval-interval", "20",
              "--dropout", "0", "--batch-size", "4"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=2"]
    two = pretrain(*common, "--grad-accum", "2", "--out", str(tmp_path / "two"),
                   launcher=torchrun)
    finish(two, timeout=300)
    finish(pretrain(*common, "--grad-accum", "4", "--out", str(tmp_path / "one")))
    (a, a_weights), (b, b_weights) = final_state(tmp_path / "two"), final_state(tmp_path / "one")
    assert a["history"]["loss"] == pytest.approx(b["history"]["loss"], abs=1e-5)
    assert max((a_weights[k] - b_weights[k]).abs().max().item() for k in a_weights) < 1e-5


def test_a_log_redirected_to_a_file_is_one_plain_line_per_evaluation(tmp_path):
    """`llmlib pretrain > log.txt 2>&1`: no progress bar where it cannot redraw, only the
    evaluation lines (step, train, val, lr, tokens/s, speed) and the closing summary."""
    log = tmp_path / "log.txt"
    command = [sys.executable, "-m", "llmlib", "pretrain", *TINY, "--max-steps", "20",
               "--eval-interval", "10", "--checkpoint-interval", "20", "--batch-size", "4",
               "--out", str(tmp_path / "run")]
    with log.open("w") as file:
        done = subprocess.run(command, env=ENV, stdout=file, stderr=subprocess.STDOUT,
                              timeout=240)
    text = log.read_text()
    assert done.returncode == 0, text
    assert "\r" not in text and "it/s" not in text and "pretrain:" not in text
    evaluation = (r"step (\d+)/20 \| train \d+\.\d{3} \| val \d+\.\d{3} \| lr \d\.\d\de-\d\d"
                  r"( \| [\d,]+ tok/s \| \d+\.\d% of matmul)?")
    head, *lines = text.splitlines()
    assert head.startswith("speed: '% of matmul'")  # what the speed figures divide by
    assert [re.fullmatch(evaluation, line).group(1) for line in lines[:-1]] == ["0", "10", "20"]
    assert lines[-1].startswith("step 20: val loss") and len(lines) == 4


def test_help_documents_every_setting():
    out = subprocess.run([sys.executable, "-m", "llmlib", "pretrain", "--help"], env=ENV,
                         capture_output=True, text=True, timeout=60).stdout
    for flag in ("--n-layer", "--n-embd", "--context-length", "--batch-size", "--max-steps",
                 "--lr", "--tokenizer", "--config", "--out", "--resume", "--device", "--seed",
                 "--grad-accum", "--schedule", "--compile", "--no-compile", "--dtype"):
        assert flag in out, flag


@pytest.mark.parametrize("args, message", [
    (["--n-embd", "31"], "n_embd=31 is not divisible by n_head=2"),
    (["--schedule", "linear"], "invalid choice: 'linear'"),
    (["--lr", "fast"], "invalid float value: 'fast'"),
    (["--warmup-steps", "50", "--max-steps", "10"], "warmup_steps must be in [0, max_steps)"),
])
def test_bad_settings_fail_before_anything_is_written(tmp_path, args, message):
    process = pretrain(*args, "--out", str(tmp_path / "run"))
    out, err = process.communicate(timeout=120)
    assert process.returncode == 2 and message in err, out + err
    assert not (tmp_path / "run").exists()


def test_config_files_and_existing_runs(tmp_path):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"max_steps": 4, "learning_rate": 0.1}))
    process = pretrain("--config", str(config), "--out", str(tmp_path / "run"))
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2 and "unknown setting(s) ['learning_rate']" in err
    config.write_text(json.dumps({"max_steps": 4, "eval_interval": 2, "checkpoint_interval": 2,
                                  "batch_size": 2}))
    out = finish(pretrain("--config", str(config), "--max-steps", "6", "--out",
                          str(tmp_path / "run")))
    assert "step 6: val loss" in out  # the flag overrode the file
    process = pretrain("--config", str(config), "--out", str(tmp_path / "run"))
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2 and "already holds a run: pass --resume" in err
    config.write_text("{not json")
    process = pretrain("--config", str(config), "--out", str(tmp_path / "other"))
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2 and "is not valid JSON" in err


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    process = pretrain("--max-steps", "5000", "--checkpoint-interval", "1000", "--out", str(run))
    deadline = time.time() + 120
    while not (run / "best" / "train_state.pt").exists() and time.time() < deadline:
        time.sleep(0.01)  # best/ is written by the evaluation at step 0: training has started
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    out = finish(process)
    assert "stopped early; continue with: llmlib pretrain --resume" in out
    step = torch.load(run / "last" / "train_state.pt", weights_only=True)["step"]
    assert 0 < step < 5000


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("user_entry", ["folder", "file"])
def test_an_out_folder_of_the_users_is_refused_and_untouched(tmp_path, user_entry):
    """A run swaps `best/` and `last/` in atomically: in a folder of the user's that would replace
    their own `best/`. The command refuses before it writes, with one line, and exit code 2."""
    out = tmp_path / "thesis"
    if user_entry == "folder":
        (out / "best").mkdir(parents=True)
        (out / "best" / "thesis.tex").write_text("\\section{Results}\n")
    else:
        out.mkdir()
        (out / "best").write_text("not a checkpoint\n")
    (out / "notes.txt").write_bytes(b"mine")
    before = snapshot(out)
    process = pretrain("--max-steps", "4", "--out", str(out))
    stdout, err = process.communicate(timeout=120)
    assert process.returncode == 2, stdout + err
    assert "holds files that are not a run (best, notes.txt)" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert snapshot(out) == before and sorted(p.name for p in out.iterdir()) == ["best",
                                                                               "notes.txt"]


def test_an_out_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "model.txt"
    target.write_text("keep me")
    process = pretrain("--max-steps", "4", "--out", str(target))
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2 and "is a file: choose a new folder" in err
    assert target.read_text() == "keep me"


def test_the_python_api_refuses_a_users_folder_too(tmp_path):
    from llmlib.pretrain import pretrain as run_pretrain
    from llmlib.train import TrainConfig

    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "draft.txt").write_text("mine")
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match="holds files that are not a run"):
        run_pretrain(None, TrainConfig(max_steps=4, warmup_steps=1), tmp_path, device="cpu",
                     progress=False)
    assert snapshot(tmp_path) == before


def test_arch_modern_trains_resumes_and_generates(tmp_path):
    """`--arch modern` (chapter 9) with its switches in --config: the run folder's model is a
    ModernGPT with grouped heads and QK-norm; it resumes, and `llmlib generate` reads it."""
    from llmlib.gpt import load_model
    from llmlib.modern import ModernGPT

    config = tmp_path / "modern.json"
    config.write_text(json.dumps({"n_kv_head": 1, "qk_norm": True, "tie_embeddings": False}))
    run = tmp_path / "run"
    finish(pretrain("--arch", "modern", "--config", str(config), "--max-steps", "6",
                    "--out", str(run)))
    model, _, _ = load_model(run / "last")
    assert isinstance(model, ModernGPT)
    assert (model.config.n_kv_head, model.config.qk_norm, model.config.n_head) == (1, True, 2)
    finish(pretrain("--resume", "--max-steps", "9", "--out", str(run)))
    assert torch.load(run / "last" / "train_state.pt", weights_only=True)["step"] == 9
    out = subprocess.run([sys.executable, "-m", "llmlib", "generate", "--model", str(run / "best"),
                          "--prompt", "ROMEO:", "--max-new-tokens", "10", "--seed", "0"],
                         env=ENV, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("ROMEO:"), out.stderr


def test_modern_switches_need_arch_modern(tmp_path):
    config = tmp_path / "modern.json"
    config.write_text(json.dumps({"qk_norm": True}))
    out = subprocess.run([sys.executable, "-m", "llmlib", "pretrain", *TINY, "--config",
                          str(config), "--out", str(tmp_path / "run")], env=ENV,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "add --arch modern" in out.stderr
    assert not (tmp_path / "run").exists()
