"""Tests for llmlib.tokenizers and llmlib.bpe (chapter 1): round trips, trainer equivalence,
tiktoken and transformers as references, the GPT-2 files loader, and clear errors on bad input.
No network."""

from __future__ import annotations

import json

import pytest
import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmlib.corpus import load_works
from llmlib.bpe import (GPT2_PATTERN, BPETokenizer, bytes_to_unicode, pretokenize,
                        train_merges_fast, train_merges_reference)
from llmlib.tokenizers import ENDOFTEXT, CharTokenizer, Tokenizer, WordTokenizer, tokens_html

# Strings that have broken byte-level tokenizers before: emoji with ZWJ and skin tones, flags,
# combining marks, CJK, Windows newlines, NUL and control bytes, runs of spaces, contractions,
# digits, lone surrogate-free oddities.
ADVERSARIAL = [
    "", " ", "  ", "\n", "\r\n", "\r\n\r\n  x", "\x00", "a\x00b\x01\x7f", "\t\t\tx  \n ",
    "👨‍👩‍👧‍👦 family", "👍🏽 ok", "🇫🇷🇯🇵", "e\u0301 cafe\u0301 Å", "ﬁ ligature",
    "日本語のテキスト、漢字", "한국어 텍스트", "مرحبا بالعالم",
    "I'll we've they're it's 'tis o'er", "'s's''s", "1234567890 3.14159 1,000,000",
    "   leading and trailing   ", "a  b   c    d", "x\u200by\u200dz",
    "\ufeffBOM", "tab\tand\u00a0nbsp", "<|endoftext", "|>", "😀" * 7, "ab" * 40, "\U0010ffff",
]


@pytest.fixture(scope="module")
def corpus() -> str:
    works = load_works()
    return works["hamlet"] + "\n\n" + works["sonnets"]  # about 270 KB: drama and verse


@pytest.fixture(scope="module")
def bpe(corpus: str) -> BPETokenizer:
    return BPETokenizer.train(corpus, 700)


def tiktoken_of(tok: BPETokenizer) -> tiktoken.Encoding:
    """tiktoken's encoder built offline from our merges (rank = id) and the same pattern."""
    ranks = {tok.vocab[i]: i for i in [*tok.byte_ids, *tok.merge_ids]}
    assert len(ranks) == len(tok.byte_ids) + len(tok.merges)  # no two tokens with the same bytes
    return tiktoken.Encoding(name="llmlib-test", pat_str=tok.pattern, mergeable_ranks=ranks,
                             special_tokens=tok.special_tokens)


# --- the trainers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text,n_merges", [
    ("aaabdaaabac", 5),                       # Wikipedia's example
    ("aaaaaaaa", 6),                          # overlapping pairs, and running out of pairs
    ("abababab cdcdcdcd abab cd", 10),        # equal counts: ties go to the smallest pair
    ("low lower lowest newer wider new", 20),
    ("日本語 日本 語のテキスト 👍🏽👍🏽 café café", 25),
])
def test_fast_trainer_equals_reference_on_small_inputs(text: str, n_merges: int) -> None:
    chunks = pretokenize(text)
    assert train_merges_fast(chunks, n_merges) == train_merges_reference(chunks, n_merges)
    whole = [text]  # no pre-tokenization: one chunk
    assert train_merges_fast(whole, n_merges) == train_merges_reference(whole, n_merges)


def test_fast_trainer_equals_reference_on_the_corpus(corpus: str) -> None:
    chunks = pretokenize(corpus[:25_000])
    fast, reference = train_merges_fast(chunks, 120), train_merges_reference(chunks, 120)
    assert len(fast) == 120
    assert fast == reference


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="ab c\n", max_size=30), max_size=6), st.integers(1, 12))
def test_fast_trainer_equals_reference_property(pieces: list[str], n_merges: int) -> None:
    chunks = pretokenize("".join(pieces))
    assert train_merges_fast(chunks, n_merges) == train_merges_reference(chunks, n_merges)


def test_tie_breaking_is_the_smallest_pair() -> None:
    # (97, 98) 'ab' and (99, 100) 'cd' both occur twice; (98, 97) once less: 'ab' wins, then 'cd'
    assert train_merges_reference(["abab", "cdcd"], 2) == [(97, 98), (99, 100)]


def test_train_respects_vocab_size_and_specials(bpe: BPETokenizer) -> None:
    assert bpe.vocab_size == 700
    assert bpe.special_tokens == {ENDOFTEXT: 699}
    assert bpe.eot_token == 699
    assert len(bpe.merges) == 700 - 256 - 1


def test_training_cuts_out_special_tokens() -> None:
    text = "hello<|endoftext|>hello<|endoftext|>hello"
    with pytest.warns(UserWarning, match="only enough pairs for 5 merges"):
        tok = BPETokenizer.train(text * 20, 270)
    assert all(ENDOFTEXT.encode() not in tok.vocab[i] for i in tok.merge_ids)
    assert tok.encode(text, allowed_special="all").count(tok.eot_token) == 2


# --- encoding equals tiktoken ---------------------------------------------------------------------
def test_encoding_equals_tiktoken_on_the_corpus(bpe: BPETokenizer, corpus: str) -> None:
    enc = tiktoken_of(bpe)
    held_out = load_works()["tempest"][:60_000]  # text the tokenizer did not see
    for text in (corpus[:150_000], held_out):
        ours = bpe.encode(text)
        assert ours == enc.encode_ordinary(text)
        assert bpe.decode(ours) == text


def test_encoding_equals_tiktoken_on_adversarial_strings(bpe: BPETokenizer) -> None:
    enc = tiktoken_of(bpe)
    for text in ADVERSARIAL:
        assert bpe.encode(text) == enc.encode_ordinary(text), repr(text)


def test_cached_and_uncached_encoders_agree(bpe: BPETokenizer, corpus: str) -> None:
    text = corpus[-20_000:] + "".join(ADVERSARIAL)
    assert bpe.encode_ordinary(text, use_cache=False) == bpe.encode_ordinary(text, use_cache=True)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text())
def test_encoding_equals_tiktoken_property(bpe: BPETokenizer, text: str) -> None:
    assert bpe.encode(text, disallowed_special=()) == tiktoken_of_cached(bpe).encode_ordinary(text)


_ENCODINGS: dict[int, tiktoken.Encoding] = {}


def tiktoken_of_cached(tok: BPETokenizer) -> tiktoken.Encoding:
    return _ENCODINGS.setdefault(id(tok), tiktoken_of(tok))


def test_special_token_policy_matches_tiktoken(bpe: BPETokenizer) -> None:
    enc = tiktoken_of(bpe)
    text = "The end.<|endoftext|>A new start"
    with pytest.raises(ValueError, match="special token '<\\|endoftext\\|>'"):
        bpe.encode(text)
    with pytest.raises(ValueError):
        enc.encode(text)  # tiktoken refuses too
    assert bpe.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
    assert bpe.encode(text, allowed_special={ENDOFTEXT}).count(bpe.eot_token) == 1
    assert bpe.encode(text, disallowed_special=()) == enc.encode(text, disallowed_special=())
    assert bpe.eot_token not in bpe.encode(text, disallowed_special=())
    assert bpe.decode(bpe.encode(text, allowed_special="all")) == text


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.just(ENDOFTEXT), st.text(alphabet=" \n\tab<|>é👍", max_size=6)),
                max_size=8))
def test_allowed_special_tokens_match_tiktoken_property(bpe: BPETokenizer,
                                                        pieces: list[str]) -> None:
    text = "".join(pieces)
    ids = bpe.encode(text, allowed_special="all")
    assert ids == tiktoken_of_cached(bpe).encode(text, allowed_special="all")
    assert bpe.decode(ids) == text
    assert ids.count(bpe.eot_token) == text.count(ENDOFTEXT)


def test_unknown_special_token_is_an_error(bpe: BPETokenizer) -> None:
    with pytest.raises(ValueError, match="unknown special token"):
        bpe.encode("hi", allowed_special={"<|im_start|>"})
    with pytest.raises(ValueError, match="not the string"):
        bpe.encode("hi", allowed_special="<|endoftext|>")


# --- round trips ----------------------------------------------------------------------------------
UNICODE_PIECES = st.sampled_from(["👨‍👩‍👧", "👍🏽", "🇫🇷", "e\u0301", "a\u0308\u0323", "漢字",
                                  "かな", "\r\n", "\x00", " ", "  ", "\t", "'s", "'ll", "123",
                                  "O, ", "\u200d", "\ufeff", "\U0010ffff"])


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(), st.lists(st.one_of(UNICODE_PIECES, st.text(max_size=5))).map("".join)))
def test_bpe_round_trip(bpe: BPETokenizer, text: str) -> None:
    assert bpe.decode(bpe.encode(text, disallowed_special=())) == text


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_char_round_trip_on_its_alphabet(data: st.DataObject) -> None:
    tok = CharTokenizer.from_text("Hello, world! 日本 👍🏽\r\n\x00e\u0301")
    text = data.draw(st.text(alphabet=st.sampled_from(tok.chars)))
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text


def test_decode_replaces_a_cut_character(bpe: BPETokenizer) -> None:
    ids = bpe.encode("😀")
    assert len(bpe.decode_bytes(ids)) == 4
    if len(ids) > 1:
        assert "\ufffd" in bpe.decode(ids[:-1])
    assert bpe.decode(bpe.byte_ids[0xF0:0xF1]) == "\ufffd"  # a lone lead byte


# --- character and word tokenizers ----------------------------------------------------------------
def test_char_tokenizer() -> None:
    tok = CharTokenizer.from_text("banana band")
    assert tok.chars == [" ", "a", "b", "d", "n"]
    assert tok.encode("band") == [2, 1, 4, 3]
    assert tok.vocab_size == 5
    with pytest.raises(ValueError, match=r"character 'x' \(U\+0078\) at position 1 is not in"):
        tok.encode("ax")
    with_unk = CharTokenizer.from_text("banana", special_tokens=["<|unk|>"], unk="<|unk|>")
    assert with_unk.encode("bxa") == [1, 3, 0]
    assert with_unk.decode([1, 3, 0]) == "b<|unk|>a"
    with pytest.raises(ValueError, match="must be one of the special tokens"):
        CharTokenizer.from_text("ab", unk="<|unk|>")


def test_word_tokenizer() -> None:
    text = "the cat sat. the cat ran! the dog sat, o'er the hill."
    tok = WordTokenizer.from_text(text, vocab_size=6)
    assert tok.words == ["the", ".", "cat", "sat"]  # most frequent first, ties alphabetical
    assert tok.special_tokens == {"<|endoftext|>": 4, "<|unk|>": 5}
    ids = tok.encode("the dog sat.")
    assert ids == [0, 5, 3, 1]
    assert tok.decode(ids) == "the <|unk|> sat."
    assert tok.split("o'er the hill, 'tis") == ["o'er", "the", "hill", ",", "'", "tis"]
    full = WordTokenizer.from_text(text)
    assert full.decode(full.encode("the cat sat, the cat ran!")) == "the cat sat, the cat ran!"
    strict = WordTokenizer.from_text(text, unk=None, special_tokens=())
    with pytest.raises(ValueError, match="'zebra' is not in the vocabulary"):
        strict.encode("the zebra")
    with pytest.raises(ValueError, match="leaves no room"):
        WordTokenizer.from_text(text, vocab_size=2)


# --- bad input ------------------------------------------------------------------------------------
def test_vocab_size_too_small() -> None:
    with pytest.raises(ValueError, match="too small.*at least 257"):
        BPETokenizer.train("hello", 256)
    with pytest.raises(ValueError, match="at least 258"):
        BPETokenizer.train("hello", 257, special_tokens=["<|a|>", "<|b|>"])
    with pytest.raises(ValueError, match="not the string"):
        BPETokenizer.train("hello", 300, special_tokens="<|endoftext|>")


def test_decode_out_of_range(bpe: BPETokenizer) -> None:
    with pytest.raises(ValueError, match="token id 700 is out of range"):
        bpe.decode([1, 700])
    with pytest.raises(ValueError, match="out of range"):
        bpe.decode([-1])
    with pytest.raises(ValueError, match="must be integers"):
        bpe.decode([1.5])
    with pytest.raises(ValueError, match="out of range"):
        CharTokenizer.from_text("ab").decode([2])


def test_pattern_must_cover_the_text() -> None:
    with pytest.raises(ValueError, match="does not cover every character"):
        BPETokenizer.train("hello world", 260, pattern=r"\w+")
    with pytest.raises(ValueError, match="does not compile"):
        BPETokenizer.train("hello world", 260, pattern=r"(")


def test_invalid_merges_are_rejected() -> None:
    with pytest.raises(ValueError, match="uses an id that no byte or earlier merge defines"):
        BPETokenizer([(97, 300)])
    with pytest.raises(ValueError, match="merged twice"):
        BPETokenizer([(97, 98), (97, 98)])


# --- files ----------------------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path, bpe: BPETokenizer, corpus: str) -> None:
    text = corpus[:5000] + "".join(ADVERSARIAL)
    tokenizers = [bpe, CharTokenizer.from_text(text, special_tokens=[ENDOFTEXT]),
                  WordTokenizer.from_text(corpus, 500)]
    for tok in tokenizers:
        path = tmp_path / f"{type(tok).__name__}.json"
        tok.save(path)
        data = json.loads(path.read_text(encoding="utf-8"))
        assert ((data["format"], data["version"], data["type"])
                == ("llmlib-tokenizer", 1, type(tok).__name__))
        for loaded in (Tokenizer.load(path), type(tok).load(path)):
            assert type(loaded) is type(tok)
            assert (loaded.vocab_size == tok.vocab_size
                    and loaded.special_tokens == tok.special_tokens)
            assert (loaded.encode(text, disallowed_special=())
                    == tok.encode(text, disallowed_special=()))
    saved = (tmp_path / "BPETokenizer.json").read_text(encoding="utf-8")
    a, b = bpe.merges[0]
    # one readable merge per line
    assert f'\n  [{a}, {b}, 256, "{bpe.vocab[256].decode()}"],\n' in saved


def test_bad_files(tmp_path, bpe: BPETokenizer) -> None:
    path = tmp_path / "tok.json"
    bpe.save(path)
    good = json.loads(path.read_text(encoding="utf-8"))
    cases = {
        "not valid JSON": "{ this is not json",
        "has format version 2": json.dumps({**good, "version": 2}),
        "is not an llmlib-tokenizer file": json.dumps({"hello": 1}),
        "unknown tokenizer type": json.dumps({**good, "type": "MagicTokenizer"}),
        "is corrupt": json.dumps({**good, "merges": good["merges"][:-1] + [[1, 99999, 698, "?"]]}),
    }
    for reason, content in cases.items():
        path.write_text(content, encoding="utf-8")
        with pytest.raises(ValueError, match=reason):
            Tokenizer.load(path)
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ValueError, match="not valid JSON"):
        BPETokenizer.load(path)
    CharTokenizer.from_text("abc").save(path)
    with pytest.raises(ValueError, match="holds a CharTokenizer, not a BPETokenizer"):
        BPETokenizer.load(path)


# --- GPT-2's published files ----------------------------------------------------------------------
def write_gpt2_files(tmp_path, tok: BPETokenizer):
    """Write `tok` in GPT-2's format: byte tokens numbered in bytes_to_unicode's order (not
    byte order), merges as 'a b' lines with GPT-2's printable characters, <|endoftext|> last.
    Returns paths and id map."""
    to_char = bytes_to_unicode()
    printable_first = sorted(range(256), key=lambda b: (ord(to_char[b]) >= 256, ord(to_char[b])))
    new_id = {tok.byte_ids[b]: k for k, b in enumerate(printable_first)}  # our id -> GPT-2-style id
    for k, i in enumerate(tok.merge_ids):
        new_id[i] = 256 + k
    new_id[tok.eot_token] = 256 + len(tok.merges)

    def text(i: int) -> str:
        return "".join(to_char[b] for b in tok.vocab[i])

    encoder = ({text(i): new_id[i] for i in [*tok.byte_ids, *tok.merge_ids]}
               | {ENDOFTEXT: new_id[tok.eot_token]})
    (tmp_path / "encoder.json").write_text(json.dumps(encoder), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{text(a)} {text(b)}" for a, b in tok.merges]
    (tmp_path / "vocab.bpe").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path / "encoder.json", tmp_path / "vocab.bpe", new_id


def test_gpt2_files_loader(tmp_path, corpus: str, monkeypatch) -> None:
    tok = BPETokenizer.train(corpus[:40_000], 400)
    encoder_path, bpe_path, new_id = write_gpt2_files(tmp_path, tok)
    gpt2 = BPETokenizer.from_gpt2_files(encoder_path, bpe_path)
    assert gpt2.vocab_size == 400 and gpt2.special_tokens == {ENDOFTEXT: 399}
    # GPT-2's numbering, not byte order
    assert gpt2.byte_ids[ord("!")] == 0 and gpt2.byte_ids[ord(" ")] != 32
    text = corpus[40_000:60_000] + "".join(ADVERSARIAL[:20])
    ids = gpt2.encode(text)
    assert ids == [new_id[i] for i in tok.encode(text)]
    assert gpt2.decode(ids) == text

    # Hugging Face's GPT-2 tokenizer reads the same two files (under its own names)
    # from a local folder.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import GPT2Tokenizer
    (tmp_path / "vocab.json").write_bytes(encoder_path.read_bytes())
    (tmp_path / "merges.txt").write_bytes(bpe_path.read_bytes())
    reference = GPT2Tokenizer.from_pretrained(str(tmp_path))
    assert len(reference) == gpt2.vocab_size
    for sample in (corpus[40_000:48_000], "I'll say: 'tis 1,000 ducats!\n\n  Ay  me",
                   "naïve café 👍🏽"):
        assert gpt2.encode(sample) == reference.encode(sample), sample[:40]
    assert (gpt2.encode("x<|endoftext|>", allowed_special="all")
            == reference.encode("x<|endoftext|>"))

    # tiktoken's own reader of GPT-2's files (it checks that merges and ids agree)
    # gives the same ranks
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    ranks = data_gym_to_mergeable_bpe_ranks(str(bpe_path), str(encoder_path))
    assert ranks == {gpt2.vocab[i]: i for i in [*gpt2.byte_ids, *gpt2.merge_ids]}
    enc = tiktoken.Encoding(name="gpt2-format", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                            special_tokens=gpt2.special_tokens)
    assert enc.encode(text, disallowed_special=()) == ids


def test_bytes_to_unicode_is_gpt2s() -> None:
    from transformers.convert_slow_tokenizer import bytes_to_unicode as reference
    table = bytes_to_unicode()
    assert table == reference()
    assert (table[ord(" ")], table[ord("\n")], table[ord("!")]) == ("Ġ", "Ċ", "!")


def test_gpt2_files_bad_input(tmp_path, corpus: str) -> None:
    tok = BPETokenizer.train(corpus[:10_000], 300)
    encoder_path, bpe_path, _ = write_gpt2_files(tmp_path, tok)
    bpe_path.write_text("#version: 0.2\nĠ t h\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: expected two tokens"):
        BPETokenizer.from_gpt2_files(encoder_path, bpe_path)
    bpe_path.write_text("#version: 0.2\nĠ qqqq\n", encoding="utf-8")
    with pytest.raises(ValueError, match="'qqqq' is not in"):
        BPETokenizer.from_gpt2_files(encoder_path, bpe_path)
    encoder_path.write_text(json.dumps({"a": 0}), encoding="utf-8")
    with pytest.raises(ValueError, match="lacks the byte token"):
        BPETokenizer.from_gpt2_files(encoder_path, bpe_path)


# --- the token view -------------------------------------------------------------------------------
def test_tokens_html(bpe: BPETokenizer) -> None:
    text = "To be, or not to be <b>\n<|endoftext|>"
    first, second = tokens_html(bpe, text), tokens_html(bpe, text)
    assert first == second
    assert first.count("<span") == len(bpe.encode(text, allowed_special="all"))
    assert ("&lt;" in first and "<b>" not in first and "↵<br>" in first
            and f'title="id {bpe.eot_token}"' in first)


def test_gpt2_pattern_splits_like_gpt2() -> None:
    assert pretokenize("Hello world's  123 !!\n\n") == ["Hello", " world", "'s", " ", " 123",
                                                        " !!", "\n\n"]
    assert GPT2_PATTERN.startswith("'s|'t|'re")


def test_repeated_vocabulary_and_unknown_unk_are_clear_errors():
    from llmlib.tokenizers import CharTokenizer, WordTokenizer

    with pytest.raises(ValueError, match="repeats a character"):
        CharTokenizer(["a", "b", "a"])
    with pytest.raises(ValueError, match="repeats a word"):
        WordTokenizer(["the", "the"])
    for make in (lambda: CharTokenizer(["a"], unk="<|unk|>"),
                 lambda: WordTokenizer(["the"], special_tokens=(), unk="<|unk|>")):
        with pytest.raises(ValueError, match="must be one of the special tokens"):
            make()


# GPT-2's own vocabulary files, shipped under data/gpt2/ (see data/README.md for provenance)
GPT2_FILES = {"encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
              "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"}


@pytest.fixture(scope="module")
def real_gpt2():
    from llmlib.corpus import find_data_dir
    folder = find_data_dir() / "gpt2"
    return folder, BPETokenizer.from_gpt2_files(folder / "encoder.json", folder / "vocab.bpe")


def test_shipped_gpt2_files_are_openais(real_gpt2) -> None:
    import hashlib
    folder, _ = real_gpt2
    for name, sha256 in GPT2_FILES.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == sha256, name


def test_our_encoder_on_gpt2s_files_equals_tiktoken_and_transformers(real_gpt2, tmp_path,
                                                                    monkeypatch) -> None:
    import shutil
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from transformers import GPT2Tokenizer
    folder, gpt2 = real_gpt2
    assert gpt2.vocab_size == 50257 and gpt2.eot_token == 50256
    assert gpt2.encode("Hello world") == [15496, 995]  # the ids every GPT-2 implementation gives
    # tiktoken's "gpt2" encoding, built offline from the same files with the hashes it pins
    ranks = data_gym_to_mergeable_bpe_ranks(str(folder / "vocab.bpe"), str(folder / "encoder.json"),
                                            GPT2_FILES["vocab.bpe"], GPT2_FILES["encoder.json"])
    enc = tiktoken.Encoding(name="gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                            special_tokens={ENDOFTEXT: 50256})
    shutil.copy(folder / "encoder.json", tmp_path / "vocab.json")  # the names HF reads
    shutil.copy(folder / "vocab.bpe", tmp_path / "merges.txt")
    hf = GPT2Tokenizer.from_pretrained(str(tmp_path))
    text = load_works()["hamlet"][:60_000]
    ids = gpt2.encode(text)
    assert ids == enc.encode_ordinary(text) and gpt2.decode(ids) == text
    for sample in [*ADVERSARIAL, text[:3000]]:
        assert gpt2.encode(sample) == enc.encode_ordinary(sample), sample[:40]
    for sample in [*ADVERSARIAL, text[:3000]]:
        assert gpt2.encode(sample) == hf.encode(sample), sample[:40]
    assert gpt2.encode("a<|endoftext|>b", allowed_special="all") == enc.encode(
        "a<|endoftext|>b", allowed_special="all")


def test_every_tokenizer_type_loads_in_a_fresh_process(tmp_path, bpe: BPETokenizer,
                                                       real_gpt2) -> None:
    """`Tokenizer.load` finds each type however little the caller imported (issue 20): a new
    interpreter that imports only llmlib.tokenizers loads char, word, BPE and GPT-2's files."""
    import subprocess
    import sys
    made = {"char": CharTokenizer.from_text("to be or not"),
            "word": WordTokenizer(["to", "be"], unk="<|unk|>"),
            "bpe": bpe, "gpt2": real_gpt2[1]}
    for name, tokenizer in made.items():
        tokenizer.save(tmp_path / f"{name}.json")
    script = ("import sys\nfrom llmlib.tokenizers import Tokenizer\n"
              "for path in sys.argv[1:]:\n"
              "    t = Tokenizer.load(path)\n"
              "    print(type(t).__name__, t.vocab_size, t.encode('to be'))\n")
    paths = [str(tmp_path / f"{name}.json") for name in made]
    result = subprocess.run([sys.executable, "-c", script, *paths], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    expected = [f"{type(t).__name__} {t.vocab_size} {t.encode('to be')}" for t in made.values()]
    assert result.stdout.splitlines() == expected
