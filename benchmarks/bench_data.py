"""Benchmark for chapter 2: how fast each of the chapter's loaders delivers training tokens.

    .venv/bin/python benchmarks/bench_data.py [--quick] [--tokens 20000000] [--batch 32]
                                              [--context 256] [--batches 200] [--rounds 5]
                                              [--workers 2]

Synthetic uint16 tokens, held in RAM and in a memory-mapped .bin file (written once, so the file is
in the page cache: this measures indexing and collation, not the disk). Each method draws the same
number of (B, T) batches per sample; the methods are timed in alternating rounds in this process,
and the table gives tokens per second of the fastest sample (median in brackets) and the ratio to
the baseline, a shuffled DataLoader over a TokenDataset in RAM. Loading is CPU work: the batches
stay on the CPU whatever LLMLIB_DEVICE says.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from llmlib.data import (RandomWindowDataset, TokenDataset, get_batch, make_dataloader, read_tokens,
                         write_tokens)

from common import machine, time_alternating

Batch = tuple[torch.Tensor, torch.Tensor]


def loader_source(dataset: Dataset, batch: int, workers: int = 0) -> Callable[[], Batch]:
    """A function returning the next batch of a DataLoader, starting a new epoch when one ends."""
    loader = make_dataloader(dataset, batch, num_workers=workers, device="cpu", seed=0)
    state = {"it": iter(loader)}

    def draw() -> Batch:
        try:
            return next(state["it"])
        except StopIteration:
            state["it"] = iter(loader)
            return next(state["it"])
    return draw


def draws(draw: Callable[[], Batch], n_batches: int) -> Callable[[], None]:
    """One timed sample: `n_batches` batches from `draw`."""
    def run() -> None:
        for _ in range(n_batches):
            draw()
    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1M tokens, 10 batches per sample, 3 rounds (a smoke run)")
    parser.add_argument("--tokens", type=int, default=None, help="default 20,000,000")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--batches", type=int, default=None,
                        help="batches per method and sample (default 200)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 5)")
    parser.add_argument("--workers", type=int, default=2,
                        help="num_workers of the worker variant (0 to skip it)")
    args = parser.parse_args(argv)
    n_tokens = args.tokens or (1_000_000 if args.quick else 20_000_000)
    n_batches = args.batches or (10 if args.quick else 200)
    rounds = args.rounds or (3 if args.quick else 5)
    B, T = args.batch, args.context
    cpu = torch.device("cpu")
    print(f"machine: {machine(cpu)}")

    ids = np.random.default_rng(0).integers(0, 50_257, n_tokens).astype(np.uint16)
    with tempfile.TemporaryDirectory() as tmp:
        mm = read_tokens(write_tokens(Path(tmp) / "tokens.bin", ids, 50_257))
        g = torch.Generator().manual_seed(0)
        methods = {
            "DataLoader(TokenDataset), RAM": loader_source(TokenDataset(ids, T), B),
            "DataLoader(TokenDataset), memmap": loader_source(TokenDataset(mm, T), B),
            "DataLoader(RandomWindowDataset), memmap":
                loader_source(RandomWindowDataset(mm, T, 10**6, seed=0), B),
            "get_batch, RAM": lambda: get_batch(ids, B, T, generator=g),
            "get_batch, memmap": lambda: get_batch(mm, B, T, generator=g),
        }
        if args.workers:
            methods[f"DataLoader(TokenDataset), memmap, {args.workers} workers"] = \
                loader_source(TokenDataset(mm, T), B, args.workers)
        # the warm-up sample starts the workers and touches the pages
        timings = time_alternating({name: draws(draw, n_batches) for name, draw in methods.items()},
                                   cpu, rounds)

    tokens = n_batches * B * T
    print(f"loader throughput, B = {B}, T = {T}, {n_tokens:,} uint16 tokens; fastest of {rounds} "
          f"alternating rounds of {n_batches} batches each (median in brackets)\n")
    base = next(iter(timings.values()))
    print(f"| {'method':48s} | {'M tokens/s':>17s} | {'vs baseline':>18s} |")
    print(f"|{'-' * 50}|{'-' * 19}|{'-' * 20}|")
    for name, t in timings.items():
        print(f"| {name:48s} | {tokens / t.fastest / 1e6:7.2f} ({tokens / t.median / 1e6:7.2f}) | "
              f"{base.fastest / t.fastest:7.2f}x ({base.median / t.median:6.2f}x) |")


if __name__ == "__main__":
    main()
