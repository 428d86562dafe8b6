"""Benchmark for chapter 4: LayerNorm, GELU and the transformer block, against their baselines.

    .venv/bin/python benchmarks/bench_blocks.py [--quick] [--rounds 5] [--min-time 0.2]

Each row times forward + backward (the cost that matters in training) and reports the ratio to a
baseline timed in alternating rounds with it, in this process:
  - LayerNorm: the naive formula `layer_norm_naive` and llmlib's `LayerNorm` against `nn.LayerNorm`;
  - GELU (tanh): `gelu_naive` and llmlib's `GELU` against `nn.GELU(approximate="tanh")`;
  - the block: llmlib's `TransformerBlock` against `transformers`' `GPT2Block` (SDPA attention),
    with the same weights; the script first checks that the two compute the same output.
Sizes: (B, T, C) = (8, 256, 768) with 12 heads, GPT-2 small's width (--quick: (2, 64, 128) with 4
heads).
The ratio comes from the fastest times (medians in brackets); a ratio > 1 means slower than the
baseline.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn as nn

from llmlib.blocks import GELU, LayerNorm, TransformerBlock, gelu_naive, layer_norm_naive
from llmlib.device import get_device

from common import Timing, machine, time_alternating

BASELINE = "__baseline__"


def fwd_bwd_step(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], None]:
    """A closure that runs fn(x) and a backward pass of a fixed upstream gradient."""
    x = x.detach().requires_grad_()
    upstream = torch.randn_like(fn(x))

    def step() -> None:
        x.grad = None
        fn(x).backward(upstream)

    return step


def compare(baseline: Callable, candidates: dict[str, Callable], x: torch.Tensor, rounds: int,
            min_time: float) -> list[tuple[str, Timing, Timing]]:
    """(name, candidate's Timing, baseline's Timing) per candidate, all timed in alternating rounds.

    Baseline and candidates alternate within each round, so that a change of load on a shared
    machine hits both sides of a ratio alike.
    """
    steps = {BASELINE: fwd_bwd_step(baseline, x)}
    steps |= {name: fwd_bwd_step(fn, x) for name, fn in candidates.items()}
    timings = time_alternating(steps, x.device, rounds, min_time=min_time)
    base = timings.pop(BASELINE)
    return [(name, t, base) for name, t in timings.items()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and short timings (a smoke run)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 5)")
    parser.add_argument("--min-time", type=float, default=None,
                        help="seconds per timed sample (default 0.2)")
    args = parser.parse_args(argv)
    device = get_device()
    B, T, C, H = (2, 64, 128, 4) if args.quick else (8, 256, 768, 12)
    rounds = args.rounds or (3 if args.quick else 5)
    min_time = args.min_time if args.min_time is not None else (0.02 if args.quick else 0.2)
    print(f"machine: {machine(device)}")
    torch.manual_seed(0)
    x = torch.randn(B, T, C, device=device)
    rows: list[tuple[str, str, Timing, Timing]] = []

    ln_ours = LayerNorm(C).to(device)
    for name, t, base in compare(nn.LayerNorm(C).to(device), {
            "layer_norm_naive (formula)":
                lambda t: layer_norm_naive(t, ln_ours.weight, ln_ours.bias),
            "llmlib LayerNorm (fused)": ln_ours}, x, rounds, min_time):
        rows.append(("LayerNorm", name, t, base))

    xg = torch.randn(B, T, 4 * C, device=device)  # GELU runs on the MLP's 4C-wide activations
    for name, t, base in compare(nn.GELU(approximate="tanh"), {
            "gelu_naive tanh (formula)": lambda t: gelu_naive(t, "tanh"),
            "llmlib GELU (fused)": GELU()}, xg, rounds, min_time):
        rows.append(("GELU tanh", name, t, base))

    try:
        from transformers import GPT2Config
        from transformers.models.gpt2.modeling_gpt2 import GPT2Block
    except ImportError:
        print("transformers is not installed: skipping the block comparison")
    else:
        config = GPT2Config(n_embd=C, n_head=H, n_positions=T, resid_pdrop=0.0, attn_pdrop=0.0,
                            embd_pdrop=0.0)
        config._attn_implementation = "sdpa"
        hf = GPT2Block(config).to(device).eval()
        ours = TransformerBlock(C, H).to(device).eval()
        ours.load_state_dict({k: v.T if v.ndim == 2 else v for k, v in hf.state_dict().items()})

        def hf_fn(t: torch.Tensor) -> torch.Tensor:
            out = hf(t)
            return out[0] if isinstance(out, tuple) else out  # a tuple in older transformers

        with torch.no_grad():
            diff = (ours(x) - hf_fn(x)).abs().max().item()
        if diff > 1e-4:
            raise SystemExit("llmlib TransformerBlock and GPT2Block disagree "
                             f"(max abs diff {diff:.2e}); not timing")
        for name, t, base in compare(hf_fn, {"llmlib TransformerBlock": ours}, x, rounds, min_time):
            rows.append(("block", name, t, base))

    print(f"forward + backward, (B, T, C) = ({B}, {T}, {C}), {H} heads, fp32 on {device.type}; "
          f"fastest of {rounds} alternating rounds (medians in brackets)")
    print(f"{'layer':10s} {'implementation':28s} {'ms':>19s} {'baseline ms':>19s} "
          f"{'ratio':>15s}")
    for layer, name, t, base in rows:
        print(f"{layer:10s} {name:28s} {t.fastest * 1e3:9.3f} ({t.median * 1e3:7.3f}) "
              f"{base.fastest * 1e3:9.3f} ({base.median * 1e3:7.3f}) "
              f"{t.fastest / base.fastest:6.2f}x ({t.median / base.median:5.2f}x)")
    print("baselines: nn.LayerNorm, nn.GELU(approximate='tanh'), transformers GPT2Block (sdpa); "
          "ratio > 1 = slower")


if __name__ == "__main__":
    main()
