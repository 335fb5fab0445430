"""What the service keeps between requests, each store bounded in items and in time.

* :class:`Impression`: the hashed row a prediction scored, kept under its request id until
  its click (or its absence) is fed back; compact bytes, versioned.
* :class:`ImpressionStore` and :class:`FeatureStore`: the protocols; the in-process
  implementations here (:class:`LocalImpressionStore`, :class:`LocalFeatureStore`) and the
  Redis ones (``fastctr.service.redis_store``) have the same methods.
"""
from __future__ import annotations

import struct
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from fastctr.service.errors import AlreadyLabelled, Conflict, ScoredByFallback, UnknownImpression

#: first bytes of an encoded Impression: b"FI" and the format version
_MAGIC = b"FI\x01"
#: entries (u32), probability (f64), then the lengths of model_version and arm (u16 each)
_HEAD = struct.Struct("<IdHH")
#: bytes per entry: an int32 bucket, a float32 value and a uint16 field id
_ENTRY_BYTES = 4 + 4 + 2
#: more entries than any row has (fields and crosses are < 2**16, plus the bias)
MAX_ENTRIES = 1 << 16


@dataclass(frozen=True)
class Impression:
    """One scored row as learning needs it: the hashed entries as raw little-endian bytes
    (int32 buckets, float32 values, uint16 field ids), the version of the model that scored
    it, the arm that served it and the probability it got.

    Examples
    --------
    >>> import numpy as np
    >>> imp = Impression(np.array([7, 9], np.int32).tobytes(), np.ones(2, np.float32).tobytes(),
    ...                  np.array([0, 1], np.uint16).tobytes(), "1a2b3c4d", p=0.25)
    >>> Impression.from_bytes(imp.to_bytes()) == imp, len(imp.to_bytes())
    (True, 51)
    """

    indices: bytes
    values: bytes
    fields: bytes
    model_version: str
    arm: str = "main"
    p: float = 0.5

    def __post_init__(self) -> None:
        n = len(self.indices) // 4
        if (len(self.indices) != 4 * n or len(self.values) != 4 * n
                or len(self.fields) != 2 * n or n > MAX_ENTRIES):
            raise ValueError(f"an Impression holds n int32 indices, n float32 values and n uint16 "
                             f"fields (n <= {MAX_ENTRIES}); got {len(self.indices)}, "
                             f"{len(self.values)} and {len(self.fields)} bytes")

    @property
    def n_entries(self) -> int:
        return len(self.indices) // 4

    def to_bytes(self) -> bytes:
        """The impression in a compact versioned form (what a store keeps)."""
        return encode_row(self.indices, self.values, self.fields, self.p, self.model_version,
                          self.arm)

    @classmethod
    def from_bytes(cls, data: bytes) -> Impression:
        """Decode :meth:`to_bytes`; every length is checked against the bytes given (a
        ValueError for anything else)."""
        start = len(_MAGIC) + _HEAD.size
        if len(data) < start or data[:len(_MAGIC)] != _MAGIC:
            raise ValueError("not an encoded Impression (bad magic bytes or version)")
        n, p, n_version, n_arm = _HEAD.unpack_from(data, len(_MAGIC))
        if n > MAX_ENTRIES or len(data) != start + n_version + n_arm + n * _ENTRY_BYTES:
            raise ValueError(f"an encoded Impression of {n} entries cannot be {len(data)} bytes: "
                             "truncated or corrupted")
        cuts = [start, start + n_version, start + n_version + n_arm]
        cuts += [cuts[-1] + 4 * n, cuts[-1] + 8 * n, cuts[-1] + 10 * n]
        try:
            version, arm = (data[a:b].decode() for a, b in zip(cuts[:2], cuts[1:3]))
        except UnicodeDecodeError:
            raise ValueError("an encoded Impression's version or arm is not UTF-8") from None
        return cls(bytes(data[cuts[2]:cuts[3]]), bytes(data[cuts[3]:cuts[4]]),
                   bytes(data[cuts[4]:cuts[5]]), version, arm, p)


def encode_row(indices: bytes, values: bytes, fields: bytes, p: float, model_version: str,
               arm: str = "main") -> bytes:
    """One row's encoded impression (:meth:`Impression.to_bytes`) from its raw int32
    ``indices``, float32 ``values`` and uint16 ``fields`` (lengths as an Impression checks
    them), without an Impression object between (the single-row predict path)."""
    version, arm_bytes = model_version.encode(), arm.encode()
    return b"".join((_MAGIC, _HEAD.pack(len(indices) // 4, p, len(version), len(arm_bytes)),
                     version, arm_bytes, indices, values, fields))


def encode_rows(ends: list[int], indices: bytes, values: bytes, fields: bytes, p: list[float],
                model_version: str, arm: str = "main") -> list[bytes]:
    """The encoded impressions (:meth:`Impression.to_bytes`) of a batch's hashed rows, row
    ``i`` being entries ``ends[i]:ends[i + 1]`` of the raw int32 ``indices``, float32
    ``values`` and uint16 ``fields``, scored ``p[i]``: without an Impression object a row.

    Examples
    --------
    >>> import numpy as np
    >>> rows = encode_rows([0, 2, 3], np.arange(3, dtype=np.int32).tobytes(),
    ...                    np.ones(3, np.float32).tobytes(), np.zeros(3, np.uint16).tobytes(),
    ...                    [0.1, 0.2], "v1")
    >>> [Impression.from_bytes(b).n_entries for b in rows]
    [2, 1]
    """
    version, arm_bytes = model_version.encode(), arm.encode()
    lengths, pack = (len(version), len(arm_bytes)), _HEAD.pack
    return [b"".join((_MAGIC, pack(b - a, q, *lengths), version, arm_bytes, indices[4 * a:4 * b],
                      values[4 * a:4 * b], fields[2 * a:2 * b]))
            for a, b, q in zip(ends, ends[1:], p)]


class ImpressionStore(Protocol):
    """Impressions by request id, each learned at most once; bounded in items and in time."""

    def put(self, request_id: str, impression: Impression) -> None:
        """Keep ``impression``; :class:`Conflict` if ``request_id`` is stored already."""

    def put_many(self, items: list[tuple[str, bytes]]) -> list[int]:
        """Keep each ``(request_id, encoded impression)`` (:meth:`Impression.to_bytes`, or
        :func:`encode_rows`) whose id is not stored already, in one step (one lock, one
        round trip); the positions of those whose id was."""

    def take(self, request_id: str) -> Impression:
        """The impression, marked labelled (a tombstone kept until its TTL ends):
        :class:`UnknownImpression` if absent or expired, :class:`AlreadyLabelled` if taken."""

    def __len__(self) -> int:
        """Impressions and tombstones kept."""


class FeatureStore(Protocol):
    """Entity features (``user`` ``u17`` -> ``{"C20": "...", ...}``); bounded, with a TTL."""

    def get(self, entity: str, key: str) -> dict | None:
        """The entity's features, or None when absent or expired."""

    def get_many(self, pairs: list[tuple[str, str]]) -> list[dict | None]:
        """:meth:`get` of each ``(entity, key)``, in one step (one round trip remotely)."""

    def put(self, entity: str, key: str, features: dict, ttl: float | None = None) -> None:
        """Keep ``features`` for ``ttl`` seconds (the store's TTL when None, and at most
        that)."""

    def stats(self) -> dict[str, int | float]:
        """Counters per tier: ``{tier}_hits``, ``{tier}_misses``, ``{tier}_latency_us``
        (mean time of a lookup)."""


#: the arm of an answer the fallback scored: kept as an empty marker so that its click is
#: refused for what it is (ScoredByFallback, 409), not with a 404 saying "never predicted"
FALLBACK_ARM = "(fallback)"


def fallback_marker(version: str) -> Impression:
    """What is kept for an answer the fallback ``version`` scored."""
    return Impression(b"", b"", b"", version, FALLBACK_ARM)


def refused(request_id: str, impression: Impression) -> ScoredByFallback | None:
    """The refusal of a click on a fallback's answer; None for an impression to learn."""
    if impression.arm != FALLBACK_ARM:
        return None
    return ScoredByFallback(f"request id {request_id!r} was scored by the fallback "
                            f"{impression.model_version} (the model could not score it): "
                            "the fallback does not learn, so its click is not learned")


class LocalImpressionStore:
    """An in-process :class:`ImpressionStore`: at most ``max_items`` entries (the oldest
    evicted first) each for ``ttl`` seconds; thread-safe.

    Examples
    --------
    >>> store = LocalImpressionStore(max_items=2, ttl=60)
    >>> imp = Impression(b"", b"", b"", "v1")
    >>> store.put("a", imp); store.take("a") == imp
    True
    >>> try:
    ...     store.take("a")
    ... except AlreadyLabelled as e:
    ...     print(e)
    request id 'a' was labelled already: each impression is learned once
    """

    def __init__(self, max_items: int, ttl: float, clock=time.monotonic) -> None:
        if max_items < 1 or not ttl > 0:
            raise ValueError(f"an impression store needs max_items >= 1 and ttl > 0; got "
                             f"{max_items} and {ttl}")
        self.max_items, self.ttl, self._clock = int(max_items), float(ttl), clock
        # insertion order is expiry order (one TTL for all): the oldest is first. Entries
        # are (expiry, encoded bytes or None once labelled): objects the garbage collector
        # stops tracking, where Impression objects made each full collection stall the
        # event loop (0.2 s with 300,000 kept)
        self._items: OrderedDict[str, tuple[float, bytes | None]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, request_id: str, impression: Impression) -> None:
        if self.put_many([(request_id, impression.to_bytes())]):
            raise Conflict.of(request_id)

    def put_many(self, items: list[tuple[str, bytes]]) -> list[int]:
        now = self._clock()
        expires, taken = now + self.ttl, []
        with self._lock:
            self._expire(now)
            kept = self._items
            for i, (request_id, impression) in enumerate(items):
                if request_id in kept:
                    taken.append(i)
                else:
                    kept[request_id] = (expires, impression)
            while len(kept) > self.max_items:  # the oldest go first
                kept.popitem(last=False)
        return taken

    def take(self, request_id: str) -> Impression:
        now = self._clock()
        with self._lock:
            self._expire(now)
            entry = self._items.get(request_id)
            if entry is None:
                raise UnknownImpression(
                    f"no impression under request id {request_id!r}: never predicted, expired "
                    f"(kept {self.ttl:g} s) or evicted (at most {self.max_items} kept)")
            expires, data = entry
            if data is None:  # the tombstone of a labelled impression
                raise AlreadyLabelled(f"request id {request_id!r} was labelled already: each "
                                      "impression is learned once")
            self._items[request_id] = (expires, None)
        return Impression.from_bytes(data)

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._items)

    def _expire(self, now: float) -> None:
        items = self._items
        while items:
            expires = items[next(iter(items))][0]
            if expires > now:
                return
            items.popitem(last=False)


class LocalFeatureStore:
    """An in-process :class:`FeatureStore`: least recently used entries evicted beyond
    ``max_items``, each expiring after its TTL; thread-safe.

    Examples
    --------
    >>> store = LocalFeatureStore(max_items=1000, ttl=3600)
    >>> store.put("user", "u17", {"C20": "a9"})
    >>> store.get("user", "u17"), store.get("user", "u18")
    ({'C20': 'a9'}, None)
    >>> {k: v for k, v in store.stats().items() if not k.endswith("_us")}
    {'local_hits': 1, 'local_misses': 1}
    """

    tier = "local"

    def __init__(self, max_items: int, ttl: float, clock=time.monotonic) -> None:
        if max_items < 1 or not ttl > 0:
            raise ValueError(f"a feature store needs max_items >= 1 and ttl > 0; got "
                             f"{max_items} and {ttl}")
        self.max_items, self.ttl, self._clock = int(max_items), float(ttl), clock
        self._items: OrderedDict[tuple[str, str], tuple[float, dict]] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = self._misses = 0
        self._seconds = 0.0

    def get(self, entity: str, key: str) -> dict | None:
        start = time.perf_counter()
        now = self._clock()
        with self._lock:
            entry = self._items.get((entity, key))
            if entry is not None and entry[0] <= now:  # expired: dropped when read
                del self._items[(entity, key)]
                entry = None
            if entry is None:
                self._misses += 1
            else:
                self._hits += 1
                self._items.move_to_end((entity, key))
            self._seconds += time.perf_counter() - start
        return None if entry is None else entry[1]

    def get_many(self, pairs: list[tuple[str, str]]) -> list[dict | None]:
        return [self.get(entity, key) for entity, key in pairs]

    def put(self, entity: str, key: str, features: dict, ttl: float | None = None) -> None:
        ttl = self.ttl if ttl is None else min(float(ttl), self.ttl)
        with self._lock:
            self._items[(entity, key)] = (self._clock() + ttl, dict(features))
            self._items.move_to_end((entity, key))
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def stats(self) -> dict[str, int | float]:
        with self._lock:
            lookups = self._hits + self._misses
            return {f"{self.tier}_hits": self._hits, f"{self.tier}_misses": self._misses,
                    f"{self.tier}_latency_us": 1e6 * self._seconds / lookups if lookups else 0.0}
