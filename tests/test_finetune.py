"""Chapter 8: task data, the classifier, instruction tuning, LoRA (against PEFT) and
`llmlib finetune`."""

from __future__ import annotations

import copy
import json
import math
import string
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from llmlib import cli
from llmlib.finetune import (FinetuneConfig, GPTClassifier, count_trainable, freeze,
                             frozen_features, pool, save_finetuned, train_loop, train_probe)
from llmlib.generate import generate
from llmlib.gpt import GPT, GPTConfig
from llmlib.lora import (LoRALinear, add_lora, load_adapter, lora_modules, merge_lora,
                         save_adapter)
from llmlib.tasks import (IGNORE, PROMPT_TEMPLATE, answer, classification_metrics,
                          collate_classify, collate_instruct, encode_records, exact_match,
                          few_shot_prompt, format_prompt, read_records, wilson_interval)
from llmlib.tokenizers import CharTokenizer

from conftest import ROOT

ALPHABET = string.ascii_letters + ":. \n?_"
EOT = "<|endoftext|>"


@pytest.fixture(scope="module")
def tokenizer() -> CharTokenizer:
    return CharTokenizer.from_text(ALPHABET, [EOT])


def tiny_gpt(tokenizer, seed=0, context_length=96, n_layer=2) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=context_length,
                         n_layer=n_layer, n_head=2, n_embd=16)).eval()


def write(path, records) -> str:
    path.write_text(records if isinstance(records, str) else json.dumps(records))
    return str(path)


# ---------------------------------------------------------------- LoRA against PEFT


def peft_pair(tokenizer, rank=4, alpha=8.0, targets=("c_attn", "c_proj", "c_fc")):
    from peft import LoraConfig, get_peft_model

    base = tiny_gpt(tokenizer)
    ours = copy.deepcopy(base)
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=list(targets)))
    names = add_lora(ours, rank=rank, alpha=alpha, targets=[f"attn.{t}" for t in targets] +
                     [f"mlp.{t}" for t in targets])
    torch.manual_seed(1)
    with torch.no_grad():
        for name, module in lora_modules(ours).items():
            layer = theirs.base_model.model.get_submodule(name)
            module.lora_A.copy_(layer.lora_A["default"].weight)
            module.lora_B.normal_()
            layer.lora_B["default"].weight.copy_(module.lora_B)
    return base, ours, theirs, names


@pytest.mark.parametrize("rank, alpha, targets", [(4, 8.0, ("c_attn", "c_proj", "c_fc")),
                                                  (2, 5.0, ("c_attn",)), (8, 1.0, ("c_fc",))])
def test_lora_equals_peft_outputs_and_gradients(tokenizer, rank, alpha, targets):
    _, ours, theirs, names = peft_pair(tokenizer, rank, alpha, targets)
    peft_names = {n.removeprefix("base_model.model.").rsplit(".lora_", 1)[0]
                  for n, p in theirs.named_parameters() if p.requires_grad}
    assert set(names) == peft_names
    assert count_trainable(ours) == count_trainable(theirs)
    x = torch.randint(0, tokenizer.vocab_size, (3, 20))
    logits_ours, loss_ours = ours(x, x)
    logits_peft, loss_peft = theirs(x, x)
    assert torch.allclose(logits_ours, logits_peft, atol=1e-6, rtol=0)
    loss_ours.backward()
    loss_peft.backward()
    for name, module in lora_modules(ours).items():
        layer = theirs.base_model.model.get_submodule(name)
        torch.testing.assert_close(module.lora_A.grad, layer.lora_A["default"].weight.grad,
                                   atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(module.lora_B.grad, layer.lora_B["default"].weight.grad,
                                   atol=1e-6, rtol=1e-5)
    # only the adapters train: every other parameter has no gradient
    assert all(p.grad is None for n, p in ours.named_parameters() if "lora_" not in n)


def test_a_new_adapter_starts_equal_to_its_base(tokenizer):
    base = tiny_gpt(tokenizer)
    adapted = copy.deepcopy(base)
    add_lora(adapted, rank=3)
    x = torch.randint(0, tokenizer.vocab_size, (2, 10))
    assert torch.equal(base(x)[0], adapted(x)[0])
    layer = lora_modules(adapted)["transformer.h.0.attn.c_attn"]
    assert layer.scaling == 2.0 and torch.all(layer.lora_B == 0)
    bound = 1 / layer.base.in_features ** 0.5  # Kaiming uniform with a = sqrt(5)
    assert layer.lora_A.abs().max() <= bound and layer.lora_A.std() > bound / 3


def test_merge_and_unmerge(tokenizer, tmp_path):
    _, ours, _, _ = peft_pair(tokenizer)
    x = torch.randint(0, tokenizer.vocab_size, (2, 16))
    with torch.no_grad():
        expected = ours(x)[0]
        layer = lora_modules(ours)["transformer.h.1.mlp.c_fc"]
        original = layer.base.weight.clone()
        layer.merge()
        assert layer.merged and torch.allclose(ours(x)[0], expected, atol=1e-5, rtol=0)
        layer.unmerge()
        assert torch.allclose(layer.base.weight, original, atol=1e-6, rtol=0)
        merged = merge_lora(copy.deepcopy(ours))
        assert not lora_modules(merged)
        assert type(merged.transformer.h[0].attn.c_attn) is nn.Linear
        assert torch.allclose(merged(x)[0], expected, atol=1e-5, rtol=0)
    merged.save(tmp_path / "m", tokenizer)
    assert torch.allclose(GPT.load(tmp_path / "m")(x)[0], expected, atol=1e-5, rtol=0)


def test_adapters_save_and_load_alone(tokenizer, tmp_path):
    base, ours, _, _ = peft_pair(tokenizer)
    save_adapter(ours, tmp_path / "adapter")
    reloaded = copy.deepcopy(base)
    load_adapter(reloaded, tmp_path / "adapter")
    x = torch.randint(0, tokenizer.vocab_size, (2, 12))
    with torch.no_grad():
        assert torch.equal(reloaded(x)[0], ours(x)[0])
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["rank"] == 4 and config["alpha"] == 8.0


def test_lora_errors(tokenizer, tmp_path):
    model = tiny_gpt(tokenizer)
    with pytest.raises(ValueError, match="rank must be"):
        add_lora(copy.deepcopy(model), rank=0)
    with pytest.raises(ValueError, match="no nn.Linear"):
        add_lora(copy.deepcopy(model), targets=("nothing",))
    with pytest.raises(TypeError, match="wraps an nn.Linear"):
        LoRALinear(nn.Conv1d(2, 2, 1))
    with pytest.raises(ValueError, match="no LoRA adapters"):
        save_adapter(model, tmp_path / "none")
    adapted = copy.deepcopy(model)
    add_lora(adapted)
    with pytest.raises(ValueError, match="already has LoRA"):
        add_lora(adapted)
    save_adapter(adapted, tmp_path / "a")
    with pytest.raises(FileNotFoundError, match="no adapter_config.json"):
        load_adapter(copy.deepcopy(model), tmp_path / "missing")
    wider = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=96, n_layer=2,
                          n_head=2, n_embd=32))
    with pytest.raises(ValueError, match="does not fit this model"):
        load_adapter(wider, tmp_path / "a")
    (tmp_path / "a" / "adapter.safetensors").write_bytes(b"\0" * 20)
    with pytest.raises(ValueError, match="unreadable adapter"):
        load_adapter(copy.deepcopy(model), tmp_path / "a")
    with pytest.raises(ValueError, match="merge_lora"):
        save_finetuned(adapted, tmp_path / "out", tokenizer)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- records


def test_read_records_accepts_both_instruction_forms_and_extra_keys(tmp_path):
    records = [{"input": "say hi", "output": "hi"},
               {"instruction": "say", "input": "", "output": "hi", "task": "x"}]
    assert read_records(write(tmp_path / "r.json", records), "instruct") == records
    assert format_prompt(records[0]) == "Instruction: say hi\nResponse: "
    assert format_prompt(records[1]) == "Instruction: say\nResponse: "
    assert format_prompt({"instruction": "a", "input": "b", "output": "c"}) == \
        "Instruction: a\nInput: b\nResponse: "
    assert PROMPT_TEMPLATE.replace("{prompt}", "say hi") == format_prompt(records[0])


@pytest.mark.parametrize("text, task, message", [
    ("[{", "classify", "is not valid JSON"),
    ('{"text": "a", "label": "b"}', "classify", "non-empty JSON list"),
    ("[]", "classify", "an empty list"),
    ('[{"text": "a", "label": "b"}, 3]', "classify", "record 1: a record is a JSON object"),
    ('[{"text": "a"}]', "classify", "record 0 has no 'label'"),
    ('[{"text": "a", "label": 2}]', "classify", "'label' must be a string, got int"),
    ('[{"text": " ", "label": "b"}]', "classify", "'text' is empty"),
    ('[{"text": "a", "label": "x"}]', "classify", "unknown label 'x'"),
    ('[{"output": "a"}]', "instruct", "has no 'input'"),
    ('[{"instruction": "a", "output": "b"}]', "instruct", "has no 'input'"),
    ('[{"instruction": "", "input": "", "output": "b"}]', "instruct", "'instruction' is empty"),
    ('[{"input": "q", "output": ""}]', "instruct", "'output' is empty"),
])
def test_bad_records_name_the_file_and_the_record(tmp_path, text, task, message):
    path = write(tmp_path / "bad.json", text)
    with pytest.raises(ValueError, match=message) as info:
        read_records(path, task, labels=["b"] if task == "classify" else None)
    assert str(path) in str(info.value)


def test_read_records_missing_file_and_bad_task(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_records(tmp_path / "nope.json", "classify")
    with pytest.raises(ValueError, match="task must be"):
        read_records(tmp_path / "nope.json", "summarize")


def test_encode_records_truncates_texts_and_refuses_long_answers(tokenizer):
    records = [{"text": "ab" * 60, "label": "b"}, {"text": "abc", "label": "a"}]
    encoded, cut = encode_records(records, "classify", tokenizer, 50, ["a", "b"])
    assert cut == 1 and [len(ids) for ids, _ in encoded] == [50, 3]
    assert [y for _, y in encoded] == [1, 0]
    pairs, _ = encode_records([{"input": "hi", "output": "yo"}], "instruct", tokenizer, 50)
    (ids, n_prompt), = pairs
    assert tokenizer.decode(ids[:n_prompt]) == "Instruction: hi\nResponse: "
    assert tokenizer.decode(ids[n_prompt:]) == "yo" + EOT
    long = [{"input": "hi", "output": "yo"}, {"input": "a" * 60, "output": "b"}]
    with pytest.raises(ValueError, match=r"1 record\(s\) \(the first: record 1\)"):
        encode_records(long, "instruct", tokenizer, 50, source="f.json")
    with pytest.raises(ValueError, match="f.json, record 0: the model's tokenizer cannot"):
        encode_records([{"input": "ÿ", "output": "b"}], "instruct", tokenizer, 50,
                       source="f.json")


def test_the_masked_loss_is_the_loss_of_the_responses_alone(tokenizer):
    model = tiny_gpt(tokenizer)
    records = [{"input": "who", "output": "romeo"}, {"input": "what is it", "output": "a"},
               {"instruction": "name", "input": "sir toby", "output": "toby"}]
    batch, _ = encode_records(records, "instruct", tokenizer, 96)
    idx, targets = collate_instruct(batch, pad_id=0)
    assert idx.shape == targets.shape == (3, max(len(ids) for ids, _ in batch) - 1)
    for row, (ids, n_prompt) in enumerate(batch):
        assert torch.all(targets[row, :n_prompt - 1] == IGNORE)
        assert targets[row, n_prompt - 1:len(ids) - 1].tolist() == ids[n_prompt:]
        assert torch.all(targets[row, len(ids) - 1:] == IGNORE)
    with torch.no_grad():
        masked = model(idx, targets)[1]
        total, count = 0.0, 0
        for ids, n_prompt in batch:
            logits = model(torch.tensor([ids[:-1]]))[0][0]
            total += F.cross_entropy(logits[n_prompt - 1:], torch.tensor(ids[n_prompt:]),
                                     reduction="sum").item()
            count += len(ids) - n_prompt
    assert abs(masked.item() - total / count) < 1e-6


def test_metrics_by_hand():
    scores = classification_metrics([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3)
    assert scores["accuracy"] == pytest.approx(4 / 6)
    # F1 per class: 0: p 1/2 r 1/2 -> 1/2; 1: p 1 r 1/2 -> 2/3; 2: p 2/3 r 1 -> 4/5
    assert scores["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 4 / 5) / 3)
    assert scores["confusion"].tolist() == [[1, 0, 1], [1, 1, 0], [0, 0, 2]]
    never = classification_metrics([0, 0], [0, 1], 2)  # a class never predicted scores 0
    assert never["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)


def test_few_shot_prompt_and_exact_match():
    shot = {"input": "one", "output": "1"}
    prompt = few_shot_prompt([shot], {"input": "two", "output": "2"})
    assert prompt == ("Instruction: one\nResponse: 1\n\nInstruction: two\nResponse: ")
    assert exact_match(["1", " 2", "x"], [{"output": "1"}, {"output": "2"}, {"output": "3"}]) \
        == pytest.approx(1 / 3)


# -------------------------------------------------- the classifier, freezing, the loop


def test_the_classifier_reads_the_last_real_token(tokenizer):
    clf = GPTClassifier(tiny_gpt(tokenizer), ["a", "b", "c"]).eval()
    texts = ["romeo and juliet", "sir", "a"]
    idx, lengths, labels = collate_classify([(tokenizer.encode(t), i)
                                             for i, t in enumerate(texts)], pad_id=3)
    assert idx.shape == (3, 16) and lengths.tolist() == [16, 3, 1] and labels.tolist() == [0, 1, 2]
    with torch.no_grad():
        batched = clf.features(idx, lengths)
        for row, text in enumerate(texts):
            ids = torch.tensor([tokenizer.encode(text)])
            alone = clf.gpt.transformer(ids)[0, -1]
            assert torch.allclose(batched[row], alone, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="two or more distinct labels"):
        GPTClassifier(clf.gpt, ["a", "a"])


def test_mean_pooling_averages_the_real_tokens_only(tokenizer):
    clf = GPTClassifier(tiny_gpt(tokenizer), ["a", "b"], pooling="mean").eval()
    texts = ["romeo and juliet", "sir"]
    idx, lengths, _ = collate_classify([(tokenizer.encode(t), 0) for t in texts], pad_id=3)
    with torch.no_grad():
        batched = clf.features(idx, lengths)
        hidden = clf.gpt.transformer(idx)
        for row, text in enumerate(texts):
            alone = clf.gpt.transformer(torch.tensor([tokenizer.encode(text)]))[0].mean(0)
            assert torch.allclose(batched[row], alone, atol=1e-6, rtol=0)
        assert torch.equal(pool(hidden, lengths, "last"), hidden[[0, 1], [15, 2]])
    with pytest.raises(ValueError, match="pooling must be one of"):
        GPTClassifier(clf.gpt, ["a", "b"], pooling="max")


def test_frozen_features_and_a_probe_that_separates_them(tokenizer):
    gpt = tiny_gpt(tokenizer)
    texts = ["romeo and juliet", "sir", "a", "twelfth night"]
    examples = [(tokenizer.encode(t), i % 2) for i, t in enumerate(texts)]
    features = frozen_features(gpt, examples, pad_id=3, batch_size=3)  # two batches
    idx, lengths, _ = collate_classify(examples, pad_id=3)
    for pooling in ("last", "mean"):
        expected = GPTClassifier(gpt, ["a", "b"], pooling).eval().features(idx, lengths)
        assert torch.allclose(features[pooling], expected.detach(), atol=1e-6, rtol=0)
    torch.manual_seed(0)
    x = torch.randn(64, 8) + 3.0
    y = (x[:, 0] > 3.0).long()  # linearly separable, far from the origin: standardizing matters
    probe = train_probe({"train": x, "val": x}, {"train": y, "val": y}, 2,
                        FinetuneConfig(epochs=30, batch_size=16, lr=0.05, patience=30))
    assert (probe(x).argmax(-1) == y).float().mean() > 0.95


def test_wilson_interval_solves_the_score_test():
    for hits, n in ((0, 10), (3, 10), (37, 200), (200, 200)):
        low, high = wilson_interval(hits, n)
        assert 0 <= low <= hits / n <= high <= 1
        for bound in (low, high):
            if 0 < bound < 1:  # the score statistic equals z at both ends
                z = abs(hits / n - bound) / math.sqrt(bound * (1 - bound) / n)
                assert z == pytest.approx(1.96, abs=1e-9)
    assert wilson_interval(0, 10)[0] == 0 and wilson_interval(10, 10)[1] == 1
    with pytest.raises(ValueError, match="need 0 <= hits <= n"):
        wilson_interval(5, 4)


def test_classifier_save_and_load(tokenizer, tmp_path):
    clf = GPTClassifier(tiny_gpt(tokenizer), ["comedy", "tragedy"])
    save_finetuned(clf, tmp_path / "c", tokenizer, note="x")
    again = GPTClassifier.load(tmp_path / "c")
    texts = ["sir toby", "romeo: ay me"]
    assert again.predict(texts, tokenizer) == clf.predict(texts, tokenizer)
    assert json.loads((tmp_path / "c" / "finetune.json").read_text())["note"] == "x"
    GPT.load(tmp_path / "c")  # the body loads as a pretrained model
    save_finetuned(GPTClassifier(clf.gpt, clf.labels, pooling="mean"), tmp_path / "m", tokenizer)
    assert GPTClassifier.load(tmp_path / "m").pooling == "mean"
    with pytest.raises(FileNotFoundError, match="holds no classifier"):
        GPTClassifier.load(tmp_path / "nothing")


def test_freeze_stops_gradients_below_block_n(tokenizer):
    model = tiny_gpt(tokenizer, n_layer=3).train()
    freeze(model, 2)
    x = torch.randint(0, tokenizer.vocab_size, (2, 8))
    model(x, x)[1].backward()
    for name, p in model.named_parameters():
        frozen = name.startswith(("transformer.wte", "transformer.wpe", "transformer.h.0.",
                                  "transformer.h.1."))
        assert p.requires_grad != frozen and (p.grad is None) == frozen, name
    freeze(tiny_gpt(tokenizer), 0)
    with pytest.raises(ValueError, match=r"int in \[0, 2\]"):
        freeze(tiny_gpt(tokenizer), 3)


def test_train_loop_learns_stops_early_and_keeps_the_best(tokenizer):
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    w = torch.tensor([[2.0, -1.0, 0.5, 0.0]])
    xs = torch.randn(200, 4)
    examples = [(x, int((x @ w.T).item() > 0)) for x in xs]

    def collate(batch):
        return torch.stack([x for x, _ in batch]), torch.tensor([y for _, y in batch])

    def loss_of(batch):
        return F.cross_entropy(model(batch[0]), batch[1])

    first = loss_of(collate(examples[150:])).item()
    result = train_loop(model, loss_of, examples[:150], examples[150:], collate,
                        FinetuneConfig(epochs=20, lr=0.1, batch_size=16, patience=3),
                        progress=False)
    with torch.no_grad():
        final = loss_of(collate(examples[150:])).item()
    assert final == pytest.approx(result.best_val, abs=1e-6) and final < first / 3
    assert result.best_val == min(result.evals["val"])
    assert result.stopped_early == (len(result.history["step"]) < 20 * 10)
    with pytest.raises(ValueError, match="need training and validation"):
        train_loop(model, loss_of, [], examples, collate, FinetuneConfig(), progress=False)
    with pytest.raises(ValueError, match="epochs must be"):
        FinetuneConfig(epochs=0)


def test_answer_decodes_greedily_and_stops(tokenizer):
    model = tiny_gpt(tokenizer)
    prompts = ["Instruction: a\nResponse: ", "Instruction: bb\nResponse: "]
    answers = answer(model, tokenizer, prompts, max_new_tokens=6)
    for prompt, got in zip(prompts, answers):
        ids = generate(model, tokenizer.encode(prompt), 6, temperature=0)
        text = tokenizer.decode(ids[len(tokenizer.encode(prompt)):]).replace(EOT, "\n")
        assert got == text.split("\n")[0].strip()


# ---------------------------------------------------------------- llmlib finetune


@pytest.fixture(scope="module")
def files(tmp_path_factory, tokenizer):
    folder = tmp_path_factory.mktemp("finetune")
    tiny_gpt(tokenizer).save(folder / "base", tokenizer)
    words = ["romeo", "juliet", "toby", "maria", "hamlet", "horatio"]
    classify = [{"text": f"{w} {w}: {'ay me' if i % 2 else 'sir'}", "label": "ab"[i % 2]}
                for i, w in enumerate(words * 4)]
    instruct = [{"instruction": "who speaks?", "input": f"{w.upper()}: hi", "output": w}
                for w in words * 3]
    return {"dir": folder, "base": str(folder / "base"),
            "classify": write(folder / "c.json", classify),
            "instruct": write(folder / "i.json", instruct)}


def run_finetune(files, *flags):
    return cli.main(["finetune", "--model", files["base"], "--epochs", "1", "--batch-size", "8",
                     *flags])


def test_cli_classify_with_lora_writes_a_loadable_model_and_adapter(files, tokenizer, capsys):
    out = files["dir"] / "clf"
    assert run_finetune(files, "--task", "classify", "--data", files["classify"], "--out",
                        str(out), "--lora-rank", "2", "--test", files["classify"],
                        "--pooling", "mean") == 0
    printed = capsys.readouterr().out
    assert "trainable parameters" in printed and "test:" in printed
    clf = GPTClassifier.load(out)
    assert clf.labels == ["a", "b"] and clf.pooling == "mean"
    # the saved model is the base plus the merged adapter
    base = GPT.load(files["base"])
    load_adapter(base, out / "adapter")
    x = torch.randint(0, tokenizer.vocab_size, (2, 10))
    with torch.no_grad():
        assert torch.allclose(base(x)[0], clf.gpt(x)[0], atol=1e-5, rtol=0)


def test_cli_log_is_plain_lines_when_stdout_is_a_pipe(files, tmp_path):
    """`llmlib finetune > log.txt`: one plain line per evaluation, no bar redraws ('\r')."""
    done = subprocess.run([sys.executable, "-m", "llmlib", "finetune", "--model", files["base"],
                           "--task", "classify", "--data", files["classify"], "--epochs", "2",
                           "--batch-size", "8", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stdout and "\r" not in done.stderr and "finetune:" not in done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("step ")]
    assert len(lines) == 4, done.stdout  # 2 epochs x 2 evaluations
    for line in lines:
        fields = line.split(" | ")
        assert [f.split()[0] for f in fields[:5]] == ["step", "epoch", "train", "val", "lr"]
        assert fields[5].endswith("examples/s")
        float(fields[2].split()[1]), float(fields[3].split()[1]), float(fields[4].split()[1])


def test_train_loop_logs_one_line_per_evaluation(capsys):
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    examples = [(torch.randn(2), i % 2) for i in range(40)]

    def collate(batch):
        return torch.stack([x for x, _ in batch]), torch.tensor([y for _, y in batch])

    def loss_of(batch):
        return F.cross_entropy(model(batch[0]), batch[1])

    result = train_loop(model, loss_of, examples[:32], examples[32:], collate,
                        FinetuneConfig(epochs=2, batch_size=8, patience=9))
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("step 2/8 | epoch 0.5 | train ") and len(printed) == 4
    assert result.evals["step"] == [2, 4, 6, 8]
    assert result.evals["train"][0] == pytest.approx(sum(result.history["loss"][:2]) / 2)
    assert len(result.evals["lr"]) == len(result.evals["examples_per_s"]) == 4
    train_loop(model, loss_of, examples[:32], examples[32:], collate,
               FinetuneConfig(epochs=1, batch_size=8), progress=False)
    assert capsys.readouterr().out == ""


def test_cli_instruct_then_generate_answers(files, tokenizer, capsys):
    out = files["dir"] / "chat"
    assert run_finetune(files, "--task", "instruct", "--data", files["instruct"], "--out",
                        str(out), "--freeze-layers", "1", "--lr", "1e-3") == 0
    capsys.readouterr()
    saved = json.loads((out / "finetune.json").read_text())
    assert saved["task"] == "instruct" and saved["prompt_template"] == PROMPT_TEMPLATE
    model = GPT.load(out)
    assert cli.main(["generate", "--model", str(out), "--prompt", "who speaks?\nInput: TOBY: hi",
                     "--temperature", "0", "--max-new-tokens", "8"]) == 0
    printed = capsys.readouterr().out
    prompt = tokenizer.encode("Instruction: who speaks?\nInput: TOBY: hi\nResponse: ")
    ids = generate(model, prompt, 8, temperature=0,
                   stop_tokens=[tokenizer.special_tokens[EOT]])
    assert printed == tokenizer.decode(ids[len(prompt):]).replace(EOT, "") + "\n"


@pytest.mark.parametrize("flags, message", [
    (["--task", "classify", "--data", "{instruct}"], "has no 'text'"),
    (["--task", "instruct", "--data", "{classify}"], "has no 'input'"),
    (["--task", "classify", "--data", "{dir}/nope.json"], "not found"),
    (["--task", "classify", "--data", "{classify}", "--lora-rank", "2", "--freeze-layers", "1"],
     "drop --freeze-layers"),
    (["--task", "classify", "--data", "{classify}", "--freeze-layers", "5"], "int in [0, 2]"),
    (["--task", "classify", "--data", "{classify}", "--epochs", "0"], "epochs must be"),
    (["--task", "classify", "--data", "{classify}", "--lr", "-1"], "lr > 0"),
    (["--task", "classify", "--data", "{classify}", "--lr", "0"], "lr > 0"),
    (["--task", "classify", "--data", "{classify}", "--val", "{instruct}"], "has no 'text'"),
    (["--task", "instruct", "--data", "{long}"], "longer context"),
    (["--task", "instruct", "--data", "{unencodable}"], "record 1: the model's tokenizer"),
    (["--task", "classify", "--data", "{one_label}"], "needs two or more"),
    (["--task", "classify", "--data", "{classify}", "--device", "tpu9"], "--device"),
    (["--task", "classify", "--data", "{classify}", "--device", "cuda:7"
      if not torch.cuda.is_available() else "mps:0"], "no such device"),
])
def test_cli_bad_input_fails_before_training_and_writes_nothing(files, capsys, flags, message):
    folder = files["dir"]
    write(folder / "long.json", [{"input": "a", "output": "b"},
                                 {"input": "a" * 200, "output": "b"}])
    write(folder / "unencodable.json", [{"input": "a", "output": "b"},
                                        {"input": "ÿ", "output": "b"},
                                        {"input": "c", "output": "d"}])
    write(folder / "one_label.json", [{"text": "a", "label": "x"},
                                      {"text": "b", "label": "x"}])
    flags = [f.format(classify=files["classify"], instruct=files["instruct"], dir=folder,
                      long=folder / "long.json", unencodable=folder / "unencodable.json",
                      one_label=folder / "one_label.json") for f in flags]
    out = folder / "never"
    assert run_finetune(files, *flags, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmlib: error:") and message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_cli_never_overwrites_and_checks_the_model(files, capsys, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    args = ["--task", "classify", "--data", files["classify"]]
    assert run_finetune(files, *args, "--out", str(tmp_path / "taken")) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    assert cli.main(["finetune", *args, "--model", str(tmp_path), "--out",
                     str(tmp_path / "o")]) == 2
    assert "no tokenizer.json" in capsys.readouterr().err


def test_generate_refuses_a_damaged_template(files, capsys, tmp_path):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(files["base"], folder)
    (folder / "finetune.json").write_text('{"prompt_template": "no slot"}')
    assert cli.main(["generate", "--model", str(folder), "--prompt", "a"]) == 2
    assert "{prompt} slot" in capsys.readouterr().err


def test_cli_reads_a_config_file_and_flags_override_it(files, capsys, tmp_path):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"task": "classify", "data": files["classify"], "epochs": 5,
                                  "lr": 1e-3, "evals_per_epoch": 1}))
    out = tmp_path / "clf"
    assert run_finetune(files, "--config", str(config), "--out", str(out)) == 0  # --epochs 1
    saved = json.loads((out / "finetune.json").read_text())["settings"]
    assert (saved["epochs"], saved["lr"], saved["evals_per_epoch"]) == (1, 1e-3, 1)
    capsys.readouterr()
    config.write_text(json.dumps({"task": "classify", "out": "elsewhere"}))
    assert run_finetune(files, "--config", str(config), "--out", str(tmp_path / "o")) == 2
    assert "unknown setting(s) ['out']" in capsys.readouterr().err
    assert cli.main(["finetune", "--model", files["base"], "--out", str(tmp_path / "o")]) == 2
    assert "--task is required" in capsys.readouterr().err


def test_cli_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit):
        cli.main(["finetune", "--help"])
    out = capsys.readouterr().out
    for flag in ("--task", "--data", "--val", "--test", "--model", "--out", "--lora-rank",
                 "--lora-alpha", "--freeze-layers", "--epochs", "--lr", "--batch-size",
                 "--patience", "--seed", "--device"):
        assert flag in out


# ---------------------------------------------------------------- the data


def test_the_committed_data_is_the_scripts_output_and_split_by_works():
    done = subprocess.run([sys.executable, str(ROOT / "data" / "make_finetune.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = ROOT / "data" / "finetune"
    records = {(kind, s): read_records(folder / f"{kind}_{s}.json", task)
               for kind, task in (("genre", "classify"), ("instruct", "instruct"))
               for s in ("train", "val", "test")}
    for kind in ("genre", "instruct"):  # the play task asks about the training works
        works = {s: {r["work"] for r in records[kind, s] if r.get("task") != "play"}
                 for s in ("train", "val", "test")}
        assert not works["train"] & works["val"] and not works["train"] & works["test"]
        assert not works["val"] & works["test"]
    # ...from stretches of each play that belong to one split: no passage in two splits
    play = {s: [r for r in records["instruct", s] if r["task"] == "play"]
            for s in ("train", "val", "test")}
    assert {r["work"] for s in play for r in play[s]} <= works["train"]
    seen = {r["input"][i:i + 40] for r in play["train"] for i in range(0, 110, 10)}
    assert not any(r["input"][i:i + 40] in seen for s in ("val", "test") for r in play[s]
                   for i in range(0, 110, 10))
    genres = {r["label"] for r in read_records(folder / "genre_test.json", "classify")}
    assert genres == {"comedy", "history", "tragedy", "poem"}


def test_classifier_folder_errors_name_finetune_json(tmp_path):
    """GPTClassifier.load reads finetune.json through llmlib.checkpoint: a damaged one names the
    file and the fix."""
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=11, context_length=8, n_layer=1, n_head=1, n_embd=8))
    GPTClassifier(gpt, ["a", "b"]).save(tmp_path / "c", note="x")
    assert GPTClassifier.load(tmp_path / "c").labels == ["a", "b"]
    (tmp_path / "c" / "finetune.json").write_text('{"task": "classify"')
    with pytest.raises(ValueError, match=r"finetune.json is not valid JSON \(line 1"):
        GPTClassifier.load(tmp_path / "c")
    (tmp_path / "c" / "finetune.json").write_text('{"task": "classify", "labels": []}')
    with pytest.raises(ValueError, match="labels must be a non-empty list"):
        GPTClassifier.load(tmp_path / "c")
