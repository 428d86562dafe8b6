"""Build chapter 8's finetuning data from the corpus, offline and byte for byte reproducibly.

    python data/make_finetune.py            # writes data/finetune/*.json
    python data/make_finetune.py --check    # fails if the committed files differ from a rebuild

Two datasets, each split by whole works (no work is on two sides, chapter 2's rule):

- genre_{train,val,test}.json: passages of PASSAGE_CHARS characters, each starting at a line, as
  {"text", "label", "work"} records, the label being the work's genre;
- instruct_{train,val,test}.json: Alpaca-style {"instruction", "input", "output", "task", "work"}
  records for three tasks: a play passage's genre (comedy, history or tragedy, equally often, so
  that always answering one scores a third), which word was blanked out of a line, and which play
  a passage comes from. The first two ask about works of the split; the third asks about the
  training works, which the course model read in pretraining: its questions are passages from
  disjoint stretches of each play (held-out questions, not held-out works), names included.

The held-out works (chapter 2's VAL_WORKS and TEST_WORKS) are chosen by hand so that every genre has
some; the course model is pretrained on the other works only, so it never reads a test work.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from llmlib.corpus import list_works  # noqa: E402
from llmlib.data import TEST_WORKS, VAL_WORKS  # noqa: E402

OUT = HERE / "finetune"
SEED = 8
PASSAGE_CHARS = 256
PASSAGES = {"train": 40, "val": 30, "test": 60}  # per work, at most
QUESTIONS = {"train": 500, "val": 60, "test": 200}  # per task, over all the split's works
QUESTION_CHARS = 150  # a genre or play question's passage: prompt and answer fit 256 characters
STRETCH = 2000  # the play task gives each stretch of this many characters to one split
STRETCH_SPLITS = ("train",) * 8 + ("val", "test")
INSTRUCTIONS = {
    "genre": "Is this passage from a comedy, a history or a tragedy?",
    "cloze": "Which word is missing?",
    "play": "Which play is this passage from?",
}
PLAY_GENRES = ("comedy", "history", "tragedy")
BLANK = "____"
# A speech starts with its speaker's name alone on a line, ending in a period ("Ber.", "HELENA."),
# or in capitals without one (A Midsummer Night's Dream's "THESEUS").
HEADER = re.compile(r"^([A-Z][A-Za-z']*(?: [A-Z][A-Za-z']*){0,2})\.$"
                    r"|^([A-Z][A-Z']+(?: [A-Z']+){0,2})$")


def line_starts(text: str) -> list[int]:
    """Offsets of the non-empty lines that begin a passage of PASSAGE_CHARS characters, past the
    title page and the list of persons (the first 2,000 characters, or tenth of a short work)."""
    starts, offset, skip = [], 0, min(2000, len(text) // 10)
    for line in text.splitlines(keepends=True):
        if line.strip() and skip <= offset <= len(text) - PASSAGE_CHARS:
            starts.append(offset)
        offset += len(line)
    return starts


def passages(text: str, n: int, rng: random.Random) -> list[str]:
    """Up to n passages that do not overlap, in text order."""
    chosen, end = [], -1
    for start in sorted(rng.sample(line_starts(text), min(len(line_starts(text)), 20 * n))):
        if start >= end and len(chosen) < n:
            chosen.append(text[start:start + PASSAGE_CHARS])
            end = start + PASSAGE_CHARS
    return chosen


def genre_question(text: str, genre: str, rng: random.Random) -> tuple[str, str]:
    start = rng.choice(line_starts(text))
    return text[start:start + QUESTION_CHARS], genre


def play_question(text: str, split: str, rng: random.Random) -> str | None:
    """QUESTION_CHARS of the play, speakers' names included, from a line start in a stretch of
    the play that belongs to `split`."""
    stretches = [k for k in range(len(text) // STRETCH)
                 if STRETCH_SPLITS[k % len(STRETCH_SPLITS)] == split]
    start = rng.choice(stretches) * STRETCH + rng.randrange(STRETCH - QUESTION_CHARS)
    start = text.find("\n", start) + 1  # from the start of a line that is not empty
    while 0 < start < len(text) and text[start] == "\n":
        start += 1
    passage = text[start:start + QUESTION_CHARS]
    return passage if start > 0 and len(passage) == QUESTION_CHARS else None


def cloze_question(text: str, rng: random.Random) -> tuple[str, str] | None:
    """A line of 30 to 90 characters with one word of 4 or more letters blanked out."""
    lines = [ln.strip() for ln in text.splitlines() if 30 <= len(ln.strip()) <= 90]
    line = rng.choice(lines)
    words = list(re.finditer(r"[A-Za-z]{4,}", line))
    if not words:
        return None
    word = rng.choice(words)
    return line[:word.start()] + BLANK + line[word.end():], word.group()


def instruct_records(works: list, training_works: list, split: str, n_per_task: int,
                     rng: random.Random) -> list[dict]:
    """The split's questions: genre and cloze from its own works, play from the training works'
    stretches that belong to the split."""
    texts = {w.slug: w.read() for w in works + training_works}
    by_genre = {g: [w for w in works if w.genre == g] for g in PLAY_GENRES}
    plays = [w for w in training_works if w.genre != "poem"]
    records = []
    for task in INSTRUCTIONS:
        made = 0
        while made < n_per_task:
            if task == "genre":  # each genre equally often
                work = rng.choice(by_genre[PLAY_GENRES[made % len(PLAY_GENRES)]])
                qa = genre_question(texts[work.slug], work.genre, rng)
            elif task == "cloze":
                work = rng.choice(works)
                qa = cloze_question(texts[work.slug], rng)
            else:
                work = rng.choice(plays)
                passage = play_question(texts[work.slug], split, rng)
                qa = None if passage is None else (passage, work.title)
            if qa is None:
                continue
            records.append({"instruction": INSTRUCTIONS[task], "input": qa[0], "output": qa[1],
                            "task": task, "work": work.slug})
            made += 1
    return records


def build() -> dict[str, list[dict]]:
    works = list_works()
    slugs = {w.slug for w in works}
    assert set(VAL_WORKS + TEST_WORKS) <= slugs and not set(VAL_WORKS) & set(TEST_WORKS)
    split_of = {w.slug: "val" if w.slug in VAL_WORKS else "test" if w.slug in TEST_WORKS
                else "train" for w in works}
    rng = random.Random(SEED)
    files = {}
    for split in ("train", "val", "test"):
        members = [w for w in works if split_of[w.slug] == split]
        files[f"genre_{split}.json"] = [
            {"text": p, "label": w.genre, "work": w.slug}
            for w in members for p in passages(w.read(), PASSAGES[split], rng)]
        training = [w for w in works if split_of[w.slug] == "train"]
        files[f"instruct_{split}.json"] = instruct_records(members, training, split,
                                                           QUESTIONS[split], rng)
    return files


def render(records: list[dict]) -> str:
    return json.dumps(records, indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="compare a rebuild with the files in data/finetune instead of writing")
    args = parser.parse_args()
    files = build()
    stale = [name for name, records in files.items()
             if not (OUT / name).is_file() or (OUT / name).read_text("utf-8") != render(records)]
    if args.check:
        print("data/finetune is up to date" if not stale else f"stale: {stale}")
        return 1 if stale else 0
    OUT.mkdir(exist_ok=True)
    for name, records in files.items():
        (OUT / name).write_text(render(records), encoding="utf-8")
        print(f"{name}: {len(records)} records")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
