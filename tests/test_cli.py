"""The command line (chapter 0's dispatcher): `python -m llmlib` and the `llmlib` script."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

import llmlib
from llmlib import cli
from llmlib.command import INFO, Command, add_flags, read_settings, take


def run(*args: str, executable: list[str] | None = None) -> subprocess.CompletedProcess:
    command = (executable or [sys.executable, "-m", "llmlib"]) + list(args)
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_version_and_help():
    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"llmlib {llmlib.__version__}"
    help_text = run("--help")
    assert help_text.returncode == 0
    assert "info" in help_text.stdout and "--version" in help_text.stdout


def test_info_names_versions_device_and_mode(capsys, monkeypatch):
    monkeypatch.setenv("LLMLIB_SMOKE", "1")
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"llmlib {llmlib.__version__}" in out and "torch" in out
    assert "device cpu" in out or "device cuda" in out or "device mps" in out
    assert "run mode smoke" in out


def test_no_command_prints_usage_and_fails():
    result = run()
    assert result.returncode == 2 and "usage: llmlib" in result.stdout


def test_unknown_command_is_a_usage_error():
    result = run("pretrian")
    assert result.returncode == 2 and "invalid choice: 'pretrian'" in result.stderr


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "llmlib"
    if not script.exists():
        pytest.skip("llmlib is not installed into this environment (only importable)")
    result = run("--version", executable=[str(script)])
    assert result.returncode == 0 and result.stdout.strip() == f"llmlib {llmlib.__version__}"


def test_a_chapter_registers_a_command_and_bad_input_is_one_clear_line(monkeypatch, capsys):
    def run_shout(args):
        if args.times < 1:
            raise ValueError("--times must be >= 1")
        print("hey " * args.times)
        return 0

    shout = Command("shout", "a test command",
                    lambda parser: parser.add_argument("--times", type=int, default=1), run_shout)
    monkeypatch.setattr(cli, "COMMANDS", (INFO, shout))
    assert cli.main(["shout", "--times", "2"]) == 0
    assert capsys.readouterr().out.strip() == "hey hey"
    assert cli.main(["shout", "--times", "0"]) == 2
    assert capsys.readouterr().err.strip() == "llmlib: error: --times must be >= 1"


@pytest.mark.parametrize("args", [["--version"], ["--help"], []])
def test_the_command_line_answers_without_torch(args):
    """Only the chosen command's flags are built, and commands import the library when they
    run: `llmlib --help` and `--version` never load PyTorch."""
    code = ("import sys\nfrom llmlib import cli\ntry:\n    cli.main(sys.argv[1:])\n"
            "except SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch imported'\n")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


def test_one_flag_builder_states_defaults_once(capsys):
    """Flags come from dataclass fields; the help states a default once, never "None"."""
    for command in ("pretrain", "generate", "finetune"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        out = capsys.readouterr().out
        assert "None" not in out, command
        assert "--device" in out
    with pytest.raises(SystemExit):
        cli.main(["finetune", "--help"])
    out = capsys.readouterr().out
    assert "--config" in out and "--warmup-steps" in out and "(default 16)" in out


def test_settings_merge_defaults_config_and_flags(tmp_path):
    @dataclasses.dataclass
    class Settings:
        name: str
        steps: int = 10
        rate: float | None = None
        fast: bool = False
        tags: list[str] = dataclasses.field(default_factory=list)

    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_flags(parser, Settings)
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"name": "a", "steps": 3, "rate": 0.5}))
    args = parser.parse_args(["--config", str(config), "--steps", "7", "--fast", "--tags", "x"])
    values = read_settings(args, {"name", "steps", "rate"})
    assert take(Settings, values) == Settings("a", 7, 0.5, True, ["x"]) and values == {}
    with pytest.raises(ValueError, match="--name is required"):
        take(Settings, read_settings(parser.parse_args([]), ()))
    config.write_text(json.dumps({"nmae": "a"}))
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['nmae'\]"):
        read_settings(parser.parse_args(["--config", str(config)]), {"name"})


@pytest.mark.parametrize("command", [["pretrain"], ["generate", "--prompt", "a"],
                                     ["finetune", "--task", "classify", "--data", "x.json"]])
def test_every_command_checks_its_device_first(command, tmp_path, capsys):
    args = [*command, "--device", "tpu9", "--out" if command[0] != "generate" else "--model",
            str(tmp_path / "run")]
    if command[0] == "finetune":
        args += ["--model", str(tmp_path)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmlib: error: --device='tpu9' is not a device name"), err
    assert not (tmp_path / "run").exists()


BAD_CONFIGS = [  # (the --config file's content, what the one-line error says)
    ('{"seed": 1.5}', "setting 'seed' must be an int, got float 1.5"),
    ('{"compile": "false"}', "setting 'compile' must be a bool, got str 'false'"),
    ('{"warmup_steps": 0.5}', "setting 'warmup_steps' must be an int, got float 0.5"),
    ('{"bias": "no"}', "setting 'bias' must be a bool, got str 'no'"),
    ('{"split_seed": "x"}', "setting 'split_seed' must be an int, got str 'x'"),
    ("[" * 100_000 + "]" * 100_000, "nests its JSON too deeply to read"),
]


@pytest.mark.parametrize("content, message", BAD_CONFIGS, ids=lambda v: str(v)[:20])
def test_a_bad_config_file_gets_one_line_before_anything_is_written(tmp_path, capsys, content,
                                                                     message):
    config = tmp_path / "run.json"
    config.write_text(content)
    out = tmp_path / "run"
    assert cli.main(["pretrain", "--preset", "smoke", "--config", str(config),
                     "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.parametrize("target", ["folder", "/dev/zero", "large"])
def test_a_config_that_is_no_small_file_is_refused_unread(tmp_path, capsys, target):
    if target == "folder":
        config = tmp_path
    elif target == "large":
        config = tmp_path / "big.json"
        config.write_text('{"max_steps": 4, "pad": "' + "x" * 1_100_000 + '"}')
    else:
        config = Path(target)
        if not config.exists():
            pytest.skip("no /dev/zero here")
    assert cli.main(["pretrain", "--preset", "smoke", "--config", str(config),
                     "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    expected = "more than the 1,000,000" if target == "large" else "is not a file"
    assert expected in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("damage", ["nan", "int64"])
def test_a_model_with_broken_weights_is_refused_at_load(tmp_path, capsys, damage):
    """NaN weights would die inside sampling; int64 ones are no model's. Both get one line."""
    import torch
    from safetensors.torch import load_file, save_file

    from llmlib.gpt import GPT, GPTConfig
    from llmlib.tokenizers import CharTokenizer

    tokenizer = CharTokenizer.from_text("abc \n")
    GPT(GPTConfig.preset("smoke", tokenizer=tokenizer)).save(tmp_path, tokenizer=tokenizer)
    weights = load_file(str(tmp_path / "model.safetensors"))
    name = "transformer.h.0.attn.c_attn.weight"
    weights[name] = (torch.full_like(weights[name], float("nan")) if damage == "nan"
                     else weights[name].to(torch.int64))
    save_file(weights, str(tmp_path / "model.safetensors"))
    assert cli.main(["generate", "--model", str(tmp_path), "--prompt", "ab",
                     "--max-new-tokens", "2"]) == 2
    err = capsys.readouterr().err
    expected = "is not finite (NaN or inf)" if damage == "nan" else "where a float type"
    assert expected in err and name in err and len(err.strip().splitlines()) == 1, err
