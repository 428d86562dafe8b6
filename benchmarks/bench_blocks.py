"""Benchmark for chapter 4: LayerNorm, GELU and the transformer block, against their baselines.

    PYTHONPATH=$PWD python benchmarks/bench_blocks.py [--quick]

Each row times forward + backward (the cost that matters in training) with torch.utils.benchmark,
and reports the ratio to a baseline measured in the same process, so that the numbers survive a
noisy, shared machine better than absolute times:
  - LayerNorm: the naive formula `layer_norm_naive` and llmlib's `LayerNorm` against `nn.LayerNorm`;
  - GELU (tanh): `gelu_naive` and llmlib's `GELU` against `nn.GELU(approximate="tanh")`;
  - the block: llmlib's `TransformerBlock` against `transformers`' `GPT2Block` (SDPA attention), with the
    same weights; the script first checks that the two compute the same output.
A ratio > 1 means slower than the baseline.
"""

from __future__ import annotations

import argparse
import platform
import statistics

import torch
import torch.nn as nn
from torch.utils import benchmark

from llmlib.blocks import GELU, LayerNorm, TransformerBlock, gelu_naive, layer_norm_naive
from llmlib.device import get_device, synchronize


def fwd_bwd_step(fn, x: torch.Tensor):
    """A closure that runs fn(x) and a backward pass of a fixed upstream gradient."""
    x = x.detach().requires_grad_()
    upstream = torch.randn_like(fn(x))

    def step():
        x.grad = None
        fn(x).backward(upstream)

    return step


def compare(baseline, candidates: dict, x: torch.Tensor, rounds: int, min_run_time: float):
    """(name, median seconds, median baseline seconds, median ratio) per candidate.

    Baseline and candidates are timed in alternation, `rounds` times, and the ratio is taken within each
    round, so that a change of load on a shared machine hits both sides of a ratio alike.
    """
    device = x.device
    steps = {"__baseline__": fwd_bwd_step(baseline, x)} | {n: fwd_bwd_step(f, x) for n, f in candidates.items()}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():  # warm up
        step()
    for _ in range(rounds):
        for name, step in steps.items():
            synchronize(device)
            timer = benchmark.Timer(stmt="step(); sync(device)", globals={"step": step, "sync": synchronize, "device": device})
            times[name].append(timer.blocked_autorange(min_run_time=min_run_time).median)
    base = times.pop("__baseline__")
    return [(name, statistics.median(t), statistics.median(base), statistics.median(a / b for a, b in zip(t, base)))
            for name, t in times.items()]


def machine() -> str:
    device = get_device()
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"{torch.get_num_threads()}-thread {platform.machine()} CPU, torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and short timings (a smoke run)")
    args = parser.parse_args()
    device = get_device()
    B, T, C, H = (2, 64, 128, 4) if args.quick else (8, 256, 768, 12)
    min_run_time = 0.05 if args.quick else 0.5
    torch.manual_seed(0)
    x = torch.randn(B, T, C, device=device)
    rounds = 3 if args.quick else 5
    rows: list[tuple[str, str, float, float, float]] = []

    ln_ours = LayerNorm(C).to(device)
    for name, *numbers in compare(nn.LayerNorm(C).to(device), {
            "layer_norm_naive (formula)": lambda t: layer_norm_naive(t, ln_ours.weight, ln_ours.bias),
            "llmlib LayerNorm (fused)": ln_ours}, x, rounds, min_run_time):
        rows.append(("LayerNorm", name, *numbers))

    xg = torch.randn(B, T, 4 * C, device=device)  # GELU runs on the MLP's 4C-wide activations
    for name, *numbers in compare(nn.GELU(approximate="tanh"), {
            "gelu_naive tanh (formula)": lambda t: gelu_naive(t, "tanh"),
            "llmlib GELU (fused)": GELU()}, xg, rounds, min_run_time):
        rows.append(("GELU tanh", name, *numbers))

    try:
        from transformers import GPT2Config
        from transformers.models.gpt2.modeling_gpt2 import GPT2Block
    except ImportError:
        print("transformers is not installed: skipping the block comparison")
    else:
        config = GPT2Config(n_embd=C, n_head=H, n_positions=T, resid_pdrop=0.0, attn_pdrop=0.0, embd_pdrop=0.0)
        config._attn_implementation = "sdpa"
        hf = GPT2Block(config).to(device).eval()
        ours = TransformerBlock(C, H).to(device).eval()
        ours.load_state_dict({k: v.T if v.ndim == 2 else v for k, v in hf.state_dict().items()})
        hf_fn = lambda t: (lambda out: out[0] if isinstance(out, tuple) else out)(hf(t))  # noqa: E731
        with torch.no_grad():
            diff = (ours(x) - hf_fn(x)).abs().max().item()
        if diff > 1e-4:
            raise SystemExit(f"llmlib TransformerBlock and GPT2Block disagree (max abs diff {diff:.2e}); not timing")
        for name, *numbers in compare(hf_fn, {"llmlib TransformerBlock": ours}, x, rounds, min_run_time):
            rows.append(("block", name, *numbers))

    print(f"forward + backward, (B, T, C) = ({B}, {T}, {C}), {H} heads, fp32 on {device.type}: {machine()}")
    print(f"{'layer':10s} {'implementation':28s} {'ms':>9s} {'baseline ms':>12s} {'ratio':>7s}")
    for layer, name, seconds, baseline, ratio in rows:
        print(f"{layer:10s} {name:28s} {seconds * 1e3:9.3f} {baseline * 1e3:12.3f} {ratio:6.2f}x")
    print("baselines: nn.LayerNorm, nn.GELU(approximate='tanh'), transformers GPT2Block (sdpa); "
          f"medians of {rounds} alternating rounds; ratio > 1 = slower")


if __name__ == "__main__":
    main()
