"""Genre in the course model's features along its pretraining: chapter 8's linear probe (mean
pooling, chapter 8's cpu budget and seeds) on checkpoints of the course model's run.

    python tools/probe_budget.py CHECKPOINT_DIR... --out data/models/course/probe_budget.json

Each CHECKPOINT_DIR is a model folder (model.safetensors, config.json, tokenizer.json) copied
from the run's last/ during training, with the step it was written at in `step.txt`. The JSON
holds, per checkpoint, its step, its validation loss on the book's split and the probe's test
macro-F1 (mean and standard deviation over the seeds); chapter 8 draws it beside the n-grams.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from llmlib.corpus import GENRES, find_data_dir  # noqa: E402
from llmlib.finetune import FinetuneConfig, frozen_features, train_probe  # noqa: E402
from llmlib.gpt import load_model  # noqa: E402
from llmlib.tasks import classification_metrics, encode_records, read_records  # noqa: E402
from llmlib.tokenizers import ENDOFTEXT  # noqa: E402
from llmlib.train import TrainConfig, evaluate, fixed_batches, load_corpus  # noqa: E402

EVERY = {"train": 2, "val": 1, "test": 1}  # chapter 8's cpu mode
BUDGET = dict(epochs=2, batch_size=16, lr=5e-2)
SEEDS = (0, 1, 2)


def measure(folder: Path) -> dict:
    model, tokenizer, _ = load_model(folder, device="cpu")
    labels = list(GENRES)
    data = find_data_dir() / "finetune"
    records = {s: read_records(data / f"genre_{s}.json", "classify")[::EVERY[s]]
               for s in EVERY}
    T = model.config.context_length
    examples = {s: encode_records(records[s], "classify", tokenizer, T, labels)[0]
                for s in EVERY}
    y = {s: torch.tensor([label for _, label in examples[s]]) for s in EVERY}
    counts = torch.bincount(y["train"], minlength=len(labels))
    weight = (counts.sum() / (len(labels) * counts)).float()
    eot = tokenizer.special_tokens[ENDOFTEXT]
    features = {s: frozen_features(model, examples[s], pad_id=eot)["mean"] for s in EVERY}
    f1 = []
    for seed in SEEDS:
        probe = train_probe(features, y, len(labels), FinetuneConfig(**BUDGET, seed=seed), weight)
        with torch.no_grad():
            predicted = probe(features["test"]).argmax(-1).tolist()
        f1.append(classification_metrics(predicted, y["test"].tolist(), len(labels))["macro_f1"])
    corpus = load_corpus(TrainConfig(split="book"), tokenizer)
    val = evaluate(model, corpus.val_ids, fixed_batches(corpus.val_ids, 20, 16, T, seed=1337), T)
    f1_t = torch.tensor(f1)
    return {"step": int((folder / "step.txt").read_text()), "val_loss": round(val, 4),
            "probe_mean_f1": round(f1_t.mean().item(), 4), "std": round(f1_t.std().item(), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = []
    for folder in args.checkpoints:
        rows.append(measure(folder))
        print(rows[-1], flush=True)
    rows.sort(key=lambda row: row["step"])
    args.out.write_text(json.dumps({"what": __doc__.split("\n\n")[0], "budget": BUDGET,
                                    "seeds": list(SEEDS), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
