"""Every chapter follows the house rules: listed in the book, titled, standard setup cell,
clean outputs."""

import re
import tomllib

import pytest
import yaml

import setup_cell
from conftest import CHAPTERS, ROOT, read_notebook

ABSOLUTE_PATH = re.compile(r"(/work/|/home/\w|/Users/\w|/root/|/tmp/|[A-Z]:\\\\Users)")


def readable_text(cell: dict) -> str:
    """A cell's source and its text outputs (images are base64 and could match by chance)."""
    parts = ["".join(cell["source"])]
    for output in cell.get("outputs", []):
        parts.append("".join(output.get("text", "")))
        for mime, data in output.get("data", {}).items():
            if mime.startswith("text/") or mime.endswith("json"):
                parts.append(data if isinstance(data, str)
                             else "".join(data) if isinstance(data, list) else str(data))
    return "\n".join(parts)


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [entry["file"] for entry in part["chapters"]]
    return files


def chapter_title(name: str) -> str:
    """'# Chapter 3: ' for 03_attention.ipynb, '# Appendix A: ' for A_numpy_gpt.ipynb."""
    if re.fullmatch(r"[0-9]{2}_\w+\.ipynb", name):
        return f"# Chapter {int(name[:2])}: "
    assert re.fullmatch(r"[A-Z]_\w+\.ipynb", name), \
        f"{name}: chapters are NN_topic.ipynb, appendices A_topic.ipynb"
    return f"# Appendix {name[0]}: "


def test_titles_follow_the_file_names():
    assert chapter_title("03_attention.ipynb") == "# Chapter 3: "
    assert chapter_title("A_numpy_gpt.ipynb") == "# Appendix A: "
    with pytest.raises(AssertionError):
        chapter_title("appendix_numpy.ipynb")


def test_appendices_come_after_the_chapters():
    names = [p.name for p in CHAPTERS]
    appendices = [n for n in names if n[0].isalpha()]
    assert names[len(names) - len(appendices):] == appendices == sorted(appendices)
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    listed = [e["file"] for part in toc["parts"] if part["caption"] == "Appendices"
              for e in part["chapters"]]
    assert listed == [f"chapters/{n.removesuffix('.ipynb')}" for n in appendices]
    assert toc["parts"][-1]["caption"] == "Appendices" or not appendices


def test_there_are_chapters():
    assert CHAPTERS and CHAPTERS[0].name == "00_setup.ipynb"


def test_toc_lists_every_chapter_in_order_and_nothing_missing():
    listed = toc_files()
    chapters = [f"chapters/{p.stem}" for p in CHAPTERS]
    assert [f for f in listed if f.startswith("chapters/")] == chapters
    for entry in listed:
        assert (ROOT / f"{entry}.ipynb").exists() or (ROOT / f"{entry}.md").exists(), entry


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_hygiene(path):
    nb = read_notebook(path)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    first = "".join(nb["cells"][0]["source"])
    title = chapter_title(path.name)
    assert nb["cells"][0]["cell_type"] == "markdown" and first.startswith(title), \
        f"{path.name} must open with a markdown title '{title}...'"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "".join(code[0]["source"]) == setup_cell.SETUP_CELL, (
        f"{path.name}: the first code cell must be tools/setup_cell.py's SETUP_CELL "
        "(run `python tools/setup_cell.py`)")
    assert code[0]["metadata"].get("tags", []) == setup_cell.expected_tags(path.name), (
        f"{path.name}: the setup cell's tags must be {setup_cell.expected_tags(path.name)} "
        "(run `python tools/setup_cell.py`)")
    assert any("".join(c["source"]).startswith("#| default_exp ") for c in code), \
        f"{path.name} exports nothing"
    marked = [i for i, c in enumerate(nb["cells"])
              if c["cell_type"] == "code" and "NBVAL_CHECK_OUTPUT" in "".join(c["source"])]
    assert not marked, (f"{path.name}: cells {marked} carry a '# NBVAL_CHECK_OUTPUT' comment, "
                        "which readers see; give them the 'nbval-check-output' tag instead")
    text = "\n".join(readable_text(cell) for cell in nb["cells"])
    found = ABSOLUTE_PATH.search(text)
    assert not found, f"{path.name} contains an absolute local path: {found.group()}"
    widgets = nb["metadata"].get("widgets")
    if widgets is not None:
        assert (widgets.get("application/vnd.jupyter.widget-state+json", {}).get("state")
                is not None), (
            f"{path.name}: metadata.widgets without state breaks the book; "
            "re-run tools/run_notebooks.py")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_committed_outputs_come_from_a_real_run(path):
    nb = read_notebook(path)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    setup_output = "".join("".join(o.get("text", "")) for o in code[0].get("outputs", []))
    assert re.search(r"run mode (cpu|gpu)\b", setup_output), (
        f"{path.name} must be committed executed in cpu or gpu mode "
        f"(make notebooks NB={path.relative_to(ROOT)})")
    counts = [c["execution_count"] for c in code if c["execution_count"] is not None]
    assert counts == list(range(1, len(code) + 1)), \
        f"{path.name} was not executed top to bottom in one run"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name} has committed error outputs"


def test_repository_url_lives_in_one_place():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = config["repository"]["url"]
    assert setup_cell.REPO_URL == url
    assert tomllib.loads(
        (ROOT / "pyproject.toml").read_text())["project"]["urls"]["Homepage"] == url
    for path in CHAPTERS:
        assert f'"{url}"' in "".join(read_notebook(path)["cells"][1]["source"])


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and re.search(r"^make test$", ci, re.M)
