"""The disk cache: hits give identical systems; corrupt, truncated or stale entries are re-derived."""

import multiprocessing as mp
import pickle

import pytest

import derivations._derive as derive_module
from derivations import ModelSpec, derive
from derivations._cache import _path, cache_key, load_cached

SPEC = ModelSpec("cosine", "ema", "self-consistent", "exact")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NCDYN_CACHE_DIR", str(tmp_path))
    derive_module._memory.clear()
    yield tmp_path
    derive_module._memory.clear()


def entry(spec=SPEC):
    return _path(cache_key(spec, derive_module._version()))


def fresh(spec=SPEC):
    derive_module._memory.clear()
    return derive(spec)


def same(a, b):
    return a == b and str(a) == str(b) and [str(x) for x in a.laws] == [str(x) for x in b.laws]


def test_cache_hit_is_identical(cache):
    first = derive(SPEC)
    assert entry().exists()
    second = fresh()
    assert second is not first
    assert same(first, second)
    assert second.steps.keys() == first.steps.keys()


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b"garbage" * 10,
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b[:-20] + bytes(20),  # payload bytes changed: checksum mismatch
        lambda b: b"",
    ],
    ids=["garbage", "truncated", "corrupt-payload", "empty"],
)
def test_damaged_entry_is_rederived_and_replaced(cache, damage):
    reference = derive(SPEC)
    path = entry()
    path.write_bytes(damage(path.read_bytes()))
    assert load_cached(cache_key(SPEC, derive_module._version())) is None
    again = fresh()
    assert same(again, reference)
    assert load_cached(cache_key(SPEC, derive_module._version())) is not None  # rewritten valid


def test_stale_entry_from_another_spec_is_not_trusted(cache):
    other = ModelSpec("euclidean", "simsiam")
    derive(SPEC)
    derive(other)
    entry().write_bytes(entry(other).read_bytes())  # right file name, wrong key inside
    again = fresh()
    assert again.spec == SPEC and again == fresh_uncached()


def fresh_uncached():
    derive_module._memory.clear()
    return derive(SPEC, cache=False)


def test_entry_from_other_code_version_is_stale(cache, monkeypatch):
    derive(SPEC)
    monkeypatch.setattr(derive_module, "_version", lambda: "0.0.0-other")
    derive_module._memory.clear()
    assert load_cached(cache_key(SPEC, "0.0.0-other")) is None
    assert derive(SPEC) == fresh_uncached()


def test_unwritable_cache_dir_still_derives(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("NCDYN_CACHE_DIR", str(blocker / "sub"))
    derive_module._memory.clear()
    assert derive(ModelSpec()).state_names == ("p", "s")


def _derive_in_child(cache_dir):
    import os

    os.environ["NCDYN_CACHE_DIR"] = cache_dir
    from derivations import ModelSpec, derive

    return str(derive(ModelSpec("cosine", "ema", "self-consistent", "exact")))


def test_concurrent_writers_leave_a_valid_entry(cache):
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        outs = pool.map(_derive_in_child, [str(cache)] * 2)
    assert outs[0] == outs[1]
    loaded = load_cached(cache_key(SPEC, derive_module._version()))
    assert loaded is not None and str(loaded) == outs[0]
    assert not list(cache.glob(".tmp-*"))
    pickle.loads(pickle.dumps(loaded))
