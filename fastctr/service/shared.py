"""What ``--redis URL`` builds: the stores every worker shares, and the one learner.

With Redis, impressions and entity features live in Redis (each worker keeps a small local
tier of features in front), clicks go to a feedback queue, and, with ``--learn``, one process
learns from it while every worker serves the model file (see :mod:`fastctr.service.learner`).
"""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass

from fastctr.service.learner import FeedbackQueue, Learner
from fastctr.service.redis_store import (
    DEFAULT_TIMEOUT,
    RedisFeatureStore,
    RedisImpressionStore,
    RedisLink,
    TieredFeatureStore,
)
from fastctr.service.stores import LocalFeatureStore

#: seconds a worker's local tier keeps an entity's features: how stale another worker's
#: write may look from this one
LOCAL_FEATURE_TTL = 5.0
#: snapshot period of the learner when none is given: a snapshot of a 2**22 FTRL model costs
#: ~0.5 s of the learner's time and each worker's reload ~0.06 s (measured; README)
DEFAULT_SNAPSHOT_EVERY = 5.0


@dataclass
class Shared:
    """The Redis side of a worker: the connection (its breaker tells /health the state), the
    stores, and with ``learn`` the feedback queue and this worker's learner candidate."""

    link: RedisLink
    impressions: RedisImpressionStore | None
    features: TieredFeatureStore
    queue: FeedbackQueue | None
    learner: Learner | None

    def health(self) -> tuple[dict, list[str]]:
        """(what /health shows of Redis and the learner, the reasons to say degraded)."""
        breaker = self.link.health()
        info = {"redis": breaker}
        reasons = []
        if breaker["state"] != "closed":
            reasons.append(f"redis is {breaker['state']} ({breaker['last_error']}): features from "
                           "the local tier and the request only; feedback refused (503)")
        if self.learner is not None:
            info["learner"] = self.learner.health()
        return info, reasons


def shared_stores(model_path: str, *, redis_url: str, learn: bool, impression_ttl: float,
                  feature_ttl: float, max_features: int, snapshot_every: float | None,
                  timeout: float = DEFAULT_TIMEOUT, arms: dict | None = None) -> Shared:
    """The Redis side of one worker. Connections are made lazily: a Redis that is down when
    the service starts degrades it, it does not stop it from starting. ``arms``: an A/B
    test's model files by arm name, which the learner trains each on its arm's clicks.

    Examples
    --------
    >>> shared = shared_stores("model.fctr", redis_url="redis://127.0.0.1:1/0", learn=False,
    ...                        impression_ttl=3600, feature_ttl=3600, max_features=1000,
    ...                        snapshot_every=None)
    >>> shared.features.get("user", "u17")  # nothing listens on port 1: degraded, no error
    >>> shared.health()[0]["redis"]["state"], shared.health()[0]["redis"]["failures"]
    ('closed', 1)
    """
    # one key space per served model: two services of two models may share a Redis
    path_id = zlib.crc32(os.path.abspath(model_path).encode())
    link = RedisLink(redis_url, timeout=timeout, prefix=f"fastctr:{path_id:08x}:")
    features = TieredFeatureStore(
        LocalFeatureStore(max_features, min(feature_ttl, LOCAL_FEATURE_TTL)),
        RedisFeatureStore(link, feature_ttl))
    if not learn:
        return Shared(link, None, features, None, None)
    impressions = RedisImpressionStore(link, impression_ttl)
    queue = FeedbackQueue(impressions)
    learner = Learner(model_path, queue, arms=arms,
                      snapshot_every=snapshot_every or DEFAULT_SNAPSHOT_EVERY)
    return Shared(link, impressions, features, queue, learner)
