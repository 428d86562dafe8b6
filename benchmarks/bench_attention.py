"""Benchmark: explicit attention (llmlib.attention.attention_math) versus PyTorch's fused SDPA.

    PYTHONPATH=$PWD python benchmarks/bench_attention.py [--T 128 256 512 1024 2048] [--heads 4] [--backward]

Causal self-attention, batch 1, head size 64, fp32 on CPU (fp16 on CUDA, which every GPU's fused kernels
support). For each sequence length T it prints the median time of a forward pass (or forward + backward
with --backward), the speed-up of SDPA over the explicit version measured in the same process, and the
extra memory each needs:
- CUDA: peak of torch's allocator above what was allocated before the call (exact);
- Linux CPU: growth of the process's peak resident size (VmHWM, reset through /proc/self/clear_refs);
  page-granular (malloc_trim first returns freed heap memory to the OS, so that reuse shows up);
- elsewhere: not measured (nan). The computed size of one (B, H, T, T) matrix is printed for scale.
Timings on a shared machine are noisy: compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import re

import torch
from torch.utils import benchmark

from llmlib.attention import attention_math, attention_sdpa, causal_mask
from llmlib.device import get_device


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(field + r":\s+(\d+) kB", f.read()).group(1))


def _trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_extra_memory_mib(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - start) / 2**20
    if device.type == "cpu" and os.path.exists("/proc/self/clear_refs"):
        try:
            _trim()  # hand freed heap memory back to the OS, so that it shows up again when reused
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            return float("nan")
        start = _rss_kib("VmRSS")
        fn()
        return max(0, _rss_kib("VmHWM") - start) / 1024
    return float("nan")


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"{os.cpu_count()}-core {platform.machine()} CPU ({torch.get_num_threads()} torch threads), torch {torch.__version__}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, nargs="+", default=[128, 256, 512, 1024, 2048])
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds of timing per measurement")
    parser.add_argument("--backward", action="store_true", help="time forward + backward instead of forward")
    args = parser.parse_args(argv)
    device = get_device()
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    print(f"machine: {machine(device)}")
    print(f"causal self-attention, batch 1, {args.heads} heads of size 64, {dtype}, "
          f"{'forward + backward' if args.backward else 'forward only'}")
    print(f"{'T':>6s} {'explicit ms':>11s} {'SDPA ms':>8s} {'SDPA speed-up':>13s} | "
          f"{'(B,H,T,T) MiB':>13s} {'explicit MiB':>12s} {'SDPA MiB':>8s} {'memory ratio':>12s}")
    for T in args.T:
        q, k, v = (torch.randn(1, args.heads, T, 64, device=device, dtype=dtype, requires_grad=args.backward)
                   for _ in range(3))
        mask = causal_mask(T, device)
        grad = torch.randn_like(q)

        def run(y_fn):
            if not args.backward:
                with torch.no_grad():
                    return y_fn()
            y = y_fn()
            y.backward(grad)
            return y

        fns = {"explicit": lambda: run(lambda: attention_math(q, k, v, mask)[0]),
               "sdpa": lambda: run(lambda: attention_sdpa(q, k, v, is_causal=True))}
        diff = (fns["explicit"]() - fns["sdpa"]()).abs().max().item()
        assert diff < (3e-2 if dtype == torch.float16 else 1e-4), f"T={T}: results differ by {diff}"
        ms, mib = {}, {}
        for name, fn in fns.items():
            fn()
            mib[name] = peak_extra_memory_mib(fn, device)
            ms[name] = benchmark.Timer(stmt="fn()", globals={"fn": fn}).blocked_autorange(
                min_run_time=args.min_time).median * 1000
        matrix = args.heads * T * T * q.element_size() / 2**20
        ratio = f"{mib['explicit'] / mib['sdpa']:11.1f}×" if mib["sdpa"] > 0 else f"{'-':>12s}"
        print(f"{T:6d} {ms['explicit']:11.2f} {ms['sdpa']:8.2f} {ms['explicit'] / ms['sdpa']:12.1f}× | "
              f"{matrix:13.1f} {mib['explicit']:12.1f} {mib['sdpa']:8.1f} {ratio}")


if __name__ == "__main__":
    main()
