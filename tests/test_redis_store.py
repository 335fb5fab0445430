"""The Redis stores against a real redis-server: features, tiers, impressions taken once, and
every circuit-breaker transition with a server that is stopped, paused (SIGSTOP) and restarted."""
import threading
import time

import numpy as np
import pytest

from fastctr.service.breaker import CircuitOpen, Unavailable
from fastctr.service.errors import AlreadyLabelled, Conflict, UnknownImpression
from fastctr.service.redis_store import (
    RedisFeatureStore,
    RedisImpressionStore,
    RedisLink,
    TieredFeatureStore,
)
from fastctr.service.stores import Impression, LocalFeatureStore

BUDGET = 0.05  # the per-call time budget the tests give the link


def impression(i: int) -> Impression:
    idx = np.array([0, 100 + i, 7 * i + 3], np.int32)
    return Impression(idx.tobytes(), np.ones(3, np.float32).tobytes(),
                      np.arange(3, dtype=np.uint16).tobytes(), "v1", p=0.01 * i)


def test_features_round_trip_replace_and_expire(redis_url):
    store = RedisFeatureStore(RedisLink(redis_url), ttl=60)
    assert store.get("user", "u17") is None
    store.put("user", "u17", {"C20": "a9", "I3": 2.5, "I4": 7})
    assert store.get("user", "u17") == {"C20": "a9", "I3": 2.5, "I4": 7}
    store.put("user", "u17", {"C21": "b"})  # a write replaces the entity's features
    assert store.get("user", "u17") == {"C21": "b"}
    assert store.get("ad", "u17") is None  # entities are separate namespaces
    store.put("user", "short", {"C1": "x"}, ttl=0.15)
    assert store.get("user", "short") == {"C1": "x"}
    time.sleep(0.3)
    assert store.get("user", "short") is None
    ttl_ms = store.link.client.pttl("fastctr:f:user:u17")
    assert 0 < ttl_ms <= 60_000  # every key expires


def test_tiers_count_hits_and_misses_and_share_writes(redis_url):
    a = TieredFeatureStore(LocalFeatureStore(100, ttl=60), RedisFeatureStore(redis_url, ttl=60))
    b = TieredFeatureStore(LocalFeatureStore(100, ttl=60), RedisFeatureStore(redis_url, ttl=60))
    a.put("user", "u1", {"C1": "x"})
    assert b.get("user", "u1") == {"C1": "x"}  # another worker: from Redis
    assert b.get("user", "u1") == {"C1": "x"}  # then from its own local tier
    assert b.get("user", "nobody") is None
    stats = b.stats()
    assert (stats["local_hits"], stats["local_misses"]) == (1, 2)
    assert (stats["redis_hits"], stats["redis_misses"], stats["redis_errors"]) == (1, 1, 0)
    assert stats["redis_latency_us"] > 0


def test_impressions_are_taken_once(redis_url):
    store = RedisImpressionStore(RedisLink(redis_url), ttl=60)
    store.put("r1", impression(1))
    with pytest.raises(Conflict, match="'r1' is in use"):
        store.put("r1", impression(2))
    assert store.take("r1") == impression(1)
    with pytest.raises(AlreadyLabelled, match="'r1' was labelled already"):
        store.take("r1")
    with pytest.raises(Conflict):  # the tombstone still holds the id
        store.put("r1", impression(3))
    with pytest.raises(UnknownImpression, match="'r2'"):
        store.take("r2")
    assert len(store) == 1


def test_impressions_expire(redis_url):
    store = RedisImpressionStore(redis_url, ttl=0.15)
    store.put("r1", impression(1))
    store.put("r2", impression(2))
    store.take("r2")
    time.sleep(0.3)
    for rid in ("r1", "r2"):  # the impression and the tombstone both expire
        with pytest.raises(UnknownImpression):
            store.take(rid)
    assert len(store) == 0


def test_concurrent_takes_across_connections_label_once(redis_url):
    """Eight 'workers', each with its own connection, race to label the same 200 ids."""
    RedisImpressionStore(redis_url, ttl=60)
    writer = RedisImpressionStore(redis_url, ttl=60)
    for i in range(200):
        writer.put(f"r{i}", impression(i))
    won = []

    def worker():
        store = RedisImpressionStore(RedisLink(redis_url, timeout=2.0), ttl=60)
        for i in range(200):
            try:
                won.append((f"r{i}", store.take(f"r{i}")))
            except AlreadyLabelled:
                pass

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(rid for rid, _ in won) == sorted(f"r{i}" for i in range(200))
    assert all(imp == impression(int(rid[1:])) for rid, imp in won)


def open_breaker(store: TieredFeatureStore, link: RedisLink) -> None:
    for _ in range(link.breaker.failures):
        assert store.get("user", "u2") is None  # degraded: no error to the caller
    assert link.breaker.state == "open"


def test_breaker_opens_when_redis_stops_and_closes_when_it_is_back(redis_server):
    link = RedisLink(redis_server.url, timeout=BUDGET, failures=3, cooldown=0.3)
    store = TieredFeatureStore(LocalFeatureStore(100, ttl=60), RedisFeatureStore(link, ttl=60))
    store.put("user", "u1", {"C1": "x"})
    assert link.breaker.state == "closed"
    redis_server.stop()
    assert store.get("user", "u1") == {"C1": "x"}  # the local tier still serves
    open_breaker(store, link)
    calls = link.breaker.snapshot()["calls"]
    start = time.perf_counter()
    for _ in range(100):  # open: no call reaches the network
        assert store.get("user", "u2") is None
    assert link.breaker.snapshot()["rejected"] >= 100 and link.breaker.snapshot()["calls"] == calls + 100
    assert time.perf_counter() - start < 1.0
    with pytest.raises(CircuitOpen):  # a write cannot be served: the endpoint answers 503
        store.put("user", "u3", {"C1": "y"})

    time.sleep(0.35)
    assert link.breaker.state == "half-open"
    assert store.get("user", "u2") is None  # the probe fails: open for another cool-down
    assert link.breaker.state == "open" and link.breaker.snapshot()["opened"] == 2

    redis_server.start()
    time.sleep(0.35)
    store.put("user", "u2", {"C2": "z"})  # the probe succeeds
    assert link.breaker.state == "closed" and link.breaker.snapshot()["closed"] == 1
    assert store.get("user", "u2") == {"C2": "z"}


def test_a_paused_redis_costs_each_call_at_most_the_budget(redis_server):
    link = RedisLink(redis_server.url, timeout=BUDGET, failures=3, cooldown=0.3)
    store = TieredFeatureStore(LocalFeatureStore(100, ttl=60), RedisFeatureStore(link, ttl=60))
    impressions = RedisImpressionStore(link, ttl=60)
    store.put("user", "u1", {"C1": "x"})
    redis_server.pause()
    try:
        durations = []
        for _ in range(3):
            start = time.perf_counter()
            assert store.get("user", "u9") is None
            durations.append(time.perf_counter() - start)
        assert link.breaker.state == "open"
        assert "Timeout" in link.breaker.snapshot()["last_error"]
        assert max(durations) < BUDGET + 0.1  # the budget plus scheduling slack, never the 5 s default
        impressions.put("r1", impression(1))  # dropped, not raised: the prediction is answered
        assert impressions.stats()["impressions_dropped"] == 1
        with pytest.raises(Unavailable):
            impressions.take("r1")
    finally:
        redis_server.resume()
    time.sleep(0.35)
    assert store.get("user", "u1") == {"C1": "x"}  # from the local tier
    impressions.put("r2", impression(2))  # half-open probe through the impression store
    assert link.breaker.state == "closed"
    assert impressions.take("r2") == impression(2)
