"""Benchmark for chapter 1: BPE training and encoding speed (not a test).

    PYTHONPATH=$PWD python benchmarks/bench_tokenizers.py [--reference-merges 8]

Every ratio compares two measurements taken in this process, on this machine:
1. training on the first 100,000 characters of the corpus to vocabulary 512: the reference trainer
   (recounts every pair after every merge) against the fast trainer (distinct chunks, pair index, heap),
   with Hugging Face `tokenizers` (Rust, multi-threaded) as an outside yardstick;
2. training on the whole corpus (~5 MB) to vocabulary 4096: fast and Hugging Face measured in full;
   the reference only for its first few merges (it would take hours), extrapolated linearly;
3. encoding throughput (MB/s) on the four held-out works: the merge loop without cache, the cached
   encoder (cold and warm), tiktoken built from the same merges, and Hugging Face `tokenizers`.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's llmlib, installed or not
import torch  # noqa: E402  (only for the version in the machine line)

from llmlib.corpus import load_shakespeare, load_works  # noqa: E402
from llmlib.tokenizers import (ENDOFTEXT, BPETokenizer, pretokenize, train_merges_fast,  # noqa: E402
                               train_merges_reference)


def seconds(fn, repeat: int = 1):
    """Best wall-clock time of `repeat` calls (the machine is shared: the minimum is the least disturbed)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def hf_train(text: str, vocab_size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's regex on bytes
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[ENDOFTEXT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    hf.train_from_iterator([text], trainer)
    return hf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-merges", type=int, default=8,
                        help="merges of the reference trainer timed on the whole corpus (then extrapolated)")
    args = parser.parse_args()
    machine = f"{os.cpu_count()}-core {platform.machine()} CPU, torch {torch.__version__} build, Python {platform.python_version()}"
    print(f"machine: {machine}")
    try:
        import tokenizers
        print(f"Hugging Face tokenizers {tokenizers.__version__} (RAYON threads: {os.environ.get('RAYON_NUM_THREADS', 'default')})")
    except ImportError:
        tokenizers = None
    corpus = load_shakespeare()
    rows = []

    # 1. 100 KB slice to 512
    text = corpus[:100_000]
    n_merges = 512 - 256 - 1
    chunks = pretokenize(text, special_tokens=[ENDOFTEXT])
    t_ref, ref = seconds(lambda: train_merges_reference(chunks, n_merges))
    t_fast, fast = seconds(lambda: train_merges_fast(chunks, n_merges), repeat=3)
    assert fast == ref, "the fast trainer must give the reference's merges"
    t_fast_total, _ = seconds(lambda: BPETokenizer.train(text, 512), repeat=3)
    rows.append(("100 KB -> 512", "reference trainer", t_ref, 1.0))
    rows.append(("100 KB -> 512", "fast trainer", t_fast, t_ref / t_fast))
    rows.append(("100 KB -> 512", "fast, with pre-tokenization", t_fast_total, t_ref / t_fast_total))
    if tokenizers:
        t_hf, _ = seconds(lambda: hf_train(text, 512), repeat=3)
        rows.append(("100 KB -> 512", "HF tokenizers (Rust)", t_hf, t_ref / t_hf))

    # 2. whole corpus to 4096
    n_merges = 4096 - 256 - 1
    t_pre, chunks = seconds(lambda: pretokenize(corpus, special_tokens=[ENDOFTEXT]))
    t_fast, fast = seconds(lambda: train_merges_fast(chunks, n_merges))
    k = args.reference_merges
    t_ref_k, ref_k = seconds(lambda: train_merges_reference(chunks, k))
    assert ref_k == fast[:k], "the reference's first merges must be the fast trainer's"
    t_ref_est = t_ref_k / k * n_merges
    label = f"{len(corpus.encode()) / 1e6:.1f} MB -> 4096"
    rows.append((label, f"reference, {k} merges timed, x{n_merges / k:.0f} (est.)", t_ref_est, 1.0))
    rows.append((label, "fast trainer", t_fast, t_ref_est / t_fast))
    rows.append((label, "fast, with pre-tokenization", t_fast + t_pre, t_ref_est / (t_fast + t_pre)))
    hf = None
    if tokenizers:
        t_hf, hf = seconds(lambda: hf_train(corpus, 4096))
        rows.append((label, "HF tokenizers (Rust)", t_hf, t_ref_est / t_hf))

    print("\nTraining (ratio = speed-up over the reference trainer in the same row group)")
    print(f"| {'task':15s} | {'trainer':42s} | {'seconds':>9s} | {'speed-up':>8s} |")
    print(f"|{'-' * 17}|{'-' * 44}|{'-' * 11}|{'-' * 10}|")
    for task, name, t, ratio in rows:
        print(f"| {task:15s} | {name:42s} | {t:9.3f} | {ratio:7.0f}x |")

    # 3. encoding throughput on the held-out works, with the whole-corpus 4096 vocabulary
    works = load_works()
    heldout = "\n\n".join(works[s] for s in ("hamlet", "twelfth_night", "henry_v", "sonnets"))
    mb = len(heldout.encode()) / 1e6
    bpe = BPETokenizer(fast, [ENDOFTEXT])
    enc_rows = []
    t_uncached, ids = seconds(lambda: bpe.encode_ordinary(heldout, use_cache=False))
    enc_rows.append(("merge loop, no cache", t_uncached))
    t_cold, cold_ids = seconds(lambda: BPETokenizer(fast, [ENDOFTEXT]).encode(heldout))
    enc_rows.append(("cached encoder, cold cache", t_cold))
    bpe.encode(heldout)
    t_warm, warm_ids = seconds(lambda: bpe.encode(heldout), repeat=3)
    enc_rows.append(("cached encoder, warm cache", t_warm))
    assert ids == cold_ids == warm_ids
    try:
        import tiktoken
        enc = tiktoken.Encoding(name="bench", pat_str=bpe.pattern, special_tokens=bpe.special_tokens,
                                mergeable_ranks={bpe.vocab[i]: i for i in [*bpe.byte_ids, *bpe.merge_ids]})
        t_tik, tik_ids = seconds(lambda: enc.encode_ordinary(heldout), repeat=3)
        assert tik_ids == ids, "tiktoken must agree with our encoder"
        enc_rows.append(("tiktoken, same merges (Rust)", t_tik))
    except ImportError:
        pass
    if hf is not None:
        t_hf, _ = seconds(lambda: hf.encode(heldout), repeat=3)
        enc_rows.append(("HF tokenizers, its own 4096 merges", t_hf))
    print(f"\nEncoding the held-out works ({mb:.2f} MB, {len(ids):,} tokens); ratio against the merge loop without cache")
    print(f"| {'encoder':36s} | {'MB/s':>7s} | {'ratio':>6s} |")
    print(f"|{'-' * 38}|{'-' * 9}|{'-' * 8}|")
    for name, t in enc_rows:
        print(f"| {name:36s} | {mb / t:7.2f} | {t_uncached / t:5.1f}x |")


if __name__ == "__main__":
    main()
