"""Benchmark for chapter 5: training-step throughput and memory, llmlib's GPT against transformers'.

    .venv/bin/python benchmarks/bench_gpt.py [--quick] [--cases tiny small gpt2-vocab gpt2]
                                             [--rounds 10] [--steps 1] [--threads N] [--no-memory]
    LLMLIB_DEVICE=cuda .venv/bin/python benchmarks/bench_gpt.py --cases small gpt2

One step = forward, cross-entropy loss from the logits (computed the same way for both), backward,
AdamW step, eager fp32 on llmlib.device.get_device(). Both models have the same configuration and
the same weights (llmlib's is loaded from the Hugging Face model with llmlib.gpt2.load_gpt2), and
their first losses must agree. The two are timed in alternating rounds in this process; the table
reports tokens/s of each one's fastest step (the least disturbed by other processes: on a shared
machine noise only ever adds time), the ratio llmlib / transformers, and the ratio of the medians.
Activations: bytes of the tensors autograd saves for backward (exact, device-independent).
Peak memory (common.PeakMemory) is measured in a fresh subprocess per model, this script run again
with --memory-child: the growth during 2 training steps over the memory held before them (the
weights), i.e. gradients, AdamW state and activations.
Not a test: timings on a shared machine are noisy; read the ratio, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from llmlib.device import get_device
from llmlib.gpt import GPT, GPTConfig, count_parameters
from llmlib.gpt2 import load_gpt2

from common import PeakMemory, machine, run_again, time_alternating

# name -> (GPTConfig fields, batch, sequence length)
CASES: dict[str, tuple[dict[str, Any], int, int]] = {
    "tiny": (dict(vocab_size=128, context_length=128, n_layer=4, n_head=4, n_embd=128), 8, 128),
    # nanoGPT's baby GPT; 128 ids hold any character vocabulary of the corpus (it has 84 characters)
    "small": (GPTConfig.preset("small", vocab_size=128, dropout=0.0).to_dict(), 8, 256),
    "gpt2-vocab": (dict(vocab_size=50257, context_length=256, n_layer=4, n_head=4, n_embd=256),
                   4, 256),
    "gpt2": (GPTConfig.preset("gpt2").to_dict(), 1, 256),
}
MEMORY_STEPS = 2  # the first step allocates AdamW's state, the second shows the steady state


def hf_model(cfg: GPTConfig) -> nn.Module:
    """transformers' GPT2LMHeadModel with llmlib's configuration `cfg` (freshly initialised)."""
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    transformers.logging.set_verbosity_error()
    return GPT2LMHeadModel(GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.context_length, n_embd=cfg.n_embd,
        n_layer=cfg.n_layer, n_head=cfg.n_head, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout, bos_token_id=0, eos_token_id=0, use_cache=False))


def build(case: str, device: torch.device, seed: int = 0) -> tuple[GPTConfig, nn.Module, nn.Module]:
    """The HF model and llmlib's GPT with identical weights, both in train mode."""
    cfg = GPTConfig.from_dict(CASES[case][0])
    torch.manual_seed(seed)
    hf = hf_model(cfg).to(device).train()
    ours = load_gpt2(hf.state_dict(), cfg).to(device).train()
    return cfg, ours, hf


def logits_of(model: nn.Module, idx: torch.Tensor, hf_style: bool) -> torch.Tensor:
    return model(idx, use_cache=False).logits if hf_style else model(idx)[0]


def make_step(model: nn.Module, idx: torch.Tensor, hf_style: bool) -> Callable[[], float]:
    """One training step on `idx` (the inputs are their own targets: only the cost matters)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> float:
        logits = logits_of(model, idx, hf_style)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), idx.reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def saved_activation_bytes(model: nn.Module, idx: torch.Tensor, hf_style: bool) -> int:
    """Bytes of the tensors autograd saves for backward in one forward + loss, parameters excluded
    (exact and device-independent; each storage counted once)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = logits_of(model, idx, hf_style)
        F.cross_entropy(logits.reshape(-1, logits.size(-1)), idx.reshape(-1))
    return sum(saved.values())


def time_case(case: str, device: torch.device, rounds: int, steps: int) -> dict[str, Any]:
    cfg, ours, hf = build(case, device)
    _, batch, seq = CASES[case]
    idx = torch.randint(cfg.vocab_size, (batch, seq), device=device)
    runs = {"llmlib": make_step(ours, idx, False), "transformers": make_step(hf, idx, True)}
    t = time_alternating(runs, device, rounds, number=steps)
    first = {name: timing.result for name, timing in t.items()}  # the warm-up steps' losses
    assert abs(first["llmlib"] - first["transformers"]) < 1e-4, f"same weights, same data: {first}"
    tokens = batch * seq
    return {"case": case, "params": count_parameters(cfg), "batch": batch, "seq": seq,
            "llmlib_act": saved_activation_bytes(ours, idx, False),
            "transformers_act": saved_activation_bytes(hf, idx, True),
            **{f"{name}_tok_s": tokens / timing.fastest for name, timing in t.items()},
            **{f"{name}_median_tok_s": tokens / timing.median for name, timing in t.items()}}


def memory_child(case: str, which: str) -> dict[str, Any]:
    """Run in a fresh process: the memory MEMORY_STEPS training steps of one model take beyond
    its weights."""
    fields, batch, seq = CASES[case]
    cfg = GPTConfig.from_dict(fields)
    device = get_device()
    torch.manual_seed(0)
    model = (GPT(cfg) if which == "llmlib" else hf_model(cfg)).to(device).train()
    idx = torch.randint(cfg.vocab_size, (batch, seq), device=device)
    step = make_step(model, idx, which == "transformers")
    with PeakMemory(device) as mem:
        for _ in range(MEMORY_STEPS):
            step()
    return {"before": mem.before, "peak": mem.peak, "extra": mem.extra, "how": mem.how}


def memory_case(case: str, which: str, device: torch.device) -> dict[str, Any]:
    """memory_child in a new process of this script (same interpreter, device and threads)."""
    return run_again(__file__, ["--memory-child", case, which], device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="the tiny case, 3 rounds (a smoke run)")
    parser.add_argument("--cases", nargs="+", default=None, choices=sorted(CASES),
                        help="default: tiny small gpt2-vocab")
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternating rounds (default 10)")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per model per round")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the peak-memory subprocesses")
    parser.add_argument("--memory-child", nargs=2, metavar=("CASE", "WHICH"),
                        help=argparse.SUPPRESS)  # how memory_case runs this script again
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        print(json.dumps(memory_child(*args.memory_child)))
        return 0
    cases = args.cases or (["tiny"] if args.quick else ["tiny", "small", "gpt2-vocab"])
    rounds = args.rounds or (3 if args.quick else 10)
    device = get_device()

    print(f"machine: {machine(device)}")
    print(f"eager fp32 on {device.type}. One step = forward + cross-entropy + backward + AdamW; "
          f"tokens/s of the fastest of {rounds} alternating rounds x {args.steps} steps per model "
          "(after a warm-up step); median = ratio of the medians\n")
    header = (f"{'case':11s} {'params':>8s} {'B x T':>10s} | {'llmlib tok/s':>12s} "
              f"{'HF tok/s':>10s} {'ratio':>6s} {'median':>6s} | {'activations llmlib':>18s} "
              f"{'HF':>9s} {'ratio':>6s}")
    if not args.no_memory:
        header += f" | {'peak mem llmlib':>15s} {'peak mem HF':>12s} {'ratio':>6s}"
    print(header)
    print("-" * len(header))
    how = ""
    for case in cases:
        r = time_case(case, device, rounds, args.steps)
        line = (f"{case:11s} {r['params'] / 1e6:7.2f}M {r['batch']:>3d} x {r['seq']:<4d} | "
                f"{r['llmlib_tok_s']:12,.0f} {r['transformers_tok_s']:10,.0f} "
                f"{r['llmlib_tok_s'] / r['transformers_tok_s']:5.2f}x "
                f"{r['llmlib_median_tok_s'] / r['transformers_median_tok_s']:5.2f}x | "
                f"{r['llmlib_act'] / 2**20:14,.0f} MiB {r['transformers_act'] / 2**20:5,.0f} MiB "
                f"{r['llmlib_act'] / r['transformers_act']:5.2f}x")
        if not args.no_memory:
            mem = {w: memory_case(case, w, device) for w in ("llmlib", "transformers")}
            extra = {w: m["extra"] / 2**20 for w, m in mem.items()}
            how = mem["llmlib"]["how"]
            ratio = (extra["llmlib"] / extra["transformers"] if extra["transformers"] > 0
                     else math.nan)
            line += (f" | {extra['llmlib']:11,.0f} MiB {extra['transformers']:8,.0f} MiB "
                     f"{ratio:5.2f}x")
        print(line, flush=True)
    print("\nactivations = bytes of the tensors autograd saves for backward in one step "
          "(parameters excluded), counted with torch.autograd.graph.saved_tensors_hooks.")
    if not args.no_memory:
        print(f"peak mem = growth of {how} during {MEMORY_STEPS} training steps over the memory "
              "held before the first step (the model's weights): gradients, AdamW state and "
              "activations; measured in a fresh process per model.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
