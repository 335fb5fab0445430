"""``fastctr serve`` as a user runs it: a real uvicorn (or granian) process on a free loopback
port, a real HTTP client (httpx); the process is stopped at the end of each test."""
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import orjson
import pytest
from live_server import serving
from service_models import ROWS, line_of, model_file, positional_of, trained

from fastctr import load
from fastctr.service.served import _checksum


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_serve_predicts_and_learns_over_http(tmp_path, server):
    model = trained()
    path = model_file(tmp_path, model)
    with serving(path, "--learn", "--server", server) as client:
        row = ROWS[420]
        for body in ({"features": row}, {"line": line_of(row)}, positional_of(row)):
            assert client.post("/predict", json=body).json()["ctr_probability"] \
                == model.predict_one(row)
        first = client.post("/predict", json={"features": row}).json()
        assert client.post("/feedback", json={"request_id": first["request_id"],
                                              "click": 1}).json()["learned"] == 1
        assert client.post("/predict", json={"features": row}).json()["ctr_probability"] \
            > first["ctr_probability"]
        bad = client.post("/predict", json={"numerical_features": [1] * 12,
                                            "categorical_features": ["a"] * 26})
        assert bad.status_code == 422 and bad.json()["field"] == "numerical_features"
        assert client.get("/docs").status_code == 200


def test_learning_warmed_up_before_ready_and_model_untouched(tmp_path):
    """/health says ready only once the learning kernels are warm (the first click would
    stall the server for seconds otherwise); the warm-up learns on a clone, not the model."""
    model = trained()
    path = model_file(tmp_path, model)
    with serving(path, "--learn") as client:
        seen = [client.get("/health").json()]
        deadline = time.monotonic() + 120
        while not seen[-1]["ready"] and time.monotonic() < deadline:
            time.sleep(0.02)
            seen.append(client.get("/health").json())
        assert seen[-1]["ready"] and seen[-1]["warm_up_s"] > 0
        assert all(h["warm_up_s"] is None for h in seen[:-1])
        for row in ROWS[420:430]:
            assert client.post("/predict", json={"features": row}).json()["ctr_probability"] \
                == model.predict_one(row)
        assert client.get("/model").json()["rows_learned"] == 400


def test_reload_under_concurrent_traffic_fails_no_request(tmp_path):
    """Two model files swapped in turn under the served path (atomic renames, then POST
    /model/reload; the watcher may reload first): every answer is 200 and is exactly the
    prediction of the model version it names."""
    models = {}
    for rows in (400, 150):
        source = model_file(tmp_path, trained(rows=rows), f"m{rows}.fctr")
        models[_checksum(source)] = (source, load(source))
    path = tmp_path / "served.fctr"
    first = next(iter(models.values()))[0]
    shutil.copyfile(first, path)
    sample = ROWS[400:440]
    want = {v: [m.predict_one(r) for r in sample] for v, (_, m) in models.items()}
    failures, answers, stop = [], [], threading.Event()

    with serving(path) as client:
        def traffic(seed: int) -> None:
            rng = np.random.default_rng(seed)
            with httpx.Client(base_url=client.base_url, timeout=30) as own:
                while not stop.is_set():
                    i = int(rng.integers(len(sample)))
                    try:
                        r = own.post("/predict", json={"features": sample[i]})
                    except httpx.HTTPError as e:
                        failures.append(repr(e))
                        continue
                    if r.status_code != 200:
                        failures.append(r.text)
                    else:
                        answers.append((i, r.json()))

        threads = [threading.Thread(target=traffic, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        try:
            for k in range(6):
                version, (source, _) = list(models.items())[(k + 1) % 2]
                tmp = tmp_path / f".served.{k}"
                shutil.copyfile(source, tmp)
                os.replace(tmp, path)  # as model.save does: a new file renamed over the old
                assert client.post("/model/reload").status_code == 200
                seen_before = len(answers)
                deadline = time.monotonic() + 30  # traffic answered by this version, then on
                while not any(a["model_version"] == version for _, a in answers[seen_before:]):
                    assert time.monotonic() < deadline, f"no answer from {version}"
                    time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
    assert not failures, failures[:3]
    seen = {a["model_version"] for _, a in answers}
    assert seen == set(models), seen  # both versions served
    for i, answer in answers:
        assert answer["ctr_probability"] == want[answer["model_version"]][i]


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_two_workers_serve_the_same_model(tmp_path, server):
    model = trained()
    with serving(model_file(tmp_path, model), "--workers", "2", "--server", server) as client:
        versions = set()
        for row in ROWS[400:420]:
            answer = client.post("/predict", json={"features": row}).json()
            assert answer["ctr_probability"] == model.predict_one(row)
            versions.add(answer["model_version"])
        assert len(versions) == 1


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_a_clean_shutdown_writes_what_was_learned(tmp_path, server):
    # SIGTERM (what stop() sends): the server's lifespan ends, the last snapshot is written
    model = trained()
    path = model_file(tmp_path, model)
    learned = trained()
    with serving(path, "--learn", "--snapshot-every", "3600", "--server", server) as client:
        for i, row in enumerate(ROWS[430:440]):
            answer = client.post("/predict", json={"features": row}).json()
            click = i % 3 == 0
            assert client.post("/feedback", json={"request_id": answer["request_id"],
                                                  "click": int(click)}).status_code == 200
            learned.partial_fit([row], [click])
        served = client.post("/predict", json={"features": ROWS[0]}).json()["ctr_probability"]
    saved = load(path)
    assert saved.predict_one(ROWS[0]) == served == learned.predict_one(ROWS[0])
    assert served != model.predict_one(ROWS[0])


def _answers(client: httpx.Client) -> list:
    """What every kind of request gets: status, media type, the body (JSON without its
    random ids and times, HTML and text by their start) and whether the connection closes."""
    big = b'{"features": {"C1": "' + b"x" * 70000 + b'"}}'  # over --max-body 65536

    def chunked(data: bytes):
        yield from (data[i:i + 4096] for i in range(0, len(data), 4096))

    row = {"features": ROWS[420], "entities": {"user": "u 1"}}
    requests = [
        ("PUT", "/features/user/u%201", {"json": {"features": {"C2": "x"}, "ttl": 60}}),
        ("GET", "/features/user/u%201?ignored=1", {}),
        ("GET", "/features/user/nobody", {}),
        ("POST", "/predict", {"json": row}),
        ("POST", "/predict", {"content": chunked(orjson.dumps(row)),
                              "headers": {"content-type": "application/json"}}),
        ("POST", "/predict", {"content": line_of(ROWS[421]).encode(),
                              "headers": {"content-type": "text/tab-separated-values"}}),
        ("POST", "/predict", {"content": b"{not json"}),
        ("POST", "/predict", {"content": big}),
        ("POST", "/predict", {"content": chunked(big)}),
        ("PUT", "/features/user/u2", {"content": chunked(big)}),
        ("GET", "/predict", {}),
        ("POST", "/feedback", {"json": {"request_id": "never-predicted", "click": 1}}),
        ("GET", "/nowhere", {}),
        ("GET", "/model", {}),
        ("GET", "/health", {}),
        ("GET", "/metrics", {}),
        ("GET", "/docs", {}),
        ("GET", "/openapi.json", {}),
    ]
    seen = []
    for method, url, options in requests:
        try:
            answer = client.request(method, url, **options)
        except httpx.HTTPError as e:
            raise AssertionError(f"request {len(seen)}, {method} {url}: {e!r}") from e
        kind = answer.headers.get("content-type", "").split(";")[0]
        if kind == "application/json":
            body = answer.json()
            if url == "/health":  # (not its readiness and latencies: they vary)
                body = {k: body[k] for k in ("status", "live", "reasons", "impressions")}
            elif isinstance(body, dict):
                for volatile in ("request_id", "request_ids", "loaded_at"):
                    body.pop(volatile, None)
        else:
            body = answer.text[:40]
        closed = answer.headers.get("connection") == "close"
        seen.append((method, url, answer.status_code, kind, body, closed))
    return seen


def test_every_route_answers_alike_under_uvicorn_and_granian(tmp_path):
    """granian serves over RSGI (service.gateway translates it for FastAPI's routes): every
    route, status and error is what uvicorn (ASGI) gives, bodies streamed in chunks too."""
    path = model_file(tmp_path, trained())
    answers = {}
    for server in ("uvicorn", "granian"):
        with serving(path, "--learn", "--server", server, "--max-body", "65536") as client:
            try:
                answers[server] = _answers(client)
            except AssertionError as e:
                raise AssertionError(f"{server}: {e}") from e
    assert answers["uvicorn"] == answers["granian"]
    statuses = [status for _, _, status, *_ in answers["granian"]]
    assert statuses == [200, 200, 404, 200, 200, 200, 422, 413, 413, 413, 405, 404, 404,
                        200, 200, 200, 200, 200]
    # a body refused before its end closes the connection (its rest is not a request)
    assert [closed for *_, closed in answers["granian"]] == [s == 413 for s in statuses]
    predictions = [body["ctr_probability"] for *_, body, _ in answers["granian"][3:5]]
    assert predictions[0] == predictions[1]


def run_cli(*args, env_code: str = "pass") -> subprocess.CompletedProcess:
    code = f"import sys; {env_code}; from fastctr.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120)


def test_serve_refuses_what_it_cannot_do(tmp_path):
    model = trained()
    path = model_file(tmp_path, model)
    scorer = tmp_path / "scorer.fctr"
    model.to_scorer().save(scorer)
    missing_fastapi = run_cli("serve", str(path), env_code="sys.modules['fastapi'] = None")
    assert missing_fastapi.returncode == 2
    assert 'pip install "fastctr[serve]"' in missing_fastapi.stderr
    learn_scorer = run_cli("serve", str(scorer), "--learn")
    assert learn_scorer.returncode == 2 and "cannot learn" in learn_scorer.stderr
    no_file = run_cli("serve", str(tmp_path / "none.fctr"))
    assert no_file.returncode == 2 and "none.fctr" in no_file.stderr
    snapshot = run_cli("serve", str(path), "--snapshot-every", "5")
    assert snapshot.returncode == 2 and "--learn" in snapshot.stderr
    with socket.socket() as taken:  # a port in use: one line under either server
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for server in ("uvicorn", "granian"):
            busy = run_cli("serve", str(path), "--port", port, "--server", server)
            assert busy.returncode == 2, busy.stderr
            assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr
            assert "Traceback" not in busy.stderr
