"""Benchmark for appendix A: the GPT in NumPy against llmlib's GPT in torch, on the CPU.

    .venv/bin/python benchmarks/bench_numpy_gpt.py [--quick] [--rounds 5] [--min-time 0.2]
        [--sizes tiny,cpu-recipe,small] [--batch 4] [--new-tokens 50]

For each model shape, with the same weights (float32) and the same ids, in alternating rounds:
  - forward: `NumpyGPT.forward` against `GPT.forward` under no_grad, (batch, context) ids;
  - forward + backward: `numpy_grad.loss_and_grads` against the loss and `.backward()`;
  - training step: `numpy_grad.train_step` (clipping and AdamW included) against chapter 6's
    step (`make_optimizer`, `clip_grad_norm_`, `optimizer.step()`);
  - generation: greedy, batch 1, --new-tokens after a 10-token prompt: `numpy_generate.generate` (no
    cache) against `llmlib.generate.generate` without its KV cache, and with it.
The script first checks that the two models give the same logits and the same greedy tokens.
Torch runs on the CPU whatever LLMLIB_DEVICE says: NumPy has no other device. Times are medians
(fastest in brackets). The ratio is NumPy's time over torch's in each round (the two timed moments
apart, under the same load): its median, and its lowest and highest over the rounds; NumPy is
called faster or slower only when every round agrees. The machine's load average is printed.
"""

from __future__ import annotations

import argparse
import os

import statistics

import numpy as np
import torch

from llmlib.generate import generate
from llmlib.gpt import GPT, GPTConfig, count_parameters
from llmlib.numpy_generate import generate as generate_numpy
from llmlib.numpy_gpt import NumpyGPT
from llmlib.numpy_grad import AdamW, loss_and_grads, train_step
from llmlib.train import TrainConfig, make_optimizer

from common import Timing, machine, time_alternating

VOCAB = 85  # the course's character vocabulary (chapter 6)
SIZES = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, context_length=64),
    "cpu-recipe": dict(n_layer=4, n_head=4, n_embd=128, context_length=64),  # chapter 6's
    "small": dict(n_layer=6, n_head=6, n_embd=384, context_length=256),      # the small preset
    "gpt2": dict(vocab_size=50257),                                           # 124M
}


def candidates(name: str, batch: int, new_tokens: int) -> dict[str, dict]:
    """{work: {"numpy": fn, "torch": fn, ...}} for one model shape, after checking equality."""
    config = GPTConfig(**{"vocab_size": VOCAB, **SIZES[name]})
    torch.manual_seed(0)
    model = GPT(config).eval()
    ours = NumpyGPT.from_gpt(model)
    ids = np.random.default_rng(0).integers(0, config.vocab_size, (batch, config.context_length))
    t_ids = torch.from_numpy(ids)
    with torch.no_grad():
        gap = np.abs(ours.forward(ids) - model(t_ids)[0].numpy()).max()
    prompt = ids[0, :10].tolist()
    n = min(new_tokens, config.context_length - 10)
    greedy = dict(temperature=0)
    if gap > 1e-4 or generate_numpy(ours, prompt, 5, **greedy) != generate(model, prompt, 5,
                                                                           **greedy):
        raise SystemExit(f"{name}: NumpyGPT and GPT disagree (logits differ by {gap:.1e}); "
                         "not timing")
    cfg = TrainConfig(lr=1e-4, max_steps=10**6, warmup_steps=0)
    np_opt, t_opt = AdamW.from_config(cfg), make_optimizer(model, cfg)

    def torch_backward() -> None:
        model.zero_grad(set_to_none=True)
        model(t_ids, t_ids)[1].backward()

    def torch_step() -> None:
        for group in t_opt.param_groups:
            group["lr"] = cfg.lr_at(0)
        model(t_ids, t_ids)[1].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        t_opt.step()
        t_opt.zero_grad(set_to_none=True)

    def no_grad(fn):
        def run():
            with torch.no_grad():
                return fn()
        return run

    return {
        "forward": {"numpy": lambda: ours.forward(ids), "torch": no_grad(lambda: model(t_ids))},
        "forward + backward": {"numpy": lambda: loss_and_grads(ours, ids, ids),
                               "torch": torch_backward},
        "training step": {"numpy": lambda: train_step(ours, np_opt, ids, ids, 0, cfg),
                          "torch": torch_step},
        f"generate {n} tokens": {
            "numpy": lambda: generate_numpy(ours, prompt, n, temperature=0),
            "torch": no_grad(lambda: generate(model, prompt, n, temperature=0, use_cache=False)),
            "torch + KV cache": no_grad(lambda: generate(model, prompt, n, temperature=0))},
    }, count_parameters(config)


def verdict(ours: Timing, base: Timing) -> tuple[float, float, float, str]:
    """NumPy's time over torch's, round by round: median, lowest, highest, and the word the spread
    allows ("faster", "slower" or "within the spread")."""
    ratios = sorted(a / b for a, b in zip(ours.times, base.times))
    low, mid, high = ratios[0], statistics.median(ratios), ratios[-1]
    word = "faster" if high < 1 else "slower" if low > 1 else "within the spread"
    return mid, low, high, word


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one tiny shape, short timings")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 5)")
    parser.add_argument("--min-time", type=float, default=None,
                        help="seconds per timed sample (default 0.2)")
    parser.add_argument("--sizes", default="tiny,cpu-recipe,small",
                        help=f"comma-separated shapes of {sorted(SIZES)}")
    parser.add_argument("--batch", type=int, default=4, help="sequences per forward pass")
    parser.add_argument("--new-tokens", type=int, default=50, help="tokens to generate")
    args = parser.parse_args(argv)
    sizes = ["tiny"] if args.quick else args.sizes.split(",")
    unknown = sorted(set(sizes) - set(SIZES))
    if unknown:
        parser.error(f"unknown sizes {unknown}; choose from {sorted(SIZES)}")
    rounds = args.rounds or (2 if args.quick else 5)
    min_time = args.min_time if args.min_time is not None else (0.0 if args.quick else 0.2)
    batch, new_tokens = (2, 5) if args.quick else (args.batch, args.new_tokens)
    device = torch.device("cpu")
    print(f"machine: {machine(device)}; load average {os.getloadavg()[0]:.1f}")
    print(f"NumPy {np.__version__}; float32; batch {batch} at full context; medians of {rounds} "
          "alternating rounds (fastest in brackets)")
    print(f"{'model':11s} {'params':>7s} {'work':20s} {'NumPy ms':>19s} {'torch ms':>19s} "
          f"{'NumPy/torch (rounds)':>23s} {'verdict':>17s} {'torch+cache ms':>15s}")
    for name in sizes:
        works, params = candidates(name, batch, new_tokens)
        for work, fns in works.items():
            t = time_alternating(fns, device, rounds, min_time=min_time)
            ours, base = t["numpy"], t["torch"]
            cache = (f"{t['torch + KV cache'].median * 1e3:15.1f}" if "torch + KV cache" in t
                     else "")
            mid, low, high, word = verdict(ours, base)
            print(f"{name:11s} {params / 1e6:6.2f}M {work:20s} "
                  f"{ours.median * 1e3:9.1f} ({ours.fastest * 1e3:7.1f}) "
                  f"{base.median * 1e3:9.1f} ({base.fastest * 1e3:7.1f}) "
                  f"{mid:8.2f}x ({low:.2f}-{high:.2f}x) {word:>17s} {cache}")
    print("baseline: llmlib's GPT in torch on the same CPU, same weights (ratio > 1: NumPy is "
          f"slower); load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
