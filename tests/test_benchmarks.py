"""benchmarks/common.py (timer, peak memory, machine line) and the house rules of the scripts.

Fast and free of timing thresholds: what is checked is the bookkeeping (one result per candidate,
alternating rounds, device synchronisation), never how fast anything ran.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("bench_*.py"))


def _load_common():
    # by path, under its own name: the scripts' `from common import` relies on benchmarks/ being
    # sys.path[0], which a test run must not impose on everything else
    spec = importlib.util.spec_from_file_location("benchmarks_common", BENCHMARKS / "common.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module


common = _load_common()


def recorder(names: str, calls: list[str]) -> dict:
    """Candidates named by the letters of `names`, each appending its name to `calls`."""
    return {n: (lambda n=n: calls.append(n) or n) for n in names}


def test_timer_returns_one_timing_per_candidate_in_order():
    timings = common.time_alternating(recorder("abc", []), "cpu", rounds=4)
    assert list(timings) == ["a", "b", "c"]
    for t in timings.values():
        assert isinstance(t, common.Timing)
        assert len(t.times) == 4
        assert 0 <= t.fastest <= t.median
        assert t.fastest == min(t.times)


def test_timer_warms_up_then_alternates_rounds():
    calls: list[str] = []
    common.time_alternating(recorder("abc", calls), "cpu", rounds=3)
    assert calls == list("abc") + list("abc") * 3  # one warm-up call each, then a, b, c per round


def test_timer_without_warmup_and_several_calls_per_sample():
    calls: list[str] = []
    timings = common.time_alternating(recorder("ab", calls), "cpu", rounds=2, number=3,
                                      warmup=False)
    assert calls == list("aaabbb") * 2
    assert all(t.number == 3 for t in timings.values())


def test_timer_min_time_raises_calls_per_sample():
    calls: list[str] = []
    timings = common.time_alternating(recorder("a", calls), "cpu", rounds=2, min_time=1e-3)
    assert timings["a"].number > 1  # appending to a list takes far less than a millisecond
    assert len(calls) == 1 + 1 + 2 * timings["a"].number  # warm-up, measuring call, two samples


def test_timer_keeps_the_first_result():
    counter = iter(range(100))
    timings = common.time_alternating({"n": lambda: next(counter)}, "cpu", rounds=3)
    assert timings["n"].result == 0


def test_timer_synchronizes_the_device_around_every_sample(monkeypatch):
    events: list[str] = []
    monkeypatch.setattr(common, "synchronize", lambda device: events.append(f"sync {device}"))
    common.time_alternating({"a": lambda: events.append("a")}, "cpu", rounds=2, warmup=False)
    assert events == ["sync cpu", "a", "sync cpu"] * 2


def test_timer_rejects_no_rounds():
    with pytest.raises(ValueError):
        common.time_alternating(recorder("a", []), "cpu", rounds=0)


def test_peak_memory_on_cpu_is_positive():
    with common.PeakMemory("cpu") as mem:
        block = b"\x01" * (32 << 20)  # written, so its pages count as resident
    del block
    assert mem.peak > 0 and mem.before > 0
    assert mem.extra >= 0 and mem.how
    if mem.how.startswith("peak RSS"):  # Linux: the peak was reset on entry
        assert mem.extra >= 16 << 20


def test_peak_memory_extra_is_never_negative():
    mem = common.PeakMemory("cpu")
    mem.before, mem.peak = 10.0, 5.0
    assert mem.extra == 0
    mem.peak = math.nan
    assert math.isnan(mem.extra)


def test_machine_is_one_line_naming_the_device(monkeypatch):
    line = common.machine("cpu")
    assert "\n" not in line
    assert "device cpu" in line and torch.__version__ in line
    monkeypatch.setenv("LLMLIB_DEVICE", "cpu")  # without an argument: llmlib.device.get_device()
    assert "device cpu" in common.machine()


@pytest.mark.parametrize("path", sorted(BENCHMARKS.glob("*.py")), ids=lambda p: p.name)
def test_no_benchmark_synchronizes_cuda_directly(path):
    assert "cuda.synchronize" not in path.read_text(encoding="utf-8"), \
        f"{path.name}: synchronize through llmlib.device.synchronize (common.time_alternating does)"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_scripts_share_common(path):
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    defined = {node.name for node in ast.walk(tree)
               if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    assert "machine" not in defined and "def machine(" not in text, \
        f"{path.name} defines its own machine(): use common.machine"
    imported = {alias.name for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module == "common"
                for alias in node.names}
    assert "machine" in imported, f"{path.name} must print common.machine()'s line"
    doc = ast.get_docstring(tree) or ""
    assert f"benchmarks/{path.name}" in doc, f"{path.name}: the docstring must say how to run it"
    assert "--quick" in doc and '"--quick"' in text, f"{path.name} needs a --quick smoke run"
    for own_timer in ("perf_counter", "torch.utils.benchmark", "from torch.utils import benchmark"):
        assert own_timer not in text, f"{path.name}: time with common.time_alternating"


def test_every_script_is_in_the_readme():
    readme = (BENCHMARKS / "README.md").read_text(encoding="utf-8")
    for path in [*SCRIPTS, BENCHMARKS / "common.py"]:
        assert path.name in readme, f"benchmarks/README.md does not describe {path.name}"
