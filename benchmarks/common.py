"""What the benchmark scripts share: the machine line, one timer and one peak-memory measure.

The scripts run from the repository root as `.venv/bin/python benchmarks/bench_NAME.py [--quick]`;
Python then puts benchmarks/ on sys.path, so they import this module as `from common import ...`.
The device is `llmlib.device.get_device()` (set LLMLIB_DEVICE=cpu|cuda|mps to choose it), and
every clock reading first waits for it with `llmlib.device.synchronize`.
"""

from __future__ import annotations

import ctypes
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from llmlib.device import get_device, synchronize

# --- the machine ---------------------------------------------------------------------------------

def _cpu_model() -> str:
    """The CPU's marketing name where Linux tells it, else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                # x86 names it "model name"; some Arm boards "Hardware" or "Model"
                if line.startswith(("model name", "Hardware", "Model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    """Cores this process may run on (a container or taskset may allow fewer than there are)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine(device: torch.device | str | None = None) -> str:
    """One line naming the device, CPU, OS and versions that a benchmark's numbers depend on."""
    device = torch.device(device) if device is not None else get_device()
    where = f"device {device}"
    if device.type == "cuda":
        where += f" ({torch.cuda.get_device_name(device)})"
    cpu = (f"CPU {_cpu_model()}, {usable_cores()} usable cores of {os.cpu_count()}, "
           f"{torch.get_num_threads()} torch threads")
    system = f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"
    return f"{where} | {cpu} | {system}, torch {torch.__version__}"


# --- the timer -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Timing:
    """Seconds per call of one candidate over the timed rounds.

    fastest: the least disturbed sample (on a shared machine noise only ever adds time), the one
    to take ratios of; median: the typical sample, to show alongside; times: every sample, in
    round order; number: calls per sample; result: what the candidate's first call returned.
    """

    fastest: float
    median: float
    times: tuple[float, ...]
    number: int = 1
    result: Any = field(default=None, repr=False, compare=False)


def _sample(fn: Callable[[], Any], number: int, device: torch.device) -> tuple[float, Any]:
    synchronize(device)  # queued GPU work from before must not be charged to this sample
    start = time.perf_counter()
    for _ in range(number):
        value = fn()
    synchronize(device)  # GPU kernels run asynchronously: wait for them before reading the clock
    return (time.perf_counter() - start) / number, value


def time_alternating(candidates: Mapping[str, Callable[[], Any]],
                     device: torch.device | str | None = None, rounds: int = 5, *,
                     number: int = 1, min_time: float = 0.0,
                     warmup: bool = True) -> dict[str, Timing]:
    """Time each candidate in alternating rounds (a, b, c, a, b, c, ...) on `device`.

    Alternating, rather than timing a in full and then b, lets a change of load on a shared machine
    hit every candidate alike. Before the rounds each candidate gets one untimed warm-up call
    (lazy initialisation, caches, kernel selection) unless `warmup=False`. A sample is `number`
    calls in a row; with `min_time` > 0 one more call per candidate measures it first, and
    `number` grows so that a sample lasts about `min_time` seconds (so that the timer's
    resolution and the per-sample overhead vanish). Each sample waits for the device
    (`llmlib.device.synchronize`) before it starts the clock and before it reads it.
    Returns {name: Timing} in the candidates' order.
    """
    if rounds < 1 or number < 1:
        raise ValueError(f"rounds and number must be >= 1, got {rounds} and {number}")
    device = torch.device(device) if device is not None else get_device()
    results: dict[str, Any] = {}
    numbers: dict[str, int] = {}
    for name, fn in candidates.items():
        if warmup:
            results[name] = fn()
        numbers[name] = number
        if min_time > 0:
            seconds, value = _sample(fn, 1, device)
            results.setdefault(name, value)
            numbers[name] = max(number, math.ceil(min_time / max(seconds, 1e-9)))
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            seconds, value = _sample(fn, numbers[name], device)
            results.setdefault(name, value)
            samples[name].append(seconds)
    return {name: Timing(min(t), statistics.median(t), tuple(t), numbers[name], results[name])
            for name, t in samples.items()}


class Stopwatch:
    """Wall time of one long measurement that cannot be repeated in rounds (a training run to a
    target loss): `clock = Stopwatch(device)`, then `clock.seconds()` at any point. Each reading
    waits for the device first, as `time_alternating` does."""

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else get_device()
        synchronize(self.device)
        self.start = time.perf_counter()

    def seconds(self) -> float:
        synchronize(self.device)
        return time.perf_counter() - self.start


# --- peak memory ---------------------------------------------------------------------------------

def _status_bytes(field_name: str) -> int | None:
    """A field such as VmRSS of /proc/self/status in bytes; None where there is none (not Linux)."""
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024  # the kernel writes kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _max_rss_bytes() -> int | None:
    """The process's lifetime peak RSS from getrusage; None without `resource` (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def _trim_heap() -> None:
    """Hand freed heap memory back to the OS (glibc only), so that reusing it shows in the RSS."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux: /proc/self/clear_refs); False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of the work done in `with PeakMemory(device) as mem: ...`, in bytes.

    mem.before: memory in use on entry; mem.peak: the highest until exit; mem.extra: peak - before,
    what the work needed on top; mem.how: how it was measured (print it with the numbers).
    - CUDA: torch's allocator (reset_peak_memory_stats, memory_allocated, max_memory_allocated);
      exact, and blind to memory outside torch.
    - CPU (and MPS, whose allocations may not show): the process's resident set, page-granular. On
      Linux the peak (VmHWM in /proc/self/status) is reset on entry, so it covers the block alone;
      elsewhere it is getrusage's lifetime peak, and `extra` is then only a lower bound.
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else get_device()
        self.before = self.peak = math.nan
        self.how = ""

    def __enter__(self) -> PeakMemory:
        gc.collect()  # garbage from earlier work must not count as this block's
        synchronize(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.before = torch.cuda.memory_allocated(self.device)
            self.how = "torch.cuda.max_memory_allocated"
            return self
        _trim_heap()
        rss = _status_bytes("VmRSS")
        if _reset_peak_rss() and rss is not None:
            self.before, self.how = rss, "peak RSS (VmHWM, reset on entry)"
        else:
            lifetime = _max_rss_bytes()
            self.before = math.nan if lifetime is None else lifetime
            self.how = "lifetime peak RSS (getrusage; extra is a lower bound)"
        if self.device.type == "mps":
            self.how += "; MPS allocations may not show"
        return self

    def __exit__(self, *exc_info: object) -> None:
        synchronize(self.device)
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
        elif self.how.startswith("peak RSS"):
            self.peak = _status_bytes("VmHWM") or math.nan
        else:
            lifetime = _max_rss_bytes()
            self.peak = math.nan if lifetime is None else lifetime

    @property
    def extra(self) -> float:
        """Bytes the block needed beyond what was in use on entry (>= 0; nan if unknown)."""
        diff = self.peak - self.before
        return diff if math.isnan(diff) else max(0.0, diff)


def run_again(script: str, args: list[str], device: torch.device) -> dict[str, Any]:
    """Run the benchmark `script` (its __file__) again in a fresh process, with the same
    interpreter, device and torch threads, and return the JSON object of its last output line:
    how a script measures one case's peak memory without another case's allocations in the way."""
    env = {**os.environ, "LLMLIB_DEVICE": str(device)}
    out = subprocess.run([sys.executable, str(Path(script).resolve()), *args,
                          "--threads", str(torch.get_num_threads())],
                         capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{Path(script).name} {' '.join(args)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])
