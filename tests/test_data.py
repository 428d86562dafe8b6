"""Tests for llmlib.data (chapter 2): windows, splits, loaders, token files, embeddings."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlib.data import (GPTEmbedding, RandomWindowDataset, TextFileDataset, TokenDataset,
                         encode_documents, get_batch, make_dataloader, read_tokens,
                         sinusoidal_encoding, split_by_works, split_contiguous, to_device,
                         token_dtype, write_tokens)


def windows_reference(ids, T, stride):
    """Every (x, y) window, from PyTorch's own unfold: windows of T + 1 tokens every
    `stride` tokens."""
    chunks = torch.as_tensor(np.asarray(ids, dtype=np.int64)).unfold(0, T + 1, stride)  # (n, T+1)
    return [(c[:-1].tolist(), c[1:].tolist()) for c in chunks]


# ----------------------------------------------------------------------------- TokenDataset

@pytest.mark.parametrize("N,T,stride,expected", [
    (10, 4, 1, 6), (10, 4, 4, 2), (10, 4, 5, 2), (10, 4, 6, 1), (10, 4, 100, 1),
    (5, 4, 1, 1), (9, 4, 4, 2), (8, 4, 4, 1), (1000, 16, 16, 62), (1000, 16, 1, 984),
])
def test_window_counts_and_boundaries(N, T, stride, expected):
    ids = np.arange(N) + 7
    ds = TokenDataset(ids, T, stride)
    assert len(ds) == expected == (N - T - 1) // stride + 1
    got = [(x.tolist(), y.tolist()) for x, y in ds]
    assert got == windows_reference(ids, T, stride)
    first_x, _ = ds[0]
    last_x, last_y = ds[len(ds) - 1]
    assert first_x[0] == 7                               # starts at the first token
    assert int(last_x[0]) - 7 == (len(ds) - 1) * stride  # last window starts at (n - 1) * stride
    assert int(last_y[-1]) <= ids[-1]                    # and fits in the array
    assert ds[-1][0].tolist() == last_x.tolist()
    with pytest.raises(IndexError):
        ds[len(ds)]


@settings(max_examples=60, deadline=None)
@given(N=st.integers(2, 300), T=st.integers(1, 40), stride=st.integers(1, 60))
def test_windows_match_unfold(N, T, stride):
    ids = np.random.default_rng(N).integers(0, 50_000, N).astype(np.uint16)
    if N < T + 1:
        with pytest.raises(ValueError, match="too few"):
            TokenDataset(ids, T, stride)
        return
    ds = TokenDataset(ids, T, stride)
    assert [(x.tolist(), y.tolist()) for x, y in ds] == windows_reference(ids, T, stride)


def test_stride_defaults_to_context_and_xy_shift():
    ids = np.random.default_rng(0).integers(0, 1000, 500)
    ds = TokenDataset(ids, 32)
    assert ds.stride == 32 and len(ds) == (500 - 33) // 32 + 1
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.dtype == y.dtype == torch.int64 and x.shape == y.shape == (32,)
        assert torch.equal(x[1:], y[:-1])
        assert (x.tolist() == ids[32 * i: 32 * i + 32].tolist()
                and y.tolist() == ids[32 * i + 1: 32 * i + 33].tolist())
    # stride = T: every token but the first is a target exactly once
    # (up to the tail that does not fit)
    targets = np.concatenate([ds[i][1].numpy() for i in range(len(ds))])
    assert targets.tolist() == ids[1: 1 + 32 * len(ds)].tolist()


def test_inputs_of_all_kinds():
    ids = list(range(20))
    for form in (ids, np.array(ids, dtype=np.uint16), np.array(ids, dtype=np.uint32),
                 torch.tensor(ids)):
        x, y = TokenDataset(form, 5, 3)[2]
        assert (x.tolist() == [6, 7, 8, 9, 10] and y.tolist() == [7, 8, 9, 10, 11]
                and x.dtype == torch.int64)


def test_token_dataset_errors():
    with pytest.raises(ValueError, match="too few for one window"):
        TokenDataset(np.arange(8), 8)       # needs context + 1 tokens
    with pytest.raises(ValueError, match="too few"):
        TokenDataset([], 1)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="stride must be a positive int"):
            TokenDataset(np.arange(100), 8, stride=bad)
        with pytest.raises(ValueError, match="context_length must be a positive int"):
            TokenDataset(np.arange(100), bad)
    with pytest.raises(ValueError, match="stride"):
        TokenDataset(np.arange(100), 8, stride=2.5)
    with pytest.raises(ValueError, match="flat sequence"):
        TokenDataset(np.zeros((4, 10), dtype=np.int64), 3)
    with pytest.raises(ValueError, match="integers"):
        TokenDataset(np.linspace(0, 1, 50), 3)
    TokenDataset(np.arange(9), 8)           # exactly context + 1 is fine: one window


# ----------------------------------------------------------------------------- splits

def _works():
    sizes = {"a": 100, "b": 300, "c": 50, "d": 200, "e": 350, "f": 80}
    return [SimpleNamespace(slug=s, n_chars=n) for s, n in sizes.items()]


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.3, 0.5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_by_works_is_a_partition_of_whole_works(fraction, seed):
    works = _works()
    train, val = split_by_works(works, fraction, seed=seed)
    assert {w.slug for w in train}.isdisjoint({w.slug for w in val})
    assert sorted(w.slug for w in train + val) == sorted(w.slug for w in works)
    total = sum(w.n_chars for w in works)
    held = sum(w.n_chars for w in val)
    assert held >= fraction * total                               # at least the fraction...
    assert held - max(w.n_chars for w in val) < fraction * total  # ...and no work more than needed
    assert split_by_works(works, fraction, seed=seed) == (train, val)  # deterministic
    assert [w.slug for w in train] == [w.slug for w in works if w in train]  # input order kept


def test_split_by_works_named_and_errors():
    works = _works()
    train, val = split_by_works(works, val_slugs=["e", "a"])
    assert [w.slug for w in val] == ["a", "e"] and [w.slug for w in train] == ["b", "c", "d", "f"]
    with pytest.raises(ValueError, match="unknown val_slugs"):
        split_by_works(works, val_slugs=["hamlet"])
    with pytest.raises(ValueError, match="at least one"):
        split_by_works(works, val_slugs=[w.slug for w in works])
    with pytest.raises(ValueError, match="at least one"):
        split_by_works(works, val_slugs=[])
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="val_fraction"):
            split_by_works(works, bad)
    with pytest.raises(ValueError, match="distinct"):
        split_by_works(works + works[:1])


def test_split_of_the_corpus_holds_out_whole_plays():
    from llmlib.corpus import list_works

    works = list_works()
    train, val = split_by_works(works, 0.1, seed=0)
    assert [w.slug for w in val] == ["alls_well_that_ends_well", "henry_vi_part_2", "sonnets",
                                     "timon_of_athens", "titus_andronicus"]
    assert len(train) + len(val) == len(works) == 42


def test_no_window_crosses_the_split():
    ids = np.arange(1000)
    train, val = split_contiguous(ids, 0.1)
    assert len(train) == 900 and len(val) == 100 and np.shares_memory(train, ids)
    for stride in (1, 7, 16, 40):
        assert max(int(y.max()) for _, y in TokenDataset(train, 16, stride)) < 900
        assert min(int(x.min()) for x, _ in TokenDataset(val, 16, stride)) >= 900
    # the mistake the chapter warns about: splitting the windows of the whole stream
    whole = TokenDataset(ids, 16, 1)
    assert sum(int(x[0]) < 900 <= int(y[-1]) for x, y in whole) == 16
    for bad in (0, 1, 2):
        with pytest.raises(ValueError, match="val_fraction"):
            split_contiguous(ids, bad)
    with pytest.raises(ValueError, match="too few"):
        split_contiguous([1, 2], 0.1)


# ------------------------------------------------------------------------- encoding, dtypes, files

def test_token_dtype():
    assert (token_dtype(1) == token_dtype(256) == token_dtype(50_257) == token_dtype(65_536)
            == np.uint16)
    assert token_dtype(65_537) == token_dtype(128_256) == token_dtype(2**32) == np.uint32
    for bad in (0, -5, 2**32 + 1, 3.0, True, "50257"):
        with pytest.raises(ValueError, match="vocab_size"):
            token_dtype(bad)
    assert np.iinfo(token_dtype(65_536)).max == 65_535                 # the largest id fits


class _Bytes:
    """A byte-level tokenizer: the simplest object with .encode and .vocab_size."""
    vocab_size = 257

    def encode(self, text):
        return list(text.encode("utf-8"))


def test_encode_documents():
    ids = encode_documents(["ab", "", "c"], _Bytes(), separator=256)
    assert ids.tolist() == [97, 98, 256, 256, 99] and ids.dtype == np.uint16
    # a function
    assert encode_documents(["ab", "c"], lambda t: [ord(ch) for ch in t]).tolist() == [97, 98, 99]
    assert encode_documents(["ab", "c"], lambda t: [ord(ch) for ch in t]).dtype == np.int64
    assert encode_documents(["ab"], lambda t: [70_000], vocab_size=70_001).dtype == np.uint32
    with pytest.raises(ValueError, match=r"must lie in \[0, 257\)"):
        encode_documents(["a", "b"], _Bytes(), separator=300)
    with pytest.raises(ValueError, match="lie in"):
        encode_documents(["a"], lambda t: [-1], vocab_size=10)
    with pytest.raises(TypeError, match="encode"):
        encode_documents(["a"], 42)


def test_encode_documents_with_chapter_1_bpe():
    from llmlib.bpe import BPETokenizer

    texts = ["To be, or not to be, that is the question.", "Now is the winter of our discontent."]
    tok = BPETokenizer.train(" ".join(texts) * 20, 280, special_tokens=("<|endoftext|>",))
    eot = tok.special_tokens["<|endoftext|>"]
    ids = encode_documents(texts, tok, separator=eot)
    assert ids.dtype == np.uint16
    assert ids.tolist() == tok.encode(texts[0]) + [eot] + tok.encode(texts[1])
    assert tok.decode(ids.tolist()) == texts[0] + "<|endoftext|>" + texts[1]


@pytest.mark.parametrize("vocab_size,dtype",
                         [(300, np.uint16), (65_536, np.uint16), (100_000, np.uint32)])
def test_bin_round_trip(tmp_path, vocab_size, dtype):
    ids = np.random.default_rng(0).integers(0, vocab_size, 5000)
    ids[:2] = [0, vocab_size - 1]
    path = write_tokens(tmp_path / "sub" / "x.bin", ids, vocab_size)
    assert path.stat().st_size == 1024 + 5000 * np.dtype(dtype).itemsize
    mm = read_tokens(path)
    assert isinstance(mm, np.memmap) and mm.dtype == dtype and mm.shape == (5000,)
    assert np.array_equal(mm, ids)
    header = np.fromfile(path, dtype="<i4", count=4)
    assert header.tolist() == (([20240520, 1] if dtype == np.uint16 else [20240801, 7])
                               + [5000, vocab_size])
    # a memory map feeds a dataset like an array
    assert TokenDataset(mm, 10, 3)[5][1].tolist() == ids[16:26].tolist()
    assert np.shares_memory(TokenDataset(mm, 10).ids, mm)  # the dataset reads the map, no copy
    with pytest.raises(ValueError, match="read-only"):
        mm[0] = 1


def test_bin_errors(tmp_path):
    with pytest.raises(ValueError, match=r"must lie in \[0, 100\)"):
        write_tokens(tmp_path / "a.bin", [1, 2, 100], 100)
    with pytest.raises(ValueError, match="lie in"):
        write_tokens(tmp_path / "a.bin", [-1, 2], 100)
    path = write_tokens(tmp_path / "b.bin", np.arange(100), 100)
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(ValueError, match="truncated"):
        read_tokens(path)
    raw = tmp_path / "raw.bin"
    np.arange(2000, dtype=np.uint16).tofile(raw)                       # a headerless nanoGPT file
    with pytest.raises(ValueError, match="not a token file"):
        read_tokens(raw)
    (tmp_path / "tiny.bin").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="not a token file"):
        read_tokens(tmp_path / "tiny.bin")


def test_text_file_dataset(tmp_path):
    (tmp_path / "a.txt").write_text("hello", encoding="utf-8")
    (tmp_path / "b.txt").write_text("wörld", encoding="utf-8")
    ds = TextFileDataset([tmp_path / "a.txt", str(tmp_path / "b.txt")], _Bytes(), context_length=4,
                         stride=2, separator=256)
    expected = list(b"hello") + [256] + list("wörld".encode())
    assert ds.ids.tolist() == expected and ds.ids.dtype == np.uint16
    assert len(ds) == (len(expected) - 5) // 2 + 1
    assert ds[1][0].tolist() == expected[2:6]
    assert len(TextFileDataset(tmp_path / "a.txt", _Bytes(), context_length=4)) == 1
    with pytest.raises(ValueError, match="paths is empty"):
        TextFileDataset([], _Bytes(), 4)
    with pytest.raises(ValueError, match="too few"):
        TextFileDataset(tmp_path / "a.txt", _Bytes(), 5)


# ----------------------------------------------------------------------- loaders and random windows

def test_make_dataloader_batches():
    ds = TokenDataset(np.arange(1000), 32)            # 31 windows
    loader = make_dataloader(ds, 8, device="cpu", seed=0)
    batches = list(loader)
    assert len(batches) == len(loader) == 3 and not loader.pin_memory
    starts = []
    for x, y in batches:
        assert (x.shape == y.shape == (8, 32) and x.dtype == torch.int64
                and torch.equal(x[:, 1:], y[:, :-1]))
        starts += x[:, 0].tolist()
    assert len(set(starts)) == 24 and all(s % 32 == 0 for s in starts) and starts != sorted(starts)
    again = [x for x, _ in make_dataloader(ds, 8, device="cpu", seed=0)]
    assert all(torch.equal(a, b) for a, (b, _) in zip(again, batches))  # the seed fixes the order
    ordered = list(make_dataloader(ds, 8, shuffle=False, drop_last=False, device="cpu"))
    assert ([len(x) for x, _ in ordered] == [8, 8, 8, 7]
            and ordered[0][0][:, 0].tolist() == list(range(0, 256, 32)))
    # pinned for a CUDA device (not iterated)
    assert make_dataloader(ds, 8, device="cuda").pin_memory


def test_make_dataloader_errors():
    ds = TokenDataset(np.arange(100), 32)             # 2 windows
    with pytest.raises(ValueError, match="fewer than batch_size"):
        make_dataloader(ds, 4, device="cpu")
    assert len(make_dataloader(ds, 4, drop_last=False, device="cpu")) == 1
    for bad in (0, -1, 2.0):
        with pytest.raises(ValueError, match="batch_size"):
            make_dataloader(ds, bad, device="cpu")
    with pytest.raises(ValueError, match="num_workers"):
        make_dataloader(ds, 1, num_workers=-1, device="cpu")


def test_workers_give_the_same_batches():
    ds = RandomWindowDataset(np.arange(5000), 16, num_samples=64, seed=3)
    a = [x for x, _ in make_dataloader(ds, 8, shuffle=False, device="cpu")]
    b = [x for x, _ in make_dataloader(ds, 8, shuffle=False, num_workers=2, device="cpu")]
    assert all(torch.equal(p, q) for p, q in zip(a, b)) and len(a) == len(b) == 8


def test_random_window_dataset():
    ids = np.arange(200) * 3
    ds = RandomWindowDataset(ids, 10, num_samples=500, seed=1)
    assert len(ds) == 500 and ds.starts.min() >= 0 and ds.starts.max() <= 200 - 11
    many = RandomWindowDataset(ids, 10, num_samples=20_000, seed=1).starts
    assert set(many.tolist()) == set(range(190))  # every start can be drawn, none beyond
    for i in range(0, 500, 37):
        x, y = ds[i]
        s = int(ds.starts[i])
        assert x.tolist() == ids[s:s + 10].tolist() and y.tolist() == ids[s + 1:s + 11].tolist()
    same = RandomWindowDataset(ids, 10, num_samples=500, seed=1)
    assert np.array_equal(same.starts, ds.starts)
    first = ds.starts.copy()
    ds.set_epoch(1)
    assert not np.array_equal(first, ds.starts)
    ds.set_epoch(0)
    assert np.array_equal(first, ds.starts)
    torch.manual_seed(0)
    a = RandomWindowDataset(ids, 10, 20).starts
    torch.manual_seed(0)
    # seed=None follows torch's seed
    assert np.array_equal(a, RandomWindowDataset(ids, 10, 20).starts)
    with pytest.raises(ValueError, match="too few"):
        RandomWindowDataset(ids[:10], 10, 5)
    with pytest.raises(ValueError, match="num_samples"):
        RandomWindowDataset(ids, 10, 0)


def test_get_batch(tmp_path):
    ids = np.random.default_rng(0).integers(0, 60_000, 3000)
    mm = read_tokens(write_tokens(tmp_path / "t.bin", ids, 60_000))
    for source in (ids, mm, torch.from_numpy(ids)):
        x, y = get_batch(source, 16, 24, generator=torch.Generator().manual_seed(5))
        assert x.shape == y.shape == (16, 24) and x.dtype == torch.int64 and x.is_contiguous()
        for row_x, row_y in zip(x.tolist(), y.tolist()):
            s = next(i for i in range(len(ids) - 24) if ids[i:i + 24].tolist() == row_x)
            assert row_y == ids[s + 1:s + 25].tolist()
    x1, _ = get_batch(mm, 16, 24, generator=torch.Generator().manual_seed(5))
    assert torch.equal(x1, x)
    starts = get_batch(np.arange(30), 2000, 5, generator=torch.Generator().manual_seed(0))[0][:, 0]
    assert starts.min() == 0 and starts.max() == 30 - 6  # all starts reachable, last one fits
    x, y = get_batch(ids, 2, 4, device="cpu")
    assert x.device.type == "cpu"
    with pytest.raises(ValueError, match="too few"):
        get_batch(np.arange(5), 2, 5)
    with pytest.raises(ValueError, match="batch_size"):
        get_batch(ids, 0, 5)


def test_to_device():
    x, y = torch.arange(6).view(2, 3), torch.ones(2, 3)
    a, b = to_device((x, y), "cpu")
    assert torch.equal(a, x) and torch.equal(b, y) and a.device.type == "cpu"
    if torch.cuda.is_available():
        a, b = to_device((x, y), "cuda")
        assert a.device.type == "cuda" and torch.equal(a.cpu(), x)


# ----------------------------------------------------------------------------- embeddings

def test_sinusoidal_matches_the_formula():
    T, C = 37, 22
    pe = sinusoidal_encoding(T, C)
    assert pe.shape == (T, C) and pe.dtype == torch.float32
    for p in range(T):
        for i in range(C // 2):
            angle = p / 10000 ** (2 * i / C)
            assert abs(pe[p, 2 * i].item() - math.sin(angle)) < 1e-7
            assert abs(pe[p, 2 * i + 1].item() - math.cos(angle)) < 1e-7
    assert torch.equal(sinusoidal_encoding(5, 4, base=1.0)[:, 0::2],
                       torch.sin(torch.arange(5.0))[:, None].expand(5, 2))


def test_sinusoidal_dot_product_depends_only_on_distance():
    pe = sinusoidal_encoding(300, 64).double()
    ref = pe[0:100] @ pe[0]
    for p in (1, 50, 199):
        assert (pe[p:p + 100] @ pe[p] - ref).abs().max() < 1e-5
    # and position p + k is a rotation of position p (an exercise of the chapter)
    k, C = 7, 64
    w = 10000 ** (-torch.arange(0, C, 2, dtype=torch.float64) / C)
    M = torch.zeros(C, C, dtype=torch.float64)
    for i, wi in enumerate(w.tolist()):
        c, s = math.cos(k * wi), math.sin(k * wi)
        M[2 * i:2 * i + 2, 2 * i:2 * i + 2] = torch.tensor([[c, s], [-s, c]])
    assert (pe[:-k] @ M.T - pe[k:]).abs().max() < 1e-6


def test_sinusoidal_errors():
    for T, C in ((0, 4), (4, 0), (4, 7), (-1, 4)):
        with pytest.raises(ValueError, match="even dim"):
            sinusoidal_encoding(T, C)


def test_embedding_lookup_equals_one_hot_matmul():
    torch.manual_seed(0)
    emb = GPTEmbedding(vocab_size=97, context_length=16, n_embd=12)
    idx = torch.randint(0, 97, (3, 16))
    tok = emb.wte(idx)
    ref = F.one_hot(idx, 97).to(torch.float64) @ emb.wte.weight.double()
    assert (tok.double() - ref).abs().max() == 0
    # gradients: only the rows of ids present in the batch change, identically in both forms
    emb.wte(idx).pow(2).sum().backward()
    g_lookup = emb.wte.weight.grad.clone()
    emb.wte.weight.grad = None
    (F.one_hot(idx, 97).float() @ emb.wte.weight).pow(2).sum().backward()
    assert torch.allclose(g_lookup, emb.wte.weight.grad, atol=1e-6)
    assert set(g_lookup.abs().sum(1).nonzero().flatten().tolist()) == set(idx.flatten().tolist())


def test_gpt_embedding_learned_positions():
    torch.manual_seed(0)
    emb = GPTEmbedding(50, 8, 6, dropout=0.5)
    assert [n for n, _ in emb.named_parameters()] == ["wte.weight", "wpe.weight"]
    assert emb.wte.weight.shape == (50, 6) and emb.wpe.weight.shape == (8, 6)
    assert abs(emb.wte.weight.std().item() - 0.02) < 0.005
    emb.eval()
    idx = torch.randint(0, 50, (4, 5))
    out = emb(idx)
    assert out.shape == (4, 5, 6)
    expected = emb.wte.weight[idx] + emb.wpe.weight[:5][None]
    assert (out - expected).abs().max() == 0
    emb.train()
    assert (emb(idx) == 0).float().mean() > 0.2  # dropout is active in training mode
    with pytest.raises(ValueError, match="longer than the context"):
        emb(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        emb(torch.zeros(9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        emb(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"must lie in 0\.\.49 \(vocab_size=50\)"):
        emb(torch.tensor([[50]]))  # checked before nn.Embedding's IndexError (or CUDA's assert)


def test_gpt_embedding_sinusoidal_and_errors():
    emb = GPTEmbedding(50, 8, 6, position="sinusoidal").eval()
    assert [n for n, _ in emb.named_parameters()] == ["wte.weight"] and "pe" not in emb.state_dict()
    idx = torch.randint(0, 50, (2, 8))
    assert (emb(idx) - (emb.wte(idx) + sinusoidal_encoding(8, 6))).abs().max() == 0
    with pytest.raises(ValueError, match="position must be"):
        GPTEmbedding(50, 8, 6, position="rotary")
    with pytest.raises(ValueError, match="n_embd"):
        GPTEmbedding(50, 8, 0)


def test_gpt_embedding_matches_transformers_gpt2():
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=101, n_positions=12, n_embd=16, n_layer=0, n_head=2,
                                     embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(0)
    hf = transformers.GPT2Model(config).eval()
    emb = GPTEmbedding(101, 12, 16).eval()
    emb.load_state_dict({k: v for k, v in hf.state_dict().items()
                         if k in ("wte.weight", "wpe.weight")})
    idx = torch.randint(0, 101, (2, 12))
    with torch.no_grad():
        ours = hf.ln_f(emb(idx))                          # with no blocks, GPT-2 = ln_f(wte + wpe)
        theirs = hf(idx).last_hidden_state
    assert (ours - theirs).abs().max() < 1e-6
