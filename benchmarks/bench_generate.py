"""Benchmark for chapter 7: greedy generation tokens/s, with and without the KV cache, llmlib's
against transformers'.

    .venv/bin/python benchmarks/bench_generate.py [--quick] [--cases small gpt2] [--tokens 500]
                                                  [--rounds 3] [--nocache-rounds 1]
                                                  [--threads N] [--curve FILE.json]
    LLMLIB_DEVICE=cuda .venv/bin/python benchmarks/bench_generate.py --nocache-rounds 3

Greedy decoding (temperature 0) of batch 1, from a random prompt of 10 token ids (fixed seed), of
exactly --tokens new tokens, eager fp32 on llmlib.device.get_device(). Cases: gpt2 = GPT-2 124M
(`GPT2LMHeadModel(GPT2Config())`, random weights from torch.manual_seed(0)); small = the "small"
preset's shape (6 layers, 6 heads, 384 wide) with 85 ids, but a context of 512 instead of 256, so
that prompt + 500 tokens fit in the context of both models (neither slides a window). The
Hugging Face model is built first and llmlib's GPT loaded from it (llmlib.gpt2.load_gpt2): the
same weights. The model's bos/eos ids are None, so nothing stops early and no token is masked.
Four candidates per case (five on CUDA):
  - llmlib cached:    llmlib.generate.generate(model, prompt, N, temperature=0)
  - llmlib no-cache:  the same with use_cache=False (the whole sequence recomputed every step)
  - HF cached:        hf.generate(prompt, max_new_tokens=N, min_new_tokens=N, do_sample=False)
  - HF no-cache:      the same with use_cache=False
  - llmlib CUDA graph (CUDA only): generate(..., cuda_graph=True), the static step replayed as a
    captured CUDA graph; it must give the cached ids
Before timing, llmlib cached and HF cached must give the same ids; llmlib no-cache (and HF
no-cache) are checked against them with the result of their timed run. The cached pair is timed
in --rounds alternating rounds after a warm-up call; the no-cache pair, minutes per call at 124M on
a CPU, in --nocache-rounds alternating rounds without a warm-up. tokens/s = N / the seconds of
one call (prefill of the prompt included), from the fastest run (the least disturbed by other
processes) and the median run. --curve FILE.json writes, for llmlib cached and no-cache at the
gpt2 case (the tiny one with --quick), the cumulative seconds after each generated token of one
run of llmlib.generate.stream, for a plot of tokens/s against generated length.
Not a test: timings on a shared machine are noisy; read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

from llmlib.device import get_device
from llmlib.generate import generate, stream
from llmlib.gpt import GPTConfig, count_parameters
from llmlib.gpt2 import config_from_hf, load_gpt2

from common import Stopwatch, Timing, machine, time_alternating

# name -> the shape (llmlib's GPTConfig; the HF GPT2Config is made from it)
CASES: dict[str, GPTConfig] = {
    "tiny": GPTConfig.preset("smoke", vocab_size=85),  # 2 layers, 2 heads, 64 wide: --quick
    # nanoGPT's baby GPT, with room for the prompt + 500 tokens
    "small": GPTConfig.preset("small", vocab_size=85, context_length=512),
    "gpt2": GPTConfig.preset("gpt2"),  # GPT2Config()'s shape, 124M
}
PROMPT_TOKENS = 10
CACHED = ("llmlib cached", "HF cached")
NO_CACHE = ("llmlib no-cache", "HF no-cache")
GRAPH = "llmlib CUDA graph"  # CUDA only


def build(case: str, device: torch.device, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """The HF GPT2LMHeadModel (random weights from `seed`) and llmlib's GPT loaded from it."""
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    transformers.logging.set_verbosity_error()
    cfg = CASES[case]
    # the other fields keep GPT2Config()'s defaults (dropout does nothing in eval mode)
    hf_config = GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.context_length,
                           n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
                           bos_token_id=None, eos_token_id=None)
    torch.manual_seed(seed)
    hf = GPT2LMHeadModel(hf_config).to(device).eval()
    hf.generation_config.bos_token_id = hf.generation_config.eos_token_id = None
    ours = load_gpt2(hf.state_dict(), config_from_hf(hf.config)).to(device).eval()
    return ours, hf


def candidates(ours: nn.Module, hf: nn.Module, prompt: torch.Tensor,
               n: int) -> dict[str, Callable[[], torch.Tensor]]:
    """The four ways to generate n tokens greedily; each returns the ids (1, T0 + n) on the CPU."""
    mask = torch.ones_like(prompt)

    def hf_run(use_cache: bool) -> torch.Tensor:
        return hf.generate(prompt, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                           do_sample=False, pad_token_id=0, use_cache=use_cache).cpu()

    runs = {
        "llmlib cached": lambda: generate(ours, prompt, n, temperature=0).cpu(),
        "HF cached": lambda: hf_run(True),
        "llmlib no-cache": lambda: generate(ours, prompt, n, temperature=0, use_cache=False).cpu(),
        "HF no-cache": lambda: hf_run(False),
    }
    if prompt.is_cuda:  # the static step replayed as one captured CUDA graph
        runs[GRAPH] = lambda: generate(ours, prompt, n, temperature=0, cuda_graph=True).cpu()
    return runs


def curve(ours: nn.Module, prompt: torch.Tensor, n: int, use_cache: bool,
          device: torch.device) -> list[float]:
    """Cumulative seconds after each of the n tokens of one run of llmlib's stream."""
    seconds = []
    clock = Stopwatch(device)
    for _ in stream(ours, prompt, n, temperature=0, use_cache=use_cache):
        seconds.append(round(clock.seconds(), 6))
    return seconds


def time_case(case: str, device: torch.device, n: int, rounds: int,
              nocache_rounds: int) -> tuple[dict[str, Timing], list[str], nn.Module, torch.Tensor]:
    """Timings of the four candidates, and the disagreements between their ids (empty if none)."""
    cfg = CASES[case]
    if PROMPT_TOKENS + n > cfg.context_length:
        raise SystemExit(f"{case}: prompt ({PROMPT_TOKENS}) + --tokens ({n}) exceed the context "
                         f"({cfg.context_length}): the models would slide differently")
    ours, hf = build(case, device)
    prompt = torch.randint(cfg.vocab_size, (1, PROMPT_TOKENS),
                           generator=torch.Generator().manual_seed(1)).to(device)
    runs = candidates(ours, hf, prompt, n)
    cached = CACHED + ((GRAPH,) if GRAPH in runs else ())
    first = {name: runs[name]() for name in cached}  # the check, and the warm-up of the timing
    reference = first["llmlib cached"]
    assert reference.shape == (1, PROMPT_TOKENS + n), reference.shape
    assert torch.equal(reference, first["HF cached"]), \
        f"{case}: llmlib cached and HF cached generate different ids"
    if GRAPH in first:
        assert torch.equal(reference, first[GRAPH]), f"{case}: the CUDA graph generates other ids"
    timings = time_alternating({name: runs[name] for name in cached}, device, rounds,
                               warmup=False)
    timings |= time_alternating({name: runs[name] for name in NO_CACHE}, device, nocache_rounds,
                                warmup=False)
    differ = [name for name in NO_CACHE if not torch.equal(timings[name].result, reference)]
    return timings, differ, ours, prompt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="the tiny case, 20 tokens, 1 round (a smoke run)")
    parser.add_argument("--cases", nargs="+", default=None, choices=sorted(CASES),
                        help="default: small gpt2")
    parser.add_argument("--tokens", type=int, default=None,
                        help="new tokens per generation (default 500)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternating rounds of the cached candidates (default 3)")
    parser.add_argument("--nocache-rounds", type=int, default=1,
                        help="alternating rounds of the no-cache candidates")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--curve", type=Path, default=None, metavar="FILE.json",
                        help="write llmlib's cumulative seconds per generated token (gpt2 case)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = args.cases or (["tiny"] if args.quick else ["small", "gpt2"])
    n = args.tokens or (20 if args.quick else 500)
    rounds = args.rounds or (1 if args.quick else 3)
    device = get_device()

    print(f"machine: {machine(device)}")
    print(f"greedy decoding, batch 1, a {PROMPT_TOKENS}-token random prompt, {n} new tokens, eager "
          f"fp32 on {device.type}; cached: {rounds} alternating rounds after a warm-up call, "
          f"no-cache: {args.nocache_rounds} round(s), no warm-up. tok/s = {n} / seconds per call "
          "(prompt prefill included)")
    for case in cases:
        cfg = CASES[case]
        print(f"  {case}: {count_parameters(cfg) / 1e6:.2f}M parameters, {cfg.n_layer} layers, "
              f"{cfg.n_head} heads, {cfg.n_embd} wide, vocab {cfg.vocab_size}, context "
              f"{cfg.context_length}" + (" (the small preset's is 256: raised so that prompt + "
                                          "500 tokens fit)" if case == "small" else ""))
    print(flush=True)

    results: dict[str, dict[str, Timing]] = {}
    problems: list[str] = []
    curve_case = "gpt2" if "gpt2" in cases else cases[-1]
    curves: dict[str, list[float]] = {}
    for case in cases:
        timings, differ, ours, prompt = time_case(case, device, n, rounds, args.nocache_rounds)
        results[case] = timings
        problems += [f"{case}: {name} generated other ids than llmlib cached" for name in differ]
        if args.curve and case == curve_case:
            curves = {f"llmlib {'cached' if c else 'no-cache'}": curve(ours, prompt, n, c, device)
                      for c in (True, False)}
        print(f"{case}: done", flush=True)

    header = (f"\n{'case':6s} {'candidate':17s} {'runs':>4s} {'fastest s':>10s} {'median s':>9s} "
              f"{'tok/s fastest':>13s} {'tok/s median':>12s}")
    print(header)
    print("-" * (len(header) - 1))
    for case, timings in results.items():
        for name, t in timings.items():
            print(f"{case:6s} {name:17s} {len(t.times):4d} {t.fastest:10.2f} {t.median:9.2f} "
                  f"{n / t.fastest:13.1f} {n / t.median:12.1f}")
    header = (f"\n{'case':6s} {'llmlib cached / HF cached':>26s} "
              f"{'llmlib cached / no-cache':>25s} {'HF cached / no-cache':>21s}")
    print(header)
    print("-" * (len(header) - 1))

    def ratio(t: dict[str, Timing], a: str, b: str) -> str:  # speed of a / speed of b
        return f"{t[b].fastest / t[a].fastest:.2f}x [{t[b].median / t[a].median:.2f}x]"

    for case, t in results.items():
        print(f"{case:6s} {ratio(t, 'llmlib cached', 'HF cached'):>26s} "
              f"{ratio(t, 'llmlib cached', 'llmlib no-cache'):>25s} "
              f"{ratio(t, 'HF cached', 'HF no-cache'):>21s}")
        if GRAPH in t:
            print(f"{case:6s} {GRAPH} / HF cached: {ratio(t, GRAPH, 'HF cached')} (target on "
                  "one H100, gpt2: >= 1,000 tok/s)")
    print("ratios of tokens/s from the fastest runs [medians in brackets]; > 1: the first is "
          "faster. Targets: llmlib cached / HF cached >= 1, llmlib cached / no-cache >= 5 at 500 "
          "tokens on a CPU.")
    print("ids: llmlib cached = HF cached (checked before timing); " + (
        "; ".join(problems) if problems else "the no-cache runs gave the same ids"))

    if args.curve:
        data = {"machine": machine(device), "case": curve_case, "prompt_tokens": PROMPT_TOKENS,
                "new_tokens": n, "what": "cumulative seconds after each generated token, one "
                "run of llmlib.generate.stream (greedy, batch 1)", "seconds": curves}
        args.curve.write_text(json.dumps(data) + "\n", encoding="utf-8")
        print(f"curve of {curve_case} written to {args.curve}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
