"""List measured numbers typed into a chapter's markdown (they belong in glue)."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

# a number, then a unit of something measured: time, share, ratio, speed, size, loss
UNITS = ("ms", "µs", "s", "sec", "seconds?", "min", "minutes?", "hours?", "%", "×", "x", "tok/s",
         "tokens/s", "tokens per second", "[kMG]i?B", "MB", "GB", "kB", "TFLOP/s", "GFLOP/s",
         "bits per (?:byte|character|char|token)", "bpb", "nats?")
MEASURED = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)\s*(" + "|".join(UNITS) + r")(?!\w)")
GLUE = re.compile(r"\{glue(?::\w+)?\}`[^`]+`")
CODE = re.compile(r"``.*?``|`[^`]*`", re.S)
MATH = re.compile(r"\$\$.*?\$\$|\$[^$]*\$", re.S)
FENCE = re.compile(r"```.*?```", re.S)


def typed_numbers(text: str) -> list[str]:
    for pattern in (FENCE, GLUE, CODE, MATH):
        text = pattern.sub(" ", text)
    return [m.group(0) for m in MEASURED.finditer(text)]


if __name__ == "__main__":
    for path in map(Path, sys.argv[1:]):
        if path.suffix == ".md":
            texts = [path.read_text(encoding="utf-8")]
        else:
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            texts = ["".join(c["source"]) if c["cell_type"] == "markdown" else "" for c in cells]
        for i, text in enumerate(texts):
            hits = typed_numbers(text)
            if hits:
                print(f"{path.name} c{i}: {hits}")
