import json

import pytest

from pipelines.variants.cache import ENTRY_FILE, ModelCache, cache_key


def test_key_is_stable_and_sensitive():
    assert cache_key(a=1, b=[1, 2]) == cache_key(b=[1, 2], a=1)
    assert cache_key(a=1) != cache_key(a=2)


def test_second_lookup_hits_without_building(tmp_path):
    cache = ModelCache(tmp_path)
    calls = []

    def build(tmp):
        calls.append(tmp)
        (tmp / "weights.txt").write_text("w")
        return {"n": 1}

    first = cache.get_or_build("m", "k1", build, describe={"x": 1})
    second = cache.get_or_build("m", "k1", build, describe={"x": 1})
    assert not first.hit and second.hit
    assert len(calls) == 1 and cache.builds == 1
    assert (second.path / "weights.txt").read_text() == "w"
    assert json.loads((second.path / ENTRY_FILE).read_text())["built"] == {"n": 1}


def test_failed_build_leaves_no_entry(tmp_path):
    cache = ModelCache(tmp_path)

    def boom(tmp):
        (tmp / "partial").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        cache.get_or_build("m", "k", boom, describe={})
    assert cache.lookup("m", "k") is None
    assert not cache.path("m", "k").exists()
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_incomplete_leftover_is_rebuilt(tmp_path):
    cache = ModelCache(tmp_path)
    cache.path("m", "k").mkdir(parents=True)  # a folder without _entry.json
    entry = cache.get_or_build("m", "k", lambda tmp: {"ok": True}, describe={})
    assert not entry.hit and cache.lookup("m", "k")["built"] == {"ok": True}
