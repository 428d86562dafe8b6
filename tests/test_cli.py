"""The command line (chapter 0's dispatcher): `python -m llmlib` and the `llmlib` script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import llmlib
from llmlib import cli


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


def test_a_chapter_registers_a_command_and_bad_input_is_one_clear_line(
        tmp_path, monkeypatch, capsys):
    (tmp_path / "fake_chapter.py").write_text(
        "def register(subcommands):\n"
        "    p = subcommands.add_parser('shout', help='a test command')\n"
        "    p.add_argument('--times', type=int, default=1)\n"
        "    p.set_defaults(run=lambda args: print('hey ' * args.times) or 0 if args.times > 0\n"
        "                   else (_ for _ in ()).throw(ValueError('--times must be >= 1')))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("llmlib.cli", "fake_chapter", "llmlib.not_yet"))
    assert cli.main(["shout", "--times", "2"]) == 0
    assert capsys.readouterr().out.strip() == "hey hey"
    assert cli.main(["shout", "--times", "0"]) == 2
    assert capsys.readouterr().err.strip() == "llmlib: error: --times must be >= 1"
