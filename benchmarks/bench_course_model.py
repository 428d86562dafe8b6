"""Which shape should the course model have? Val bits per byte after the same training time.

Issue 21 asks for one model, trained once and shipped with the book, whose shape (width, depth,
context, characters or BPE) is chosen by measurement: the lowest validation loss on held-out
works for the training time there is, in bits per byte so that tokenizers compare. This script
trains each candidate for the same wall-clock budget on the book's split and prints the table.

The split is the book's (`TrainConfig(split="book")`): chapter 2's VAL_WORKS validate, its
TEST_WORKS are held out of everything, and the other works train. Each run
first times a few steps, then sets `max_steps` so that the whole cosine schedule fits the budget
(a run cut short in mid-schedule would be judged at a high learning rate).

    .venv/bin/python benchmarks/bench_course_model.py --quick          # seconds, tiny shapes
    .venv/bin/python benchmarks/bench_course_model.py --minutes 7       # the measurement
    .venv/bin/python benchmarks/bench_course_model.py --shapes 4x256x256 6x384x256:bpe
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from common import machine

from llmlib.data import TEST_WORKS, VAL_WORKS
from llmlib.device import get_device, seed_everything
from llmlib.gpt import GPTConfig, count_parameters
from llmlib.pretrain import pretrain
from llmlib.train import Corpus, TrainConfig, load_corpus


DEFAULT_SHAPES = ("4x128x128", "4x256x256", "6x256x256", "6x384x256", "4x256x128:bpe")
QUICK_SHAPES = ("2x32x32", "2x32x32:bpe")


@dataclass(frozen=True)
class Shape:
    n_layer: int
    n_embd: int
    context_length: int
    tokenizer: str  # "char" or "bpe"

    @classmethod
    def parse(cls, text: str) -> Shape:
        """'LxCxT' or 'LxCxT:bpe': layers, width, context (heads: width / 64, at least 2)."""
        dims, _, tokenizer = text.partition(":")
        n_layer, n_embd, context = (int(part) for part in dims.split("x"))
        return cls(n_layer, n_embd, context, tokenizer or "char")


def args_text(shape: Shape) -> str:
    return f"{shape.n_layer}x{shape.n_embd}x{shape.context_length}:{shape.tokenizer}"


def train_for(shape: Shape, corpus: Corpus, seconds: float, batch_size: int) -> dict:
    """Train `shape` so that its schedule ends after about `seconds`; its final val loss."""
    n_head = max(2, shape.n_embd // 64)
    model_config = GPTConfig.preset("small", tokenizer=corpus.tokenizer, n_layer=shape.n_layer,
                                    n_head=n_head, n_embd=shape.n_embd, dropout=0.0,
                                    context_length=shape.context_length)
    settings = dict(batch_size=batch_size, lr=2e-3 if shape.n_embd <= 256 else 1e-3,
                    warmup_steps=50, eval_batches=20, weight_decay=0.1)
    seed_everything()  # a probe of 3 x 15 steps; the first 15 warm up (allocator, threads)
    probe = {**settings, "warmup_steps": 2, "eval_batches": 1, "eval_interval": 15}
    timed = pretrain(model_config, TrainConfig(max_steps=45, **probe), corpus=corpus,
                     progress=False).evals["seconds"]  # after steps 0, 15, 30 and 45
    per_step = (timed[-1] - timed[1]) / 30
    steps = max(20, int(seconds / per_step))
    seed_everything()
    settings["warmup_steps"] = min(settings["warmup_steps"], steps // 10)
    result = pretrain(model_config, TrainConfig(max_steps=steps, eval_interval=steps, **settings),
                      corpus=corpus, progress=False)
    wall = result.evals["seconds"][-1]  # the run's own clock, to its last evaluation
    val = result.evals["val"][-1]
    tokens = steps * batch_size * shape.context_length
    return dict(shape=shape, params=count_parameters(result.model), steps=steps, wall=wall,
                tokens_per_s=tokens / wall, val=val, bpb=corpus.bits_per_byte(val))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, seconds each")
    parser.add_argument("--minutes", type=float, default=7.0, help="training time per shape")
    parser.add_argument("--shapes", nargs="+", default=None, help="e.g. 4x256x256 4x256x128:bpe")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--bpe-vocab-size", type=int, default=1024)
    args = parser.parse_args()
    shapes = [Shape.parse(s) for s in (args.shapes or (QUICK_SHAPES if args.quick
                                                        else DEFAULT_SHAPES))]
    seconds = 5.0 if args.quick else 60 * args.minutes
    print(machine(get_device()))
    print(f"split: {len(VAL_WORKS)} validation works {list(VAL_WORKS)}; test works held out: "
          f"{list(TEST_WORKS)}; {seconds:.0f} s of training per shape, batch {args.batch_size}, "
          "cosine schedule fitted to the budget, dropout 0")
    corpora = {kind: load_corpus(TrainConfig(split="book", tokenizer=kind,
                                             bpe_vocab_size=args.bpe_vocab_size))
               for kind in sorted({s.tokenizer for s in shapes})}
    rows = []
    for shape in shapes:
        row = train_for(shape, corpora[shape.tokenizer], seconds, args.batch_size)
        rows.append(row)
        print(f"  done {args_text(shape)}: val {row['val']:.3f} ({row['bpb']:.3f} bits per byte, "
              f"{row['steps']} steps in {row['wall']:.0f} s)", flush=True)
    print(f"\n{'shape (L x C x T)':22s} {'tokens':>6s} {'params':>8s} {'steps':>6s} "
          f"{'minutes':>7s} {'tok/s':>8s} {'val loss':>8s} {'bits/byte':>9s}")
    for row in sorted(rows, key=lambda r: r["bpb"]):
        s = row["shape"]
        print(f"{s.n_layer} x {s.n_embd} x {s.context_length:<12d} {s.tokenizer:>6s} "
              f"{row['params'] / 1e6:7.2f}M {row['steps']:6d} {row['wall'] / 60:7.1f} "
              f"{row['tokens_per_s']:8,.0f} "
              f"{row['val']:8.3f} {row['bpb']:9.3f}")


if __name__ == "__main__":
    main()
