"""Operating the service (issue 16): /metrics in Prometheus text format, /stats, the live
quality monitor fed by feedback with its warnings in /health; real granian and uvicorn runs
with two workers whose /metrics sums both."""
import signal
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from service_models import ROWS, line_of, model_file, trained

from fastctr import load
from fastctr.online.monitor import QualityMonitor
from fastctr.service import create_app
from fastctr.service.telemetry import LATENCY_BUCKETS, Telemetry

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def samples(text: str) -> dict:
    """{(sample name, sorted labels): value} of a /metrics body."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return model_file(tmp_path_factory.mktemp("ops"), trained())


def test_latency_histogram_equals_prometheus_clients_own():
    """Requests counted in plain numbers and flushed give the histogram and counters that
    prometheus-client's own observe() gives for the same latencies (bounds included)."""
    rng = np.random.default_rng(3)
    seconds = np.concatenate([rng.lognormal(-7, 2, 500), LATENCY_BUCKETS, [0.0, 9.0]])
    telemetry = Telemetry()
    registry = CollectorRegistry()
    reference = Histogram("ref_seconds", "", buckets=LATENCY_BUCKETS, registry=registry)
    for i, s in enumerate(seconds):
        telemetry.observe("/predict", 200 if i % 7 else 422, float(s))
        reference.observe(float(s))
        if i == 250:  # flushed twice: the second adds only what grew
            telemetry.flush()
    telemetry.scored(3, "main")
    m = samples(telemetry.metrics()[0].decode())
    want = samples(generate_latest(registry).decode())
    for le in [*map(str, LATENCY_BUCKETS), "+Inf"]:
        got = m[("fastctr_request_duration_seconds_bucket", (("endpoint", "/predict"), ("le", le)))]
        assert got == want[("ref_seconds_bucket", (("le", le),))], le
    assert m[("fastctr_request_duration_seconds_sum", (("endpoint", "/predict"),))] == \
        pytest.approx(seconds.sum())
    assert m[("fastctr_requests_total", (("endpoint", "/predict"), ("status", "422")))] == \
        sum(1 for i in range(len(seconds)) if i % 7 == 0)
    assert m[("fastctr_rows_scored_total", (("arm", "main"),))] == 3


def test_metrics_count_the_traffic_sent(model_path, tmp_path):
    path = model_file(tmp_path, trained())
    client = TestClient(create_app(path, learn=True, reload_poll=0))
    ids = [client.post("/predict", json={"features": ROWS[i]}).json()["request_id"]
           for i in range(7)]
    assert client.post("/predict", json={"features": {"nope": 1}}).status_code == 422
    batch = client.post("/predict", json={"rows": [{"features": r} for r in ROWS[10:15]]})
    assert batch.status_code == 200
    for rid in ids[:4]:
        assert client.post("/feedback", json={"request_id": rid, "click": 1}).status_code == 200
    assert client.post("/feedback", json={"request_id": ids[0], "click": 1}).status_code == 409
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    m = samples(answer.text)
    req = "fastctr_requests_total"
    assert m[(req, (("endpoint", "/predict"), ("status", "200")))] == 8
    assert m[(req, (("endpoint", "/predict"), ("status", "422")))] == 1
    assert m[(req, (("endpoint", "/feedback"), ("status", "200")))] == 4
    assert m[(req, (("endpoint", "/feedback"), ("status", "409")))] == 1
    assert m[("fastctr_request_duration_seconds_count", (("endpoint", "/predict"),))] == 9
    assert m[("fastctr_rows_scored_total", (("arm", "main"),))] == 12
    assert m[("fastctr_feedback_received_total", ())] == 4
    assert m[("fastctr_feedback_learned_total", ())] == 4
    assert m[("fastctr_quality_rows", ())] == 4
    assert m[("fastctr_quality_ctr", ())] == 1.0


def test_stats_quality_equals_a_monitor_fed_the_same_clicks(model_path, tmp_path):
    """/stats' model quality is QualityMonitor's over the (p, click) learned, in order; the
    click rate falling from 80% to 5% halfway (the model lags behind) raises calibration and
    drift warnings, shown in /health."""
    path = model_file(tmp_path, trained())
    client = TestClient(create_app(path, learn=True, reload_poll=0, quality_window=500))
    rng = np.random.default_rng(5)
    reference = QualityMonitor(window=500, min_rows=500)
    for i in range(1200):
        answer = client.post("/predict", json={"features": ROWS[i % 600]}).json()
        click = int(rng.random() < (0.8 if i < 600 else 0.05))
        reference.add(answer["ctr_probability"], click)
        client.post("/feedback", json={"request_id": answer["request_id"], "click": click})
    stats = client.get("/stats").json()
    want = reference.snapshot()
    for key in ("rows", "clicks", "ctr", "mean_prediction", "calibration", "log_loss", "auc"):
        assert stats["quality"][key] == pytest.approx(want[key], rel=1e-9), key
    assert stats["quality"]["drift"]["psi"] == pytest.approx(want["drift"]["psi"])
    assert stats["feedback"] == {"received": 1200, "learned": 1200}
    assert stats["rows_scored"] == 1200 and stats["workers"] == 1
    assert stats["endpoints"]["/predict"]["requests"] == 1200
    assert stats["latency_ms"]["p50_ms"] > 0 and stats["qps"] >= 0
    assert stats["errors"] == {"4xx": 0, "5xx": 0}
    assert len(want["warnings"]) == 2 and stats["quality"]["warnings"] == want["warnings"]
    health = client.get("/health").json()
    assert health["status"] == "degraded"
    assert health["reasons"] == [f"model quality: {w}" for w in want["warnings"]]
    m = samples(client.get("/metrics").text)
    assert m[("fastctr_quality_calibration", ())] == pytest.approx(want["calibration"])
    assert m[("fastctr_quality_psi", ())] == pytest.approx(want["drift"]["psi"])
    assert m[("fastctr_quality_warnings", ())] == 2


def test_stats_feature_hit_rate_and_errors(model_path):
    client = TestClient(create_app(model_path, reload_poll=0))
    client.put("/features/user/u1", json={"features": {"C20": "a"}})
    row = {k: v for k, v in ROWS[0].items() if k != "C20"}
    for user in ("u1", "u1", "u1", "u2"):
        assert client.post("/predict", json={"features": row,
                                             "entities": {"user": user}}).status_code == 200
    client.post("/predict", content=b"{")
    stats = client.get("/stats").json()
    assert stats["features"]["lookups"] == 4 and stats["features"]["hit_rate"] == 0.75
    assert stats["errors"]["4xx"] == 1 and stats["quality"]["rows"] == 0


# -- several workers -------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_two_workers_metrics_and_stats_sum_both(model_path, server):
    """fastctr serve --workers 2 (real server processes): each worker answers some
    requests; /metrics and /stats, from whichever worker, count all of them."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "fastctr.cli", "serve", str(model_path),
                             "--port", str(port), "--workers", "2", "--server", server],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        sent = 60
        for i in range(sent):  # a new connection each time: the kernel spreads them
            with httpx.Client() as client:
                assert client.post(f"{base}/predict", json={"features": ROWS[i]}).status_code == 200
        time.sleep(2.5)  # a tick: every worker published its figures
        for _ in range(6):  # whichever worker answers
            with httpx.Client() as client:
                m = samples(client.get(f"{base}/metrics").text)
                stats = client.get(f"{base}/stats").json()
            assert m[("fastctr_requests_total", (("endpoint", "/predict"), ("status", "200")))] == sent
            assert m[("fastctr_rows_scored_total", (("arm", "main"),))] == sent
            assert m[("fastctr_model_info", (("version", stats["model_version"]),))] == 2
            assert m[("fastctr_degraded", ())] == 0
            assert stats["rows_scored"] == sent and stats["workers"] == 2
            assert stats["endpoints"]["/predict"]["requests"] == sent
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)



def _wait(condition, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_redis_learner_quality_reaches_every_worker_and_an_outage_shows(tmp_path, redis_server):
    """Two workers (two apps) on a real redis-server sharing a stats directory: the learner
    feeds the quality monitor and the other worker's /stats reads it; Redis stopped: the
    breaker's state, the Redis errors and the degraded gauge in /metrics."""
    from fastctr.service.app import _state

    path, stats_dir = model_file(tmp_path, trained()), tmp_path / "stats"
    stats_dir.mkdir()
    apps = [create_app(path, learn=True, redis_url=redis_server.url, snapshot_every=0.2,
                       reload_poll=0.1, redis_timeout=2.0, stats_dir=str(stats_dir))
            for _ in range(2)]
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        rng = np.random.default_rng(2)
        want = QualityMonitor(window=100_000)
        for i in range(60):
            answer = (a, b)[i % 2].post("/predict", json={"features": ROWS[i]}).json()
            click = int(rng.random() < 0.3)
            want.add(answer["ctr_probability"], click)
            assert (b, a)[i % 2].post("/feedback", json={"request_id": answer["request_id"],
                                                         "click": click}).status_code == 200
        learners = [app.state.stores.shared.learner for app in apps]
        _wait(lambda: sum(learner.learned for learner in learners) == 60, "the learner")
        learner_app, other = (apps[0], b) if learners[0].is_learner else (apps[1], a)
        learner_app.state.telemetry.tick(_state(learner_app))  # publishes quality.json
        quality = other.get("/stats").json()["quality"]
        assert quality["rows"] == 60 and quality["clicks"] == want.snapshot()["clicks"]
        assert quality["auc"] == pytest.approx(want.snapshot()["auc"])
        redis_server.stop()
        row = {"features": ROWS[0], "entities": {"user": "u1"}}
        for _ in range(4):  # lookups fail until the breaker opens
            assert a.post("/predict", json=row).status_code == 200
        apps[0].state.telemetry.tick(_state(apps[0]))
        m = samples(a.get("/metrics").text)
        assert m[("fastctr_redis_errors_total", ())] >= 3
        breaker = {state: m[("fastctr_redis_breaker_workers", (("state", state),))]
                   for state in ("closed", "half-open", "open")}
        assert breaker["closed"] == 0 and breaker["open"] + breaker["half-open"] == 1  # cool-down 1 s
        assert m[("fastctr_degraded", ())] == 1
        assert m[("fastctr_feature_lookups_total", (("outcome", "errors"), ("tier", "redis")))] >= 3


# -- A/B tests -------------------------------------------------------------------------------

def test_ab_routes_units_credits_and_trains_their_arm(tmp_path):
    """--ab challenger:0.3 on simulated traffic where the challenger's rows truly click more
    (16% against 10%): units keep their arm, the split is the share, each arm learns its own
    clicks, and /ab's CTR difference covers the true 0.06 with a small p-value; the report
    equals an ABTest fed the same (p, click) by arm."""
    from fastctr.online.abtest import ABTest

    control = model_file(tmp_path, trained(rows=400), "control.fctr")
    challenger = model_file(tmp_path, trained(rows=200), "challenger.fctr")
    app = create_app(control, learn=True, reload_poll=0, ab=[(str(challenger), 0.3)])
    client = TestClient(app)
    rng = np.random.default_rng(11)
    reference = ABTest([("control", 0.7), ("challenger", 0.3)])
    users = [f"user-{k}" for k in range(4000)]
    arm_of, learned = {}, {"control": 0, "challenger": 0}
    for start in range(0, len(users), 500):
        chunk = users[start:start + 500]
        rows = [{"features": ROWS[k % 600], "entities": {"user": u}}
                for k, u in enumerate(chunk, start)]
        answer = client.post("/predict", json={"rows": rows}).json()
        clicks = []
        for u, arm, p in zip(chunk, answer["arms"], answer["predictions"]):
            arm_of[u] = arm
            click = int(rng.random() < (0.16 if arm == "challenger" else 0.10))
            clicks.append(click)
            reference.update(arm, [p], [click])
            learned[arm] += 1
        fed = client.post("/feedback", json={"feedback": [
            {"request_id": rid, "click": c} for rid, c in zip(answer["request_ids"], clicks)]})
        assert fed.json()["learned"] == len(chunk)
    share = sum(a == "challenger" for a in arm_of.values()) / len(users)
    assert abs(share - 0.3) < 0.03
    for u in users[:50]:  # a unit always sees its arm, single rows too
        one = client.post("/predict", json={"features": ROWS[0], "entities": {"user": u}}).json()
        assert one["arm"] == arm_of[u]
    report = client.get("/ab").json()
    want = reference.report()
    for got, expected in zip(report["arms"], want["arms"]):
        assert got["arm"] == expected["arm"]
        for key in ("impressions", "clicks", "ctr", "log_loss", "auc", "calibration"):
            assert got[key] == pytest.approx(expected[key], rel=1e-9), key
    ctr = report["comparisons"][0]["ctr_difference"]
    assert ctr["ci_low"] < 0.06 < ctr["ci_high"] and ctr["p_value"] < 1e-3
    assert ctr["estimate"] == pytest.approx(want["comparisons"][0]["ctr_difference"]["estimate"])
    holders = app.state.arms.holders
    assert {arm: holders[arm].current.learned for arm in holders} == learned
    m = samples(client.get("/metrics").text)
    assert m[("fastctr_rows_scored_total", (("arm", "challenger"),))] == learned["challenger"] \
        + sum(arm_of[u] == "challenger" for u in users[:50])
    assert m[("fastctr_ab_impressions", (("arm", "control"),))] == learned["control"]
    assert client.get("/stats").json()["ab"]["arms"][1]["impressions"] == learned["challenger"]


def test_ab_without_user_routes_by_request_id_and_no_test_is_404(model_path, tmp_path):
    other = model_file(tmp_path, trained(rows=100), "other.fctr")
    client = TestClient(create_app(model_path, reload_poll=0, ab=[(str(other), 0.5)]))
    arms = {client.post("/predict", json={"features": ROWS[0], "request_id": f"r{i}"}).json()["arm"]
            for i in range(40)}
    assert arms == {"control", "other"}
    again = [client.post("/predict", json={"features": ROWS[0], "request_id": "r7"}).json()["arm"]
             for _ in range(3)]
    assert len(set(again)) == 1
    lines = [line_of(r) for r in ROWS[:40]]  # raw lines: each row routed by its new id
    answer = client.post("/predict", content="\n".join(lines).encode(),
                         headers={"content-type": "text/tab-separated-values"}).json()
    assert set(answer["arms"]) == {"control", "other"}
    models = {"control": load(model_path), "other": load(other)}
    assert answer["predictions"] == [models[arm].predict_one(line)
                                     for arm, line in zip(answer["arms"], lines)]
    for bad in range(5, 40, 7):  # a bad value is named by its place in the request, not in
        rows = [{"features": row} for row in ROWS[:40]]  # its arm's part of the batch
        rows[bad] = {"features": {**ROWS[0], "C1": [1]}}
        refused = client.post("/predict", json={"rows": rows})
        assert refused.status_code == 422 and refused.json()["field"] == f"rows[{bad}].features.C1"
    plain = TestClient(create_app(model_path, reload_poll=0))
    assert plain.get("/ab").status_code == 404
    assert "arm" not in plain.post("/predict", json={"features": ROWS[0]}).json()


# -- fallback --------------------------------------------------------------------------------

def _corrupt(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the checksum refuses the file
    path.write_bytes(bytes(data))


def test_corrupt_model_serves_the_constant_fallback_until_its_file_loads(tmp_path):
    from fastctr.exceptions import ModelFileError

    path = model_file(tmp_path, trained())
    _corrupt(path)
    with pytest.raises(ModelFileError):
        create_app(path, reload_poll=0)
    app = create_app(path, learn=True, reload_poll=0.2, fallback_ctr=0.01)
    with TestClient(app) as client:
        for i in range(5):
            answer = client.post("/predict", json={"features": ROWS[i]}).json()
            assert answer["ctr_probability"] == 0.01 and answer["model_version"] == "prior-0.01"
        batch = client.post("/predict", json={"rows": [{"features": r} for r in ROWS[:3]]})
        assert batch.json()["predictions"] == [0.01] * 3
        # a fallback's answer is not learned, and its click is told so (not "never predicted")
        feedback = client.post("/feedback", json={"request_id": answer["request_id"], "click": 1})
        assert feedback.status_code == 409, feedback.text
        assert "scored by the fallback prior-0.01" in feedback.json()["detail"]
        clicks = [{"request_id": rid, "click": 0} for rid in batch.json()["request_ids"][:2]]
        results = client.post("/feedback", json={"feedback": clicks}).json()
        assert results["learned"] == 0 and [r["status"] for r in results["results"]] == [409, 409]
        assert "does not learn" in results["results"][0]["detail"]
        health = client.get("/health").json()
        assert health["status"] == "degraded"  # the reason: the file's fault, what serves
        assert "checksum mismatch" in health["reasons"][0] and "prior-0.01" in health["reasons"][0]
        time.sleep(1.5)  # a tick
        m = samples(client.get("/metrics").text)
        assert m[("fastctr_fallback_rows_total", ())] == 8
        assert m[("fastctr_degraded", ())] == 1
        good = trained()
        good.save(path)  # the model's file fixed: the watcher swaps it in
        deadline = time.monotonic() + 20
        while client.get("/health").json()["status"] != "ok":
            assert time.monotonic() < deadline, client.get("/health").json()
            time.sleep(0.2)
        answer = client.post("/predict", json={"features": ROWS[0]}).json()
        assert answer["ctr_probability"] == good.predict_one(ROWS[0])
        fed = client.post("/feedback", json={"request_id": answer["request_id"], "click": 1})
        assert fed.status_code == 200 and fed.json()["learned"] == 1


def test_corrupt_model_serves_the_fallback_file(tmp_path):
    path = model_file(tmp_path, trained())
    simple = trained(rows=50)
    fallback = model_file(tmp_path, simple, "simple.fctr")
    _corrupt(path)
    client = TestClient(create_app(path, reload_poll=0, fallback=str(fallback)))
    for row in ROWS[:5]:
        assert client.post("/predict", json={"features": row}).json()["ctr_probability"] \
            == simple.predict_one(row)
    assert client.get("/health").json()["status"] == "degraded"


def test_a_model_that_raises_is_replaced_by_the_fallback(tmp_path):
    """A model whose scoring raises (a fault injected into the loaded model): the fallback
    answers and /health says why (a client's mistake stays a 422, not a fallback)."""
    app = create_app(model_file(tmp_path, trained()), reload_poll=0, fallback_ctr=0.02)
    client = TestClient(app)
    assert client.get("/health").json()["status"] == "ok"
    assert client.post("/predict", json={"features": {"nope": 1}}).status_code == 422

    def broken(row):
        raise RuntimeError("weights unreadable")

    app.state.holder.current.model.predict_one = broken
    answer = client.post("/predict", json={"features": ROWS[0]})
    assert answer.status_code == 200 and answer.json()["ctr_probability"] == 0.02
    health = client.get("/health").json()
    assert health["status"] == "degraded"
    assert "raised RuntimeError: weights unreadable" in health["reasons"][0]
    assert client.get("/stats").json()["fallback_rows"] == 1
