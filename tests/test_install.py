"""The install routes of the README: the Makefile passes TORCH_SPEC to pip as words, `make lab`
installs JupyterLab, and the version is written in one place."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from importlib.metadata import version

import pytest

import llmlib
from conftest import ROOT

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make_dry_run(*args: str) -> str:
    # a VENV that does not exist, so that make plans the whole install
    result = subprocess.run(["make", "-n", *args, "VENV=/nonexistent-venv"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@needs_make
def test_torch_spec_reaches_pip_as_separate_words():
    spec = "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
    plan = make_dry_run("test", f"TORCH_SPEC={spec}")
    pip_line = next(line for line in plan.splitlines() if "install torch" in line)
    assert pip_line.endswith(f"install {spec}"), pip_line  # unquoted: pip sees an option
    assert f'"{spec}"' not in plan and f"'{spec}'" not in plan
    assert "LLMLIB_SMOKE=1 /nonexistent-venv/bin/python -m pytest" in plan


@needs_make
def test_the_default_torch_is_the_pinned_cpu_wheel():
    plan = make_dry_run("install")
    assert re.search(r"pip .*install torch==2\.13\.0$", plan, re.M), plan


@needs_make
def test_make_lab_installs_jupyterlab_and_opens_the_chapters():
    plan = make_dry_run("lab")
    assert 'install -e ".[dev,jupyter]"' in plan
    assert "/nonexistent-venv/bin/jupyter lab chapters/" in plan
    extras = tomllib.loads(
        (ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("jupyterlab") for dep in extras["jupyter"])


def test_the_version_is_written_once():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "llmlib.__version__"}
    assert version("llmlib") == llmlib.__version__  # what pip installed is what the code says
    assert project["project"]["scripts"]["llmlib"] == "llmlib.cli:main"


def test_readme_routes_name_the_make_targets():
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme
    assert 'TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"' in readme
