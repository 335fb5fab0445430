"""The service with ``redis_url`` against a real redis-server: two workers (two apps) share the
impressions and each click is learned once by the one learner; Redis killed mid-traffic
degrades the service (predictions from the request and the local tier, /health degraded,
writes 503) and it recovers when Redis is back, without a restart."""
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_models import LABELS, ROWS, model_file, trained

from fastctr import load
from fastctr.service import create_app
from fastctr.service.errors import Conflict
from fastctr.service.redis_store import (
    RedisFeatureStore,
    RedisImpressionStore,
    RedisLink,
    TieredFeatureStore,
)
from fastctr.service.served import ServedModel
from fastctr.service.stores import Impression, LocalFeatureStore, LocalImpressionStore

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def wait_for(condition, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def worker(path, url, **kw):
    # a budget this loaded test machine keeps (the default 50 ms is tested with a paused Redis)
    kw.setdefault("redis_timeout", 2.0)
    return TestClient(create_app(path, learn=True, redis_url=url, snapshot_every=0.1,
                                 reload_poll=0.05, **kw))


def test_two_workers_learn_each_click_once(tmp_path, redis_url):
    path = model_file(tmp_path)
    reference = ServedModel.load(model_file(tmp_path, name="reference.fctr"), learn=True)
    rows, clicks = ROWS[400:560], [int(c) for c in LABELS[400:560]]
    with worker(path, redis_url) as a, worker(path, redis_url) as b:
        version = a.get("/model").json()["version"]
        for i, row in enumerate(rows):  # predictions on either worker
            answer = (a, b)[i % 3 == 0].post("/predict", json={"features": row, "request_id": f"r{i}"})
            assert answer.status_code == 200, answer.text
        order = list(range(0, len(rows), 2)) + list(range(1, len(rows), 2))
        for n, i in enumerate(order):  # clicks on either worker, in another order
            answer = (a, b)[n % 2].post("/feedback", json={"request_id": f"r{i}", "click": clicks[i]})
            assert answer.status_code == 200, answer.text
        retries = [{"request_id": f"r{i}", "click": 1} for i in range(5)]
        retries.append({"request_id": "nope", "click": 0})
        again = b.post("/feedback", json={"feedback": retries})
        assert [r["status"] for r in again.json()["results"]] == [409] * 5 + [404]
        assert a.post("/feedback", json={"request_id": "r0", "click": 1}).status_code == 409

        learners = [c.app.state.stores.shared.learner for c in (a, b)]
        assert sorted(learner.is_learner for learner in learners) == [False, True]
        reference.learn([reference.impression(rows[i], 0.0) for i in order], [clicks[i] for i in order])
        rows_seen = reference.model.n_rows_seen_
        wait_for(lambda: load(path).n_rows_seen_ == rows_seen, what="the snapshot of every click")
        np.testing.assert_array_equal(load(path).state.zn, reference.model.state.zn)
        assert sum(learner.learned for learner in learners) == len(rows)
        wait_for(lambda: a.get("/model").json()["rows_learned"] == b.get("/model").json()["rows_learned"]
                 == rows_seen, what="both workers to serve the snapshot")
        assert a.get("/model").json()["version"] == b.get("/model").json()["version"] != version
        probe = ROWS[590]
        assert a.post("/predict", json={"features": probe}).json()["ctr_probability"] \
            == b.post("/predict", json={"features": probe}).json()["ctr_probability"] \
            == reference.model.predict_one(probe)


def test_redis_killed_mid_traffic_degrades_and_recovers(tmp_path, redis_server):
    model = trained()
    path = model_file(tmp_path, model)
    user = {"C20": "a9f0", "C21": "u-seg"}
    with worker(path, redis_server.url) as client:
        assert client.put("/features/user/u1", json={"features": user}).status_code == 200
        own = {k: v for k, v in ROWS[0].items() if k not in user}
        merged = {**user, **own}
        body = {"features": own, "entities": {"user": "u1"}}
        assert client.post("/predict", json=body).json()["ctr_probability"] == model.predict_one(merged)
        before = client.post("/predict", json={"features": ROWS[1]}).json()["request_id"]
        assert client.get("/health").json()["status"] == "ok"

        redis_server.stop()
        for i in range(30):  # traffic goes on: the local tier and the request's own features
            answer = client.post("/predict", json=body)
            assert answer.status_code == 200 and answer.json()["ctr_probability"] == model.predict_one(merged)
            other = {"features": ROWS[2 + i], "entities": {"user": f"new{i}"}}
            answer = client.post("/predict", json=other)
            assert answer.status_code == 200
            assert answer.json()["ctr_probability"] == model.predict_one(ROWS[2 + i])
        health = client.get("/health").json()
        assert health["status"] == "degraded" and health["redis"]["state"] == "open"
        assert any("redis is open" in reason for reason in health["reasons"])
        refused = client.put("/features/user/u2", json={"features": user})
        assert refused.status_code == 503 and "redis" in refused.json()["detail"]
        assert client.post("/feedback", json={"request_id": before, "click": 1}).status_code == 503

        redis_server.start()  # empty: what Redis held is gone, the service is not restarted
        time.sleep(1.1)  # the breaker's cool-down, then the next lookup probes
        wait_for(lambda: client.post("/predict", json=body).status_code == 200
                 and client.get("/health").json()["status"] == "ok", what="recovery")
        assert client.put("/features/user/u2", json={"features": user}).status_code == 200
        rid = client.post("/predict", json={"features": own, "entities": {"user": "u2"}}).json()["request_id"]
        assert client.post("/feedback", json={"request_id": rid, "click": 1}).status_code == 200
        assert client.get("/health").json()["redis"]["opened"] >= 1



def test_a_paused_redis_costs_three_lookups_the_budget_then_none(tmp_path, redis_server):
    model = trained()
    path = model_file(tmp_path, model)
    with TestClient(create_app(path, redis_url=redis_server.url, reload_poll=0)) as client:
        first = {"features": ROWS[0], "entities": {"user": "u0"}}
        assert client.post("/predict", json=first).status_code == 200
        before = client.get("/health").json()["redis"]
        redis_server.pause()  # SIGSTOP: connections stay open, nothing answers
        try:
            for i in range(1, 41):  # one lookup each (an unknown user: not in the local tier)
                answer = client.post("/predict", json={"features": ROWS[i], "entities": {"user": f"u{i}"}})
                assert answer.status_code == 200
                assert answer.json()["ctr_probability"] == model.predict_one(ROWS[i])
            redis = client.get("/health").json()["redis"]
        finally:
            redis_server.resume()
        assert redis["state"] in ("open", "half-open") and "Timeout" in redis["last_error"]
        # three lookups waited for the budget and opened the breaker; every later failure was
        # a probe after a cool-down (re-opening it); every other lookup was refused at once
        failures = redis["failures"] - before["failures"]
        assert failures - 3 == redis["opened"] - 1 and failures <= 5
        assert failures + redis["rejected"] - before["rejected"] == 40
        time.sleep(1.1)
        wait_for(lambda: client.post("/predict", json=first).status_code == 200
                 and client.get("/health").json()["redis"]["state"] == "closed",
                 what="the probe to close the breaker")


def test_services_of_two_models_share_a_redis_apart(tmp_path, redis_url):
    paths = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        paths.append(model_file(tmp_path / name))
    with worker(paths[0], redis_url) as a, worker(paths[1], redis_url) as b:
        for client in (a, b):  # the same request id in each: no conflict
            answer = client.post("/predict", json={"features": ROWS[0], "request_id": "same"})
            assert answer.status_code == 200
        assert a.post("/feedback", json={"request_id": "same", "click": 1}).status_code == 200
        learners = [c.app.state.stores.shared.learner for c in (a, b)]
        wait_for(lambda: learners[0].learned == 1, what="a's learner")
        assert learners[1].is_learner and learners[1].learned == 0
        assert b.post("/feedback", json={"request_id": "same", "click": 0}).status_code == 200


def test_a_click_on_a_fallbacks_answer_is_refused_and_never_learned(tmp_path, redis_url):
    """The fallback's answers are kept as markers: their click gets a 409 saying so (not a
    404 "never predicted"), and the learner skips the marker the queue got."""
    with worker(model_file(tmp_path), redis_url, fallback_ctr=0.02) as a:
        model = a.app.state.holder.current.model

        def broken(row):
            raise RuntimeError("weights unreadable")

        model.predict_one = broken
        answer = a.post("/predict", json={"features": ROWS[0], "request_id": "f0"}).json()
        assert answer["ctr_probability"] == 0.02
        del model.predict_one
        assert a.post("/predict", json={"features": ROWS[1], "request_id": "m0"}).status_code == 200
        refused = a.post("/feedback", json={"request_id": "f0", "click": 1})
        assert refused.status_code == 409, refused.text
        assert "scored by the fallback prior-0.02" in refused.json()["detail"]
        assert a.post("/feedback", json={"request_id": "m0", "click": 1}).status_code == 200
        learner = a.app.state.stores.shared.learner
        wait_for(lambda: learner.learned == 1 and len(learner.queue) == 0, what="the click learned")
        time.sleep(0.2)
        assert learner.learned == 1  # the marker was skipped, not learned


@pytest.mark.parametrize("where", ["local", "redis"])
def test_impressions_put_many_keeps_new_ids_and_names_taken_ones(redis_url, where):
    """A batch's impressions in one step (one lock, or one Redis round trip): every id not
    in use is kept, the positions of those in use (before, or twice in the batch) returned."""
    store = LocalImpressionStore(max_items=100, ttl=60) if where == "local" \
        else RedisImpressionStore(RedisLink(redis_url, timeout=2.0, prefix="t:"), ttl=60)
    kept = [Impression(np.full(i + 1, i, np.int32).tobytes(), np.ones(i + 1, np.float32).tobytes(),
                       np.zeros(i + 1, np.uint16).tobytes(), "v1", p=i / 10) for i in range(5)]
    store.put("b", kept[0])
    encoded = [imp.to_bytes() for imp in kept]
    assert store.put_many(list(zip(["a", "b", "c", "a", "d"], encoded))) == [1, 3]
    assert [store.take(rid) for rid in "acd"] == [kept[0], kept[2], kept[4]]
    assert store.take("b") == kept[0]  # the one stored before, untouched
    with pytest.raises(Conflict):
        store.put("c", kept[1])


def test_entities_are_looked_up_together(redis_url):
    """A request naming several entities costs one Redis round trip for those the local
    tier does not have; what Redis has is cached locally, an absent one is a miss."""
    link = RedisLink(redis_url, timeout=2.0, prefix="e:")
    remote = RedisFeatureStore(link, ttl=60)
    store = TieredFeatureStore(LocalFeatureStore(max_items=100, ttl=60), remote)
    store.put("user", "u1", {"C20": "seg-1"})  # in both tiers
    remote.put("ad", "a1", {"C3": "x"})
    remote.put("site", "s1", {"C5": "y", "I2": 4})
    calls = []
    real_call = link.call
    link.call = lambda fn, *a, **k: calls.append(fn) or real_call(fn, *a, **k)
    pairs = [("user", "u1"), ("ad", "a1"), ("site", "s1"), ("ad", "nope")]
    assert store.get_many(pairs) == [{"C20": "seg-1"}, {"C3": "x"}, {"C5": "y", "I2": 4}, None]
    assert len(calls) == 1
    stats = store.stats()
    assert (stats["local_hits"], stats["local_misses"], stats["redis_hits"],
            stats["redis_misses"]) == (1, 3, 2, 1)
    assert store.get_many(pairs[:3]) == [{"C20": "seg-1"}, {"C3": "x"}, {"C5": "y", "I2": 4}]
    assert len(calls) == 1  # all three from the local tier now
