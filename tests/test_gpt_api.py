"""The GPT's checked API (chapter 5): what forward and generate accept, the errors for everything
else, and save / load of llmlib's own models (safetensors + JSON, atomic, bit-exact)."""

from __future__ import annotations

import json

import pytest
import torch

from llmlib.gpt import GPT, GPTConfig, atomic_write
from llmlib.tokenizers import CharTokenizer, Tokenizer

CONFIG = GPTConfig(vocab_size=23, context_length=12, n_layer=2, n_head=2, n_embd=16)


@pytest.fixture
def model() -> GPT:
    torch.manual_seed(0)
    return GPT(CONFIG).eval()


# ---------------------------------------------------------------- forward and generate


def test_generate_accepts_a_list_a_1d_and_a_2d_prompt(model):
    batch = model.generate(torch.tensor([[3, 1, 4]]), 6, temperature=0)
    assert batch.shape == (1, 9)
    as_list = model.generate([3, 1, 4], 6, temperature=0)
    assert isinstance(as_list, list) and as_list == batch[0].tolist()
    one_d = model.generate(torch.tensor([3, 1, 4]), 6, temperature=0)
    assert one_d.dim() == 1 and torch.equal(one_d, batch[0])
    int32 = model.generate(torch.tensor([[3, 1, 4]], dtype=torch.int32), 6, temperature=0)
    assert torch.equal(int32.long(), batch)
    # a prompt longer than the context is cropped, not refused
    long_prompt = list(range(20))
    assert model.generate(long_prompt, 2, temperature=0)[:20] == long_prompt
    assert model.generate([5], 0) == [5]


def test_generate_takes_lists_of_one_length_and_points_ragged_ones_to_chapter_7(model):
    rows = model.generate([[3, 1], [4, 1]], 3, temperature=0)
    assert rows == [model.generate(row, 3, temperature=0) for row in ([3, 1], [4, 1])]
    with pytest.raises(ValueError, match=r"llmlib\.generate\.generate"):
        model.generate([[3, 1], [4]], 3)


@pytest.mark.parametrize("prompt, error, match", [
    ([], ValueError, r"holds no tokens \(T = 0\)"),
    (torch.zeros(1, 0, dtype=torch.long), ValueError, "holds no tokens"),
    ([1, 999], ValueError, r"must lie in 0\.\.22 \(vocab_size=23\), found ids from 1 to 999"),
    ([-1, 2], ValueError, "must lie in 0..22"),
    (torch.tensor([[1.0, 2.0]]), ValueError, "integer token ids.*float32.*idx.long()"),
    (torch.tensor([[True, False]]), ValueError, "integer token ids"),
    (torch.zeros(1, 2, 3, dtype=torch.long), ValueError, r"got 3 dims \(1, 2, 3\)"),
    ([1.5, 2], TypeError, "a prompt list must hold int token ids"),
    (["a", "b"], TypeError, "a prompt list must hold int token ids"),
    ("ROMEO", TypeError, "must be a \\(B, T\\) tensor of integers, got str"),
])
def test_generate_refuses_bad_prompts(model, prompt, error, match):
    with pytest.raises(error, match=match):
        model.generate(prompt, 3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(max_new_tokens=-1), "max_new_tokens must be an int >= 0"),
    (dict(max_new_tokens=2.5), "max_new_tokens must be an int >= 0"),
    (dict(max_new_tokens=2, temperature=-0.5), "temperature must be a number >= 0"),
    (dict(max_new_tokens=2, temperature="hot"), "temperature must be a number >= 0"),
    (dict(max_new_tokens=2, top_k=0), "top_k must be a positive int"),
])
def test_generate_refuses_bad_settings(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        model.generate([1, 2], **kwargs)


@pytest.mark.parametrize("idx, error, match", [
    (torch.tensor([[1, 2, 23]]), ValueError, "found ids from 1 to 23"),
    (torch.tensor([[0.0, 1.0]]), ValueError, "integer token ids"),
    (torch.tensor([1, 2]), ValueError, "1 dims.*idx\\[None\\]"),
    (torch.zeros(2, 0, dtype=torch.long), ValueError, "holds no tokens"),
    (torch.zeros(1, 13, dtype=torch.long), ValueError, "longer than the context"),
    ([[1, 2]], TypeError, "tensor of integers, got list"),
])
def test_forward_refuses_bad_input(model, idx, error, match):
    with pytest.raises(error, match=match):
        model(idx)
    with pytest.raises(error, match=match):
        model.attention_weights(idx)


def test_range_check_is_skipped_under_compile_only(model, monkeypatch):
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    with pytest.raises(IndexError):  # what the check prevents: torch's own, cryptic error
        model(torch.tensor([[1, 99]]))


# ---------------------------------------------------------------- save and load


def test_save_and_load_round_trip_bit_exact(model, tmp_path):
    tok = CharTokenizer.from_text("abcdefghijklmnopqrstuvw")  # 23 characters
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))  # not the initialization: every bit must survive
    model.save(tmp_path / "run", tokenizer=tok)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == \
        ["config.json", "model.safetensors", "tokenizer.json"]
    again = GPT.load(tmp_path / "run")
    assert again.config == model.config and not again.training
    assert again.lm_head.weight is again.transformer.wte.weight  # still tied
    mine, theirs = model.state_dict(), again.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    idx = torch.randint(23, (2, 12))
    assert torch.equal(model(idx)[0], again(idx)[0])
    assert Tokenizer.load(tmp_path / "run" / "tokenizer.json").decode([0, 1, 2]) == "abc"
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == CONFIG.to_dict()


def test_no_pickle_is_written_or_read(model, tmp_path):
    model.save(tmp_path)
    from safetensors.torch import load_file

    tensors = load_file(str(tmp_path / "model.safetensors"))
    assert "lm_head.weight" not in tensors  # tied: stored once, as transformer.wte.weight
    assert not (tmp_path / "model.safetensors").read_bytes().startswith(b"PK")  # not a torch zip


def test_save_refuses_a_tokenizer_of_another_size_before_writing(model, tmp_path):
    with pytest.raises(ValueError, match="the tokenizer has 3 ids but the model 23"):
        model.save(tmp_path / "run", tokenizer=CharTokenizer.from_text("abc"))
    assert not (tmp_path / "run").exists()


def test_an_interrupted_save_keeps_the_old_files(model, tmp_path, monkeypatch):
    model.save(tmp_path)
    before = (tmp_path / "model.safetensors").read_bytes()

    def crash(tensors, path, metadata=None):
        open(path, "wb").write(b"half a file")
        raise KeyboardInterrupt  # killed mid-write

    import safetensors.torch
    monkeypatch.setattr(safetensors.torch, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        model.save(tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert GPT.load(tmp_path).config == CONFIG


def test_atomic_write_replaces_in_one_step(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    atomic_write(target, lambda p: p.write_text("new"))
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_load_errors_say_what_is_wrong(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="has no config.json.*GPT.save.*load_gpt2"):
        GPT.load(tmp_path / "nothing-here")
    model.save(tmp_path)
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable safetensors file.*truncated"):
        GPT.load(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(data)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        GPT.load(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        GPT.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**CONFIG.to_dict(), "n_layers": 2}))
    with pytest.raises(ValueError, match="unknown GPTConfig field"):
        GPT.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**CONFIG.to_dict(), "n_layer": 3}))
    with pytest.raises(ValueError, match=r"do not fit config.json \(missing \['transformer.h.2"):
        GPT.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**CONFIG.to_dict(), "vocab_size": 30}))
    with pytest.raises(ValueError, match=r"transformer.wte.weight: \(23, 16\) but config.json"):
        GPT.load(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        GPT.load(tmp_path)


def test_load_onto_a_device(model, tmp_path):
    model.save(tmp_path)
    assert GPT.load(tmp_path, device="cpu").lm_head.weight.device.type == "cpu"


def test_load_model_returns_the_model_its_tokenizer_and_finetune_json(model, tmp_path):
    from llmlib.checkpoint import save_model
    from llmlib.gpt import load_model
    tok = CharTokenizer.from_text("abcdefghijklmnopqrstuvw")  # 23 characters
    model.save(tmp_path / "plain", tokenizer=tok)
    again, tokenizer, meta = load_model(tmp_path / "plain")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  again.state_dict().values()))
    assert type(tokenizer) is CharTokenizer and tokenizer.encode("cab") == tok.encode("cab")
    assert meta == {} and not again.training
    info = {"task": "instruct", "prompt_template": "Q: {prompt}\nA: ", "note": "é"}
    save_model(tmp_path / "tuned", model, tok, info)
    assert load_model(tmp_path / "tuned")[2] == info
    assert (tmp_path / "tuned" / "finetune.json").read_text(encoding="utf-8").endswith("}\n")


def test_load_model_errors_name_the_file_and_the_fix(model, tmp_path):
    from llmlib.gpt import load_model
    model.save(tmp_path)
    with pytest.raises(FileNotFoundError, match="has no tokenizer.json: pass a folder written by"):
        load_model(tmp_path)
    model.save(tmp_path, tokenizer=CharTokenizer.from_text("abcdefghijklmnopqrstuvw"))
    meta = tmp_path / "finetune.json"
    for text, message in [("{", r"finetune.json is not valid JSON \(line 1, column 2\).*delete"),
                          ("[]", "must hold a JSON object"),
                          ('{"prompt_template": "no slot"}', "{prompt} slot"),
                          ('{"task": "classify"}', "labels must be a non-empty list")]:
        meta.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_model(tmp_path)
