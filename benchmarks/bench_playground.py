"""Benchmark for the playground (chapter 7, book/playground.md): the course model decoding in
headless Chromium against NumPy on the same machine, batch 1.

    .venv/bin/python benchmarks/bench_playground.py [--quick] [--model course] [--tokens 300]
        [--rounds 5]
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_playground.py

The page is `llmlib.playground.write_playground`'s, opened from disk in the system's Chromium
(Playwright drives it; every request but file:// is blocked). Each candidate writes --tokens tokens
after a 7-character prompt, sampling at temperature 1, in alternating rounds:
  - Chromium, gpt.js with its WebAssembly SIMD kernel (what the page runs);
  - Chromium, gpt.js with its plain-JavaScript loop (useKernel: false);
  - NumPy, cached: appendix A's functions one token at a time through a KV cache (below), the
    baseline the issue names ("NumpyGPT's generator", given the same cache as the page);
  - NumPy, uncached: `llmlib.numpy_generate.generate`, which recomputes the window every step;
  - llmlib (torch) with chapter 7's cache, on the CPU.
Greedy tokens are compared first (Chromium, NumPy and torch must agree). Times are medians, with
the fastest in brackets; the ratio Chromium / NumPy-cached is taken per round, and called above
or below a goal only when every round agrees. The machine line and load average are printed.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from common import machine, time_alternating

from llmlib.checkpoint import model_folder, read_tokenizer
from llmlib.generate import generate
from llmlib.gpt import GPT, count_parameters
from llmlib.numpy_generate import generate as generate_uncached
from llmlib.numpy_gpt import NumpyGPT, gelu, layer_norm, softmax
from llmlib.playground import write_playground

GOAL_RATIO, GOAL_RATE = 0.5, 50.0  # the issue's: >= 0.5x NumPy's tokens/s and >= 50 tokens/s


class NumpyCachedDecoder:
    """Appendix A's GPT one token at a time through a KV cache, batch 1: `step(token, position)`
    -> logits (V,). The same arithmetic as gpt.js's GPT.step, in NumPy (float32)."""

    def __init__(self, model: NumpyGPT):
        c = model.config
        self.model, self.length = model, 0
        self.k = np.zeros((c.n_layer, c.context_length, c.n_embd), np.float32)
        self.v = np.zeros_like(self.k)

    def step(self, token: int, position: int) -> np.ndarray:
        c, p = self.model.config, self.model.params
        H, D, t, eps = c.n_head, c.n_embd // c.n_head, self.length, c.layer_norm_epsilon
        x = p["transformer.wte.weight"][token] + p["transformer.wpe.weight"][position]  # (C,)
        for i in range(c.n_layer):
            pre = f"transformer.h.{i}."
            h, _ = layer_norm(x, p[pre + "ln_1.weight"], p[pre + "ln_1.bias"], eps)
            q, k, v = np.split(p[pre + "attn.c_attn.weight"] @ h + p[pre + "attn.c_attn.bias"], 3)
            self.k[i, t], self.v[i, t] = k, v
            keys = self.k[i, :t + 1].reshape(t + 1, H, D)                   # (n, H, D)
            weights = softmax(np.einsum("hd,nhd->hn", q.reshape(H, D), keys) / math.sqrt(D))
            heads = np.einsum("hn,nhd->hd", weights, self.v[i, :t + 1].reshape(t + 1, H, D))
            x = x + p[pre + "attn.c_proj.weight"] @ heads.reshape(-1) + p[pre + "attn.c_proj.bias"]
            h, _ = layer_norm(x, p[pre + "ln_2.weight"], p[pre + "ln_2.bias"], eps)
            f = gelu(p[pre + "mlp.c_fc.weight"] @ h + p[pre + "mlp.c_fc.bias"])
            x = x + p[pre + "mlp.c_proj.weight"] @ f + p[pre + "mlp.c_proj.bias"]
        self.length = t + 1
        h, _ = layer_norm(x, p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], eps)
        return p["transformer.wte.weight"] @ h                              # (V,): tied head

    def generate(self, ids: list[int], n: int, greedy: bool, rng: np.random.Generator
                 ) -> list[int]:
        """ids followed by n tokens; the cache slides by half a context when full (chapter 7)."""
        window, out = self.model.config.context_length, list(ids)

        def prefill(keep: int) -> np.ndarray:
            self.length = 0
            for position, token in enumerate(out[-keep:]):
                logits = self.step(token, position)
            return logits

        logits = prefill(min(len(out), window))
        for i in range(n):
            if greedy:
                token = int(logits.argmax())
            else:
                probs = softmax(logits)
                token = int((probs / rng.standard_exponential(probs.shape)).argmax())
            out.append(token)
            if i + 1 < n:
                logits = (prefill(window // 2) if self.length == window
                          else self.step(token, self.length))
        return out


def open_page(folder: Path, chromium: str):
    """Chromium on the playground page, offline; returns (playwright, browser, page)."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    page = browser.new_page()
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file://")
               else r.abort())
    page.goto((folder / "playground.html").as_uri())
    page.wait_for_selector("#llmlib-playground[data-state=ready]", timeout=60_000)
    page.evaluate("""() => { self.plainModel = LLMLIB.load(LLMLIB_MODELS.course,
                                                           {useKernel: false}).model; }""")
    return playwright, browser, page


def in_page(page, which: str, ids: list[int], n: int, greedy: bool) -> list[int]:
    model = "llmlibPlayground.model" if which == "wasm" else "plainModel"
    return page.evaluate(f"([ids, n, t]) => LLMLIB.generate({model}, ids, n, {{temperature: t}})",
                         [ids, n, 0 if greedy else 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="seconds: 40 tokens, 2 rounds")
    parser.add_argument("--model", default="course", help="a model folder or shipped model")
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n, rounds = (40, 2) if args.quick else (args.tokens, args.rounds)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Chromium: apt-get install chromium")
    print(machine("cpu"))
    print(f"load average {os.getloadavg()[0]:.2f}; Chromium {chromium}; NumPy BLAS threads: "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    folder = Path(tempfile.mkdtemp())
    written = write_playground(folder, args.model)
    numpy_model = NumpyGPT.load(model_folder(args.model))
    torch_model = GPT.load(model_folder(args.model))
    ids = read_tokenizer(model_folder(args.model)).encode("ROMEO:\n")
    print(f"model {args.model}: {count_parameters(torch_model):,} parameters; the page loads "
          f"{sum(p.stat().st_size for p in written.values()) / 1e6:.1f} MB; {n} tokens per call")
    playwright, browser, page = open_page(folder, chromium)
    try:
        rng = np.random.default_rng(0)
        greedy = {"chromium wasm": in_page(page, "wasm", ids, n, True),
                  "chromium plain": in_page(page, "plain", ids, n, True),
                  "numpy cached": NumpyCachedDecoder(numpy_model).generate(ids, n, True, rng),
                  "torch cached": generate(torch_model, ids, n, temperature=0)}
        same = len({tuple(v) for v in greedy.values()}) == 1
        print(f"greedy tokens identical across {', '.join(greedy)}: {same}")
        candidates = {
            "Chromium, gpt.js + WebAssembly SIMD": lambda: in_page(page, "wasm", ids, n, False),
            "Chromium, gpt.js plain JavaScript": lambda: in_page(page, "plain", ids, n, False),
            "NumPy, cached (baseline)":
                lambda: NumpyCachedDecoder(numpy_model).generate(ids, n, False, rng),
            "NumPy, numpy_generate (no cache)":
                lambda: generate_uncached(numpy_model, ids, n, temperature=1.0, rng=rng),
            "llmlib torch, cached": lambda: generate(torch_model, ids, n, temperature=1.0)}
        timings = time_alternating(candidates, "cpu", rounds=rounds)
    finally:
        browser.close()
        playwright.stop()
    for name, t in timings.items():
        print(f"{name:38s} {n / t.median:8.0f} tokens/s  (fastest {n / t.fastest:.0f})")
    page_t, numpy_t = (timings["Chromium, gpt.js + WebAssembly SIMD"],
                       timings["NumPy, cached (baseline)"])
    ratios = [b / a for a, b in zip(page_t.times, numpy_t.times)]
    ratio = sorted(ratios)[len(ratios) // 2]
    verdict = ("met" if min(ratios) >= GOAL_RATIO else "missed" if max(ratios) < GOAL_RATIO
               else "undecided (the rounds disagree)")
    print(f"Chromium / NumPy cached: {ratio:.2f}x tokens/s (rounds {min(ratios):.2f}..."
          f"{max(ratios):.2f}); goal >= {GOAL_RATIO}x: {verdict}; goal >= {GOAL_RATE:.0f} "
          f"tokens/s: {'met' if n / page_t.median >= GOAL_RATE else 'missed'}")
    if not same:
        raise SystemExit("the greedy tokens differ: the timings compare different computations")


if __name__ == "__main__":
    main()
