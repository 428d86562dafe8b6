"""Benchmark for chapter 8: finetuning step time and peak memory, full vs frozen layers vs LoRA.

    .venv/bin/python benchmarks/bench_finetune.py [--quick] [--cases small gpt2] [--batch B]
                                                  [--seq T] [--rounds 5] [--steps 1]
                                                  [--threads N] [--device cpu|cuda|mps]
                                                  [--no-memory]
    LLMLIB_DEVICE=cuda .venv/bin/python benchmarks/bench_finetune.py --cases small,gpt2

Three ways to finetune the same GPT (same weights, torch.manual_seed(0)), on the same random
tokens:
  - full:   every parameter trains
  - frozen: llmlib.finetune.freeze(model, n_layer // 2): the embeddings (and with them the tied
            LM head) and the first half of the blocks frozen; the backward pass stops there
  - LoRA:   llmlib.lora.add_lora(model, rank=8) (alpha 16) on attn.c_attn, attn.c_proj, mlp.c_fc
            and mlp.c_proj; every other parameter frozen
One step = `model(idx, targets)` (forward and mean cross-entropy), backward, AdamW step
(llmlib.train.make_optimizer(model, TrainConfig(lr=1e-4)): only the parameters with
requires_grad, fused on CUDA and the CPU), zero_grad(set_to_none=True); eager fp32 (no autocast,
torch's default matmul precision, TF32 off) on llmlib.device.get_device() or --device.
Cases: small = the "small" preset's shape (6 layers, 6 heads, 384 wide, context 256) with the
character vocabulary's 85 ids, batch 8 x 256 tokens; gpt2 = GPTConfig()'s defaults, GPT-2 124M
(vocabulary 50257), batch 4 x 256; tiny (--quick) = the "smoke" preset with 85 ids, batch 4 x 64.
Dropout is 0 in every case (the small preset's 0.2 would add random masks to one method's time as
to another's; 0 keeps the first losses equal, which is checked).
Time: the three methods in --rounds alternating rounds of --steps steps after one warm-up step
each (common.time_alternating); ms per step of the fastest round (the least disturbed by other
processes), the median beside it, and the speed-up full / method of both.
Memory: common.PeakMemory around the first 2 steps of a freshly made model and optimizer, in a
fresh process per method (this script run again with --memory-child): the growth over what was
held before the first step (the weights), i.e. gradients, AdamW's state (made lazily by the first
optimizer.step, so inside the measurement), activations and temporaries. Beside it,
llmlib.gpt.measured_training_memory(model, optimizer) after the first optimizer step (before
zero_grad): the bytes of the weights, of the gradients and of AdamW's two moments.
Not a test: timings on a shared machine are noisy; read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any

import torch

from llmlib.device import get_device
from llmlib.finetune import count_trainable, freeze
from llmlib.gpt import GPT, GPTConfig, count_parameters, measured_training_memory
from llmlib.lora import add_lora
from llmlib.train import TrainConfig, make_optimizer

from common import PeakMemory, Timing, machine, run_again, time_alternating

# name -> (the shape, default batch, default sequence length)
CASES: dict[str, tuple[GPTConfig, int, int]] = {
    "tiny": (GPTConfig.preset("smoke", vocab_size=85), 4, 64),  # 2 x 2 x 64: --quick
    # nanoGPT's baby GPT on the characters of the corpus
    "small": (GPTConfig.preset("small", vocab_size=85, dropout=0.0), 8, 256),
    "gpt2": (GPTConfig(), 4, 256),  # GPT-2 124M
}
METHODS = ("full", "frozen", "LoRA")
LORA_RANK = 8
LR = 1e-4
MEMORY_STEPS = 2  # the first step makes AdamW's state, the second shows the steady state
MIB = 2**20


def build(cfg: GPTConfig, method: str, device: torch.device, seed: int = 0) -> GPT:
    """A fresh GPT with the weights of `seed`, prepared for `method`, in train mode."""
    torch.manual_seed(seed)
    model = GPT(cfg)
    if method == "frozen":
        freeze(model, cfg.n_layer // 2)
    elif method == "LoRA":
        add_lora(model, rank=LORA_RANK)  # A drawn after the base weights: those stay the same
    return model.to(device).train()


def batch_of(cfg: GPTConfig, batch: int, seq: int,
             device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (idx, targets) of shape (batch, seq), targets = idx shifted by one (fixed seed)."""
    rows = torch.randint(cfg.vocab_size, (batch, seq + 1),
                         generator=torch.Generator().manual_seed(1))
    return rows[:, :-1].to(device), rows[:, 1:].to(device)


class TrainStep:
    """One call = one finetuning step; returns the loss (a detached tensor: no host sync).
    `parts` is measured_training_memory right after the first optimizer step, while the gradients
    and AdamW's freshly made state are all there."""

    def __init__(self, model: GPT, idx: torch.Tensor, targets: torch.Tensor) -> None:
        self.model, self.idx, self.targets = model, idx, targets
        self.optimizer = make_optimizer(model, TrainConfig(lr=LR))
        self.parts: dict[str, int] | None = None

    def __call__(self) -> torch.Tensor:
        _, loss = self.model(self.idx, self.targets)
        loss.backward()
        self.optimizer.step()
        if self.parts is None:
            self.parts = measured_training_memory(self.model, self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


def label(method: str, cfg: GPTConfig) -> str:
    if method == "frozen":
        return f"frozen (emb + {cfg.n_layer // 2}/{cfg.n_layer} blocks)"
    return f"LoRA r{LORA_RANK}" if method == "LoRA" else method


def shape(case: str, batch: int | None, seq: int | None) -> tuple[GPTConfig, int, int]:
    cfg, default_batch, default_seq = CASES[case]
    batch, seq = batch or default_batch, seq or default_seq
    if seq > cfg.context_length:
        raise SystemExit(f"{case}: --seq {seq} exceeds the model's context of "
                         f"{cfg.context_length}")
    return cfg, batch, seq


def time_case(case: str, batch: int, seq: int, device: torch.device, rounds: int,
              steps: int) -> tuple[dict[str, Timing], dict[str, TrainStep]]:
    cfg, batch, seq = shape(case, batch, seq)
    idx, targets = batch_of(cfg, batch, seq, device)
    runs = {m: TrainStep(build(cfg, m, device), idx, targets) for m in METHODS}
    timings = time_alternating(runs, device, rounds, number=steps)  # the warm-up: step 1 of each
    first = {m: t.result.item() for m, t in timings.items()}  # same weights, same data
    assert all(abs(v - first["full"]) < 1e-4 for v in first.values()), \
        f"{case}: the first losses differ: {first}"
    return timings, runs


def memory_child(case: str, method: str, batch: int, seq: int) -> dict[str, Any]:
    """Run in a fresh process: what the first MEMORY_STEPS steps of a fresh model and optimizer
    need beyond the weights."""
    cfg, batch, seq = shape(case, batch, seq)
    device = get_device()
    model = build(cfg, method, device)
    idx, targets = batch_of(cfg, batch, seq, device)
    step = TrainStep(model, idx, targets)  # AdamW's state does not exist yet
    with PeakMemory(device) as mem:
        for _ in range(MEMORY_STEPS):
            step()
    return {"before": mem.before, "peak": mem.peak, "extra": mem.extra, "how": mem.how}


def memory_case(case: str, method: str, batch: int, seq: int,
                device: torch.device) -> dict[str, Any]:
    """memory_child in a new process of this script (same interpreter, device and threads)."""
    return run_again(__file__, ["--memory-child", case, method, "--batch", str(batch),
                                "--seq", str(seq)], device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="the tiny case, 2 rounds (a smoke run)")
    parser.add_argument("--cases", nargs="+", default=None,
                        help=f"of {', '.join(CASES)}, by spaces or commas (default: small gpt2)")
    parser.add_argument("--batch", type=int, default=None,
                        help="sequences per step (default: 8 for small, 4 for gpt2)")
    parser.add_argument("--seq", type=int, default=None, help="tokens per sequence (default 256)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternating rounds (default 5)")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per method per round")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda[:N] or mps (default: llmlib.device.get_device())")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the peak-memory subprocesses")
    parser.add_argument("--memory-child", nargs=2, metavar=("CASE", "METHOD"),
                        help=argparse.SUPPRESS)  # how memory_case runs this script again
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device:
        os.environ["LLMLIB_DEVICE"] = args.device  # get_device checks it (and the child sees it)
    if args.memory_child:
        print(json.dumps(memory_child(*args.memory_child, args.batch, args.seq)))
        return 0
    cases = [c for arg in args.cases or (["tiny"] if args.quick else ["small", "gpt2"])
             for c in arg.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}: choose from {', '.join(CASES)}")
    if (args.rounds is not None and args.rounds < 1) or args.steps < 1:
        parser.error("--rounds and --steps must be >= 1")
    rounds = args.rounds or (2 if args.quick else 5)
    device = get_device()

    print(f"machine: {machine(device)}")
    print(f"eager fp32 on {device.type}. One step = model(idx, targets) + backward + AdamW "
          f"(lr {LR:g}, trainable parameters only) + zero_grad; ms per step of the fastest of "
          f"{rounds} alternating rounds x {args.steps} step(s) per method (after a warm-up step), "
          "median beside it")
    for case in cases:
        cfg, batch, seq = shape(case, args.batch, args.seq)
        print(f"  {case}: {count_parameters(cfg) / 1e6:.2f}M parameters, {cfg.n_layer} layers, "
              f"{cfg.n_head} heads, {cfg.n_embd} wide, vocab {cfg.vocab_size}; batch {batch} x "
              f"{seq} tokens")
    print(flush=True)

    rows = []
    how = ""
    for case in cases:
        cfg, batch, seq = shape(case, args.batch, args.seq)
        timings, runs = time_case(case, batch, seq, device, rounds, args.steps)
        memory = {}
        if not args.no_memory:
            memory = {m: memory_case(case, m, batch, seq, device) for m in METHODS}
            how = memory["full"]["how"]
        total = count_parameters(runs["full"].model)
        full_t, full_mem = timings["full"], memory.get("full", {}).get("extra", math.nan)
        for m in METHODS:
            t, parts = timings[m], runs[m].parts or {}
            trainable = count_trainable(runs[m].model)
            extra = memory.get(m, {}).get("extra", math.nan)
            ratio = extra / full_mem if full_mem > 0 else math.nan
            rows.append([
                case, label(m, cfg), f"{trainable:,}", f"{trainable / total:.2%}",
                f"{t.fastest * 1e3:,.1f}", f"{t.median * 1e3:,.1f}",
                f"{full_t.fastest / t.fastest:.2f}x [{full_t.median / t.median:.2f}x]",
                *((f"{extra / MIB:,.1f}", f"{ratio:.2f}x") if memory else ("-", "-")),
                *(f"{parts.get(k, 0) / MIB:,.1f}" for k in ("weights", "gradients",
                                                              "adamw state"))])
        del runs
        print(f"{case}: done", flush=True)

    header = ["case", "method", "trainable", "of base", "ms/step", "median", "speed-up [median]",
              "peak extra MiB", "memory / full", "weights MiB", "gradients MiB", "AdamW MiB"]
    print("\n| " + " | ".join(header) + " |")
    print("| " + " | ".join("---" if i < 2 else "---:" for i in range(len(header))) + " |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\nspeed-up = ms/step of full / ms/step of the method, from the fastest rounds "
          "[medians in brackets]; > 1: faster than full finetuning. The first (warm-up) losses of "
          "the three methods agree (checked).")
    if args.no_memory:
        print("peak memory skipped (--no-memory).")
    else:
        print(f"peak extra = growth of {how} during the first {MEMORY_STEPS} steps of a fresh "
              "model and optimizer (AdamW's state made inside), over the memory held before them "
              "(the weights), in a fresh process per method; memory / full = its ratio to full "
              "finetuning's.")
    print("weights, gradients, AdamW = llmlib.gpt.measured_training_memory(model, optimizer) "
          "after the first optimizer step: every weight (frozen ones too), the .grad tensors and "
          "AdamW's exp_avg and exp_avg_sq; peak extra - gradients - AdamW ~ activations and "
          "temporaries.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
