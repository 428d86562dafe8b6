"""Benchmark for chapter 6: llmlib's trainer on nanoGPT's recipes, quality at equal time.

    .venv/bin/python benchmarks/bench_train.py [--quick] [--recipe cpu|gpu] [--gpt2-step]

`--recipe cpu` (default) is nanoGPT's small CPU recipe: 4 layers, 4 heads, width 128, context 64,
batch 12, lr 1e-3, 2,000 iterations, no dropout, characters, the corpus split by whole works
(`split_by_works(list_works(), 0.1, seed=0)`), evaluated every 250 steps on 20 batches of each
split. `--recipe gpu` is nanoGPT's shakespeare-char recipe (6 × 6 × 384, context 256, batch 64,
dropout 0.2, 5,000 iterations, compiled, bf16). The script reports the wall time from the start
(corpus loading included) to the first evaluation at or below nanoGPT's final validation loss on
this split, and the loss at the end. nanoGPT's own numbers cannot be measured in this process:
nanoGPT is not part of the repository, and the course's machines cannot download it. They were
measured by the course on the machines named in REFERENCES, and are printed beside ours.

`--gpt2-step` (CUDA only) times training steps at GPT-2 124M's shape (context 1024, bf16,
compiled, fused AdamW) on random tokens and reports tokens/s and MFU.
"""

from __future__ import annotations

import argparse

import torch

from llmlib.device import get_device
from llmlib.gpt import GPTConfig
from llmlib.pretrain import pretrain
from llmlib.train import Corpus, TrainConfig, load_corpus

from common import Stopwatch, machine

RECIPES = {
    "cpu": (dict(n_layer=4, n_head=4, n_embd=128, context_length=64, dropout=0.0),
            dict(batch_size=12, max_steps=2000, lr=1e-3, min_lr=1e-4, warmup_steps=100,
                 eval_interval=250, eval_batches=20, log_interval=50, checkpoint_interval=10**9)),
    "gpu": (dict(n_layer=6, n_head=6, n_embd=384, context_length=256, dropout=0.2),
            dict(batch_size=64, max_steps=5000, lr=1e-3, min_lr=1e-4, warmup_steps=100,
                 eval_interval=250, eval_batches=200, log_interval=50, checkpoint_interval=10**9,
                 compile=True)),
}
# nanoGPT's train.py on the same recipe and split: (final val loss, seconds, where)
REFERENCES = {"cpu": (1.897, 104.0, "2-core x86_64 CPU (this course's machine)"),
              "gpu": (1.270, 192.0, "one NVIDIA H100")}


def recipe(name: str, quick: bool) -> None:
    model_fields, train_fields = RECIPES[name]
    if quick:
        train_fields = {**train_fields, "max_steps": 60, "eval_interval": 30, "eval_batches": 2}
    target, reference_s, where = REFERENCES[name]
    clock = Stopwatch()
    cfg = TrainConfig(split="random", **train_fields)  # the seed-0 split nanoGPT was measured on
    corpus = load_corpus(cfg)
    loaded = clock.seconds()
    model_config = GPTConfig.preset("small", tokenizer=corpus.tokenizer, **model_fields)
    result = pretrain(model_config, cfg, corpus=corpus, progress=False)
    total = clock.seconds()
    reached = [loaded + s for s, v in zip(result.evals["seconds"], result.evals["val"])
               if v <= target]
    print(f"recipe {name}: {model_fields} | {train_fields}")
    print(f"{'':24s} {'final val loss':>14s} {'time to val <= ' + str(target):>20s} "
          f"{'total':>8s}")
    print(f"{'nanoGPT (' + where[:12] + ')':24s} {target:14.3f} {reference_s:19.0f} s "
          f"{reference_s:7.0f} s")
    to_target = f"{reached[0]:19.0f} s" if reached else f"{'not reached':>21s}"
    print(f"{'llmlib (this run)':24s} {result.evals['val'][-1]:14.3f} {to_target} {total:7.0f} s")
    if reached:
        print(f"time ratio nanoGPT / llmlib to reach {target}: {reference_s / reached[0]:.2f}x "
              f"(nanoGPT measured on {where})")


def gpt2_step(batch: int, accum: int, steps: int) -> None:
    device = get_device()
    if device.type != "cuda":
        print("--gpt2-step needs a CUDA GPU; skipped")
        return

    class RandomTokens:  # the loop only needs a vocabulary size and an end-of-text id
        vocab_size = 50257
        special_tokens = {"<|endoftext|>": 50256}

    ids = torch.randint(50257, (20_000_000,))
    corpus = Corpus(RandomTokens(), ids[:-1_000_000], ids[-1_000_000:], 4_000_000)
    cfg = TrainConfig(batch_size=batch, grad_accum=accum, max_steps=steps, warmup_steps=1,
                      eval_interval=10**9, eval_batches=1, log_interval=steps // 2,
                      checkpoint_interval=10**9, compile=True, dtype="bfloat16")
    result = pretrain(GPTConfig.preset("gpt2"), cfg, corpus=corpus, progress=True)
    print(f"GPT-2 124M, batch {batch} x {accum} x 1024 tokens: see the last log line's tok_s "
          f"and mfu; val {result.evals['val'][-1]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 steps: a smoke run")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="cpu")
    parser.add_argument("--gpt2-step", action="store_true", help="GPT-2 124M steps (CUDA)")
    parser.add_argument("--batch", type=int, default=16, help="--gpt2-step micro-batch")
    parser.add_argument("--accum", type=int, default=4, help="--gpt2-step accumulation")
    parser.add_argument("--steps", type=int, default=50, help="--gpt2-step optimizer steps")
    args = parser.parse_args()
    print("machine:", machine(get_device()))
    if args.gpt2_step:
        gpt2_step(args.batch, args.accum, args.steps)
    else:
        recipe(args.recipe, args.quick)


if __name__ == "__main__":
    main()
