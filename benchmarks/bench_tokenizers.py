"""Benchmark for chapter 1: BPE training and encoding speed.

    .venv/bin/python benchmarks/bench_tokenizers.py [--quick] [--reference-merges 8] [--rounds 3]

Every ratio compares two measurements taken in this process, on this machine:
1. training on the first 100,000 characters of the corpus to vocabulary 512: the reference trainer
   (recounts every pair after every merge) against the fast trainer (distinct chunks, pair index,
   heap), with Hugging Face `tokenizers` (Rust, multi-threaded) as an outside yardstick; all timed
   in --rounds alternating rounds;
2. training on the whole corpus (~5 MB) to vocabulary 4096, each trainer run once: fast and Hugging
   Face in full, the reference only for its first few merges (it would take hours), extrapolated
   linearly;
3. encoding throughput (MB/s) on the four held-out works, in alternating rounds after a warm-up:
   the merge loop without cache, the cached encoder (cold and warm), tiktoken built from the same
   merges, and Hugging Face `tokenizers`.
Speed-ups come from the fastest times (medians in brackets where there are several rounds).
--quick shrinks everything (20,000 characters to 300, 300,000 to 512, 50,000 held-out characters).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from llmlib.bpe import BPETokenizer, pretokenize, train_merges_fast, train_merges_reference
from llmlib.corpus import load_shakespeare, load_works
from llmlib.tokenizers import ENDOFTEXT

from common import Timing, machine, time_alternating

# (characters, vocabulary) of sections 1 and 2 (None = the whole corpus), held-out characters
SIZES = {"full": ((100_000, 512), (None, 4096), None),
         "quick": ((20_000, 300), (300_000, 512), 50_000)}


def hf_train(text: str, vocab_size: int) -> Any:
    """Hugging Face byte-level BPE trained on `text` (pre-tokenized like GPT-2, as ours)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's regex on bytes
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[ENDOFTEXT],
                                  show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    hf.train_from_iterator([text], trainer)
    return hf


def once(seconds: float) -> Timing:
    """A Timing of one run (for derived times: an extrapolation, a sum)."""
    return Timing(seconds, seconds, (seconds,))


def seconds(t: Timing) -> str:
    """The fastest time, with the median beside it when there were several rounds."""
    if len(t.times) == 1:
        return f"{t.fastest:9.3f} {'':11s}"
    return f"{t.fastest:9.3f} ({t.median:9.3f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small texts (a smoke run)")
    parser.add_argument("--reference-merges", type=int, default=None,
                        help="merges of the reference trainer timed in section 2, then "
                             "extrapolated (default 8; 2 with --quick)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of sections 1 and 3")
    args = parser.parse_args(argv)
    (small_chars, small_vocab), (large_chars, large_vocab), heldout_chars = \
        SIZES["quick" if args.quick else "full"]
    k = args.reference_merges or (2 if args.quick else 8)
    rounds = args.rounds
    print(f"machine: {machine('cpu')}")  # tokenizers run on the CPU whatever LLMLIB_DEVICE says
    try:
        import tokenizers
        print(f"Hugging Face tokenizers {tokenizers.__version__} "
              f"(RAYON threads: {os.environ.get('RAYON_NUM_THREADS', 'default')})")
    except ImportError:
        tokenizers = None
    corpus = load_shakespeare()
    rows: list[tuple[str, str, Timing, float]] = []

    # 1. a slice of the corpus to a small vocabulary, every trainer timed in alternating rounds
    text = corpus[:small_chars]
    n_merges = small_vocab - 256 - 1
    chunks = pretokenize(text, special_tokens=[ENDOFTEXT])
    trainers = {"reference trainer": lambda: train_merges_reference(chunks, n_merges),
                "fast trainer": lambda: train_merges_fast(chunks, n_merges),
                "fast, with pre-tokenization": lambda: BPETokenizer.train(text, small_vocab)}
    if tokenizers:
        trainers["HF tokenizers (Rust)"] = lambda: hf_train(text, small_vocab)
    # no warm-up: the trainers are pure functions of their input, and the reference is slow
    t = time_alternating(trainers, "cpu", rounds, warmup=False)
    assert t["fast trainer"].result == t["reference trainer"].result, \
        "the fast trainer must give the reference's merges"
    label = f"{len(text.encode()) / 1e3:.0f} KB -> {small_vocab}"
    ref = t["reference trainer"].fastest
    for name, timing in t.items():
        rows.append((label, name, timing, ref / timing.fastest))

    # 2. the whole corpus to a large vocabulary: each trainer once (the fast one takes a while)
    text = corpus if large_chars is None else corpus[:large_chars]
    n_merges = large_vocab - 256 - 1
    trainers = {"pre-tokenization": lambda: pretokenize(text, special_tokens=[ENDOFTEXT])}
    t = time_alternating(trainers, "cpu", 1, warmup=False)
    chunks = t["pre-tokenization"].result
    trainers = {"fast trainer": lambda: train_merges_fast(chunks, n_merges),
                "reference": lambda: train_merges_reference(chunks, k)}
    if tokenizers:
        trainers["HF tokenizers (Rust)"] = lambda: hf_train(text, large_vocab)
    t |= time_alternating(trainers, "cpu", 1, warmup=False)
    fast = t["fast trainer"].result
    assert t["reference"].result == fast[:k], \
        "the reference's first merges must be the fast trainer's"
    t_ref = t["reference"].fastest / k * n_merges
    t_pre, t_fast = t["pre-tokenization"].fastest, t["fast trainer"].fastest
    label = f"{len(text.encode()) / 1e6:.1f} MB -> {large_vocab}"
    rows.append((label, f"reference, {k} merges timed, x{n_merges / k:.0f} (est.)", once(t_ref),
                 1.0))
    rows.append((label, "fast trainer", t["fast trainer"], t_ref / t_fast))
    rows.append((label, "fast, with pre-tokenization", once(t_pre + t_fast),
                 t_ref / (t_pre + t_fast)))
    hf = None
    if tokenizers:
        hf = t["HF tokenizers (Rust)"].result
        rows.append((label, "HF tokenizers (Rust)", t["HF tokenizers (Rust)"],
                     t_ref / t["HF tokenizers (Rust)"].fastest))

    print("\nTraining (speed-up over the reference trainer in the same row group; seconds: "
          f"fastest of {rounds} alternating rounds (median) in the first group, "
          "one run in the second)")
    print(f"| {'task':15s} | {'trainer':42s} | {'seconds':>21s} | {'speed-up':>8s} |")
    print(f"|{'-' * 17}|{'-' * 44}|{'-' * 23}|{'-' * 10}|")
    for task, name, timing, ratio in rows:
        print(f"| {task:15s} | {name:42s} | {seconds(timing)} | {ratio:7.0f}x |")

    # 3. encoding throughput on the held-out works, with the large vocabulary of section 2
    works = load_works()
    heldout = "\n\n".join(works[s] for s in ("hamlet", "twelfth_night", "henry_v", "sonnets"))
    heldout = heldout if heldout_chars is None else heldout[:heldout_chars]
    mb = len(heldout.encode()) / 1e6
    bpe = BPETokenizer(fast, [ENDOFTEXT])
    encoders = {  # the warm-up call fills the warm encoder's cache
        "merge loop, no cache": lambda: bpe.encode_ordinary(heldout, use_cache=False),
        "cached encoder, cold cache": lambda: BPETokenizer(fast, [ENDOFTEXT]).encode(heldout),
        "cached encoder, warm cache": lambda: bpe.encode(heldout)}
    try:
        import tiktoken
        enc = tiktoken.Encoding(
            name="bench", pat_str=bpe.pattern, special_tokens=bpe.special_tokens,
            mergeable_ranks={bpe.vocab[i]: i for i in [*bpe.byte_ids, *bpe.merge_ids]})
        encoders["tiktoken, same merges (Rust)"] = lambda: enc.encode_ordinary(heldout)
    except ImportError:
        pass
    if hf is not None:
        encoders[f"HF tokenizers, its own {large_vocab} merges"] = lambda: hf.encode(heldout)
    t = time_alternating(encoders, "cpu", rounds)
    ids = t["merge loop, no cache"].result
    for name in ("cached encoder, cold cache", "cached encoder, warm cache",
                 "tiktoken, same merges (Rust)"):
        assert name not in t or t[name].result == ids, f"{name} must agree with the merge loop"
    base = t["merge loop, no cache"]
    print(f"\nEncoding the held-out works ({mb:.2f} MB, {len(ids):,} tokens); MB/s of the fastest "
          f"of {rounds} alternating rounds (median), ratio against the merge loop without cache")
    print(f"| {'encoder':36s} | {'MB/s':>17s} | {'ratio':>15s} |")
    print(f"|{'-' * 38}|{'-' * 19}|{'-' * 17}|")
    for name, timing in t.items():
        print(f"| {name:36s} | {mb / timing.fastest:7.2f} ({mb / timing.median:7.2f}) | "
              f"{base.fastest / timing.fastest:5.1f}x ({base.median / timing.median:5.1f}x) |")


if __name__ == "__main__":
    main()
