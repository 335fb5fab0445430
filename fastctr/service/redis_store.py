"""The Redis-backed stores (``fastctr serve --redis URL``), shared by every worker.

* :class:`RedisLink`: one client whose every call has a time budget (socket timeouts, no
  retries) and goes through a :class:`~fastctr.service.breaker.CircuitBreaker`, so a Redis
  that is down or stalled costs a request at most the budget, then nothing while it is open.
* :class:`RedisFeatureStore`: entity features, a hash per entity id, JSON values, a TTL.
* :class:`TieredFeatureStore`: a bounded in-process LRU (with a TTL) in front of Redis;
  while Redis is unavailable lookups are served by the local tier alone.
* :class:`RedisImpressionStore`: impressions by request id (``SET NX EX``), taken by an
  atomic Lua script that leaves a tombstone, so across all workers each impression is
  labelled at most once.

Every key has a TTL; run Redis with ``--maxmemory`` and ``--maxmemory-policy volatile-ttl``
so that memory is bounded too (the README's Serving section).
"""
from __future__ import annotations

import threading
import time

import orjson
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from fastctr.service.breaker import CircuitBreaker, Unavailable
from fastctr.service.errors import AlreadyLabelled, Conflict, UnknownImpression
from fastctr.service.stores import Impression, LocalFeatureStore

#: default time budget of one Redis call, in seconds (connect and each read/write)
DEFAULT_TIMEOUT = 0.05


class RedisLink:
    """A Redis client with a time budget per call and a circuit breaker around every call.

    Parameters
    ----------
    url : str
        ``redis://host:port/db`` (``rediss://`` for TLS, ``unix://`` for a socket).
    timeout : float
        Seconds a call may take (connecting, sending, waiting for the answer); a slower call
        is a failure. There are no retries: the breaker decides when to try again.
    failures, cooldown
        The breaker's settings: consecutive failures that open it, seconds before a probe.
    prefix : str
        Prepended to every key, so several services can share one Redis.

    Examples
    --------
    >>> link = RedisLink("redis://127.0.0.1:1/0", timeout=0.05, failures=1)  # nothing there
    >>> try:
    ...     link.call(link.client.ping)
    ... except Unavailable as error:
    ...     print(type(error).__name__, link.breaker.state)
    Unavailable open
    """

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT, failures: int = 3,
                 cooldown: float = 1.0, prefix: str = "fastctr:") -> None:
        self.url, self.prefix = url, prefix
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0), health_check_interval=0)
        self.breaker = CircuitBreaker("redis", failures=failures, cooldown=cooldown,
                                      errors=(redis.RedisError, OSError))

    def call(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` through the breaker; every failure is :class:`Unavailable`."""
        try:
            return self.breaker.call(fn, *args, **kwargs)
        except Unavailable:
            raise
        except (redis.RedisError, OSError) as error:
            raise Unavailable(f"redis at {self.url}: {type(error).__name__}: {error}") from error

    def health(self) -> dict:
        """The breaker's state and counters, for ``/health`` and ``/metrics``."""
        return self.breaker.snapshot()


def _link(link: RedisLink | str) -> RedisLink:
    return link if isinstance(link, RedisLink) else RedisLink(link)


class RedisFeatureStore:
    """Entity features in Redis: one hash per entity id, each value JSON, the whole hash
    expiring after ``ttl`` seconds.

    Parameters
    ----------
    link : RedisLink or str
        The connection (shared with the impression store) or a URL.
    ttl : float
        Seconds an entity's features are kept after they were last written.

    Raises :class:`~fastctr.service.breaker.Unavailable` when Redis is down or slow.
    """

    tier = "redis"

    def __init__(self, link: RedisLink | str, ttl: float) -> None:
        if not ttl > 0:
            raise ValueError(f"RedisFeatureStore needs ttl > 0 seconds; got {ttl!r}")
        self.link, self.ttl = _link(link), float(ttl)

    def _key(self, entity: str, key: str) -> str:
        return f"{self.link.prefix}f:{entity}:{key}"

    def get(self, entity: str, key: str) -> dict | None:
        return self.get_many([(entity, key)])[0]

    def get_many(self, pairs: list[tuple[str, str]]) -> list[dict | None]:
        """One ``HGETALL`` a pair, all in one pipeline (one round trip; built only once the
        breaker lets the call through)."""
        def lookup():
            pipe = self.link.client.pipeline(transaction=False)
            for entity, key in pairs:
                pipe.hgetall(self._key(entity, key))
            return pipe.execute()

        return [{name.decode(): orjson.loads(value) for name, value in raw.items()} or None
                for raw in self.link.call(lookup)]

    def put(self, entity: str, key: str, features: dict, ttl: float | None = None) -> None:
        ttl = self.ttl if ttl is None else min(float(ttl), self.ttl)
        name = self._key(entity, key)
        pipe = self.link.client.pipeline(transaction=True)  # replace, never a half-written hash
        pipe.delete(name)
        if features:
            pipe.hset(name, mapping={k: orjson.dumps(v) for k, v in features.items()})
            pipe.pexpire(name, max(1, int(ttl * 1000)))
        self.link.call(pipe.execute)


class TieredFeatureStore:
    """A bounded in-process LRU in front of a remote feature store, counting each tier.

    A lookup tries the local tier, then the remote one (caching what it finds locally). When
    the remote tier is unavailable (down, slow, or its breaker open) the lookup returns what
    the local tier has, or None, so the prediction uses the request's own features; a write
    raises :class:`~fastctr.service.breaker.Unavailable` (the endpoint answers 503).

    Workers each have their own local tier: a write seen by one worker reaches the others'
    lookups within the local tier's TTL.

    Examples
    --------
    >>> remote = RedisFeatureStore(RedisLink("redis://127.0.0.1:1/0", failures=1), ttl=600)
    >>> store = TieredFeatureStore(LocalFeatureStore(max_items=1000, ttl=5), remote)
    >>> store.local.put("user", "u17", {"C20": "a9"})
    >>> store.get("user", "u17"), store.get("user", "u18")  # Redis down: the local tier only
    ({'C20': 'a9'}, None)
    >>> {k: v for k, v in store.stats().items() if not k.endswith("_us")}
    {'local_hits': 1, 'local_misses': 1, 'redis_hits': 0, 'redis_misses': 0, 'redis_errors': 1}
    """

    def __init__(self, local: LocalFeatureStore, remote: RedisFeatureStore) -> None:
        self.local, self.remote = local, remote
        self._lock = threading.Lock()
        self._hits = self._misses = self._errors = 0
        self._seconds = 0.0

    def get(self, entity: str, key: str) -> dict | None:
        return self.get_many([(entity, key)])[0]

    def get_many(self, pairs: list[tuple[str, str]]) -> list[dict | None]:
        """The local tier's answers, and the rest from the remote tier in one call."""
        found = self.local.get_many(pairs)
        missing = [i for i, features in enumerate(found) if features is None]
        if not missing:
            return found
        start = time.perf_counter()
        try:
            remote = self.remote.get_many([pairs[i] for i in missing])
        except Unavailable:
            self._count(start, errors=len(missing))
            return found
        hits = sum(features is not None for features in remote)
        self._count(start, hits=hits, misses=len(missing) - hits)
        for i, features in zip(missing, remote):
            if features is not None:
                self.local.put(*pairs[i], features)
                found[i] = features
        return found

    def put(self, entity: str, key: str, features: dict, ttl: float | None = None) -> None:
        self.remote.put(entity, key, features, ttl)  # first: a failed write changes nothing
        self.local.put(entity, key, features, ttl)

    def _count(self, start: float, hits: int = 0, misses: int = 0, errors: int = 0) -> None:
        with self._lock:
            self._hits += hits
            self._misses += misses
            self._errors += errors
            self._seconds += time.perf_counter() - start

    def stats(self) -> dict[str, int | float]:
        tier = self.remote.tier
        with self._lock:
            lookups = self._hits + self._misses + self._errors
            remote = {f"{tier}_hits": self._hits, f"{tier}_misses": self._misses,
                      f"{tier}_errors": self._errors,
                      f"{tier}_latency_us": 1e6 * self._seconds / lookups if lookups else 0.0}
        return {**self.local.stats(), **remote}


# KEYS[1]: the impression's key. A live impression is b"I" + its bytes; taking it leaves the
# tombstone "L" under the same key and TTL. Returns 0 (absent), 1 (labelled already) or the
# stored value; one script, so two workers taking the same id cannot both get it.
_TAKE = """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if v == 'L' then return 1 end
redis.call('SET', KEYS[1], 'L', 'KEEPTTL')
return v
"""


class RedisImpressionStore:
    """Impressions in Redis, shared by every worker; each is labelled at most once.

    ``put`` is ``SET key value NX PX ttl``; ``take`` is one Lua script (read, then replace by
    a tombstone that keeps the TTL). The bound is in time (every key expires after ``ttl``)
    and in memory (Redis' ``maxmemory`` with the ``volatile-ttl`` policy evicts the
    impressions nearest their end first).

    While Redis is unavailable, ``put`` drops the impression (counted in ``stats()``; the
    prediction is still answered, its click will get 404) and ``take`` raises
    :class:`~fastctr.service.breaker.Unavailable` (503: the caller may retry).

    Parameters
    ----------
    link : RedisLink or str
        The connection (shared with the feature store) or a URL.
    ttl : float
        Seconds an impression waits for its click; the tombstone lasts as long.
    """

    def __init__(self, link: RedisLink | str, ttl: float) -> None:
        if not ttl > 0:
            raise ValueError(f"RedisImpressionStore needs ttl > 0 seconds; got {ttl!r}")
        self.link, self.ttl = _link(link), float(ttl)
        self._take = self.link.client.register_script(_TAKE)
        self.dropped = 0

    def _key(self, request_id: str) -> str:
        return f"{self.link.prefix}i:{request_id}"

    def put(self, request_id: str, impression: Impression) -> None:
        if self.put_many([(request_id, impression.to_bytes())]):
            raise Conflict.of(request_id)

    def put_many(self, items: list[tuple[str, bytes]]) -> list[int]:
        """One ``SET NX PX`` an encoded impression, all in one pipeline (one round trip)."""
        ttl = max(1, int(self.ttl * 1000))

        def keep():
            pipe = self.link.client.pipeline(transaction=False)
            for request_id, encoded in items:
                pipe.set(self._key(request_id), b"I" + encoded, nx=True, px=ttl)
            return pipe.execute()

        try:
            stored = self.link.call(keep)
        except Unavailable:
            self.dropped += len(items)  # degrade: predictions answered, their feedback 404
            return []
        return [i for i, ok in enumerate(stored) if not ok]

    def take(self, request_id: str) -> Impression:
        value = self.link.call(self._take, keys=[self._key(request_id)])
        if value == 0:
            raise UnknownImpression(f"no impression under request id {request_id!r}: never "
                                    f"predicted, expired (kept {self.ttl:g} s) or evicted")
        if value == 1:
            raise AlreadyLabelled(f"request id {request_id!r} was labelled already: each "
                                  "impression is learned once")
        return Impression.from_bytes(value[1:])

    def __len__(self) -> int:
        """Impressions and tombstones in Redis (a SCAN: for tests and diagnostics)."""
        pattern = self._key("*")
        return self.link.call(lambda: sum(1 for _ in self.link.client.scan_iter(pattern, count=1000)))

    def stats(self) -> dict[str, int]:
        return {"impressions_dropped": self.dropped}
