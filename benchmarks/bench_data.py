"""How fast can each of chapter 2's loaders deliver training tokens? (not a test)

    PYTHONPATH=$PWD python benchmarks/bench_data.py [--tokens 20000000] [--batch 32] [--context 256]

Synthetic uint16 tokens, held in RAM and in a memory-mapped .bin file (written once, so the file is in
the page cache: this measures indexing and collation, not the disk). Each method draws the same number
of (B, T) batches; the rounds are interleaved and the median round is reported, as tokens per second
and as a ratio to the baseline (a shuffled DataLoader over a TokenDataset in RAM) measured in the same process.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from llmlib.data import RandomWindowDataset, TokenDataset, get_batch, make_dataloader, read_tokens, write_tokens


def machine() -> str:
    cores = len(__import__("os").sched_getaffinity(0)) if hasattr(__import__("os"), "sched_getaffinity") else "?"
    return f"{cores}-core {platform.machine()} CPU, torch {torch.__version__}, {torch.get_num_threads()} threads"


def loader_source(dataset, batch: int, workers: int = 0):
    loader = make_dataloader(dataset, batch, num_workers=workers, device="cpu", seed=0)
    state = {"it": iter(loader)}

    def draw():
        try:
            return next(state["it"])
        except StopIteration:
            state["it"] = iter(loader)
            return next(state["it"])
    return draw


def rate(draw, n_batches: int) -> float:
    start = time.perf_counter()
    tokens = 0
    for _ in range(n_batches):
        x, _ = draw()
        tokens += x.numel()
    return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=20_000_000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--batches", type=int, default=200, help="batches per method and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="num_workers of the worker variant (0 to skip it)")
    args = parser.parse_args()
    B, T = args.batch, args.context

    ids = np.random.default_rng(0).integers(0, 50_257, args.tokens).astype(np.uint16)
    with tempfile.TemporaryDirectory() as tmp:
        mm = read_tokens(write_tokens(Path(tmp) / "tokens.bin", ids, 50_257))
        g = torch.Generator().manual_seed(0)
        methods = {
            "DataLoader(TokenDataset), RAM": loader_source(TokenDataset(ids, T), B),
            "DataLoader(TokenDataset), memmap": loader_source(TokenDataset(mm, T), B),
            "DataLoader(RandomWindowDataset), memmap": loader_source(RandomWindowDataset(mm, T, 10**6, seed=0), B),
            "get_batch, RAM": lambda: get_batch(ids, B, T, generator=g),
            "get_batch, memmap": lambda: get_batch(mm, B, T, generator=g),
        }
        if args.workers:
            methods[f"DataLoader(TokenDataset), memmap, {args.workers} workers"] = loader_source(TokenDataset(mm, T), B, args.workers)
        for draw in methods.values():  # warm up: start workers, touch the pages
            for _ in range(5):
                draw()
        results: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(args.rounds):
            for name, draw in methods.items():
                results[name].append(rate(draw, args.batches))

    print(f"Loader throughput, B = {B}, T = {T}, {args.tokens:,} uint16 tokens; {machine()}")
    print(f"median of {args.rounds} interleaved rounds of {args.batches} batches each\n")
    base = statistics.median(next(iter(results.values())))
    print(f"| {'method':48s} | {'M tokens/s':>10s} | {'vs baseline':>11s} |")
    print(f"|{'-' * 50}|{'-' * 12}|{'-' * 13}|")
    for name, rates in results.items():
        med = statistics.median(rates)
        print(f"| {name:48s} | {med / 1e6:10.2f} | {med / base:10.2f}x |")


if __name__ == "__main__":
    main()
