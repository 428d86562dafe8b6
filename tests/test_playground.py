"""The model in the browser (chapter 7, book/playground.md): llmlib/static/gpt.js under Node gives
the logits of appendix A's NumpyGPT and of llmlib's GPT, the attention weights of NumPy, and the
tokens of chapter 7's sampler given the same random draws, with its WebAssembly kernel and with
its plain-JavaScript loops; a planted bug is caught; the kernel is built from its source.
The page itself, in headless Chromium, is tested with the built book in tests/test_book.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT
from llmlib.checkpoint import model_folder
from llmlib.generate import Decoder
from llmlib.gpt import GPT, GPTConfig
from llmlib.numpy_gpt import NumpyGPT, forward_tape
from llmlib.playground import SCRIPTS, model_payload, model_script, write_playground
from llmlib.sampling import Sampling
from llmlib.bpe import BPETokenizer
from llmlib.tokenizers import ENDOFTEXT, CharTokenizer

HARNESS = ROOT / "tests" / "playground_harness.js"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="needs Node.js (the course's machine has it)")
TOLERANCE = 1e-4  # the bar for float32 logits; the runs below stay near 1e-5


def run_js(folder: Path, request: dict, name: str = "course") -> dict:
    """Run the harness on the playground files in `folder` (write_playground's) and a request."""
    path = folder / "request.json"
    path.write_text(json.dumps(request | {"name": name}))
    result = subprocess.run([NODE, str(HARNESS), str(folder / "gpt.js"),
                             str(folder / f"{name}.model.js"), str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    return write_playground(tmp_path_factory.mktemp("course"), "course")["gpt.js"].parent


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, GPT, CharTokenizer]:
    """A random float32 model whose sizes are not multiples of 4 (C = 36, D = 18, V = 31) and
    whose context (16) is short, so that the kernel's tails and the cache's slide are exercised."""
    text = "abcdefghijklmnopqrstuvwxyz .,\n"
    tokenizer = CharTokenizer.from_text(text, special_tokens=[ENDOFTEXT])
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=16, n_layer=2,
                          n_head=2, n_embd=36)).eval()
    with torch.no_grad():  # biases and norms away from their initial 0 and 1
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.3)
    folder = tmp_path_factory.mktemp("small")
    model.save(folder / "model", tokenizer)
    write_playground(folder, folder / "model", name="small")
    return folder, model, tokenizer


PROMPTS = {"course": [[0], list(range(3, 83)), [int(i) for i in
                                                np.random.default_rng(1).integers(0, 84, 384)]],
           "small": [[5], [1, 2, 3, 4, 5, 6, 7], list(range(16))]}


@pytest.mark.parametrize("use_kernel", [True, False], ids=["wasm", "plain-js"])
@pytest.mark.parametrize("which", ["course", "small"])
def test_js_logits_equal_numpy_and_llmlib(course, small, which, use_kernel):
    folder, name = (course, "course") if which == "course" else (small[0], "small")
    directory = model_folder("course") if which == "course" else small[0] / "model"
    numpy_model, torch_model = NumpyGPT.load(directory), GPT.load(directory)
    prompts = PROMPTS[which]
    got = run_js(folder, {"logits": prompts, "useKernel": use_kernel}, name)
    assert got["kernel"] is use_kernel
    for ids, flat in zip(prompts, got["logits"]):
        js = np.array(flat).reshape(len(ids), -1)
        reference = numpy_model.forward(np.array([ids]))[0]
        with torch.no_grad():
            ours = torch_model(torch.tensor([ids]))[0][0].numpy()
        assert np.abs(js - reference).max() <= TOLERANCE, np.abs(js - reference).max()
        assert np.abs(js - ours).max() <= TOLERANCE, np.abs(js - ours).max()


def test_js_attention_equals_numpy(course):
    ids = [int(i) for i in np.random.default_rng(2).integers(0, 84, 48)]
    got = run_js(course, {"attention": ids})
    _, tape = forward_tape(NumpyGPT.load(model_folder("course")), np.array([ids]))
    for layer, heads in enumerate(got["attention"]):
        reference = tape["blocks"][layer]["att"][4][0]                   # (H, T, T)
        js = np.array(heads).reshape(reference.shape)
        assert np.abs(js - reference).max() < 1e-5


@torch.no_grad()
def chapter7_tokens(model: GPT, ids: list[int], n: int, sampling: Sampling,
                    noise: np.ndarray) -> list[int]:
    """Chapter 7's decoder (cache, slide) and sampler, its draw made with the given Exp(1) noise
    (n, V): argmax(probs / noise), the race torch.multinomial runs on the CPU."""
    decoder, out = Decoder(model, [list(ids)]), list(ids)
    logits = decoder.first()
    for step in range(n):
        if sampling.greedy:
            token = int(logits.argmax(dim=-1)[0])
        else:
            probs = sampling.filtered(logits).softmax(dim=-1)[0].numpy()
            token = int((probs / noise[step]).argmax())
        out.append(token)
        if step + 1 < n:
            logits = decoder.next(torch.tensor([token]))
    return out


SETTINGS = [Sampling(temperature=0), Sampling(temperature=1.0),
            Sampling(temperature=0.8, top_k=5), Sampling(temperature=1.3, top_p=0.7),
            Sampling(temperature=1.0, top_k=20, top_p=0.9, min_p=0.05)]


def js_settings(s: Sampling) -> dict:
    return {"temperature": s.temperature, "topK": s.top_k, "topP": s.top_p, "minP": s.min_p}


@pytest.mark.parametrize("which", ["course", "small"])
def test_js_sampling_equals_chapter7_sampler(course, small, which):
    """The same Exp(1) draws give the same tokens, past the context (the small model's 16 tokens
    slide three times in 40)."""
    folder, name = (course, "course") if which == "course" else (small[0], "small")
    model = GPT.load(model_folder("course") if which == "course" else small[0] / "model")
    n, prompt = (40, [3, 4, 5]) if which == "small" else (30, list(range(10, 40)))
    rng = np.random.default_rng(3)
    cases = []
    for s in SETTINGS:
        noise = rng.standard_exponential((n, model.config.vocab_size))
        cases.append((s, noise, chapter7_tokens(model, prompt, n, s, noise)))
    got = run_js(folder, {"generate": [{"ids": prompt, "n": n, "settings": js_settings(s),
                                        "noise": noise.tolist()} for s, noise, _ in cases]}, name)
    for (s, _, expected), tokens in zip(cases, got["generate"]):
        assert tokens == expected, s
    assert len(set(map(tuple, got["generate"]))) > 2  # the settings do change the text


def test_a_planted_bug_is_caught(course, tmp_path):
    """A wrong GELU constant in gpt.js (0.04715 for 0.044715) moves the logits far past the bar."""
    for script in SCRIPTS + ("course.model.js",):
        shutil.copy(course / script, tmp_path / script)
    source = (tmp_path / "gpt.js").read_text()
    assert source.count("0.044715 * x") == 1
    (tmp_path / "gpt.js").write_text(source.replace("0.044715 * x", "0.04715 * x"))
    ids = PROMPTS["course"][1]
    got = run_js(tmp_path, {"logits": [ids]})
    reference = NumpyGPT.load(model_folder("course")).forward(np.array([ids]))[0]
    assert np.abs(np.array(got["logits"][0]).reshape(reference.shape) - reference).max() > 1e-2


def test_the_tokenizer_names_characters_it_does_not_know(course):
    got = run_js(course, {"encode": "ROMEO: é\n"})
    assert "é" in got["error"] and "84 characters" in got["error"]
    assert run_js(course, {"encode": "ROMEO:\n"})["encoded"] == CharTokenizer(
        json.loads((model_folder("course") / "tokenizer.json").read_text())["chars"],
        [ENDOFTEXT]).encode("ROMEO:\n")


def test_the_wasm_kernel_is_built_from_its_source():
    if not (ROOT / "node_modules" / "wabt").is_dir():
        pytest.fail("node_modules/wabt is missing: run `npm ci` (make install does)")
    result = subprocess.run([NODE, str(ROOT / "tools" / "build_wasm.js"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_model_script_carries_model_safetensors(tmp_path):
    """The shipped model's file travels as it is (float16); float16 halves a float32 model."""
    script = model_script("course")
    assert script.count("\n") == 2 and 'LLMLIB_MODELS)["course"]' not in script
    payload = model_payload("course")
    assert payload["weights"][8:] and len(payload["weights"]) <= (
        model_folder("course") / "model.safetensors").stat().st_size + 64
    assert len(model_payload("course", "float32")["weights"]) > 1.9 * len(payload["weights"])


def test_models_the_browser_cannot_run_are_refused_before_writing(small, tmp_path):
    folder = small[0]
    bpe = tmp_path / "bpe"
    tokenizer = BPETokenizer.train("abc abd abe " * 20, 260)
    GPT(GPTConfig(vocab_size=260, context_length=8, n_layer=1, n_head=2, n_embd=8)).save(
        bpe, tokenizer)
    with pytest.raises(ValueError, match="character tokenizers.*llmlib generate"):
        write_playground(tmp_path / "out", bpe)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="dtype must be one of"):
        model_payload(folder / "model", "int8")
