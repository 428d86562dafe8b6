"""Benchmark for chapter 3: explicit attention (`attention_math`) against PyTorch's fused SDPA.

    .venv/bin/python benchmarks/bench_attention.py [--quick] [--T 128 256 512 1024 2048] [--heads 4]
                                                   [--backward] [--rounds 5] [--min-time 0.2]

Causal self-attention, batch 1, head size 64, fp32 on the CPU (fp16 on CUDA, which every GPU's
fused kernels support). The two are first checked to agree, then timed in alternating rounds in
this process. For each sequence length T it prints the fastest time of a forward pass (or forward +
backward with --backward), the speed-up of SDPA over the explicit version from the fastest times and
from the medians, and the extra memory each needs (common.PeakMemory: torch's allocator on CUDA,
the growth of the process's peak RSS on the CPU). The size of one (B, H, T, T) matrix is printed
for scale: the explicit version materialises such matrices, the fused kernel does not.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import torch

from llmlib.attention import attention_math, attention_sdpa, causal_mask
from llmlib.device import get_device

from common import PeakMemory, machine, time_alternating


def extra_mib(fn: Callable[[], object], device: torch.device) -> tuple[float, str]:
    """MiB one call of `fn` needs beyond what is in use before it, and how that was measured."""
    with PeakMemory(device) as mem:
        fn()
    return mem.extra / 2**20, mem.how


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two short sequences, short timings")
    parser.add_argument("--T", type=int, nargs="+", default=None,
                        help="sequence lengths (default 128 256 512 1024 2048)")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 5)")
    parser.add_argument("--min-time", type=float, default=None,
                        help="seconds per timed sample (default 0.2)")
    parser.add_argument("--backward", action="store_true",
                        help="time forward + backward instead of forward")
    args = parser.parse_args(argv)
    lengths = args.T or ([64, 128] if args.quick else [128, 256, 512, 1024, 2048])
    rounds = args.rounds or (3 if args.quick else 5)
    min_time = args.min_time if args.min_time is not None else (0.01 if args.quick else 0.2)
    device = get_device()
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    print(f"machine: {machine(device)}")
    print(f"causal self-attention, batch 1, {args.heads} heads of size 64, {dtype}, "
          f"{'forward + backward' if args.backward else 'forward only'}; "
          f"fastest of {rounds} alternating rounds (medians in brackets)")
    print(f"{'T':>6s} {'explicit ms':>18s} {'SDPA ms':>18s} {'SDPA speed-up':>15s} | "
          f"{'(B,H,T,T) MiB':>13s} {'explicit MiB':>12s} {'SDPA MiB':>8s} {'memory ratio':>12s}")
    how = ""
    for T in lengths:
        q, k, v = (torch.randn(1, args.heads, T, 64, device=device, dtype=dtype,
                               requires_grad=args.backward) for _ in range(3))
        mask = causal_mask(T, device)
        grad = torch.randn_like(q)

        def run(y_fn: Callable[[], torch.Tensor]) -> torch.Tensor:
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
        mib = {}
        for name, fn in fns.items():  # the first calls above were the warm-up
            mib[name], how = extra_mib(fn, device)
        t = time_alternating(fns, device, rounds, min_time=min_time, warmup=False)
        ex, sd = t["explicit"], t["sdpa"]
        matrix = args.heads * T * T * q.element_size() / 2**20
        ratio = (f"{mib['explicit'] / mib['sdpa']:11.1f}x" if mib["sdpa"] > 0 and not math.isnan(
            mib["sdpa"]) else f"{'-':>12s}")
        print(f"{T:6d} {ex.fastest * 1e3:9.2f} ({ex.median * 1e3:6.2f}) "
              f"{sd.fastest * 1e3:9.2f} ({sd.median * 1e3:6.2f}) "
              f"{ex.fastest / sd.fastest:6.1f}x ({ex.median / sd.median:5.1f}x) | "
              f"{matrix:13.1f} {mib['explicit']:12.1f} {mib['sdpa']:8.1f} {ratio}")
    print(f"memory: {how}, above what was in use before one call")


if __name__ == "__main__":
    main()
