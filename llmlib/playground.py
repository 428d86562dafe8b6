"""The model in the reader's browser (chapter 7): a model folder as a script the rendered book can
load, and the files of a playground page that runs it with `llmlib/static/gpt.js` (the GPT in
plain JavaScript), with no kernel, no server and no network.

A page opened from disk (file://) may not `fetch` files beside it, but it may run scripts: so the
model travels as a script that carries model.safetensors in base64, with config.json and
tokenizer.json, and registers them in `LLMLIB_MODELS[name]`.
"""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save

from llmlib.checkpoint import (TOKENIZER_FILE, WEIGHTS_FILE, model_folder, read_config,
                               read_weights)
from llmlib.numpy_gpt import NumpyGPTConfig, check_weights, parameter_shapes

SCRIPTS = ("linear_wasm.js", "gpt.js", "attention_view.js", "playground.js")  # llmlib/static/, in load order
DTYPES = {"as-saved": None, "float16": np.float16, "float32": np.float32}


def static_script(name: str) -> str:
    """The text of one of llmlib's browser scripts (`llmlib/static/<name>`)."""
    return (resources.files("llmlib") / "static" / name).read_text(encoding="utf-8")


def model_payload(model: str | Path, dtype: str = "as-saved") -> dict[str, Any]:
    """What the browser needs of a model folder (or a shipped model's name): its config, its
    tokenizer's dict and model.safetensors' bytes, in `dtype` ("as-saved", "float16" to halve a
    float32 model's download, or "float32"). Refuses what gpt.js does not port, saying why."""
    folder = model_folder(model)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    config = read_config(folder)
    portable = NumpyGPTConfig.from_dict(config)  # the same model appendix A ports
    if portable.position != "learned":
        raise ValueError(f"{folder}: the playground ports learned positions, "
                         f"not {portable.position!r}")
    tokenizer = json.loads((folder / TOKENIZER_FILE).read_text(encoding="utf-8"))
    if tokenizer.get("type") != "CharTokenizer":
        raise ValueError(f"{folder}: the playground reads character tokenizers, this model's is "
                         f"a {tokenizer.get('type')}: generate with `llmlib generate` instead")
    weights = read_weights(folder / WEIGHTS_FILE, "numpy")
    if "lm_head.weight" in weights:
        raise ValueError(f"{folder}: the playground ties the head to wte, this model has its own "
                         "lm_head: keep it in torch (llmlib generate)")
    check_weights(parameter_shapes(portable), weights)  # names and shapes, before any writing
    cast = DTYPES[dtype]
    if cast is not None:
        weights = {k: w.astype(cast) for k, w in weights.items()}
    return {"config": config, "tokenizer": tokenizer, "weights": save(weights)}


def model_script(model: str | Path, name: str = "course", dtype: str = "as-saved") -> str:
    """A script that registers the model as `LLMLIB_MODELS[name]` = {config, tokenizer, weights:
    model.safetensors in base64}; `LLMLIB.load(LLMLIB_MODELS[name])` reads it (gpt.js)."""
    payload = model_payload(model, dtype)
    meta = {"config": payload["config"], "tokenizer": payload["tokenizer"]}
    weights = base64.b64encode(payload["weights"]).decode("ascii")
    return ("// The model for llmlib's playground, written by llmlib.playground.model_script.\n"
            "(self.LLMLIB_MODELS = self.LLMLIB_MODELS || {})[" + json.dumps(name) + "] = "
            + json.dumps(meta, ensure_ascii=False)[:-1] + ', "weights": "' + weights + '"};\n')


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>llmlib playground: {name}</title>
</head>
<body>
<div id="llmlib-playground" data-model="{name}"></div>
{scripts}
</body>
</html>
"""


def write_playground(out_dir: str | Path, model: str | Path = "course", name: str = "course",
                     dtype: str = "as-saved", page: bool = True) -> dict[str, Path]:
    """Write the playground's files into out_dir: the three scripts of llmlib/static, the model's
    script `<name>.model.js` and (page=True) a page `playground.html` that runs it. Open the page
    from disk or serve the folder; nothing is fetched. Returns what it wrote, by file name."""
    script = model_script(model, name, dtype)  # reads and checks the model before writing
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for file_name, text in [(s, static_script(s)) for s in SCRIPTS] + [(f"{name}.model.js",
                                                                         script)]:
        written[file_name] = out / file_name
        written[file_name].write_text(text, encoding="utf-8")
    if page:
        order = [f"{name}.model.js", *SCRIPTS]
        tags = "\n".join(f'<script src="{s}"></script>' for s in order)
        written["playground.html"] = out / "playground.html"
        written["playground.html"].write_text(PAGE.format(name=name, scripts=tags),
                                              encoding="utf-8")
    return written
