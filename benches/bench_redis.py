"""What the Redis side of ``fastctr serve --redis`` costs a request, against a real redis-server.

Each call is timed on the wall clock (the time is spent waiting for Redis, which a thread-time
clock would not count), one by one; medians and 99th percentiles are reported, with the local
tier as the baseline of the same run:

* a feature lookup served by the local tier, by Redis (a hash of 10 JSON values), three
  entities' lookups by Redis together (one pipeline, as a request naming three entities
  does), and by an open breaker (Redis down: the call is refused at once);
* an impression kept (``SET NX PX``), a batch's 100 kept together (one pipeline), taken (the
  Lua script), and labelled into the feedback queue (the Lua script that tombstones and
  queues);
* a lookup while Redis is paused (SIGSTOP): the time budget, until the breaker opens.

    python benches/bench_redis.py [--calls 3000]     # the table
    pytest benches/bench_redis.py                     # a smoke run
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fastctr.service.learner import FeedbackQueue
from fastctr.service.redis_store import (
    RedisFeatureStore,
    RedisImpressionStore,
    RedisLink,
    TieredFeatureStore,
)
from fastctr.service.stores import Impression, LocalFeatureStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from redis_server import RedisServer  # noqa: E402  (the tests' real-server helper)

FEATURES = {f"C{i}": f"value-{i}" for i in range(14, 24)}


def impression(i: int) -> Impression:
    """A 39-field row's impression (40 entries with the bias)."""
    return Impression(np.arange(i, i + 40, dtype=np.int32).tobytes(), np.ones(40, np.float32).tobytes(),
                      np.arange(40, dtype=np.uint16).tobytes(), "bench")


def timed(fn, calls: int) -> dict:
    """Median and p99 of ``fn(i)`` for i in range(calls), in microseconds."""
    seconds = []
    for i in range(calls):
        start = time.perf_counter()
        fn(i)
        seconds.append(time.perf_counter() - start)
    seconds.sort()
    return {"median_us": 1e6 * statistics.median(seconds),
            "p99_us": 1e6 * seconds[min(calls - 1, int(0.99 * calls))], "calls": calls}


def run(server: RedisServer, calls: int) -> dict[str, dict]:
    link = RedisLink(server.url)
    remote = RedisFeatureStore(link, ttl=600)
    tiered = TieredFeatureStore(LocalFeatureStore(1000, ttl=600), remote)
    impressions = RedisImpressionStore(link, ttl=600)
    queue = FeedbackQueue(impressions)
    tiered.put("user", "u1", FEATURES)
    for entity in ("ad", "site"):
        remote.put(entity, "x1", FEATURES)
    three = [("user", "u1"), ("ad", "x1"), ("site", "x1")]
    for i in range(2 * calls):
        impressions.put(f"q{i}", impression(i))
    results = {
        "feature lookup, local tier": timed(lambda i: tiered.get("user", "u1"), calls),
        "feature lookup, Redis (HGETALL, 10 values)": timed(lambda i: remote.get("user", "u1"), calls),
        "three entities from Redis together (one pipeline)": timed(
            lambda i: remote.get_many(three), calls),
        "impression kept (SET NX PX)": timed(lambda i: impressions.put(f"r{i}", impression(i)), calls),
        "100 impressions kept together (one pipeline)": timed(
            lambda i: impressions.put_many([(f"b{i}-{j}", impression(j).to_bytes()) for j in range(100)]),
            max(1, calls // 10)),
        "impression taken (Lua)": timed(lambda i: impressions.take(f"r{i}"), calls),
        "click queued for the learner (Lua)": timed(lambda i: queue.label([f"q{i}"], [i & 1]), calls),
    }
    server.pause()  # a stalled Redis: each call waits for the budget until the breaker opens
    try:
        results["lookup, Redis paused, breaker closed (the budget)"] = timed(
            lambda i: tiered.get("user", f"p{i}"), link.breaker.failures)
        results["lookup, breaker open (refused at once)"] = timed(
            lambda i: tiered.get("user", f"p{i}"), calls)
    finally:
        server.resume()
    return results


def table(results: dict[str, dict]) -> str:
    base = results["feature lookup, local tier"]["median_us"]
    lines = ["| call | median | p99 | median / local tier |", "|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['median_us']:.1f} us | {r['p99_us']:.1f} us | "
                     f"{r['median_us'] / base:.0f}x |")
    return "\n".join(lines)


def test_bench_redis_smoke(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    try:
        results = run(server, calls=50)
    finally:
        server.stop()
    assert results["lookup, breaker open (refused at once)"]["calls"] == 50
    assert "| call |" in table(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    server = RedisServer(Path(tempfile.mkdtemp(prefix="fastctr-redis-")))
    server.start()
    try:
        print(table(run(server, args.calls)))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
