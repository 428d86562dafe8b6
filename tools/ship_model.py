"""Ship a trained model with the course: copy a pretrain run's best checkpoint to
data/models/NAME/ of this checkout with float16 weights, its training log and its provenance.

    python tools/ship_model.py RUN_FOLDER NAME --log TRAIN_LOG --config CONFIG_JSON \\
        --command "llmlib pretrain ..." --commit SHA --machine "..." --minutes M

RUN_FOLDER is what `llmlib pretrain --out` wrote (its best/ is shipped); TRAIN_LOG is the stdout
capture of that run. The folder gets model.safetensors (float16: half the size; every loader casts
to float32), config.json, tokenizer.json, train_log.txt (the evaluation lines), provenance.json
and README.md. provenance.json records a check value: the mean cross-entropy of the shipped model
on a fixed slice of the validation works, which tests/test_course_model.py recomputes.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
# this checkout's llmlib and data/, whichever checkout the environment has installed
sys.path.insert(0, str(ROOT))
from llmlib.checkpoint import (CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE,  # noqa: E402
                               read_weights, write_weights)
from llmlib.gpt import GPT, count_parameters, load_model  # noqa: E402
from llmlib.train import (STATE_FILE, TrainConfig, fixed_batches, load_corpus,  # noqa: E402
                          windows)

CHECK_WINDOWS = 8  # the check slice: the first 8 windows of the validation works
LOG_LINE = re.compile(r"step \d+/\d+ \|[^\r\n]*")  # what pretrain logs at each evaluation
LOG_FILE, PROVENANCE_FILE, README_FILE = "train_log.txt", "provenance.json", "README.md"


def check_loss(model: GPT, val_ids: torch.Tensor, n_windows: int = CHECK_WINDOWS) -> float:
    """The mean cross-entropy (nats per token) of `model` on the first `n_windows` windows of
    context_length + 1 tokens of `val_ids` (1-D), back to back: a fixed, cheap slice."""
    T = model.config.context_length
    starts = torch.arange(n_windows) * (T + 1)  # (n_windows,)
    if int(starts[-1]) + T + 1 > len(val_ids):
        raise ValueError(f"the validation text ({len(val_ids)} tokens) is shorter than "
                         f"{n_windows} windows of {T + 1}")
    x, y = windows(val_ids, starts, T, torch.device("cpu"))  # (n_windows, T) each
    with torch.no_grad():
        return float(model.float().eval()(x, y)[1])


def log_lines(text: str) -> list[str]:
    """The evaluation lines (`step N/M | ...`) of a pretrain stdout capture, without the
    progress bars that tqdm draws over them with carriage returns."""
    return [m.group(0).rstrip() for m in LOG_LINE.finditer(text)]


def halve(source: Path, dest: Path) -> None:
    """Copy a model folder's weights as float16, refusing any that float16 cannot hold."""
    weights = read_weights(source / WEIGHTS_FILE)
    halves = {name: t.half() for name, t in weights.items()}
    bad = [name for name, t in halves.items() if not torch.isfinite(t).all()]
    if bad:
        raise ValueError(f"{bad} overflow float16 (|w| > 65504): ship this model in float32")
    write_weights(dest / WEIGHTS_FILE, halves)


def train_state(best: Path) -> dict[str, Any]:
    """The best checkpoint's train state (step, best val loss, configs): plain values only."""
    path = best / STATE_FILE
    if not path.is_file():
        hint = "pass the folder that `llmlib pretrain --out` wrote"
        raise FileNotFoundError(f"{best} has no {STATE_FILE}: {hint}")
    return torch.load(path, map_location="cpu", weights_only=True)


def measure(dest: Path, state: dict[str, Any]) -> dict[str, Any]:
    """What the shipped folder's model scores, loaded as a user loads it (float16 -> float32):
    the check slice, and the run's own fixed validation batches."""
    model, tokenizer, _ = load_model(dest, device="cpu")
    corpus = load_corpus(TrainConfig(split="book"), tokenizer)
    run = state["train_config"]
    T = model.config.context_length
    starts = fixed_batches(corpus.val_ids, run["eval_batches"], run["batch_size"], T,
                           run["seed"])
    with torch.no_grad():
        val = sum(float(model(*windows(corpus.val_ids, batch, T, torch.device("cpu")))[1])
                  for batch in starts) / len(starts)
    return {"parameters": count_parameters(model),
            "val_loss_shipped": round(val, 4),
            "bits_per_byte": round(corpus.bits_per_byte(float(state["best_val"])), 4),
            "check": {"loss": check_loss(model, corpus.val_ids), "windows": CHECK_WINDOWS,
                      "tokens_per_window": T + 1,
                      "corpus": "load_corpus(TrainConfig(split='book'), the model's tokenizer)",
                      "what": "mean cross-entropy in nats per token, float32 on the CPU"}}


def ship(args: argparse.Namespace) -> Path:
    """Write the shipped folder; returns it."""
    best = Path(args.run_folder) / "best"
    if not (best / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"{best} holds no {WEIGHTS_FILE}: pass a pretrain run's folder")
    dest = Path(args.out) if args.out else ROOT / "data" / "models" / args.name
    if dest.exists() and not args.force:
        raise FileExistsError(f"{dest} exists: pass --force to replace it")
    lines = log_lines(Path(args.log).read_text(encoding="utf-8", errors="replace"))
    if not lines:
        raise ValueError(f"{args.log} has no `step N/M | ...` lines: pass the stdout of the run")
    config = json.loads(Path(args.config).read_text(encoding="utf-8"))
    state = train_state(best)
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    halve(best, dest)
    for name in (CONFIG_FILE, TOKENIZER_FILE):
        shutil.copyfile(best / name, dest / name)
    (dest / LOG_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    provenance = {"name": args.name, "command": args.command, "config_file": args.config,
                  "config": config, "commit": args.commit, "machine": args.machine,
                  "wall_minutes": args.minutes, "step": int(state["step"]),
                  "max_steps": int(state["train_config"]["max_steps"]),
                  "train_config": state["train_config"],  # as run: the command's overrides in
                  "val_loss": round(float(state["best_val"]), 4), "weights": "float16",
                  **measure(dest, state)}
    provenance["size_bytes"] = sum(p.stat().st_size for p in dest.iterdir())
    (dest / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=1, default=str) + "\n",
                                        encoding="utf-8")
    (dest / README_FILE).write_text(readme(provenance), encoding="utf-8")
    return dest


def readme(p: dict[str, Any]) -> str:
    """The shipped folder's README: what the model is, how it was made, how to use it."""
    c = p["config"]
    shape = (f"{c.get('n_layer')} layers × {c.get('n_embd')}, {c.get('n_head')} heads, "
             f"context {c.get('context_length')}, tokenizer {c.get('tokenizer')}")
    return f"""# The course model `{p['name']}`

A GPT trained by the course's own command, shipped so that chapters 7 and 8 and
`llmlib generate --model {p['name']}` have a model without retraining one.

- shape: {shape}; {p['parameters']:,} parameters
- val loss {p['val_loss']:.4f} nats per token ({p['bits_per_byte']:.4f} bits per byte) on the
  validation works (chapter 2's VAL_WORKS; its TEST_WORKS were left out of training), at step
  {p['step']}/{p['max_steps']}; {p['val_loss_shipped']:.4f} as shipped (float16 weights)
- trained in {p['wall_minutes']} minutes on {p['machine']}, commit {p['commit']}
- size on disk: {p['size_bytes'] / 2**20:.1f} MiB (weights in float16; loaders cast to float32)

Command:

    {p['command']}

Config: `{p['config_file']}` (in provenance.json, with the settings as run). The evaluation log
is `{LOG_FILE}`. provenance.json also holds a check value that tests/test_course_model.py
recomputes.

    from llmlib.gpt import load_model
    model, tokenizer, _ = load_model("{p['name']}")
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_folder", help="the folder `llmlib pretrain --out` wrote")
    parser.add_argument("name", help="the shipped model's name, e.g. course")
    parser.add_argument("--log", required=True, help="the run's stdout capture")
    parser.add_argument("--config", required=True, help="the config JSON the run used")
    parser.add_argument("--command", required=True, help="the command that trained it")
    parser.add_argument("--commit", required=True, help="the commit it was trained at")
    parser.add_argument("--machine", required=True, help="where it was trained, in words")
    parser.add_argument("--minutes", required=True, type=float, help="training wall time")
    parser.add_argument("--out", help="the folder to write (default: data/models/NAME here)")
    parser.add_argument("--force", action="store_true", help="replace an existing folder")
    args = parser.parse_args(argv)
    if not math.isfinite(args.minutes) or args.minutes <= 0:
        parser.error(f"--minutes must be a positive number, got {args.minutes}")
    dest = ship(args)
    print(f"shipped {dest}:", (dest / PROVENANCE_FILE).read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
