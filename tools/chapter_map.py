"""The chapter map: the table near the top of every chapter, the same rows everywhere.

Each chapter's first cell shows the whole course, with its own row in bold. The rows live here
once; `python tools/chapter_map.py` rewrites the table in every chapter, and tests/test_prose.py
fails when a chapter's table differs from `chapter_map(name)`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "| chapter | exports | builds |\n|---|---|---|"
# (notebook prefix, title, exports, what it builds)
ROWS = (
    ("00", "0 Setup", "device, files, corpus, checks, command, book",
     ("devices, run modes, seeding, JSON files, the corpus, argument checks, the command line, "
      "a PyTorch primer")),
    ("01", "1 Tokenizers", "tokenizers, bpe",
     "character, word and byte-level BPE tokenizers, GPT-2's vocabulary"),
    ("02", "2 Data", "data", "token arrays, splits, datasets, loaders, embeddings"),
    ("03", "3 Attention", "attention, viz", "attention, masks, multi-head, attention views"),
    ("04", "4 Transformer block", "blocks", "LayerNorm, GELU, feed-forward, residual block"),
    ("05", "5 GPT", "gpt, checkpoint, gpt2",
     "the model, its configs, model folders (save/load), GPT-2 weights"),
    ("06", "6 Pretraining", "train, speed, pretrain, cmd_pretrain",
     "loss, AdamW, schedules, the loop, checkpoints, `llmlib pretrain`"),
    ("07", "7 Generation", "sampling, kvcache, generate, cmd_generate, playground",
     "decoding strategies, the KV cache, beam search, `llmlib generate`, the browser playground"),
    ("08", "8 Finetuning", "tasks, lora, finetune, cmd_finetune, cli",
     "classification and instruction tuning, LoRA, `llmlib finetune`"),
    ("09", "9 A modern LLM", "modern",
     "RMSNorm, SwiGLU, RoPE, grouped-query attention, QK-norm, Llama and Qwen 3 weights"),
    ("A_", "A The GPT in NumPy (appendix)", "numpy_gpt, numpy_grad, numpy_generate",
     "forward, backward by hand, AdamW and sampling with no framework"),
)
TABLE = re.compile(r"^\| chapter \| exports \| builds \|\n(?:^\|.*\n?)+", re.M)


def chapter_map(notebook_name: str) -> str:
    """The table for the chapter in `notebook_name`, its own row in bold."""
    lines = [HEADER]
    for prefix, title, exports, builds in ROWS:
        modules = ", ".join(f"`llmlib.{m.strip()}`" for m in exports.split(","))
        name = f"**{title}** (this one)" if notebook_name.startswith(prefix) else title
        lines.append(f"| {name} | {modules} | {builds} |")
    return "\n".join(lines)


def current_map(notebook: dict) -> str | None:
    """The table in a notebook's first cell, or None."""
    found = TABLE.search("".join(notebook["cells"][0]["source"]))
    return found.group().rstrip("\n") if found else None


if __name__ == "__main__":
    # every chapter, or the notebooks named on the command line
    paths = [Path(p) for p in sys.argv[1:]] or sorted((ROOT / "chapters").glob("*.ipynb"))
    for path in paths:
        nb = json.loads(path.read_text(encoding="utf-8"))
        text = "".join(nb["cells"][0]["source"])
        found = TABLE.search(text)
        if found is None or found.group().rstrip("\n") == chapter_map(path.name):
            continue
        end = "\n" if found.group().endswith("\n") else ""
        text = text[:found.start()] + chapter_map(path.name) + end + text[found.end():]
        nb["cells"][0]["source"] = text.splitlines(keepends=True)
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"updated {path.name}", file=sys.stderr)
