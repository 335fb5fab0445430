"""Real processes: a uvicorn (or granian) server with two workers over a real redis-server,
driven by a real HTTP client on loopback. Each click is learned exactly once whichever worker gets it, both
workers serve the same snapshot, and Redis killed mid-traffic degrades the service without
a failed prediction until it comes back."""
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from redis_server import free_port
from service_models import LABELS, ROWS, model_file, trained

from fastctr import load
from fastctr.service.served import ServedModel

FASTCTR = os.path.join(os.path.dirname(sys.executable), "fastctr")


class Server:
    """``fastctr serve MODEL --workers N --redis URL --learn`` on a free loopback port."""

    def __init__(self, model_path, redis_url: str, *options: str, workers: int = 2):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [FASTCTR, "serve", str(model_path), "--port", str(self.port), "--workers", str(workers),
             "--redis", redis_url, "--learn", "--redis-timeout", "2", *options],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start: {self.output}")
            time.sleep(0.1)
        self.output = ""

    def client(self) -> httpx.Client:
        # no keep-alive: each request is a new connection, which either worker may accept
        return httpx.Client(base_url=self.url, timeout=10,
                            limits=httpx.Limits(max_keepalive_connections=0))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the server shuts the workers down cleanly
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.output = self.process.stdout.read().decode(errors="replace")[-4000:]


@pytest.fixture
def serve(redis_server):
    servers = []

    def start(path, *options):
        servers.append(Server(path, redis_server.url, *options))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def wait_for(condition, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("http_server", ["uvicorn", "granian"])
def test_two_worker_processes_learn_each_click_once(tmp_path, serve, http_server):
    path = model_file(tmp_path)
    reference = ServedModel.load(model_file(tmp_path, name="reference.fctr"), learn=True)
    server = serve(path, "--snapshot-every", "0.2", "--server", http_server)
    rows, clicks = ROWS[400:520], [int(c) for c in LABELS[400:520]]
    with server.client() as http:
        for i, row in enumerate(rows):
            answer = http.post("/predict", json={"features": row, "request_id": f"r{i}"})
            assert answer.status_code == 200, answer.text
        for i, click in enumerate(clicks):
            answer = http.post("/feedback", json={"request_id": f"r{i}", "click": click})
            assert answer.status_code == 200, answer.text
        for i in range(0, len(rows), 10):  # a second label, whichever worker gets it
            assert http.post("/feedback", json={"request_id": f"r{i}", "click": 1}).status_code == 409
        reference.learn([reference.impression(row, 0.0) for row in rows], clicks)
        wait_for(lambda: load(path).n_rows_seen_ == reference.model.n_rows_seen_, what="the snapshot")
        np.testing.assert_array_equal(load(path).state.zn, reference.model.state.zn)
        probe = ROWS[590]
        want = reference.model.predict_one(probe)
        wait_for(lambda: all(http.post("/predict", json={"features": probe}).json()["ctr_probability"] == want
                             for _ in range(10)), what="every worker to serve the snapshot")
        # the predictions may all come from one worker: each one's reload poll is its own
        snapshot = load(path)
        wait_for(lambda: {http.get("/model").json()["rows_learned"] for _ in range(20)}
                 == {snapshot.n_rows_seen_}, what="every worker to load the last snapshot")
        versions = {http.get("/model").json()["version"] for _ in range(20)}
        assert len(versions) == 1
        learners = [http.get("/health").json()["learner"] for _ in range(20)]
        # one of the workers learns (the others answer False), its kernels warmed up first
        assert any(one["learner"] and one["warm_up_s"] > 0 for one in learners)
    server.stop()
    np.testing.assert_array_equal(load(path).state.zn, reference.model.state.zn)  # nothing more


def test_an_ab_test_learns_each_arm_from_its_clicks_across_workers(tmp_path, serve):
    """--ab with --redis --learn: one learner trains each arm's model on exactly the clicks
    of the rows that arm scored, in their order, and snapshots each arm's file."""
    control = model_file(tmp_path)
    challenger = model_file(tmp_path, trained(rows=200), "challenger.fctr")
    references = {"control": ServedModel.load(model_file(tmp_path, name="ref-control.fctr"), learn=True),
                  "challenger": ServedModel.load(model_file(tmp_path, trained(rows=200), "ref-ch.fctr"),
                                                 learn=True)}
    server = serve(control, "--ab", f"{challenger}:0.5", "--snapshot-every", "0.2")
    rows, clicks = ROWS[400:480], [int(c) for c in LABELS[400:480]]
    arms = []
    with server.client() as http:
        for i, row in enumerate(rows):
            answer = http.post("/predict", json={"features": row, "request_id": f"ab{i}",
                                                 "entities": {"user": f"u{i % 23}"}}).json()
            arms.append(answer["arm"])
        assert set(arms) == {"control", "challenger"}
        for i, click in enumerate(clicks):
            assert http.post("/feedback", json={"request_id": f"ab{i}", "click": click}).status_code == 200
    for arm, path in (("control", control), ("challenger", challenger)):
        mine = [i for i, a in enumerate(arms) if a == arm]
        reference = references[arm]
        reference.learn([reference.impression(rows[i], 0.0) for i in mine], [clicks[i] for i in mine])
        want = reference.model.n_rows_seen_
        wait_for(lambda p=path, n=want: load(p).n_rows_seen_ == n, what=f"{arm}'s snapshot")
        np.testing.assert_array_equal(load(path).state.zn, reference.model.state.zn)


def test_redis_killed_mid_traffic(tmp_path, serve, redis_server):
    model = trained()
    path = model_file(tmp_path, model)
    server = serve(path)
    results, stop = [], threading.Event()

    def traffic():
        with server.client() as http:
            i = 0
            while not stop.is_set():
                row = ROWS[i % 600]
                answer = http.post("/predict", json={"features": row, "entities": {"user": f"u{i % 7}"}})
                results.append((answer.status_code, answer.json().get("ctr_probability"), row))
                i += 1

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        wait_for(lambda: len(results) > 20, what="traffic")
        redis_server.stop()
        with server.client() as http:
            wait_for(lambda: http.get("/health").json()["status"] == "degraded", what="degraded")
            health = http.get("/health").json()
            assert health["redis"]["state"] in ("open", "half-open")
            during = len(results)
            wait_for(lambda: len(results) > during + 50, what="traffic while Redis is down")
            redis_server.start()
            wait_for(lambda: all(http.get("/health").json()["status"] == "ok" for _ in range(6)),
                     what="recovery in every worker")
            after = len(results)
            wait_for(lambda: len(results) > after + 20, what="traffic after recovery")
    finally:
        stop.set()
        thread.join(30)
    assert all(status == 200 for status, _, _ in results)
    assert all(p == model.predict_one(row) for _, p, row in results)  # no entity features stored
    with server.client() as http:  # feedback works again
        rid = http.post("/predict", json={"features": ROWS[0]}).json()["request_id"]
        assert http.post("/feedback", json={"request_id": rid, "click": 1}).status_code == 200
