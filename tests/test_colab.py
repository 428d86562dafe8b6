"""The Colab path of the setup cell, simulated offline: clone from a file:// URL, install, import.

A throwaway virtual environment sees this environment's packages through a .pth file, so that
`pip install -e` of the clone needs no network (the dependencies are already satisfied) and
leaves the test environment untouched.
"""

import os
import subprocess
import sys
import sysconfig
import textwrap

import setup_cell
from conftest import ROOT


def test_setup_cell_colab_branch_clones_installs_and_imports(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    venv_site = subprocess.run([python, "-c",
                                "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(venv_site, "outer_env.pth"), "w") as pth:
        pth.write(sysconfig.get_paths()["purelib"] + "\n")

    colab = tmp_path / "content"
    colab.mkdir()
    script = textwrap.dedent("""\
        import sys, types
        sys.modules["google.colab"] = types.ModuleType("google.colab")  # what Colab's kernel has
        exec(compile(open(sys.argv[1]).read(), "setup_cell", "exec"))
        import llmlib, llmlib.corpus
        print("LLMLIB", llmlib.__file__)
        print("CWD", __import__("os").getcwd())
        print("WORKS", len(llmlib.corpus.list_works()))
    """)
    (tmp_path / "cell.py").write_text(setup_cell.SETUP_CELL)
    (tmp_path / "run.py").write_text(script)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LLMLIB_DATA", "PYTHONPATH", "VIRTUAL_ENV"))}
    env.update(LLMLIB_REPO_URL=ROOT.as_uri(), PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0",
               LLMLIB_SMOKE="1")
    result = subprocess.run([python, tmp_path / "run.py", tmp_path / "cell.py"], cwd=colab, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    clone = colab / "llms-from-scratch"
    assert f"LLMLIB {clone / 'llmlib' / '__init__.py'}" in result.stdout
    assert f"CWD {clone / 'chapters'}" in result.stdout
    assert "WORKS 42" in result.stdout and "run mode smoke" in result.stdout

    # The install is real: a fresh interpreter of that environment imports llmlib from the clone.
    check = subprocess.run([python, "-c", "import llmlib; print(llmlib.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=60)
    assert check.stdout.strip() == str(clone / "llmlib" / "__init__.py"), check.stderr
    # Colab's own packages were left alone: nothing but llmlib was installed into the environment.
    installed = sorted(p.name.split("-")[0]
                       for p in __import__("pathlib").Path(venv_site).glob("*.dist-info"))
    assert installed == ["llmlib"], installed
