"""Reports how long each chapter took under nbval, against the smoke-mode budget of 60 s per notebook."""

from collections import defaultdict

SMOKE_BUDGET_S = 60
_durations: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _durations[path] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _durations:
        return
    terminalreporter.section("chapter run times (smoke budget: 60 s each)")
    for path, seconds in sorted(_durations.items()):
        flag = "  OVER BUDGET" if seconds > SMOKE_BUDGET_S else ""
        terminalreporter.write_line(f"{seconds:6.1f} s  {path}{flag}")
