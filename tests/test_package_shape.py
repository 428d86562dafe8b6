"""The package's shape, as a maintainer reads it: small modules, short functions, imports that
point back to earlier chapters (never in a circle), one forward path for the model."""

import ast
import re

import pytest

from conftest import ROOT

PACKAGE = ROOT / "llmlib"
MODULES = sorted(PACKAGE.glob("*.py"))
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _tree(path):
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _llmlib_imports(path):
    """Names of the llmlib modules that `path` imports, at any depth (lazy imports count too)."""
    found = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "llmlib" and len(parts) > 1:
                found.add(parts[1])
            elif node.module == "llmlib":
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "llmlib" and len(parts) > 1:
                    found.add(parts[1])
    return found & {p.stem for p in MODULES}


def test_no_module_is_too_long():
    long = {p.name: n for p in MODULES if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_is_too_long():
    long = {}
    for path in MODULES:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if (length := node.end_lineno - start + 1) > MAX_FUNCTION_LINES:
                    long[f"{path.name}:{node.name}"] = length
    assert long == {}, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_imports_form_no_circle():
    graph = {p.stem: _llmlib_imports(p) - {p.stem} for p in MODULES}
    state = {}

    def visit(module, trail):
        if state.get(module) == "done":
            return
        if state.get(module) == "open":
            circle = trail[trail.index(module):] + [module]
            pytest.fail("import circle: " + " -> ".join(circle))
        state[module] = "open"
        for target in sorted(graph[module]):
            visit(target, trail + [module])
        state[module] = "done"

    for module in sorted(graph):
        visit(module, [])


def test_the_block_forward_lives_in_the_block():
    """Only the block modules (attention.py and blocks.py; chapter 9's modern.py, whose block is
    its own) call a block's layers: a cached decode runs the modules."""
    pattern = re.compile(r"\.(c_attn|ln_1|ln_2)\(")
    block_modules = {"attention.py", "blocks.py", "modern.py"}
    outside = [f"{p.name}:{n}" for p in MODULES if p.name not in block_modules
               for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert outside == []


def test_the_checks_catch_what_they_should(tmp_path):
    """The shape rules above are not vacuous: a circle and a long function are found."""
    (tmp_path / "a.py").write_text("from llmlib.b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from llmlib.a import y\n" + "    y\n" * 90)
    global MODULES
    saved, MODULES = MODULES, sorted(tmp_path.glob("*.py"))
    try:
        with pytest.raises(AssertionError, match="b.py:f"):
            test_no_function_is_too_long()
        with pytest.raises(pytest.fail.Exception, match="import circle: a -> b -> a"):
            test_imports_form_no_circle()
    finally:
        MODULES = saved
