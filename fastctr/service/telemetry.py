"""What the service tells about itself: ``GET /metrics`` (Prometheus text), ``GET /stats``
(JSON) and the live model quality and A/B statistics that labelled feedback feeds.

Per request the app calls :meth:`Telemetry.observe`, which adds to plain counts (the
request's status, its latency bucket) and writes the latency to a ring of recent ones: about
a microsecond, where prometheus-client's own ``inc`` and ``observe`` cost five (see
benches/bench_service.py). Once a second, and before ``/metrics`` is answered,
:meth:`Telemetry.flush` adds what the counts grew by to the Prometheus counters and
histograms, and :meth:`Telemetry.tick` turns the rest of the state (feature-store counters,
Redis breaker, model version and age, degraded reasons, the learner's count) into metrics,
logs new quality warnings and publishes this worker's figures.

**Several workers** (``fastctr serve --workers N``): the command sets
``PROMETHEUS_MULTIPROC_DIR`` (and ``FASTCTR_SERVE_STATS_DIR``) to one fresh temporary
directory before the workers start, so every worker's counters and histograms live in
memory-mapped files there and ``/metrics``, answered by any worker, sums them (counters of
a worker gone included); gauges of the workers' own state are ``livesum``/``livemax`` over
the live workers. For ``/stats`` each worker writes ``worker-PID.json`` (its counters, CPU,
recent latencies) to the same directory every second and the learner (the one process
that sees the labelled clicks, and so holds the :class:`~fastctr.online.monitor.QualityMonitor`)
writes ``quality.json``; ``/stats`` merges the files no older than :data:`STALE` seconds.
A directory rather than Redis: the workers of one ``fastctr serve`` always share a host,
and it works without ``--redis`` too.
"""
from __future__ import annotations

import bisect
import datetime
import json
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from fastctr.online.abtest import ABTest
from fastctr.online.monitor import QualityMonitor

log = logging.getLogger("fastctr.service")

__all__ = ["Telemetry", "CONTENT_TYPE_LATEST", "endpoint_of"]

#: the endpoints metrics are labelled with (anything else is "other": bounded label values)
ENDPOINTS = ("/predict", "/feedback", "/model", "/model/reload", "/health", "/metrics",
             "/stats", "/ab", "/dashboard", "/features/{entity}/{key}", "/docs", "/openapi.json",
             "other")
#: the endpoints whose requests are the traffic (QPS and latency of /stats)
TRAFFIC = ("/predict", "/feedback")
#: histogram buckets (seconds): a request is usually 20 us to a few ms
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5)
#: recent latencies kept per worker for /stats' percentiles (a sample at high QPS)
RECENT = 4096
#: seconds /stats' QPS, percentiles and CPU are measured over
WINDOW = 10.0
#: seconds between ticks (metrics refreshed, worker files written)
TICK = 1.0
#: a worker file older than this (seconds) is a worker gone
STALE = 5.0
BREAKER_STATES = ("closed", "half-open", "open")

_INDEX = {e: i for i, e in enumerate(ENDPOINTS)}


def endpoint_of(path: str) -> str:
    """The endpoint label of a request path (a bounded set of values)."""
    if path in _INDEX:
        return path
    return "/features/{entity}/{key}" if path.startswith("/features/") else "other"


def _now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class Telemetry:
    """Metrics, recent latencies, and (where clicks are learned) quality and A/B figures.

    Parameters
    ----------
    stats_dir : str, optional
        The directory the workers share (``fastctr serve --workers N``); None: one process.
    quality_window : int
        Labelled impressions the :class:`QualityMonitor` window holds.
    ab : ABTest, optional
        The A/B test whose arms are credited with their feedback.

    Examples
    --------
    >>> t = Telemetry(quality_window=1000)
    >>> t.observe("/predict", 200, 0.0002)
    >>> t.learned([0.2, 0.7], [0, 1], ["main", "main"])
    >>> b"fastctr_requests_total" in t.metrics()[0]
    True
    >>> s = t.stats(dict(model_version="v1", reasons=[], features={}))
    >>> s["endpoints"]["/predict"]["requests"], s["quality"]["rows"], s["feedback"]["learned"]
    (1, 2, 2)
    """

    def __init__(self, *, stats_dir: str | None = None, quality_window: int = 100_000,
                 ab: ABTest | None = None) -> None:
        self.stats_dir = Path(stats_dir) if stats_dir else None
        # multiprocess values are chosen when prometheus_client is imported (its env variable)
        self.multiprocess = self.stats_dir is not None and "PROMETHEUS_MULTIPROC_DIR" in os.environ
        self.monitor = QualityMonitor(window=quality_window, min_rows=min(1000, quality_window))
        self.ab = ab
        r = self.registry = CollectorRegistry()
        self._requests = Counter("fastctr_requests", "HTTP requests by endpoint and status",
                                 ["endpoint", "status"], registry=r)
        self._latency = Histogram("fastctr_request_duration_seconds",
                                  "time from the request to the response, by endpoint",
                                  ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self._rows = Counter("fastctr_rows_scored", "rows scored, by arm", ["arm"], registry=r)
        self._fallback = Counter("fastctr_fallback_rows", "rows scored by the fallback",
                                 registry=r)
        self._received = Counter("fastctr_feedback_received",
                                 "labels accepted by /feedback", registry=r)
        self._learned = Counter("fastctr_feedback_learned", "labelled impressions learned",
                                registry=r)
        self._lookups = Counter("fastctr_feature_lookups", "entity-feature lookups by tier "
                                "and outcome", ["tier", "outcome"], registry=r)
        self._redis_errors = Counter("fastctr_redis_errors", "failed or refused Redis calls",
                                     registry=r)
        self._breaker = Gauge("fastctr_redis_breaker_workers", "workers whose Redis circuit "
                              "breaker is in each state", ["state"], registry=r,
                              multiprocess_mode="livesum")
        self._degraded = Gauge("fastctr_degraded", "1 while a worker is degraded (/health "
                               "says why)", registry=r, multiprocess_mode="livemax")
        self._model = Gauge("fastctr_model_info", "workers serving each model version",
                            ["version"], registry=r, multiprocess_mode="livesum")
        self._model_age = Gauge("fastctr_model_age_seconds", "seconds since the served model "
                                "was loaded (the oldest among workers)", registry=r,
                                multiprocess_mode="livemax")
        if not self.multiprocess:
            r.register(_QualityCollector(self))
        # per request: plain counts, added to the metrics above by flush()
        self.counts: dict[tuple[str, int], int] = {}  # requests by (endpoint, status)
        self._buckets: dict[str, list[int]] = {}  # latency bucket counts by endpoint
        self._seconds: dict[str, float] = {}  # latency sum by endpoint
        self._arm_rows: dict[str, int] = {}  # rows scored by arm
        self._flushed: dict[Any, Any] = {}  # each count as last added to its metric
        self._flush_lock = threading.Lock()  # the tick's thread and /metrics both flush
        # the ring of recent requests: time, endpoint index, seconds (written in place)
        self._ring_t = np.zeros(RECENT)
        self._ring_e = np.zeros(RECENT, np.uint8)
        self._ring_s = np.zeros(RECENT)
        self._ring = (memoryview(self._ring_t), memoryview(self._ring_e),
                      memoryview(self._ring_s))
        self._head = 0
        self.rows_scored = self.fallback_rows = self.received = self.learned_rows = 0
        self._history: deque = deque(maxlen=int(WINDOW / TICK) + 2)  # (time, traffic, cpu)
        self._version = ""
        self._warnings: tuple[str, ...] = ()
        self.quality_here = stats_dir is None  # this process sees the labelled clicks
        self.started = time.time()

    # -- per request -------------------------------------------------------------------------

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        key = (endpoint, status)
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        buckets = self._buckets.get(endpoint)
        if buckets is None:
            buckets = self._buckets[endpoint] = [0] * (len(LATENCY_BUCKETS) + 1)
            self._seconds[endpoint] = 0.0
        buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1  # (le: bound >= seconds)
        self._seconds[endpoint] += seconds
        head = self._head
        ring = self._ring
        ring[0][head] = time.monotonic()
        ring[1][head] = _INDEX[endpoint]
        ring[2][head] = seconds
        self._head = head + 1 if head + 1 < RECENT else 0

    def scored(self, n: int, arm: str = "main", fallback: bool = False) -> None:
        self.rows_scored += n
        self._arm_rows[arm] = self._arm_rows.get(arm, 0) + n
        if fallback:
            self.fallback_rows += n

    def flush(self) -> None:
        """Add what the per-request counts grew by since the last flush to the metrics."""
        with self._flush_lock:
            self._flush()

    def _flush(self) -> None:
        for (endpoint, status), n in list(self.counts.items()):
            self._add(self._requests.labels(endpoint, str(status)), ("requests", endpoint, status), n)
        for endpoint, buckets in list(self._buckets.items()):
            child = self._latency.labels(endpoint)
            # prometheus-client has no call adding n observations to a bucket: its bucket
            # and sum values (the ones its multiprocess files hold) are added to directly
            for i, n in enumerate(buckets):
                self._add(child._buckets[i], ("bucket", endpoint, i), n)
            self._add(child._sum, ("seconds", endpoint), self._seconds[endpoint])
        for arm, n in list(self._arm_rows.items()):
            self._add(self._rows.labels(arm), ("rows", arm), n)
        self._add(self._fallback, "fallback", self.fallback_rows)

    def _add(self, value, key, total: float) -> None:
        """Increment ``value`` by what the cumulative ``total`` grew since the last call."""
        grown = total - self._flushed.get(key, 0)
        if grown > 0:
            value.inc(grown)
        self._flushed[key] = total

    def received_labels(self, n: int) -> None:
        self.received += n
        self._received.inc(n)

    def learned(self, p, clicks, arms) -> None:
        """Labelled impressions learned: their predicted ``p``, ``clicks`` and ``arms``."""
        if not len(clicks):
            return
        self.quality_here = True
        if len(clicks) == 1:  # the single-item paths: a few microseconds, no numpy call
            self.monitor.add(p[0], clicks[0])
            if self.ab is not None:
                self.ab.add(arms[0], p[0], clicks[0])
        else:
            self.monitor.update(p, clicks)
            for arm in set(arms) if self.ab is not None else ():
                picked = [i for i, a in enumerate(arms) if a == arm]
                self.ab.update(arm, [p[i] for i in picked], [clicks[i] for i in picked])
        self.learned_rows += len(clicks)
        self._learned.inc(len(clicks))

    # -- once a second -----------------------------------------------------------------------

    def tick(self, state: dict) -> None:
        """Refresh the state metrics from ``state`` (what :meth:`stats` takes) and publish.

        ``state``: ``model_version``, ``model_age`` (seconds), ``reasons`` (degraded),
        ``features`` (the feature store's stats), optionally ``breaker`` (the Redis
        breaker's snapshot) and ``learner`` (its health)."""
        self.flush()
        now = time.monotonic()
        traffic = sum(n for (e, _), n in self.counts.items() if e in TRAFFIC)
        self._history.append((now, traffic, time.process_time()))
        version = state["model_version"]
        if version != self._version:
            if self._version:
                self._model.labels(self._version).set(0)
            self._model.labels(version).set(1)
            self._version = version
        self._model_age.set(state.get("model_age", 0.0))
        self._degraded.set(1 if state["reasons"] else 0)
        for key, value in state["features"].items():
            tier, _, outcome = key.rpartition("_")
            if outcome in ("hits", "misses", "errors"):
                self._add(self._lookups.labels(tier, outcome), key, value)
        breaker = state.get("breaker")
        if breaker is not None:
            for s in BREAKER_STATES:
                self._breaker.labels(s).set(1 if breaker["state"] == s else 0)
            self._add(self._redis_errors, "redis_errors", breaker["failures"] + breaker["rejected"])
        learner = state.get("learner")
        if learner is not None:
            self.quality_here = learner["learner"]
            self._add(self._learned, "learned", learner["learned"])
        self._log_warnings()
        if self.stats_dir is not None:
            self._publish(state)

    def _log_warnings(self) -> None:
        if not self.quality_here:
            return
        warnings = tuple(self.monitor.check())
        for w in warnings:
            if w not in self._warnings:
                log.warning("model quality: %s", w)
        self._warnings = warnings

    def quality_warnings(self) -> list[str]:
        """The quality thresholds crossed now (the learner's, as last published): /health's
        reasons."""
        if self.quality_here:
            return self.monitor.check()
        shared = self._read("quality.json")
        return list(shared["quality"]["warnings"]) if shared else []

    def _publish(self, state: dict) -> None:
        pid = os.getpid()
        _write_json(self.stats_dir / f"worker-{pid}.json", self._worker(state))
        if self.quality_here:
            _write_json(self.stats_dir / "quality.json", self._quality())

    def _read(self, name: str) -> dict | None:
        path = self.stats_dir / name
        try:
            if time.time() - path.stat().st_mtime > STALE:
                return None
            return json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        """At the worker's exit: its last counts flushed, its live gauges and files gone."""
        self.flush()
        if self.stats_dir is not None:
            pid = os.getpid()
            (self.stats_dir / f"worker-{pid}.json").unlink(missing_ok=True)
            if self.multiprocess:
                mark_process_dead(pid)

    # -- what the endpoints answer -----------------------------------------------------------

    def metrics(self) -> tuple[bytes, str]:
        """The ``/metrics`` body and its content type (every worker's, with several)."""
        self.flush()
        if not self.multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(_QualityCollector(self))
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def quality(self) -> tuple[dict | None, dict | None]:
        """(monitor snapshot, A/B report): this process's, else the learner's last published."""
        if self.quality_here:
            q = self._quality()
        else:
            q = (self._read("quality.json") if self.stats_dir else None) or {}
        return q.get("quality"), q.get("ab")

    def _quality(self) -> dict:
        return {"quality": self.monitor.snapshot(),
                "ab": self.ab.report() if self.ab is not None else None}

    def _worker(self, state: dict) -> dict:
        """This worker's figures (what it publishes, and what /stats merges)."""
        now = time.monotonic()
        recent = self._ring_t > now - WINDOW
        recent &= self._ring_t > 0
        by_endpoint: dict[str, dict[str, int]] = {}
        for (e, status), n in self.counts.items():
            by_endpoint.setdefault(e, {})[str(status)] = n
        first = self._history[0] if self._history else (now, 0, time.process_time())
        last = self._history[-1] if self._history else first
        span = last[0] - first[0]
        return {"pid": os.getpid(), "requests": by_endpoint,
                "qps": (last[1] - first[1]) / span if span > 0 else 0.0,
                "cpu_percent": 100.0 * (last[2] - first[2]) / span if span > 0 else 0.0,
                "cpu_seconds": time.process_time(),
                "recent_endpoints": self._ring_e[recent].tolist(),
                "recent_seconds": self._ring_s[recent].tolist(),
                "rows_scored": self.rows_scored, "fallback_rows": self.fallback_rows,
                "received": self.received, "learned": self.learned_rows,
                "features": state["features"], "model_version": state["model_version"],
                "reasons": state["reasons"]}

    def stats(self, state: dict) -> dict:
        """The ``/stats`` document (fields in the README, "Operating the service")."""
        workers = [self._worker(state)]
        if self.stats_dir is not None:
            me = f"worker-{os.getpid()}.json"
            for path in self.stats_dir.glob("worker-*.json"):
                other = self._read(path.name) if path.name != me else None
                if other is not None:
                    workers.append(other)
        quality, ab = self.quality()
        learned = max(self.learned_rows, quality["rows_seen"] if quality else 0)
        return {"time": _now_iso(), "uptime_s": time.time() - self.started,
                "workers": len(workers), "model_version": state["model_version"],
                "degraded": bool(state["reasons"]), "reasons": state["reasons"],
                **_traffic(workers),
                "rows_scored": sum(w["rows_scored"] for w in workers),
                "fallback_rows": sum(w["fallback_rows"] for w in workers),
                "feedback": {"received": sum(w["received"] for w in workers), "learned": learned},
                "features": _features(workers),
                "cpu": {"percent": sum(w["cpu_percent"] for w in workers),
                        "seconds": sum(w["cpu_seconds"] for w in workers)},
                "quality": quality, "ab": ab}


def _traffic(workers: list[dict]) -> dict:
    """QPS, recent latency percentiles and request counts, merged over the workers."""
    endpoints: dict[str, dict] = {}
    errors = {"4xx": 0, "5xx": 0}
    for w in workers:
        for e, by_status in w["requests"].items():
            entry = endpoints.setdefault(e, {"requests": 0, "errors": 0})
            for status, n in by_status.items():
                entry["requests"] += n
                if int(status) >= 400:
                    entry["errors"] += n
                    errors["5xx" if int(status) >= 500 else "4xx"] += n
    index = np.concatenate([np.asarray(w["recent_endpoints"], np.int64) for w in workers])
    seconds = np.concatenate([np.asarray(w["recent_seconds"], float) for w in workers])
    for e, entry in endpoints.items():
        entry.update(_percentiles(seconds[index == _INDEX.get(e, -1)]))
    traffic = np.isin(index, [_INDEX[e] for e in TRAFFIC])
    return {"window_s": WINDOW, "qps": sum(w["qps"] for w in workers),
            "latency_ms": _percentiles(seconds[traffic]), "errors": errors,
            "endpoints": endpoints}


def _percentiles(seconds: np.ndarray) -> dict:
    if not seconds.size:
        return {"p50_ms": None, "p99_ms": None}
    p50, p99 = np.percentile(seconds, [50, 99]) * 1e3
    return {"p50_ms": float(p50), "p99_ms": float(p99)}


def _features(workers: list[dict]) -> dict:
    """Hits and misses per tier summed over the workers, and the overall hit rate."""
    tiers: dict[str, dict[str, int]] = {}
    for w in workers:
        for key, value in w["features"].items():
            tier, _, outcome = key.rpartition("_")
            if outcome in ("hits", "misses", "errors"):
                counts = tiers.setdefault(tier, {"hits": 0, "misses": 0, "errors": 0})
                counts[outcome] += value
    hits = sum(t["hits"] for t in tiers.values())
    # a lookup ends in exactly one tier's hit, or in a miss/error of the last tier
    last = list(tiers.values())[-1] if tiers else {"misses": 0, "errors": 0}
    lookups = hits + last["misses"] + last["errors"]
    return {"tiers": tiers, "lookups": lookups, "hit_rate": hits / lookups if lookups else None}


def _write_json(path: Path, doc: dict) -> None:
    """Write atomically (temp file, rename): a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(json.dumps(doc).encode())
    os.replace(tmp, path)


class _QualityCollector:
    """The live quality and A/B figures as gauges, read when /metrics is scraped."""

    GAUGES = (("rows", "labelled impressions in the quality window"),
              ("ctr", "observed CTR over the window"),
              ("mean_prediction", "mean predicted CTR over the window"),
              ("calibration", "sum of predictions / clicks over the window"),
              ("log_loss", "mean log loss over the window"),
              ("normalized_entropy", "log loss / entropy of the observed CTR"),
              ("auc", "ROC AUC over the window (binned)"))

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    def collect(self):
        quality, ab = self.telemetry.quality()
        if quality is not None:
            for name, doc in self.GAUGES:
                if quality[name] is not None:
                    yield GaugeMetricFamily(f"fastctr_quality_{name}", doc, value=quality[name])
            if quality["drift"]["psi"] is not None:
                yield GaugeMetricFamily("fastctr_quality_psi", "population stability index of "
                                        "the scores against the reference",
                                        value=quality["drift"]["psi"])
            yield GaugeMetricFamily("fastctr_quality_warnings", "quality thresholds crossed",
                                    value=len(quality["warnings"]))
        if ab is not None:
            for key in ("impressions", "clicks", "ctr", "log_loss", "auc", "calibration"):
                family = GaugeMetricFamily(f"fastctr_ab_{key}", f"A/B test: {key} per arm",
                                           labels=["arm"])
                for arm in ab["arms"]:
                    if arm.get(key) is not None:
                        family.add_metric([arm["arm"]], arm[key])
                yield family


def state_of(version: str, loaded_at: str, reasons: list[str], features: dict,
             shared_health: dict | None = None) -> dict:
    """The ``state`` :meth:`Telemetry.tick` and :meth:`Telemetry.stats` take."""
    loaded = datetime.datetime.fromisoformat(loaded_at)
    age = (datetime.datetime.now(datetime.timezone.utc) - loaded).total_seconds()
    state = {"model_version": version, "model_age": age, "reasons": reasons,
             "features": features}
    if shared_health:
        state["breaker"] = shared_health.get("redis")
        state["learner"] = shared_health.get("learner")
    return state

