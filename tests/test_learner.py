"""One learner for many workers, against a real redis-server: clicks fed back to any worker
are queued once, learned once and in order, and the snapshot equals a model that learned the
same rows with partial_fit."""
import dataclasses
import io
import os
import time

import numpy as np
import pytest

from fastctr import FTRLClassifier, load, read_criteo
from fastctr.io.datasets import make_criteo
from fastctr.service.errors import AlreadyLabelled, UnknownImpression
from fastctr.service.learner import FeedbackQueue, Learner, QueueFull
from fastctr.service.redis_store import RedisImpressionStore, RedisLink
from fastctr.service.served import ServedModel


def write_model(path, **params):
    """A small trained FTRL model file, the same every time for the same ``params``."""
    model = FTRLClassifier(bits=18, **params)
    for batch in read_criteo(io.BytesIO(b"".join(make_criteo(500, seed=3))), model.hasher_):
        model.partial_fit(batch, batch.labels)
    model.save(path)
    return path


@pytest.fixture
def model_path(tmp_path):
    return write_model(tmp_path / "model.fctr")


class Worker:
    """What one serving worker holds: its own connection, impression store and queue."""

    def __init__(self, url, **queue_options):
        self.impressions = RedisImpressionStore(RedisLink(url, timeout=2.0), ttl=60)
        self.queue = FeedbackQueue(self.impressions, **queue_options)


def scored(model_path, n, seed=11):
    """n impressions (as the service keeps them) and their clicks."""
    served = ServedModel.load(model_path)
    rng = np.random.default_rng(seed)
    lines = [line.split("\t", 1)[1] for line in b"".join(make_criteo(n, seed=seed)).decode().splitlines()]
    return [served.impression(line, 0.5) for line in lines], list(rng.integers(0, 2, n))


def reference(model_path, impressions, clicks):
    """A model that partial_fit the same rows in the same order."""
    ref = ServedModel.load(model_path, learn=True)
    ref.learn(impressions, clicks)
    return ref.model


def test_clicks_to_two_workers_are_learned_once_in_order(redis_url, model_path):
    a, b = Worker(redis_url), Worker(redis_url)
    impressions, clicks = scored(model_path, 300)
    expected = reference(model_path, impressions, clicks)
    for i, imp in enumerate(impressions):  # predictions land on either worker
        (a, b)[i % 3 == 0].impressions.put(f"r{i}", imp)
    for i, click in enumerate(clicks):  # and the clicks on either, in another pattern
        assert (a, b)[i % 2].queue.label([f"r{i}"], [click]) == [impressions[i]]
    again = b.queue.label([f"r{i}" for i in range(0, 300, 7)], [1] * 43)  # retries: refused
    assert all(isinstance(e, AlreadyLabelled) for e in again)
    assert len(a.queue) == 300

    learner = Learner(model_path, a.queue, batch=64)
    assert learner.become_learner()
    while learner.step():
        pass
    assert learner.learned == 300 and learner.snapshot()
    learned = load(model_path)
    np.testing.assert_array_equal(learned.state.zn, expected.state.zn)
    assert learned.n_rows_seen_ == expected.n_rows_seen_
    learner.lock.release()


def test_label_outcomes_and_the_queue_bound(redis_url, model_path):
    w = Worker(redis_url, max_items=2)
    impressions, _ = scored(model_path, 4)
    for i, imp in enumerate(impressions):
        w.impressions.put(f"r{i}", imp)
    out = w.queue.label(["r0", "nope", "r0", "r1", "r2"], [1, 1, 0, 0, 1])
    assert out[0] == impressions[0] and out[3] == impressions[1]
    assert isinstance(out[1], UnknownImpression) and "'nope'" in str(out[1])
    assert isinstance(out[2], AlreadyLabelled)
    assert isinstance(out[4], QueueFull) and "holds 2 clicks" in str(out[4])
    assert w.queue.pop(10) == ([impressions[0], impressions[1]], [1, 0])
    assert w.queue.label(["r2"], [1]) == [impressions[2]]  # not taken while the queue was full
    assert 0 < w.impressions.link.client.pttl(w.queue.key) <= w.queue.ttl * 1000


def test_one_learner_at_a_time_and_takeover(redis_url, model_path):
    w = Worker(redis_url)
    first, second = Learner(model_path, w.queue), Learner(model_path, w.queue)
    assert first.become_learner() and not second.become_learner()
    impressions, clicks = scored(model_path, 50)
    for i, imp in enumerate(impressions):
        w.impressions.put(f"r{i}", imp)
    w.queue.label([f"r{i}" for i in range(20)], clicks[:20])
    first.stop()  # drains, snapshots, releases the lock
    assert first.learned == 20 and not first.is_learner
    assert second.become_learner()  # takes over from the snapshot
    w.queue.label([f"r{i}" for i in range(20, 50)], clicks[20:])
    while second.step():
        pass
    second.snapshot()
    np.testing.assert_array_equal(load(model_path).state.zn, reference_from(model_path, impressions, clicks))
    second.lock.release()


def reference_from(model_path, impressions, clicks):
    """The reference's state, from the model as it was before any feedback (rebuilt: the
    learners rewrite ``model_path``)."""
    path = write_model(model_path.with_name("reference.fctr"))
    return reference(path, impressions, clicks).state.zn


def test_the_learner_thread_learns_and_snapshots(redis_url, model_path):
    w = Worker(redis_url)
    impressions, clicks = scored(model_path, 100)
    expected = reference_from(model_path, impressions, clicks)
    learners = [Learner(model_path, w.queue, snapshot_every=0.1, poll=0.01) for _ in range(2)]
    for learner in learners:
        learner.start()
    before = model_path.stat().st_mtime_ns
    for i, imp in enumerate(impressions):
        w.impressions.put(f"r{i}", imp)
        w.queue.label([f"r{i}"], [clicks[i]])
    deadline = time.monotonic() + 10
    while sum(learner.learned for learner in learners) < 100 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # a snapshot period
    assert sorted(learner.is_learner for learner in learners) == [False, True]
    assert model_path.stat().st_mtime_ns != before
    np.testing.assert_array_equal(load(model_path).state.zn, expected)
    for learner in learners:
        learner.stop()


def test_a_model_deployed_over_the_file_is_not_overwritten(redis_url, model_path, tmp_path):
    w = Worker(redis_url)
    impressions, clicks = scored(model_path, 30)
    learner = Learner(model_path, w.queue)
    assert learner.become_learner()
    for i, imp in enumerate(impressions):
        w.impressions.put(f"r{i}", imp)
    w.queue.label([f"r{i}" for i in range(10)], clicks[:10])
    assert learner.step() == 10
    os.replace(write_model(tmp_path / "new.fctr", alpha=0.3), model_path)  # a new model deployed
    assert not learner.snapshot() and learner.dropped == 10
    assert load(model_path).alpha == 0.3 and load(model_path).n_rows_seen_ == 500
    w.queue.label([f"r{i}" for i in range(10, 30)], clicks[10:])
    assert learner.step() == 20 and learner.snapshot()  # learning goes on from the new model
    assert load(model_path).alpha == 0.3 and load(model_path).n_rows_seen_ == 520
    learner.lock.release()


def test_the_learner_survives_a_redis_outage(redis_server, model_path):
    w = Worker(redis_server.url)
    learner = Learner(model_path, w.queue, snapshot_every=0.1, poll=0.01)
    learner.start()
    try:
        wait = time.monotonic() + 10
        while not learner.is_learner and time.monotonic() < wait:
            time.sleep(0.02)
        redis_server.stop()
        time.sleep(1.5)
        assert learner.errors >= 1 and "redis" in learner.last_error.lower()
        assert learner.errors <= 3  # it waits a second between tries, it does not spin
        redis_server.start()
        impressions, clicks = scored(model_path, 5)
        time.sleep(1.1)  # the breaker's cool-down, if the learner's errors opened it
        for i, imp in enumerate(impressions):
            w.impressions.put(f"r{i}", imp)
        w.queue.label([f"r{i}" for i in range(5)], clicks)
        deadline = time.monotonic() + 10
        while learner.learned < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert learner.learned == 5
    finally:
        learner.stop()


def test_clicks_of_an_arm_no_longer_served_are_dropped_and_counted(redis_url, model_path):
    """Impressions scored by an A/B arm the restarted service no longer has are not learned
    by another arm's model: counted as dropped."""
    worker = Worker(redis_url)
    impressions, clicks = scored(model_path, 6)
    impressions[2:4] = [dataclasses.replace(imp, arm="gone") for imp in impressions[2:4]]
    for i, imp in enumerate(impressions):
        worker.impressions.put(f"g{i}", imp)
    worker.queue.label([f"g{i}" for i in range(6)], clicks)
    expected = reference(model_path, impressions[:2] + impressions[4:], clicks[:2] + clicks[4:])
    learner = Learner(model_path, worker.queue)
    assert learner.become_learner()
    assert learner.step() == 6
    assert (learner.learned, learner.dropped) == (4, 2)
    np.testing.assert_array_equal(learner.arms["main"].model.model.state.zn, expected.state.zn)
    learner.lock.release()
