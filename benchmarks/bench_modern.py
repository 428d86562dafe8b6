"""Benchmark for chapter 9: a training step of `llmlib.modern.ModernGPT` against `transformers`'
`LlamaForCausalLM` with the same weights and the same batch.

    .venv/bin/python benchmarks/bench_modern.py [--quick] [--rounds 7]
    LLMLIB_DEVICE=cuda .venv/bin/python benchmarks/bench_modern.py --shapes chapter,smollm2

A step is forward, loss and backward (no optimizer: both would run the same AdamW), with
PyTorch's SDPA attention in both; gradients are dropped between steps. The folder is written by
`transformers` (`save_pretrained`) and read by `llmlib.modern.load_hf_llama`, so the weights are
the same; the losses are compared first. Times are medians of alternating rounds (fastest in
brackets); the ratio is Llama's time over ours round by round, called faster or slower only when
every round agrees. The machine line and load average are printed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from common import machine, time_alternating

from llmlib.device import get_device
from llmlib.modern import load_hf_llama, swiglu_hidden

# name: (layers, query heads, kv heads, width, context, batch)
SHAPES = {"tiny": (1, 4, 2, 64, 32, 2), "chapter": (4, 8, 2, 256, 256, 8),
          "smollm2": (30, 9, 3, 576, 512, 4)}


def step(model, batch: torch.Tensor, ours: bool) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    loss = model(batch[:, :-1], batch[:, 1:])[1] if ours else model(batch, labels=batch).loss
    loss.backward()
    return loss.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="seconds: the tiny shape, 2 rounds")
    parser.add_argument("--shapes", default="chapter", help=f"comma-separated: {list(SHAPES)}")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    names, rounds = (["tiny"], 2) if args.quick else (args.shapes.split(","), args.rounds)
    device = get_device()
    print(machine(device))
    print(f"load average {os.getloadavg()[0]:.2f}")
    for name in names:
        L, H, G, C, T, B = SHAPES[name]
        config = LlamaConfig(vocab_size=512, hidden_size=C, intermediate_size=swiglu_hidden(C),
                             num_hidden_layers=L, num_attention_heads=H, num_key_value_heads=G,
                             max_position_embeddings=T, rms_norm_eps=1e-5,
                             tie_word_embeddings=True)
        folder = Path(tempfile.mkdtemp()) / name
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(folder)
        theirs = LlamaForCausalLM.from_pretrained(folder, attn_implementation="sdpa")
        theirs = theirs.to(device).train()
        ours = load_hf_llama(folder).to(device).train()
        batch = torch.randint(0, 512, (B, T), device=device)
        gap = abs(step(ours, batch, True).item() - step(theirs, batch, False).item())
        timings = time_alternating({"ModernGPT (llmlib)": lambda: step(ours, batch, True),
                                    "LlamaForCausalLM": lambda: step(theirs, batch, False)},
                                   device, rounds=rounds)
        tokens = B * (T - 1)
        print(f"\n{name}: {L} layers, H = {H}, G = {G}, C = {C}, context {T}, batch {B}; "
              f"losses agree to {gap:.1e}")
        for label, t in timings.items():
            print(f"  {label:20s} {t.median * 1e3:9.1f} ms  (fastest {t.fastest * 1e3:.1f}) "
                  f"{tokens / t.median:10,.0f} tokens/s")
        a, b = timings["ModernGPT (llmlib)"].times, timings["LlamaForCausalLM"].times
        ratios = sorted(y / x for x, y in zip(a, b))
        verdict = ("faster" if ratios[0] > 1 else "slower" if ratios[-1] < 1
                   else "undecided (the rounds disagree)")
        print(f"  ModernGPT's speed / Llama's: {ratios[len(ratios) // 2]:.2f}x (rounds "
              f"{ratios[0]:.2f} to {ratios[-1]:.2f}): {verdict}; goal >= 1.0x")


if __name__ == "__main__":
    main()
