"""The service's in-process stores: bounded in items and in time; impressions learned once
and encoded compactly, every length checked when decoded."""
import gc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastctr.service.errors import AlreadyLabelled, Conflict, UnknownImpression
from fastctr.service.stores import (
    Impression,
    LocalFeatureStore,
    LocalImpressionStore,
    encode_rows,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def impression(n: int = 3, version: str = "v1", p: float = 0.25) -> Impression:
    return Impression(np.arange(n, dtype=np.int32).tobytes(), np.ones(n, np.float32).tobytes(),
                      np.arange(n, dtype=np.uint16).tobytes(), version, p=p)


def test_impressions_expire_after_their_ttl():
    clock = Clock()
    store = LocalImpressionStore(max_items=100, ttl=10, clock=clock)
    store.put("a", impression())
    clock.now = 5
    store.put("b", impression())
    clock.now = 10.5
    with pytest.raises(UnknownImpression, match="'a'"):
        store.take("a")
    assert store.take("b") == impression() and len(store) == 1  # b's tombstone
    clock.now = 16
    assert len(store) == 0
    store.put("b", impression())  # the id is free again once its tombstone expired


def test_impressions_are_bounded_oldest_first():
    store = LocalImpressionStore(max_items=3, ttl=60)
    for rid in "abcde":
        store.put(rid, impression())
    assert len(store) == 3
    with pytest.raises(UnknownImpression):
        store.take("b")
    assert store.take("e") == impression()


def test_each_impression_is_taken_once_and_ids_are_unique():
    store = LocalImpressionStore(max_items=10, ttl=60)
    store.put("a", impression())
    with pytest.raises(Conflict):
        store.put("a", impression())
    store.take("a")
    with pytest.raises(AlreadyLabelled):
        store.take("a")
    with pytest.raises(Conflict):  # the tombstone keeps the id taken
        store.put("a", impression())


def test_feature_store_is_lru_with_ttl_and_counts():
    clock = Clock()
    store = LocalFeatureStore(max_items=2, ttl=100, clock=clock)
    store.put("user", "u1", {"C1": "a"})
    store.put("user", "u2", {"C1": "b"}, ttl=10)
    assert store.get("user", "u1") == {"C1": "a"}  # u1 is now the most recent
    store.put("ad", "a9", {"C2": "x"})  # evicts u2, the least recently used
    assert store.get("user", "u2") is None
    clock.now = 101
    assert store.get("user", "u1") is None and store.get("ad", "a9") is None
    store.put("user", "u3", {"C1": "c"}, ttl=1e9)  # capped at the store's ttl
    clock.now = 202
    assert store.get("user", "u3") is None
    stats = store.stats()
    assert (stats["local_hits"], stats["local_misses"]) == (1, 4)
    assert stats["local_latency_us"] > 0


@pytest.mark.parametrize("cls", [LocalImpressionStore, LocalFeatureStore])
def test_stores_need_bounds(cls):
    with pytest.raises(ValueError, match="max_items"):
        cls(max_items=0, ttl=1)
    with pytest.raises(ValueError, match="ttl"):
        cls(max_items=1, ttl=0)


@given(n=st.integers(0, 300), version=st.text(max_size=20), arm=st.text(max_size=10),
       p=st.floats(0, 1))
def test_impression_round_trip(n, version, arm, p):
    imp = Impression(bytes(4 * n), bytes(4 * n), bytes(2 * n), version, arm, p)
    data = imp.to_bytes()
    assert Impression.from_bytes(data) == imp
    assert len(data) == 3 + 16 + len(version.encode()) + len(arm.encode()) + 10 * n


@given(data=st.binary(max_size=200))
def test_impression_decoding_refuses_damaged_bytes(data):
    good = impression(5).to_bytes()
    for damaged in (data, good[:len(data) % len(good)], good + data[:1], b"FI\x02" + good[3:]):
        if damaged == good:
            continue
        try:
            decoded = Impression.from_bytes(damaged)
        except ValueError:
            continue
        assert decoded.to_bytes() == damaged  # whatever decodes is exactly what was encoded


def test_impression_lengths_must_agree():
    with pytest.raises(ValueError, match="n int32 indices"):
        Impression(bytes(8), bytes(4), bytes(4), "v")


def test_kept_impressions_are_not_tracked_by_the_garbage_collector():
    """A million impressions waiting for their clicks must not make every full garbage
    collection walk them (a stall of the event loop): entries are tuples of a float and
    bytes, which the collector stops tracking."""
    store = LocalImpressionStore(max_items=100, ttl=60)
    store.put_many([(f"r{i}", impression(i + 1).to_bytes()) for i in range(50)])
    store.take("r3")
    gc.collect()
    assert not any(gc.is_tracked(entry) for entry in store._items.values())
    assert store.take("r7") == impression(8)


def test_encoded_rows_are_the_impressions_encoding():
    """A batch's rows encoded at once are byte for byte what each Impression encodes."""
    rng = np.random.default_rng(2)
    sizes = rng.integers(0, 50, 30)
    ends = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    indices = rng.integers(0, 2**22, ends[-1]).astype(np.int32)
    values = rng.random(ends[-1]).astype(np.float32)
    fields = rng.integers(0, 40, ends[-1]).astype(np.uint16)
    p = rng.random(30).tolist()
    encoded = encode_rows(ends, indices.tobytes(), values.tobytes(), fields.tobytes(), p, "ab12+3",
                          "challenger")
    for i, data in enumerate(encoded):
        a, b = ends[i], ends[i + 1]
        imp = Impression(indices[a:b].tobytes(), values[a:b].tobytes(), fields[a:b].tobytes(),
                         "ab12+3", "challenger", p[i])
        assert data == imp.to_bytes() and Impression.from_bytes(data) == imp
